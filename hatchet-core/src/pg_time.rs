//! Postgres timestamps as numbers: microseconds since 2000-01-01 00:00:00 UTC (the Postgres epoch), converted to and
//! from Unix time and chrono, so the extension's wrappers stay one-liners.

use chrono::{DateTime, TimeZone, Utc};

/// Microseconds between the Unix epoch (1970-01-01) and the Postgres epoch (2000-01-01).
pub const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// A Unix time in milliseconds as a Postgres timestamp (microseconds since 2000-01-01).
pub fn from_unix_millis(ms: i64) -> i64 {
    ms * 1000 - PG_EPOCH_OFFSET_MICROS
}

/// A Postgres timestamp as a chrono time; None if chrono cannot represent it.
pub fn to_utc(pg_micros: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_micros(pg_micros.saturating_add(PG_EPOCH_OFFSET_MICROS))
        .single()
}

/// A chrono time as a Postgres timestamp (microseconds since 2000-01-01).
pub fn from_utc(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros() - PG_EPOCH_OFFSET_MICROS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_line_up() {
        let y2k: DateTime<Utc> = "2000-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(from_utc(y2k), 0);
        assert_eq!(to_utc(0), Some(y2k));
        assert_eq!(from_unix_millis(946_684_800_000), 0);
        let t: DateTime<Utc> = "2025-06-01T12:34:56.789012Z".parse().unwrap();
        assert_eq!(to_utc(from_utc(t)), Some(t));
        assert_eq!(to_utc(i64::MAX), None);
    }
}
