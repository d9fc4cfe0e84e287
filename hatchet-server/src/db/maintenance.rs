//! Housekeeping reads and passes the server runs itself (`sql/maintenance.sql`): stream chunk pruning, and the
//! ready-queue depth behind the `hatchet_queue_depth` gauge.

use sqlx::PgPool;
use uuid::Uuid;

/// `hatchet.prune_stream_chunks`: deletes the chunks of runs that finished a while ago; returns how many.
pub(crate) async fn prune_stream_chunks(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT hatchet.prune_stream_chunks()")
        .fetch_one(pool)
        .await
}

/// One row of [`queue_depths`].
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct QueueDepth {
    /// Owning tenant.
    pub tenant_id: Uuid,
    /// Queue name.
    pub queue: String,
    /// Items ready to be assigned.
    pub depth: i64,
}

/// Ready items per queue of one tenant, for the `hatchet_queue_depth` gauge.
pub(crate) async fn queue_depths(
    pool: &PgPool,
    tenant: Uuid,
) -> Result<Vec<QueueDepth>, sqlx::Error> {
    sqlx::query_as(
        "SELECT tenant_id, queue, count(*) AS depth FROM hatchet.ready_queue WHERE tenant_id = $1 \
         GROUP BY tenant_id, queue",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await
}
