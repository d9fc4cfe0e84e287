"""Durable tasks for test_durable.py, written as a Hatchet user writes them, and their worker:
`python durable_flows.py <profile>` (profiles at the bottom).

Side effects the tests count (how often a memoized step or a child really ran) are lines appended to files under
$E2E_MARKER_DIR, one file per test token: a step that runs again after a replay shows up as a second line.
"""

import asyncio
import os
import sys
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel

from hatchet_sdk import (
    Context,
    DurableContext,
    EvictionPolicy,
    Hatchet,
    SleepCondition,
    UserEventCondition,
    or_,
)

hatchet = Hatchet()

MARKERS = Path(os.environ.get("E2E_MARKER_DIR", "/tmp/pg_hatchet-e2e-durable"))

EVENT_KEY = "durable-e2e:event"
OR_EVENT_KEY = "durable-e2e:or"
RESUME_EVENT_KEY = "durable-e2e:resume"

# Evicted after one second of waiting (the SDK's eviction manager checks every second), so the tests see evictions
# quickly. The default policy (15 minutes) never fires in a test.
QUICK_EVICTION = EvictionPolicy(ttl=timedelta(seconds=1), allow_capacity_eviction=True, priority=0)


def mark(token: str, what: str) -> None:
    MARKERS.mkdir(parents=True, exist_ok=True)
    with open(MARKERS / token, "a") as f:
        f.write(what + "\n")


class Token(BaseModel):
    token: str


class Sleep(BaseModel):
    token: str
    seconds: int


class Computed(BaseModel):
    value: int
    pid: int


@hatchet.durable_task(name="durable-e2e-sleep", input_validator=Sleep)
async def durable_sleep(input: Sleep, ctx: DurableContext) -> dict[str, object]:
    mark(input.token, f"start {ctx.invocation_count}")
    slept = await ctx.aio_sleep_for(timedelta(seconds=input.seconds))
    return {"slept": slept.duration.total_seconds(), "invocation": ctx.invocation_count}


class Awaited(BaseModel):
    id: str
    token: str


@hatchet.durable_task(name="durable-e2e-event", input_validator=Token)
async def durable_event(input: Token, ctx: DurableContext) -> dict[str, str]:
    event = await ctx.aio_wait_for_event(EVENT_KEY, f"input.token == '{input.token}'", payload_validator=Awaited)
    return {"event_id": event.id}


@hatchet.durable_task(name="durable-e2e-or", input_validator=Sleep)
async def durable_or(input: Sleep, ctx: DurableContext) -> dict[str, object]:
    result = await ctx.aio_wait_for(
        "either",
        or_(
            SleepCondition(timedelta(seconds=input.seconds)),
            UserEventCondition(event_key=OR_EVENT_KEY, expression=f"input.token == '{input.token}'"),
        ),
    )
    # {"CREATE": {<readable data key of the condition that won>: [data]}}
    (action, satisfied), = result.items()
    return {"action": action, "keys": sorted(satisfied.keys()), "data": satisfied}


class ChildInput(BaseModel):
    token: str
    n: int


@hatchet.task(name="durable-e2e-child", input_validator=ChildInput)
def durable_child(input: ChildInput, ctx: Context) -> dict[str, int]:
    mark(input.token, f"child {input.n}")
    return {"square": input.n * input.n}


@hatchet.durable_task(name="durable-e2e-parent", input_validator=Token, execution_timeout=timedelta(seconds=60))
async def durable_parent(input: Token, ctx: DurableContext) -> dict[str, object]:
    one = await durable_child.aio_run(ChildInput(token=input.token, n=7))
    many = await durable_child.aio_run_many(
        [durable_child.create_bulk_run_item(input=ChildInput(token=input.token, n=i)) for i in range(5)]
    )
    return {"one": one["square"], "many": [m["square"] for m in many]}


async def expensive(token: str) -> Computed:
    mark(token, "computed")
    return Computed(value=len(token) * 1000 + 7, pid=os.getpid())


@hatchet.durable_task(name="durable-e2e-memo", input_validator=Sleep, eviction_policy=QUICK_EVICTION)
async def durable_memo(input: Sleep, ctx: DurableContext) -> dict[str, object]:
    mark(input.token, f"invocation {ctx.invocation_count}")
    first = await ctx._aio_memo(expensive, Computed, input.token)
    started = await ctx.aio_now()
    # Waiting longer than the eviction TTL: the task is evicted, restored when the sleep is over, and replays.
    await ctx.aio_sleep_for(timedelta(seconds=input.seconds))
    again = await ctx._aio_memo(expensive, Computed, input.token + "-second")
    return {"first": first.value, "first_pid": first.pid, "second": again.value,
            "started": started.isoformat(), "invocation": ctx.invocation_count}


@hatchet.durable_task(name="durable-e2e-retry", input_validator=Token, retries=1)
async def durable_retry(input: Token, ctx: DurableContext) -> dict[str, object]:
    value = await ctx._aio_memo(expensive, Computed, input.token)
    if ctx.retry_count == 0:
        raise RuntimeError("first attempt fails after its memo")
    return {"value": value.value, "retry_count": ctx.retry_count}


