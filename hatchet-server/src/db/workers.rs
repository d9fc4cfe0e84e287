//! The worker registry and assignment (`sql/workers.sql`): registration, heartbeats, pause, labels, deregistration,
//! acknowledgements and the attempts of reaped workers, `assign`, early slot release, and the worker reads.
//!
//! Every function passes the caller's tenant explicitly; nothing here falls back to the extension's default tenant.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

/// `hatchet.register_worker`: registers (or re-registers, with `worker_id`) a worker and returns its id.
pub(crate) async fn register_worker(
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
pub(crate) async fn heartbeat(
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
pub(crate) async fn deregister_worker(
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

/// `hatchet.acknowledge_attempts`: the workers received these attempts (their STARTED events). Returns how many
/// were newly acknowledged (finished or already acknowledged attempts are skipped).
pub(crate) async fn acknowledge_attempts(
    pool: &PgPool,
    tenant: Uuid,
    task_ids: &[Uuid],
    retry_counts: &[i32],
) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT hatchet.acknowledge_attempts(task_ids => $1, retry_counts => $2, tenant_id => $3)",
    )
    .bind(task_ids)
    .bind(retry_counts)
    .bind(tenant)
    .fetch_one(pool)
    .await
}

/// `hatchet.take_reaped_attempts`: the attempts taken from a worker declared dead, as `(task_id, retry_count)`,
/// returned once so that the worker can be told to cancel them now that it is back.
pub(crate) async fn take_reaped_attempts(
    pool: &PgPool,
    tenant: Uuid,
    worker_id: Uuid,
) -> Result<Vec<(Uuid, i32)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT task_id, retry_count FROM hatchet.take_reaped_attempts(worker_id => $1, tenant_id => $2)",
    )
    .bind(worker_id)
    .bind(tenant)
    .fetch_all(pool)
    .await
}

/// `hatchet.set_worker_paused`.
pub(crate) async fn set_worker_paused(
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
pub(crate) async fn upsert_worker_labels(
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
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Assignment {
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
    /// When the task was first queued (for the queue-to-start histogram).
    pub queued_at: DateTime<Utc>,
    /// For a task of a child run: the run of the task that spawned it.
    pub parent_run_id: Option<Uuid>,
}

/// `hatchet.assign`: gives up to `max_tasks` ready attempts to free slots of these workers. One statement, so one
/// short transaction when run on the pool; pass a transaction to bundle it with completions.
pub(crate) async fn assign<'e>(
    executor: impl PgExecutor<'e>,
    tenant: Uuid,
    worker_ids: &[Uuid],
    max_tasks: i32,
) -> Result<Vec<Assignment>, sqlx::Error> {
    sqlx::query_as(
        "SELECT worker_id, task_id, retry_count, queue, input, additional_metadata, priority, run_id, \
                readable_id, task_inserted_at, queued_at, parent_run_id \
         FROM hatchet.assign(worker_ids => $1, max_tasks => $2, tenant_id => $3)",
    )
    .bind(worker_ids)
    .bind(max_tasks)
    .bind(tenant)
    .fetch_all(executor)
    .await
}

/// `hatchet.try_assign`: [`assign`] with a bounded lock wait: nothing is assigned (and the caller's transaction goes
/// on) when a lock it needs is not free within `lock_wait_ms`, or when the assignment fails in any other way (the
/// database logs a WARNING; the assigner loop takes the work). For assigning in a transaction that made work ready:
/// the trigger never fails because of its assignment.
pub(crate) async fn try_assign<'e>(
    executor: impl PgExecutor<'e>,
    tenant: Uuid,
    worker_ids: &[Uuid],
    max_tasks: i32,
    lock_wait_ms: i32,
) -> Result<Vec<Assignment>, sqlx::Error> {
    sqlx::query_as(
        "SELECT worker_id, task_id, retry_count, queue, input, additional_metadata, priority, run_id, \
                readable_id, task_inserted_at, queued_at, parent_run_id \
         FROM hatchet.try_assign(worker_ids => $1, max_tasks => $2, tenant_id => $3, lock_wait_ms => $4)",
    )
    .bind(worker_ids)
    .bind(max_tasks)
    .bind(tenant)
    .bind(lock_wait_ms)
    .fetch_all(executor)
    .await
}

