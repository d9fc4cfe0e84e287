//! `SubscribeToWorkflowRuns`: one bidi stream per client process, many run ids multiplexed on it.
//!
//! Each id the client sends becomes a subscription. The watcher loop checks the subscribed runs whenever it is
//! woken (a completion batch or a failure on this server, a `hatchet_cancel` NOTIFY, a new subscription) and at
//! least every [`POLL`] (a run may finish through another server, a schedule timeout or a cancellation), and sends
//! exactly one FINISHED event per run once it is terminal, with one result per task: output JSON or error text (empty
//! for a cancelled task)
//! (one `hatchet.finished_runs` call per tenant and look).
//! A run that is already terminal when subscribed is answered at once. Subscribing twice to one run (the client
//! re-sends its pending ids on every reconnect) is harmless: each stream gets its answer once. One stream may wait
//! for at most `max_subscriptions_per_stream` runs at once ([`crate::config::ServerConfig`]); the next
//! subscription ends it with RESOURCE_EXHAUSTED.

use super::Dispatch;
use crate::db::runs::{self as db, RunTask};
use crate::proto::{
    timestamp, ResponseStream, StepRunResult, SubscribeToWorkflowRunsRequest, WorkflowRunEvent,
    WorkflowRunEventType,
};
use crate::status::TaskStatus;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::WaitForCancellationFutureOwned;
use uuid::Uuid;

/// Longest time between two looks at the subscribed runs.
const POLL: Duration = Duration::from_millis(250);

type EventSender = mpsc::UnboundedSender<Result<WorkflowRunEvent, tonic::Status>>;

/// (tenant, run) to the streams waiting for it, each with its stream id.
type SubscriptionMap = HashMap<(Uuid, Uuid), Vec<(u64, EventSender)>>;

/// Most run ids in one `hatchet.finished_runs` call (the function refuses more than 10,000).
const FINISHED_RUNS_CHUNK: usize = 5_000;

#[derive(Debug, Default)]
struct Inner {
    runs: SubscriptionMap,
    /// How many runs each stream waits for (for the per-stream cap).
    per_stream: HashMap<u64, usize>,
}

/// The subscribed runs of every stream on this server.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    inner: Mutex<Inner>,
    next_id: AtomicU64,
}

impl Subscriptions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Subscribes a stream to a run; false (and nothing changes) if the stream already waits for `cap` runs.
    fn add(&self, tenant: Uuid, run: Uuid, stream: u64, tx: &EventSender, cap: usize) -> bool {
        let mut inner = self.lock();
        let Inner { runs, per_stream } = &mut *inner;
        let subs = runs.entry((tenant, run)).or_default();
        if subs.iter().any(|(id, _)| *id == stream) {
            return true;
        }
        let count = per_stream.entry(stream).or_default();
        if *count >= cap {
            if subs.is_empty() {
                runs.remove(&(tenant, run));
            }
            return false;
        }
        *count += 1;
        subs.push((stream, tx.clone()));
        true
    }

    fn remove_stream(&self, stream: u64) {
        let mut inner = self.lock();
        inner.per_stream.remove(&stream);
        inner.runs.retain(|_, subs| {
            subs.retain(|(id, _)| *id != stream);
            !subs.is_empty()
        });
    }

    /// The subscribed runs, by tenant.
    fn watched(&self) -> HashMap<Uuid, Vec<Uuid>> {
        let mut by_tenant: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for (tenant, run) in self.lock().runs.keys() {
            by_tenant.entry(*tenant).or_default().push(*run);
        }
        by_tenant
    }

    fn take(&self, tenant: Uuid, run: Uuid) -> Vec<(u64, EventSender)> {
        let mut inner = self.lock();
        let taken = inner.runs.remove(&(tenant, run)).unwrap_or_default();
        for (stream, _) in &taken {
            if let Some(count) = inner.per_stream.get_mut(stream) {
                *count = count.saturating_sub(1);
            }
        }
        taken
    }

    /// Whether no subscription is open.
    fn is_empty(&self) -> bool {
        self.lock().runs.is_empty()
    }
}

