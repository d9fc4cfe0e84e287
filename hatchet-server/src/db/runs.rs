//! Workflows and runs (`sql/workflows.sql`): registration, triggering, status and results.

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
}

/// `hatchet.run_workflow`: starts a run of the latest version; returns the run id.
pub async fn run_workflow<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    tenant: Uuid,
    t: &Trigger,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT hatchet.run_workflow(name => $1, input => $2, additional_metadata => $3, priority => $4, \
                                     tenant_id => $5, parent_task_id => $6, child_index => $7, child_key => $8)",
    )
    .bind(&t.name)
    .bind(&t.input)
    .bind(&t.additional_metadata)
    .bind(t.priority)
    .bind(tenant)
    .bind(t.parent_task_id)
    .bind(t.child_index)
    .bind(t.child_key.as_deref())
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

/// The status of many runs in one round trip; `None` for a run the extension does not know.
///
/// One statement for the common case; if any run is unknown (`run_status` raises), falls back to one call each.
pub async fn run_statuses(
    pool: &PgPool,
    tenant: Uuid,
    run_ids: &[Uuid],
) -> Result<Vec<(Uuid, Option<String>)>, sqlx::Error> {
    let batch = sqlx::query(
        "SELECT r.id, hatchet.run_status(run_id => r.id, tenant_id => $2) AS status \
         FROM unnest($1::uuid[]) AS r(id)",
    )
    .bind(run_ids)
    .bind(tenant)
    .fetch_all(pool)
    .await;
    match batch {
        Ok(rows) => rows
            .iter()
            .map(|r| Ok((r.try_get("id")?, Some(r.try_get("status")?))))
            .collect(),
        Err(sqlx::Error::Database(_)) => {
            let mut out = Vec::with_capacity(run_ids.len());
            for id in run_ids {
                match run_status(pool, tenant, *id).await {
                    Ok(status) => out.push((*id, Some(status))),
                    Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42704") => {
                        out.push((*id, None));
                    }
                    Err(err) => return Err(err),
                }
            }
            Ok(out)
        }
        Err(err) => Err(err),
    }
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
