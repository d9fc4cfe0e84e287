//! Worker calls made while Postgres is unreachable wait for it instead of failing (issue 16, found by the chaos
//! suite's `postmaster_kill_long`): `Register` for up to 25 s (the SDK gives it 30 s), the start of `ListenV2` and
//! a FAILED event for up to 120 s like COMPLETED, and the token check in front of them when its cached answer is
//! stale (the test's cache lives 200 ms, so every call below needs the database for its token too).
//!
//! The server talks to the test cluster through a TCP proxy owned by the test; the outage is the proxy going away
//! (every open connection cut, new ones refused) and coming back on the same port. The shared cluster itself keeps
//! running, so the binary's other tests are not disturbed.

mod common;

use common::{with_auth, TestServer};
use hatchet_server::proto::{self, dispatcher_client::DispatcherClient, StepActionEventType};
use hatchet_server::AppState;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::{TcpListener, UnixStream};
use tokio::task::{JoinHandle, JoinSet};
use tonic::codec::CompressionEncoding::Gzip;
use tonic::transport::Channel;
use uuid::Uuid;

/// How long the database stays away in each test: longer than the auth cache and than one pool acquire attempt.
const OUTAGE: Duration = Duration::from_secs(4);

/// A TCP proxy to the cluster's Unix socket that can be taken down and brought back.
struct Proxy {
    port: u16,
    socket: PathBuf,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    async fn start() -> Self {
        let cluster = &common::cluster().cluster;
        let socket = cluster
            .connect_options(&cluster.spec().database)
            .get_socket()
            .expect("the test cluster is reached by its Unix socket")
            .join(format!(".s.PGSQL.{}", cluster.spec().port));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let mut proxy = Self {
            port,
            socket,
            task: None,
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: TcpListener) {
        let socket = self.socket.clone();
        self.task = Some(tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every connection: both ends are closed.
            let mut conns = JoinSet::new();
            loop {
                let Ok((mut tcp, _)) = listener.accept().await else {
                    continue;
                };
                let socket = socket.clone();
                conns.spawn(async move {
                    if let Ok(mut unix) = UnixStream::connect(&socket).await {
                        let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
                    }
                });
            }
        }));
    }

    /// Cuts every open connection and refuses new ones.
    async fn down(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    async fn up(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("rebind proxy");
        self.serve(listener);
    }

    /// A pool whose connections go through the proxy, as a server's would.
    async fn pool(&self) -> PgPool {
        let cluster = &common::cluster().cluster;
        PgPoolOptions::new()
            .max_connections(5)
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(
                PgConnectOptions::new()
                    .host("127.0.0.1")
                    .port(self.port)
                    .username("postgres")
                    .database(&cluster.spec().database)
                    .application_name("hatchet-server outage test"),
            )
            .await
            .expect("connect through the proxy")
    }
}

async fn server_behind(proxy: &Proxy) -> TestServer {
    let state = AppState::new(proxy.pool().await, common::test_config()).expect("state");
    TestServer::start_with(state, None).await
}

async fn client(server: &TestServer) -> DispatcherClient<Channel> {
    DispatcherClient::new(server.channel().await)
        .send_compressed(Gzip)
        .accept_compressed(Gzip)
}

fn register_request(name: &str, queue: &str) -> proto::WorkerRegisterRequest {
    proto::WorkerRegisterRequest {
        worker_name: name.into(),
        actions: vec![queue.to_owned()],
        services: vec!["default".into()],
        slot_config: HashMap::from([("default".to_owned(), 4)]),
        ..Default::default()
    }
}

async fn register(
    client: &mut DispatcherClient<Channel>,
    bearer: &str,
    name: &str,
    queue: &str,
) -> Result<String, tonic::Status> {
    client
        .register(with_auth(register_request(name, queue), Some(bearer)))
        .await
        .map(|r| r.into_inner().worker_id)
}

