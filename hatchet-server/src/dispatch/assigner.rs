//! The assignment loop: hands ready attempts to the workers connected to this server.
//!
//! It runs `hatchet.assign` for each tenant with connected workers (only those: a worker connected to another
//! server is that server's to feed) whenever it is woken (a `hatchet_ready` NOTIFY, a `hatchet_cancel` NOTIFY, a
//! stream connecting, a worker unpaused here, a slot freed by a failure or release). Work that becomes ready in the
//! database sends `hatchet_ready` after its commit: an enqueue, and the maintenance worker promoting a retry
//! backoff, a `run_at`, or a task parked by a rate limit when its window refills (`hatchet._promote_due`).
//!
//! Between wake-ups it polls, for what changes without a notification (a worker unpaused or a slot freed through
//! another server, due work while the maintenance worker is off): with a backoff from [`MIN_IDLE`] to [`MAX_IDLE`]
//! for [`ACTIVE_FOR`] after the last wake-up or assignment, then every [`SAFETY_POLL`]. So an idle server costs one
//! statement per tenant every few seconds, not five a second (issue 18), and a burst still sees the fast poll.
//! Each call is one statement, so one short transaction that holds the worker slot locks only for its own duration.

use super::Dispatch;
use crate::db::runs::{self as runs, AssignNow, Trigger, Triggered};
use crate::db::workers::{self as db, Assignment};
use sqlx::pool::PoolConnection;
use sqlx::Postgres;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Most attempts one `hatchet.assign` call hands out; a full batch makes the loop go again at once.
const BATCH: i32 = 200;

/// Most batches of batch tasks one `hatchet.assign_batches` call hands out.
const BATCHES: i32 = 50;

/// First idle poll interval after activity.
const MIN_IDLE: Duration = Duration::from_millis(10);

/// Longest poll interval while active (the worst-case delay, in that time, for work that becomes ready without a
/// NOTIFY).
const MAX_IDLE: Duration = Duration::from_millis(200);

/// How long after the last wake-up or assignment the loop keeps polling fast.
const ACTIVE_FOR: Duration = Duration::from_secs(2);

/// The poll interval once idle for longer than [`ACTIVE_FOR`] (the worst-case delay, then, for work that becomes
/// ready without a NOTIFY).
const SAFETY_POLL: Duration = Duration::from_secs(5);

/// Most attempts a trigger assigns in its own transaction.
const TRIGGER_BATCH: i32 = 100;

/// Longest wait of a trigger's assignment for a worker slot lock (held by the assigner, a completion batch or
/// another trigger, each for one short transaction): past it the trigger commits without assigning and this loop
/// hands the work out, as before.
const TRIGGER_LOCK_WAIT_MS: i32 = 20;

/// How often disconnected workers' memory is purged.
const PURGE_EVERY: Duration = Duration::from_secs(30);

/// The loop; ends on shutdown.
pub(crate) async fn run(dispatch: Arc<Dispatch>) {
    let shutdown = dispatch.shutdown.clone();
    let mut idle = MIN_IDLE;
    let mut active_at = Instant::now();
    let mut last_purge = Instant::now();
    // The loop's own connection, kept between rounds: taking one from the pool costs a round trip (the pool's
    // liveness check) on every call, and this loop calls often. Dropped when it may be broken and taken anew.
    let mut conn: Option<PoolConnection<Postgres>> = None;
    loop {
        let (busy, assigned) = round(&dispatch, &mut conn).await;
        if last_purge.elapsed() >= PURGE_EVERY {
            dispatch.purge();
            last_purge = Instant::now();
        }
        if assigned {
            active_at = Instant::now();
        }
        if busy {
            idle = MIN_IDLE;
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            () = dispatch.assign_wake.notified() => {
                idle = MIN_IDLE;
                active_at = Instant::now();
            }
            () = tokio::time::sleep(next_poll(idle, active_at.elapsed())) => idle = (idle * 2).min(MAX_IDLE),
            () = shutdown.cancelled() => return,
        }
    }
}

/// How long to wait for a wake-up before polling again: the backoff `idle` while the last activity is less than
/// [`ACTIVE_FOR`] ago, else [`SAFETY_POLL`].
fn next_poll(idle: Duration, since_active: Duration) -> Duration {
    if since_active < ACTIVE_FOR {
        idle
    } else {
        SAFETY_POLL
    }
}

/// One pass over the tenants with connected workers: whether some call filled a whole batch (more may be ready),
/// and whether any call assigned something.
///
/// One tenant's failure (its statement timed out or waited too long for a lock, see
/// [`crate::config::BackgroundPool`], or any error of its own) is logged and skipped: the tenants after it in the
/// round are still served, and the failed one is tried again next round.
async fn round(dispatch: &Dispatch, conn: &mut Option<PoolConnection<Postgres>>) -> (bool, bool) {
    let tenants = dispatch.connected_by_tenant();
    let mut full = false;
    let mut any = false;
    for (tenant, workers) in tenants {
        let c = match conn {
            Some(c) => c,
            None => match dispatch.pool.acquire().await {
                Ok(c) => conn.insert(c),
                Err(err) => {
                    tracing::warn!(error = %err, "assignment: no database connection; retrying");
                    return (false, any);
                }
            },
        };
        let started = Instant::now();
        match db::assign(&mut **c, tenant, &workers, BATCH).await {
            Ok(rows) => {
                tracing::debug!(%tenant, rows = rows.len(), took_us = started.elapsed().as_micros() as u64, "assign round");
                full |= rows.len() == BATCH as usize;
                any |= !rows.is_empty();
                record(dispatch, tenant, &rows);
            }
            Err(err) => {
                tracing::warn!(%tenant, error = %err, "assignment failed for this tenant; skipping it this round");
                // A statement error leaves the session usable; anything else (I/O, protocol) may not have.
                if !matches!(err, sqlx::Error::Database(_)) {
                    *conn = None;
                }
                continue;
            }
        }
        // Batch tasks: their members go out in batches (a batch waiting for its flush interval is flushed by a
        // later round; the idle poll is at most MAX_IDLE).
        let Some(c) = conn.as_mut() else { continue };
        match db::assign_batches(&mut **c, tenant, &workers, BATCHES).await {
            Ok(members) => {
                if !members.is_empty() {
                    let batches = members.chunk_by(|a, b| a.batch_id == b.batch_id).count();
                    full |= batches == BATCHES as usize;
                    dispatch.deliver_batches(tenant, &members);
                    let rows: Vec<Assignment> = members.into_iter().map(|m| m.attempt).collect();
                    count(dispatch, tenant, &rows);
                }
            }
            Err(err) => {
                tracing::warn!(%tenant, error = %err, "batch assignment failed for this tenant; skipping it this round");
                if !matches!(err, sqlx::Error::Database(_)) {
                    *conn = None;
                }
            }
        }
    }
    (full, any)
}

