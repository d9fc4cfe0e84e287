//! One `LISTEN` connection per server, fanned out in memory.
//!
//! | channel | payload | effect |
//! |---|---|---|
//! | `hatchet_ready` | empty (or the queue name) | wake the assigner (a task, retry or admitted task became ready) |
//! | `hatchet_cancel` | `task_id:retry_count:worker_id` | CANCEL_STEP_RUN to that worker's stream, once verified (below); wake the run watcher |
//!
//! Any database role may `NOTIFY hatchet_cancel`, so a notification is a hint, never an order: it is forwarded only
//! if this server pushed exactly that attempt (task and retry count) to that worker and has not seen it finish, and
//! the database confirms the attempt is no longer running (`hatchet.running_attempt`). A forged notification for a
//! running attempt, or for one this server never pushed, is dropped.
//!
//! A connection lost and re-established may have missed notifications, so every (re)connect wakes both the
//! assigner and the run watcher; their idle polls cover the rest.

use super::Dispatch;
use crate::db::tasks as db;
use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Channel: a queue has work.
const READY_CHANNEL: &str = "hatchet_ready";

/// Channel: a running attempt was cancelled or timed out.
const CANCEL_CHANNEL: &str = "hatchet_cancel";

/// The loop; ends on shutdown.
pub(crate) async fn run(dispatch: Arc<Dispatch>) {
    let shutdown = dispatch.shutdown.clone();
    let mut backoff = Duration::from_millis(100);
    loop {
        let listener = tokio::select! {
            listener = listen(&dispatch) => listener,
            () = shutdown.cancelled() => return,
        };
        match listener {
            Ok(mut listener) => {
                backoff = Duration::from_millis(100);
                dispatch.wake_assigner();
                dispatch.wake_runs();
                loop {
                    let next = tokio::select! {
                        next = listener.try_recv() => next,
                        () = shutdown.cancelled() => return,
                    };
                    match next {
                        Ok(Some(notification)) => {
                            handle(&dispatch, notification.channel(), notification.payload());
                        }
                        Ok(None) => {
                            tracing::warn!("LISTEN connection lost and re-established; notifications may have been missed");
                            dispatch.wake_assigner();
                            dispatch.wake_runs();
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "LISTEN connection failed; reconnecting");
                            break;
                        }
                    }
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, ?backoff, "cannot LISTEN; retrying");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn listen(dispatch: &Dispatch) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(&dispatch.pool).await?;
    listener.listen_all([READY_CHANNEL, CANCEL_CHANNEL]).await?;
    Ok(listener)
}

fn handle(dispatch: &Arc<Dispatch>, channel: &str, payload: &str) {
    // Work became ready or an attempt ended: open dashboards look again (the payloads do not name the tenant).
    dispatch.changed(None);
    match channel {
        READY_CHANNEL => dispatch.wake_assigner(),
        CANCEL_CHANNEL => {
            match parse_cancel(payload) {
                Some((task_id, retry_count, Some(worker_id))) => {
                    // Only attempts this server pushed cost a query; the check runs beside the loop so a burst of
                    // cancellations does not hold up the wake-ups behind it.
                    if let Some(tenant) = dispatch.pushed(worker_id, task_id, retry_count) {
                        tokio::spawn(verify_and_cancel(
                            dispatch.clone(),
                            tenant,
                            worker_id,
                            task_id,
                            retry_count,
                        ));
                    } else {
                        tracing::debug!(%payload, "hatchet_cancel for an attempt this server did not push; ignored");
                    }
                }
                Some((_, _, None)) => {} // a SQL consumer's attempt: no stream to tell
                None => tracing::warn!(%payload, "malformed hatchet_cancel payload"),
            }
            dispatch.wake_runs();
            dispatch.wake_assigner();
        }
        _ => {}
    }
}

/// Forwards a cancellation once the database confirms the attempt is no longer running.
async fn verify_and_cancel(
    dispatch: Arc<Dispatch>,
    tenant: Uuid,
    worker_id: Uuid,
    task_id: Uuid,
    retry_count: i32,
) {
    match db::running_attempt(&dispatch.pool, tenant, task_id).await {
        Ok(Some(running)) if running == retry_count => {
            tracing::warn!(%task_id, retry_count, %worker_id, "hatchet_cancel for an attempt that is still running; ignored");
        }
        Ok(_) => dispatch.cancel(worker_id, task_id, retry_count),
        Err(err) => {
            // Unverified, so not forwarded: the attempt's result will be refused as stale anyway.
            tracing::warn!(%task_id, error = %err, "cannot verify a hatchet_cancel notification; ignored");
        }
    }
}

/// `task_id:retry_count:worker_id` (worker empty for attempts claimed by SQL consumers).
fn parse_cancel(payload: &str) -> Option<(Uuid, i32, Option<Uuid>)> {
    let mut parts = payload.splitn(3, ':');
    let task = Uuid::parse_str(parts.next()?).ok()?;
    let retry_count = parts.next()?.parse().ok()?;
    let worker = match parts.next()? {
        "" => None,
        w => Some(Uuid::parse_str(w).ok()?),
    };
    Some((task, retry_count, worker))
}

#[cfg(test)]
mod tests {
    use super::parse_cancel;

    #[test]
    fn cancel_payloads() {
        let t = "0196b1a2-0000-7000-8000-000000000001";
        let w = "0196b1a2-0000-7000-8000-000000000002";
        let (task, rc, worker) = parse_cancel(&format!("{t}:3:{w}")).unwrap();
        assert_eq!(task.to_string(), t);
        assert_eq!(rc, 3);
        assert_eq!(worker.unwrap().to_string(), w);
        assert_eq!(parse_cancel(&format!("{t}:0:")).unwrap().2, None);
        assert!(parse_cancel("nonsense").is_none());
        assert!(parse_cancel(&format!("{t}:x:{w}")).is_none());
    }
}
