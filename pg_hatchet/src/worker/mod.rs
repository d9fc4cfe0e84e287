//! The background worker: the part of pg_hatchet that acts when no client calls.
//!
//! One worker per Postgres instance, in the database named by `hatchet.database_name` (pg_cron's model). Its loop, in
//! pg_cron's order: signal handlers → connect → application_name → an immediate first pass (recovery: everything that
//! came due while the server was down is handled at once) → loop { reload on SIGHUP, one short transaction of work,
//! sleep on the latch until the next thing is due or `hatchet.poll_interval_ms` passes }.
//!
//! All the work is SQL in `hatchet.run_maintenance()`, so it is the same code a test or an operator can call by hand.
//! An ERROR in a pass ends the process; the postmaster restarts it after [`RESTART_AFTER`], and since every pass is one
//! transaction, nothing is left half-done.

use crate::gucs;
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::prelude::*;
use std::time::{Duration, Instant};

/// How long the postmaster waits before restarting a worker that exited with an error.
const RESTART_AFTER: Duration = Duration::from_secs(5);
/// How often partitions are created ahead and old ones dropped.
const PARTITION_EVERY: Duration = Duration::from_secs(3600);
/// Shortest sleep, so a storm of due work cannot spin the loop.
const MIN_SLEEP: Duration = Duration::from_millis(5);

/// Register the worker with the postmaster. Called from `_PG_init` during shared_preload_libraries processing.
pub fn register() {
    if !gucs::WORKER_ENABLED.get() {
        return;
    }
    BackgroundWorkerBuilder::new("pg_hatchet worker")
        .set_type("pg_hatchet")
        .set_library("pg_hatchet")
        .set_function("pg_hatchet_worker_main")
        .enable_spi_access()
        .set_restart_time(Some(RESTART_AFTER))
        .load();
}

/// The start of each of pg_hatchet's background processes: signal handlers (SIGHUP reloads settings, SIGTERM ends
/// the main loop), a connection to `hatchet.database_name`, and `application_name` set to `name` so that
/// pg_stat_activity tells the process from clients. Returns the database name.
pub fn start_background_process(name: &str) -> String {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let dbname = gucs::DATABASE_NAME
        .get()
        .and_then(|c| c.into_string().ok())
        .unwrap_or_else(|| "postgres".to_string());
    BackgroundWorker::connect_worker_to_spi(Some(&dbname), None);
    let set = format!("SET application_name = '{name}'");
    BackgroundWorker::transaction(|| {
        Spi::run(&set).ok();
    });
    dbname
}

/// Entry point of the worker process.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn pg_hatchet_worker_main(_arg: pg_sys::Datum) {
    let dbname = start_background_process("pg_hatchet worker");
    log!("pg_hatchet worker started in database \"{dbname}\"");

    let mut sleep = Duration::ZERO;
    let mut last_partitions: Option<Instant> = None;
    while BackgroundWorker::wait_latch(Some(sleep)) {
        if BackgroundWorker::sighup_received() {
            // Safety: called from the worker's main loop, outside any transaction, as Postgres expects.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        let maintain_partitions = last_partitions.is_none_or(|t| t.elapsed() >= PARTITION_EVERY);
        let next_due_ms = BackgroundWorker::transaction(move || pass(maintain_partitions));
        if next_due_ms.is_some() && maintain_partitions {
            last_partitions = Some(Instant::now());
        }
        let max = Duration::from_millis(gucs::POLL_INTERVAL_MS.get().max(10) as u64);
        sleep = match next_due_ms {
            // Something is due sooner than the poll interval: wake for it.
            // (Clamped before converting: "nothing due" comes back as f64::MAX.)
            Some(ms) => Duration::from_secs_f64(ms.clamp(0.0, max.as_millis() as f64) / 1000.0)
                .max(MIN_SLEEP),
            // The extension is not created in this database (yet): check again later.
            None => max,
        };
    }
    log!("pg_hatchet worker stopped");
    // Exit code 1, not 0: a worker that returns normally is never restarted, and a SIGTERM that did not come from a
    // server shutdown (pg_terminate_backend, DROP DATABASE ... WITH (FORCE)) must not end the engine for good. On a
    // real shutdown the postmaster restarts nothing anyway.
    // Safety: ends this process the way Postgres expects a background worker to.
    unsafe { pg_sys::proc_exit(1) };
}

/// One pass in one transaction. Returns milliseconds until the next known due item (negative = already due), or
/// `None` if the extension does not exist in this database.
fn pass(maintain_partitions: bool) -> Option<f64> {
    let installed = Spi::get_one::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_hatchet')",
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if !installed {
        return None;
    }
    if maintain_partitions {
        Spi::run("SELECT hatchet.maintain_partitions()")
            .expect("hatchet.maintain_partitions() failed");
    }
    let ms = Spi::get_one::<f64>(
        "SELECT (EXTRACT(EPOCH FROM (hatchet.run_maintenance() - pg_catalog.clock_timestamp())) * 1000)::float8",
    )
    .expect("hatchet.run_maintenance() failed");
    Some(ms.unwrap_or(f64::MAX))
}
