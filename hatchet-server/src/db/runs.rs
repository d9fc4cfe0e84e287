//! Workflows and runs (`sql/workflows.sql`, `sql/reads.sql`): registration, triggering, replay, status, results and
//! the run, workflow and event reads of the REST API.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgPool, Row};
use uuid::Uuid;

/// `hatchet.register_workflow`: stores a version (a no-op for an unchanged definition); returns its external id.
pub async fn register_workflow(
    pool: &PgPool,
    tenant: Uuid,
    definition: &Value,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar("SELECT hatchet.register_workflow(definition => $1, tenant_id => $2)")
        .bind(definition)
        .bind(tenant)
        .fetch_one(pool)
        .await
}

/// What a trigger names besides the workflow: its input, metadata and where it was spawned from.
#[derive(Debug, Clone, Default)]
pub struct Trigger {
    /// The workflow name, exactly as registered.
    pub name: String,
    /// The run input (a JSON object).
    pub input: Value,
    /// Additional metadata (a JSON object).
    pub additional_metadata: Value,
    /// 1..3, or `None` for the workflow's default.
    pub priority: Option<i32>,
    /// The task that spawned this run, for child runs (deduplicated by index or key across its retries).
    pub parent_task_id: Option<Uuid>,
    /// The spawn counter of the parent attempt.
    pub child_index: Option<i32>,
    /// A caller-chosen child key.
    pub child_key: Option<String>,
    /// The worker the run's tasks should run on (the SDK's `sticky=True` child spawn names the parent's worker).
    pub desired_worker_id: Option<Uuid>,
}

/// `hatchet.run_workflow`: starts a run of the latest version; returns the run id.
pub async fn run_workflow<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    tenant: Uuid,
    t: &Trigger,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT hatchet.run_workflow(name => $1, input => $2, additional_metadata => $3, priority => $4, \
                                     tenant_id => $5, parent_task_id => $6, child_index => $7, child_key => $8, \
                                     desired_worker_id => $9)",
    )
    .bind(&t.name)
    .bind(&t.input)
    .bind(&t.additional_metadata)
    .bind(t.priority)
    .bind(tenant)
    .bind(t.parent_task_id)
    .bind(t.child_index)
    .bind(t.child_key.as_deref())
    .bind(t.desired_worker_id)
    .fetch_one(executor)
    .await
}

/// `hatchet.cancel_run`: cancels every unfinished task of a run; returns how many were cancelled.
pub async fn cancel_run(
    pool: &PgPool,
    tenant: Uuid,
    run_id: Uuid,
    reason: &str,
) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("SELECT hatchet.cancel_run(run_id => $1, tenant_id => $2, reason => $3)")
        .bind(run_id)
        .bind(tenant)
        .bind(reason)
        .fetch_one(pool)
        .await
}

/// `hatchet.run_status`: QUEUED, RUNNING, COMPLETED, FAILED or CANCELLED. Unknown run: SQLSTATE 42704.
pub async fn run_status(pool: &PgPool, tenant: Uuid, run_id: Uuid) -> Result<String, sqlx::Error> {
    sqlx::query_scalar("SELECT hatchet.run_status(run_id => $1, tenant_id => $2)")
        .bind(run_id)
        .bind(tenant)
        .fetch_one(pool)
        .await
}

/// One row of [`run_tasks`].
#[derive(Debug, Clone)]
pub struct RunTask {
    /// The task id (`None` while it waits for parents or conditions and has not been created).
    pub task_id: Option<Uuid>,
    /// Readable id within the workflow.
    pub readable_id: Option<String>,
    /// QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED, SKIPPED or PENDING.
    pub status: String,
    /// The current or last attempt.
    pub retry_count: i32,
    /// The output, for COMPLETED.
    pub output: Option<Value>,
    /// The error (or cancellation reason), for FAILED and CANCELLED.
    pub error: Option<String>,
    /// The queue (action id).
    pub queue: String,
    /// When the task (or its pending match) was created.
    pub created_at: DateTime<Utc>,
}

