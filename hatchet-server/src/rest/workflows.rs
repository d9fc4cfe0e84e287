//! Workflows: `workflows.list` (which `Workflow.id` uses to find a workflow by name), `workflows.get`,
//! `workflows.get_version`, `workflows.pause` / `unpause` (`PATCH` with Hatchet's `WorkflowUpdateRequest`) and
//! `workflows.delete`.

use super::query::{parse_uuid, Body, TenantQuery};
use super::shapes::{List, Meta};
use crate::auth::http::AuthTenant;
use crate::db::workflows::{self as db, WorkflowRow};
use crate::error::AppError;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

/// The routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{tenant}/workflows", get(list))
        .route(
            "/v1/workflows/{workflow}",
            get(get_one).patch(update).delete(delete),
        )
        .route("/v1/workflows/{workflow}/versions", get(version))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Workflow {
    metadata: Meta,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    is_paused: bool,
    tenant_id: String,
    versions: Vec<Value>,
    triggers: Value,
}

fn triggers(tenant: Uuid, w: &WorkflowRow) -> Value {
    let version = w.version_id.map(|v| v.to_string()).unwrap_or_default();
    json!({
        "workflow_version_id": version,
        "tenant_id": tenant.to_string(),
        "events": w.event_triggers.iter().map(|k| json!({"parent_id": version, "event_key": k})).collect::<Vec<_>>(),
        "crons": w.cron_triggers.iter().map(|c| json!({"parent_id": version, "cron": c})).collect::<Vec<_>>(),
    })
}

fn version_meta(w: &WorkflowRow) -> Option<Value> {
    let id = w.version_id?;
    let created = w.version_created_at.unwrap_or(w.created_at);
    Some(json!({
        "metadata": Meta::new(id, created),
        "version": w.version.clone().unwrap_or_default(),
        "order": 0,
        "workflowId": w.id.to_string(),
    }))
}

fn shape(tenant: Uuid, w: WorkflowRow) -> Workflow {
    Workflow {
        metadata: Meta {
            id: w.id.to_string(),
            created_at: w.created_at,
            updated_at: w.version_created_at.unwrap_or(w.created_at),
        },
        triggers: triggers(tenant, &w),
        versions: version_meta(&w).into_iter().collect(),
        name: w.name,
        description: w.description,
        is_paused: w.is_paused,
        tenant_id: tenant.to_string(),
    }
}

async fn list(
    State(state): State<AppState>,
    TenantQuery { tenant, params }: TenantQuery,
) -> Result<Json<List<Workflow>>, AppError> {
    let (offset, limit) = params.page()?;
    let all = db::list_workflows(&state.pool, tenant, params.get("name"), None).await?;
    let total = i64::try_from(all.len()).unwrap_or(i64::MAX);
    let rows = all
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(0))
        .map(|w| shape(tenant, w))
        .collect();
    Ok(Json(List::page(rows, offset, limit, total)))
}

async fn find(state: &AppState, tenant: Uuid, workflow: &str) -> Result<WorkflowRow, AppError> {
    let id = parse_uuid("workflow id", workflow)?;
    db::list_workflows(&state.pool, tenant, None, Some(id))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| AppError::NotFound(format!("workflow {id} does not exist")))
}

async fn get_one(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    Path(workflow): Path<String>,
) -> Result<Json<Workflow>, AppError> {
    Ok(Json(shape(
        tenant.0,
        find(&state, tenant.0, &workflow).await?,
    )))
}

/// The latest version (`?version=` naming another one is not supported: only the latest is kept in view).
async fn version(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    Path(workflow): Path<String>,
) -> Result<Json<Value>, AppError> {
    let w = find(&state, tenant.0, &workflow).await?;
    let mut v = version_meta(&w)
        .ok_or_else(|| AppError::NotFound(format!("workflow {} has no version", w.id)))?;
    v["triggers"] = triggers(tenant.0, &w);
    v["workflow"] = serde_json::to_value(shape(tenant.0, w)).map_err(AppError::internal)?;
    Ok(Json(v))
}

/// Hatchet's `WorkflowUpdateRequest`: `{"pause": {"action": "pause", "pausedWorkflowQueueTTL": "10m",
/// "pausedWorkflowCronRunQueueBehavior": "QUEUE" | "DROP", "pausedWorkflowScheduledRunQueueBehavior": ...}}` or
/// `{"pause": {"action": "unpause"}}`. A request without `pause` changes nothing and returns the workflow.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    pause: Option<PauseBody>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PauseBody {
    action: String,
    #[serde(rename = "pausedWorkflowQueueTTL")]
    paused_workflow_queue_ttl: Option<String>,
    paused_workflow_cron_run_queue_behavior: Option<String>,
    paused_workflow_scheduled_run_queue_behavior: Option<String>,
}

async fn update(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    Path(workflow): Path<String>,
    Body(body): Body<UpdateBody>,
) -> Result<Json<Workflow>, AppError> {
    let id = parse_uuid("workflow id", &workflow)?;
    if let Some(p) = body.pause {
        match p.action.as_str() {
            "pause" => {
                let pause = db::Pause {
                    queue_ttl: p.paused_workflow_queue_ttl,
                    cron_behavior: p
                        .paused_workflow_cron_run_queue_behavior
                        .unwrap_or_else(|| "QUEUE".into()),
                    scheduled_behavior: p
                        .paused_workflow_scheduled_run_queue_behavior
                        .unwrap_or_else(|| "QUEUE".into()),
                };
                db::pause_workflow(&state.pool, tenant.0, id, &pause).await?;
            }
            "unpause" => {
                db::unpause_workflow(&state.pool, tenant.0, id).await?;
                // Its held attempts can go now; do not wait for the assigner's idle poll.
                state.dispatch.wake_assigner();
            }
            other => {
                return Err(AppError::InvalidArgument(format!(
                    "pause.action must be \"pause\" or \"unpause\", not {other:?}"
                )))
            }
        }
    }
    Ok(Json(shape(
        tenant.0,
        find(&state, tenant.0, &workflow).await?,
    )))
}

/// Deletes the workflow (its versions, crons, schedules and filters; finished runs stay). 409 while it has work
/// in progress.
async fn delete(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    Path(workflow): Path<String>,
) -> Result<StatusCode, AppError> {
    let id = parse_uuid("workflow id", &workflow)?;
    db::delete_workflow(&state.pool, tenant.0, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
