//! The scenarios, each a function from a [`Spec`] to a JSON result. Scenario names and result fields are the
//! same for every driver (bench/README.md, "Driver contract").
//!
//! | scenario | does | reports |
//! |---|---|---|
//! | `setup` | creates the system's objects | versions, feature flags |
//! | `enqueue` | enqueues `n` tasks in batches of `enqueue_batch` | seconds, tasks_per_s |
//! | `work` | workers drain what is queued until `n` are completed | seconds, tasks_per_s |
//! | `steady` | producers and workers run together for `duration_s` | completed_per_s, enqueued_per_s |
//! | `latency` | one task per transaction at `rate`/s for `duration_s` | latencies_ms (enqueue → start) |
//! | `backlog` | fills `n` tasks, then times `samples` single claims | latencies_ms (claim) |
//! | `fairness` | A enqueues `fair_a`, then B `fair_b`, workers running | seconds until all of B started |
//! | `dag` | triggers `n` runs of a 3-task DAG, then workers drain them | runs/s, counted in the database |
//! | `rr_keys` | `n` tasks over `keys` GROUP_ROUND_ROBIN keys with `max_runs`, drained | tasks/s, most in flight per key |
//! | `rate_limit` | `n` tasks taking one unit of a `rate_limit`/s limit, drained | tasks/s, units per window |

use crate::clock::{now_s, now_us, sleep_until_us};
use crate::shapes;
use crate::spec::{BenchError, Result, Spec};
use crate::systems::{self, payload, Producer, Worker};
use postgres::fallible_iterator::FallibleIterator;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

pub fn run(spec: &Spec) -> Result<Value> {
    match spec.scenario.as_str() {
        "setup" => systems::setup(spec),
        "enqueue" => enqueue(spec),
        "work" => work(spec),
        "steady" => steady(spec),
        "latency" => latency(spec),
        "backlog" => backlog(spec),
        "fairness" => fairness(spec),
        "dag" => shapes::dag(spec),
        "rr_keys" => shapes::rr_keys(spec),
        "rate_limit" => shapes::rate_limit(spec),
        other => Err(BenchError(format!("unknown scenario {other:?}"))),
    }
}

/// Counters shared by the producer and worker threads of one run.
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) enqueued: AtomicU64,
    pub(crate) started: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) notifies: AtomicU64,
    pub(crate) fallback_wakes: AtomicU64,
    pub(crate) stop: AtomicBool,
    /// Enqueue-to-start latencies (ms) of tasks enqueued after `record_after_us`.
    pub(crate) latencies: Mutex<Vec<f64>>,
    pub(crate) record_after_us: AtomicU64,
    /// Fairness: starts of B's tasks, and A's tasks started before B's last one.
    pub(crate) b_started: AtomicU64,
    pub(crate) a_started: AtomicU64,
    pub(crate) b_done_us: AtomicU64,
    /// Earliest task start of the run (fairness: the clock starts when the first task does).
    pub(crate) first_start_us: AtomicU64,
    pub(crate) a_before_b_done: AtomicU64,
    /// pg_hatchet wake-ups: one listener connection per process bumps this generation on each `hatchet_ready`
    /// and wakes one idle worker (the pattern docs/sql-api.md recommends; every worker listening on its own
    /// connection would wake them all for each task).
    pub(crate) wake_gen: Mutex<u64>,
    pub(crate) wake_cv: Condvar,
    pub(crate) workers_done: AtomicU64,
    /// rr_keys: tasks each concurrency key has in flight as the workers see them (counted from the claim's return
    /// until the completion is sent, so never more than the database holds running), and the most seen at once.
    pub(crate) held: Mutex<HashMap<String, u64>>,
    pub(crate) max_held: AtomicU64,
}

impl Shared {
    fn wake_generation(&self) -> u64 {
        self.wake_gen.lock().map(|g| *g).unwrap_or(0)
    }

    /// Waits until the wake generation moves past `seen` or `timeout` passes; true if it moved.
    fn wait_wake(&self, seen: u64, timeout: Duration) -> bool {
        let Ok(guard) = self.wake_gen.lock() else {
            return false;
        };
        match self
            .wake_cv
            .wait_timeout_while(guard, timeout, |g| *g == seen)
        {
            Ok((g, _)) => *g != seen,
            Err(_) => false,
        }
    }
}

