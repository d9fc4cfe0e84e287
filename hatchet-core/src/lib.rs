//! hatchet-core: the logic of pg_hatchet that needs no Postgres, shared by the extension (`pg_hatchet`) and the
//! server (`hatchet-server`).
//!
//! Each module is plain Rust with plain `#[test]`s; the extension wraps these functions in thin `#[pg_extern]`s and
//! maps the errors to SQLSTATEs, so the rules (what a duration or cron expression may look like, how long a retry
//! waits) live in one place.
//!
//! - [`duration`]: Hatchet duration strings (`"30s"`, `"1h30m"`, `"1.5h"`), parsed strictly.
//! - [`backoff`]: the delay before a retry.
//! - [`ids`]: UUIDv7 ids and the creation time inside them.
//! - [`pg_time`]: Postgres timestamps (microseconds since 2000-01-01 UTC) to and from Unix time and chrono.
//! - [`cron`]: cron expressions in Hatchet's dialect (5 or 6 fields, UTC) and their next ticks.
//! - [`cel`] (feature `cel`, on by default): CEL expressions evaluated over JSON variables.

pub mod backoff;
#[cfg(feature = "cel")]
pub mod cel;
pub mod cron;
pub mod duration;
pub mod ids;
pub mod pg_time;