/// Serves one `SubscribeToWorkflowRuns` stream: reads run ids from the client and returns the event stream.
pub(crate) fn subscribe(
    dispatch: &Arc<Dispatch>,
    tenant: Uuid,
    mut incoming: tonic::Streaming<SubscribeToWorkflowRunsRequest>,
) -> ResponseStream<WorkflowRunEvent> {
    let (tx, rx) = mpsc::unbounded_channel();
    let stream_id = dispatch.runs.next_id.fetch_add(1, Ordering::Relaxed);
    let reader_dispatch = dispatch.clone();
    let reader = tokio::spawn(async move {
        let dispatch = &reader_dispatch;
        loop {
            let message = tokio::select! {
                m = incoming.message() => m,
                () = dispatch.shutdown.cancelled() => return,
            };
            match message {
                Ok(Some(req)) => match Uuid::parse_str(req.workflow_run_id.trim()) {
                    Ok(run) => {
                        if !dispatch.runs.add(
                            tenant,
                            run,
                            stream_id,
                            &tx,
                            dispatch.max_subscriptions,
                        ) {
                            let _ = tx.send(Err(tonic::Status::resource_exhausted(format!(
                                "this stream already waits for {} runs, the most one stream may follow; \
                                 open another stream or wait for some to finish",
                                dispatch.max_subscriptions
                            ))));
                            dispatch.runs.remove_stream(stream_id);
                            return;
                        }
                        dispatch.wake_runs();
                    }
                    // One bad id must not end a stream that multiplexes the whole process's runs.
                    Err(_) => {
                        tracing::debug!(id = %req.workflow_run_id, "ignoring a subscription to a malformed run id")
                    }
                },
                Ok(None) | Err(_) => return,
            }
        }
    });
    Box::pin(RunEventStream {
        rx,
        shutdown: Box::pin(dispatch.shutdown.clone().cancelled_owned()),
        dispatch: dispatch.clone(),
        stream_id,
        reader,
    })
}

struct RunEventStream {
    rx: mpsc::UnboundedReceiver<Result<WorkflowRunEvent, tonic::Status>>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    dispatch: Arc<Dispatch>,
    stream_id: u64,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for RunEventStream {
    fn drop(&mut self) {
        self.reader.abort();
        self.dispatch.runs.remove_stream(self.stream_id);
    }
}

impl tokio_stream::Stream for RunEventStream {
    type Item = Result<WorkflowRunEvent, tonic::Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if std::future::Future::poll(self.shutdown.as_mut(), cx).is_ready() {
            return Poll::Ready(None);
        }
        self.rx.poll_recv(cx)
    }
}

/// The watcher loop; ends on shutdown.
pub(crate) async fn run(dispatch: Arc<Dispatch>) {
    loop {
        tokio::select! {
            () = dispatch.runs_wake.notified() => {}
            () = tokio::time::sleep(POLL) => {}
            () = dispatch.shutdown.cancelled() => return,
        }
        if dispatch.runs.is_empty() {
            continue;
        }
        check(&dispatch).await;
    }
}

/// `hatchet.finished_runs` per tenant, in chunks of at most [`FINISHED_RUNS_CHUNK`] ids: which subscribed runs are
/// finished, with their results. A tenant whose call fails is logged and skipped; the others are still answered.
async fn check(dispatch: &Dispatch) {
    for (tenant, runs) in dispatch.runs.watched() {
        for chunk in runs.chunks(FINISHED_RUNS_CHUNK) {
            let finished = match db::finished_runs(&dispatch.pool, tenant, chunk).await {
                Ok(finished) => finished,
                Err(err) => {
                    tracing::warn!(%tenant, error = %err, "checking subscribed runs failed for this tenant; retrying");
                    continue;
                }
            };
            for run in finished {
                let event = finished_event(run.run_id, &run.tasks);
                for (_, tx) in dispatch.runs.take(tenant, run.run_id) {
                    let _ = tx.send(Ok(event.clone()));
                }
            }
        }
    }
}

/// The FINISHED event of a terminal run: one result per created task, keyed by readable id (`task_name`), with
/// the output as JSON text or the error. Skipped tasks report `{"skipped": true}` as Hatchet does; cancelled tasks
/// an empty error, as Hatchet's engine does (the SDK reads an empty error as none: a run whose task was cancelled
/// by a condition or a user does not raise).
fn finished_event(run: Uuid, tasks: &[RunTask]) -> WorkflowRunEvent {
    let results = tasks
        .iter()
        .filter_map(|t| {
            let task_id = t.task_id?;
            let output = t.sdk_output().map(|o| o.to_string());
            let error = match t.status {
                TaskStatus::Cancelled => Some(String::new()),
                _ => t.result_error(),
            };
            if output.is_none() && error.is_none() {
                return None;
            }
            Some(StepRunResult {
                task_run_external_id: task_id.to_string(),
                task_name: t.readable_id.clone().unwrap_or_default(),
                job_run_id: task_id.to_string(),
                error,
                output,
            })
        })
        .collect();
    WorkflowRunEvent {
        workflow_run_id: run.to_string(),
        event_type: WorkflowRunEventType::Finished as i32,
        event_timestamp: Some(timestamp(chrono::Utc::now())),
        results,
    }
}
