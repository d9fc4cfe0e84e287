//! Workflow runs (`sql/runs.sql`): triggering, cancellation, replay, status, tasks, timeline, finished results and
//! the run reads of the REST API.

use super::workers::Assignment;
use super::{int_arg, page, tasks, Counted};
use crate::status::{RunStatus, TaskStatus};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{Acquire, PgExecutor, PgPool};
use std::collections::HashMap;
use uuid::Uuid;

/// What a trigger names besides the workflow: its input, metadata and where it was spawned from.
#[derive(Debug, Clone, Default)]
pub(crate) struct Trigger {
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
    /// Worker labels the run's root tasks want (`{label: {str_value | int_value, comparator, required, weight}}`),
    /// for tasks that declare none of their own.
    pub desired_worker_labels: Option<Value>,
}

/// `hatchet.run_workflow`: starts a run of the latest version; returns the run id.
pub(crate) async fn run_workflow<'e>(
    executor: impl PgExecutor<'e>,
    tenant: Uuid,
    t: &Trigger,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT hatchet.run_workflow(name => $1, input => $2, additional_metadata => $3, priority => $4, \
                                     tenant_id => $5, parent_task_id => $6, child_index => $7, child_key => $8, \
                                     desired_worker_id => $9, desired_worker_labels => $10)",
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
    .bind(t.desired_worker_labels.as_ref())
    .fetch_one(executor)
    .await
}

/// Where a trigger may assign at once: the tenant's workers connected to this server, at most `max_tasks`
/// attempts, waiting at most `lock_wait_ms` for a lock (see [`super::workers::try_assign`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AssignNow<'a> {
    /// The workers (their streams are on this server).
    pub workers: &'a [Uuid],
    /// Most attempts handed out.
    pub max_tasks: i32,
    /// Longest wait for a lock before giving up (the assigner loop then takes the work).
    pub lock_wait_ms: i32,
}

/// One row of [`run_workflow_assigning`]: the run, and an assignment if any (`worker_id` NULL for none).
#[derive(Debug, sqlx::FromRow)]
struct TriggerRow {
    run: Uuid,
    worker_id: Option<Uuid>,
    task_id: Option<Uuid>,
    retry_count: Option<i32>,
    queue: Option<String>,
    input: Option<Value>,
    additional_metadata: Option<Value>,
    priority: Option<i32>,
    run_id: Option<Uuid>,
    readable_id: Option<String>,
    task_inserted_at: Option<DateTime<Utc>>,
    queued_at: Option<DateTime<Utc>>,
    parent_run_id: Option<Uuid>,
}

/// [`run_workflow`], then `hatchet.try_assign` for `now`'s workers, in one statement: one round trip and one
/// commit for both (the assigner's own transaction after the trigger's is a second commit on a task's way to its
/// worker). The rows come back only once the statement's transaction committed (the client reads up to the
/// server's ReadyForQuery), so an attempt returned here may be pushed; a failed commit returns an error and
/// nothing. Returns the run id and what was assigned (possibly other ready work of the tenant too).
pub(crate) async fn run_workflow_assigning<'e>(
    executor: impl PgExecutor<'e>,
    tenant: Uuid,
    t: &Trigger,
    now: AssignNow<'_>,
) -> Result<(Uuid, Vec<Assignment>), sqlx::Error> {
    // The run is created first: a left join on `true` can only be a nested loop with the (materialized) CTE as its
    // outer side, so try_assign runs after run_workflow and, being volatile, sees the tasks it made ready.
    let rows: Vec<TriggerRow> = sqlx::query_as(
        "WITH r AS MATERIALIZED ( \
             SELECT hatchet.run_workflow(name => $1, input => $2, additional_metadata => $3, priority => $4, \
                                         tenant_id => $5, parent_task_id => $6, child_index => $7, \
                                         child_key => $8, desired_worker_id => $9, \
                                         desired_worker_labels => $10) AS run) \
         SELECT r.run, a.worker_id, a.task_id, a.retry_count, a.queue, a.input, a.additional_metadata, \
                a.priority, a.run_id, a.readable_id, a.task_inserted_at, a.queued_at, a.parent_run_id \
         FROM r LEFT JOIN LATERAL hatchet.try_assign(worker_ids => $11, max_tasks => $12, tenant_id => $5, \
                                                     lock_wait_ms => $13) a ON true",
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
    .bind(t.desired_worker_labels.as_ref())
    .bind(now.workers)
    .bind(now.max_tasks)
    .bind(now.lock_wait_ms)
    .fetch_all(executor)
    .await?;
    let run = rows
        .first()
        .map(|r| r.run)
        .ok_or_else(|| sqlx::Error::RowNotFound)?;
    let assigned = rows
        .into_iter()
        .filter_map(TriggerRow::assignment)
        .collect();
    Ok((run, assigned))
}

impl TriggerRow {
    fn assignment(self) -> Option<Assignment> {
        Some(Assignment {
            worker_id: self.worker_id?,
            task_id: self.task_id?,
            retry_count: self.retry_count?,
            queue: self.queue?,
            input: self.input?,
            additional_metadata: self.additional_metadata.unwrap_or(Value::Null),
            priority: self.priority?,
            run_id: self.run_id,
            readable_id: self.readable_id,
            task_inserted_at: self.task_inserted_at?,
            queued_at: self.queued_at?,
            parent_run_id: self.parent_run_id,
        })
    }
}

/// What [`run_workflows`] did with one trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Triggered {
    /// The run started, with this id.
    Started(Uuid),
    /// Refused: the run with this id holds the workflow's idempotency key.
    Collided(Uuid),
}

