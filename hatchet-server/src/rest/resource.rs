//! What the routes of a tenant's named resource (event filters, webhooks) share: a paged list, and reading,
//! updating and deleting one by its path key. A resource says how it is listed, found and deleted
//! ([`Resource`]); the generic handlers here do the rest the same way for each.

use super::query::{Params, TenantQuery};
use super::shapes::List;
use crate::error::AppError;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use uuid::Uuid;

/// Which rows a [`Resource::find`] reads.
pub(crate) enum Selection<'a, K> {
    /// The one with this key.
    Key(&'a K),
    /// Those the list route's query parameters select.
    Query(&'a Params),
}

/// A tenant's resource under `/tenants/{tenant}/<collection>/{key}`, in its REST shape.
pub(crate) trait Resource: Serialize + Send + Sized {
    /// The path key, parsed.
    type Key: Send + Sync;
    /// The row the extension returns.
    type Row: Send;

    /// Parses the `{key}` path segment.
    fn parse_key(raw: &str) -> Result<Self::Key, AppError>;
    /// The error for a key that names nothing.
    fn not_found(key: &Self::Key) -> AppError;
    /// The REST shape of a row.
    fn from_row(tenant: Uuid, row: Self::Row) -> Self;
    /// One page of the selected rows, and how many are selected in all.
    async fn find(
        state: &AppState,
        tenant: Uuid,
        selection: Selection<'_, Self::Key>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Self::Row>, i64), AppError>;
    /// Deletes it; false if there was none.
    async fn delete(state: &AppState, tenant: Uuid, key: &Self::Key) -> Result<bool, AppError>;
}

/// The one with this key, or 404.
pub(crate) async fn find<R: Resource>(
    state: &AppState,
    tenant: Uuid,
    key: &R::Key,
) -> Result<R, AppError> {
    let (rows, _) = R::find(state, tenant, Selection::Key(key), 1, 0).await?;
    rows.into_iter()
        .next()
        .map(|row| R::from_row(tenant, row))
        .ok_or_else(|| R::not_found(key))
}

/// After an update that reported whether the key existed: the resource as it is now, or 404.
pub(crate) async fn updated<R: Resource>(
    state: &AppState,
    tenant: Uuid,
    key: &R::Key,
    found: bool,
) -> Result<Json<R>, AppError> {
    if !found {
        return Err(R::not_found(key));
    }
    Ok(Json(find(state, tenant, key).await?))
}

/// `GET .../<collection>`: one page.
pub(crate) async fn list<R: Resource>(
    State(state): State<AppState>,
    q: TenantQuery,
) -> Result<Json<List<R>>, AppError> {
    let (offset, limit) = q.params.page()?;
    let selection = Selection::Query(&q.params);
    let (rows, total) = R::find(&state, q.tenant, selection, limit, offset).await?;
    let rows = rows.into_iter().map(|r| R::from_row(q.tenant, r)).collect();
    Ok(Json(List::page(rows, offset, limit, total)))
}

/// `GET .../<collection>/{key}`.
pub(crate) async fn get_one<R: Resource>(
    State(state): State<AppState>,
    q: TenantQuery,
    Path((_, key)): Path<(String, String)>,
) -> Result<Json<R>, AppError> {
    let key = R::parse_key(&key)?;
    Ok(Json(find(&state, q.tenant, &key).await?))
}

/// `DELETE .../<collection>/{key}`: answers with what was deleted.
pub(crate) async fn delete<R: Resource>(
    State(state): State<AppState>,
    q: TenantQuery,
    Path((_, key)): Path<(String, String)>,
) -> Result<Json<R>, AppError> {
    let key = R::parse_key(&key)?;
    let existing = find::<R>(&state, q.tenant, &key).await?;
    if !R::delete(&state, q.tenant, &key).await? {
        return Err(R::not_found(&key));
    }
    Ok(Json(existing))
}
