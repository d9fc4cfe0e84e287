//! `/Dispatcher/*`: the worker lifecycle.
//!
//! | RPC | what it does |
//! |---|---|
//! | `Register` | `hatchet.register_worker` with the actions, `slot_config` (or the legacy `slots`) and labels, under an id the server chooses; waits out a database outage for up to 25 s |
//! | `ListenV2` (and the legacy `Listen`) | the worker's action stream, fed by [`crate::dispatch`]; its start waits out a database outage for up to 120 s |
//! | `Heartbeat` | `hatchet.heartbeat`, one statement per tenant and 250 ms for all workers (`dispatch::heartbeats`); a worker the extension declared dead while it was alive is registered again |
//! | `SendStepActionEvent` | STARTED: acknowledgement (batched `acknowledge_attempts`); COMPLETED: batched `complete_many`; FAILED: `fail` (retry_after_ms: `fail(retry_after)`); COMPLETED and FAILED wait out a database outage for up to 120 s |
//! | `SendBatchActionEvent` | a batch task's STARTED / COMPLETED / FAILED / CANCELLED for members of one batch: each member's running attempt in that batch (`hatchet.batch_attempts`) is acknowledged, completed, failed or cancelled as a single attempt would be |
//! | `RefreshTimeout`, `ReleaseSlot`, `UpsertWorkerLabels` | the matching extension function |
//! | `Unsubscribe` | `hatchet.deregister_worker`: its running attempts are retried elsewhere |
//! | `SubscribeToWorkflowRuns` | one FINISHED event per subscribed run, see [`crate::dispatch::runs`] |
//! | `SubscribeToWorkflowEvents` | a run's task events and stream chunks (or every run's with a metadata key and value), see [`crate::dispatch::streams`] |
//! | `GetVersion` | [`ENGINE_VERSION`] |
//! | `PutOverridesData` | accepted and ignored, as in Hatchet's v1 engine |
//!
//! Every attempt event is idempotent per `(task_run_external_id, retry_count)`: STARTED arrives twice, and a
//! COMPLETED or FAILED resent for an attempt that is already finished (or was cancelled or timed out meanwhile)
//! succeeds without changing anything, so the SDK's retries never turn into errors or double effects.

use super::{parse_id, unimplemented};
use crate::auth::grpc::{bearer_of, guard_stream, tenant_of};
use crate::config::ENGINE_VERSION;
use crate::db::{tasks, workers as db};
use crate::dispatch::{runs, streams};
use crate::error::{when_reachable, AppError, OUTAGE_WAIT, REGISTER_WAIT};
use crate::proto::{
    self, dispatcher_server::Dispatcher, timestamp, ResponseStream, StepActionEventType,
};
use crate::state::AppState;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

/// The `Dispatcher` service.
#[derive(Debug, Clone)]
pub(crate) struct DispatcherService {
    state: AppState,
}

impl DispatcherService {
    /// A service over the shared state.
    pub(crate) fn new(state: AppState) -> Self {
        Self { state }
    }

    async fn listen_stream(
        &self,
        request: Request<proto::WorkerListenRequest>,
    ) -> Result<ResponseStream<proto::AssignedAction>, Status> {
        let tenant = tenant_of(&request)?.0;
        let worker_id = parse_id("worker_id", &request.get_ref().worker_id)?;
        // A worker reconnecting during a database outage waits for it, like its COMPLETED events do: failing the
        // stream's start makes the SDK retry only a few times before it gives the worker up.
        when_reachable(OUTAGE_WAIT, Some(&self.state.shutdown), "listen", || {
            ensure_alive(&self.state, tenant, worker_id)
        })
        .await?;
        let stream = self.state.dispatch.connect(tenant, worker_id);
        tracing::debug!(%worker_id, "worker stream opened");
        guard_stream(&self.state.auth, &request, Box::pin(stream))
    }
}

/// Worker labels as the extension stores them: `{key: "value" | 42}`.
pub(crate) fn labels_json(labels: &HashMap<String, proto::WorkerLabels>) -> Value {
    let mut out = Map::new();
    for (key, label) in labels {
        if let Some(s) = &label.str_value {
            out.insert(key.clone(), Value::String(s.clone()));
        } else if let Some(i) = label.int_value {
            out.insert(key.clone(), Value::from(i));
        }
    }
    Value::Object(out)
}

