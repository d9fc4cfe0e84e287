//! `hatchet.parse_duration`: Hatchet duration strings (`"30s"`, `"1h30m"`, `"1.5h"`) as intervals.
//!
//! The grammar and its range (positive, at most 100 years) are `hatchet_core::duration`'s, shared with the server;
//! this is only the SQL wrapper.

use crate::error::HatchetError;
use pgrx::prelude::*;

/// `hatchet.parse_duration('1h30m')` → `01:30:00`. Raises 22023 on a malformed duration.
#[pg_extern(immutable, strict, parallel_safe)]
pub(crate) fn parse_duration(text: &str) -> Interval {
    match hatchet_core::duration::parse_micros(text) {
        Ok(micros) => Interval::from_micros(micros),
        Err(e) => HatchetError::from(e).raise(),
    }
}