impl Dispatch {
    /// Triggers a run (`hatchet.run_workflow`). When workers of the tenant are connected here, the same statement
    /// assigns to their free slots (`hatchet.try_assign`): one commit on the task's way to its worker instead of the
    /// trigger's and then the assigner's, and no wait for the assigner's wake-up. What it assigned is pushed only
    /// after that commit; when it assigned nothing (no free slot, no connected worker, or a slot lock was not free
    /// within [`TRIGGER_LOCK_WAIT_MS`]) the assigner loop is woken and takes the work.
    pub(crate) async fn trigger(&self, tenant: Uuid, t: &Trigger) -> Result<Uuid, sqlx::Error> {
        let workers = self.connected_of(tenant);
        if workers.is_empty() {
            let run = runs::run_workflow(&self.requests, tenant, t).await?;
            self.wake_assigner();
            return Ok(run);
        }
        let (run, rows) =
            runs::run_workflow_assigning(&self.requests, tenant, t, assign_now(&workers)).await?;
        self.assigned_at_trigger(tenant, &rows);
        Ok(run)
    }

    /// [`runs::run_workflows`] (several triggers in one transaction), assigning before its commit as
    /// [`Dispatch::trigger`] does.
    pub(crate) async fn trigger_many(
        &self,
        tenant: Uuid,
        triggers: &[Trigger],
    ) -> Result<Vec<Triggered>, sqlx::Error> {
        let workers = self.connected_of(tenant);
        let now = (!workers.is_empty()).then(|| assign_now(&workers));
        let (done, rows) = runs::run_workflows(&self.requests, tenant, triggers, now).await?;
        self.assigned_at_trigger(tenant, &rows);
        // Many runs may have made more ready than the free slots took: the assigner looks at once.
        self.wake_assigner();
        Ok(done)
    }

    /// Pushes what a trigger's transaction assigned (it committed), or wakes the assigner when it assigned nothing.
    fn assigned_at_trigger(&self, tenant: Uuid, rows: &[Assignment]) {
        if rows.is_empty() {
            self.wake_assigner();
            return;
        }
        record(self, tenant, rows);
        self.metrics
            .trigger_assignments
            .with_label_values(&[tenant.to_string().as_str()])
            .inc_by(rows.len() as u64);
    }
}

/// A trigger's assignment to these workers (connected here).
fn assign_now(workers: &[Uuid]) -> AssignNow<'_> {
    AssignNow {
        workers,
        max_tasks: TRIGGER_BATCH,
        lock_wait_ms: TRIGGER_LOCK_WAIT_MS,
    }
}

/// Pushes committed assignments to their workers and counts them.
pub(crate) fn record(dispatch: &Dispatch, tenant: Uuid, rows: &[Assignment]) {
    if rows.is_empty() {
        return;
    }
    dispatch.deliver(tenant, rows);
    count(dispatch, tenant, rows);
}

/// Counts delivered assignments (and their queue-to-start latency) in the metrics.
fn count(dispatch: &Dispatch, tenant: Uuid, rows: &[Assignment]) {
    let label = tenant.to_string();
    dispatch
        .metrics
        .assignments
        .with_label_values(&[label.as_str()])
        .inc_by(rows.len() as u64);
    let latency = dispatch
        .metrics
        .queue_to_start
        .with_label_values(&[label.as_str()]);
    let now = chrono::Utc::now();
    for row in rows {
        let waited = (now - row.queued_at).to_std().unwrap_or_default();
        latency.observe(waited.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_fast_after_activity_then_slowly() {
        // Just after a wake-up or an assignment: the backoff, from MIN_IDLE up to MAX_IDLE.
        assert_eq!(next_poll(MIN_IDLE, Duration::ZERO), MIN_IDLE);
        assert_eq!(next_poll(MAX_IDLE, ACTIVE_FOR / 2), MAX_IDLE);
        // Idle for longer than ACTIVE_FOR: the slow safety poll, whatever the backoff reached.
        assert_eq!(next_poll(MIN_IDLE, ACTIVE_FOR), SAFETY_POLL);
        assert_eq!(next_poll(MAX_IDLE, Duration::from_secs(3600)), SAFETY_POLL);
        // The idle cost per tenant: one statement per SAFETY_POLL, at most 0.2 a second (issue 18's budget is 10
        // in total).
        assert!(SAFETY_POLL >= Duration::from_secs(5));
        assert!(ACTIVE_FOR >= MAX_IDLE * 5);
    }
}
