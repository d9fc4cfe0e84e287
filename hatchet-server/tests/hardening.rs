//! Server hardening (issue 15): the background loops' own pool and timeouts, one tenant's failure never stalling
//! the others, chunked run checks, the per-stream subscription cap, tokens re-verified on open streams, forged
//! cancel notifications, the bounded auth cache and the refusal to serve plaintext on a public address.
//! (`/metrics` behind the token is in tests/rest.rs, webhook timestamps in tests/webhooks.rs.)

mod common;

use common::{with_auth, TestServer};
use hatchet_server::auth::{sign, Claims, MintRequest};
use hatchet_server::config::{BackgroundPool, ServerConfig, DEFAULT_TENANT_ID};
use hatchet_server::proto::{
    self, dispatcher_client::DispatcherClient, ActionType, AssignedAction,
};
use hatchet_server::AppState;
use sqlx::PgPool;
use std::collections::HashMap;
use std::time::Duration;
use tonic::codec::CompressionEncoding::Gzip;
use tonic::transport::Channel;
use tonic::Streaming;
use uuid::Uuid;

/// How long any expected message may take to arrive (a liveness bound, not a timing assertion).
const PATIENCE: Duration = Duration::from_secs(20);

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", Uuid::new_v4().simple())
}

/// A new tenant with a token.
async fn new_tenant(state: &AppState, expires_in: Duration) -> (Uuid, String, Uuid) {
    let tenant = Uuid::new_v4();
    sqlx::query("INSERT INTO hatchet.tenants (tenant_id, name) VALUES ($1, $2)")
        .bind(tenant)
        .bind(format!("hardening-{tenant}"))
        .execute(&state.pool)
        .await
        .unwrap();
    let minted = mint_for(state, tenant, expires_in).await;
    (tenant, minted.0, minted.1)
}

async fn mint_for(state: &AppState, tenant: Uuid, expires_in: Duration) -> (String, Uuid) {
    let minted = state
        .auth
        .mint(&MintRequest {
            tenant_id: tenant,
            name: "hardening".into(),
            expires_in,
            server_url: "http://localhost:8080".into(),
            grpc_broadcast_address: "localhost:7077".into(),
        })
        .await
        .unwrap();
    (minted.token, minted.token_id)
}

/// Revokes a token in the database only, as another server (or the CLI) would: this server's cache still trusts it.
async fn revoke_elsewhere(pool: &PgPool, tenant: Uuid, token_id: Uuid) {
    let done = sqlx::query(
        "UPDATE hatchet.api_tokens SET revoked_at = now() WHERE tenant_id = $1 AND token_id = $2",
    )
    .bind(tenant)
    .bind(token_id)
    .execute(pool)
    .await
    .unwrap();
    assert_eq!(done.rows_affected(), 1);
}

struct Worker {
    client: DispatcherClient<Channel>,
    bearer: String,
    id: String,
}

impl Worker {
    async fn register(server: &TestServer, token: &str, actions: &[&str], slots: i32) -> Self {
        let bearer = format!("bearer {token}");
        let mut client = DispatcherClient::new(server.channel().await)
            .send_compressed(Gzip)
            .accept_compressed(Gzip);
        let resp = client
            .register(with_auth(
                proto::WorkerRegisterRequest {
                    worker_name: "hardening".into(),
                    actions: actions.iter().map(|a| (*a).to_owned()).collect(),
                    services: vec!["default".into()],
                    slot_config: HashMap::from([("default".to_owned(), slots)]),
                    ..Default::default()
                },
                Some(&bearer),
            ))
            .await
            .expect("Register")
            .into_inner();
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
}

async fn next_action(stream: &mut Streaming<AssignedAction>) -> AssignedAction {
    tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("an action in time")
        .expect("stream error")
        .expect("stream ended")
}

/// The status a stream ends with (it must end with an error within [`PATIENCE`]).
async fn stream_error<T: std::fmt::Debug>(stream: &mut Streaming<T>) -> tonic::Status {
    let ended = tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the stream ended without an error"),
                Err(status) => return status,
            }
        }
    })
    .await;
    ended.expect("the stream should have ended with an error")
}

