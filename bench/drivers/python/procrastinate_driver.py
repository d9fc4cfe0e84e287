"""Procrastinate driver: one asyncio process runs a Procrastinate worker (`concurrency` async jobs at once) and,
for the mixed scenarios, the producer.

Configuration, from Procrastinate's docs (`App.run_worker_async` docstring, howto/production/concurrency):
an async task with `concurrency` > 1 (the documented way to run many I/O-bound jobs in one worker);
`listen_notify=True` (default: new jobs wake the worker through LISTEN/NOTIFY, polling is the fallback); a
connection pool of `2 * concurrency + 2` (docs/discussions, "Mind the size of your PostgreSQL pool", asks for at
least `concurrency + 1`, which ran out of connections in the 20,000-job drain);
`delete_jobs="never"` (default: finished jobs stay as history, like pg_hatchet's). Batch enqueue uses
`Task.batch_defer_async`. Procrastinate fetches one job per query; it has no batch fetch.
"""

from __future__ import annotations

import asyncio
import procrastinate
from common import main, now_us, producer_count

STATE = {"started": 0, "first_us": 0, "lat": [], "record_after": 1 << 62, "a": 0, "b": 0, "b_done_us": 0, "a_before": 0}


def make_app(spec: dict):
    # docs/discussions "Mind the size of your PostgreSQL pool" asks for at least concurrency + 1 connections (the
    # LISTEN connection comes on top). With exactly that, the 20,000-job drain stopped with "couldn't get a
    # connection after 30.00 sec" (the worker's own bookkeeping queries compete with the jobs' status updates),
    # so it gets twice the concurrency plus two: more than it asks for, never fewer.
    pool = 2 * spec["concurrency"] + 2
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=spec["conn"], min_size=pool, max_size=pool))
    fair_b = spec["fair_b"]

    async def noop(t: int = 0, g: str | None = None) -> None:
        now = now_us()
        if not STATE["first_us"]:
            STATE["first_us"] = now
        STATE["started"] += 1
        if t >= STATE["record_after"]:
            STATE["lat"].append((now - t) / 1000)
        if g == "B":
            STATE["b"] += 1
            if STATE["b"] == fair_b:
                STATE["b_done_us"], STATE["a_before"] = now, STATE["a"]
        elif g == "A":
            STATE["a"] += 1

    task = app.task(name="noop", queue=spec["queue"])(noop)
    return app, task


def worker_kwargs(spec: dict, wait: bool) -> dict:
    return {
        "queues": [spec["queue"]], "concurrency": spec["concurrency"], "wait": wait,
        "listen_notify": True, "install_signal_handlers": False, "delete_jobs": "never",
    }


async def defer_batches(task, n: int, batch: int, group: str | None = None) -> int:
    done = 0
    while done < n:
        k = min(batch, n - done)
        t = now_us()
        kw = {"t": t, "g": group} if group else {"t": t}
        await task.batch_defer_async(*([kw] * k))
        done += k
    return done


async def count_succeeded(app) -> int:
    row = await app.connector.execute_query_one_async(
        "SELECT count(*) AS n FROM procrastinate_jobs WHERE status = 'succeeded'"
    )
    return int(row["n"])


async def setup(spec, app, task):
    await app.schema_manager.apply_schema_async()
    return {"version": procrastinate.__version__ if hasattr(procrastinate, "__version__") else None}


async def enqueue(spec, app, task):
    t0 = now_us()
    n = await defer_batches(task, spec["n"], spec["enqueue_batch"])
    s = (now_us() - t0) / 1e6
    return {"n": n, "seconds": s, "tasks_per_s": n / s, "t_start": t0 / 1e6, "t_end": t0 / 1e6 + s}


async def work(spec, app, task):
    t0 = now_us()
    # wait=False: the worker stops once it has caught up with the queue (after finishing its running jobs).
    await asyncio.wait_for(app.run_worker_async(**worker_kwargs(spec, wait=False)), spec["timeout_s"])
    t1 = now_us()
    done = await count_succeeded(app)
    if done != spec["n"]:
        raise RuntimeError(f"{done} of {spec['n']} jobs succeeded")
    s = (t1 - t0) / 1e6
    return {"n": done, "seconds": s, "tasks_per_s": done / s, "t_start": t0 / 1e6, "t_end": t1 / 1e6}


async def stop_worker(w: asyncio.Task) -> None:
    w.cancel()
    try:
        await w
    except asyncio.CancelledError:
        pass


