//! The dashboard's own reads (`sql/dashboard.sql`): workflow versions and task settings, concurrency keys, queue
//! statistics and run counts per status. Every other page of the dashboard reads through the REST API's functions.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// A version of a workflow (`hatchet.workflow_versions`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct VersionRow {
    /// External id.
    pub id: Uuid,
    /// Label.
    pub version: Option<String>,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// How many tasks it has.
    pub tasks: i64,
    /// Workflow-level concurrency (`[{expression, max_runs, strategy}]`).
    pub concurrency: Value,
}

/// `hatchet.workflow_versions`: the latest 100 versions, newest first (none for an unknown workflow).
pub(crate) async fn workflow_versions(
    pool: &PgPool,
    tenant: Uuid,
    workflow_id: Uuid,
) -> Result<Vec<VersionRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, version, created_at, tasks, concurrency \
         FROM hatchet.workflow_versions(workflow_id => $1, tenant_id => $2)",
    )
    .bind(workflow_id)
    .bind(tenant)
    .fetch_all(pool)
    .await
}

/// A task of a workflow's latest version (`hatchet.workflow_tasks`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct TaskDefRow {
    /// Readable id.
    pub readable_id: String,
    /// Its queue.
    pub action: String,
    /// Readable ids of its parents.
    pub parents: Vec<String>,
    /// Runs when something failed.
    pub is_on_failure: bool,
    /// A durable task.
    pub is_durable: bool,
    /// Retries after the first attempt.
    pub retries: i32,
    /// Backoff factor, if any.
    pub backoff_factor: Option<f64>,
    /// Execution timeout as Postgres prints an interval.
    pub execution_timeout: String,
    /// Schedule timeout as Postgres prints an interval.
    pub schedule_timeout: String,
    /// `[{expression, max_runs, strategy}]`.
    pub concurrency: Value,
    /// `[{key | key_expr, units | units_expr, ...}]`.
    pub rate_limits: Value,
}

/// `hatchet.workflow_tasks`.
pub(crate) async fn workflow_tasks(
    pool: &PgPool,
    tenant: Uuid,
    workflow_id: Uuid,
) -> Result<Vec<TaskDefRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT readable_id, action, parents, is_on_failure, is_durable, retries, backoff_factor, \
                execution_timeout, schedule_timeout, concurrency, rate_limits \
         FROM hatchet.workflow_tasks(workflow_id => $1, tenant_id => $2)",
    )
    .bind(workflow_id)
    .bind(tenant)
    .fetch_all(pool)
    .await
}

/// A concurrency key (`hatchet.list_concurrency`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct ConcurrencyRow {
    /// A queue (task-level keys) or `workflow:<id>` (run-level keys).
    pub scope: String,
    /// The rendered key.
    pub key: String,
    /// GROUP_ROUND_ROBIN, CANCEL_IN_PROGRESS, CANCEL_NEWEST.
    pub strategy: String,
    /// Cap.
    pub max_runs: i32,
    /// Slots held now.
    pub running: i32,
    /// Attempts waiting for a slot.
    pub waiting: i64,
}

/// `hatchet.list_concurrency`: the busiest 500 keys.
pub(crate) async fn list_concurrency(
    pool: &PgPool,
    tenant: Uuid,
) -> Result<Vec<ConcurrencyRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT scope, key, strategy, max_runs, running, waiting FROM hatchet.list_concurrency(tenant_id => $1)",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await
}

/// A queue's depth now and throughput over the last hour (`hatchet.queue_stats`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct QueueRow {
    /// Queue name.
    pub queue: String,
    /// Ready to be claimed.
    pub ready: i64,
    /// Waiting for run_at, a backoff or a rate-limit window.
    pub delayed: i64,
    /// Waiting for a concurrency slot.
    pub waiting: i64,
    /// Running now.
    pub running: i64,
    /// Completions per 5-minute bucket, oldest first (12 buckets).
    pub completed: Vec<i64>,
    /// Failures per 5-minute bucket, oldest first.
    pub failed: Vec<i64>,
}

/// `hatchet.queue_stats`.
pub(crate) async fn queue_stats(pool: &PgPool, tenant: Uuid) -> Result<Vec<QueueRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT queue, ready, delayed, waiting, running, completed, failed \
         FROM hatchet.queue_stats(tenant_id => $1)",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await
}

