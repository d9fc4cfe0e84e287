//! Workflow runs: `runs.get`, `runs.get_status`, `runs.list`, `runs.create` and the bulk-action id lookup.
//!
//! | route | SDK call | source |
//! |---|---|---|
//! | `GET /v1/stable/workflow-runs/{id}` | `runs.get` | `run_status`, `run_tasks`, `run_events` |
//! | `GET /v1/stable/workflow-runs/{id}/status` | `runs.get_status` | `run_status` |
//! | `GET /v1/stable/tenants/{tenant}/workflow-runs` | `runs.list` | a read of `hatchet.runs` (`hatchet.list_runs`); a DAG row carries its tasks as `children` |
//! | `GET /v1/stable/tenants/{tenant}/workflow-runs/external-ids` | bulk cancel by filter | the same read |
//! | `POST /v1/stable/tenants/{tenant}/workflow-runs/trigger` | `runs.create` | `run_workflow` |
//!
//! A task id given where a run id is expected resolves to the task's run, as in Hatchet. A task's display name is
//! Hatchet's `<readable id>-<unix timestamp of its creation>`; a run's is its workflow's name.

use super::query::{Params, TenantQuery};
use super::shapes::{
    self, Meta, Pagination, RunFields, ShapeItem, TaskEvent, TaskSummary, TaskSummaryList,
    WorkflowRun, WorkflowRunDetails,
};
use crate::auth::http::AuthTenant;
use crate::db::runs::{self as db, RunEvent, RunFilter, RunRow, RunTask};
use crate::db::tasks;
use crate::error::AppError;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use uuid::Uuid;

/// Default page size of run lists.
const DEFAULT_LIMIT: i64 = 50;

/// Largest page size of run lists.
const MAX_LIMIT: i64 = 1000;
/// The most payload (inputs and outputs, as JSON text) one page of `runs.list` carries: the same 16 MiB as the
/// extension's list functions.
const MAX_PAGE_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;

/// The routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/stable/workflow-runs/{run}", get(get_run))
        .route("/v1/stable/workflow-runs/{run}/status", get(get_status))
        .route("/v1/stable/tenants/{tenant}/workflow-runs", get(list))
        .route(
            "/v1/stable/tenants/{tenant}/workflow-runs/external-ids",
            get(external_ids),
        )
        .route(
            "/v1/stable/tenants/{tenant}/workflow-runs/trigger",
            post(trigger),
        )
}

/// The run of an id that names a run or one of its tasks (404 if neither).
pub(crate) async fn resolve_run(
    state: &AppState,
    tenant: Uuid,
    id: Uuid,
) -> Result<RunRow, AppError> {
    if let Some(row) = db::run_row_by_id(&state.pool, tenant, id).await? {
        return Ok(row);
    }
    if let Some(run) = tasks::run_of_task(&state.pool, tenant, id).await? {
        if let Some(row) = db::run_row_by_id(&state.pool, tenant, run).await? {
            return Ok(row);
        }
    }
    Err(AppError::NotFound(format!("run {id} does not exist")))
}

async fn get_run(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    Path(run): Path<String>,
) -> Result<Json<WorkflowRunDetails>, AppError> {
    let id = super::query::parse_uuid("workflow run id", &run)?;
    let row = resolve_run(&state, tenant.0, id).await?;
    Ok(Json(details(&state, tenant.0, &row).await?))
}

async fn get_status(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
    Path(run): Path<String>,
) -> Result<Json<&'static str>, AppError> {
    let id = super::query::parse_uuid("workflow run id", &run)?;
    let row = resolve_run(&state, tenant.0, id).await?;
    Ok(Json(row.status.rest()))
}

/// Start / end of a task's latest attempt from its timeline.
#[derive(Debug, Default, Clone, Copy)]
struct Timing {
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

impl Timing {
    fn duration(&self) -> Option<i64> {
        Some((self.finished_at? - self.started_at?).num_milliseconds())
    }
}

fn timings(events: &[RunEvent]) -> HashMap<Uuid, Timing> {
    let mut out: HashMap<Uuid, Timing> = HashMap::new();
    for e in events {
        let t = out.entry(e.task_id).or_default();
        match e.event_type.as_str() {
            "ASSIGNED" if t.started_at.is_none() => t.started_at = Some(e.created_at),
            "COMPLETED" | "FAILED" | "CANCELLED" | "SKIPPED" => t.finished_at = Some(e.created_at),
            _ => {}
        }
    }
    out
}

/// A run's timeline as Hatchet's REST API shows it: an attempt that failed and is retried has a FAILED event before
/// its RETRYING one (the extension records the failure once, as RETRYING with the error). An attempt that timed out
/// already has its failure event (TIMED_OUT).
fn with_failed_attempts(events: &[RunEvent]) -> Vec<RunEvent> {
    let timed_out: std::collections::HashSet<(Uuid, i32)> = events
        .iter()
        .filter(|e| e.event_type == "TIMED_OUT")
        .map(|e| (e.task_id, e.retry_count))
        .collect();
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        if e.event_type == "RETRYING" && !timed_out.contains(&(e.task_id, e.retry_count)) {
            out.push(RunEvent {
                event_type: "FAILED".into(),
                ..e.clone()
            });
        }
        out.push(e.clone());
    }
    out
}

