"""Our own workflows for the end-to-end tests, written the way a Hatchet user writes them.

Imported both by the worker processes (worker.py) and by the tests, which trigger them through the SDK client.
Names are prefixed `e2e-` / `E2E` so they never collide with anything else registered in a database.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta
from pathlib import Path

from hatchet_sdk import (
    ConcurrencyExpression,
    ConcurrencyLimitStrategy,
    Context,
    DesiredWorkerLabel,
    EmptyModel,
    Hatchet,
    NonRetryableException,
    RateLimit,
    RetryAfterException,
    WorkerLabelComparator,
)
from pydantic import BaseModel

hatchet = Hatchet()

WORKER_NAME = os.environ.get("E2E_WORKER_NAME", "e2e-main")

# ------------------------------------------------------------------------------------------------------------------
# Tier 0: simple tasks, Pydantic models, a diamond DAG, logs
# ------------------------------------------------------------------------------------------------------------------


@hatchet.task(name="e2e-simple")
def simple(input: EmptyModel, ctx: Context) -> dict[str, str]:
    return {"result": "Hello, world!"}


# Runs on the worker's durable slots, and opens the DurableTask stream (engine v0.80.0) when it runs; it never waits,
# so it is never evicted (no eviction policy). The durable features themselves are tested in test_durable.py.
@hatchet.durable_task(name="e2e-simple-durable", eviction_policy=None)
async def simple_durable(input: EmptyModel, ctx: Context) -> dict[str, str]:
    return {"result": "Hello, durable world!"}


class Numbers(BaseModel):
    a: int
    b: int


class Total(BaseModel):
    total: int
    retry_count: int


@hatchet.task(name="e2e-pydantic", input_validator=Numbers)
def add(input: Numbers, ctx: Context) -> Total:
    return Total(total=input.a + input.b, retry_count=ctx.retry_count)


class DiamondInput(BaseModel):
    x: int


diamond = hatchet.workflow(name="E2EDiamond", input_validator=DiamondInput)


@diamond.task()
def start(input: DiamondInput, ctx: Context) -> dict[str, float]:
    return {"x": input.x, "at": time.time()}


@diamond.task(parents=[start])
def left(input: DiamondInput, ctx: Context) -> dict[str, float]:
    return {"v": ctx.task_output(start)["x"] * 2, "at": time.time()}


@diamond.task(parents=[start])
def right(input: DiamondInput, ctx: Context) -> dict[str, float]:
    return {"v": ctx.task_output(start)["x"] + 10, "at": time.time()}


@diamond.task(parents=[left, right])
def join(input: DiamondInput, ctx: Context) -> dict[str, float]:
    return {
        "sum": ctx.task_output(left)["v"] + ctx.task_output(right)["v"],
        "at": time.time(),
        "input_x": input.x,
    }


@hatchet.task(name="e2e-logger")
def logger_task(input: EmptyModel, ctx: Context) -> dict[str, int]:
    for i in range(3):
        ctx.log(f"e2e log line {i}")
    return {"logged": 3}


# ------------------------------------------------------------------------------------------------------------------
# Tier 1: retries, non-retryable errors, timeouts, cancellation, failure groups, on_failure
# ------------------------------------------------------------------------------------------------------------------


@hatchet.task(name="e2e-retries", retries=3, backoff_factor=1.5, backoff_max_seconds=1)
def flaky(input: EmptyModel, ctx: Context) -> dict[str, int]:
    if ctx.retry_count < 2:
        raise ValueError(f"attempt {ctx.retry_count} fails on purpose")
    return {"attempt": ctx.retry_count}


@hatchet.task(name="e2e-non-retryable", retries=3)
def non_retryable(input: EmptyModel, ctx: Context) -> dict[str, str]:
    raise NonRetryableException(f"attempt {ctx.retry_count}: do not retry this")


# Backoff 10^n s would make each retry wait 10 s or more; the task asks for 1.5 s instead (RetryAfterException).
@hatchet.task(name="e2e-retry-after", retries=2, backoff_factor=10, backoff_max_seconds=60)
def retry_after(input: EmptyModel, ctx: Context) -> dict[str, int]:
    if ctx.retry_count < 2:
        raise RetryAfterException(f"attempt {ctx.retry_count}: busy, come back later",
                                  after=timedelta(seconds=1.5))
    return {"attempt": ctx.retry_count}


# Asks for a retry in an hour (no backoff configured): the engine's record of the scheduled retry shows the delay
# it was given, without a test waiting for it.
@hatchet.task(name="e2e-retry-after-hour", retries=1)
def retry_after_hour(input: EmptyModel, ctx: Context) -> dict[str, int]:
    raise RetryAfterException(f"attempt {ctx.retry_count}: come back in an hour", after=timedelta(hours=1))


# Always asks for a retry: the retries run out (retry-after counts against them) and the run fails.
@hatchet.task(name="e2e-retry-after-exhausted", retries=1)
def retry_after_exhausted(input: EmptyModel, ctx: Context) -> dict[str, int]:
    raise RetryAfterException(f"attempt {ctx.retry_count}: still busy", after=timedelta(seconds=1))


@hatchet.task(name="e2e-nul-output")
def nul_output(input: EmptyModel, ctx: Context) -> dict[str, str]:
    # Valid JSON, but Postgres's jsonb cannot hold a \u0000: the engine must fail the attempt, not loop.
    return {"text": "before\u0000after"}


@hatchet.task(name="e2e-timeout", execution_timeout=timedelta(seconds=2))
async def too_slow(input: EmptyModel, ctx: Context) -> dict[str, bool]:
    await asyncio.sleep(20)
    return {"finished": True}


@hatchet.task(name="e2e-refresh-timeout", execution_timeout=timedelta(seconds=2))
async def refreshes(input: EmptyModel, ctx: Context) -> dict[str, bool]:
    await asyncio.sleep(1)
    await ctx.aio_refresh_timeout(timedelta(seconds=5))
    await asyncio.sleep(2.5)
    return {"refreshed": True}


class MarkerInput(BaseModel):
    marker: str


@hatchet.task(name="e2e-cancellable", input_validator=MarkerInput)
async def cancellable(input: MarkerInput, ctx: Context) -> dict[str, bool]:
    Path(input.marker + ".started").write_text("started")
    try:
        for _ in range(600):
            if ctx.exit_flag:
                Path(input.marker + ".cancelled").write_text("exit_flag")
                return {"cancelled": True}
            await asyncio.sleep(0.05)
    except asyncio.CancelledError:
        Path(input.marker + ".cancelled").write_text("CancelledError")
        raise
    return {"cancelled": False}


two_failures = hatchet.workflow(name="E2ETwoFailures")


@two_failures.task()
def breaks_a(input: EmptyModel, ctx: Context) -> dict[str, str]:
    raise ValueError("a broke")


@two_failures.task()
def breaks_b(input: EmptyModel, ctx: Context) -> dict[str, str]:
    raise KeyError("b broke")


@two_failures.task()
def fine_c(input: EmptyModel, ctx: Context) -> dict[str, str]:
    return {"ok": "yes"}


with_on_failure = hatchet.workflow(name="E2EOnFailure")


@with_on_failure.task()
def explode(input: EmptyModel, ctx: Context) -> dict[str, str]:
    raise RuntimeError("exploded on purpose")


@with_on_failure.task(parents=[explode])
def never_runs(input: EmptyModel, ctx: Context) -> dict[str, str]:
    return {"ran": "yes"}


@with_on_failure.on_failure_task()
def clean_up(input: EmptyModel, ctx: Context) -> dict[str, str]:
    errors = ctx.task_run_errors
    return {"handled": ",".join(sorted(errors)), "error": next(iter(errors.values()), "")[:200]}


# ------------------------------------------------------------------------------------------------------------------
# Tier 2: child runs, crons, schedules, events, priority, concurrency, rate limits, worker labels
# ------------------------------------------------------------------------------------------------------------------


class ChildInput(BaseModel):
    n: int


@hatchet.task(name="e2e-child", input_validator=ChildInput)
def child(input: ChildInput, ctx: Context) -> dict[str, int]:
    return {"square": input.n * input.n}


class ParentInput(BaseModel):
    count: int


@hatchet.task(name="e2e-parent", input_validator=ParentInput, execution_timeout=timedelta(seconds=30))
async def parent(input: ParentInput, ctx: Context) -> dict[str, int]:
    results = await child.aio_run_many(
        [child.create_bulk_run_item(ChildInput(n=i)) for i in range(input.count)]
    )
    one_more = await child.aio_run(ChildInput(n=10))
    return {"sum": sum(r["square"] for r in results), "extra": one_more["square"]}


class Echo(BaseModel):
    tag: str = ""


@hatchet.task(name="e2e-echo", input_validator=Echo)
def echo(input: Echo, ctx: Context) -> dict[str, str | float]:
    return {"tag": input.tag, "at": time.time(), "triggered_by": ctx.data.triggered_by or ""}


@hatchet.task(name="e2e-declared-cron", on_crons=["*/2 * * * * *"], input_validator=Echo, cron_input=Echo(tag="declared"))
def declared_cron(input: Echo, ctx: Context) -> dict[str, str]:
    return {"tag": input.tag}


class Order(BaseModel):
    order_id: str = ""


@hatchet.task(name="e2e-on-event", on_events=["e2e:order-created", "e2e:wild:*"], input_validator=Order)
def on_event(input: Order, ctx: Context) -> dict[str, str]:
    return {"order_id": input.order_id, "key": ctx.triggering_event_key or ""}


class Sleep(BaseModel):
    seconds: float = 0.2


@hatchet.task(name="e2e-priority", input_validator=Sleep)
def prioritised(input: Sleep, ctx: Context) -> dict[str, float]:
    started = time.time()
    time.sleep(input.seconds)
    return {"priority": ctx.priority or 0, "at": started}


class Group(BaseModel):
    group: str
    seconds: float = 0.5


@hatchet.task(
    name="e2e-concurrency-rr",
    input_validator=Group,
    concurrency=ConcurrencyExpression(
        expression="input.group", max_runs=1, limit_strategy=ConcurrencyLimitStrategy.GROUP_ROUND_ROBIN
    ),
)
async def round_robin(input: Group, ctx: Context) -> dict[str, float | str]:
    started = time.time()
    await asyncio.sleep(input.seconds)
    return {"group": input.group, "start": started, "end": time.time()}


@hatchet.task(
    name="e2e-concurrency-cancel",
    input_validator=Group,
    concurrency=ConcurrencyExpression(
        expression="input.group", max_runs=1, limit_strategy=ConcurrencyLimitStrategy.CANCEL_IN_PROGRESS
    ),
)
async def cancel_in_progress(input: Group, ctx: Context) -> dict[str, str]:
    await asyncio.sleep(input.seconds)
    return {"group": input.group}


RATE_LIMIT_KEY = "e2e-rate-limit"


@hatchet.task(name="e2e-rate-limited", rate_limits=[RateLimit(static_key=RATE_LIMIT_KEY, units=1)])
def rate_limited(input: EmptyModel, ctx: Context) -> dict[str, float]:
    return {"at": time.time()}


@hatchet.task(
    name="e2e-affinity",
    desired_worker_labels=[DesiredWorkerLabel(key="model", value="fancy", required=True)],
)
def affinity(input: EmptyModel, ctx: Context) -> dict[str, str]:
    return {"worker": WORKER_NAME}


@hatchet.task(
    name="e2e-affinity-memory",
    desired_worker_labels=[
        DesiredWorkerLabel(key="memory", value=512, required=True, comparator=WorkerLabelComparator.LESS_THAN)
    ],
)
def affinity_memory(input: EmptyModel, ctx: Context) -> dict[str, str]:
    return {"worker": WORKER_NAME}


# ------------------------------------------------------------------------------------------------------------------
# The worker profiles (worker.py runs one per process)
# ------------------------------------------------------------------------------------------------------------------

MAIN_WORKFLOWS = [
    simple,
    simple_durable,
    add,
    diamond,
    logger_task,
    flaky,
    retry_after,
    retry_after_exhausted,
    retry_after_hour,
    non_retryable,
    nul_output,
    too_slow,
    refreshes,
    cancellable,
    two_failures,
    with_on_failure,
    child,
    parent,
    echo,
    on_event,
    round_robin,
    cancel_in_progress,
    rate_limited,
]

PROFILES = {
    "main": dict(slots=20, workflows=MAIN_WORKFLOWS),
    # One slot, so queued runs start strictly one after another in dispatch (priority) order.
    "single": dict(slots=1, workflows=[prioritised]),
    # Declares a cron that fires every 2 s: started only by the test that checks it.
    "cron": dict(slots=5, workflows=[declared_cron]),
    # Two workers with different labels serving the same affinity tasks; "plain" has more free slots, so only the
    # labels can send work to "fancy". (Worker labels as a dict: hatchet-sdk 1.43.1's Worker takes no list yet.)
    "fancy": dict(slots=5, labels={"model": "fancy", "memory": 256},
                  workflows=[affinity, affinity_memory]),
    "plain": dict(slots=20, labels={"model": "plain", "memory": 1024},
                  workflows=[affinity, affinity_memory]),
}
