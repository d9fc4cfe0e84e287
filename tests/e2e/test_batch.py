"""Batch tasks (issue 19) with the real hatchet-sdk: `hatchet.batch_task` runs are handed to the worker in batches
(one START_BATCH) flushed when the batch is full or after the flush interval, grouped by the batch key (a CEL
expression over the input), each member with its own output or the broadcast one (SendBatchActionEvent). A failing
batch fails its members, a member whose output is bad fails alone; a key that does not evaluate to a string fails only
that run; when a worker dies mid-batch its members are retried and batched again elsewhere; a malformed batch event is
refused with INVALID_ARGUMENT and changes nothing.

(The SDK gives batch tasks no retries; a failed member's retry, with its re-batching, is covered by
tests/regress/sql/93_batch.sql.)

The workflows are defined here and served by one worker process that runs this file as a script
(`python test_batch.py <worker name>`).
"""

import asyncio
import os
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from hatchet_sdk import Context
from hatchet_sdk.runnables.types import BatchMemberId
from pydantic import BaseModel

import conftest
from conftest import WorkerProcess, wait_for

WORKER = "e2e-batch"
DOOMED = "e2e-batch-doomed"
RESCUER = "e2e-batch-rescuer"
# Longer than any test waits for a batch that should flush on size: a flush before it is not the interval's.
LONG_INTERVAL = timedelta(seconds=30)


class Message(BaseModel):
    message: str


class Keyed(BaseModel):
    message: str
    group: str | int


class Item(BaseModel):
    batch: str
    size: int
    upper: str
    reason: str | None = None  # why the engine flushed the batch (START_BATCH's triggerReason)
    key: str | None = None
    keys: int = 1


class Total(BaseModel):
    size: int
    total: int


def define(hatchet):
    """The batch workflows, on the given client (the worker's, or the test process's for triggering)."""
    @hatchet.batch_task(name="e2e-batch-size", batch_max_size=3, batch_max_interval=LONG_INTERVAL,
                        input_validator=Message)
    async def by_size(tasks: dict[BatchMemberId, Message], ctx: Context) -> dict[BatchMemberId, Item]:
        batch = uuid.uuid4().hex
        reason = ctx.action.batch_start.trigger_reason if ctx.action.batch_start else None
        return {i: Item(batch=batch, size=len(tasks), upper=t.message.upper(), reason=reason)
                for i, t in tasks.items()}

    @hatchet.batch_task(name="e2e-batch-interval", batch_max_size=10, batch_max_interval=timedelta(seconds=1),
                        input_validator=Message)
    async def by_interval(tasks: dict[BatchMemberId, Message], ctx: Context) -> dict[BatchMemberId, Item]:
        batch = uuid.uuid4().hex
        reason = ctx.action.batch_start.trigger_reason if ctx.action.batch_start else None
        return {i: Item(batch=batch, size=len(tasks), upper=t.message.upper(), reason=reason)
                for i, t in tasks.items()}

    @hatchet.batch_task(name="e2e-batch-keyed", batch_max_size=2, batch_max_interval=timedelta(seconds=1),
                        batch_group_key="input.group", input_validator=Keyed)
    async def keyed(tasks: dict[BatchMemberId, Keyed], ctx: Context) -> dict[BatchMemberId, Item]:
        batch = uuid.uuid4().hex
        keys = len({t.group for t in tasks.values()})
        return {i: Item(batch=batch, size=len(tasks), upper=t.message.upper(), key=str(t.group), keys=keys)
                for i, t in tasks.items()}

    @hatchet.batch_task(name="e2e-batch-broadcast", batch_max_size=4, batch_max_interval=LONG_INTERVAL,
                        input_validator=Message, broadcast_output=True)
    async def broadcast(tasks: dict[BatchMemberId, Message], ctx: Context) -> Total:
        return Total(size=len(tasks), total=sum(len(t.message) for t in tasks.values()))

    @hatchet.batch_task(name="e2e-batch-picky", batch_max_size=3, batch_max_interval=timedelta(seconds=1),
                        input_validator=Message)
    async def picky(tasks: dict[BatchMemberId, Message], ctx: Context) -> dict[BatchMemberId, Item]:
        # "explode" fails the whole batch; "poison" gets an output the SDK cannot send (not a JSON object), which
        # fails that member only.
        if any(t.message == "explode" for t in tasks.values()):
            raise RuntimeError(f"exploded with {len(tasks)} members")
        batch = uuid.uuid4().hex
        return {i: ("not an object" if t.message == "poison"  # type: ignore[misc]
                    else Item(batch=batch, size=len(tasks), upper=t.message.upper()))
                for i, t in tasks.items()}

    @hatchet.batch_task(name="e2e-batch-survivor", batch_max_size=3, batch_max_interval=LONG_INTERVAL,
                        input_validator=Message)
    async def survivor(tasks: dict[BatchMemberId, Message], ctx: Context) -> dict[BatchMemberId, Item]:
        # On the doomed worker the batch announces itself and hangs until the worker is killed.
        if os.environ.get("E2E_BATCH_HANG"):
            Path(os.environ["E2E_BATCH_HANG"]).write_text(",".join(sorted(tasks)))
            await asyncio.sleep(600)
        batch = uuid.uuid4().hex
        reason = ctx.action.batch_start.trigger_reason if ctx.action.batch_start else None
        return {i: Item(batch=batch, size=len(tasks), upper=t.message.upper(), reason=reason)
                for i, t in tasks.items()}

    return {"survivor": survivor, "by_size": by_size, "by_interval": by_interval, "keyed": keyed, "broadcast": broadcast,
            "picky": picky}


