//! Heartbeat coalescing: the `Heartbeat` calls of all workers of one tenant that arrive within [`WINDOW`] share one
//! `hatchet.heartbeat` statement, so 1,000 idle workers beating every 4 s cost a few statements per second, not 250.
//!
//! The first heartbeat of a tenant opens a batch and spawns its flush (spawned, so a caller that goes away does not
//! strand the others); later ones join it. The statement returns how many of the batch's workers are alive: when
//! that is all of them, every caller is done. Otherwise (a worker the extension declared dead, or an error) each
//! caller repeats its own heartbeat alone, which is exactly the uncoalesced behaviour, so the rare path keeps its
//! per-worker answer and a dead worker is still registered again by its own call.
//!
//! `hatchet.heartbeat` updates only `hatchet.workers.last_heartbeat_at`; assignment locks `hatchet.worker_slots`
//! rows, so a batched heartbeat never holds a lock an assignment waits on (and the reverse): the isolation spec
//! `tests/isolation/specs/45_heartbeat_vs_assign.spec` holds each side's transaction open while the other runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

use crate::db::workers as db;

/// How long a batch collects heartbeats before its one statement runs (at most 1/WINDOW statements per tenant and
/// second; the SDK beats every 4 s and waits far longer than this for the answer).
pub(crate) const WINDOW: Duration = Duration::from_millis(250);

/// The outcome of a flushed batch: `Some(true)` when every worker in it was alive.
type Outcome = Option<bool>;

#[derive(Debug)]
struct Batch {
    ids: Vec<Uuid>,
    done: watch::Receiver<Outcome>,
}

/// Open batches by tenant.
#[derive(Debug, Default)]
pub(crate) struct Heartbeats {
    open: Mutex<HashMap<Uuid, Batch>>,
}

impl Heartbeats {
    /// Records that `worker_id` is alive; returns how many workers the extension counted alive for it (1 or 0), as
    /// `db::heartbeat` does for a single worker.
    pub(crate) async fn beat(
        self: &Arc<Self>,
        pool: &PgPool,
        tenant: Uuid,
        worker_id: Uuid,
    ) -> Result<i32, sqlx::Error> {
        let mut done = {
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            match open.get_mut(&tenant) {
                Some(batch) => {
                    batch.ids.push(worker_id);
                    batch.done.clone()
                }
                None => {
                    let (tx, rx) = watch::channel(None);
                    open.insert(
                        tenant,
                        Batch {
                            ids: vec![worker_id],
                            done: rx.clone(),
                        },
                    );
                    tokio::spawn(Arc::clone(self).flush(pool.clone(), tenant, tx));
                    rx
                }
            }
        };
        let all_alive = match done.wait_for(Option::is_some).await {
            Ok(outcome) => *outcome == Some(true),
            Err(_) => false,
        };
        if all_alive {
            return Ok(1);
        }
        db::heartbeat(pool, tenant, &[worker_id]).await
    }

    async fn flush(self: Arc<Self>, pool: PgPool, tenant: Uuid, tx: watch::Sender<Outcome>) {
        tokio::time::sleep(WINDOW).await;
        let batch = self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&tenant);
        let Some(mut batch) = batch else {
            let _ = tx.send(Some(false));
            return;
        };
        batch.ids.sort_unstable();
        batch.ids.dedup();
        let all_alive = match db::heartbeat(&pool, tenant, &batch.ids).await {
            Ok(n) => usize::try_from(n).is_ok_and(|n| n == batch.ids.len()),
            Err(_) => false,
        };
        let _ = tx.send(Some(all_alive));
    }
}
