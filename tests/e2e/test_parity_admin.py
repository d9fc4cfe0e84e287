"""More differences from Hatchet found with its own SDK suite and the SDK's feature clients (issue 20), each pinned
with the real SDK:

* `workflows.pause` holds a workflow's runs QUEUED until `workflows.unpause`; a run held longer than the pause's
  queue TTL is cancelled; a pause with DROP makes crons and one-off schedules create no runs; `workflows.delete`
  deletes a workflow (refused, 409, while it has work in progress).
* A failed attempt that is retried shows as FAILED then RETRYING in `runs.get(...).task_events` (Hatchet's
  non_retryable test counts three FAILED events), and an execution timeout fails with Hatchet's text,
  `Task exceeded timeout of 2s`.
* Worker labels given when a run is triggered (`TriggerWorkflowOptions(desired_worker_label=...)`) decide where it runs.
* `metrics.get_task_metrics`, `get_task_stats`, `get_queue_metrics` and `cel.debug` answer real data.
* v1 `AdminService.CancelTasks` with a filter and `AdminService.ReplayTasks` over gRPC (the SDK's own stub).
* `event.get`, `event.list(event_ids=...)` and `EventsService.ReplaySingleEvent` (a new event, same key and payload).

The workflows are defined here and served by two worker processes that run this file as a script
(`python test_parity_admin.py <worker name>`), labelled `zone=a` and `zone=b`.
"""

import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hatchet_sdk import (
    Context,
    DesiredWorkerLabel,
    EmptyModel,
    NonRetryableException,
    RunStatus,
    TriggerWorkflowOptions,
)
from hatchet_sdk.clients.rest.exceptions import ApiException
from hatchet_sdk.clients.rest.models.v1_task_event_type import V1TaskEventType
from hatchet_sdk.clients.rest.models.v1_task_status import V1TaskStatus
from hatchet_sdk.exceptions import FailedTaskRunExceptionGroup

from conftest import WorkerProcess, wait_for

WORKERS = {"e2e-admin-a": {"zone": "a"}, "e2e-admin-b": {"zone": "b"}}


def define(hatchet):
    """The workflows of this file, on a Hatchet client (the worker's or the test process's)."""

    @hatchet.task(name="e2e-admin-pausable")
    def pausable(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"result": "done"}

    @hatchet.task(name="e2e-admin-counted")
    def counted(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"result": "done"}

    @hatchet.task(name="e2e-admin-deletable")
    def deletable(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"result": "done"}

    @hatchet.task(name="e2e-admin-where")
    def where(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"worker": sys.argv[1]}

    @hatchet.task(name="e2e-admin-slow", execution_timeout=timedelta(seconds=2), retries=0)
    def slow(input: EmptyModel, ctx: Context) -> dict[str, str]:
        time.sleep(10)
        return {"result": "too late"}

    where_dag = hatchet.workflow(name="e2e-admin-where-dag")

    @where_dag.task()
    def first(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"worker": sys.argv[1]}

    @where_dag.task(parents=[first])
    def second(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"worker": sys.argv[1]}

    failing = hatchet.workflow(name="e2e-admin-failing")

    @failing.task(retries=1)
    def should_not_retry(input: EmptyModel, ctx: Context) -> None:
        raise NonRetryableException("this task should not retry")

    @failing.task(retries=1)
    def should_retry(input: EmptyModel, ctx: Context) -> None:
        raise TypeError("this task should retry")

    @failing.task(retries=1)
    def succeeds(input: EmptyModel, ctx: Context) -> None:
        pass

    return dict(pausable=pausable, counted=counted, deletable=deletable, where=where, where_dag=where_dag, slow=slow,
                failing=failing)


def run_worker(name: str) -> None:
    from hatchet_sdk import Hatchet

    hatchet = Hatchet()
    w = define(hatchet)
    worker = hatchet.worker(name, slots=5, labels=WORKERS[name], workflows=list(w.values()))
    worker.start()


