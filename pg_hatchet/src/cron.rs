//! Cron expressions for workflow crons, in SQL: `hatchet.cron_next`, `hatchet.cron_ticks`, `hatchet.check_cron`.
//!
//! The dialect (5 fields, or 6 with seconds first, standard day-of-week numbering, UTC) and the tick computation are
//! `hatchet_core::cron`'s. The next tick is exposed to SQL so that the background worker's pass can advance a cron
//! in the same transaction that fires it.

use crate::error::HatchetError;
use chrono::{DateTime, Utc};
use hatchet_core::cron::{self, Schedule};
use hatchet_core::pg_time;
use pgrx::prelude::*;

fn to_chrono(ts: TimestampWithTimeZone) -> DateTime<Utc> {
    pg_time::to_utc(ts.into())
        .unwrap_or_else(|| HatchetError::InvalidArgument("timestamp out of range".into()).raise())
}

fn from_chrono(time: DateTime<Utc>) -> Option<TimestampWithTimeZone> {
    TimestampWithTimeZone::try_from(pg_time::from_utc(time)).ok()
}

fn parse_or_raise(expression: &str) -> Schedule {
    cron::parse(expression).unwrap_or_else(|e| HatchetError::from(e).raise())
}

/// `hatchet.cron_next('*/5 * * * *', now())`: the next tick strictly after `after`, in UTC; NULL if there is none.
/// Raises 22023 for an invalid expression, which is how crons are validated when they are created.
#[pg_extern(immutable, parallel_safe)]
pub(crate) fn cron_next(
    expression: &str,
    after: TimestampWithTimeZone,
) -> Option<TimestampWithTimeZone> {
    cron::next_after(&parse_or_raise(expression), to_chrono(after)).and_then(from_chrono)
}

/// `hatchet.cron_ticks(expression, after, n)`: the next `n` ticks after `after` (at most 1000), for listings and
/// tests.
#[pg_extern(immutable, parallel_safe)]
pub(crate) fn cron_ticks(
    expression: &str,
    after: TimestampWithTimeZone,
    n: default!(i32, 5),
) -> SetOfIterator<'static, TimestampWithTimeZone> {
    let ticks = cron::ticks_after(
        &parse_or_raise(expression),
        to_chrono(after),
        n.clamp(0, 1000) as usize,
    );
    SetOfIterator::new(ticks.into_iter().filter_map(from_chrono))
}

/// `hatchet.check_cron(expression)`: raise 22023 with the reason if the expression is invalid; true otherwise.
#[pg_extern(immutable, parallel_safe)]
pub(crate) fn check_cron(expression: &str) -> bool {
    parse_or_raise(expression);
    true
}
