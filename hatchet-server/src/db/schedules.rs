//! Crons and one-off schedules (`sql/cron.sql`).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgPool, Row};
use uuid::Uuid;

/// What [`create_cron`] creates.
#[derive(Debug, Clone)]
pub struct NewCron<'a> {
    /// Workflow name.
    pub workflow: &'a str,
    /// Cron name, unique per workflow.
    pub name: &'a str,
    /// Cron expression (5 fields, or 6 with seconds first).
    pub expression: &'a str,
    /// Run input.
    pub input: &'a Value,
    /// Run metadata.
    pub additional_metadata: &'a Value,
    /// Run priority.
    pub priority: Option<i32>,
}

/// `hatchet.create_cron`: a recurring trigger of a workflow; returns its id.
pub async fn create_cron(
    pool: &PgPool,
    tenant: Uuid,
    c: &NewCron<'_>,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT hatchet.create_cron(workflow => $1, name => $2, expression => $3, input => $4, \
                                    additional_metadata => $5, priority => $6, tenant_id => $7)",
    )
    .bind(c.workflow)
    .bind(c.name)
    .bind(c.expression)
    .bind(c.input)
    .bind(c.additional_metadata)
    .bind(c.priority)
    .bind(tenant)
    .fetch_one(pool)
    .await
}

/// `hatchet.delete_cron`: false if there was none.
pub async fn delete_cron(pool: &PgPool, tenant: Uuid, id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT hatchet.delete_cron(cron_id => $1, tenant_id => $2)")
        .bind(id)
        .bind(tenant)
        .fetch_one(pool)
        .await
}

/// One row of [`list_crons`].
#[derive(Debug, Clone)]
pub struct Cron {
    /// Cron id.
    pub id: Uuid,
    /// Workflow name.
    pub workflow: String,
    /// Cron name (the expression itself for declared crons).
    pub name: String,
    /// The cron expression.
    pub expression: String,
    /// Run input.
    pub input: Value,
    /// Run metadata.
    pub additional_metadata: Value,
    /// Run priority.
    pub priority: Option<i32>,
    /// `DECLARED` (from `on_crons`) or `API`.
    pub method: String,
    /// Whether it fires.
    pub enabled: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// `hatchet.list_crons`: crons of one workflow (by name) or all.
pub async fn list_crons(
    pool: &PgPool,
    tenant: Uuid,
    workflow: Option<&str>,
) -> Result<Vec<Cron>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT cron_id, workflow, name, expression, input, additional_metadata, priority, method, enabled, \
                created_at \
         FROM hatchet.list_crons(workflow => $1, tenant_id => $2)",
    )
    .bind(workflow)
    .bind(tenant)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Cron {
                id: r.try_get("cron_id")?,
                workflow: r.try_get("workflow")?,
                name: r.try_get("name")?,
                expression: r.try_get("expression")?,
                input: r.try_get("input")?,
                additional_metadata: r.try_get("additional_metadata")?,
                priority: r.try_get("priority")?,
                method: r.try_get("method")?,
                enabled: r.try_get("enabled")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

/// `hatchet.delete_schedule`: false if there was none.
pub async fn delete_schedule(pool: &PgPool, tenant: Uuid, id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT hatchet.delete_schedule(schedule_id => $1, tenant_id => $2)")
        .bind(id)
        .bind(tenant)
        .fetch_one(pool)
        .await
}

/// One row of [`list_schedules`].
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Schedule id.
    pub id: Uuid,
    /// Workflow name.
    pub workflow: String,
    /// When it fires.
    pub run_at: DateTime<Utc>,
    /// Run input.
    pub input: Value,
    /// Run metadata.
    pub additional_metadata: Value,
    /// Run priority.
    pub priority: Option<i32>,
    /// The run it started, once fired.
    pub fired_run_id: Option<Uuid>,
    /// Why it could not fire.
    pub error: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// `hatchet.list_schedules`: one-off schedules of one workflow (by name) or all, pending and fired.
pub async fn list_schedules(
    pool: &PgPool,
    tenant: Uuid,
    workflow: Option<&str>,
) -> Result<Vec<Schedule>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT schedule_id, workflow, run_at, input, additional_metadata, priority, fired_run_id, error, created_at \
         FROM hatchet.list_schedules(workflow => $1, tenant_id => $2)",
    )
    .bind(workflow)
    .bind(tenant)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Schedule {
                id: r.try_get("schedule_id")?,
                workflow: r.try_get("workflow")?,
                run_at: r.try_get("run_at")?,
                input: r.try_get("input")?,
                additional_metadata: r.try_get("additional_metadata")?,
                priority: r.try_get("priority")?,
                fired_run_id: r.try_get("fired_run_id")?,
                error: r.try_get("error")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}
