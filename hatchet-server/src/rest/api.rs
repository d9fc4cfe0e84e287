//! Hatchet's REST API under `/api`, as the SDKs call it (`shared/reference/sdk_protocol.md` §3).
//!
//! Every route here sits behind [`require_bearer`](crate::auth::http::require_bearer); handlers take
//! [`AuthTenant`](crate::auth::http::AuthTenant) and must call `check_path` on any `{tenant}` path segment.
//! No resource is implemented yet: until one is, an authenticated request gets 501 with an honest message (never
//! made-up data), and an unauthenticated one gets 401 like a real route would.

use crate::auth::http::require_bearer;
use crate::{AppError, AppState};
use axum::extract::OriginalUri;
use axum::http::Method;
use axum::middleware::from_fn_with_state;
use axum::Router;

/// The `/api` router (mounted with `nest("/api", ...)`).
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .fallback(not_implemented)
        .layer(from_fn_with_state(state, require_bearer))
}

async fn not_implemented(method: Method, OriginalUri(uri): OriginalUri) -> AppError {
    AppError::Unimplemented(format!("{method} {} is not implemented yet", uri.path()))
}
