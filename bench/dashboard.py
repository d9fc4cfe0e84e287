#!/usr/bin/env python3
"""Dashboard speed with a large history: p50/p95 of the runs list and run detail over HTTP, and what open dashboards
cost the database while nothing changes.

    python3 bench/dashboard.py                    # 1,000,000 runs, 100 requests per page kind, 20 idle dashboards
    python3 bench/dashboard.py --runs 100000 --requests 30 --sse-clients 20 --idle-seconds 20

What it does:
  1. starts `hatchet-server dev` (the debug binary of this checkout unless --server-bin) on free ports with a fresh
     scratch cluster in a temporary directory, and reads the token it prints;
  2. registers a two-task workflow, then loads N runs of it straight into the history tables with set-based SQL
     (runs, their two tasks, and a COMPLETED, FAILED or CANCELLED event per task: about 1% failed, 1% cancelled),
     spread over the last 23 hours in batches of 100,000, then ANALYZE — minutes, not hours;
  3. then starts live runs through the engine as an application would: --live-queued runs nobody claims (QUEUED) and
     --live-running whose first task a SQL worker claims (RUNNING), both with long timeouts so that they stay so;
  4. signs in like a browser (the session cookie) and times sequential GETs of every filter of the runs list: each
     time window, each status, a workflow, metadata values that match 1 run in 1,000, 1 in 4 or none, metadata and
     status together, a run id typed into the search box (answered with a redirect to the run), the second keyset
     page, and run detail pages of random runs;
  5. turns autovacuum off (the load would keep it busy), then counts the statements per second the database executes
     (xact_commit of pg_stat_database: every statement outside a transaction block is one) with no dashboard open,
     with 20 holding `/live` (server-sent events), and with none again, while nothing changes.

Numbers, not assertions: a benchmark is not a test. Needs the extension installed (scripts/install-ext.sh), psql,
and root or the postgres user (the cluster runs as postgres).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BATCH = 100_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dev:
    """`hatchet-server dev` on free ports in a temporary directory."""

    def __init__(self, binary: Path, keep: Path | None = None) -> None:
        # keep: a directory kept between runs (its cluster and loaded history are reused); else a temporary one.
        self.keep = keep is not None
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            self.dir = keep.resolve()
        else:
            self.dir = Path(tempfile.mkdtemp(prefix="pg_hatchet-dashbench-"))
        self.dir.chmod(0o755)
        self.http_port, self.grpc_port, self.pg_port = free_port(), free_port(), free_port()
        self.log = open(self.dir / "server.log", "a" if self.keep else "w")
        self.proc = subprocess.Popen(
            [str(binary), "dev", "--data-dir", str(self.dir / "dev"), "--http-port", str(self.http_port),
             "--grpc-port", str(self.grpc_port), "--pg-port", str(self.pg_port)],
            stdout=subprocess.PIPE, stderr=self.log, text=True, cwd=self.dir,
            env=dict(os.environ, RUST_LOG="warn"))
        self.token = ""
        deadline = time.monotonic() + 180
        assert self.proc.stdout is not None
        while not self.token:
            line = self.proc.stdout.readline()
            if not line or time.monotonic() > deadline:
                self.stop()
                sys.exit(f"hatchet-server dev did not start; see {self.dir / 'server.log'}")
            if line.startswith("export HATCHET_CLIENT_TOKEN="):
                self.token = line.strip().split("=", 1)[1]
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def psql(self, sql: str) -> str:
        out = subprocess.run(
            ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.pg_port),
             "-U", "postgres", "-d", "hatchet", "-c", sql],
            check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


LOAD = """
WITH v AS (
    SELECT wv.id AS version, w.id AS workflow
    FROM hatchet.workflows w JOIN hatchet.workflow_versions wv ON wv.tenant_id = w.tenant_id AND wv.workflow_id = w.id
    WHERE w.tenant_id = hatchet.default_tenant() AND w.name = 'bench_dash' ORDER BY wv.id DESC LIMIT 1
), d AS (
    SELECT t.id, t.readable_id FROM hatchet.task_definitions t, v
    WHERE t.tenant_id = hatchet.default_tenant() AND t.workflow_version_id = v.version
), ids AS (
    -- UUIDv7 from a millisecond timestamp (spread over the last 23 hours) and random bits
    SELECT i, (lpad(to_hex(ms), 12, '0') || '7' || substr(h, 1, 3) || '8' || substr(h, 4, 15))::uuid AS run_id,
           (lpad(to_hex(ms + 1), 12, '0') || '7' || substr(h, 18, 3) || '9' || substr(h, 21, 12) || '000')::uuid AS t1,
           (lpad(to_hex(ms + 2), 12, '0') || '7' || substr(h, 5, 3) || 'a' || substr(h, 8, 15))::uuid AS t2,
           CASE WHEN i % 100 = 7 THEN 'FAILED' WHEN i % 100 = 13 THEN 'CANCELLED' ELSE 'COMPLETED' END AS fate
    FROM (SELECT i, md5(random()::text || i) AS h,
                 (extract(epoch FROM now() - interval '23 hours') * 1000)::bigint
                   + (random() * 82000000)::bigint AS ms
          FROM generate_series({start}, {stop}) i) g
), r AS (
    INSERT INTO hatchet.runs (tenant_id, inserted_at, id, workflow_version_id, input, additional_metadata)
    SELECT hatchet.default_tenant(), hatchet.uuid_time(run_id), run_id, v.version, jsonb_build_object('n', i),
           jsonb_build_object('customer', 'c' || (i % 1000), 'batch', 'b' || (i / 1000), 'region', 'r' || (i % 4))
    FROM ids, v
    RETURNING id
), t AS (
    INSERT INTO hatchet.tasks (tenant_id, inserted_at, id, run_id, task_definition_id, execution_timeout,
                               schedule_timeout, priority, queue, readable_id, input)
    SELECT hatchet.default_tenant(), hatchet.uuid_time(x.task), x.task, ids.run_id, d.id, '60s', '5m', 1,
           'bench_dash:' || d.readable_id, d.readable_id, '{{}}'
    FROM ids CROSS JOIN LATERAL (VALUES ('first', ids.t1), ('second', ids.t2)) x(name, task)
    JOIN d ON d.readable_id = x.name
    RETURNING id
)
INSERT INTO hatchet.task_events (tenant_id, task_inserted_at, task_id, created_at, retry_count, event_type,
                                 worker_name, reason, assigned_at)