def run_worker(name: str) -> None:
    from hatchet_sdk import Hatchet

    hatchet = Hatchet()
    w = define(hatchet)
    # The survivor task runs only on the workers of the worker-death test.
    survivor = w.pop("survivor")
    workflows = [survivor] if name in (DOOMED, RESCUER) else list(w.values())
    worker = hatchet.worker(name, slots=4, workflows=workflows)
    worker.start()


@pytest.fixture(scope="module")
def batch(server, flows):
    """A worker serving this file's workflows, and the workflows on the test process's client."""
    worker = WorkerProcess(server, WORKER, script=Path(__file__).resolve(), log_name="batch")
    try:
        worker.wait_healthy()
        yield define(flows.hatchet)
    finally:
        worker.stop()


def run_all(wf, inputs):
    """Triggers all inputs in one bulk call (so they are queued together) and waits for their outputs."""
    refs = wf.run_many_no_wait([wf.create_bulk_run_item(input=i) for i in inputs])
    return refs, [r.result() for r in refs]


def test_flush_on_size(batch):
    _, results = run_all(batch["by_size"], [Message(message=m) for m in ("alpha", "bravo", "charlie")])
    outs = results
    assert [o.upper for o in outs] == ["ALPHA", "BRAVO", "CHARLIE"]
    # One batch of three, flushed because it was full (the engine's own reason), not by its 30 s interval.
    assert {o.size for o in outs} == {3}
    assert len({o.batch for o in outs}) == 1
    assert {o.reason for o in outs} == {"size"}


def test_flush_on_interval(batch):
    started = time.monotonic()
    _, results = run_all(batch["by_interval"], [Message(message=m) for m in ("delta", "echo")])
    elapsed = time.monotonic() - started
    outs = results
    assert [o.upper for o in outs] == ["DELTA", "ECHO"]
    # Two of ten: flushed by the 1 s interval, together.
    assert {o.size for o in outs} == {2}
    assert len({o.batch for o in outs}) == 1
    assert {o.reason for o in outs} == {"interval"}
    assert elapsed >= 0.9, elapsed


def test_grouped_by_key(batch):
    inputs = [Keyed(message="alpha", group="tenant-1"), Keyed(message="bravo", group="tenant-2"),
              Keyed(message="charlie", group="tenant-1"), Keyed(message="delta", group="tenant-2")]
    _, results = run_all(batch["keyed"], inputs)
    outs = results
    for inp, out in zip(inputs, outs):
        assert out.key == inp.group
        assert out.upper == inp.message.upper()
        # A batch never mixes keys; each key's two runs filled one batch of two.
        assert out.keys == 1
        assert out.size == 2
    assert outs[0].batch == outs[2].batch != outs[1].batch == outs[3].batch


def test_broadcast_output(batch):
    _, results = run_all(batch["broadcast"], [Message(message=m) for m in ("a", "bb", "ccc", "dddd")])
    assert results == [Total(size=4, total=10)] * 4


def test_bad_group_key_fails_only_that_run(batch, flows):
    from hatchet_sdk import FailedTaskRunExceptionGroup

    wf = batch["keyed"]
    good, bad = wf.run_many_no_wait([wf.create_bulk_run_item(input=Keyed(message="hello", group="tenant-9")),
                                     wf.create_bulk_run_item(input=Keyed(message="world", group=123))])
    with pytest.raises(FailedTaskRunExceptionGroup, match="failed to parse batch group key expression"):
        bad.result()
    # Alone in its group, the good one is flushed by the interval.
    assert good.result().upper == "HELLO"


def test_member_failures(batch, flows, server):
    from hatchet_sdk import FailedTaskRunExceptionGroup

    wf = batch["picky"]
    # A member whose output cannot be sent fails alone; the rest of its batch completes.
    refs = wf.run_many_no_wait([wf.create_bulk_run_item(input=Message(message=m)) for m in ("fine", "poison", "good")])
    assert refs[0].result().upper == "FINE"
    assert refs[2].result().upper == "GOOD"
    with pytest.raises(FailedTaskRunExceptionGroup, match="Tasks must return either a dictionary"):
        refs[1].result()
    # A handler that raises fails every member of its batch, each with the error.
    refs = wf.run_many_no_wait([wf.create_bulk_run_item(input=Message(message=m)) for m in ("explode", "bystander")])
    for ref in refs:
        with pytest.raises(FailedTaskRunExceptionGroup, match="exploded with 2 members"):
            ref.result()
    # Each member finished once, with its own events; every batch is over and gave its slot back.
    for ref in refs:
        events = conftest.psql(server, "-c", f"""
            SELECT e.event_type || ' ' || e.retry_count FROM hatchet.tasks t
            CROSS JOIN LATERAL hatchet.task_events(t.id) e
            WHERE t.run_id = '{ref.workflow_run_id}' AND e.event_type IN ('ASSIGNED', 'COMPLETED', 'FAILED')
            ORDER BY e.retry_count, e.created_at""").splitlines()
        assert events == ["ASSIGNED 0", "FAILED 0"], events
    wait_for(lambda: conftest.psql(server, "-c", "SELECT count(*) FROM hatchet.batches") == "0", 10,
             "the batches to be gone")
    used = conftest.psql(server, "-c", f"""
        SELECT coalesce(sum(s.used), 0) FROM hatchet.worker_slots s JOIN hatchet.workers w ON w.id = s.worker_id
        WHERE w.name = '{WORKER}' AND w.is_active""")
    assert used == "0", used


