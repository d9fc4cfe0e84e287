//! Running the gRPC and REST servers side by side until shutdown.
//!
//! [`run`] takes already-bound listeners (so tests bind port 0 and read the port back, and `dev` can fail early on
//! a busy port), the shared [`AppState`] and a shutdown future. When the future completes, or either server fails,
//! both stop accepting, `state.shutdown` is cancelled so long-lived streams end, and in-flight requests get
//! `config.shutdown_grace` to finish.

use crate::config::{HTTP2_KEEPALIVE_INTERVAL, HTTP2_KEEPALIVE_TIMEOUT};
use crate::state::AppState;
use crate::{grpc, rest};
use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;

/// The sockets to serve on.
#[derive(Debug)]
pub struct Listeners {
    /// gRPC (HTTP/2; h2c unless `tls` is set).
    pub grpc: TcpListener,
    /// REST (HTTP/1.1 and HTTP/2; plain unless `tls` is set).
    pub http: TcpListener,
    /// Certificate and key for both listeners; `None` serves plaintext.
    pub tls: Option<TlsFiles>,
}

/// A PEM certificate chain and private key, read from disk at startup.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain (leaf first).
    pub cert_pem: Vec<u8>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: Vec<u8>,
}

impl TlsFiles {
    /// Reads both files.
    pub fn load(cert: &PathBuf, key: &PathBuf) -> anyhow::Result<Self> {
        Ok(Self {
            cert_pem: std::fs::read(cert)
                .with_context(|| format!("cannot read TLS certificate {}", cert.display()))?,
            key_pem: std::fs::read(key)
                .with_context(|| format!("cannot read TLS key {}", key.display()))?,
        })
    }

    fn rustls_config(&self) -> anyhow::Result<rustls::ServerConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_slice_iter(&self.cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .context("invalid TLS certificate PEM")?;
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem).context("invalid TLS key PEM")?;
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("TLS certificate and key do not match")?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// Refuses to serve plaintext on an address other hosts can reach: API tokens and task payloads would cross the
/// network unencrypted. Loopback addresses are always fine; anything else needs TLS, or `insecure` (say, TLS is
/// terminated by a proxy in front, or the network is private and trusted), which is then logged as a warning.
pub fn check_exposure(addrs: &[SocketAddr], tls: bool, insecure: bool) -> anyhow::Result<()> {
    if tls {
        return Ok(());
    }
    let Some(exposed) = addrs.iter().find(|a| !a.ip().is_loopback()) else {
        return Ok(());
    };
    if insecure {
        tracing::warn!(%exposed, "serving plaintext on a non-loopback address (--insecure): tokens and payloads cross the network unencrypted");
        return Ok(());
    }
    anyhow::bail!(
        "refusing to serve plaintext on {exposed}, which other hosts can reach: give --tls-cert and --tls-key, listen \
         on a loopback address (127.0.0.1 or [::1]), or pass --insecure if TLS is terminated in front of this server"
    )
}

/// Serves gRPC and REST until `shutdown` completes (or a server fails), then shuts down gracefully.
pub async fn run(
    listeners: Listeners,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut state = state;
    if listeners.tls.is_some() && !state.config.secure_cookies {
        // Served over TLS: the dashboard's session cookie must never travel over plaintext.
        let mut config = (*state.config).clone();
        config.secure_cookies = true;
        state.config = Arc::new(config);
    }
    let token = state.shutdown.clone();
    let grace = state.config.shutdown_grace;
    {
        let token = token.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown => token.cancel(),
                () = token.cancelled() => {}
            }
        });
    }

    state.dispatch.spawn();
    tokio::spawn(crate::alerting::run(
        state.background.clone(),
        state.config.public_url.clone(),
        state.dispatch.subscribe_changes(),
        token.clone(),
    ));

    let grpc_addr = listeners.grpc.local_addr()?;
    let http_addr = listeners.http.local_addr()?;
    let scheme = if listeners.tls.is_some() {
        "TLS"
    } else {
        "plaintext"
    };
    tracing::info!(%grpc_addr, %http_addr, %scheme, "serving gRPC and REST");

    let grpc_server = serve_grpc(
        listeners.grpc,
        listeners.tls.as_ref(),
        &state,
        token.clone(),
    )?;
    let http_server = serve_http(
        listeners.http,
        listeners.tls.as_ref(),
        &state,
        token.clone(),
    )?;
    let (grpc_result, http_result) = tokio::join!(
        bounded(grpc_server, token.clone(), grace, "gRPC"),
        bounded(http_server, token.clone(), grace, "REST"),
    );
    tracing::info!("server stopped");
    grpc_result.context("gRPC server failed")?;
    http_result.context("REST server failed")?;
    Ok(())
}

/// Runs one server future: if it ends (on error, too) shutdown starts for the other one; once shutdown started,
/// it gets `grace` to drain before it is dropped.
async fn bounded(
    server: impl Future<Output = anyhow::Result<()>>,
    token: CancellationToken,
    grace: Duration,
    name: &'static str,
) -> anyhow::Result<()> {
    tokio::pin!(server);
    let result = tokio::select! {
        result = &mut server => result,
        () = async { token.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(server = name, ?grace, "connections still open after the shutdown grace period; closing them");
            Ok(())
        }
    };
    token.cancel();
    result
}

fn serve_grpc(
    listener: TcpListener,
    tls: Option<&TlsFiles>,
    state: &AppState,
    token: CancellationToken,
) -> anyhow::Result<impl Future<Output = anyhow::Result<()>>> {
    let mut builder = tonic::transport::Server::builder()
        // Ping idle clients so dead connections are noticed; never refuse the clients' own pings (hyper has no
        // ping-strike policy, so the SDK's 10 s keepalive_time with permit_without_calls is always accepted).
        .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT))
        .tcp_keepalive(Some(Duration::from_secs(60)));
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(
                tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem),
            ))
            .context("invalid TLS configuration for gRPC")?;
    }
    let router = builder
        .layer(crate::auth::grpc::GrpcAuthLayer::new(state.auth.clone()))
        .add_routes(grpc::routes(state));
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    Ok(async move {
        router
            .serve_with_incoming_shutdown(incoming, token.cancelled_owned())
            .await
            .map_err(anyhow::Error::from)
    })
}

fn serve_http(
    listener: TcpListener,
    tls: Option<&TlsFiles>,
    state: &AppState,
    token: CancellationToken,
) -> anyhow::Result<impl Future<Output = anyhow::Result<()>>> {
    let app = rest::app(state.clone());
    let acceptor = match tls {
        Some(tls) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(
            tls.rustls_config()?,
        ))),
        None => None,
    };
    Ok(async move {
        match acceptor {
            None => axum::serve(listener, app)
                .with_graceful_shutdown(token.cancelled_owned())
                .await
                .map_err(anyhow::Error::from),
            Some(acceptor) => serve_https(listener, app, acceptor, token).await,
        }
    })
}

/// axum's `serve` has no TLS, so HTTPS gets a small accept loop: TLS handshake per connection (in its own task, so
/// a slow client cannot stall the loop), then hyper's auto (HTTP/1.1 or HTTP/2) connection, watched for graceful
/// shutdown.
async fn serve_https(
    listener: TcpListener,
    app: axum::Router,
    acceptor: tokio_rustls::TlsAcceptor,
    token: CancellationToken,
) -> anyhow::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(err) => {
                    // Typically EMFILE; back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = token.cancelled() => break,
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(err)) => {
                        tracing::debug!(%peer, error = %err, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            if let Err(err) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %err, "connection error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