/// pg_hatchet: LISTENs on `hatchet_ready` and wakes one idle worker per notification batch, until every worker
/// of the run has finished.
fn listener_loop(spec: &Spec, shared: &Shared) -> Result<()> {
    let mut client = systems::connect(spec, "listener")?;
    client.batch_execute("LISTEN hatchet_ready")?;
    while shared.workers_done.load(Ordering::SeqCst) < spec.workers as u64 {
        let mut notes = client.notifications();
        let mut got = matches!(
            notes.timeout_iter(Duration::from_millis(50)).next(),
            Ok(Some(_))
        );
        // Collapse notifications that are already queued into this wake-up.
        while let Ok(Some(_)) = notes.iter().next() {
            got = true;
        }
        if got {
            if let Ok(mut g) = shared.wake_gen.lock() {
                *g += 1;
            }
            shared.wake_cv.notify_one();
        }
    }
    Ok(())
}

fn deadline_us(spec: &Spec) -> i64 {
    now_us() + (spec.timeout_s * 1e6) as i64
}

fn enqueue(spec: &Spec) -> Result<Value> {
    let mut p = Producer::new(spec, "producer")?;
    let t0 = now_s();
    let mut done = 0u64;
    while done < spec.n {
        let k = (spec.n - done).min(spec.enqueue_batch as u64);
        let t = now_us();
        let batch: Vec<String> = (0..k).map(|_| payload(t, None)).collect();
        done += p.enqueue_many(&batch)?;
    }
    let secs = now_s() - t0;
    Ok(
        json!({ "n": done, "seconds": secs, "tasks_per_s": done as f64 / secs, "t_start": t0, "t_end": t0 + secs }),
    )
}

/// The worker loop shared by every scenario: claim a batch, record starts, complete, repeat until `until`
/// says the run is over. Returns an error message rather than panicking so the driver reports it.
fn worker_loop(
    spec: &Spec,
    index: usize,
    shared: &Shared,
    until: &(dyn Fn(&Shared) -> bool + Sync),
) -> Result<()> {
    let mut w = Worker::new(spec, index)?;
    let poll = Duration::from_millis(spec.idle_poll_ms);
    let fallback = Duration::from_millis(spec.notify_fallback_ms);
    let deadline = deadline_us(spec);
    let mut local_lat = Vec::new();
    let track_keys = spec.scenario == "rr_keys";
    // rr_keys: the keys of the batch whose completion the next claim transaction sends.
    let mut pending_keys: Vec<String> = Vec::new();
    loop {
        let seen = shared.wake_generation();
        release_keys(shared, &mut pending_keys)?;
        let (tasks, acked) = w.claim(spec.batch)?;
        if track_keys {
            hold_keys(shared, &tasks, &mut pending_keys)?;
        }
        shared.completed.fetch_add(acked, Ordering::SeqCst);
        if tasks.is_empty() {
            if until(shared) || shared.stop.load(Ordering::SeqCst) {
                break;
            }
            if now_us() > deadline {
                return Err(BenchError(format!(
                    "timed out after {} s with {} of {} tasks started",
                    spec.timeout_s,
                    shared.started.load(Ordering::SeqCst),
                    spec.n
                )));
            }
            if w.listens() {
                if shared.wait_wake(seen, fallback) {
                    w.notifies += 1;
                } else {
                    w.fallback_wakes += 1;
                }
            } else {
                w.wait_idle(poll, fallback);
            }
            continue;
        }
        // The task "starts" now: the claim has committed (pg_hatchet) or holds its row locks (baseline).
        let start = now_us();
        shared
            .first_start_us
            .fetch_min(start as u64, Ordering::SeqCst);
        let record_after = shared.record_after_us.load(Ordering::Relaxed) as i64;
        for t in &tasks {
            if t.t_us >= record_after && t.t_us > 0 {
                local_lat.push((start - t.t_us) as f64 / 1000.0);
            }
            match t.group.as_deref() {
                Some("B") => {
                    let b = shared.b_started.fetch_add(1, Ordering::SeqCst) + 1;
                    if b == spec.fair_b {
                        shared.b_done_us.store(start as u64, Ordering::SeqCst);
                        shared
                            .a_before_b_done
                            .store(shared.a_started.load(Ordering::SeqCst), Ordering::SeqCst);
                    }
                }
                Some(_) => {
                    shared.a_started.fetch_add(1, Ordering::SeqCst);
                }
                None => {}
            }
        }
        shared
            .started
            .fetch_add(tasks.len() as u64, Ordering::SeqCst);
        let acked = w.finish(&tasks)?;
        shared.completed.fetch_add(acked, Ordering::SeqCst);
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
    }
    release_keys(shared, &mut pending_keys)?;
    let acked = w.flush()?;
    shared.completed.fetch_add(acked, Ordering::SeqCst);
    shared.notifies.fetch_add(w.notifies, Ordering::SeqCst);
    shared
        .fallback_wakes
        .fetch_add(w.fallback_wakes, Ordering::SeqCst);
    shared
        .latencies
        .lock()
        .map_err(|_| BenchError("poisoned".into()))?
        .extend(local_lat);
    Ok(())
}