async def steady(spec, app, task):
    w = asyncio.create_task(app.run_worker_async(**worker_kwargs(spec, wait=True)))
    enq = {"n": 0, "stop": False}

    async def producer():
        while not enq["stop"]:
            if enq["n"] - STATE["started"] >= spec["backlog_cap"]:
                await asyncio.sleep(0.001)
                continue
            enq["n"] += await defer_batches(task, spec["batch"], spec["batch"])

    p = asyncio.create_task(producer())
    await asyncio.sleep(spec["warmup_s"])
    c0, e0, t0 = STATE["started"], enq["n"], now_us()
    await asyncio.sleep(spec["duration_s"])
    c1, e1, t1 = STATE["started"], enq["n"], now_us()
    enq["stop"] = True
    await p
    await stop_worker(w)
    s = (t1 - t0) / 1e6
    return {"seconds": s, "completed": c1 - c0, "tasks_per_s": (c1 - c0) / s, "enqueued_per_s": (e1 - e0) / s,
            "t_start": t0 / 1e6, "t_end": t1 / 1e6}


async def paced(spec, send) -> dict:
    total = round(spec["rate"] * spec["duration_s"])
    producers = producer_count(spec["rate"])
    t0 = now_us() + 50_000
    sent, lag = [0], [0]

    async def loop(p):
        for i in range(p, total, producers):
            due = t0 + int(i * 1e6 / spec["rate"])
            left = due - now_us()
            if left > 0:
                await asyncio.sleep(left / 1e6)
            t = now_us()
            lag[0] = max(lag[0], t - due)
            await send(t)
            sent[0] += 1

    await asyncio.gather(*(loop(p) for p in range(producers)))
    return {"sent": sent[0], "seconds": (now_us() - t0) / 1e6, "max_lag_ms": lag[0] / 1000}


async def latency(spec, app, task):
    w = asyncio.create_task(app.run_worker_async(**worker_kwargs(spec, wait=True)))
    await asyncio.sleep(0.5)
    STATE["record_after"] = now_us() + 50_000 + int(spec["warmup_s"] * 1e6)
    r = await paced(spec, lambda t: task.defer_async(t=t))
    tail_end = now_us() + int(spec["tail_s"] * 1e6)
    while STATE["started"] < r["sent"] and now_us() < tail_end:
        await asyncio.sleep(0.005)
    await stop_worker(w)
    return {"sent": r["sent"], "started": STATE["started"], "offered_per_s": r["sent"] / r["seconds"],
            "producer_max_lag_ms": r["max_lag_ms"], "latencies_ms": STATE["lat"]}


async def backlog(spec, app, task):
    tf = now_us()
    await defer_batches(task, spec["n"], max(spec["enqueue_batch"], 1000))
    fill = (now_us() - tf) / 1e6
    await app.connector.execute_query_async("ANALYZE")
    jm = app.job_manager
    worker_id = await jm.register_worker()
    lat = []
    for _ in range(spec["samples"]):
        t0 = now_us()
        job = await jm.fetch_job(queues=[spec["queue"]], worker_id=worker_id)
        ms = (now_us() - t0) / 1000
        if job is None:
            raise RuntimeError(f"fetch_job returned nothing with {spec['n']} queued")
        lat.append(ms)
        await jm.finish_job(job, status=procrastinate.jobs.Status.SUCCEEDED, delete_job=False)
    return {"n": spec["n"], "keys": 0, "fill_s": fill, "latencies_ms": lat,
            "note": "JobManager.fetch_job, the call Procrastinate's worker claims with"}


async def fairness(spec, app, task):
    # A's backlog, then B's jobs, then the worker starts: the clock runs from the first job's start.
    await defer_batches(task, spec["fair_a"], spec["enqueue_batch"], "A")
    await defer_batches(task, spec["fair_b"], spec["enqueue_batch"], "B")
    w = asyncio.create_task(app.run_worker_async(**worker_kwargs(spec, wait=True)))
    deadline = now_us() + int(spec["timeout_s"] * 1e6)
    while STATE["b"] < spec["fair_b"]:
        if now_us() > deadline or w.done():
            raise RuntimeError("B's jobs had not all started before the timeout")
        await asyncio.sleep(0.001)
    await stop_worker(w)
    return {"available": True, "keyed": False, "seconds": (STATE["b_done_us"] - STATE["first_us"]) / 1e6,
            "a_started_before_b_done": STATE["a_before"]}


def run(fn, spec):
    async def go():
        app, task = make_app(spec)
        async with app.open_async():
            return await fn(spec, app, task)

    return asyncio.run(go())


if __name__ == "__main__":
    main({"setup": setup, "enqueue": enqueue, "work": work, "steady": steady, "latency": latency,
          "backlog": backlog, "fairness": fairness}, run)