/// [`run_workflow`] for each trigger, in one transaction: every run starts or none, except that a trigger refused
/// for its idempotency key (another run holds it) is left out and the others still start, as in Hatchet. Such
/// refusals are rare, so the batch first runs without a savepoint per trigger; only after a refusal is it run again
/// with one. With `now`, the same transaction then assigns (`hatchet.try_assign`) before it commits: one commit
/// for the runs and their assignments. Returns what happened to each trigger, in order, and what was assigned (to
/// be pushed: it is returned only after the commit).
pub(crate) async fn run_workflows(
    pool: &PgPool,
    tenant: Uuid,
    triggers: &[Trigger],
    now: Option<AssignNow<'_>>,
) -> Result<(Vec<Triggered>, Vec<Assignment>), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut ids = Vec::with_capacity(triggers.len());
    let mut collided = false;
    for t in triggers {
        match run_workflow(&mut *tx, tenant, t).await {
            Ok(id) => ids.push(Triggered::Started(id)),
            Err(e) if crate::error::idempotency_holder(&e).is_some() => {
                collided = true;
                break;
            }
            Err(e) => return Err(e),
        }
    }
    if !collided {
        let assigned = match now {
            Some(now) => {
                super::workers::try_assign(
                    &mut *tx,
                    tenant,
                    now.workers,
                    now.max_tasks,
                    now.lock_wait_ms,
                )
                .await?
            }
            None => Vec::new(),
        };
        tx.commit().await?;
        return Ok((ids, assigned));
    }
    tx.rollback().await?;
    let mut tx = pool.begin().await?;
    let mut out = Vec::with_capacity(triggers.len());
    for t in triggers {
        let mut sp = tx.begin().await?;
        match run_workflow(&mut *sp, tenant, t).await {
            Ok(id) => {
                sp.commit().await?;
                out.push(Triggered::Started(id));
            }
            Err(e) => match crate::error::idempotency_holder(&e) {
                Some(holder) => {
                    sp.rollback().await?;
                    out.push(Triggered::Collided(holder));
                }
                None => return Err(e),
            },
        }
    }
    let assigned = match now {
        Some(now) => {
            super::workers::try_assign(
                &mut *tx,
                tenant,
                now.workers,
                now.max_tasks,
                now.lock_wait_ms,
            )
            .await?
        }
        None => Vec::new(),
    };
    tx.commit().await?;
    Ok((out, assigned))
}

