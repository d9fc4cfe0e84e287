//! `/v1.V1Dispatcher/*`: durable tasks.
//!
//! `DurableTask` is the bidi stream a worker with durable tasks opens once the engine reports v0.80.0 or later
//! ([`ENGINE_VERSION`](crate::config::ENGINE_VERSION)). Each request is one call of the extension's durable API
//! (`sql/durable.sql`, through [`crate::db::durable`]), answered on the same stream in request order:
//!
//! | request | extension | response |
//! |---|---|---|
//! | `register_worker` | (nothing) | `register_worker` |
//! | `memo` | `durable_memo` | `memo_ack` (with the stored value on a replay) |
//! | `complete_memo` | `durable_complete_memo` | (none) |
//! | `wait_for` | `durable_wait_for` | `wait_for_ack` |
//! | `trigger_runs` | `durable_trigger_runs` | `trigger_runs_ack` |
//! | `evict_invocation` | `durable_evict` | `eviction_ack` |
//! | `worker_status` | `durable_stale`, `durable_completed` | `server_evict` per stale invocation, `entry_completed` |
//!
//! Satisfied entries are handed out in the order they were satisfied (`durable_completed` holds back an entry until
//! every one satisfied before it was handed to the invocation, and numbers them in `satisfied_order`): a replay whose
//! concurrent branches wait on several finished entries resumes them in the order the first run did, as Hatchet's
//! engine does, so the branches ask for their next entries in the order of the log.
//! A replay that asks for something else than the log holds gets `error` NONDETERMINISM; a request the extension
//! refuses (a stale invocation, bad input) gets `error` UNSPECIFIED with the reason, so the SDK fails the waiting
//! call at once instead of after its ack timeout. The entries named by `worker_status` are remembered by the stream
//! and checked every second until satisfied; the SDK names them again after a reconnect, so a reconnect (or another
//! server replica) loses nothing, as everything else is in the extension's tables. An invocation the worker still
//! waits on whose task has moved on (a later attempt, or finished: a cancellation the worker never heard of) gets
//! `server_evict` at that check, and the SDK drops it, as Hatchet's engine does for stale invocations.
//!
//! The legacy pair (what SDKs do against engines below v0.80.0): `RegisterDurableEvent` arms a wait of the running
//! attempt named by a signal key (`hatchet.register_durable_event`, the same conditions and matches), and
//! `ListenForDurableEvent` sends each (task, signal key) the worker listens for once, when it is satisfied, checked
//! every second. No replay log and no eviction on that path, as in Hatchet.

use super::{parse_id, workflows::v0_trigger};
use crate::auth::grpc::{bearer_of, tenant_of};
use crate::db::durable as db;
use crate::error::AppError;
use crate::proto::v1::{
    self, durable_task_request::Message as Req, durable_task_response::Message as Resp,
    v1_dispatcher_server::V1Dispatcher, DurableEventLogEntryRef, DurableTaskErrorType,
};
use crate::proto::ResponseStream;
use crate::state::AppState;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

/// The most entries one stream remembers as waited for.
const MAX_WAITING: usize = 100_000;

/// How often a stream checks whether the entries its worker waits for are satisfied.
const COMPLETION_CHECK_EVERY: Duration = Duration::from_secs(1);

/// The `v1.V1Dispatcher` service.
#[derive(Debug, Clone)]
pub(crate) struct V1DispatcherService {
    state: AppState,
}