/// Runs per status, counted up to a cap (`hatchet.run_status_counts`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct StatusCount {
    /// QUEUED, RUNNING, COMPLETED, FAILED or CANCELLED.
    pub status: String,
    /// Runs in it, at most the cap.
    pub runs: i64,
    /// There are more than `runs` (the cap was reached, or the search gave up early).
    pub more: bool,
}

/// `hatchet.run_status_counts` of the runs created since `since`: each status (of `statuses`, or all) counted up to
/// `up_to`.
pub(crate) async fn run_status_counts(
    pool: &PgPool,
    tenant: Uuid,
    since: Option<DateTime<Utc>>,
    workflow_ids: Option<&[Uuid]>,
    metadata: Option<&Value>,
    up_to: i32,
    statuses: Option<&[&str]>,
) -> Result<Vec<StatusCount>, sqlx::Error> {
    sqlx::query_as(
        "SELECT status, runs, more FROM hatchet.run_status_counts(since => $1, workflow_ids => $2, \
                metadata => $3, up_to => $4, tenant_id => $5, statuses => $6)",
    )
    .bind(since)
    .bind(workflow_ids)
    .bind(metadata)
    .bind(up_to)
    .bind(tenant)
    .bind(statuses)
    .fetch_all(pool)
    .await
}

/// A task of a run's workflow version with its parents (`hatchet.run_graph`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct GraphRow {
    /// Readable id.
    pub readable_id: String,
    /// Readable ids of its parents.
    pub parents: Vec<String>,
    /// Runs when something failed.
    pub is_on_failure: bool,
}

/// `hatchet.run_graph`: the DAG of a run (empty for a task enqueued on its own). Unknown run: SQLSTATE 42704.
pub(crate) async fn run_graph(
    pool: &PgPool,
    tenant: Uuid,
    run_id: Uuid,
) -> Result<Vec<GraphRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT readable_id, parents, is_on_failure FROM hatchet.run_graph(run_id => $1, tenant_id => $2)",
    )
    .bind(run_id)
    .bind(tenant)
    .fetch_all(pool)
    .await
}

/// Filters of [`dashboard_runs`].
#[derive(Debug, Clone, Default)]
pub(crate) struct RunPage {
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Of these workflows (external ids).
    pub workflow_ids: Option<Vec<Uuid>>,
    /// Additional metadata the run must contain.
    pub metadata: Option<Value>,
    /// Only runs in this status.
    pub status: Option<String>,
    /// Keyset cursor: runs older than this one.
    pub before: Option<Uuid>,
    /// Page size (1..500).
    pub limit: i32,
}

/// One page of [`dashboard_runs`]: the runs, and where to go on when the search stopped before filling the page.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunsPage {
    /// The runs, newest first.
    pub rows: Vec<super::runs::RunRow>,
    /// Set when the search looked at as many candidates as it may (10,000) without filling the page: the last run it
    /// looked at, the `before` that goes on with the older runs.
    pub resume_before: Option<Uuid>,
}

/// `hatchet.dashboard_runs`: one keyset page of workflow runs, newest first, without inputs (`input` is `{}`).
pub(crate) async fn dashboard_runs(
    pool: &PgPool,
    tenant: Uuid,
    page: &RunPage,
) -> Result<RunsPage, sqlx::Error> {
    use sqlx::{FromRow, Row};
    let found = sqlx::query(
        "SELECT id, status, '{}'::jsonb AS input, additional_metadata, created_at, workflow_name, workflow_id, \
                workflow_version_id, parent_task_id, children, resume_before \
         FROM hatchet.dashboard_runs(since => $1, workflow_ids => $2, metadata => $3, with_status => $4, \
                                     before => $5, \"limit\" => $6, tenant_id => $7)",
    )
    .bind(page.since)
    .bind(page.workflow_ids.as_deref())
    .bind(page.metadata.as_ref())
    .bind(page.status.as_deref())
    .bind(page.before)
    .bind(page.limit)
    .bind(tenant)
    .fetch_all(pool)
    .await?;
    let mut out = RunsPage::default();
    for row in &found {
        // (the row that says the search stopped has no run: only its resume_before)
        if let Some(resume) = row.try_get::<Option<Uuid>, _>("resume_before")? {
            out.resume_before = Some(resume);
            continue;
        }
        out.rows.push(super::runs::RunRow::from_row(row)?);
    }
    Ok(out)
}

/// `pg_notify(channel, payload)`: the dashboard change relay to the other server replicas (`dispatch::notifier`).
pub(crate) async fn notify(pool: &PgPool, channel: &str, payload: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
        .execute(pool)
        .await
        .map(|_| ())
}