/// Makes sure a worker exists and is in service. A worker the extension reaped (no heartbeat for 30 s, say
/// after a long pause or a server outage) but that is evidently alive is registered again under its id, with the
/// actions, slots and labels it had, and told to cancel the attempts taken from it (they were retried elsewhere);
/// one that unsubscribed must register anew.
async fn ensure_alive(state: &AppState, tenant: Uuid, worker_id: Uuid) -> Result<(), AppError> {
    let Some(record) = db::worker(&state.pool, tenant, worker_id).await? else {
        return Err(AppError::NotFound(format!(
            "worker {worker_id} is not registered"
        )));
    };
    if record.is_active {
        return Ok(());
    }
    if state.dispatch.is_unsubscribed(worker_id) {
        return Err(AppError::FailedPrecondition(format!(
            "worker {worker_id} unsubscribed; register it again"
        )));
    }
    tracing::info!(%worker_id, name = %record.name, "worker was declared dead but is alive; registering it again");
    // Its running attempts were retried elsewhere when it was reaped; late results for them are ignored as stale.
    state.dispatch.reaped(worker_id);
    db::register_worker(
        &state.pool,
        tenant,
        &record.name,
        &record.actions,
        &record.slots,
        &record.labels,
        Some(worker_id),
    )
    .await?;
    let reaped = db::take_reaped_attempts(&state.pool, tenant, worker_id).await?;
    if !reaped.is_empty() {
        tracing::info!(%worker_id, attempts = reaped.len(), "cancelling the attempts taken from the returning worker");
    }
    state.dispatch.cancel_reaped(tenant, worker_id, &reaped);
    Ok(())
}

/// A COMPLETED event's payload: the task output as JSON text (empty or `null` means no output).
fn parse_output(payload: &str) -> Result<Value, AppError> {
    if payload.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(payload) {
        Ok(Value::Null) => Ok(json!({})),
        Ok(value) => Ok(value),
        Err(err) => Err(AppError::InvalidArgument(format!(
            "the output of a COMPLETED event must be JSON: {err}"
        ))),
    }
}

#[tonic::async_trait]
impl Dispatcher for DispatcherService {
    async fn register(
        &self,
        request: Request<proto::WorkerRegisterRequest>,
    ) -> Result<Response<proto::WorkerRegisterResponse>, Status> {
        let tenant = tenant_of(&request)?.0;
        let r = request.into_inner();
        let slots = if !r.slot_config.is_empty() {
            json!(r.slot_config)
        } else if let Some(n) = r.slots {
            json!({ "default": n })
        } else {
            json!({ "default": 100 })
        };
        // The server chooses the id, so a registration retried through a database outage (whose first try may have
        // committed without an answer) is the same worker, not a second row.
        let labels = labels_json(&r.labels);
        let chosen = Uuid::new_v4();
        let worker_id = when_reachable(
            REGISTER_WAIT,
            Some(&self.state.shutdown),
            "register",
            || async {
                db::register_worker(
                    &self.state.pool,
                    tenant,
                    &r.worker_name,
                    &r.actions,
                    &slots,
                    &labels,
                    Some(chosen),
                )
                .await
                .map_err(AppError::from)
            },
        )
        .await?;
        tracing::info!(%worker_id, name = %r.worker_name, actions = r.actions.len(), "worker registered");
        self.state.dispatch.changed(Some(tenant));
        Ok(Response::new(proto::WorkerRegisterResponse {
            tenant_id: tenant.to_string(),
            worker_id: worker_id.to_string(),
            worker_name: r.worker_name,
        }))
    }

    type ListenStream = ResponseStream<proto::AssignedAction>;

    /// The pre-v2 stream; it carries the same actions, so older SDKs get the same service.
    async fn listen(
        &self,
        request: Request<proto::WorkerListenRequest>,
    ) -> Result<Response<Self::ListenStream>, Status> {
        Ok(Response::new(self.listen_stream(request).await?))
    }

    type ListenV2Stream = ResponseStream<proto::AssignedAction>;

    async fn listen_v2(
        &self,
        request: Request<proto::WorkerListenRequest>,
    ) -> Result<Response<Self::ListenV2Stream>, Status> {
        Ok(Response::new(self.listen_stream(request).await?))
    }

