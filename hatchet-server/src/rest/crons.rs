//! Crons (`cron.create/list/get/delete`, `Workflow.create_cron`, and `POST .../crons/{cron}` to run one now over
//! `hatchet.trigger_cron`) and scheduled runs (`scheduled.create/list/get/delete/update/bulk_delete/bulk_update`),
//! over `hatchet.create_cron` / `list_crons` / `delete_cron` and `hatchet.schedule` / `list_schedules` /
//! `delete_schedule` / `reschedule`. The `{workflow}` segment of the create routes is the workflow *name*, as the SDK sends it.
//!
//! Both are stored runs of a workflow that are listed, read and deleted alike: [`StoredTrigger`] says what differs,
//! and one generic handler per verb serves both.

use super::query::{parse_uuid, Params, TenantQuery};
use super::shapes::{CronWorkflow, List, Meta, RunFields, ScheduledWorkflow};
use crate::auth::http::AuthTenant;
use crate::db::crons::{self as db, Cron, Schedule, StoredRun};
use crate::db::{runs, workflows};
use crate::error::AppError;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use uuid::Uuid;

/// The routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/tenants/{tenant}/workflows/{workflow}/crons",
            post(create_cron),
        )
        .route("/v1/tenants/{tenant}/workflows/crons", get(list::<Cron>))
        .route(
            "/v1/tenants/{tenant}/workflows/crons/{cron}",
            get(get_one::<Cron>)
                .delete(delete::<Cron>)
                .post(trigger_cron),
        )
        .route(
            "/v1/tenants/{tenant}/workflows/{workflow}/scheduled",
            post(create_scheduled),
        )
        .route(
            "/v1/tenants/{tenant}/workflows/scheduled",
            get(list::<Schedule>),
        )
        .route(
            "/v1/tenants/{tenant}/workflows/scheduled/{scheduled}",
            get(get_one::<Schedule>)
                .delete(delete::<Schedule>)
                .patch(update_scheduled),
        )
        .route(
            "/v1/tenants/{tenant}/workflows/scheduled/bulk-delete",
            post(bulk_delete_scheduled),
        )
        .route(
            "/v1/tenants/{tenant}/workflows/scheduled/bulk-update",
            post(bulk_update_scheduled),
        )
}

/// A cron or a one-off schedule: what the list, get and delete routes of each need.
trait StoredTrigger: Sized + Send {
    /// Its REST shape.
    type Shape: Serialize + Send;
    /// What the API calls it, in messages (`cron`, `scheduled run`).
    const NOUN: &'static str;

    /// All of a tenant's (of one workflow, by name, or all).
    async fn list_all(
        state: &AppState,
        tenant: Uuid,
        workflow: Option<&str>,
    ) -> Result<Vec<Self>, sqlx::Error>;
    /// Deletes one; false if there was none.
    async fn delete(state: &AppState, tenant: Uuid, id: Uuid) -> Result<bool, sqlx::Error>;
    /// Its id.
    fn id(&self) -> Uuid;
    /// What it starts.
    fn run(&self) -> &StoredRun;
    /// Whether the list's own query parameters keep it (before shaping).
    fn kept(&self, _p: &Params) -> bool {
        true
    }
    /// The REST shape, given the workflow's (id, latest version id).
    async fn shape(
        self,
        state: &AppState,
        tenant: Uuid,
        ids: (String, String),
    ) -> Result<Self::Shape, AppError>;
    /// The shape's workflow id (the `workflowId` filter).
    fn workflow_id(shape: &Self::Shape) -> &str;
    /// Whether the list's own query parameters keep the shape.
    fn shape_kept(_shape: &Self::Shape, _p: &Params) -> bool {
        true
    }
}

/// The [`StoredTrigger`] items that only name the kind's db functions and row fields (`id`, `run`).
macro_rules! stored_trigger_rows {
    ($list:path, $delete:path) => {
        async fn list_all(
            state: &AppState,
            tenant: Uuid,
            workflow: Option<&str>,
        ) -> Result<Vec<Self>, sqlx::Error> {
            $list(&state.pool, tenant, workflow).await
        }

        async fn delete(state: &AppState, tenant: Uuid, id: Uuid) -> Result<bool, sqlx::Error> {
            $delete(&state.pool, tenant, id).await
        }

        fn id(&self) -> Uuid {
            self.id
        }

        fn run(&self) -> &StoredRun {
            &self.run
        }
    };
}

