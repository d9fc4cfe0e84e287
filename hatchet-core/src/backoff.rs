//! Retry backoff: `min(backoff_max_seconds or 86400, backoff_factor ^ attempt)` seconds, Hatchet's formula.

/// Upper bound when the task sets no `backoff_max_seconds`: one day, as in Hatchet.
pub const DEFAULT_MAX_BACKOFF_SECONDS: f64 = 86_400.0;

/// Delay in seconds before retry number `attempt` (1 for the first retry); 0 when there is no backoff (a factor or
/// attempt of zero or less).
///
/// Computed in log space so a large factor or attempt cannot overflow to infinity before the cap is applied.
pub fn delay_seconds(factor: f64, max_seconds: Option<i32>, attempt: i32) -> f64 {
    let cap = max_seconds
        .map(f64::from)
        .unwrap_or(DEFAULT_MAX_BACKOFF_SECONDS);
    if factor <= 0.0 || attempt <= 0 {
        return 0.0;
    }
    let log_delay = f64::from(attempt) * factor.ln();
    if log_delay >= cap.ln() {
        cap
    } else {
        log_delay.exp()
    }
}

/// [`delay_seconds`] in whole microseconds (rounded to the nearest), the precision of a Postgres interval.
pub fn delay_micros(factor: f64, max_seconds: Option<i32>, attempt: i32) -> i64 {
    (delay_seconds(factor, max_seconds, attempt) * 1_000_000.0).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps() {
        assert_eq!(delay_seconds(2.0, None, 1), 2.0);
        assert!((delay_seconds(2.0, None, 3) - 8.0).abs() < 1e-9);
        assert_eq!(delay_seconds(2.0, Some(5), 3), 5.0);
        assert_eq!(delay_seconds(10.0, None, 1000), 86_400.0);
        assert_eq!(delay_seconds(1e300, Some(60), 50), 60.0);
        assert!((delay_seconds(1.5, None, 2) - 2.25).abs() < 1e-9);
    }

    #[test]
    fn no_backoff_without_a_factor_or_attempt() {
        assert_eq!(delay_seconds(0.0, None, 3), 0.0);
        assert_eq!(delay_seconds(2.0, None, 0), 0.0);
        assert_eq!(delay_micros(-1.0, Some(10), 1), 0);
    }

    #[test]
    fn micros_round_to_the_nearest() {
        assert_eq!(delay_micros(2.0, None, 1), 2_000_000);
        assert_eq!(delay_micros(1.5, None, 2), 2_250_000);
        assert_eq!(delay_micros(2.0, Some(5), 10), 5_000_000);
    }
}
