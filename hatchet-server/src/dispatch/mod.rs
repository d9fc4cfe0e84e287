//! The live side of the worker protocol: which workers are connected to this server, what was pushed to them, and
//! the background tasks that move work from pg_hatchet to their `ListenV2` streams.
//!
//! Nothing here is the source of truth: every assignment is a row in `hatchet.running`, written by
//! `hatchet.assign` before it is pushed. What this module keeps in memory is only what a stream needs to survive a
//! reconnect: an attempt pushed to a worker whose stream broke before the worker acknowledged it (STARTED) is pushed
//! again when the worker reconnects, and a cancellation for a disconnected worker is delivered on reconnect. A
//! server restart loses that memory, never work: an attempt nobody runs times out in the extension and is retried.
//!
//! [`Dispatch`] owns what its background tasks need (the pool, the metrics, the shutdown token), so this module
//! depends only on the layers below it ([`crate::db`], [`crate::metrics`], `proto`, `error`, `status`), never on
//! the state or the gRPC and REST handlers that call it. Background tasks, started by [`Dispatch::spawn`] when the
//! server runs:
//!
//! | task | what it does |
//! |---|---|
//! | [`assigner`] | calls `hatchet.assign` for the workers connected here, on a wake-up or a short idle poll |
//! | [`notifier`] | one `LISTEN` connection (`hatchet_ready`, `hatchet_cancel`, `hatchet_changed`) fanned out to the tasks, streams and dashboards; relays this server's own dashboard changes to the other replicas |
//! | [`completer`] | batches COMPLETED events into one `hatchet.complete_many` plus the next assignments |
//! | [`acker`] | records STARTED events (`hatchet.acknowledge_attempts`), so delivered attempts are not released as undelivered |
//! | [`runs`] | watches subscribed workflow runs and answers `SubscribeToWorkflowRuns` when they finish |
//! | [`streams`] | stream chunks for `SubscribeToWorkflowEvents`: one `LISTEN hatchet_stream`, pruning, subscriptions (started on first use) |

pub(crate) mod acker;
pub(crate) mod assigner;
pub(crate) mod completer;
pub(crate) mod heartbeats;
pub(crate) mod notifier;
pub(crate) mod runs;
pub(crate) mod streams;

use crate::db::workers::{Assignment, BatchMember};
use crate::metrics::Metrics;
use crate::proto::{timestamp, ActionType, AssignedAction, BatchStartPayload};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, Notify};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use uuid::Uuid;

/// How long the memory of a disconnected worker (unacknowledged pushes, undelivered cancellations) is kept. Past
/// this the extension has declared it dead (30 s without heartbeat) and retried its attempts elsewhere.
const FORGET_DISCONNECTED_AFTER: Duration = Duration::from_secs(120);

/// Buffered change signals per dashboard receiver; past it a receiver lags, which it reads as "changed".
const CHANGES_CAPACITY: usize = 64;

/// How long an unsubscribed worker is remembered, so a late heartbeat does not bring it back to life.
const REMEMBER_UNSUBSCRIBED_FOR: Duration = Duration::from_secs(600);

type ActionSender = mpsc::UnboundedSender<Result<AssignedAction, tonic::Status>>;

/// Connected workers and what was pushed to them, and the handles the background tasks work with. Shared by the
/// gRPC and REST handlers and the background tasks.
#[derive(Debug)]
pub(crate) struct Dispatch {
    /// The background loops' connections (assigner, completer, notifier, run watcher, stream pruning), with
    /// statement and lock timeouts (see [`crate::config::BackgroundPool`]).
    pub(crate) pool: PgPool,
    /// The request handlers' connections: stream subscriptions and `PutStreamEvent` read and write through these.
    pub(crate) requests: PgPool,
    /// Most runs one subscription stream may follow at once.
    pub(crate) max_subscriptions: usize,
    /// The server's metrics, fed by assignments and completions.
    pub(crate) metrics: Arc<Metrics>,
    /// Cancelled when the server starts shutting down: every loop and stream ends.
    pub(crate) shutdown: CancellationToken,
    registry: Mutex<Registry>,
    /// Wakes the assigner: work may be ready (NOTIFY), or slots were freed.
    assign_wake: Notify,
    /// Wakes the run watcher: some run may have finished.
    runs_wake: Notify,
    next_conn: AtomicU64,
    completer: completer::Handle,
    /// The acknowledgement writer.
    acker: acker::Handle,
    /// Workflow-run subscriptions of `SubscribeToWorkflowRuns` streams.
    runs: runs::Subscriptions,
    /// Stream-chunk wake-ups of `SubscribeToWorkflowEvents` streams.
    streams: streams::StreamHub,
    /// "Something of this tenant changed" for the dashboard's live pages (see [`Dispatch::changed`]).
    changes: broadcast::Sender<Option<Uuid>>,
    /// How many change signals were sent so far: a page rendered at generation N that opens its feed later asks for
    /// an update at once if the count moved meanwhile.
    generation: AtomicU64,
    /// This server among the replicas on the same database: the origin of its `hatchet_changed` notifications.
    pub(crate) instance: Uuid,
    /// Changes made through this server that the other replicas have not been told about yet.
    relay: Mutex<Relay>,
    /// Wakes the relay ([`notifier::relay`]).
    relay_wake: Notify,
}

