#!/usr/bin/env python3
"""What the hot path's storage model costs per task, and what a candidate change would save (issue 18).

The method of bench/security_cost.py (its Valgrind harness is the one used here): the enqueue and drain statements of
the SQL path run in a single-user backend under Valgrind's instruction counter, and the figure per task is the slope
between a short and a long run, so start-up and first-call planning cancel out. Each candidate is a SQL file applied
on top of the installed extension in a database of its own (`--variant NAME=FILE`, any number); database `sm_base`
holds the extension as installed. Every database must drain what it enqueued (checked after the runs).

`--dag`: the 3-task DAG of the benchmark's `dag` scenario (a; b after a; c after a and b) on the SQL path instead:
`hatchet.run_workflow` starts short x 100 runs (not counted), then rounds of `dequeue` 100 + `complete_many` on each of
the three queues drain them under Valgrind; then long x 100 more runs the same way. The figure is per run (three
tasks), the slope between the two drains.

`--profile DIR`: the drain runs (short and long) of each database under callgrind instead; the per-function
difference between the two, divided by the tasks drained in between, is the cost per task of each function
(inclusive and self), written to DIR/NAME-profile.txt and summarised on stdout.

    bench/work/venv/bin/python bench/storage_model.py [--variant a=bench/variants/a.sql ...] [--json FILE]
    bench/work/venv/bin/python bench/storage_model.py --profile bench/work/profile [--short 5 --long 25]
    bench/work/venv/bin/python bench/storage_model.py --dag [--short 2 --long 10] [--variant ...]

Needs the extension installed (scripts/install-ext.sh, or HATCHET_PG_BIN_DIR's copy), valgrind and psycopg.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "orchestrator"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg  # noqa: E402
from cluster import Cluster, hatchet_installed  # noqa: E402
from security_cost import BATCH, DRAIN_SQL, ENQUEUE_SQL, free_port, instructions  # noqa: E402
from systems import WORK  # noqa: E402

BASE = "base"


def db_name(variant: str) -> str:
    return f"sm_{variant}"


def prepare(cluster: Cluster, variants: dict[str, Path | None]) -> None:
    for name, sql_file in variants.items():
        cluster.recreate_db(db_name(name), ("pg_hatchet",))
        if sql_file is not None:
            with psycopg.connect(cluster.conninfo(db_name(name)), autocommit=True) as conn:
                conn.execute(sql_file.read_text())
        print(f"{name:<14} {db_name(name)}: {sql_file or 'the extension as installed'}", flush=True)


def check_drained(cluster: Cluster, variants: dict, expected: int) -> None:
    cluster.start_existing()
    for name in variants:
        with psycopg.connect(cluster.conninfo(db_name(name)), autocommit=True) as conn:
            left = conn.execute("SELECT count(*) FROM hatchet.ready_queue").fetchone()[0]
            running = conn.execute("SELECT count(*) FROM hatchet.running").fetchone()[0]
            done = conn.execute("SELECT count(*) FROM hatchet.task_events WHERE event_type = 'COMPLETED'").fetchone()[0]
        if left or running or done != expected:
            raise SystemExit(f"{name}: {done} completed of {expected}, {left} still queued, {running} running: "
                             "the drain did not do its work")


# ---------------------------------------------------------------------------------------------- instructions
def measure(cluster: Cluster, variants: dict, short: int, long: int) -> dict:
    cluster.stop()
    out = {}
    for name in variants:
        db = db_name(name)
        e1 = instructions(cluster, db, ENQUEUE_SQL, short)
        e2 = instructions(cluster, db, ENQUEUE_SQL, long)
        d1 = instructions(cluster, db, DRAIN_SQL, short)
        d2 = instructions(cluster, db, DRAIN_SQL, long)
        per = (long - short) * BATCH
        out[name] = {"enqueue": (e2 - e1) / per, "drain": (d2 - d1) / per}
        print(f"{name:<14} enqueue {out[name]['enqueue']:>9,.0f} instructions/task, "
              f"drain {out[name]['drain']:>9,.0f} instructions/task", flush=True)
    check_drained(cluster, variants, (short + long) * BATCH)
    return out


# ---------------------------------------------------------------------------------------------- DAG runs
DAG_NAME = "sm-dag"
DAG_DEFINITION = json.dumps({"name": DAG_NAME, "tasks": [
    {"readable_id": "a"}, {"readable_id": "b", "parents": ["a"]}, {"readable_id": "c", "parents": ["a", "b"]}]})
DAG_ROUND = "\n".join(
    f"SELECT hatchet.complete_many(coalesce(array_agg(task_id), '{{}}'), coalesce(array_agg(retry_count), '{{}}')) "
    f"FROM hatchet.dequeue('{DAG_NAME}:{q}', 'w1', {BATCH})" for q in "cba")


def start_dag_runs(cluster: Cluster, variants: dict, runs: int) -> None:
    cluster.start_existing()
    for name in variants:
        with psycopg.connect(cluster.conninfo(db_name(name)), autocommit=True) as conn:
            conn.execute("SELECT hatchet.register_workflow(%s::jsonb)", (DAG_DEFINITION,))
            conn.execute("SELECT count(hatchet.run_workflow(%s, jsonb_build_object('i', g))) "
                         "FROM generate_series(1, %s) g", (DAG_NAME, runs))
    cluster.stop()


def measure_dag(cluster: Cluster, variants: dict, short: int, long: int) -> dict:
    cluster.stop()
    drains: dict[str, list[int]] = {name: [] for name in variants}
    for batches in (short, long):
        start_dag_runs(cluster, variants, batches * BATCH)
        for name in variants:
            # Each round drains up to 100 tasks per queue; two more rounds than batches let the last c tasks through.
            drains[name].append(instructions(cluster, db_name(name), DAG_ROUND, batches + 3))
    out = {}
    for name, (d1, d2) in drains.items():
        out[name] = {"dag_run": (d2 - d1) / ((long - short) * BATCH)}
        print(f"{name:<14} {out[name]['dag_run']:>12,.0f} instructions per DAG run "
              f"({out[name]['dag_run'] / 3:,.0f} per task)", flush=True)
    check_drained(cluster, variants, 3 * (short + long) * BATCH)
    return out


# ---------------------------------------------------------------------------------------------- profile


def per_function(out_file: Path, inclusive: bool) -> dict[str, int]:
    """Instructions per function (file:function) of one callgrind output."""
    p = subprocess.run(["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}", "--threshold=100",
                        str(out_file)], capture_output=True, text=True, check=True)
    counts: dict[str, int] = {}
    started = False
    for line in p.stdout.splitlines():
        if "file:function" in line:
            started = True
            continue
        if not started or not line.strip() or line.startswith("-"):
            continue
        m = re.match(r"^\s*([\d,]+)\s+(?:\(\s*[\d.]+%\)\s+)?(.*?)\s*(?:\[.*\])?$", line)
        if m:
            fn = m.group(2).split(":", 1)[-1] if ":" in m.group(2) else m.group(2)
            counts[fn] = counts.get(fn, 0) + int(m.group(1).replace(",", ""))
    return counts


def profile(cluster: Cluster, variants: dict, short: int, long: int, out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    cg_dir = cluster.root / "callgrind"
    cg_dir.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(cg_dir, "postgres", "postgres")
    cluster.stop()
    result = {}
    tasks = (long - short) * BATCH
    for name in variants:
        db = db_name(name)
        # The queue holds short + long batches; the drains are the runs profiled.
        instructions(cluster, db, ENQUEUE_SQL, short + long)
        files = []
        for times in (short, long):
            f = cg_dir / f"{name}-{times}.out"
            instructions(cluster, db, DRAIN_SQL, times, callgrind_out=f)
            files.append(f)
        figs = {}
        for kind, incl in (("inclusive", True), ("self", False)):
            a, b = per_function(files[0], incl), per_function(files[1], incl)
            figs[kind] = sorted(((fn, (b.get(fn, 0) - a.get(fn, 0)) / tasks) for fn in set(a) | set(b)),
                                key=lambda x: -x[1])
        total = sum(v for _, v in figs["self"])
        result[name] = {"total": total, **figs}
        with open(out_dir / f"{name}-profile.txt", "w") as fh:
            fh.write(f"# drain of {tasks} tasks (runs of {short} and {long} batches of {BATCH}), "
                     f"instructions per task; total {total:,.0f}\n")
            for kind in ("inclusive", "self"):
                fh.write(f"\n## {kind}\n")
                for fn, v in figs[kind]:
                    if abs(v) >= 50:
                        fh.write(f"{v:>12,.0f}  {fn}\n")
        print(f"{name}: drain {total:,.0f} instructions/task; top inclusive:", flush=True)
        for fn, v in figs["inclusive"][:40]:
            print(f"  {v:>10,.0f}  {fn}")
    check_drained(cluster, variants, (short + long) * BATCH)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=FILE",
                    help="a candidate: SQL applied on top of the installed extension in a database of its own")
    ap.add_argument("--no-base", action="store_true", help="measure only the variants")
    ap.add_argument("--short", type=int, default=10, help="batches of 100 in the short run")
    ap.add_argument("--long", type=int, default=60, help="batches of 100 in the long run")
    ap.add_argument("--profile", type=Path, metavar="DIR", help="per-function profile of the drain into DIR")
    ap.add_argument("--dag", action="store_true", help="drain runs of a 3-task DAG instead of plain tasks")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    if not hatchet_installed():
        print("pg_hatchet is not installed into this Postgres (scripts/install-ext.sh)", file=sys.stderr)
        return 2
    if not shutil.which("valgrind"):
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    variants: dict[str, Path | None] = {} if args.no_base else {BASE: None}
    for v in args.variant:
        name, _, f = v.partition("=")
        if not re.fullmatch(r"[a-z0-9_]+", name) or not Path(f).is_file():
            ap.error(f"--variant {v}: want NAME=FILE, NAME of [a-z0-9_], FILE a SQL file")
        variants[name] = Path(f)
    # One run per work directory: a second run at the same time gets a directory of its own.
    WORK.mkdir(parents=True, exist_ok=True)
    work = WORK / "storage-model"
    lock = open(WORK / "storage-model.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        work = WORK / f"storage-model-{os.getpid()}"
    cluster = Cluster(work, free_port())
    cluster.start()
    try:
        prepare(cluster, variants)
        if args.profile:
            figs = profile(cluster, variants, args.short, args.long, args.profile)
        elif args.dag:
            figs = measure_dag(cluster, variants, args.short, args.long)
        else:
            figs = measure(cluster, variants, args.short, args.long)
    finally:
        cluster.stop(quiet=True)
    if args.dag:
        base = figs.get(BASE)
        print("\n| variant | instructions per DAG run (3 tasks) |" + (" vs base |" if base else ""))
        print("|---|---|" + ("---|" if base else ""))
        for name, f in figs.items():
            print(f"| {name} | {f['dag_run']:,.0f} |"
                  + (f" {f['dag_run'] / base['dag_run'] - 1:+.1%} |" if base else ""))
    elif not args.profile:
        base = figs.get(BASE)
        print("\n| variant | enqueue instructions/task | drain instructions/task |"
              + (" enqueue vs base | drain vs base |" if base else ""))
        print("|---|---|---|" + ("---|---|" if base else ""))
        for name, f in figs.items():
            row = f"| {name} | {f['enqueue']:,.0f} | {f['drain']:,.0f} |"
            if base:
                row += f" {f['enqueue'] / base['enqueue'] - 1:+.1%} | {f['drain'] / base['drain'] - 1:+.1%} |"
            print(row)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"per_task": figs, "args": {k: str(v) for k, v in vars(args).items()},
                                         "at": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
