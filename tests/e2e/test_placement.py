"""Placement, replay and rate-limit pauses with the real hatchet-sdk.

* A sticky workflow (SOFT and HARD) served by two workers: every later task of a run runs on the worker that ran
  its first task, while the first tasks of concurrent runs spread over both workers (so stickiness is what keeps a
  run together, not chance).
* A child spawned with `sticky=True` runs on its parent's worker.
* `runs.replay` re-runs a failed DAG run (all of its tasks) and it completes.
* `rate_limits.pause` holds tasks that need the limit until it is unpaused.

The workflows are defined here and served by two worker processes that run this file as a script
(`python test_placement.py <worker name>`), so they need nothing from flows.py.
"""

import os
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hatchet_sdk import Context, EmptyModel, RateLimit, StickyStrategy
from pydantic import BaseModel

from conftest import WorkerProcess, wait_for

STICKY_WORKERS = ("e2e-sticky-a", "e2e-sticky-b")
RATE_LIMIT_KEY = "e2e-pausable"


class MarkerInput(BaseModel):
    marker: str
    log: str


def define(hatchet):
    """The workflows of this file, on a Hatchet client (the worker's or the test process's)."""

    def where(ctx: Context) -> dict[str, str]:
        # The worker process's name (run_worker sets it): which worker ran the task.
        return {"worker": os.environ.get("PLACEMENT_WORKER", "")}

    chains = {}
    for strategy in (StickyStrategy.SOFT, StickyStrategy.HARD):
        wf = hatchet.workflow(name=f"e2e-sticky-{strategy.value.lower()}", sticky=strategy)

        @wf.task(name="first")
        async def first(input: EmptyModel, ctx: Context) -> dict[str, str]:
            # Long enough that the first tasks of concurrent runs are all running at once, on both workers.
            import asyncio

            await asyncio.sleep(1.0)
            return where(ctx)

        @wf.task(name="second", parents=[first])
        def second(input: EmptyModel, ctx: Context) -> dict[str, str]:
            return where(ctx)

        @wf.task(name="third", parents=[second])
        def third(input: EmptyModel, ctx: Context) -> dict[str, str]:
            return where(ctx)

        chains[strategy.value] = wf

    child = hatchet.workflow(name="e2e-sticky-child")

    @child.task(name="child")
    def child_task(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return where(ctx)

    parent = hatchet.workflow(name="e2e-sticky-parent")

    @parent.task(name="spawn")
    async def spawn(input: EmptyModel, ctx: Context) -> dict[str, object]:
        import asyncio

        await asyncio.sleep(0.5)
        # The SDK sets the child's desired worker to ctx.worker_id (the AssignedAction's worker_id).
        assert ctx.worker_id, "the server sent no worker_id with the assignment"
        result = await child.aio_run(sticky=True)
        return {"parent": where(ctx)["worker"], "child": result["child"]["worker"]}

    flaky = hatchet.workflow(name="e2e-replay-flaky", input_validator=MarkerInput)

    @flaky.task(name="prepare")
    def prepare(input: MarkerInput, ctx: Context) -> dict[str, str]:
        with open(input.log, "a") as f:
            f.write("prepare\n")
        return {"prepared": "yes"}

    @flaky.task(name="check", parents=[prepare], retries=0)
    def check(input: MarkerInput, ctx: Context) -> dict[str, str]:
        with open(input.log, "a") as f:
            f.write("check\n")
        if not os.path.exists(input.marker):
            raise ValueError("the marker file is missing")
        return {"prepared": ctx.task_output(prepare)["prepared"]}

    @hatchet.task(name="e2e-pausable", rate_limits=[RateLimit(static_key=RATE_LIMIT_KEY, units=1)])
    def pausable(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"ran": "yes"}

    return dict(chains=chains, child=child, parent=parent, flaky=flaky, pausable=pausable)


def run_worker(name: str) -> None:
    from hatchet_sdk import Hatchet

    os.environ["PLACEMENT_WORKER"] = name
    hatchet = Hatchet()
    w = define(hatchet)
    worker = hatchet.worker(
        name,
        slots=3,
        workflows=[*w["chains"].values(), w["child"], w["parent"], w["flaky"], w["pausable"]],
    )
    worker.start()


@pytest.fixture(scope="module")
def placement(server, flows):
    """Two workers serving this file's workflows, and the workflows on the test process's client."""
    workers = [WorkerProcess(server, name, script=Path(__file__).resolve()) for name in STICKY_WORKERS]
    try:
        for w in workers:
            w.wait_healthy()
        yield define(flows.hatchet)
    finally:
        for w in workers:
            w.stop()


@pytest.mark.parametrize("strategy", ["SOFT", "HARD"])
def test_sticky_workflow_keeps_a_run_on_the_first_tasks_worker(flows, placement, strategy):
    wf = placement["chains"][strategy]
    refs = wf.run_many_no_wait([wf.create_bulk_run_item(input=EmptyModel()) for _ in range(6)])
    results = [ref.result() for ref in refs]
    firsts = set()
    for r in results:
        first = r["first"]["worker"]
        firsts.add(first)
        assert r["second"]["worker"] == first, r
        assert r["third"]["worker"] == first, r
    # The six first tasks ran three and three on the two workers (3 slots each, 1 s each): both workers anchored runs.
    assert firsts == set(STICKY_WORKERS), (firsts, results)


def test_child_spawned_with_sticky_runs_on_the_parents_worker(flows, placement):
    wf = placement["parent"]
    # Two parents at a time: they spread over the two workers (one each), and each worker has room for its
    # parent's child, so the child has no reason but stickiness to pick a worker.
    results = []
    for _ in range(2):
        refs = wf.run_many_no_wait([wf.create_bulk_run_item(input=EmptyModel()) for _ in range(2)])
        results += [ref.result()["spawn"] for ref in refs]
    for r in results:
        assert r["child"] == r["parent"], results
    assert {r["parent"] for r in results} == set(STICKY_WORKERS), results


def test_replay_reruns_a_failed_run(flows, placement, tmp_path):
    from hatchet_sdk import FailedTaskRunExceptionGroup

    tmp_path.chmod(0o777)
    marker, log = tmp_path / "marker", tmp_path / "log"
    wf = placement["flaky"]
    ref = wf.run_no_wait(MarkerInput(marker=str(marker), log=str(log)))
    with pytest.raises(FailedTaskRunExceptionGroup):
        ref.result()
    run_id = ref.workflow_run_id
    assert flows.hatchet.runs.get_status(run_id).value == "FAILED"
    assert log.read_text().split() == ["prepare", "check"]

    marker.write_text("present")
    flows.hatchet.runs.replay(run_id)
    wait_for(lambda: flows.hatchet.runs.get_status(run_id).value == "COMPLETED", 60, "the replayed run to complete",
             interval=0.3)
    # The whole run ran again, in order: its first task, then the one that failed.
    assert log.read_text().split() == ["prepare", "check", "prepare", "check"]

    # A finished run replayed again runs again; an unknown run is refused.
    flows.hatchet.runs.replay(run_id)
    wait_for(lambda: len(log.read_text().split()) == 6 and flows.hatchet.runs.get_status(run_id).value == "COMPLETED",
             60, "the second replay to complete", interval=0.3)
    with pytest.raises(Exception):
        flows.hatchet.runs.replay(str(uuid.uuid4()))


def test_paused_rate_limit_holds_tasks_until_unpaused(flows, placement):
    from hatchet_sdk import RateLimitDuration

    rate_limits = flows.hatchet.rate_limits
    rate_limits.put(RATE_LIMIT_KEY, 100, RateLimitDuration.SECOND)
    until = datetime.now(timezone.utc) + timedelta(hours=1)
    paused_until = rate_limits.pause(RATE_LIMIT_KEY, until)
    assert abs((paused_until - until).total_seconds()) < 1
    listed = {r.key: r for r in rate_limits.list().rows or []}
    assert listed[RATE_LIMIT_KEY].paused_until is not None

    ref = placement["pausable"].run_no_wait()
    # Held: still queued after a few seconds with free slots on two workers.
    time.sleep(3)
    assert flows.hatchet.runs.get_status(ref.workflow_run_id).value == "QUEUED"

    rate_limits.pause(RATE_LIMIT_KEY, datetime.now(timezone.utc) - timedelta(seconds=1))
    assert ref.result()["ran"] == "yes"
    listed = {r.key: r for r in rate_limits.list().rows or []}
    assert listed[RATE_LIMIT_KEY].paused_until is None


if __name__ == "__main__":
    run_worker(sys.argv[1])