    async fn heartbeat(
        &self,
        request: Request<proto::HeartbeatRequest>,
    ) -> Result<Response<proto::HeartbeatResponse>, Status> {
        let tenant = tenant_of(&request)?.0;
        let worker_id = parse_id("worker_id", &request.get_ref().worker_id)?;
        let alive = self
            .state
            .heartbeats
            .beat(&self.state.pool, tenant, worker_id)
            .await
            .map_err(AppError::from)?;
        if alive == 0 {
            ensure_alive(&self.state, tenant, worker_id).await?;
        }
        Ok(Response::new(proto::HeartbeatResponse {}))
    }

    type SubscribeToWorkflowEventsStream = ResponseStream<proto::WorkflowEvent>;

    async fn subscribe_to_workflow_events(
        &self,
        request: Request<proto::SubscribeToWorkflowEventsRequest>,
    ) -> Result<Response<Self::SubscribeToWorkflowEventsStream>, Status> {
        let tenant = tenant_of(&request)?.0;
        let r = request.get_ref();
        let dispatch = &self.state.dispatch;
        let stream = match (
            r.workflow_run_id
                .as_deref()
                .filter(|id| !id.trim().is_empty()),
            r.additional_meta_key.as_deref(),
            r.additional_meta_value.as_deref(),
        ) {
            (Some(id), _, _) => {
                let run = parse_id("workflow_run_id", id)?;
                streams::subscribe_run(dispatch, tenant, run).await?
            }
            (None, Some(key), Some(value)) if !key.is_empty() => {
                streams::subscribe_metadata(dispatch, tenant, key, value)
            }
            _ => return Err(Status::invalid_argument(
                "workflow_run_id, or additional_meta_key and additional_meta_value, are required",
            )),
        };
        Ok(Response::new(guard_stream(
            &self.state.auth,
            &request,
            stream,
        )?))
    }

    type SubscribeToWorkflowRunsStream = ResponseStream<proto::WorkflowRunEvent>;

    async fn subscribe_to_workflow_runs(
        &self,
        request: Request<Streaming<proto::SubscribeToWorkflowRunsRequest>>,
    ) -> Result<Response<Self::SubscribeToWorkflowRunsStream>, Status> {
        let tenant = tenant_of(&request)?.0;
        let token = bearer_of(&request)?;
        let stream = runs::subscribe(&self.state.dispatch, tenant, request.into_inner());
        Ok(Response::new(self.state.auth.guard_stream(&token, stream)))
    }

