//! Every setting pg_hatchet reads, defined once at load time (`_PG_init`).
//!
//! The PL/pgSQL API reads the userset ones with `current_setting()`; the background processes (`worker/`) read the
//! others directly.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use std::ffi::CString;

/// Database the background processes (maintenance worker and notifier) connect to (like pg_cron's
/// `cron.database_name`).
pub(crate) static DATABASE_NAME: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"postgres"));
/// Whether the maintenance worker starts at all (the notifier always does).
pub(crate) static WORKER_ENABLED: GucSetting<bool> = GucSetting::<bool>::new(true);
/// Longest the maintenance worker sleeps between passes, in milliseconds. It wakes earlier when something is due.
pub(crate) static POLL_INTERVAL_MS: GucSetting<i32> = GucSetting::<i32>::new(1000);
/// Largest accepted input, output or metadata payload, in bytes.
pub(crate) static MAX_PAYLOAD_BYTES: GucSetting<i32> = GucSetting::<i32>::new(4 * 1024 * 1024);
/// Days of history kept before daily partitions are dropped.
pub(crate) static RETENTION_DAYS: GucSetting<i32> = GucSetting::<i32>::new(30);
/// Daily partitions created ahead of today.
pub(crate) static PARTITION_DAYS_AHEAD: GucSetting<i32> = GucSetting::<i32>::new(3);
/// Rows handled per table per maintenance pass, so one pass stays a short transaction.
pub(crate) static BATCH_LIMIT: GucSetting<i32> = GucSetting::<i32>::new(1000);

/// Send `hatchet_ready` through the notifier process after commit (see `wake.rs` and `worker/notifier.rs`) instead of NOTIFY in the transaction.
pub(crate) static DEFERRED_NOTIFY: GucSetting<bool> = GucSetting::<bool>::new(true);

/// Longest a session's claims read a queue on from where its previous claims stopped before reading it from the start
/// again, in milliseconds (see `claim.rs`); 0 reads from the start every time.
pub(crate) static CLAIM_RESCAN_INTERVAL_MS: GucSetting<i32> = GucSetting::<i32>::new(200);

/// A worker silent for this long is dead and its attempts are retried elsewhere, in milliseconds.
pub(crate) static WORKER_DEAD_AFTER_MS: GucSetting<i32> = GucSetting::<i32>::new(30_000);

/// Names of the four group roles `CREATE EXTENSION` creates when absent and grants to (sql/security.sql,
/// docs/security.md). Read only by the extension script: the roles an installation uses are recorded in
/// `hatchet.roles`.
pub(crate) static APP_ROLE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"hatchet_app"));
pub(crate) static CONSUMER_ROLE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"hatchet_consumer"));
pub(crate) static SERVER_ROLE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"hatchet_server"));
pub(crate) static ADMIN_ROLE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"hatchet_admin"));
/// Largest log line a task may write, in bytes (`hatchet.put_log`).
pub(crate) static MAX_LOG_LINE_BYTES: GucSetting<i32> = GucSetting::<i32>::new(64 * 1024);
/// Most log lines one task may write, over all its attempts.
pub(crate) static MAX_LOGS_PER_TASK: GucSetting<i32> = GucSetting::<i32>::new(10_000);
/// Largest stream chunk a task may put, in bytes (`hatchet.put_stream_chunk`).
pub(crate) static MAX_STREAM_CHUNK_BYTES: GucSetting<i32> = GucSetting::<i32>::new(1024 * 1024);
/// Most stream chunks one task may put, over all its attempts.
pub(crate) static MAX_STREAM_CHUNKS_PER_TASK: GucSetting<i32> = GucSetting::<i32>::new(10_000);
/// Largest failure text (`hatchet.fail`'s error), in bytes.
pub(crate) static MAX_ERROR_BYTES: GucSetting<i32> = GucSetting::<i32>::new(64 * 1024);

/// Longest partition DDL (create, drop) waits for its locks, in milliseconds, before it is skipped until later.
pub(crate) static DDL_LOCK_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(100);

/// Longest CEL expression accepted, in bytes (`cel.rs`).
pub(crate) static CEL_MAX_LENGTH: GucSetting<i32> = GucSetting::<i32>::new(4096);
/// Deepest nesting of a CEL expression accepted (brackets, conditionals, operator chains).
pub(crate) static CEL_MAX_DEPTH: GucSetting<i32> = GucSetting::<i32>::new(32);
/// Most work one CEL evaluation may do in comprehensions (`map`, `filter`, `all`, `exists`, `exists_one`).
pub(crate) static CEL_MAX_COST: GucSetting<i32> = GucSetting::<i32>::new(10_000_000);
/// Longest one CEL evaluation may take, in milliseconds; 0: no time limit (the work budget still applies).
pub(crate) static CEL_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(1000);

