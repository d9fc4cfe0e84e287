//! Stream chunks (`sql/streams.sql`): what `ctx.put_stream` stores and what a `SubscribeToWorkflowEvents`
//! subscriber reads, see [`crate::dispatch::streams`].

use crate::status::{RunStatus, TaskStatus};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::PgPool;
use uuid::Uuid;

/// `hatchet.put_stream_chunk`: stores one chunk of a running task (a resent `event_index` is stored once).
pub(crate) async fn put_stream_chunk(
    pool: &PgPool,
    tenant: Uuid,
    task_id: Uuid,
    message: &[u8],
    event_index: Option<i64>,
    created_at: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT hatchet.put_stream_chunk(task_id => $1, message => $2, event_index => $3, tenant_id => $4, \
         created_at => $5)",
    )
    .bind(task_id)
    .bind(message)
    .bind(event_index)
    .bind(tenant)
    .bind(created_at)
    .execute(pool)
    .await
    .map(|_| ())
}

/// One row of [`read_stream_chunks`].
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct StreamChunk {
    /// Arrival order within the server's database.
    pub seq: i64,
    /// The task that put it.
    pub task_id: Uuid,
    /// Its attempt.
    pub retry_count: Option<i32>,
    /// The SDK's index of the chunk within the attempt.
    pub event_index: Option<i64>,
    /// The chunk.
    pub message: Vec<u8>,
    /// Old enough that no chunk with a lower `seq` can still commit.
    pub settled: bool,
}

/// `hatchet.read_stream_chunks`: the chunks of a run after `after_seq`, in arrival order.
pub(crate) async fn read_stream_chunks(
    pool: &PgPool,
    tenant: Uuid,
    run_id: Uuid,
    after_seq: i64,
) -> Result<Vec<StreamChunk>, sqlx::Error> {
    sqlx::query_as(
        "SELECT seq, task_id, retry_count, event_index, message, settled \
         FROM hatchet.read_stream_chunks(run_id => $1, after_seq => $2, tenant_id => $3)",
    )
    .bind(run_id)
    .bind(after_seq)
    .bind(tenant)
    .fetch_all(pool)
    .await
}

/// What [`run_stream_state`] returns: the run's status and its created tasks'.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RunStreamState {
    /// The run's status.
    pub status: RunStatus,
    /// Its created tasks, oldest first.
    pub tasks: Vec<TaskStreamState>,
}

/// One task of [`RunStreamState`].
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TaskStreamState {
    /// The task.
    pub task_id: Uuid,
    /// Its status.
    pub status: TaskStatus,
    /// Its current or last attempt.
    pub retry_count: Option<i32>,
    /// The output, once completed.
    pub output: Option<Value>,
    /// The error, once failed or cancelled.
    pub error: Option<String>,
}

/// `hatchet.run_stream_state`: a run's status and its tasks' status, output and error in one round trip. Unknown
/// run: SQLSTATE 42704.
pub(crate) async fn run_stream_state(
    pool: &PgPool,
    tenant: Uuid,
    run_id: Uuid,
) -> Result<RunStreamState, sqlx::Error> {
    let Json(state) =
        sqlx::query_scalar("SELECT hatchet.run_stream_state(run_id => $1, tenant_id => $2)")
            .bind(run_id)
            .bind(tenant)
            .fetch_one(pool)
            .await?;
    Ok(state)
}
