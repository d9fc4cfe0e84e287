//! Workflow definitions (`sql/workflows.sql`): registration and the workflow reads.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// `hatchet.register_workflow`: stores a version (a no-op for an unchanged definition); returns its external id.
pub(crate) async fn register_workflow(
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

/// A workflow as the REST API shows it (`hatchet.list_workflows`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct WorkflowRow {
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
pub(crate) async fn list_workflows(
    pool: &PgPool,
    tenant: Uuid,
    name: Option<&str>,
    id: Option<Uuid>,
) -> Result<Vec<WorkflowRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, name, is_paused, created_at, version_id, version, version_created_at, event_triggers, \
                cron_triggers, description \
         FROM hatchet.list_workflows(workflow_name => $1, workflow_id => $2, tenant_id => $3)",
    )
    .bind(name)
    .bind(id)
    .bind(tenant)
    .fetch_all(pool)
    .await
}

/// The external ids of a workflow (by name) and of its latest version, or `None`.
pub(crate) async fn workflow_ids(
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

/// How a workflow is paused (`hatchet.pause_workflow`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Pause {
    /// Queued attempts held longer than this (a Hatchet duration, `"1s"`, `"10m"`) are cancelled; `None`: never.
    pub queue_ttl: Option<String>,
    /// What a cron tick does while paused: `QUEUE` or `DROP`.
    pub cron_behavior: String,
    /// What a one-off schedule does while paused: `QUEUE` or `DROP`.
    pub scheduled_behavior: String,
}

/// `hatchet.pause_workflow`. Unknown workflow: SQLSTATE 42704; a bad duration or behaviour: 22023.
pub(crate) async fn pause_workflow(
    pool: &PgPool,
    tenant: Uuid,
    workflow: Uuid,
    pause: &Pause,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT hatchet.pause_workflow(workflow_id => $1, queue_ttl => hatchet.parse_duration($2), \
                                       cron_behavior => $3, scheduled_behavior => $4, tenant_id => $5)",
    )
    .bind(workflow)
    .bind(pause.queue_ttl.as_deref())
    .bind(&pause.cron_behavior)
    .bind(&pause.scheduled_behavior)
    .bind(tenant)
    .fetch_one(pool)
    .await
}

/// `hatchet.unpause_workflow`. Unknown workflow: SQLSTATE 42704.
pub(crate) async fn unpause_workflow(
    pool: &PgPool,
    tenant: Uuid,
    workflow: Uuid,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar("SELECT hatchet.unpause_workflow(workflow_id => $1, tenant_id => $2)")
        .bind(workflow)
        .bind(tenant)
        .fetch_one(pool)
        .await
}

/// `hatchet.delete_workflow`. Unknown workflow: SQLSTATE 42704; work still in progress: 55000.
pub(crate) async fn delete_workflow(
    pool: &PgPool,
    tenant: Uuid,
    workflow: Uuid,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar("SELECT hatchet.delete_workflow(workflow_id => $1, tenant_id => $2)")
        .bind(workflow)
        .bind(tenant)
        .fetch_one(pool)
        .await
}