async fn enqueue(pool: &PgPool, tenant: Uuid, queue: &str) -> Uuid {
    sqlx::query_scalar("SELECT hatchet.enqueue($1, '{}', tenant_id => $2)")
        .bind(queue)
        .bind(tenant)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A finished run: a task enqueued on its own (its own run), claimed and completed by a SQL consumer.
async fn finished_run(pool: &PgPool) -> Uuid {
    let queue = unique("finished");
    let task = enqueue(pool, DEFAULT_TENANT_ID, &queue).await;
    let claimed: Uuid = sqlx::query_scalar("SELECT task_id FROM hatchet.dequeue($1, 'test')")
        .bind(&queue)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(claimed, task);
    sqlx::query("SELECT hatchet.complete($1, 0, '{\"done\": true}')")
        .bind(task)
        .execute(pool)
        .await
        .unwrap();
    task
}

fn config(f: impl FnOnce(&mut ServerConfig)) -> ServerConfig {
    let mut config = common::test_config();
    f(&mut config);
    config
}

/// Opens `SubscribeToWorkflowRuns` and returns the sender for run ids and the event stream.
async fn subscribe_runs(
    server: &TestServer,
    token: &str,
) -> (
    tokio::sync::mpsc::Sender<proto::SubscribeToWorkflowRunsRequest>,
    Streaming<proto::WorkflowRunEvent>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(16_384);
    let mut client = DispatcherClient::new(server.channel().await);
    let stream = client
        .subscribe_to_workflow_runs(with_auth(
            tokio_stream::wrappers::ReceiverStream::new(rx),
            Some(&format!("bearer {token}")),
        ))
        .await
        .expect("SubscribeToWorkflowRuns")
        .into_inner();
    (tx, stream)
}

fn run_request(id: Uuid) -> proto::SubscribeToWorkflowRunsRequest {
    proto::SubscribeToWorkflowRunsRequest {
        workflow_run_id: id.to_string(),
    }
}

// ------------------------------------------------------------------------------------------ background connections

#[tokio::test]
async fn background_sessions_have_their_own_pool_and_timeouts() {
    let state = common::state_with(config(|c| {
        c.background = BackgroundPool {
            max_connections: 2,
            statement_timeout: Duration::from_millis(4500),
            lock_timeout: Duration::from_millis(250),
            idle_in_transaction_timeout: Duration::from_secs(7),
        }
    }))
    .await;
    // Every request connection taken (a flood of API calls) leaves the background pool untouched.
    let mut held = Vec::new();
    for _ in 0..state.pool.options().get_max_connections() {
        held.push(state.pool.acquire().await.unwrap());
    }
    let mut conn = tokio::time::timeout(PATIENCE, state.background.acquire())
        .await
        .expect("a background connection while the request pool is exhausted")
        .unwrap();
    let settings: Vec<String> = sqlx::query_scalar(
        "SELECT current_setting(name) FROM unnest(ARRAY['statement_timeout', 'lock_timeout', \
         'idle_in_transaction_session_timeout', 'application_name']) AS name",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    assert_eq!(
        settings,
        ["4500ms", "250ms", "7s", "hatchet-server background"]
    );
    // Request sessions keep the database's defaults.
    let request_timeout: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(&mut *held[0])
        .await
        .unwrap();
    assert_eq!(request_timeout, "0");
}

/// A tenant whose assignment waits on a lock (someone holds its workers' slot rows) fails after the background
/// `lock_timeout`, is logged and skipped, and the other tenants are still served.
#[tokio::test]
async fn a_tenant_stuck_on_a_lock_does_not_stall_assignment_for_the_others() {
    let state = common::state_with(config(|c| {
        c.background.lock_timeout = Duration::from_millis(200);
    }))
    .await;
    let server = TestServer::start_with(state, None).await;
    let pool = server.state.pool.clone();
    let (stuck, stuck_token, _) = new_tenant(&server.state, Duration::from_secs(600)).await;
    let (fine, fine_token, _) = new_tenant(&server.state, Duration::from_secs(600)).await;
    let q = unique("lock");
    let mut stuck_worker = Worker::register(&server, &stuck_token, &[&q], 5).await;
    let _stuck_stream = stuck_worker.listen().await;
    let mut fine_worker = Worker::register(&server, &fine_token, &[&q], 5).await;
    let mut fine_stream = fine_worker.listen().await;

    // Hold the stuck tenant's slot rows, as a long transaction would, and give it work so it is tried.
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM hatchet.worker_slots WHERE tenant_id = $1 FOR UPDATE")
        .bind(stuck)
        .execute(&mut *blocker)
        .await
        .unwrap();
    enqueue(&pool, stuck, &q).await;
    // Wait until the assigner is waiting for that lock, so the round is stuck (or was) before the other work comes.
    let waiting = tokio::time::timeout(PATIENCE, async {
        loop {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE application_name = 'hatchet-server background' AND wait_event_type = 'Lock'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            if n > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        waiting.is_ok(),
        "the assigner never waited for the held lock"
    );

    let task = enqueue(&pool, fine, &q).await;
    let action = next_action(&mut fine_stream).await;
    assert_eq!(action.task_run_external_id, task.to_string());
    blocker.rollback().await.unwrap();
    server.stop().await.unwrap();
}

// ------------------------------------------------------------------------------------------------ subscriptions

/// More subscribed runs than one `hatchet.finished_runs` call takes (10,000) are checked in chunks: the finished
/// one among them is still answered.
#[tokio::test]
async fn more_than_ten_thousand_subscribed_runs_are_checked_in_chunks() {
    let server = TestServer::start_with(
        common::state_with(config(|c| c.max_subscriptions_per_stream = 20_000)).await,
        None,
    )
    .await;
    let (tx, mut events) = subscribe_runs(&server, &server.token).await;
    for _ in 0..10_001 {
        tx.send(run_request(Uuid::new_v4())).await.unwrap();
    }
    let done = finished_run(&server.state.pool).await;
    tx.send(run_request(done)).await.unwrap();
    let event = tokio::time::timeout(PATIENCE, events.message())
        .await
        .expect("the finished run is answered")
        .expect("stream error")
        .expect("stream ended");
    assert_eq!(event.workflow_run_id, done.to_string());
    assert_eq!(event.results.len(), 1);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_stream_over_its_subscription_cap_ends_with_resource_exhausted() {
    let server = TestServer::start_with(
        common::state_with(config(|c| c.max_subscriptions_per_stream = 3)).await,
        None,
    )
    .await;
    // An answered run no longer counts against the cap.
    let (tx, mut events) = subscribe_runs(&server, &server.token).await;
    for _ in 0..3 {
        let done = finished_run(&server.state.pool).await;
        tx.send(run_request(done)).await.unwrap();
        let event = tokio::time::timeout(PATIENCE, events.message())
            .await
            .expect("answered")
            .unwrap()
            .unwrap();
        assert_eq!(event.workflow_run_id, done.to_string());
    }
    // Waiting for three runs is allowed (one of them twice); a fourth is not.
    let pending: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    for id in pending.iter().chain([&pending[0]]) {
        tx.send(run_request(*id)).await.unwrap();
    }
    tx.send(run_request(Uuid::new_v4())).await.unwrap();
    let status = stream_error(&mut events).await;
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    server.stop().await.unwrap();
}

// ------------------------------------------------------------------------------------------ tokens on open streams

#[tokio::test]
async fn a_revoked_tokens_streams_end_with_unauthenticated() {
    let server = TestServer::start().await;
    let (tenant, token, token_id) = new_tenant(&server.state, Duration::from_secs(600)).await;
    let q = unique("revoked");
    let mut worker = Worker::register(&server, &token, &[&q], 1).await;
    let mut listen = worker.listen().await;
    let (_tx, mut runs) = subscribe_runs(&server, &token).await;
    let mut client = DispatcherClient::new(server.channel().await);
    let run = enqueue(&server.state.pool, tenant, &unique("unserved")).await;
    let mut events = client
        .subscribe_to_workflow_events(with_auth(
            proto::SubscribeToWorkflowEventsRequest {
                workflow_run_id: Some(run.to_string()),
                ..Default::default()
            },
            Some(&format!("bearer {token}")),
        ))
        .await
        .expect("SubscribeToWorkflowEvents")
        .into_inner();

    revoke_elsewhere(&server.state.pool, tenant, token_id).await;
    for status in [
        stream_error(&mut listen).await,
        stream_error(&mut runs).await,
        stream_error(&mut events).await,
    ] {
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
        assert_eq!(status.message(), "token revoked");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_expired_tokens_stream_ends_with_unauthenticated() {
    let server = TestServer::start().await;
    let (_, token, _) = new_tenant(&server.state, Duration::from_secs(5)).await;
    let q = unique("expiring");
    let mut worker = Worker::register(&server, &token, &[&q], 1).await;
    let mut listen = worker.listen().await;
    let status = stream_error(&mut listen).await;
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    assert_eq!(status.message(), "token expired");
    server.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------- cancel notifications

/// Any database role can `NOTIFY hatchet_cancel`: a notification naming an attempt that is still running, or one
/// this server never pushed, is not forwarded; a real cancellation still is.
#[tokio::test]
async fn forged_cancel_notifications_are_not_forwarded() {
    let server = TestServer::start().await;
    let pool = server.state.pool.clone();
    let q = unique("forged");
    let mut worker = Worker::register(&server, &server.token, &[&q], 5).await;
    let mut stream = worker.listen().await;
    let task = enqueue(&pool, DEFAULT_TENANT_ID, &q).await;
    let start = next_action(&mut stream).await;
    assert_eq!(start.task_run_external_id, task.to_string());

    for payload in [
        format!("{task}:{}:{}", start.retry_count, worker.id),
        format!("{}:0:{}", Uuid::new_v4(), worker.id),
    ] {
        sqlx::query("SELECT pg_notify('hatchet_cancel', $1)")
            .bind(payload)
            .execute(&pool)
            .await
            .unwrap();
    }
    // Notifications arrive in commit order: the next push (this task's START) comes after the forged ones were
    // handled, so a forwarded forgery would be seen first.
    let second = enqueue(&pool, DEFAULT_TENANT_ID, &q).await;
    let next = next_action(&mut stream).await;
    assert_eq!(
        (next.action_type, next.task_run_external_id.as_str()),
        (ActionType::StartStepRun as i32, second.to_string().as_str()),
        "a forged cancellation was forwarded"
    );
    let running: Option<i32> = sqlx::query_scalar("SELECT hatchet.running_attempt($1)")
        .bind(task)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(running, Some(start.retry_count));

    // The real thing still reaches the worker.
    let cancelled: bool = sqlx::query_scalar("SELECT hatchet.cancel($1)")
        .bind(task)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(cancelled);
    let cancel = next_action(&mut stream).await;
    assert_eq!(cancel.action_type, ActionType::CancelStepRun as i32);
    assert_eq!(cancel.task_run_external_id, task.to_string());
    server.stop().await.unwrap();
}

// ------------------------------------------------------------------------------------------------------ auth cache

/// 10,000 tokens for made-up subjects cost a bounded number of queries and evict nothing real: a known tenant's
/// cached secret survives them (shown by changing it in the database behind the cache's back).
#[tokio::test]
async fn random_tokens_neither_flush_the_auth_cache_nor_cost_a_query_each() {
    let state = common::state_with(config(|c| c.auth_cache_ttl = Duration::from_secs(3600))).await;
    let (tenant, token, _) = new_tenant(&state, Duration::from_secs(600)).await;
    assert_eq!(state.auth.verify(&token).await.unwrap().0, tenant);
    sqlx::query("UPDATE hatchet.tenants SET token_secret = $2 WHERE tenant_id = $1")
        .bind(tenant)
        .bind(vec![7u8; 32])
        .execute(&state.pool)
        .await
        .unwrap();

    let before = state.auth.database_lookups();
    let now = chrono::Utc::now().timestamp();
    let mut refused = 0;
    for _ in 0..10_000 {
        let claims = Claims {
            sub: Uuid::new_v4().to_string(),
            server_url: "http://localhost:8080".into(),
            grpc_broadcast_address: "localhost:7077".into(),
            iat: now,
            exp: now + 600,
            token_id: Uuid::new_v4().to_string(),
        };
        let forged = sign(&claims, Uuid::new_v4().as_bytes()).unwrap();
        refused += usize::from(state.auth.verify(&forged).await.is_err());
    }
    assert_eq!(refused, 10_000);
    let lookups = state.auth.database_lookups() - before;
    assert!(
        lookups <= 1_000,
        "{lookups} queries for 10,000 made-up tokens"
    );
    // Still verified from the cache: the old secret was not evicted.
    assert_eq!(state.auth.verify(&token).await.unwrap().0, tenant);
}

// ------------------------------------------------------------------------------------------------ plaintext exposure

async fn serve_stderr(args: &[&str]) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hatchet-server"))
        .arg("serve")
        .args(["--database-url", "postgres://postgres@127.0.0.1:1/none"])
        .args(args)
        .env_remove("HATCHET_SERVER_INSECURE")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "serve should fail here");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `serve` refuses plaintext on an address other hosts can reach unless told `--insecure`; loopback (the default)
/// is fine. (The database URL points nowhere, so a server that passes the check fails on connecting.)
#[tokio::test]
async fn serve_refuses_plaintext_on_a_public_address_without_insecure() {
    for addrs in [
        ["--grpc-addr", "0.0.0.0:0", "--http-addr", "127.0.0.1:0"],
        ["--grpc-addr", "127.0.0.1:0", "--http-addr", "[::]:0"],
    ] {
        let refused = serve_stderr(&addrs).await;
        assert!(refused.contains("refusing to serve plaintext"), "{refused}");
        let mut insecure = addrs.to_vec();
        insecure.push("--insecure");
        let passed = serve_stderr(&insecure).await;
        assert!(!passed.contains("refusing"), "{passed}");
        assert!(
            passed.contains("cannot connect to the database"),
            "{passed}"
        );
    }
    let defaults = serve_stderr(&[]).await;
    assert!(
        defaults.contains("cannot connect to the database"),
        "{defaults}"
    );
}