@pytest.fixture(scope="module")
def admin(server, flows):
    """Two labelled workers serving this file's workflows, and the workflows on the test process's client."""
    workers = [WorkerProcess(server, name, script=Path(__file__).resolve()) for name in WORKERS]
    try:
        for w in workers:
            w.wait_healthy()
        yield define(flows.hatchet)
    finally:
        for w in workers:
            w.stop()


def status(hatchet, run_id: str) -> RunStatus:
    return hatchet.runs.get_details(run_id).status


# ------------------------------------------------------------------------------------------------------------------
# Pause, unpause, delete
# ------------------------------------------------------------------------------------------------------------------


def test_a_paused_workflow_holds_its_runs_until_unpaused(flows, admin):
    hatchet = flows.hatchet
    wf = admin["pausable"]
    paused = hatchet.workflows.pause(wf.id, queue_ttl=timedelta(minutes=10))
    assert paused.is_paused
    try:
        ref = wf.run_no_wait()
        for _ in range(3):
            assert status(hatchet, ref.workflow_run_id) == RunStatus.QUEUED
            time.sleep(1)
        # While it waits, the metrics see it queued on the workflow's queue.
        stats = hatchet.metrics.get_task_stats()
        assert stats["e2e-admin-pausable"].queued.total >= 1, stats
        assert stats["e2e-admin-pausable"].running is None, stats
        assert hatchet.metrics.get_queue_metrics().get("e2e-admin-pausable:e2e-admin-pausable", 0) >= 1
        scrape = hatchet.metrics.scrape_tenant_prometheus_metrics()
        assert 'queue="e2e-admin-pausable:e2e-admin-pausable"' in scrape, scrape
    finally:
        unpaused = hatchet.workflows.unpause(wf.id)
    assert not unpaused.is_paused
    assert ref.result() == {"result": "done"}


def test_a_run_held_past_the_queue_ttl_is_cancelled(flows, admin):
    hatchet = flows.hatchet
    wf = admin["pausable"]
    hatchet.workflows.pause(wf.id, queue_ttl=timedelta(seconds=1))
    try:
        ref = wf.run_no_wait()
        wait_for(lambda: status(hatchet, ref.workflow_run_id) == RunStatus.CANCELLED, 15,
                 "the held run to be cancelled after its queue TTL")
    finally:
        hatchet.workflows.unpause(wf.id)
    # Unpausing does not bring it back.
    time.sleep(1)
    assert status(hatchet, ref.workflow_run_id) == RunStatus.CANCELLED


def test_a_pause_with_drop_creates_no_cron_or_scheduled_runs(flows, admin):
    hatchet = flows.hatchet
    wf = admin["pausable"]
    tag = uuid.uuid4().hex
    hatchet.workflows.pause(wf.id, queue_ttl=timedelta(minutes=1), paused_workflow_cron_run_queue_behavior="DROP",
                            paused_workflow_scheduled_run_queue_behavior="DROP")
    cron = wf.create_cron(cron_name=f"drop-{tag}", expression="* * * * * *", additional_metadata={"drop": tag})
    try:
        hatchet.scheduled.create(workflow_name="e2e-admin-pausable",
                                 trigger_at=datetime.now(timezone.utc) + timedelta(seconds=1),
                                 input={}, additional_metadata={"drop": tag})
        time.sleep(5)
        assert hatchet.runs.list(additional_metadata={"drop": tag}).rows == []
    finally:
        hatchet.cron.delete(cron.metadata.id)
        hatchet.workflows.unpause(wf.id)


