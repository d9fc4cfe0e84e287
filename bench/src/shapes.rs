//! Workflow shapes (pg_hatchet only; the SKIP LOCKED table has none of these features and is reported as not
//! available):
//!
//! * `dag`: `n` runs of a registered 3-task DAG (`a`, `b` after `a`, `c` after `a` and `b`) triggered with
//!   `hatchet.run_workflow` in batches, then drained by the same SQL workers as the drain, each claiming from the
//!   three task queues in one statement (`c` first, so runs finish before new ones start). A child is queued in
//!   the transaction that completes its last parent, so the next claim of the same transaction can take it.
//! * `rr_keys`: `n` tasks over `keys` GROUP_ROUND_ROBIN concurrency keys with `max_runs` (2), drained. The
//!   workers count what each key has in flight (from the claim's return until its completion is sent, always a
//!   subset of what the database holds running), and the run fails if a key ever had more than `max_runs`.
//! * `rate_limit`: `n` tasks that each take one unit of a limit of `rate_limit` units per SECOND window, drained
//!   by workers that could go much faster. The database's own timestamps (the assignment time of every attempt,
//!   the same clock reading the limiter's refill uses) are replayed through the fixed-window rule to count the
//!   units of every window; the run fails if one window had more than the limit.
//!
//! Every scenario counts the finished work in the database at the end, not only the driver's counters.

use crate::clock::{now_s, now_us};
use crate::scenarios::{all_started, join_all, spawn_workers, Shared};
use crate::spec::{BenchError, Result, Spec, SystemKind};
use crate::systems::{self, payload, Producer};
use postgres::Client;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

const DAG_NAME: &str = "bench-dag";
/// The DAG's task queues in claim order: the last task first.
const DAG_QUEUES: [&str; 3] = ["bench-dag:c", "bench-dag:b", "bench-dag:a"];
const DAG_DEFINITION: &str = r#"{"name": "bench-dag", "tasks": [
    {"readable_id": "a"},
    {"readable_id": "b", "parents": ["a"]},
    {"readable_id": "c", "parents": ["a", "b"]}]}"#;
const RATE_KEY: &str = "bench-rl";
const WINDOW_US: i64 = 1_000_000;

fn not_available(spec: &Spec, what: &str) -> Option<Value> {
    (spec.system != SystemKind::Hatchet).then(|| {
        json!({ "available": false, "reason": format!("a plain SKIP LOCKED table has no {what}") })
    })
}

/// Completed tasks of the given queues, and the runs all of whose `tasks_per_run` tasks completed, from the
/// database (`hatchet.task_events` COMPLETED rows joined to their tasks).
fn count_completed(c: &mut Client, queues: &[String], tasks_per_run: i64) -> Result<(i64, i64)> {
    let row = c.query_one(
        "SELECT coalesce(sum(k), 0)::int8, count(*) FILTER (WHERE k = $2)
           FROM (SELECT t.run_id, count(DISTINCT t.id) AS k
                   FROM hatchet.tasks t
                   JOIN hatchet.task_events e
                     ON e.tenant_id = t.tenant_id AND e.task_inserted_at = t.inserted_at AND e.task_id = t.id
                  WHERE t.queue = ANY ($1::text[]) AND e.event_type = 'COMPLETED'
                  GROUP BY t.run_id) AS r",
        &[&queues, &tasks_per_run],
    )?;
    Ok((row.get(0), row.get(1)))
}

/// Runs the workers until `target` tasks have started and every claimed one is completed; returns the seconds
/// from their start to the last completion, and the shared counters.
fn drain(spec: &Spec, target: u64) -> Result<(f64, f64, Arc<Shared>)> {
    let shared = Arc::new(Shared::default());
    let t0 = now_s();
    join_all(spawn_workers(spec, &shared, all_started, target))?;
    let secs = now_s() - t0;
    let completed = shared.completed.load(Ordering::SeqCst);
    if completed != target {
        return Err(BenchError(format!(
            "{completed} of {target} tasks completed"
        )));
    }
    Ok((t0, secs, shared))
}

