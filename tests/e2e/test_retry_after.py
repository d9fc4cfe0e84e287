"""Retry-after (issue 19): a task that raises the SDK's RetryAfterException is retried after the delay it asked for
instead of its backoff, and the retry counts against its retries. hatchet-sdk sends the delay (retry_after_ms on the
FAILED StepActionEvent) whatever engine version it is connected to; below v0.111.0 it only logs a warning."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
from conftest import psql, wait_for
from hatchet_sdk import FailedTaskRunExceptionGroup
from hatchet_sdk.clients.rest.models.v1_task_status import V1TaskStatus
from hatchet_sdk.contracts import dispatcher_pb2

pytestmark = pytest.mark.usefixtures("main_worker")


def test_retry_after_overrides_backoff(flows):
    ref = flows.retry_after.run(wait_for_result=False)
    started = time.monotonic()
    result = ref.result()
    elapsed = time.monotonic() - started
    # Attempts 0 and 1 ask for 1.5 s each; attempt 2 succeeds.
    assert result == {"attempt": 2}
    # Each retry waited at least the 1.5 s it asked for (the backoff, 10 s then 60 s, is checked against the
    # engine's own schedule in test_retry_after_is_the_scheduled_delay).
    assert elapsed >= 2.9, elapsed
    events = flows.hatchet.runs.get(ref.workflow_run_id).task_events
    retrying = [e for e in events if e.event_type.value == "RETRYING"]
    assert [e.retry_count for e in retrying] == [0, 1]
    assert "attempt 0: busy, come back later" in retrying[0].message


def test_retry_after_is_the_scheduled_delay(flows, server):
    """The delay the SDK sent (retry_after_ms) is the one the engine scheduled: the pending retry is due exactly one
    hour after the RETRYING event, read from the engine's tables rather than timed by the test."""
    ref = flows.retry_after_hour.run(wait_for_result=False)
    run = ref.workflow_run_id

    def scheduled() -> str:
        return psql(server, "-c", f"""
            SELECT d.ready_at - e.created_at
            FROM hatchet.delayed_queue d
            JOIN hatchet.task_events e ON e.tenant_id = d.tenant_id AND e.task_id = d.task_id
                                      AND e.event_type = 'RETRYING'
            WHERE d.task_id = '{run}'""")

    wait_for(scheduled, 30, "the retry to be scheduled")
    assert scheduled() == "01:00:00"
    # Still waiting for its hour: no second attempt ran.
    assert flows.hatchet.runs.get_status(run) == V1TaskStatus.QUEUED
    flows.hatchet.runs.cancel(run)
    wait_for(lambda: flows.hatchet.runs.get_status(run) == V1TaskStatus.CANCELLED, 15, "the run to be cancelled")
    assert scheduled() == ""


def test_retry_after_counts_against_retries(flows):
    started = time.monotonic()
    with pytest.raises(FailedTaskRunExceptionGroup) as info:
        flows.retry_after_exhausted.run()
    elapsed = time.monotonic() - started
    errors = info.value.exceptions
    assert len(errors) == 1
    # retries=1: attempt 0 asked for a retry after 1 s, attempt 1 asked again and that was final.
    assert "attempt 1: still busy" in str(errors[0])
    assert elapsed >= 0.9, elapsed


def test_negative_retry_after_is_refused_and_changes_nothing(flows, server, tmp_path: Path):
    marker = str(tmp_path / "negative")
    ref = flows.cancellable.run(flows.MarkerInput(marker=marker), wait_for_result=False)
    wait_for(lambda: Path(marker + ".started").exists(), 20, "the task to start")
    task = flows.hatchet.runs.get(ref.workflow_run_id).tasks[0]
    channel = grpc.insecure_channel(server.env["HATCHET_CLIENT_HOST_PORT"])
    try:
        send = channel.unary_unary("/Dispatcher/SendStepActionEvent",
                                   request_serializer=dispatcher_pb2.StepActionEvent.SerializeToString,
                                   response_deserializer=dispatcher_pb2.ActionEventResponse.FromString)
        event = dispatcher_pb2.StepActionEvent(
            task_run_external_id=task.task_external_id, retry_count=0,
            event_type=dispatcher_pb2.STEP_EVENT_TYPE_FAILED, event_payload="boom", retry_after_ms=-5)
        with pytest.raises(grpc.RpcError) as err:
            send(event, metadata=(("authorization", "bearer " + server.env["HATCHET_CLIENT_TOKEN"]),))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        channel.close()
    # The attempt was not failed: it is still running, and nothing was retried.
    assert flows.hatchet.runs.get_status(ref.workflow_run_id) == V1TaskStatus.RUNNING
    events = flows.hatchet.runs.get(ref.workflow_run_id).task_events
    assert not [e for e in events if e.event_type.value in ("RETRYING", "FAILED")]
    flows.hatchet.runs.cancel(ref.workflow_run_id)
    wait_for(lambda: flows.hatchet.runs.get_status(ref.workflow_run_id) == V1TaskStatus.CANCELLED, 15,
             "the run to be cancelled")
