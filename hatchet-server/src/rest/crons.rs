//! Crons (`cron.create/list/get/delete`, `Workflow.create_cron`) and scheduled runs (`scheduled.create/list/get/
//! delete`), over `hatchet.create_cron` / `list_crons` / `delete_cron` and `hatchet.schedule` / `list_schedules` /
//! `delete_schedule`. The `{workflow}` segment of the create routes is the workflow *name*, as the SDK sends it.

use super::query::{parse_uuid, Params};
use super::shapes::{CronWorkflow, List, Meta, Pagination, ScheduledWorkflow};
use crate::auth::http::AuthTenant;
use crate::db::crons::{self as db, Cron, RunSpec, Schedule};
use crate::db::{runs, workflows};
use crate::{AppError, AppState};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use uuid::Uuid;

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/tenants/{tenant}/workflows/{workflow}/crons",
            post(create_cron),
        )
        .route("/v1/tenants/{tenant}/workflows/crons", get(list_crons))
        .route(
            "/v1/tenants/{tenant}/workflows/crons/{cron}",
            get(get_cron).delete(delete_cron),
        )
        .route(
            "/v1/tenants/{tenant}/workflows/{workflow}/scheduled",
            post(create_scheduled),
        )
        .route(
            "/v1/tenants/{tenant}/workflows/scheduled",
            get(list_scheduled),
        )
        .route(
            "/v1/tenants/{tenant}/workflows/scheduled/{scheduled}",
            get(get_scheduled).delete(delete_scheduled),
        )
}

/// Workflow name → (workflow id, latest version id), looked up once per request.
#[derive(Default)]
struct WorkflowIds(HashMap<String, (String, String)>);

impl WorkflowIds {
    async fn of(
        &mut self,
        state: &AppState,
        tenant: Uuid,
        name: &str,
    ) -> Result<(String, String), AppError> {
        if let Some(ids) = self.0.get(name) {
            return Ok(ids.clone());
        }
        let (w, v) = workflows::workflow_ids(&state.pool, tenant, name)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("workflow \"{name}\" does not exist")))?;
        let ids = (w.to_string(), v.map(|v| v.to_string()).unwrap_or_default());
        self.0.insert(name.to_owned(), ids.clone());
        Ok(ids)
    }
}