def test_a_paused_workflow_queues_cron_runs_by_default(flows, admin):
    hatchet = flows.hatchet
    wf = admin["pausable"]
    tag = uuid.uuid4().hex
    hatchet.workflows.pause(wf.id, queue_ttl=timedelta(minutes=1))
    cron = wf.create_cron(cron_name=f"queue-{tag}", expression="* * * * * *", additional_metadata={"queue": tag})
    try:
        wait_for(lambda: hatchet.runs.list(additional_metadata={"queue": tag}).rows, 10, "a cron run while paused")
        rows = hatchet.runs.list(additional_metadata={"queue": tag}).rows
        assert all(r.status == V1TaskStatus.QUEUED for r in rows), rows
    finally:
        hatchet.cron.delete(cron.metadata.id)
        hatchet.workflows.unpause(wf.id)
    first = rows[0].metadata.id
    assert hatchet.runs.get_run_ref(first).result() == {"e2e-admin-pausable": {"result": "done"}}


def test_a_workflow_can_be_deleted(flows, admin):
    hatchet = flows.hatchet
    wf = admin["deletable"]
    workflow_id = wf.id
    # Work in progress keeps it: a paused workflow's queued run.
    hatchet.workflows.pause(workflow_id, queue_ttl=timedelta(minutes=10))
    held = wf.run_no_wait()
    with pytest.raises(ApiException) as refused:
        hatchet.workflows.delete(workflow_id)
    assert refused.value.status == 409, refused.value
    assert hatchet.workflows.get(workflow_id).name == "e2e-admin-deletable"
    hatchet.runs.cancel(held.workflow_run_id)
    wait_for(lambda: status(hatchet, held.workflow_run_id) == RunStatus.CANCELLED, 10, "the held run to be cancelled")

    hatchet.workflows.delete(workflow_id)
    with pytest.raises(ApiException) as gone:
        hatchet.workflows.get(workflow_id)
    assert gone.value.status == 404
    assert "e2e-admin-deletable" not in [w.name for w in hatchet.workflows.list().rows]
    # Finished runs stay readable.
    assert status(hatchet, held.workflow_run_id) == RunStatus.CANCELLED
    with pytest.raises(ApiException) as again:
        hatchet.workflows.delete(workflow_id)
    assert again.value.status == 404


# ------------------------------------------------------------------------------------------------------------------
# Failures and timeouts as Hatchet records them
# ------------------------------------------------------------------------------------------------------------------


def test_a_retried_failure_records_failed_then_retrying(flows, admin):
    hatchet = flows.hatchet
    ref = admin["failing"].run_no_wait()
    with pytest.raises(FailedTaskRunExceptionGroup) as info:
        ref.result()
    assert len(info.value.exceptions) == 2
    details = hatchet.runs.get(ref.workflow_run_id)
    ids = {t.display_name.rsplit("-", 1)[0]: t.task_external_id for t in details.tasks}
    retrying = [e for e in details.task_events if e.event_type == V1TaskEventType.RETRYING]
    failed = [e for e in details.task_events if e.event_type == V1TaskEventType.FAILED]
    assert [e.task_id for e in retrying] == [ids["should_retry"]], details.task_events
    # One FAILED for each failed attempt: should_not_retry once, should_retry twice (its retry failed too).
    assert sorted(e.task_id for e in failed) == sorted([ids["should_not_retry"], ids["should_retry"],
                                                        ids["should_retry"]]), details.task_events
    assert all("this task should retry" in (e.error_message or "") for e in failed
               if e.task_id == ids["should_retry"])


def test_an_execution_timeout_fails_with_hatchets_text(flows, admin):
    ref = admin["slow"].run_no_wait()
    with pytest.raises(Exception, match="Task exceeded timeout of 2s"):
        ref.result()


# ------------------------------------------------------------------------------------------------------------------
# Placement by labels given at trigger time
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("zone", ["a", "b"])
def test_trigger_time_worker_labels_place_the_run(flows, admin, zone):
    wf = admin["where"]
    options = TriggerWorkflowOptions(
        desired_worker_label=[DesiredWorkerLabel(key="zone", value=zone, required=True)])
    refs = [wf.run_no_wait(options=options) for _ in range(6)]
    assert {r.result()["worker"] for r in refs} == {f"e2e-admin-{zone}"}


