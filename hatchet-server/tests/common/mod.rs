//! Shared helpers for the integration tests: a scratch Postgres cluster with pg_hatchet, and the real server
//! started in-process on port 0.
//!
//! One cluster per test binary, started on first use with the library's own cluster code (the same `initdb` /
//! `pg_ctl` path as `hatchet-server dev`) in a temporary directory on a free port, database `hatchet` with the
//! extension created. Each test gets its own pool and server (every `#[tokio::test]` has its own runtime).
//!
//! Cleanup does not rely on destructors (statics are never dropped): a watchdog shell, in its own process group
//! so Ctrl-C on `cargo test` does not kill it first, blocks reading a pipe from this process. When the test
//! process exits for any reason the pipe closes, and the watchdog stops Postgres and deletes the directory.
//!
//! Needs the extension installed in the system Postgres 15 (`make dev` or `scripts/install-ext.sh`), or in the Postgres
//! whose `bin/` directory `HATCHET_PG_BIN_DIR` names.

#![allow(dead_code)] // each test binary uses a different subset

use hatchet_server::auth::{MintRequest, MintedToken};
use hatchet_server::cluster::{ClusterSpec, LocalCluster};
use hatchet_server::config::{ServerConfig, DEFAULT_TENANT_ID};
use hatchet_server::{AppState, Listeners, TlsFiles};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};

/// The scratch cluster shared by the tests of one binary.
pub struct TestCluster {
    pub cluster: LocalCluster,
    /// Held only so its stdin stays open until the process exits.
    _watchdog: Child,
}

static CLUSTER: OnceLock<TestCluster> = OnceLock::new();

/// The shared cluster, started on first call.
pub fn cluster() -> &'static TestCluster {
    CLUSTER.get_or_init(|| {
        // Started on a separate thread with its own runtime: the caller may be inside a test's runtime, and the
        // cluster must outlive that runtime.
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(start_cluster())
        })
        .join()
        .expect("cluster thread panicked")
    })
}

async fn start_cluster() -> TestCluster {
    let dir = tempfile::Builder::new()
        .prefix("hatchet-server-test-")
        .tempdir()
        .expect("temp dir")
        .keep();
    let port = free_port();
    let mut spec = ClusterSpec::new(&dir, port);
    // The same override as `hatchet-server dev`: another Postgres 15 installation (with its own pg_hatchet).
    if let Some(bin) = std::env::var_os("HATCHET_PG_BIN_DIR") {
        spec.pg_bin_dir = bin.into();
    }
    let cluster = LocalCluster::new(spec).expect("cluster spec");
    cluster
        .check_extension_installed()
        .await
        .expect("pg_hatchet must be installed in the system Postgres for these tests");
    cluster.init_if_absent().await.expect("initdb");
    let watchdog = spawn_watchdog(&cluster);
    cluster.start().await.expect("pg_ctl start");
    cluster
        .prepare_database()
        .await
        .expect("create database and extension");
    TestCluster {
        cluster,
        _watchdog: watchdog,
    }
}

fn spawn_watchdog(cluster: &LocalCluster) -> Child {
    let pg_ctl = cluster.spec().pg_bin_dir.join("pg_ctl");
    let as_postgres = if nix::unistd::geteuid().is_root() {
        "runuser -u postgres -- "
    } else {
        ""
    };
    let script = format!(
        "read _; cd /; {as_postgres}'{}' -D '{}' -m immediate -w stop >/dev/null 2>&1; rm -rf '{}'",
        pg_ctl.display(),
        cluster.pgdata().display(),
        cluster.spec().data_dir.display()
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn watchdog")
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A new pool on the shared cluster's `hatchet` database.
pub async fn pool() -> PgPool {
    let cluster = &cluster().cluster;
    PgPoolOptions::new()
        .max_connections(5)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(cluster.connect_options(&cluster.spec().database))
        .await
        .expect("connect to the test cluster")
}

/// A `postgres://` URL for the shared cluster's database (for CLI tests).
pub fn database_url() -> String {
    cluster().cluster.database_url()
}

/// State for a server on the shared cluster, with a short auth cache so revocation tests need not wait long.
pub async fn state() -> AppState {
    state_with(test_config()).await
}

/// State with explicit settings.
pub async fn state_with(config: ServerConfig) -> AppState {
    AppState::new(pool().await, config).expect("state")
}

/// Settings for tests: short auth cache and shutdown grace.
pub fn test_config() -> ServerConfig {
    ServerConfig {
        auth_cache_ttl: Duration::from_millis(200),
        shutdown_grace: Duration::from_secs(5),
        ..ServerConfig::default()
    }
}

/// Mints a token for the default tenant.
pub async fn mint(state: &AppState, name: &str) -> MintedToken {
    state
        .auth
        .mint(&MintRequest {
            tenant_id: DEFAULT_TENANT_ID,
            name: name.into(),
            expires_in: Duration::from_secs(3600),
            server_url: "http://localhost:8080".into(),
            grpc_broadcast_address: "localhost:7077".into(),
        })
        .await
        .expect("mint token")
}

/// The real server, running in this test's runtime on two ephemeral ports.
pub struct TestServer {
    pub state: AppState,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// A valid token for the default tenant.
    pub token: String,
    shutdown: Option<oneshot::Sender<()>>,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl TestServer {
    /// Starts a plaintext server with [`test_config`].
    pub async fn start() -> Self {
        Self::start_with(state().await, None).await
    }

    /// Starts a server on the given state, optionally with TLS.
    pub async fn start_with(state: AppState, tls: Option<TlsFiles>) -> Self {
        let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind gRPC");
        let http = TcpListener::bind("127.0.0.1:0").await.expect("bind HTTP");
        let grpc_addr = grpc.local_addr().unwrap();
        let http_addr = http.local_addr().unwrap();
        let token = mint(&state, "test-server").await.token;
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(hatchet_server::run(
            Listeners { grpc, http, tls },
            state.clone(),
            async move {
                let _ = rx.await;
            },
        ));
        Self {
            state,
            grpc_addr,
            http_addr,
            token,
            shutdown: Some(tx),
            handle,
        }
    }

    /// Requests a graceful shutdown and waits for `run` to return.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(20), self.handle)
            .await
            .expect("server did not stop in time")
            .expect("server task panicked")
    }

    /// The environment an SDK process needs to talk to this server (plaintext), for end-to-end tests that spawn
    /// Python or Node workers.
    pub fn sdk_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("HATCHET_CLIENT_TOKEN", self.token.clone()),
            (
                "HATCHET_CLIENT_HOST_PORT",
                format!("127.0.0.1:{}", self.grpc_addr.port()),
            ),
            (
                "HATCHET_CLIENT_SERVER_URL",
                format!("http://127.0.0.1:{}", self.http_addr.port()),
            ),
            ("HATCHET_CLIENT_TLS_STRATEGY", "none".to_owned()),
        ]
    }

    /// A plaintext gRPC channel to this server.
    pub async fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.grpc_addr))
            .unwrap()
            .connect()
            .await
            .expect("connect gRPC")
    }
}

/// Adds `authorization: <value>` metadata to a request, as the SDK's channel does.
pub fn with_auth<T>(message: T, authorization: Option<&str>) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    if let Some(value) = authorization {
        req.metadata_mut()
            .insert("authorization", value.parse().expect("valid metadata"));
    }
    req
}
