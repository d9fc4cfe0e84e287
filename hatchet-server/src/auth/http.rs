//! Bearer-token authentication for the REST API (`/api/...`), as axum middleware plus an extractor.
//!
//! `/health` stays public (probes carry no token); `/metrics` and everything under `/api` (but the webhook
//! receiving endpoint) go through [`require_bearer`], which puts the [`TenantId`] into request extensions or answers 401 with
//! Hatchet's `APIErrors` JSON body.

use super::{Authenticator, TenantId};
use crate::error::AppError;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

/// Middleware: authenticate `Authorization: Bearer <jwt>` and attach the tenant.
pub(crate) async fn require_bearer(
    State(auth): State<Arc<Authenticator>>,
    mut req: Request,
    next: Next,
) -> Result<Response, AppError> {
    let header = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    let (tenant, token) = auth.authenticate_header(header).await?;
    req.extensions_mut().insert(tenant);
    req.extensions_mut().insert(token);
    Ok(next.run(req).await)
}

/// Extractor for the authenticated tenant in REST handlers mounted behind [`require_bearer`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct AuthTenant(pub TenantId);

impl<S: Send + Sync> FromRequestParts<S> for AuthTenant {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<TenantId>()
            .copied()
            .map(AuthTenant)
            .ok_or_else(|| AppError::Unauthenticated("missing bearer token".into()))
    }
}

impl AuthTenant {
    /// Checks that a `{tenant}` path segment names the token's tenant. A token for one tenant never reaches another
    /// tenant's data, and the answer does not reveal whether the other tenant exists.
    pub(crate) fn check_path(&self, path_tenant: &str) -> Result<(), AppError> {
        match uuid::Uuid::parse_str(path_tenant) {
            Ok(id) if id == self.0 .0 => Ok(()),
            Ok(_) => Err(AppError::PermissionDenied(
                "token does not grant access to this tenant".into(),
            )),
            Err(_) => Err(AppError::InvalidArgument(format!(
                "invalid tenant id \"{path_tenant}\""
            ))),
        }
    }
}
