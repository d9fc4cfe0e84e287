//! The two SQL-path systems behind one interface: a [`Producer`] that enqueues, a [`Worker`] that claims,
//! "runs" (no-op tasks) and completes, and [`claim_one`] for the backlog scenario.
//!
//! Both systems use the protocol each one is meant to be used with:
//!
//! * **baseline**, the table queue everyone starts from: `BEGIN; SELECT … ORDER BY id LIMIT n FOR UPDATE SKIP
//!   LOCKED;` run the batch; `DELETE … WHERE id = ANY(…); COMMIT`. One transaction per batch, at-least-once (the
//!   row locks are the lease), and no history: a finished task is gone.
//! * **pg_hatchet**: one transaction per batch that first completes the previous batch with
//!   `hatchet.complete_many` and then claims the next with `hatchet.dequeue` ("bundled acking", as Oban Pro and
//!   DESIGN.md's hot-path notes describe). Tasks run outside any transaction, as a real worker's would.

use crate::clock::now_us;
use crate::spec::{BenchError, Result, Spec, SystemKind};
use postgres::{Client, NoTls, Statement};
use std::time::Duration;

/// DDL of the baseline queue: an identity key for FIFO order and the payload. No status column, no history.
const BASELINE_DDL: &str = "
    CREATE TABLE IF NOT EXISTS bench_queue (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        payload jsonb NOT NULL
    )";

/// A claimed task as the benchmark sees it.
#[derive(Clone, Debug)]
pub struct Task {
    /// Producer's wall clock just before the enqueue call, microseconds since the epoch.
    pub t_us: i64,
    /// Tenant tag used by the fairness scenario ("A" or "B"), if any.
    pub group: Option<String>,
    key: TaskKey,
}

#[derive(Clone, Debug)]
enum TaskKey {
    Row(i64),
    Attempt(String, i32),
}

/// Opens a connection with an `application_name` that names the system and role, so `pg_stat_activity` shows
/// who is who while a benchmark runs.
pub fn connect(spec: &Spec, role: &str) -> Result<Client> {
    let system = match spec.system {
        SystemKind::Baseline => "baseline",
        SystemKind::Hatchet => "pg_hatchet",
    };
    let conn = format!("{} application_name=bench-{system}-{role}", spec.conn);
    Ok(Client::connect(&conn, NoTls)?)
}

/// Creates what the system needs in its (fresh) database. pg_hatchet's extension is created by the orchestrator,
/// so here it is only checked.
pub fn setup(spec: &Spec) -> Result<serde_json::Value> {
    let mut c = connect(spec, "setup")?;
    match spec.system {
        SystemKind::Baseline => {
            c.batch_execute(BASELINE_DDL)?;
            Ok(serde_json::json!({}))
        }
        SystemKind::Hatchet => {
            let version: Option<String> = c
                .query_opt(
                    "SELECT extversion FROM pg_extension WHERE extname = 'pg_hatchet'",
                    &[],
                )?
                .map(|r| r.get(0));
            let version =
                version.ok_or_else(|| BenchError("extension pg_hatchet is not created".into()))?;
            Ok(
                serde_json::json!({ "extversion": version, "concurrency_keys": concurrency_support(&mut c)? }),
            )
        }
    }
}

/// Whether `hatchet.enqueue` takes the named arguments the fairness and keyed-backlog scenarios need
/// (`concurrency_key`, `max_runs`, `strategy`); they landed after the foundation API.
pub fn concurrency_support(c: &mut Client) -> Result<bool> {
    has_concurrency_args(c, "enqueue")
}

fn has_concurrency_args(c: &mut Client, function: &str) -> Result<bool> {
    let row = c.query_one(
        "SELECT coalesce(bool_or(p.proargnames @> ARRAY['concurrency_key','max_runs','strategy']), false)
           FROM pg_proc p
          WHERE p.pronamespace = 'hatchet'::regnamespace AND p.proname = $1",
        &[&function],
    )?;
    Ok(row.get(0))
}

