//! The maintenance worker ("pg_hatchet worker"): one per Postgres instance, in `hatchet.database_name`.
//!
//! After the shared start-up (`worker/mod.rs`) it makes an immediate first pass (recovery: everything that came due
//! while the server was down is handled at once), then loops: reload on SIGHUP, one short transaction of work, sleep
//! on the latch until the next thing is due or `hatchet.poll_interval_ms` passes.
//!
//! All the work is SQL in `hatchet.run_maintenance()` (and `hatchet.maintain_partitions()` once an hour), so it is
//! the same code a test or an operator can call by hand. An ERROR in a pass ends the process; the postmaster restarts
//! it after [`RESTART_AFTER`], and since every pass is one transaction, nothing is left half-done.

use crate::gucs;
use pgrx::bgworkers::BackgroundWorker;
use pgrx::prelude::*;
use std::time::{Duration, Instant};

/// How long the postmaster waits before restarting a worker that exited with an error.
const RESTART_AFTER: Duration = Duration::from_secs(5);
/// How often partitions are created ahead and old ones dropped.
const PARTITION_EVERY: Duration = Duration::from_secs(3600);
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
    let mut last_partitions: Option<Instant> = None;
    while BackgroundWorker::wait_latch(Some(sleep)) {
        super::reload_on_sighup();
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
    super::exit_for_restart();
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
