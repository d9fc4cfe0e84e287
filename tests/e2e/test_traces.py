"""OpenTelemetry traces (issue 20) with the real hatchet-sdk and its `HatchetInstrumentor`: the engine reports v0.111.0
(past the SDK's OBSERVABILITY gate, v0.82.0), so the instrumentor in the worker and in this process exports its spans
to the engine's gRPC port (`opentelemetry.proto.collector.trace.v1.TraceService/Export`, the tenant's token). The
spans of a run are stored under the tenant, linked to the run and task named in their attributes, and read back through
REST (`ObservabilityApi.v1_observability_get_trace`, `GET .../traces?run_external_id=`) together with the engine's own
spans: the run, each attempt's time in the queue and on the worker (ERROR for a failed attempt), and the event that
triggered an event run.

Bad exports (a span naming another tenant, too many spans, oversized attributes, malformed ids, no token) get the
fitting gRPC status and store nothing; bad reads get 400, 403 or 404.

The workflows are defined here and served by one worker process that runs this file as a script
(`python test_traces.py <worker name>`); the worker instruments itself before it creates its client, as Hatchet's
example does.
"""

import json
import sys
import time
import uuid
from pathlib import Path

import grpc
import pytest
import httpx
from hatchet_sdk import Context, EmptyModel
from pydantic import BaseModel

from conftest import WorkerProcess, psql, wait_for

WORKER = "e2e-traces"
EVENT_KEY = "e2e:traces-event"


class Message(BaseModel):
    message: str


def define(hatchet):
    from opentelemetry.trace import get_tracer

    @hatchet.task(name="e2e-traced-task", on_events=[EVENT_KEY], input_validator=Message)
    def traced(input: Message, ctx: Context) -> dict:
        with get_tracer("e2e-traces").start_as_current_span("custom.work") as span:
            span.set_attribute("input.message", input.message)
            span.set_attribute("work.units", 3)
        return {"ok": True}

    @hatchet.task(name="e2e-traced-failure", retries=1)
    def failing(input: EmptyModel, ctx: Context) -> dict:
        raise RuntimeError(f"attempt {ctx.retry_count} fails")

    dag = hatchet.workflow(name="e2e-traced-dag")

    @dag.task()
    def first(input: EmptyModel, ctx: Context) -> dict:
        return {"n": 1}

    @dag.task(parents=[first])
    def second(input: EmptyModel, ctx: Context) -> dict:
        with get_tracer("e2e-traces").start_as_current_span("custom.second"):
            pass
        return {"n": 2}

    return {"traced": traced, "failing": failing, "dag": dag}


def run_worker(name: str) -> None:
    from hatchet_sdk import Hatchet
    from hatchet_sdk.opentelemetry.instrumentor import HatchetInstrumentor

    HatchetInstrumentor(schedule_delay_millis=200).instrument()
    hatchet = Hatchet()
    worker = hatchet.worker(name, slots=4, workflows=list(define(hatchet).values()))
    worker.start()


@pytest.fixture(scope="module")
def traced(server, flows):
    """A worker serving this file's workflows; this process instrumented while the module runs (and only then, so
    the other test files see an uninstrumented client)."""
    from hatchet_sdk.opentelemetry.instrumentor import HatchetInstrumentor

    worker = WorkerProcess(server, WORKER, script=Path(__file__).resolve(), log_name="traces")
    instrumentor = HatchetInstrumentor(schedule_delay_millis=200)
    try:
        worker.wait_healthy()
        instrumentor.instrument()
        yield define(flows.hatchet)
    finally:
        instrumentor.uninstrument()
        worker.stop()


def get_trace(server, run_id: str, **params) -> httpx.Response:
    return httpx.get(
        f"{server.rest_url}/api/v1/stable/tenants/{params.pop('tenant', server.tenant_id)}/traces",
        params={"run_external_id": run_id, **params},
        headers={"Authorization": "Bearer " + server.env["HATCHET_CLIENT_TOKEN"]},
        timeout=10,
    )


def trace_with(flows, run_id: str, names: set[str], check=lambda spans: True):
    """The trace of a run through the SDK's REST client, once it holds spans with all these names (and `check`
    accepts it)."""
    from hatchet_sdk.clients.rest.api.observability_api import ObservabilityApi

    def ready():
        with flows.hatchet.runs.client() as client:
            try:
                spans = ObservabilityApi(client).v1_observability_get_trace(flows.hatchet.tenant_id, run_id).rows
            except Exception:  # 404 until the first span of the run is exported
                return None
        return spans if spans and names <= {s.span_name for s in spans} and check(spans) else None

    return wait_for(ready, 30, f"the trace of {run_id} to hold {sorted(names)}", interval=0.5)


def by_name(spans, name: str):
    return [s for s in spans if s.span_name == name]


def stored_spans(server, trace_id: str) -> int:
    return int(psql(server, "-c", f"SELECT count(*) FROM hatchet.otel_spans WHERE trace_id = '{trace_id}'"))


