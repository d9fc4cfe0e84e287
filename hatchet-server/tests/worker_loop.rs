//! The worker loop over gRPC, driven by a tonic client playing the SDK's part: Register, ListenV2, the attempt
//! events (STARTED twice, COMPLETED / FAILED, resent), cancellation, reconnects, heartbeats and the worker-side
//! calls, with tasks enqueued through the extension's SQL API.

mod common;

use common::{with_auth, TestServer};
use hatchet_server::proto::{
    self, dispatcher_client::DispatcherClient, events_service_client::EventsServiceClient,
    ActionType, AssignedAction, StepActionEventType,
};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::collections::HashMap;
use std::time::Duration;
use tonic::codec::CompressionEncoding::Gzip;
use tonic::transport::Channel;
use tonic::Streaming;
use uuid::Uuid;

struct Worker {
    client: DispatcherClient<Channel>,
    bearer: String,
    id: String,
}

impl Worker {
    async fn register(server: &TestServer, actions: &[&str], slots: i32) -> Self {
        let bearer = format!("bearer {}", server.token);
        let mut client = DispatcherClient::new(server.channel().await)
            .send_compressed(Gzip)
            .accept_compressed(Gzip);
        let mut labels = HashMap::new();
        labels.insert(
            "zone".to_owned(),
            proto::WorkerLabels {
                str_value: Some("eu".into()),
                int_value: None,
            },
        );
        let resp = client
            .register(with_auth(
                proto::WorkerRegisterRequest {
                    worker_name: "test-worker".into(),
                    actions: actions.iter().map(|a| (*a).to_owned()).collect(),
                    services: vec!["default".into()],
                    slot_config: HashMap::from([("default".to_owned(), slots)]),
                    labels,
                    ..Default::default()
                },
                Some(&bearer),
            ))
            .await
            .expect("Register")
            .into_inner();
        assert_eq!(resp.worker_name, "test-worker");
        assert_eq!(
            resp.tenant_id,
            hatchet_server::config::DEFAULT_TENANT_ID.to_string()
        );
        Self {
            client,
            bearer,
            id: resp.worker_id,
        }
    }

    async fn listen(&mut self) -> Streaming<AssignedAction> {
        self.client
            .listen_v2(with_auth(
                proto::WorkerListenRequest {
                    worker_id: self.id.clone(),
                },
                Some(&self.bearer),
            ))
            .await
            .expect("ListenV2")
            .into_inner()
    }

    async fn event(
        &mut self,
        action: &AssignedAction,
        kind: StepActionEventType,
        payload: &str,
        should_not_retry: bool,
    ) -> Result<(), tonic::Status> {
        self.client
            .send_step_action_event(with_auth(
                proto::StepActionEvent {
                    worker_id: self.id.clone(),
                    job_id: action.job_id.clone(),
                    job_run_id: action.job_run_id.clone(),
                    task_id: action.task_id.clone(),
                    task_run_external_id: action.task_run_external_id.clone(),
                    action_id: action.action_id.clone(),
                    event_timestamp: None,
                    event_type: kind as i32,
                    event_payload: payload.to_owned(),
                    retry_count: Some(action.retry_count),
                    should_not_retry: Some(should_not_retry),
                    retry_after_ms: None,
                },
                Some(&self.bearer),
            ))
            .await
            .map(|_| ())
    }
}

async fn next_action(stream: &mut Streaming<AssignedAction>) -> AssignedAction {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an action within 10 s")
        .expect("stream error")
        .expect("stream ended")
}

async fn enqueue(pool: &PgPool, queue: &str, input: Value, retries: i32) -> Uuid {
    sqlx::query_scalar("SELECT hatchet.enqueue($1, $2, retries => $3)")
        .bind(queue)
        .bind(input)
        .bind(retries)
        .fetch_one(pool)
        .await
        .expect("enqueue")
}

async fn task_status(pool: &PgPool, task: Uuid) -> String {
    sqlx::query_scalar("SELECT hatchet.task_status($1)")
        .bind(task)
        .fetch_one(pool)
        .await
        .expect("task_status")
}

async fn wait_status(pool: &PgPool, task: Uuid, want: &str) {
    for _ in 0..100 {
        if task_status(pool, task).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "task {task} is {} instead of {want}",
        task_status(pool, task).await
    );
}

fn queue() -> String {
    format!("loop{}:task", Uuid::new_v4().simple())
}

