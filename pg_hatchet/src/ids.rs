//! Task and run ids: UUIDv7, whose leading 48 bits are the creation time in milliseconds.
//!
//! History tables are partitioned by day on `inserted_at`, and a task's `inserted_at` is its id's own timestamp, so
//! any lookup by id can name its partition without a global id → partition index.

use pgrx::prelude::*;

/// Microseconds between the Unix epoch and the Postgres epoch (2000-01-01).
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// The millisecond Unix timestamp inside a UUIDv7, or None for any other UUID version.
pub fn v7_millis(bytes: &[u8; 16]) -> Option<i64> {
    if bytes[6] >> 4 != 7 {
        return None;
    }
    let mut ms = 0i64;
    for b in &bytes[..6] {
        ms = (ms << 8) | i64::from(*b);
    }
    Some(ms)
}

/// `hatchet.gen_id()`: a new time-ordered UUIDv7.
#[pg_extern(volatile, parallel_safe)]
pub fn gen_id() -> pgrx::Uuid {
    pgrx::Uuid::from_bytes(*uuid::Uuid::now_v7().as_bytes())
}

/// `hatchet.uuid_time(id)`: the creation time embedded in a UUIDv7 (NULL for other versions). Tasks and runs are
/// stored with `inserted_at = hatchet.uuid_time(id)`.
#[pg_extern(immutable, strict, parallel_safe)]
pub fn uuid_time(id: pgrx::Uuid) -> Option<TimestampWithTimeZone> {
    let ms = v7_millis(id.as_bytes())?;
    TimestampWithTimeZone::try_from(ms * 1000 - PG_EPOCH_OFFSET_MICROS).ok()
}

#[cfg(test)]
mod tests {
    use super::v7_millis;

    #[test]
    fn reads_v7_timestamp_and_rejects_v4() {
        let id = uuid::Uuid::now_v7();
        let ms = v7_millis(id.as_bytes()).expect("v7");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        assert!((now - ms).abs() < 5_000);
        let v4 = uuid::Uuid::from_u128(0x0123_4567_89ab_4def_8123_4567_89ab_cdef);
        assert_eq!(v7_millis(v4.as_bytes()), None);
    }
}
