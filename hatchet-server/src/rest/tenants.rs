//! The token's tenant (`tenant.get`): `GET /v1/tenants/{tenant}`, Hatchet's `Tenant` (name, slug, engine version V1,
//! the server's public URL).

use super::query::TenantQuery;
use super::shapes::Meta;
use crate::db::tenants as db;
use crate::error::AppError;
use crate::state::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

/// The routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/v1/tenants/{tenant}", get(get_tenant))
}

async fn get_tenant(
    State(state): State<AppState>,
    TenantQuery { tenant, .. }: TenantQuery,
) -> Result<Json<Value>, AppError> {
    let (name, created_at) = db::tenant(&state.pool, tenant)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("tenant {tenant} does not exist")))?;
    Ok(Json(json!({
        "metadata": Meta::new(tenant, created_at),
        "name": name,
        "slug": name,
        "version": "V1",
        "serverUrl": state.config.public_url,
    })))
}