/// `hatchet.cancel_run`: cancels every unfinished task of a run; returns how many were cancelled. Unknown run:
/// SQLSTATE 42704.
pub(crate) async fn cancel_run(
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

/// The reason recorded for a cancellation asked for through the API (gRPC `CancelTasks`, REST `tasks/cancel`).
const CANCELLED_BY_USER: &str = "cancelled by user";

/// A user's cancellation: cancels a run ([`cancel_run`]), or a task ([`tasks::cancel`]) when the id is not a
/// run's. Whether anything was cancelled.
pub(crate) async fn cancel_run_or_task(
    pool: &PgPool,
    tenant: Uuid,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    match cancel_run(pool, tenant, id, CANCELLED_BY_USER).await {
        Ok(n) => Ok(n > 0),
        Err(err) if crate::error::is_not_found(&err) => {
            tasks::cancel(pool, tenant, id, CANCELLED_BY_USER).await
        }
        Err(err) => Err(err),
    }
}

/// `hatchet.run_status`. Unknown run: SQLSTATE 42704.
pub(crate) async fn run_status(
    pool: &PgPool,
    tenant: Uuid,
    run_id: Uuid,
) -> Result<RunStatus, sqlx::Error> {
    sqlx::query_scalar("SELECT hatchet.run_status(run_id => $1, tenant_id => $2)")
        .bind(run_id)
        .bind(tenant)
        .fetch_one(pool)
        .await
}

/// One row of [`run_tasks`].
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct RunTask {
    /// The task id (`None` while it waits for parents or conditions and has not been created).
    pub task_id: Option<Uuid>,
    /// Readable id within the workflow.
    pub readable_id: Option<String>,
    /// Where it is.
    pub status: TaskStatus,
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
    /// An evicted durable task (status RUNNING, off any worker until what it waits for is satisfied or it is
    /// restored).
    pub evicted: bool,
}

impl RunTask {
    /// The output the SDK reads for it, see [`TaskStatus::sdk_output`].
    pub(crate) fn sdk_output(&self) -> Option<Value> {
        self.status.sdk_output(self.output.as_ref())
    }

    /// Its error in the run's results, see [`TaskStatus::result_error`].
    pub(crate) fn result_error(&self) -> Option<String> {
        self.status.result_error(self.error.as_deref())
    }
}

/// `hatchet.run_tasks`: the tasks of a run with status, output and error. Unknown run: SQLSTATE 42704.
pub(crate) async fn run_tasks(
    pool: &PgPool,
    tenant: Uuid,
    run_id: Uuid,
) -> Result<Vec<RunTask>, sqlx::Error> {
    sqlx::query_as(
        "SELECT task_id, readable_id, status, retry_count, output, error, queue, created_at, evicted \
         FROM hatchet.run_tasks(run_id => $1, tenant_id => $2)",
    )
    .bind(run_id)
    .bind(tenant)
    .fetch_all(pool)
    .await
}

/// One row of [`run_events`].
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct RunEvent {
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
pub(crate) async fn run_events(
    pool: &PgPool,
    tenant: Uuid,
    run_id: Uuid,
) -> Result<Vec<RunEvent>, sqlx::Error> {
    sqlx::query_as(
        "SELECT readable_id, task_id, event_type, created_at, retry_count, reason, worker \
         FROM hatchet.run_events(run_id => $1, tenant_id => $2)",
    )
    .bind(run_id)
    .bind(tenant)
    .fetch_all(pool)
    .await
}

/// `hatchet.replay_tasks`: a new attempt of each finished run or task (in a DAG, of everything downstream too);
/// returns the tasks queued now. Runs still in progress are left alone; an unknown id is SQLSTATE 42704.
pub(crate) async fn replay_tasks(
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
pub(crate) struct FinishedRun {
    /// The run.
    pub run_id: Uuid,
    /// Its tasks with status, output and error.
    pub tasks: Vec<RunTask>,
}

/// One row of `hatchet.finished_runs`: a task of a finished run.
#[derive(sqlx::FromRow)]
struct FinishedTask {
    run_id: Uuid,
    #[sqlx(flatten)]
    task: RunTask,
}

/// `hatchet.finished_runs`: the finished runs among `run_ids` (unknown and unfinished ones are left out), in one
/// round trip.
pub(crate) async fn finished_runs(
    pool: &PgPool,
    tenant: Uuid,
    run_ids: &[Uuid],
) -> Result<Vec<FinishedRun>, sqlx::Error> {
    let rows: Vec<FinishedTask> = sqlx::query_as(
        // (a finished run has no evicted task)
        "SELECT run_id, task_id, readable_id, status, retry_count, output, error, queue, created_at, \
                false AS evicted \
         FROM hatchet.finished_runs(run_ids => $1, tenant_id => $2)",
    )
    .bind(run_ids)
    .bind(tenant)
    .fetch_all(pool)
    .await?;
    let mut out: Vec<FinishedRun> = Vec::new();
    for FinishedTask { run_id, task } in rows {
        match out.last_mut() {
            Some(last) if last.run_id == run_id => last.tasks.push(task),
            _ => out.push(FinishedRun {
                run_id,
                tasks: vec![task],
            }),
        }
    }
    Ok(out)
}

/// What a run was started with, for run details.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct RunInfo {
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
}

/// One run with what the REST shapes need (`hatchet.run`, `hatchet.list_runs`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct RunRow {
    /// The run id.
    pub id: Uuid,
    /// Aggregated status (`hatchet.run_status`).
    pub status: RunStatus,
    /// The rest.
    #[sqlx(flatten)]
    pub info: RunInfo,
    /// How many runs its tasks spawned.
    pub children: i64,
}

/// The columns of [`RunRow`].
const RUN_COLUMNS: &str =
    "id, status, input, additional_metadata, created_at, workflow_name, workflow_id, \
                           workflow_version_id, parent_task_id, children";

/// `hatchet.run`: a run, or a task enqueued on its own (no workflow columns), or `None`.
async fn run(pool: &PgPool, tenant: Uuid, run_id: Uuid) -> Result<Option<RunRow>, sqlx::Error> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM hatchet.run(run_id => $1, tenant_id => $2)");
    // Built from a constant column list; the values are bind parameters.
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(run_id)
        .bind(tenant)
        .fetch_optional(pool)
        .await
}

