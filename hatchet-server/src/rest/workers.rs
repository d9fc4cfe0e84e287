//! Workers: `workers.list`, `workers.get`, `workers.pause` / `unpause` (the SDK's graceful shutdown pauses its
//! worker with `PATCH isPaused=true` first), over the extension's worker registry.

use super::query::{parse_uuid, TenantQuery};
use super::shapes::{List, Meta};
use crate::auth::http::AuthTenant;
use crate::db::workers::{self as db, WorkerRow};
use crate::error::AppError;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::Duration;

/// A worker that missed heartbeats for this long is shown INACTIVE (the extension reaps it at 30 s).
const STALE_AFTER: Duration = Duration::from_secs(30);

/// The routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{tenant}/worker", get(list))
        .route("/v1/workers/{worker}", get(get_one).patch(update))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Worker {
    metadata: Meta,
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    last_heartbeat_at: chrono::DateTime<chrono::Utc>,
    actions: Vec<String>,
    status: &'static str,
    slot_config: Map<String, Value>,
    labels: Vec<Label>,
}

#[derive(Debug, Serialize)]
struct Label {
    metadata: Meta,
    key: String,
    value: String,
}

fn shape(w: WorkerRow) -> Worker {
    let stale = (chrono::Utc::now() - w.last_heartbeat_at)
        .to_std()
        .is_ok_and(|age| age > STALE_AFTER);
    let status = if !w.record.is_active || stale {
        "INACTIVE"
    } else if w.record.is_paused {
        "PAUSED"
    } else {
        "ACTIVE"
    };
    let mut slot_config = Map::new();
    if let Value::Object(slots) = &w.record.slots {
        for (kind, limit) in slots {
            let limit = limit.as_i64().unwrap_or(0);
            let used = w.used.get(kind).and_then(Value::as_i64).unwrap_or(0);
            slot_config.insert(
                kind.clone(),
                serde_json::json!({ "limit": limit, "available": (limit - used).max(0) }),
            );
        }
    }
    let labels = match &w.record.labels {
        Value::Object(labels) => labels
            .iter()
            .map(|(k, v)| Label {
                // Labels have no identity of their own in pg_hatchet: they are the worker's (ids are 36 chars max).
                metadata: Meta::new(w.id, w.created_at),
                key: k.clone(),
                value: v.as_str().map_or_else(|| v.to_string(), str::to_owned),
            })
            .collect(),
        _ => Vec::new(),
    };
    Worker {
        metadata: Meta {
            id: w.id.to_string(),
            created_at: w.created_at,
            updated_at: w.last_heartbeat_at,
        },
        name: w.record.name,
        kind: "SELFHOSTED",
        last_heartbeat_at: w.last_heartbeat_at,
        actions: w.record.actions,
        status,
        slot_config,
        labels,
    }
}

async fn list(
    State(state): State<AppState>,
    q: TenantQuery,
) -> Result<Json<List<Worker>>, AppError> {
    let statuses = q.params.list("statuses");
    let rows = db::list_workers(&state.pool, q.tenant, None)
        .await?
        .into_iter()
        .map(shape)
        .filter(|w| {
            statuses
                .as_ref()
                .is_none_or(|s| s.iter().any(|x| x == w.status))
        })
        .collect();
    Ok(Json(List::all(rows)))
}

async fn one(state: &AppState, tenant: uuid::Uuid, worker: &str) -> Result<Worker, AppError> {
    let id = parse_uuid("worker id", worker)?;
    db::list_workers(&state.pool, tenant, Some(id))
        .await?
        .into_iter()
        .next()
        .map(shape)
        .ok_or_else(|| AppError::NotFound(format!("worker {id} does not exist")))
}

async fn get_one(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    Path(worker): Path<String>,
) -> Result<Json<Worker>, AppError> {
    Ok(Json(one(&state, tenant.0, &worker).await?))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateWorker {
    #[serde(default)]
    is_paused: Option<bool>,
}

async fn update(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    Path(worker): Path<String>,
    Json(body): Json<UpdateWorker>,
) -> Result<Json<Worker>, AppError> {
    let id = parse_uuid("worker id", &worker)?;
    if let Some(paused) = body.is_paused {
        db::set_worker_paused(&state.pool, tenant.0, id, paused).await?;
        state.dispatch.wake_assigner();
    }
    Ok(Json(one(&state, tenant.0, &worker).await?))
}
