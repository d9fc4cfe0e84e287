//! CEL expressions (concurrency keys, dynamic rate limits, conditions, event filters) in SQL: `hatchet.cel_eval`,
//! `hatchet.cel_try`, `hatchet.cel_check`.
//!
//! Hatchet evaluates these at enqueue/trigger time; so do we, inside the backend, with `hatchet_core::cel` (a real
//! CEL implementation, programs cached per backend). An expression that fails to compile or evaluate never takes the
//! backend down: [`cel_try`] returns the error as data so the caller can fail just that task with the reason.

use crate::error::HatchetError;
use hatchet_core::cel;
use pgrx::prelude::*;
use pgrx::JsonB;

/// `hatchet.cel_eval(expr, vars)`: the value of a CEL expression; a compile or evaluation error is SQLSTATE 22023.
#[pg_extern(immutable, parallel_safe)]
pub(crate) fn cel_eval(expr: &str, vars: default!(JsonB, "'{}'")) -> JsonB {
    match cel::eval(expr, &vars.0) {
        Ok(v) => JsonB(v),
        Err(e) => {
            HatchetError::InvalidArgument(format!("CEL expression \"{expr}\" failed: {e}")).raise()
        }
    }
}

/// `hatchet.cel_try(expr, vars)`: `{"value": ...}` or `{"error": "..."}`, never an SQL error. Used where a bad
/// expression must fail one task with its reason instead of the whole statement.
#[pg_extern(immutable, parallel_safe)]
pub(crate) fn cel_try(expr: &str, vars: default!(JsonB, "'{}'")) -> JsonB {
    match cel::eval(expr, &vars.0) {
        Ok(v) => JsonB(serde_json::json!({ "value": v })),
        Err(e) => JsonB(serde_json::json!({ "error": e })),
    }
}

/// `hatchet.cel_check(expr)`: raise 22023 if the expression does not compile (used when definitions are registered).
#[pg_extern(immutable, parallel_safe)]
pub(crate) fn cel_check(expr: &str) -> bool {
    match cel::check(expr) {
        Ok(()) => true,
        Err(e) => {
            HatchetError::InvalidArgument(format!("invalid CEL expression \"{expr}\": {e}")).raise()
        }
    }
}
