//! `GET /health`: liveness plus a database round trip, for load balancers and `docker healthcheck`.
//!
//! 200 `{"status":"ok"}` when the database answers within [`PING_TIMEOUT`]; 503 `{"status":"unavailable", ...}`
//! otherwise, so a server whose database is gone is taken out of rotation.

use crate::db;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::time::Duration;

/// How long the database gets to answer the health ping.
pub(crate) const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// `/health`.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/health", get(health))
}

async fn health(State(state): State<AppState>) -> Response {
    match tokio::time::timeout(PING_TIMEOUT, db::ping(&state.pool)).await {
        Ok(Ok(())) => (StatusCode::OK, Json(json!({ "status": "ok" }))).into_response(),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "health check: database unreachable");
            unavailable("database unreachable")
        }
        Err(_) => {
            tracing::warn!("health check: database ping timed out");
            unavailable("database ping timed out")
        }
    }
}

fn unavailable(reason: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "status": "unavailable", "reason": reason })),
    )
        .into_response()
}
