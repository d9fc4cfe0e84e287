//! Streaming: `EventsService.PutStreamEvent` (the SDK's `ctx.put_stream`) and `Dispatcher.SubscribeToWorkflowEvents`
//! (`hatchet.runs.subscribe_to_stream(run_id)` and the older `ref.stream()`).
//!
//! Chunks are stored by `hatchet.put_stream_chunk` ([`crate::db::streams`]) and announced with NOTIFY
//! `hatchet_stream`, so a chunk put through one server reaches a subscriber on another, and nothing is lost when a
//! server restarts. Each subscription is a small loop over its run:
//!
//! 1. read the run's state (`hatchet.run_stream_state`: run status, task statuses, outputs, errors) — first, so that
//!    when it says "finished", every chunk of the run has already committed (a task's chunks are put before the
//!    worker reports it done);
//! 2. send a STEP_RUN STARTED for each task newly seen running, then the new chunks (STEP_RUN STREAM, in arrival
//!    order, which for one task is its `event_index` order), then STEP_RUN COMPLETED / FAILED / CANCELLED for tasks
//!    newly finished, with the output JSON or the error as payload;
//! 3. once the run is finished, one WORKFLOW_RUN event with its final status and `hangup = true`; the SDK stops
//!    reading there;
//! 4. sleep until a NOTIFY names the run, or [`POLL`] passes (a run can finish without a chunk).
//!
//! A subscription by additional metadata (`additional_meta_key` / `_value`, the SDK's
//! `stream_by_additional_metadata`) follows every matching run created after it started the same way, without the
//! hangup, until the client leaves.
//!
//! Chunks of concurrently running tasks can commit out of `seq` order, so a reader keeps re-reading the last few
//! seconds of chunks (until `read_stream_chunks` reports them settled) and skips the ones it already sent.
//!
//! The `StreamHub` holds this server's single `LISTEN hatchet_stream` connection (started on first use) and prunes
//! old chunks every [`PRUNE_EVERY`] (`hatchet.prune_stream_chunks`).

use super::Dispatch;
use crate::db::{self, streams::RunStreamState};
use crate::error::AppError;
use crate::proto::{self, timestamp, ResourceEventType, ResourceType, ResponseStream};
use crate::status::{RunStatus, TaskStatus};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgListener;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

/// NOTIFY channel of new chunks; the payload is the run id.
const STREAM_CHANNEL: &str = "hatchet_stream";

/// Longest time between two looks at a subscribed run.
const POLL: Duration = Duration::from_millis(200);

/// How often this server deletes chunks of runs that finished a while ago.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Events buffered per subscriber before the loop waits for the client.
const BUFFER: usize = 256;

/// This server's side of streaming: wake-ups for subscribers, fed by one LISTEN connection.
#[derive(Debug)]
pub(crate) struct StreamHub {
    /// Run ids with new chunks; `Uuid::nil()` wakes every subscriber (after a reconnect notifications may be lost).
    wake: broadcast::Sender<Uuid>,
    started: AtomicBool,
}

impl Default for StreamHub {
    fn default() -> Self {
        Self {
            wake: broadcast::channel(1024).0,
            started: AtomicBool::new(false),
        }
    }
}

/// Starts the LISTEN and prune loops the first time it is called; cheap afterwards.
fn ensure_started(dispatch: &Arc<Dispatch>) {
    if dispatch.streams.started.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(listen_loop(dispatch.clone()));
    tokio::spawn(prune_loop(dispatch.clone()));
}

