"""Differences from Hatchet found by running Hatchet's own SDK suite (issue 20), each pinned with the real SDK.

* A task cancelled by a `cancel_if` condition (and the task downstream of it) carries no error in the run's results:
  `aio_result` returns the other tasks' outputs instead of raising, and `runs.get_details` reports no error for a
  cancelled task, as Hatchet does.
* `runs.get_details` of a running DAG lists only the tasks created so far (no placeholders with empty ids).
* A task's display name is `<readable id>-<unix timestamp>`, as Hatchet names tasks.
* A DAG run in `runs.list` carries its tasks as `children`.
* A cron can be run now (`POST .../workflows/crons/{cron}`), `workflows.list` honours `limit` and `offset`, and
  `runs.get` returns the run's shape (steps and their children).

The workflows are defined here and served by a worker process that runs this file as a script
(`python test_parity.py <worker name>`), so they need nothing from flows.py.
"""

import asyncio
import re
import sys
import uuid
from pathlib import Path

import pytest
from hatchet_sdk import Context, EmptyModel, ParentCondition, RunStatus, TriggerWorkflowOptions, V1TaskStatus
from pydantic import BaseModel

from conftest import WorkerProcess, wait_for

WORKER = "e2e-parity"


class Tag(BaseModel):
    tag: str


def define(hatchet):
    """The workflows of this file, on a Hatchet client (the worker's or the test process's)."""
    cancel_if = hatchet.workflow(name="e2e-parity-cancel-if")

    @cancel_if.task(name="start")
    def start(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"n": 2}

    @cancel_if.task(
        name="cancelled",
        parents=[start],
        cancel_if=[ParentCondition(parent=start, expression="output.n > 1")],
    )
    def cancelled(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"n": 3}  # never runs

    @cancel_if.task(name="downstream", parents=[cancelled])
    def downstream(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"n": 4}  # never runs

    slow_dag = hatchet.workflow(name="e2e-parity-slow-dag", input_validator=Tag)

    @slow_dag.task(name="first")
    async def first(input: Tag, ctx: Context) -> dict[str, str]:
        await asyncio.sleep(4)
        return {"tag": input.tag}

    @slow_dag.task(name="second", parents=[first])
    def second(input: Tag, ctx: Context) -> dict[str, str]:
        return {"tag": input.tag}

    return dict(cancel_if=cancel_if, slow_dag=slow_dag)


def run_worker(name: str) -> None:
    from hatchet_sdk import Hatchet

    hatchet = Hatchet()
    w = define(hatchet)
    worker = hatchet.worker(name, slots=4, workflows=list(w.values()))
    worker.start()


@pytest.fixture(scope="module")
def parity(server, flows):
    """A worker serving this file's workflows, and the workflows on the test process's client."""
    worker = WorkerProcess(server, WORKER, script=Path(__file__).resolve())
    try:
        worker.wait_healthy()
        yield define(flows.hatchet)
    finally:
        worker.stop()


async def test_a_task_cancelled_by_cancel_if_is_no_error(flows, parity):
    ref = await parity["cancel_if"].aio_run_no_wait()
    # Hatchet reports no error for a cancelled task: the run's result holds the outputs of the others.
    result = await ref.aio_result()
    assert result == {"start": {"n": 2}}, result

    details = await flows.hatchet.runs.aio_get_details(ref.workflow_run_id)
    assert details.status == RunStatus.CANCELLED
    assert details.task_runs["start"].status == V1TaskStatus.COMPLETED
    assert details.task_runs["cancelled"].status == V1TaskStatus.CANCELLED
    assert all(t.error is None for t in details.task_runs.values()), details.task_runs


def test_run_details_list_only_created_tasks(flows, parity):
    ref = parity["slow_dag"].run_no_wait(Tag(tag="x"))
    wait_for(lambda: flows.hatchet.runs.get_details(ref.workflow_run_id).status == RunStatus.RUNNING, 20,
             "the run to start")
    # `second` waits for `first`: it has no task yet, so it is not listed.
    running = flows.hatchet.runs.get_details(ref.workflow_run_id)
    assert set(running.task_runs) == {"first"}, running.task_runs
    assert all(t.external_id for t in running.task_runs.values())

    assert ref.result() == {"first": {"tag": "x"}, "second": {"tag": "x"}}
    done = flows.hatchet.runs.get_details(ref.workflow_run_id)
    assert set(done.task_runs) == {"first", "second"}


