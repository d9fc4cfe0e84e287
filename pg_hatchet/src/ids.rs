//! Task and run ids: UUIDv7, whose leading 48 bits are the creation time in milliseconds (`hatchet_core::ids`).
//!
//! History tables are partitioned by day on `inserted_at`, and a task's `inserted_at` is its id's own timestamp, so
//! any lookup by id can name its partition without a global id → partition index.

use hatchet_core::{ids, pg_time};
use pgrx::prelude::*;

/// `hatchet.gen_id()`: a new time-ordered UUIDv7.
#[pg_extern(volatile, parallel_safe)]
pub(crate) fn gen_id() -> pgrx::Uuid {
    pgrx::Uuid::from_bytes(ids::new_v7())
}

/// `hatchet.uuid_time(id)`: the creation time embedded in a UUIDv7 (NULL for other versions). Tasks and runs are
/// stored with `inserted_at = hatchet.uuid_time(id)`.
#[pg_extern(immutable, strict, parallel_safe)]
pub(crate) fn uuid_time(id: pgrx::Uuid) -> Option<TimestampWithTimeZone> {
    let ms = ids::v7_millis(id.as_bytes())?;
    TimestampWithTimeZone::try_from(pg_time::from_unix_millis(ms)).ok()
}
