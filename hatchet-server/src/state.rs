//! The state shared by every gRPC and REST handler.

use crate::auth::Authenticator;
use crate::config::ServerConfig;
use crate::dispatch::Dispatch;
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
    /// Connected workers, subscriptions and the background tasks' wake-ups (see [`crate::dispatch`]).
    pub(crate) dispatch: Arc<Dispatch>,
    /// Cancelled when the server starts shutting down. Long-lived streams (ListenV2, SubscribeToWorkflowRuns,
    /// SubscribeToWorkflowEvents) end when it fires, or graceful shutdown waits for them until `shutdown_grace` runs
    /// out. [`Dispatch`] holds the same token.
    pub(crate) shutdown: CancellationToken,
}

impl AppState {
    /// Builds the state for a pool and settings.
    pub fn new(pool: PgPool, config: ServerConfig) -> Result<Self, prometheus::Error> {
        let metrics = Arc::new(Metrics::new()?);
        let shutdown = CancellationToken::new();
        Ok(Self {
            auth: Arc::new(Authenticator::new(pool.clone(), config.auth_cache_ttl)),
            dispatch: Arc::new(Dispatch::new(
                pool.clone(),
                metrics.clone(),
                shutdown.clone(),
            )),
            metrics,
            config: Arc::new(config),
            shutdown,
            pool,
        })
    }
}
