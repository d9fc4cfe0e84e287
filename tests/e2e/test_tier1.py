"""Tier 1: retries with backoff, NonRetryableException, execution timeouts and refresh_timeout, cancellation of a
running task, FailedTaskRunExceptionGroup contents, on_failure tasks."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import wait_for
from hatchet_sdk import FailedTaskRunExceptionGroup
from hatchet_sdk.clients.rest.models.v1_task_status import V1TaskStatus

pytestmark = pytest.mark.usefixtures("main_worker")


def test_retries_with_backoff(flows):
    ref = flows.flaky.run(wait_for_result=False)
    started = time.monotonic()
    result = ref.result()
    elapsed = time.monotonic() - started
    # Attempts 0 and 1 fail, attempt 2 succeeds.
    assert result == {"attempt": 2}
    # Two backoffs of min(1 s, 1.5^n) each: the retries were not immediate.
    assert elapsed >= 1.9, elapsed
    events = flows.hatchet.runs.get(ref.workflow_run_id).task_events
    retrying = [e for e in events if e.event_type.value == "RETRYING"]
    assert [e.retry_count for e in retrying] == [0, 1]
    assert "attempt 0 fails on purpose" in retrying[0].message


async def test_non_retryable_exception_fails_at_once(flows):
    with pytest.raises(FailedTaskRunExceptionGroup) as info:
        await flows.non_retryable.aio_run()
    errors = info.value.exceptions
    assert len(errors) == 1
    # The error of attempt 0 is final although 3 retries were allowed.
    assert "attempt 0: do not retry this" in str(errors[0])
    assert errors[0].exc_type == "NonRetryableException"


def test_execution_timeout_fails_the_run(flows):
    with pytest.raises(FailedTaskRunExceptionGroup) as info:
        flows.too_slow.run()
    # The task sleeps 20 s and would succeed; it failed, and the engine says why: its 2 s timeout.
    assert "timeout" in str(info.value.exceptions[0]).lower()


async def test_refresh_timeout_extends_the_deadline(flows):
    # 3.5 s of work under a 2 s timeout, extended by 5 s after the first second.
    assert await flows.refreshes.aio_run() == {"refreshed": True}


def test_cancel_a_running_task(flows, tmp_path: Path):
    marker = str(tmp_path / "cancel")
    ref = flows.cancellable.run(flows.MarkerInput(marker=marker), wait_for_result=False)
    wait_for(lambda: Path(marker + ".started").exists(), 20, "the task to start")
    assert flows.hatchet.runs.get_status(ref.workflow_run_id) == V1TaskStatus.RUNNING

    flows.hatchet.runs.cancel(ref.workflow_run_id)

    # The worker got CANCEL_STEP_RUN for the running attempt and stopped the task.
    how = wait_for(lambda: Path(marker + ".cancelled").exists() and Path(marker + ".cancelled").read_text(), 15,
                   "the worker to cancel the task")
    assert how in ("exit_flag", "CancelledError")
    assert flows.hatchet.runs.get_status(ref.workflow_run_id) == V1TaskStatus.CANCELLED
    details = flows.hatchet.runs.get_details(ref.workflow_run_id)
    assert details.done
    with pytest.raises(ValueError, match="cancelled"):
        ref.result()


async def test_failed_task_run_exception_group_names_every_failed_task(flows):
    with pytest.raises(FailedTaskRunExceptionGroup) as info:
        await flows.two_failures.aio_run()
    by_type = {e.exc_type: str(e) for e in info.value.exceptions}
    assert set(by_type) == {"ValueError", "KeyError"}
    assert "a broke" in by_type["ValueError"]
    assert "b broke" in by_type["KeyError"]
    assert all(len(e.task_run_external_id or "") == 36 for e in info.value.exceptions)


def test_sync_result_raises_the_same_group(flows):
    with pytest.raises(FailedTaskRunExceptionGroup) as info:
        flows.two_failures.run()
    assert {e.exc_type for e in info.value.exceptions} == {"ValueError", "KeyError"}


def test_on_failure_task_runs_with_the_errors(flows):
    ref = flows.with_on_failure.run(wait_for_result=False)
    with pytest.raises(FailedTaskRunExceptionGroup) as info:
        ref.result()
    assert any("exploded on purpose" in str(e) for e in info.value.exceptions)

    details = flows.hatchet.runs.get_details(ref.workflow_run_id)
    tasks = details.task_runs
    assert tasks["explode"].status == V1TaskStatus.FAILED
    # The child of the failed task never ran.
    assert tasks.get("never_runs") is None or tasks["never_runs"].status != V1TaskStatus.COMPLETED
    on_failure = tasks["clean_up-on-failure"]  # the SDK names it "<function>-on-failure"
    assert on_failure.status == V1TaskStatus.COMPLETED
    assert on_failure.output["handled"] == "explode"
    assert "exploded on purpose" in on_failure.output["error"]


def test_invalid_input_fails_the_run_with_the_validation_error(flows):
    with pytest.raises(FailedTaskRunExceptionGroup) as info:
        flows.add.run({"a": "not a number", "b": 1})  # type: ignore[arg-type]
    assert "validation error" in str(info.value.exceptions[0]).lower()