/// rr_keys: counts a claimed batch as in flight per concurrency key (the task's group) and records the most any
/// key had at once.
fn hold_keys(shared: &Shared, tasks: &[systems::Task], pending: &mut Vec<String>) -> Result<()> {
    let mut held = shared
        .held
        .lock()
        .map_err(|_| BenchError("poisoned".into()))?;
    for t in tasks {
        if let Some(k) = &t.group {
            let n = held.entry(k.clone()).or_insert(0);
            *n += 1;
            shared.max_held.fetch_max(*n, Ordering::SeqCst);
            pending.push(k.clone());
        }
    }
    Ok(())
}

/// rr_keys: the batch's completion is about to be sent: it no longer counts as in flight.
fn release_keys(shared: &Shared, pending: &mut Vec<String>) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let mut held = shared
        .held
        .lock()
        .map_err(|_| BenchError("poisoned".into()))?;
    for k in pending.drain(..) {
        if let Some(n) = held.get_mut(&k) {
            *n = n.saturating_sub(1);
        }
    }
    Ok(())
}

/// Spawns `spec.workers` worker threads; returns their join handles.
pub(crate) fn spawn_workers(
    spec: &Spec,
    shared: &Arc<Shared>,
    until: fn(&Shared, u64) -> bool,
    target: u64,
) -> Vec<thread::JoinHandle<Result<()>>> {
    (0..spec.workers)
        .map(|i| {
            let spec = spec.clone();
            let shared = Arc::clone(shared);
            thread::spawn(move || {
                let r = worker_loop(&spec, i, &shared, &move |s: &Shared| until(s, target));
                if r.is_err() {
                    // One failed worker ends the run for everyone instead of leaving them waiting.
                    shared.stop.store(true, Ordering::SeqCst);
                }
                shared.workers_done.fetch_add(1, Ordering::SeqCst);
                shared.wake_cv.notify_all();
                r
            })
        })
        .chain(spec.system.listens().then(|| {
            let spec = spec.clone();
            let shared = Arc::clone(shared);
            thread::spawn(move || listener_loop(&spec, &shared))
        }))
        .collect()
}

pub(crate) fn join_all(handles: Vec<thread::JoinHandle<Result<()>>>) -> Result<()> {
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => first_err = first_err.or(Some(e)),
            Err(_) => first_err = first_err.or(Some(BenchError("worker thread panicked".into()))),
        }
    }
    first_err.map_or(Ok(()), Err)
}

pub(crate) fn all_started(s: &Shared, target: u64) -> bool {
    s.started.load(Ordering::SeqCst) >= target
}

fn never(_: &Shared, _: u64) -> bool {
    false
}

/// Drains `n` queued tasks; the clock runs from the workers' start to the last committed completion.
fn work(spec: &Spec) -> Result<Value> {
    let shared = Arc::new(Shared::default());
    let t0 = now_s();
    let handles = spawn_workers(spec, &shared, all_started, spec.n);
    join_all(handles)?;
    let secs = now_s() - t0;
    let completed = shared.completed.load(Ordering::SeqCst);
    if completed != spec.n {
        return Err(BenchError(format!(
            "{completed} of {} tasks completed",
            spec.n
        )));
    }
    Ok(json!({
        "n": completed, "seconds": secs, "tasks_per_s": completed as f64 / secs,
        "t_start": t0, "t_end": t0 + secs, "notifies": shared.notifies.load(Ordering::SeqCst),
    }))
}

