//! The worker loop: registry, assignment and the attempt lifecycle (`sql/flow.sql`, `sql/api.sql`).
//!
//! Every function passes the caller's tenant explicitly; nothing here falls back to the extension's default tenant.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgExecutor, PgPool, Row};
use uuid::Uuid;

/// `hatchet.register_worker`: registers (or re-registers, with `worker_id`) a worker and returns its id.
pub async fn register_worker(
    pool: &PgPool,
    tenant: Uuid,
    name: &str,
    actions: &[String],
    slots: &Value,
    labels: &Value,
    worker_id: Option<Uuid>,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT hatchet.register_worker(name => $1, actions => $2, slots => $3, labels => $4, \
                                        tenant_id => $5, worker_id => $6)",
    )
    .bind(name)
    .bind(actions)
    .bind(slots)
    .bind(labels)
    .bind(tenant)
    .bind(worker_id)
    .fetch_one(pool)
    .await
}

/// `hatchet.heartbeat`: how many of these workers are alive (a dead worker's heartbeat counts 0).
pub async fn heartbeat(
    pool: &PgPool,
    tenant: Uuid,
    worker_ids: &[Uuid],
) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("SELECT hatchet.heartbeat(worker_ids => $1, tenant_id => $2)")
        .bind(worker_ids)
        .bind(tenant)
        .fetch_one(pool)
        .await
}

/// `hatchet.deregister_worker`: takes a worker out of service; its running attempts are retried elsewhere.
pub async fn deregister_worker(
    pool: &PgPool,
    tenant: Uuid,
    worker_id: Uuid,
    reason: &str,
) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT hatchet.deregister_worker(worker_id => $1, reason => $2, tenant_id => $3)",
    )
    .bind(worker_id)
    .bind(reason)
    .bind(tenant)
    .fetch_one(pool)
    .await
}

/// `hatchet.set_worker_paused`.
pub async fn set_worker_paused(
    pool: &PgPool,
    tenant: Uuid,
    worker_id: Uuid,
    paused: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT hatchet.set_worker_paused(worker_id => $1, paused => $2, tenant_id => $3)")
        .bind(worker_id)
        .bind(paused)
        .bind(tenant)
        .execute(pool)
        .await
        .map(|_| ())
}

/// `hatchet.upsert_worker_labels`: merges labels into a worker's label set.
pub async fn upsert_worker_labels(
    pool: &PgPool,
    tenant: Uuid,
    worker_id: Uuid,
    labels: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT hatchet.upsert_worker_labels(worker_id => $1, labels => $2, tenant_id => $3)",
    )
    .bind(worker_id)
    .bind(labels)
    .bind(tenant)
    .execute(pool)
    .await
    .map(|_| ())
}

/// One row of [`assign`]: an attempt handed to a worker.
#[derive(Debug, Clone)]
pub struct Assignment {
    /// The worker that got it.
    pub worker_id: Uuid,
    /// The task's public id (Hatchet's task_run_external_id).
    pub task_id: Uuid,
    /// The attempt number.
    pub retry_count: i32,
    /// The queue, which is the worker's action id.
    pub queue: String,
    /// The task input: for a workflow task already the SDK's action payload (`{"input", "parents", ...}`).
    pub input: Value,
    /// Additional metadata given at trigger time.
    pub additional_metadata: Value,
    /// 1..3 (4 for retries).
    pub priority: i32,
    /// The workflow run, or `None` for a task enqueued on its own with `hatchet.enqueue`.
    pub run_id: Option<Uuid>,
    /// The task's readable id within its workflow.
    pub readable_id: Option<String>,
    /// When the task row was created (partition key).
    pub task_inserted_at: DateTime<Utc>,
    /// When the attempt times out unless refreshed.
    pub timeout_at: DateTime<Utc>,
    /// When the task was first queued (for the queue-to-start histogram).
    pub queued_at: DateTime<Utc>,
}

/// `hatchet.assign`: gives up to `max_tasks` ready attempts to free slots of these workers. One statement, so one
/// short transaction when run on the pool; pass a transaction to bundle it with completions.
pub async fn assign<'e>(
    executor: impl PgExecutor<'e>,
    tenant: Uuid,
    worker_ids: &[Uuid],
    max_tasks: i32,
) -> Result<Vec<Assignment>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT worker_id, task_id, retry_count, queue, input, additional_metadata, priority, run_id, \
                readable_id, task_inserted_at, timeout_at, queued_at \
         FROM hatchet.assign(worker_ids => $1, max_tasks => $2, tenant_id => $3)",
    )
    .bind(worker_ids)
    .bind(max_tasks)
    .bind(tenant)
    .fetch_all(executor)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Assignment {
                worker_id: r.try_get("worker_id")?,
                task_id: r.try_get("task_id")?,
                retry_count: r.try_get("retry_count")?,
                queue: r.try_get("queue")?,
                input: r.try_get("input")?,
                additional_metadata: r.try_get("additional_metadata")?,
                priority: r.try_get("priority")?,
                run_id: r.try_get("run_id")?,
                readable_id: r.try_get("readable_id")?,
                task_inserted_at: r.try_get("task_inserted_at")?,
                timeout_at: r.try_get("timeout_at")?,
                queued_at: r.try_get("queued_at")?,
            })
        })
        .collect()
}

