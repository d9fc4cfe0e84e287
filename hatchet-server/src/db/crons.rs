//! Crons and one-off schedules (`sql/crons.sql`).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::PgArguments;
use sqlx::{PgPool, Postgres};
use uuid::Uuid;

/// What a cron or a schedule starts: a run of a workflow with this input, metadata and priority.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct StoredRun {
    /// Workflow name.
    pub workflow: String,
    /// Run input.
    pub input: Value,
    /// Run metadata.
    pub additional_metadata: Value,
    /// Run priority (`None`: the workflow's default).
    pub priority: Option<i32>,
}

/// A statement that creates a cron or schedule for `run`: `$1..$5` are the workflow, input, metadata, priority and
/// tenant; the caller binds its own arguments from `$6` on. Returns the new id.
fn create<'q>(
    sql: &'static str,
    tenant: Uuid,
    run: &'q StoredRun,
) -> sqlx::query::QueryScalar<'q, Postgres, Uuid, PgArguments> {
    sqlx::query_scalar(sql)
        .bind(&run.workflow)
        .bind(&run.input)
        .bind(&run.additional_metadata)
        .bind(run.priority)
        .bind(tenant)
}

/// Runs a `hatchet.delete_*(<id> => $1, tenant_id => $2)`: false if there was nothing to delete.
async fn delete(
    pool: &PgPool,
    sql: &'static str,
    tenant: Uuid,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(sql)
        .bind(id)
        .bind(tenant)
        .fetch_one(pool)
        .await
}

/// `hatchet.create_cron`: a recurring trigger `name` of a workflow with a cron expression (5 fields, or 6 with
/// seconds first); returns its id.
pub(crate) async fn create_cron(
    pool: &PgPool,
    tenant: Uuid,
    name: &str,
    expression: &str,
    run: &StoredRun,
) -> Result<Uuid, sqlx::Error> {
    let sql = "SELECT hatchet.create_cron(workflow => $1, input => $2, additional_metadata => $3, priority => $4, \
                                          tenant_id => $5, name => $6, expression => $7)";
    create(sql, tenant, run)
        .bind(name)
        .bind(expression)
        .fetch_one(pool)
        .await
}

/// `hatchet.delete_cron`: false if there was none.
pub(crate) async fn delete_cron(
    pool: &PgPool,
    tenant: Uuid,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    let sql = "SELECT hatchet.delete_cron(cron_id => $1, tenant_id => $2)";
    delete(pool, sql, tenant, id).await
}

/// `hatchet.trigger_cron`: runs the cron's workflow once now; returns the run id (42704 for an unknown cron).
pub(crate) async fn trigger_cron(
    pool: &PgPool,
    tenant: Uuid,
    id: Uuid,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar("SELECT hatchet.trigger_cron(cron_id => $1, tenant_id => $2)")
        .bind(id)
        .bind(tenant)
        .fetch_one(pool)
        .await
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
    run: &StoredRun,
) -> Result<Uuid, sqlx::Error> {
    let sql = "SELECT hatchet.schedule(workflow => $1, input => $2, additional_metadata => $3, priority => $4, \
                                       tenant_id => $5, run_at => $6)";
    create(sql, tenant, run).bind(run_at).fetch_one(pool).await
}

/// `hatchet.delete_schedule`: false if there was none.
pub(crate) async fn delete_schedule(
    pool: &PgPool,
    tenant: Uuid,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    let sql = "SELECT hatchet.delete_schedule(schedule_id => $1, tenant_id => $2)";
    delete(pool, sql, tenant, id).await
}

/// `hatchet.reschedule`: moves schedules that have not fired; per id (in order), `None` or why it was not moved.
pub(crate) async fn reschedule(
    pool: &PgPool,
    tenant: Uuid,
    ids: &[Uuid],
    run_ats: &[DateTime<Utc>],
) -> Result<Vec<(Uuid, Option<String>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT schedule_id, error FROM hatchet.reschedule(schedule_ids => $1, run_ats => $2, tenant_id => $3)",
    )
    .bind(ids)
    .bind(run_ats)
    .bind(tenant)
    .fetch_all(pool)
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
