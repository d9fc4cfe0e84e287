//! One `LISTEN` connection per server, fanned out in memory.
//!
//! | channel | payload | effect |
//! |---|---|---|
//! | `hatchet_ready` | empty (or the queue name) | wake the assigner (a task, retry or admitted task became ready) |
//! | `hatchet_cancel` | `task_id:retry_count:worker_id` | CANCEL_STEP_RUN to that worker's stream, once verified (below); wake the run watcher |
//! | `hatchet_changed` | `origin:tenant,tenant,...` (`origin:*`: any tenant) | another replica's dashboards changes: open dashboards here look again |
//!
//! Every change made through this server (what its workers report, a dashboard action) is relayed to the other
//! replicas by [`relay`]: one `hatchet_changed` notification per 250 ms at most, and none while nothing changes, so
//! a dashboard on replica B updates live when a run changes through replica A even where Postgres sends nothing
//! (cancelling a queued task, the last task of a run completing). A server ignores its own notifications, and any
//! role may send one: it is a hint that costs a page refresh, nothing more.
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

/// Channel: something changed through another replica (for the dashboards).
const CHANGED_CHANNEL: &str = "hatchet_changed";

/// Longest a change waits before it is relayed; the changes of that window go out in one notification.
const RELAY_DEBOUNCE: Duration = Duration::from_millis(250);

/// Most tenants named in one notification (payloads are limited to 8000 bytes); more say "any tenant".
const RELAY_MAX_TENANTS: usize = 100;

/// The relay loop: tells the other replicas what changed through this server ([`Dispatch::changed`]); ends on
/// shutdown.
pub(crate) async fn relay(dispatch: Arc<Dispatch>) {
    let shutdown = dispatch.shutdown.clone();
    loop {
        tokio::select! {
            () = dispatch.relay_wanted() => {}
            () = shutdown.cancelled() => return,
        }
        tokio::select! {
            () = tokio::time::sleep(RELAY_DEBOUNCE) => {}
            () = shutdown.cancelled() => return,
        }
        let pending = dispatch.take_relay();
        let payload = relay_payload(dispatch.instance, &pending);
        if let Err(err) =
            crate::db::dashboard::notify(&dispatch.pool, CHANGED_CHANNEL, &payload).await
        {
            // Another replica's dashboards then catch up at their next change.
            tracing::warn!(error = %err, "cannot relay a dashboard change to the other replicas");
        }
    }
}

/// `origin:tenant,tenant` or `origin:*`.
fn relay_payload(origin: Uuid, pending: &super::Relay) -> String {
    if pending.any || pending.tenants.is_empty() || pending.tenants.len() > RELAY_MAX_TENANTS {
        return format!("{origin}:*");
    }
    let tenants: Vec<String> = pending.tenants.iter().map(Uuid::to_string).collect();
    format!("{origin}:{}", tenants.join(","))
}

/// The tenants of another replica's `hatchet_changed` payload: `None` for its own or a malformed one,
/// `Some(vec![None])` for any tenant.
fn relayed_tenants(own: Uuid, payload: &str) -> Option<Vec<Option<Uuid>>> {
    let (origin, tenants) = payload.split_once(':')?;
    if Uuid::parse_str(origin).ok()? == own {
        return None;
    }
    if tenants == "*" {
        return Some(vec![None]);
    }
    let parsed: Option<Vec<Option<Uuid>>> = tenants
        .split(',')
        .map(|t| Uuid::parse_str(t).ok().map(Some))
        .collect();
    parsed.filter(|t| !t.is_empty())
}

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
    listener
        .listen_all([READY_CHANNEL, CANCEL_CHANNEL, CHANGED_CHANNEL])
        .await?;
    Ok(listener)
}

fn handle(dispatch: &Arc<Dispatch>, channel: &str, payload: &str) {
    if channel == CHANGED_CHANNEL {
        for tenant in relayed_tenants(dispatch.instance, payload).unwrap_or_default() {
            dispatch.heard(tenant);
        }
        return;
    }
    // Work became ready or an attempt ended: open dashboards look again (the payloads do not name the tenant). Every
    // replica hears this notification, so it is not relayed.
    dispatch.heard(None);
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
    use super::{parse_cancel, relay_payload, relayed_tenants};
    use uuid::Uuid;

    #[test]
    fn relayed_changes_name_their_origin_and_tenants() {
        let (me, other, t) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut pending = crate::dispatch::Relay::default();
        pending.tenants.insert(t);
        let payload = relay_payload(other, &pending);
        assert_eq!(payload, format!("{other}:{t}"));
        assert_eq!(relayed_tenants(me, &payload), Some(vec![Some(t)]));
        assert_eq!(
            relayed_tenants(other, &payload),
            None,
            "a server ignores its own"
        );
        pending.any = true;
        assert_eq!(
            relayed_tenants(me, &relay_payload(other, &pending)),
            Some(vec![None])
        );
        assert_eq!(relayed_tenants(me, "garbage"), None);
        assert_eq!(relayed_tenants(me, &format!("{other}:nope")), None);
    }

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