/// Tenants whose data changed through this server since the last `hatchet_changed` notification.
#[derive(Debug, Default)]
pub(crate) struct Relay {
    /// Which tenants.
    pub tenants: std::collections::HashSet<Uuid>,
    /// A change that names no tenant.
    pub any: bool,
}

#[derive(Debug, Default)]
struct Registry {
    workers: HashMap<Uuid, WorkerEntry>,
    unsubscribed: HashMap<Uuid, Instant>,
}

#[derive(Debug)]
struct WorkerEntry {
    tenant: Uuid,
    conn: Option<Conn>,
    disconnected_at: Option<Instant>,
    /// Attempts pushed to this worker and not finished, by task id.
    inflight: HashMap<Uuid, Inflight>,
    /// Cancellations that could not be delivered because the stream was down.
    pending_cancels: Vec<AssignedAction>,
}

#[derive(Debug)]
struct Conn {
    id: u64,
    tx: ActionSender,
}

#[derive(Debug)]
struct Inflight {
    action: AssignedAction,
    /// The worker sent STARTED: it has the action, so a reconnect must not push it again.
    started: bool,
}

impl WorkerEntry {
    fn new(tenant: Uuid) -> Self {
        Self {
            tenant,
            conn: None,
            // Until a stream attaches, the entry counts as disconnected (and is purged if none ever does).
            disconnected_at: Some(Instant::now()),
            inflight: HashMap::new(),
            pending_cancels: Vec::new(),
        }
    }

    /// Sends on the live stream; false if there is none (or it just closed).
    fn send(&mut self, action: AssignedAction) -> bool {
        match &self.conn {
            Some(conn) => conn.tx.send(Ok(action)).is_ok(),
            None => false,
        }
    }
}

impl Dispatch {
    /// An empty registry over a pool. Background tasks are started separately by [`Dispatch::spawn`].
    pub(crate) fn new(
        pool: PgPool,
        requests: PgPool,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
        max_subscriptions: usize,
    ) -> Self {
        Self {
            pool,
            requests,
            max_subscriptions,
            metrics,
            shutdown,
            registry: Mutex::new(Registry::default()),
            assign_wake: Notify::new(),
            runs_wake: Notify::new(),
            next_conn: AtomicU64::new(1),
            completer: completer::Handle::new(),
            acker: acker::Handle::new(),
            runs: runs::Subscriptions::default(),
            streams: streams::StreamHub::default(),
            changes: broadcast::channel(CHANGES_CAPACITY).0,
            generation: AtomicU64::new(0),
            instance: Uuid::new_v4(),
            relay: Mutex::new(Relay::default()),
            relay_wake: Notify::new(),
        }
    }

