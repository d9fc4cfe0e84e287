//! Bad input (issue 5, point 7) beyond what `grpc.rs` covers: request bodies that are not protobuf at all (sent as
//! raw frames), unknown worker ids, another tenant's tasks, runs and events, and bad REST requests to filters and
//! webhooks. Each gets a clear status, writes nothing (row counts are compared), and the server keeps serving.

mod common;

use axum::body::Body;
use common::{with_auth, TestServer};
use hatchet_server::auth::MintRequest;
use hatchet_server::proto::{
    self, dispatcher_client::DispatcherClient, events_service_client::EventsServiceClient,
    v1::admin_service_client::AdminServiceClient,
};
use hatchet_server::{rest, AppState};
use http_body_util::BodyExt;
use prost::bytes::{Buf, BufMut};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::time::Duration;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tower::ServiceExt;
use uuid::Uuid;

/// The tests of this file compare whole-table row counts, so they run one at a time (each test has its own runtime;
/// a tokio mutex works across them).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Sends message bytes as they are, so a test can put anything in a gRPC frame.
#[derive(Debug, Clone, Default)]
struct RawCodec;
#[derive(Debug)]
struct RawEncoder;
#[derive(Debug)]
struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

async fn raw_call(
    server: &TestServer,
    path: &'static str,
    body: &[u8],
) -> Result<Vec<u8>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.expect("channel ready");
    let bearer = format!("bearer {}", server.token);
    grpc.unary(
        with_auth(body.to_vec(), Some(&bearer)),
        http::uri::PathAndQuery::from_static(path),
        RawCodec,
    )
    .await
    .map(|r| r.into_inner())
}

/// Row counts of every table a request could write to.
async fn counts(pool: &PgPool) -> Vec<(&'static str, i64)> {
    let mut out = Vec::new();
    for table in [
        "hatchet.workers",
        "hatchet.workflows",
        "hatchet.runs",
        "hatchet.tasks",
        "hatchet.events",
        "hatchet.stream_chunks",
        "hatchet.event_filters",
        "hatchet.webhooks",
        "hatchet.logs",
    ] {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(pool)
                .await
                .unwrap();
        out.push((table, n));
    }
    out
}

#[tokio::test]
async fn malformed_protobuf_is_invalid_argument_and_writes_nothing() {
    let _serial = SERIAL.lock().await;
    let server = TestServer::start().await;
    let pool = server.state.pool.clone();
    let before = counts(&pool).await;
    let garbage: [&[u8]; 3] = [
        // a varint that never ends
        &[
            0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ],
        // field 1, length 16, but one byte follows
        &[0x0a, 0x10, 0x41],
        // field 1 is a string, and these bytes are not UTF-8
        &[0x0a, 0x02, 0xff, 0xfe],
    ];
    for path in [
        "/Dispatcher/Register",
        "/EventsService/Push",
        "/EventsService/PutStreamEvent",
        "/WorkflowService/TriggerWorkflow",
        "/v1.AdminService/PutWorkflow",
    ] {
        for body in garbage {
            let status = raw_call(&server, path, body).await.expect_err(path);
            assert_eq!(
                status.code(),
                tonic::Code::InvalidArgument,
                "{path} {body:?}: {status:?}"
            );
            assert!(
                status.message().contains("decode"),
                "{path}: {}",
                status.message()
            );
        }
    }
    assert_eq!(counts(&pool).await, before);
    // A well-formed message on the same raw path works: the server still serves.
    let version = raw_call(&server, "/Dispatcher/GetVersion", &[])
        .await
        .expect("GetVersion");
    assert!(!version.is_empty());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_worker_ids_are_not_found() {
    let _serial = SERIAL.lock().await;
    let server = TestServer::start().await;
    let pool = server.state.pool.clone();
    let bearer = format!("bearer {}", server.token);
    let auth = Some(bearer.as_str());
    let before = counts(&pool).await;
    let mut d = DispatcherClient::new(server.channel().await);
    let unknown = Uuid::new_v4().to_string();
    fn code<T>(r: Result<T, tonic::Status>) -> tonic::Code {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(status) => status.code(),
        }
    }
    assert_eq!(
        code(
            d.heartbeat(with_auth(
                proto::HeartbeatRequest {
                    worker_id: unknown.clone(),
                    ..Default::default()
                },
                auth
            ))
            .await
        ),
        tonic::Code::NotFound
    );
    assert_eq!(
        code(
            d.unsubscribe(with_auth(
                proto::WorkerUnsubscribeRequest {
                    worker_id: unknown.clone()
                },
                auth
            ))
            .await
        ),
        tonic::Code::NotFound
    );
    assert_eq!(
        code(
            d.heartbeat(with_auth(
                proto::HeartbeatRequest {
                    worker_id: "not-a-uuid".into(),
                    ..Default::default()
                },
                auth
            ))
            .await
        ),
        tonic::Code::InvalidArgument
    );
    assert_eq!(counts(&pool).await, before);
    server.stop().await.unwrap();
}

