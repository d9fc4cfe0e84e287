"""Why a completion can vanish between a Python worker and the engine (the chaos suite's dropped completions).

    .venv/bin/python tests/chaos/sdk_dropped_completion.py

Runs the real hatchet-sdk DispatcherClient (the version in .venv) against a stand-in Dispatcher on a local port:
COMPLETED event "A" is in flight (its server is slow, as a replica is whose completion batch waits on a lock), then
COMPLETED event "B" gets UNAVAILABLE once (as a call to a replica that is going away does). On UNAVAILABLE the SDK
replaces its channel and closes the old one (DispatcherClient._try_send_step_action_event), and closing a grpc.aio
channel cancels every call still on it: A's call ends with asyncio.CancelledError, which is not an Exception, so
neither tenacity's retries nor send_step_action_event's `except Exception` (which would log "the engine failed to
receive the completed event") sees it. A is never sent again and nothing is logged; B is retried and arrives.
The engine then keeps A's attempt RUNNING until its execution timeout and retries it: a duplicate execution, not a
lost task. Prints one JSON line and exits 0 if A was dropped that way (the behaviour the checker accounts for).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys

import grpc
from hatchet_sdk.clients.dispatcher.dispatcher import DispatcherClient
from hatchet_sdk.config import ClientConfig
from hatchet_sdk.contracts import dispatcher_pb2 as pb
from hatchet_sdk.contracts.dispatcher_pb2_grpc import DispatcherServicer, add_DispatcherServicer_to_server
from hatchet_sdk.runnables.action import Action, ActionType

received: list[str] = []


class Dispatcher(DispatcherServicer):
    async def SendStepActionEvent(self, request, context):  # noqa: N802 (gRPC method name)
        received.append(request.event_payload)
        if request.event_payload == "A":
            await asyncio.sleep(3)  # still in flight when B fails
        elif received.count("B") == 1:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "this replica is going away")
        return pb.ActionEventResponse(tenant_id="t", worker_id=request.worker_id)


def token(port: int) -> str:
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    claims = {"sub": "707d0855-80ab-4e1f-a156-f1c4546cbf52", "server_url": f"http://127.0.0.1:{port}",
              "grpc_broadcast_address": f"127.0.0.1:{port}"}
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def action(name: str) -> Action:
    return Action.model_construct(worker_id="w", tenant_id="t", workflow_run_id=f"run-{name}", job_id="j",
                                  job_name="j", job_run_id=f"run-{name}", step_id="s", step_run_id=f"task-{name}",
                                  action_id="chaos-single:chaos-single", action_type=ActionType.START_STEP_RUN,
                                  retry_count=0)


async def main() -> int:
    server = grpc.aio.server()
    add_DispatcherServicer_to_server(Dispatcher(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    os.environ.update(HATCHET_CLIENT_TOKEN=token(port), HATCHET_CLIENT_HOST_PORT=f"127.0.0.1:{port}",
                      HATCHET_CLIENT_TLS_STRATEGY="none")
    client = DispatcherClient(ClientConfig())
    a = asyncio.create_task(client.send_step_action_event(action("A"), pb.STEP_EVENT_TYPE_COMPLETED, "A", False))
    await asyncio.sleep(0.5)
    b = asyncio.create_task(client.send_step_action_event(action("B"), pb.STEP_EVENT_TYPE_COMPLETED, "B", False))
    await asyncio.wait([a, b], timeout=30)
    outcome = {
        "A": "cancelled (CancelledError: not retried, not logged)" if a.cancelled() else repr(a.result()),
        "B": "sent" if not b.cancelled() and b.result() is not None else "not sent",
        "A_received_by_server": received.count("A"),
        "B_received_by_server": received.count("B"),
    }
    print(json.dumps(outcome))
    await server.stop(None)
    return 0 if a.cancelled() and received.count("A") == 1 and outcome["B"] == "sent" else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