    async fn send_step_action_event(
        &self,
        request: Request<proto::StepActionEvent>,
    ) -> Result<Response<proto::ActionEventResponse>, Status> {
        let tenant = tenant_of(&request)?.0;
        let event = request.into_inner();
        let task_id = parse_id("task_run_external_id", &event.task_run_external_id)?;
        let worker_id = Uuid::parse_str(&event.worker_id).ok();
        let retry_count = event.retry_count.unwrap_or(0);
        let dispatch = &self.state.dispatch;
        match StepActionEventType::try_from(event.event_type) {
            Ok(
                StepActionEventType::StepEventTypeStarted
                | StepActionEventType::StepEventTypeAcknowledged,
            ) => {
                dispatch.acknowledge(tenant, worker_id, task_id, retry_count);
            }
            Ok(StepActionEventType::StepEventTypeCompleted) => {
                let output = parse_output(&event.event_payload)?;
                dispatch
                    .completer()
                    .complete(tenant, worker_id, task_id, retry_count, output)
                    .await?;
                dispatch.finished(tenant, worker_id, task_id);
            }
            Ok(StepActionEventType::StepEventTypeFailed) => {
                let retryable = !event.should_not_retry.unwrap_or(false);
                fail_attempt(
                    &self.state,
                    tenant,
                    task_id,
                    retry_count,
                    &event.event_payload,
                    retryable,
                    event.retry_after_ms,
                )
                .await?;
                dispatch.finished(tenant, worker_id, task_id);
                dispatch.wake_assigner();
                dispatch.wake_runs();
            }
            // Only batch tasks report CANCELLED; for a single attempt it means nothing more to deliver.
            Ok(StepActionEventType::StepEventTypeCancelled) => {
                dispatch.finished(tenant, worker_id, task_id)
            }
            Ok(StepActionEventType::StepEventTypeUnknown) | Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "unknown step event type {}",
                    event.event_type
                )))
            }
        }
        dispatch.changed(Some(tenant));
        Ok(Response::new(proto::ActionEventResponse {
            tenant_id: tenant.to_string(),
            worker_id: event.worker_id,
        }))
    }

    /// A batch task's events: one event type for some members of one batch (`batch_id`). The SDK sends one
    /// retry count for all members; each member's own attempt is the one running in this batch
    /// (`hatchet.batch_attempts`), and members no longer running in it (finished, retried, cancelled, reaped) are
    /// left alone, so a resent or late event changes nothing.
    async fn send_batch_action_event(
        &self,
        request: Request<proto::BatchActionEvent>,
    ) -> Result<Response<proto::ActionEventResponse>, Status> {
        let tenant = tenant_of(&request)?.0;
        let event = request.into_inner();
        let batch_id = parse_id("batch_id", event.batch_id.as_deref().unwrap_or_default())?;
        let worker_id = Uuid::parse_str(&event.worker_id).ok();
        let event_type = match StepActionEventType::try_from(event.event_type) {
            Ok(StepActionEventType::StepEventTypeUnknown) | Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "unknown step event type {}",
                    event.event_type
                )))
            }
            Ok(t) => t,
        };
        let mut items: HashMap<Uuid, proto::BatchActionEventItem> = HashMap::new();
        for item in event.items {
            let id = parse_id("items.task_run_external_id", &item.task_run_external_id)?;
            if let Some(ms) = item.retry_after_ms.filter(|ms| *ms < 0) {
                return Err(Status::invalid_argument(format!(
                    "retry_after_ms must not be negative (got {ms})"
                )));
            }
            items.insert(id, item);
        }
        let ids: Vec<Uuid> = items.keys().copied().collect();
        let attempts = db::batch_attempts(&self.state.pool, tenant, batch_id, &ids)
            .await
            .map_err(AppError::from)?;
        let dispatch = &self.state.dispatch;
        dispatch.batch_reported(tenant, worker_id, batch_id);
        match event_type {
            StepActionEventType::StepEventTypeStarted
            | StepActionEventType::StepEventTypeAcknowledged => {
                for &(task_id, retry_count) in &attempts {
                    dispatch.acknowledge(tenant, worker_id, task_id, retry_count);
                }
            }
            StepActionEventType::StepEventTypeCompleted => {
                let mut outputs = Vec::with_capacity(attempts.len());
                for &(task_id, retry_count) in &attempts {
                    outputs.push((
                        task_id,
                        retry_count,
                        parse_output(&items[&task_id].event_payload)?,
                    ));
                }
                for result in dispatch
                    .completer()
                    .complete_all(tenant, worker_id, outputs)
                    .await
                {
                    result?;
                }
            }
            StepActionEventType::StepEventTypeFailed => {
                for &(task_id, retry_count) in &attempts {
                    let item = &items[&task_id];
                    fail_attempt(
                        &self.state,
                        tenant,
                        task_id,
                        retry_count,
                        &item.event_payload,
                        !item.should_not_retry.unwrap_or(false),
                        item.retry_after_ms,
                    )
                    .await?;
                }
                dispatch.wake_assigner();
                dispatch.wake_runs();
            }
            // The batch handler cancelled itself (ctx.cancel()): its members are cancelled.
            StepActionEventType::StepEventTypeCancelled => {
                for &(task_id, _) in &attempts {
                    tasks::cancel(
                        &self.state.pool,
                        tenant,
                        task_id,
                        "cancelled by its batch task",
                    )
                    .await
                    .map_err(AppError::from)?;
                }
                dispatch.wake_assigner();
                dispatch.wake_runs();
            }
            StepActionEventType::StepEventTypeUnknown => {}
        }
        dispatch.changed(Some(tenant));
        Ok(Response::new(proto::ActionEventResponse {
            tenant_id: tenant.to_string(),
            worker_id: event.worker_id,
        }))
    }

    async fn send_group_key_action_event(
        &self,
        _request: Request<proto::GroupKeyActionEvent>,
    ) -> Result<Response<proto::ActionEventResponse>, Status> {
        Err(unimplemented("Dispatcher.SendGroupKeyActionEvent"))
    }

    /// Accepted and ignored, as Hatchet's v1 engine does (overrides belonged to the v0 engine's playground).
    async fn put_overrides_data(
        &self,
        request: Request<proto::OverridesData>,
    ) -> Result<Response<proto::OverridesDataResponse>, Status> {
        tenant_of(&request)?;
        Ok(Response::new(proto::OverridesDataResponse {}))
    }

    async fn unsubscribe(
        &self,
        request: Request<proto::WorkerUnsubscribeRequest>,
    ) -> Result<Response<proto::WorkerUnsubscribeResponse>, Status> {
        let tenant = tenant_of(&request)?.0;
        let worker_id = parse_id("worker_id", &request.get_ref().worker_id)?;
        if db::worker(&self.state.pool, tenant, worker_id)
            .await
            .map_err(AppError::from)?
            .is_none()
        {
            return Err(AppError::NotFound(format!("worker {worker_id} is not registered")).into());
        }
        let retried =
            db::deregister_worker(&self.state.pool, tenant, worker_id, "worker unsubscribed")
                .await
                .map_err(AppError::from)?;
        self.state.dispatch.unsubscribed(worker_id);
        self.state.dispatch.wake_assigner();
        tracing::info!(%worker_id, retried, "worker unsubscribed");
        self.state.dispatch.changed(Some(tenant));
        Ok(Response::new(proto::WorkerUnsubscribeResponse {
            tenant_id: tenant.to_string(),
            worker_id: worker_id.to_string(),
        }))
    }

    async fn refresh_timeout(
        &self,
        request: Request<proto::RefreshTimeoutRequest>,
    ) -> Result<Response<proto::RefreshTimeoutResponse>, Status> {
        let tenant = tenant_of(&request)?.0;
        let r = request.into_inner();
        let task_id = parse_id("task_run_external_id", &r.task_run_external_id)?;
        let retry_count = tasks::running_attempt(&self.state.pool, tenant, task_id)
            .await
            .map_err(AppError::from)?
            .ok_or_else(|| {
                AppError::FailedPrecondition(format!("task {task_id} is not running"))
            })?;
        let timeout_at = tasks::refresh_timeout(
            &self.state.pool,
            tenant,
            task_id,
            retry_count,
            &r.increment_timeout_by,
        )
        .await
        .map_err(AppError::from)?;
        Ok(Response::new(proto::RefreshTimeoutResponse {
            timeout_at: Some(timestamp(timeout_at)),
        }))
    }

    async fn release_slot(
        &self,
        request: Request<proto::ReleaseSlotRequest>,
    ) -> Result<Response<proto::ReleaseSlotResponse>, Status> {
        let tenant = tenant_of(&request)?.0;
        let task_id = parse_id(
            "task_run_external_id",
            &request.get_ref().task_run_external_id,
        )?;
        db::release_slot(&self.state.pool, tenant, task_id)
            .await
            .map_err(AppError::from)?;
        self.state.dispatch.wake_assigner();
        Ok(Response::new(proto::ReleaseSlotResponse {}))
    }

    async fn restore_evicted_task(
        &self,
        request: Request<proto::RestoreEvictedTaskRequest>,
    ) -> Result<Response<proto::RestoreEvictedTaskResponse>, Status> {
        let tenant = tenant_of(&request)?.0;
        let task_id = parse_id(
            "task_run_external_id",
            &request.get_ref().task_run_external_id,
        )?;
        // An evicted durable task is queued now, whatever it waits for (it replays its log and waits again).
        let requeued = crate::db::durable::restore_evicted(&self.state.pool, tenant, task_id)
            .await
            .map_err(AppError::from)?;
        if requeued {
            self.state.dispatch.wake_assigner();
        }
        Ok(Response::new(proto::RestoreEvictedTaskResponse {
            requeued,
        }))
    }

    async fn upsert_worker_labels(
        &self,
        request: Request<proto::UpsertWorkerLabelsRequest>,
    ) -> Result<Response<proto::UpsertWorkerLabelsResponse>, Status> {
        let tenant = tenant_of(&request)?.0;
        let r = request.into_inner();
        let worker_id = parse_id("worker_id", &r.worker_id)?;
        db::upsert_worker_labels(&self.state.pool, tenant, worker_id, &labels_json(&r.labels))
            .await
            .map_err(AppError::from)?;
        self.state.dispatch.wake_assigner();
        Ok(Response::new(proto::UpsertWorkerLabelsResponse {
            tenant_id: tenant.to_string(),
            worker_id: worker_id.to_string(),
        }))
    }

    /// The SDK reads this right after registering its workflows and picks its code paths from it
    /// (see [`ENGINE_VERSION`]).
    async fn get_version(
        &self,
        _request: Request<proto::GetVersionRequest>,
    ) -> Result<Response<proto::GetVersionResponse>, Status> {
        Ok(Response::new(proto::GetVersionResponse {
            version: ENGINE_VERSION.to_owned(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs() {
        assert_eq!(parse_output("").unwrap(), json!({}));
        assert_eq!(parse_output("null").unwrap(), json!({}));
        assert_eq!(parse_output(r#"{"a":1}"#).unwrap(), json!({"a": 1}));
        assert!(matches!(
            parse_output("{nope"),
            Err(AppError::InvalidArgument(_))
        ));
    }

    #[test]
    fn labels() {
        let mut labels = HashMap::new();
        labels.insert(
            "model".to_owned(),
            proto::WorkerLabels {
                str_value: Some("fancy".into()),
                int_value: None,
            },
        );
        labels.insert(
            "memory".to_owned(),
            proto::WorkerLabels {
                str_value: None,
                int_value: Some(512),
            },
        );
        labels.insert("empty".to_owned(), proto::WorkerLabels::default());
        assert_eq!(
            labels_json(&labels),
            json!({"model": "fancy", "memory": 512})
        );
    }
}

/// Bytes of a refused failure text kept when it is stored again (well under the smallest
/// `hatchet.max_error_bytes`, 2048).
const FAILURE_TEXT_KEPT: usize = 1024;

/// Fails one attempt (`hatchet.fail`). A FAILED for an attempt already finished, cancelled or timed out changes
/// nothing; a failure text that cannot be stored (over hatchet.max_error_bytes, or a NUL byte) is stored cut and
/// cleaned, so the attempt still fails now instead of the SDK sending the FAILED again and again until it times out.
async fn fail_attempt(
    state: &AppState,
    tenant: Uuid,
    task_id: Uuid,
    retry_count: i32,
    payload: &str,
    retryable: bool,
    retry_after_ms: Option<i64>,
) -> Result<(), Status> {
    // RetryAfterException: the SDK asks for the retry after this many milliseconds.
    if let Some(ms) = retry_after_ms.filter(|ms| *ms < 0) {
        return Err(Status::invalid_argument(format!(
            "retry_after_ms must not be negative (got {ms})"
        )));
    }
    // Waits out a database outage like COMPLETED (see `OUTAGE_WAIT`).
    let first = when_reachable(OUTAGE_WAIT, Some(&state.shutdown), "fail", || async {
        tasks::fail(
            &state.pool,
            tenant,
            task_id,
            retry_count,
            payload,
            retryable,
            retry_after_ms,
        )
        .await
        .map_err(AppError::from)
    })
    .await;
    let text = match first {
        Ok(_) => {
            state.metrics.failed(tenant);
            return Ok(());
        }
        Err(err) => match err {
            AppError::FailedPrecondition(_) => return Ok(()),
            AppError::ResourceExhausted(why) | AppError::InvalidArgument(why) => {
                storable_failure_text(payload, &why)
            }
            other => return Err(other.into()),
        },
    };
    match tasks::fail(
        &state.pool,
        tenant,
        task_id,
        retry_count,
        &text,
        retryable,
        retry_after_ms,
    )
    .await
    {
        Ok(_) => {
            state.metrics.failed(tenant);
            Ok(())
        }
        Err(err) => match AppError::from(err) {
            AppError::FailedPrecondition(_) => Ok(()),
            other => Err(other.into()),
        },
    }
}

/// A failure text Postgres can store: NUL characters removed, cut to [`FAILURE_TEXT_KEPT`] bytes (on a character
/// boundary), and a note saying why it was cut.
fn storable_failure_text(text: &str, why: &str) -> String {
    let clean: String = text.chars().filter(|&c| c != '\0').collect();
    let mut end = clean.len().min(FAILURE_TEXT_KEPT);
    while !clean.is_char_boundary(end) {
        end -= 1;
    }
    let why: String = why.chars().filter(|&c| c != '\0').take(200).collect();
    format!(
        "{}\n[failure text shortened by hatchet-server: {why}]",
        &clean[..end]
    )
}

#[cfg(test)]
mod failure_text_tests {
    use super::*;

    #[test]
    fn refused_failure_texts_are_made_storable() {
        let long = format!("é{}\0tail", "x".repeat(5000));
        let text = storable_failure_text(&long, "error is 5007 bytes, over the limit");
        assert!(!text.contains('\0'));
        assert!(text.len() < 1024 + 100);
        assert!(text.starts_with("éxxx"));
        assert!(text.ends_with(
            "[failure text shortened by hatchet-server: error is 5007 bytes, over the limit]"
        ));
        // a cut inside a multi-byte character backs off to its start
        let accents = "é".repeat(600);
        assert!(storable_failure_text(&accents, "x").starts_with(&"é".repeat(512)));
    }
}
