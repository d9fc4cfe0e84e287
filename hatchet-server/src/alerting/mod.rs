//! The alert sender: consumes the queue of the extension's internal workflow `hatchet:alerts` and delivers each alert
//! to its channel (a Slack incoming webhook, a generic JSON webhook, email over SMTP; see `send`).
//!
//! Why a queue and not a call on the failure path: the extension enqueues a delivery in the very transaction where a
//! task fails for good (`sql/alerts.sql`), so an alert exists exactly when the failure committed, and nothing on
//! the engine's path waits for the network. This loop is an ordinary SQL consumer (`hatchet.dequeue`, `complete`,
//! `fail`): a delivery that fails (Slack down, SMTP refused) fails its attempt and the engine retries it with
//! backoff; one that hangs times out (30 s) and is retried too; several server replicas share the queue without
//! sending twice (each claim is one replica's). Deliveries are workflow runs like any other, visible in the run lists.
//!
//! Each delivery reads its channel as it is now (`hatchet.alert_channel_secret`, the server role's only), so a
//! secret fixed after a failed attempt is used by the next one, and a channel removed or disabled meanwhile
//! completes the delivery as skipped.

mod send;

use crate::db::alerts as db;
use crate::error::AppError;
use serde_json::{json, Value};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub(crate) use send::{AlertText, Sender};

/// Shortest time between two looks at the queue when it was empty.
const POLL: Duration = Duration::from_secs(1);

/// Longest time between two looks at the queue when nothing signals a change. A delivery is enqueued in the
/// transaction of the failure it reports, whose `hatchet_ready` notification (any queue: the payload does not say
/// which) wakes the loop, and so does a retried delivery coming due (the maintenance worker promotes it and
/// notifies); this poll only covers a notification lost with a dropped `LISTEN` connection. An idle server
/// therefore costs no statement a second here (issue 18).
const SAFETY_POLL: Duration = Duration::from_secs(30);

/// Most deliveries claimed at once per tenant.
const BATCH: i32 = 16;

/// The worker name dequeue records on each claim (visible in the delivery's timeline).
const WORKER: &str = "hatchet-server alerts";

/// Runs until `shutdown`. `public_url` is the base of the dashboard links in alerts; `changes` is the dispatcher's
/// change signal (a notification arrived, or a worker reported), which wakes the loop.
pub(crate) async fn run(
    pool: PgPool,
    public_url: String,
    mut changes: broadcast::Receiver<Option<Uuid>>,
    shutdown: CancellationToken,
) {
    let sender = match Sender::new(public_url) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!(error = %e, "alert sender cannot start; alerts stay queued");
            return;
        }
    };
    loop {
        let busy = match pass(&pool, &sender).await {
            Ok(n) => n > 0,
            Err(e) => {
                tracing::warn!(error = %e, "alert queue pass failed");
                false
            }
        };
        if busy {
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = shutdown.cancelled() => return,
        }
        // Signals that arrived during the pass or the pause above are still queued: the wait ends at once then.
        tokio::select! {
            () = changed(&mut changes) => {}
            () = tokio::time::sleep(SAFETY_POLL - POLL) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Waits for the next change signal and takes every one queued behind it (a lagging receiver has missed some,
/// which means "changed" too). Pends forever once the sender is gone (shutdown, which the caller also waits for).
async fn changed(changes: &mut broadcast::Receiver<Option<Uuid>>) {
    match changes.recv().await {
        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
        Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
    }
    while !matches!(
        changes.try_recv(),
        Err(broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed)
    ) {}
}

/// One pass over every tenant with a channel: claims a batch, sends them concurrently, records each outcome.
/// Returns how many deliveries were handled.
async fn pass(pool: &PgPool, sender: &Arc<Sender>) -> Result<usize, sqlx::Error> {
    let mut handled = 0;
    for tenant in db::alert_tenants(pool).await? {
        // One tenant's failing statement must not keep the others' alerts queued.
        let batch = match db::dequeue(pool, tenant, WORKER, BATCH).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(%tenant, error = %e, "claiming alerts failed");
                continue;
            }
        };
        handled += batch.len();
        let mut jobs = JoinSet::new();
        for delivery in batch {
            let (pool, sender) = (pool.clone(), sender.clone());
            jobs.spawn(async move { deliver(&pool, &sender, tenant, delivery).await });
        }
        while jobs.join_next().await.is_some() {}
    }
    Ok(handled)
}

/// What a test alert did: where it went (as a delivery's output says it), or why it was not delivered.
pub(crate) type TestOutcome = Result<Value, String>;

/// Sends a test alert to the tenant's channel of `kind` now, with the channel as it is stored (secret included),
/// whether it is enabled or not: the one implementation behind the REST API's
/// `POST .../alert-channels/{kind}/test` and the dashboard's "Send a test" button. Nothing is queued or recorded.
/// An unknown kind is `InvalidArgument`, a channel that is not set `NotFound`; a delivery that fails is not an
/// error of the request but its answer (`Ok(Err(reason))`, the reason a delivery attempt would record).
pub(crate) async fn send_test(
    pool: &PgPool,
    public_url: &str,
    tenant: Uuid,
    kind: &str,
) -> Result<TestOutcome, AppError> {
    if !matches!(kind, "slack" | "webhook" | "email") {
        return Err(AppError::InvalidArgument(format!(
            "alert channel kind must be slack, webhook or email, not {kind}"
        )));
    }
    let channel = db::channel_secret(pool, tenant, kind)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("alert channel \"{kind}\" is not set")))?;
    let sender = Sender::new(public_url.to_owned()).map_err(|e| AppError::Internal(e.into()))?;
    let text = AlertText::test(tenant, kind);
    Ok(sender
        .send(
            kind,
            &channel.settings,
            &channel.secret,
            &text,
            Uuid::new_v4(),
        )
        .await
        .map(|to| json!({"sent": kind, "to": to, "link": text.link(sender.public_url())})))
}

/// Sends one delivery and completes or fails its attempt.
async fn deliver(pool: &PgPool, sender: &Sender, tenant: Uuid, d: db::Delivery) {
    // A workflow task receives `{input, parents, triggered_by}`; the alert is the run's input.
    let input = d.input.get("input").unwrap_or(&d.input).clone();
    let kind = input
        .get("channel")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let outcome = match db::channel_secret(pool, tenant, &kind).await {
        Err(e) => Err(format!("reading the {kind} channel failed: {e}")),
        Ok(None) => Ok(json!({"skipped": format!("the {kind} channel was removed")})),
        Ok(Some(c)) if !c.enabled => {
            Ok(json!({"skipped": format!("the {kind} channel is disabled")}))
        }
        Ok(Some(c)) => {
            let text = AlertText::from_input(tenant, &input);
            sender
                .send(&kind, &c.settings, &c.secret, &text, d.task_id)
                .await
                .map(|detail| json!({"sent": kind, "to": detail, "link": text.link(sender.public_url())}))
        }
    };
    let recorded = match &outcome {
        Ok(output) => db::complete(pool, tenant, &d, output).await,
        Err(error) => {
            tracing::warn!(%tenant, task_id = %d.task_id, attempt = d.retry_count, %kind, %error, "alert not delivered");
            db::fail(pool, tenant, &d, error, true).await.map(|_| ())
        }
    };
    if let Err(e) = recorded {
        // The attempt stays RUNNING and times out, then it is retried: at worst the alert is sent twice.
        tracing::warn!(%tenant, task_id = %d.task_id, error = %e, "recording an alert delivery failed");
    }
}