/// One row of [`assign_batches`]: a member of a batch handed to a worker.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct BatchMember {
    /// The batch (one START_BATCH on the wire).
    pub batch_id: Uuid,
    /// The members' group key ('' without a group key expression).
    pub batch_key: String,
    /// Why the batch was flushed: `size`, `interval` or `bytes`.
    pub trigger_reason: String,
    /// The member's attempt, as [`assign`] returns it.
    #[sqlx(flatten)]
    pub attempt: Assignment,
}

/// `hatchet.assign_batches`: hands out batches of batch tasks to free slots of these workers (one slot per batch).
/// Rows come grouped by batch, in member order (batch_index).
pub(crate) async fn assign_batches<'e>(
    executor: impl PgExecutor<'e>,
    tenant: Uuid,
    worker_ids: &[Uuid],
    max_batches: i32,
) -> Result<Vec<BatchMember>, sqlx::Error> {
    sqlx::query_as(
        "SELECT batch_id, batch_key, trigger_reason, worker_id, task_id, retry_count, \
                queue, input, additional_metadata, priority, run_id, readable_id, task_inserted_at, queued_at, \
                parent_run_id \
         FROM hatchet.assign_batches(worker_ids => $1, max_batches => $2, tenant_id => $3)",
    )
    .bind(worker_ids)
    .bind(max_batches)
    .bind(tenant)
    .fetch_all(executor)
    .await
}

/// `hatchet.batch_attempts`: the members of a batch among `task_ids` still running in it, with their retry counts.
pub(crate) async fn batch_attempts(
    pool: &PgPool,
    tenant: Uuid,
    batch_id: Uuid,
    task_ids: &[Uuid],
) -> Result<Vec<(Uuid, i32)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT task_id, retry_count FROM hatchet.batch_attempts(batch_id => $1, task_ids => $2, tenant_id => $3)",
    )
    .bind(batch_id)
    .bind(task_ids)
    .bind(tenant)
    .fetch_all(pool)
    .await
}

/// `hatchet.release_slot`: frees a running attempt's worker slot early. False if it held none.
pub(crate) async fn release_slot(
    pool: &PgPool,
    tenant: Uuid,
    task_id: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT hatchet.release_slot(task_id => $1, tenant_id => $2)")
        .bind(task_id)
        .bind(tenant)
        .fetch_one(pool)
        .await
}

/// What the registry knows about a worker.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct WorkerRecord {
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
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct WorkerRow {
    /// Worker id.
    pub id: Uuid,
    /// The registry entry.
    #[sqlx(flatten)]
    pub record: WorkerRecord,
    /// Last heartbeat.
    pub last_heartbeat_at: DateTime<Utc>,
    /// Registration time.
    pub created_at: DateTime<Utc>,
    /// Slots in use per slot type.
    pub used: Value,
}

/// `hatchet.list_workers`: the tenant's workers (all, or one), newest first.
pub(crate) async fn list_workers(
    pool: &PgPool,
    tenant: Uuid,
    only: Option<Uuid>,
) -> Result<Vec<WorkerRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, name, is_active, is_paused, labels, actions, slots, used, last_heartbeat_at, created_at \
         FROM hatchet.list_workers(tenant_id => $1, worker_id => $2)",
    )
    .bind(tenant)
    .bind(only)
    .fetch_all(pool)
    .await
}

/// `hatchet.worker`: a worker of this tenant, or `None`.
pub(crate) async fn worker(
    pool: &PgPool,
    tenant: Uuid,
    worker_id: Uuid,
) -> Result<Option<WorkerRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT name, is_active, is_paused, labels, actions, slots \
         FROM hatchet.worker(worker_id => $1, tenant_id => $2)",
    )
    .bind(worker_id)
    .bind(tenant)
    .fetch_optional(pool)
    .await
}
