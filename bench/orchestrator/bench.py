"""pg_hatchet benchmark orchestrator: runs every scenario against every system on one scratch cluster and writes
bench/results/<date>/{results.md, results.json, *.svg}.

Usage (normally through bench/run.sh, which installs the peers first):

    python bench/orchestrator/bench.py --size smoke|medium|full [--systems a,b] [--scenarios x,y] [--reps N]

Exit status 1 if any scenario x system run failed; unavailable systems or features are skipped, not failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

import cpu
import report
import server
from cluster import Cluster, Redis
from errors import StepError
from systems import BENCH, WORK, System, all_systems

# Sizes. "full" is the specification; "smoke" exercises every path in well under 3 minutes (CI);
# "medium" is a quick look on a shared machine.
# Workflow shapes: dag_n runs of the 3-task DAG (server_dag_n through the server), rr_n tasks over rr_keys
# GROUP_ROUND_ROBIN keys with max_runs rr_max, rl_n tasks under a limit of rl_limit per second (rl_n / rl_limit
# windows, so the drain is bound by the limit, not by the workers).
SIZES = {
    "smoke": dict(reps=1, drain_n=500, steady_s=1.0, steady_warm=0.5, lat_s=1.0, lat_warm=0.2, rates=[200, 2000],
                  backlog=[100, 1000], samples=20, keys=100, fair_a=500, fair_b=20, tail_s=3, timeout=60,
                  server_latency=False, server_latency_ts=True, dag_n=300, server_dag_n=50, rr_n=3000, rr_keys=1000,
                  rr_max=2, rl_n=600, rl_limit=300),
    "medium": dict(reps=1, drain_n=20000, steady_s=10.0, steady_warm=2.0, lat_s=10.0, lat_warm=1.0,
                   rates=[200, 2000], backlog=[1000, 100000], samples=200, keys=1000, fair_a=20000, fair_b=50,
                   tail_s=30, timeout=900, dag_n=10000, server_dag_n=2000, rr_n=20000, rr_keys=1000, rr_max=2,
                   rl_n=20000, rl_limit=2000),
    "full": dict(reps=3, drain_n=100000, steady_s=60.0, steady_warm=5.0, lat_s=30.0, lat_warm=2.0,
                 rates=[200, 2000], backlog=[1000, 100000, 1000000], samples=500, keys=10000, fair_a=50000,
                 fair_b=50, tail_s=60, timeout=1800, dag_n=50000, server_dag_n=10000, rr_n=100000, rr_keys=1000,
                 rr_max=2, rl_n=60000, rl_limit=2000),
}

# Knobs shared by every system (where they apply); bench/README.md explains each.
COMMON = dict(batch=100, enqueue_batch=1000, workers=4, concurrency=16, processes=2, idle_poll_ms=2, queue="bench")

# server_dag: only the DAG through the server (not part of the default list: `server` includes it).
SCENARIOS = ["drain", "held_xmin", "steady", "latency", "backlog", "fairness", "dag", "rr_keys", "rate_limit", "server"]
EXTRA_SCENARIOS = ["server_dag"]
# Workflow shapes need pg_hatchet's features: other systems are reported as not available.
SHAPES = ("dag", "rr_keys", "rate_limit")


class Runner:
    def __init__(self, args, cluster: Cluster, redis: Redis | None, sampler: cpu.Sampler):
        self.args = args
        self.size = SIZES[args.size]
        self.cluster = cluster
        self.redis = redis
        self.sampler = sampler
        self.runs: list[dict] = []
        self.log_path = args.out / "driver.log"
        self.restarts = 0
        self.server_binary: str | None = None
        self.ts_sdk_version: str | None = None

    # ------------------------------------------------------------------------------------------ plumbing
    def log(self, msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        with open(self.log_path, "a") as f:
            f.write(line + "\n")

    def spec(self, s: System, **kw) -> dict:
        spec = dict(COMMON, system=s.driver_name or s.name, conn=self.cluster.conninfo(s.db), conn_url=self.cluster.url(s.db),
                    timeout_s=self.size["timeout"])
        if self.redis:
            spec.update(redis_url=self.redis.url(0), redis_stats_url=self.redis.url(1))
        spec.update(kw)
        return spec

    def driver(self, s: System, **kw) -> dict:
        spec = self.spec(s, **kw)
        env = dict(os.environ, **s.env)
        t0 = time.time()
        try:
            p = subprocess.run(s.command + [json.dumps(spec)], capture_output=True, text=True, env=env,
                               timeout=self.size["timeout"] + 120)
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"driver did not finish within {self.size['timeout'] + 120} s"}
        with open(self.log_path, "a") as f:
            f.write(f"--- {s.name} {spec['scenario']} ({time.time() - t0:.1f} s) rc={p.returncode}\n")
            if p.stderr.strip():
                f.write(p.stderr[-4000:] + "\n")
        lines = [ln for ln in p.stdout.strip().splitlines() if ln.startswith("{")]
        if not lines:
            return {"ok": False, "error": f"no result line (rc {p.returncode}): {(p.stderr or p.stdout)[-1500:]}"}
        try:
            out = json.loads(lines[-1])
        except json.JSONDecodeError as e:
            return {"ok": False, "error": f"bad result line: {e}"}
        if not out.get("ok"):
            out.setdefault("error", "driver reported failure")
            out["error"] = str(out["error"])[-3000:]
        return out

    def fresh(self, s: System) -> dict:
        """A new database (or flushed Redis) and the system's own setup."""
        if s.store == "pg":
            self.cluster.recreate_db(s.db, s.extensions)
            if s.post_sql:
                with self.cluster.connect(s.db) as c:
                    for sql in s.post_sql:
                        c.execute(sql)
        out = self.driver(s, scenario="setup")
        if not out.get("ok"):
            raise StepError(f"setup: {out.get('error')}")
        return out

    def record(self, scenario: str, s: System, rep: int, param, status: str, metrics=None, error=None, extra=None):
        run = {"scenario": scenario, "system": s.name, "rep": rep, "param": param, "status": status,
               "metrics": metrics or {}, "error": error, "extra": extra or {}}
        self.runs.append(run)
        tag = {"passed": "ok  ", "failed": "FAIL", "skipped": "skip"}[status]
        brief = error or (extra or {}).get("reason") or report.brief(scenario, metrics or {})
        self.log(f"{tag} {scenario:<9} {str(param or ''):<8} {s.name:<13} rep {rep}: {brief}")

    def guarded(self, scenario: str, s: System, rep: int, param, fn):
        """Runs one scenario x system x parameter; any exception is a failed run, never a crashed benchmark."""
        try:
            result = fn()
        except StepError as e:
            self.record(scenario, s, rep, param, "failed", error=str(e))
            self.ensure_cluster()
            return
        except Exception as e:  # noqa: BLE001
            self.record(scenario, s, rep, param, "failed", error=f"{e}\n{traceback.format_exc()[-1500:]}")
            self.ensure_cluster()
            return
        status, metrics, extra = result
        self.record(scenario, s, rep, param, status, metrics=metrics, extra=extra,
                    error=extra.get("error") if status == "failed" else None)

    def ensure_cluster(self) -> None:
        """After a failed run: if Postgres is gone (a backend crashed, or the extension's library was replaced
        under the running server), start a fresh cluster so the remaining runs still happen. Every scenario
        recreates its database, so nothing is lost but the failed run."""
        try:
            with self.cluster.connect() as c:
                c.execute("SELECT 1")
            return
        except Exception:  # noqa: BLE001 - any connection failure means the server is not usable
            pass
        crashed = self.args.out / f"postgres.crashed.{self.restarts + 1}.log"
        self.log(f"Postgres is down; restarting the cluster (its log is kept as {crashed})")
        try:
            crashed.write_bytes(self.cluster.log.read_bytes())
            self.cluster.start()
        except Exception as e:  # noqa: BLE001
            raise RuntimeError(f"could not restart Postgres: {e}") from e
        self.restarts += 1

    # ------------------------------------------------------------------------------------------ scenarios
    def drain(self, s: System, held: bool):
        """Enqueue n in batches, then drain them. Also yields the cost figures (transactions, WAL per task)."""
        n = self.size["drain_n"]
        setup = self.fresh(s)
        holder = None
        if held:
            if s.store != "pg":
                return "skipped", {}, {"reason": "not a Postgres queue (no MVCC horizon to hold)"}
            # A session that keeps its snapshot (and an xid) open for the whole drain, as a long report or a
            # forgotten idle-in-transaction session would.
            holder = self.cluster.connect(s.db)
            holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            holder.execute("SELECT pg_current_xact_id(), count(*) FROM pg_class")
        keep = (holder.info.backend_pid,) if holder is not None else ()
        try:
            pg = s.store == "pg"
            profile = {}
            if pg:
                self.cluster.profile_reset(s.db)
            c0 = self.cluster.counters(s.db) if pg else None
            enq = self.driver(s, scenario="enqueue", n=n)
            if not enq.get("ok"):
                raise StepError(f"enqueue: {enq['error']}")
            if pg:
                self.cluster.wait_stats_flushed(s.db, keep)
                profile["enqueue"] = self.cluster.profile_top(s.db)
                self.cluster.profile_reset(s.db)
            c1 = self.cluster.counters(s.db) if pg else None
            work = self.driver(s, scenario="work", n=n)
            if not work.get("ok"):
                raise StepError(f"work: {work['error']}")
            metrics = {"tasks_per_s": work["tasks_per_s"], "seconds": work["seconds"],
                       "enqueue_per_s": enq["tasks_per_s"]}
            cpuw = self.sampler.window(work["t_start"], work["t_end"])
            if cpuw:
                metrics.update({f"cpu_{k}": v for k, v in cpuw.items() if k != "window_s"})
            if pg:
                self.cluster.wait_stats_flushed(s.db, keep)
                profile["work"] = self.cluster.profile_top(s.db)
                c2 = self.cluster.counters(s.db)
                metrics.update({
                    "enqueue_xacts_per_task": (c1["xact_commit"] - c0["xact_commit"]) / n,
                    "enqueue_wal_bytes_per_task": (c1["wal_bytes"] - c0["wal_bytes"]) / n,
                    "work_xacts_per_task": (c2["xact_commit"] - c1["xact_commit"]) / n,
                    "work_wal_bytes_per_task": (c2["wal_bytes"] - c1["wal_bytes"]) / n,
                    "work_wal_fpi": c2["wal_fpi"] - c1["wal_fpi"],
                })
                metrics.update(self.cluster.dead_tuples(s.db))
                # What VACUUM can reclaim right now: everything after a normal drain, nothing while xmin is held.
                metrics["dead_tuples_after_vacuum"] = self.cluster.vacuum_and_count(s.db)
            extra = {"n": n, "setup": {k: v for k, v in setup.items() if k != "ok"}, "notifies": work.get("notifies")}
            if any(profile.values()):
                extra["profile"] = profile
            return "passed", metrics, extra
        finally:
            if holder is not None:
                holder.execute("ROLLBACK")
                holder.close()

    def steady(self, s: System):
        self.fresh(s)
        out = self.driver(s, scenario="steady", duration_s=self.size["steady_s"], warmup_s=self.size["steady_warm"],
                          backlog_cap=5000)
        if not out.get("ok"):
            raise StepError(out["error"])
        metrics = {"tasks_per_s": out["tasks_per_s"], "enqueued_per_s": out["enqueued_per_s"]}
        cpuw = self.sampler.window(out["t_start"], out["t_end"])
        if cpuw:
            metrics.update({f"cpu_{k}": v for k, v in cpuw.items() if k != "window_s"})
            if out["tasks_per_s"] > 0:
                # Only the benchmark's own processes (Postgres, Redis, drivers and workers), not the whole machine.
                ours = cpuw["postgres_cores"] + cpuw["redis_cores"] + cpuw["server_cores"] + cpuw["client_cores"]
                metrics["cpu_ms_per_1k_tasks"] = ours * 1e6 / out["tasks_per_s"]
        return "passed", metrics, {}

    def latency(self, s: System, rate: int):
        self.fresh(s)
        out = self.driver(s, scenario="latency", rate=rate, duration_s=self.size["lat_s"],
                          warmup_s=self.size["lat_warm"], tail_s=self.size["tail_s"])
        if not out.get("ok"):
            raise StepError(out["error"])
        lat = out.get("latencies_ms") or []
        if not lat:
            raise StepError("no latency samples")
        metrics = report.percentiles(lat)
        metrics.update(offered_per_s=out["offered_per_s"], sent=out["sent"], started=out["started"],
                       producer_max_lag_ms=out.get("producer_max_lag_ms"))
        # Saturated: the system did not start everything it was offered, the producer could not offer it, or the
        # median start took over 100 ms (a queue building up; a no-op task at a sustainable load starts far sooner).
        metrics["saturated"] = bool(out["started"] < out["sent"] or out["offered_per_s"] < 0.9 * rate
                                    or metrics["p50_ms"] > 100)
        return "passed", metrics, {"notifies": out.get("notifies"), "fallback_wakes": out.get("fallback_wakes")}

    def backlog(self, s: System, size: int):
        self.fresh(s)
        keys = self.size["keys"] if (s.driver_name or s.name) == "pg_hatchet" else 0
        out = self.driver(s, scenario="backlog", n=size, samples=self.size["samples"], keys=keys,
                          enqueue_batch=5000)
        if not out.get("ok"):
            raise StepError(out["error"])
        if out.get("available") is False:
            return "skipped", {}, {"reason": out.get("reason", "not available")}
        metrics = report.percentiles(out["latencies_ms"])
        metrics.update(fill_s=out.get("fill_s"), keys=out.get("keys", 0))
        return "passed", metrics, {"note": out.get("note")}

    def fairness(self, s: System):
        self.fresh(s)
        out = self.driver(s, scenario="fairness", fair_a=self.size["fair_a"], fair_b=self.size["fair_b"])
        if not out.get("ok"):
            raise StepError(out["error"])
        if out.get("available") is False:
            return "skipped", {}, {"reason": out.get("reason", "not available")}
        return "passed", {"seconds": out["seconds"], "a_started_before_b_done": out["a_started_before_b_done"],
                          "keyed": out.get("keyed", False)}, {}

    def shape(self, s: System, sc: str):
        """A workflow shape (dag, rr_keys, rate_limit): one driver call that enqueues, drains, and counts the
        finished work in the database."""
        self.fresh(s)
        if self.args.profile:
            self.cluster.profile_reset(s.db)
        z = self.size
        kw = {"dag": dict(n=z["dag_n"]),
              "rr_keys": dict(n=z["rr_n"], keys=z["rr_keys"], max_runs=z["rr_max"]),
              "rate_limit": dict(n=z["rl_n"], rate_limit=z["rl_limit"])}[sc]
        out = self.driver(s, scenario=sc, **kw)
        if not out.get("ok"):
            raise StepError(out["error"])
        if out.get("available") is False:
            return "skipped", {}, {"reason": out.get("reason", "not available")}
        keys = ("runs_per_s", "tasks_per_s", "enqueue_runs_per_s", "enqueue_per_s", "seconds", "db_completed_runs",
                "db_completed_tasks", "max_in_flight_per_key", "max_admitted_per_key", "max_keys_at_cap", "keys", "max_runs", "limit_per_s", "windows",
                "max_units_per_window", "windows_over_limit", "mean_units_per_full_window", "mean_window_ms",
                "ideal_seconds")
        metrics = {k: out[k] for k in keys if k in out}
        cpuw = self.sampler.window(out["t_start"], out["t_end"])
        if cpuw:
            metrics.update({f"cpu_{k}": v for k, v in cpuw.items() if k != "window_s"})
        extra = {"n": kw["n"]}
        if self.args.profile:
            self.cluster.wait_stats_flushed(s.db)
            extra["profile"] = {"enqueue and work": self.cluster.profile_top(s.db)}
        return "passed", metrics, extra

    # ------------------------------------------------------------------------------------------ main loop
    def reps_of(self, name: str) -> int:
        """Repetitions for one system (or "server"): --reps-for, else --reps, else the size's default."""
        return self.args.reps_for.get(name) or self.args.reps or self.size["reps"]

    def run(self, systems: list[System], scenarios: list[str]) -> None:
        reps = max((self.reps_of(s.name) for s in systems), default=0)
        for sc in scenarios:
            if sc in ("server", "server_dag"):
                for rec in server.run(self, systems, only_dag=sc == "server_dag"):
                    self.runs.append(rec)
                continue
            for rep in range(1, reps + 1):
                for s in systems:
                    if rep > self.reps_of(s.name):
                        continue
                    if sc in SHAPES and s.name != "pg_hatchet":
                        continue  # the shapes use pg_hatchet's workflows, keys and limits: no peer has a driver
                    if s.unavailable:
                        if rep == 1:
                            self.record(sc, s, rep, None, "skipped", extra={"reason": s.unavailable})
                        continue
                    if sc == "drain":
                        self.guarded(sc, s, rep, None, lambda: self.drain(s, held=False))
                    elif sc == "held_xmin":
                        self.guarded(sc, s, rep, None, lambda: self.drain(s, held=True))
                    elif sc == "steady":
                        self.guarded(sc, s, rep, None, lambda: self.steady(s))
                    elif sc == "latency":
                        for rate in self.size["rates"]:
                            self.guarded(sc, s, rep, rate, lambda: self.latency(s, rate))
                    elif sc == "backlog":
                        for size in self.size["backlog"]:
                            self.guarded(sc, s, rep, size, lambda: self.backlog(s, size))
                    elif sc == "fairness":
                        self.guarded(sc, s, rep, None, lambda: self.fairness(s))
                    elif sc in SHAPES:
                        self.guarded(sc, s, rep, None, lambda: self.shape(s, sc))


