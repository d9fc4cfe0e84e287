//! Records in the database that workers received their attempts (the SDK's STARTED events), in batches.
//!
//! Why: an assignment is committed before it is pushed, so a replica that dies between the two (or a commit whose
//! answer was lost) leaves an attempt RUNNING on a live worker that never got it. The extension releases an attempt
//! that stays unacknowledged for `worker_dead_after` (`hatchet._release_unacknowledged`); this loop is what keeps
//! delivered attempts from looking undelivered. The STARTED handler does not wait for it: the acknowledgement is
//! queued here and written with one `hatchet.acknowledge_attempts` per tenant for everything queued meanwhile.
//!
//! A write that fails (Postgres away) is retried with a backoff, so acknowledgements made during an outage land
//! when it ends (the extension gives attempts the same grace after an outage as it gives heartbeats). Those queued in
//! a replica that dies are lost; their attempts are released and retried, which at-least-once allows.

use super::Dispatch;
use crate::db::workers as db;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use uuid::Uuid;

/// How long a batch waits for more acknowledgements before it is written.
const LINGER: Duration = Duration::from_millis(5);

/// Most acknowledgements kept while the database is unreachable; older ones are dropped beyond this (their
/// attempts may then be released and retried).
const MAX_PENDING: usize = 100_000;

/// Longest wait between attempts to write while the database fails.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// One acknowledged attempt.
type Ack = (Uuid, Uuid, i32);

/// The STARTED handler's side of the loop.
#[derive(Debug)]
pub(crate) struct Handle {
    tx: mpsc::UnboundedSender<Ack>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Ack>>>,
}

impl Handle {
    pub(super) fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }

    /// Queues the acknowledgement of attempt `(task_id, retry_count)` of a tenant.
    pub(crate) fn acknowledge(&self, tenant: Uuid, task_id: Uuid, retry_count: i32) {
        // Fails only after shutdown, when nothing is written any more.
        let _ = self.tx.send((tenant, task_id, retry_count));
    }
}

/// The loop; ends on shutdown.
pub(crate) async fn run(dispatch: Arc<Dispatch>) {
    let Some(mut rx) = dispatch
        .acker
        .rx
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    else {
        tracing::error!("the acknowledgement writer was started twice");
        return;
    };
    let shutdown = dispatch.shutdown.clone();
    let mut pending: Vec<Ack> = Vec::new();
    let mut backoff = Duration::from_millis(100);
    loop {
        if pending.is_empty() {
            tokio::select! {
                item = rx.recv() => match item { Some(item) => pending.push(item), None => return },
                () = shutdown.cancelled() => return,
            }
            let deadline = tokio::time::Instant::now() + LINGER;
            while let Ok(Some(item)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                pending.push(item);
            }
        }
        while let Ok(item) = rx.try_recv() {
            pending.push(item);
        }
        if pending.len() > MAX_PENDING {
            let drop = pending.len() - MAX_PENDING;
            tracing::warn!(
                dropped = drop,
                "too many acknowledgements waiting for the database; dropping the oldest"
            );
            pending.drain(..drop);
        }
        match write(&dispatch, &pending).await {
            Ok(()) => {
                pending.clear();
                backoff = Duration::from_millis(100);
            }
            Err(err) => {
                tracing::warn!(error = %err, waiting = pending.len(), ?backoff, "cannot record acknowledgements; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// One statement per tenant; duplicates (the SDK sends STARTED twice) are written once.
async fn write(dispatch: &Dispatch, acks: &[Ack]) -> Result<(), sqlx::Error> {
    let mut by_tenant: HashMap<Uuid, (Vec<Uuid>, Vec<i32>)> = HashMap::new();
    let mut seen = HashSet::new();
    for &(tenant, task_id, retry_count) in acks {
        if seen.insert((tenant, task_id, retry_count)) {
            let (tasks, retries) = by_tenant.entry(tenant).or_default();
            tasks.push(task_id);
            retries.push(retry_count);
        }
    }
    for (tenant, (tasks, retries)) in by_tenant {
        db::acknowledge_attempts(&dispatch.pool, tenant, &tasks, &retries).await?;
    }
    Ok(())
}
