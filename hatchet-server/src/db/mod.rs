//! Every SQL statement the server runs, in one place.
//!
//! | module | extension surface |
//! |---|---|
//! | this file | extension checks, tenants, API tokens, queue depth |
//! | [`workers`] | worker registry and reads, `assign`, attempt lifecycle (`complete_many`, `fail`, ...), logs, rate limits (incl. pause and list) |
//! | [`runs`] | workflow registration, runs, replay, run status / tasks / timeline / finished runs, run / workflow / event reads, one-off schedules |
//! | [`schedules`] | crons and the schedule list |
//!
//! Handlers never embed SQL: they call a function here, which names the extension object it touches. That keeps
//! the server's contract with pg_hatchet (schema `hatchet`, see `docs/sql-api.md`) reviewable in one file, and makes
//! a schema change a one-file change on this side. Functions return `sqlx::Error`; callers turn it into an
//! [`AppError`](crate::AppError) with `?`, which maps SQLSTATEs in one place.

pub mod runs;
pub mod schedules;
pub mod workers;

/// The worker reads under their former path (`db::reads`), which `grpc/dispatcher.rs` still imports; they are
/// [`workers::worker_record`] and [`workers::running_retry_count`] (SQL: `hatchet.worker`, `hatchet.running_attempt`).
pub mod reads {
    pub use super::workers::{running_retry_count, worker_record, WorkerRecord};
}

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};
use uuid::Uuid;

/// The extension's name, as in `CREATE EXTENSION`.
pub const EXTENSION: &str = "pg_hatchet";

/// Cheapest round trip that proves the pool can reach Postgres.
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
}

/// The installed version of pg_hatchet in this database, or `None` if the extension is not created.
pub async fn extension_version(pool: &PgPool) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = $1")
        .bind(EXTENSION)
        .fetch_optional(pool)
        .await
}

/// Whether the extension's files are installed in this Postgres (it can be created).
pub async fn extension_available(pool: &PgPool) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = $1)",
    )
    .bind(EXTENSION)
    .fetch_one(pool)
    .await
}

/// `CREATE EXTENSION IF NOT EXISTS pg_hatchet`.
pub async fn create_extension(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_hatchet")
        .execute(pool)
        .await
        .map(|_| ())
}

/// Whether a database with this name exists in the cluster.
pub async fn database_exists(pool: &PgPool, name: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(pool)
        .await
}

/// `CREATE DATABASE <name>`; the name is quoted as an identifier, never interpolated raw.
pub async fn create_database(pool: &PgPool, name: &str) -> Result<(), sqlx::Error> {
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    // The name is quoted above (double quotes doubled), so it cannot break out of the identifier.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted}")))
        .execute(pool)
        .await
        .map(|_| ())
}

/// Whether the tenant exists.
pub async fn tenant_exists(pool: &PgPool, tenant_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM hatchet.tenants WHERE tenant_id = $1)")
        .bind(tenant_id)
        .fetch_one(pool)
        .await
}

/// A tenant's token-signing secret: `None` if the tenant does not exist, `Some(None)` if it has no secret yet.
pub async fn tenant_token_secret(
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
pub async fn ensure_tenant_token_secret(
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
pub async fn insert_api_token(
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
pub async fn api_token_is_active(
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
pub async fn revoke_api_token(
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

/// One row of [`queue_depths`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDepth {
    /// Owning tenant.
    pub tenant_id: Uuid,
    /// Queue name.
    pub queue: String,
    /// Items ready to be assigned.
    pub depth: i64,
}

/// Ready items per (tenant, queue), for the `hatchet_queue_depth` gauge.
pub async fn queue_depths(pool: &PgPool) -> Result<Vec<QueueDepth>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT tenant_id, queue, count(*) AS depth FROM hatchet.ready_queue GROUP BY tenant_id, queue",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(QueueDepth {
                tenant_id: row.try_get("tenant_id")?,
                queue: row.try_get("queue")?,
                depth: row.try_get("depth")?,
            })
        })
        .collect()
}