SELECT hatchet.default_tenant(), hatchet.uuid_time(x.task), x.task, hatchet.uuid_time(x.task) + interval '1 second',
       0, x.kind::hatchet.task_event_type, 'bench-worker',
       CASE x.kind WHEN 'FAILED' THEN 'boom' WHEN 'CANCELLED' THEN 'cancelled by user' END,
       hatchet.uuid_time(x.task) + interval '100 ms'
FROM ids CROSS JOIN LATERAL (VALUES (ids.t1, 'COMPLETED'), (ids.t2, ids.fate)) x(task, kind)
"""


def load(dev: Dev, runs: int) -> float:
    # Long timeouts: the live runs started after the load must stay queued or running while the pages are timed.
    dev.psql("SELECT hatchet.register_workflow('{\"name\": \"bench_dash\", \"tasks\": "
             "[{\"readable_id\": \"first\", \"timeout\": \"24h\", \"schedule_timeout\": \"24h\"}, "
             "{\"readable_id\": \"second\", \"parents\": [\"first\"], \"timeout\": \"24h\", "
             "\"schedule_timeout\": \"24h\"}]}')")
    t0 = time.monotonic()
    # The statement trigger that notes run outcomes (hatchet._note_run_outcomes) is planned against the statistics of
    # tables this very load fills (empty ones at first): its join to a batch's 200,000 new tasks can then take many
    # minutes. It is off during the load, and the rows it would have written are written once at the end, with the same
    # rule (one row per run and outcome its tasks reached; SKIPPED counts as COMPLETED).
    dev.psql("ALTER TABLE hatchet.task_events DISABLE TRIGGER task_events_run_outcomes")
    for start in range(1, runs + 1, BATCH):
        stop = min(start + BATCH - 1, runs)
        dev.psql(LOAD.format(start=start, stop=stop))
        print(f"  loaded {stop:,} runs ({time.monotonic() - t0:.0f} s)", file=sys.stderr)
    dev.psql("VACUUM ANALYZE hatchet.tasks")
    dev.psql("VACUUM ANALYZE hatchet.task_events")
    dev.psql("""
        INSERT INTO hatchet.run_outcomes (tenant_id, outcome, run_inserted_at, run_id)
        SELECT DISTINCT t.tenant_id,
               (CASE e.event_type WHEN 'SKIPPED' THEN 'COMPLETED' ELSE e.event_type::text END)::hatchet.readable_status,
               hatchet.uuid_time(t.run_id), t.run_id
        FROM hatchet.task_events e
        JOIN hatchet.tasks t ON t.tenant_id = e.tenant_id AND t.inserted_at = e.task_inserted_at AND t.id = e.task_id
        WHERE e.event_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'SKIPPED') AND t.task_definition_id IS NOT NULL""")
    dev.psql("ALTER TABLE hatchet.task_events ENABLE TRIGGER task_events_run_outcomes")
    print(f"  noted their outcomes ({time.monotonic() - t0:.0f} s)", file=sys.stderr)
    dev.psql("VACUUM ANALYZE hatchet.runs")
    dev.psql("VACUUM ANALYZE hatchet.run_outcomes")
    # Autovacuum would otherwise still be catching up with the load while the idle load is measured.
    dev.psql("ALTER SYSTEM SET autovacuum = off")
    dev.psql("SELECT pg_reload_conf()")
    return time.monotonic() - t0


def start_live(dev: Dev, queued: int, running: int) -> None:
    """Runs in flight, through the engine: `queued` + `running` runs of bench_dash, then a SQL worker claims the
    first task of `running` of them (the oldest: dequeue is FIFO)."""
    dev.psql(f"SELECT count(hatchet.run_workflow('bench_dash', jsonb_build_object('live', i), "
             f"jsonb_build_object('customer', 'c' || (i % 1000), 'region', 'r' || (i % 4))))"
             f" FROM generate_series(1, {queued + running}) i")
    if running:
        dev.psql(f"SELECT count(*) FROM hatchet.dequeue('bench_dash:first', 'bench-sql-worker', {running})")
    dev.psql("ANALYZE hatchet.ready_queue")
    dev.psql("ANALYZE hatchet.running")


class Client:
    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.cookie = f"hatchet_session={token}"

    def get(self, path: str) -> tuple[int, float, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        t0 = time.perf_counter()
        conn.request("GET", path, headers={"Cookie": self.cookie})
        resp = conn.getresponse()
        body = resp.read().decode()
        elapsed = time.perf_counter() - t0
        conn.close()
        return resp.status, elapsed * 1000, body


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * len(ordered))) - 1)]
    return statistics.median(ordered), p95


ONLY: list[str] = []


def time_page(client: Client, name: str, paths: list[str], expect: int = 200) -> dict | None:
    if ONLY and not any(o.lower() in name.lower() for o in ONLY):
        return None
    client.get(paths[0])  # warm the connection pool and the plan cache
    samples = []
    for path in paths:
        status, ms, body = client.get(path)
        if status != expect:
            sys.exit(f"{name}: GET {path} answered {status}: {body[:300]}")
        samples.append(ms)
    p50, p95 = percentiles(samples)
    print(f"  {name:<28} n={len(samples):<4} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms", file=sys.stderr)
    return {"page": name, "n": len(samples), "p50_ms": round(p50, 1), "p95_ms": round(p95, 1)}


def statements(dev: Dev) -> int:
    return int(dev.psql("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'hatchet'"))


def idle_rate(dev: Dev, seconds: float) -> float:
    # pg_stat_database is read through psql (its own transaction, subtracted); stats flush about once a second.
    time.sleep(1.5)
    before = statements(dev)
    time.sleep(seconds)
    after = statements(dev)
    return (after - before - 1) / seconds


def hold_sse(port: int, token: str, stop: threading.Event, opened: list) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("GET", "/live", headers={"Cookie": f"hatchet_session={token}", "Accept": "text/event-stream"})
    resp = conn.getresponse()
    opened.append(resp.status)
    while not stop.is_set():
        try:
            line = resp.fp.readline()
        except (TimeoutError, OSError):
            break
        if not line:
            break
        if line.startswith(b"event: changed"):
            opened.append("changed")
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=100, help="requests per page kind")
    ap.add_argument("--sse-clients", type=int, default=20)
    ap.add_argument("--idle-seconds", type=float, default=30)
    ap.add_argument("--live-queued", type=int, default=1000, help="runs left QUEUED after the load")
    ap.add_argument("--live-running", type=int, default=200, help="runs left RUNNING after the load")
    ap.add_argument("--server-bin", type=Path, help="default: cargo build -p hatchet-server (debug)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--keep-dir", type=Path,
                    help="keep the scratch cluster in this directory and reuse it: a directory a previous run loaded "
                         "with the same --runs, --live-queued and --live-running is not loaded again (its extension "
                         "is the one installed when it was created: apply SQL changed since by hand)")
    ap.add_argument("--only", action="append", default=[], metavar="TEXT",
                    help="time only the pages whose name contains TEXT (repeatable), and skip the idle load: for "
                         "trying a change on a kept directory")
    ap.add_argument("--without-metadata-index", action="store_true",
                    help="then drop hatchet.runs_metadata_idx and time the metadata filters again (before/after on "
                         "the same data and the same machine load)")
    args = ap.parse_args()
    ONLY.extend(args.only)

    binary = args.server_bin.resolve() if args.server_bin else None
    if binary is None:
        subprocess.run(["cargo", "build", "--quiet", "-p", "hatchet-server"], cwd=ROOT, check=True)
        binary = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug" / "hatchet-server"
    dev = Dev(binary, args.keep_dir)
    try:
        loaded_file = dev.dir / "loaded.json"
        shape = {"runs": args.runs, "live_queued": args.live_queued, "live_running": args.live_running}
        loaded = json.loads(loaded_file.read_text()) if loaded_file.exists() else None
        if loaded is not None and loaded["shape"] == shape:
            load_s = loaded["load_seconds"]
            print(f"reusing the {args.runs:,} runs loaded in {dev.dir}", file=sys.stderr)
        else:
            if loaded is not None:
                sys.exit(f"{dev.dir} holds another load ({loaded['shape']}); remove it or pick another --keep-dir")
            print(f"loading {args.runs:,} runs ...", file=sys.stderr)
            load_s = load(dev, args.runs)
            start_live(dev, args.live_queued, args.live_running)
            if dev.keep:
                loaded_file.write_text(json.dumps({"shape": shape, "load_seconds": round(load_s)}) + "\n")
        total = int(dev.psql("SELECT count(*) FROM hatchet.runs"))
        print(f"  {total:,} runs in history, loaded in {load_s:.0f} s; {args.live_queued:,} queued and "
              f"{args.live_running:,} running", file=sys.stderr)
        ids = dev.psql(f"SELECT id FROM hatchet.runs TABLESAMPLE SYSTEM (1) LIMIT {args.requests * 5}").split()
        random.shuffle(ids)
        client = Client(dev.http_port, dev.token)
        workflow = dev.psql("SELECT external_id FROM hatchet.workflows WHERE name = 'bench_dash'")
        n = args.requests
        _, _, first = client.get("/runs")
        marker = "&amp;before="
        cursor = first[first.index(marker) + len(marker):][:36] if marker in first else ""
        _, _, done = client.get("/runs?window=all&status=COMPLETED")
        completed_cursor = done[done.index(marker) + len(marker):][:36] if marker in done else ""
        meta_pages = [
            ("runs list, metadata filter", lambda: [
                f"/runs?window=all&key=customer&value=c{random.randrange(1000)}" for _ in range(n)]),
            ("metadata filter, 24 h", lambda: [
                f"/runs?window=24h&key=customer&value=c{random.randrange(1000)}" for _ in range(n)]),
            ("metadata filter, 1 in 4 runs", lambda: [
                f"/runs?window=all&key=region&value=r{random.randrange(4)}" for _ in range(n)]),
            ("metadata, no run matches", lambda: [
                f"/runs?window=all&key=customer&value=x{random.randrange(1000)}" for _ in range(n)]),
        ]
        statuses = ["QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"]
        results = [
            time_page(client, "runs list (last 24 h)", ["/runs"] * n),
            *[time_page(client, f"window {w}", [f"/runs?window={w}"] * n) for w in ["1h", "7d", "all"]],
            *[time_page(client, f"status {st}", [f"/runs?window=all&status={st}"] * n) for st in statuses],
            time_page(client, "status FAILED, last 24 h", ["/runs?status=FAILED"] * n),
            *[time_page(client, name, paths()) for name, paths in meta_pages],
            time_page(client, "metadata 1 in 1,000 + status FAILED", [
                f"/runs?window=all&status=FAILED&key=customer&value=c{random.randrange(1000)}" for _ in range(n)]),
            time_page(client, "metadata 1 in 1,000 + status COMPLETED", [
                f"/runs?window=all&status=COMPLETED&key=customer&value=c{random.randrange(1000)}"
                for _ in range(n)]),
            time_page(client, "workflow filter", [f"/runs?window=all&workflow={workflow}"] * n),
            time_page(client, "workflow + status CANCELLED", [
                f"/runs?window=all&workflow={workflow}&status=CANCELLED"] * n),
            time_page(client, "run id search (redirect)", [f"/runs?id={ids[i % len(ids)]}" for i in range(n)],
                      expect=303),
            time_page(client, "runs list, page 2 (keyset)", [f"/runs?window=24h&before={cursor}"] * n),
            time_page(client, "status COMPLETED, page 2", [
                f"/runs?window=all&status=COMPLETED&before={completed_cursor}"] * n),
            time_page(client, "run detail", [f"/runs/{ids[i % len(ids)]}" for i in range(n)]),
        ]
        if args.without_metadata_index:
            dev.psql("DROP INDEX hatchet.runs_metadata_idx")
            print("without the metadata index:", file=sys.stderr)
            results += [time_page(client, f"{name} (no index)", paths()) for name, paths in meta_pages]
        results = [r for r in results if r is not None]
        if ONLY:
            print(json.dumps({"runs_in_history": total, "requests": results}, indent=2))
            return
        print(f"idle load: {args.idle_seconds:.0f} s without dashboards, then with {args.sse_clients} open",
              file=sys.stderr)
        base = idle_rate(dev, args.idle_seconds)
        stop, opened = threading.Event(), []
        threads = [threading.Thread(target=hold_sse, args=(dev.http_port, dev.token, stop, opened), daemon=True)
                   for _ in range(args.sse_clients)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len([o for o in opened if o == 200]) < args.sse_clients and time.monotonic() < deadline:
            time.sleep(0.1)
        # Opening a dashboard verifies its token (a query or two); let that and its statistics settle first.
        time.sleep(5)
        with_sse = idle_rate(dev, args.idle_seconds)
        stop.set()
        events = opened.count("changed")
        after = idle_rate(dev, args.idle_seconds)
        idle = {"statements_per_s_before": round(base, 2), "statements_per_s_with_dashboards": round(with_sse, 2),
                "statements_per_s_after": round(after, 2),
                "sse_clients_open": len([o for o in opened if o == 200]), "changed_events_received": events}
        print(f"  statements/s: {base:.2f} before, {with_sse:.2f} with {idle['sse_clients_open']} dashboards open, "
              f"{after:.2f} after ({events} 'changed' events reached them)", file=sys.stderr)
        report = {"runs_in_history": total, "load_seconds": round(load_s), "live_queued": args.live_queued,
                  "live_running": args.live_running, "requests": results, "idle": idle,
                  "server_binary": str(binary)}
        print(json.dumps(report, indent=2))
        if args.json:
            args.json.write_text(json.dumps(report, indent=2) + "\n")
    finally:
        dev.stop()


if __name__ == "__main__":
    main()
