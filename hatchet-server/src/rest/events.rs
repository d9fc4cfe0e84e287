//! Events (`event.list`, with the webhook that made an event as `triggeringWebhookName`) and rate limits (`rate_limits.list`). Events are pushed over gRPC (`EventsService`).

use super::query::TenantQuery;
use super::shapes::{List, Meta};
use crate::db::{events as db, flow_control};
use crate::error::AppError;
use crate::state::AppState;
use crate::status::RunStatus;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

/// The metadata key in which `hatchet.receive_webhook` records the webhook that made an event.
const WEBHOOK_NAME_KEY: &str = "hatchet__webhook_name";

/// The routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/stable/tenants/{tenant}/events", get(list_events))
        .route("/v1/tenants/{tenant}/rate-limits", get(list_rate_limits))
}

async fn list_events(
    State(state): State<AppState>,
    TenantQuery { tenant, params: p }: TenantQuery,
) -> Result<Json<List<Value>>, AppError> {
    let (offset, limit) = p.page()?;
    let keys = p.list("keys");
    let (events, total) = db::list_events(
        &state.pool,
        tenant,
        keys.as_deref(),
        p.datetime("since")?,
        p.datetime("until")?,
        limit,
        offset,
    )
    .await?;
    let rows = events
        .into_iter()
        .map(|mut e| {
            let count = |s: RunStatus| e.runs.iter().filter(|r| r.status == s).count();
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
                "workflowRunSummary": {
                    "running": count(RunStatus::Running),
                    "queued": count(RunStatus::Queued),
                    "succeeded": count(RunStatus::Completed),
                    "failed": count(RunStatus::Failed),
                    "cancelled": count(RunStatus::Cancelled),
                },
                "triggeredRuns": e.runs.iter().map(|r| json!({"workflowRunId": r.id.to_string()})).collect::<Vec<_>>(),
                "triggeringWebhookName": webhook,
            })
        })
        .collect();
    Ok(Json(List::page(rows, offset, limit, total)))
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
