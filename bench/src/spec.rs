//! The driver's input: one JSON object, the same shape for every driver (see bench/README.md).

use serde_json::Value;
use std::fmt;

/// Any failure of the driver: a bad spec, a connection or SQL error, or an unmet expectation (e.g. fewer tasks
/// completed than enqueued). It is reported as `{"ok": false, "error": ...}` and makes the run count as failed.
#[derive(Debug)]
pub struct BenchError(pub String);

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BenchError {}

impl From<postgres::Error> for BenchError {
    fn from(err: postgres::Error) -> Self {
        // Show the server's message and SQLSTATE, not only "db error".
        match err.as_db_error() {
            Some(db) => BenchError(format!("{} (SQLSTATE {})", db.message(), db.code().code())),
            None => BenchError(err.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, BenchError>;

/// Which SQL-path system the driver talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SystemKind {
    /// A plain table claimed with `FOR UPDATE SKIP LOCKED` in batches and deleted on completion.
    Baseline,
    /// The pg_hatchet extension's SQL API (`hatchet.enqueue_many`, `hatchet.dequeue`, `hatchet.complete_many`).
    Hatchet,
}

impl SystemKind {
    /// True if idle workers wait for a `hatchet_ready` NOTIFY (pg_hatchet) instead of polling (the baseline).
    pub fn listens(self) -> bool {
        matches!(self, SystemKind::Hatchet)
    }
}

/// Parameters of one driver run. Fields a scenario does not use are ignored.
#[derive(Clone, Debug)]
pub struct Spec {
    pub system: SystemKind,
    pub scenario: String,
    /// libpq-style connection string (key=value pairs).
    pub conn: String,
    pub queue: String,
    /// Number of tasks (enqueue, work, backlog size).
    pub n: u64,
    /// Tasks per enqueue statement.
    pub enqueue_batch: usize,
    /// Tasks claimed per dequeue by each worker.
    pub batch: usize,
    /// Worker connections.
    pub workers: usize,
    /// Offered load for the latency scenario, tasks per second.
    pub rate: f64,
    /// Length of timed scenarios (steady, latency), seconds.
    pub duration_s: f64,
    /// Leading part of a timed scenario excluded from the figures, seconds.
    pub warmup_s: f64,
    /// Producer stops adding while this many tasks are waiting (steady state).
    pub backlog_cap: u64,
    /// Claims timed in the backlog scenario.
    pub samples: usize,
    /// Distinct concurrency keys in the backlog scenario (pg_hatchet only; 0 = none).
    pub keys: u64,
    /// Fairness: tasks from tenant A, then from tenant B.
    pub fair_a: u64,
    pub fair_b: u64,
    /// Idle poll interval when a worker found nothing (baseline; pg_hatchet falls back to it between NOTIFYs).
    pub idle_poll_ms: u64,
    /// pg_hatchet: longest idle wait for a NOTIFY before claiming again anyway.
    pub notify_fallback_ms: u64,
    /// Latency scenario: how long to wait for the queued tail after the last send before stopping.
    pub tail_s: f64,
    /// Give up after this many seconds (a stuck system must not hang the whole benchmark).
    pub timeout_s: f64,
    /// Concurrency keys' `max_runs` (rr_keys); 0 = high enough never to bind (workers x batch).
    pub max_runs: u64,
    /// rate_limit scenario: units per one-second window of the limit the tasks take one unit of.
    pub rate_limit: u64,
    /// Queues a pg_hatchet worker claims from in one statement (set by the dag scenario; empty = `queue`).
    pub queues: Vec<String>,
}

impl Spec {
    pub fn parse(raw: &str) -> Result<Spec> {
        let v: Value =
            serde_json::from_str(raw).map_err(|e| BenchError(format!("spec is not JSON: {e}")))?;
        let system = match v["system"].as_str() {
            Some("baseline") => SystemKind::Baseline,
            Some("pg_hatchet") => SystemKind::Hatchet,
            other => return Err(BenchError(format!("unknown system {other:?}"))),
        };
        let int = |k: &str, d: u64| v[k].as_u64().unwrap_or(d);
        let float = |k: &str, d: f64| v[k].as_f64().unwrap_or(d);
        Ok(Spec {
            system,
            scenario: v["scenario"].as_str().unwrap_or("").to_string(),
            conn: v["conn"]
                .as_str()
                .ok_or_else(|| BenchError("spec needs \"conn\"".into()))?
                .to_string(),
            queue: v["queue"].as_str().unwrap_or("bench").to_string(),
            n: int("n", 1000),
            enqueue_batch: int("enqueue_batch", 1000).max(1) as usize,
            batch: int("batch", 100).max(1) as usize,
            workers: int("workers", 4).max(1) as usize,
            rate: float("rate", 200.0),
            duration_s: float("duration_s", 10.0),
            warmup_s: float("warmup_s", 1.0),
            backlog_cap: int("backlog_cap", 5000),
            samples: int("samples", 200).max(1) as usize,
            keys: int("keys", 0),
            fair_a: int("fair_a", 50_000),
            fair_b: int("fair_b", 50),
            idle_poll_ms: int("idle_poll_ms", 2),
            tail_s: float("tail_s", 30.0),
            notify_fallback_ms: int("notify_fallback_ms", 100),
            timeout_s: float("timeout_s", 600.0),
            max_runs: int("max_runs", 0),
            rate_limit: int("rate_limit", 1000).max(1),
            queues: Vec::new(),
        })
    }
}
