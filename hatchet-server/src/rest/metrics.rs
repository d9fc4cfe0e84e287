//! `GET /metrics`: Prometheus text exposition of [`crate::metrics::Metrics`].
//!
//! Queue depths are read from `hatchet.ready_queue` at scrape time. If the database cannot be read the scrape
//! still succeeds with the other metrics and `hatchet_database_up 0`, so an outage shows up on dashboards
//! instead of as a missing scrape.

use crate::db;
use crate::error::AppError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

/// `/metrics`.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, AppError> {
    match tokio::time::timeout(
        super::health::PING_TIMEOUT,
        db::maintenance::queue_depths(&state.pool),
    )
    .await
    {
        Ok(Ok(depths)) => {
            state.metrics.set_queue_depths(&depths);
            state.metrics.database_up.set(1);
        }
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "metrics: cannot read queue depths");
            state.metrics.database_up.set(0);
        }
        Err(_) => {
            tracing::warn!("metrics: reading queue depths timed out");
            state.metrics.database_up.set(0);
        }
    }
    let body = state.metrics.render().map_err(AppError::internal)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    ))
}