impl StoredTrigger for Cron {
    type Shape = CronWorkflow;
    const NOUN: &'static str = "cron";

    stored_trigger_rows!(db::list_crons, db::delete_cron);

    fn kept(&self, p: &Params) -> bool {
        p.get("cronName").is_none_or(|n| n == self.name)
    }

    async fn shape(
        self,
        _state: &AppState,
        tenant: Uuid,
        (workflow_id, version_id): (String, String),
    ) -> Result<CronWorkflow, AppError> {
        Ok(CronWorkflow {
            metadata: Meta::new(self.id, self.created_at),
            tenant_id: tenant.to_string(),
            workflow_version_id: version_id,
            workflow_id,
            workflow_name: self.run.workflow,
            cron: self.expression,
            name: self.name,
            input: self.run.input,
            additional_metadata: self.run.additional_metadata,
            enabled: self.enabled,
            method: if self.method == "DECLARED" {
                "DEFAULT"
            } else {
                "API"
            },
            priority: self.run.priority,
        })
    }

    fn workflow_id(shape: &CronWorkflow) -> &str {
        &shape.workflow_id
    }
}

impl StoredTrigger for Schedule {
    type Shape = ScheduledWorkflow;
    const NOUN: &'static str = "scheduled run";

    stored_trigger_rows!(db::list_schedules, db::delete_schedule);

    async fn shape(
        self,
        state: &AppState,
        tenant: Uuid,
        (workflow_id, version_id): (String, String),
    ) -> Result<ScheduledWorkflow, AppError> {
        let run_status = match self.fired_run_id {
            Some(run) => Some(
                runs::run_status(&state.pool, tenant, run)
                    .await?
                    .workflow_run_status(),
            ),
            None if self.error.is_some() => Some("FAILED"),
            None => None,
        };
        Ok(ScheduledWorkflow {
            metadata: Meta::new(self.id, self.created_at),
            tenant_id: tenant.to_string(),
            workflow_version_id: version_id,
            workflow_id,
            workflow_name: self.run.workflow,
            trigger_at: self.run_at,
            input: self.run.input,
            additional_metadata: self.run.additional_metadata,
            workflow_run_id: self.fired_run_id.map(|r| r.to_string()),
            workflow_run_status: run_status,
            method: "API",
            priority: self.run.priority,
        })
    }

    fn workflow_id(shape: &ScheduledWorkflow) -> &str {
        &shape.workflow_id
    }

    fn shape_kept(shape: &ScheduledWorkflow, p: &Params) -> bool {
        let status = shape.workflow_run_status.unwrap_or("SCHEDULED");
        p.list("statuses")
            .is_none_or(|statuses| statuses.iter().any(|s| s == status))
    }
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

    /// The REST shape of a cron or schedule.
    async fn shape<T: StoredTrigger>(
        &mut self,
        state: &AppState,
        tenant: Uuid,
        t: T,
    ) -> Result<T::Shape, AppError> {
        let ids = self.of(state, tenant, &t.run().workflow).await?;
        t.shape(state, tenant, ids).await
    }
}