/// `hatchet.complete_many`: completes a batch of attempts; stale ones are skipped. Returns how many completed.
pub async fn complete_many<'e>(
    executor: impl PgExecutor<'e>,
    tenant: Uuid,
    task_ids: &[Uuid],
    retry_counts: &[i32],
    outputs: &[Value],
) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT hatchet.complete_many(task_ids => $1, retry_counts => $2, outputs => $3, tenant_id => $4)",
    )
    .bind(task_ids)
    .bind(retry_counts)
    .bind(outputs)
    .bind(tenant)
    .fetch_one(executor)
    .await
}

/// `hatchet.fail`: fails an attempt; returns `QUEUED` (a retry is scheduled) or `FAILED`. A stale attempt is
/// SQLSTATE 55000.
pub async fn fail(
    pool: &PgPool,
    tenant: Uuid,
    task_id: Uuid,
    retry_count: i32,
    error: &str,
    retryable: bool,
) -> Result<String, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT hatchet.fail(task_id => $1, retry_count => $2, error => $3, retryable => $4, tenant_id => $5)",
    )
    .bind(task_id)
    .bind(retry_count)
    .bind(error)
    .bind(retryable)
    .bind(tenant)
    .fetch_one(pool)
    .await
}

/// `hatchet.refresh_timeout`: extends the running attempt's timeout; returns the new `timeout_at`.
pub async fn refresh_timeout(
    pool: &PgPool,
    tenant: Uuid,
    task_id: Uuid,
    retry_count: i32,
    by: &str,
) -> Result<DateTime<Utc>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT hatchet.refresh_timeout(task_id => $1, retry_count => $2, by => $3, tenant_id => $4)",
    )
    .bind(task_id)
    .bind(retry_count)
    .bind(by)
    .bind(tenant)
    .fetch_one(pool)
    .await
}

/// `hatchet.release_slot`: frees a running attempt's worker slot early. False if it held none.
pub async fn release_slot(pool: &PgPool, tenant: Uuid, task_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT hatchet.release_slot(task_id => $1, tenant_id => $2)")
        .bind(task_id)
        .bind(tenant)
        .fetch_one(pool)
        .await
}

/// `hatchet.cancel`: cancels a task wherever it is; false if it had already finished.
pub async fn cancel_task(
    pool: &PgPool,
    tenant: Uuid,
    task_id: Uuid,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT hatchet.cancel(task_id => $1, tenant_id => $2, reason => $3)")
        .bind(task_id)
        .bind(tenant)
        .bind(reason)
        .fetch_one(pool)
        .await
}

/// `hatchet.put_log`: appends a log line of a task.
pub async fn put_log(
    pool: &PgPool,
    tenant: Uuid,
    task_id: Uuid,
    message: &str,
    level: Option<&str>,
    retry_count: Option<i32>,
    created_at: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT hatchet.put_log(task_id => $1, message => $2, level => coalesce($3, 'INFO'), \
                                retry_count => $4, created_at => $5, tenant_id => $6)",
    )
    .bind(task_id)
    .bind(message)
    .bind(level)
    .bind(retry_count)
    .bind(created_at)
    .bind(tenant)
    .execute(pool)
    .await
    .map(|_| ())
}

/// `hatchet.put_rate_limit`: creates or resets a static rate limit.
pub async fn put_rate_limit(
    pool: &PgPool,
    tenant: Uuid,
    key: &str,
    limit: i32,
    duration: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT hatchet.put_rate_limit(key => $1, \"limit\" => $2, duration => $3, tenant_id => $4)",
    )
    .bind(key)
    .bind(limit)
    .bind(duration)
    .bind(tenant)
    .execute(pool)
    .await
    .map(|_| ())
}

/// One log line of [`task_logs`].
#[derive(Debug, Clone)]
pub struct LogLine {
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// The attempt that wrote it.
    pub retry_count: i32,
    /// DEBUG, INFO, WARN or ERROR.
    pub level: String,
    /// The line.
    pub message: String,
}

/// `hatchet.task_logs`: a task's log lines, oldest first.
pub async fn task_logs(
    pool: &PgPool,
    tenant: Uuid,
    task_id: Uuid,
) -> Result<Vec<LogLine>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT created_at, retry_count, level, message FROM hatchet.task_logs(task_id => $1, tenant_id => $2)",
    )
    .bind(task_id)
    .bind(tenant)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(LogLine {
                created_at: r.try_get("created_at")?,
                retry_count: r.try_get("retry_count")?,
                level: r.try_get("level")?,
                message: r.try_get("message")?,
            })
        })
        .collect()
}

/// `hatchet.pause_rate_limit`: no task takes units of the limit before `until` (`None` or a past time unpauses it);
/// returns the time it is paused until. Unknown key: SQLSTATE 42704.
pub async fn pause_rate_limit(
    pool: &PgPool,
    tenant: Uuid,
    key: &str,
    until: Option<DateTime<Utc>>,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT hatchet.pause_rate_limit(key => $1, paused_until => $2, tenant_id => $3)",
    )
    .bind(key)
    .bind(until)
    .bind(tenant)
    .fetch_one(pool)
    .await
}

