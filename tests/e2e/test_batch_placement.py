"""Batch tasks honour worker labels and rate limits (issue 19) with the real hatchet-sdk: `hatchet.batch_task` with
`desired_worker_labels` and `rate_limits`, as Hatchet's scheduler applies them to batch tasks too.

* Required labels: every batch of a task that requires gpu=yes runs on the gpu worker, although the other worker has
  more free slots (where a batch without labels would go); a batch requiring a label no worker has waits (queued, no
  batch) until a worker with that label comes up, then runs there.
* Rate limits: 2 units a second, one per member, batches of 5: no batch has more than 2 members, and the members go
  out over at least three windows.

The workflows are defined here and served by worker processes that run this file as a script
(`python test_batch_placement.py <worker name>`).
"""

import os
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from hatchet_sdk import Context, DesiredWorkerLabel, RateLimit
from hatchet_sdk.runnables.types import BatchMemberId
from pydantic import BaseModel

import conftest
from conftest import WorkerProcess, wait_for

# name -> (slots, labels). The cpu worker has the most free slots: a batch that ignored its labels would go there.
WORKERS = {
    "e2e-batch-gpu": (2, {"gpu": "yes"}),
    "e2e-batch-cpu": (10, {"gpu": "no"}),
    "e2e-batch-tpu": (2, {"gpu": "no", "tpu": "v5"}),
}
RATE_LIMIT_KEY = "e2e-batch-rl"


class Message(BaseModel):
    message: str


class Where(BaseModel):
    worker: str
    batch: str
    size: int
    upper: str


def define(hatchet):
    """The batch workflows, on the given client (the worker's, or the test process's for triggering)."""

    def where(tasks: dict[BatchMemberId, Message]) -> dict[BatchMemberId, Where]:
        worker = os.environ.get("BATCH_PLACEMENT_WORKER", "")
        batch = uuid.uuid4().hex
        return {i: Where(worker=worker, batch=batch, size=len(tasks), upper=t.message.upper())
                for i, t in tasks.items()}

    @hatchet.batch_task(name="e2e-batch-needs-gpu", batch_max_size=4, batch_max_interval=timedelta(seconds=1),
                        input_validator=Message,
                        desired_worker_labels={"gpu": DesiredWorkerLabel(value="yes", required=True)})
    async def needs_gpu(tasks: dict[BatchMemberId, Message], ctx: Context) -> dict[BatchMemberId, Where]:
        return where(tasks)

    @hatchet.batch_task(name="e2e-batch-needs-tpu", batch_max_size=4, batch_max_interval=timedelta(seconds=1),
                        input_validator=Message,
                        desired_worker_labels={"tpu": DesiredWorkerLabel(value="v5", required=True)})
    async def needs_tpu(tasks: dict[BatchMemberId, Message], ctx: Context) -> dict[BatchMemberId, Where]:
        return where(tasks)

    @hatchet.batch_task(name="e2e-batch-limited", batch_max_size=5, batch_max_interval=timedelta(seconds=1),
                        input_validator=Message, rate_limits=[RateLimit(static_key=RATE_LIMIT_KEY, units=1)])
    async def limited(tasks: dict[BatchMemberId, Message], ctx: Context) -> dict[BatchMemberId, Where]:
        return where(tasks)

    return {"needs_gpu": needs_gpu, "needs_tpu": needs_tpu, "limited": limited}


def run_worker(name: str) -> None:
    from hatchet_sdk import Hatchet

    os.environ["BATCH_PLACEMENT_WORKER"] = name
    hatchet = Hatchet()
    slots, labels = WORKERS[name]
    worker = hatchet.worker(name, slots=slots, labels=labels, workflows=list(define(hatchet).values()))
    worker.start()


def start(server, name: str) -> WorkerProcess:
    return WorkerProcess(server, name, script=Path(__file__).resolve(), log_name=name.removeprefix("e2e-"))


@pytest.fixture(scope="module")
def placed(server, flows):
    """The gpu and cpu workers serving this file's workflows, and the workflows on the test process's client."""
    workers = [start(server, name) for name in ("e2e-batch-gpu", "e2e-batch-cpu")]
    try:
        for w in workers:
            w.wait_healthy()
        yield define(flows.hatchet)
    finally:
        for w in workers:
            w.stop()


def run_all(wf, messages):
    refs = wf.run_many_no_wait([wf.create_bulk_run_item(input=Message(message=m)) for m in messages])
    return refs, [r.result() for r in refs]


def test_batches_run_only_where_their_required_labels_are(placed):
    messages = [f"m{i}" for i in range(8)]
    _, outs = run_all(placed["needs_gpu"], messages)
    assert [o.upper for o in outs] == [m.upper() for m in messages]
    assert {o.worker for o in outs} == {"e2e-batch-gpu"}, outs
    assert all(1 <= o.size <= 4 for o in outs), outs


def test_a_batch_whose_label_no_worker_has_waits_for_one(placed, server):
    refs = placed["needs_tpu"].run_many_no_wait(
        [placed["needs_tpu"].create_bulk_run_item(input=Message(message=m)) for m in ("tpu-1", "tpu-2")])
    queued = f"""SELECT count(*) FROM hatchet.ready_queue r JOIN hatchet.tasks t ON t.id = r.task_id
                 WHERE t.run_id IN ('{refs[0].workflow_run_id}', '{refs[1].workflow_run_id}')"""
    wait_for(lambda: conftest.psql(server, "-c", queued) == "2", 10, "both runs to be queued")
    # Three flush intervals: due long ago, but neither connected worker has the label, so no batch is made.
    time.sleep(3)
    assert conftest.psql(server, "-c", queued) == "2"
    assert conftest.psql(server, "-c", "SELECT count(*) FROM hatchet.batches WHERE queue = 'e2e-batch-needs-tpu'") == "0"
    tpu = start(server, "e2e-batch-tpu")
    try:
        tpu.wait_healthy()
        outs = [r.result() for r in refs]
        assert [o.upper for o in outs] == ["TPU-1", "TPU-2"]
        assert {o.worker for o in outs} == {"e2e-batch-tpu"}, outs
        assert {o.size for o in outs} == {2}, outs
    finally:
        tpu.stop()


def test_rate_limited_members_never_exceed_the_window(placed, flows, server):
    from hatchet_sdk import RateLimitDuration

    flows.hatchet.rate_limits.put(RATE_LIMIT_KEY, 2, RateLimitDuration.SECOND)
    messages = [f"r{i}" for i in range(6)]
    refs, outs = run_all(placed["limited"], messages)
    assert [o.upper for o in outs] == [m.upper() for m in messages]
    # Each batch took at most the 2 units a window has, whatever its size of 5 would allow.
    assert max(o.size for o in outs) <= 2, outs
    runs = ", ".join(f"'{r.workflow_run_id}'" for r in refs)
    # When each member was handed out: 2 per window at most, so the sixth went out at least two windows (2 s) after
    # the first (fixed windows from the first take: it refills 1 s after it started, and again 1 s after that).
    spread = conftest.psql(server, "-c", f"""
        SELECT extract(epoch FROM max(e.created_at) - min(e.created_at)) FROM hatchet.tasks t
        CROSS JOIN LATERAL hatchet.task_events(t.id) e WHERE t.run_id IN ({runs}) AND e.event_type = 'ASSIGNED'""")
    assert float(spread) >= 2.0, spread
    assert len({o.batch for o in outs}) >= 3, outs


if __name__ == "__main__":
    run_worker(sys.argv[1])
