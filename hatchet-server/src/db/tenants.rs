//! Tenants and API tokens: direct statements on `hatchet.tenants` and `hatchet.api_tokens` (`sql/schema.sql`; the
//! extension has no functions for them). The token logic itself is in [`crate::auth`].

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// Whether the tenant exists.
pub(crate) async fn tenant_exists(pool: &PgPool, tenant_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM hatchet.tenants WHERE tenant_id = $1)")
        .bind(tenant_id)
        .fetch_one(pool)
        .await
}

/// A tenant's name and creation time (`tenant.get`), or `None` if it does not exist.
pub(crate) async fn tenant(
    pool: &PgPool,
    tenant_id: Uuid,
) -> Result<Option<(String, DateTime<Utc>)>, sqlx::Error> {
    sqlx::query_as("SELECT name, created_at FROM hatchet.tenants WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_optional(pool)
        .await
}

/// A tenant's token-signing secret: `None` if the tenant does not exist, `Some(None)` if it has no secret yet.
pub(crate) async fn tenant_token_secret(
    pool: &PgPool,
    tenant_id: Uuid,
) -> Result<Option<Option<Vec<u8>>>, sqlx::Error> {
    sqlx::query_scalar("SELECT token_secret FROM hatchet.tenants WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_optional(pool)
        .await
}

/// Stores `candidate` as the tenant's secret if it has none, then returns the secret in force (ours, or the one a
/// concurrent caller stored first). `None` if the tenant does not exist.
///
/// Two statements on purpose: under READ COMMITTED a racing UPDATE waits for the first one, re-checks
/// `token_secret IS NULL`, finds it false and does nothing, so the SELECT always returns the single winner.
pub(crate) async fn ensure_tenant_token_secret(
    pool: &PgPool,
    tenant_id: Uuid,
    candidate: &[u8],
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query("UPDATE hatchet.tenants SET token_secret = $2 WHERE tenant_id = $1 AND token_secret IS NULL")
        .bind(tenant_id)
        .bind(candidate)
        .execute(pool)
        .await?;
    Ok(tenant_token_secret(pool, tenant_id).await?.flatten())
}

/// Records a newly minted token so it can be listed and revoked.
pub(crate) async fn insert_api_token(
    pool: &PgPool,
    tenant_id: Uuid,
    token_id: Uuid,
    name: &str,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO hatchet.api_tokens (tenant_id, token_id, name, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(tenant_id)
    .bind(token_id)
    .bind(name)
    .bind(created_at)
    .bind(expires_at)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Whether a token id is known, not revoked and not past its recorded expiry.
pub(crate) async fn api_token_is_active(
    pool: &PgPool,
    tenant_id: Uuid,
    token_id: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM hatchet.api_tokens \
         WHERE tenant_id = $1 AND token_id = $2 AND revoked_at IS NULL \
           AND (expires_at IS NULL OR expires_at > pg_catalog.now()))",
    )
    .bind(tenant_id)
    .bind(token_id)
    .fetch_one(pool)
    .await
}

/// Marks a token revoked. Returns false if it was unknown or already revoked.
pub(crate) async fn revoke_api_token(
    pool: &PgPool,
    tenant_id: Uuid,
    token_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE hatchet.api_tokens SET revoked_at = pg_catalog.now() \
         WHERE tenant_id = $1 AND token_id = $2 AND revoked_at IS NULL",
    )
    .bind(tenant_id)
    .bind(token_id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}
