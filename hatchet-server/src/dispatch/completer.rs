//! Batches COMPLETED events: every handler queues its completion here and waits; the batcher takes everything
//! queued so far (at once while there is a backlog, else after a 3 ms linger) and, per worker, runs one transaction
//! that completes the batch with
//! `hatchet.complete_many` and assigns that worker its next attempts with `hatchet.assign` (Hatchet's "optimistic
//! scheduling", Oban's "bundled acking"): a busy worker costs well under one transaction per task, and the slots a
//! batch frees are refilled without waiting for the assigner's next round.
//!
//! Why per worker: completing an attempt updates its worker's slot row, and `hatchet.assign` locks the slot rows
//! of the workers it serves (in id order). A transaction that released slots of several workers and then assigned
//! could hold them out of that order while the assigner holds the others: a deadlock. One worker per transaction
//! touches only that worker's rows.
//!
//! A stale attempt (already completed, cancelled or timed out) is skipped by `complete_many`, so a resent
//! COMPLETED succeeds silently. If a batch fails as a whole (one oversized output, or a failed assignment), its
//! items are completed again one by one, without assigning, so one bad item cannot fail the others.

use super::Dispatch;
use crate::db::tasks::{self as db, Completions};
use crate::db::workers::Assignment;
use crate::error::{when_reachable, AppError, OUTAGE_WAIT};
use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::Postgres;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// How long a batch waits for more completions when there is no backlog (see [`run`]).
const IDLE_LINGER: Duration = Duration::from_millis(3);

/// Most completions in one `complete_many` call.
const MAX_BATCH: usize = 500;

/// Most attempts assigned in the transaction that completes a batch.
const ASSIGN_WITH_BATCH: i32 = 100;

/// One COMPLETED event waiting for its batch.
#[derive(Debug)]
struct Completion {
    tenant: Uuid,
    /// The worker that reported it (the SDK's word; the running row decides whose slot is freed).
    worker: Option<Uuid>,
    task_id: Uuid,
    retry_count: i32,
    output: Value,
    reply: oneshot::Sender<Result<(), AppError>>,
}

/// The handlers' side of the batcher.
#[derive(Debug)]
pub(crate) struct Handle {
    tx: mpsc::UnboundedSender<Completion>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Completion>>>,
}

impl Handle {
    pub(super) fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }

    /// Completes an attempt in the next batch and waits for the batch to commit.
    pub(crate) async fn complete(
        &self,
        tenant: Uuid,
        worker: Option<Uuid>,
        task_id: Uuid,
        retry_count: i32,
        output: Value,
    ) -> Result<(), AppError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Completion {
                tenant,
                worker,
                task_id,
                retry_count,
                output,
                reply,
            })
            .map_err(|_| AppError::Unavailable("the server is shutting down".into()))?;
        rx.await
            .map_err(|_| AppError::Unavailable("the server is shutting down".into()))?
    }
}

impl Handle {
    /// Completes several attempts (the members of a batch) in the next batches and waits for all of them; one
    /// result per attempt, in order.
    pub(crate) async fn complete_all(
        &self,
        tenant: Uuid,
        worker: Option<Uuid>,
        attempts: Vec<(Uuid, i32, Value)>,
    ) -> Vec<Result<(), AppError>> {
        let mut waiting = Vec::with_capacity(attempts.len());
        for (task_id, retry_count, output) in attempts {
            let (reply, rx) = oneshot::channel();
            let sent = self.tx.send(Completion {
                tenant,
                worker,
                task_id,
                retry_count,
                output,
                reply,
            });
            waiting.push(sent.ok().map(|()| rx));
        }
        let mut results = Vec::with_capacity(waiting.len());
        for rx in waiting {
            let shutting_down = || AppError::Unavailable("the server is shutting down".into());
            results.push(match rx {
                Some(rx) => rx.await.unwrap_or_else(|_| Err(shutting_down())),
                None => Err(shutting_down()),
            });
        }
        results
    }
}