/// One row of [`run_shape`]: a created task of a run, its step and the steps of its children.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct ShapeRow {
    /// The task.
    pub task_id: Uuid,
    /// Its readable id.
    pub readable_id: String,
    /// Its step (stable per workflow version and readable id).
    pub step_id: Uuid,
    /// The steps that list it as a parent.
    pub children_step_ids: Vec<Uuid>,
}

/// `hatchet.run_shape`: the created tasks of a workflow run with their steps (empty for a task enqueued on its own).
pub(crate) async fn run_shape(
    pool: &PgPool,
    tenant: Uuid,
    run_id: Uuid,
) -> Result<Vec<ShapeRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT task_id, readable_id, step_id, children_step_ids \
         FROM hatchet.run_shape(run_id => $1, tenant_id => $2)",
    )
    .bind(run_id)
    .bind(tenant)
    .fetch_all(pool)
    .await
}

/// What a run (or a task enqueued on its own) was started with, or `None`.
pub(crate) async fn run_info(
    pool: &PgPool,
    tenant: Uuid,
    run_id: Uuid,
) -> Result<Option<RunInfo>, sqlx::Error> {
    Ok(run(pool, tenant, run_id).await?.map(|r| r.info))
}

/// One workflow run (not a task enqueued on its own), or `None`.
pub(crate) async fn run_row_by_id(
    pool: &PgPool,
    tenant: Uuid,
    run_id: Uuid,
) -> Result<Option<RunRow>, sqlx::Error> {
    Ok(run(pool, tenant, run_id)
        .await?
        .filter(|r| r.info.workflow_id.is_some()))
}

