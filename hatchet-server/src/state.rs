//! The state shared by every gRPC and REST handler.

use crate::auth::Authenticator;
use crate::config::{pg_millis, BackgroundPool, ServerConfig};
use crate::dispatch::Dispatch;
use crate::metrics::Metrics;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Cheap to clone: everything is behind `Arc` (or is a pool / token, which are handles already).
#[derive(Clone, Debug)]
pub struct AppState {
    /// Connections to the database that has the pg_hatchet extension, for request handling: the given pool's
    /// connect and pool options, plus `idle_in_transaction_session_timeout` on each session
    /// ([`ServerConfig::idle_in_transaction_timeout`]).
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
    /// Builds the state for a pool and settings. The request and background pools are derived from `pool`'s
    /// connect options (with their session settings added) and open their connections lazily; `pool` itself is
    /// only read for its options.
    pub fn new(pool: PgPool, config: ServerConfig) -> Result<Self, prometheus::Error> {
        let metrics = Arc::new(Metrics::new()?);
        let shutdown = CancellationToken::new();
        let background = background_pool(&pool, &config.background);
        let pool = request_pool(&pool, config.idle_in_transaction_timeout);
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

/// A pool like `given` (same connect options, size and timeouts) whose sessions start with
/// `idle_in_transaction_session_timeout` (a startup option, so it holds from the first statement): a replica stopped
/// inside a transaction of a request (a trigger's inserts) loses its session, and its locks, after `idle`.
fn request_pool(given: &PgPool, idle: Duration) -> PgPool {
    let options = (*given.connect_options())
        .clone()
        .options([("idle_in_transaction_session_timeout", pg_millis(idle))]);
    let o = given.options();
    PgPoolOptions::new()
        .max_connections(o.get_max_connections())
        .min_connections(o.get_min_connections())
        .acquire_timeout(o.get_acquire_timeout())
        .idle_timeout(o.get_idle_timeout())
        .max_lifetime(o.get_max_lifetime())
        .test_before_acquire(o.get_test_before_acquire())
        .connect_lazy_with(options)
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
