#!/usr/bin/env python3
"""What an idle hatchet-server costs with many workers connected: statements per second, CPU and RSS, and how fast
the first task starts when work finally arrives (issue 18, "Idle and scale").

    python3 bench/idle.py                                   # 10, 100 and 1,000 workers, 60 s each
    python3 bench/idle.py --workers 1000 --measure-s 30 --json out.json
    python3 bench/idle.py --smoke                           # 10 workers, 10 s (bench/smoke.sh runs this)

For each worker count it:
  1. starts a scratch Postgres 15 cluster (bench/orchestrator/cluster.py, the benchmark's settings) with
     pg_hatchet and pg_stat_statements preloaded (`track = all`, so statements nested in the extension's functions
     are listed too), and one `hatchet-server serve` (the release build of this checkout unless --server-bin) with
     a token minted for the default tenant;
  2. starts `idle-load` (bench/idle-load: N simulated workers, each registered with its own HTTP/2 connection, a
     ListenV2 stream and the SDK's heartbeat every 4 s) and waits until every stream is open;
  3. waits out the warm-up (--warmup-s), resets pg_stat_statements and measures for --measure-s seconds:
     statements per second (top-level calls of pg_stat_statements, the top 10 by calls; and xact_commit +
     xact_rollback of pg_stat_database as a cross-check), Postgres CPU (every process of the cluster, postmaster
     and children, from /proc), the server's CPU and its peak RSS (/proc/PID/status VmHWM after the window, VmRSS
     sampled every second), and the load client's CPU;
  4. enqueues one task at a time (--starts, 5 s apart, the input carries the enqueue's wall clock) and reads the
     first-start latency the worker saw: enqueue call to the START_STEP_RUN arriving on its stream.

The measuring connection's own statements (the pg_stat_statements reads) are left out of the counts. Numbers, not
assertions: a benchmark is not a test. Needs the extension installed (scripts/install-ext.sh) and root or the
postgres user (the cluster runs as postgres).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH / "orchestrator"))

from cluster import Cluster, hatchet_installed  # noqa: E402

DB = "bench_pg_hatchet"
DEFAULT_TENANT = "707d0855-80ab-4e1f-a156-f1c4546cbf52"
QUEUE = "idle_bench:idle"
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_binary(name: str, given: Path | None, beside: Path | None = None) -> Path | None:
    """`given`; else $BENCH_HATCHET_SERVER for the server; else the build beside `beside` (the load client next to
    the server it measures); else the newest release build under the workspace's target directories, else the
    newest debug build."""
    if given:
        return given
    forced = os.environ.get("BENCH_HATCHET_SERVER") if name == "hatchet-server" else None
    if forced:
        return Path(forced) if Path(forced).is_file() else None
    if beside is not None and (beside.parent / name).is_file():
        return beside.parent / name
    dirs = [Path(os.environ["CARGO_TARGET_DIR"])] if os.environ.get("CARGO_TARGET_DIR") else []
    dirs += sorted(ROOT.glob("target*"))
    for profile in ("release", "debug"):
        builds = [d / profile / name for d in dirs if (d / profile / name).is_file()]
        builds = [b for b in builds if os.access(b, os.X_OK)]
        if builds:
            return max(builds, key=lambda p: p.stat().st_mtime)
    return None


# ------------------------------------------------------------------------------------------------ /proc readings
def ticks(pid: int) -> int:
    """User + system CPU ticks of one process (0 if it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    rest = raw[raw.rfind(")") + 2:].split()
    return int(rest[11]) + int(rest[12])


def cluster_ticks(postmaster: int) -> dict[int, int]:
    """Ticks of the postmaster and every process whose parent it is (backends, background workers)."""
    out = {postmaster: ticks(postmaster)}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            raw = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        rest = raw[raw.rfind(")") + 2:].split()
        if int(rest[1]) == postmaster:
            out[int(name)] = int(rest[11]) + int(rest[12])
    return out


def status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


# ------------------------------------------------------------------------------------------------ processes
class Server:
    def __init__(self, binary: Path, url: str, log: Path, rust_log: str = "warn") -> None:
        self.grpc = f"127.0.0.1:{free_port()}"
        self.http = f"127.0.0.1:{free_port()}"
        self.log = open(log, "w")
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--database-url", url, "--grpc-addr", self.grpc, "--http-addr", self.http],
            stdout=self.log, stderr=subprocess.STDOUT, env=dict(os.environ, RUST_LOG=rust_log))
        import urllib.request
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"http://{self.http}/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None:
                sys.exit(f"hatchet-server exited; see {log}")
            time.sleep(0.1)
        else:
            sys.exit(f"hatchet-server did not answer /health; see {log}")
        tok = subprocess.run([str(binary), "token", "create", "--tenant", DEFAULT_TENANT, "--database-url", url,
                              "--server-url", f"http://{self.http}", "--grpc-broadcast-address", self.grpc],
                             capture_output=True, text=True, timeout=60, check=True)
        self.token = tok.stdout.strip().splitlines()[-1]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