/// A task's output in the REST shapes: the SDK's output ([`RunTask::sdk_output`]), `{}` while it has none.
fn task_output(t: &RunTask) -> Value {
    t.sdk_output().unwrap_or_else(|| json!({}))
}

/// A task's error in the REST shapes: the recorded error (empty if none) of a failed or cancelled task.
fn task_error(t: &RunTask) -> Option<String> {
    t.status
        .is_error()
        .then(|| t.error.clone().unwrap_or_default())
}

/// Everything `runs.get` returns for one run.
pub(crate) async fn details(
    state: &AppState,
    tenant: Uuid,
    row: &RunRow,
) -> Result<WorkflowRunDetails, AppError> {
    let tasks = db::run_tasks(&state.pool, tenant, row.id).await?;
    let events = db::run_events(&state.pool, tenant, row.id).await?;
    let times = timings(&events);
    let children = db::run_children(&state.pool, tenant, row.id).await?;
    let summary = run_summary(tenant, row, &tasks, &times);
    let task_summaries = task_summaries(tenant, row, &tasks, &times, &children);
    let display_names: HashMap<Uuid, String> = task_summaries
        .iter()
        .filter_map(|t| Some((t.task_external_id.parse().ok()?, t.display_name.clone())))
        .collect();
    let task_events = with_failed_attempts(&events)
        .into_iter()
        .enumerate()
        .map(|(i, e)| TaskEvent {
            id: i64::try_from(i).unwrap_or(i64::MAX) + 1,
            task_id: e.task_id.to_string(),
            timestamp: e.created_at,
            event_type: shapes::event_type(&e.event_type),
            message: e.reason.clone().unwrap_or_default(),
            error_message: matches!(e.event_type.as_str(), "FAILED" | "RETRYING" | "TIMED_OUT")
                .then(|| e.reason.clone())
                .flatten(),
            worker_id: e.worker.clone(),
            task_display_name: display_names
                .get(&e.task_id)
                .cloned()
                .or_else(|| e.readable_id.clone()),
            retry_count: e.retry_count,
            attempt: e.retry_count + 1,
        })
        .collect();
    Ok(WorkflowRunDetails {
        run: WorkflowRun {
            metadata: summary.metadata.clone(),
            status: summary.status,
            started_at: summary.started_at,
            finished_at: summary.finished_at,
            duration: summary.duration,
            tenant_id: tenant.to_string(),
            additional_metadata: row.info.additional_metadata.clone(),
            display_name: summary.display_name.clone(),
            workflow_id: summary.workflow_id.clone(),
            output: run_output(&tasks),
            error_message: summary.error_message.clone(),
            workflow_version_id: summary.workflow_version_id.clone(),
            input: row.info.input.clone(),
            created_at: row.info.created_at,
            parent_task_external_id: summary.parent_task_external_id.clone(),
        },
        task_events,
        shape: db::run_shape(&state.pool, tenant, row.id)
            .await?
            .into_iter()
            .map(|s| ShapeItem {
                task_external_id: s.task_id.to_string(),
                step_id: s.step_id.to_string(),
                children_step_ids: s.children_step_ids.iter().map(Uuid::to_string).collect(),
                task_name: s.readable_id,
            })
            .collect(),
        tasks: task_summaries,
    })
}

/// A run's output: each completed task's output by readable id (Hatchet's DAG run output).
fn run_output(tasks: &[RunTask]) -> Value {
    let mut out = Map::new();
    for t in tasks {
        if let Some(name) = &t.readable_id {
            if t.status.is_completed() {
                out.insert(name.clone(), task_output(t));
            }
        }
    }
    Value::Object(out)
}

fn is_single_task(row: &RunRow, tasks: &[RunTask]) -> bool {
    tasks.len() == 1 && tasks[0].task_id == Some(row.id)
}

