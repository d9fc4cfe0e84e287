"""Workflow-level concurrency over runs of several tasks, with the real hatchet-sdk (issue 20: the shapes of
Hatchet's own concurrency_workflow_level and concurrency_cancel_newest examples).

* GROUP_ROUND_ROBIN with two keys (digit, max 2; name, max 1) on a workflow of two root tasks: a run that waited
  for its keys gets them for both of its tasks, so every run completes, and runs sharing a key never overlap beyond
  its max_runs. (A run whose second task was left waiting could never finish and wedged its key until the schedule
  timeout.)
* CANCEL_NEWEST on a workflow whose step2 needs step1: the runs that arrive while the key is taken end CANCELLED
  (step1 cancelled at admission, step2 with it), and the first run completes.

The workflows are defined here and served by one worker process that runs this file as a script
(`python test_concurrency_runs.py <worker name>`).
"""

import asyncio
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from hatchet_sdk import ConcurrencyExpression, ConcurrencyLimitStrategy, Context
from pydantic import BaseModel

from conftest import WorkerProcess, wait_for

WORKER = "e2e-concurrency-runs"
DIGIT_MAX_RUNS = 2
NAME_MAX_RUNS = 1
TASK_SECONDS = 0.5


class KeysInput(BaseModel):
    name: str
    digit: str


class GroupInput(BaseModel):
    group: str


def define(hatchet):
    """The workflows of this file, on a Hatchet client (the worker's or the test process's)."""
    two_keys = hatchet.workflow(
        name="e2e-concurrency-two-keys",
        input_validator=KeysInput,
        concurrency=[
            ConcurrencyExpression(expression="input.digit", max_runs=DIGIT_MAX_RUNS,
                                  limit_strategy=ConcurrencyLimitStrategy.GROUP_ROUND_ROBIN),
            ConcurrencyExpression(expression="input.name", max_runs=NAME_MAX_RUNS,
                                  limit_strategy=ConcurrencyLimitStrategy.GROUP_ROUND_ROBIN),
        ],
    )

    async def timed() -> dict[str, float]:
        started = time.time()
        await asyncio.sleep(TASK_SECONDS)
        return {"started": started, "finished": time.time()}

    @two_keys.task(name="task_1")
    async def task_1(input: KeysInput, ctx: Context) -> dict[str, float]:
        return await timed()

    @two_keys.task(name="task_2")
    async def task_2(input: KeysInput, ctx: Context) -> dict[str, float]:
        return await timed()

    cancel_newest = hatchet.workflow(
        name="e2e-concurrency-cancel-newest",
        input_validator=GroupInput,
        concurrency=ConcurrencyExpression(expression="input.group", max_runs=1,
                                          limit_strategy=ConcurrencyLimitStrategy.CANCEL_NEWEST),
    )

    @cancel_newest.task(name="step1")
    async def step1(input: GroupInput, ctx: Context) -> dict[str, str]:
        await asyncio.sleep(3)
        return {"step": "1"}

    @cancel_newest.task(name="step2", parents=[step1])
    async def step2(input: GroupInput, ctx: Context) -> dict[str, str]:
        await asyncio.sleep(0.5)
        return {"step": "2"}

    return dict(two_keys=two_keys, cancel_newest=cancel_newest)


def run_worker(name: str) -> None:
    from hatchet_sdk import Hatchet

    hatchet = Hatchet()
    w = define(hatchet)
    worker = hatchet.worker(name, slots=10, workflows=[w["two_keys"], w["cancel_newest"]])
    worker.start()


@pytest.fixture(scope="module")
def concurrency(server, flows):
    """A worker serving this file's workflows, and the workflows on the test process's client."""
    worker = WorkerProcess(server, WORKER, script=Path(__file__).resolve(), log_name="concurrency-runs")
    try:
        worker.wait_healthy()
        yield define(flows.hatchet)
    finally:
        worker.stop()


def statuses(flows, run_ids: list[str]) -> dict[str, str]:
    return {r: flows.hatchet.runs.get_status(r).value for r in run_ids}


def test_workflow_level_keys_admit_every_task_of_a_run(flows, concurrency):
    wf = concurrency["two_keys"]
    # Eight runs over two names and two digits: each name's runs go one at a time, each digit's two at a time, so
    # most runs wait for a key with both of their tasks.
    inputs = [KeysInput(name=("anna", "levin")[i % 2], digit=str((i // 2) % 2)) for i in range(8)]
    tag = str(uuid.uuid4())
    refs = wf.run_many_no_wait([wf.create_bulk_run_item(input=i, additional_metadata={"test": tag}) for i in inputs])
    run_ids = [r.workflow_run_id for r in refs]
    # Eight runs of 0.5 s, at most two at once (one per name): a few seconds. A wedged key would hold its runs until
    # the schedule timeout (5 minutes).
    wait_for(lambda: set(statuses(flows, run_ids).values()) == {"COMPLETED"}, 60, "every run to complete",
             interval=0.5)

    spans = []
    for inp, ref in zip(inputs, refs):
        out = ref.result()
        spans.append((inp, min(t["started"] for t in out.values()), max(t["finished"] for t in out.values())))
    # While any run was going, the runs going at the same time held at most max_runs of each key.
    for _, start, _ in spans:
        live = [inp for inp, s, f in spans if s <= start < f]
        assert max(Counter(i.name for i in live).values()) <= NAME_MAX_RUNS, (start, live)
        assert max(Counter(i.digit for i in live).values()) <= DIGIT_MAX_RUNS, (start, live)


def test_cancel_newest_at_workflow_level_cancels_whole_runs(flows, concurrency):
    wf = concurrency["cancel_newest"]
    group = GroupInput(group=str(uuid.uuid4()))
    first = wf.run_no_wait(group)
    wait_for(lambda: flows.hatchet.runs.get_status(first.workflow_run_id).value == "RUNNING", 30,
             "the first run to start", interval=0.2)
    extra = wf.run_many_no_wait([wf.create_bulk_run_item(input=group) for _ in range(5)])
    extra_ids = [r.workflow_run_id for r in extra]
    # Every extra run ends CANCELLED (not RUNNING forever with step2 never created).
    wait_for(lambda: set(statuses(flows, extra_ids).values()) == {"CANCELLED"}, 30, "the extra runs to be cancelled",
             interval=0.3)
    assert first.result() == {"step1": {"step": "1"}, "step2": {"step": "2"}}
    assert flows.hatchet.runs.get_status(first.workflow_run_id).value == "COMPLETED"
    # An extra run's tasks are both cancelled: step1 at admission, step2 because its parent was.
    details = flows.hatchet.runs.get(extra_ids[0])
    assert details.run.status.value == "CANCELLED"
    assert {t.status.value for t in details.tasks} == {"CANCELLED"}, details.tasks


if __name__ == "__main__":
    run_worker(sys.argv[1])