pub fn dag(spec: &Spec) -> Result<Value> {
    if let Some(v) = not_available(spec, "workflows") {
        return Ok(v);
    }
    let mut c = systems::connect(spec, "producer")?;
    c.query_one(
        "SELECT hatchet.register_workflow($1::text::jsonb)",
        &[&DAG_DEFINITION],
    )?;
    let trigger = c.prepare(
        "SELECT count(hatchet.run_workflow($1::text, x::jsonb))::int8 FROM unnest($2::text[]) AS x",
    )?;
    let t_enq = now_s();
    let mut runs = 0u64;
    while runs < spec.n {
        let k = (spec.n - runs).min(spec.enqueue_batch as u64);
        let t = now_us();
        let batch: Vec<String> = (0..k).map(|_| payload(t, None)).collect();
        let got: i64 = c.query_one(&trigger, &[&DAG_NAME, &batch])?.get(0);
        runs += got as u64;
    }
    let enq_s = now_s() - t_enq;
    let mut wspec = spec.clone();
    wspec.queues = DAG_QUEUES.iter().map(|q| q.to_string()).collect();
    let tasks = 3 * spec.n;
    let (t0, secs, shared) = drain(&wspec, tasks)?;
    let (db_tasks, db_runs) = count_completed(&mut c, &wspec.queues, 3)?;
    if db_tasks != tasks as i64 || db_runs != spec.n as i64 {
        return Err(BenchError(format!(
            "the database has {db_tasks} of {tasks} tasks and {db_runs} of {} runs completed",
            spec.n
        )));
    }
    Ok(json!({
        "available": true, "runs": spec.n, "seconds": secs, "runs_per_s": spec.n as f64 / secs,
        "tasks_per_s": tasks as f64 / secs, "enqueue_runs_per_s": spec.n as f64 / enq_s,
        "db_completed_runs": db_runs, "db_completed_tasks": db_tasks, "t_start": t0, "t_end": t0 + secs,
        "notifies": shared.notifies.load(Ordering::SeqCst),
    }))
}