/// `hatchet.run_tasks`: the tasks of a run with status, output and error. Unknown run: SQLSTATE 42704.
pub async fn run_tasks(
    pool: &PgPool,
    tenant: Uuid,
    run_id: Uuid,
) -> Result<Vec<RunTask>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT task_id, readable_id, status, retry_count, output, error, queue, created_at \
         FROM hatchet.run_tasks(run_id => $1, tenant_id => $2)",
    )
    .bind(run_id)
    .bind(tenant)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(RunTask {
                task_id: r.try_get("task_id")?,
                readable_id: r.try_get("readable_id")?,
                status: r.try_get("status")?,
                retry_count: r.try_get("retry_count")?,
                output: r.try_get("output")?,
                error: r.try_get("error")?,
                queue: r.try_get("queue")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

/// One row of [`run_events`].
#[derive(Debug, Clone)]
pub struct RunEvent {
    /// The task's readable id.
    pub readable_id: Option<String>,
    /// The task.
    pub task_id: Uuid,
    /// QUEUED, ASSIGNED, RETRYING, COMPLETED, FAILED, ...
    pub event_type: String,
    /// When it happened.
    pub created_at: DateTime<Utc>,
    /// The attempt.
    pub retry_count: i32,
    /// Why (error text, cancellation reason).
    pub reason: Option<String>,
    /// The worker, if any.
    pub worker: Option<String>,
}

/// `hatchet.run_events`: the timeline of a run.
pub async fn run_events(
    pool: &PgPool,
    tenant: Uuid,
    run_id: Uuid,
) -> Result<Vec<RunEvent>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT readable_id, task_id, event_type, created_at, retry_count, reason, worker \
         FROM hatchet.run_events(run_id => $1, tenant_id => $2)",
    )
    .bind(run_id)
    .bind(tenant)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(RunEvent {
                readable_id: r.try_get("readable_id")?,
                task_id: r.try_get("task_id")?,
                event_type: r.try_get("event_type")?,
                created_at: r.try_get("created_at")?,
                retry_count: r.try_get("retry_count")?,
                reason: r.try_get("reason")?,
                worker: r.try_get("worker")?,
            })
        })
        .collect()
}

/// `hatchet.push_events`: stores events and triggers what waits for them; returns the event ids in order.
/// Each event is `{key, payload, additional_metadata, scope, priority}`.
pub async fn push_events(
    pool: &PgPool,
    tenant: Uuid,
    events: &Value,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT hatchet.push_events(events => $1, tenant_id => $2)")
        .bind(events)
        .bind(tenant)
        .fetch_one(pool)
        .await
}

/// `hatchet.schedule`: a one-off run of a workflow at `run_at`; returns the schedule id.
pub async fn schedule(
    pool: &PgPool,
    tenant: Uuid,
    workflow: &str,
    run_at: DateTime<Utc>,
    input: &Value,
    additional_metadata: &Value,
    priority: Option<i32>,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT hatchet.schedule(workflow => $1, run_at => $2, input => $3, additional_metadata => $4, \
                                 priority => $5, tenant_id => $6)",
    )
    .bind(workflow)
    .bind(run_at)
    .bind(input)
    .bind(additional_metadata)
    .bind(priority)
    .bind(tenant)
    .fetch_one(pool)
    .await
}

/// `hatchet.replay_tasks`: a new attempt of each finished run or task (in a DAG, of everything downstream too);
/// returns the tasks queued now. Runs still in progress are left alone; an unknown id is SQLSTATE 42704.
pub async fn replay_tasks(
    pool: &PgPool,
    tenant: Uuid,
    ids: &[Uuid],
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT task_id FROM hatchet.replay_tasks(task_or_run_ids => $1, tenant_id => $2)",
    )
    .bind(ids)
    .bind(tenant)
    .fetch_all(pool)
    .await
}

/// A finished run and its created tasks ([`finished_runs`]).
#[derive(Debug, Clone)]
pub struct FinishedRun {
    /// The run.
    pub run_id: Uuid,
    /// COMPLETED, FAILED or CANCELLED.
    pub status: String,
    /// Its tasks with status, output and error.
    pub tasks: Vec<RunTask>,
}