impl V1DispatcherService {
    /// A service over the shared state.
    pub(crate) fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl V1Dispatcher for V1DispatcherService {
    type DurableTaskStream = ResponseStream<v1::DurableTaskResponse>;

    async fn durable_task(
        &self,
        request: Request<Streaming<v1::DurableTaskRequest>>,
    ) -> Result<Response<Self::DurableTaskStream>, Status> {
        let tenant = tenant_of(&request)?.0;
        let token = bearer_of(&request)?;
        let mut incoming = request.into_inner();
        let (tx, rx) = mpsc::unbounded_channel();
        let state = self.state.clone();
        tokio::spawn(async move {
            let shutdown = state.dispatch.shutdown.clone();
            // The entries the worker waits for (its worker_status requests) that were not satisfied yet: checked
            // every second, so a completion reaches the worker within a second of its commit.
            let mut waiting: HashSet<db::EntryRef> = HashSet::new();
            let mut tick = tokio::time::interval(COMPLETION_CHECK_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let responses = tokio::select! {
                    m = incoming.message() => match m {
                        Ok(Some(v1::DurableTaskRequest { message: Some(req) })) => {
                            handle(&state, tenant, req, &mut waiting).await
                        }
                        Ok(Some(_)) => continue,
                        Ok(None) | Err(_) => return,
                    },
                    _ = tick.tick(), if !waiting.is_empty() => completions(&state, tenant, &mut waiting).await,
                    () = shutdown.cancelled() => return,
                };
                for resp in responses {
                    let msg = v1::DurableTaskResponse {
                        message: Some(resp),
                    };
                    if tx.send(Ok(msg)).is_err() {
                        return;
                    }
                }
            }
        });
        let stream: Self::DurableTaskStream =
            Box::pin(tokio_stream::wrappers::UnboundedReceiverStream::new(rx));
        Ok(Response::new(self.state.auth.guard_stream(&token, stream)))
    }

    async fn register_durable_event(
        &self,
        request: Request<v1::RegisterDurableEventRequest>,
    ) -> Result<Response<v1::RegisterDurableEventResponse>, Status> {
        let tenant = tenant_of(&request)?.0;
        let r = request.into_inner();
        let task_id = parse_id("task_id", &r.task_id)?;
        let conditions = Value::Array(r.conditions.map(wait_conditions).unwrap_or_default());
        db::register_durable_event(
            &self.state.pool,
            tenant,
            task_id,
            &r.signal_key,
            &conditions,
        )
        .await
        .map_err(AppError::from)?;
        Ok(Response::new(v1::RegisterDurableEventResponse {}))
    }

    type ListenForDurableEventStream = ResponseStream<v1::DurableEvent>;

    async fn listen_for_durable_event(
        &self,
        request: Request<Streaming<v1::ListenForDurableEventRequest>>,
    ) -> Result<Response<Self::ListenForDurableEventStream>, Status> {
        let tenant = tenant_of(&request)?.0;
        let token = bearer_of(&request)?;
        let mut incoming = request.into_inner();
        let (tx, rx) = mpsc::unbounded_channel();
        let state = self.state.clone();
        tokio::spawn(async move {
            let shutdown = state.dispatch.shutdown.clone();
            // The (task, signal key) pairs the worker listens for, until each is satisfied and sent once.
            let mut listening: HashSet<(Uuid, String)> = HashSet::new();
            let mut tick = tokio::time::interval(COMPLETION_CHECK_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    m = incoming.message() => match m {
                        Ok(Some(req)) => {
                            if let Ok(id) = Uuid::parse_str(req.task_id.trim()) {
                                if listening.len() < MAX_WAITING {
                                    listening.insert((id, req.signal_key));
                                }
                            }
                            continue;
                        }
                        Ok(None) | Err(_) => return,
                    },
                    _ = tick.tick(), if !listening.is_empty() => {}
                    () = shutdown.cancelled() => return,
                }
                let pairs: Vec<(Uuid, String)> = listening.iter().cloned().collect();
                for (task, key) in pairs {
                    match db::durable_event_result(&state.pool, tenant, task, &key).await {
                        Ok(Some(data)) => {
                            listening.remove(&(task, key.clone()));
                            let event = v1::DurableEvent {
                                task_id: task.to_string(),
                                signal_key: key,
                                data,
                            };
                            if tx.send(Ok(event)).is_err() {
                                return;
                            }
                        }
                        Ok(None) => {}
                        Err(err) => {
                            tracing::warn!(error = %err, "reading a durable event failed");
                            break;
                        }
                    }
                }
            }
        });
        let stream: Self::ListenForDurableEventStream =
            Box::pin(tokio_stream::wrappers::UnboundedReceiverStream::new(rx));
        Ok(Response::new(self.state.auth.guard_stream(&token, stream)))
    }
}