#[tokio::test]
async fn a_task_runs_once_and_resent_events_change_nothing() {
    let server = TestServer::start().await;
    let pool = server.state.pool.clone();
    let q = queue();
    let mut worker = Worker::register(&server, &[&q], 5).await;
    let mut stream = worker.listen().await;

    let task = enqueue(&pool, &q, json!({"n": 7}), 0).await;
    let action = next_action(&mut stream).await;
    assert_eq!(action.action_type, ActionType::StartStepRun as i32);
    assert_eq!(action.action_id, q);
    assert_eq!(action.task_run_external_id, task.to_string());
    assert_eq!(action.workflow_run_id, task.to_string());
    assert_eq!(action.retry_count, 0);
    assert_eq!(action.task_name, "task");
    let payload: Value = serde_json::from_str(&action.action_payload).unwrap();
    assert_eq!(payload["input"], json!({"n": 7}));
    assert_eq!(payload["parents"], json!({}));
    assert!(action.task_inserted_at.is_some());

    // STARTED twice, as the SDK does.
    for _ in 0..2 {
        worker
            .event(
                &action,
                StepActionEventType::StepEventTypeStarted,
                "",
                false,
            )
            .await
            .expect("STARTED");
    }
    assert_eq!(task_status(&pool, task).await, "RUNNING");
    worker
        .event(
            &action,
            StepActionEventType::StepEventTypeCompleted,
            r#"{"sum": 14}"#,
            false,
        )
        .await
        .expect("COMPLETED");
    assert_eq!(task_status(&pool, task).await, "COMPLETED");
    let output: Value = sqlx::query_scalar(
        "SELECT data FROM hatchet.payloads WHERE task_id = $1 AND kind = 'OUTPUT'",
    )
    .bind(task)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(output, json!({"sum": 14}));

    // Resent COMPLETED (the SDK retries on UNAVAILABLE) and a late FAILED succeed and change nothing.
    worker
        .event(
            &action,
            StepActionEventType::StepEventTypeCompleted,
            r#"{"sum": 99}"#,
            false,
        )
        .await
        .expect("resent COMPLETED");
    worker
        .event(
            &action,
            StepActionEventType::StepEventTypeFailed,
            "boom",
            false,
        )
        .await
        .expect("late FAILED");
    assert_eq!(task_status(&pool, task).await, "COMPLETED");
    let completed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM hatchet.task_events WHERE task_id = $1 AND event_type = 'COMPLETED'",
    )
    .bind(task)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(completed, 1);

    // Malformed output: INVALID_ARGUMENT, nothing written.
    let err = worker
        .event(
            &action,
            StepActionEventType::StepEventTypeCompleted,
            "{nope",
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn failures_retry_and_non_retryable_failures_stop() {
    let server = TestServer::start().await;
    let pool = server.state.pool.clone();
    let q = queue();
    let mut worker = Worker::register(&server, &[&q], 5).await;
    let mut stream = worker.listen().await;

    let task = enqueue(&pool, &q, json!({}), 2).await;
    let first = next_action(&mut stream).await;
    assert_eq!(first.retry_count, 0);
    worker
        .event(
            &first,
            StepActionEventType::StepEventTypeFailed,
            "ValueError: one",
            false,
        )
        .await
        .expect("FAILED");
    let second = next_action(&mut stream).await;
    assert_eq!(second.task_run_external_id, task.to_string());
    assert_eq!(second.retry_count, 1);
    // A resent FAILED of the first attempt is stale: accepted, no effect on the second.
    worker
        .event(
            &first,
            StepActionEventType::StepEventTypeFailed,
            "ValueError: one",
            false,
        )
        .await
        .expect("stale FAILED");
    assert_eq!(task_status(&pool, task).await, "RUNNING");
    // NonRetryableException: should_not_retry ends the task although a retry remains.
    worker
        .event(
            &second,
            StepActionEventType::StepEventTypeFailed,
            "NonRetryableException: two",
            true,
        )
        .await
        .expect("FAILED");
    assert_eq!(task_status(&pool, task).await, "FAILED");
    let reason: String = sqlx::query_scalar(
        "SELECT reason FROM hatchet.task_events WHERE task_id = $1 AND event_type = 'FAILED'",
    )
    .bind(task)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(reason, "NonRetryableException: two");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn cancellation_reaches_the_worker_with_the_same_attempt() {
    let server = TestServer::start().await;
    let pool = server.state.pool.clone();
    let q = queue();
    let mut worker = Worker::register(&server, &[&q], 5).await;
    let mut stream = worker.listen().await;

    let task = enqueue(&pool, &q, json!({}), 0).await;
    let start = next_action(&mut stream).await;
    worker
        .event(&start, StepActionEventType::StepEventTypeStarted, "", false)
        .await
        .unwrap();
    let cancelled: bool = sqlx::query_scalar("SELECT hatchet.cancel($1)")
        .bind(task)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(cancelled);
    let cancel = next_action(&mut stream).await;
    assert_eq!(cancel.action_type, ActionType::CancelStepRun as i32);
    assert_eq!(cancel.task_run_external_id, task.to_string());
    assert_eq!(cancel.retry_count, start.retry_count);
    assert_eq!(cancel.action_id, q);
    // The cancelled attempt's late COMPLETED is accepted and ignored.
    worker
        .event(
            &start,
            StepActionEventType::StepEventTypeCompleted,
            "{}",
            false,
        )
        .await
        .expect("late COMPLETED");
    assert_eq!(task_status(&pool, task).await, "CANCELLED");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_unacknowledged_assignment_is_pushed_again_after_a_reconnect() {
    let server = TestServer::start().await;
    let pool = server.state.pool.clone();
    let q = queue();
    let mut worker = Worker::register(&server, &[&q], 5).await;
    let mut stream = worker.listen().await;
    let task = enqueue(&pool, &q, json!({}), 0).await;
    let first = next_action(&mut stream).await;
    drop(stream); // the stream broke before the worker said STARTED

    let mut stream = worker.listen().await;
    let again = next_action(&mut stream).await;
    assert_eq!(again.task_run_external_id, first.task_run_external_id);
    assert_eq!(again.retry_count, first.retry_count);
    worker
        .event(&again, StepActionEventType::StepEventTypeStarted, "", false)
        .await
        .unwrap();
    drop(stream);

    // Acknowledged: a later reconnect does not push it a third time.
    let mut stream = worker.listen().await;
    let quiet = tokio::time::timeout(Duration::from_millis(600), stream.message()).await;
    assert!(quiet.is_err(), "unexpected message: {quiet:?}");
    worker
        .event(
            &again,
            StepActionEventType::StepEventTypeCompleted,
            "{}",
            false,
        )
        .await
        .unwrap();
    assert_eq!(task_status(&pool, task).await, "COMPLETED");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn slots_cap_the_work_in_flight() {
    let server = TestServer::start().await;
    let pool = server.state.pool.clone();
    let q = queue();
    let mut worker = Worker::register(&server, &[&q], 2).await;
    let mut stream = worker.listen().await;
    let mut tasks = Vec::new();
    for i in 0..3 {
        tasks.push(enqueue(&pool, &q, json!({ "i": i }), 0).await);
    }
    let a = next_action(&mut stream).await;
    let b = next_action(&mut stream).await;
    let third = tokio::time::timeout(Duration::from_millis(600), stream.message()).await;
    assert!(third.is_err(), "a third task was pushed to a 2-slot worker");
    worker
        .event(&a, StepActionEventType::StepEventTypeCompleted, "{}", false)
        .await
        .unwrap();
    let c = next_action(&mut stream).await;
    let mut seen = vec![
        a.task_run_external_id,
        b.task_run_external_id,
        c.task_run_external_id,
    ];
    seen.sort();
    let mut want: Vec<String> = tasks.iter().map(Uuid::to_string).collect();
    want.sort();
    assert_eq!(seen, want);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn worker_side_calls() {
    let server = TestServer::start().await;
    let pool = server.state.pool.clone();
    let q = queue();
    let mut worker = Worker::register(&server, &[&q], 1).await;
    let bearer = worker.bearer.clone();
    let mut stream = worker.listen().await;

    // Heartbeat: OK for a live worker, NOT_FOUND for an unknown one.
    worker
        .client
        .heartbeat(with_auth(
            proto::HeartbeatRequest {
                worker_id: worker.id.clone(),
                heartbeat_at: None,
            },
            Some(&bearer),
        ))
        .await
        .expect("Heartbeat");
    let unknown = worker
        .client
        .heartbeat(with_auth(
            proto::HeartbeatRequest {
                worker_id: Uuid::new_v4().to_string(),
                heartbeat_at: None,
            },
            Some(&bearer),
        ))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let bad = worker
        .client
        .heartbeat(with_auth(
            proto::HeartbeatRequest {
                worker_id: "not-a-uuid".into(),
                heartbeat_at: None,
            },
            Some(&bearer),
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);

    let task = enqueue(&pool, &q, json!({}), 0).await;
    let action = next_action(&mut stream).await;

    // RefreshTimeout moves timeout_at.
    let before: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT timeout_at FROM hatchet.running WHERE task_id = $1")
            .bind(task)
            .fetch_one(&pool)
            .await
            .unwrap();
    let resp = worker
        .client
        .refresh_timeout(with_auth(
            proto::RefreshTimeoutRequest {
                task_run_external_id: task.to_string(),
                increment_timeout_by: "30s".into(),
            },
            Some(&bearer),
        ))
        .await
        .expect("RefreshTimeout")
        .into_inner();
    let after = resp.timeout_at.expect("timeout_at");
    assert_eq!(
        after.seconds,
        (before + chrono::Duration::seconds(30)).timestamp()
    );

    // PutLog stores the line.
    let mut events = EventsServiceClient::new(server.channel().await).send_compressed(Gzip);
    events
        .put_log(with_auth(
            proto::PutLogRequest {
                task_run_external_id: task.to_string(),
                created_at: None,
                message: "hello from the task".into(),
                level: Some("WARN".into()),
                metadata: String::new(),
                task_retry_count: Some(0),
            },
            Some(&bearer),
        ))
        .await
        .expect("PutLog");
    let (level, message): (String, String) =
        sqlx::query_as("SELECT level, message FROM hatchet.task_logs($1)")
            .bind(task)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (level.as_str(), message.as_str()),
        ("WARN", "hello from the task")
    );

    // ReleaseSlot frees the only slot: a second task is pushed while the first still runs.
    let second = enqueue(&pool, &q, json!({}), 0).await;
    worker
        .client
        .release_slot(with_auth(
            proto::ReleaseSlotRequest {
                task_run_external_id: task.to_string(),
            },
            Some(&bearer),
        ))
        .await
        .expect("ReleaseSlot");
    let next = next_action(&mut stream).await;
    assert_eq!(next.task_run_external_id, second.to_string());

    // UpsertWorkerLabels merges labels.
    worker
        .client
        .upsert_worker_labels(with_auth(
            proto::UpsertWorkerLabelsRequest {
                worker_id: worker.id.clone(),
                labels: HashMap::from([(
                    "gpu".to_owned(),
                    proto::WorkerLabels {
                        str_value: None,
                        int_value: Some(2),
                    },
                )]),
            },
            Some(&bearer),
        ))
        .await
        .expect("UpsertWorkerLabels");
    let labels: Value = sqlx::query_scalar("SELECT labels FROM hatchet.workers WHERE id = $1")
        .bind(Uuid::parse_str(&worker.id).unwrap())
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(labels, json!({"zone": "eu", "gpu": 2}));

    // Unsubscribe takes the worker out of service; its running attempts go back to the queue.
    worker
        .client
        .unsubscribe(with_auth(
            proto::WorkerUnsubscribeRequest {
                worker_id: worker.id.clone(),
            },
            Some(&bearer),
        ))
        .await
        .expect("Unsubscribe");
    let active: bool = sqlx::query_scalar("SELECT is_active FROM hatchet.workers WHERE id = $1")
        .bind(Uuid::parse_str(&worker.id).unwrap())
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(!active);
    wait_status(&pool, task, "QUEUED").await;
    let _ = action;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_reaped_worker_that_is_still_alive_comes_back() {
    let server = TestServer::start().await;
    let pool = server.state.pool.clone();
    let q = queue();
    let mut worker = Worker::register(&server, &[&q], 3).await;
    let id = Uuid::parse_str(&worker.id).unwrap();
    // What the extension does after 30 s without heartbeats.
    sqlx::query("SELECT hatchet.deregister_worker($1, 'worker stopped sending heartbeats')")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    let bearer = worker.bearer.clone();
    worker
        .client
        .heartbeat(with_auth(
            proto::HeartbeatRequest {
                worker_id: worker.id.clone(),
                heartbeat_at: None,
            },
            Some(&bearer),
        ))
        .await
        .expect("Heartbeat revives the worker");
    let (active, actions): (bool, Vec<String>) = sqlx::query_as(
        "SELECT w.is_active, array(SELECT action FROM hatchet.worker_actions a WHERE a.worker_id = w.id) \
         FROM hatchet.workers w WHERE w.id = $1",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(active);
    assert_eq!(actions, vec![q.clone()]);
    let mut stream = worker.listen().await;
    let task = enqueue(&pool, &q, json!({}), 0).await;
    let action = next_action(&mut stream).await;
    assert_eq!(action.task_run_external_id, task.to_string());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_server_restart_loses_nothing() {
    // Server A hands out an attempt, then goes away while the worker runs it.
    let server_a = TestServer::start().await;
    let pool = server_a.state.pool.clone();
    let q = queue();
    let mut worker = Worker::register(&server_a, &[&q], 2).await;
    let mut stream = worker.listen().await;
    let task = enqueue(&pool, &q, json!({}), 0).await;
    let action = next_action(&mut stream).await;
    worker
        .event(
            &action,
            StepActionEventType::StepEventTypeStarted,
            "",
            false,
        )
        .await
        .unwrap();
    let worker_id = worker.id.clone();
    server_a.stop().await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(5), stream.message()).await;
    assert!(
        matches!(ended, Ok(Ok(None)) | Ok(Err(_))),
        "the stream should end with the server: {ended:?}"
    );
    // Work queued meanwhile waits in Postgres.
    let queued = enqueue(&pool, &q, json!({}), 0).await;

    // Server B (a restart, or another instance): the worker reconnects with the same id and token and reports
    // the attempt it kept running; nothing was lost and nothing runs twice.
    let server_b = TestServer::start().await;
    let mut worker = Worker {
        client: DispatcherClient::new(server_b.channel().await)
            .send_compressed(Gzip)
            .accept_compressed(Gzip),
        bearer: format!("bearer {}", server_b.token),
        id: worker_id,
    };
    let mut stream = worker.listen().await;
    let next = next_action(&mut stream).await;
    assert_eq!(next.task_run_external_id, queued.to_string());
    worker
        .event(
            &action,
            StepActionEventType::StepEventTypeCompleted,
            "{}",
            false,
        )
        .await
        .expect("COMPLETED through the new server");
    assert_eq!(task_status(&pool, task).await, "COMPLETED");
    let quiet = tokio::time::timeout(Duration::from_millis(600), stream.message()).await;
    assert!(
        quiet.is_err(),
        "the finished attempt was pushed again: {quiet:?}"
    );
    server_b.stop().await.unwrap();
}

/// Heartbeats of many workers arriving together share one `hatchet.heartbeat` statement (issue 18): every worker
/// row updated by the burst carries the same transaction id.
#[tokio::test]
async fn concurrent_heartbeats_share_one_statement() {
    let server = TestServer::start().await;
    let pool = server.state.pool.clone();
    let q = queue();
    let mut workers = Vec::new();
    for _ in 0..12 {
        workers.push(Worker::register(&server, &[&q], 1).await);
    }
    let mut beats = tokio::task::JoinSet::new();
    for w in &workers {
        let mut client = w.client.clone();
        let request = with_auth(
            proto::HeartbeatRequest {
                worker_id: w.id.clone(),
                heartbeat_at: None,
            },
            Some(&w.bearer),
        );
        beats.spawn(async move { client.heartbeat(request).await });
    }
    while let Some(result) = beats.join_next().await {
        result.unwrap().expect("Heartbeat");
    }
    let ids: Vec<Uuid> = workers.iter().map(|w| w.id.parse().unwrap()).collect();
    let xids: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT xmin::text) FROM hatchet.workers WHERE id = ANY ($1)",
    )
    .bind(&ids)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(xids, 1, "12 simultaneous heartbeats were not one statement");
    server.stop().await.unwrap();
}

/// Issue 18: an idle assigner polls only every few seconds; work arriving after a quiet spell still reaches the worker.
/// (How fast, through the `hatchet_ready` notification, is the benchmark's first-start latency: bench/idle.py.)
#[tokio::test]
async fn work_after_an_idle_spell_reaches_the_worker() {
    let server = TestServer::start().await;
    let pool = server.state.pool.clone();
    let q = queue();
    let mut worker = Worker::register(&server, &[&q], 1).await;
    let mut stream = worker.listen().await;
    // Longer than the assigner's fast-poll spell after its last activity (the stream connecting).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let task = enqueue(&pool, &q, json!({}), 0).await;
    let action = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an action within 10 s")
        .expect("stream error")
        .expect("stream ended");
    assert_eq!(action.task_run_external_id, task.to_string());
    server.stop().await.unwrap();
}