class Load:
    """The idle-load process; its stdout lines are parsed into self.lines (a queue of dicts)."""

    def __init__(self, binary: Path, server: Server, workers: int, log: Path) -> None:
        self.err = open(log, "w")
        self.proc = subprocess.Popen(
            [str(binary), "--grpc", server.grpc, "--workers", str(workers), "--action", QUEUE],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, text=True,
            env=dict(os.environ, HATCHET_CLIENT_TOKEN=server.token))
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except json.JSONDecodeError:
                pass
        self.lines.put({"event": "exit"})

    def next(self, event: str, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if msg.get("event") == event:
                return msg
            if msg.get("event") == "exit":
                return None
        return None

    def stop(self) -> dict | None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        summary = self.next("summary", 30)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.err.close()
        return summary


# ------------------------------------------------------------------------------------------------ one run
STATS = """
SELECT calls, toplevel, round(total_exec_time::numeric, 2),
       left(regexp_replace(query, '\\s+', ' ', 'g'), 160)
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = %s) AND query NOT ILIKE '%%pg_stat_statements%%'
  AND query NOT ILIKE '%%pg_stat_database%%' AND query NOT ILIKE '%%pg_stat_clear_snapshot%%'
ORDER BY calls DESC
"""


def xacts(c) -> int:
    c.execute("SELECT pg_stat_clear_snapshot()")
    return int(c.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
                         (DB,)).fetchone()[0])