def test_spans_of_a_run_are_stored_and_read_back_with_the_engines(server, flows, traced):
    ref = traced["traced"].run_no_wait(Message(message="hello traces"))
    assert ref.result() == {"ok": True}
    run_id = ref.workflow_run_id
    names = {"hatchet.run_workflow", "hatchet.engine.workflow_run", "hatchet.engine.queued",
             "hatchet.start_step_run", "hatchet.engine.start_step_run", "custom.work"}
    spans = trace_with(flows, run_id, names)
    time.sleep(1)  # anything exported late would show up as a seventh span
    spans = trace_with(flows, run_id, names)

    assert sorted(s.span_name for s in spans) == sorted(names), "one span each"
    assert len({s.trace_id for s in spans}) == 1
    assert len({s.span_id for s in spans}) == len(spans)
    assert [s.created_at for s in spans] == sorted(s.created_at for s in spans)

    producer, = by_name(spans, "hatchet.run_workflow")
    engine_run, = by_name(spans, "hatchet.engine.workflow_run")
    queued, = by_name(spans, "hatchet.engine.queued")
    step, = by_name(spans, "hatchet.start_step_run")
    engine_step, = by_name(spans, "hatchet.engine.start_step_run")
    custom, = by_name(spans, "custom.work")

    # The SDK's spans, as the instrumentors made them.
    assert producer.span_kind.value == "PRODUCER"
    assert step.span_kind.value == "CONSUMER"
    assert step.span_attributes["instrumentor"] == "hatchet"
    assert step.span_attributes["hatchet.tenant_id"] == server.tenant_id
    assert step.span_attributes["hatchet.workflow_run_id"] == run_id
    assert step.span_attributes["hatchet.step_run_id"] == run_id
    assert custom.span_attributes["input.message"] == "hello traces"
    assert custom.span_attributes["work.units"] == "3"  # non-string attributes as their JSON text
    assert custom.span_attributes["hatchet.step_run_id"] == run_id
    assert custom.parent_span_id == step.span_id
    assert step.resource_attributes["service.name"] == step.service_name

    # The engine's spans, derived from the run: linked to the SDK's.
    assert engine_run.service_name == "hatchet-engine"
    assert engine_run.parent_span_id == producer.span_id
    assert engine_run.span_attributes["hatchet.workflow_name"] == "e2e-traced-task"
    assert engine_run.span_attributes["hatchet.workflow_run_id"] == run_id
    assert step.parent_span_id == engine_run.span_id
    for s in (queued, engine_step):
        assert s.parent_span_id == engine_run.span_id
        assert s.span_attributes["hatchet.step_run_id"] == run_id
        assert s.span_attributes["hatchet.retry_count"] == "0"
        assert s.duration_ns >= 0
    assert engine_step.status_code.value == "OK"
    assert queued.created_at <= engine_step.created_at

    # Paging: two spans at a time, in the same order.
    page = get_trace(server, run_id, offset=2, limit=2).json()
    assert [r["spanId"] for r in page["rows"]] == [s.span_id for s in spans[2:4]]
    assert page["pagination"] == {"current_page": 2, "next_page": 3, "num_pages": 3}


def test_each_attempt_of_a_failing_task_has_its_engine_spans(flows, traced):
    ref = traced["failing"].run_no_wait()
    with pytest.raises(Exception):
        ref.result()
    spans = trace_with(flows, ref.workflow_run_id, {"hatchet.engine.start_step_run"},
                       lambda spans: len(by_name(spans, "hatchet.start_step_run")) == 2)

    engine_steps = sorted(by_name(spans, "hatchet.engine.start_step_run"),
                          key=lambda s: s.span_attributes["hatchet.retry_count"])
    assert [s.span_attributes["hatchet.retry_count"] for s in engine_steps] == ["0", "1"]
    assert [s.status_code.value for s in engine_steps] == ["ERROR", "ERROR"]
    assert all(s.status_message for s in engine_steps)
    assert sorted(s.span_attributes["hatchet.retry_count"] for s in by_name(spans, "hatchet.engine.queued")) \
        == ["0", "1"]
    assert {s.status_code.value for s in by_name(spans, "hatchet.start_step_run")} == {"ERROR"}