async fn listen_loop(dispatch: Arc<Dispatch>) {
    let hub = &dispatch.streams;
    let mut backoff = Duration::from_millis(100);
    loop {
        let connected = tokio::select! {
            l = async {
                let mut l = PgListener::connect_with(&dispatch.pool).await?;
                l.listen(STREAM_CHANNEL).await?;
                Ok::<_, sqlx::Error>(l)
            } => l,
            () = dispatch.shutdown.cancelled() => return,
        };
        match connected {
            Ok(mut listener) => {
                backoff = Duration::from_millis(100);
                let _ = hub.wake.send(Uuid::nil());
                loop {
                    let next = tokio::select! {
                        n = listener.try_recv() => n,
                        () = dispatch.shutdown.cancelled() => return,
                    };
                    match next {
                        Ok(Some(n)) => {
                            if let Ok(run) = Uuid::parse_str(n.payload()) {
                                let _ = hub.wake.send(run);
                            }
                        }
                        Ok(None) => {
                            let _ = hub.wake.send(Uuid::nil());
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "stream LISTEN connection failed; reconnecting");
                            break;
                        }
                    }
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, ?backoff, "cannot LISTEN for stream chunks; retrying")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = dispatch.shutdown.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn prune_loop(dispatch: Arc<Dispatch>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(PRUNE_EVERY) => {}
            () = dispatch.shutdown.cancelled() => return,
        }
        match db::maintenance::prune_stream_chunks(&dispatch.pool).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "pruned stream chunks"),
            Err(err) => tracing::warn!(error = %err, "pruning stream chunks failed"),
        }
    }
}

/// `PutStreamEvent`: stores one chunk (a resent chunk with the same `event_index` is stored once).
pub(crate) async fn put_chunk(
    dispatch: &Arc<Dispatch>,
    tenant: Uuid,
    task_id: Uuid,
    message: &[u8],
    event_index: Option<i64>,
    created_at: Option<DateTime<Utc>>,
) -> Result<(), AppError> {
    ensure_started(dispatch);
    db::streams::put_stream_chunk(
        &dispatch.requests,
        tenant,
        task_id,
        message,
        event_index,
        created_at,
    )
    .await?;
    Ok(())
}

/// `SubscribeToWorkflowEvents` for one run: checks the run exists (NOT_FOUND otherwise), then streams as described
/// in the module docs.
pub(crate) async fn subscribe_run(
    dispatch: &Arc<Dispatch>,
    tenant: Uuid,
    run: Uuid,
) -> Result<ResponseStream<proto::WorkflowEvent>, AppError> {
    ensure_started(dispatch);
    // Subscribe to wake-ups before the first read, so no chunk can slip between the read and the wait.
    let wake = dispatch.streams.wake.subscribe();
    let first = run_state(dispatch, tenant, run).await?;
    let (tx, rx) = mpsc::channel(BUFFER);
    let mut sub = Subscription {
        dispatch: dispatch.clone(),
        tenant,
        tx,
    };
    tokio::spawn(async move {
        if let Err(status) = sub.serve(RunStream::new(run), first, wake).await {
            let _ = sub.tx.send(Err(status)).await;
        }
    });
    Ok(Box::pin(ReceiverStream::new(rx)))
}

/// How far back a metadata subscription looks for runs when it starts, and how much it re-reads each time (runs can
/// commit out of creation order).
const METADATA_LOOKBACK: Duration = Duration::from_secs(5);