/// Builds the JSON input of a task: the enqueue timestamp and, for fairness, the tenant tag.
pub fn payload(t_us: i64, group: Option<&str>) -> String {
    match group {
        Some(g) => format!("{{\"t\":{t_us},\"g\":\"{g}\"}}"),
        None => format!("{{\"t\":{t_us}}}"),
    }
}

/// Enqueues tasks: whole batches in one statement, or one task per transaction for the latency scenario.
pub struct Producer {
    client: Client,
    kind: SystemKind,
    queue: String,
    many: Statement,
    one: Statement,
    keyed: Option<Statement>,
}

impl Producer {
    pub fn new(spec: &Spec, role: &str) -> Result<Producer> {
        let mut client = connect(spec, role)?;
        let (many, one, keyed) = match spec.system {
            SystemKind::Baseline => (
                client.prepare("INSERT INTO bench_queue (payload) SELECT x::jsonb FROM unnest($1::text[]) AS x")?,
                client.prepare("INSERT INTO bench_queue (payload) VALUES ($1::text::jsonb)")?,
                None,
            ),
            SystemKind::Hatchet => {
                // One statement per batch, the key per row. By default max_runs is high enough never to bind at
                // this worker count and batch size (fairness and backlog measure fair ordering, not capping);
                // rr_keys sets it (2).
                let max_runs = if spec.max_runs > 0 {
                    spec.max_runs as usize
                } else {
                    spec.workers * spec.batch
                };
                let keyed = if has_concurrency_args(&mut client, "enqueue_many")? {
                    // Batch enqueue takes one key per call: group the batch by key inside the statement.
                    Some(client.prepare(&format!(
                        "SELECT coalesce(sum(cardinality(hatchet.enqueue_many($1::text, g.inputs,
                                    concurrency_key => g.k, max_runs => {max_runs},
                                    strategy => 'GROUP_ROUND_ROBIN'))), 0)::int8
                           FROM (SELECT u.k, array_agg(u.x::jsonb ORDER BY u.o) AS inputs
                                   FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS u(x, k, o)
                                  GROUP BY u.k ORDER BY min(u.o)) AS g"
                    ))?)
                } else if concurrency_support(&mut client)? {
                    Some(client.prepare(&format!(
                        "SELECT count(hatchet.enqueue($1::text, u.x::jsonb, concurrency_key => u.k,
                                                      max_runs => {max_runs}, strategy => 'GROUP_ROUND_ROBIN'))
                           FROM unnest($2::text[], $3::text[]) AS u(x, k)"
                    ))?)
                } else {
                    None
                };
                (
                    client.prepare(
                        "SELECT cardinality(hatchet.enqueue_many($1::text, $2::text[]::jsonb[]))::int8",
                    )?,
                    client.prepare("SELECT hatchet.enqueue($1::text, $2::text::jsonb)::text")?,
                    keyed,
                )
            }
        };
        Ok(Producer {
            client,
            kind: spec.system,
            queue: spec.queue.clone(),
            many,
            one,
            keyed,
        })
    }

    /// Enqueues a batch in one statement (its own transaction).
    pub fn enqueue_many(&mut self, payloads: &[String]) -> Result<u64> {
        match self.kind {
            SystemKind::Baseline => Ok(self.client.execute(&self.many, &[&payloads])?),
            SystemKind::Hatchet => {
                let n: i64 = self
                    .client
                    .query_one(&self.many, &[&self.queue, &payloads])?
                    .get(0);
                Ok(n as u64)
            }
        }
    }

    /// Enqueues one task in its own transaction.
    pub fn enqueue_one(&mut self, payload: &str) -> Result<()> {
        match self.kind {
            SystemKind::Baseline => {
                self.client.execute(&self.one, &[&payload])?;
            }
            SystemKind::Hatchet => {
                self.client.query_one(&self.one, &[&self.queue, &payload])?;
            }
        }
        Ok(())
    }

    /// Whether [`Producer::enqueue_keyed`] is available (pg_hatchet with concurrency keys).
    pub fn keyed_available(&self) -> bool {
        self.keyed.is_some()
    }

    /// Enqueues a batch with a concurrency key per task (GROUP_ROUND_ROBIN).
    pub fn enqueue_keyed(&mut self, payloads: &[String], keys: &[String]) -> Result<u64> {
        let stmt = self
            .keyed
            .as_ref()
            .ok_or_else(|| BenchError("concurrency keys not available".into()))?;
        let n: i64 = self
            .client
            .query_one(stmt, &[&self.queue, &payloads, &keys])?
            .get(0);
        Ok(n as u64)
    }
}

