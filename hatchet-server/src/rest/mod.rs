//! The REST side: Hatchet's HTTP API for the SDKs (under `/api`, bearer-authenticated) plus the public operational
//! endpoints `/health` and `/metrics`.
//!
//! [`app`] builds the whole router from the state, so tests can drive it with `tower::ServiceExt::oneshot`
//! without binding a socket. Each resource module exposes a `router()`.

pub mod api;
pub mod crons;
pub mod events;
pub mod filters;
pub mod health;
pub mod metrics;
pub mod query;
pub mod runs;
pub mod shapes;
pub mod tasks;
pub mod webhooks;
pub mod workers;
pub mod workflows;

use crate::AppState;
use axum::Router;

/// The complete REST router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(metrics::router())
        .nest("/api", api::router(state.clone()))
        .with_state(state)
}
