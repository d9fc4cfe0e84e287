"""Through the server: the Python `hatchet-sdk` worker on hatchet-server + pg_hatchet against a Celery worker on
Redis, with the same task body (task_body.record_start) and the same concurrency (SDK slots = Celery prefork
processes). Drain (tasks/s) and latency at the first offered rate. The SDK drain also runs with two worker processes
of half the slots each (2 x 8 beside 1 x 16 and Celery's 16), and the official TypeScript SDK worker
(drivers/node/hatchet_ts_driver.js) runs the drain and the latency for the Node team's comparison with Graphile
Worker (whose figures come from the SQL scenarios of the same run).

Every SDK drain counts its tasks' COMPLETED events in the database (the run fails if any is missing) and reports the
CPU of hatchet-server, of Postgres and of the SDK worker processes per task (cpu.py), for the enqueue phase and the
work phase.

Until `hatchet-server` exists and can run one task end to end, every run here is reported as skipped with the
reason ("server not available: ..."), never as a failure: the probe decides.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import report
from cluster import hatchet_installed
from errors import StepError
from systems import BENCH, WORK, System

DEFAULT_TENANT = "707d0855-80ab-4e1f-a156-f1c4546cbf52"
# Overridable so two benchmark runs on one machine (with their own BENCH_PGPORT / BENCH_REDIS_PORT) do not collide.
GRPC = os.environ.get("BENCH_SERVER_GRPC", "127.0.0.1:17077")
HTTP = os.environ.get("BENCH_SERVER_HTTP", "127.0.0.1:18080")


def find_server() -> Path | None:
    """The hatchet-server binary: $BENCH_HATCHET_SERVER if set (bench/run.sh sets it to the release build it just
    made), else the newest release build under the workspace's target directories (`target*/release`), else the
    newest debug build, else PATH."""
    forced = os.environ.get("BENCH_HATCHET_SERVER")
    if forced:
        return Path(forced) if Path(forced).is_file() else None
    for profile in ("release", "debug"):
        builds = [p for p in BENCH.parent.glob(f"target*/{profile}/hatchet-server")
                  if p.is_file() and os.access(p, os.X_OK)]
        if builds:
            return max(builds, key=lambda p: p.stat().st_mtime)
    found = shutil.which("hatchet-server")
    return Path(found) if found else None


def sdk_system(token: str) -> System:
    py = WORK / "venv-sdk" / "bin" / "python"
    return System(
        "hatchet_sdk", "hatchet-sdk → hatchet-server → pg_hatchet", "pg",
        [str(py), str(BENCH / "drivers" / "python" / "hatchet_sdk_driver.py")],
        ["Python hatchet-sdk worker, `slots` = concurrency, synchronous task with the Celery task's body, "
         "SDK log level WARNING (the Celery worker runs with `-l WARNING`)",
         "enqueue: `run_many(wait_for_result=False)` batches; latency: `run_no_wait` per task"],
        env={"HATCHET_CLIENT_TOKEN": token, "HATCHET_CLIENT_HOST_PORT": GRPC,
             "HATCHET_CLIENT_TLS_STRATEGY": "none", "HATCHET_CLIENT_SERVER_URL": f"http://{HTTP}",
             "PYTHONPATH": str(BENCH / "drivers" / "python")},
    )


# Two worker processes of concurrency / 2 slots each: the same total as the one-process row and as Celery's prefork.
SDK_PROCESSES_2 = 2


def ts_system(token: str) -> System:
    node = shutil.which("node") or "node"
    return System(
        "hatchet_ts", "TypeScript SDK → hatchet-server → pg_hatchet", "pg",
        [node, str(BENCH / "drivers" / "node" / "hatchet_ts_driver.js")],
        ["official `@hatchet-dev/typescript-sdk` (version pinned in drivers/node/package-lock.json), one Node worker "
         "process, `slots` = concurrency, an async no-op task that stamps its start time (as the Graphile Worker "
         "task does); SDK log level WARN",
         "enqueue: `task.runNoWait(inputs[])` (the SDK sends BulkTriggerWorkflow calls of at most 500); latency: "
         "`runNoWait(input)` per task"],
        env={"HATCHET_CLIENT_TOKEN": token, "HATCHET_CLIENT_HOST_PORT": GRPC, "HATCHET_CLIENT_TLS_STRATEGY": "none",
             "HATCHET_CLIENT_API_URL": f"http://{HTTP}", "HATCHET_CLIENT_LOG_LEVEL": "WARN",
             "NODE_PATH": str(WORK / "node" / "node_modules")},
    )


def ts_sdk_installed() -> bool:
    return (WORK / "node" / "node_modules" / "@hatchet-dev" / "typescript-sdk" / "package.json").exists()


def _skip(runner, name: str, reason: str) -> dict:
    runner.log(f"skip server    {name:<13}: {reason}")
    return {"scenario": "server", "system": name, "rep": 1, "param": None, "status": "skipped", "metrics": {},
            "error": None, "extra": {"reason": reason}}


def run(runner, systems: list[System], only_dag: bool = False) -> list[dict]:
    """The server scenario: SDK and Celery drains and latency, then the DAG through the SDK; only the DAG when
    only_dag (scenario `server_dag`, which needs no Celery)."""
    binary = find_server()
    celery = next((s for s in systems if s.name == "celery" and not s.unavailable), None)
    why = None
    if binary is None:
        why = "server not available: no hatchet-server binary (cargo build --release -p hatchet-server)"
    elif not hatchet_installed():
        why = "server not available: the pg_hatchet extension is not installed"
    elif not (WORK / "venv-sdk" / "bin" / "python").exists():
        why = "server not available: hatchet-sdk is not installed (bench/run.sh installs it when the server is built)"
    elif celery is None and not only_dag:
        why = "Celery + Redis not available for the comparison"
    elif runner.redis is None:
        why = "server not available: redis-server (the task body's start record) is not installed"
    if why:
        return [_skip(runner, "hatchet_sdk", why), _skip(runner, "hatchet_ts", why)]

    cluster = runner.cluster
    db = "bench_pg_hatchet"
    cluster.recreate_db(db, ("pg_hatchet",))
    url = f"postgresql://postgres@localhost/{db}?host={cluster.sock}&port={cluster.port}"
    log = open(runner.args.out / "hatchet-server.log", "w")
    proc = subprocess.Popen([str(binary), "serve", "--database-url", url, "--grpc-addr", GRPC, "--http-addr", HTTP],
                            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, RUST_LOG="warn"))
    out: list[dict] = []
    try:
        if not _wait_health():
            return [_skip(runner, "hatchet_sdk", "server not available: /health did not answer within 30 s "
                          f"(see {runner.args.out / 'hatchet-server.log'})")]
        tok = subprocess.run([str(binary), "token", "create", "--tenant", DEFAULT_TENANT, "--database-url", url,
                              "--server-url", f"http://{HTTP}", "--grpc-broadcast-address", GRPC],
                             capture_output=True, text=True, timeout=60)
        token = tok.stdout.strip().splitlines()[-1] if tok.returncode == 0 and tok.stdout.strip() else None
        if not token:
            return [_skip(runner, "hatchet_sdk", f"server not available: token create failed: {tok.stderr[-300:]}")]
        sdk = sdk_system(token)
        extra = dict(redis_stats_url=runner.redis.url(2))
        probe = runner.driver(sdk, scenario="probe", probe_timeout_s=60, **extra)
        if not probe.get("ok"):
            return [_skip(runner, "hatchet_sdk", "server not available: it could not run a task yet: "
                          + last_error_line(probe.get("error") or "")),
                    _skip(runner, "hatchet_ts", "server not available: the Python SDK could not run a task")]
        # The TypeScript SDK: its own probe; if it cannot run a task here, its rows say why (never a figure).
        ts = ts_system(token)
        ts_why = None
        if only_dag:
            ts = None
        elif not ts_sdk_installed():
            ts_why = "not available: @hatchet-dev/typescript-sdk is not installed (bench/run.sh installs it with npm ci)"
        else:
            tsp = runner.driver(ts, scenario="probe", probe_timeout_s=60)
            if tsp.get("ok"):
                runner.ts_sdk_version = tsp.get("version")
            else:
                ts_why = "not available: the TypeScript SDK could not run a task: " + last_error_line(tsp.get("error") or "")
        if ts_why:
            skipped_ts = _skip(runner, "hatchet_ts", ts_why)
            ts = None
        size = runner.size
        rate = size["rates"][0]
        build = "debug build: not representative of release speed" if binary.parent.name == "debug" else "release build"
        runner.log(f"server: {binary} ({build})")
        runner.server_binary = f"{binary} ({build})"
        two = System("hatchet_sdk_2p", f"hatchet-sdk, {SDK_PROCESSES_2} worker processes → hatchet-server → pg_hatchet",
                     sdk.store, sdk.command, sdk.config, sdk.extensions, sdk.env)
        # (system, driver arguments, whether its latency runs too). The smoke size skips the Python SDK's and
        # Celery's latency (seconds of worker start-up each) but keeps the TypeScript SDK's, its only check.
        lat = size.get("server_latency", True)
        rows = [] if only_dag else [(sdk, extra, lat), (two, dict(extra, sdk_processes=SDK_PROCESSES_2), False),
                                    (celery, {}, lat)]
        if ts is not None:
            rows.append((ts, {}, lat or size.get("server_latency_ts", False)))
        for rep in range(1, runner.reps_of("server") + 1):
            for s, kw, with_latency in rows:
                name = "celery_server" if s is celery else s.name
                shown = System(name, s.label, s.store, s.command, s.config, s.extensions, s.env)
                runner.guarded("server", shown, rep, "drain", lambda: _drain(runner, s, size["drain_n"], kw, db))
                if with_latency:
                    runner.guarded("server", shown, rep, f"latency {rate}/s", lambda: _latency(runner, s, rate, kw))
            # The 3-task DAG through the server (no Celery counterpart: its canvas is not a registered workflow).
            shown = System("hatchet_sdk", sdk.label, sdk.store, sdk.command, sdk.config, sdk.extensions, sdk.env)
            runner.guarded("server", shown, rep, "dag drain",
                           lambda: _dag(runner, sdk, size["server_dag_n"], extra, db))
        out = [r for r in runner.runs if r["scenario"] == "server"]
        runner.runs[:] = [r for r in runner.runs if r["scenario"] != "server"]
        if ts_why:
            out.append(skipped_ts)
        return out
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def last_error_line(err: str) -> str:
    """The exception line of a Python traceback (or the last meaningful line of any error text)."""
    lines = [ln.strip() for ln in err.strip().splitlines() if len(ln.strip()) > 2]
    for ln in reversed(lines):
        if ":" in ln and not ln.startswith(("File ", "^", "at ")):  # Python traceback / Node stack frames
            return ln[:300]
    return lines[-1][:300] if lines else "?"


def _wait_health() -> bool:
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"http://{HTTP}/health", timeout=1) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


# COMPLETED events of one workflow's tasks (its queues are named `<workflow>:<task>`), from the database.
COMPLETED_OF = """
    SELECT count(*) FROM hatchet.tasks t
    JOIN hatchet.task_events e
      ON e.tenant_id = t.tenant_id AND e.task_inserted_at = t.inserted_at AND e.task_id = t.id
    WHERE t.queue LIKE %s AND e.event_type = 'COMPLETED'"""

# The single task each SDK driver registers and triggers.
TASK_OF = {"hatchet_sdk": "bench-noop", "hatchet_sdk_2p": "bench-noop", "hatchet_ts": "bench-ts-noop"}


def _completed(runner, db: str, workflow: str) -> int:
    with runner.cluster.connect(db) as c:
        return c.execute(COMPLETED_OF, (workflow.replace("_", r"\_") + ":%",)).fetchone()[0]


def _per_task(cpuw: dict | None, seconds: float, n: int) -> dict:
    """CPU ms per task of each class over a phase: cores used on average x the phase's length / tasks."""
    if not cpuw or n <= 0:
        return {}
    return {k[:-len("_cores")]: v * seconds * 1000 / n for k, v in cpuw.items() if k.endswith("_cores")}