/// One worker connection running the claim → run → complete loop.
pub struct Worker {
    client: Client,
    kind: SystemKind,
    queue: String,
    /// pg_hatchet, several queues claimed in one statement (the DAG's task queues, in this order).
    queues: Option<Vec<String>>,
    name: String,
    claim: Statement,
    finish: Statement,
    /// pg_hatchet: attempts run but not yet completed; completed at the start of the next claim transaction.
    pending: Vec<(String, i32)>,
    /// Baseline: the claim transaction stays open while the batch runs (row locks are the lease).
    in_tx: bool,
    /// NOTIFYs received on `hatchet_ready` (reported so a missing wake-up path is visible in the results).
    pub notifies: u64,
    /// Idle waits that ended by the fallback timeout instead of a NOTIFY.
    pub fallback_wakes: u64,
}

impl Worker {
    pub fn new(spec: &Spec, index: usize) -> Result<Worker> {
        let name = format!("w{index}");
        let mut client = connect(spec, &name)?;
        let (claim, finish) = match spec.system {
            SystemKind::Baseline => (
                client.prepare(
                    "SELECT id, (payload->>'t')::int8, payload->>'g' FROM bench_queue
                      ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                )?,
                client.prepare("DELETE FROM bench_queue WHERE id = ANY($1::int8[])")?,
            ),
            SystemKind::Hatchet if spec.queues.len() > 1 => (
                // Up to `batch` from each queue, in the order given (the DAG's last task first, so runs finish
                // before new ones start). A workflow task's input is the run input under "input".
                client.prepare(
                    "SELECT d.task_id::text, d.retry_count, coalesce(d.input->>'t', d.input#>>'{input,t}')::int8,
                            NULL::text
                       FROM unnest($1::text[]) WITH ORDINALITY AS q(name, o)
                       CROSS JOIN LATERAL hatchet.dequeue(q.name, $2::text, $3::int4) AS d",
                )?,
                client.prepare("SELECT hatchet.complete_many($1::text[]::uuid[], $2::int4[])::int8")?,
            ),
            SystemKind::Hatchet => {
                // Wake-ups: hatchet_ready is LISTENed to by one connection per process (scenarios.rs), which
                // wakes one idle worker per notification.
                (
                    client.prepare(
                        "SELECT task_id::text, retry_count, (input->>'t')::int8, input->>'g'
                           FROM hatchet.dequeue($1::text, $2::text, $3::int4)",
                    )?,
                    client.prepare(
                        "SELECT hatchet.complete_many($1::text[]::uuid[], $2::int4[])::int8",
                    )?,
                )
            }
        };
        Ok(Worker {
            client,
            kind: spec.system,
            queue: spec.queue.clone(),
            queues: (spec.queues.len() > 1).then(|| spec.queues.clone()),
            name,
            claim,
            finish,
            pending: Vec::new(),
            in_tx: false,
            notifies: 0,
            fallback_wakes: 0,
        })
    }