/// Producers and workers together; the producers keep at most `backlog_cap` tasks waiting, so the figure is the
/// rate the system sustains end to end, not how fast a backlog can grow.
fn steady(spec: &Spec) -> Result<Value> {
    let shared = Arc::new(Shared::default());
    let workers = spawn_workers(spec, &shared, never, 0);
    let producers: Vec<_> = (0..2)
        .map(|i| {
            let spec = spec.clone();
            let shared = Arc::clone(&shared);
            thread::spawn(move || -> Result<()> {
                let mut p = Producer::new(&spec, &format!("producer{i}"))?;
                while !shared.stop.load(Ordering::SeqCst) {
                    let waiting = shared.enqueued.load(Ordering::SeqCst)
                        - shared.started.load(Ordering::SeqCst);
                    if waiting >= spec.backlog_cap {
                        thread::sleep(Duration::from_micros(500));
                        continue;
                    }
                    let t = now_us();
                    let batch: Vec<String> = (0..spec.batch).map(|_| payload(t, None)).collect();
                    let n = p.enqueue_many(&batch)?;
                    shared.enqueued.fetch_add(n, Ordering::SeqCst);
                }
                Ok(())
            })
        })
        .collect();
    let t_begin = now_us();
    let w0 = t_begin + (spec.warmup_s * 1e6) as i64;
    let w1 = t_begin + ((spec.warmup_s + spec.duration_s) * 1e6) as i64;
    sleep_until_us(w0);
    let (c0, e0, t0) = (
        shared.completed.load(Ordering::SeqCst),
        shared.enqueued.load(Ordering::SeqCst),
        now_us(),
    );
    sleep_until_us(w1);
    let (c1, e1, t1) = (
        shared.completed.load(Ordering::SeqCst),
        shared.enqueued.load(Ordering::SeqCst),
        now_us(),
    );
    shared.stop.store(true, Ordering::SeqCst);
    join_all(producers)?;
    join_all(workers)?;
    let secs = (t1 - t0) as f64 / 1e6;
    Ok(json!({
        "seconds": secs, "completed": c1 - c0, "tasks_per_s": (c1 - c0) as f64 / secs,
        "enqueued_per_s": (e1 - e0) as f64 / secs, "t_start": t0 as f64 / 1e6, "t_end": t1 as f64 / 1e6,
    }))
}

/// Fixed offered load: one task per transaction, sent on a fixed schedule by enough producer connections that a
/// slow commit does not delay the next send. Latency = the worker's start time minus the producer's clock just
/// before its enqueue call.
fn latency(spec: &Spec) -> Result<Value> {
    let shared = Arc::new(Shared::default());
    let workers = spawn_workers(spec, &shared, never, 0);
    // Give workers time to connect before the clock starts.
    thread::sleep(Duration::from_millis(300));
    // One producer connection per 200 tasks/s (the same rule in every driver).
    let n_producers = ((spec.rate / 200.0).ceil() as usize).max(1);
    let total = (spec.rate * spec.duration_s).round() as u64;
    let t0 = now_us() + 50_000;
    shared
        .record_after_us
        .store((t0 + (spec.warmup_s * 1e6) as i64) as u64, Ordering::SeqCst);
    let max_lag = Arc::new(AtomicU64::new(0));
    let producers: Vec<_> = (0..n_producers)
        .map(|p| {
            let spec = spec.clone();
            let shared = Arc::clone(&shared);
            let max_lag = Arc::clone(&max_lag);
            thread::spawn(move || -> Result<()> {
                let mut prod = Producer::new(&spec, &format!("producer{p}"))?;
                let mut i = p as u64;
                while i < total && !shared.stop.load(Ordering::SeqCst) {
                    let due = t0 + (i as f64 * 1e6 / spec.rate) as i64;
                    sleep_until_us(due);
                    let t = now_us();
                    max_lag.fetch_max((t - due).max(0) as u64, Ordering::Relaxed);
                    prod.enqueue_one(&payload(t, None))?;
                    shared.enqueued.fetch_add(1, Ordering::SeqCst);
                    i += n_producers as u64;
                }
                Ok(())
            })
        })
        .collect();
    join_all(producers)?;
    let sent_s = (now_us() - t0) as f64 / 1e6;
    let sent = shared.enqueued.load(Ordering::SeqCst);
    // Let the tail drain (bounded), then stop the workers.
    let tail_deadline = now_us() + (spec.tail_s * 1e6) as i64;
    while shared.started.load(Ordering::SeqCst) < sent && now_us() < tail_deadline {
        thread::sleep(Duration::from_millis(5));
    }
    shared.stop.store(true, Ordering::SeqCst);
    join_all(workers)?;
    let started = shared.started.load(Ordering::SeqCst);
    let lat = std::mem::take(
        &mut *shared
            .latencies
            .lock()
            .map_err(|_| BenchError("poisoned".into()))?,
    );
    Ok(json!({
        "sent": sent, "started": started, "offered_per_s": sent as f64 / sent_s,
        "producer_max_lag_ms": max_lag.load(Ordering::Relaxed) as f64 / 1000.0,
        "notifies": shared.notifies.load(Ordering::SeqCst),
        "fallback_wakes": shared.fallback_wakes.load(Ordering::SeqCst), "latencies_ms": lat,
    }))
}

