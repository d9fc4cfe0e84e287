//! The REST side: `/health` and `/metrics` against a real database (and a dead one), through the router with
//! `oneshot` and once over a real socket.

mod common;

use axum::body::Body;
use common::TestServer;
use hatchet_server::config::{ServerConfig, DEFAULT_TENANT_ID};
use hatchet_server::{rest, AppState};
use http_body_util::BodyExt;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

async fn get(state: &AppState, path: &str) -> (u16, String, String) {
    get_as(state, path, None).await
}

async fn get_as(state: &AppState, path: &str, token: Option<&str>) -> (u16, String, String) {
    let mut req = axum::http::Request::builder().uri(path);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let resp = rest::app(state.clone())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    (status, content_type, body)
}

/// State whose pool points at a port where nothing listens.
fn state_without_database() -> AppState {
    let options = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(common::free_port())
        .username("postgres")
        .database("hatchet");
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy_with(options);
    AppState::new(pool, ServerConfig::default()).unwrap()
}

#[tokio::test]
async fn health_is_ok_with_a_database() {
    let state = common::state().await;
    let (status, content_type, body) = get(&state, "/health").await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"status": "ok"})
    );
}

#[tokio::test]
async fn health_is_503_without_a_database() {
    let (status, _, body) = get(&state_without_database(), "/health").await;
    assert_eq!(status, 503);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["status"], "unavailable");
}

#[tokio::test]
async fn metrics_report_queue_depth_and_register_the_counters() {
    let state = common::state().await;
    let token = common::mint(&state, "metrics").await.token;
    let queue = format!("metrics_{}", uuid::Uuid::new_v4().simple());
    for _ in 0..3 {
        sqlx::query("SELECT hatchet.enqueue($1, '{}'::jsonb)")
            .bind(&queue)
            .execute(&state.pool)
            .await
            .expect("enqueue");
    }
    let tenant = DEFAULT_TENANT_ID.to_string();
    state
        .metrics
        .assignments
        .with_label_values(&[tenant.as_str()])
        .inc();

    let (status, content_type, body) = get_as(&state, "/metrics", Some(&token)).await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let depth_line =
        format!("hatchet_queue_depth{{queue=\"{queue}\",tenant_id=\"{DEFAULT_TENANT_ID}\"}} 3");
    assert!(
        body.contains(&depth_line),
        "missing {depth_line} in\n{body}"
    );
    for expected in [
        "# TYPE hatchet_queue_depth gauge".to_owned(),
        "hatchet_database_up 1".to_owned(),
        "# TYPE hatchet_assignments_total counter".to_owned(),
        format!("hatchet_assignments_total{{tenant_id=\"{tenant}\"}} 1"),
        format!("hatchet_completions_total{{tenant_id=\"{tenant}\"}} 0"),
        format!("hatchet_failures_total{{tenant_id=\"{tenant}\"}} 0"),
        "# TYPE hatchet_queue_to_start_seconds histogram".to_owned(),
        format!("hatchet_queue_to_start_seconds_bucket{{tenant_id=\"{tenant}\",le=\"+Inf\"}} 0"),
    ] {
        assert!(body.contains(&expected), "missing {expected:?} in\n{body}");
    }

    // Once the queue drains, its series disappears instead of reporting a stale depth.
    sqlx::query("SELECT hatchet.dequeue($1, 'metrics-test', 10)")
        .bind(&queue)
        .execute(&state.pool)
        .await
        .expect("dequeue");
    let (_, _, body) = get_as(&state, "/metrics", Some(&token)).await;
    assert!(
        !body.contains(&format!("queue=\"{queue}\"")),
        "stale series in\n{body}"
    );
}

/// `/metrics` needs the API token, and a tenant's scrape names only its own queues and counters.
#[tokio::test]
async fn metrics_need_a_token_and_show_only_the_tokens_tenant() {
    let state = common::state().await;
    let (status, _, body) = get(&state, "/metrics").await;
    assert_eq!(status, 401, "{body}");
    let (status, _, _) = get_as(&state, "/metrics", Some("not-a-token")).await;
    assert_eq!(status, 401);

    let other = uuid::Uuid::new_v4();
    sqlx::query("INSERT INTO hatchet.tenants (tenant_id, name) VALUES ($1, $2)")
        .bind(other)
        .bind(format!("metrics-{other}"))
        .execute(&state.pool)
        .await
        .unwrap();
    let other_token = state
        .auth
        .mint(&hatchet_server::auth::MintRequest {
            tenant_id: other,
            name: "other".into(),
            expires_in: Duration::from_secs(3600),
            server_url: "http://localhost:8080".into(),
            grpc_broadcast_address: "localhost:7077".into(),
        })
        .await
        .unwrap()
        .token;
    let default_token = common::mint(&state, "metrics").await.token;
    let secret_queue = format!("secret_{}", uuid::Uuid::new_v4().simple());
    sqlx::query("SELECT hatchet.enqueue($1, '{}'::jsonb)")
        .bind(&secret_queue)
        .execute(&state.pool)
        .await
        .unwrap();
    state
        .metrics
        .assignments
        .with_label_values(&[DEFAULT_TENANT_ID.to_string().as_str()])
        .inc_by(7);

    let (status, _, mine) = get_as(&state, "/metrics", Some(&default_token)).await;
    assert_eq!(status, 200);
    assert!(mine.contains(&secret_queue), "{mine}");

    let (status, _, theirs) = get_as(&state, "/metrics", Some(&other_token)).await;
    assert_eq!(status, 200);
    assert!(!theirs.contains(&secret_queue), "{theirs}");
    assert!(
        !theirs.contains(&DEFAULT_TENANT_ID.to_string()),
        "another tenant's series leaked:\n{theirs}"
    );
    assert!(
        theirs.contains(&format!(
            "hatchet_assignments_total{{tenant_id=\"{other}\"}} 0"
        )),
        "{theirs}"
    );
}

#[tokio::test]
async fn metrics_still_answer_when_the_database_goes_away() {
    let state = common::state().await;
    let token = common::mint(&state, "metrics").await.token;
    // Verified once, the token is trusted for the cache TTL without the database.
    let state = AppState::new(
        state.pool.clone(),
        ServerConfig {
            auth_cache_ttl: Duration::from_secs(600),
            ..ServerConfig::default()
        },
    )
    .unwrap();
    state.auth.verify(&token).await.unwrap();
    state.pool.close().await;
    let (status, _, body) = get_as(&state, "/metrics", Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("hatchet_database_up 0"), "{body}");
}

#[tokio::test]
async fn unknown_paths_outside_the_api_are_404() {
    let state = common::state().await;
    let (status, _, _) = get(&state, "/nope").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_running_server_answers_http_on_its_socket() {
    let server = TestServer::start().await;
    let mut stream = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with(r#"{"status":"ok"}"#), "{response}");
    server.stop().await.unwrap();
}