pub fn rr_keys(spec: &Spec) -> Result<Value> {
    if let Some(v) = not_available(spec, "concurrency keys") {
        return Ok(v);
    }
    if spec.keys == 0 || spec.max_runs == 0 {
        return Err(BenchError("rr_keys needs keys and max_runs".into()));
    }
    let mut p = Producer::new(spec, "producer")?;
    if !p.keyed_available() {
        return Ok(json!({
            "available": false,
            "reason": "hatchet.enqueue has no concurrency_key / max_runs / strategy parameters",
        }));
    }
    // Keys in blocks (n / keys consecutive tasks per key, so each key has a backlog deeper than max_runs and a
    // batch enqueue takes a block per call); GROUP_ROUND_ROBIN interleaves them at dispatch. The key rides in the
    // task's input ("g") so the workers can count what each key has in flight.
    let per_key = spec.n.div_ceil(spec.keys).max(1);
    let t_enq = now_s();
    let mut done = 0u64;
    while done < spec.n {
        let k = (spec.n - done).min(spec.enqueue_batch as u64);
        let t = now_us();
        let keys: Vec<String> = (done..done + k)
            .map(|i| format!("k{}", i / per_key))
            .collect();
        let batch: Vec<String> = keys.iter().map(|key| payload(t, Some(key))).collect();
        done += p.enqueue_keyed(&batch, &keys)?;
    }
    let enq_s = now_s() - t_enq;
    drop(p);
    // The database's side of the cap while the workers drain: every 20 ms, the most tasks any key has admitted
    // (`concurrency_groups.running`: ready or running) and how many keys are at their cap.
    let stop = Arc::new(AtomicBool::new(false));
    let monitor = {
        let (spec, stop) = (spec.clone(), Arc::clone(&stop));
        thread::spawn(move || -> Result<(i64, i64, u64)> {
            let mut c = systems::connect(&spec, "monitor")?;
            let q = c.prepare(
                "SELECT coalesce(max(g.running), 0)::int8,
                        (count(*) FILTER (WHERE g.running >= g.max_runs))::int8
                   FROM hatchet.concurrency_groups g",
            )?;
            let (mut most, mut at_cap, mut samples) = (0i64, 0i64, 0u64);
            while !stop.load(Ordering::SeqCst) {
                let row = c.query_one(&q, &[])?;
                most = most.max(row.get(0));
                at_cap = at_cap.max(row.get(1));
                samples += 1;
                thread::sleep(Duration::from_millis(20));
            }
            Ok((most, at_cap, samples))
        })
    };
    let drained = drain(spec, spec.n);
    stop.store(true, Ordering::SeqCst);
    let (most_admitted, keys_at_cap, samples) = monitor
        .join()
        .map_err(|_| BenchError("monitor thread panicked".into()))??;
    let (t0, secs, shared) = drained?;
    if most_admitted > spec.max_runs as i64 {
        return Err(BenchError(format!(
            "a key had {most_admitted} tasks admitted at once; max_runs is {}",
            spec.max_runs
        )));
    }
    let max_held = shared.max_held.load(Ordering::SeqCst);
    if max_held > spec.max_runs {
        return Err(BenchError(format!(
            "a key had {max_held} tasks in flight at once; max_runs is {}",
            spec.max_runs
        )));
    }
    let mut c = systems::connect(spec, "check")?;
    let (db_tasks, _) = count_completed(&mut c, std::slice::from_ref(&spec.queue), 1)?;
    let db_keys: i64 = c
        .query_one(
            "SELECT count(DISTINCT t.concurrency->0->>'key') FROM hatchet.tasks t WHERE t.queue = $1",
            &[&spec.queue],
        )?
        .get(0);
    if db_tasks != spec.n as i64 || db_keys != spec.keys.min(spec.n) as i64 {
        return Err(BenchError(format!(
            "the database has {db_tasks} of {} tasks completed over {db_keys} of {} keys",
            spec.n, spec.keys
        )));
    }
    Ok(json!({
        "available": true, "n": spec.n, "keys": db_keys, "max_runs": spec.max_runs, "seconds": secs,
        "tasks_per_s": spec.n as f64 / secs, "enqueue_per_s": spec.n as f64 / enq_s,
        "max_in_flight_per_key": max_held, "max_admitted_per_key": most_admitted, "max_keys_at_cap": keys_at_cap,
        "admission_samples": samples, "db_completed_tasks": db_tasks, "t_start": t0, "t_end": t0 + secs,
    }))
}

/// Fixed windows as `hatchet._take_rate_limits` keeps them, replayed from the database's timestamps: the first
/// window opens at `first_refill` (`put_rate_limit`), and the first take at or after a window's end opens the next
/// one. Returns the units taken in each window and when each window opened (epoch µs).
fn windows(first_refill: i64, takes: &[i64]) -> (Vec<u64>, Vec<i64>) {
    let mut counts = vec![0u64];
    let mut starts = vec![first_refill];
    for &t in takes {
        let open = *starts.last().unwrap_or(&first_refill);
        if t >= open + WINDOW_US {
            starts.push(t);
            counts.push(0);
        }
        if let Some(c) = counts.last_mut() {
            *c += 1;
        }
    }
    (counts, starts)
}

