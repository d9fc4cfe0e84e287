"""Event filters (`hatchet.filters.*`) and incoming webhooks (`hatchet.webhooks.*` plus the receiving endpoint) with
the real SDK: the REST shapes parse in the SDK's strict models, filters decide which events trigger a workflow, and
an authenticated webhook request becomes an event that triggers one (a badly authenticated one writes nothing).

The worker is this file run as a script (`python test_filters_webhooks.py worker`).
"""

import base64
import hashlib
import hmac
import json
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from hatchet_sdk import Context, EmptyModel, Hatchet

from conftest import wait_for



def build_workflows():
    hatchet = Hatchet()

    @hatchet.task(name="e2e-filtered", on_events=["e2e:filtered"])
    def filtered(input: EmptyModel, ctx: Context) -> dict:
        return {"filter_payload": dict(ctx.filter_payload or {})}

    @hatchet.task(name="e2e-hooked", on_events=["e2e:hook:*"])
    def hooked(input: EmptyModel, ctx: Context) -> dict:
        return {"key": ctx.triggering_event_key or ""}

    return hatchet, [filtered, hooked]


@pytest.fixture(scope="module")
def hooks(server):
    from conftest import WorkerProcess

    worker = WorkerProcess(server, "worker", script=Path(__file__).resolve(), log_name="filters-webhooks")
    try:
        worker.wait_healthy()
        hatchet, (filtered, hooked) = build_workflows()
        yield hatchet, filtered, hooked, server
    finally:
        worker.stop()


def triggered_runs(hatchet, event_id: str):
    return hatchet.runs.list(triggering_event_external_id=event_id).rows


def wait_triggered(hatchet, event_id: str):
    return wait_for(lambda: triggered_runs(hatchet, event_id), 20, f"the run triggered by event {event_id}")


def assert_not_triggered(hatchet, event_id: str) -> None:
    # The run of a matching event is created in the push's own transaction, so "none now" means none ever.
    assert triggered_runs(hatchet, event_id) == []


# ---------------------------------------------------------------------------------------------------- filters


def test_filters_crud_and_what_they_trigger(hooks):
    from hatchet_sdk.clients.rest.exceptions import NotFoundException
    from hatchet_sdk.clients.rest.models.v1_update_filter_request import V1UpdateFilterRequest

    hatchet, filtered, _, _ = hooks
    workflow_id = filtered.id
    scope = f"scope-{uuid.uuid4().hex[:8]}"

    created = hatchet.filters.create(workflow_id=workflow_id, expression="input.amount > 10", scope=scope,
                                     payload={"team": "a"})
    assert created.workflow_id == workflow_id
    assert (created.scope, created.expression, created.payload) == (scope, "input.amount > 10", {"team": "a"})
    assert created.tenant_id == hatchet.tenant_id
    assert created.is_declarative is False

    got = hatchet.filters.get(created.metadata.id)
    assert got.metadata.id == created.metadata.id and got.expression == "input.amount > 10"
    listed = hatchet.filters.list(workflow_ids=[workflow_id], scopes=[scope])
    assert [f.metadata.id for f in listed.rows] == [created.metadata.id]
    assert hatchet.filters.list(scopes=[f"{scope}-other"]).rows == []

    def push(amount: int, in_scope: str):
        return hatchet.event.push("e2e:filtered", {"amount": amount}, scope=in_scope)

    hit = push(50, scope)
    miss = push(5, scope)
    other_scope = push(50, f"{scope}-other")
    run = wait_triggered(hatchet, hit.event_id)[0]
    # The task sees the payload of the filter that let the event through.
    result = hatchet.runs.get_run_ref(run.workflow_run_external_id).result()
    assert result["e2e-filtered"] == {"filter_payload": {"team": "a"}}
    assert_not_triggered(hatchet, miss.event_id)
    assert_not_triggered(hatchet, other_scope.event_id)

    updated = hatchet.filters.update(
        created.metadata.id, V1UpdateFilterRequest(expression="input.amount > 100", payload={"team": "b"}))
    assert (updated.expression, updated.payload, updated.scope) == ("input.amount > 100", {"team": "b"}, scope)
    assert_not_triggered(hatchet, push(50, scope).event_id)
    wait_triggered(hatchet, push(500, scope).event_id)

    deleted = hatchet.filters.delete(created.metadata.id)
    assert deleted.metadata.id == created.metadata.id
    with pytest.raises(NotFoundException):
        hatchet.filters.get(created.metadata.id)


