"""Celery + Redis driver: the producer is this process (`apply_async` over a held broker connection); the worker
is a real `celery worker` process tree started per scenario (see celery_app.py for its configuration).

Celery has no batch enqueue, so "batches" are plain loops of `apply_async`. Drain time runs from the first task's
start to the last one's (worker start-up, a second or two for the prefork pool, is not counted).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import celery
import redis
from common import main, now_us, paced_send_threads

HERE = os.path.dirname(os.path.abspath(__file__))


class Env:
    def __init__(self, spec: dict):
        self.spec = spec
        os.environ["BENCH_REDIS_URL"] = spec["redis_url"]
        os.environ["BENCH_REDIS_STATS_URL"] = spec["redis_stats_url"]
        os.environ["BENCH_FAIR_B"] = str(spec["fair_b"])
        os.environ["BENCH_QUEUE"] = spec["queue"]
        import celery_app  # after the environment is set

        self.mod = celery_app
        self.app = celery_app.app
        self.stats = redis.Redis.from_url(spec["redis_stats_url"])
        self.proc = None

    def started(self) -> int:
        return int(self.stats.get("bench:started") or 0)

    def reset_stats(self) -> None:
        self.stats.flushdb()

    def start_worker(self, warm: bool = True) -> None:
        cmd = [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "-Q", self.spec["queue"],
               "-c", str(self.spec["concurrency"]), "-P", "prefork", "--prefetch-multiplier",
               str(self.spec.get("celery_prefetch", 64)), "--without-gossip", "--without-mingle",
               "--without-heartbeat", "-l", "WARNING", "-n", f"bench{os.getpid()}@%h"]
        self.proc = subprocess.Popen(cmd, cwd=HERE, env=os.environ.copy(), stdout=subprocess.DEVNULL,
                                     start_new_session=True)
        if warm:
            # One task through the whole path, so the clock starts with a ready pool.
            self.mod.noop.apply_async(kwargs={"t": now_us()})
            self.wait(lambda: self.started() >= 1, 60, "worker did not start")
            self.reset_stats()

    def stop_worker(self) -> None:
        if self.proc is None:
            return
        try:
            # SIGTERM to the main process only: a warm shutdown that stops its own children; the whole process
            # group is killed only if that does not finish in time.
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything of the worker's process group still around
        except (ProcessLookupError, PermissionError):
            pass
        self.proc = None

    def wait(self, cond, timeout_s: float, what: str) -> None:
        deadline = time.time() + timeout_s
        while not cond():
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited with {self.proc.returncode}")
            if time.time() > deadline:
                raise RuntimeError(f"{what} (after {timeout_s} s)")
            time.sleep(0.002)

    def send_many(self, n: int, group: str | None = None) -> int:
        with self.app.producer_or_acquire() as producer:
            for _ in range(n):
                kw = {"t": now_us()}
                if group:
                    kw["g"] = group
                self.mod.noop.apply_async(kwargs=kw, producer=producer)
        return n


def setup(env: Env):
    redis.Redis.from_url(env.spec["redis_url"]).flushdb()
    env.reset_stats()
    return {"version": celery.__version__, "redis": redis.Redis.from_url(env.spec["redis_url"]).info()["redis_version"]}


def enqueue(env: Env):
    t0 = now_us()
    n = env.send_many(env.spec["n"])
    s = (now_us() - t0) / 1e6
    return {"n": n, "seconds": s, "tasks_per_s": n / s, "t_start": t0 / 1e6, "t_end": t0 / 1e6 + s}


def work(env: Env):
    n = env.spec["n"]
    env.reset_stats()
    env.start_worker(warm=False)
    try:
        env.wait(lambda: env.started() >= n, env.spec["timeout_s"], f"not all {n} tasks ran")
        t1 = now_us()
    finally:
        env.stop_worker()
    t0 = int(env.stats.get("bench:first"))
    s = (t1 - t0) / 1e6
    return {"n": n, "seconds": s, "tasks_per_s": n / s, "t_start": t0 / 1e6, "t_end": t1 / 1e6}


def steady(env: Env):
    env.start_worker()
    try:
        import threading

        state = {"enq": 0, "stop": False, "err": None}

        def producer():
            try:
                while not state["stop"]:
                    if state["enq"] - env.started() >= env.spec["backlog_cap"]:
                        time.sleep(0.001)
                        continue
                    state["enq"] += env.send_many(env.spec["batch"])
            except Exception as e:  # noqa: BLE001
                state["err"] = e

        th = threading.Thread(target=producer)
        th.start()
        time.sleep(env.spec["warmup_s"])
        c0, e0, t0 = env.started(), state["enq"], now_us()
        time.sleep(env.spec["duration_s"])
        c1, e1, t1 = env.started(), state["enq"], now_us()
        state["stop"] = True
        th.join()
        if state["err"]:
            raise state["err"]
    finally:
        env.stop_worker()
    s = (t1 - t0) / 1e6
    return {"seconds": s, "completed": c1 - c0, "tasks_per_s": (c1 - c0) / s, "enqueued_per_s": (e1 - e0) / s,
            "t_start": t0 / 1e6, "t_end": t1 / 1e6}


def latency(env: Env):
    env.start_worker()
    try:
        record_after = now_us() + 50_000 + int(env.spec["warmup_s"] * 1e6)

        def make_sender():
            producer = env.app.producer_pool.acquire(block=True)

            def send(t):
                env.mod.noop.apply_async(kwargs={"t": t, "rec": 1 if t >= record_after else 0}, producer=producer)

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


def backlog(env: Env):
    return {"available": False, "reason": "Celery's claim is a Redis list pop by the broker client, not a database claim"}


def fairness(env: Env):
    # A's backlog, then B's tasks, then the worker starts: the clock runs from the first task's start.
    env.reset_stats()
    env.send_many(env.spec["fair_a"], "A")
    env.send_many(env.spec["fair_b"], "B")
    env.start_worker(warm=False)
    try:
        env.wait(lambda: env.stats.get("bench:b_done") is not None, env.spec["timeout_s"], "B's tasks did not all start")
    finally:
        env.stop_worker()
    first = int(env.stats.get("bench:first"))
    return {"available": True, "keyed": False, "seconds": (int(env.stats.get("bench:b_done")) - first) / 1e6,
            "a_started_before_b_done": int(env.stats.get("bench:a_before") or 0)}


def run(fn, spec):
    env = Env(spec)
    try:
        return fn(env)
    finally:
        env.stop_worker()


if __name__ == "__main__":
    main({"setup": setup, "enqueue": enqueue, "work": work, "steady": steady, "latency": latency,
          "backlog": backlog, "fairness": fairness}, run)
