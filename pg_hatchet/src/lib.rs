//! pg_hatchet: Hatchet's task-orchestration engine as a Postgres extension.
//!
//! The schema (tables, types, indexes) is hand-written SQL in `sql/`; the SQL API is PL/pgSQL in `sql/` too, because
//! every hot operation is one set-based statement whose plan PL/pgSQL caches. Rust provides what needs real code:
//! the error type, the settings, claim bounds, the background processes (`worker/`) and thin SQL wrappers over
//! `hatchet-core`, the workspace crate that holds the logic needing no Postgres (durations, backoff, UUIDv7 ids,
//! cron ticks, CEL).

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

mod backoff;
mod cel;
mod claim;
mod cron;
mod duration;
mod error;
mod gucs;
mod ids;
mod security;
mod wake;
mod worker;

::pgrx::pg_module_magic!(name, version);

// sql/: the tables first, then one file per entity in a fixed order (schema.sql's header says what each file owns).
// CREATE EXTENSION runs the script with check_function_bodies off, so only what runs at install needs an order:
// maintenance.sql creates the first partitions, and security.sql comes last so that its grants cover every function.
// The chain keeps the script in reading order and puts the Rust functions that LANGUAGE sql bodies call (uuid_time,
// parse_duration, _tenant) first, so it also runs by hand.
extension_sql_file!("../../sql/schema.sql", name = "schema", bootstrap);
extension_sql_file!(
    "../../sql/tenants.sql",
    name = "tenants",
    requires = [resolve_tenant]
);
extension_sql_file!(
    "../../sql/options.sql",
    name = "options",
    requires = ["tenants"]
);
extension_sql_file!(
    "../../sql/tasks.sql",
    name = "tasks",
    requires = ["options", uuid_time]
);
extension_sql_file!(
    "../../sql/flow_control.sql",
    name = "flow_control",
    requires = ["tasks"]
);
extension_sql_file!(
    "../../sql/workers.sql",
    name = "workers",
    requires = ["flow_control"]
);
extension_sql_file!(
    "../../sql/workflows.sql",
    name = "workflows",
    requires = ["workers"]
);
extension_sql_file!(
    "../../sql/runs.sql",
    name = "runs",
    requires = ["workflows", uuid_time, parse_duration]
);
extension_sql_file!("../../sql/events.sql", name = "events", requires = ["runs"]);
extension_sql_file!(
    "../../sql/webhooks.sql",
    name = "webhooks",
    requires = ["events"]
);
extension_sql_file!(
    "../../sql/crons.sql",
    name = "crons",
    requires = ["webhooks"]
);
extension_sql_file!(
    "../../sql/streams.sql",
    name = "streams",
    requires = ["crons"]
);
extension_sql_file!(
    "../../sql/alerts.sql",
    name = "alerts",
    requires = ["streams"]
);
extension_sql_file!(
    "../../sql/durable.sql",
    name = "durable",
    requires = ["alerts"]
);
extension_sql_file!(
    "../../sql/batch.sql",
    name = "batch",
    requires = ["durable"]
);
extension_sql_file!(
    "../../sql/maintenance.sql",
    name = "maintenance",
    requires = ["batch", raise_error]
);
extension_sql_file!(
    "../../sql/dashboard.sql",
    name = "dashboard",
    requires = ["maintenance"]
);
extension_sql_file!("../../sql/security.sql", name = "security", finalize);

/// Library load hook. pg_hatchet only works preloaded: its background worker must be registered by the postmaster,
/// and its settings must exist before any session reads them.
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // Safety: a plain read of a postmaster-set global during library load.
    if unsafe { !pg_sys::process_shared_preload_libraries_in_progress } {
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "pg_hatchet must be loaded via shared_preload_libraries",
            "_PG_init",
        )
        .set_hint(
            "Add pg_hatchet to shared_preload_libraries in postgresql.conf and restart the server.",
        )
        .report(PgLogLevel::ERROR);
    }
    gucs::init();
    wake::init();
    worker::register();
}

#[cfg(any(test, feature = "pg_test"))]
mod tests;

/// Required by `cargo pgrx test`: settings for the test cluster, which preloads the library like production does.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![
            "shared_preload_libraries = 'pg_hatchet'",
            "hatchet.database_name = 'pgrx_tests'",
            "hatchet.poll_interval_ms = 100",
        ]
    }
}
