//! The `hatchet-server` binary: parses flags and calls the library. See `hatchet_server` for what each step does.
//!
//! ```text
//! hatchet-server dev                       local Postgres + pg_hatchet + token + server + dashboard link, until Ctrl-C
//! hatchet-server serve --database-url URL  serve against an existing Postgres with the extension
//! hatchet-server token create --tenant ID  print a new API token
//! hatchet-server token revoke --tenant ID --token-id ID
//! ```

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use hatchet_core::duration;
use hatchet_server::auth::{Authenticator, MintRequest};
use hatchet_server::cluster::{ClusterSpec, LocalCluster, DEFAULT_PG_BIN_DIR};
use hatchet_server::config::{BackgroundPool, ServerConfig, DEFAULT_TENANT_ID};
use hatchet_server::{check_exposure, db, AppState, Listeners, TlsFiles};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpListener;
use uuid::Uuid;

#[derive(Parser, Debug)]
#[command(
    name = "hatchet-server",
    version,
    about = "Hatchet's worker protocol over the pg_hatchet Postgres extension"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start a local Postgres 15 with pg_hatchet, mint a token, print the env vars and serve until Ctrl-C.
    Dev(DevArgs),
    /// Serve gRPC and REST against an existing Postgres that has the pg_hatchet extension.
    Serve(ServeArgs),
    /// Create or revoke API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Args, Debug)]
struct DevArgs {
    /// Directory for the local cluster (pgdata/, run/, postgres.log); created if absent.
    #[arg(long, default_value = "./.hatchet-dev")]
    data_dir: PathBuf,
    /// gRPC port on 127.0.0.1.
    #[arg(long, default_value_t = 7077)]
    grpc_port: u16,
    /// REST port on 127.0.0.1.
    #[arg(long, default_value_t = 8080)]
    http_port: u16,
    /// Postgres port on 127.0.0.1.
    #[arg(long, default_value_t = 5433)]
    pg_port: u16,
    /// Directory with initdb, pg_ctl and pg_config.
    #[arg(long, env = "HATCHET_PG_BIN_DIR", default_value = DEFAULT_PG_BIN_DIR)]
    pg_bin_dir: PathBuf,
    /// Base URL of the dashboard in alert links (`<public url>/runs/<run id>`); default http://localhost:<http port>.
    #[arg(long, env = "HATCHET_PUBLIC_URL")]
    public_url: Option<String>,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Postgres connection URL (the database must have the pg_hatchet extension).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// gRPC listen address. Plaintext is refused on a non-loopback address unless --insecure (or TLS is on).
    #[arg(long, default_value = "127.0.0.1:7077")]
    grpc_addr: SocketAddr,
    /// REST listen address (same rule as --grpc-addr).
    #[arg(long, default_value = "127.0.0.1:8080")]
    http_addr: SocketAddr,
    /// Serve plaintext on a non-loopback address anyway (TLS terminated by a proxy in front, or a private network
    /// you trust): tokens and payloads then cross the network unencrypted.
    #[arg(long, env = "HATCHET_SERVER_INSECURE")]
    insecure: bool,
    /// PEM certificate chain; serves TLS on both listeners (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Maximum database connections for request handling.
    #[arg(long, default_value_t = 20)]
    max_connections: u32,
    /// Maximum database connections of the background loops (assigner, completion batcher, notifier, run
    /// watcher), a pool of their own.
    #[arg(long, default_value_t = BackgroundPool::default().max_connections)]
    background_connections: u32,
    /// statement_timeout of the background loops' sessions.
    #[arg(long, default_value = "30s", value_parser = duration::parse)]
    background_statement_timeout: Duration,
    /// lock_timeout of the background loops' sessions.
    #[arg(long, default_value = "5s", value_parser = duration::parse)]
    background_lock_timeout: Duration,
    /// idle_in_transaction_session_timeout of the background loops' sessions: a replica stopped inside a transaction
    /// holds its locks (a worker's slot row) this long at most; keep it well under worker_dead_after.
    #[arg(long, default_value = "5s", value_parser = duration::parse)]
    background_idle_in_transaction_timeout: Duration,
    /// idle_in_transaction_session_timeout of the request-handling sessions (same reason).
    #[arg(long, default_value = "5s", value_parser = duration::parse)]
    idle_in_transaction_timeout: Duration,
    /// Most runs one SubscribeToWorkflowRuns stream may wait for at once; beyond it RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = ServerConfig::default().max_subscriptions_per_stream)]
    max_subscriptions_per_stream: usize,
    /// Base URL at which people reach this server's dashboard, for the links in alerts
    /// (`<public url>/runs/<run id>`); default http://<--http-addr> (https:// with --tls-cert). An https:// URL (or
    /// TLS) makes the dashboard's session cookie Secure.
    #[arg(long, env = "HATCHET_PUBLIC_URL")]
    public_url: Option<String>,
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Mint a token for a tenant and print it.
    Create {
        /// Tenant id (the extension's default tenant is 707d0855-80ab-4e1f-a156-f1c4546cbf52).
        #[arg(long)]
        tenant: Uuid,
        /// A label for the token.
        #[arg(long, default_value = "default")]
        name: String,
        /// Lifetime, e.g. 90d, 12h, 1w.
        #[arg(long, default_value = "90d", value_parser = duration::parse_unbounded)]
        expires_in: Duration,
        /// REST URL written into the token (the SDK's default server_url).
        #[arg(long, default_value = "http://localhost:8080")]
        server_url: String,
        /// gRPC host:port written into the token (the SDK's default host_port).
        #[arg(long, default_value = "localhost:7077")]
        grpc_broadcast_address: String,
        /// Postgres connection URL.
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
    },
    /// Revoke a token by id; servers stop accepting it within their auth cache TTL.
    Revoke {
        /// Tenant id.
        #[arg(long)]
        tenant: Uuid,
        /// The token's `token_id` claim.
        #[arg(long)]
        token_id: Uuid,
        /// Postgres connection URL.
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn")),
        )
        .init();
    match Cli::parse().command {
        Command::Dev(args) => dev(args).await,
        Command::Serve(args) => serve(args).await,
        Command::Token { command } => token(command).await,
    }
}