@pytest.mark.parametrize("zone", ["a", "b"])
def test_trigger_time_worker_labels_place_every_task_of_a_dag(flows, admin, zone):
    wf = admin["where_dag"]
    options = TriggerWorkflowOptions(
        desired_worker_label=[DesiredWorkerLabel(key="zone", value=zone, required=True)])
    refs = [wf.run_no_wait(options=options) for _ in range(4)]
    for r in refs:
        assert r.result() == {"first": {"worker": f"e2e-admin-{zone}"}, "second": {"worker": f"e2e-admin-{zone}"}}


def test_trigger_time_labels_no_worker_has_stay_queued(flows, admin):
    wf = admin["where"]
    options = TriggerWorkflowOptions(
        desired_worker_label=[DesiredWorkerLabel(key="zone", value="nowhere", required=True)])
    ref = wf.run_no_wait(options=options)
    time.sleep(2)
    assert status(flows.hatchet, ref.workflow_run_id) == RunStatus.QUEUED
    flows.hatchet.runs.cancel(ref.workflow_run_id)


# ------------------------------------------------------------------------------------------------------------------
# Metrics and CEL
# ------------------------------------------------------------------------------------------------------------------


def test_task_metrics_count_a_workflows_tasks_by_status(flows, admin):
    hatchet = flows.hatchet
    since = datetime.now(timezone.utc)
    wf = admin["counted"]
    for ref in [wf.run_no_wait() for _ in range(3)]:
        ref.result()
    metrics = hatchet.metrics.get_task_metrics(since=since, workflow_ids=[wf.id])
    assert metrics.model_dump() == {"completed": 3, "failed": 0, "cancelled": 0, "queued": 0, "running": 0}
    # A window before the runs sees none of them.
    before = hatchet.metrics.get_task_metrics(since=since - timedelta(hours=1), until=since, workflow_ids=[wf.id])
    assert before.completed == 0

    # The failing workflow: two tasks failed, one completed.
    with pytest.raises(FailedTaskRunExceptionGroup):
        admin["failing"].run()
    failing = hatchet.metrics.get_task_metrics(since=since, workflow_ids=[admin["failing"].id])
    assert failing.model_dump() == {"completed": 1, "failed": 2, "cancelled": 0, "queued": 0, "running": 0}


def test_cel_debug_evaluates_like_an_event_filter(flows, admin):
    cel = flows.hatchet.cel
    ok = cel.debug(expression="input.a > 1 && additional_metadata.k == 'v' && payload.p == 3",
                   input={"a": 2}, additional_metadata={"k": "v"}, filter_payload={"p": 3})
    assert ok.result.output is True, ok
    no = cel.debug(expression="input.a > 1", input={"a": 0})
    assert no.result.output is False, no
    broken = cel.debug(expression="input.a >", input={"a": 0})
    assert broken.result.error, broken
    not_bool = cel.debug(expression="input.s", input={"s": "text"})
    assert "boolean" in not_bool.result.error, not_bool


# ------------------------------------------------------------------------------------------------------------------
# v1 AdminService CancelTasks (filter) and ReplayTasks over gRPC
# ------------------------------------------------------------------------------------------------------------------


def grpc_admin(hatchet):
    from hatchet_sdk.utils.api_auth import create_authorization_header

    admin_client = hatchet._client.admin
    return admin_client._get_or_create_v1_client(), create_authorization_header(admin_client.token)


