#!/usr/bin/env python3
"""Where a task's start latency goes through hatchet-server and the official Python SDK (issue 18, "Server path": the
cause of the p99 stalls, with evidence).

    bench/work/venv/bin/python bench/sdk_trace.py                       # 200/s for 30 s, 16 slots
    bench/work/venv/bin/python bench/sdk_trace.py --rate 100 --seconds 60 --out-dir bench/results/DATE-sdk-trace

It runs what the benchmark's `server` latency row runs (the same producer: `run(wait_for_result=False)` per task on a
fixed schedule from one thread, a worker process with `hatchet.worker(slots=16)` and a synchronous task), on a
scratch cluster with the benchmark's settings and a release `hatchet-server serve`, and stamps every task at six
points on the machine's one clock:

  t0      producer, just before the SDK's trigger call (the latency's start, as in the benchmark)
  t1      producer, when the trigger call returned
  queued  Postgres, the task row's inserted_at (clock_timestamp() inside hatchet.run_workflow)
  assign  Postgres, when the attempt was assigned (task_events.assigned_at of its COMPLETED event)
  pushed  hatchet-server, when the assignment was written to the worker's ListenV2 stream (its debug log)
  body    worker, the first line of the task's body (the latency's end, as in the benchmark)

and reports each segment's percentiles, then the slowest tasks with their segments, so a stall is attributed to
the SDK's client, the server's trigger, the assignment, the push or the SDK's worker. Numbers, not assertions.
Needs the extension installed (scripts/install-ext.sh), bench/run.sh's venvs (bench/work/venv with psycopg,
bench/work/venv-sdk with hatchet-sdk) and a release hatchet-server (BENCH_HATCHET_SERVER or the newest build).
"""


import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH / "orchestrator"))
sys.path.insert(0, str(BENCH))

TASK = "trace-noop"
SEGMENTS = [("trigger call (t0 to t1)", "t0", "t1"), ("client to row (t0 to queued)", "t0", "queued"),
            ("row to assigned (queued to assign)", "queued", "assign"),
            ("assigned to pushed (assign to pushed)", "assign", "pushed"),
            ("pushed to body (pushed to body)", "pushed", "body"), ("start latency (t0 to body)", "t0", "body")]


def now_us() -> int:
    return time.time_ns() // 1000


try:  # the SDK processes' input model; the orchestrating process (bench/work/venv) does not need it
    from pydantic import BaseModel

    class In(BaseModel):
        t: int = 0
except ImportError:
    pass


