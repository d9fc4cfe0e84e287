//! Durable execution (`sql/durable.sql`): the event log of durable tasks behind the `V1Dispatcher.DurableTask`
//! stream, see [`crate::grpc`]'s `dispatcher_v1`. Every call names the task and the invocation asking (the attempt's
//! `retry_count + 1`); a call from any other invocation than the running one is refused by the extension (stale).

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// Where an entry sits in a durable task's log (the protocol's `DurableEventLogEntryRef` without task and
/// invocation), or why it could not be appended.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Appended {
    /// The branch of the log.
    pub branch_id: i64,
    /// The node: the n-th entry an invocation asks for is node n.
    pub node_id: i64,
    /// Set when a replay asked for something else than the log holds at this node (nothing was appended).
    pub nondeterminism: Option<String>,
}

/// What [`memo`] found.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Memo {
    /// The entry.
    #[sqlx(flatten)]
    pub at: Appended,
    /// The log already holds a value for this entry (a replay): `result` is it.
    pub already_existed: bool,
    /// The stored value.
    pub result: Option<Vec<u8>>,
}

/// `hatchet.durable_memo`: the next memo entry of the log, with its value when a replay finds one.
pub(crate) async fn memo(
    pool: &PgPool,
    tenant: Uuid,
    task_id: Uuid,
    invocation: i32,
    key: &[u8],
    payload: Option<&[u8]>,
) -> Result<Memo, sqlx::Error> {
    sqlx::query_as(
        "SELECT branch_id, node_id, nondeterminism, already_existed, result \
         FROM hatchet.durable_memo(task_id => $1, invocation => $2, key => $3, payload => $4, tenant_id => $5)",
    )
    .bind(task_id)
    .bind(invocation)
    .bind(key)
    .bind(payload)
    .bind(tenant)
    .fetch_one(pool)
    .await
}

/// `hatchet.durable_complete_memo`: stores the value the worker computed (the first value stays).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn complete_memo(
    pool: &PgPool,
    tenant: Uuid,
    task_id: Uuid,
    invocation: i32,
    branch_id: i64,
    node_id: i64,
    key: &[u8],
    payload: &[u8],
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT hatchet.durable_complete_memo(task_id => $1, invocation => $2, branch_id => $3, node_id => $4, \
                                              key => $5, payload => $6, tenant_id => $7)",
    )
    .bind(task_id)
    .bind(invocation)
    .bind(branch_id)
    .bind(node_id)
    .bind(key)
    .bind(payload)
    .bind(tenant)
    .fetch_one(pool)
    .await
}

/// `hatchet.durable_wait_for`: the next wait entry; `conditions` is the JSON array the extension documents
/// (`{type: "sleep" | "event", group, data_key, sleep_for | key, scope, expression, since}`).
pub(crate) async fn wait_for(
    pool: &PgPool,
    tenant: Uuid,
    task_id: Uuid,
    invocation: i32,
    conditions: &Value,
    label: Option<&str>,
) -> Result<Appended, sqlx::Error> {
    sqlx::query_as(
        "SELECT branch_id, node_id, nondeterminism \
         FROM hatchet.durable_wait_for(task_id => $1, invocation => $2, conditions => $3, label => $4, \
                                       tenant_id => $5)",
    )
    .bind(task_id)
    .bind(invocation)
    .bind(conditions)
    .bind(label)
    .bind(tenant)
    .fetch_one(pool)
    .await
}

/// One row of [`trigger_runs`].
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct RunEntry {
    /// The entry.
    #[sqlx(flatten)]
    pub at: Appended,
    /// The child run of the entry (`None` only with `nondeterminism`).
    pub run_id: Option<Uuid>,
}

/// `hatchet.durable_trigger_runs`: one run entry per trigger (a JSON array of `{name, input, additional_metadata,
/// priority, child_key, desired_worker_id}`), each child started once per entry.
pub(crate) async fn trigger_runs(
    pool: &PgPool,
    tenant: Uuid,
    task_id: Uuid,
    invocation: i32,
    triggers: &Value,
) -> Result<Vec<RunEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT branch_id, node_id, nondeterminism, run_id \
         FROM hatchet.durable_trigger_runs(task_id => $1, invocation => $2, triggers => $3, tenant_id => $4)",
    )
    .bind(task_id)
    .bind(invocation)
    .bind(triggers)
    .bind(tenant)
    .fetch_all(pool)
    .await
}

/// One satisfied entry, from [`completed`].
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Completed {
    /// The durable task.
    pub task_id: Uuid,
    /// The invocation that asked (echoed back).
    pub invocation: i32,
    /// The branch.
    pub branch_id: i64,
    /// The node.
    pub node_id: i64,
    /// The result bytes (JSON text) for the SDK.
    pub result: Option<Vec<u8>>,
    /// The entry failed (a child run failed, a condition could not be evaluated).
    pub is_failure: bool,
    /// Why it failed.
    pub error: Option<String>,
    /// Its place (1, 2, 3, ...) in the order the waits and child runs of the task's log were satisfied; none for a
    /// memo.
    pub satisfied_order: Option<i64>,
}

