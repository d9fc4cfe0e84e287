//! The maintenance worker ("pg_hatchet worker"): one per Postgres instance, in `hatchet.database_name`.
//!
//! After the shared start-up (`worker/mod.rs`) it makes an immediate first pass (recovery: everything that came due
//! while the server was down is handled at once), then loops: reload on SIGHUP, short transactions of work, sleep on
//! the latch until the next thing is due or `hatchet.poll_interval_ms` passes.
//!
//! All the work is SQL in `hatchet.run_maintenance()` (and `hatchet.maintain_partitions()` once an hour), so it is
//! the same code a test or an operator can call by hand.
//!
//! No poison pills: one tenant's bad data must not stop maintenance for everyone, so nothing here ends the process
//! on an ERROR. The pass isolates each tenant and job itself (a subtransaction each, failures recorded in
//! `hatchet.maintenance_status`); partitions run in a transaction of their own; and an ERROR that still escapes a
//! transaction (a bug, a cancel) is caught here ([`guarded`]): the transaction is rolled back, the failure recorded
//! and logged, and the loop goes on. Only FATAL-class errors (a terminate request, a lost database) end the process,
//! and the postmaster restarts it after [`RESTART_AFTER`].

use crate::gucs;
use pgrx::bgworkers::BackgroundWorker;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use std::time::{Duration, Instant};

/// How long the postmaster waits before restarting a worker that exited with an error.
const RESTART_AFTER: Duration = Duration::from_secs(5);
/// How often partitions are created ahead and old ones dropped.
const PARTITION_EVERY: Duration = Duration::from_secs(3600);
/// How soon partition maintenance is tried again when a partition was skipped (its lock was not granted within
/// `hatchet.ddl_lock_timeout`) or the work failed.
const PARTITION_RETRY: Duration = Duration::from_secs(60);
/// Shortest sleep, so a storm of due work cannot spin the loop.
const MIN_SLEEP: Duration = Duration::from_millis(5);

/// Register the worker with the postmaster (its `backend_type` is `pg_hatchet`).
pub(super) fn register() {
    super::register_process(
        "pg_hatchet worker",
        "pg_hatchet",
        "pg_hatchet_worker_main",
        RESTART_AFTER,
    );
}

/// Entry point of the worker process.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn pg_hatchet_worker_main(_arg: pg_sys::Datum) {
    let dbname = super::start("pg_hatchet worker");
    log!("pg_hatchet worker started in database \"{dbname}\"");

    let mut sleep = Duration::ZERO;
    let mut partitions_due = Instant::now();
    while BackgroundWorker::wait_latch(Some(sleep)) {
        super::reload_on_sighup();
        let max = Duration::from_millis(gucs::POLL_INTERVAL_MS.get().max(10) as u64);
        if guarded("installed", installed) != Some(true) {
            // The extension is not created in this database (yet): check again later.
            sleep = max;
            continue;
        }
        if Instant::now() >= partitions_due {
            let skipped = guarded("partitions", maintain_partitions);
            partitions_due = Instant::now()
                + if skipped == Some(0) {
                    PARTITION_EVERY
                } else {
                    PARTITION_RETRY
                };
        }
        sleep = match guarded("pass", pass) {
            // Something is due sooner than the poll interval: wake for it.
            // (Clamped before converting: "nothing due" comes back as f64::MAX.)
            Some(ms) => Duration::from_secs_f64(ms.clamp(0.0, max.as_millis() as f64) / 1000.0)
                .max(MIN_SLEEP),
            // The pass failed as a whole (recorded and logged): try again after the poll interval.
            None => max,
        };
    }
    log!("pg_hatchet worker stopped");
    super::exit_for_restart();
}

/// Run `body` in a transaction of its own. An ERROR inside rolls the transaction back and is recorded in
/// `hatchet.maintenance_status` as a failure of `job` for all tenants (and logged as a WARNING); the result is then
/// `None`. FATAL errors never come back here: they end the process.
fn guarded<R>(job: &'static str, body: fn() -> R) -> Option<R> {
    let failed = PgTryBuilder::new(|| Ok(BackgroundWorker::transaction(body)))
        .catch_others(|e| {
            let report = match e {
                CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => r,
                CaughtError::RustPanic { ereport, .. } => ereport,
            };
            // Safety: called from the main loop after an ERROR escaped the transaction `BackgroundWorker::transaction`
            // started; pgrx has already copied and flushed the error state. Aborting is what Postgres's own
            // background workers do at this point (their sigsetjmp block): it releases locks, snapshots and memory.
            unsafe { pg_sys::AbortCurrentTransaction() };
            Err((report.sql_error_code(), report.message().to_string()))
        })
        .execute();
    match failed {
        Ok(r) => Some(r),
        Err((code, message)) => {
            record_failure(job, code, &message);
            None
        }
    }
}

/// Record a failed job in `hatchet.maintenance_status` (which also logs it), in a transaction of its own; if even
/// that fails, log it here.
fn record_failure(job: &'static str, code: PgSqlErrorCode, message: &str) {
    let sqlstate = sqlstate_text(code);
    let recorded = PgTryBuilder::new(|| {
        BackgroundWorker::transaction(|| {
            Spi::run_with_args(
                "SELECT hatchet._maintenance_failed(NULL, $1, $2, $3)",
                &[job.into(), sqlstate.as_str().into(), message.into()],
            )
            .is_ok()
        })
    })
    .catch_others(|_| {
        // Safety: as in `guarded`.
        unsafe { pg_sys::AbortCurrentTransaction() };
        false
    })
    .execute();
    if !recorded {
        warning!(
            "pg_hatchet worker: {job} failed and was skipped: {message} (SQLSTATE {sqlstate})"
        );
    }
}

/// The five-character SQLSTATE of an error code (Postgres packs it six bits per character).
fn sqlstate_text(code: PgSqlErrorCode) -> String {
    let packed = code as i32;
    (0..5)
        .map(|i| (((packed >> (6 * i)) & 0x3f) as u8 + b'0') as char)
        .collect()
}

/// Whether the extension exists in this database.
fn installed() -> bool {
    Spi::get_one::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_hatchet')",
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// Create and drop partitions (their own transaction, so the DDL locks are held only as long as the DDL). Returns
/// how many partitions were skipped because their lock was not granted in time.
fn maintain_partitions() -> i64 {
    Spi::get_one::<i64>(
        "SELECT count(*) FILTER (WHERE action = 'skipped') FROM hatchet.maintain_partitions()",
    )
    .expect("hatchet.maintain_partitions() failed")
    .unwrap_or(0)
}

/// One pass over every tenant. Returns milliseconds until the next known due item (negative = already due).
fn pass() -> f64 {
    Spi::get_one::<f64>(
        "SELECT (EXTRACT(EPOCH FROM (hatchet.run_maintenance() - pg_catalog.clock_timestamp())) * 1000)::float8",
    )
    .expect("hatchet.run_maintenance() failed")
    .unwrap_or(f64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_unpack() {
        assert_eq!(
            sqlstate_text(PgSqlErrorCode::ERRCODE_QUERY_CANCELED),
            "57014"
        );
        assert_eq!(
            sqlstate_text(PgSqlErrorCode::ERRCODE_DIVISION_BY_ZERO),
            "22012"
        );
    }
}
