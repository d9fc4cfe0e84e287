//! Hatchet's REST API under `/api`, as the SDKs call it (`shared/reference/sdk_protocol.md` §3).
//!
//! Every route here sits behind [`require_bearer`](crate::auth::http::require_bearer); handlers take
//! [`AuthTenant`](crate::auth::http::AuthTenant) and call `check_path` on any `{tenant}` path segment, so a token
//! never reaches another tenant's data. One module per resource; what no module serves (replays,
//! metrics, workflow deletion, ...) gets 501 with an honest message (never made-up data), and an unauthenticated
//! request gets 401 like a real route would.

use super::{crons, events, filters, runs, tasks, webhooks, workers, workflows};
use crate::auth::http::require_bearer;
use crate::{AppError, AppState};
use axum::extract::OriginalUri;
use axum::http::Method;
use axum::middleware::from_fn_with_state;
use axum::Router;

/// The `/api` router (mounted with `nest("/api", ...)`). The one route without a bearer token is the webhook
/// receiving endpoint (`POST .../webhooks/{name}`), which outside systems call with the webhook's own credentials.
pub fn router(state: AppState) -> Router<AppState> {
    let authenticated = Router::new()
        .merge(runs::router())
        .merge(tasks::router())
        .merge(crons::router())
        .merge(workers::router())
        .merge(workflows::router())
        .merge(events::router())
        .merge(filters::router())
        .merge(webhooks::router())
        .fallback(not_implemented)
        .layer(from_fn_with_state(state, require_bearer));
    webhooks::receive_router().merge(authenticated)
}

async fn not_implemented(method: Method, OriginalUri(uri): OriginalUri) -> AppError {
    AppError::Unimplemented(format!("{method} {} is not implemented yet", uri.path()))
}
