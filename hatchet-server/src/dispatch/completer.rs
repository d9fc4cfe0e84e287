//! Batches COMPLETED events: every handler queues its completion here and waits; the batcher collects what
//! arrives within a few milliseconds and, per worker, runs one transaction that completes the batch with
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
//! COMPLETED succeeds silently. If a batch fails as a whole (one oversized output, for example), its items are
//! retried one by one so one bad item cannot fail the others.

use crate::db::workers::{self as db, Assignment};
use crate::{AppError, AppState};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// How long the batcher waits for more completions after the first one of a batch.
const BATCH_WINDOW: Duration = Duration::from_millis(3);

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
pub struct Handle {
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
    pub async fn complete(
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

/// The batcher loop.
pub async fn run(state: AppState) {
    let Some(mut rx) = state
        .dispatch
        .completer()
        .rx
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    else {
        tracing::error!("the completion batcher was started twice");
        return;
    };
    let shutdown = state.shutdown.clone();
    loop {
        let first = tokio::select! {
            item = rx.recv() => match item { Some(item) => item, None => return },
            () = shutdown.cancelled() => return,
        };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(item)) => batch.push(item),
                Ok(None) | Err(_) => break,
            }
        }
        let mut by_worker: HashMap<(Uuid, Option<Uuid>), Vec<Completion>> = HashMap::new();
        for item in batch {
            by_worker
                .entry((item.tenant, item.worker))
                .or_default()
                .push(item);
        }
        for ((tenant, worker), items) in by_worker {
            complete_batch(&state, tenant, worker, items).await;
        }
        state.dispatch.wake_runs();
    }
}

async fn complete_batch(
    state: &AppState,
    tenant: Uuid,
    worker: Option<Uuid>,
    items: Vec<Completion>,
) {
    let task_ids: Vec<Uuid> = items.iter().map(|c| c.task_id).collect();
    let retry_counts: Vec<i32> = items.iter().map(|c| c.retry_count).collect();
    let outputs: Vec<Value> = items.iter().map(|c| c.output.clone()).collect();
    match complete_and_assign(state, tenant, worker, &task_ids, &retry_counts, &outputs).await {
        Ok((completed, assigned)) => {
            state.metrics.completions.inc_by(completed.max(0) as u64);
            super::assigner::record(state, tenant, &assigned);
            for item in items {
                let _ = item.reply.send(Ok(()));
            }
        }
        Err(err) if items.len() > 1 => {
            tracing::warn!(error = %err, size = items.len(), "completion batch failed; completing its items one by one");
            for item in items {
                let result = complete_one(state, tenant, &item).await;
                let _ = item.reply.send(result);
            }
        }
        Err(err) => {
            let item = items.into_iter().next().expect("one item");
            let result = match AppError::from(err) {
                AppError::ResourceExhausted(msg) => {
                    fail_oversized(state, tenant, &item, &msg).await
                }
                other => Err(other),
            };
            let _ = item.reply.send(result);
        }
    }
    state.dispatch.wake_assigner();
}

async fn complete_one(state: &AppState, tenant: Uuid, item: &Completion) -> Result<(), AppError> {
    match db::complete_many(
        &state.pool,
        tenant,
        &[item.task_id],
        &[item.retry_count],
        std::slice::from_ref(&item.output),
    )
    .await
    {
        Ok(n) => {
            state.metrics.completions.inc_by(n.max(0) as u64);
            Ok(())
        }
        Err(err) => match AppError::from(err) {
            AppError::ResourceExhausted(msg) => fail_oversized(state, tenant, item, &msg).await,
            other => Err(other),
        },
    }
}

/// An output the extension refuses (over `hatchet.max_payload_bytes`) fails the attempt for good with the reason,
/// instead of leaving the worker to resend it until the attempt times out.
async fn fail_oversized(
    state: &AppState,
    tenant: Uuid,
    item: &Completion,
    reason: &str,
) -> Result<(), AppError> {
    let error = format!("OutputTooLarge: {reason}");
    match db::fail(
        &state.pool,
        tenant,
        item.task_id,
        item.retry_count,
        &error,
        false,
    )
    .await
    {
        Ok(_) | Err(_) => Ok(()),
    }
}

/// One transaction: complete the batch, then (in a savepoint, so a failed assignment never undoes the
/// completions) assign the reporting worker its next attempts, if its stream is on this server.
async fn complete_and_assign(
    state: &AppState,
    tenant: Uuid,
    worker: Option<Uuid>,
    task_ids: &[Uuid],
    retry_counts: &[i32],
    outputs: &[Value],
) -> Result<(i32, Vec<Assignment>), sqlx::Error> {
    let mut tx = state.pool.begin().await?;
    let completed = db::complete_many(&mut *tx, tenant, task_ids, retry_counts, outputs).await?;
    let workers: Vec<Uuid> = worker
        .filter(|w| state.dispatch.connected_of(tenant).contains(w))
        .into_iter()
        .collect();
    let mut assigned = Vec::new();
    if completed > 0 && !workers.is_empty() {
        let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
        match db::assign(&mut *savepoint, tenant, &workers, ASSIGN_WITH_BATCH).await {
            Ok(rows) => {
                savepoint.commit().await?;
                assigned = rows;
            }
            Err(err) => {
                tracing::warn!(error = %err, "assignment after a completion batch failed; the assigner will retry");
                savepoint.rollback().await?;
            }
        }
    }
    tx.commit().await?;
    Ok((completed, assigned))
}
