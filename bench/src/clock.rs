//! Wall-clock helpers. Enqueue-to-start latency crosses process boundaries for the peers (a Node producer and
//! Node worker processes, a Python producer and Celery's prefork children), so every driver stamps tasks with the
//! Unix epoch in microseconds; all processes run on one machine and read the same clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_micros() as i64
}

/// Seconds since the Unix epoch, as the orchestrator's CPU sampler records them.
pub fn now_s() -> f64 {
    now_us() as f64 / 1e6
}

/// Sleeps until the given epoch time; returns at once if it has passed.
pub fn sleep_until_us(target_us: i64) {
    let now = now_us();
    if target_us > now {
        std::thread::sleep(Duration::from_micros((target_us - now) as u64));
    }
}