/// One cron or schedule by id, in its REST shape (404 if there is none).
async fn find<T: StoredTrigger>(
    state: &AppState,
    tenant: Uuid,
    id: Uuid,
) -> Result<T::Shape, AppError> {
    let found = T::list_all(state, tenant, None)
        .await?
        .into_iter()
        .find(|t| t.id() == id)
        .ok_or_else(|| AppError::NotFound(format!("{} {id} does not exist", T::NOUN)))?;
    WorkflowIds::default().shape(state, tenant, found).await
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

/// `GET .../workflows/crons` and `GET .../workflows/scheduled`: filtered by workflow name, workflow id, metadata
/// (and the kind's own parameters), then paged.
async fn list<T: StoredTrigger>(
    State(state): State<AppState>,
    TenantQuery { tenant, params: p }: TenantQuery,
) -> Result<Json<List<T::Shape>>, AppError> {
    let metadata = p.metadata("additionalMetadata")?;
    let mut ids = WorkflowIds::default();
    let mut rows = Vec::new();
    for t in T::list_all(&state, tenant, p.get("workflowName")).await? {
        if !t.kept(&p) || !metadata_matches(&t.run().additional_metadata, &metadata) {
            continue;
        }
        let shape = ids.shape(&state, tenant, t).await?;
        if p.get("workflowId")
            .is_some_and(|w| w != T::workflow_id(&shape))
            || !T::shape_kept(&shape, &p)
        {
            continue;
        }
        rows.push(shape);
    }
    let (offset, limit) = p.page()?;
    let total = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    let rows = rows
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .collect();
    Ok(Json(List::page(rows, offset, limit, total)))
}

async fn get_one<T: StoredTrigger>(
    State(state): State<AppState>,
    q: TenantQuery,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<T::Shape>, AppError> {
    let id = parse_uuid(&format!("{} id", T::NOUN), &id)?;
    Ok(Json(find::<T>(&state, q.tenant, id).await?))
}

async fn delete<T: StoredTrigger>(
    State(state): State<AppState>,
    q: TenantQuery,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    let id = parse_uuid(&format!("{} id", T::NOUN), &id)?;
    if T::delete(&state, q.tenant, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::NotFound(format!(
            "{} {id} does not exist",
            T::NOUN
        )))
    }
}

/// `POST .../workflows/crons/{cron}`: runs the cron's workflow once now; the SDK reads `externalId` (the run).
async fn trigger_cron(
    State(state): State<AppState>,
    q: TenantQuery,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, AppError> {
    let id = parse_uuid("cron id", &id)?;
    let run = db::trigger_cron(&state.pool, q.tenant, id).await?;
    state.dispatch.wake_assigner();
    Ok(Json(serde_json::json!({ "externalId": run.to_string() })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateCron {
    cron_name: String,
    cron_expression: String,
    #[serde(flatten)]
    run: RunFields,
}

async fn create_cron(
    State(state): State<AppState>,
    auth: AuthTenant,
    Path((tenant_path, workflow)): Path<(String, String)>,
    Json(body): Json<CreateCron>,
) -> Result<Json<CronWorkflow>, AppError> {
    auth.check_path(&tenant_path)?;
    let tenant = auth.0 .0;
    let run = body.run.stored(workflow);
    let id = db::create_cron(
        &state.pool,
        tenant,
        &body.cron_name,
        &body.cron_expression,
        &run,
    )
    .await?;
    Ok(Json(find::<Cron>(&state, tenant, id).await?))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateScheduled {
    trigger_at: DateTime<Utc>,
    #[serde(flatten)]
    run: RunFields,
}

async fn create_scheduled(
    State(state): State<AppState>,
    auth: AuthTenant,
    Path((tenant_path, workflow)): Path<(String, String)>,
    Json(body): Json<CreateScheduled>,
) -> Result<Json<ScheduledWorkflow>, AppError> {
    auth.check_path(&tenant_path)?;
    let tenant = auth.0 .0;
    let id = db::schedule(
        &state.pool,
        tenant,
        body.trigger_at,
        &body.run.stored(workflow),
    )
    .await?;
    Ok(Json(find::<Schedule>(&state, tenant, id).await?))
}

/// Hatchet's message for a schedule that fired (or failed to) and so cannot move.
const ALREADY_TRIGGERED: &str =
    "Scheduled run has already been triggered and cannot be rescheduled.";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateScheduled {
    trigger_at: DateTime<Utc>,
}

/// `PATCH .../workflows/scheduled/{id}` (`scheduled.update`): moves a schedule that has not fired; 404 for an unknown
/// one, 400 for one that fired.
async fn update_scheduled(
    State(state): State<AppState>,
    q: TenantQuery,
    Path((_, id)): Path<(String, String)>,
    Json(body): Json<UpdateScheduled>,
) -> Result<Json<ScheduledWorkflow>, AppError> {
    let id = parse_uuid("scheduled run id", &id)?;
    let result = db::reschedule(&state.pool, q.tenant, &[id], &[body.trigger_at]).await?;
    match result.first().and_then(|(_, e)| e.as_deref()) {
        None => Ok(Json(find::<Schedule>(&state, q.tenant, id).await?)),
        Some(ALREADY_TRIGGERED) => Err(AppError::InvalidArgument(ALREADY_TRIGGERED.into())),
        Some(_) => Err(AppError::NotFound(format!(
            "scheduled run {id} does not exist"
        ))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BulkUpdateItem {
    id: Uuid,
    trigger_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
struct BulkUpdate {
    updates: Vec<BulkUpdateItem>,
}

/// One refused item of a bulk request (`ScheduledWorkflowsBulkError`).
fn bulk_error(id: Uuid, error: &str) -> Value {
    serde_json::json!({"id": id.to_string(), "error": error})
}

/// `POST .../workflows/scheduled/bulk-update` (`scheduled.bulk_update`): 1 to 500 moves; the ids moved and, per id
/// not moved, why.
async fn bulk_update_scheduled(
    State(state): State<AppState>,
    q: TenantQuery,
    Json(body): Json<BulkUpdate>,
) -> Result<Json<Value>, AppError> {
    if body.updates.is_empty() || body.updates.len() > 500 {
        return Err(AppError::InvalidArgument(format!(
            "updates must hold 1 to 500 items, not {}",
            body.updates.len()
        )));
    }
    let ids: Vec<Uuid> = body.updates.iter().map(|u| u.id).collect();
    let ats: Vec<DateTime<Utc>> = body.updates.iter().map(|u| u.trigger_at).collect();
    let mut updated = Vec::new();
    let mut errors = Vec::new();
    for (id, error) in db::reschedule(&state.pool, q.tenant, &ids, &ats).await? {
        match error {
            None => updated.push(id.to_string()),
            Some(e) => errors.push(bulk_error(id, &e)),
        }
    }
    Ok(Json(
        serde_json::json!({"updatedIds": updated, "errors": errors}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BulkDeleteFilter {
    workflow_id: Option<Uuid>,
    parent_workflow_run_id: Option<Uuid>,
    parent_step_run_id: Option<Uuid>,
    additional_metadata: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BulkDelete {
    scheduled_workflow_run_ids: Option<Vec<Uuid>>,
    filter: Option<BulkDeleteFilter>,
}

/// `POST .../workflows/scheduled/bulk-delete` (`scheduled.bulk_delete`): the ids given (1 to 500), or the schedules a
/// filter selects (workflow id, `key:value` metadata pairs; schedules made here have no parent run, so a parent filter
/// selects none), not both. The ids deleted and, per id not deleted, why.
async fn bulk_delete_scheduled(
    State(state): State<AppState>,
    q: TenantQuery,
    Json(body): Json<BulkDelete>,
) -> Result<Json<Value>, AppError> {
    let tenant = q.tenant;
    let ids = body.scheduled_workflow_run_ids.unwrap_or_default();
    let ids = match (ids.is_empty(), body.filter) {
        (false, Some(_)) => {
            return Err(AppError::InvalidArgument(
                "Provide either scheduledWorkflowRunIds or filter, not both.".into(),
            ))
        }
        (true, None) => {
            return Err(AppError::InvalidArgument(
                "Provide scheduledWorkflowRunIds or filter.".into(),
            ))
        }
        (false, None) if ids.len() > 500 => {
            return Err(AppError::InvalidArgument(format!(
                "scheduledWorkflowRunIds must hold 1 to 500 ids, not {}",
                ids.len()
            )))
        }
        (false, None) => ids,
        (true, Some(f)) => {
            let pairs = f.additional_metadata.unwrap_or_default();
            if f.workflow_id.is_none()
                && f.parent_workflow_run_id.is_none()
                && f.parent_step_run_id.is_none()
                && pairs.is_empty()
            {
                return Err(AppError::InvalidArgument(
                    "the filter selects nothing: give workflowId, parentWorkflowRunId, parentStepRunId or \
                     additionalMetadata"
                        .into(),
                ));
            }
            if pairs.iter().any(|p| p.split(':').count() != 2) {
                return Err(AppError::InvalidArgument(
                    "Additional metadata filters must be in the format key:value.".into(),
                ));
            }
            let metadata = super::query::metadata_object("additionalMetadata", &pairs)?;
            let mut selected = Vec::new();
            if f.parent_workflow_run_id.is_none() && f.parent_step_run_id.is_none() {
                let mut workflow_ids = WorkflowIds::default();
                for s in Schedule::list_all(&state, tenant, None).await? {
                    if !metadata_matches(&s.run.additional_metadata, &metadata) {
                        continue;
                    }
                    let id = s.id;
                    let shape = workflow_ids.shape(&state, tenant, s).await?;
                    if f.workflow_id
                        .is_none_or(|w| w.to_string() == shape.workflow_id)
                    {
                        selected.push(id);
                    }
                }
            }
            selected
        }
    };
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for id in ids {
        if db::delete_schedule(&state.pool, tenant, id).await? {
            deleted.push(id.to_string());
        } else {
            errors.push(bulk_error(id, "Scheduled workflow not found."));
        }
    }
    Ok(Json(
        serde_json::json!({"deletedIds": deleted, "errors": errors}),
    ))
}
