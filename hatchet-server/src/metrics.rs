//! Prometheus metrics served on `GET /metrics`, per tenant.
//!
//! `/metrics` takes the same bearer API token as the REST API, and a scrape shows only the token's tenant: every
//! series but `hatchet_database_up` carries a `tenant_id` label, and the others' series are left out. A token is
//! what a tenant already has (Prometheus sends it with `authorization: {credentials_file: ...}`), and queue names,
//! volumes and latencies are a tenant's own business, so neither an anonymous caller nor another tenant learns them.
//!
//! Each [`AppState`](crate::state::AppState) owns its own registry (not the process-global one), so several servers
//! in one process (the integration tests) never collide. Queue depth is read from the database at scrape time, for
//! the scraping tenant only, so it is right even with several servers in front of one database; the counters and
//! the latency histogram are per server and are fed by the assignment and completion paths as they land.

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use uuid::Uuid;

/// Buckets for queue-to-start latency, in seconds: from a hot path (milliseconds) to a backlog (minutes).
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// The label every per-tenant series carries.
const TENANT: &str = "tenant_id";

/// The server's metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// `hatchet_database_up`: 1 if the last scrape could query the database.
    pub database_up: IntGauge,
    /// `hatchet_assignments_total{tenant_id}`: task attempts handed to workers.
    pub assignments: IntCounterVec,
    /// `hatchet_trigger_assignments_total{tenant_id}`: of those, the attempts assigned in the transaction of the
    /// trigger that made them ready (one commit for both; see `dispatch::assigner`).
    pub trigger_assignments: IntCounterVec,
    /// `hatchet_completions_total{tenant_id}`: attempts reported COMPLETED by workers.
    pub completions: IntCounterVec,
    /// `hatchet_failures_total{tenant_id}`: attempts reported FAILED by workers (retries included).
    pub failures: IntCounterVec,
    /// `hatchet_queue_to_start_seconds{tenant_id}`: time from a task becoming ready to its assignment.
    pub queue_to_start: HistogramVec,
}

impl Metrics {
    /// Creates and registers every metric.
    pub(crate) fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let database_up = IntGauge::new(
            "hatchet_database_up",
            "1 if the last scrape could read queue depths from the database, else 0.",
        )?;
        let assignments = IntCounterVec::new(
            Opts::new(
                "hatchet_assignments_total",
                "Task attempts assigned to workers.",
            ),
            &[TENANT],
        )?;
        let trigger_assignments = IntCounterVec::new(
            Opts::new(
                "hatchet_trigger_assignments_total",
                "Task attempts assigned in the transaction of the trigger that made them ready.",
            ),
            &[TENANT],
        )?;
        let completions = IntCounterVec::new(
            Opts::new(
                "hatchet_completions_total",
                "Task attempts reported completed.",
            ),
            &[TENANT],
        )?;
        let failures = IntCounterVec::new(
            Opts::new("hatchet_failures_total", "Task attempts reported failed."),
            &[TENANT],
        )?;
        let queue_to_start = HistogramVec::new(
            HistogramOpts::new(
                "hatchet_queue_to_start_seconds",
                "Seconds from a task becoming ready to its assignment to a worker.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &[TENANT],
        )?;
        registry.register(Box::new(database_up.clone()))?;
        registry.register(Box::new(assignments.clone()))?;
        registry.register(Box::new(trigger_assignments.clone()))?;
        registry.register(Box::new(completions.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(queue_to_start.clone()))?;
        Ok(Self {
            registry,
            database_up,
            assignments,
            trigger_assignments,
            completions,
            failures,
            queue_to_start,
        })
    }

    /// Counts attempts completed for a tenant.
    pub(crate) fn completed(&self, tenant: Uuid, n: i32) {
        self.completions
            .with_label_values(&[tenant.to_string().as_str()])
            .inc_by(n.max(0) as u64);
    }

    /// Counts one attempt reported FAILED for `tenant`.
    pub(crate) fn failed(&self, tenant: Uuid) {
        self.failures
            .with_label_values(&[tenant.to_string().as_str()])
            .inc();
    }

    /// Renders the metrics of one tenant in the Prometheus text format, with `depths` (that tenant's ready
    /// queues, read at scrape time) as `hatchet_queue_depth{tenant_id, queue}`. The tenant's counters appear
    /// (at zero) even before anything happened, so dashboards and alerts see them from the first scrape.
    pub(crate) fn render_for(
        &self,
        tenant: Uuid,
        depths: &[crate::db::maintenance::QueueDepth],
    ) -> Result<String, prometheus::Error> {
        let tenant = tenant.to_string();
        for counter in [
            &self.assignments,
            &self.trigger_assignments,
            &self.completions,
            &self.failures,
        ] {
            counter.with_label_values(&[tenant.as_str()]);
        }
        self.queue_to_start.with_label_values(&[tenant.as_str()]);

        let queue_depth = IntGaugeVec::new(
            Opts::new(
                "hatchet_queue_depth",
                "Tasks ready to be assigned, per tenant and queue.",
            ),
            &[TENANT, "queue"],
        )?;
        for d in depths {
            queue_depth
                .with_label_values(&[tenant.as_str(), d.queue.as_str()])
                .set(d.depth);
        }
        let mut families: Vec<MetricFamily> = Vec::new();
        for mut family in self
            .registry
            .gather()
            .into_iter()
            .chain(queue_depth.collect())
        {
            let metrics: Vec<_> = family
                .take_metric()
                .into_iter()
                .filter(|m| {
                    m.get_label()
                        .iter()
                        .find(|l| l.name() == TENANT)
                        .is_none_or(|l| l.value() == tenant)
                })
                .collect();
            if !metrics.is_empty() {
                family.set_metric(metrics);
                families.push(family);
            }
        }
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut buf = Vec::new();
        TextEncoder::new().encode(&families, &mut buf)?;
        String::from_utf8(buf).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}