/// A second tenant with its own token.
async fn other_tenant(state: &AppState) -> (Uuid, String) {
    let tenant = Uuid::new_v4();
    sqlx::query("INSERT INTO hatchet.tenants (tenant_id, name) VALUES ($1, $2)")
        .bind(tenant)
        .bind(format!("other-{tenant}"))
        .execute(&state.pool)
        .await
        .unwrap();
    let token = state
        .auth
        .mint(&MintRequest {
            tenant_id: tenant,
            name: "other".into(),
            expires_in: Duration::from_secs(600),
            server_url: "http://localhost:8080".into(),
            grpc_broadcast_address: "localhost:7077".into(),
        })
        .await
        .unwrap()
        .token;
    (tenant, token)
}

async fn status_of(pool: &PgPool, task: Uuid) -> String {
    sqlx::query_scalar("SELECT hatchet.task_status($1)")
        .bind(task)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn http(
    state: &AppState,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> (u16, Value) {
    let resp = rest::app(state.clone())
        .oneshot(
            axum::http::Request::builder()
                .method(method)
                .uri(path)
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn another_tenants_tasks_runs_and_events_stay_out_of_reach() {
    let _serial = SERIAL.lock().await;
    let server = TestServer::start().await;
    let state = server.state.clone();
    let pool = state.pool.clone();
    let (other, foreign) = other_tenant(&state).await;
    let foreign_bearer = format!("bearer {foreign}");
    let fauth = Some(foreign_bearer.as_str());

    // Tenant A (the default one) has a running task and a workflow triggered by an event key.
    let queue = format!("mine{}", Uuid::new_v4().simple());
    let task: Uuid = sqlx::query_scalar("SELECT hatchet.enqueue($1, '{}')")
        .bind(&queue)
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query("SELECT * FROM hatchet.dequeue($1, 'w')")
        .bind(&queue)
        .execute(&pool)
        .await
        .unwrap();
    let key = format!("tenant-a:{}", Uuid::new_v4().simple());
    let flow = format!("on-{}", Uuid::new_v4().simple());
    sqlx::query("SELECT hatchet.register_workflow($1)")
        .bind(json!({"name": flow, "event_triggers": [key], "tasks": [{"readable_id": "t"}]}))
        .execute(&pool)
        .await
        .unwrap();
    let before = counts(&pool).await;

    // Tenant B's token cannot touch A's task, run or stream.
    let channel = server.channel().await;
    let mut d = DispatcherClient::new(channel.clone());
    // A COMPLETED for a task the caller's tenant does not have is acknowledged without effect (the completion
    // path answers resent or stale results that way, see grpc/dispatcher.rs); FAILED is NOT_FOUND.
    let completed = d
        .send_step_action_event(with_auth(
            proto::StepActionEvent {
                task_run_external_id: task.to_string(),
                event_type: proto::StepActionEventType::StepEventTypeCompleted as i32,
                event_payload: "{}".into(),
                ..Default::default()
            },
            fauth,
        ))
        .await;
    assert!(
        completed.is_ok() || completed.as_ref().unwrap_err().code() == tonic::Code::NotFound,
        "{completed:?}"
    );
    let status = d
        .send_step_action_event(with_auth(
            proto::StepActionEvent {
                task_run_external_id: task.to_string(),
                event_type: proto::StepActionEventType::StepEventTypeFailed as i32,
                event_payload: "boom".into(),
                ..Default::default()
            },
            fauth,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    tokio::time::sleep(Duration::from_millis(300)).await; // longer than the completion batch window
    assert_eq!(status_of(&pool, task).await, "RUNNING");
    let status = d
        .refresh_timeout(with_auth(
            proto::RefreshTimeoutRequest {
                task_run_external_id: task.to_string(),
                increment_timeout_by: "10s".into(),
            },
            fauth,
        ))
        .await
        .unwrap_err();
    // The extension answers "not running" for an attempt it cannot see in this tenant: nothing is revealed.
    assert!(
        matches!(
            status.code(),
            tonic::Code::NotFound | tonic::Code::FailedPrecondition
        ),
        "{status:?}"
    );
    let status = AdminServiceClient::new(channel.clone())
        .get_run_details(with_auth(
            proto::v1::GetRunDetailsRequest {
                external_id: task.to_string(),
            },
            fauth,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    let status = EventsServiceClient::new(channel.clone())
        .put_log(with_auth(
            proto::PutLogRequest {
                task_run_external_id: task.to_string(),
                message: "sneaky".into(),
                ..Default::default()
            },
            fauth,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");

    // REST: A's run by id is not found for B; A's tenant path is forbidden.
    let (code, _) = http(
        &state,
        "GET",
        &format!("/api/v1/stable/workflow-runs/{task}"),
        &foreign,
        None,
    )
    .await;
    assert_eq!(code, 404);
    let default = hatchet_server::config::DEFAULT_TENANT_ID;
    for path in [
        "events",
        "filters",
        "webhooks",
        "workflow-runs?since=2020-01-01T00:00:00Z&only_tasks=false",
    ] {
        let (code, body) = http(
            &state,
            "GET",
            &format!("/api/v1/stable/tenants/{default}/{path}"),
            &foreign,
            None,
        )
        .await;
        assert_eq!(code, 403, "{path}: {body}");
    }
    // Cancelling A's task through B's tenant cancels nothing.
    let (code, body) = http(
        &state,
        "POST",
        &format!("/api/v1/stable/tenants/{other}/tasks/cancel"),
        &foreign,
        Some(&json!({"externalIds": [task]}).to_string()),
    )
    .await;
    assert!(code < 500, "{code}: {body}");
    assert_eq!(status_of(&pool, task).await, "RUNNING");

    // B's event with A's key triggers nothing of A's, and is listed only for B.
    let event = EventsServiceClient::new(channel.clone())
        .push(with_auth(
            proto::PushEventRequest {
                key: key.clone(),
                payload: "{}".into(),
                ..Default::default()
            },
            fauth,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(event.tenant_id, other.to_string());
    let mut after = counts(&pool).await;
    let events = after
        .iter_mut()
        .find(|(t, _)| *t == "hatchet.events")
        .unwrap();
    events.1 -= 1; // B's own event is the only new row
    assert_eq!(after, before);
    let (code, body) = http(
        &state,
        "GET",
        &format!("/api/v1/stable/tenants/{default}/events?keys={key}"),
        &server.token,
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(body["rows"], json!([]), "A sees B's event: {body}");
    assert_eq!(status_of(&pool, task).await, "RUNNING");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bad_filter_and_webhook_requests_write_nothing() {
    let _serial = SERIAL.lock().await;
    let server = TestServer::start().await;
    let state = server.state.clone();
    let pool = state.pool.clone();
    let token = server.token.clone();
    let tenant = hatchet_server::config::DEFAULT_TENANT_ID;
    let flow = format!("filtered-{}", Uuid::new_v4().simple());
    sqlx::query("SELECT hatchet.register_workflow($1)")
        .bind(json!({"name": flow, "event_triggers": ["k"], "tasks": [{"readable_id": "t"}]}))
        .execute(&pool)
        .await
        .unwrap();
    let workflow: Uuid =
        sqlx::query_scalar("SELECT external_id FROM hatchet.workflows WHERE name = $1")
            .bind(&flow)
            .fetch_one(&pool)
            .await
            .unwrap();
    let before = counts(&pool).await;
    let filters = format!("/api/v1/stable/tenants/{tenant}/filters");
    let webhooks = format!("/api/v1/stable/tenants/{tenant}/webhooks");
    let cases: Vec<(&str, String, Option<String>, u16)> = vec![
        ("POST", filters.clone(), Some("{not json".into()), 400),
        ("POST", filters.clone(), Some(json!({"expression": "true", "scope": "s"}).to_string()), 400),
        (
            "POST",
            filters.clone(),
            Some(json!({"workflowId": "nope", "expression": "true", "scope": "s"}).to_string()),
            400,
        ),
        (
            "POST",
            filters.clone(),
            Some(json!({"workflowId": Uuid::new_v4(), "expression": "true", "scope": "s"}).to_string()),
            404,
        ),
        (
            "POST",
            filters.clone(),
            Some(json!({"workflowId": workflow, "expression": "input.x >", "scope": "s"}).to_string()),
            400,
        ),
        (
            "POST",
            filters.clone(),
            Some(json!({"workflowId": workflow, "expression": "true", "scope": ""}).to_string()),
            400,
        ),
        ("GET", format!("{filters}/{}", Uuid::new_v4()), None, 404),
        ("GET", format!("{filters}/nope"), None, 400),
        (
            "PATCH",
            format!("{filters}/{}", Uuid::new_v4()),
            Some(json!({"scope": "x"}).to_string()),
            404,
        ),
        ("DELETE", format!("{filters}/{}", Uuid::new_v4()), None, 404),
        ("POST", webhooks.clone(), Some("[]".into()), 400),
        (
            "POST",
            webhooks.clone(),
            Some(
                json!({"sourceName": "GENERIC", "name": "w", "eventKeyExpression": "'k'", "authType": "BASIC",
                       "auth": {"username": "u"}})
                .to_string(),
            ),
            400,
        ),
        (
            "POST",
            webhooks.clone(),
            Some(
                json!({"sourceName": "GENERIC", "name": "w", "eventKeyExpression": "'k' +", "authType": "API_KEY",
                       "auth": {"headerName": "x", "apiKey": "y"}})
                .to_string(),
            ),
            400,
        ),
        ("GET", format!("{webhooks}/nope"), None, 404),
        (
            "PATCH",
            format!("{webhooks}/nope"),
            Some(json!({"eventKeyExpression": "'x'"}).to_string()),
            404,
        ),
        ("DELETE", format!("{webhooks}/nope"), None, 404),
        // The receiving endpoint needs no bearer token, but an unknown webhook is still 404.
        ("POST", format!("{webhooks}/nope"), Some("{}".into()), 404),
        // Other resources' JSON bodies: not JSON, or JSON of the wrong shape.
        (
            "POST",
            format!("/api/v1/stable/tenants/{tenant}/workflow-runs/trigger"),
            Some("{not json".into()),
            400,
        ),
        (
            "POST",
            format!("/api/v1/stable/tenants/{tenant}/workflow-runs/trigger"),
            Some(json!({"input": {}}).to_string()),
            400,
        ),
        (
            "POST",
            format!("/api/v1/tenants/{tenant}/workflows/{flow}/crons"),
            Some("[1,".into()),
            400,
        ),
        (
            "POST",
            format!("/api/v1/stable/tenants/{tenant}/tasks/cancel"),
            Some("nope".into()),
            400,
        ),
    ];
    for (method, path, body, want) in &cases {
        let (code, resp) = http(&state, method, path, &token, body.as_deref()).await;
        assert_eq!(code, *want, "{method} {path} {body:?}: {resp}");
        assert!(
            resp["errors"][0]["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{method} {path}: APIErrors body expected, got {resp}"
        );
    }
    assert_eq!(counts(&pool).await, before);
    // Without a token the CRUD routes are 401.
    let resp = rest::app(state.clone())
        .oneshot(
            axum::http::Request::builder()
                .uri(&filters)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    // A good request works afterwards.
    let (code, created) = http(
        &state,
        "POST",
        &filters,
        &token,
        Some(&json!({"workflowId": workflow, "expression": "true", "scope": "s"}).to_string()),
    )
    .await;
    assert_eq!(code, 200, "{created}");
    assert_eq!(created["workflowId"], json!(workflow.to_string()));
    server.stop().await.unwrap();
}

/// What Postgres cannot store, sent by a worker: a NUL in a log line is refused with INVALID_ARGUMENT and stores
/// nothing; a NUL byte in a stream chunk is only bytes and is kept exactly; an output holding `\u0000` (jsonb cannot
/// hold it) fails the attempt for good with the reason instead of being resent until the attempt times out.
#[tokio::test]
async fn nul_bytes_from_a_worker() {
    let _serial = SERIAL.lock().await;
    let server = TestServer::start().await;
    let pool = server.state.pool.clone();
    let bearer = format!("bearer {}", server.token);
    let auth = Some(bearer.as_str());
    let queue = format!("nul{}", Uuid::new_v4().simple());
    let task: Uuid = sqlx::query_scalar("SELECT hatchet.enqueue($1, '{}', retries => 2)")
        .bind(&queue)
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query("SELECT * FROM hatchet.dequeue($1, 'w')")
        .bind(&queue)
        .execute(&pool)
        .await
        .unwrap();
    let channel = server.channel().await;
    let mut events = EventsServiceClient::new(channel.clone());
    let log = |message: &str| proto::PutLogRequest {
        task_run_external_id: task.to_string(),
        message: message.into(),
        ..Default::default()
    };
    let logs = || async {
        sqlx::query_scalar::<_, String>("SELECT message FROM hatchet.task_logs($1)")
            .bind(task)
            .fetch_all(&pool)
            .await
            .unwrap()
    };

    let refused = events
        .put_log(with_auth(log("before\0after"), auth))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert!(logs().await.is_empty());
    events
        .put_log(with_auth(log("a line"), auth))
        .await
        .unwrap();
    assert_eq!(logs().await, vec!["a line".to_owned()]);

    let chunk = b"bin\0ary".to_vec();
    events
        .put_stream_event(with_auth(
            proto::PutStreamEventRequest {
                task_run_external_id: task.to_string(),
                message: chunk.clone(),
                event_index: Some(0),
                ..Default::default()
            },
            auth,
        ))
        .await
        .unwrap();
    let stored: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT message FROM hatchet.stream_chunks WHERE task_id = $1")
            .bind(task)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(stored, vec![chunk]);

    DispatcherClient::new(channel)
        .send_step_action_event(with_auth(
            proto::StepActionEvent {
                task_run_external_id: task.to_string(),
                event_type: proto::StepActionEventType::StepEventTypeCompleted as i32,
                event_payload: r#"{"text": "nul \u0000 here"}"#.into(),
                ..Default::default()
            },
            auth,
        ))
        .await
        .unwrap();
    // Failed for good although two attempts were left: resending the same output can never succeed.
    assert_eq!(status_of(&pool, task).await, "FAILED");
    let error: String = sqlx::query_scalar(
        "SELECT reason FROM hatchet.task_events($1) WHERE event_type = 'FAILED' ORDER BY created_at DESC LIMIT 1",
    )
        .bind(task)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(error.starts_with("InvalidOutput:"), "{error}");
    server.stop().await.unwrap();
}

/// A run list's page is bounded (issue 15): payloads only when asked for, and with them at most 16 MiB per page (413
/// beyond, naming what to do); without them the same page answers with every run and `{}` inputs. Events likewise.
#[tokio::test]
async fn list_pages_are_bounded_in_bytes() {
    let _serial = SERIAL.lock().await;
    let server = TestServer::start().await;
    let state = server.state.clone();
    let (tenant, token) = other_tenant(&state).await;
    // Five runs with 3.2 MB inputs (under the 4 MiB payload limit each, 16 MB together) and one more.
    sqlx::query("SELECT hatchet.register_workflow('{\"name\": \"big\", \"tasks\": [{\"readable_id\": \"x\"}]}', $1)")
        .bind(tenant)
        .execute(&state.pool)
        .await
        .unwrap();
    sqlx::query(
        "SELECT hatchet.run_workflow('big', jsonb_build_object('blob', repeat(md5(i::text), 100000)), \
                                     tenant_id => $1) FROM generate_series(1, 6) i",
    )
    .bind(tenant)
    .execute(&state.pool)
    .await
    .unwrap();
    let runs = |query: &str| {
        format!("/api/v1/stable/tenants/{tenant}/workflow-runs?since=2020-01-01T00:00:00Z&{query}")
    };

    let (code, body) = http(&state, "GET", &runs("limit=6"), &token, None).await;
    assert_eq!(code, 413, "{body}");
    assert!(body.to_string().contains("fewer rows"), "{body}");
    let (code, body) = http(&state, "GET", &runs("limit=5"), &token, None).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["rows"].as_array().unwrap().len(), 5);
    assert!(
        body["rows"][0]["input"]["blob"].is_string(),
        "inputs are there when they fit"
    );
    let (code, body) = http(
        &state,
        "GET",
        &runs("limit=6&include_payloads=false"),
        &token,
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let rows = body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    assert!(
        rows.iter().all(|r| r["input"] == json!({})),
        "no inputs when not asked for"
    );

    // Events: six 3.2 MB payloads do not fit in one page; five do.
    sqlx::query(
        "SELECT hatchet.push_event('big', jsonb_build_object('blob', repeat(md5(i::text), 100000)), tenant_id => $1) \
         FROM generate_series(1, 6) i",
    )
    .bind(tenant)
    .execute(&state.pool)
    .await
    .unwrap();
    let events = |query: &str| format!("/api/v1/stable/tenants/{tenant}/events?{query}");
    let (code, body) = http(&state, "GET", &events("limit=6"), &token, None).await;
    assert_eq!(code, 413, "{body}");
    let (code, body) = http(&state, "GET", &events("limit=5"), &token, None).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["rows"].as_array().unwrap().len(), 5);
    server.stop().await.unwrap();
}