def run_one(args, workers: int, work: Path, server_bin: Path, load_bin: Path) -> dict:
    cluster = Cluster(work, free_port(), profile=True)
    cluster.start()
    server = load = None
    try:
        cluster.recreate_db(DB, ("pg_hatchet",))
        postmaster = cluster.postmaster_pid()
        assert postmaster
        url = f"postgresql://postgres@localhost/{DB}?host={cluster.sock}&port={cluster.port}"
        server = Server(server_bin, url, args.out_dir / f"server-{workers}.log")
        t0 = time.monotonic()
        load = Load(load_bin, server, workers, args.out_dir / f"load-{workers}.log")
        ready = load.next("ready", 300)
        if not ready or ready["workers"] != workers:
            raise RuntimeError(f"idle-load: not all workers ready: {ready}; see {args.out_dir}/load-{workers}.log")
        print(f"  {workers} workers registered and listening in {ready['register_s']:.1f} s", file=sys.stderr)
        time.sleep(args.warmup_s)

        with cluster.connect(DB) as c:
            c.execute("SELECT pg_stat_statements_reset()")
            x0 = xacts(c)
            pg0, srv0, load0 = cluster_ticks(postmaster), ticks(server.proc.pid), ticks(load.proc.pid)
            w0 = time.monotonic()
            rss_max = 0
            while time.monotonic() - w0 < args.measure_s:
                rss_max = max(rss_max, status_kb(server.proc.pid, "VmRSS"))
                time.sleep(min(1.0, max(0.0, args.measure_s - (time.monotonic() - w0))))
            secs = time.monotonic() - w0
            pg1, srv1, load1 = cluster_ticks(postmaster), ticks(server.proc.pid), ticks(load.proc.pid)
            rows = c.execute(STATS, (DB,)).fetchall()
            time.sleep(1.1)  # pg_stat_database is flushed by backends about once a second
            x1 = xacts(c)
        rss_max = max(rss_max, status_kb(server.proc.pid, "VmRSS"))
        hwm = status_kb(server.proc.pid, "VmHWM")
        pg_ticks = sum(t - pg0.get(pid, 0) for pid, t in pg1.items())
        top = [r for r in rows if r[1]]
        nested = [r for r in rows if not r[1]]
        total = sum(r[0] for r in top)
        result = {
            "workers": workers,
            "window_s": round(secs, 1),
            "statements_per_s": round(total / secs, 2),
            "transactions_per_s": round((x1 - x0 - 1) / (secs + 1.1), 2),
            "nested_statements_per_s": round(sum(r[0] for r in nested) / secs, 2),
            "top_statements": [{"calls_per_s": round(r[0] / secs, 3), "calls": r[0], "total_ms": float(r[2]),
                                "query": r[3]} for r in top[:10]],
            "postgres_cpu_ms_per_s": round(pg_ticks / TICK * 1000 / secs, 2),
            "server_cpu_ms_per_s": round((srv1 - srv0) / TICK * 1000 / secs, 2),
            "load_client_cpu_ms_per_s": round((load1 - load0) / TICK * 1000 / secs, 2),
            "server_rss_max_mb": round(rss_max / 1024, 1),
            "server_rss_peak_mb": round(hwm / 1024, 1),
            "register_s": ready["register_s"],
        }
        print(f"  {workers} workers: {result['statements_per_s']} statements/s "
              f"({result['transactions_per_s']} transactions/s), Postgres {result['postgres_cpu_ms_per_s']} ms CPU/s, "
              f"server {result['server_cpu_ms_per_s']} ms CPU/s, RSS {result['server_rss_max_mb']} MB "
              f"(peak {result['server_rss_peak_mb']} MB)", file=sys.stderr)
        for s in result["top_statements"]:
            print(f"    {s['calls_per_s']:8.3f}/s  {s['query'][:110]}", file=sys.stderr)

        starts, commits = [], []
        with cluster.connect(DB) as c:
            for i in range(args.starts):
                time.sleep(args.start_gap_s)
                t0_us = int(time.time() * 1_000_000)
                c.execute("SELECT hatchet.enqueue(%s, jsonb_build_object('t0_us', %s::bigint))", (QUEUE, t0_us))
                committed_ms = (time.time() * 1_000_000 - t0_us) / 1000
                got = load.next("action", 30)
                if got is None or got.get("latency_ms") is None:
                    raise RuntimeError(f"start {i + 1}: no action reached a worker within 30 s")
                starts.append(got["latency_ms"])
                commits.append(round(committed_ms, 1))
        result["first_start_ms"] = starts
        result["enqueue_commit_ms"] = commits
        print(f"  first-start latency after idle (ms): {', '.join(f'{s:.1f}' for s in starts)} "
              f"(of which the enqueue's own commit: {', '.join(f'{s:.1f}' for s in commits)})", file=sys.stderr)
        summary = load.stop()
        load = None
        result["load_summary"] = summary
        if summary and (summary["heartbeat_errors"] or summary["register_errors"]):
            print(f"  load client errors: {summary}", file=sys.stderr)
        return result
    finally:
        if load is not None:
            load.stop()
        if server is not None:
            server.stop()
        cluster.stop()


