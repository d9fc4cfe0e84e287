//! Alerts (`sql/alerts.sql`): a tenant's alert channels (settings without secrets for the REST API, with the secret
//! for the sender only) and the `hatchet:alerts` queue the sender consumes with `dequeue` / `complete` / `fail`.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// The queue of the internal workflow `hatchet:alerts`'s one task: one run per alert and channel.
pub(crate) const ALERT_QUEUE: &str = "hatchet:alerts:deliver";

/// A channel as the API shows it (`hatchet.alert_channels`): the names of its secret fields, never their values.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct ChannelRow {
    /// `slack`, `webhook` or `email`.
    pub kind: String,
    /// Whether alerts are sent to it.
    pub enabled: bool,
    /// What it is told about (`run_failed`).
    pub events: Vec<String>,
    /// Settings that are not secret (the email channel's SMTP host, port, TLS mode, sender and recipients).
    pub settings: Value,
    /// Which secret fields are stored (`url`, `headers`, `username`, `password`).
    pub secret_fields: Vec<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A channel with its secret, for sending (`hatchet.alert_channel_secret`, server role only).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct ChannelSecret {
    /// Whether alerts are sent to it.
    pub enabled: bool,
    /// Settings that are not secret.
    pub settings: Value,
    /// The secret fields.
    pub secret: Value,
}

/// One delivery claimed from the queue.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Delivery {
    /// The delivery task.
    pub task_id: Uuid,
    /// Its attempt.
    pub retry_count: i32,
    /// What to say: `{channel, event, run_id, task_id, workflow, task, attempt, error, failed_at}`.
    pub input: Value,
}

/// `hatchet.alert_channels`.
pub(crate) async fn list_channels(
    pool: &PgPool,
    tenant: Uuid,
) -> Result<Vec<ChannelRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT kind, enabled, events, settings, secret_fields, created_at, updated_at \
         FROM hatchet.alert_channels(tenant_id => $1)",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await
}

/// What `put_channel` stores (`None`: keep what is stored; for a new channel, the default).
#[derive(Debug, Clone)]
pub(crate) struct PutChannel {
    /// `slack`, `webhook` or `email`.
    pub kind: String,
    /// Settings that are not secret.
    pub settings: Option<Value>,
    /// The secret fields.
    pub secret: Option<Value>,
    /// Whether alerts are sent to it.
    pub enabled: bool,
    /// What it is told about.
    pub events: Vec<String>,
}

/// `hatchet.put_alert_channel`: true when the channel was created.
pub(crate) async fn put_channel(
    pool: &PgPool,
    tenant: Uuid,
    c: &PutChannel,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT hatchet.put_alert_channel(kind => $1, settings => $2, secret => $3, enabled => $4, events => $5, \
                                          tenant_id => $6)",
    )
    .bind(&c.kind)
    .bind(&c.settings)
    .bind(&c.secret)
    .bind(c.enabled)
    .bind(&c.events)
    .bind(tenant)
    .fetch_one(pool)
    .await
}

/// `hatchet.delete_alert_channel`: false if there was none.
pub(crate) async fn delete_channel(
    pool: &PgPool,
    tenant: Uuid,
    kind: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT hatchet.delete_alert_channel(kind => $1, tenant_id => $2)")
        .bind(kind)
        .bind(tenant)
        .fetch_one(pool)
        .await
}

/// `hatchet.alert_channel_secret`: the channel as it is now, or `None` if it was removed.
pub(crate) async fn channel_secret(
    pool: &PgPool,
    tenant: Uuid,
    kind: &str,
) -> Result<Option<ChannelSecret>, sqlx::Error> {
    sqlx::query_as("SELECT enabled, settings, secret FROM hatchet.alert_channel_secret(kind => $1, tenant_id => $2)")
        .bind(kind)
        .bind(tenant)
        .fetch_optional(pool)
        .await
}

/// One alert sent (`hatchet.list_alerts`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct AlertRow {
    /// What it is about: `run:<id>`, `worker:<id>:<last heartbeat>` or `cron:<id>:<tick>`.
    pub subject: String,
    /// The channel kind.
    pub kind: String,
    /// `run_failed`, `worker_died` or `cron_missed`.
    pub event: String,
    /// The delivery run.
    pub task_id: Uuid,
    /// When it was started.
    pub created_at: DateTime<Utc>,
}

/// `hatchet.list_alerts`: the tenant's most recent alerts.
pub(crate) async fn list_alerts(
    pool: &PgPool,
    tenant: Uuid,
    limit: i32,
) -> Result<Vec<AlertRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT subject, kind, event, task_id, created_at FROM hatchet.list_alerts(max_rows => $1, tenant_id => $2)",
    )
    .bind(limit)
    .bind(tenant)
    .fetch_all(pool)
    .await
}

/// `hatchet.alert_tenants`: whose alert queue to consume.
pub(crate) async fn alert_tenants(pool: &PgPool) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT t FROM hatchet.alert_tenants() t")
        .fetch_all(pool)
        .await
}

/// `hatchet.dequeue` on the alert queue.
pub(crate) async fn dequeue(
    pool: &PgPool,
    tenant: Uuid,
    worker: &str,
    n: i32,
) -> Result<Vec<Delivery>, sqlx::Error> {
    sqlx::query_as(
        "SELECT task_id, retry_count, input FROM hatchet.dequeue(queue => $1, worker => $2, n => $3, tenant_id => $4)",
    )
    .bind(ALERT_QUEUE)
    .bind(worker)
    .bind(n)
    .bind(tenant)
    .fetch_all(pool)
    .await
}

/// `hatchet.complete` of a delivery with what was done.
pub(crate) async fn complete(
    pool: &PgPool,
    tenant: Uuid,
    d: &Delivery,
    output: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT hatchet.complete(task_id => $1, retry_count => $2, output => $3, tenant_id => $4)",
    )
    .bind(d.task_id)
    .bind(d.retry_count)
    .bind(output)
    .bind(tenant)
    .execute(pool)
    .await
    .map(|_| ())
}

/// `hatchet.fail` of a delivery: retried with backoff while `retryable` and retries remain.
pub(crate) async fn fail(
    pool: &PgPool,
    tenant: Uuid,
    d: &Delivery,
    error: &str,
    retryable: bool,
) -> Result<String, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT hatchet.fail(task_id => $1, retry_count => $2, error => $3, retryable => $4, tenant_id => $5)",
    )
    .bind(d.task_id)
    .bind(d.retry_count)
    .bind(error)
    .bind(retryable)
    .bind(tenant)
    .fetch_one(pool)
    .await
}
