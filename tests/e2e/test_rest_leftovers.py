"""The last REST routes of the SDK that answered 501 (issue 20), through the real hatchet-sdk: `tenant.get`
(`GET /v1/tenants/{t}`), `scheduled.update` (PATCH `.../workflows/scheduled/{id}`), `scheduled.bulk_update` and
`scheduled.bulk_delete` (POST `.../scheduled/bulk-update`, `.../bulk-delete`), with Hatchet's per-item errors for
schedules that do not exist or have fired, and 400 / 403 / 404 for bad requests (nothing changes).

Schedules are made far in the future on the main worker's `e2e-simple` workflow, so none fires during the test, and
one is made already due to have a fired schedule.
"""

import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from hatchet_sdk.clients.rest.exceptions import ApiException

from conftest import wait_for


def later(days: int) -> datetime:
    return (datetime.now(timezone.utc) + timedelta(days=days)).replace(microsecond=0)


def schedules(flows, marker: str) -> dict[str, datetime]:
    rows = flows.hatchet.scheduled.list(additional_metadata={"marker": marker}, limit=1000).rows or []
    return {s.metadata.id: s.trigger_at for s in rows}


def test_tenant_get(server, flows):
    tenant = flows.hatchet._client.tenant.get()  # the SDK keeps its TenantClient on the inner client
    assert tenant.metadata.id == server.tenant_id
    assert tenant.name == "default"
    assert tenant.version.value == "V1"
    headers = {"Authorization": "Bearer " + server.env["HATCHET_CLIENT_TOKEN"]}
    assert httpx.get(f"{server.rest_url}/api/v1/tenants/{uuid.uuid4()}", headers=headers).status_code == 403
    assert httpx.get(f"{server.rest_url}/api/v1/tenants/{server.tenant_id}").status_code == 401


def test_scheduled_update_and_bulk_update(server, flows, main_worker):
    marker = str(uuid.uuid4())
    make = lambda days: flows.hatchet.scheduled.create(  # noqa: E731
        workflow_name="e2e-simple", trigger_at=later(days), input={}, additional_metadata={"marker": marker})
    a, b, c = make(30), make(31), make(32)

    t40, t41, t42 = later(40), later(41), later(42)
    moved = flows.hatchet.scheduled.update(a.metadata.id, t40)
    assert moved.metadata.id == a.metadata.id
    assert moved.trigger_at == t40
    assert schedules(flows, marker)[a.metadata.id] == t40

    # A schedule that fired can no longer move.
    fired = flows.hatchet.scheduled.create(workflow_name="e2e-simple", trigger_at=datetime.now(timezone.utc),
                                           input={}, additional_metadata={"marker": marker})
    wait_for(lambda: flows.hatchet.scheduled.get(fired.metadata.id).workflow_run_id, 30, "the due schedule to fire")
    with pytest.raises(ApiException) as err:
        flows.hatchet.scheduled.update(fired.metadata.id, later(50))
    assert err.value.status == 400
    with pytest.raises(ApiException) as err:
        flows.hatchet.scheduled.update(str(uuid.uuid4()), later(50))
    assert err.value.status == 404

    unknown = str(uuid.uuid4())
    result = flows.hatchet.scheduled.bulk_update([
        (b.metadata.id, t41), (c.metadata.id, t42), (unknown, later(43)), (fired.metadata.id, later(44))])
    assert sorted(result.updated_ids) == sorted([b.metadata.id, c.metadata.id])
    assert {e.id: e.error for e in result.errors} == {
        unknown: "Scheduled workflow not found.",
        fired.metadata.id: "Scheduled run has already been triggered and cannot be rescheduled.",
    }
    now = schedules(flows, marker)
    assert (now[b.metadata.id], now[c.metadata.id]) == (t41, t42)

    # Bad requests change nothing.
    base = f"{server.rest_url}/api/v1/tenants/{server.tenant_id}/workflows/scheduled"
    headers = {"Authorization": "Bearer " + server.env["HATCHET_CLIENT_TOKEN"]}
    assert httpx.post(f"{base}/bulk-update", json={"updates": []}, headers=headers).status_code == 400
    assert httpx.patch(f"{base}/{b.metadata.id}", json={"triggerAt": "soon"}, headers=headers).status_code == 400
    assert httpx.post(f"{base}/bulk-update", json={"updates": [{"id": b.metadata.id, "triggerAt": "infinity"}]},
                      headers=headers).status_code == 400
    other = f"{server.rest_url}/api/v1/tenants/{uuid.uuid4()}/workflows/scheduled/{b.metadata.id}"
    assert httpx.patch(other, json={"triggerAt": later(60).isoformat()}, headers=headers).status_code == 403
    assert schedules(flows, marker) == now


