//! `GET /metrics`: Prometheus text exposition of [`crate::metrics::Metrics`] for the token's tenant.
//!
//! It takes the same `Authorization: Bearer <token>` as the REST API (401 without one) and shows only that
//! tenant's series (see [`crate::metrics`] for why). Queue depths are read from `hatchet.ready_queue` at scrape
//! time. If the database cannot be read the scrape still succeeds with the other metrics and
//! `hatchet_database_up 0`, so an outage shows up on dashboards instead of as a missing scrape (a token verified
//! within the auth cache TTL needs no database).

use crate::auth::http::{require_bearer, AuthTenant};
use crate::db;
use crate::error::AppError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

/// `/metrics`, behind the bearer token.
pub(crate) fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route_layer(from_fn_with_state(state.auth.clone(), require_bearer))
}

async fn metrics(
    State(state): State<AppState>,
    AuthTenant(tenant): AuthTenant,
) -> Result<impl IntoResponse, AppError> {
    let depths = match tokio::time::timeout(
        super::health::PING_TIMEOUT,
        db::maintenance::queue_depths(&state.pool, tenant.0),
    )
    .await
    {
        Ok(Ok(depths)) => {
            state.metrics.database_up.set(1);
            depths
        }
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "metrics: cannot read queue depths");
            state.metrics.database_up.set(0);
            Vec::new()
        }
        Err(_) => {
            tracing::warn!("metrics: reading queue depths timed out");
            state.metrics.database_up.set(0);
            Vec::new()
        }
    };
    let body = state
        .metrics
        .render_for(tenant.0, &depths)
        .map_err(AppError::internal)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    ))
}
