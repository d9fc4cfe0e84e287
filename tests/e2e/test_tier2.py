"""Tier 2: child runs, the runs REST API, crons (SDK-created and declared), schedules, events, priority,
concurrency strategies, rate limits, desired worker labels."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from conftest import wait_for
from hatchet_sdk import TriggerWorkflowOptions
from hatchet_sdk.clients.rest.models.v1_task_status import V1TaskStatus

pytestmark = pytest.mark.usefixtures("main_worker")


def runs_with(flows, **metadata):
    return flows.hatchet.runs.list(additional_metadata=metadata).rows or []


# ---------------------------------------------------------------------------------------------------- child runs


def test_child_runs_spawned_and_awaited(flows):
    ref = flows.parent.run(flows.ParentInput(count=4), wait_for_result=False)
    result = ref.result()
    assert result == {"sum": 0 + 1 + 4 + 9, "extra": 100}
    # The children are runs of their own, listed under the parent task.
    parent_task = ref.workflow_run_id  # a single-task run's task has the run's id
    children = flows.hatchet.runs.list(parent_task_external_id=parent_task).rows
    assert len(children) == 5
    assert {c.workflow_name for c in children} == {"e2e-child"}
    assert all(c.status == V1TaskStatus.COMPLETED for c in children)
    assert all(c.parent_task_external_id == parent_task for c in children)
    assert sorted(c.output["square"] for c in children) == [0, 1, 4, 9, 100]
    assert flows.hatchet.runs.get(ref.workflow_run_id).tasks[0].num_spawned_children == 5


# ---------------------------------------------------------------------------------------------------- runs API


def test_runs_get_list_and_status(flows):
    test_id = str(uuid.uuid4())
    ref = flows.diamond.run(flows.DiamondInput(x=3), wait_for_result=False,
                            options=TriggerWorkflowOptions(additional_metadata={"test_id": test_id}))
    ref.result()

    assert flows.hatchet.runs.get_status(ref.workflow_run_id) == V1TaskStatus.COMPLETED

    details = flows.hatchet.runs.get(ref.workflow_run_id)
    assert details.run.status == V1TaskStatus.COMPLETED
    assert details.run.display_name == "E2EDiamond"
    assert details.run.input == {"x": 3}
    assert details.run.additional_metadata["test_id"] == test_id
    assert details.run.output["join"]["sum"] == 6 + 13
    # A task's display name is Hatchet's `<readable id>-<unix timestamp>`.
    assert sorted(t.display_name.rsplit("-", 1)[0] for t in details.tasks) == ["join", "left", "right", "start"]
    assert all(t.status == V1TaskStatus.COMPLETED for t in details.tasks)
    assert {e.event_type.value for e in details.task_events} >= {"QUEUED", "ASSIGNED", "FINISHED"}
    assert details.run.workflow_id == flows.diamond.id

    listed = runs_with(flows, test_id=test_id)
    assert [r.workflow_run_external_id for r in listed] == [ref.workflow_run_id]
    assert listed[0].type.value == "DAG"
    assert listed[0].status == V1TaskStatus.COMPLETED

    by_workflow = flows.hatchet.runs.list(workflow_ids=[flows.diamond.id], limit=200).rows
    assert ref.workflow_run_id in {r.workflow_run_external_id for r in by_workflow}
    assert {r.workflow_name for r in by_workflow} == {"E2EDiamond"}

    failed_only = flows.hatchet.runs.list(additional_metadata={"test_id": test_id},
                                          statuses=[V1TaskStatus.FAILED]).rows
    assert failed_only == []

    # A task id resolves to its run.
    join_id = next(t.task_external_id for t in details.tasks if t.display_name.startswith("join-"))
    assert flows.hatchet.runs.get(join_id).run.metadata.id == ref.workflow_run_id
    assert flows.hatchet.runs.get_task_run(join_id).output["sum"] == 19


def test_rest_trigger_and_result(flows):
    details = flows.hatchet.runs.create("e2e-echo", {"tag": "via-rest"})
    result = flows.hatchet.runs.get_run_ref(details.run.metadata.id).result()
    assert result["e2e-echo"]["tag"] == "via-rest"


def test_unknown_run_is_404(flows):
    from hatchet_sdk.clients.rest.exceptions import NotFoundException

    with pytest.raises(NotFoundException):
        flows.hatchet.runs.get(str(uuid.uuid4()))


def test_workers_are_listed_and_can_be_paused(flows, main_worker):
    workers = flows.hatchet.workers.list().rows
    main = next(w for w in workers if w.name == "e2e-main" and w.status.value == "ACTIVE")
    assert "e2e-simple:e2e-simple" in main.actions
    assert main.slot_config["default"].limit == 20

    paused = flows.hatchet.workers.pause(main.metadata.id)
    try:
        assert paused.status.value == "PAUSED"
        ref = flows.echo.run(flows.Echo(tag="while-paused"), wait_for_result=False)
        time.sleep(1.0)
        assert flows.hatchet.runs.get_status(ref.workflow_run_id) == V1TaskStatus.QUEUED
    finally:
        assert flows.hatchet.workers.unpause(main.metadata.id).status.value == "ACTIVE"
    assert ref.result()["tag"] == "while-paused"


# ---------------------------------------------------------------------------------------------------- crons and schedules


def test_cron_created_from_the_sdk_fires_and_is_deleted(flows):
    test_id = str(uuid.uuid4())
    cron = flows.hatchet.cron.create(
        workflow_name="e2e-echo",
        cron_name=f"every-2s-{test_id[:8]}",
        expression="*/2 * * * * *",
        input={"tag": "from-cron"},
        additional_metadata={"test_id": test_id},
    )
    try:
        assert cron.cron == "*/2 * * * * *"
        assert cron.workflow_name == "e2e-echo"
        listed = flows.hatchet.cron.list(workflow_name="e2e-echo").rows
        assert cron.metadata.id in {c.metadata.id for c in listed}
        assert flows.hatchet.cron.get(cron.metadata.id).name == cron.name

        fired = wait_for(lambda: runs_with(flows, test_id=test_id), 15, "a run started by the cron")
        run = fired[-1]
        result = flows.hatchet.runs.get_run_ref(run.workflow_run_external_id).result()
        assert result["e2e-echo"]["tag"] == "from-cron"
        assert result["e2e-echo"]["triggered_by"] == "cron"
    finally:
        flows.hatchet.cron.delete(cron.metadata.id)
    assert cron.metadata.id not in {c.metadata.id for c in flows.hatchet.cron.list(workflow_name="e2e-echo").rows}
    # No more runs once it is gone.
    settled = len(runs_with(flows, test_id=test_id))
    time.sleep(2.5)
    assert len(runs_with(flows, test_id=test_id)) == settled


def test_cron_declared_with_on_crons(flows, start_worker):
    start_worker("cron")
    declared = flows.hatchet.cron.list(workflow_name="e2e-declared-cron").rows
    assert [c.cron for c in declared] == ["*/2 * * * * *"]
    assert declared[0].method.value == "DEFAULT"
    workflow_id = flows.declared_cron.id
    done = wait_for(
        lambda: [r for r in flows.hatchet.runs.list(workflow_ids=[workflow_id]).rows
                 if r.status == V1TaskStatus.COMPLETED],
        15,
        "a completed run of the declared cron",
    )
    assert done[0].output == {"tag": "declared"}


def test_schedule_runs_at_the_given_time(flows):
    test_id = str(uuid.uuid4())
    run_at = datetime.now(tz=timezone.utc) + timedelta(seconds=2)
    version = flows.echo.schedule(run_at, flows.Echo(tag="scheduled"), additional_metadata={"test_id": test_id})
    assert len(version.scheduled_workflows) == 1
    scheduled_id = version.scheduled_workflows[0].id
    assert scheduled_id in {s.metadata.id for s in flows.hatchet.scheduled.list().rows}

    assert runs_with(flows, test_id=test_id) == []
    run = wait_for(lambda: runs_with(flows, test_id=test_id), 15, "the scheduled run")[0]
    result = flows.hatchet.runs.get_run_ref(run.workflow_run_external_id).result()
    assert result["e2e-echo"]["tag"] == "scheduled"
    assert result["e2e-echo"]["at"] >= run_at.timestamp()
    fired = flows.hatchet.scheduled.get(scheduled_id)
    assert fired.workflow_run_id == run.workflow_run_external_id


def test_scheduled_run_deleted_before_it_fires_never_runs(flows):
    test_id = str(uuid.uuid4())
    scheduled = flows.hatchet.scheduled.create(
        workflow_name="e2e-echo",
        trigger_at=datetime.now(tz=timezone.utc) + timedelta(seconds=2),
        input={"tag": "never"},
        additional_metadata={"test_id": test_id},
    )
    flows.hatchet.scheduled.delete(scheduled.metadata.id)
    time.sleep(3)
    assert runs_with(flows, test_id=test_id) == []


# ---------------------------------------------------------------------------------------------------- events


def test_event_push_triggers_the_workflow(flows):
    order = str(uuid.uuid4())
    event = flows.hatchet.event.push("e2e:order-created", {"order_id": order})
    assert len(event.event_id) == 36
    runs = wait_for(
        lambda: flows.hatchet.runs.list(triggering_event_external_id=event.event_id).rows,
        10,
        "the run triggered by the event",
    )
    assert len(runs) == 1
    result = flows.hatchet.runs.get_run_ref(runs[0].workflow_run_external_id).result()
    assert result["e2e-on-event"] == {"order_id": order, "key": "e2e:order-created"}

    listed = flows.hatchet.event.list(keys=["e2e:order-created"]).rows
    assert event.event_id in {e.metadata.id for e in listed}


def test_event_wildcards_and_unrelated_keys(flows):
    order = str(uuid.uuid4())
    matched = flows.hatchet.event.push("e2e:wild:anything", {"order_id": order})
    unrelated = flows.hatchet.event.push("e2e:unrelated", {"order_id": order})
    runs = wait_for(
        lambda: flows.hatchet.runs.list(triggering_event_external_id=matched.event_id).rows,
        10,
        "the run triggered by the wildcard",
    )
    result = flows.hatchet.runs.get_run_ref(runs[0].workflow_run_external_id).result()
    assert result["e2e-on-event"]["key"] == "e2e:wild:anything"
    assert flows.hatchet.runs.list(triggering_event_external_id=unrelated.event_id).rows == []


# ---------------------------------------------------------------------------------------------------- flow control


def test_priority_orders_the_queue(flows, start_worker):
    start_worker("single")
    # Occupy the only slot, then queue low-priority runs before high-priority ones.
    blocker = flows.prioritised.run(flows.Sleep(seconds=2), wait_for_result=False)
    wait_for(lambda: flows.hatchet.runs.get_status(blocker.workflow_run_id) == V1TaskStatus.RUNNING, 10,
             "the blocker to start")
    low = flows.prioritised.run_many(
        [flows.prioritised.create_bulk_run_item(options=TriggerWorkflowOptions(priority=1)) for _ in range(3)],
        wait_for_result=False,
    )
    high = flows.prioritised.run_many(
        [flows.prioritised.create_bulk_run_item(options=TriggerWorkflowOptions(priority=3)) for _ in range(3)],
        wait_for_result=False,
    )
    low_starts = [r.result()["at"] for r in low]
    high_starts = [r.result()["at"] for r in high]
    assert max(high_starts) < min(low_starts), (high_starts, low_starts)
    assert {r.result()["priority"] for r in high} == {3}


def test_group_round_robin_runs_one_per_key(flows):
    items = [
        flows.round_robin.create_bulk_run_item(flows.Group(group=g, seconds=0.4))
        for g in ["a", "a", "a", "b", "b", "b"]
    ]
    results = flows.round_robin.run_many(items)
    for group in ["a", "b"]:
        spans = sorted((r["start"], r["end"]) for r in results if r["group"] == group)
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert start >= end - 0.01, f"two runs of key {group} overlapped: {spans}"
    # Different keys did run side by side: the limit is per key, not global.
    a = [(r["start"], r["end"]) for r in results if r["group"] == "a"]
    b = [(r["start"], r["end"]) for r in results if r["group"] == "b"]
    assert any(sa < eb and sb < ea for sa, ea in a for sb, eb in b), (a, b)


def test_cancel_in_progress_cancels_the_older_run(flows):
    group = str(uuid.uuid4())
    # Long enough that it is still running when the second run arrives, however slow the machine (it is cancelled).
    first = flows.cancel_in_progress.run(flows.Group(group=group, seconds=30), wait_for_result=False)
    wait_for(lambda: flows.hatchet.runs.get_status(first.workflow_run_id) == V1TaskStatus.RUNNING, 10,
             "the first run to start")
    second = flows.cancel_in_progress.run(flows.Group(group=group, seconds=0.2), wait_for_result=False)
    assert second.result() == {"group": group}
    assert flows.hatchet.runs.get_status(first.workflow_run_id) == V1TaskStatus.CANCELLED


def test_rate_limit_spreads_the_runs(flows):
    from hatchet_sdk import RateLimitDuration

    flows.hatchet.rate_limits.put(flows.RATE_LIMIT_KEY, 2, RateLimitDuration.SECOND)
    results = flows.rate_limited.run_many([flows.rate_limited.create_bulk_run_item() for _ in range(6)])
    starts = sorted(r["at"] for r in results)
    # 2 per second: 6 runs need three windows, so the last starts over a second after the first.
    assert starts[-1] - starts[0] > 1.0, starts
    limits = {r.key: r for r in flows.hatchet.rate_limits.list().rows}
    assert limits[flows.RATE_LIMIT_KEY].limit_value == 2


def test_desired_worker_labels(flows, start_worker):
    start_worker("fancy", "plain")
    fancy = next(w for w in flows.hatchet.workers.list().rows if w.name == "e2e-fancy")
    assert {label.key: label.value for label in flows.hatchet.workers.get(fancy.metadata.id).labels} == {
        "model": "fancy",
        "memory": "256",
    }
    results = flows.affinity.run_many([flows.affinity.create_bulk_run_item() for _ in range(6)])
    assert {r["worker"] for r in results} == {"e2e-fancy"}
    # memory < 512 is only true of the fancy worker (256); plain has 1024.
    results = flows.affinity_memory.run_many([flows.affinity_memory.create_bulk_run_item() for _ in range(4)])
    assert {r["worker"] for r in results} == {"e2e-fancy"}