def test_a_dag_and_an_event_run_carry_their_own_engine_spans(flows, traced):
    ref = traced["dag"].run_no_wait()
    ref.result()
    spans = trace_with(flows, ref.workflow_run_id, {"custom.second", "hatchet.run_workflow"},
                       lambda spans: len(by_name(spans, "hatchet.start_step_run")) == 2)
    assert len(by_name(spans, "hatchet.engine.workflow_run")) == 1
    assert {s.span_attributes["hatchet.step_name"] for s in by_name(spans, "hatchet.engine.queued")} \
        == {"first", "second"}
    assert {s.span_attributes["hatchet.step_name"] for s in by_name(spans, "hatchet.engine.start_step_run")} \
        == {"first", "second"}
    assert len({s.trace_id for s in spans}) == 1

    marker = str(uuid.uuid4())
    event = flows.hatchet.event.push(EVENT_KEY, {"message": marker})
    run_id = wait_for(lambda: next((r.task_external_id for r in flows.hatchet.runs.list(
        triggering_event_external_id=event.event_id).rows if r.status.value == "COMPLETED"), None),
        30, "the event's run to complete")
    spans = trace_with(flows, run_id, {"hatchet.push_event", "hatchet.engine.event", "custom.work"})
    push, = by_name(spans, "hatchet.push_event")
    engine_event, = by_name(spans, "hatchet.engine.event")
    engine_run, = by_name(spans, "hatchet.engine.workflow_run")
    assert engine_event.parent_span_id == push.span_id
    assert engine_run.parent_span_id == engine_event.span_id
    assert engine_event.span_attributes["hatchet.event_key"] == EVENT_KEY
    assert engine_event.span_attributes["hatchet.event_id"] == event.event_id
    assert by_name(spans, "custom.work")[0].span_attributes["input.message"] == marker


def export_request(spans):
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    from opentelemetry.proto.trace.v1 import trace_pb2

    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=[trace_pb2.ResourceSpans(
        scope_spans=[trace_pb2.ScopeSpans(spans=spans)])])


def span(trace_id: bytes, name: str, **attrs):
    from opentelemetry.proto.common.v1 import common_pb2
    from opentelemetry.proto.trace.v1 import trace_pb2

    now = time.time_ns()
    return trace_pb2.Span(
        trace_id=trace_id, span_id=uuid.uuid4().bytes[:8], name=name, kind=trace_pb2.Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=now, end_time_unix_nano=now + 1000,
        attributes=[common_pb2.KeyValue(key=k, value=common_pb2.AnyValue(string_value=v)) for k, v in attrs.items()])


def test_bad_exports_and_reads_are_refused_and_store_nothing(server, flows, traced):
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    ref = traced["traced"].run_no_wait(Message(message="bad input"))
    ref.result()
    run_id = ref.workflow_run_id
    auth = (("authorization", "Bearer " + server.env["HATCHET_CLIENT_TOKEN"]),)
    with grpc.insecure_channel(server.env["HATCHET_CLIENT_HOST_PORT"]) as channel:
        export = trace_service_pb2_grpc.TraceServiceStub(channel).Export

        def code(request, metadata=auth):
            with pytest.raises(grpc.RpcError) as err:
                export(request, metadata=metadata)
            return err.value.code()

        trace_id = uuid.uuid4().bytes
        good = span(trace_id, "ok", **{"hatchet.workflow_run_id": str(uuid.uuid4())})
        # One bad span refuses the whole export.
        other_tenant = span(trace_id, "foreign", **{"hatchet.tenant_id": str(uuid.uuid4())})
        assert code(export_request([good, other_tenant])) == grpc.StatusCode.PERMISSION_DENIED
        not_a_run = span(trace_id, "bad run", **{"hatchet.workflow_run_id": "not-a-uuid"})
        assert code(export_request([good, not_a_run])) == grpc.StatusCode.INVALID_ARGUMENT
        short = span(trace_id, "short")
        short.span_id = b"\x01\x02"
        assert code(export_request([good, short])) == grpc.StatusCode.INVALID_ARGUMENT
        assert code(export_request([span(trace_id, f"s{i}") for i in range(1001)])) \
            == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert code(export_request([good, span(trace_id, "big", blob="x" * 70_000)])) \
            == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert code(export_request([good]), metadata=()) == grpc.StatusCode.UNAUTHENTICATED
        assert code(export_request([good]), metadata=(("authorization", "Bearer nope"),)) \
            == grpc.StatusCode.UNAUTHENTICATED
        assert stored_spans(server, trace_id.hex()) == 0

        # The good span alone is stored, once however often it is exported.
        export(export_request([good]), metadata=auth)
        export(export_request([good]), metadata=auth)
        assert stored_spans(server, trace_id.hex()) == 1

    # Reads: another tenant's path, an unknown run, bad ids.
    assert get_trace(server, run_id, tenant=str(uuid.uuid4())).status_code == 403
    assert get_trace(server, str(uuid.uuid4())).status_code == 404
    assert get_trace(server, "nope").status_code == 400
    assert httpx.get(f"{server.rest_url}/api/v1/stable/tenants/{server.tenant_id}/traces",
                        headers={"Authorization": "Bearer " + server.env["HATCHET_CLIENT_TOKEN"]},
                        timeout=10).status_code == 400
    assert httpx.get(f"{server.rest_url}/api/v1/stable/tenants/{server.tenant_id}/traces",
                        params={"run_external_id": run_id}, timeout=10).status_code == 401


if __name__ == "__main__":
    run_worker(sys.argv[1])