/// Claim latency with `n` tasks queued (pg_hatchet: spread over `keys` concurrency keys when supported).
fn backlog(spec: &Spec) -> Result<Value> {
    let mut p = Producer::new(spec, "filler")?;
    let keyed = spec.keys > 0 && p.keyed_available();
    let t_fill = now_s();
    let mut done = 0u64;
    let chunk = spec.enqueue_batch.max(1000) as u64;
    while done < spec.n {
        let k = (spec.n - done).min(chunk);
        let batch: Vec<String> = (0..k).map(|_| payload(0, None)).collect();
        done += if keyed {
            // Keys in blocks (n / keys consecutive tasks per key), so batch enqueue takes a block per call.
            let per_key = spec.n.div_ceil(spec.keys).max(1);
            let keys: Vec<String> = (done..done + k)
                .map(|i| format!("k{}", i / per_key))
                .collect();
            p.enqueue_keyed(&batch, &keys)?
        } else {
            p.enqueue_many(&batch)?
        };
    }
    let fill_s = now_s() - t_fill;
    drop(p);
    // Autovacuum would analyze a table this size soon after; doing it now keeps every system's plan honest.
    systems::execute(spec, "ANALYZE")?;
    let mut w = Worker::new(spec, 0)?;
    let mut lat = Vec::with_capacity(spec.samples);
    for _ in 0..spec.samples {
        let (ms, got) = systems::claim_one(&mut w)?;
        if got == 0 {
            return Err(BenchError(format!(
                "claim returned nothing with {} queued",
                spec.n
            )));
        }
        lat.push(ms);
    }
    Ok(
        json!({ "n": spec.n, "keys": if keyed { spec.keys } else { 0 }, "fill_s": fill_s, "latencies_ms": lat }),
    )
}

/// Tenant A's backlog sits in the queue ahead of tenant B's few tasks; once workers start, how long until all of
/// B's tasks have started, and how many of A's went first? pg_hatchet gives each tenant a concurrency key with
/// GROUP_ROUND_ROBIN; the baseline is FIFO. Both are enqueued before the workers start, so the figure measures
/// dispatch order, not a race between the producer and the workers.
fn fairness(spec: &Spec) -> Result<Value> {
    let mut p = Producer::new(spec, "producer")?;
    let keyed = p.keyed_available();
    if spec.system == crate::spec::SystemKind::Hatchet && !keyed {
        return Ok(json!({
            "available": false,
            "reason": "hatchet.enqueue has no concurrency_key / max_runs / strategy parameters",
        }));
    }
    let send = |p: &mut Producer, group: &str, n: u64| -> Result<()> {
        let mut done = 0;
        while done < n {
            let k = (n - done).min(spec.enqueue_batch as u64);
            let t = now_us();
            let batch: Vec<String> = (0..k).map(|_| payload(t, Some(group))).collect();
            done += if keyed {
                let keys = vec![group.to_string(); k as usize];
                p.enqueue_keyed(&batch, &keys)?
            } else {
                p.enqueue_many(&batch)?
            };
        }
        Ok(())
    };
    send(&mut p, "A", spec.fair_a)?;
    send(&mut p, "B", spec.fair_b)?;
    let shared = Arc::new(Shared::default());
    shared.first_start_us.store(u64::MAX, Ordering::SeqCst);
    let workers = spawn_workers(spec, &shared, never, 0);
    let deadline = deadline_us(spec);
    while shared.b_done_us.load(Ordering::SeqCst) == 0
        && now_us() < deadline
        && !shared.stop.load(Ordering::SeqCst)
    {
        thread::sleep(Duration::from_millis(1));
    }
    shared.stop.store(true, Ordering::SeqCst);
    join_all(workers)?;
    let b_done = shared.b_done_us.load(Ordering::SeqCst) as i64;
    if b_done == 0 {
        return Err(BenchError(format!(
            "B's tasks had not all started after {} s",
            spec.timeout_s
        )));
    }
    let first = shared.first_start_us.load(Ordering::SeqCst) as i64;
    Ok(json!({
        "available": true, "keyed": keyed, "seconds": (b_done - first) as f64 / 1e6,
        "a_started_before_b_done": shared.a_before_b_done.load(Ordering::SeqCst),
    }))
}
