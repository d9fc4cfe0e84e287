//! The notifier ("pg_hatchet notifier"): sends one `NOTIFY hatchet_ready` for however many commits made work ready
//! since its previous one.
//!
//! Why a separate process, and how backends reach it (a counter and the notifier's latch in shared memory, set by a
//! commit callback), is explained in `wake.rs`, which owns that shared state. While no notifier runs (before it
//! starts, between restarts, or with `hatchet.deferred_notify = off`), each transaction notifies by itself.

use crate::wake;
use pgrx::bgworkers::BackgroundWorker;
use pgrx::prelude::*;
use std::time::Duration;

/// Restart delay after the notifier exits with an error (until then, enqueues notify directly).
const RESTART_AFTER: Duration = Duration::from_secs(1);
/// The notifier's idle wake-up, only to notice SIGHUP and postmaster death promptly.
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// Register the notifier with the postmaster.
pub(super) fn register() {
    super::register_process(
        "pg_hatchet notifier",
        "pg_hatchet notifier",
        "pg_hatchet_notifier_main",
        RESTART_AFTER,
    );
}

/// Entry point of the notifier process.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn pg_hatchet_notifier_main(_arg: pg_sys::Datum) {
    let dbname = super::start("pg_hatchet notifier");
    // The NOTIFY transactions commit without waiting for their WAL flush. A NOTIFY takes a transaction id, so each
    // one writes a commit record, and with the cluster's synchronous commit every wake-up waited for an fsync (1 to
    // 1.5 ms on this machine kind) before the listeners were signalled: one flush more between an enqueue's commit
    // and the start of its task, and one more flush per enqueue for the WAL writer. Nothing else is written in these
    // transactions, and a notification lost in a crash is lost anyway (listeners' connections end with the server).
    // Listeners see the notification as soon as the commit is visible, which an asynchronous commit is at once.
    BackgroundWorker::transaction(|| {
        Spi::run("SET synchronous_commit = off").expect("setting synchronous_commit failed");
    });
    wake::become_notifier();
    log!("pg_hatchet notifier started in database \"{dbname}\"");

    let notify = format!("NOTIFY {}", wake::CHANNEL);
    // Wake everyone once at start: commits while no notifier ran fell back to direct notification, but one made
    // between that check and this process's start would otherwise wait for its consumers' poll.
    let mut sent = u64::MAX;
    loop {
        let seen = wake::ready_commits();
        if seen != sent {
            BackgroundWorker::transaction(|| {
                Spi::run(&notify).expect("NOTIFY hatchet_ready failed");
            });
            sent = seen;
        }
        // Returns at once if a commit set the latch since it was last reset; the counter is read after the reset.
        if !BackgroundWorker::wait_latch(Some(IDLE_WAIT)) {
            break;
        }
        super::reload_on_sighup();
    }
    log!("pg_hatchet notifier stopped");
    super::exit_for_restart();
}
