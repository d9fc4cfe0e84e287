//! The state shared by every gRPC and REST handler.

use crate::auth::Authenticator;
use crate::config::ServerConfig;
use crate::dispatch::Dispatch;
use crate::grpc::streams::StreamHub;
use crate::metrics::Metrics;
use sqlx::PgPool;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Cheap to clone: everything is behind `Arc` (or is a pool / token, which are handles already).
#[derive(Clone, Debug)]
pub struct AppState {
    /// Connections to the database that has the pg_hatchet extension.
    pub pool: PgPool,
    /// Token verification (and minting, for `dev`).
    pub auth: Arc<Authenticator>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Operator settings.
    pub config: Arc<ServerConfig>,
    /// Connected workers and the background tasks' wake-ups (see [`crate::dispatch`]).
    pub dispatch: Arc<Dispatch>,
    /// Stream-chunk wake-ups for `SubscribeToWorkflowEvents` (see [`crate::grpc::streams`]).
    pub streams: Arc<StreamHub>,
    /// Cancelled when the server starts shutting down. Long-lived streams (ListenV2, SubscribeToWorkflowRuns) must
    /// end when it fires, or graceful shutdown waits for them until `shutdown_grace` runs out.
    pub shutdown: CancellationToken,
}

impl AppState {
    /// Builds the state for a pool and settings.
    pub fn new(pool: PgPool, config: ServerConfig) -> Result<Self, prometheus::Error> {
        Ok(Self {
            auth: Arc::new(Authenticator::new(pool.clone(), config.auth_cache_ttl)),
            metrics: Arc::new(Metrics::new()?),
            config: Arc::new(config),
            dispatch: Arc::new(Dispatch::new()),
            streams: Arc::new(StreamHub::default()),
            shutdown: CancellationToken::new(),
            pool,
        })
    }
}
