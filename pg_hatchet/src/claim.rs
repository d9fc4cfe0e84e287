//! Claim bounds: where a session's next claim of a queue starts reading the dispatch index.
//!
//! Why: a claimed task's ready row is deleted, and its entry in `ready_queue_dispatch_idx` stays until vacuum. While
//! some transaction holds back the xmin horizon, neither vacuum nor the index scan's own clean-up may remove those
//! entries, and every claim from the start of the queue walks all of them and visits their heap rows. Measured on a
//! 100,000-task drain with one open transaction: 3.3 ms per 100-task claim after 20,000 claims, and claims/s falling
//! to a sixth of what the same drain reaches without it.
//!
//! How: after each claim, this backend remembers per (tenant, queue, priority) the highest `(fair_rank, id)` it
//! claimed, and the next claim reads each priority from there. New work always sorts after those bounds: a task that
//! becomes ready gets a new id and a rank of at least the queue's virtual time. What can sort before them is rare:
//! a task whose enqueue committed after a later one was claimed, rows another session locked and then released, and
//! a rank given while the queue's virtual time lagged. So the bounds are only a starting point, and a claim reads the
//! whole queue from the start (as without bounds) when
//!   * the bounded read finds fewer tasks than asked for (the queue may hold only such tasks),
//!   * `hatchet.claim_rescan_interval` has passed since this backend last read the queue from the start, or
//!   * this backend rolled back a transaction or savepoint since (the rows it had claimed are ready again).
//!
//! A task behind the bounds can therefore be overtaken by newer ones for at most that interval, and only while the
//! queue has more ready tasks than the claims ask for; it is never left behind.
//!
//! The bounds are process-local: nothing is shared, locked or written.

use crate::gucs;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// Priorities 4 (retries) down to 1, in dispatch order; `bounds[i]` belongs to priority `4 - i`.
const PRIORITIES: usize = 4;
/// Queues remembered per backend; beyond this the map is cleared (a claim then reads from the start once).
const MAX_QUEUES: usize = 4096;

struct QueueBounds {
    /// Highest `(fair_rank, id)` claimed per priority since the last read from the start.
    bounds: [Option<(i64, i64)>; PRIORITIES],
    /// When this backend last read the queue from the start.
    full_at: Instant,
    /// The rollback count when the bounds were taken; bounds from before a rollback are not used.
    epoch: u64,
}

thread_local! {
    static BOUNDS: RefCell<HashMap<([u8; 16], String), QueueBounds>> = RefCell::new(HashMap::new());
}

/// Rollbacks (of transactions and savepoints) in this backend. Only counted, so that the callback, which runs while
/// an error is being handled, touches nothing else.
static ROLLBACKS: AtomicU64 = AtomicU64::new(0);
/// This backend registered its rollback callbacks (once per process).
static CALLBACKS_REGISTERED: AtomicBool = AtomicBool::new(false);

/// `hatchet._claim_bounds(tenant, queue)`: the bounds for this backend's next claim of the queue, as
/// `[rank4, id4, rank3, id3, rank2, id2, rank1, id1]` (NULLs for a priority to read from its start), or NULL when
/// the claim should read the whole queue from the start.
#[pg_extern(name = "_claim_bounds", volatile, parallel_unsafe)]
pub(crate) fn claim_bounds(tenant: pgrx::Uuid, queue: &str) -> Option<Vec<Option<i64>>> {
    let interval_ms = gucs::CLAIM_RESCAN_INTERVAL_MS.get();
    if interval_ms <= 0 {
        return None;
    }
    let epoch = ROLLBACKS.load(Ordering::Relaxed);
    BOUNDS.with(|map| {
        let map = map.borrow();
        let entry = map.get(&(*tenant.as_bytes(), queue.to_owned()))?;
        if entry.epoch != epoch
            || entry.full_at.elapsed().as_millis() >= interval_ms as u128
            || entry.bounds.iter().all(Option::is_none)
        {
            return None;
        }
        Some(
            entry
                .bounds
                .iter()
                .flat_map(|b| [b.map(|(rank, _)| rank), b.map(|(_, id)| id)])
                .collect(),
        )
    })
}

/// `hatchet._claim_seen(tenant, queue, from_start, priorities, ranks, ids)`: record the rows a claim locked.
/// `from_start` says the claim read the queue from its start: the bounds are then replaced, otherwise raised.
#[pg_extern(name = "_claim_seen", volatile, parallel_unsafe)]
pub(crate) fn claim_seen(
    tenant: pgrx::Uuid,
    queue: &str,
    from_start: bool,
    priorities: Vec<Option<i16>>,
    ranks: Vec<Option<i64>>,
    ids: Vec<Option<i64>>,
) {
    if gucs::CLAIM_RESCAN_INTERVAL_MS.get() <= 0 {
        return;
    }
    if !CALLBACKS_REGISTERED.swap(true, Ordering::Relaxed) {
        // Safety: plain function pointers registered for the lifetime of this process, inside a transaction.
        unsafe {
            pg_sys::RegisterXactCallback(Some(on_xact), std::ptr::null_mut());
            pg_sys::RegisterSubXactCallback(Some(on_subxact), std::ptr::null_mut());
        }
    }
    let mut claimed = [None; PRIORITIES];
    for ((priority, rank), id) in priorities.iter().zip(&ranks).zip(&ids) {
        let (Some(priority), Some(rank), Some(id)) = (*priority, *rank, *id) else {
            continue;
        };
        let Some(slot) = slot_of(priority) else {
            continue;
        };
        claimed[slot] = claimed[slot].max(Some((rank, id)));
    }
    let epoch = ROLLBACKS.load(Ordering::Relaxed);
    BOUNDS.with(|map| {
        let mut map = map.borrow_mut();
        let key = (*tenant.as_bytes(), queue.to_owned());
        match map.get_mut(&key) {
            Some(entry) if !from_start && entry.epoch == epoch => {
                for (bound, seen) in entry.bounds.iter_mut().zip(claimed) {
                    *bound = (*bound).max(seen);
                }
            }
            // A bounded claim after a rollback or without an entry: keep nothing, the next claim reads from the start.
            _ if !from_start => {
                map.remove(&key);
            }
            _ => {
                if map.len() >= MAX_QUEUES && !map.contains_key(&key) {
                    map.clear();
                }
                map.insert(
                    key,
                    QueueBounds {
                        bounds: claimed,
                        full_at: Instant::now(),
                        epoch,
                    },
                );
            }
        }
    });
}

/// Index in `QueueBounds::bounds` of a priority (4 first).
fn slot_of(priority: i16) -> Option<usize> {
    (1..=PRIORITIES as i16)
        .contains(&priority)
        .then(|| PRIORITIES - priority as usize)
}

#[pg_guard]
unsafe extern "C-unwind" fn on_xact(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    use pg_sys::XactEvent::*;
    if matches!(event, XACT_EVENT_ABORT | XACT_EVENT_PARALLEL_ABORT) {
        ROLLBACKS.fetch_add(1, Ordering::Relaxed);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_subxact(
    event: pg_sys::SubXactEvent::Type,
    _my: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        ROLLBACKS.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod unit {
    use super::slot_of;

    #[test]
    fn priorities_map_to_dispatch_order() {
        assert_eq!(slot_of(4), Some(0));
        assert_eq!(slot_of(1), Some(3));
        assert_eq!(slot_of(0), None);
        assert_eq!(slot_of(5), None);
    }
}