# ------------------------------------------------------------------------------------------------ SDK processes
# These two run under bench/work/venv-sdk's python (hatchet-sdk); the environment carries the client settings.
def sdk_worker(stamps: str) -> None:
    import logging

    from hatchet_sdk import Context, Hatchet

    logging.getLogger("hatchet").setLevel(logging.WARNING)
    hatchet = Hatchet()
    fd = os.open(stamps, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    @hatchet.task(name=TASK, input_validator=In)
    def noop(input: In, ctx: Context) -> None:
        # One write(2) per line on an O_APPEND descriptor: lines from the worker's threads never interleave.
        os.write(fd, f"{ctx.workflow_run_id} {now_us()}\n".encode())

    hatchet.worker("trace-worker", slots=16, workflows=[noop]).start()


def sdk_producer(rate: float, seconds: float, stamps: str) -> None:
    from hatchet_sdk import Context, Hatchet

    hatchet = Hatchet()

    @hatchet.task(name=TASK, input_validator=In)
    def noop(input: In, ctx: Context) -> None:  # the worker process's definition runs; this one only triggers
        return None

    total = round(rate * seconds)
    start = now_us() + 50_000
    lines = []
    for i in range(total):
        due = start + int(i * 1e6 / rate)
        left = due - now_us()
        if left > 0:
            time.sleep(left / 1e6)
        t0 = now_us()
        ref = noop.run(In(t=t0), wait_for_result=False)  # what the benchmark's latency row calls
        lines.append(f"{t0} {now_us()} {ref.workflow_run_id}\n")
    Path(stamps).write_text("".join(lines))


# ------------------------------------------------------------------------------------------------ orchestration
def ts_us(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1e6)


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def pushes(log: Path) -> dict[str, int]:
    """task_id -> when hatchet-server pushed it (the first `pushed` debug line)."""
    out: dict[str, int] = {}
    for line in log.read_text(errors="replace").splitlines():
        line = ANSI.sub("", line)
        if " pushed" not in line or "task_id=" not in line:
            continue
        m = re.search(r"task_id=([0-9a-f-]{36})", line)
        if m and m.group(1) not in out:
            out[m.group(1)] = ts_us(line.split()[0])
    return out


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


def analyse(rows: list[dict], warmup_us: int) -> dict:
    missing = {k: sum(1 for r in rows if r.get(k) is None) for k in ("t0", "t1", "queued", "assign", "pushed", "body")}
    rows = [r for r in rows if all(r.get(k) is not None for k in missing) and r["t0"] >= warmup_us]
    seg = {}
    for name, a, b in SEGMENTS:
        ms = [(r[b] - r[a]) / 1000 for r in rows]
        seg[name] = {"p50": pct(ms, 50), "p90": pct(ms, 90), "p99": pct(ms, 99), "max": max(ms) if ms else None}
    slow = sorted(rows, key=lambda r: r["body"] - r["t0"], reverse=True)
    top = slow[:max(1, len(rows) // 100)]
    share = {}
    for name, a, b in SEGMENTS[1:-1]:
        share[name] = sum(r[b] - r[a] for r in top) / max(1, sum(r["body"] - r["t0"] for r in top))
    return {"tasks": len(rows), "missing_stamps": missing, "segments_ms": seg, "slowest_1pct_share": share,
            "slowest": [{"t0_s": (r["t0"] - warmup_us) / 1e6,
                         **{name: (r[b] - r[a]) / 1000 for name, a, b in SEGMENTS}} for r in slow[:15]]}


def markdown(res: dict, args) -> str:
    lines = [f"# SDK start-latency trace: {args.rate:g}/s offered for {args.seconds:g} s, {res['tasks']} tasks",
             "", f"Command: `{res['command']}`", "", f"Offered {res['offered_per_s']:.1f}/s; assignments made by "
             f"the trigger itself: {res['trigger_assigned']} of {res['tasks_total']}.", "",
             "| segment | p50 ms | p90 ms | p99 ms | max ms |", "|---|---|---|---|---|"]
    for name, s in res["segments_ms"].items():
        lines.append(f"| {name} | {s['p50']:.2f} | {s['p90']:.2f} | {s['p99']:.2f} | {s['max']:.2f} |")
    lines += ["", "Share of the slowest 1 % of tasks' start latency, by segment:", ""]
    lines += [f"- {k}: {v * 100:.0f} %" for k, v in res["slowest_1pct_share"].items()]
    lines += ["", "The 15 slowest tasks (ms; t0 in seconds after the warm-up):", "",
              "| t0 s | " + " | ".join(n for n, _, _ in SEGMENTS) + " |", "|---" * (len(SEGMENTS) + 1) + "|"]
    for r in res["slowest"]:
        lines.append(f"| {r['t0_s']:.2f} | " + " | ".join(f"{r[n]:.1f}" for n, _, _ in SEGMENTS) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("worker", "producer"):
        if sys.argv[1] == "worker":
            sdk_worker(sys.argv[2])
        else:
            sdk_producer(float(sys.argv[2]), float(sys.argv[3]), sys.argv[4])
        return
    from cluster import Cluster  # noqa: E402 - psycopg lives in bench/work/venv only
    from idle import DB, DEFAULT_TENANT, Server, find_binary, free_port  # noqa: E402

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--warmup-s", type=float, default=2)
    ap.add_argument("--out-dir", type=Path, default=Path("/tmp/pg_hatchet-sdk-trace"))
    ap.add_argument("--server-bin", type=Path)
    args = ap.parse_args()
    server_bin = find_binary("hatchet-server", args.server_bin)
    sdk_python = BENCH / "work" / "venv-sdk" / "bin" / "python"
    if not server_bin or not sdk_python.exists():
        sys.exit("needs a hatchet-server build and bench/work/venv-sdk (bash bench/run.sh installs it)")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(os.environ.get("BENCH_WORK", "/tmp/pg_hatchet-sdk-trace-work"))
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    os.chmod(work, 0o755)
    cluster = Cluster(work, free_port())
    cluster.start()
    server = worker = None
    try:
        cluster.recreate_db(DB, ("pg_hatchet",))
        url = f"postgresql://postgres@localhost/{DB}?host={cluster.sock}&port={cluster.port}"
        log = args.out_dir / "server.log"
        server = Server(server_bin, url, log, rust_log="warn,hatchet_server::dispatch=debug")
        env = dict(os.environ, HATCHET_CLIENT_TOKEN=server.token, HATCHET_CLIENT_HOST_PORT=server.grpc,
                   HATCHET_CLIENT_TLS_STRATEGY="none", HATCHET_CLIENT_SERVER_URL=f"http://{server.http}")
        body_file, trig_file = work / "body.txt", work / "trigger.txt"
        worker = subprocess.Popen([str(sdk_python), __file__, "worker", str(body_file)], env=env,
                                  stdout=open(args.out_dir / "worker.log", "w"), stderr=subprocess.STDOUT)
        with cluster.connect(DB) as c:
            deadline = time.monotonic() + 60
            while not c.execute("SELECT count(*) FROM hatchet.workers WHERE is_active").fetchone()[0]:
                if time.monotonic() > deadline or worker.poll() is not None:
                    raise RuntimeError(f"the SDK worker did not register; see {args.out_dir}/worker.log")
                time.sleep(0.2)
        time.sleep(2)
        start = now_us()
        subprocess.run([str(sdk_python), __file__, "producer", str(args.rate), str(args.seconds), str(trig_file)],
                       env=env, check=True)
        sent = trig_file.read_text().splitlines()
        with cluster.connect(DB) as c:
            deadline = time.monotonic() + 60
            while c.execute("SELECT count(*) FROM hatchet.task_events WHERE event_type = 'COMPLETED'"
                            ).fetchone()[0] < len(sent) and time.monotonic() < deadline:
                time.sleep(0.2)
            db = c.execute(
                "SELECT t.id::text, (extract(epoch FROM t.inserted_at) * 1e6)::bigint, "
                "       (extract(epoch FROM e.assigned_at) * 1e6)::bigint "
                "FROM hatchet.tasks t JOIN hatchet.task_events e "
                "  ON e.tenant_id = t.tenant_id AND e.task_inserted_at = t.inserted_at AND e.task_id = t.id "
                "WHERE t.tenant_id = %s AND e.event_type = 'COMPLETED'", (DEFAULT_TENANT,)).fetchall()
        time.sleep(0.5)
        pushed = pushes(log)
        body = {k: int(v) for k, v in (ln.split() for ln in body_file.read_text().splitlines() if ln.strip())}
        trig = {rid: (int(a), int(b)) for a, b, rid in (ln.split() for ln in sent)}
        rows = [{"t0": trig.get(tid, (None, None))[0], "t1": trig.get(tid, (None, None))[1], "queued": q,
                 "assign": a, "pushed": pushed.get(tid), "body": body.get(tid)} for tid, q, a in db]
        metrics = subprocess.run(["curl", "-s", "-H", f"Authorization: Bearer {server.token}",
                                  f"http://{server.http}/metrics"], capture_output=True,
                                 text=True).stdout
        m = re.search(r"^hatchet_trigger_assignments_total\{[^}]*\} (\d+)", metrics, re.M)
        res = analyse(rows, start + int(args.warmup_s * 1e6))
        res.update({"command": "bench/work/venv/bin/python bench/sdk_trace.py " + " ".join(sys.argv[1:]),
                    "server_binary": str(server_bin), "tasks_total": len(sent),
                    "offered_per_s": len(sent) / max(1e-9, (int(sent[-1].split()[0]) - int(sent[0].split()[0]))
                                                      / 1e6),
                    "trigger_assigned": int(m.group(1)) if m else 0})
        if not res["tasks"]:
            raise RuntimeError(f"no task has every stamp: {res['missing_stamps']}; sample {rows[:2]}")
        (args.out_dir / "trace.json").write_text(json.dumps({"summary": res, "rows": rows}, indent=1) + "\n")
        (args.out_dir / "trace.md").write_text(markdown(res, args))
        print(markdown(res, args))
    finally:
        for p in (worker,):
            if p and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        if server:
            server.stop()
        cluster.stop()


if __name__ == "__main__":
    main()
