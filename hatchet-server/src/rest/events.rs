//! Events (`event.list`, by id too, and `event.get`, with the webhook that made an event as `triggeringWebhookName`) and rate limits (`rate_limits.list`). Events are pushed over gRPC (`EventsService`).

use super::query::{parse_uuid, TenantQuery};
use super::shapes::{List, Meta};
use crate::db::{events as db, flow_control};
use crate::error::AppError;
use crate::state::AppState;
use crate::status::RunStatus;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use uuid::Uuid;

/// The metadata key in which `hatchet.receive_webhook` records the webhook that made an event.
const WEBHOOK_NAME_KEY: &str = "hatchet__webhook_name";

/// The routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/stable/tenants/{tenant}/events", get(list_events))
        .route("/v1/stable/tenants/{tenant}/events/{event}", get(get_event))
        .route("/v1/tenants/{tenant}/rate-limits", get(list_rate_limits))
}

async fn list_events(
    State(state): State<AppState>,
    TenantQuery { tenant, params: p }: TenantQuery,
) -> Result<Json<List<Value>>, AppError> {
    let (offset, limit) = p.page()?;
    let keys = p.list("keys");
    let since = p.datetime("since")?;
    let until = p.datetime("until")?;
    let run_statuses = p.list("workflowRunStatuses");
    if let Some(bad) = run_statuses
        .iter()
        .flatten()
        .find(|s| !["QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"].contains(&s.as_str()))
    {
        return Err(AppError::InvalidArgument(format!(
            "workflowRunStatuses: unknown status {bad:?}"
        )));
    }
    let filter = db::EventFilter {
        scopes: p.list("scopes"),
        metadata: p.metadata("additionalMetadata")?,
        workflow_ids: p.uuids("workflowIds")?,
        run_statuses,
    };
    let (events, total) = match p.uuids("eventIds")? {
        // By id: those events, then the other filters, newest first like the list.
        Some(_) if filter.workflow_ids.is_some() => {
            return Err(AppError::InvalidArgument(
                "eventIds and workflowIds cannot be combined".into(),
            ))
        }
        Some(ids) => {
            let mut found: Vec<db::EventRow> = db::events_by_id(&state.pool, tenant, &ids)
                .await?
                .into_iter()
                .filter(|e| keys.as_ref().is_none_or(|k| k.contains(&e.key)))
                .filter(|e| since.is_none_or(|s| e.created_at >= s))
                .filter(|e| until.is_none_or(|u| e.created_at <= u))
                .filter(|e| {
                    filter
                        .scopes
                        .as_ref()
                        .is_none_or(|scopes| e.scope.as_ref().is_some_and(|s| scopes.contains(s)))
                })
                .filter(|e| contains(&e.additional_metadata, filter.metadata.as_ref()))
                .filter(|e| {
                    filter.run_statuses.as_ref().is_none_or(|statuses| {
                        e.runs
                            .iter()
                            .any(|r| statuses.iter().any(|s| s == r.status.as_str()))
                    })
                })
                .collect();
            found.sort_by_key(|e| std::cmp::Reverse((e.created_at, e.id)));
            let total = i64::try_from(found.len()).unwrap_or(i64::MAX);
            let page = found
                .into_iter()
                .skip(usize::try_from(offset).unwrap_or(usize::MAX))
                .take(usize::try_from(limit).unwrap_or(0))
                .collect();
            (page, total)
        }
        None => {
            db::list_events(
                &state.pool,
                tenant,
                keys.as_deref(),
                since,
                until,
                &filter,
                limit,
                offset,
            )
            .await?
        }
    };
    let rows = events.into_iter().map(|e| event_json(tenant, e)).collect();
    Ok(Json(List::page(rows, offset, limit, total)))
}

/// One event (`event.get`); 404 for an unknown id.
async fn get_event(
    State(state): State<AppState>,
    TenantQuery { tenant, .. }: TenantQuery,
    Path(path): Path<HashMap<String, String>>,
) -> Result<Json<Value>, AppError> {
    let raw = path.get("event").map_or("", String::as_str);
    let id = parse_uuid("event id", raw)?;
    db::events_by_id(&state.pool, tenant, &[id])
        .await?
        .into_iter()
        .next()
        .map(|e| Json(event_json(tenant, e)))
        .ok_or_else(|| AppError::NotFound(format!("event {id} does not exist")))
}

/// Whether `metadata` holds every key of `wanted` with the same value (`hatchet.list_events`'s containment).
fn contains(metadata: &Value, wanted: Option<&Value>) -> bool {
    match wanted {
        Some(Value::Object(w)) => w.iter().all(|(k, v)| metadata.get(k) == Some(v)),
        _ => true,
    }
}

/// Hatchet's `V1Event`.
fn event_json(tenant: Uuid, mut e: db::EventRow) -> Value {
    let count = |s: RunStatus| e.runs.iter().filter(|r| r.status == s).count();
    let summary = json!({
        "running": count(RunStatus::Running),
        "queued": count(RunStatus::Queued),
        "succeeded": count(RunStatus::Completed),
        "failed": count(RunStatus::Failed),
        "cancelled": count(RunStatus::Cancelled),
    });
    // An event made by an incoming webhook names it in an engine metadata key (`hatchet.receive_webhook`).
    let webhook = e
        .additional_metadata
        .as_object_mut()
        .and_then(|m| m.remove(WEBHOOK_NAME_KEY));
    json!({
        "metadata": Meta::new(e.id, e.created_at),
        "key": e.key,
        "tenantId": tenant.to_string(),
        "payload": e.payload,
        "additionalMetadata": e.additional_metadata,
        "scope": e.scope,
        "seenAt": e.created_at,
        "workflowRunSummary": summary,
        "triggeredRuns": e.runs.iter().map(|r| json!({"workflowRunId": r.id.to_string()})).collect::<Vec<_>>(),
        "triggeringWebhookName": webhook,
    })
}

async fn list_rate_limits(
    State(state): State<AppState>,
    TenantQuery { tenant, params: p }: TenantQuery,
) -> Result<Json<List<Value>>, AppError> {
    let rows = flow_control::list_rate_limits(&state.pool, tenant, p.get("search"))
        .await?
        .into_iter()
        .map(|r| {
            let mut v = json!({
                "key": r.key,
                "tenantId": tenant.to_string(),
                "limitValue": r.limit_value,
                "value": r.remaining,
                "window": r.window,
                "lastRefill": r.last_refill,
            });
            // Only while a pause lasts (PauseRateLimit), as Hatchet's RateLimit.pausedUntil.
            if let Some(until) = r.paused_until {
                v["pausedUntil"] = json!(until);
            }
            v
        })
        .collect();
    Ok(Json(List::all(rows)))
}
