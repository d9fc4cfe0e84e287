//! `hatchet_ready` wake-ups, sent after commit by the notifier process (`worker/notifier.rs`) instead of by the
//! transaction that made the work ready. This module holds the SQL function `hatchet._ready`, the commit callback and
//! the shared-memory state through which backends reach the notifier.
//!
//! Why: a transaction that has issued NOTIFY takes one cluster-wide lock in its pre-commit step and keeps it through
//! its commit record's WAL flush (Postgres appends notifications to its queue in commit order). When every enqueue
//! notifies, concurrent enqueues therefore commit one after another, one fsync each, and single-task enqueues stop at
//! a few hundred to a few thousand per second however many producers there are.
//!
//! How: `hatchet._ready(queue)` only marks the transaction. When it commits (never on abort or PREPARE), the backend's
//! commit callback bumps a counter in shared memory and sets the notifier's latch. The notifier, a background worker
//! connected to `hatchet.database_name`, sends one `NOTIFY hatchet_ready` (empty payload) for however many commits
//! happened since its previous one. The callback runs after the commit is visible to other sessions, so a consumer
//! that found nothing and then went to sleep is woken after the new work can be claimed; a notification can arrive
//! early only for work that is already there.
//!
//! Fallback, with the old behaviour (NOTIFY in the transaction, payload = queue name): when
//! `hatchet.deferred_notify` is off, when the notifier is not running (yet), or when the session is in another
//! database than the notifier's, where its NOTIFY would not reach the session's listeners.

use crate::gucs;
use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PgAtomic};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// The channel consumers LISTEN on.
pub(crate) const CHANNEL: &str = "hatchet_ready";

/// Commits that made work ready, counted since the cluster started.
static READY_COMMITS: PgAtomic<AtomicU64> = unsafe { PgAtomic::new(c"pg_hatchet_ready_commits") };
/// Address of the notifier's latch (in shared memory, at the same address in every backend); 0 when not running.
static NOTIFIER_LATCH: PgAtomic<AtomicUsize> =
    unsafe { PgAtomic::new(c"pg_hatchet_notifier_latch") };
/// Database the notifier is connected to (its NOTIFY reaches listeners of that database only).
static NOTIFIER_DB: PgAtomic<AtomicU32> = unsafe { PgAtomic::new(c"pg_hatchet_notifier_db") };

/// This backend's current transaction made work ready (process-local).
static PENDING: AtomicBool = AtomicBool::new(false);
/// This backend registered its transaction callback (process-local; once per process).
static CALLBACK_REGISTERED: AtomicBool = AtomicBool::new(false);

/// Reserve the shared memory. Called from `_PG_init` during preloading.
pub(crate) fn init() {
    pg_shmem_init!(READY_COMMITS);
    pg_shmem_init!(NOTIFIER_LATCH);
    pg_shmem_init!(NOTIFIER_DB);
}

/// `hatchet._ready(queue)`: announce that this transaction makes work ready in `queue`. Called by the SQL API
/// wherever work becomes claimable; consumers wait for the resulting `hatchet_ready` notification.
#[pg_extern(name = "_ready", volatile, parallel_unsafe)]
pub(crate) fn ready(queue: &str) {
    if deferred_available() {
        if !CALLBACK_REGISTERED.swap(true, Ordering::Relaxed) {
            // Safety: registers a plain function pointer for the lifetime of this process; called inside a transaction.
            unsafe { pg_sys::RegisterXactCallback(Some(on_xact), std::ptr::null_mut()) };
        }
        PENDING.store(true, Ordering::Relaxed);
    } else {
        notify_now(queue);
    }
}

fn deferred_available() -> bool {
    if !gucs::DEFERRED_NOTIFY.get() || NOTIFIER_LATCH.get().load(Ordering::Acquire) == 0 {
        return false;
    }
    // Safety: a plain read of this backend's database id.
    let my_db = unsafe { pg_sys::MyDatabaseId }.to_u32();
    NOTIFIER_DB.get().load(Ordering::Acquire) == my_db
}

/// The in-transaction NOTIFY, exactly as `pg_notify(CHANNEL, queue)`.
fn notify_now(queue: &str) {
    // Safety: pg_notify is the built-in SQL function; it takes two text arguments and returns void.
    unsafe {
        pgrx::direct_function_call_as_datum(
            pg_sys::pg_notify,
            &[CHANNEL.into_datum(), queue.into_datum()],
        );
    }
}

/// Transaction callback: at commit, count the commit and wake the notifier; otherwise forget the mark.
#[pg_guard]
unsafe extern "C-unwind" fn on_xact(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    use pg_sys::XactEvent::*;
    match event {
        XACT_EVENT_COMMIT => {
            if !PENDING.swap(false, Ordering::Relaxed) {
                return;
            }
            READY_COMMITS.get().fetch_add(1, Ordering::AcqRel);
            let latch = NOTIFIER_LATCH.get().load(Ordering::Acquire);
            if latch != 0 {
                // Safety: the address of a PGPROC latch in shared memory. If the notifier exited after the load,
                // the latch belongs to whichever process took that PGPROC slot, and a spurious wake-up is harmless.
                unsafe { pg_sys::SetLatch(latch as *mut pg_sys::Latch) };
            }
        }
        XACT_EVENT_ABORT | XACT_EVENT_PREPARE | XACT_EVENT_PARALLEL_ABORT => {
            PENDING.store(false, Ordering::Relaxed);
        }
        _ => {}
    }
}

/// Commits that made work ready, counted since the cluster started. The notifier sends one notification whenever
/// this has changed since its previous one.
pub(crate) fn ready_commits() -> u64 {
    READY_COMMITS.get().load(Ordering::Acquire)
}

/// Make the calling process the notifier: publish its database and latch, so that from now on committing
/// transactions in that database wake it instead of notifying themselves, until the process exits.
pub(crate) fn become_notifier() {
    // Safety: reads of this process's own globals, set up by InitPostgres; MyLatch is the PGPROC's shared latch.
    let (my_db, my_latch) = unsafe { (pg_sys::MyDatabaseId.to_u32(), pg_sys::MyLatch as usize) };
    NOTIFIER_DB.get().store(my_db, Ordering::Release);
    NOTIFIER_LATCH.get().store(my_latch, Ordering::Release);
    // Safety: registers a plain function pointer; it runs once, when this process exits for any reason.
    unsafe { pg_sys::before_shmem_exit(Some(unpublish), pg_sys::Datum::from(my_latch)) };
}

/// Exit callback of the notifier: from now on, enqueues notify directly.
#[pg_guard]
unsafe extern "C-unwind" fn unpublish(_code: i32, latch: pg_sys::Datum) {
    let _ = NOTIFIER_LATCH.get().compare_exchange(
        latch.value(),
        0,
        Ordering::AcqRel,
        Ordering::Acquire,
    );
}