def test_scheduled_bulk_delete(server, flows, main_worker):
    marker, keep = str(uuid.uuid4()), str(uuid.uuid4())
    make = lambda m, days: flows.hatchet.scheduled.create(  # noqa: E731
        workflow_name="e2e-simple", trigger_at=later(days), input={}, additional_metadata={"marker": m})
    a, b = make(marker, 30), make(marker, 31)
    kept = make(keep, 32)

    base = f"{server.rest_url}/api/v1/tenants/{server.tenant_id}/workflows/scheduled/bulk-delete"
    headers = {"Authorization": "Bearer " + server.env["HATCHET_CLIENT_TOKEN"]}
    # Neither ids nor filter, both, an empty filter, a malformed metadata pair: 400, nothing deleted.
    for body in ({}, {"scheduledWorkflowRunIds": [a.metadata.id], "filter": {"additionalMetadata": ["marker:x"]}},
                 {"filter": {}}, {"filter": {"additionalMetadata": ["no-colon"]}}):
        assert httpx.post(base, json=body, headers=headers).status_code == 400, body
    assert len(schedules(flows, marker)) == 2

    unknown = str(uuid.uuid4())
    result = flows.hatchet.scheduled.bulk_delete(scheduled_ids=[a.metadata.id, unknown])
    assert result.deleted_ids == [a.metadata.id]
    assert [(e.id, e.error) for e in result.errors] == [(unknown, "Scheduled workflow not found.")]

    result = flows.hatchet.scheduled.bulk_delete(additional_metadata={"marker": marker})
    assert result.deleted_ids == [b.metadata.id]
    assert schedules(flows, marker) == {}
    assert list(schedules(flows, keep)) == [kept.metadata.id]

    # By workflow id: the kept one too.
    workflow_id = flows.hatchet.scheduled.get(kept.metadata.id).workflow_id
    result = flows.hatchet.scheduled.bulk_delete(workflow_id=workflow_id)
    assert kept.metadata.id in result.deleted_ids
    assert schedules(flows, keep) == {}


def test_event_list_filters(flows, main_worker):
    from hatchet_sdk.clients.rest.models.v1_task_status import V1TaskStatus

    marker = str(uuid.uuid4())
    triggering, quiet = f"e2e:wild:{marker}", f"e2e:quiet:{marker}"  # e2e-on-event listens on e2e:wild:*
    e1 = flows.hatchet.event.push(triggering, {"order_id": marker}, additional_metadata={"marker": marker, "n": "1"})
    e2 = flows.hatchet.event.push(quiet, {}, additional_metadata={"marker": marker, "n": "2"}, scope="e2e-scope")
    workflow_id = wait_for(lambda: next((r.workflow_id for r in flows.hatchet.runs.list(
        triggering_event_external_id=e1.event_id).rows if r.status == V1TaskStatus.COMPLETED), None),
        30, "the event's run to complete")

    def ids(**filters) -> set[str]:
        return {e.metadata.id for e in flows.hatchet.event.list(keys=[triggering, quiet], **filters).rows}

    assert ids() == {e1.event_id, e2.event_id}
    assert ids(scopes=["e2e-scope"]) == {e2.event_id}
    assert ids(scopes=["other"]) == set()
    assert ids(additional_metadata={"n": "1"}) == {e1.event_id}
    assert ids(additional_metadata={"marker": marker}) == {e1.event_id, e2.event_id}
    assert ids(workflow_ids=[workflow_id]) == {e1.event_id}
    assert ids(workflow_ids=[str(uuid.uuid4())]) == set()
    assert ids(workflow_run_statuses=[V1TaskStatus.COMPLETED]) == {e1.event_id}
    assert ids(workflow_run_statuses=[V1TaskStatus.FAILED, V1TaskStatus.QUEUED]) == set()
    # By id, the other filters still apply.
    assert ids(event_ids=[e1.event_id, e2.event_id], scopes=["e2e-scope"]) == {e2.event_id}
    assert ids(event_ids=[e1.event_id, e2.event_id], workflow_run_statuses=[V1TaskStatus.COMPLETED]) \
        == {e1.event_id}


def test_event_list_bad_filters_are_refused(server):
    url = f"{server.rest_url}/api/v1/stable/tenants/{server.tenant_id}/events"
    headers = {"Authorization": "Bearer " + server.env["HATCHET_CLIENT_TOKEN"]}
    for params in ({"workflowRunStatuses": "BOGUS"}, {"workflowIds": "not-a-uuid"},
                   {"additionalMetadata": "no-colon"},
                   {"eventIds": str(uuid.uuid4()), "workflowIds": str(uuid.uuid4())}):
        assert httpx.get(url, params=params, headers=headers).status_code == 400, params