def test_filter_bad_input_is_refused(hooks):
    from hatchet_sdk.clients.rest.exceptions import ApiException

    hatchet, filtered, _, _ = hooks
    before = len(hatchet.filters.list(workflow_ids=[filtered.id]).rows)
    with pytest.raises(ApiException) as bad_cel:
        hatchet.filters.create(workflow_id=filtered.id, expression="input.amount >", scope="s")
    assert bad_cel.value.status == 400
    with pytest.raises(ApiException) as unknown:
        hatchet.filters.create(workflow_id=str(uuid.uuid4()), expression="true", scope="s")
    assert unknown.value.status == 404
    assert len(hatchet.filters.list(workflow_ids=[filtered.id]).rows) == before


# ---------------------------------------------------------------------------------------------------- webhooks


def post(server, tenant: str, name: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    req = urllib.request.Request(f"{server.rest_url}/api/v1/stable/tenants/{tenant}/webhooks/{name}", data=body,
                                 headers={"Content-Type": "application/json", **headers}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def event_count(hatchet, key: str) -> int:
    return len(hatchet.event.list(keys=[key]).rows)


def test_webhook_crud_shapes(hooks):
    from hatchet_sdk.clients.rest.exceptions import NotFoundException
    from hatchet_sdk.clients.rest.models.v1_webhook_api_key_auth import V1WebhookAPIKeyAuth
    from hatchet_sdk.clients.rest.models.v1_webhook_auth_type import V1WebhookAuthType
    from hatchet_sdk.clients.rest.models.v1_webhook_source_name import V1WebhookSourceName

    hatchet, _, _, _ = hooks
    name = f"e2e-crud-{uuid.uuid4().hex[:8]}"
    created = hatchet.webhooks.create(
        source_name=V1WebhookSourceName.GENERIC, name=name, event_key_expression="'e2e:hook:' + input.type",
        auth=V1WebhookAPIKeyAuth(headerName="X-Api-Key", apiKey="k3y"), scope_expression="input.scope",
        static_payload={"via": "webhook"})
    assert created.name == name
    assert created.auth_type == V1WebhookAuthType.API_KEY
    assert created.source_name == V1WebhookSourceName.GENERIC
    assert created.static_payload == {"via": "webhook"}
    assert created.scope_expression == "input.scope"
    assert created.tenant_id == hatchet.tenant_id
    assert hatchet.webhooks.get(name).metadata.id == created.metadata.id
    assert name in [w.name for w in hatchet.webhooks.list(webhook_names=[name]).rows]

    updated = hatchet.webhooks.update(name, event_key_expression="'e2e:hook:fixed'",
                                      return_event_as_response_payload=False)
    assert updated.event_key_expression == "'e2e:hook:fixed'"
    assert updated.return_event_as_response_payload is False
    assert updated.static_payload == {"via": "webhook"}

    deleted = hatchet.webhooks.delete(name)
    assert deleted.name == name
    with pytest.raises(NotFoundException):
        hatchet.webhooks.get(name)


def test_basic_auth_webhook_triggers_a_workflow(hooks):
    from hatchet_sdk.clients.rest.models.v1_webhook_basic_auth import V1WebhookBasicAuth
    from hatchet_sdk.clients.rest.models.v1_webhook_source_name import V1WebhookSourceName

    hatchet, _, _, server = hooks
    name = f"e2e-basic-{uuid.uuid4().hex[:8]}"
    kind = uuid.uuid4().hex[:8]
    hatchet.webhooks.create(source_name=V1WebhookSourceName.GENERIC, name=name,
                            event_key_expression="'e2e:hook:' + input.type",
                            auth=V1WebhookBasicAuth(username="hook", password="s3cret"),
                            static_payload={"via": "webhook"})
    key = f"e2e:hook:{kind}"
    body = json.dumps({"type": kind, "n": 1}).encode()
    good = "Basic " + base64.b64encode(b"hook:s3cret").decode()
    bad = "Basic " + base64.b64encode(b"hook:wrong").decode()

    status, _ = post(server, hatchet.tenant_id, name, body, {"Authorization": bad})
    assert status == 403
    status, _ = post(server, hatchet.tenant_id, name, body, {})
    assert status == 403
    assert event_count(hatchet, key) == 0

    status, resp = post(server, hatchet.tenant_id, name, body, {"Authorization": good})
    assert status == 200, resp
    assert resp["event"]["key"] == key
    assert resp["event"]["payload"] == {"type": kind, "n": 1, "via": "webhook"}
    run = wait_triggered(hatchet, resp["event"]["metadata"]["id"])[0]
    assert run.status is not None
    assert event_count(hatchet, key) == 1
    hatchet.webhooks.delete(name)


def test_a_webhook_event_names_its_webhook_and_expressions_see_the_static_payload(hooks):
    # Hatchet's examples/webhooks find the event by `triggering_webhook_name`, and examples/webhook_with_scope
    # evaluate the key and scope expressions over the body with the static payload merged in.
    from hatchet_sdk.clients.rest.models.v1_webhook_api_key_auth import V1WebhookAPIKeyAuth
    from hatchet_sdk.clients.rest.models.v1_webhook_source_name import V1WebhookSourceName

    hatchet, _, _, server = hooks
    name = f"e2e-static-{uuid.uuid4().hex[:8]}"
    kind = uuid.uuid4().hex[:8]
    hatchet.webhooks.create(source_name=V1WebhookSourceName.GENERIC, name=name,
                            event_key_expression="'e2e:hook:' + input.kind", scope_expression="input.customer",
                            auth=V1WebhookAPIKeyAuth(headerName="X-Api-Key", apiKey="k3y"),
                            static_payload={"kind": kind, "customer": "cust-1", "source": "static"})
    status, resp = post(server, hatchet.tenant_id, name, json.dumps({"source": "body", "n": 2}).encode(),
                        {"X-Api-Key": "k3y"})
    assert status == 200, resp
    assert resp["event"]["key"] == f"e2e:hook:{kind}"
    events = hatchet.event.list(keys=[f"e2e:hook:{kind}"]).rows
    assert len(events) == 1
    event = events[0]
    assert event.triggering_webhook_name == name
    assert event.scope == "cust-1"
    assert event.payload == {"kind": kind, "customer": "cust-1", "source": "static", "n": 2}
    # A pushed event names no webhook.
    pushed = hatchet.event.push(f"e2e:hook:{kind}", {"n": 3})
    plain = [e for e in hatchet.event.list(keys=[f"e2e:hook:{kind}"]).rows if e.metadata.id == pushed.event_id]
    assert plain[0].triggering_webhook_name is None
    hatchet.webhooks.delete(name)


@pytest.mark.parametrize("algorithm,encoding", [("SHA256", "HEX"), ("SHA1", "BASE64"), ("SHA512", "BASE64URL")])
def test_hmac_webhook_checks_the_signature(hooks, algorithm, encoding):
    from hatchet_sdk.clients.rest.models.v1_webhook_hmac_algorithm import V1WebhookHMACAlgorithm
    from hatchet_sdk.clients.rest.models.v1_webhook_hmac_auth import V1WebhookHMACAuth
    from hatchet_sdk.clients.rest.models.v1_webhook_hmac_encoding import V1WebhookHMACEncoding
    from hatchet_sdk.clients.rest.models.v1_webhook_source_name import V1WebhookSourceName

    hatchet, _, _, server = hooks
    name = f"e2e-hmac-{uuid.uuid4().hex[:8]}"
    hatchet.webhooks.create(
        source_name=V1WebhookSourceName.GENERIC, name=name,
        event_key_expression="'e2e:hook:' + headers['x-event-type']",
        auth=V1WebhookHMACAuth(algorithm=V1WebhookHMACAlgorithm(algorithm),
                               encoding=V1WebhookHMACEncoding(encoding),
                               signatureHeaderName="X-Signature", signingSecret="whsec"))
    kind = uuid.uuid4().hex[:8]
    key = f"e2e:hook:{kind}"
    body = json.dumps({"hello": "world"}).encode()
    digest = hmac.new(b"whsec", body, getattr(hashlib, algorithm.lower())).digest()
    signature = {"HEX": digest.hex(), "BASE64": base64.b64encode(digest).decode(),
                 "BASE64URL": base64.urlsafe_b64encode(digest).decode()}[encoding]
    forged = hmac.new(b"not-the-secret", body, getattr(hashlib, algorithm.lower())).hexdigest()

    status, _ = post(server, hatchet.tenant_id, name, body, {"X-Signature": forged, "X-Event-Type": kind})
    assert status == 403
    # A body changed after signing fails too.
    status, _ = post(server, hatchet.tenant_id, name, body + b" ", {"X-Signature": signature, "X-Event-Type": kind})
    assert status == 403
    assert event_count(hatchet, key) == 0

    status, resp = post(server, hatchet.tenant_id, name, body, {"X-Signature": signature, "X-Event-Type": kind})
    assert status == 200, resp
    assert resp["event"]["key"] == key
    wait_triggered(hatchet, resp["event"]["metadata"]["id"])
    hatchet.webhooks.delete(name)


def test_webhook_bad_requests_write_nothing(hooks):
    from hatchet_sdk.clients.rest.models.v1_webhook_api_key_auth import V1WebhookAPIKeyAuth
    from hatchet_sdk.clients.rest.models.v1_webhook_source_name import V1WebhookSourceName

    hatchet, _, _, server = hooks
    name = f"e2e-key-{uuid.uuid4().hex[:8]}"
    hatchet.webhooks.create(source_name=V1WebhookSourceName.GENERIC, name=name,
                            event_key_expression="'e2e:hook:' + input.type",
                            auth=V1WebhookAPIKeyAuth(headerName="X-Api-Key", apiKey="k3y"),
                            return_event_as_response_payload=False)
    kind = uuid.uuid4().hex[:8]
    key = f"e2e:hook:{kind}"
    ok = {"X-Api-Key": "k3y"}
    assert post(server, hatchet.tenant_id, name, json.dumps({"type": kind}).encode(), {"X-Api-Key": "nope"})[0] == 403
    assert post(server, hatchet.tenant_id, name, b"{not json", ok)[0] == 400
    # The key expression needs input.type to be a string.
    assert post(server, hatchet.tenant_id, name, json.dumps({"type": 7}).encode(), ok)[0] == 400
    assert post(server, hatchet.tenant_id, "no-such-webhook", b"{}", ok)[0] == 404
    assert post(server, str(uuid.uuid4()), name, b"{}", ok)[0] == 404
    assert event_count(hatchet, key) == 0
    # And a good request still works; this webhook answers without the event.
    status, resp = post(server, hatchet.tenant_id, name, json.dumps({"type": kind}).encode(), ok)
    assert (status, resp) == (200, {"message": "ok"})
    assert event_count(hatchet, key) == 1
    hatchet.webhooks.delete(name)


if __name__ == "__main__" and sys.argv[1:] == ["worker"]:
    worker_hatchet, workflows = build_workflows()
    worker_hatchet.worker("e2e-filters-webhooks", slots=5, workflows=workflows).start()
