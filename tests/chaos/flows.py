"""The chaos suite's workflows. Every task body appends two ledger records (start and end) outside the engine.

Imported by worker.py (which serves them) and load.py (which triggers them). The ledger is one JSON-lines file per
worker process incarnation, CHAOS_LEDGER_DIR/<worker>.<pid>.jsonl, written with O_APPEND and fsync'd after each
record, so a kill -9 loses at most a record being written, never an earlier one.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import timedelta

from hatchet_sdk import (
    ConcurrencyExpression,
    ConcurrencyLimitStrategy,
    Context,
    DurableContext,
    Hatchet,
    RateLimit,
    SleepCondition,
    UserEventCondition,
    or_,
)
from pydantic import BaseModel

from flows_constants import DURABLE_EVENT_KEY, RATE_LIMIT_KEY, RR_MAX_RUNS, TS_TASK

hatchet = Hatchet()

WORKER = os.environ.get("CHAOS_WORKER_NAME", "loader")
TENANT = os.environ.get("CHAOS_TENANT", "?")
LEDGER_DIR = os.environ.get("CHAOS_LEDGER_DIR", "")
# Tasks are short; a lost attempt must come back long before the run is over.
TIMEOUT = timedelta(seconds=int(os.environ.get("CHAOS_EXECUTION_TIMEOUT_S", "30")))

_fd: int | None = None


def _ledger(record: dict) -> None:
    global _fd
    if not LEDGER_DIR:
        return
    if _fd is None:
        path = os.path.join(LEDGER_DIR, f"{WORKER}.{os.getpid()}.jsonl")
        _fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(_fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())
    os.fsync(_fd)


class Ledgered:
    """Writes the start record on entry and the end record (ok or error) on exit."""

    def __init__(self, ctx: Context, task: str, key: str) -> None:
        self.base = {
            "tenant": TENANT,
            "task": task,
            "key": key,
            "run_id": ctx.workflow_run_id,
            "task_id": ctx.task_run_id,
            "retry": ctx.retry_count,
            "worker": WORKER,
            "pid": os.getpid(),
        }

    def __enter__(self) -> "Ledgered":
        _ledger({**self.base, "ph": "start", "t": time.time()})
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        _ledger({**self.base, "ph": "end", "t": time.time(), "ok": exc_type is None})


class Work(BaseModel):
    key: str
    ms: int = 100
    # the first `fail` attempts raise (retries cover up to 2)
    fail: int = 0
    group: str = ""
    children: int = 0


def _body(ctx: Context, task: str, input: Work) -> dict:
    with Ledgered(ctx, task, input.key):
        time.sleep(input.ms / 1000)
        if ctx.retry_count < input.fail:
            raise RuntimeError(f"{input.key}: attempt {ctx.retry_count} fails on purpose")
    return {"key": input.key, "retry": ctx.retry_count, "worker": WORKER}


@hatchet.task(name="chaos-single", input_validator=Work, retries=2, backoff_factor=1.5, backoff_max_seconds=2,
              execution_timeout=TIMEOUT)
def single(input: Work, ctx: Context) -> dict:
    return _body(ctx, "chaos-single", input)


diamond = hatchet.workflow(name="chaos-diamond", input_validator=Work)


@diamond.task(execution_timeout=TIMEOUT, retries=1)
def d_start(input: Work, ctx: Context) -> dict:
    return _body(ctx, "d_start", input)


@diamond.task(parents=[d_start], execution_timeout=TIMEOUT, retries=1)
def d_left(input: Work, ctx: Context) -> dict:
    return _body(ctx, "d_left", input)


@diamond.task(parents=[d_start], execution_timeout=TIMEOUT, retries=1)
def d_right(input: Work, ctx: Context) -> dict:
    return _body(ctx, "d_right", input)


@diamond.task(parents=[d_left, d_right], execution_timeout=TIMEOUT, retries=1)
def d_join(input: Work, ctx: Context) -> dict:
    return _body(ctx, "d_join", input)


@hatchet.task(
    name="chaos-rr",
    input_validator=Work,
    retries=1,
    execution_timeout=TIMEOUT,
    concurrency=ConcurrencyExpression(
        expression="input.group", max_runs=RR_MAX_RUNS, limit_strategy=ConcurrencyLimitStrategy.GROUP_ROUND_ROBIN
    ),
)
async def round_robin(input: Work, ctx: Context) -> dict:
    with Ledgered(ctx, "chaos-rr", input.key):
        await asyncio.sleep(input.ms / 1000)
    return {"key": input.key}


@hatchet.task(name="chaos-rate", input_validator=Work, retries=1, execution_timeout=TIMEOUT,
              rate_limits=[RateLimit(static_key=RATE_LIMIT_KEY, units=1)])
def rate_limited(input: Work, ctx: Context) -> dict:
    return _body(ctx, "chaos-rate", input)


@hatchet.task(name="chaos-child", input_validator=Work, retries=1, execution_timeout=TIMEOUT)
def child(input: Work, ctx: Context) -> dict:
    return _body(ctx, "chaos-child", input)


@hatchet.task(name="chaos-parent", input_validator=Work, retries=1, execution_timeout=timedelta(seconds=90))
async def parent(input: Work, ctx: Context) -> dict:
    with Ledgered(ctx, "chaos-parent", input.key):
        results = await child.aio_run_many(
            [child.create_bulk_run_item(Work(key=f"{input.key}/c{i}", ms=input.ms), child_key=f"c{i}")
             for i in range(input.children)]
        )
    return {"key": input.key, "children": len(results)}


class Tick(BaseModel):
    key: str = "cron"


@hatchet.task(name="chaos-cron", on_crons=["* * * * * *"], input_validator=Tick, cron_input=Tick(),
              execution_timeout=TIMEOUT)
def cron(input: Tick, ctx: Context) -> dict:
    with Ledgered(ctx, "chaos-cron", ctx.workflow_run_id):
        pass
    return {}


@hatchet.task(name="chaos-event", on_events=["chaos:event"], input_validator=Work, retries=1,
              execution_timeout=TIMEOUT)
def on_event(input: Work, ctx: Context) -> dict:
    return _body(ctx, "chaos-event", input)


@hatchet.durable_task(name="chaos-durable", input_validator=Work, retries=1, execution_timeout=TIMEOUT)
async def durable(input: Work, ctx: DurableContext) -> dict:
    """A durable sleep, then a durable wait for the load generator's event for this key (or 8 s, so that a signal
    pushed before the wait was registered, or lost with its trigger, cannot leave the run waiting forever)."""
    with Ledgered(ctx, "chaos-durable", input.key):
        # Whole seconds: the SDK writes a duration in whole units, less than a second would be "0h".
        await ctx.aio_sleep_for(timedelta(seconds=1 + input.ms // 400))
        got = await ctx.aio_wait_for(
            "signal",
            or_(
                SleepCondition(timedelta(seconds=8)),
                UserEventCondition(event_key=DURABLE_EVENT_KEY, expression=f"input.key == '{input.key}'"),
            ),
        )
    return {"key": input.key, "woken_by": sorted(next(iter(got.values())).keys())}


# Served by the TypeScript worker (ts_worker.js); Python only triggers it.
ts_task = hatchet.stubs.task(name=TS_TASK, input_validator=Work)

WORKFLOWS = [single, diamond, round_robin, rate_limited, child, parent, on_event, durable]
# Only tenant A's workers declare the every-second cron.
CRON_WORKFLOWS = [cron]