def test_task_display_names_carry_a_timestamp(flows, parity):
    ref = parity["slow_dag"].run_no_wait(Tag(tag="names"))
    ref.result()
    details = flows.hatchet.runs.get(ref.workflow_run_id)
    names = sorted(t.display_name for t in details.tasks)
    assert len(names) == 2
    assert all(re.fullmatch(r"(first|second)-\d{10}", n) for n in names), names
    assert names[0].startswith("first-") and names[1].startswith("second-")


def test_a_dag_run_in_a_run_list_has_its_tasks_as_children(flows, parity):
    tag = uuid.uuid4().hex
    ref = parity["slow_dag"].run_no_wait(Tag(tag=tag), options=TriggerWorkflowOptions(
        additional_metadata={"parity": tag}))
    ref.result()
    rows = flows.hatchet.runs.list(additional_metadata={"parity": tag}).rows
    assert [r.metadata.id for r in rows] == [ref.workflow_run_id], rows
    run = rows[0]
    # As in Hatchet (and examples/fanout): the DAG's tasks, each with the run's metadata.
    assert run.children, run
    assert sorted(c.display_name.rsplit("-", 1)[0] for c in run.children) == ["first", "second"]
    assert all(c.status == V1TaskStatus.COMPLETED for c in run.children)
    assert all(c.additional_metadata["parity"] == tag for c in run.children)


def test_a_cron_can_be_run_now(flows, parity):
    tag = uuid.uuid4().hex
    cron = flows.hatchet.cron.create(workflow_name="e2e-parity-slow-dag", cron_name=f"now-{tag}",
                                     expression="0 0 1 1 *", input={"tag": tag},
                                     additional_metadata={"parity": tag})
    try:
        # What Hatchet's examples/cron test calls: POST .../workflows/crons/{cron} answers the run's id.
        with flows.hatchet.cron.client() as client:
            res = flows.hatchet.cron._wa(client).workflow_cron_trigger(tenant=flows.hatchet.tenant_id,
                                                                        cron_workflow=cron.metadata.id)
        ref = flows.hatchet.runs.get_run_ref(res.external_id)
        assert ref.result() == {"first": {"tag": tag}, "second": {"tag": tag}}
        assert flows.hatchet.runs.get(res.external_id).run.additional_metadata["parity"] == tag
        # The cron itself still waits for its next tick.
        assert flows.hatchet.cron.get(cron.metadata.id).enabled
    finally:
        flows.hatchet.cron.delete(cron.metadata.id)


def test_workflows_list_honours_its_limit(flows, parity):
    everything = flows.hatchet.workflows.list()
    assert len(everything.rows) >= 2
    page = flows.hatchet.workflows.list(limit=1)
    assert [w.name for w in page.rows] == [everything.rows[0].name]
    second = flows.hatchet.workflows.list(limit=1, offset=1)
    assert [w.name for w in second.rows] == [everything.rows[1].name]


def test_a_run_has_its_shape(flows, parity):
    ref = parity["slow_dag"].run_no_wait(Tag(tag="shape"))
    ref.result()
    details = flows.hatchet.runs.get(ref.workflow_run_id)
    shape = {s.task_name: s for s in details.shape}
    assert set(shape) == {"first", "second"}, details.shape
    assert shape["first"].children_step_ids == [shape["second"].step_id]
    assert shape["second"].children_step_ids == []
    assert {s.task_external_id for s in details.shape} == {t.task_external_id for t in details.tasks}
    # Step ids belong to the workflow version, not to the run.
    again = parity["slow_dag"].run_no_wait(Tag(tag="shape-again"))
    again.result()
    assert {s.step_id for s in flows.hatchet.runs.get(again.workflow_run_id).shape} == \
        {s.step_id for s in details.shape}


if __name__ == "__main__":
    run_worker(sys.argv[1])