/// `hatchet.finished_runs`: the finished runs among `run_ids` (unknown and unfinished ones are left out), in one
/// round trip.
pub async fn finished_runs(
    pool: &PgPool,
    tenant: Uuid,
    run_ids: &[Uuid],
) -> Result<Vec<FinishedRun>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT run_id, run_status, task_id, readable_id, status, retry_count, output, error, queue, created_at \
         FROM hatchet.finished_runs(run_ids => $1, tenant_id => $2)",
    )
    .bind(run_ids)
    .bind(tenant)
    .fetch_all(pool)
    .await?;
    let mut out: Vec<FinishedRun> = Vec::new();
    for r in &rows {
        let run_id: Uuid = r.try_get("run_id")?;
        let task = RunTask {
            task_id: r.try_get("task_id")?,
            readable_id: r.try_get("readable_id")?,
            status: r.try_get("status")?,
            retry_count: r.try_get("retry_count")?,
            output: r.try_get("output")?,
            error: r.try_get("error")?,
            queue: r.try_get("queue")?,
            created_at: r.try_get("created_at")?,
        };
        match out.last_mut() {
            Some(last) if last.run_id == run_id => last.tasks.push(task),
            _ => out.push(FinishedRun {
                run_id,
                status: r.try_get("run_status")?,
                tasks: vec![task],
            }),
        }
    }
    Ok(out)
}

/// What a run was started with, for run details.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// The run input.
    pub input: Value,
    /// Additional metadata.
    pub additional_metadata: Value,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// The workflow's name (`None` for a task enqueued with `hatchet.enqueue`).
    pub workflow_name: Option<String>,
    /// The workflow's external id.
    pub workflow_id: Option<Uuid>,
    /// The workflow version's external id.
    pub workflow_version_id: Option<Uuid>,
    /// The task that spawned it (child runs).
    pub parent_task_id: Option<Uuid>,
    /// `manual`, `event`, `cron` or `schedule`.
    pub triggered_by: String,
}

/// One run with what the REST shapes need (`hatchet.run`, `hatchet.list_runs`).
#[derive(Debug, Clone)]
pub struct RunRow {
    /// The run id.
    pub id: Uuid,
    /// Aggregated status (`hatchet.run_status`).
    pub status: String,
    /// The rest.
    pub info: RunInfo,
    /// How many runs its tasks spawned.
    pub children: i64,
}

const RUN_COLUMNS: &str =
    "id, status, input, additional_metadata, created_at, workflow_name, workflow_id, \
     workflow_version_id, parent_task_id, triggered_by, children";

fn run_row(r: &sqlx::postgres::PgRow) -> Result<RunRow, sqlx::Error> {
    Ok(RunRow {
        id: r.try_get("id")?,
        status: r.try_get("status")?,
        children: r.try_get("children")?,
        info: RunInfo {
            input: r.try_get("input")?,
            additional_metadata: r.try_get("additional_metadata")?,
            created_at: r.try_get("created_at")?,
            workflow_name: r.try_get("workflow_name")?,
            workflow_id: r.try_get("workflow_id")?,
            workflow_version_id: r.try_get("workflow_version_id")?,
            parent_task_id: r.try_get("parent_task_id")?,
            triggered_by: r.try_get("triggered_by")?,
        },
    })
}

/// `hatchet.run`: a run, or a task enqueued on its own (no workflow columns), or `None`.
async fn run(pool: &PgPool, tenant: Uuid, run_id: Uuid) -> Result<Option<RunRow>, sqlx::Error> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM hatchet.run(run_id => $1, tenant_id => $2)");
    // Built from a constant column list; the values are bind parameters.
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(run_id)
        .bind(tenant)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(run_row).transpose()
}