/// A log entry reference for a response.
fn entry_ref(task: &str, invocation: i32, branch_id: i64, node_id: i64) -> DurableEventLogEntryRef {
    DurableEventLogEntryRef {
        durable_task_external_id: task.to_owned(),
        invocation_count: invocation,
        branch_id,
        node_id,
    }
}

/// An `error` response for a request of (task, invocation).
fn error(
    task: &str,
    invocation: i32,
    at: Option<(i64, i64)>,
    kind: DurableTaskErrorType,
    message: String,
) -> Resp {
    let (branch, node) = at.unwrap_or_default();
    Resp::Error(v1::DurableTaskErrorResponse {
        r#ref: Some(entry_ref(task, invocation, branch, node)),
        error_type: kind as i32,
        error_message: message,
    })
}

/// The message a refused request gets: the client's error as the extension said it, anything else "internal".
fn refusal(err: sqlx::Error) -> String {
    match AppError::from(err) {
        AppError::Internal(e) => {
            tracing::error!(error = %e, "durable task request failed");
            "internal error".to_owned()
        }
        other => Status::from(other).message().to_owned(),
    }
}

/// For the entries of `waiting`: `server_evict` for each invocation its task has moved on from (a cancellation the
/// worker never heard of: the SDK drops that invocation without reporting anything), whose entries are forgotten;
/// then `entry_completed` for each satisfied entry that the extension hands out now (in satisfied order), which
/// forgets them. Entries held back stay in `waiting` and are asked for again on the next tick.
async fn completions(
    state: &AppState,
    tenant: Uuid,
    waiting: &mut HashSet<db::EntryRef>,
) -> Vec<Resp> {
    let mut responses = Vec::new();
    let invocations: Vec<(Uuid, i32)> = waiting
        .iter()
        .map(|(t, i, _, _)| (*t, *i))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    match db::stale(&state.pool, tenant, &invocations).await {
        Ok(stale) => {
            for s in stale {
                waiting.retain(|(t, i, _, _)| *t != s.task_id || *i != s.invocation);
                responses.push(Resp::ServerEvict(v1::DurableTaskServerEvictNotice {
                    durable_task_external_id: s.task_id.to_string(),
                    invocation_count: s.invocation,
                    reason: s.reason,
                }));
            }
        }
        // Checked again on the next tick.
        Err(err) => tracing::warn!(error = %err, "checking durable invocations failed"),
    }
    if waiting.is_empty() {
        return responses;
    }
    let refs: Vec<db::EntryRef> = waiting.iter().copied().collect();
    match db::completed(&state.pool, tenant, &refs).await {
        Ok(done) => responses.extend(done.into_iter().map(|c| {
            waiting.remove(&(c.task_id, c.invocation, c.branch_id, c.node_id));
            Resp::EntryCompleted(v1::DurableTaskEventLogEntryCompletedResponse {
                r#ref: Some(entry_ref(
                    &c.task_id.to_string(),
                    c.invocation,
                    c.branch_id,
                    c.node_id,
                )),
                payload: c.result.unwrap_or_default(),
                is_failure: c.is_failure,
                error_message: c.error,
                satisfied_order: c.satisfied_order,
            })
        })),
        Err(err) => {
            // Checked again on the next tick.
            tracing::warn!(error = %err, "reading satisfied durable entries failed");
        }
    }
    responses
}

