//! Placement, replay and rate-limit pauses through the server: `TriggerWorkflow.desired_worker_id` reaches the
//! run's tasks, `PauseRateLimit` holds a limit (and the REST list shows `pausedUntil`), and REST replay re-queues a
//! finished task. Bad input gets a clear status and changes nothing.

mod common;

use axum::body::Body;
use common::{with_auth, TestServer};
use hatchet_server::config::DEFAULT_TENANT_ID;
use hatchet_server::proto::{self, workflow_service_client::WorkflowServiceClient};
use hatchet_server::{rest, AppState};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sqlx::PgPool;
use tonic::codec::CompressionEncoding::Gzip;
use tower::ServiceExt;
use uuid::Uuid;

/// One REST call through the router with the server's token; (status, JSON body or Null).
async fn call(
    state: &AppState,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let req = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json");
    let req = req
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let resp = rest::app(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", Uuid::new_v4().simple())
}

async fn task_status(pool: &PgPool, task: Uuid) -> String {
    sqlx::query_scalar("SELECT hatchet.task_status($1, $2)")
        .bind(task)
        .bind(DEFAULT_TENANT_ID)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn pause_rate_limit_holds_the_limit_and_shows_in_the_list() {
    let server = TestServer::start().await;
    let bearer = format!("bearer {}", server.token);
    let auth = Some(bearer.as_str());
    let mut workflows = WorkflowServiceClient::new(server.channel().await).send_compressed(Gzip);
    let key = unique("rl");
    workflows
        .put_rate_limit(with_auth(
            proto::PutRateLimitRequest {
                key: key.clone(),
                limit: 5,
                duration: proto::RateLimitDuration::Minute as i32,
            },
            auth,
        ))
        .await
        .unwrap();

    let until = chrono::Utc::now() + chrono::Duration::hours(1);
    let paused = workflows
        .pause_rate_limit(with_auth(
            proto::PauseRateLimitRequest {
                key: key.clone(),
                paused_until: Some(prost_types::Timestamp {
                    seconds: until.timestamp(),
                    nanos: 0,
                }),
            },
            auth,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(paused.paused_until.unwrap().seconds, until.timestamp());

    // A task that needs the limit stays queued while it is paused.
    let task: Uuid = sqlx::query_scalar(
        "SELECT hatchet.enqueue($1, rate_limits => jsonb_build_array(jsonb_build_object('key', $2::text)), \
                                tenant_id => $3)",
    )
    .bind(unique("q"))
    .bind(&key)
    .bind(DEFAULT_TENANT_ID)
    .fetch_one(&server.state.pool)
    .await
    .unwrap();
    let queue: String = sqlx::query_scalar("SELECT queue FROM hatchet.task($1, $2)")
        .bind(task)
        .bind(DEFAULT_TENANT_ID)
        .fetch_one(&server.state.pool)
        .await
        .unwrap();
    let claimed: i64 = sqlx::query_scalar("SELECT count(*) FROM hatchet.dequeue($1, 'w', 5, $2)")
        .bind(&queue)
        .bind(DEFAULT_TENANT_ID)
        .fetch_one(&server.state.pool)
        .await
        .unwrap();
    assert_eq!(claimed, 0, "a paused limit lets nothing through");
    assert_eq!(task_status(&server.state.pool, task).await, "QUEUED");

    let path = format!("/api/v1/tenants/{DEFAULT_TENANT_ID}/rate-limits?search={key}");
    let (status, body) = call(&server.state, &server.token, "GET", &path, None).await;
    assert_eq!(status, 200, "{body}");
    let row = &body["rows"][0];
    assert_eq!(row["key"], json!(key));
    let shown: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(row["pausedUntil"].clone()).expect("pausedUntil while paused");
    assert_eq!(shown.timestamp(), until.timestamp());

    // Unpausing (a time in the past) lets the parked task run at once and clears pausedUntil.
    workflows
        .pause_rate_limit(with_auth(
            proto::PauseRateLimitRequest {
                key: key.clone(),
                paused_until: Some(prost_types::Timestamp {
                    seconds: chrono::Utc::now().timestamp() - 10,
                    nanos: 0,
                }),
            },
            auth,
        ))
        .await
        .unwrap();
    let claimed: i64 = sqlx::query_scalar("SELECT count(*) FROM hatchet.dequeue($1, 'w', 5, $2)")
        .bind(&queue)
        .bind(DEFAULT_TENANT_ID)
        .fetch_one(&server.state.pool)
        .await
        .unwrap();
    assert_eq!(claimed, 1);
    let (_, body) = call(&server.state, &server.token, "GET", &path, None).await;
    assert!(body["rows"][0].get("pausedUntil").is_none(), "{body}");

    // Unknown key: NOT_FOUND; empty key: INVALID_ARGUMENT.
    let unknown = workflows
        .pause_rate_limit(with_auth(
            proto::PauseRateLimitRequest {
                key: unique("nope"),
                paused_until: None,
            },
            auth,
        ))
        .await
        .expect_err("unknown key");
    assert_eq!(unknown.code(), tonic::Code::NotFound, "{unknown:?}");
    let empty = workflows
        .pause_rate_limit(with_auth(proto::PauseRateLimitRequest::default(), auth))
        .await
        .expect_err("empty key");
    assert_eq!(empty.code(), tonic::Code::InvalidArgument, "{empty:?}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_trigger_places_the_run_on_the_desired_worker() {
    let server = TestServer::start().await;
    let bearer = format!("bearer {}", server.token);
    let auth = Some(bearer.as_str());
    let pool = &server.state.pool;
    let name = unique("placed");
    sqlx::query("SELECT hatchet.register_workflow($1, $2)")
        .bind(json!({"name": name, "tasks": [{"readable_id": "only"}]}))
        .bind(DEFAULT_TENANT_ID)
        .execute(pool)
        .await
        .unwrap();
    let worker: Uuid = sqlx::query_scalar(
        "SELECT hatchet.register_worker('w', ARRAY[$1::text], '{\"default\": 1}', tenant_id => $2)",
    )
    .bind(format!("{name}:only"))
    .bind(DEFAULT_TENANT_ID)
    .fetch_one(pool)
    .await
    .unwrap();
    let mut workflows = WorkflowServiceClient::new(server.channel().await).send_compressed(Gzip);
    let trigger = |desired: &str| proto::v1::TriggerWorkflowRequest {
        name: name.clone(),
        input: "{}".into(),
        desired_worker_id: Some(desired.to_owned()),
        ..Default::default()
    };
    let run = workflows
        .trigger_workflow(with_auth(trigger(&worker.to_string()), auth))
        .await
        .unwrap()
        .into_inner()
        .workflow_run_id;
    let (sticky, desired): (Option<String>, Option<Uuid>) = sqlx::query_as(
        "SELECT sticky::text, desired_worker_id FROM hatchet.tasks WHERE tenant_id = $1 AND run_id = $2::uuid",
    )
    .bind(DEFAULT_TENANT_ID)
    .bind(&run)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(sticky.as_deref(), Some("SOFT"));
    assert_eq!(desired, Some(worker));

    let runs_before: i64 = sqlx::query_scalar("SELECT count(*) FROM hatchet.runs")
        .fetch_one(pool)
        .await
        .unwrap();
    let malformed = workflows
        .trigger_workflow(with_auth(trigger("not-a-uuid"), auth))
        .await
        .expect_err("malformed worker id");
    assert_eq!(
        malformed.code(),
        tonic::Code::InvalidArgument,
        "{malformed:?}"
    );
    let unknown = workflows
        .trigger_workflow(with_auth(trigger(&Uuid::new_v4().to_string()), auth))
        .await
        .expect_err("unknown worker");
    assert_eq!(unknown.code(), tonic::Code::NotFound, "{unknown:?}");
    let runs_after: i64 = sqlx::query_scalar("SELECT count(*) FROM hatchet.runs")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(runs_after, runs_before, "bad triggers start no run");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn rest_replay_requeues_a_finished_task() {
    let server = TestServer::start().await;
    let pool = &server.state.pool;
    let queue = unique("replay");
    let task: Uuid = sqlx::query_scalar("SELECT hatchet.enqueue($1, tenant_id => $2)")
        .bind(&queue)
        .bind(DEFAULT_TENANT_ID)
        .fetch_one(pool)
        .await
        .unwrap();
    sqlx::query(
        "SELECT hatchet.fail(d.task_id, d.retry_count, 'boom', false, $2) FROM hatchet.dequeue($1, 'w', 1, $2) d",
    )
    .bind(&queue)
    .bind(DEFAULT_TENANT_ID)
    .execute(pool)
    .await
    .unwrap();
    assert_eq!(task_status(pool, task).await, "FAILED");
    let path = format!("/api/v1/stable/tenants/{DEFAULT_TENANT_ID}/tasks/replay");

    // An unknown id among the ids: 404 and nothing replayed.
    let (status, body) = call(
        &server.state,
        &server.token,
        "POST",
        &path,
        Some(json!({"externalIds": [task.to_string(), Uuid::new_v4().to_string()]})),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(task_status(pool, task).await, "FAILED");
    // Neither ids nor a filter: 400.
    let (status, _) = call(&server.state, &server.token, "POST", &path, Some(json!({}))).await;
    assert_eq!(status, 400);

    let (status, body) = call(
        &server.state,
        &server.token,
        "POST",
        &path,
        Some(json!({"externalIds": [task.to_string()]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"ids": [task.to_string()]}));
    assert_eq!(task_status(pool, task).await, "QUEUED");
    // Queued again, so a second replay leaves it alone.
    let (status, body) = call(
        &server.state,
        &server.token,
        "POST",
        &path,
        Some(json!({"externalIds": [task.to_string()]})),
    )
    .await;
    assert_eq!((status, body), (200, json!({"ids": []})));
    server.stop().await.unwrap();
}