/// `hatchet.run_children`: how many runs each task of a run spawned (tasks that spawned none are absent).
pub(crate) async fn run_children(
    pool: &PgPool,
    tenant: Uuid,
    run_id: Uuid,
) -> Result<HashMap<Uuid, i64>, sqlx::Error> {
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT task_id, children FROM hatchet.run_children(run_id => $1, tenant_id => $2)",
    )
    .bind(run_id)
    .bind(tenant)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Filters of [`list_runs`] (Hatchet's `GET /api/v1/stable/tenants/{tenant}/workflow-runs`).
#[derive(Debug, Clone, Default)]
pub(crate) struct RunFilter {
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
    /// Run statuses as the caller wrote them (the extension checks them).
    pub statuses: Option<Vec<String>>,
    /// Runs with a task assigned to this worker.
    pub worker_id: Option<Uuid>,
    /// Runs triggered by this event.
    pub event_id: Option<Uuid>,
    /// Page size.
    pub limit: i64,
    /// Rows to skip.
    pub offset: i64,
    /// Keyset paging: runs older than this one (the last id of the previous page).
    pub before: Option<Uuid>,
    /// Return inputs (otherwise `input` is `{}`); the page's inputs must then fit in 16 MiB.
    pub include_payloads: bool,
}

/// `hatchet.list_runs`: workflow runs matching a filter, newest first, and how many match in all.
pub(crate) async fn list_runs(
    pool: &PgPool,
    tenant: Uuid,
    f: &RunFilter,
) -> Result<(Vec<RunRow>, i64), sqlx::Error> {
    // Without payloads the function returns a NULL input, shown as `{}` (what Hatchet's REST shows).
    let sql = format!(
        "SELECT {}, total FROM hatchet.list_runs(since => $1, until => $2, workflow_ids => $3, \
                metadata => $4, parent_task => $5, statuses => $6, worker_id => $7, event_id => $8, \
                \"limit\" => $9, \"offset\" => $10, tenant_id => $11, before => $12, include_payloads => $13)",
        RUN_COLUMNS.replacen("input", "coalesce(input, '{}') AS input", 1)
    );
    // Built from a constant column list; every value is a bind parameter.
    let rows: Vec<Counted<RunRow>> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(f.since)
        .bind(f.until)
        .bind(f.workflow_ids.as_deref())
        .bind(f.metadata.as_ref())
        .bind(f.parent_task_id)
        .bind(f.statuses.as_deref())
        .bind(f.worker_id)
        .bind(f.event_id)
        .bind(int_arg(f.limit))
        .bind(int_arg(f.offset))
        .bind(tenant)
        .bind(f.before)
        .bind(f.include_payloads)
        .fetch_all(pool)
        .await?;
    if rows.is_empty() && f.offset > 0 {
        // An empty page past the end does not say how many there are: count them (a rare request).
        let first = RunFilter {
            offset: 0,
            limit: 1,
            ..f.clone()
        };
        let total = Box::pin(list_runs(pool, tenant, &first)).await?.1;
        return Ok((Vec::new(), total));
    }
    Ok(page(rows))
}

/// `hatchet.find_runs_by_metadata`: the runs created since `since` whose `additional_metadata[key] = value`, with
/// their creation time, oldest first.
pub(crate) async fn find_runs_by_metadata(
    pool: &PgPool,
    tenant: Uuid,
    key: &str,
    value: &str,
    since: DateTime<Utc>,
) -> Result<Vec<(Uuid, DateTime<Utc>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT run_id, created_at FROM hatchet.find_runs_by_metadata(tenant_id => $1, key => $2, \
         value => $3, since => $4)",
    )
    .bind(tenant)
    .bind(key)
    .bind(value)
    .bind(since)
    .fetch_all(pool)
    .await
}

/// One row of [`task_status_counts`].
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct StatusCount {
    /// QUEUED, RUNNING, COMPLETED, FAILED or CANCELLED.
    pub status: String,
    /// Tasks in that status.
    pub count: i64,
}

/// What [`task_status_counts`] counts: tasks created in `[since, until)`, optionally of some workflows, of the child
/// runs of one task, or of runs one event triggered.
#[derive(Debug, Clone)]
pub(crate) struct MetricsFilter {
    /// Start of the window.
    pub since: DateTime<Utc>,
    /// End of the window (`None`: now and later).
    pub until: Option<DateTime<Utc>>,
    /// Workflow external ids.
    pub workflow_ids: Option<Vec<Uuid>>,
    /// The task whose child runs count.
    pub parent_task_id: Option<Uuid>,
    /// The event whose runs count.
    pub triggering_event_id: Option<Uuid>,
}

/// `hatchet.task_status_counts`: one row per readable status (zeros included).
pub(crate) async fn task_status_counts(
    pool: &PgPool,
    tenant: Uuid,
    f: &MetricsFilter,
) -> Result<Vec<StatusCount>, sqlx::Error> {
    sqlx::query_as(
        "SELECT status, count FROM hatchet.task_status_counts(since => $1, until => $2, workflow_ids => $3, \
                parent_task_id => $4, triggering_event_id => $5, tenant_id => $6)",
    )
    .bind(f.since)
    .bind(f.until)
    .bind(f.workflow_ids.as_deref())
    .bind(f.parent_task_id)
    .bind(f.triggering_event_id)
    .bind(tenant)
    .fetch_all(pool)
    .await
}

/// One row of [`task_stats`].
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct TaskStatRow {
    /// The task's readable id (its queue for a task enqueued on its own).
    pub task_name: String,
    /// QUEUED or RUNNING.
    pub state: String,
    /// The queue.
    pub queue: String,
    /// How many.
    pub count: i64,
    /// Oldest task creation time.
    pub oldest: DateTime<Utc>,
    /// Oldest creation time among first attempts.
    pub oldest_excluding_retries: Option<DateTime<Utc>>,
}

/// `hatchet.task_stats`: queued and running work now, per task name, state and queue.
pub(crate) async fn task_stats(
    pool: &PgPool,
    tenant: Uuid,
) -> Result<Vec<TaskStatRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT task_name, state, queue, count, oldest, oldest_excluding_retries \
         FROM hatchet.task_stats(tenant_id => $1)",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await
}