pub fn rate_limit(spec: &Spec) -> Result<Value> {
    if let Some(v) = not_available(spec, "rate limits") {
        return Ok(v);
    }
    let limit = spec.rate_limit as i32;
    let mut c = systems::connect(spec, "producer")?;
    let enqueue = c.prepare(&format!(
        "SELECT cardinality(hatchet.enqueue_many($1::text, $2::text[]::jsonb[],
                                                 rate_limits => '[{{\"key\": \"{RATE_KEY}\", \"units\": 1}}]'))::int8"
    ))?;
    let t_enq = now_s();
    let mut done = 0u64;
    while done < spec.n {
        let k = (spec.n - done).min(spec.enqueue_batch as u64);
        let t = now_us();
        let batch: Vec<String> = (0..k).map(|_| payload(t, None)).collect();
        let got: i64 = c.query_one(&enqueue, &[&spec.queue, &batch])?.get(0);
        done += got as u64;
    }
    let enq_s = now_s() - t_enq;
    // The limit is created just before the workers start, so its first window is the drain's first second.
    c.execute(
        "SELECT hatchet.put_rate_limit($1::text, $2::int4, 'SECOND')",
        &[&RATE_KEY, &limit],
    )?;
    let first_refill: i64 = c
        .query_one(
            "SELECT (extract(epoch FROM r.last_refill) * 1000000)::int8 FROM hatchet.rate_limits r
              WHERE r.key = $1",
            &[&RATE_KEY],
        )?
        .get(0);
    let (t0, secs, _shared) = drain(spec, spec.n)?;
    // Every attempt's assignment time (dequeue's clock reading, the `p_now` its rate-limit take used).
    let takes: Vec<i64> = c
        .query(
            "SELECT (extract(epoch FROM e.assigned_at) * 1000000)::int8
               FROM hatchet.task_events e
               JOIN hatchet.tasks t
                 ON t.tenant_id = e.tenant_id AND t.inserted_at = e.task_inserted_at AND t.id = e.task_id
              WHERE t.queue = $1 AND e.event_type = 'COMPLETED'
              ORDER BY 1",
            &[&spec.queue],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if takes.len() as u64 != spec.n {
        return Err(BenchError(format!(
            "the database has {} of {} tasks completed",
            takes.len(),
            spec.n
        )));
    }
    let (counts, starts) = windows(first_refill, &takes);
    let max_units = counts.iter().copied().max().unwrap_or(0);
    let over = counts.iter().filter(|&&u| u > spec.rate_limit).count();
    if over > 0 {
        return Err(BenchError(format!(
            "{over} of {} windows took more than {} units (most: {max_units})",
            counts.len(),
            spec.rate_limit
        )));
    }
    // Windows that could be filled (all but the last, which gets what is left): how full they were, and how long
    // a window really lasted (a refill waits for the next claim after the window's end).
    let full = &counts[..counts.len().saturating_sub(1)];
    let mean_full = if full.is_empty() {
        0.0
    } else {
        full.iter().sum::<u64>() as f64 / full.len() as f64
    };
    let periods: Vec<f64> = starts
        .windows(2)
        .map(|w| (w[1] - w[0]) as f64 / 1000.0)
        .collect();
    let mean_period_ms = if periods.is_empty() {
        0.0
    } else {
        periods.iter().sum::<f64>() / periods.len() as f64
    };
    // The best a limiter with this rule can do: `limit` units at the start of every window.
    let ideal_s = (spec.n.div_ceil(spec.rate_limit).saturating_sub(1)) as f64;
    Ok(json!({
        "available": true, "n": spec.n, "limit_per_s": spec.rate_limit, "seconds": secs,
        "tasks_per_s": spec.n as f64 / secs, "enqueue_per_s": spec.n as f64 / enq_s,
        "windows": counts.len(), "max_units_per_window": max_units, "windows_over_limit": over,
        "mean_units_per_full_window": mean_full, "mean_window_ms": mean_period_ms, "ideal_seconds": ideal_s,
        "db_completed_tasks": takes.len(), "t_start": t0, "t_end": t0 + secs,
    }))
}

#[cfg(test)]
mod tests {
    use super::windows;

    #[test]
    fn windows_follow_the_fixed_window_rule() {
        // Opened at 0: takes at 0.1 s and 0.9 s; 1.0 s opens the next window; 1.5 s stays in it; 2.2 s opens a third.
        let (counts, starts) = windows(0, &[100_000, 900_000, 1_000_000, 1_500_000, 2_200_000]);
        assert_eq!(counts, vec![2, 2, 1]);
        assert_eq!(starts, vec![0, 1_000_000, 2_200_000]);
        // A take before the window's end never opens a new one.
        let (counts, _) = windows(0, &[999_999]);
        assert_eq!(counts, vec![1]);
    }
}
