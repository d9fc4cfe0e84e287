//! The state shared by every gRPC and REST handler.

use crate::auth::Authenticator;
use crate::config::{BackgroundPool, ServerConfig};
use crate::dispatch::Dispatch;
use crate::metrics::Metrics;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Cheap to clone: everything is behind `Arc` (or is a pool / token, which are handles already).
#[derive(Clone, Debug)]
pub struct AppState {
    /// Connections to the database that has the pg_hatchet extension, for request handling.
    pub pool: PgPool,
    /// The background loops' own connections to the same database (see [`BackgroundPool`]): same connect options
    /// as `pool`, plus `statement_timeout`, `lock_timeout` and `idle_in_transaction_session_timeout` on each session.
    pub background: PgPool,
    /// Token verification (and minting, for `dev`).
    pub auth: Arc<Authenticator>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Operator settings.
    pub config: Arc<ServerConfig>,
    /// Connected workers, subscriptions and the background tasks' wake-ups (see [`crate::dispatch`]).
    pub(crate) dispatch: Arc<Dispatch>,
    /// Coalesces the workers' heartbeats into one statement per tenant and [`crate::dispatch::heartbeats::WINDOW`].
    pub(crate) heartbeats: Arc<crate::dispatch::heartbeats::Heartbeats>,
    /// Cancelled when the server starts shutting down. Long-lived streams (ListenV2, SubscribeToWorkflowRuns,
    /// SubscribeToWorkflowEvents) end when it fires, or graceful shutdown waits for them until `shutdown_grace` runs
    /// out. [`Dispatch`] holds the same token.
    pub(crate) shutdown: CancellationToken,
}

impl AppState {
    /// Builds the state for a pool and settings. The background pool is derived from `pool`'s connect options and
    /// opens its connections lazily.
    pub fn new(pool: PgPool, config: ServerConfig) -> Result<Self, prometheus::Error> {
        let metrics = Arc::new(Metrics::new()?);
        let shutdown = CancellationToken::new();
        let background = background_pool(&pool, &config.background);
        Ok(Self {
            auth: Arc::new(Authenticator::new(pool.clone(), config.auth_cache_ttl)),
            dispatch: Arc::new(Dispatch::new(
                background.clone(),
                pool.clone(),
                metrics.clone(),
                shutdown.clone(),
                config.max_subscriptions_per_stream,
            )),
            heartbeats: Arc::default(),
            background,
            metrics,
            config: Arc::new(config),
            shutdown,
            pool,
        })
    }
}

/// A pool on the same database as `requests`, whose sessions start with the background timeouts (as startup
/// options, so they hold from the first statement and survive `DISCARD ALL`) and name themselves in
/// `pg_stat_activity`.
fn background_pool(requests: &PgPool, settings: &BackgroundPool) -> PgPool {
    let options = (*requests.connect_options())
        .clone()
        .application_name("hatchet-server background")
        .options(settings.session_settings());
    let request_options = requests.options();
    PgPoolOptions::new()
        .max_connections(settings.max_connections.max(1))
        .acquire_timeout(request_options.get_acquire_timeout())
        .connect_lazy_with(options)
}
