//! Task and run ids: UUIDv7, whose leading 48 bits are the creation time in milliseconds.
//!
//! History tables are partitioned by day on `inserted_at`, and a task's `inserted_at` is its id's own timestamp, so
//! any lookup by id can name its partition without a global id → partition index.

/// A new time-ordered UUIDv7, as its 16 bytes.
pub fn new_v7() -> [u8; 16] {
    *uuid::Uuid::now_v7().as_bytes()
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_v7_timestamp_and_rejects_v4() {
        let id = new_v7();
        let ms = v7_millis(&id).expect("v7");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        assert!((now - ms).abs() < 5_000);
        let v4 = uuid::Uuid::from_u128(0x0123_4567_89ab_4def_8123_4567_89ab_cdef);
        assert_eq!(v7_millis(v4.as_bytes()), None);
    }

    #[test]
    fn new_ids_sort_by_time() {
        let a = new_v7();
        let b = new_v7();
        assert!(a < b);
        assert_eq!(uuid::Uuid::from_bytes(a).get_version_num(), 7);
    }
}