/// A rate limit's state (`hatchet.list_rate_limits`).
#[derive(Debug, Clone)]
pub struct RateLimitRow {
    /// Key.
    pub key: String,
    /// Units per window.
    pub limit_value: i32,
    /// Units left now (a window that has passed shows as refilled).
    pub remaining: i32,
    /// Window length, as Postgres prints an interval.
    pub window: String,
    /// Start of the current window.
    pub last_refill: DateTime<Utc>,
    /// While paused: until when.
    pub paused_until: Option<DateTime<Utc>>,
}

/// `hatchet.list_rate_limits`: the tenant's rate limits by key (those whose key contains `search`).
pub async fn list_rate_limits(
    pool: &PgPool,
    tenant: Uuid,
    search: Option<&str>,
) -> Result<Vec<RateLimitRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT key, limit_value, remaining, \"window\", last_refill, paused_until \
         FROM hatchet.list_rate_limits(search => $1, tenant_id => $2)",
    )
    .bind(search)
    .bind(tenant)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(RateLimitRow {
                key: r.try_get("key")?,
                limit_value: r.try_get("limit_value")?,
                remaining: r.try_get("remaining")?,
                window: r.try_get("window")?,
                last_refill: r.try_get("last_refill")?,
                paused_until: r.try_get("paused_until")?,
            })
        })
        .collect()
}

/// What the registry knows about a worker.
#[derive(Debug, Clone)]
pub struct WorkerRecord {
    /// Name given at registration.
    pub name: String,
    /// False once it unsubscribed or was reaped for missing heartbeats.
    pub is_active: bool,
    /// Paused workers get no new assignments.
    pub is_paused: bool,
    /// Label set (`{key: value}`).
    pub labels: Value,
    /// The actions it serves.
    pub actions: Vec<String>,
    /// Capacity per slot type (`{"default": 100}`).
    pub slots: Value,
}

/// A registered worker as the REST API shows it (`hatchet.list_workers`).
#[derive(Debug, Clone)]
pub struct WorkerRow {
    /// Worker id.
    pub id: Uuid,
    /// The registry entry.
    pub record: WorkerRecord,
    /// Last heartbeat.
    pub last_heartbeat_at: DateTime<Utc>,
    /// Registration time.
    pub created_at: DateTime<Utc>,
    /// Slots in use per slot type.
    pub used: Value,
}

fn worker_row(r: &sqlx::postgres::PgRow) -> Result<WorkerRow, sqlx::Error> {
    Ok(WorkerRow {
        id: r.try_get("id")?,
        last_heartbeat_at: r.try_get("last_heartbeat_at")?,
        created_at: r.try_get("created_at")?,
        used: r.try_get("used")?,
        record: WorkerRecord {
            name: r.try_get("name")?,
            is_active: r.try_get("is_active")?,
            is_paused: r.try_get("is_paused")?,
            labels: r.try_get("labels")?,
            actions: r.try_get("actions")?,
            slots: r.try_get("slots")?,
        },
    })
}

const WORKER_COLUMNS: &str =
    "id, name, is_active, is_paused, labels, actions, slots, used, last_heartbeat_at, created_at";

/// `hatchet.list_workers`: the tenant's workers (all, or one), newest first.
pub async fn list_workers(
    pool: &PgPool,
    tenant: Uuid,
    only: Option<Uuid>,
) -> Result<Vec<WorkerRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {WORKER_COLUMNS} FROM hatchet.list_workers(tenant_id => $1, worker_id => $2)"
    );
    // Built from a constant column list; the values are bind parameters.
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(only)
        .fetch_all(pool)
        .await?;
    rows.iter().map(worker_row).collect()
}

/// `hatchet.worker`: a worker of this tenant, or `None`.
pub async fn worker_record(
    pool: &PgPool,
    tenant: Uuid,
    worker_id: Uuid,
) -> Result<Option<WorkerRecord>, sqlx::Error> {
    let sql =
        format!("SELECT {WORKER_COLUMNS} FROM hatchet.worker(worker_id => $1, tenant_id => $2)");
    // Built from a constant column list; the values are bind parameters.
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(worker_id)
        .bind(tenant)
        .fetch_optional(pool)
        .await?;
    row.as_ref()
        .map(|r| worker_row(r).map(|w| w.record))
        .transpose()
}

/// `hatchet.running_attempt`: the retry_count of a task's running attempt, or `None` if it is not running
/// (RefreshTimeout and ReleaseSlot carry only the task id).
pub async fn running_retry_count(
    pool: &PgPool,
    tenant: Uuid,
    task_id: Uuid,
) -> Result<Option<i32>, sqlx::Error> {
    sqlx::query_scalar("SELECT hatchet.running_attempt(task_id => $1, tenant_id => $2)")
        .bind(task_id)
        .bind(tenant)
        .fetch_one(pool)
        .await
}
