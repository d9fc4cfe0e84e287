//! What the SDK's `metrics` and `cel` clients read: task counts by status over a time window
//! (`metrics.get_task_metrics`), queued and running work per task (`metrics.get_task_stats`), ready items per queue
//! (`metrics.get_queue_metrics`), the tenant's Prometheus series, and a CEL expression evaluated as an event filter would be (`cel.debug`).
//!
//! | route | source |
//! |---|---|
//! | `GET /v1/stable/tenants/{tenant}/task-metrics` | `hatchet.task_status_counts` → `[{status, count}]`, all five statuses |
//! | `GET /v1/tenants/{tenant}/task-stats` | `hatchet.task_stats` → `{task: {queued: {total, queues, oldest}, running: {...}}}` |
//! | `GET /v1/tenants/{tenant}/step-run-queue-metrics` | ready items per queue → `{"queues": {queue: n}}` |
//! | `POST /v1/stable/tenants/{tenant}/cel/debug` | `hatchet.cel_try` over `input`, `additional_metadata`, `payload` → `{status, output \| error}` |
//! | `GET /v1/tenants/{tenant}/prometheus-metrics` | the tenant's series of `GET /metrics` (`metrics.scrape_tenant_prometheus_metrics`) |

use super::query::{Body, TenantQuery};
use crate::db::events as events_db;
use crate::db::maintenance;
use crate::db::runs::{self as runs_db, MetricsFilter};
use crate::error::AppError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/stable/tenants/{tenant}/task-metrics",
            get(task_metrics),
        )
        .route("/v1/tenants/{tenant}/task-stats", get(task_stats))
        .route(
            "/v1/tenants/{tenant}/step-run-queue-metrics",
            get(queue_metrics),
        )
        .route("/v1/stable/tenants/{tenant}/cel/debug", post(cel_debug))
        .route("/v1/tenants/{tenant}/prometheus-metrics", get(prometheus))
}

/// Tasks created in the window by status. The window defaults to the last day, as the SDK's own default.
async fn task_metrics(
    State(state): State<AppState>,
    TenantQuery { tenant, params: p }: TenantQuery,
) -> Result<Json<Vec<Value>>, AppError> {
    let filter = MetricsFilter {
        since: p
            .datetime("since")?
            .unwrap_or_else(|| Utc::now() - Duration::days(1)),
        until: p.datetime("until")?,
        workflow_ids: p.uuids("workflow_ids")?,
        parent_task_id: p.uuid("parent_task_external_id")?,
        triggering_event_id: p.uuid("triggering_event_external_id")?,
    };
    let rows = runs_db::task_status_counts(&state.pool, tenant, &filter).await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| json!({"status": r.status, "count": r.count}))
            .collect(),
    ))
}

/// Queued and running work per task name: totals, per queue, and the oldest creation time.
async fn task_stats(
    State(state): State<AppState>,
    TenantQuery { tenant, .. }: TenantQuery,
) -> Result<Json<Map<String, Value>>, AppError> {
    #[derive(Default)]
    struct Stat {
        total: i64,
        queues: Map<String, Value>,
        oldest: Option<DateTime<Utc>>,
        oldest_excluding_retries: Option<DateTime<Utc>>,
    }
    let mut stats: BTreeMap<(String, &'static str), Stat> = BTreeMap::new();
    for r in runs_db::task_stats(&state.pool, tenant).await? {
        let key = if r.state == "RUNNING" {
            "running"
        } else {
            "queued"
        };
        let s = stats.entry((r.task_name, key)).or_default();
        s.total += r.count;
        s.queues.insert(r.queue, json!(r.count));
        s.oldest = s.oldest.into_iter().chain([r.oldest]).min();
        s.oldest_excluding_retries = s
            .oldest_excluding_retries
            .into_iter()
            .chain(r.oldest_excluding_retries)
            .min();
    }
    let mut out: Map<String, Value> = Map::new();
    for ((task, key), s) in stats {
        out.entry(task).or_insert_with(|| json!({}))[key] = json!({
            "total": s.total,
            "queues": s.queues,
            "oldest": s.oldest,
            "oldestExcludingRetries": s.oldest_excluding_retries,
        });
    }
    Ok(Json(out))
}

/// Ready items per queue (what waits for a worker now).
async fn queue_metrics(
    State(state): State<AppState>,
    TenantQuery { tenant, .. }: TenantQuery,
) -> Result<Json<Value>, AppError> {
    let queues: Map<String, Value> = maintenance::queue_depths(&state.pool, tenant)
        .await?
        .into_iter()
        .map(|q| (q.queue, json!(q.depth)))
        .collect();
    Ok(Json(json!({ "queues": queues })))
}

/// The tenant's Prometheus series, as `GET /metrics` shows them to its token.
async fn prometheus(
    State(state): State<AppState>,
    TenantQuery { tenant, .. }: TenantQuery,
) -> Result<impl IntoResponse, AppError> {
    let depths = maintenance::queue_depths(&state.pool, tenant).await?;
    let body = state
        .metrics
        .render_for(tenant, &depths)
        .map_err(AppError::internal)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    ))
}

/// Hatchet's `V1CELDebugRequest`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CelDebugBody {
    expression: String,
    input: Map<String, Value>,
    #[serde(default)]
    filter_payload: Option<Map<String, Value>>,
    #[serde(default)]
    additional_metadata: Option<Map<String, Value>>,
}

/// Evaluates the expression with the variables an event filter sees (`input`, `additional_metadata`, `payload`).
/// An expression that does not compile, fails or is not a boolean is `{"status": "ERROR", "error": ...}`, as in
/// Hatchet (the request itself succeeds).
async fn cel_debug(
    State(state): State<AppState>,
    _tenant: TenantQuery,
    Body(body): Body<CelDebugBody>,
) -> Result<Json<Value>, AppError> {
    let vars = json!({
        "input": body.input,
        "additional_metadata": body.additional_metadata.unwrap_or_default(),
        "payload": body.filter_payload.unwrap_or_default(),
    });
    let res = events_db::cel_try(&state.pool, &body.expression, &vars).await?;
    Ok(Json(match (res.get("value"), res.get("error")) {
        (Some(Value::Bool(b)), _) => json!({"status": "SUCCESS", "output": b}),
        (Some(other), _) => json!({
            "status": "ERROR",
            "error": format!("expression must evaluate to a boolean, not {other}"),
        }),
        (None, e) => json!({
            "status": "ERROR",
            "error": e.and_then(Value::as_str).unwrap_or("evaluation failed"),
        }),
    }))
}
