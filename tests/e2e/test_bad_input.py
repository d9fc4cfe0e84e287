"""Bad input from a Python client (issue 5, point 7), with grpcio directly and with the SDK: bytes that are not
protobuf, oversized messages, missing or forged tokens, unknown workers, runs, tasks and workflows, invalid JSON.
Each gets the fitting gRPC status or HTTP code, nothing is written (the tenant's events, workers and runs as the
REST API lists them are unchanged), and the server keeps serving.

The Rust side (hatchet-server/tests/bad_input.rs, grpc.rs, streams.rs) adds row-count checks against the database
and another tenant's data.
"""

import json
import uuid
from datetime import datetime, timedelta, timezone

import grpc
import pytest
from hatchet_sdk.contracts import dispatcher_pb2, events_pb2, workflows_pb2
from hatchet_sdk.contracts.v1 import workflows_pb2 as v1_workflows_pb2


@pytest.fixture(scope="module")
def channel(server):
    ch = grpc.insecure_channel(server.env["HATCHET_CLIENT_HOST_PORT"],
                               options=[("grpc.max_send_message_length", 16 << 20)])
    yield ch
    ch.close()


@pytest.fixture(scope="module")
def auth(server):
    return (("authorization", "bearer " + server.env["HATCHET_CLIENT_TOKEN"]),)


def raw(channel, path: str):
    """A unary call that sends its request bytes as they are."""
    return channel.unary_unary(path, request_serializer=lambda b: b, response_deserializer=lambda b: b)


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code()


def snapshot(flows):
    """What the tenant can see: events, workers and runs of the last hour."""
    since = datetime.now(timezone.utc) - timedelta(hours=1)
    events = sorted(e.metadata.id for e in flows.hatchet.event.list(limit=1000).rows)
    workers = sorted(w.metadata.id for w in flows.hatchet.workers.list().rows or [])
    runs = sorted(r.metadata.id for r in flows.hatchet.runs.list(since=since, limit=1000).rows)
    return events, workers, runs


def test_bad_grpc_requests_get_clear_codes_and_write_nothing(flows, channel, auth):
    before = snapshot(flows)

    # Not protobuf: a varint that never ends, a truncated field, a string that is not UTF-8.
    for path in ("/Dispatcher/Register", "/EventsService/Push", "/v1.AdminService/PutWorkflow",
                 "/WorkflowService/TriggerWorkflow"):
        for body in (b"\x0a" + b"\xff" * 10 + b"\x01", b"\x0a\x10\x41", b"\x0a\x02\xff\xfe"):
            assert code_of(lambda: raw(channel, path)(body, metadata=auth)) == grpc.StatusCode.INVALID_ARGUMENT

    push = channel.unary_unary("/EventsService/Push", request_serializer=events_pb2.PushEventRequest.SerializeToString,
                               response_deserializer=events_pb2.Event.FromString)
    # Over the 4 MiB message cap.
    big = events_pb2.PushEventRequest(key="e2e:big", payload=json.dumps({"x": "a" * (5 << 20)}))
    assert code_of(lambda: push(big, metadata=auth)) == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Invalid JSON payload.
    assert code_of(lambda: push(events_pb2.PushEventRequest(key="e2e:bad", payload="{nope"), metadata=auth)) \
        == grpc.StatusCode.INVALID_ARGUMENT
    # No token, a malformed one, a token signed by someone else.
    good = events_pb2.PushEventRequest(key="e2e:unauth", payload="{}")
    assert code_of(lambda: push(good)) == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(lambda: push(good, metadata=(("authorization", "bearer nope"),))) == grpc.StatusCode.UNAUTHENTICATED
    header, _, sig = auth[0][1].split(" ", 1)[1].rpartition(".")
    forged = f"{header}.{'A' * len(sig)}"
    assert code_of(lambda: push(good, metadata=(("authorization", "bearer " + forged),))) \
        == grpc.StatusCode.UNAUTHENTICATED

    heartbeat = channel.unary_unary("/Dispatcher/Heartbeat",
                                    request_serializer=dispatcher_pb2.HeartbeatRequest.SerializeToString,
                                    response_deserializer=dispatcher_pb2.HeartbeatResponse.FromString)
    assert code_of(lambda: heartbeat(dispatcher_pb2.HeartbeatRequest(worker_id=str(uuid.uuid4())), metadata=auth)) \
        == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: heartbeat(dispatcher_pb2.HeartbeatRequest(worker_id="worker-1"), metadata=auth)) \
        == grpc.StatusCode.INVALID_ARGUMENT

    put_stream = channel.unary_unary("/EventsService/PutStreamEvent",
                                     request_serializer=events_pb2.PutStreamEventRequest.SerializeToString,
                                     response_deserializer=events_pb2.PutStreamEventResponse.FromString)
    assert code_of(lambda: put_stream(events_pb2.PutStreamEventRequest(task_run_external_id=str(uuid.uuid4()),
                                                                       message=b"x", event_index=0),
                                      metadata=auth)) == grpc.StatusCode.NOT_FOUND

    details = channel.unary_unary("/v1.AdminService/GetRunDetails",
                                  request_serializer=v1_workflows_pb2.GetRunDetailsRequest.SerializeToString,
                                  response_deserializer=v1_workflows_pb2.GetRunDetailsResponse.FromString)
    assert code_of(lambda: details(v1_workflows_pb2.GetRunDetailsRequest(external_id=str(uuid.uuid4())),
                                   metadata=auth)) == grpc.StatusCode.NOT_FOUND

    trigger = channel.unary_unary("/WorkflowService/TriggerWorkflow",
                                  request_serializer=workflows_pb2.TriggerWorkflowRequest.SerializeToString,
                                  response_deserializer=workflows_pb2.TriggerWorkflowResponse.FromString)
    assert code_of(lambda: trigger(workflows_pb2.TriggerWorkflowRequest(name="e2e-no-such-workflow", input="{}"),
                                   metadata=auth)) == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: trigger(workflows_pb2.TriggerWorkflowRequest(name="e2e-simple", input="{not json"),
                                   metadata=auth)) == grpc.StatusCode.INVALID_ARGUMENT

    assert snapshot(flows) == before
    # Still serving.
    version = channel.unary_unary("/Dispatcher/GetVersion",
                                  request_serializer=dispatcher_pb2.GetVersionRequest.SerializeToString,
                                  response_deserializer=dispatcher_pb2.GetVersionResponse.FromString)
    assert version(dispatcher_pb2.GetVersionRequest(), metadata=auth).version.startswith("v0.")


def test_sdk_calls_with_bad_input_fail_cleanly(flows, main_worker):
    from hatchet_sdk.clients.rest.exceptions import ApiException, NotFoundException

    before = snapshot(flows)
    # An unknown workflow name (the gRPC trigger is checked in the test above).
    with pytest.raises(NotFoundException):
        flows.hatchet.runs.create("e2e-no-such-workflow", {})
    # Unknown runs; a malformed run id (the SDK checks the length, so send 36 characters that are not a UUID).
    with pytest.raises(NotFoundException):
        flows.hatchet.runs.get(str(uuid.uuid4()))
    with pytest.raises(ApiException) as bad_id:
        flows.hatchet.runs.get("x" * 36)
    assert bad_id.value.status == 400
    assert snapshot(flows) == before
    # A good run goes through afterwards.
    assert flows.simple.run() == {"result": "Hello, world!"}
