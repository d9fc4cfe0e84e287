//! Alert settings (`hatchet.put_alert_channel` and friends, docs/alerts.md), for operators and the dashboard's
//! settings page, bearer-authenticated like the rest of `/api`:
//!
//! | route | what |
//! |---|---|
//! | `GET /api/v1/stable/tenants/{tenant}/alert-channels` | `{"rows": [channel, ...]}` |
//! | `GET /api/v1/stable/tenants/{tenant}/alert-channels/{kind}` | one channel, 404 if it is not set |
//! | `PUT /api/v1/stable/tenants/{tenant}/alert-channels/{kind}` | create or replace; 201 when created, 200 when replaced |
//! | `DELETE /api/v1/stable/tenants/{tenant}/alert-channels/{kind}` | 204, or 404 if it was not set |
//! | `POST /api/v1/stable/tenants/{tenant}/alert-channels/{kind}/test` | sends a test alert now: `{"delivered": true, "to": ...}` or `{"delivered": false, "error": "..."}` (200 either way), 404 if it is not set |
//! | `GET /api/v1/stable/tenants/{tenant}/alerts?limit=N` | `{"rows": [{subject, kind, event, deliveryRunId, createdAt}]}`, newest first (limit 1-1000, default 50) |
//!
//! `kind` is `slack`, `webhook` or `email`. A PUT body is `{"enabled": true, "events": ["run_failed"],
//! "settings": {...}, "secret": {...}}`, every field optional; a missing `settings` or `secret` keeps the stored one.
//! Secrets are write-only: a channel is answered as `{kind, enabled, events, settings, secretFields, createdAt,
//! updatedAt}`, where `secretFields` names the secret fields that are set.

use super::query::{Body, TenantQuery};
use crate::db::alerts as db;
use crate::error::AppError;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use uuid::Uuid;

const COLLECTION: &str = "/v1/stable/tenants/{tenant}/alert-channels";
const ONE: &str = "/v1/stable/tenants/{tenant}/alert-channels/{kind}";
const TEST: &str = "/v1/stable/tenants/{tenant}/alert-channels/{kind}/test";
const SENT: &str = "/v1/stable/tenants/{tenant}/alerts";

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(COLLECTION, get(list))
        .route(ONE, get(get_one).put(put).delete(delete))
        .route(TEST, post(test))
        .route(SENT, get(sent))
}

/// A channel as the API answers it: never a secret's value.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Channel {
    kind: String,
    enabled: bool,
    events: Vec<String>,
    settings: Value,
    secret_fields: Vec<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<db::ChannelRow> for Channel {
    fn from(r: db::ChannelRow) -> Self {
        Self {
            kind: r.kind,
            enabled: r.enabled,
            events: r.events,
            settings: r.settings,
            secret_fields: r.secret_fields,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutRequest {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    events: Option<Vec<String>>,
    #[serde(default)]
    settings: Option<Map<String, Value>>,
    #[serde(default)]
    secret: Option<Map<String, Value>>,
}

async fn list(State(state): State<AppState>, q: TenantQuery) -> Result<Json<Value>, AppError> {
    let rows = db::list_channels(&state.pool, q.tenant).await?;
    let rows: Vec<Channel> = rows.into_iter().map(Channel::from).collect();
    Ok(Json(json!({ "rows": rows })))
}

async fn find(state: &AppState, tenant: Uuid, kind: &str) -> Result<Channel, AppError> {
    db::list_channels(&state.pool, tenant)
        .await?
        .into_iter()
        .find(|c| c.kind == kind)
        .map(Channel::from)
        .ok_or_else(|| AppError::NotFound(format!("alert channel \"{kind}\" is not set")))
}

async fn get_one(
    State(state): State<AppState>,
    q: TenantQuery,
    Path((_, kind)): Path<(String, String)>,
) -> Result<Json<Channel>, AppError> {
    Ok(Json(find(&state, q.tenant, &kind).await?))
}

async fn put(
    State(state): State<AppState>,
    q: TenantQuery,
    Path((_, kind)): Path<(String, String)>,
    Body(req): Body<PutRequest>,
) -> Result<(StatusCode, Json<Channel>), AppError> {
    let put = db::PutChannel {
        kind: kind.clone(),
        settings: req.settings.map(Value::Object),
        secret: req.secret.map(Value::Object),
        enabled: req.enabled.unwrap_or(true),
        events: req.events.unwrap_or_else(|| vec!["run_failed".to_owned()]),
    };
    let created = db::put_channel(&state.pool, q.tenant, &put).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(find(&state, q.tenant, &kind).await?)))
}

async fn delete(
    State(state): State<AppState>,
    q: TenantQuery,
    Path((_, kind)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    if db::delete_channel(&state.pool, q.tenant, &kind).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::NotFound(format!(
            "alert channel \"{kind}\" is not set"
        )))
    }
}

/// Sends a test alert through the channel as stored (`crate::alerting::send_test`, the dashboard's too). A delivery
/// that fails is the answer, not an error: `{"delivered": false, "error": reason}` with 200.
async fn test(
    State(state): State<AppState>,
    q: TenantQuery,
    Path((_, kind)): Path<(String, String)>,
) -> Result<Json<Value>, AppError> {
    let outcome =
        crate::alerting::send_test(&state.pool, &state.config.public_url, q.tenant, &kind).await?;
    Ok(Json(match outcome {
        Ok(sent) => json!({"delivered": true, "to": sent["to"], "link": sent["link"]}),
        Err(error) => json!({"delivered": false, "error": error}),
    }))
}

/// One alert sent, as the API answers it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Sent {
    subject: String,
    kind: String,
    event: String,
    delivery_run_id: Uuid,
    created_at: DateTime<Utc>,
}

async fn sent(State(state): State<AppState>, q: TenantQuery) -> Result<Json<Value>, AppError> {
    let limit = q.params.int("limit")?.unwrap_or(50);
    let limit = i32::try_from(limit).unwrap_or(i32::MAX);
    let rows = db::list_alerts(&state.pool, q.tenant, limit).await?;
    let rows: Vec<Sent> = rows
        .into_iter()
        .map(|r| Sent {
            subject: r.subject,
            kind: r.kind,
            event: r.event,
            delivery_run_id: r.task_id,
            created_at: r.created_at,
        })
        .collect();
    Ok(Json(json!({ "rows": rows })))
}