    /// Starts the background tasks; they stop when `shutdown` is cancelled. The stream tasks start on first use.
    pub(crate) fn spawn(self: &Arc<Self>) {
        tokio::spawn(assigner::run(self.clone()));
        tokio::spawn(notifier::run(self.clone()));
        tokio::spawn(notifier::relay(self.clone()));
        tokio::spawn(completer::run(self.clone()));
        tokio::spawn(acker::run(self.clone()));
        tokio::spawn(runs::run(self.clone()));
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        // A panic while holding the lock leaves plain maps behind, still consistent enough to keep serving.
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks the assigner to run now (work became ready or slots were freed).
    pub(crate) fn wake_assigner(&self) {
        self.assign_wake.notify_one();
    }

    /// Asks the run watcher to look at subscribed runs now (something may have finished).
    pub(crate) fn wake_runs(&self) {
        self.runs_wake.notify_one();
    }

    /// Tells open dashboards that data of `tenant` changed through this server (what its workers reported, an
    /// action on a page): here at once, and on the other replicas through one debounced `hatchet_changed`
    /// notification ([`notifier::relay`]), since not every change makes Postgres notify (cancelling a queued task,
    /// the last task of a run completing). The alert sender listens to the same signals. Costs nothing when nothing
    /// changes; never polls.
    pub(crate) fn changed(&self, tenant: Option<Uuid>) {
        self.heard(tenant);
        {
            let mut relay = self.relay.lock().unwrap_or_else(|p| p.into_inner());
            match tenant {
                Some(t) => {
                    relay.tenants.insert(t);
                }
                None => relay.any = true,
            }
        }
        self.relay_wake.notify_one();
    }

    /// Tells this server's open dashboards that data of `tenant` changed (`None`: of some tenant), from a
    /// notification every replica receives: nothing is relayed. A send without receivers is dropped at once.
    pub(crate) fn heard(&self, tenant: Option<Uuid>) {
        self.generation.fetch_add(1, Ordering::Relaxed);
        let _ = self.changes.send(tenant);
    }

    /// Waits until [`Dispatch::changed`] recorded something to relay.
    pub(crate) async fn relay_wanted(&self) {
        self.relay_wake.notified().await;
    }

    /// What is to be relayed, leaving nothing behind.
    pub(crate) fn take_relay(&self) -> Relay {
        std::mem::take(&mut *self.relay.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// How many change signals were sent so far (of any tenant).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// A receiver of [`Dispatch::changed`] signals (a lagging receiver sees `Lagged`, which means "changed" too).
    pub(crate) fn subscribe_changes(&self) -> broadcast::Receiver<Option<Uuid>> {
        self.changes.subscribe()
    }

    /// The completion batcher.
    pub(crate) fn completer(&self) -> &completer::Handle {
        &self.completer
    }

    /// Opens the action stream of a worker, replacing any earlier stream of the same worker (the SDK opens a new
    /// one on every reconnect). Undelivered cancellations and unacknowledged attempts are queued on it first. The
    /// stream ends at shutdown.
    pub(crate) fn connect(self: &Arc<Self>, tenant: Uuid, worker_id: Uuid) -> ActionStream {
        let shutdown = self.shutdown.clone().cancelled_owned();
        let (tx, rx) = mpsc::unbounded_channel();
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        {
            let mut reg = self.registry();
            reg.unsubscribed.remove(&worker_id);
            let entry = reg
                .workers
                .entry(worker_id)
                .or_insert_with(|| WorkerEntry::new(tenant));
            entry.tenant = tenant;
            for cancel in entry.pending_cancels.drain(..) {
                let _ = tx.send(Ok(cancel));
            }
            for inflight in entry.inflight.values().filter(|i| !i.started) {
                let _ = tx.send(Ok(inflight.action.clone()));
            }
            entry.conn = Some(Conn { id, tx });
            entry.disconnected_at = None;
        }
        self.wake_assigner();
        ActionStream {
            rx,
            shutdown: Box::pin(shutdown),
            _guard: ConnGuard {
                dispatch: self.clone(),
                worker_id,
                conn_id: id,
            },
        }
    }

    fn disconnect(&self, worker_id: Uuid, conn_id: u64) {
        let mut reg = self.registry();
        let remove = match reg.workers.get_mut(&worker_id) {
            Some(entry) if entry.conn.as_ref().is_some_and(|c| c.id == conn_id) => {
                entry.conn = None;
                entry.disconnected_at = Some(Instant::now());
                entry.inflight.is_empty() && entry.pending_cancels.is_empty()
            }
            _ => false,
        };
        if remove {
            reg.workers.remove(&worker_id);
        }
    }

    /// The worker unsubscribed: close its stream and forget it.
    pub(crate) fn unsubscribed(&self, worker_id: Uuid) {
        let mut reg = self.registry();
        reg.workers.remove(&worker_id);
        reg.unsubscribed.insert(worker_id, Instant::now());
    }

    /// The extension took the worker out of service (it missed heartbeats) and retried its attempts elsewhere:
    /// what was pushed to it must not be pushed again when it comes back.
    pub(crate) fn reaped(&self, worker_id: Uuid) {
        if let Some(entry) = self.registry().workers.get_mut(&worker_id) {
            entry.inflight.clear();
            entry.pending_cancels.clear();
        }
    }

    /// Whether the worker unsubscribed recently (then a heartbeat must not revive it).
    pub(crate) fn is_unsubscribed(&self, worker_id: Uuid) -> bool {
        self.registry().unsubscribed.contains_key(&worker_id)
    }

    /// The workers with a live stream on this server, grouped by tenant.
    pub(crate) fn connected_by_tenant(&self) -> Vec<(Uuid, Vec<Uuid>)> {
        let reg = self.registry();
        let mut by_tenant: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for (id, entry) in &reg.workers {
            if entry.conn.is_some() {
                by_tenant.entry(entry.tenant).or_default().push(*id);
            }
        }
        by_tenant.into_iter().collect()
    }

    /// The workers of one tenant with a live stream on this server.
    pub(crate) fn connected_of(&self, tenant: Uuid) -> Vec<Uuid> {
        let reg = self.registry();
        reg.workers
            .iter()
            .filter(|(_, e)| e.tenant == tenant && e.conn.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    /// Pushes fresh assignments to their workers. An attempt whose worker's stream just went away stays
    /// recorded and is pushed when the worker reconnects.
    pub(crate) fn deliver(&self, tenant: Uuid, assignments: &[Assignment]) {
        if assignments.is_empty() {
            return;
        }
        let mut reg = self.registry();
        for a in assignments {
            let action = start_action(tenant, a);
            let entry = reg
                .workers
                .entry(a.worker_id)
                .or_insert_with(|| WorkerEntry::new(tenant));
            let delivered = entry.send(action.clone());
            tracing::debug!(task_id = %a.task_id, worker_id = %a.worker_id, delivered, "pushed");
            if !delivered {
                tracing::debug!(worker_id = %a.worker_id, task_id = %a.task_id, "worker stream down; the assignment waits for its reconnect");
            }
            entry.inflight.insert(
                a.task_id,
                Inflight {
                    action,
                    started: false,
                },
            );
        }
    }

    /// Pushes fresh batches to their workers: one `START_BATCH` per batch (rows come grouped by batch, in member
    /// order). The batch is remembered under its batch id until the worker reports on it, and pushed again on a
    /// reconnect until then, like a single attempt.
    pub(crate) fn deliver_batches(&self, tenant: Uuid, members: &[BatchMember]) {
        let mut reg = self.registry();
        for batch in members.chunk_by(|a, b| a.batch_id == b.batch_id) {
            let action = start_batch_action(tenant, batch);
            let worker_id = batch[0].attempt.worker_id;
            let entry = reg
                .workers
                .entry(worker_id)
                .or_insert_with(|| WorkerEntry::new(tenant));
            let delivered = entry.send(action.clone());
            tracing::debug!(batch_id = %batch[0].batch_id, %worker_id, members = batch.len(), delivered, "pushed batch");
            entry.inflight.insert(
                batch[0].batch_id,
                Inflight {
                    action,
                    started: false,
                },
            );
        }
    }

    /// The worker reported on a batch (STARTED, or a terminal event for some members): it has the batch, so a
    /// reconnect must not push it again.
    pub(crate) fn batch_reported(&self, tenant: Uuid, worker_id: Option<Uuid>, batch_id: Uuid) {
        let mut reg = self.registry();
        if let Some(entry) = find_holder(&mut reg, tenant, worker_id, batch_id) {
            entry.inflight.remove(&batch_id);
        }
    }

    /// The worker sent STARTED for an attempt: it has it. The first STARTED of an attempt pushed from here, and any
    /// STARTED of one this server does not remember (pushed by another replica, or before a restart), is recorded in
    /// the database too ([`acker`]).
    pub(crate) fn acknowledge(
        &self,
        tenant: Uuid,
        worker_id: Option<Uuid>,
        task_id: Uuid,
        retry_count: i32,
    ) {
        tracing::debug!(%task_id, "started");
        let first = {
            let mut reg = self.registry();
            match find_holder(&mut reg, tenant, worker_id, task_id)
                .and_then(|entry| entry.inflight.get_mut(&task_id))
            {
                Some(inflight) => !std::mem::replace(&mut inflight.started, true),
                None => true,
            }
        };
        if first {
            self.acker.acknowledge(tenant, task_id, retry_count);
        }
    }

    /// The attempt reported COMPLETED or FAILED: nothing more to redeliver.
    pub(crate) fn finished(&self, tenant: Uuid, worker_id: Option<Uuid>, task_id: Uuid) {
        tracing::debug!(%task_id, "finished");
        let mut reg = self.registry();
        if let Some(entry) = find_holder(&mut reg, tenant, worker_id, task_id) {
            entry.inflight.remove(&task_id);
        }
    }

    /// The tenant of `worker_id` if this server pushed it exactly this attempt and has not seen it finish.
    pub(crate) fn pushed(&self, worker_id: Uuid, task_id: Uuid, retry_count: i32) -> Option<Uuid> {
        let reg = self.registry();
        let entry = reg.workers.get(&worker_id)?;
        let inflight = entry.inflight.get(&task_id)?;
        (inflight.action.retry_count == retry_count).then_some(entry.tenant)
    }

    /// Tells a worker to stop an attempt (it was cancelled or timed out in the extension). The CANCEL_STEP_RUN
    /// repeats the id and retry_count of the START, which is how the SDK finds the running task. Workers not
    /// known to this server are ignored: another server holds their stream.
    pub(crate) fn cancel(&self, worker_id: Uuid, task_id: Uuid, retry_count: i32) {
        let mut reg = self.registry();
        let Some(entry) = reg.workers.get_mut(&worker_id) else {
            return;
        };
        let action = match entry.inflight.remove(&task_id) {
            Some(inflight) => AssignedAction {
                action_type: ActionType::CancelStepRun as i32,
                action_payload: String::new(),
                retry_count,
                ..inflight.action
            },
            None => AssignedAction {
                tenant_id: entry.tenant.to_string(),
                task_run_external_id: task_id.to_string(),
                job_run_id: task_id.to_string(),
                action_type: ActionType::CancelStepRun as i32,
                retry_count,
                durable_task_invocation_count: Some(retry_count + 1),
                ..Default::default()
            },
        };
        if !entry.send(action.clone()) {
            entry.pending_cancels.push(action);
        }
    }

    /// A worker declared dead is back: it may still run the attempts that were taken from it and retried elsewhere,
    /// so it is told to cancel each, on its live stream or when its stream (re)opens here.
    pub(crate) fn cancel_reaped(&self, tenant: Uuid, worker_id: Uuid, attempts: &[(Uuid, i32)]) {
        if attempts.is_empty() {
            return;
        }
        self.registry()
            .workers
            .entry(worker_id)
            .or_insert_with(|| WorkerEntry::new(tenant));
        for &(task_id, retry_count) in attempts {
            self.cancel(worker_id, task_id, retry_count);
        }
    }

    /// Drops the memory of workers disconnected for long, and of old unsubscriptions.
    pub(crate) fn purge(&self) {
        let mut reg = self.registry();
        let now = Instant::now();
        reg.workers.retain(|_, e| {
            e.disconnected_at
                .is_none_or(|at| now.duration_since(at) < FORGET_DISCONNECTED_AFTER)
        });
        reg.unsubscribed
            .retain(|_, at| now.duration_since(*at) < REMEMBER_UNSUBSCRIBED_FOR);
    }
}

/// The tenant's worker entry holding an in-flight attempt: the named worker's, else any (the event's worker id is
/// the SDK's word, and a task id is unique). Another tenant's entries are never touched.
fn find_holder(
    reg: &mut Registry,
    tenant: Uuid,
    worker_id: Option<Uuid>,
    task_id: Uuid,
) -> Option<&mut WorkerEntry> {
    let named = worker_id.filter(|w| {
        reg.workers
            .get(w)
            .is_some_and(|e| e.tenant == tenant && e.inflight.contains_key(&task_id))
    });
    match named {
        Some(w) => reg.workers.get_mut(&w),
        None => reg
            .workers
            .values_mut()
            .find(|e| e.tenant == tenant && e.inflight.contains_key(&task_id)),
    }
}

/// The `START_STEP_RUN` action for an assignment (the fields set as Hatchet's own dispatcher sets them).
fn start_action(tenant: Uuid, a: &Assignment) -> AssignedAction {
    let task_name = a.readable_id.clone().unwrap_or_else(|| {
        a.queue
            .split_once(':')
            .map_or(a.queue.as_str(), |(_, task)| task)
            .to_owned()
    });
    AssignedAction {
        tenant_id: tenant.to_string(),
        workflow_run_id: a.run_id.unwrap_or(a.task_id).to_string(),
        job_name: task_name.clone(),
        job_run_id: a.task_id.to_string(),
        task_run_external_id: a.task_id.to_string(),
        action_id: a.queue.clone(),
        action_type: ActionType::StartStepRun as i32,
        action_payload: action_payload(a.readable_id.is_some(), &a.input).to_string(),
        task_name,
        retry_count: a.retry_count,
        // Each attempt of a durable task is a new invocation of its event log (sql/durable.sql): an eviction ends
        // the attempt and the restored one is the next. Other tasks ignore it.
        durable_task_invocation_count: Some(a.retry_count + 1),
        additional_metadata: Some(a.additional_metadata.to_string()),
        // Retries run at the extension's internal priority 4; the SDK knows only 1..3.
        priority: a.priority.clamp(1, 3),
        task_inserted_at: Some(timestamp(a.task_inserted_at)),
        // Runs started by an event carry it in their metadata (hatchet.push_event adds these two keys).
        triggering_event_external_id: metadata_str(&a.additional_metadata, "hatchet__event_id"),
        triggering_event_key: metadata_str(&a.additional_metadata, "hatchet__event_key"),
        // The TypeScript SDK's ctx.parentWorkflowRunId() reads this.
        parent_workflow_run_id: a.parent_run_id.map(|id| id.to_string()),
        ..Default::default()
    }
}

/// The `START_BATCH` action of one batch (its members, in order). The SDKs read the members from the action payload,
/// a JSON object from each member's task id to `{"payload": <its action payload>, "workflow_run_id": <its run>}`,
/// and report on them with `SendBatchActionEvent` naming the batch id. The per-task fields are the first member's
/// (a child run spawned from the batch handler is that member's child).
fn start_batch_action(tenant: Uuid, batch: &[BatchMember]) -> AssignedAction {
    let first = &batch[0];
    let items: serde_json::Map<String, Value> = batch
        .iter()
        .map(|m| {
            let a = &m.attempt;
            (
                a.task_id.to_string(),
                json!({
                    "payload": action_payload(a.readable_id.is_some(), &a.input),
                    "workflow_run_id": a.run_id.unwrap_or(a.task_id).to_string(),
                }),
            )
        })
        .collect();
    let size = i32::try_from(batch.len()).unwrap_or(i32::MAX);
    AssignedAction {
        action_type: ActionType::StartBatch as i32,
        action_payload: Value::Object(items).to_string(),
        // One attempt number for the whole batch: members report with it, and the extension resolves each member's
        // own attempt from the batch id (hatchet.batch_attempts).
        retry_count: 0,
        durable_task_invocation_count: None,
        batch_id: Some(first.batch_id.to_string()),
        batch_size: Some(size),
        batch_index: Some(0),
        batch_key: Some(first.batch_key.clone()),
        batch_start_payload: Some(BatchStartPayload {
            trigger_reason: first.trigger_reason.clone(),
            trigger_time: Some(timestamp(chrono::Utc::now())),
            expected_size: size,
        }),
        ..start_action(tenant, &first.attempt)
    }
}

fn metadata_str(metadata: &Value, key: &str) -> Option<String> {
    metadata.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// The SDK's action payload. A workflow task (one with a readable id) stores its input in that shape already
/// (`{"input", "parents", ...}`); a task enqueued with `hatchet.enqueue` stores its bare input, which becomes `input`.
fn action_payload(is_workflow_task: bool, input: &Value) -> Value {
    if is_workflow_task && input.get("input").is_some() {
        return input.clone();
    }
    json!({ "input": input, "parents": {}, "triggered_by": "manual" })
}

/// A worker's `ListenV2` stream. Ends when the server shuts down; dropping it (the client went away) marks the
/// worker disconnected, unless a newer stream of the same worker already replaced this one.
pub(crate) struct ActionStream {
    rx: mpsc::UnboundedReceiver<Result<AssignedAction, tonic::Status>>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Held for its `Drop`.
    _guard: ConnGuard,
}

struct ConnGuard {
    dispatch: Arc<Dispatch>,
    worker_id: Uuid,
    conn_id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.dispatch.disconnect(self.worker_id, self.conn_id);
    }
}

impl tokio_stream::Stream for ActionStream {
    type Item = Result<AssignedAction, tonic::Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.shutdown.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        self.rx.poll_recv(cx)
    }
}
