"""Workflow-level idempotency keys with the real SDK (issue 20, Hatchet's examples/idempotency).

* A trigger whose key (the workflow's `idempotency` CEL expression over its input) another run holds raises the SDK's
  `IdempotencyCollisionError` naming that run, and no second run exists.
* A bulk trigger with a collision starts the others and raises `BulkTriggerIdempotencyCollisionError`.
* A STATUS key is held while its run is in flight and given back when it finishes; a TTL key until it expires.
* Two events with one key start one run, across the two workflows that listen for them (one key space per tenant).

The workflows are defined here and served by a worker process that runs this file as a script.
"""

import asyncio
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from hatchet_sdk import (
    BulkTriggerIdempotencyCollisionError,
    Context,
    IdempotencyCollisionError,
    StatusBasedIdempotencyConfig,
    TTLBasedIdempotencyConfig,
)
from pydantic import BaseModel

from conftest import WorkerProcess, wait_for

WORKER = "e2e-idempotency"
EVENT_KEY = "e2e:idempotency"


class Keyed(BaseModel):
    id: str
    sleep: float = 0


def define(hatchet):
    """The workflows of this file, on a Hatchet client (the worker's or the test process's)."""

    @hatchet.task(name="e2e-idem-ttl", input_validator=Keyed, on_events=[EVENT_KEY],
                  idempotency=TTLBasedIdempotencyConfig(key_expression="input.id", ttl=timedelta(seconds=2)))
    async def ttl_task(input: Keyed, ctx: Context) -> dict[str, str]:
        return {"id": input.id}

    @hatchet.task(name="e2e-idem-ttl-long", input_validator=Keyed, on_events=[EVENT_KEY],
                  idempotency=TTLBasedIdempotencyConfig(key_expression="input.id", ttl=timedelta(minutes=1)))
    async def ttl_long_task(input: Keyed, ctx: Context) -> dict[str, str]:
        return {"id": input.id}

    @hatchet.task(name="e2e-idem-status", input_validator=Keyed,
                  idempotency=StatusBasedIdempotencyConfig(key_expression="input.id",
                                                           fallback_ttl=timedelta(minutes=1)))
    async def status_task(input: Keyed, ctx: Context) -> dict[str, str]:
        await asyncio.sleep(input.sleep)
        return {"id": input.id}

    return dict(ttl=ttl_task, ttl_long=ttl_long_task, status=status_task)


def run_worker(name: str) -> None:
    from hatchet_sdk import Hatchet

    hatchet = Hatchet()
    w = define(hatchet)
    worker = hatchet.worker(name, slots=4, workflows=list(w.values()))
    worker.start()


@pytest.fixture(scope="module")
def idem(server, flows):
    """A worker serving this file's workflows, and the workflows on the test process's client."""
    worker = WorkerProcess(server, WORKER, script=Path(__file__).resolve())
    try:
        worker.wait_healthy()
        yield define(flows.hatchet)
    finally:
        worker.stop()


def runs_tagged(flows, tag: str):
    return flows.hatchet.runs.list(additional_metadata={"idem": tag}).rows


async def test_a_held_key_refuses_a_second_trigger(flows, idem):
    key = uuid.uuid4().hex
    meta = {"idem": key}
    ref = await idem["ttl_long"].aio_run_no_wait(Keyed(id=key), additional_metadata=meta)
    with pytest.raises(IdempotencyCollisionError) as err:
        await idem["ttl_long"].aio_run_no_wait(Keyed(id=key), additional_metadata=meta)
    assert err.value.existing_run_external_id == ref.workflow_run_id
    # Another workflow with the same key expression shares the tenant's key space.
    with pytest.raises(IdempotencyCollisionError) as err:
        idem["status"].run_no_wait(Keyed(id=key), additional_metadata=meta)
    assert err.value.existing_run_external_id == ref.workflow_run_id

    assert await ref.aio_result() == {"id": key}
    assert [r.metadata.id for r in runs_tagged(flows, key)] == [ref.workflow_run_id]


def test_a_bulk_trigger_starts_the_runs_whose_keys_are_free(flows, idem):
    key, other = uuid.uuid4().hex, uuid.uuid4().hex
    items = [idem["ttl_long"].create_bulk_run_item(input=Keyed(id=k), additional_metadata={"idem": key})
             for k in (key, key, other)]
    with pytest.raises(BulkTriggerIdempotencyCollisionError) as err:
        idem["ttl_long"].run_many_no_wait(items)
    started = err.value.successful_workflow_run_external_ids
    assert len(started) == 2, started
    assert [c.existing_run_external_id for c in err.value.collisions] == [started[0]]
    wait_for(lambda: len(runs_tagged(flows, key)) == 2, 20, "both started runs to be listed")
    assert sorted(r.metadata.id for r in runs_tagged(flows, key)) == sorted(started)


async def test_a_status_key_is_given_back_when_its_run_finishes(flows, idem):
    key = uuid.uuid4().hex
    ref = await idem["status"].aio_run_no_wait(Keyed(id=key, sleep=2))
    with pytest.raises(IdempotencyCollisionError) as err:
        await idem["status"].aio_run_no_wait(Keyed(id=key))
    assert err.value.existing_run_external_id == ref.workflow_run_id
    assert await ref.aio_result() == {"id": key}
    # Finished: the key is free long before its fallback TTL of one minute.
    again = await idem["status"].aio_run_no_wait(Keyed(id=key))
    assert again.workflow_run_id != ref.workflow_run_id
    assert await again.aio_result() == {"id": key}


async def test_a_ttl_key_is_held_until_it_expires(flows, idem):
    key = uuid.uuid4().hex
    ref = await idem["ttl"].aio_run_no_wait(Keyed(id=key))
    assert await ref.aio_result() == {"id": key}
    # The run is done, but a TTL key stays held for its two seconds.
    with pytest.raises(IdempotencyCollisionError):
        await idem["ttl"].aio_run_no_wait(Keyed(id=key))
    await asyncio.sleep(2.5)
    later = await idem["ttl"].aio_run_no_wait(Keyed(id=key))
    assert await later.aio_result() == {"id": key}


async def test_two_events_with_one_key_start_one_run(flows, idem):
    key = uuid.uuid4().hex
    first = await flows.hatchet.event.aio_push(event_key=EVENT_KEY, payload={"id": key},
                                               additional_metadata={"idem": key})
    second = await flows.hatchet.event.aio_push(event_key=EVENT_KEY, payload={"id": key},
                                                additional_metadata={"idem": key})
    rows = wait_for(lambda: runs_tagged(flows, key), 20, "the event's run")
    await asyncio.sleep(1)  # (a second run, if one were wrongly started, would be listed by now)
    rows = runs_tagged(flows, key)
    assert len(rows) == 1, rows
    assert rows[0].additional_metadata["hatchet__event_id"] in (first.event_id, second.event_id)


if __name__ == "__main__":
    run_worker(sys.argv[1])
