//! Assignment in the trigger's own transaction (issue 18): when a worker of the tenant is connected to this server
//! and has a free slot, `TriggerWorkflow` / `BulkTriggerWorkflow` assign the new task before their commit (counted in
//! `hatchet_trigger_assignments_total`, which only that path feeds) and the worker gets the action without waiting
//! for the assigner. Without a free slot, or while another transaction holds the worker's
//! slot row, the trigger commits without assigning and the assigner loop delivers the task afterwards. Every task is
//! delivered once.

mod common;

use common::{with_auth, TestServer};
use hatchet_server::config::DEFAULT_TENANT_ID;
use hatchet_server::proto::{
    self, dispatcher_client::DispatcherClient, workflow_service_client::WorkflowServiceClient,
    AssignedAction, StepActionEventType,
};
use serde_json::json;
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use tonic::codec::CompressionEncoding::Gzip;
use tonic::transport::Channel;
use tonic::Streaming;
use uuid::Uuid;

/// A workflow of one task, registered under a fresh name; returns (workflow name, its action id).
async fn one_task_workflow(pool: &PgPool) -> (String, String) {
    let name = format!("trig-{}", Uuid::new_v4().simple());
    sqlx::query("SELECT hatchet.register_workflow($1, $2)")
        .bind(json!({"name": name, "tasks": [{"readable_id": "only"}]}))
        .bind(DEFAULT_TENANT_ID)
        .execute(pool)
        .await
        .expect("register_workflow");
    let action = format!("{name}:only");
    (name, action)
}

/// A worker registered through gRPC with `slots` slots for `action`, listening on its stream.
async fn listening_worker(
    server: &TestServer,
    action: &str,
    slots: i32,
) -> (DispatcherClient<Channel>, Uuid, Streaming<AssignedAction>) {
    let bearer = format!("bearer {}", server.token);
    let mut client = DispatcherClient::new(server.channel().await).send_compressed(Gzip);
    let id = client
        .register(with_auth(
            proto::WorkerRegisterRequest {
                worker_name: "trigger-worker".into(),
                actions: vec![action.to_owned()],
                services: vec!["default".into()],
                slot_config: HashMap::from([("default".to_owned(), slots)]),
                ..Default::default()
            },
            Some(&bearer),
        ))
        .await
        .expect("Register")
        .into_inner()
        .worker_id;
    let stream = client
        .listen_v2(with_auth(
            proto::WorkerListenRequest {
                worker_id: id.clone(),
            },
            Some(&bearer),
        ))
        .await
        .expect("ListenV2")
        .into_inner();
    (client, id.parse().expect("worker id"), stream)
}

async fn next_action(stream: &mut Streaming<AssignedAction>) -> AssignedAction {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an action within 10 s")
        .expect("stream error")
        .expect("stream ended")
}

/// Asserts that nothing more arrives on the stream for a while.
async fn no_more_actions(stream: &mut Streaming<AssignedAction>) {
    if let Ok(more) = tokio::time::timeout(Duration::from_millis(700), stream.message()).await {
        panic!("unexpected action: {more:?}");
    }
}

fn trigger_request(name: &str, n: i64) -> proto::v1::TriggerWorkflowRequest {
    proto::v1::TriggerWorkflowRequest {
        name: name.to_owned(),
        input: json!({ "n": n }).to_string(),
        ..Default::default()
    }
}

async fn trigger(server: &TestServer, name: &str, n: i64) -> Uuid {
    let bearer = format!("bearer {}", server.token);
    let mut workflows = WorkflowServiceClient::new(server.channel().await).send_compressed(Gzip);
    workflows
        .trigger_workflow(with_auth(trigger_request(name, n), Some(&bearer)))
        .await
        .expect("TriggerWorkflow")
        .into_inner()
        .workflow_run_id
        .parse()
        .expect("run id")
}

fn trigger_assignments(server: &TestServer) -> u64 {
    server
        .state
        .metrics
        .trigger_assignments
        .with_label_values(&[DEFAULT_TENANT_ID.to_string().as_str()])
        .get()
}

async fn complete(
    client: &mut DispatcherClient<Channel>,
    server: &TestServer,
    worker: Uuid,
    action: &AssignedAction,
) {
    let bearer = format!("bearer {}", server.token);
    client
        .send_step_action_event(with_auth(
            proto::StepActionEvent {
                worker_id: worker.to_string(),
                job_run_id: action.job_run_id.clone(),
                task_run_external_id: action.task_run_external_id.clone(),
                action_id: action.action_id.clone(),
                event_type: StepActionEventType::StepEventTypeCompleted as i32,
                event_payload: "{}".into(),
                retry_count: Some(action.retry_count),
                ..Default::default()
            },
            Some(&bearer),
        ))
        .await
        .expect("COMPLETED");
}