def test_cancel_tasks_with_a_filter_and_replay_tasks_over_grpc(flows, admin):
    from google.protobuf import timestamp_pb2
    from hatchet_sdk.contracts.v1 import workflows_pb2

    hatchet = flows.hatchet
    wf = admin["pausable"]
    tag = uuid.uuid4().hex
    since = timestamp_pb2.Timestamp()
    since.FromDatetime(datetime.now(timezone.utc) - timedelta(minutes=1))
    hatchet.workflows.pause(wf.id, queue_ttl=timedelta(minutes=10))
    try:
        meta = TriggerWorkflowOptions(additional_metadata={"grpc": tag})
        held = [wf.run_no_wait(options=meta) for _ in range(3)]
        other = wf.run_no_wait()
        stub, md = grpc_admin(hatchet)
        res = stub.CancelTasks(workflows_pb2.CancelTasksRequest(filter=workflows_pb2.TasksFilter(
            since=since, additional_metadata=[f"grpc:{tag}"])), metadata=md)
        assert sorted(res.cancelled_tasks) == sorted(r.workflow_run_id for r in held)
        for r in held:
            assert status(hatchet, r.workflow_run_id) == RunStatus.CANCELLED
        assert status(hatchet, other.workflow_run_id) == RunStatus.QUEUED
    finally:
        hatchet.workflows.unpause(wf.id)
    assert other.result() == {"result": "done"}

    # Replaying the cancelled runs (by filter) runs them now that the workflow is unpaused.
    replayed = stub.ReplayTasks(workflows_pb2.ReplayTasksRequest(filter=workflows_pb2.TasksFilter(
        since=since, additional_metadata=[f"grpc:{tag}"])), metadata=md)
    assert len(replayed.replayed_tasks) == 3, replayed
    for r in held:
        assert hatchet.runs.get_run_ref(r.workflow_run_id).result() == {"e2e-admin-pausable": {"result": "done"}}

    # By id, and nothing at all is INVALID_ARGUMENT.
    import grpc

    by_id = stub.ReplayTasks(workflows_pb2.ReplayTasksRequest(external_ids=[other.workflow_run_id]), metadata=md)
    assert len(by_id.replayed_tasks) == 1, by_id
    with pytest.raises(grpc.RpcError) as nothing:
        stub.CancelTasks(workflows_pb2.CancelTasksRequest(), metadata=md)
    assert nothing.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# ------------------------------------------------------------------------------------------------------------------
# Events by id: event.get, event.list(event_ids=...), ReplaySingleEvent
# ------------------------------------------------------------------------------------------------------------------


def test_events_by_id_and_replaying_one(flows, admin):
    from hatchet_sdk.contracts import events_pb2
    from hatchet_sdk.utils.api_auth import create_authorization_header

    hatchet = flows.hatchet
    tag = uuid.uuid4().hex
    key = f"e2e-admin-event-{tag}"
    pushed = [hatchet.event.push(key, {"n": n}, additional_metadata={"tag": tag}) for n in range(3)]
    ids = [e.event_id for e in pushed]

    one = hatchet.event.get(ids[1])
    assert (one.metadata.id, one.key, one.payload) == (ids[1], key, {"n": 1})
    listed = hatchet.event.list(event_ids=[ids[0], ids[2]]).rows
    assert sorted(e.metadata.id for e in listed) == sorted([ids[0], ids[2]])
    # The other filters still apply to the ids given.
    assert hatchet.event.list(event_ids=[ids[0]], keys=["another-key"]).rows == []
    with pytest.raises(ApiException) as unknown:
        hatchet.event.get(str(uuid.uuid4()))
    assert unknown.value.status == 404

    events = hatchet._client.event
    again = events._get_or_create_client().ReplaySingleEvent(
        events_pb2.ReplayEventRequest(event_id=ids[2]), metadata=create_authorization_header(events.token))
    assert again.event_id not in ids and again.key == key
    replayed = hatchet.event.get(again.event_id)
    assert replayed.payload == {"n": 2} and replayed.additional_metadata == {"tag": tag}
    assert len(hatchet.event.list(keys=[key]).rows) == 4


if __name__ == "__main__":
    run_worker(sys.argv[1])
