"""Tier 0: a simple task through every trigger path, Pydantic models, a diamond DAG, logs."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.usefixtures("main_worker")

HELLO = {"result": "Hello, world!"}


def test_run_sync(flows):
    # TriggerWorkflow, then GetRunDetails polling.
    assert flows.simple.run() == HELLO


async def test_aio_run(flows):
    # TriggerWorkflow, then the SubscribeToWorkflowRuns stream.
    assert await flows.simple.aio_run() == HELLO


def test_run_many(flows):
    # BulkTriggerWorkflow: one request, results in order.
    results = flows.simple.run_many([flows.simple.create_bulk_run_item() for _ in range(5)])
    assert results == [HELLO] * 5


async def test_aio_run_many(flows):
    results = await flows.simple.aio_run_many([flows.simple.create_bulk_run_item() for _ in range(5)])
    assert results == [HELLO] * 5


def test_run_without_waiting_then_result(flows):
    ref = flows.simple.run(wait_for_result=False)
    assert len(ref.workflow_run_id) == 36
    assert ref.result() == HELLO


async def test_aio_run_without_waiting_then_aio_result(flows):
    ref = await flows.simple.aio_run(wait_for_result=False)
    assert await ref.aio_result() == HELLO


async def test_durable_task_runs_on_durable_slots(flows):
    assert await flows.simple_durable.aio_run() == {"result": "Hello, durable world!"}
    assert flows.simple_durable.run() == {"result": "Hello, durable world!"}


def test_pydantic_input_and_output(flows):
    result = flows.add.run(flows.Numbers(a=2, b=40))
    assert isinstance(result, flows.Total)
    assert result == flows.Total(total=42, retry_count=0)


async def test_diamond_dag(flows):
    result = await flows.diamond.aio_run(flows.DiamondInput(x=5))
    assert set(result) == {"start", "left", "right", "join"}
    assert result["left"]["v"] == 10
    assert result["right"]["v"] == 15
    assert result["join"]["sum"] == 25
    assert result["join"]["input_x"] == 5
    # Each task ran after its parents finished.
    assert result["start"]["at"] <= result["left"]["at"] <= result["join"]["at"]
    assert result["start"]["at"] <= result["right"]["at"] <= result["join"]["at"]


def test_diamond_dag_sync(flows):
    result = flows.diamond.run(flows.DiamondInput(x=1))
    assert result["join"]["sum"] == 2 + 11


def test_ctx_log_lines_are_stored(flows, server):
    ref = flows.logger_task.run(wait_for_result=False)
    assert ref.result() == {"logged": 3}
    # The SDK sends log lines asynchronously (PutLog); the run can finish before the last one lands.
    from conftest import wait_for

    lines = wait_for(
        lambda: [l.message for l in (flows.hatchet.logs.list(ref.workflow_run_id).rows or [])]
        if len(flows.hatchet.logs.list(ref.workflow_run_id).rows or []) >= 3 else None,
        10,
        "three log lines",
    )
    assert [l for l in lines if l.startswith("e2e log line")] == [f"e2e log line {i}" for i in range(3)]