async fn dev(args: DevArgs) -> anyhow::Result<()> {
    let mut spec = ClusterSpec::new(args.data_dir, args.pg_port);
    spec.pg_bin_dir = args.pg_bin_dir;
    let cluster = LocalCluster::new(spec)?;
    cluster.check_extension_installed().await?;
    if cluster.init_if_absent().await? {
        tracing::info!(pgdata = %cluster.pgdata().display(), "created a new Postgres cluster");
    }
    let started = cluster.start().await?;
    if !started {
        tracing::info!("the Postgres cluster was already running; leaving it running on exit");
    }
    let public_url = args
        .public_url
        .unwrap_or_else(|| format!("http://localhost:{}", args.http_port));
    let result = dev_serve(&cluster, args.grpc_port, args.http_port, public_url).await;
    if started {
        tracing::info!("stopping Postgres");
        if let Err(err) = cluster.stop().await {
            tracing::error!(error = %err, "could not stop Postgres");
        }
    }
    result
}

async fn dev_serve(
    cluster: &LocalCluster,
    grpc_port: u16,
    http_port: u16,
    public_url: String,
) -> anyhow::Result<()> {
    cluster.prepare_database().await?;
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(cluster.connect_options(&cluster.spec().database))
        .await
        .context("cannot connect to the local cluster")?;
    let listeners = Listeners {
        grpc: bind(SocketAddr::from(([127, 0, 0, 1], grpc_port))).await?,
        http: bind(SocketAddr::from(([127, 0, 0, 1], http_port))).await?,
        tls: None,
    };
    let config = ServerConfig {
        secure_cookies: public_url.starts_with("https://"),
        public_url,
        // The printed dashboard link signs the browser in (only `dev` allows that).
        dashboard_link_login: true,
        ..ServerConfig::default()
    };
    let state = AppState::new(pool, config)?;
    let minted = state
        .auth
        .mint(&MintRequest {
            tenant_id: DEFAULT_TENANT_ID,
            name: "dev".into(),
            expires_in: Duration::from_secs(90 * 86_400),
            server_url: format!("http://localhost:{http_port}"),
            grpc_broadcast_address: format!("localhost:{grpc_port}"),
        })
        .await?;
    // One write for the whole block, so a reader that stops after the exports never sees half of it. A closed
    // stdout (the reader went away) is not a reason to stop serving.
    let exports = format!(
        "export HATCHET_CLIENT_TOKEN={token}\n\
         export HATCHET_CLIENT_HOST_PORT=localhost:{grpc_port}\n\
         export HATCHET_CLIENT_TLS_STRATEGY=none\n\
         export HATCHET_CLIENT_SERVER_URL=http://localhost:{http_port}\n\
         # dashboard: http://localhost:{http_port}/login?token={token}\n",
        token = minted.token,
    );
    // (The comment line keeps `eval "$(hatchet-server dev)"` working.)
    let mut out = std::io::stdout().lock();
    if let Err(err) = out.write_all(exports.as_bytes()).and_then(|()| out.flush()) {
        tracing::warn!(error = %err, "could not print the client settings to stdout; serving anyway");
    }
    drop(out);
    tracing::info!(database_url = %cluster.database_url(), "pg_hatchet is ready; press Ctrl-C to stop");
    let pool = state.pool.clone();
    let result = hatchet_server::run(listeners, state, shutdown_signal()).await;
    // Hang up before Postgres is stopped, so the fast shutdown does not kill our sessions under us.
    pool.close().await;
    result
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles::load(cert, key)?),
        _ => None,
    };
    check_exposure(
        &[args.grpc_addr, args.http_addr],
        tls.is_some(),
        args.insecure,
    )?;
    let pool = connect(&args.database_url, args.max_connections).await?;
    let listeners = Listeners {
        grpc: bind(args.grpc_addr).await?,
        http: bind(args.http_addr).await?,
        tls,
    };
    // Behind TLS the links in alerts are https (a proxy terminating TLS in front: give --public-url https://...).
    let scheme = if listeners.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let public_url = args
        .public_url
        .unwrap_or_else(|| format!("{scheme}://{}", args.http_addr));
    let config = ServerConfig {
        secure_cookies: public_url.starts_with("https://"),
        background: BackgroundPool {
            max_connections: args.background_connections,
            statement_timeout: args.background_statement_timeout,
            lock_timeout: args.background_lock_timeout,
            idle_in_transaction_timeout: args.background_idle_in_transaction_timeout,
        },
        max_subscriptions_per_stream: args.max_subscriptions_per_stream,
        public_url,
        idle_in_transaction_timeout: args.idle_in_transaction_timeout,
        ..ServerConfig::default()
    };
    let state = AppState::new(pool, config)?;
    hatchet_server::run(listeners, state, shutdown_signal()).await
}

