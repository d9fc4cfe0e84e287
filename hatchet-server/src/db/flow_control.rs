//! Rate limits (`sql/flow_control.sql`): create or reset, pause, list. Concurrency gates have no server-side call:
//! they act inside `enqueue`, `assign` and the completion functions.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// `hatchet.put_rate_limit`: creates or resets a static rate limit.
pub(crate) async fn put_rate_limit(
    pool: &PgPool,
    tenant: Uuid,
    key: &str,
    limit: i32,
    duration: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT hatchet.put_rate_limit(key => $1, \"limit\" => $2, duration => $3, tenant_id => $4)",
    )
    .bind(key)
    .bind(limit)
    .bind(duration)
    .bind(tenant)
    .execute(pool)
    .await
    .map(|_| ())
}

/// `hatchet.pause_rate_limit`: no task takes units of the limit before `until` (`None` or a past time unpauses it);
/// returns the time it is paused until. Unknown key: SQLSTATE 42704.
pub(crate) async fn pause_rate_limit(
    pool: &PgPool,
    tenant: Uuid,
    key: &str,
    until: Option<DateTime<Utc>>,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT hatchet.pause_rate_limit(key => $1, paused_until => $2, tenant_id => $3)",
    )
    .bind(key)
    .bind(until)
    .bind(tenant)
    .fetch_one(pool)
    .await
}

/// A rate limit's state (`hatchet.list_rate_limits`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct RateLimitRow {
    /// Key.
    pub key: String,
    /// Units per window.
    pub limit_value: i32,
    /// Units left now (a window that has passed shows as refilled).
    pub remaining: i32,
    /// Window length, as Postgres prints an interval.
    pub window: String,
    /// Start of the current window.
    pub last_refill: DateTime<Utc>,
    /// While paused: until when.
    pub paused_until: Option<DateTime<Utc>>,
}

/// `hatchet.list_rate_limits`: the tenant's rate limits by key (those whose key contains `search`).
pub(crate) async fn list_rate_limits(
    pool: &PgPool,
    tenant: Uuid,
    search: Option<&str>,
) -> Result<Vec<RateLimitRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT key, limit_value, remaining, \"window\", last_refill, paused_until \
         FROM hatchet.list_rate_limits(search => $1, tenant_id => $2)",
    )
    .bind(search)
    .bind(tenant)
    .fetch_all(pool)
    .await
}