/// A run as one row of a run list (type TASK for a single-task run, DAG otherwise).
fn run_summary(
    tenant: Uuid,
    row: &RunRow,
    tasks: &[RunTask],
    times: &HashMap<Uuid, Timing>,
) -> TaskSummary {
    let single = is_single_task(row, tasks);
    let started_at = tasks
        .iter()
        .filter_map(|t| times.get(&t.task_id?)?.started_at)
        .min();
    let finished_at = if !row.status.is_terminal() {
        None
    } else {
        tasks
            .iter()
            .filter_map(|t| times.get(&t.task_id?)?.finished_at)
            .max()
    };
    let updated = finished_at.or(started_at).unwrap_or(row.info.created_at);
    let workflow_name = row.info.workflow_name.clone().unwrap_or_default();
    TaskSummary {
        metadata: Meta {
            id: row.id.to_string(),
            created_at: row.info.created_at,
            updated_at: updated,
        },
        action_id: single.then(|| tasks[0].queue.clone()),
        retry_count: single.then(|| tasks[0].retry_count),
        attempt: single.then(|| tasks[0].retry_count + 1),
        additional_metadata: row.info.additional_metadata.clone(),
        created_at: row.info.created_at,
        display_name: workflow_name.clone(),
        duration: Timing {
            started_at,
            finished_at,
        }
        .duration(),
        error_message: tasks.iter().find_map(task_error),
        finished_at,
        input: row.info.input.clone(),
        num_spawned_children: row.children,
        output: if single {
            task_output(&tasks[0])
        } else {
            run_output(tasks)
        },
        status: row.status.rest(),
        started_at,
        task_external_id: row.id.to_string(),
        task_id: 0,
        task_inserted_at: row.info.created_at,
        tenant_id: tenant.to_string(),
        kind: if single { "TASK" } else { "DAG" },
        workflow_id: row
            .info
            .workflow_id
            .map(|w| w.to_string())
            .unwrap_or_default(),
        workflow_name: Some(workflow_name),
        workflow_run_external_id: row.id.to_string(),
        workflow_version_id: row.info.workflow_version_id.map(|v| v.to_string()),
        parent_task_external_id: row.info.parent_task_id.map(|p| p.to_string()),
        is_evicted: tasks.iter().any(|t| t.evicted),
        children: None,
    }
}

/// The created tasks of a run, with how many runs each spawned (`children`, from `hatchet.run_children`).
fn task_summaries(
    tenant: Uuid,
    row: &RunRow,
    tasks: &[RunTask],
    times: &HashMap<Uuid, Timing>,
    children: &HashMap<Uuid, i64>,
) -> Vec<TaskSummary> {
    tasks
        .iter()
        .filter_map(|t| {
            let id = t.task_id?;
            let mut s = task_summary(tenant, row, t, times.get(&id).copied());
            s.num_spawned_children = children.get(&id).copied().unwrap_or(0);
            Some(s)
        })
        .collect()
}

/// A task's display name as Hatchet forms it: `<readable id>-<unix timestamp of its creation>`.
fn task_display_name(readable_id: &str, created_at: DateTime<Utc>) -> String {
    format!("{readable_id}-{}", created_at.timestamp())
}

/// One task of a run.
fn task_summary(tenant: Uuid, row: &RunRow, t: &RunTask, timing: Option<Timing>) -> TaskSummary {
    let timing = timing.unwrap_or_default();
    let task_id = t.task_id.unwrap_or_default();
    TaskSummary {
        metadata: Meta {
            id: task_id.to_string(),
            created_at: t.created_at,
            updated_at: timing
                .finished_at
                .or(timing.started_at)
                .unwrap_or(t.created_at),
        },
        action_id: Some(t.queue.clone()),
        retry_count: Some(t.retry_count),
        attempt: Some(t.retry_count + 1),
        additional_metadata: row.info.additional_metadata.clone(),
        created_at: t.created_at,
        display_name: task_display_name(t.readable_id.as_deref().unwrap_or_default(), t.created_at),
        duration: timing.duration(),
        error_message: task_error(t),
        finished_at: timing.finished_at,
        input: row.info.input.clone(),
        num_spawned_children: 0,
        output: task_output(t),
        status: t.status.rest(),
        started_at: timing.started_at,
        task_external_id: task_id.to_string(),
        task_id: 0,
        task_inserted_at: t.created_at,
        tenant_id: tenant.to_string(),
        kind: "TASK",
        workflow_id: row
            .info
            .workflow_id
            .map(|w| w.to_string())
            .unwrap_or_default(),
        workflow_name: row.info.workflow_name.clone(),
        workflow_run_external_id: row.id.to_string(),
        workflow_version_id: row.info.workflow_version_id.map(|v| v.to_string()),
        parent_task_external_id: row.info.parent_task_id.map(|p| p.to_string()),
        is_evicted: t.evicted,
        children: None,
    }
}

