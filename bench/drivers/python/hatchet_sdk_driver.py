"""Through-the-server driver: the official Python `hatchet-sdk` against `hatchet-server` over pg_hatchet.

The producer is this process (`run_many(wait_for_result=False)` in batches for the drain, `run_no_wait` per task
for latency); the worker is a separate process (`<spec> worker`) running `hatchet.worker(..., slots=concurrency)`
with a synchronous task whose body is task_body.record_start, the same as the Celery task's. With `sdk_processes`
= k > 1 (the drain's second row), k such worker processes run side by side with concurrency / k slots each, so the
total is still Celery's prefork concurrency. The SDK reads its
connection from the environment the orchestrator sets: HATCHET_CLIENT_TOKEN, HATCHET_CLIENT_HOST_PORT,
HATCHET_CLIENT_TLS_STRATEGY=none.

Scenarios: probe (one task end to end, used to decide whether the server is usable), enqueue, work, latency; and
the 3-task DAG (`bench-dag`: a; b after a; c after a and b) as dag_enqueue (`run_many` of the workflow in batches)
and dag_work (a worker with the DAG only, until every run's last task has started). In the DAG, a marks the
drain's first start and c runs the shared task body (task_body.record_start), so `bench:started` counts runs.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

import redis
from common import main, now_us, paced_send_threads, read_spec
from hatchet_sdk import Context, Hatchet
from pydantic import BaseModel
from task_body import record_start

HERE = os.path.abspath(__file__)

# The SDK logs every task at INFO (received, started, finished) from both of its worker processes; the Celery worker
# runs with `-l WARNING`, so this one does too. Module level, so it also holds in the SDK's action-listener process,
# which multiprocessing spawns by importing this module.
logging.getLogger("hatchet").setLevel(logging.WARNING)


class BenchInput(BaseModel):
    t: int = 0
    g: str | None = None
    rec: int = 0


def make(spec: dict):
    hatchet = Hatchet()
    stats = redis.Redis.from_url(spec["redis_stats_url"])
    fair_b = spec["fair_b"]

    @hatchet.task(name="bench-noop", input_validator=BenchInput)
    def noop(input: BenchInput, ctx: Context) -> None:
        record_start(stats, input.t, input.g, input.rec, fair_b)

    dag = hatchet.workflow(name="bench-dag", input_validator=BenchInput)

    @dag.task()
    def a(input: BenchInput, ctx: Context) -> None:
        stats.setnx("bench:first", now_us())

    @dag.task(parents=[a])
    def b(input: BenchInput, ctx: Context) -> None:
        return None

    @dag.task(parents=[a, b])
    def c(input: BenchInput, ctx: Context) -> None:
        record_start(stats, input.t, None, input.rec, fair_b)

    # The DAG scenarios trigger and work the DAG; the others the single task.
    runnable = dag if spec.get("scenario", "").startswith("dag") else noop
    return hatchet, runnable, stats


class Env:
    def __init__(self, spec: dict):
        self.spec = spec
        self.hatchet, self.runnable, self.stats = make(spec)
        self.procs: list[subprocess.Popen] = []

    def started(self) -> int:
        return int(self.stats.get("bench:started") or 0)

    def start_worker(self, warm: bool = True) -> None:
        k = max(1, int(self.spec.get("sdk_processes", 1)))
        if self.spec["concurrency"] % k:
            raise ValueError(f"concurrency {self.spec['concurrency']} does not split over {k} worker processes")
        spec = dict(self.spec, concurrency=self.spec["concurrency"] // k)
        # Each worker process in a session (process group) of its own: stopped as a whole, and counted as a worker
        # by the orchestrator's CPU sampler.
        self.procs = [subprocess.Popen([sys.executable, HERE, _json(spec), "worker"], stdout=subprocess.DEVNULL,
                                       start_new_session=True) for _ in range(k)]
        if warm:
            until_registered(lambda: self.runnable.run(BenchInput(t=now_us()), wait_for_result=False))
            self.wait(lambda: self.started() >= 1, 120, "the worker ran no task within 120 s")
            self.stats.flushdb()

    def stop_worker(self) -> None:
        # SIGTERM to each main process only: a warm shutdown that stops its own children; the whole process group
        # is killed only if that does not finish in time.
        for proc in self.procs:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # anything of the worker's process group still around
            except (ProcessLookupError, PermissionError):
                pass
        self.procs = []

    def wait(self, cond, timeout_s: float, what: str) -> None:
        deadline = time.time() + timeout_s
        while not cond():
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"hatchet-sdk worker exited with {proc.returncode}")
            if time.time() > deadline:
                raise RuntimeError(what)
            time.sleep(0.002)


def until_registered(call, timeout_s: float = 60):
    """Runs a trigger, retrying while the server does not know the workflow yet: the worker registers it when it
    starts, so the first trigger after a worker start (or on a fresh database) can race the registration."""
    deadline = time.time() + timeout_s
    while True:
        try:
            return call()
        except Exception as e:  # noqa: BLE001 - the SDK raises its own wrapper around the gRPC status
            if "NOT_FOUND" not in str(e) or time.time() > deadline:
                raise
            time.sleep(0.2)


def _json(spec: dict) -> str:
    import json

    return json.dumps(spec)


def probe(env: Env):
    env.stats.flushdb()
    env.start_worker(warm=False)
    try:
        t0 = now_us()
        until_registered(lambda: env.runnable.run(BenchInput(t=t0), wait_for_result=False))
        env.wait(lambda: env.started() >= 1, env.spec.get("probe_timeout_s", 60), "no task ran through the server")
    finally:
        env.stop_worker()
    return {"seconds": (now_us() - t0) / 1e6}


def dag_enqueue(env: Env):
    # Nothing has registered the DAG yet on a fresh database (a worker does that when it starts, and none runs
    # during the enqueue): register it the way the worker does, so the triggers find it.
    env.hatchet._client.admin.put_workflow(env.runnable.to_proto())
    return enqueue(env)


def enqueue(env: Env):
    env.stats.flushdb()
    t0 = now_us()
    done = 0
    while done < env.spec["n"]:
        k = min(env.spec["enqueue_batch"], env.spec["n"] - done)
        t = now_us()
        items = [env.runnable.create_bulk_run_item(input=BenchInput(t=t)) for _ in range(k)]
        until_registered(lambda: env.runnable.run_many(items, wait_for_result=False))
        done += k
    s = (now_us() - t0) / 1e6
    return {"n": done, "seconds": s, "tasks_per_s": done / s, "t_start": t0 / 1e6, "t_end": t0 / 1e6 + s}


def work(env: Env):
    n = env.spec["n"]
    env.stats.flushdb()
    env.start_worker(warm=False)
    try:
        env.wait(lambda: env.started() >= n, env.spec["timeout_s"], f"not all {n} tasks ran")
        t1 = now_us()
    finally:
        env.stop_worker()
    t0 = int(env.stats.get("bench:first"))
    s = (t1 - t0) / 1e6
    return {"n": n, "seconds": s, "tasks_per_s": n / s, "t_start": t0 / 1e6, "t_end": t1 / 1e6}


def latency(env: Env):
    env.stats.flushdb()
    env.start_worker()
    try:
        record_after = now_us() + 50_000 + int(env.spec["warmup_s"] * 1e6)

        def make_sender():
            def send(t):
                env.runnable.run(BenchInput(t=t, rec=1 if t >= record_after else 0), wait_for_result=False)

            return send

        r = paced_send_threads(env.spec, make_sender)
        tail_end = time.time() + env.spec["tail_s"]
        while env.started() < r["sent"] and time.time() < tail_end:
            time.sleep(0.005)
        started = env.started()
    finally:
        env.stop_worker()
    lat = [float(x) for x in env.stats.lrange("bench:lat", 0, -1)]
    return {"sent": r["sent"], "started": started, "offered_per_s": r["sent"] / r["seconds"],
            "producer_max_lag_ms": r["max_lag_ms"], "latencies_ms": lat}


def worker_main(spec: dict) -> None:
    hatchet, runnable, _ = make(spec)
    w = hatchet.worker("bench-worker", slots=spec["concurrency"], workflows=[runnable])
    w.start()


def run(fn, spec):
    env = Env(spec)
    try:
        return fn(env)
    finally:
        env.stop_worker()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[2] == "worker":
        worker_main(read_spec())
    else:
        main({"probe": probe, "enqueue": enqueue, "work": work, "latency": latency, "dag_enqueue": dag_enqueue,
              "dag_work": work}, run)