    /// Claims up to `n` tasks. Returns the tasks and the number of earlier tasks whose completion committed in
    /// the same transaction (pg_hatchet's bundled acks; always 0 for the baseline).
    pub fn claim(&mut self, n: usize) -> Result<(Vec<Task>, u64)> {
        match self.kind {
            SystemKind::Baseline => {
                self.client.batch_execute("BEGIN")?;
                let rows = self.client.query(&self.claim, &[&(n as i64)])?;
                if rows.is_empty() {
                    self.client.batch_execute("COMMIT")?;
                    return Ok((Vec::new(), 0));
                }
                self.in_tx = true;
                let tasks = rows
                    .iter()
                    .map(|r| Task {
                        key: TaskKey::Row(r.get(0)),
                        t_us: r.get::<_, Option<i64>>(1).unwrap_or(0),
                        group: r.get(2),
                    })
                    .collect();
                Ok((tasks, 0))
            }
            SystemKind::Hatchet => {
                self.client.batch_execute("BEGIN")?;
                let acked = self.complete_pending()?;
                let rows = match &self.queues {
                    Some(queues) => self
                        .client
                        .query(&self.claim, &[queues, &self.name, &(n as i32)])?,
                    None => self
                        .client
                        .query(&self.claim, &[&self.queue, &self.name, &(n as i32)])?,
                };
                self.client.batch_execute("COMMIT")?;
                let tasks = rows
                    .iter()
                    .map(|r| Task {
                        key: TaskKey::Attempt(r.get(0), r.get(1)),
                        t_us: r.get::<_, Option<i64>>(2).unwrap_or(0),
                        group: r.get(3),
                    })
                    .collect();
                Ok((tasks, acked))
            }
        }
    }

    /// Marks a run batch finished. Returns how many completions committed now (the baseline commits at once;
    /// pg_hatchet defers them to the next claim).
    pub fn finish(&mut self, tasks: &[Task]) -> Result<u64> {
        match self.kind {
            SystemKind::Baseline => {
                let ids: Vec<i64> = tasks
                    .iter()
                    .filter_map(|t| match t.key {
                        TaskKey::Row(id) => Some(id),
                        TaskKey::Attempt(..) => None,
                    })
                    .collect();
                let n = self.client.execute(&self.finish, &[&ids])?;
                self.client.batch_execute("COMMIT")?;
                self.in_tx = false;
                Ok(n)
            }
            SystemKind::Hatchet => {
                for t in tasks {
                    if let TaskKey::Attempt(id, retry) = &t.key {
                        self.pending.push((id.clone(), *retry));
                    }
                }
                Ok(0)
            }
        }
    }

    /// Commits any deferred completions (end of a run).
    pub fn flush(&mut self) -> Result<u64> {
        if self.in_tx {
            self.client.batch_execute("ROLLBACK")?;
            self.in_tx = false;
        }
        self.complete_pending()
    }

    fn complete_pending(&mut self) -> Result<u64> {
        if self.pending.is_empty() {
            return Ok(0);
        }
        let (ids, retries): (Vec<String>, Vec<i32>) = self.pending.drain(..).unzip();
        let n: i64 = self
            .client
            .query_one(&self.finish, &[&ids, &retries])?
            .get(0);
        Ok(n as u64)
    }

    /// True if this system's idle workers wait for a `hatchet_ready` wake-up instead of polling.
    pub fn listens(&self) -> bool {
        self.kind.listens()
    }

    /// Waits after an empty claim for systems that poll: the baseline sleeps its poll interval.
    pub fn wait_idle(&mut self, poll: Duration, _fallback: Duration) {
        std::thread::sleep(poll);
    }
}

/// Backlog scenario: claims one task with a fresh transaction and returns the elapsed milliseconds. The
/// baseline's claim is its whole claim-and-delete transaction (that is how it claims and finishes in one step);
/// pg_hatchet's is `dequeue(n => 1)` in autocommit, with the completion done afterwards and not timed.
pub fn claim_one(w: &mut Worker) -> Result<(f64, usize)> {
    let t0 = now_us();
    let (tasks, _) = w.claim(1)?;
    if w.kind == SystemKind::Baseline && !tasks.is_empty() {
        w.finish(&tasks)?;
    }
    let ms = (now_us() - t0) as f64 / 1000.0;
    if w.kind == SystemKind::Hatchet {
        w.finish(&tasks)?;
        w.flush()?;
    }
    Ok((ms, tasks.len()))
}

/// Runs a plain SQL statement (ANALYZE after filling a backlog).
pub fn execute(spec: &Spec, sql: &str) -> Result<()> {
    let mut c = connect(spec, "admin")?;
    c.batch_execute(sql)?;
    Ok(())
}