/// The run filter of `runs.list` and of bulk actions.
pub(crate) fn run_filter(p: &Params) -> Result<RunFilter, AppError> {
    let statuses = p
        .list("statuses")
        .map(|s| s.into_iter().map(|x| x.to_uppercase()).collect::<Vec<_>>());
    Ok(RunFilter {
        since: p.datetime("since")?,
        until: p.datetime("until")?,
        workflow_ids: p.uuids("workflow_ids")?,
        metadata: p.metadata("additional_metadata")?,
        parent_task_id: p.uuid("parent_task_external_id")?,
        statuses,
        worker_id: p.uuid("worker_id")?,
        event_id: p.uuid("triggering_event_external_id")?,
        limit: p.int("limit")?.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT),
        offset: p.int("offset")?.unwrap_or(0).max(0),
        before: None,
        // Hatchet's REST returns payloads unless told not to.
        include_payloads: p.bool("include_payloads").unwrap_or(true),
    })
}

async fn list(
    State(state): State<AppState>,
    TenantQuery { tenant, params }: TenantQuery,
) -> Result<Json<TaskSummaryList>, AppError> {
    let filter = run_filter(&params)?;
    let (rows, total) = db::list_runs(&state.pool, tenant, &filter).await?;
    let include_payloads = filter.include_payloads;
    let mut out = Vec::with_capacity(rows.len());
    let mut payload_bytes = 0usize;
    for row in &rows {
        let tasks = db::run_tasks(&state.pool, tenant, row.id).await?;
        if include_payloads {
            payload_bytes += row.info.input.to_string().len()
                + tasks
                    .iter()
                    .map(|t| t.output.as_ref().map_or(0, |o| o.to_string().len()))
                    .sum::<usize>();
            if payload_bytes > MAX_PAGE_PAYLOAD_BYTES {
                return Err(AppError::ResourceExhausted(format!(
                    "the payloads of this page are over {MAX_PAGE_PAYLOAD_BYTES} bytes: ask for fewer rows or set \
                     include_payloads=false"
                )));
            }
        }
        let events = db::run_events(&state.pool, tenant, row.id).await?;
        let times = timings(&events);
        let mut summary = run_summary(tenant, row, &tasks, &times);
        // A DAG row carries its tasks as `children`, as in Hatchet; a single-task run has none.
        if !is_single_task(row, &tasks) {
            let spawned = if row.children > 0 {
                db::run_children(&state.pool, tenant, row.id).await?
            } else {
                HashMap::new()
            };
            summary.children = Some(task_summaries(tenant, row, &tasks, &times, &spawned));
        }
        if !include_payloads {
            summary.input = json!({});
            summary.output = json!({});
            for child in summary.children.iter_mut().flatten() {
                child.input = json!({});
                child.output = json!({});
            }
        }
        out.push(summary);
    }
    Ok(Json(TaskSummaryList {
        pagination: Pagination::new(filter.offset, filter.limit, total),
        rows: out,
    }))
}

async fn external_ids(
    State(state): State<AppState>,
    q: TenantQuery,
) -> Result<Json<Vec<String>>, AppError> {
    let mut filter = run_filter(&q.params)?;
    filter.limit = MAX_LIMIT;
    let (rows, _) = db::list_runs(&state.pool, q.tenant, &filter).await?;
    Ok(Json(rows.iter().map(|r| r.id.to_string()).collect()))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TriggerBody {
    workflow_name: String,
    #[serde(flatten)]
    run: RunFields,
}

async fn trigger(
    State(state): State<AppState>,
    auth: AuthTenant,
    Path(tenant_path): Path<String>,
    Json(body): Json<TriggerBody>,
) -> Result<Json<WorkflowRunDetails>, AppError> {
    auth.check_path(&tenant_path)?;
    let tenant = auth.0 .0;
    let (input, additional_metadata) = body.run.input_and_metadata();
    let trigger = db::Trigger {
        name: body.workflow_name,
        input,
        additional_metadata,
        priority: body.run.priority,
        ..Default::default()
    };
    let run = state.dispatch.trigger(tenant, &trigger).await?;
    let row = resolve_run(&state, tenant, run).await?;
    Ok(Json(details(&state, tenant, &row).await?))
}