#[tokio::test]
async fn a_trigger_with_a_free_slot_assigns_in_its_own_transaction() {
    let server = TestServer::start().await;
    let pool = server.state.pool.clone();
    let (name, action_id) = one_task_workflow(&pool).await;
    let (_client, worker, mut stream) = listening_worker(&server, &action_id, 2).await;
    // The stream is registered once the server has answered ListenV2; give the assigner's first round a moment.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = trigger_assignments(&server);

    let run = trigger(&server, &name, 1).await;
    let action = next_action(&mut stream).await;
    assert_eq!(action.workflow_run_id, run.to_string());
    assert_eq!(action.action_id, action_id);
    let task: Uuid = action.task_run_external_id.parse().unwrap();
    assert_eq!(
        trigger_assignments(&server) - before,
        1,
        "the attempt was assigned by the trigger's statement"
    );
    let (assigned_to,): (Uuid,) = sqlx::query_as(
        "SELECT worker_id FROM hatchet.running WHERE tenant_id = $1 AND task_id = $2",
    )
    .bind(DEFAULT_TENANT_ID)
    .bind(task)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(assigned_to, worker);
    // Delivered once: neither the assigner (woken by the trigger's NOTIFY) nor anything else pushes it again.
    no_more_actions(&mut stream).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_trigger_without_a_free_slot_leaves_the_task_to_the_assigner() {
    let server = TestServer::start().await;
    let pool = server.state.pool.clone();
    let (name, action_id) = one_task_workflow(&pool).await;
    let (mut client, worker, mut stream) = listening_worker(&server, &action_id, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = trigger_assignments(&server);

    trigger(&server, &name, 1).await;
    let first = next_action(&mut stream).await;
    assert_eq!(trigger_assignments(&server) - before, 1);

    // The only slot is taken: the second trigger commits without assigning.
    let second_run = trigger(&server, &name, 2).await;
    let queued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM hatchet.ready_queue q JOIN hatchet.tasks t \
           ON t.tenant_id = q.tenant_id AND t.inserted_at = q.task_inserted_at AND t.id = q.task_id \
         WHERE q.tenant_id = $1 AND t.run_id = $2",
    )
    .bind(DEFAULT_TENANT_ID)
    .bind(second_run)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(queued, 1, "the second task waits in the ready queue");
    assert_eq!(trigger_assignments(&server) - before, 1);

    // Completing the first frees the slot; the completion batch (or the assigner) hands out the second.
    complete(&mut client, &server, worker, &first).await;
    let second = next_action(&mut stream).await;
    assert_eq!(second.workflow_run_id, second_run.to_string());
    assert_eq!(
        trigger_assignments(&server) - before,
        1,
        "the second was assigned later, not by its trigger"
    );
    no_more_actions(&mut stream).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_trigger_does_not_wait_long_for_a_held_slot_lock() {
    let server = TestServer::start().await;
    let pool = server.state.pool.clone();
    let (name, action_id) = one_task_workflow(&pool).await;
    let (_client, worker, mut stream) = listening_worker(&server, &action_id, 4).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = trigger_assignments(&server);

    // Another transaction (a completion batch or an assigner of another replica, say) holds the worker's slot row.
    let mut holder = pool.begin().await.unwrap();
    sqlx::query(
        "SELECT 1 FROM hatchet.worker_slots WHERE tenant_id = $1 AND worker_id = $2 FOR UPDATE",
    )
    .bind(DEFAULT_TENANT_ID)
    .bind(worker)
    .execute(&mut *holder)
    .await
    .unwrap();
    let started = Instant::now();
    let run = trigger(&server, &name, 1).await;
    let took = started.elapsed();
    // The trigger committed without assigning (its bounded lock wait gave up), well before the lock went away.
    assert!(
        took < Duration::from_secs(3),
        "the trigger waited {took:?} for the lock"
    );
    let status: String = sqlx::query_scalar("SELECT hatchet.run_status($1, $2)::text")
        .bind(run)
        .bind(DEFAULT_TENANT_ID)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        status, "QUEUED",
        "the run exists and its task is still queued"
    );
    assert_eq!(trigger_assignments(&server) - before, 0);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), stream.message())
            .await
            .is_err(),
        "nothing is pushed while the slot row is held"
    );
    holder.rollback().await.unwrap();

    // The assigner loop delivers it once the lock is free.
    let action = next_action(&mut stream).await;
    assert_eq!(action.workflow_run_id, run.to_string());
    assert_eq!(trigger_assignments(&server) - before, 0);
    no_more_actions(&mut stream).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_bulk_trigger_assigns_what_fits_and_every_task_arrives_once() {
    let server = TestServer::start().await;
    let pool = server.state.pool.clone();
    let (name, action_id) = one_task_workflow(&pool).await;
    let (mut client, worker, mut stream) = listening_worker(&server, &action_id, 3).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = trigger_assignments(&server);

    let bearer = format!("bearer {}", server.token);
    let mut workflows = WorkflowServiceClient::new(server.channel().await).send_compressed(Gzip);
    let runs: HashSet<String> = workflows
        .bulk_trigger_workflow(with_auth(
            proto::BulkTriggerWorkflowRequest {
                workflows: (0..5).map(|n| trigger_request(&name, n)).collect(),
            },
            Some(&bearer),
        ))
        .await
        .expect("BulkTriggerWorkflow")
        .into_inner()
        .workflow_run_ids
        .into_iter()
        .collect();
    assert_eq!(runs.len(), 5);
    // Three slots: three tasks go out with the bulk trigger's own commit.
    assert_eq!(trigger_assignments(&server) - before, 3);

    let mut seen = HashSet::new();
    for _ in 0..5 {
        let action = next_action(&mut stream).await;
        assert!(runs.contains(&action.workflow_run_id));
        assert!(
            seen.insert(action.task_run_external_id.clone()),
            "{} delivered twice",
            action.task_run_external_id
        );
        complete(&mut client, &server, worker, &action).await;
    }
    assert_eq!(
        trigger_assignments(&server) - before,
        3,
        "the other two were assigned after completions freed slots"
    );
    no_more_actions(&mut stream).await;
    server.stop().await.unwrap();
}