/// What a run (or a task enqueued on its own) was started with, or `None`.
pub async fn run_info(
    pool: &PgPool,
    tenant: Uuid,
    run_id: Uuid,
) -> Result<Option<RunInfo>, sqlx::Error> {
    Ok(run(pool, tenant, run_id).await?.map(|r| r.info))
}

/// One workflow run (not a task enqueued on its own), or `None`.
pub async fn run_row_by_id(
    pool: &PgPool,
    tenant: Uuid,
    run_id: Uuid,
) -> Result<Option<RunRow>, sqlx::Error> {
    Ok(run(pool, tenant, run_id)
        .await?
        .filter(|r| r.info.workflow_id.is_some()))
}

/// `hatchet.task`: the run a task belongs to, or `None` if there is no such task.
pub async fn run_of_task(
    pool: &PgPool,
    tenant: Uuid,
    task_id: Uuid,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT run_id FROM hatchet.task(task_id => $1, tenant_id => $2)")
        .bind(task_id)
        .bind(tenant)
        .fetch_optional(pool)
        .await
}

/// `hatchet.run_children`: how many runs each task of a run spawned (tasks that spawned none are absent).
pub async fn children_counts(
    pool: &PgPool,
    tenant: Uuid,
    run_id: Uuid,
) -> Result<std::collections::HashMap<Uuid, i64>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT task_id, children FROM hatchet.run_children(run_id => $1, tenant_id => $2)",
    )
    .bind(run_id)
    .bind(tenant)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("task_id")?, r.try_get("children")?)))
        .collect()
}

/// Filters of [`list_runs`] (Hatchet's `GET /api/v1/stable/tenants/{tenant}/workflow-runs`).
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Created at or before.
    pub until: Option<DateTime<Utc>>,
    /// Workflow external ids.
    pub workflow_ids: Option<Vec<Uuid>>,
    /// Additional metadata the run must contain (`@>`).
    pub metadata: Option<Value>,
    /// Runs spawned by this task.
    pub parent_task_id: Option<Uuid>,
    /// Run statuses (QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED).
    pub statuses: Option<Vec<String>>,
    /// Runs with a task assigned to this worker.
    pub worker_id: Option<Uuid>,
    /// Runs triggered by this event.
    pub event_id: Option<Uuid>,
    /// Page size.
    pub limit: i64,
    /// Rows to skip.
    pub offset: i64,
}

/// `hatchet.list_runs`: workflow runs matching a filter, newest first, and how many match in all.
pub async fn list_runs(
    pool: &PgPool,
    tenant: Uuid,
    f: &RunFilter,
) -> Result<(Vec<RunRow>, i64), sqlx::Error> {
    let sql = format!(
        "SELECT {RUN_COLUMNS}, total FROM hatchet.list_runs(since => $1, until => $2, workflow_ids => $3, \
                metadata => $4, parent_task => $5, statuses => $6, worker_id => $7, event_id => $8, \
                \"limit\" => $9, \"offset\" => $10, tenant_id => $11)"
    );
    let limit = i32::try_from(f.limit).unwrap_or(i32::MAX);
    let offset = i32::try_from(f.offset).unwrap_or(i32::MAX);
    // Built from a constant column list; every value is a bind parameter.
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(f.since)
        .bind(f.until)
        .bind(f.workflow_ids.as_deref())
        .bind(f.metadata.as_ref())
        .bind(f.parent_task_id)
        .bind(f.statuses.as_deref())
        .bind(f.worker_id)
        .bind(f.event_id)
        .bind(limit)
        .bind(offset)
        .bind(tenant)
        .fetch_all(pool)
        .await?;
    let total = match rows.first() {
        Some(r) => r.try_get("total")?,
        // An empty page past the end does not say how many there are: count them (a rare request).
        None if f.offset > 0 => {
            let first = RunFilter {
                offset: 0,
                limit: 1,
                ..f.clone()
            };
            Box::pin(list_runs(pool, tenant, &first)).await?.1
        }
        None => 0,
    };
    Ok((rows.iter().map(run_row).collect::<Result<_, _>>()?, total))
}

