//! Streaming through the server: `PutStreamEvent` chunks reach `SubscribeToWorkflowEvents` subscribers in order,
//! also through another server on the same database; the stream ends with the run; bad requests write nothing.

mod common;

use common::{with_auth, TestServer};
use hatchet_server::proto::{
    self, dispatcher_client::DispatcherClient, events_service_client::EventsServiceClient,
    ResourceEventType, ResourceType,
};
use sqlx::PgPool;
use std::time::Duration;
use tonic::codec::CompressionEncoding::Gzip;
use tonic::Streaming;
use uuid::Uuid;

/// A task claimed by a SQL consumer, so it is RUNNING without a worker; a task enqueued on its own is its own run.
async fn running_task(pool: &PgPool) -> Uuid {
    let queue = format!("stream{}", Uuid::new_v4().simple());
    let task: Uuid = sqlx::query_scalar("SELECT hatchet.enqueue($1, '{}')")
        .bind(&queue)
        .fetch_one(pool)
        .await
        .unwrap();
    let claimed: Uuid = sqlx::query_scalar("SELECT task_id FROM hatchet.dequeue($1, 'test')")
        .bind(&queue)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(claimed, task);
    task
}

async fn put(
    server: &TestServer,
    task: &str,
    index: Option<i64>,
    message: &str,
) -> Result<(), tonic::Status> {
    let bearer = format!("bearer {}", server.token);
    EventsServiceClient::new(server.channel().await)
        .send_compressed(Gzip)
        .put_stream_event(with_auth(
            proto::PutStreamEventRequest {
                task_run_external_id: task.to_owned(),
                message: message.as_bytes().to_vec(),
                event_index: index,
                ..Default::default()
            },
            Some(&bearer),
        ))
        .await
        .map(|_| ())
}

async fn subscribe(
    server: &TestServer,
    run: &str,
) -> Result<Streaming<proto::WorkflowEvent>, tonic::Status> {
    let bearer = format!("bearer {}", server.token);
    DispatcherClient::new(server.channel().await)
        .send_compressed(Gzip)
        .subscribe_to_workflow_events(with_auth(
            proto::SubscribeToWorkflowEventsRequest {
                workflow_run_id: Some(run.to_owned()),
                ..Default::default()
            },
            Some(&bearer),
        ))
        .await
        .map(|r| r.into_inner())
}

/// Every event until the hangup (fails after 15 s).
async fn until_hangup(stream: &mut Streaming<proto::WorkflowEvent>) -> Vec<proto::WorkflowEvent> {
    let mut events = Vec::new();
    loop {
        let e = tokio::time::timeout(Duration::from_secs(15), stream.message())
            .await
            .expect("an event within 15 s")
            .expect("stream error")
            .expect("stream ended without a hangup");
        let hangup = e.hangup;
        events.push(e);
        if hangup {
            return events;
        }
    }
}

fn chunks(events: &[proto::WorkflowEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.event_type == ResourceEventType::Stream as i32)
        .map(|e| e.event_payload.clone())
        .collect()
}