async fn cron_shape(
    state: &AppState,
    tenant: Uuid,
    ids: &mut WorkflowIds,
    c: Cron,
) -> Result<CronWorkflow, AppError> {
    let (workflow_id, version_id) = ids.of(state, tenant, &c.workflow).await?;
    Ok(CronWorkflow {
        metadata: Meta::new(c.id, c.created_at),
        tenant_id: tenant.to_string(),
        workflow_version_id: version_id,
        workflow_id,
        workflow_name: c.workflow,
        cron: c.expression,
        name: c.name,
        input: c.input,
        additional_metadata: c.additional_metadata,
        enabled: c.enabled,
        method: if c.method == "DECLARED" {
            "DEFAULT"
        } else {
            "API"
        },
        priority: c.priority,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateCron {
    cron_name: String,
    cron_expression: String,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    additional_metadata: Option<Value>,
    #[serde(default)]
    priority: Option<i32>,
}

async fn create_cron(
    State(state): State<AppState>,
    auth: AuthTenant,
    Path((tenant_path, workflow)): Path<(String, String)>,
    Json(body): Json<CreateCron>,
) -> Result<Json<CronWorkflow>, AppError> {
    auth.check_path(&tenant_path)?;
    let tenant = auth.0 .0;
    let input = body.input.unwrap_or_else(|| json!({}));
    let metadata = body.additional_metadata.unwrap_or_else(|| json!({}));
    let run = RunSpec {
        workflow: &workflow,
        input: &input,
        additional_metadata: &metadata,
        priority: body.priority,
    };
    let id = db::create_cron(
        &state.pool,
        tenant,
        &body.cron_name,
        &body.cron_expression,
        run,
    )
    .await?;
    let cron = find_cron(&state, tenant, id).await?;
    Ok(Json(
        cron_shape(&state, tenant, &mut WorkflowIds::default(), cron).await?,
    ))
}

async fn find_cron(state: &AppState, tenant: Uuid, id: Uuid) -> Result<Cron, AppError> {
    db::list_crons(&state.pool, tenant, None)
        .await?
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| AppError::NotFound(format!("cron {id} does not exist")))
}

fn page<T>(rows: Vec<T>, p: &Params) -> Result<List<T>, AppError> {
    let (offset, limit) = p.page()?;
    let total = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    let rows = rows
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .collect();
    Ok(List {
        rows,
        pagination: Pagination::new(offset, limit, total),
    })
}

/// Whether `have` holds every `key: value` of the filter (values compared as text, as query strings carry them).
fn metadata_matches(have: &Value, want: &Option<Value>) -> bool {
    fn text(v: &Value) -> String {
        v.as_str().map_or_else(|| v.to_string(), str::to_owned)
    }
    match want {
        Some(Value::Object(want)) => want
            .iter()
            .all(|(k, v)| have.get(k).is_some_and(|h| text(h) == text(v))),
        _ => true,
    }
}

async fn list_crons(
    State(state): State<AppState>,
    auth: AuthTenant,
    Path(tenant_path): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<List<CronWorkflow>>, AppError> {
    auth.check_path(&tenant_path)?;
    let tenant = auth.0 .0;
    let p = Params::parse(raw.as_deref());
    let metadata = p.metadata("additionalMetadata")?;
    let mut ids = WorkflowIds::default();
    let mut rows = Vec::new();
    for c in db::list_crons(&state.pool, tenant, p.get("workflowName")).await? {
        if p.get("cronName").is_some_and(|n| n != c.name)
            || !metadata_matches(&c.additional_metadata, &metadata)
        {
            continue;
        }
        let shape = cron_shape(&state, tenant, &mut ids, c).await?;
        if p.get("workflowId").is_some_and(|w| w != shape.workflow_id) {
            continue;
        }
        rows.push(shape);
    }
    Ok(Json(page(rows, &p)?))
}

async fn get_cron(
    State(state): State<AppState>,
    auth: AuthTenant,
    Path((tenant_path, cron)): Path<(String, String)>,
) -> Result<Json<CronWorkflow>, AppError> {
    auth.check_path(&tenant_path)?;
    let tenant = auth.0 .0;
    let found = find_cron(&state, tenant, parse_uuid("cron id", &cron)?).await?;
    Ok(Json(
        cron_shape(&state, tenant, &mut WorkflowIds::default(), found).await?,
    ))
}

async fn delete_cron(
    State(state): State<AppState>,
    auth: AuthTenant,
    Path((tenant_path, cron)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    auth.check_path(&tenant_path)?;
    let id = parse_uuid("cron id", &cron)?;
    if db::delete_cron(&state.pool, auth.0 .0, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::NotFound(format!("cron {id} does not exist")))
    }
}

async fn scheduled_shape(
    state: &AppState,
    tenant: Uuid,
    ids: &mut WorkflowIds,
    s: Schedule,
) -> Result<ScheduledWorkflow, AppError> {
    let (workflow_id, version_id) = ids.of(state, tenant, &s.workflow).await?;
    let run_status = match s.fired_run_id {
        Some(run) => Some(
            runs::run_status(&state.pool, tenant, run)
                .await?
                .workflow_run_status(),
        ),
        None if s.error.is_some() => Some("FAILED"),
        None => None,
    };
    Ok(ScheduledWorkflow {
        metadata: Meta::new(s.id, s.created_at),
        tenant_id: tenant.to_string(),
        workflow_version_id: version_id,
        workflow_id,
        workflow_name: s.workflow,
        trigger_at: s.run_at,
        input: s.input,
        additional_metadata: s.additional_metadata,
        workflow_run_id: s.fired_run_id.map(|r| r.to_string()),
        workflow_run_status: run_status,
        method: "API",
        priority: s.priority,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateScheduled {
    trigger_at: DateTime<Utc>,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    additional_metadata: Option<Value>,
    #[serde(default)]
    priority: Option<i32>,
}

async fn create_scheduled(
    State(state): State<AppState>,
    auth: AuthTenant,
    Path((tenant_path, workflow)): Path<(String, String)>,
    Json(body): Json<CreateScheduled>,
) -> Result<Json<ScheduledWorkflow>, AppError> {
    auth.check_path(&tenant_path)?;
    let tenant = auth.0 .0;
    let input = body.input.unwrap_or_else(|| json!({}));
    let metadata = body.additional_metadata.unwrap_or_else(|| json!({}));
    let run = RunSpec {
        workflow: &workflow,
        input: &input,
        additional_metadata: &metadata,
        priority: body.priority,
    };
    let id = db::schedule(&state.pool, tenant, body.trigger_at, run).await?;
    let found = find_scheduled(&state, tenant, id).await?;
    Ok(Json(
        scheduled_shape(&state, tenant, &mut WorkflowIds::default(), found).await?,
    ))
}

async fn find_scheduled(state: &AppState, tenant: Uuid, id: Uuid) -> Result<Schedule, AppError> {
    db::list_schedules(&state.pool, tenant, None)
        .await?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| AppError::NotFound(format!("scheduled run {id} does not exist")))
}

async fn list_scheduled(
    State(state): State<AppState>,
    auth: AuthTenant,
    Path(tenant_path): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<List<ScheduledWorkflow>>, AppError> {
    auth.check_path(&tenant_path)?;
    let tenant = auth.0 .0;
    let p = Params::parse(raw.as_deref());
    let metadata = p.metadata("additionalMetadata")?;
    let statuses = p.list("statuses");
    let mut ids = WorkflowIds::default();
    let mut rows = Vec::new();
    for s in db::list_schedules(&state.pool, tenant, p.get("workflowName")).await? {
        if !metadata_matches(&s.additional_metadata, &metadata) {
            continue;
        }
        let shape = scheduled_shape(&state, tenant, &mut ids, s).await?;
        if p.get("workflowId").is_some_and(|w| w != shape.workflow_id) {
            continue;
        }
        if let Some(statuses) = &statuses {
            let status = shape.workflow_run_status.unwrap_or("SCHEDULED");
            if !statuses.iter().any(|s| s == status) {
                continue;
            }
        }
        rows.push(shape);
    }
    Ok(Json(page(rows, &p)?))
}

async fn get_scheduled(
    State(state): State<AppState>,
    auth: AuthTenant,
    Path((tenant_path, scheduled)): Path<(String, String)>,
) -> Result<Json<ScheduledWorkflow>, AppError> {
    auth.check_path(&tenant_path)?;
    let tenant = auth.0 .0;
    let found = find_scheduled(&state, tenant, parse_uuid("scheduled run id", &scheduled)?).await?;
    Ok(Json(
        scheduled_shape(&state, tenant, &mut WorkflowIds::default(), found).await?,
    ))
}

async fn delete_scheduled(
    State(state): State<AppState>,
    auth: AuthTenant,
    Path((tenant_path, scheduled)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    auth.check_path(&tenant_path)?;
    let id = parse_uuid("scheduled run id", &scheduled)?;
    if db::delete_schedule(&state.pool, auth.0 .0, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::NotFound(format!(
            "scheduled run {id} does not exist"
        )))
    }
}