async fn token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            tenant,
            name,
            expires_in,
            server_url,
            grpc_broadcast_address,
            database_url,
        } => {
            let pool = connect(&database_url, 1).await?;
            let auth = Authenticator::new(pool, Duration::ZERO);
            let minted = auth
                .mint(&MintRequest {
                    tenant_id: tenant,
                    name,
                    expires_in,
                    server_url,
                    grpc_broadcast_address,
                })
                .await?;
            tracing::info!(token_id = %minted.token_id, expires_at = %minted.expires_at, "token created");
            println!("{}", minted.token);
        }
        TokenCommand::Revoke {
            tenant,
            token_id,
            database_url,
        } => {
            let pool = connect(&database_url, 1).await?;
            if Authenticator::new(pool, Duration::ZERO)
                .revoke(tenant, token_id)
                .await?
            {
                tracing::info!(%token_id, "token revoked");
            } else {
                anyhow::bail!("token {token_id} of tenant {tenant} is unknown or already revoked");
            }
        }
    }
    Ok(())
}

/// A pool on an existing database, which must have the pg_hatchet extension.
async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .context("cannot connect to the database")?;
    // Fail now with a clear message rather than on the first request with "relation does not exist".
    if db::extension_version(&pool).await?.is_none() {
        anyhow::bail!(
            "the database has no pg_hatchet extension: run `CREATE EXTENSION pg_hatchet` in it (the library must \
             also be in shared_preload_libraries)"
        );
    }
    Ok(pool)
}

async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (is another server running there?)"))
}

/// Completes on Ctrl-C or SIGTERM (what `docker stop` and systemd send).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested");
}
