//! `hatchet.backoff_delay`: the delay before a retry, Hatchet's `min(backoff_max_seconds or 86400,
//! backoff_factor ^ attempt)` seconds, computed by `hatchet_core::backoff`.

use pgrx::prelude::*;

/// `hatchet.backoff_delay(factor, max_seconds, attempt)` as an interval (microsecond precision).
#[pg_extern(immutable, parallel_safe)]
pub(crate) fn backoff_delay(factor: f64, max_seconds: Option<i32>, attempt: i32) -> Interval {
    Interval::from_micros(hatchet_core::backoff::delay_micros(
        factor,
        max_seconds,
        attempt,
    ))
}