@hatchet.durable_task(name="durable-e2e-evicted-wait", input_validator=Token, eviction_policy=QUICK_EVICTION)
async def durable_evicted_wait(input: Token, ctx: DurableContext) -> dict[str, object]:
    mark(input.token, f"invocation {ctx.invocation_count}")
    stamp = await ctx._aio_memo(expensive, Computed, input.token)
    event = await ctx.aio_wait_for_event(RESUME_EVENT_KEY, f"input.token == '{input.token}'",
                                         payload_validator=Awaited)
    return {"event_id": event.id, "memo": stamp.value, "invocation": ctx.invocation_count}


class Choice(BaseModel):
    token: str
    path: str


@hatchet.durable_task(name="durable-e2e-nondeterministic", input_validator=Token, eviction_policy=QUICK_EVICTION)
async def durable_nondeterministic(input: Token, ctx: DurableContext) -> dict[str, object]:
    # The first invocation sleeps; after its eviction the replay asks for an event at that node instead.
    if ctx.invocation_count == 1:
        await ctx.aio_sleep_for(timedelta(seconds=3))
    else:
        await ctx.aio_wait_for_event(RESUME_EVENT_KEY, "true")
    return {"unreachable": True}


@hatchet.durable_task(name="durable-e2e-branch", input_validator=Token)
async def durable_branch(input: Token, ctx: DurableContext) -> dict[str, object]:
    mark(input.token, f"invocation {ctx.invocation_count}")
    value = await ctx._aio_memo(expensive, Computed, input.token)
    await ctx.aio_sleep_for(timedelta(seconds=1))
    return {"value": value.value, "invocation": ctx.invocation_count}


@hatchet.task(name="durable-e2e-other-child", input_validator=ChildInput)
def durable_other_child(input: ChildInput, ctx: Context) -> dict[str, str]:
    return {"other": input.token}


class Rewind(BaseModel):
    token: str
    other: bool  # spawn the other workflow at the rewound index (a collision) or the same one (found again)


@hatchet.durable_task(name="durable-e2e-rewind", input_validator=Rewind)
async def durable_rewind(input: Rewind, ctx: DurableContext) -> dict[str, object]:
    """Spawns two children (indexes 0 and 1), then winds the SDK's spawn counter back to index 0 and spawns again."""
    from hatchet_sdk.runnables.contextvars import ctx_action_key, workflow_spawn_indices

    first = await durable_child.aio_run(ChildInput(token=input.token, n=1))
    await durable_other_child.aio_run(ChildInput(token=input.token, n=2))
    workflow_spawn_indices[ctx_action_key.get()] = 0
    again = await (durable_other_child if input.other else durable_child).aio_run(ChildInput(token=input.token, n=1))
    return {"first": first, "again": again}


class Delayed(BaseModel):
    label: str
    delay: float


@hatchet.task(name="durable-e2e-delayed-child", input_validator=Delayed)
async def durable_delayed_child(input: Delayed, ctx: Context) -> dict[str, str]:
    await asyncio.sleep(input.delay)
    return {"label": input.label}


async def two_children(name: str, first_delay: float) -> list[str]:
    first = await durable_delayed_child.aio_run(Delayed(label=f"{name}-first", delay=first_delay))
    second = await durable_delayed_child.aio_run(Delayed(label=f"{name}-second", delay=0.1))
    return [first["label"], second["label"]]


@hatchet.durable_task(name="durable-e2e-concurrent", input_validator=Token)
async def durable_concurrent(input: Token, ctx: DurableContext) -> dict[str, object]:
    """Two branches, each spawning a child and then another: b's children both finish before a's first one, so its
    second child's entry comes before a's second in the log. A replay must resume the branches in that order."""
    mark(input.token, f"invocation {ctx.invocation_count}")
    a, b = await asyncio.gather(two_children("a", 3), two_children("b", 0.3))
    return {"a": a, "b": b, "invocation": ctx.invocation_count}


@hatchet.durable_task(name="durable-e2e-stale", input_validator=Token)
async def durable_stale(input: Token, ctx: DurableContext) -> dict[str, object]:
    mark(input.token, f"invocation {ctx.invocation_count}")
    await ctx.aio_wait_for_event(RESUME_EVENT_KEY, f"input.token == '{input.token}'")
    mark(input.token, f"resumed {ctx.invocation_count}")
    return {"invocation": ctx.invocation_count}


WORKFLOWS = [durable_branch, durable_sleep, durable_event, durable_or, durable_child, durable_parent, durable_memo, durable_retry,
             durable_evicted_wait, durable_nondeterministic, durable_other_child, durable_rewind,
             durable_delayed_child, durable_concurrent, durable_stale]

PROFILES = {"durable": dict(slots=10, durable_slots=10, workflows=WORKFLOWS)}


def main() -> None:
    spec = PROFILES[sys.argv[1]]
    worker = hatchet.worker(os.environ.get("E2E_WORKER_NAME", "e2e-durable"), slots=spec["slots"],
                            durable_slots=spec["durable_slots"], workflows=spec["workflows"])
    worker.start()


if __name__ == "__main__":
    main()
