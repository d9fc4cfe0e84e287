"""The Celery application used by the benchmark: one no-op task that records when it started.

Configuration, from Celery's "Optimizing" guide and configuration reference: `worker_prefetch_multiplier` 64 ("if
you have lots of short tasks ... you want this number to be large, say 64 or 128"), results ignored
(`task_ignore_result`, no result backend: nothing reads them), early acknowledgement (the default), and the
default prefork pool with `--concurrency` set to the benchmark's concurrency. The worker is started with
`--without-gossip --without-mingle --without-heartbeat`: a single worker has no peers to talk to.

Bookkeeping (task_body.record_start) goes to a separate Redis database (the broker uses database 0): one pipelined
round trip per task, so the driver, a separate process, can see progress and latencies.
"""

from __future__ import annotations

import os

import redis
from celery import Celery
from task_body import record_start

BROKER_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6399/0")
STATS_URL = os.environ.get("BENCH_REDIS_STATS_URL", "redis://127.0.0.1:6399/1")
FAIR_B = int(os.environ.get("BENCH_FAIR_B", "50"))

app = Celery("bench", broker=BROKER_URL)
app.conf.update(
    task_ignore_result=True,
    worker_prefetch_multiplier=int(os.environ.get("BENCH_CELERY_PREFETCH", "64")),
    task_default_queue=os.environ.get("BENCH_QUEUE", "bench"),
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

_stats = None


def stats() -> redis.Redis:
    global _stats
    if _stats is None:
        _stats = redis.Redis.from_url(STATS_URL)
    return _stats


@app.task(name="noop")
def noop(t: int = 0, g: str | None = None, rec: int = 0) -> None:
    record_start(stats(), t, g, rec, FAIR_B)