/// An entry a worker waits for: (task, invocation, branch, node).
pub(crate) type EntryRef = (Uuid, i32, i64, i64);

/// `hatchet.durable_completed`: which of these entries are satisfied and handed out now, in satisfied order, with
/// their results.
pub(crate) async fn completed(
    pool: &PgPool,
    tenant: Uuid,
    refs: &[EntryRef],
) -> Result<Vec<Completed>, sqlx::Error> {
    let refs: Vec<Value> = refs
        .iter()
        .map(|(task, invocation, branch, node)| {
            serde_json::json!({"task_id": task, "invocation": invocation, "branch_id": branch, "node_id": node})
        })
        .collect();
    sqlx::query_as(
        "SELECT task_id, invocation, branch_id, node_id, result, is_failure, error, satisfied_order \
         FROM hatchet.durable_completed(refs => $1, tenant_id => $2)",
    )
    .bind(Value::Array(refs))
    .bind(tenant)
    .fetch_all(pool)
    .await
}

/// An invocation a worker still runs that its task has moved on from, from [`stale`].
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Stale {
    /// The durable task.
    pub task_id: Uuid,
    /// The stale invocation.
    pub invocation: i32,
    /// What the task is on now, for the worker's log.
    pub reason: String,
}

/// `hatchet.durable_stale`: which of these (task, invocation) pairs their task has moved on from.
pub(crate) async fn stale(
    pool: &PgPool,
    tenant: Uuid,
    invocations: &[(Uuid, i32)],
) -> Result<Vec<Stale>, sqlx::Error> {
    let refs: Vec<Value> = invocations
        .iter()
        .map(|(task, invocation)| serde_json::json!({"task_id": task, "invocation": invocation}))
        .collect();
    sqlx::query_as(
        "SELECT task_id, invocation, reason FROM hatchet.durable_stale(refs => $1, tenant_id => $2)",
    )
    .bind(Value::Array(refs))
    .bind(tenant)
    .fetch_all(pool)
    .await
}

/// `hatchet.durable_evict`: the invocation gives its slot back; returns the attempt that will restore it.
pub(crate) async fn evict(
    pool: &PgPool,
    tenant: Uuid,
    task_id: Uuid,
    invocation: i32,
    reason: Option<&str>,
) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT hatchet.durable_evict(task_id => $1, invocation => $2, reason => $3, tenant_id => $4)",
    )
    .bind(task_id)
    .bind(invocation)
    .bind(reason)
    .bind(tenant)
    .fetch_one(pool)
    .await
}

/// `hatchet.restore_evicted`: queues an evicted task now; false if it is not evicted.
pub(crate) async fn restore_evicted(
    pool: &PgPool,
    tenant: Uuid,
    task_id: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT hatchet.restore_evicted(task_id => $1, tenant_id => $2)")
        .bind(task_id)
        .bind(tenant)
        .fetch_one(pool)
        .await
}

/// `hatchet.register_durable_event`: the legacy wait of the running attempt, named by its signal key (armed once
/// per key); returns the entry's node.
pub(crate) async fn register_durable_event(
    pool: &PgPool,
    tenant: Uuid,
    task_id: Uuid,
    signal_key: &str,
    conditions: &Value,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT hatchet.register_durable_event(task_id => $1, signal_key => $2, conditions => $3, tenant_id => $4)",
    )
    .bind(task_id)
    .bind(signal_key)
    .bind(conditions)
    .bind(tenant)
    .fetch_one(pool)
    .await
}

/// `hatchet.durable_event_result`: the result bytes of a legacy wait once satisfied.
pub(crate) async fn durable_event_result(
    pool: &PgPool,
    tenant: Uuid,
    task_id: Uuid,
    signal_key: &str,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT hatchet.durable_event_result(task_id => $1, signal_key => $2, tenant_id => $3)",
    )
    .bind(task_id)
    .bind(signal_key)
    .bind(tenant)
    .fetch_one(pool)
    .await
}

/// `hatchet.branch_durable_task`: a new branch of the task's log from node `node_id` of `branch_id`, and the task
/// runs again on it; returns the new branch. No such node or branch: SQLSTATE 42704.
pub(crate) async fn branch_durable_task(
    pool: &PgPool,
    tenant: Uuid,
    task_id: Uuid,
    node_id: i64,
    branch_id: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT new_branch_id FROM hatchet.branch_durable_task(task_id => $1, node_id => $2, branch_id => $3, \
                                                              tenant_id => $4)",
    )
    .bind(task_id)
    .bind(node_id)
    .bind(branch_id)
    .bind(tenant)
    .fetch_one(pool)
    .await
}
