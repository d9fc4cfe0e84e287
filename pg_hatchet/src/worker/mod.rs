//! pg_hatchet's background processes: the part of pg_hatchet that acts when no client calls.
//!
//! - [`maintenance`] ("pg_hatchet worker"): promotes due work, reaps timeouts and dead workers, fires crons and
//!   schedules, maintains partitions, all through `hatchet.run_maintenance()`.
//! - [`notifier`] ("pg_hatchet notifier"): sends `hatchet_ready` after the commits that made work ready (the why is
//!   in `wake.rs`, which also holds the `hatchet._ready` function and the commit callback that wake it).
//!
//! Both are registered with the postmaster from `_PG_init` and serve the database named by `hatchet.database_name`
//! (pg_cron's model). Both start the same way, in pg_cron's order: signal handlers → connect → a safe search_path
//! and application_name ([`start`]); then each runs its own loop, reloading the settings on SIGHUP, until SIGTERM.

mod maintenance;
mod notifier;

use crate::gucs;
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::prelude::*;
use std::time::Duration;

/// Register the background processes with the postmaster. Called from `_PG_init` during shared_preload_libraries
/// processing. `hatchet.enable_worker = off` leaves out the maintenance worker only: without the notifier, wake-ups
/// fall back to a NOTIFY inside each transaction, which is slower but correct.
pub(crate) fn register() {
    if gucs::WORKER_ENABLED.get() {
        maintenance::register();
    }
    notifier::register();
}

/// Register one process: `name` is its pg_stat_activity `backend_type` description, `function` the exported entry
/// point in this library, and `restart_after` how long the postmaster waits before restarting it after an error.
fn register_process(name: &str, backend_type: &str, function: &str, restart_after: Duration) {
    BackgroundWorkerBuilder::new(name)
        .set_type(backend_type)
        .set_library("pg_hatchet")
        .set_function(function)
        .enable_spi_access()
        .set_restart_time(Some(restart_after))
        .load();
}

/// The start of each background process: signal handlers (SIGHUP reloads settings, SIGTERM ends the main loop), a
/// connection to `hatchet.database_name`, a safe `search_path`, and `application_name` set to `name` so that
/// pg_stat_activity tells the process from clients. Returns the database name.
///
/// Why the search_path: the process runs as the bootstrap superuser and starts with whatever path the configuration
/// gives it (postgresql.conf, `ALTER DATABASE ... SET search_path`, `ALTER ROLE`), which can name a schema that other
/// roles may create objects in. Its own statements name operators and functions unqualified (`=`, `-`), so a
/// look-alike planted there would run as superuser (CVE-2018-1058). `pg_catalog, pg_temp` is set for the session
/// before any other statement, at the session level, which outranks the configuration file (a SIGHUP reload keeps
/// it) and the database and role defaults read at connect time.
fn start(name: &str) -> String {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let dbname = gucs::DATABASE_NAME
        .get()
        .and_then(|c| c.into_string().ok())
        .unwrap_or_else(|| "postgres".to_string());
    BackgroundWorker::connect_worker_to_spi(Some(&dbname), None);
    let set = format!("SET application_name = '{name}'");
    BackgroundWorker::transaction(|| {
        Spi::run("SET search_path = pg_catalog, pg_temp").expect("setting search_path failed");
        Spi::run(&set).ok();
    });
    dbname
}

/// Reload the configuration files if a SIGHUP arrived since the last check. Called from a main loop, outside any
/// transaction, as Postgres expects.
fn reload_on_sighup() {
    if BackgroundWorker::sighup_received() {
        // Safety: called from the process's main loop, outside any transaction.
        unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
    }
}

/// End the process after its main loop saw SIGTERM, with exit code 1, not 0: a background worker that exits with 0
/// is never restarted, and a SIGTERM that did not come from a server shutdown (pg_terminate_backend, DROP DATABASE
/// ... WITH (FORCE)) must not end the engine for good. On a real shutdown the postmaster restarts nothing anyway.
fn exit_for_restart() -> ! {
    // Safety: ends this process the way Postgres expects a background worker to.
    unsafe { pg_sys::proc_exit(1) }
}
