//! One `LISTEN` connection per server, fanned out in memory.
//!
//! | channel | payload | effect |
//! |---|---|---|
//! | `hatchet_ready` | empty (or the queue name) | wake the assigner (a task, retry or admitted task became ready) |
//! | `hatchet_cancel` | `task_id:retry_count:worker_id` | CANCEL_STEP_RUN to that worker's stream, if it is ours; wake the run watcher |
//!
//! A connection lost and re-established may have missed notifications, so every (re)connect wakes both the
//! assigner and the run watcher; their idle polls cover the rest.

use super::Dispatch;
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

fn handle(dispatch: &Dispatch, channel: &str, payload: &str) {
    match channel {
        READY_CHANNEL => dispatch.wake_assigner(),
        CANCEL_CHANNEL => {
            match parse_cancel(payload) {
                Some((task_id, retry_count, Some(worker_id))) => {
                    dispatch.cancel(worker_id, task_id, retry_count);
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