/// Register all settings. Called from `_PG_init` while shared_preload_libraries is processed.
pub(crate) fn init() {
    GucRegistry::define_string_guc(
        c"hatchet.database_name",
        c"Database in which pg_hatchet's background worker runs.",
        c"The extension must be created in this database. Default: postgres.",
        &DATABASE_NAME,
        GucContext::Postmaster,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"hatchet.enable_worker",
        c"Start pg_hatchet's background worker.",
        c"Without it nothing promotes delayed tasks, times out attempts or maintains partitions.",
        &WORKER_ENABLED,
        GucContext::Postmaster,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"hatchet.deferred_notify",
        c"Send hatchet_ready wake-ups from the notifier process after commit.",
        c"Off: each transaction that makes work ready sends NOTIFY hatchet_ready itself (payload: the queue), which \
          makes concurrent notifying commits wait for one another.",
        &DEFERRED_NOTIFY,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"hatchet.claim_rescan_interval",
        c"Longest a session's claims of a queue start where its previous claims stopped.",
        c"Claims skip what this session already claimed, which stays in the index while a transaction holds back \
          vacuum. A task that became ready behind that point is claimed once the queue has fewer tasks than a claim \
          asks for, or after this interval. 0: every claim reads the queue from its start.",
        &CLAIM_RESCAN_INTERVAL_MS,
        0,
        60_000,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"hatchet.poll_interval_ms",
        c"Longest sleep of the background worker between passes, in milliseconds.",
        c"The worker also wakes when the next delayed task, timeout or schedule timeout is due.",
        &POLL_INTERVAL_MS,
        10,
        60_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"hatchet.max_payload_bytes",
        c"Largest accepted task input, output or metadata, in bytes.",
        c"Larger payloads are rejected with SQLSTATE 54000. Default 4 MiB, Hatchet's gRPC message limit.",
        &MAX_PAYLOAD_BYTES,
        1024,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"hatchet.retention_days",
        c"Days of run, task and event history kept.",
        c"Older daily partitions are dropped by the background worker (never one that still holds unfinished work).",
        &RETENTION_DAYS,
        1,
        36_500,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"hatchet.partition_days_ahead",
        c"Daily history partitions created ahead of today.",
        c"",
        &PARTITION_DAYS_AHEAD,
        1,
        365,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"hatchet.worker_dead_after_ms",
        c"A worker without a heartbeat for this long is dead; its running attempts are retried.",
        c"Workers send a heartbeat every 4 s. Default 30 s, as in Hatchet.",
        &WORKER_DEAD_AFTER_MS,
        1000,
        3_600_000,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"hatchet.batch_limit",
        c"Rows handled per kind per maintenance pass.",
        c"",
        &BATCH_LIMIT,
        1,
        1_000_000,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"hatchet.app_role",
        c"Group role for applications that enqueue work and read its status.",
        c"Created by CREATE EXTENSION pg_hatchet if absent; see docs/security.md.",
        &APP_ROLE,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"hatchet.consumer_role",
        c"Group role for SQL consumers (dequeue, complete, fail).",
        c"Created by CREATE EXTENSION pg_hatchet if absent; see docs/security.md.",
        &CONSUMER_ROLE,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"hatchet.server_role",
        c"Group role for hatchet-server.",
        c"Created by CREATE EXTENSION pg_hatchet if absent; see docs/security.md.",
        &SERVER_ROLE,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"hatchet.admin_role",
        c"Group role for administration (tenants, bindings, definitions).",
        c"Created by CREATE EXTENSION pg_hatchet if absent; see docs/security.md.",
        &ADMIN_ROLE,
    GucRegistry::define_int_guc(
        c"hatchet.cel_max_length",
        c"Longest CEL expression accepted, in bytes.",
        c"Longer expressions are refused when registered (SQLSTATE 22023) and when evaluated.",
        &CEL_MAX_LENGTH,
        16,
        1_048_576,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"hatchet.cel_max_depth",
        c"Deepest nesting of a CEL expression accepted.",
        c"Counts brackets, conditionals and chains of operators; deeper expressions are refused when registered \
          (SQLSTATE 22023) and when evaluated. Each level costs the parser about 7 KiB of stack.",
        &CEL_MAX_DEPTH,
        4,
        256,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"hatchet.cel_max_cost",
        c"Most work one CEL evaluation may do in comprehensions.",
        c"Each iteration of map, filter, all, exists or exists_one costs one step plus the length of the list it \
          builds. Over it the evaluation fails: its task fails with the reason, hatchet.cel_eval raises 54000.",
        &CEL_MAX_COST,
        1000,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"hatchet.cel_timeout",
        c"Longest one CEL evaluation may take, in milliseconds (0: no limit).",
        c"Checked at every comprehension step. Over it the evaluation fails like one over hatchet.cel_max_cost.",
        &CEL_TIMEOUT_MS,
        0,
        3_600_000,
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"hatchet.ddl_lock_timeout",
        c"Longest a partition is created or dropped waits for its locks, in milliseconds.",
        c"Creating or dropping a daily partition locks its parent table; while that lock request waits (behind a long \
          reader), enqueues and reads of the table wait behind it. Past this time the partition is skipped and tried \
          again a minute later.",
        &DDL_LOCK_TIMEOUT_MS,
        1,
        60_000,
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"hatchet.max_log_line_bytes",
        c"Largest log line a task may write, in bytes.",
        c"Longer lines are refused with SQLSTATE 54000 and not stored.",
        &MAX_LOG_LINE_BYTES,
        16,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"hatchet.max_logs_per_task",
        c"Most log lines one task may write, over all its attempts.",
        c"Further lines are refused with SQLSTATE 54000 and not stored.",
        &MAX_LOGS_PER_TASK,
        1,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"hatchet.max_stream_chunk_bytes",
        c"Largest stream chunk a task may put, in bytes.",
        c"Larger chunks are refused with SQLSTATE 54000 and not stored.",
        &MAX_STREAM_CHUNK_BYTES,
        16,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"hatchet.max_stream_chunks_per_task",
        c"Most stream chunks one task may put, over all its attempts.",
        c"Further chunks are refused with SQLSTATE 54000 and not stored.",
        &MAX_STREAM_CHUNKS_PER_TASK,
        1,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"hatchet.max_error_bytes",
        c"Largest failure text of an attempt, in bytes.",
        c"A longer error given to hatchet.fail is refused with SQLSTATE 54000 and the attempt is left running.",
        &MAX_ERROR_BYTES,
        2048,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
}
