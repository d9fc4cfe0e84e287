//! The REST side: Hatchet's HTTP API for the SDKs (under `/api`, bearer-authenticated) plus the operational
//! endpoints `/health` (public, for probes) and `/metrics` (bearer-authenticated, the token's tenant only), and the
//! dashboard's pages at `/` (see `crate::dashboard`).
//!
//! [`app`] builds the whole router from the state, so tests can drive it with `tower::ServiceExt::oneshot`
//! without binding a socket. Each resource module exposes a `router()`.

pub(crate) mod alerts;
pub(crate) mod api;
pub(crate) mod crons;
pub(crate) mod events;
pub(crate) mod filters;
pub(crate) mod health;
pub(crate) mod metrics;
pub(crate) mod query;
pub(crate) mod resource;
pub(crate) mod runs;
pub(crate) mod shapes;
pub(crate) mod stats;
pub(crate) mod tasks;
pub(crate) mod tenants;
pub mod webhooks;
pub(crate) mod workers;
pub(crate) mod workflows;

use crate::state::AppState;
use axum::Router;

/// The complete REST router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(metrics::router(&state))
        .nest("/api", api::router(state.clone()))
        .merge(crate::dashboard::router())
        .with_state(state)
}
