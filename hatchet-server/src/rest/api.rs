//! Hatchet's REST API under `/api`, as the SDKs call it (`shared/reference/sdk_protocol.md` §3).
//!
//! Every route here sits behind [`require_bearer`](crate::auth::http::require_bearer); handlers take
//! [`AuthTenant`](crate::auth::http::AuthTenant) and call `check_path` on any `{tenant}` path segment, so a token
//! never reaches another tenant's data. One module per resource; what no module serves (replays, filters, webhooks,
//! metrics, workflow deletion, ...) gets 501 with an honest message (never made-up data), and an unauthenticated
//! request gets 401 like a real route would.

use super::{crons, events, runs, tasks, workers, workflows};
use crate::auth::http::require_bearer;
use crate::{AppError, AppState};
use axum::extract::OriginalUri;
use axum::http::Method;
use axum::middleware::from_fn_with_state;
use axum::Router;

/// The `/api` router (mounted with `nest("/api", ...)`).
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .merge(runs::router())
        .merge(tasks::router())
        .merge(crons::router())
        .merge(workers::router())
        .merge(workflows::router())
        .merge(events::router())
        .fallback(not_implemented)
        .layer(from_fn_with_state(state, require_bearer))
}

async fn not_implemented(method: Method, OriginalUri(uri): OriginalUri) -> AppError {
    AppError::Unimplemented(format!("{method} {} is not implemented yet", uri.path()))
}
