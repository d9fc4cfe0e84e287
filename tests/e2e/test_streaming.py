"""Streaming with the real SDK: `ctx.put_stream` / `ctx.aio_put_stream` in a task, read back by
`hatchet.runs.subscribe_to_stream(run_id)` and by the older `ref.stream()`.

Checks every chunk arrives, once, in order, that the subscription ends by itself when the run finishes (the server's
hangup), and that a subscriber arriving late still gets the whole stream. The worker is this file run as a script
(`python test_streaming.py worker`), so the workflows live next to the tests that use them.
"""

import asyncio
import json
import sys
from pathlib import Path

import pytest
from hatchet_sdk import Context, EmptyModel, Hatchet

CHUNKS = 40


def build_workflows():
    hatchet = Hatchet()

    @hatchet.task(name="e2e-streamer")
    async def streamer(input: EmptyModel, ctx: Context) -> dict[str, int]:
        # Give a subscriber that starts with the run a moment, then stream; some chunks go out while nobody reads.
        await asyncio.sleep(0.3)
        for i in range(CHUNKS):
            await ctx.aio_put_stream(f"chunk-{i:03d} ")
        return {"chunks": CHUNKS}

    @hatchet.task(name="e2e-sync-streamer")
    def sync_streamer(input: EmptyModel, ctx: Context) -> dict[str, int]:
        for i in range(5):
            ctx.put_stream(f"s{i}")
        return {"chunks": 5}

    return hatchet, [streamer, sync_streamer]


@pytest.fixture(scope="module")
def streaming(server):
    from conftest import WorkerProcess

    worker = WorkerProcess(server, "worker", script=Path(__file__).resolve(), log_name="streaming")
    try:
        worker.wait_healthy()
        hatchet, (streamer, sync_streamer) = build_workflows()
        yield hatchet, streamer, sync_streamer
    finally:
        worker.stop()


EXPECTED = [f"chunk-{i:03d} " for i in range(CHUNKS)]


async def test_subscribe_to_stream_gets_every_chunk_in_order(streaming):
    hatchet, streamer, _ = streaming
    # Five runs, as the upstream streaming test does: order and completeness every time.
    for _ in range(5):
        ref = await streamer.aio_run_no_wait()
        chunks = await asyncio.wait_for(
            _collect(hatchet.runs.subscribe_to_stream(ref.workflow_run_id)), timeout=60)
        assert chunks == EXPECTED
        # The subscription ended because the run finished, and the result is there.
        assert await ref.aio_result() == {"chunks": CHUNKS}


async def test_a_late_subscriber_gets_the_whole_stream(streaming):
    hatchet, streamer, _ = streaming
    ref = await streamer.aio_run_no_wait()
    assert await ref.aio_result() == {"chunks": CHUNKS}
    chunks = await asyncio.wait_for(_collect(hatchet.runs.subscribe_to_stream(ref.workflow_run_id)), timeout=30)
    assert chunks == EXPECTED


async def test_legacy_ref_stream_ends_with_the_run_event(streaming):
    from hatchet_sdk.clients.listeners.run_event_listener import StepRunEventType

    _, _, sync_streamer = streaming
    ref = sync_streamer.run_no_wait()
    events = []

    async def read() -> None:
        async for event in ref.stream():
            events.append(event)

    # The iteration ends by itself: the server hangs up once the run finished.
    await asyncio.wait_for(read(), timeout=60)
    kinds = [e.type for e in events]
    assert kinds[0] == StepRunEventType.STEP_RUN_EVENT_TYPE_STARTED
    stream_payloads = [e.payload for e in events if e.type == StepRunEventType.STEP_RUN_EVENT_TYPE_STREAM]
    assert stream_payloads == [f"s{i}" for i in range(5)]
    # Then the task's completion with its output, and last the run's completion (the SDK maps both to COMPLETED).
    assert kinds[-2:] == [StepRunEventType.STEP_RUN_EVENT_TYPE_COMPLETED] * 2
    assert json.loads(events[-2].payload) == {"chunks": 5}
    assert kinds.index(StepRunEventType.STEP_RUN_EVENT_TYPE_COMPLETED) > kinds.index(
        StepRunEventType.STEP_RUN_EVENT_TYPE_STREAM)


async def _collect(stream) -> list[str]:
    return [chunk async for chunk in stream]


if __name__ == "__main__" and sys.argv[1:] == ["worker"]:
    worker_hatchet, workflows = build_workflows()
    worker_hatchet.worker("e2e-streaming", slots=5, workflows=workflows).start()