def test_worker_killed_mid_batch(batch, server, tmp_path):
    """A worker dies (SIGKILL) while it runs a batch: once it is declared dead (30 s without heartbeats) every member
    is retried, batched again on another worker and completes; none is lost, none runs twice to completion."""
    marker = tmp_path / "hanging"
    doomed = WorkerProcess(server, DOOMED, {"E2E_BATCH_HANG": str(marker)}, script=Path(__file__).resolve(),
                           log_name="batch-doomed")
    rescuer = None
    try:
        doomed.wait_healthy()
        wf = batch["survivor"]
        refs = wf.run_many_no_wait([wf.create_bulk_run_item(input=Message(message=m)) for m in ("x", "y", "z")])
        wait_for(marker.exists, 30, "the batch to start on the doomed worker")
        members = marker.read_text().split(",")
        assert len(members) == 3, members
        doomed.proc.kill()  # no goodbye: only the missing heartbeats tell
        doomed.proc.wait()
        rescuer = WorkerProcess(server, RESCUER, script=Path(__file__).resolve(), log_name="batch-rescuer")
        rescuer.wait_healthy()
        outs = [r.result() for r in refs]
        assert [o.upper for o in outs] == ["X", "Y", "Z"]
        assert {o.size for o in outs} == {3} and len({o.batch for o in outs}) == 1, outs
        for member in members:
            attempts = conftest.psql(server, "-c", f"""
                SELECT string_agg(e.event_type || ' ' || e.retry_count, ', ' ORDER BY e.retry_count, e.created_at)
                FROM hatchet.task_events('{member}') e WHERE e.event_type IN ('ASSIGNED', 'COMPLETED')""")
            # The first attempt went with the dead worker; the second completed, once.
            assert attempts == "ASSIGNED 0, ASSIGNED 1, COMPLETED 1", attempts
        wait_for(lambda: conftest.psql(server, "-c", "SELECT count(*) FROM hatchet.batches") == "0", 10,
                 "the batches to be gone")
    finally:
        doomed.stop()
        if rescuer is not None:
            rescuer.stop()


def test_malformed_batch_event_is_refused(batch, server):
    import grpc
    from hatchet_sdk.contracts import dispatcher_pb2

    channel = grpc.insecure_channel(server.env["HATCHET_CLIENT_HOST_PORT"])
    auth = (("authorization", "bearer " + server.env["HATCHET_CLIENT_TOKEN"]),)
    try:
        send = channel.unary_unary("/Dispatcher/SendBatchActionEvent",
                                   request_serializer=dispatcher_pb2.BatchActionEvent.SerializeToString,
                                   response_deserializer=dispatcher_pb2.ActionEventResponse.FromString)
        member = dispatcher_pb2.BatchActionEventItem(task_run_external_id=str(uuid.uuid4()), event_payload="{}")
        for event in (
            # no batch id
            dispatcher_pb2.BatchActionEvent(event_type=dispatcher_pb2.STEP_EVENT_TYPE_COMPLETED, items=[member]),
            # a member id that is not a uuid
            dispatcher_pb2.BatchActionEvent(
                batch_id=str(uuid.uuid4()), event_type=dispatcher_pb2.STEP_EVENT_TYPE_COMPLETED,
                items=[dispatcher_pb2.BatchActionEventItem(task_run_external_id="nope", event_payload="{}")]),
            # an unknown event type
            dispatcher_pb2.BatchActionEvent(batch_id=str(uuid.uuid4()), event_type=99, items=[member]),
        ):
            with pytest.raises(grpc.RpcError) as err:
                send(event, metadata=auth)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value
        # A well-formed event for a batch that does not exist names no running member: accepted, nothing changes.
        send(dispatcher_pb2.BatchActionEvent(batch_id=str(uuid.uuid4()),
                                             event_type=dispatcher_pb2.STEP_EVENT_TYPE_FAILED, items=[member]),
             metadata=auth)
        # Without a token: UNAUTHENTICATED.
        with pytest.raises(grpc.RpcError) as err:
            send(dispatcher_pb2.BatchActionEvent(batch_id=str(uuid.uuid4())))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        channel.close()


if __name__ == "__main__":
    run_worker(sys.argv[1])