def markdown(results: list[dict], args, server_bin: Path) -> str:
    build = ("debug build: CPU and RSS not representative" if server_bin.parent.name == "debug"
             else "release build")
    lines = [f"Server: `{server_bin}` ({build}); warm-up {args.warmup_s:g} s, window {args.measure_s:g} s, "
             f"heartbeat every 4 s per worker.", "",
             "| workers | statements/s | transactions/s | Postgres CPU ms/s | server CPU ms/s | server RSS MB (peak) "
             "| load client CPU ms/s | first start ms (of which the enqueue's commit) |",
             "|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        lines.append(f"| {r['workers']:,} | {r['statements_per_s']} | {r['transactions_per_s']} "
                     f"| {r['postgres_cpu_ms_per_s']} | {r['server_cpu_ms_per_s']} "
                     f"| {r['server_rss_max_mb']} ({r['server_rss_peak_mb']}) | {r['load_client_cpu_ms_per_s']} "
                     f"| {', '.join(f'{s:.1f}' for s in r['first_start_ms'])} "
                     f"({', '.join(f'{s:.1f}' for s in r.get('enqueue_commit_ms', []))}) |")
    for r in results:
        lines += ["", f"Top statements with {r['workers']:,} workers (top-level calls per second):", "",
                  "| calls/s | query |", "|---:|---|"]
        for s in r["top_statements"]:
            q = s["query"].replace("|", "\\|")
            lines.append(f"| {s['calls_per_s']} | `{q}` |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", default="10,100,1000", help="comma-separated worker counts")
    ap.add_argument("--warmup-s", type=float, default=15)
    ap.add_argument("--measure-s", type=float, default=60)
    ap.add_argument("--starts", type=int, default=3, help="tasks enqueued one at a time after the window")
    ap.add_argument("--start-gap-s", type=float, default=5, help="idle seconds before each of them")
    ap.add_argument("--server-bin", type=Path, help="default: $BENCH_HATCHET_SERVER, else the newest target*/release "
                    "build, else the newest debug one")
    ap.add_argument("--load-bin", type=Path, help="default: the idle-load beside the server binary, else the newest")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--markdown", type=Path, help="also write a results table here")
    ap.add_argument("--smoke", action="store_true", help="10 workers, 3 s warm-up, 10 s window, 1 start")
    args = ap.parse_args()
    if args.smoke:
        args.workers, args.warmup_s, args.measure_s, args.starts, args.start_gap_s = "10", 3, 10, 1, 1
    server_bin = find_binary("hatchet-server", args.server_bin)
    load_bin = find_binary("idle-load", args.load_bin, beside=server_bin)
    why = None
    if not hatchet_installed():
        why = "pg_hatchet is not installed in this Postgres (scripts/install-ext.sh)"
    elif server_bin is None or load_bin is None:
        why = "no hatchet-server or idle-load build (cargo build --release -p hatchet-server -p idle-load)"
    if why:
        # Not available is not a failure (as in run.sh): reported as skipped.
        print(f"idle: skipped: {why}", file=sys.stderr)
        print(json.dumps({"skipped": why}))
        sys.exit(0)
    assert server_bin is not None and load_bin is not None
    work = Path(tempfile.mkdtemp(prefix="pg_hatchet-idle-"))
    work.chmod(0o755)
    args.out_dir = work
    print(f"idle benchmark: server {server_bin}, load client {load_bin}, logs in {work}", file=sys.stderr)
    results = []
    ok = True
    try:
        for n in [int(x) for x in args.workers.split(",")]:
            try:
                results.append(run_one(args, n, work, server_bin, load_bin))
            except (RuntimeError, subprocess.CalledProcessError) as err:
                ok = False
                print(f"  {n} workers FAILED: {err}", file=sys.stderr)
    finally:
        if ok:
            shutil.rmtree(work / "pg", ignore_errors=True)
    report = {"server_binary": str(server_bin), "warmup_s": args.warmup_s, "measure_s": args.measure_s,
              "results": results}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown(results, args, server_bin))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
