//! Crons and one-off schedules (`sql/crons.sql`).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// What a cron or a schedule starts: a run of a workflow with this input, metadata and priority.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunSpec<'a> {
    /// Workflow name.
    pub workflow: &'a str,
    /// Run input.
    pub input: &'a Value,
    /// Run metadata.
    pub additional_metadata: &'a Value,
    /// Run priority (`None`: the workflow's default).
    pub priority: Option<i32>,
}

/// `hatchet.create_cron`: a recurring trigger `name` of a workflow with a cron expression (5 fields, or 6 with
/// seconds first); returns its id.
pub(crate) async fn create_cron(
    pool: &PgPool,
    tenant: Uuid,
    name: &str,
    expression: &str,
    run: RunSpec<'_>,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT hatchet.create_cron(workflow => $1, name => $2, expression => $3, input => $4, \
                                    additional_metadata => $5, priority => $6, tenant_id => $7)",
    )
    .bind(run.workflow)
    .bind(name)
    .bind(expression)
    .bind(run.input)
    .bind(run.additional_metadata)
    .bind(run.priority)
    .bind(tenant)
    .fetch_one(pool)
    .await
}

/// `hatchet.delete_cron`: false if there was none.
pub(crate) async fn delete_cron(
    pool: &PgPool,
    tenant: Uuid,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT hatchet.delete_cron(cron_id => $1, tenant_id => $2)")
        .bind(id)
        .bind(tenant)
        .fetch_one(pool)
        .await
}

/// What a stored cron or schedule starts ([`RunSpec`] as read back).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct StoredRun {
    /// Workflow name.
    pub workflow: String,
    /// Run input.
    pub input: Value,
    /// Run metadata.
    pub additional_metadata: Value,
    /// Run priority.
    pub priority: Option<i32>,
}

/// One row of [`list_crons`].
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Cron {
    /// Cron id.
    #[sqlx(rename = "cron_id")]
    pub id: Uuid,
    /// What it starts.
    #[sqlx(flatten)]
    pub run: StoredRun,
    /// Cron name (the expression itself for declared crons).
    pub name: String,
    /// The cron expression.
    pub expression: String,
    /// `DECLARED` (from `on_crons`) or `API`.
    pub method: String,
    /// Whether it fires.
    pub enabled: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// `hatchet.list_crons`: crons of one workflow (by name) or all.
pub(crate) async fn list_crons(
    pool: &PgPool,
    tenant: Uuid,
    workflow: Option<&str>,
) -> Result<Vec<Cron>, sqlx::Error> {
    sqlx::query_as(
        "SELECT cron_id, workflow, name, expression, input, additional_metadata, priority, method, enabled, \
                created_at \
         FROM hatchet.list_crons(workflow => $1, tenant_id => $2)",
    )
    .bind(workflow)
    .bind(tenant)
    .fetch_all(pool)
    .await
}

/// `hatchet.schedule`: a one-off run of a workflow at `run_at`; returns the schedule id.
pub(crate) async fn schedule(
    pool: &PgPool,
    tenant: Uuid,
    run_at: DateTime<Utc>,
    run: RunSpec<'_>,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT hatchet.schedule(workflow => $1, run_at => $2, input => $3, additional_metadata => $4, \
                                 priority => $5, tenant_id => $6)",
    )
    .bind(run.workflow)
    .bind(run_at)
    .bind(run.input)
    .bind(run.additional_metadata)
    .bind(run.priority)
    .bind(tenant)
    .fetch_one(pool)
    .await
}

/// `hatchet.delete_schedule`: false if there was none.
pub(crate) async fn delete_schedule(
    pool: &PgPool,
    tenant: Uuid,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT hatchet.delete_schedule(schedule_id => $1, tenant_id => $2)")
        .bind(id)
        .bind(tenant)
        .fetch_one(pool)
        .await
}

/// One row of [`list_schedules`].
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Schedule {
    /// Schedule id.
    #[sqlx(rename = "schedule_id")]
    pub id: Uuid,
    /// What it starts.
    #[sqlx(flatten)]
    pub run: StoredRun,
    /// When it fires.
    pub run_at: DateTime<Utc>,
    /// The run it started, once fired.
    pub fired_run_id: Option<Uuid>,
    /// Why it could not fire.
    pub error: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// `hatchet.list_schedules`: one-off schedules of one workflow (by name) or all, pending and fired.
pub(crate) async fn list_schedules(
    pool: &PgPool,
    tenant: Uuid,
    workflow: Option<&str>,
) -> Result<Vec<Schedule>, sqlx::Error> {
    sqlx::query_as(
        "SELECT schedule_id, workflow, run_at, input, additional_metadata, priority, fired_run_id, error, created_at \
         FROM hatchet.list_schedules(workflow => $1, tenant_id => $2)",
    )
    .bind(workflow)
    .bind(tenant)
    .fetch_all(pool)
    .await
}
