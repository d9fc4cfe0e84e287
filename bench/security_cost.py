#!/usr/bin/env python3
"""What the privilege model's function attributes cost per task (issue 15).

Every SQL and PL/pgSQL function of schema hatchet pins `search_path`, and the API functions are SECURITY DEFINER.
Postgres runs such a function through a wrapper that switches the user and saves and restores settings on every
call, and a SQL function with a SET clause is never inlined. This script measures that cost where it is paid, in the
backend that runs the benchmark's SQL path: two databases of one scratch cluster hold the same extension, and in one
of them every function of schema hatchet is altered to SECURITY INVOKER without a pinned path
(bench/orchestrator/systems.py, UNHARDEN_SQL; the benchmark's `pg_hatchet_invoker` system is the same variant).

Default method, instructions: each database gets the enqueue and drain statements of the SQL path
(`hatchet.enqueue_many` of 100 tasks; `hatchet.complete_many` of what one `hatchet.dequeue` of 100 returns) run by a
single-user backend (`postgres --single`) under Valgrind's instruction counter. Instructions do not depend on what
else the machine runs, unlike throughput and even CPU time on this shared 2-core machine (both vary by 10-50 %
between identical runs here). The figure per task is the slope between a short and a long run of the same
statements, so start-up and first-call planning cancel out.

`--cpu`: the same statements through normal connections in short alternating rounds (ABBA), timed by the backend's
CPU time (/proc/PID/schedstat). Noisy on a shared machine; kept to compare.

    bench/work/venv/bin/python bench/security_cost.py [--json FILE]    # needs valgrind (Debian package)
    bench/work/venv/bin/python bench/security_cost.py --cpu [--tasks 2000] [--rounds 60]

Needs the extension installed (scripts/install-ext.sh, or HATCHET_PG_BIN_DIR's copy) and psycopg (bench/run.sh
creates bench/work/venv with it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "orchestrator"))

import psycopg  # noqa: E402
from cluster import PG_BIN, Cluster, hatchet_installed  # noqa: E402
from systems import UNHARDEN_SQL, WORK  # noqa: E402

#: Neither is the database the background worker serves (bench_pg_hatchet), so both run alike.
VARIANTS = {"hardened": "seccost_hardened", "invoker": "seccost_invoker"}
BATCH = 100
ENQUEUE_SQL = ("SELECT cardinality(hatchet.enqueue_many('seccost', (SELECT array_agg(jsonb_build_object('i', g)) "
               f"FROM generate_series(1, {BATCH}) AS g)))")
DRAIN_SQL = ("SELECT hatchet.complete_many(array_agg(task_id), array_agg(retry_count)) "
             f"FROM hatchet.dequeue('seccost', 'w1', {BATCH})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(cluster: Cluster) -> None:
    """Both databases, the invoker variant altered; prints what each holds."""
    for variant, db in VARIANTS.items():
        cluster.recreate_db(db, ("pg_hatchet",))
        with psycopg.connect(cluster.conninfo(db), autocommit=True) as conn:
            if variant == "invoker":
                conn.execute(UNHARDEN_SQL)
            definer, pinned = conn.execute(
                "SELECT count(*) FILTER (WHERE prosecdef), "
                "       count(*) FILTER (WHERE 'search_path=pg_catalog, pg_temp' = ANY (proconfig)) "
                "FROM pg_proc WHERE pronamespace = 'hatchet'::regnamespace").fetchone()
        print(f"{variant:<9} {db}: {definer} SECURITY DEFINER functions, {pinned} with a pinned search_path")


# ---------------------------------------------------------------------------------------------- instructions
def instructions(cluster: Cluster, db: str, sql: str, times: int, callgrind_out: Path | None = None) -> int:
    """Instructions a single-user backend executes to start, run `sql` `times` times (each its own transaction)
    and exit. With `callgrind_out`, Valgrind's callgrind tool counts them per function into that file (slower;
    bench/storage_model.py --profile reads it)."""
    script = cluster.root / f"script-{times}.sql"
    script.write_text((sql + "\n") * times)
    script.chmod(0o644)
    tool = (["--tool=callgrind", f"--callgrind-out-file={callgrind_out}"] if callgrind_out else
            ["--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"])
    cmd = ["valgrind", *tool, str(PG_BIN / "postgres"), "--single", "-D", str(cluster.data), db]
    if os.geteuid() == 0:
        cmd = ["sudo", "-u", "postgres", *cmd]
    with open(script) as stdin:
        p = subprocess.run(cmd, stdin=stdin, capture_output=True, text=True, check=True)
    if "ERROR" in p.stdout or "ERROR" in p.stderr:
        raise SystemExit(f"the single-user backend reported an error:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    m = re.search(r"I\s+refs:\s+([\d,]+)", p.stderr)
    if not m:
        raise SystemExit(f"no instruction count in valgrind's output:\n{p.stderr[-2000:]}")
    return int(m.group(1).replace(",", ""))


def by_instructions(cluster: Cluster, short: int, long: int) -> dict:
    cluster.stop()
    out = {}
    for variant, db in VARIANTS.items():
        # Enqueue short, then long batches; drain short, then long (the queue holds short + long batches).
        e1 = instructions(cluster, db, ENQUEUE_SQL, short)
        e2 = instructions(cluster, db, ENQUEUE_SQL, long)
        d1 = instructions(cluster, db, DRAIN_SQL, short)
        d2 = instructions(cluster, db, DRAIN_SQL, long)
        per = (long - short) * BATCH
        out[variant] = {"enqueue": (e2 - e1) / per, "drain": (d2 - d1) / per}
        print(f"{variant:<9} enqueue {out[variant]['enqueue']:,.0f} instructions/task, "
              f"drain {out[variant]['drain']:,.0f} instructions/task", flush=True)
    cluster.start_existing()
    for variant, db in VARIANTS.items():
        with psycopg.connect(cluster.conninfo(db), autocommit=True) as conn:
            left = conn.execute("SELECT count(*) FROM hatchet.ready_queue").fetchone()[0]
            done = conn.execute("SELECT count(*) FROM hatchet.tasks WHERE queue = 'seccost'").fetchone()[0]
        if left or done != (short + long) * BATCH:
            raise SystemExit(f"{variant}: {done} tasks, {left} still queued: the drain did not do its work")
    return out


# ---------------------------------------------------------------------------------------------- CPU time
def backend_cpu_s(pid: int) -> float:
    """The time a process has spent on a CPU, in seconds, to the nanosecond (/proc/PID/schedstat's first field)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


def one_round(conn: psycopg.Connection, n: int) -> dict:
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    c0 = backend_cpu_s(pid)
    for _ in range(n // BATCH):
        conn.execute(ENQUEUE_SQL)
    c1 = backend_cpu_s(pid)
    for _ in range(n // BATCH):
        conn.execute(DRAIN_SQL)
    c2 = backend_cpu_s(pid)
    return {"enqueue": (c1 - c0) / n * 1e6, "drain": (c2 - c1) / n * 1e6}


def by_cpu(cluster: Cluster, tasks: int, rounds: int) -> dict:
    conns = {v: psycopg.connect(cluster.conninfo(db), autocommit=True) for v, db in VARIANTS.items()}
    for conn in conns.values():
        one_round(conn, 5000)  # warm the backend's caches and plans
    results = {v: [] for v in VARIANTS}
    for r in range(rounds):
        for variant in (list(VARIANTS) if r % 2 == 0 else list(reversed(list(VARIANTS)))):
            results[variant].append(one_round(conns[variant], tasks))
    out = {v: {k: statistics.median(f[k] for f in figs) for k in ("enqueue", "drain")} for v, figs in results.items()}
    for v in VARIANTS:
        print(f"{v:<9} enqueue {out[v]['enqueue']:.1f} us/task, drain {out[v]['drain']:.1f} us/task "
              f"(medians of {rounds} rounds)")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu", action="store_true", help="time CPU in alternating rounds instead of counting instructions")
    ap.add_argument("--tasks", type=int, default=2000, help="--cpu: tasks per round (a multiple of 100)")
    ap.add_argument("--rounds", type=int, default=60, help="--cpu: rounds per variant")
    ap.add_argument("--short", type=int, default=20, help="instructions: batches of 100 in the short run")
    ap.add_argument("--long", type=int, default=120, help="instructions: batches of 100 in the long run")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    if not hatchet_installed():
        print("pg_hatchet is not installed into this Postgres (scripts/install-ext.sh)", file=sys.stderr)
        return 2
    if not args.cpu and not shutil.which("valgrind"):
        print("valgrind is not installed (apt-get install valgrind), or use --cpu", file=sys.stderr)
        return 2
    cluster = Cluster(WORK / "seccost", free_port())
    cluster.start()
    try:
        prepare(cluster)
        figs = by_cpu(cluster, args.tasks, args.rounds) if args.cpu else by_instructions(cluster, args.short, args.long)
    finally:
        cluster.stop(quiet=True)
    unit = "us of backend CPU" if args.cpu else "instructions"
    print(f"\n| per task ({unit}) | hardened | invoker, no pinned path | hardened / invoker |")
    print("|---|---|---|---|")
    for k, label in (("enqueue", "enqueue (`enqueue_many` of 100)"), ("drain", "drain (`dequeue` 100 + `complete_many`)")):
        h, i = figs["hardened"][k], figs["invoker"][k]
        print(f"| {label} | {h:,.1f} | {i:,.1f} | {h / i:.4f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"method": "cpu" if args.cpu else "instructions", "unit": unit,
                                         "per_task": figs, "args": {k: str(v) for k, v in vars(args).items()},
                                         "at": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