/// A workflow as the REST API shows it (`hatchet.list_workflows`).
#[derive(Debug, Clone)]
pub struct WorkflowRow {
    /// External id.
    pub id: Uuid,
    /// Name (case kept).
    pub name: String,
    /// Paused workflows start no runs from triggers.
    pub is_paused: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Latest version's external id.
    pub version_id: Option<Uuid>,
    /// Latest version's label.
    pub version: Option<String>,
    /// Latest version's creation time.
    pub version_created_at: Option<DateTime<Utc>>,
    /// Event keys of the latest version.
    pub event_triggers: Vec<String>,
    /// Cron expressions of the latest version.
    pub cron_triggers: Vec<String>,
    /// Latest version's description.
    pub description: Option<String>,
}

/// `hatchet.list_workflows`: workflows of a tenant, by name (exact) or id, or all.
pub async fn list_workflows(
    pool: &PgPool,
    tenant: Uuid,
    name: Option<&str>,
    id: Option<Uuid>,
) -> Result<Vec<WorkflowRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, name, is_paused, created_at, version_id, version, version_created_at, event_triggers, \
                cron_triggers, description \
         FROM hatchet.list_workflows(workflow_name => $1, workflow_id => $2, tenant_id => $3)",
    )
    .bind(name)
    .bind(id)
    .bind(tenant)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(WorkflowRow {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                is_paused: r.try_get("is_paused")?,
                created_at: r.try_get("created_at")?,
                version_id: r.try_get("version_id")?,
                version: r.try_get("version")?,
                version_created_at: r.try_get("version_created_at")?,
                event_triggers: r.try_get("event_triggers")?,
                cron_triggers: r.try_get("cron_triggers")?,
                description: r.try_get("description")?,
            })
        })
        .collect()
}

/// The external ids of a workflow (by name) and of its latest version, or `None`.
pub async fn workflow_ids(
    pool: &PgPool,
    tenant: Uuid,
    name: &str,
) -> Result<Option<(Uuid, Option<Uuid>)>, sqlx::Error> {
    Ok(list_workflows(pool, tenant, Some(name), None)
        .await?
        .into_iter()
        .next()
        .map(|w| (w.id, w.version_id)))
}

/// A stored event (`hatchet.list_events`).
#[derive(Debug, Clone)]
pub struct EventRow {
    /// Event id.
    pub id: Uuid,
    /// Key.
    pub key: String,
    /// Payload.
    pub payload: Value,
    /// Additional metadata.
    pub additional_metadata: Value,
    /// Scope.
    pub scope: Option<String>,
    /// When it was pushed.
    pub created_at: DateTime<Utc>,
    /// The runs it triggered, with their status.
    pub runs: Vec<(Uuid, String)>,
}

/// `hatchet.list_events`: events of a tenant, newest first, and the total.
pub async fn list_events(
    pool: &PgPool,
    tenant: Uuid,
    keys: Option<&[String]>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<EventRow>, i64), sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, key, payload, additional_metadata, scope, created_at, runs, total \
         FROM hatchet.list_events(keys => $1, since => $2, until => $3, \"limit\" => $4, \"offset\" => $5, \
                                  tenant_id => $6)",
    )
    .bind(keys)
    .bind(since)
    .bind(until)
    .bind(i32::try_from(limit).unwrap_or(i32::MAX))
    .bind(i32::try_from(offset).unwrap_or(i32::MAX))
    .bind(tenant)
    .fetch_all(pool)
    .await?;
    let mut total = 0;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        total = r.try_get("total")?;
        let runs: Value = r.try_get("runs")?;
        let runs = runs
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| {
                        let id = Uuid::parse_str(x.get("id")?.as_str()?).ok()?;
                        Some((id, x.get("status")?.as_str()?.to_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(EventRow {
            id: r.try_get("id")?,
            key: r.try_get("key")?,
            payload: r.try_get("payload")?,
            additional_metadata: r.try_get("additional_metadata")?,
            scope: r.try_get("scope")?,
            created_at: r.try_get("created_at")?,
            runs,
        });
    }
    Ok((out, total))
}