/// Serves one request of the stream; returns the responses to send, in order.
async fn handle(
    state: &AppState,
    tenant: Uuid,
    req: Req,
    waiting: &mut HashSet<db::EntryRef>,
) -> Vec<Resp> {
    let pool = &state.pool;
    match req {
        Req::RegisterWorker(r) => vec![Resp::RegisterWorker(
            v1::DurableTaskResponseRegisterWorker {
                worker_id: r.worker_id,
            },
        )],
        Req::Memo(r) => {
            let (task, inv) = (r.durable_task_external_id, r.invocation_count);
            let result = match parse_id("durable_task_external_id", &task) {
                Ok(id) => db::memo(pool, tenant, id, inv, &r.key, r.payload.as_deref())
                    .await
                    .map_err(refusal),
                Err(s) => Err(s.message().to_owned()),
            };
            vec![match result {
                Ok(m) => match m.at.nondeterminism {
                    Some(why) => error(
                        &task,
                        inv,
                        Some((m.at.branch_id, m.at.node_id)),
                        DurableTaskErrorType::Nondeterminism,
                        why,
                    ),
                    None => Resp::MemoAck(v1::DurableTaskEventMemoAckResponse {
                        r#ref: Some(entry_ref(&task, inv, m.at.branch_id, m.at.node_id)),
                        memo_already_existed: m.already_existed,
                        memo_result_payload: m.result.filter(|_| m.already_existed),
                    }),
                },
                Err(why) => error(&task, inv, None, DurableTaskErrorType::Unspecified, why),
            }]
        }
        Req::CompleteMemo(r) => {
            let Some(at) = r.r#ref else { return vec![] };
            let stored = match parse_id("durable_task_external_id", &at.durable_task_external_id) {
                Ok(id) => db::complete_memo(
                    pool,
                    tenant,
                    id,
                    at.invocation_count,
                    at.branch_id,
                    at.node_id,
                    &r.memo_key,
                    &r.payload,
                )
                .await
                .map_err(refusal),
                Err(s) => Err(s.message().to_owned()),
            };
            if let Err(why) = stored {
                // The SDK does not wait for an answer: a refused value is only logged (the memo is recomputed on
                // the next replay).
                tracing::warn!(task = %at.durable_task_external_id, %why, "memo value not stored");
            }
            vec![]
        }
        Req::WaitFor(r) => {
            let (task, inv) = (r.durable_task_external_id, r.invocation_count);
            let conditions = r
                .wait_for_conditions
                .map(wait_conditions)
                .unwrap_or_default();
            let result = match parse_id("durable_task_external_id", &task) {
                Ok(id) => db::wait_for(
                    pool,
                    tenant,
                    id,
                    inv,
                    &Value::Array(conditions),
                    r.label.as_deref(),
                )
                .await
                .map_err(refusal),
                Err(s) => Err(s.message().to_owned()),
            };
            vec![match result {
                Ok(a) => match a.nondeterminism {
                    Some(why) => error(
                        &task,
                        inv,
                        Some((a.branch_id, a.node_id)),
                        DurableTaskErrorType::Nondeterminism,
                        why,
                    ),
                    None => Resp::WaitForAck(v1::DurableTaskEventWaitForAckResponse {
                        r#ref: Some(entry_ref(&task, inv, a.branch_id, a.node_id)),
                    }),
                },
                Err(why) => error(&task, inv, None, DurableTaskErrorType::Unspecified, why),
            }]
        }
        Req::TriggerRuns(r) => {
            let (task, inv) = (r.durable_task_external_id.clone(), r.invocation_count);
            let result = trigger_runs(state, tenant, r).await;
            vec![match result {
                Ok(entries) => {
                    if let Some(bad) = entries.iter().find(|e| e.at.nondeterminism.is_some()) {
                        error(
                            &task,
                            inv,
                            Some((bad.at.branch_id, bad.at.node_id)),
                            DurableTaskErrorType::Nondeterminism,
                            bad.at.nondeterminism.clone().unwrap_or_default(),
                        )
                    } else {
                        Resp::TriggerRunsAck(v1::DurableTaskEventTriggerRunsAckResponse {
                            durable_task_external_id: task,
                            invocation_count: inv,
                            run_entries: entries
                                .into_iter()
                                .map(|e| v1::DurableTaskRunAckEntry {
                                    node_id: e.at.node_id,
                                    branch_id: e.at.branch_id,
                                    workflow_run_external_id: e
                                        .run_id
                                        .map(|r| r.to_string())
                                        .unwrap_or_default(),
                                })
                                .collect(),
                        })
                    }
                }
                Err(why) => error(&task, inv, None, DurableTaskErrorType::Unspecified, why),
            }]
        }
        Req::EvictInvocation(r) => {
            let (task, inv) = (r.durable_task_external_id, r.invocation_count);
            let result = match parse_id("durable_task_external_id", &task) {
                Ok(id) => db::evict(pool, tenant, id, inv, r.reason.as_deref())
                    .await
                    .map(|_| id)
                    .map_err(refusal),
                Err(s) => Err(s.message().to_owned()),
            };
            vec![match result {
                Ok(id) => {
                    // The attempt is over: nothing to redeliver, nothing to tell it, and its slot may go to queued
                    // work.
                    waiting.retain(|(t, i, _, _)| *t != id || *i > inv);
                    state.dispatch.finished(tenant, None, id);
                    state.dispatch.wake_assigner();
                    Resp::EvictionAck(v1::DurableTaskEvictionAckResponse {
                        invocation_count: inv,
                        durable_task_external_id: task,
                    })
                }
                Err(why) => error(&task, inv, None, DurableTaskErrorType::Unspecified, why),
            }]
        }
        Req::WorkerStatus(r) => {
            // At most this many entries are remembered per stream (the SDK sends up to 10,000 per request).
            for e in &r.waiting_entries {
                if waiting.len() >= MAX_WAITING {
                    break;
                }
                if let Ok(id) = Uuid::parse_str(e.durable_task_external_id.trim()) {
                    waiting.insert((id, e.invocation_count, e.branch_id, e.node_id));
                }
            }
            completions(state, tenant, waiting).await
        }
    }
}