def _drain(runner, s: System, n: int, kw: dict, db: str):
    if s.name == "celery":
        runner.driver(s, scenario="setup")
    through_server = s.name in TASK_OF
    before = _completed(runner, db, TASK_OF[s.name]) if through_server else 0
    enq = runner.driver(s, scenario="enqueue", n=n, **kw)
    if not enq.get("ok"):
        raise StepError(f"enqueue: {last_error_line(enq['error'])}")
    work = runner.driver(s, scenario="work", n=n, **kw)
    if not work.get("ok"):
        raise StepError(f"work: {last_error_line(work['error'])}")
    m = {"tasks_per_s": work["tasks_per_s"], "enqueue_per_s": enq["tasks_per_s"]}
    cpu_w = runner.sampler.window(work["t_start"], work["t_end"])
    if cpu_w:
        m.update({f"cpu_{k}": v for k, v in cpu_w.items() if k != "window_s"})
    if through_server:
        # Every task's completion in the database (waiting up to 30 s after the workers' graceful stop).
        done, deadline = 0, time.time() + 30
        while True:
            done = _completed(runner, db, TASK_OF[s.name]) - before
            if done >= n or time.time() > deadline:
                break
            time.sleep(0.2)
        if done != n:
            raise StepError(f"the database has {done} of {n} tasks COMPLETED after the drain")
        m["db_completed_tasks"] = done
        # Server and Postgres CPU per task: enqueue phase (the SDK's bulk triggers) + work phase (assignment,
        # completions); the SDK worker processes' own CPU in the work phase beside them.
        cpu_e = runner.sampler.window(enq["t_start"], enq["t_end"])
        pe = _per_task(cpu_e, enq["t_end"] - enq["t_start"], n)
        pw = _per_task(cpu_w, work["t_end"] - work["t_start"], n)
        if pe and pw:
            m.update({"enqueue_server_ms_per_task": pe["server"], "enqueue_postgres_ms_per_task": pe["postgres"],
                      "work_server_ms_per_task": pw["server"], "work_postgres_ms_per_task": pw["postgres"],
                      "work_worker_ms_per_task": pw["worker"],
                      "server_pg_ms_per_task": pe["server"] + pe["postgres"] + pw["server"] + pw["postgres"]})
    return "passed", m, {}