def machine_info() -> dict:
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) // 1024
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": model, "mem_mb": mem, "kernel": platform.release(),
            "os": platform.platform()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=sorted(SIZES), default="smoke")
    ap.add_argument("--systems", default="", help="comma-separated subset (default: all)")
    ap.add_argument("--scenarios", default="", help=f"comma-separated subset of {','.join(SCENARIOS + EXTRA_SCENARIOS)}")
    ap.add_argument("--reps", type=int, default=0, help="repetitions (default: per size)")
    ap.add_argument("--reps-for", default="", metavar="NAME=N,...",
                    help="repetitions for single systems (or 'server' for the through-the-server scenario), e.g. "
                         "procrastinate=1,celery=1 to keep a full run of the slowest peers within a session")
    ap.add_argument("--out", type=Path, default=None, help="results directory (default bench/results/<date>-<size>)")
    ap.add_argument("--port", type=int, default=int(os.environ.get("BENCH_PGPORT", "5499")))
    ap.add_argument("--redis-port", type=int, default=int(os.environ.get("BENCH_REDIS_PORT", "6399")))
    ap.add_argument("--command", default="", help="the command line to record in the results")
    ap.add_argument("--profile", action="store_true",
                    help="preload pg_stat_statements (track=all) and write the top statements of every drain to "
                         "profile.md; for finding where time goes, not for published figures")
    args = ap.parse_args()

    try:
        args.reps_for = {k: int(v) for k, v in (kv.split("=", 1) for kv in args.reps_for.split(",") if kv)}
    except ValueError:
        ap.error(f"--reps-for wants NAME=N,...: {args.reps_for!r}")
    if any(n < 1 for n in args.reps_for.values()):
        ap.error("--reps-for: repetitions must be at least 1")
    systems = all_systems()
    unknown = set(args.reps_for) - {s.name for s in systems} - {"server"}
    if unknown:
        ap.error(f"--reps-for: unknown names: {', '.join(sorted(unknown))}")
    if args.systems:
        wanted = args.systems.split(",")
        unknown = set(wanted) - {s.name for s in systems}
        if unknown:
            ap.error(f"unknown systems: {', '.join(sorted(unknown))}")
        systems = [s for s in systems if s.name in wanted]
    else:
        systems = [s for s in systems if not s.optional]
    scenarios = args.scenarios.split(",") if args.scenarios else SCENARIOS
    if set(scenarios) - set(SCENARIOS) - set(EXTRA_SCENARIOS):
        ap.error(f"unknown scenarios: {', '.join(sorted(set(scenarios) - set(SCENARIOS) - set(EXTRA_SCENARIOS)))}")

    stamp = dt.datetime.now().strftime("%Y-%m-%d")
    args.out = args.out or (BENCH / "results" / f"{stamp}-{args.size}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "driver.log").write_text("")

    cluster = Cluster(WORK, args.port, profile=args.profile)
    redis = Redis(WORK, args.redis_port) if Redis.available() else None
    sampler = cpu.Sampler(postmaster=cluster.postmaster_pid).start()
    started = time.time()
    load_start = os.getloadavg()
    runner = Runner(args, cluster, redis, sampler)
    crash = None
    interrupted = False
    # SIGTERM (a timeout, `kill`) ends the run like Ctrl-C: whatever finished is still written out.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        cluster.start()
        # Redis: for Celery, and for the through-the-server task body's start records.
        if redis and (any(s.store == "redis" and not s.unavailable for s in systems)
                      or {"server", "server_dag"} & set(scenarios)):
            redis.start()
        runner.log(f"size {args.size}; systems {', '.join(s.name for s in systems)}; cluster {cluster.version()}")
        runner.run(systems, scenarios)
    except KeyboardInterrupt:
        interrupted = True
        runner.log("interrupted: the report covers the runs finished so far")
    except Exception as e:  # noqa: BLE001 - the benchmark itself broke: report it as a failed run
        crash = f"{e}\n{traceback.format_exc()[-2000:]}"
        runner.log(f"FAIL benchmark aborted: {e} (cluster log: {cluster.log})")
        runner.runs.append({"scenario": "harness", "system": "harness", "rep": 1, "param": None, "status": "failed",
                            "metrics": {}, "error": crash, "extra": {}})
    finally:
        sampler.stop()
        if redis:
            redis.stop()
        meta = {
            "date": dt.datetime.now().isoformat(timespec="seconds"), "size": args.size, "sizes": SIZES[args.size],
            "common": COMMON, "reps_for": args.reps_for, "interrupted": interrupted, "machine": machine_info(),
            "command": args.command or " ".join(sys.argv),
            "elapsed_s": round(time.time() - started, 1), "pg_settings": cluster.settings, "profile": args.profile,
            "cluster_restarts": runner.restarts, "server_binary": runner.server_binary,
            "ts_sdk_version": runner.ts_sdk_version,
            # Other work on the machine shows here (1-minute load average at the start and at the end).
            "loadavg_1m": [round(load_start[0], 2), round(os.getloadavg()[0], 2)],
        }
        try:
            meta["postgres"] = cluster.version()
            meta["redis"] = redis.version() if redis and redis.proc else None
        except Exception:  # noqa: BLE001 - cluster already gone
            pass
        cluster.stop(quiet=True)
    runs = runner.runs
    report.write(args.out, meta, systems, runs)
    passed = sum(r["status"] == "passed" for r in runs)
    failed = sum(r["status"] == "failed" for r in runs)
    skipped = sum(r["status"] == "skipped" for r in runs)
    print(f"results: {args.out}")
    print(f"{skipped} skipped (not available)")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
