//! Tasks: cancel (`runs.cancel`, `ctx.cancel`), replay (`runs.replay`), one task (`runs.get_task_run`), its logs
//! (`logs.list`).
//!
//! | route | source |
//! |---|---|
//! | `POST /v1/stable/tenants/{tenant}/tasks/cancel` | `hatchet.cancel_run` per run id (`hatchet.cancel` for a task id); a filter selects runs like `runs.list` |
//! | `POST /v1/stable/tenants/{tenant}/tasks/replay` | `hatchet.replay_tasks` over the selected run / task ids (finished ones get a new attempt) |
//! | `GET /v1/stable/tasks/{task}` | the task's run, then its row there |
//! | `GET /v1/stable/tasks/{task}/logs` | `hatchet.task_logs` |
//! | `POST /v1/stable/tasks/{task}/restore` | `hatchet.restore_evicted` (`V1RestoreTaskResponse`) |
//! | `POST /v1/stable/tenants/{tenant}/durable-tasks/branch` | `hatchet.branch_durable_task` (`runs.reset_durable_task`) |
//! | `GET /v1/stable/tenants/{tenant}/traces?run_external_id=` | `hatchet.run_trace` (`ObservabilityApi.v1_observability_get_trace`: `OtelSpanList`) |

use super::query::{metadata_object, parse_uuid, Params, TenantQuery};
use super::runs::{details, resolve_run};
use super::shapes::{List, LogLine, LogLineList, Pagination, TaskSummary};
use crate::auth::http::AuthTenant;
use crate::db::runs::{self as runs_db, RunFilter};
use crate::db::tasks as tasks_db;
use crate::error::AppError;
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// The routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/stable/tenants/{tenant}/tasks/cancel", post(cancel))
        .route("/v1/stable/tenants/{tenant}/tasks/replay", post(replay))
        .route("/v1/stable/tasks/{task}", get(get_task))
        .route("/v1/stable/tasks/{task}/logs", get(logs))
        .route("/v1/stable/tasks/{task}/restore", post(restore))
        .route(
            "/v1/stable/tenants/{tenant}/durable-tasks/branch",
            post(branch_durable_task),
        )
        .route("/v1/stable/tenants/{tenant}/traces", get(trace))
}

/// The OpenTelemetry trace of a run or task (`run_external_id`), one page (`offset`, `limit`: 1000 by default, as in
/// Hatchet) of Hatchet's `OtelSpan` by start time. 404 when the run or task neither exists nor has spans.
async fn trace(
    State(state): State<AppState>,
    TenantQuery { tenant, params: p }: TenantQuery,
) -> Result<Json<List<Value>>, AppError> {
    let raw = p
        .get("run_external_id")
        .ok_or_else(|| AppError::InvalidArgument("run_external_id is required".into()))?;
    let run_id = parse_uuid("run_external_id", raw)?;
    let offset = p.int("offset")?.unwrap_or(0).clamp(0, i64::from(i32::MAX));
    let limit = match p.int("limit")?.unwrap_or(1000) {
        l if l < 1 => 1000,
        l => l.min(1000),
    };
    let spans = tasks_db::run_trace(&state.pool, tenant, run_id, offset, limit).await?;
    let total = spans.first().map_or(0, |s| s.total);
    let rows = spans.into_iter().map(span_json).collect();
    Ok(Json(List::page(rows, offset, limit, total)))
}

