//! The attempt lifecycle and task reads (`sql/tasks.sql`): completion, failure, timeout refresh, cancellation, the
//! running attempt, a task's run, and task logs.
//!
//! Every function passes the caller's tenant explicitly; nothing here falls back to the extension's default tenant.

use super::workers::{assign, Assignment};
use crate::status::TaskStatus;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

/// `hatchet.complete_many`: completes a batch of attempts; stale ones are skipped. Returns how many completed.
pub(crate) async fn complete_many<'e>(
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

/// A batch of completions (parallel arrays, one entry per attempt).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Completions<'a> {
    /// The tasks.
    pub task_ids: &'a [Uuid],
    /// Their attempts.
    pub retry_counts: &'a [i32],
    /// Their outputs.
    pub outputs: &'a [Value],
}

/// One transaction on `conn`: [`complete_many`], then, if anything completed and `assign_to` names workers,
/// [`assign`] of up to `max_tasks` attempts to them (the slots the batch freed are refilled at once). Returns how
/// many completed and what was assigned. If anything fails the whole transaction rolls back.
pub(crate) async fn complete_and_assign(
    conn: &mut PgConnection,
    tenant: Uuid,
    batch: Completions<'_>,
    assign_to: &[Uuid],
    max_tasks: i32,
) -> Result<(i32, Vec<Assignment>), sqlx::Error> {
    let mut tx = sqlx::Connection::begin(conn).await?;
    let completed = complete_many(
        &mut *tx,
        tenant,
        batch.task_ids,
        batch.retry_counts,
        batch.outputs,
    )
    .await?;
    let mut assigned = Vec::new();
    if completed > 0 && !assign_to.is_empty() {
        assigned = assign(&mut *tx, tenant, assign_to, max_tasks).await?;
    }
    tx.commit().await?;
    Ok((completed, assigned))
}

/// `hatchet.fail`: fails an attempt; returns QUEUED (a retry is scheduled) or FAILED. A stale attempt is
/// SQLSTATE 55000. `retry_after_ms` (the delay the task asked for) replaces the task's backoff for this retry.
pub(crate) async fn fail(
    pool: &PgPool,
    tenant: Uuid,
    task_id: Uuid,
    retry_count: i32,
    error: &str,
    retryable: bool,
    retry_after_ms: Option<i64>,
) -> Result<TaskStatus, sqlx::Error> {
    // retry_after is named only when the task asked for a delay, so the plain failure keeps the call it always had.
    let sql = if retry_after_ms.is_some() {
        "SELECT hatchet.fail(task_id => $1, retry_count => $2, error => $3, retryable => $4, tenant_id => $5, \
         retry_after => $6::bigint * interval '1 millisecond')"
    } else {
        "SELECT hatchet.fail(task_id => $1, retry_count => $2, error => $3, retryable => $4, tenant_id => $5)"
    };
    let query = sqlx::query_scalar(sql)
        .bind(task_id)
        .bind(retry_count)
        .bind(error)
        .bind(retryable)
        .bind(tenant);
    match retry_after_ms {
        Some(ms) => query.bind(ms),
        None => query,
    }
    .fetch_one(pool)
    .await
}

/// `hatchet.refresh_timeout`: extends the running attempt's timeout; returns the new `timeout_at`.
pub(crate) async fn refresh_timeout(
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

/// `hatchet.cancel`: cancels a task wherever it is; false if it had already finished.
pub(crate) async fn cancel(
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

/// `hatchet.running_attempt`: the retry_count of a task's running attempt, or `None` if it is not running
/// (RefreshTimeout and ReleaseSlot carry only the task id).
pub(crate) async fn running_attempt(
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

/// `hatchet.task`: the run a task belongs to, or `None` if there is no such task.
pub(crate) async fn run_of_task(
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

/// `hatchet.put_log`: appends a log line of a task.
pub(crate) async fn put_log(
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

/// One log line of [`task_logs`].
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct LogLine {
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
pub(crate) async fn task_logs(
    pool: &PgPool,
    tenant: Uuid,
    task_id: Uuid,
) -> Result<Vec<LogLine>, sqlx::Error> {
    sqlx::query_as(
        "SELECT created_at, retry_count, level, message FROM hatchet.task_logs(task_id => $1, tenant_id => $2)",
    )
    .bind(task_id)
    .bind(tenant)
    .fetch_all(pool)
    .await
}

/// `hatchet.put_spans`: stores OpenTelemetry spans (a JSON array in the shape of `hatchet.otel_spans`) under the
/// tenant; spans already stored are skipped. Returns how many were stored.
pub(crate) async fn put_spans(
    pool: &PgPool,
    tenant: Uuid,
    spans: &Value,
) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("SELECT hatchet.put_spans(spans => $1, tenant_id => $2)")
        .bind(spans)
        .bind(tenant)
        .fetch_one(pool)
        .await
}

/// One span of [`run_trace`], stored or derived by the engine.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct TraceSpan {
    /// Lowercase hex, 32 digits.
    pub trace_id: String,
    /// Lowercase hex, 16 digits.
    pub span_id: String,
    /// The parent's span id, if any.
    pub parent_span_id: Option<String>,
    /// The span's name.
    pub name: String,
    /// UNSPECIFIED, INTERNAL, SERVER, CLIENT, PRODUCER or CONSUMER.
    pub kind: String,
    /// The `service.name` of the span's resource (`hatchet-engine` for the engine's spans).
    pub service_name: String,
    /// UNSET, OK or ERROR.
    pub status_code: String,
    /// The status message, if any.
    pub status_message: Option<String>,
    /// When the span started.
    pub start_time: DateTime<Utc>,
    /// How long it lasted.
    pub duration_ns: i64,
    /// The resource's attributes.
    pub resource_attributes: Value,
    /// The span's attributes.
    pub span_attributes: Value,
    /// The instrumentation scope.
    pub scope_name: Option<String>,
    /// The instrumentation scope's version.
    pub scope_version: Option<String>,
    /// The attempt the span belongs to.
    pub retry_count: i32,
    /// Spans in the whole trace.
    pub total: i64,
}

/// `hatchet.run_trace`: one page of the trace of a run or task.
pub(crate) async fn run_trace(
    pool: &PgPool,
    tenant: Uuid,
    run_id: Uuid,
    offset: i64,
    limit: i64,
) -> Result<Vec<TraceSpan>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM hatchet.run_trace(run_id => $1, \"offset\" => $2::integer, \"limit\" => $3::integer, \
                                         tenant_id => $4)",
    )
    .bind(run_id)
    .bind(offset)
    .bind(limit)
    .bind(tenant)
    .fetch_all(pool)
    .await
}