/// The batcher loop.
pub(crate) async fn run(dispatch: Arc<Dispatch>) {
    let Some(mut rx) = dispatch
        .completer()
        .rx
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    else {
        tracing::error!("the completion batcher was started twice");
        return;
    };
    let shutdown = dispatch.shutdown.clone();
    // The batcher's own connection, kept between batches (see `complete_and_assign`); dropped on any error.
    let mut conn: Option<PoolConnection<Postgres>> = None;
    let mut backlog = true;
    loop {
        let first = tokio::select! {
            item = rx.recv() => match item { Some(item) => item, None => return },
            () = shutdown.cancelled() => return,
        };
        // Take what is already waiting (the completions that arrived while the previous batch committed). With a
        // backlog (the previous batch's own assignment found work) go at once: the freed slots are what the
        // waiting tasks need. Without one, nothing waits for these slots, so linger a little: fewer, larger
        // completion transactions hold the worker's slot rows less often, and the assigner (a new task's path
        // to a worker) waits less for them.
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        if !backlog {
            let deadline = tokio::time::Instant::now() + IDLE_LINGER;
            while batch.len() < MAX_BATCH {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(item)) => batch.push(item),
                    Ok(None) | Err(_) => break,
                }
            }
        }
        let mut by_worker: HashMap<(Uuid, Option<Uuid>), Vec<Completion>> = HashMap::new();
        for item in batch {
            by_worker
                .entry((item.tenant, item.worker))
                .or_default()
                .push(item);
        }
        backlog = false;
        for ((tenant, worker), items) in by_worker {
            backlog |= complete_batch(&dispatch, &mut conn, tenant, worker, items).await;
        }
        dispatch.wake_runs();
    }
}

/// Completes one worker's batch; true if its transaction assigned work (there is a backlog) or failed (in doubt).
async fn complete_batch(
    dispatch: &Dispatch,
    conn: &mut Option<PoolConnection<Postgres>>,
    tenant: Uuid,
    worker: Option<Uuid>,
    items: Vec<Completion>,
) -> bool {
    let task_ids: Vec<Uuid> = items.iter().map(|c| c.task_id).collect();
    let retry_counts: Vec<i32> = items.iter().map(|c| c.retry_count).collect();
    let outputs: Vec<Value> = items.iter().map(|c| c.output.clone()).collect();
    let batch = Completions {
        task_ids: &task_ids,
        retry_counts: &retry_counts,
        outputs: &outputs,
    };
    let mut refilled = false;
    let mut backlog = true;
    let started = std::time::Instant::now();
    let result = complete_and_assign(dispatch, conn, tenant, worker, batch).await;
    tracing::debug!(
        size = items.len(),
        took_us = started.elapsed().as_micros() as u64,
        "completion batch"
    );
    if result.is_err() {
        // The connection may be the problem: take a fresh one next time.
        *conn = None;
    }
    match result {
        Ok(done) => {
            dispatch.metrics.completed(tenant, done.completed);
            super::assigner::record(dispatch, tenant, &done.assigned);
            refilled = done.refilled;
            backlog = !done.assigned.is_empty();
            for item in items {
                let _ = item.reply.send(Ok(()));
            }
        }
        // The transaction rolled back as a whole (completions and assignments alike): complete the items one by
        // one without assigning, so neither one bad item nor a failed assignment can fail the others. An item the
        // failed transaction did complete after all (a commit whose answer was lost) is skipped as stale.
        Err(err) => {
            tracing::warn!(error = %err, size = items.len(), "completion batch failed; completing its items one by one");
            for item in items {
                let result = complete_one_when_reachable(dispatch, tenant, &item).await;
                let _ = item.reply.send(result);
            }
        }
    }
    // The assigner only needs to run when this transaction could not have refilled every slot it freed: the
    // in-transaction assignment did not run (or failed), it handed out a full batch (more may be ready), or the
    // tenant has other workers here that the completions may have given work (a DAG's next tasks).
    if !refilled {
        dispatch.wake_assigner();
    }
    backlog
}

/// [`complete_one`], waiting out a database outage (up to [`OUTAGE_WAIT`]) instead of failing: the SDK retries a
/// failed COMPLETED only for about 15 s and then gives it up, and the attempt would stay RUNNING until its execution
/// timeout and run again (the chaos suite's postmaster_kill_long found it). The worker's call simply takes longer.
async fn complete_one_when_reachable(
    dispatch: &Dispatch,
    tenant: Uuid,
    item: &Completion,
) -> Result<(), AppError> {
    when_reachable(OUTAGE_WAIT, Some(&dispatch.shutdown), "completion", || {
        complete_one(dispatch, tenant, item)
    })
    .await
}