async fn complete(pool: &PgPool, task: Uuid) {
    sqlx::query("SELECT hatchet.complete($1, 0, '{\"done\": true}')")
        .bind(task)
        .execute(pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn chunks_reach_subscribers_in_order_and_the_stream_ends_with_the_run() {
    let a = TestServer::start().await;
    let b = TestServer::start().await;
    let pool = a.state.pool.clone();
    let task = running_task(&pool).await;
    let id = task.to_string();

    // Chunks put before anyone subscribes are kept for the subscriber.
    put(&a, &id, Some(0), "c0").await.unwrap();
    put(&a, &id, Some(1), "c1").await.unwrap();
    // The subscriber is on another server than the writer.
    let mut live = subscribe(&b, &id).await.unwrap();
    for i in 2..6 {
        put(&a, &id, Some(i), &format!("c{i}")).await.unwrap();
    }
    // A resent chunk (the SDK retries a call that timed out) is stored once.
    put(&a, &id, Some(3), "c3").await.unwrap();
    // The chunks arrive while the task runs, before it finishes.
    let mut seen = Vec::new();
    while seen.len() < 6 {
        let e = tokio::time::timeout(Duration::from_secs(10), live.message())
            .await
            .expect("chunk within 10 s")
            .unwrap()
            .unwrap();
        assert!(!e.hangup, "hung up while the task runs: {e:?}");
        if e.event_type == ResourceEventType::Stream as i32 {
            assert_eq!(e.resource_type, ResourceType::StepRun as i32);
            assert_eq!(e.resource_id, id);
            assert_eq!(e.workflow_run_id, id);
            seen.push(e.event_payload);
        } else {
            assert_eq!(e.event_type, ResourceEventType::Started as i32, "{e:?}");
        }
    }
    assert_eq!(seen, ["c0", "c1", "c2", "c3", "c4", "c5"]);

    complete(&pool, task).await;
    let rest = until_hangup(&mut live).await;
    let done = rest.last().unwrap();
    assert_eq!(done.resource_type, ResourceType::WorkflowRun as i32);
    assert_eq!(done.event_type, ResourceEventType::Completed as i32);
    let task_done = rest
        .iter()
        .find(|e| e.resource_type == ResourceType::StepRun as i32)
        .expect("a COMPLETED event for the task");
    assert_eq!(task_done.event_type, ResourceEventType::Completed as i32);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&task_done.event_payload).unwrap(),
        serde_json::json!({"done": true})
    );
    assert!(chunks(&rest).is_empty(), "chunks sent twice: {rest:?}");
    // The stream is closed after the hangup.
    let after = tokio::time::timeout(Duration::from_secs(5), live.message())
        .await
        .expect("the stream ends");
    assert!(matches!(after, Ok(None)), "{after:?}");

    // A subscriber arriving after the run finished gets the whole stream and the hangup at once.
    let mut late = subscribe(&a, &id).await.unwrap();
    let events = until_hangup(&mut late).await;
    assert_eq!(chunks(&events), ["c0", "c1", "c2", "c3", "c4", "c5"]);
    assert_eq!(events[0].event_type, ResourceEventType::Started as i32);

    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM hatchet.stream_chunks WHERE task_id = $1")
            .bind(task)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored, 6);
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test]
async fn failed_runs_end_the_stream_with_failed() {
    let server = TestServer::start().await;
    let pool = server.state.pool.clone();
    let task = running_task(&pool).await;
    let id = task.to_string();
    let mut live = subscribe(&server, &id).await.unwrap();
    put(&server, &id, Some(0), "partial").await.unwrap();
    sqlx::query("SELECT hatchet.fail($1, 0, 'boom', retryable => false)")
        .bind(task)
        .execute(&pool)
        .await
        .unwrap();
    let events = until_hangup(&mut live).await;
    assert_eq!(chunks(&events), ["partial"]);
    let failed = events
        .iter()
        .find(|e| {
            e.resource_type == ResourceType::StepRun as i32
                && e.event_type == ResourceEventType::Failed as i32
        })
        .expect("FAILED for the task");
    assert!(failed.event_payload.contains("boom"), "{failed:?}");
    let last = events.last().unwrap();
    assert_eq!(last.event_type, ResourceEventType::Failed as i32);
    assert_eq!(last.resource_type, ResourceType::WorkflowRun as i32);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bad_stream_requests_get_a_clear_status_and_write_nothing() {
    let server = TestServer::start().await;
    let pool = server.state.pool.clone();
    let task = running_task(&pool).await;
    // Other tests share the database: count this task's chunks and any other tenant's.
    let count = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM hatchet.stream_chunks WHERE task_id = $1 OR tenant_id <> $2",
        )
        .bind(task)
        .bind(hatchet_server::config::DEFAULT_TENANT_ID)
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let before = count().await;
    fn code<T>(r: Result<T, tonic::Status>) -> tonic::Code {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(status) => status.code(),
        }
    }

    assert_eq!(
        code(put(&server, "not-a-uuid", Some(0), "x").await),
        tonic::Code::InvalidArgument
    );
    assert_eq!(
        code(put(&server, &Uuid::new_v4().to_string(), Some(0), "x").await),
        tonic::Code::NotFound
    );
    assert_eq!(
        code(put(&server, &task.to_string(), Some(-1), "x").await),
        tonic::Code::InvalidArgument
    );
    assert_eq!(
        code(subscribe(&server, &Uuid::new_v4().to_string()).await),
        tonic::Code::NotFound
    );
    assert_eq!(
        code(subscribe(&server, "nope").await),
        tonic::Code::InvalidArgument
    );

    // Another tenant's task and run do not exist for this token.
    let other = Uuid::new_v4();
    sqlx::query("INSERT INTO hatchet.tenants (tenant_id, name) VALUES ($1, $2)")
        .bind(other)
        .bind(format!("other-{other}"))
        .execute(&pool)
        .await
        .unwrap();
    let foreign = server
        .state
        .auth
        .mint(&hatchet_server::auth::MintRequest {
            tenant_id: other,
            name: "other".into(),
            expires_in: Duration::from_secs(600),
            server_url: "http://localhost:8080".into(),
            grpc_broadcast_address: "localhost:7077".into(),
        })
        .await
        .unwrap()
        .token;
    let mut events = EventsServiceClient::new(server.channel().await);
    let status = events
        .put_stream_event(with_auth(
            proto::PutStreamEventRequest {
                task_run_external_id: task.to_string(),
                message: b"sneaky".to_vec(),
                event_index: Some(0),
                ..Default::default()
            },
            Some(&format!("bearer {foreign}")),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    let status = DispatcherClient::new(server.channel().await)
        .subscribe_to_workflow_events(with_auth(
            proto::SubscribeToWorkflowEventsRequest {
                workflow_run_id: Some(task.to_string()),
                ..Default::default()
            },
            Some(&format!("bearer {foreign}")),
        ))
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");

    assert_eq!(count().await, before, "a refused chunk was stored");
    // Still serving: a good chunk goes in.
    put(&server, &task.to_string(), Some(0), "ok")
        .await
        .unwrap();
    assert_eq!(count().await, before + 1);
    server.stop().await.unwrap();
}

/// Runs one workflow run of `flow` with the given metadata; its single task is claimed by a SQL consumer.
async fn running_run(pool: &PgPool, flow: &str, meta: serde_json::Value) -> (Uuid, Uuid) {
    let run: Uuid = sqlx::query_scalar("SELECT hatchet.run_workflow($1, '{}', $2)")
        .bind(flow)
        .bind(meta)
        .fetch_one(pool)
        .await
        .unwrap();
    let task: Uuid = sqlx::query_scalar("SELECT task_id FROM hatchet.dequeue($1, 'test')")
        .bind(format!("{flow}:t"))
        .fetch_one(pool)
        .await
        .unwrap();
    (run, task)
}

#[tokio::test]
async fn subscriptions_by_metadata_follow_every_matching_run() {
    let server = TestServer::start().await;
    let pool = server.state.pool.clone();
    let flow = format!("meta{}", Uuid::new_v4().simple());
    sqlx::query("SELECT hatchet.register_workflow($1)")
        .bind(serde_json::json!({"name": flow, "tasks": [{"readable_id": "t"}]}))
        .execute(&pool)
        .await
        .unwrap();
    let tag = Uuid::new_v4().to_string();
    let bearer = format!("bearer {}", server.token);
    let mut stream = DispatcherClient::new(server.channel().await)
        .subscribe_to_workflow_events(with_auth(
            proto::SubscribeToWorkflowEventsRequest {
                additional_meta_key: Some("order".into()),
                additional_meta_value: Some(tag.clone()),
                ..Default::default()
            },
            Some(&bearer),
        ))
        .await
        .unwrap()
        .into_inner();

    // Two matching runs one after the other, and one with another value in between that must not show up.
    for i in 0..2 {
        let (other_run, other_task) =
            running_run(&pool, &flow, serde_json::json!({"order": "someone-else"})).await;
        let (run, task) = running_run(&pool, &flow, serde_json::json!({"order": tag})).await;
        put(&server, &other_task.to_string(), Some(0), "not for us")
            .await
            .unwrap();
        put(&server, &task.to_string(), Some(0), &format!("chunk {i}"))
            .await
            .unwrap();
        complete(&pool, task).await;
        complete(&pool, other_task).await;
        let mut kinds = Vec::new();
        loop {
            let e = tokio::time::timeout(Duration::from_secs(10), stream.message())
                .await
                .expect("an event within 10 s")
                .unwrap()
                .unwrap();
            assert_eq!(e.workflow_run_id, run.to_string(), "{e:?}");
            assert_ne!(e.workflow_run_id, other_run.to_string());
            assert!(!e.hangup, "a metadata subscription never hangs up: {e:?}");
            if e.event_type == ResourceEventType::Stream as i32 {
                assert_eq!(e.event_payload, format!("chunk {i}"));
            }
            kinds.push((e.resource_type, e.event_type));
            if e.resource_type == ResourceType::WorkflowRun as i32 {
                break;
            }
        }
        assert_eq!(
            kinds,
            [
                (
                    ResourceType::StepRun as i32,
                    ResourceEventType::Started as i32
                ),
                (
                    ResourceType::StepRun as i32,
                    ResourceEventType::Stream as i32
                ),
                (
                    ResourceType::StepRun as i32,
                    ResourceEventType::Completed as i32
                ),
                (
                    ResourceType::WorkflowRun as i32,
                    ResourceEventType::Completed as i32
                ),
            ]
        );
    }
    drop(stream);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_stream_survives_a_server_restart() {
    let first = TestServer::start().await;
    let pool = first.state.pool.clone();
    let task = running_task(&pool).await;
    let id = task.to_string();
    let mut before = subscribe(&first, &id).await.unwrap();
    put(&first, &id, Some(0), "before").await.unwrap();
    first.stop().await.unwrap();
    // The subscriber of the stopped server sees its stream end without a hangup (the SDK resubscribes).
    let mut ended = false;
    for _ in 0..10 {
        match tokio::time::timeout(Duration::from_secs(5), before.message()).await {
            Ok(Ok(Some(e))) => assert!(!e.hangup, "{e:?}"),
            Ok(_) => {
                ended = true;
                break;
            }
            Err(_) => panic!("the stream of a stopped server did not end"),
        }
    }
    assert!(ended);

    let second = TestServer::start().await;
    put(&second, &id, Some(1), "after").await.unwrap();
    let mut after = subscribe(&second, &id).await.unwrap();
    complete(&pool, task).await;
    let events = until_hangup(&mut after).await;
    assert_eq!(chunks(&events), ["before", "after"]);
    second.stop().await.unwrap();
}