# Runs of the SDK's bench-dag all of whose three tasks completed, from the database.
DAG_RUNS_DONE = """
    SELECT count(*) FROM (
        SELECT t.run_id FROM hatchet.tasks t
        JOIN hatchet.task_events e
          ON e.tenant_id = t.tenant_id AND e.task_inserted_at = t.inserted_at AND e.task_id = t.id
        WHERE t.queue IN ('bench-dag:a', 'bench-dag:b', 'bench-dag:c') AND e.event_type = 'COMPLETED'
        GROUP BY t.run_id HAVING count(DISTINCT t.id) = 3) r"""


def _dag(runner, s: System, n: int, kw: dict, db: str):
    """n runs of the 3-task DAG triggered with run_many, then drained by one SDK worker; runs/s from the first
    task's start until every run's last task has started, and the finished runs counted in the database (waiting
    up to 30 s after the worker's graceful stop for the last completions to be written)."""
    enq = runner.driver(s, scenario="dag_enqueue", n=n, **kw)
    if not enq.get("ok"):
        raise StepError(f"dag_enqueue: {last_error_line(enq['error'])}")
    work = runner.driver(s, scenario="dag_work", n=n, **kw)
    if not work.get("ok"):
        raise StepError(f"dag_work: {last_error_line(work['error'])}")
    done = 0
    deadline = time.time() + 30
    with runner.cluster.connect(db) as c:
        while True:
            done = c.execute(DAG_RUNS_DONE).fetchone()[0]
            if done >= n or time.time() > deadline:
                break
            time.sleep(0.2)
    if done != n:
        raise StepError(f"the database has {done} of {n} DAG runs completed")
    m = {"runs_per_s": work["tasks_per_s"], "tasks_per_s": 3 * work["tasks_per_s"], "db_completed_runs": done,
         "enqueue_runs_per_s": enq["tasks_per_s"]}
    cpuw = runner.sampler.window(work["t_start"], work["t_end"])
    if cpuw:
        m.update({f"cpu_{k}": v for k, v in cpuw.items() if k != "window_s"})
    return "passed", m, {}


def _latency(runner, s: System, rate: int, kw: dict):
    if s.name == "celery":
        runner.driver(s, scenario="setup")
    out = runner.driver(s, scenario="latency", rate=rate, duration_s=runner.size["lat_s"],
                        warmup_s=runner.size["lat_warm"], tail_s=runner.size["tail_s"], **kw)
    if not out.get("ok"):
        raise StepError(out["error"])
    m = report.percentiles(out["latencies_ms"])
    m.update(offered_per_s=out["offered_per_s"], saturated=bool(out["started"] < out["sent"]))
    return "passed", m, {}