/// `SubscribeToWorkflowEvents` by additional metadata (`hatchet.listener.stream_by_additional_metadata`): the events
/// of every run whose `additional_metadata[key] = value` that was created after the subscription started (or just
/// before, see [`METADATA_LOOKBACK`]). Runs are found with `hatchet.find_runs_by_metadata` each poll; each is
/// streamed like a single-run subscription, except that its end sends no hangup: the stream stays open for later
/// runs until the client leaves.
pub(crate) fn subscribe_metadata(
    dispatch: &Arc<Dispatch>,
    tenant: Uuid,
    key: &str,
    value: &str,
) -> ResponseStream<proto::WorkflowEvent> {
    ensure_started(dispatch);
    let (tx, rx) = mpsc::channel(BUFFER);
    let mut sub = Subscription {
        dispatch: dispatch.clone(),
        tenant,
        tx,
    };
    let (key, value) = (key.to_owned(), value.to_owned());
    let wake = dispatch.streams.wake.subscribe();
    tokio::spawn(async move {
        if let Err(status) = sub.serve_metadata(&key, &value, wake).await {
            let _ = sub.tx.send(Err(status)).await;
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

async fn run_state(
    dispatch: &Dispatch,
    tenant: Uuid,
    run: Uuid,
) -> Result<RunStreamState, AppError> {
    Ok(db::streams::run_stream_state(&dispatch.requests, tenant, run).await?)
}

/// What has been sent for one task.
#[derive(Debug, Default, Clone, Copy)]
struct TaskSent {
    started: bool,
    finished: bool,
}

/// What one subscriber has been sent of one run.
struct RunStream {
    run: Uuid,
    /// Every chunk at or below this seq has been sent and settled.
    watermark: i64,
    /// Chunks above the watermark already sent.
    sent_chunks: HashSet<i64>,
    tasks: HashMap<Uuid, TaskSent>,
}

impl RunStream {
    fn new(run: Uuid) -> Self {
        Self {
            run,
            watermark: 0,
            sent_chunks: HashSet::new(),
            tasks: HashMap::new(),
        }
    }
}

/// One subscriber: where its events go.
struct Subscription {
    dispatch: Arc<Dispatch>,
    tenant: Uuid,
    tx: mpsc::Sender<Result<proto::WorkflowEvent, tonic::Status>>,
}

/// What [`Subscription::step`] found.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// The run goes on.
    Running,
    /// The run finished and its last event was sent.
    Finished,
    /// The client is gone.
    Closed,
}

impl Subscription {
    /// Waits for a wake-up naming one of `runs` (any run when empty), the poll interval, the client leaving or
    /// shutdown; false for the last two.
    async fn wait(&self, wake: &mut broadcast::Receiver<Uuid>, runs: &[Uuid]) -> bool {
        let deadline = tokio::time::sleep(POLL);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                woken = wake.recv() => match woken {
                    Ok(id) if id.is_nil() || runs.is_empty() || runs.contains(&id) => return true,
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(_)) => return true,
                    Err(broadcast::error::RecvError::Closed) => { deadline.as_mut().await; return true }
                },
                () = &mut deadline => return true,
                () = self.tx.closed() => return false,
                () = self.dispatch.shutdown.cancelled() => return false,
            }
        }
    }

    async fn serve(
        &mut self,
        mut run: RunStream,
        first: RunStreamState,
        mut wake: broadcast::Receiver<Uuid>,
    ) -> Result<(), tonic::Status> {
        let mut current = first;
        loop {
            if self.step(&mut run, &current, true).await? != Step::Running {
                return Ok(());
            }
            if !self.wait(&mut wake, &[run.run]).await {
                return Ok(());
            }
            current = run_state(&self.dispatch, self.tenant, run.run).await?;
        }
    }

    async fn serve_metadata(
        &mut self,
        key: &str,
        value: &str,
        mut wake: broadcast::Receiver<Uuid>,
    ) -> Result<(), tonic::Status> {
        let started = chrono::Utc::now();
        let lookback = chrono::Duration::from_std(METADATA_LOOKBACK).unwrap_or_default();
        let mut cursor = started - lookback;
        let mut seen: HashSet<Uuid> = HashSet::new();
        let mut live: Vec<RunStream> = Vec::new();
        loop {
            let runs = db::runs::find_runs_by_metadata(
                &self.dispatch.requests,
                self.tenant,
                key,
                value,
                cursor,
            )
            .await
            .map_err(AppError::from)?;
            let mut newest = cursor;
            for (run, created) in runs {
                newest = newest.max(created);
                if seen.insert(run) {
                    if live.len() >= self.dispatch.max_subscriptions {
                        return Err(tonic::Status::resource_exhausted(format!(
                            "this stream already follows {} unfinished runs, the most one stream may follow",
                            self.dispatch.max_subscriptions
                        )));
                    }
                    live.push(RunStream::new(run));
                }
            }
            // Keep re-reading the last few seconds: a run created earlier may commit later.
            cursor = cursor.max(newest - lookback);
            let mut still = Vec::with_capacity(live.len());
            for mut run in live {
                let current = run_state(&self.dispatch, self.tenant, run.run).await?;
                match self.step(&mut run, &current, false).await? {
                    Step::Running => still.push(run),
                    Step::Finished => {}
                    Step::Closed => return Ok(()),
                }
            }
            live = still;
            let ids: Vec<Uuid> = live.iter().map(|r| r.run).collect();
            // With no live run only the poll (or a NOTIFY for any run) wakes us to look for new runs.
            if !self.wait(&mut wake, &ids).await {
                return Ok(());
            }
        }
    }

    /// Sends what is new of one run; `hangup` marks its final WORKFLOW_RUN event as the end of the stream.
    async fn step(
        &mut self,
        stream: &mut RunStream,
        current: &RunStreamState,
        hangup: bool,
    ) -> Result<Step, tonic::Status> {
        let run_id = stream.run.to_string();
        let now = Some(timestamp(chrono::Utc::now()));
        let event = |resource_type: ResourceType,
                     event_type: ResourceEventType,
                     resource_id: String,
                     payload: String| proto::WorkflowEvent {
            workflow_run_id: run_id.clone(),
            resource_type: resource_type as i32,
            event_type: event_type as i32,
            resource_id,
            event_timestamp: now,
            event_payload: payload,
            hangup: false,
            task_retries: None,
            retry_count: None,
            event_index: None,
        };

        // Tasks that started (or finished without us seeing them run).
        let mut out = Vec::new();
        for t in &current.tasks {
            let sent = stream.tasks.entry(t.task_id).or_default();
            if !sent.started && t.status.has_started() {
                sent.started = true;
                let mut e = event(
                    ResourceType::StepRun,
                    ResourceEventType::Started,
                    t.task_id.to_string(),
                    String::new(),
                );
                e.retry_count = t.retry_count;
                out.push(e);
            }
        }

        // New chunks, in arrival order.
        let chunks = db::streams::read_stream_chunks(
            &self.dispatch.requests,
            self.tenant,
            stream.run,
            stream.watermark,
        )
        .await
        .map_err(AppError::from)?;
        let mut settled_prefix = true;
        for chunk in chunks {
            if stream.sent_chunks.insert(chunk.seq) {
                let mut e = event(
                    ResourceType::StepRun,
                    ResourceEventType::Stream,
                    chunk.task_id.to_string(),
                    String::from_utf8_lossy(&chunk.message).into_owned(),
                );
                e.retry_count = chunk.retry_count;
                e.event_index = chunk.event_index;
                out.push(e);
            }
            if settled_prefix && chunk.settled {
                stream.watermark = chunk.seq;
                stream.sent_chunks.remove(&chunk.seq);
            } else {
                settled_prefix = false;
            }
        }

        // Tasks that finished.
        for t in &current.tasks {
            let sent = stream.tasks.entry(t.task_id).or_default();
            let kind = match t.status {
                TaskStatus::Completed | TaskStatus::Skipped => ResourceEventType::Completed,
                TaskStatus::Failed => ResourceEventType::Failed,
                TaskStatus::Cancelled => ResourceEventType::Cancelled,
                TaskStatus::Pending | TaskStatus::Queued | TaskStatus::Running => continue,
            };
            if sent.finished {
                continue;
            }
            sent.finished = true;
            let payload = match kind {
                ResourceEventType::Completed => t
                    .output
                    .clone()
                    .unwrap_or_else(|| serde_json::json!({}))
                    .to_string(),
                _ => t.status.sdk_error(t.error.as_deref()).unwrap_or_default(),
            };
            let mut e = event(ResourceType::StepRun, kind, t.task_id.to_string(), payload);
            e.retry_count = t.retry_count;
            out.push(e);
        }

        // The run finished: the last event, with hangup.
        let finished = match current.status {
            RunStatus::Completed => Some(ResourceEventType::Completed),
            RunStatus::Failed => Some(ResourceEventType::Failed),
            RunStatus::Cancelled => Some(ResourceEventType::Cancelled),
            RunStatus::Queued | RunStatus::Running => None,
        };
        if let Some(kind) = finished {
            let mut e = event(
                ResourceType::WorkflowRun,
                kind,
                stream.run.to_string(),
                String::new(),
            );
            e.hangup = hangup;
            out.push(e);
        }

        for e in out {
            if self.tx.send(Ok(e)).await.is_err() {
                return Ok(Step::Closed);
            }
        }
        Ok(if finished.is_some() {
            Step::Finished
        } else {
            Step::Running
        })
    }
}
