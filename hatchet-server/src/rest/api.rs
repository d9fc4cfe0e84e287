//! Hatchet's REST API under `/api`, as the SDKs' generated REST client calls it.
//!
//! Every route here but the webhook receiving endpoint sits behind
//! [`require_bearer`](crate::auth::http::require_bearer); handlers take [`AuthTenant`](crate::auth::http::AuthTenant)
//! (or [`TenantQuery`](super::query::TenantQuery)) and check any `{tenant}` path segment against the token, so a
//! token never reaches another tenant's data. One module per resource; what no module serves (task metrics,
//! workflow deletion, ...) gets 501 with an honest message (never made-up data), and an unauthenticated request
//! gets 401 like a real route would.

use super::{
    alerts, crons, events, filters, runs, stats, tasks, tenants, webhooks, workers, workflows,
};
use crate::auth::http::require_bearer;
use crate::error::AppError;
use crate::state::AppState;
use axum::extract::OriginalUri;
use axum::http::{Method, StatusCode};
use axum::middleware::{from_fn_with_state, map_response};
use axum::response::{IntoResponse, Response};
use axum::Router;

/// The `/api` router (mounted with `nest("/api", ...)`). The one route without a bearer token is the webhook
/// receiving endpoint (`POST .../webhooks/{name}`), which outside systems call with the webhook's own credentials.
pub(crate) fn router(state: AppState) -> Router<AppState> {
    let authenticated = Router::new()
        .merge(runs::router())
        .merge(tasks::router())
        .merge(crons::router())
        .merge(workers::router())
        .merge(workflows::router())
        .merge(events::router())
        .merge(filters::router())
        .merge(stats::router())
        .merge(webhooks::router())
        .merge(alerts::router())
        .merge(tenants::router())
        .fallback(not_implemented)
        .layer(from_fn_with_state(state.auth.clone(), require_bearer));
    webhooks::receive_router()
        .merge(authenticated)
        .layer(map_response(api_errors_for_rejections))
}

/// axum's own extractor rejections (a body that is not JSON, a missing field, a wrong content type, a wrong method)
/// answer in plain text; the SDKs expect Hatchet's `APIErrors` JSON for every error. This wraps them, and answers
/// 422 (well-formed JSON of the wrong shape) as 400 like every other bad argument.
async fn api_errors_for_rejections(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !status.is_client_error() || is_json {
        return response;
    }
    let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let mut message = String::from_utf8_lossy(&bytes).trim().to_owned();
    if message.is_empty() {
        message = status
            .canonical_reason()
            .unwrap_or("bad request")
            .to_owned();
    }
    let mut answer = AppError::InvalidArgument(message).into_response();
    if status != StatusCode::UNPROCESSABLE_ENTITY {
        *answer.status_mut() = status;
    }
    answer
}

async fn not_implemented(method: Method, OriginalUri(uri): OriginalUri) -> AppError {
    AppError::Unimplemented(format!("{method} {} is not implemented yet", uri.path()))
}
