//! CEL expressions (concurrency keys, dynamic rate limits, conditions, event filters) in SQL: `hatchet.cel_eval`,
//! `hatchet.cel_try`, `hatchet.cel_check`.
//!
//! Hatchet evaluates these at enqueue/trigger time; so do we, inside the backend, with `hatchet_core::cel` (a real
//! CEL implementation, programs cached per backend). An expression that fails to compile or evaluate never takes the
//! backend down: [`cel_try`] returns the error as data so the caller can fail just that task with the reason.
//!
//! Tenants write these expressions and they run inside shared transactions, so each call is bounded by the
//! `hatchet.cel_*` settings (`gucs.rs`): length and nesting when registered and when evaluated, and a work and time
//! budget while evaluating (how: `hatchet_core::cel`). A cancel or terminate request (`statement_timeout`,
//! `pg_cancel_backend`, `pg_terminate_backend`) stops the evaluation at its next comprehension step: the hook
//! [`interrupt_pending`] only reads Postgres's flags, the evaluation returns normally through the third-party
//! interpreter, and only then does `CHECK_FOR_INTERRUPTS` raise the cancel (57014) or end the session, from our frame.

use crate::error::HatchetError;
use crate::gucs;
use hatchet_core::cel::{self, CelError, Limits};
use pgrx::prelude::*;
use pgrx::JsonB;
use std::time::Duration;

/// The limits in force for this call, from the `hatchet.cel_*` settings.
fn limits() -> Limits {
    let ms = gucs::CEL_TIMEOUT_MS.get();
    Limits {
        max_length: gucs::CEL_MAX_LENGTH.get().max(1) as usize,
        max_depth: gucs::CEL_MAX_DEPTH.get().max(1) as usize,
        max_cost: gucs::CEL_MAX_COST.get().max(1) as u64,
        max_time: (ms > 0).then(|| Duration::from_millis(ms as u64)),
    }
}

/// Whether Postgres wants this backend to stop what it is doing (a query cancel or a terminate request) and is
/// allowed to act on it now (no holdoff, no critical section): exactly the cases where `CHECK_FOR_INTERRUPTS` would
/// raise. Other pending interrupts (a barrier, a log request) do not stop an evaluation.
fn interrupt_pending() -> bool {
    // Safety: plain reads of Postgres's interrupt flags (volatile sig_atomic_t globals set by signal handlers) from
    // the backend's own thread, which is the only thread that evaluates CEL.
    unsafe {
        if std::ptr::read_volatile(&raw const pg_sys::InterruptPending) == 0
            || std::ptr::read_volatile(&raw const pg_sys::InterruptHoldoffCount) != 0
            || std::ptr::read_volatile(&raw const pg_sys::CritSectionCount) != 0
        {
            return false;
        }
        std::ptr::read_volatile(&raw const pg_sys::ProcDiePending) != 0
            || (std::ptr::read_volatile(&raw const pg_sys::QueryCancelPending) != 0
                && std::ptr::read_volatile(&raw const pg_sys::QueryCancelHoldoffCount) == 0)
    }
}

/// Evaluate within the settings' limits; an interrupt is acted on here, after the interpreter returned.
fn eval(expr: &str, vars: &serde_json::Value) -> Result<serde_json::Value, CelError> {
    let r = cel::eval_with(expr, vars, &limits(), interrupt_pending);
    if matches!(r, Err(CelError::Interrupted)) {
        // Raises 57014 for a cancel or statement_timeout, ends the session for a terminate request.
        pgrx::check_for_interrupts!();
    }
    r
}

/// `hatchet.cel_eval(expr, vars)`: the value of a CEL expression; a compile or evaluation error is SQLSTATE 22023,
/// an expression over its evaluation budget 54000.
#[pg_extern(immutable, parallel_safe)]
pub(crate) fn cel_eval(expr: &str, vars: default!(JsonB, "'{}'")) -> JsonB {
    match eval(expr, &vars.0) {
        Ok(v) => JsonB(v),
        Err(CelError::OverBudget(e)) => HatchetError::LimitExceeded(format!(
            "CEL expression \"{}\" failed: {e}",
            abbreviate(expr)
        ))
        .raise(),
        Err(e) => HatchetError::InvalidArgument(format!(
            "CEL expression \"{}\" failed: {e}",
            abbreviate(expr)
        ))
        .raise(),
    }
}

/// `hatchet.cel_try(expr, vars)`: `{"value": ...}` or `{"error": "..."}`, never an SQL error (except a cancel). Used
/// where a bad expression must fail one task with its reason instead of the whole statement.
#[pg_extern(immutable, parallel_safe)]
pub(crate) fn cel_try(expr: &str, vars: default!(JsonB, "'{}'")) -> JsonB {
    match eval(expr, &vars.0) {
        Ok(v) => JsonB(serde_json::json!({ "value": v })),
        Err(e) => JsonB(serde_json::json!({ "error": e.to_string() })),
    }
}

/// `hatchet.cel_check(expr)`: raise 22023 if the expression does not compile or is over the length or nesting
/// limit (used when definitions are registered).
#[pg_extern(immutable, parallel_safe)]
pub(crate) fn cel_check(expr: &str) -> bool {
    match cel::check_with(expr, &limits()) {
        Ok(()) => true,
        Err(e) => HatchetError::InvalidArgument(format!(
            "invalid CEL expression \"{}\": {e}",
            abbreviate(expr)
        ))
        .raise(),
    }
}

/// The expression as quoted in an error message: at most 200 characters, so a 4 KiB expression does not flood the
/// log and the task's failure text.
fn abbreviate(expr: &str) -> String {
    const MAX: usize = 200;
    match expr.char_indices().nth(MAX) {
        None => expr.to_string(),
        Some((at, _)) => format!("{}...", &expr[..at]),
    }
}
