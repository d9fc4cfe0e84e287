"""The systems under test: how to drive each one, what it needs, and its configuration with the reason for it.

Every driver takes the same JSON spec and prints one JSON result line (bench/README.md, "Driver contract"), so the
orchestrator only needs the command line of each.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from cluster import PG_SHAREDIR, hatchet_installed

BENCH = Path(__file__).resolve().parent.parent
WORK = BENCH / "work"


@dataclass
class System:
    name: str
    label: str
    #: "pg" systems keep their queue in Postgres; "redis" in Redis.
    store: str
    command: list[str]
    #: One line per configuration choice, with the documentation it follows.
    config: list[str]
    extensions: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    #: Why the system cannot run here, or None.
    unavailable: str | None = None
    #: The system name the driver knows it by (a variant of another system), else `name`.
    driver_name: str | None = None
    #: The database it runs in, else bench_<name> (a variant shares its system's database, which the
    #: extension's background worker serves).
    db_name: str | None = None
    #: SQL run in the fresh database after its extensions are created.
    post_sql: tuple[str, ...] = ()
    #: Run only when named in --systems (a measurement variant, not a peer).
    optional: bool = False

    @property
    def db(self) -> str:
        return self.db_name or f"bench_{self.name}"


#: Turns every function of schema hatchet SECURITY INVOKER without a pinned search_path (see pg_hatchet_invoker).
UNHARDEN_SQL = """
DO $$
DECLARE f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
              WHERE p.pronamespace = 'hatchet'::regnamespace AND p.prokind IN ('f', 'p')
    LOOP
        EXECUTE format('ALTER ROUTINE %s SECURITY INVOKER RESET search_path', f);
    END LOOP;
