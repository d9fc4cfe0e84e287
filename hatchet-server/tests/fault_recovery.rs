//! Recovery from faults between the parts (issue 16), with a tonic client playing the SDK's part: a worker's
//! STARTED is recorded in the database, an assignment committed but never pushed (its replica died) reaches the
//! worker as a retry, a worker declared dead that comes back (to any replica) is told to cancel the attempts that
//! were taken from it, and a cancellation asked of one replica reaches a worker connected to another.
//!
//! The extension's maintenance functions are called by hand with a time window that only this test's rows fall in
//! (a backdated heartbeat or assignment), because the test binary's other tests share the database and its tenant.

mod common;

use axum::body::Body;
use common::{with_auth, TestServer};
use hatchet_server::proto::{
    self, dispatcher_client::DispatcherClient, ActionType, AssignedAction, StepActionEventType,
};
use hatchet_server::rest;
use http_body_util::BodyExt;
use sqlx::PgPool;
use std::collections::HashMap;
use std::time::Duration;
use tonic::codec::CompressionEncoding::Gzip;
use tonic::transport::Channel;
use tonic::Streaming;
use tower::ServiceExt;
use uuid::Uuid;

struct Worker {
    client: DispatcherClient<Channel>,
    bearer: String,
    id: String,
}

impl Worker {
    async fn register(server: &TestServer, queue: &str) -> Self {
        let bearer = format!("bearer {}", server.token);
        let mut client = connect(server).await;
        let resp = client
            .register(with_auth(
                proto::WorkerRegisterRequest {
                    worker_name: "recovery-worker".into(),
                    actions: vec![queue.to_owned()],
                    services: vec!["default".into()],
                    slot_config: HashMap::from([("default".to_owned(), 4)]),
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

    /// The same worker (id and token) talking to another server.
    async fn via(&self, server: &TestServer) -> Self {
        Self {
            client: connect(server).await,
            bearer: self.bearer.clone(),
            id: self.id.clone(),
        }
    }

    fn uuid(&self) -> Uuid {
        Uuid::parse_str(&self.id).unwrap()
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

    async fn heartbeat(&mut self) {
        self.client
            .heartbeat(with_auth(
                proto::HeartbeatRequest {
                    worker_id: self.id.clone(),
                    heartbeat_at: None,
                },
                Some(&self.bearer),
            ))
            .await
            .expect("Heartbeat");
    }

    async fn started(&mut self, action: &AssignedAction) {
        self.client
            .send_step_action_event(with_auth(
                proto::StepActionEvent {
                    worker_id: self.id.clone(),
                    job_run_id: action.job_run_id.clone(),
                    task_run_external_id: action.task_run_external_id.clone(),
                    action_id: action.action_id.clone(),
                    event_type: StepActionEventType::StepEventTypeStarted as i32,
                    retry_count: Some(action.retry_count),
                    ..Default::default()
                },
                Some(&self.bearer),
            ))
            .await
            .expect("STARTED");
    }
}

async fn connect(server: &TestServer) -> DispatcherClient<Channel> {
    DispatcherClient::new(server.channel().await)
        .send_compressed(Gzip)
        .accept_compressed(Gzip)
}

async fn next_action(stream: &mut Streaming<AssignedAction>) -> AssignedAction {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an action within 10 s")
        .expect("stream error")
        .expect("stream ended")
}

fn queue() -> String {
    format!("recovery{}:task", Uuid::new_v4().simple())
}

async fn enqueue(pool: &PgPool, queue: &str) -> Uuid {
    sqlx::query_scalar("SELECT hatchet.enqueue($1, '{}')")
        .bind(queue)
        .fetch_one(pool)
        .await
        .expect("enqueue")
}

/// Runs a maintenance function with no outage grace in effect, whatever the background worker's passes saw (on a
/// loaded machine a pass may come late enough to count as a gap): the test decides who is silent. One transaction,
/// so a concurrent pass waits for it.
async fn without_grace(pool: &PgPool, call: &'static str) -> i32 {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(
        "UPDATE hatchet.maintenance_state SET reachable_since = '-infinity' \
         WHERE tenant_id = hatchet.default_tenant()",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    let n: i32 = sqlx::query_scalar(call).fetch_one(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    n
}

#[tokio::test]
async fn started_is_recorded_in_the_database() {
    let server = TestServer::start().await;
    let pool = server.state.pool.clone();
    let q = queue();
    let mut worker = Worker::register(&server, &q).await;
    let mut stream = worker.listen().await;
    let task = enqueue(&pool, &q).await;
    let start = next_action(&mut stream).await;
    let acknowledged = || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT started_at IS NOT NULL FROM hatchet.running WHERE task_id = $1",
        )
        .bind(task)
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    assert!(!acknowledged().await, "pushed, not yet acknowledged");
    worker.started(&start).await;
    for _ in 0..100 {
        if acknowledged().await {
            server.stop().await.unwrap();
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("STARTED was not recorded in hatchet.running within 5 s");
}

#[tokio::test]
async fn an_assignment_never_pushed_reaches_the_worker_as_a_retry() {
    let server = TestServer::start().await;
    let pool = server.state.pool.clone();
    let q = queue();
    let mut worker = Worker::register(&server, &q).await;
    let task = enqueue(&pool, &q).await;
    // A replica that died right after committing this assignment: nobody will push it.
    let assigned: Vec<Uuid> =
        sqlx::query_scalar("SELECT task_id FROM hatchet.assign(worker_ids => ARRAY[$1::uuid])")
            .bind(worker.uuid())
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(assigned, vec![task]);
    let mut stream = worker.listen().await;
    worker.heartbeat().await;
    let quiet = tokio::time::timeout(Duration::from_millis(500), stream.message()).await;
    assert!(
        quiet.is_err(),
        "this server cannot know about it: {quiet:?}"
    );
    // worker_dead_after later, still unacknowledged: the maintenance pass releases it and it is retried.
    sqlx::query(
        "UPDATE hatchet.running SET assigned_at = assigned_at - interval '10 minutes' WHERE task_id = $1",
    )
    .bind(task)
    .execute(&pool)
    .await
    .unwrap();
    let released = without_grace(
        &pool,
        "SELECT hatchet._release_unacknowledged(hatchet.default_tenant(), clock_timestamp(), 100)",
    )
    .await;
    assert!(released >= 1, "released {released}");
    // The released attempt is also cancelled on the worker, in case it got it after all; then the retry comes.
    let mut retry = next_action(&mut stream).await;
    if retry.action_type == ActionType::CancelStepRun as i32 {
        assert_eq!(retry.task_run_external_id, task.to_string());
        assert_eq!(retry.retry_count, 0);
        retry = next_action(&mut stream).await;
    }
    assert_eq!(retry.action_type, ActionType::StartStepRun as i32);
    assert_eq!(retry.task_run_external_id, task.to_string());
    assert_eq!(retry.retry_count, 1);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_reaped_worker_coming_back_to_another_replica_is_told_to_cancel() {
    let server_a = TestServer::start().await;
    let pool = server_a.state.pool.clone();
    let q = queue();
    let mut worker = Worker::register(&server_a, &q).await;
    let mut stream = worker.listen().await;
    let task = enqueue(&pool, &q).await;
    let start = next_action(&mut stream).await;
    worker.started(&start).await;
    // Cut off: its replica goes away, and it is silent for longer than worker_dead_after.
    drop(stream);
    server_a.stop().await.unwrap();
    sqlx::query("UPDATE hatchet.workers SET last_heartbeat_at = now() - interval '10 minutes' WHERE id = $1")
        .bind(worker.uuid())
        .execute(&pool)
        .await
        .unwrap();
    without_grace(
        &pool,
        "SELECT hatchet._reap_dead_workers(hatchet.default_tenant(), clock_timestamp())",
    )
    .await;
    let (reassigned, retried): (i64, bool) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM hatchet.task_events($1) WHERE event_type = 'REASSIGNED' AND retry_count = 0), \
                EXISTS (SELECT 1 FROM hatchet.ready_queue WHERE task_id = $1 AND retry_count = 1)",
    )
    .bind(task)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((reassigned, retried), (1, true));

    // It comes back through another replica, which never saw it: it is told to stop the attempt it still runs.
    let server_b = TestServer::start().await;
    let mut worker = worker.via(&server_b).await;
    worker.heartbeat().await;
    let mut stream = worker.listen().await;
    let cancel = next_action(&mut stream).await;
    assert_eq!(cancel.action_type, ActionType::CancelStepRun as i32);
    assert_eq!(cancel.task_run_external_id, task.to_string());
    assert_eq!(cancel.retry_count, 0);
    // Told once: a later reconnect does not repeat it (the retry may come to this worker meanwhile).
    drop(stream);
    let mut stream = worker.listen().await;
    while let Ok(Ok(Some(action))) =
        tokio::time::timeout(Duration::from_millis(800), stream.message()).await
    {
        assert_ne!(
            action.action_type,
            ActionType::CancelStepRun as i32,
            "cancelled twice"
        );
    }
    server_b.stop().await.unwrap();
}

#[tokio::test]
async fn a_cancel_asked_of_one_replica_reaches_a_worker_on_another() {
    let server_a = TestServer::start().await;
    let server_b = TestServer::start().await;
    let pool = server_a.state.pool.clone();
    let q = queue();
    let mut worker = Worker::register(&server_b, &q).await;
    let mut stream = worker.listen().await;
    let task = enqueue(&pool, &q).await;
    let start = next_action(&mut stream).await;
    worker.started(&start).await;
    // The SDK's runs.cancel, through replica A's REST API.
    let tenant = hatchet_server::config::DEFAULT_TENANT_ID;
    let resp = rest::app(server_a.state.clone())
        .oneshot(
            axum::http::Request::builder()
                .method("POST")
                .uri(format!("/api/v1/stable/tenants/{tenant}/tasks/cancel"))
                .header("authorization", format!("Bearer {}", server_a.token))
                .header("content-type", "application/json")
                .body(Body::from(
                    serde_json::json!({ "externalIds": [task] }).to_string(),
                ))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(status.is_success(), "{status}: {body:?}");
    let cancel = next_action(&mut stream).await;
    assert_eq!(cancel.action_type, ActionType::CancelStepRun as i32);
    assert_eq!(cancel.task_run_external_id, task.to_string());
    assert_eq!(cancel.retry_count, start.retry_count);
    server_a.stop().await.unwrap();
    server_b.stop().await.unwrap();
}

/// Whether the stream has ended (closed by the server, or an error), waiting up to 10 s for it to say so.
async fn ended(stream: &mut Streaming<AssignedAction>) -> bool {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.message()).await {
            Err(_) => return false,
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None)) | Ok(Err(_)) => return true,
        }
    }
}

/// The chaos suite's third long run saw a replica log `pushed ... delivered=true` for two attempts their worker never
/// received, and the first suspect was a stale stream entry of a reconnected worker. The registry keeps one stream
/// per worker: a second ListenV2 of the same worker replaces the first, whose sender is dropped, so the first stream
/// ends and every later push goes to the second. (What the logs showed instead: the replica was killed 30 ms after
/// it queued the two actions, before they were written to the socket; such attempts are released after
/// worker_dead_after, see `an_assignment_never_pushed_reaches_the_worker_as_a_retry`.)
#[tokio::test]
async fn a_second_listen_of_a_worker_replaces_the_first_stream() {
    let server = TestServer::start().await;
    let pool = server.state.pool.clone();
    let q = queue();
    let mut worker = Worker::register(&server, &q).await;
    let mut first = worker.listen().await;
    let mut second = worker.listen().await;
    assert!(
        ended(&mut first).await,
        "the replaced stream stays open: pushes could go where nobody reads"
    );
    for _ in 0..3 {
        let task = enqueue(&pool, &q).await;
        let start = next_action(&mut second).await;
        assert_eq!(start.action_type, ActionType::StartStepRun as i32);
        assert_eq!(start.task_run_external_id, task.to_string());
        worker.started(&start).await;
    }
    server.stop().await.unwrap();
}

/// The same across replicas: the worker's stream to replica A breaks (the SDK cancels the call and reconnects to B);
/// A forgets the stream, so only B assigns and pushes to the worker (were A still to count it as connected, its
/// assigner would take some of these attempts and push them into the dead stream, and they would not arrive here).
#[tokio::test]
async fn a_worker_that_moved_to_another_replica_gets_its_work_there() {
    let server_a = TestServer::start().await;
    let server_b = TestServer::start().await;
    let pool = server_a.state.pool.clone();
    let q = queue();
    let mut on_a = Worker::register(&server_a, &q).await;
    let stream_a = on_a.listen().await;
    drop(stream_a);
    let mut on_b = on_a.via(&server_b).await;
    let mut stream_b = on_b.listen().await;
    for _ in 0..3 {
        let task = enqueue(&pool, &q).await;
        let start = next_action(&mut stream_b).await;
        assert_eq!(start.task_run_external_id, task.to_string());
        on_b.started(&start).await;
    }
    server_a.stop().await.unwrap();
    server_b.stop().await.unwrap();
}

/// Both of the server's pools open their sessions with an `idle_in_transaction_session_timeout` well under
/// worker_dead_after (the default 5 s; before, the background sessions had 60 s and the request sessions none).
#[tokio::test]
async fn server_sessions_bound_their_idle_time_inside_a_transaction() {
    let server = TestServer::start().await;
    for (name, pool) in [
        ("request", &server.state.pool),
        ("background", &server.state.background),
    ] {
        let setting: String = sqlx::query_scalar("SHOW idle_in_transaction_session_timeout")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(setting, "5s", "{name} sessions");
    }
    server.stop().await.unwrap();
}

/// The third long run's failing invariant: a replica stopped (SIGSTOP) inside its completion transaction for a
/// worker, after `complete_many` released one of the worker's slots and before `assign` and COMMIT, holds the row
/// lock on the worker's `hatchet.worker_slots` row. Releasing that worker's unacknowledged attempts
/// (`_release_unacknowledged` -> `_fail_attempt` -> `_release`) locks the same row, so each maintenance pass gave up
/// after its 200 ms lock_timeout until the replica resumed 15 s later (the background sessions' idle timeout was
/// 60 s). Now Postgres ends the stopped replica's session after the server's idle_in_transaction_session_timeout,
/// and the release goes through on the next pass.
#[tokio::test]
async fn a_release_is_not_held_up_by_a_replica_stopped_inside_a_transaction() {
    let server = TestServer::start().await;
    let pool = server.state.pool.clone();
    let q = queue();
    let worker = Worker::register(&server, &q).await;
    let task = enqueue(&pool, &q).await;
    let assigned: Vec<Uuid> =
        sqlx::query_scalar("SELECT task_id FROM hatchet.assign(worker_ids => ARRAY[$1::uuid])")
            .bind(worker.uuid())
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(assigned, vec![task]);
    sqlx::query(
        "UPDATE hatchet.running SET assigned_at = assigned_at - interval '10 minutes' WHERE task_id = $1",
    )
    .bind(task)
    .execute(&pool)
    .await
    .unwrap();

    // The stopped replica: one of its background sessions holds the worker's slot row in an open transaction, then
    // sends nothing more.
    let mut stalled = server.state.background.acquire().await.unwrap();
    let stalled_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *stalled)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut *stalled).await.unwrap();
    let locked: i64 = sqlx::query_scalar(
        "WITH l AS (SELECT 1 FROM hatchet.worker_slots WHERE worker_id = $1 FOR UPDATE) SELECT count(*) FROM l",
    )
    .bind(worker.uuid())
    .fetch_one(&mut *stalled)
    .await
    .unwrap();
    assert_eq!(locked, 1);

    let release =
        "SELECT hatchet._maintenance_job(hatchet.default_tenant(), 'release_unacknowledged', \
                   clock_timestamp(), 100)::integer";
    let still_running = || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM hatchet.running WHERE task_id = $1)",
        )
        .bind(task)
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    // While the row is held, the release of this worker's attempt gives up on it (after the job's 200 ms
    // lock_timeout) and is left for the next pass: this is the lock.
    without_grace(&pool, release).await;
    assert!(still_running().await);

    // Postgres ends the idle session; the next pass releases the attempt. (The deadline only bounds a failing
    // test: with the old 60 s background setting the session outlived it.)
    let mut released = false;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        without_grace(&pool, release).await;
        if !still_running().await {
            released = true;
            break;
        }
    }
    assert!(
        released,
        "the attempt was not released while the stopped session held the worker's slot row"
    );
    let gone: bool =
        sqlx::query_scalar("SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
            .bind(stalled_pid)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(gone, "the stalled session was ended by Postgres");
    assert!(
        sqlx::query("SELECT 1")
            .execute(&mut *stalled)
            .await
            .is_err(),
        "the stalled connection is dead"
    );
    let reassigned: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM hatchet.task_events($1) WHERE event_type = 'REASSIGNED' AND retry_count = 0",
    )
    .bind(task)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(reassigned, 1);
    drop(stalled);
    server.stop().await.unwrap();
}