/// The children of a `trigger_runs` request, started (or found again) through the extension.
async fn trigger_runs(
    state: &AppState,
    tenant: Uuid,
    r: v1::DurableTaskTriggerRunsRequest,
) -> Result<Vec<db::RunEntry>, String> {
    let id = parse_id("durable_task_external_id", &r.durable_task_external_id)
        .map_err(|s| s.message().to_owned())?;
    let mut triggers = Vec::with_capacity(r.trigger_opts.len());
    for opts in &r.trigger_opts {
        let t = v0_trigger(opts).map_err(|s| s.message().to_owned())?;
        let mut item = json!({
            "name": t.name,
            "input": t.input,
            "additional_metadata": t.additional_metadata,
        });
        if let Some(p) = t.priority {
            item["priority"] = json!(p);
        }
        if let Some(k) = opts.child_key.as_deref().filter(|k| !k.is_empty()) {
            item["child_key"] = json!(k);
        }
        if let Some(i) = opts.child_index {
            item["child_index"] = json!(i);
        }
        if let Some(w) = t.desired_worker_id {
            item["desired_worker_id"] = json!(w);
        }
        triggers.push(item);
    }
    let entries = db::trigger_runs(
        &state.pool,
        tenant,
        id,
        r.invocation_count,
        &Value::Array(triggers),
    )
    .await
    .map_err(refusal)?;
    state.dispatch.wake_assigner();
    Ok(entries)
}

/// The wait conditions of a `wait_for` request as the extension takes them: one object per sleep or user event,
/// with its or-group and the key its data gets in the result.
fn wait_conditions(c: v1::DurableEventListenerConditions) -> Vec<Value> {
    let base = |b: Option<v1::BaseMatchCondition>| {
        let b = b.unwrap_or_default();
        let mut o = json!({"group": b.or_group_id, "data_key": b.readable_data_key});
        if !b.expression.is_empty() {
            o["expression"] = json!(b.expression);
        }
        o
    };
    let mut out = Vec::new();
    for s in c.sleep_conditions {
        let mut o = base(s.base);
        o["type"] = json!("sleep");
        o["sleep_for"] = json!(s.sleep_for);
        out.push(o);
    }
    for e in c.user_event_conditions {
        let mut o = base(e.base);
        o["type"] = json!("event");
        o["key"] = json!(e.user_event_key);
        if let Some(scope) = e.event_scope.filter(|s| !s.is_empty()) {
            o["scope"] = json!(scope);
        }
        if let Some(since) = e
            .consider_events_since
            .as_ref()
            .and_then(crate::proto::to_datetime)
        {
            o["since"] = json!(since.to_rfc3339());
        }
        out.push(o);
    }
    out
}