END $$
"""


def rust_driver() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", BENCH.parent / "target-bench"))
    return target / "release" / "hatchet-bench"


def all_systems() -> list[System]:
    node = shutil.which("node") or "node"
    py = str(WORK / "venv" / "bin" / "python")
    node_env = {"NODE_PATH": str(WORK / "node" / "node_modules")}
    rust = str(rust_driver())
    systems = [
        System(
            "pg_hatchet", "pg_hatchet (SQL)", "pg", [rust],
            [
                "enqueue: `hatchet.enqueue_many(queue, inputs)` in batches; latency: `hatchet.enqueue` per task",
                "workers: one transaction per batch = `complete_many` of the previous batch + `dequeue(queue, worker, batch)`"
                " (bundled acking, DESIGN.md hot path); tasks run outside the transaction",
                "idle workers wait for `hatchet_ready`: one LISTEN connection wakes one idle worker per notification (sql-api.md), 100 ms fallback",
            ],
            extensions=("pg_hatchet",),
            unavailable=None if hatchet_installed() else
            f"extension not installed ({PG_SHAREDIR}/extension/pg_hatchet.control missing)",
        ),
        # The cost check of the privilege model (issue 15): the same extension with every function of schema
        # hatchet turned SECURITY INVOKER and its pinned search_path removed, run in the same database name (the
        # background worker serves it) and alternated with pg_hatchet in every repetition. Only with --systems.
        System(
            "pg_hatchet_invoker", "pg_hatchet, no SECURITY DEFINER / pinned path", "pg", [rust],
            [
                "pg_hatchet as above, then `ALTER FUNCTION … SECURITY INVOKER RESET search_path` on every function of"
                " schema hatchet (the driver connects as a superuser): what the privilege model's function attributes cost",
            ],
            extensions=("pg_hatchet",),
            driver_name="pg_hatchet",
            db_name="bench_pg_hatchet",
            post_sql=(UNHARDEN_SQL,),
            optional=True,
            unavailable=None if hatchet_installed() else
            f"extension not installed ({PG_SHAREDIR}/extension/pg_hatchet.control missing)",
        ),
        System(
            "baseline", "SKIP LOCKED table", "pg", [rust],
            [
                "one table (identity key + jsonb payload), no status column, no history",
                "workers: `BEGIN; SELECT … ORDER BY id LIMIT batch FOR UPDATE SKIP LOCKED`; run; `DELETE … WHERE id = ANY(…); COMMIT`",
                "enqueue: one `INSERT … SELECT unnest(…)` per batch",
                "idle workers poll every `idle_poll_ms` (no LISTEN/NOTIFY: the naive starting point)",
            ],
        ),
        System(
            "graphile", "Graphile Worker", "pg", [node, str(BENCH / "drivers" / "node" / "graphile.js")],
            [
                "`processes` Node processes, `concurrentJobs` = concurrency / processes each (Node is single-threaded;"
                " the published perfTest runs several processes)",
                "localQueue.size = 500 (docs/performance.md: the published 184k jobs/s configuration; \"Batching\": much"
                " higher than concurrentJobs + 1 for very high throughput of fast tasks)",
                "completeJobBatchDelay = failJobBatchDelay = 0 (docs/performance.md, the 184k jobs/s configuration)",
                "maxPoolSize = max(10, concurrentJobs + 2) (maxPoolSize option doc)",
                "enqueue: `addJobs` batches; latency: `addJob` per task; LISTEN/NOTIFY wake-ups (built in)",
            ],
            env=node_env,
        ),
        System(
            "pgboss", "pg-boss", "pg", [node, str(BENCH / "drivers" / "node" / "pgboss.js")],
            [
                "queue created with `createQueue` (required since v10), default `standard` policy, maintenance at defaults",
                "workers: `workers` loops of `fetch(queue, {batchSize: batch})` + `complete(queue, ids)` (batch API in the docs)",
                "`work()` is not used: it waits pollingIntervalSeconds (>= 0.5 s) between fetches unless notified in-process",
                "idle loops poll every `idle_poll_ms`, like the baseline; enqueue: `insert` batches; latency: `send` per job",
            ],
            env=node_env,
        ),
        System(
            "procrastinate", "Procrastinate", "pg", [py, str(BENCH / "drivers" / "python" / "procrastinate_driver.py")],
            [
                "one worker process, async task, `concurrency` jobs at once (howto/production/concurrency)",
                "`listen_notify=True` (default), `delete_jobs='never'` (default: jobs kept as history)",
                "connection pool of 2 × concurrency + 2 (discussions: \"Mind the size of your PostgreSQL pool\" asks for at"
                " least concurrency + 1, which ran out of connections in a 20,000-job drain)",
                "enqueue: `batch_defer_async` batches; latency: `defer_async` per job; no batch fetch exists",
            ],
        ),
        System(
            "celery", "Celery + Redis", "redis", [py, str(BENCH / "drivers" / "python" / "celery_driver.py")],
            [
                "prefork pool, `--concurrency` = concurrency; `worker_prefetch_multiplier` 64 (Optimizing guide: large for many short tasks)",
                "results ignored (no result backend), early ack (default); `--without-gossip --without-mingle --without-heartbeat`",
                "Redis 7 from Debian, default RDB snapshots, no AOF: enqueues are not durable the way a Postgres commit is",
                "no batch enqueue in Celery: `apply_async` per task over one held broker connection",
            ],
            unavailable=None if shutil.which("redis-server") else "redis-server not installed (apt-get install redis-server)",
        ),
    ]
    for s in systems:
        if s.unavailable is None and s.command[0] == rust and not Path(rust).exists():
            s.unavailable = f"driver not built ({rust})"
        if s.unavailable is None and s.name in ("graphile", "pgboss") and not (WORK / "node" / "node_modules").exists():
            s.unavailable = "node packages not installed (bench/run.sh installs them)"
        if s.unavailable is None and s.name in ("procrastinate", "celery") and not Path(py).exists():
            s.unavailable = "Python venv missing (bench/run.sh creates it)"
    return systems
