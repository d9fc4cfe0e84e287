//! Prometheus metrics served on `GET /metrics`.
//!
//! Each [`AppState`](crate::state::AppState) owns its own registry (not the process-global one), so several servers
//! in one process (the integration tests) never collide. Queue depth is read from the database at scrape time, so it is
//! right even with several servers in front of one database; the counters and the latency histogram are
//! per-server and are fed by the assignment and completion paths as they land.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Buckets for queue-to-start latency, in seconds: from a hot path (milliseconds) to a backlog (minutes).
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// The server's metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// `hatchet_queue_depth{tenant_id, queue}`: items ready to run, refreshed at each scrape.
    pub queue_depth: IntGaugeVec,
    /// `hatchet_database_up`: 1 if the last scrape could query the database.
    pub database_up: IntGauge,
    /// `hatchet_assignments_total`: task attempts handed to workers.
    pub assignments: IntCounter,
    /// `hatchet_completions_total`: attempts reported COMPLETED by workers.
    pub completions: IntCounter,
    /// `hatchet_failures_total`: attempts reported FAILED by workers (retries included).
    pub failures: IntCounter,
    /// `hatchet_queue_to_start_seconds`: time from a task becoming ready to its assignment.
    pub queue_to_start: Histogram,
}

impl Metrics {
    /// Creates and registers every metric.
    pub(crate) fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let queue_depth = IntGaugeVec::new(
            Opts::new(
                "hatchet_queue_depth",
                "Tasks ready to be assigned, per tenant and queue.",
            ),
            &["tenant_id", "queue"],
        )?;
        let database_up = IntGauge::new(
            "hatchet_database_up",
            "1 if the last scrape could read queue depths from the database, else 0.",
        )?;
        let assignments = IntCounter::new(
            "hatchet_assignments_total",
            "Task attempts assigned to workers.",
        )?;
        let completions = IntCounter::new(
            "hatchet_completions_total",
            "Task attempts reported completed.",
        )?;
        let failures = IntCounter::new("hatchet_failures_total", "Task attempts reported failed.")?;
        let queue_to_start = Histogram::with_opts(
            HistogramOpts::new(
                "hatchet_queue_to_start_seconds",
                "Seconds from a task becoming ready to its assignment to a worker.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )?;
        registry.register(Box::new(queue_depth.clone()))?;
        registry.register(Box::new(database_up.clone()))?;
        registry.register(Box::new(assignments.clone()))?;
        registry.register(Box::new(completions.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(queue_to_start.clone()))?;
        Ok(Self {
            registry,
            queue_depth,
            database_up,
            assignments,
            completions,
            failures,
            queue_to_start,
        })
    }

    /// Replaces the queue depth series (queues that drained disappear instead of reporting a stale value).
    pub(crate) fn set_queue_depths(&self, depths: &[crate::db::maintenance::QueueDepth]) {
        self.queue_depth.reset();
        for d in depths {
            self.queue_depth
                .with_label_values(&[d.tenant_id.to_string().as_str(), d.queue.as_str()])
                .set(d.depth);
        }
    }

    /// Renders every metric in the Prometheus text format.
    pub(crate) fn render(&self) -> Result<String, prometheus::Error> {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        String::from_utf8(buf).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}