async fn complete_one(
    dispatch: &Dispatch,
    tenant: Uuid,
    item: &Completion,
) -> Result<(), AppError> {
    match db::complete_many(
        &dispatch.pool,
        tenant,
        &[item.task_id],
        &[item.retry_count],
        std::slice::from_ref(&item.output),
    )
    .await
    {
        Ok(n) => {
            dispatch.metrics.completed(tenant, n);
            Ok(())
        }
        Err(err) => {
            // Postgres puts the why of an unstorable value in the detail ("\u0000 cannot be converted to text.").
            let detail = err
                .as_database_error()
                .and_then(|e| e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>())
                .and_then(|e| e.detail())
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            match AppError::from(err) {
                AppError::ResourceExhausted(msg) => {
                    let reason = format!("OutputTooLarge: {msg}");
                    fail_unstorable(dispatch, tenant, item, &reason).await
                }
                AppError::InvalidArgument(msg) => {
                    let reason = format!("InvalidOutput: {msg}{detail}");
                    fail_unstorable(dispatch, tenant, item, &reason).await
                }
                other => Err(other),
            }
        }
    }
}

/// An output the extension refuses (over `hatchet.max_payload_bytes`, or holding what Postgres cannot store, such as
/// a `\u0000`) fails the attempt for good with the reason, instead of leaving the worker to resend it until the
/// attempt times out. The COMPLETED is acknowledged only once that failure is stored (or the attempt had already
/// ended: then there is nothing left to fail); if storing it fails, the error goes back to the worker, which sends the
/// event again.
async fn fail_unstorable(
    dispatch: &Dispatch,
    tenant: Uuid,
    item: &Completion,
    reason: &str,
) -> Result<(), AppError> {
    tracing::warn!(task = %item.task_id, attempt = item.retry_count, %reason, "output refused; failing the attempt");
    match db::fail(
        &dispatch.pool,
        tenant,
        item.task_id,
        item.retry_count,
        reason,
        false,
        None,
    )
    .await
    {
        Ok(_) => Ok(()),
        Err(err) => match AppError::from(err) {
            // Stale: the attempt was already finished, cancelled or timed out.
            AppError::FailedPrecondition(_) => Ok(()),
            other => Err(other),
        },
    }
}

/// What one completion transaction did.
struct Done {
    completed: i32,
    assigned: Vec<Assignment>,
    /// The transaction's own assignment covered every slot the batch could have freed (see [`complete_batch`]).
    refilled: bool,
}

/// One transaction ([`db::complete_and_assign`]): complete the batch, then assign the reporting worker its next
/// attempts, if its stream is on this server. Four round trips (BEGIN, complete_many, assign, COMMIT) on the
/// batcher's own connection: the worker's slot rows stay locked from `complete_many` to COMMIT, so every round trip
/// saved here is time the assigner does not wait. If anything fails, the whole transaction rolls back and the caller
/// completes the items one by one (without assigning).
async fn complete_and_assign(
    dispatch: &Dispatch,
    conn: &mut Option<PoolConnection<Postgres>>,
    tenant: Uuid,
    worker: Option<Uuid>,
    batch: Completions<'_>,
) -> Result<Done, sqlx::Error> {
    let conn = match conn {
        Some(conn) => conn,
        None => conn.insert(dispatch.pool.acquire().await?),
    };
    let connected = dispatch.connected_of(tenant);
    let workers: Vec<Uuid> = worker
        .filter(|w| connected.contains(w))
        .into_iter()
        .collect();
    let (completed, assigned) =
        db::complete_and_assign(conn, tenant, batch, &workers, ASSIGN_WITH_BATCH).await?;
    // Nothing completed means nothing was freed: no slot to refill and no reason for the assigner to run.
    let refilled = if completed > 0 && !workers.is_empty() {
        connected.len() == 1 && assigned.len() < ASSIGN_WITH_BATCH as usize
    } else {
        completed == 0
    };
    Ok(Done {
        completed,
        assigned,
        refilled,
    })
}