/// Hatchet's `OtelSpan`; attribute values are strings (anything else as its JSON text, as Hatchet shows them).
fn span_json(s: tasks_db::TraceSpan) -> Value {
    let strings = |v: Value| -> Map<String, Value> {
        match v {
            Value::Object(m) => m
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| match v {
                    Value::String(s) => (k, Value::String(s)),
                    other => (k, Value::String(other.to_string())),
                })
                .collect(),
            _ => Map::new(),
        }
    };
    json!({
        "traceId": s.trace_id,
        "spanId": s.span_id,
        "parentSpanId": s.parent_span_id,
        "spanName": s.name,
        "spanKind": s.kind,
        "serviceName": s.service_name,
        "statusCode": s.status_code,
        "statusMessage": s.status_message,
        "durationNs": s.duration_ns,
        "createdAt": s.start_time,
        "resourceAttributes": strings(s.resource_attributes),
        "spanAttributes": strings(s.span_attributes),
        "scopeName": s.scope_name,
        "scopeVersion": s.scope_version,
        "retryCount": s.retry_count,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BranchRequest {
    task_external_id: String,
    node_id: i64,
    branch_id: i64,
}

/// A new branch of a durable task's log from a node; the task runs again on it. Answers the task, the node and the
/// new branch (`V1BranchDurableTaskResponse`).
async fn branch_durable_task(
    State(state): State<AppState>,
    auth: AuthTenant,
    Path(tenant_path): Path<String>,
    Json(body): Json<BranchRequest>,
) -> Result<Json<serde_json::Value>, AppError> {
    auth.check_path(&tenant_path)?;
    let tenant = auth.0 .0;
    let task_id = parse_uuid("taskExternalId", &body.task_external_id)?;
    let branch = crate::db::durable::branch_durable_task(
        &state.pool,
        tenant,
        task_id,
        body.node_id,
        body.branch_id,
    )
    .await?;
    state.dispatch.wake_assigner();
    Ok(Json(json!({
        "taskExternalId": task_id.to_string(),
        "nodeId": body.node_id,
        "branchId": branch,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TaskFilter {
    since: DateTime<Utc>,
    #[serde(default)]
    until: Option<DateTime<Utc>>,
    #[serde(default)]
    statuses: Option<Vec<String>>,
    #[serde(default)]
    workflow_ids: Option<Vec<String>>,
    #[serde(default)]
    additional_metadata: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BulkRequest {
    #[serde(default)]
    external_ids: Option<Vec<String>>,
    #[serde(default)]
    filter: Option<TaskFilter>,
}

#[derive(Debug, serde::Serialize)]
struct Cancelled {
    ids: Vec<String>,
}

async fn selected_ids(
    state: &AppState,
    tenant: Uuid,
    body: &BulkRequest,
) -> Result<Vec<Uuid>, AppError> {
    let mut ids = Vec::new();
    for raw in body.external_ids.iter().flatten() {
        ids.push(parse_uuid("externalIds", raw)?);
    }
    if let Some(f) = &body.filter {
        let workflow_ids = f
            .workflow_ids
            .as_ref()
            .map(|w| {
                w.iter()
                    .map(|x| parse_uuid("workflowIds", x))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let filter = RunFilter {
            since: Some(f.since),
            until: f.until,
            workflow_ids,
            metadata: metadata_object(
                "additionalMetadata",
                f.additional_metadata.as_deref().unwrap_or(&[]),
            )?,
            statuses: f.statuses.clone(),
            limit: 1000,
            ..Default::default()
        };
        let (rows, _) = runs_db::list_runs(&state.pool, tenant, &filter).await?;
        ids.extend(rows.iter().map(|r| r.id));
    }
    if ids.is_empty() && body.filter.is_none() {
        return Err(AppError::InvalidArgument(
            "give externalIds or a filter".into(),
        ));
    }
    Ok(ids)
}

async fn cancel(
    State(state): State<AppState>,
    auth: AuthTenant,
    Path(tenant_path): Path<String>,
    Json(body): Json<BulkRequest>,
) -> Result<Json<Cancelled>, AppError> {
    auth.check_path(&tenant_path)?;
    let tenant = auth.0 .0;
    let mut cancelled = Vec::new();
    for id in selected_ids(&state, tenant, &body).await? {
        if runs_db::cancel_run_or_task(&state.pool, tenant, id).await? {
            cancelled.push(id.to_string());
        }
    }
    state.dispatch.wake_runs();
    state.dispatch.wake_assigner();
    Ok(Json(Cancelled { ids: cancelled }))
}

/// `V1ReplayedTasks`: the tasks that got a new attempt now.
#[derive(Debug, serde::Serialize)]
struct Replayed {
    ids: Vec<String>,
}

async fn replay(
    State(state): State<AppState>,
    auth: AuthTenant,
    Path(tenant_path): Path<String>,
    Json(body): Json<BulkRequest>,
) -> Result<Json<Replayed>, AppError> {
    auth.check_path(&tenant_path)?;
    let tenant = auth.0 .0;
    let ids = selected_ids(&state, tenant, &body).await?;
    let replayed = if ids.is_empty() {
        Vec::new()
    } else {
        runs_db::replay_tasks(&state.pool, tenant, &ids).await?
    };
    state.dispatch.wake_assigner();
    Ok(Json(Replayed {
        ids: replayed.iter().map(Uuid::to_string).collect(),
    }))
}

async fn get_task(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    Path(task): Path<String>,
) -> Result<Json<TaskSummary>, AppError> {
    let task_id = parse_uuid("task id", &task)?;
    let row = resolve_run(&state, tenant.0, task_id).await?;
    let details = details(&state, tenant.0, &row).await?;
    details
        .tasks
        .into_iter()
        .find(|t| t.task_external_id == task_id.to_string())
        .map(Json)
        .ok_or_else(|| AppError::NotFound(format!("task {task_id} does not exist")))
}

/// Queues an evicted durable task now, whatever it waits for (it replays its log on a worker and waits again).
/// `requeued` is false for a task that is not evicted; an unknown task is 404.
async fn restore(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    Path(task): Path<String>,
) -> Result<Json<serde_json::Value>, AppError> {
    let task_id = parse_uuid("task id", &task)?;
    let requeued = crate::db::durable::restore_evicted(&state.pool, tenant.0, task_id).await?;
    if requeued {
        state.dispatch.wake_assigner();
    }
    Ok(Json(json!({ "requeued": requeued })))
}

/// `V1LogLineLevel` from a stored level (Python's names included).
fn log_level(level: &str) -> &'static str {
    match level.to_ascii_uppercase().as_str() {
        "DEBUG" | "TRACE" => "DEBUG",
        "WARN" | "WARNING" => "WARN",
        "ERROR" | "CRITICAL" | "FATAL" => "ERROR",
        _ => "INFO",
    }
}

async fn logs(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    Path(task): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<LogLineList>, AppError> {
    let task_id = parse_uuid("task id", &task)?;
    let params = Params::parse(raw.as_deref());
    let limit = params.int("limit")?.unwrap_or(1000).clamp(1, 10_000);
    let since = params.datetime("since")?;
    let until = params.datetime("until")?;
    if tasks_db::run_of_task(&state.pool, tenant.0, task_id)
        .await?
        .is_none()
    {
        return Err(AppError::NotFound(format!("task {task_id} does not exist")));
    }
    let rows: Vec<LogLine> = tasks_db::task_logs(&state.pool, tenant.0, task_id)
        .await?
        .into_iter()
        .filter(|l| {
            since.is_none_or(|s| l.created_at >= s) && until.is_none_or(|u| l.created_at <= u)
        })
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .map(|l| LogLine {
            created_at: l.created_at,
            message: l.message,
            metadata: json!({}),
            task_external_id: task_id.to_string(),
            retry_count: l.retry_count,
            attempt: l.retry_count + 1,
            level: log_level(&l.level).to_owned(),
        })
        .collect();
    let total = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    Ok(Json(LogLineList {
        pagination: Pagination::new(0, limit, total),
        rows,
    }))
}