#[tokio::test]
async fn register_waits_out_a_database_outage() {
    let mut proxy = Proxy::start().await;
    let server = server_behind(&proxy).await;
    let direct = common::pool().await;
    let bearer = format!("bearer {}", server.token);
    let mut c = client(&server).await;
    let queue = format!("outage{}:task", Uuid::new_v4().simple());
    // This server has verified the token (its cached answer goes stale during the outage).
    register(&mut c, &bearer, "outage-warm", &queue)
        .await
        .expect("Register before the outage");

    proxy.down().await;
    let name = format!("outage-{}", Uuid::new_v4().simple());
    let call = {
        let (mut c, bearer, name, queue) = (c.clone(), bearer.clone(), name.clone(), queue.clone());
        tokio::spawn(async move { register(&mut c, &bearer, &name, &queue).await })
    };
    tokio::time::sleep(OUTAGE).await;
    assert!(
        !call.is_finished(),
        "Register answered while the database was away: {:?}",
        call.await
    );
    proxy.up().await;
    let worker_id = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("Register answered within 30 s of the database coming back")
        .unwrap()
        .expect("Register succeeded after the outage");

    let rows: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM hatchet.workers WHERE name = $1")
        .bind(&name)
        .fetch_all(&direct)
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![Uuid::parse_str(&worker_id).unwrap()],
        "one worker row, the one Register answered with"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn listen_and_failed_wait_out_a_database_outage() {
    let mut proxy = Proxy::start().await;
    let server = server_behind(&proxy).await;
    let direct = common::pool().await;
    let bearer = format!("bearer {}", server.token);
    let mut c = client(&server).await;
    let queue = format!("outage{}:task", Uuid::new_v4().simple());
    let worker_id = register(&mut c, &bearer, "outage-listener", &queue)
        .await
        .expect("Register");
    let mut stream = c
        .listen_v2(with_auth(
            proto::WorkerListenRequest {
                worker_id: worker_id.clone(),
            },
            Some(&bearer),
        ))
        .await
        .expect("ListenV2")
        .into_inner();
    let task: Uuid = sqlx::query_scalar("SELECT hatchet.enqueue($1, '{}')")
        .bind(&queue)
        .fetch_one(&direct)
        .await
        .expect("enqueue");
    let action = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an action within 10 s")
        .expect("stream error")
        .expect("stream ended");
    assert_eq!(action.task_run_external_id, task.to_string());

    proxy.down().await;
    // The worker reconnects its stream, and reports the attempt failed, both while the database is away.
    let listen = {
        let (mut c, bearer, worker_id) = (c.clone(), bearer.clone(), worker_id.clone());
        tokio::spawn(async move {
            c.listen_v2(with_auth(
                proto::WorkerListenRequest { worker_id },
                Some(&bearer),
            ))
            .await
            .map(|_| ())
        })
    };
    let failed = {
        let (mut c, bearer, worker_id) = (c.clone(), bearer.clone(), worker_id.clone());
        let event = proto::StepActionEvent {
            worker_id,
            job_run_id: action.job_run_id.clone(),
            task_run_external_id: action.task_run_external_id.clone(),
            action_id: action.action_id.clone(),
            event_type: StepActionEventType::StepEventTypeFailed as i32,
            event_payload: "boom".into(),
            retry_count: Some(action.retry_count),
            should_not_retry: Some(true),
            ..Default::default()
        };
        tokio::spawn(async move {
            c.send_step_action_event(with_auth(event, Some(&bearer)))
                .await
                .map(|_| ())
        })
    };
    tokio::time::sleep(OUTAGE).await;
    assert!(
        !listen.is_finished(),
        "ListenV2 answered while the database was away"
    );
    assert!(
        !failed.is_finished(),
        "FAILED answered while the database was away"
    );
    proxy.up().await;
    tokio::time::timeout(Duration::from_secs(30), listen)
        .await
        .expect("ListenV2 answered within 30 s of the database coming back")
        .unwrap()
        .expect("ListenV2 started after the outage");
    tokio::time::timeout(Duration::from_secs(30), failed)
        .await
        .expect("FAILED answered within 30 s of the database coming back")
        .unwrap()
        .expect("FAILED accepted after the outage");
    let status: String = sqlx::query_scalar("SELECT hatchet.task_status($1)")
        .bind(task)
        .fetch_one(&direct)
        .await
        .unwrap();
    assert_eq!(status, "FAILED");
    server.stop().await.unwrap();
}
