-- pg_hatchet schema: every table, type and index of the extension (definitions, work in flight, history). The other
-- files of sql/ hold functions only, one file per entity, and are installed in this order (pg_hatchet/src/lib.rs):
--   schema.sql        tables, types, indexes, their comments (this file; calls nothing)
--   tenants.sql       the default tenant
--   options.sql       checks of caller-supplied options and JSON shared by several files
--   tasks.sql         the task lifecycle: enqueue, dequeue, complete, fail, refresh, cancel, status, timeline, logs
--   flow_control.sql  concurrency gates and rate limits (put, pause, list)
--   workers.sql       the worker registry, heartbeats, labels, slots and assignment
--   workflows.sql     workflow definitions: registration and what a definition says about its tasks
--   runs.sql          workflow runs: DAG advancement (matches and conditions), run, cancel, replay, status, reads
--   events.sql        events (push, list) and event filters
--   webhooks.sql      incoming webhooks, turned into events
--   crons.sql         crons, one-off schedules and firing what is due
--   streams.sql       stream chunks put by running tasks, read by run subscribers
--   alerts.sql        alert channels (slack, webhook, email) and the alerts enqueued when a task fails for good
--   durable.sql       durable execution: the event log of a durable task, its waits, children, memo and eviction
--   maintenance.sql   the background worker's pass: partitions, reapers, pruning
--   dashboard.sql     reads for the dashboard of hatchet-server: workflow details, concurrency keys, queue statistics
--   security.sql      the group roles, tenant bindings and privileges (its two tables are there, with it; last)
-- Each file's header lists its public functions and which other files it may call.
--
-- Conventions of the function files:
--   * Every hot operation is one set-based statement (data-modifying CTEs), so PL/pgSQL's cached plan does the work
--     and a batch costs one round trip. Single-row functions call the batch code with one element.
--   * Every function pins `SET search_path = pg_catalog, pg_temp` and names the extension's own objects hatchet.x, so
--     a caller's search_path cannot redirect a name to an object planted in a schema on it (CVE-2018-1058 class). The
--     path must be pinned, not assumed: a better-matching overload (format(text, text) against format's VARIADIC
--     "any", an = on one enum type against anyenum, text || integer against anynonarray) wins over pg_catalog's own
--     even when pg_catalog is searched first. The API functions are SECURITY DEFINER (run as the extension's owner, so
--     no role needs privileges on the tables) and resolve their tenant with hatchet._tenant (docs/security.md); the
--     internal `_` helpers are not, and only the owner may execute them.
--     Not pinned: four helpers called per row inside hot statements, where a SET clause costs a GUC save and restore
--     per call and keeps a LANGUAGE sql function from being inlined. They qualify every name instead (pg_catalog.f,
--     OPERATOR(pg_catalog.=), pg_catalog.text), and every pinned caller reaches them with its safe path anyway.
--     Measured per call, unpinned vs pinned (PG 15, this 2-core machine):
--       _event_key_matches  per event x trigger pattern in _push_events (inlined)      0.16 vs 2.0 us
--       _label_matches      per worker x desired label in assign                      1.3 vs 2.6 us
--       _worker_score       per candidate x worker in assign (2 labels)               6.3 vs 10.5 us
--       _queue_vtime        per admitted task (_admit), per batch (_enqueue_batch)    3.1 vs 4.4 us
--     Every other helper runs once per call or costs far more than the 1 to 1.5 us a pinned path adds (the hot
--     path of dequeue, complete_many and enqueue_many adds a handful of pinned calls per batch of 100 to 1,000).
--     tests/regress/sql/95_search_path.sql plants look-alikes on the caller's path and shows that none of them runs.
--   * Errors come from hatchet.raise_error (Rust), so every message and SQLSTATE has one source.
--   * Parameters are copied into p_/v_ variables first: several parameter names are also column names.
--   * Functions named with a leading underscore are internal helpers, not API.
--
-- Three kinds of tables, following Hatchet's proven split:
--   * definitions (tenants, workflows, versions, task definitions, workers, rate limits, crons): small, updated rarely;
--   * work in flight (ready_queue, delayed_queue, running, concurrency and rate-limit parking, pending matches): small,
--     hot, rows are DELETEd when they move on, aggressive autovacuum;
--   * history (runs, tasks, task_events, payloads, events, logs, run_outcomes): append-only, range-partitioned by day
--     and dropped by retention instead of DELETEd.
-- The state of an attempt is *which hot table holds it*, never a status column that would be UPDATEd on a big table.
--
-- Every table carries tenant_id and every key and hot index starts with it: on one node this costs nothing, and it is
-- what lets the schema be distributed by tenant (Citus, co-located on tenant_id) when a user outgrows one machine.
--
-- Public ids are UUIDv7 (time-ordered, generated by hatchet.gen_id()). History tables are keyed by
-- (tenant_id, inserted_at, id) where inserted_at is the UUID's own millisecond timestamp (hatchet.uuid_time), so a
-- lookup by id alone is still pruned to one daily partition and no global id->partition map is needed.

-- ---------------------------------------------------------------------------------------------------------------------
-- Types
-- ---------------------------------------------------------------------------------------------------------------------

CREATE TYPE hatchet.readable_status AS ENUM ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED');
COMMENT ON TYPE hatchet.readable_status IS 'readable status of a task (Hatchet''s RunStatus)';

-- Everything that can happen to a task, in the order a timeline usually shows them.
CREATE TYPE hatchet.task_event_type AS ENUM (
    'QUEUED',               -- the task (attempt 0) entered a queue; synthesised from tasks.inserted_at, never stored
    'SCHEDULED',            -- the task waits for run_at
    'ASSIGNED',             -- an attempt was claimed by a worker
    'TIMEOUT_REFRESHED',    -- the running attempt's timeout was extended
    'RETRYING',             -- the attempt failed and a new attempt was queued (reason says why)
    'REASSIGNED',           -- the attempt was lost with its worker and requeued (internal retry)
    'TIMED_OUT',            -- the attempt exceeded its execution timeout
    'COMPLETED',
    'FAILED',
    'CANCELLED',            -- by the user, a concurrency strategy or the schedule timeout (reason says which)
    'SKIPPED',              -- a DAG condition skipped the task
    'EVICTED'               -- a waiting durable task gave its slot back; restored when what it waits for is done
);
COMMENT ON TYPE hatchet.task_event_type IS 'kinds of entries in a task''s timeline';

CREATE TYPE hatchet.concurrency_strategy AS ENUM ('GROUP_ROUND_ROBIN', 'CANCEL_IN_PROGRESS', 'CANCEL_NEWEST');
COMMENT ON TYPE hatchet.concurrency_strategy IS 'what happens to a task arriving beyond max_runs for its key';

CREATE TYPE hatchet.sticky_strategy AS ENUM ('SOFT', 'HARD');
COMMENT ON TYPE hatchet.sticky_strategy IS 'prefer (SOFT) or require (HARD) the desired worker';

-- ---------------------------------------------------------------------------------------------------------------------
-- Tenants
-- ---------------------------------------------------------------------------------------------------------------------

CREATE TABLE hatchet.tenants (
    tenant_id    uuid        NOT NULL,
    name         text        NOT NULL,
    -- signing key for the server's JWTs; generated by hatchet-server when first needed, never leaves the database
    token_secret bytea,
    created_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT tenants_pkey PRIMARY KEY (tenant_id),
    CONSTRAINT tenants_name_key UNIQUE (name),
    CONSTRAINT tenant_name_not_empty CHECK (name <> '')
);
COMMENT ON TABLE hatchet.tenants IS 'isolation unit: every other row belongs to exactly one tenant';

INSERT INTO hatchet.tenants (tenant_id, name) VALUES ('707d0855-80ab-4e1f-a156-f1c4546cbf52', 'default');

CREATE TABLE hatchet.api_tokens (
    tenant_id  uuid        NOT NULL REFERENCES hatchet.tenants ON DELETE CASCADE,
    token_id   uuid        NOT NULL,
    name       text        NOT NULL DEFAULT 'default',
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    CONSTRAINT api_tokens_pkey PRIMARY KEY (tenant_id, token_id),
    CONSTRAINT token_expires_after_creation CHECK (expires_at > created_at)
);
COMMENT ON TABLE hatchet.api_tokens IS 'tokens minted by hatchet-server; a revoked or expired token is refused';

-- ---------------------------------------------------------------------------------------------------------------------
-- Definitions: workflows, versions, task definitions
-- ---------------------------------------------------------------------------------------------------------------------

CREATE TABLE hatchet.workflows (
    tenant_id   uuid        NOT NULL REFERENCES hatchet.tenants ON DELETE CASCADE,
    id          bigint      GENERATED ALWAYS AS IDENTITY,
    external_id uuid        NOT NULL,
    name        text        NOT NULL,
    is_paused   boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT workflows_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT workflows_name_key UNIQUE (tenant_id, name),
    CONSTRAINT workflows_external_id_key UNIQUE (tenant_id, external_id),
    CONSTRAINT workflow_name_not_empty CHECK (name <> '')
);
COMMENT ON TABLE hatchet.workflows IS 'a named workflow; its behaviour lives in its versions';

CREATE TABLE hatchet.workflow_versions (
    tenant_id        uuid        NOT NULL,
    id               bigint      GENERATED ALWAYS AS IDENTITY,
    external_id      uuid        NOT NULL,
    workflow_id      bigint      NOT NULL,
    version          text        NOT NULL DEFAULT '',
    -- md5 of the normalised definition: registering the same definition twice is a no-op
    checksum         text        NOT NULL,
    definition       jsonb       NOT NULL,
    sticky           hatchet.sticky_strategy,
    default_priority smallint    NOT NULL DEFAULT 1,
    schedule_timeout interval    NOT NULL DEFAULT '5 minutes',
    -- workflow-level concurrency: [{expression, max_runs, strategy}], limits count runs, not tasks
    concurrency      jsonb       NOT NULL DEFAULT '[]',
    event_triggers   text[]      NOT NULL DEFAULT '{}',
    cron_triggers    text[]      NOT NULL DEFAULT '{}',
    cron_input       jsonb,
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT workflow_versions_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT workflow_versions_checksum_key UNIQUE (tenant_id, workflow_id, checksum),
    CONSTRAINT workflow_versions_external_id_key UNIQUE (tenant_id, external_id),
    CONSTRAINT workflow_versions_workflow_fkey FOREIGN KEY (tenant_id, workflow_id)
        REFERENCES hatchet.workflows (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT default_priority_in_range CHECK (default_priority BETWEEN 1 AND 3),
    CONSTRAINT concurrency_is_array CHECK (jsonb_typeof(concurrency) = 'array')
);
COMMENT ON TABLE hatchet.workflow_versions IS 'an immutable version of a workflow; new runs use the latest (highest id)';

CREATE TABLE hatchet.task_definitions (
    tenant_id           uuid     NOT NULL,
    id                  bigint   GENERATED ALWAYS AS IDENTITY,
    workflow_version_id bigint   NOT NULL,
    readable_id         text     NOT NULL,
    -- the queue the task's attempts are dispatched on (Hatchet: "<workflow>:<task>")
    action              text     NOT NULL,
    parents             text[]   NOT NULL DEFAULT '{}',
    is_on_failure       boolean  NOT NULL DEFAULT false,
    is_durable          boolean  NOT NULL DEFAULT false,
    retries             integer  NOT NULL DEFAULT 0,
    backoff_factor      float8,
    backoff_max_seconds integer,
    execution_timeout   interval NOT NULL DEFAULT '60 seconds',
    schedule_timeout    interval NOT NULL DEFAULT '5 minutes',
    priority            smallint,
    -- [{expression, max_runs, strategy}] checked in array order
    concurrency         jsonb    NOT NULL DEFAULT '[]',
    -- [{key | key_expr, units | units_expr, limit_expr, duration}]
    rate_limits         jsonb    NOT NULL DEFAULT '[]',
    -- {label: {value, comparator, required, weight}}
    worker_labels       jsonb    NOT NULL DEFAULT '{}',
    -- {wait_for: [...], skip_if: [...], cancel_if: [...]} (or-groups of sleep / user event / parent output)
    conditions          jsonb    NOT NULL DEFAULT '{}',
    slot_type           text     NOT NULL DEFAULT 'default',
    slot_units          integer  NOT NULL DEFAULT 1,
    -- a batch task (hatchet.batch_task): {max_size, max_interval_ms, group_key, group_max_runs, broadcast}; NULL if not
    batch               jsonb,
    CONSTRAINT task_definitions_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT task_definitions_readable_id_key UNIQUE (tenant_id, workflow_version_id, readable_id),
    CONSTRAINT task_definitions_version_fkey FOREIGN KEY (tenant_id, workflow_version_id)
        REFERENCES hatchet.workflow_versions (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT retries_not_negative CHECK (retries >= 0),
    CONSTRAINT backoff_factor_positive CHECK (backoff_factor IS NULL OR backoff_factor > 0),
    CONSTRAINT backoff_max_positive CHECK (backoff_max_seconds IS NULL OR backoff_max_seconds > 0),
    CONSTRAINT definition_priority_in_range CHECK (priority IS NULL OR priority BETWEEN 1 AND 3),
    CONSTRAINT slot_units_positive CHECK (slot_units > 0)
);
COMMENT ON TABLE hatchet.task_definitions IS 'the tasks of a workflow version, with their DAG edges and policies';

-- ---------------------------------------------------------------------------------------------------------------------
-- Workers, slots, rate limits, concurrency groups (state shared by all claimers)
-- ---------------------------------------------------------------------------------------------------------------------

CREATE TABLE hatchet.workers (
    tenant_id         uuid        NOT NULL REFERENCES hatchet.tenants ON DELETE CASCADE,
    id                uuid        NOT NULL,
    name              text        NOT NULL,
    labels            jsonb       NOT NULL DEFAULT '{}',
    is_active         boolean     NOT NULL DEFAULT true,
    is_paused         boolean     NOT NULL DEFAULT false,
    last_heartbeat_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_at        timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT workers_pkey PRIMARY KEY (tenant_id, id)
);
COMMENT ON TABLE hatchet.workers IS 'registered workers; no heartbeat for hatchet.worker_dead_after means dead';

CREATE TABLE hatchet.worker_actions (
    tenant_id uuid NOT NULL,
    worker_id uuid NOT NULL,
    action    text NOT NULL,
    CONSTRAINT worker_actions_pkey PRIMARY KEY (tenant_id, action, worker_id),
    CONSTRAINT worker_actions_worker_fkey FOREIGN KEY (tenant_id, worker_id)
        REFERENCES hatchet.workers (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE hatchet.worker_actions IS 'which queues (actions) each worker serves';

CREATE TABLE hatchet.worker_slots (
    tenant_id uuid    NOT NULL,
    worker_id uuid    NOT NULL,
    slot_type text    NOT NULL DEFAULT 'default',
    capacity  integer NOT NULL,
    used      integer NOT NULL DEFAULT 0,
    CONSTRAINT worker_slots_pkey PRIMARY KEY (tenant_id, worker_id, slot_type),
    CONSTRAINT worker_slots_worker_fkey FOREIGN KEY (tenant_id, worker_id)
        REFERENCES hatchet.workers (tenant_id, id) ON DELETE CASCADE,
    -- a worker is never given more than it can run, and a released slot never goes negative
    CONSTRAINT slots_used_within_capacity CHECK (used BETWEEN 0 AND capacity)
);
COMMENT ON TABLE hatchet.worker_slots IS 'slot capacity per worker and slot type, and how much of it is in use';

-- Attempts taken from a worker declared dead, kept until it comes back under the same id (the server then sends it a
-- cancellation for each, so it stops running work that was retried elsewhere) or for a day.
CREATE TABLE hatchet.reaped_attempts (
    tenant_id   uuid        NOT NULL,
    worker_id   uuid        NOT NULL,
    task_id     uuid        NOT NULL,
    retry_count integer     NOT NULL,
    reaped_at   timestamptz NOT NULL,
    CONSTRAINT reaped_attempts_pkey PRIMARY KEY (tenant_id, worker_id, task_id, retry_count)
);
CREATE INDEX reaped_attempts_reaped_idx ON hatchet.reaped_attempts (tenant_id, reaped_at);
COMMENT ON TABLE hatchet.reaped_attempts IS
    'attempts retried because their worker was declared dead; cancelled on that worker if it comes back';

-- Per tenant, when maintenance last ran and since when it has run without a gap. A gap (Postgres down, the background
-- worker stopped) means heartbeats could not be recorded either: workers get worker_dead_after counted from the end
-- of the gap (reachable_since) before they can be declared dead, so an outage is not mistaken for their death.
CREATE TABLE hatchet.maintenance_state (
    tenant_id       uuid        NOT NULL REFERENCES hatchet.tenants ON DELETE CASCADE,
    last_pass_at    timestamptz NOT NULL,
    reachable_since timestamptz NOT NULL,
    CONSTRAINT maintenance_state_pkey PRIMARY KEY (tenant_id)
);
COMMENT ON TABLE hatchet.maintenance_state IS
    'last maintenance pass per tenant and the end of the last gap between passes (outage grace for workers)';

CREATE TABLE hatchet.rate_limits (
    tenant_id   uuid        NOT NULL REFERENCES hatchet.tenants ON DELETE CASCADE,
    key         text        NOT NULL,
    limit_value integer     NOT NULL,
    remaining   integer     NOT NULL,
    window_size interval    NOT NULL DEFAULT '1 minute',
    last_refill timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT rate_limits_pkey PRIMARY KEY (tenant_id, key),
    CONSTRAINT rate_limit_positive CHECK (limit_value > 0),
    CONSTRAINT remaining_within_limit CHECK (remaining BETWEEN 0 AND limit_value)
);
COMMENT ON TABLE hatchet.rate_limits IS 'fixed-window limits that refill to full once per window';

CREATE TABLE hatchet.concurrency_groups (
    tenant_id    uuid                         NOT NULL REFERENCES hatchet.tenants ON DELETE CASCADE,
    -- what the key is scoped to: a queue for task-level limits, 'workflow:<id>' for run-level limits
    scope        text                         NOT NULL,
    key          text                         NOT NULL,
    strategy     hatchet.concurrency_strategy NOT NULL,
    max_runs     integer                      NOT NULL,
    running      integer                      NOT NULL DEFAULT 0,
    -- start-time fair queueing: the rank given to this key's most recent queued item
    last_rank    bigint                       NOT NULL DEFAULT 0,
    CONSTRAINT concurrency_groups_pkey PRIMARY KEY (tenant_id, scope, key),
    CONSTRAINT max_runs_positive CHECK (max_runs > 0),
    -- the invariant Hatchet broke twice: never above max_runs, never negative (a leaked or double-freed slot)
    CONSTRAINT running_within_max_runs CHECK (running BETWEEN 0 AND max_runs)
);
COMMENT ON TABLE hatchet.concurrency_groups IS 'running count and fair-queueing rank per concurrency key';

-- One row per (task, concurrency group) slot a task holds. A slot is taken when the task is admitted (it may then be
-- dispatched) and given back when it finishes, is cancelled or waits for a retry backoff; `running` on the group is
-- the count of these rows, so a finished task holding a slot is visible as a row, never a drifted counter.
CREATE TABLE hatchet.concurrency_slots (
    tenant_id        uuid                         NOT NULL,
    task_id          uuid                         NOT NULL,
    scope            text                         NOT NULL,
    key              text                         NOT NULL,
    strategy         hatchet.concurrency_strategy NOT NULL,
    task_inserted_at timestamptz                  NOT NULL,
    admitted_at      timestamptz                  NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    CONSTRAINT concurrency_slots_pkey PRIMARY KEY (tenant_id, task_id, scope, key)
) WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 25, autovacuum_vacuum_cost_delay = 0);
CREATE INDEX concurrency_slots_group_idx ON hatchet.concurrency_slots (tenant_id, scope, key, admitted_at);
COMMENT ON TABLE hatchet.concurrency_slots IS 'concurrency slots held by admitted (queued or running) tasks';

-- Attempts waiting for a slot of a full concurrency group (GROUP_ROUND_ROBIN). Admitted in (priority, arrival) order
-- as slots are given back, in the same transaction that gives them back.
CREATE TABLE hatchet.concurrency_queue (
    tenant_id            uuid        NOT NULL,
    task_id              uuid        NOT NULL,
    task_inserted_at     timestamptz NOT NULL,
    id                   bigint      GENERATED ALWAYS AS IDENTITY,
    schedule_timeout_at  timestamptz NOT NULL,
    retry_count          integer     NOT NULL DEFAULT 0,
    app_retry_count      integer     NOT NULL DEFAULT 0,
    internal_retry_count integer     NOT NULL DEFAULT 0,
    -- index into tasks.concurrency of the gate this attempt waits at (earlier gates are already held)
    stage                integer     NOT NULL DEFAULT 0,
    priority             smallint    NOT NULL,
    scope                text        NOT NULL,
    key                  text        NOT NULL,
    queue                text        NOT NULL,
    run_id               uuid,
    task_definition_id   bigint,
    CONSTRAINT concurrency_queue_pkey PRIMARY KEY (tenant_id, task_id),
    CONSTRAINT waiting_priority_in_range CHECK (priority BETWEEN 1 AND 4)
) WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 25, autovacuum_vacuum_cost_delay = 0);
CREATE INDEX concurrency_queue_group_idx ON hatchet.concurrency_queue (tenant_id, scope, key, priority DESC, id);
CREATE INDEX concurrency_queue_schedule_timeout_idx ON hatchet.concurrency_queue (tenant_id, schedule_timeout_at);
COMMENT ON TABLE hatchet.concurrency_queue IS 'attempts waiting for a concurrency slot (state QUEUED)';

-- Keys where a CANCEL_IN_PROGRESS arrival waits in concurrency_queue because another transaction held every holder's
-- row when it came (hatchet._admit). The maintenance job retry_preemptions retries the preemption on these keys only
-- and forgets a key once no arrival waits on it: one probe of an (almost always) empty table per tenant and pass.
CREATE TABLE hatchet.preemption_waits (
    tenant_id uuid NOT NULL REFERENCES hatchet.tenants ON DELETE CASCADE,
    scope     text NOT NULL,
    key       text NOT NULL,
    CONSTRAINT preemption_waits_pkey PRIMARY KEY (tenant_id, scope, key)
);
COMMENT ON TABLE hatchet.preemption_waits IS
    'concurrency keys with a CANCEL_IN_PROGRESS arrival waiting to preempt a holder whose row was held';

CREATE TABLE hatchet.queues (
    tenant_id   uuid        NOT NULL REFERENCES hatchet.tenants ON DELETE CASCADE,
    name        text        NOT NULL,
    -- virtual time of start-time fair queueing: the rank most recently dispatched; new flows start here
    vtime       bigint      NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT queues_pkey PRIMARY KEY (tenant_id, name),
    CONSTRAINT queue_name_not_empty CHECK (name <> '')
);
COMMENT ON TABLE hatchet.queues IS 'known queues and their fair-queueing virtual time';

-- ---------------------------------------------------------------------------------------------------------------------
-- Work in flight. Each attempt that is not finished lives in exactly one of these tables.
-- Columns are ordered fixed-width first to keep rows narrow.
-- ---------------------------------------------------------------------------------------------------------------------

CREATE TABLE hatchet.ready_queue (
    tenant_id            uuid        NOT NULL,
    task_id              uuid        NOT NULL,
    task_inserted_at     timestamptz NOT NULL,
    -- FIFO tie-break within a priority and rank
    id                   bigint      GENERATED ALWAYS AS IDENTITY,
    fair_rank            bigint      NOT NULL DEFAULT 0,
    schedule_timeout_at  timestamptz NOT NULL,
    retry_count          integer     NOT NULL DEFAULT 0,
    app_retry_count      integer     NOT NULL DEFAULT 0,
    internal_retry_count integer     NOT NULL DEFAULT 0,
    -- 1..3 user priorities, 4 = retries and replays, which go ahead of new work
    priority             smallint    NOT NULL,
    queue                text        NOT NULL,
    concurrency_key      text,
    -- the workflow run of a DAG task (NULL for a task enqueued on its own): finishing it advances the run
    run_id               uuid,
    task_definition_id   bigint,
    desired_worker_id    uuid,
    -- the task consumes rate-limit units when assigned (checked only for these rows)
    rate_limited         boolean     NOT NULL DEFAULT false,
    CONSTRAINT ready_queue_pkey PRIMARY KEY (tenant_id, task_id),
    CONSTRAINT ready_priority_in_range CHECK (priority BETWEEN 1 AND 4)
) WITH (fillfactor = 90, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 25,
        autovacuum_analyze_scale_factor = 0.05, autovacuum_vacuum_cost_delay = 0);
-- Dequeue reads this index in dispatch order and stops after n rows: its cost does not depend on the backlog.
CREATE INDEX ready_queue_dispatch_idx ON hatchet.ready_queue (tenant_id, queue, priority DESC, fair_rank, id);
CREATE INDEX ready_queue_schedule_timeout_idx ON hatchet.ready_queue (tenant_id, schedule_timeout_at);
COMMENT ON TABLE hatchet.ready_queue IS 'attempts ready to be claimed (state QUEUED)';

CREATE TABLE hatchet.delayed_queue (
    tenant_id            uuid        NOT NULL,
    task_id              uuid        NOT NULL,
    task_inserted_at     timestamptz NOT NULL,
    ready_at             timestamptz NOT NULL,
    retry_count          integer     NOT NULL DEFAULT 0,
    app_retry_count      integer     NOT NULL DEFAULT 0,
    internal_retry_count integer     NOT NULL DEFAULT 0,
    priority             smallint    NOT NULL,
    queue                text        NOT NULL,
    -- 'run_at' (scheduled by the caller), 'backoff' (waiting before a retry), 'rate_limit', or 'evicted' (a durable
    -- task that gave its slot back while it waits; ready_at is 'infinity' until what it waits for is satisfied)
    reason               text        NOT NULL,
    concurrency_key      text,
    -- the workflow run of a DAG task (NULL for a task enqueued on its own): finishing it advances the run
    run_id               uuid,
    task_definition_id   bigint,
    desired_worker_id    uuid,
    CONSTRAINT delayed_queue_pkey PRIMARY KEY (tenant_id, task_id),
    CONSTRAINT delayed_priority_in_range CHECK (priority BETWEEN 1 AND 4),
    CONSTRAINT delayed_reason_known CHECK (reason IN ('run_at', 'backoff', 'rate_limit', 'evicted'))
) WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 25, autovacuum_vacuum_cost_delay = 0);
CREATE INDEX delayed_queue_ready_at_idx ON hatchet.delayed_queue (tenant_id, ready_at);
COMMENT ON TABLE hatchet.delayed_queue IS 'attempts waiting for run_at, a retry backoff or a rate-limit window (state QUEUED)';

CREATE TABLE hatchet.running (
    tenant_id            uuid        NOT NULL,
    task_id              uuid        NOT NULL,
    task_inserted_at     timestamptz NOT NULL,
    assigned_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    timeout_at           timestamptz NOT NULL,
    retry_count          integer     NOT NULL,
    app_retry_count      integer     NOT NULL DEFAULT 0,
    internal_retry_count integer     NOT NULL DEFAULT 0,
    slot_units           integer     NOT NULL DEFAULT 1,
    priority             smallint    NOT NULL,
    queue                text        NOT NULL,
    -- the registered worker (server path), if any; slots are held on it
    worker_id            uuid,
    -- free-form name given by a SQL consumer to hatchet.dequeue
    worker_name          text,
    slot_type            text,
    concurrency_key      text,
    -- the workflow run of a DAG task (NULL for a task enqueued on its own): finishing it advances the run
    run_id               uuid,
    task_definition_id   bigint,
    -- when the worker acknowledged the attempt (its first STARTED); NULL while pushed but unacknowledged: an attempt
    -- of a registered worker still unacknowledged after worker_dead_after was never delivered and is released
    started_at           timestamptz,
    -- the batch (hatchet.batches) this attempt runs in, for a member of a batch task; its slot is the batch's
    batch_id             uuid,
    CONSTRAINT running_pkey PRIMARY KEY (tenant_id, task_id),
    CONSTRAINT timeout_after_assignment CHECK (timeout_at >= assigned_at)
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 25,
        autovacuum_analyze_scale_factor = 0.05, autovacuum_vacuum_cost_delay = 0);
-- The timeout reaper reads it from the oldest timeout on (its tenant a filter). Not led by tenant_id: a statement that
-- probes running rows by key (tenant_id, task_id) with a cached generic plan could otherwise pick it for the tenant
-- alone and read every running row of the tenant, dead index entries included (issue 18).
CREATE INDEX running_timeout_idx ON hatchet.running (timeout_at);
CREATE INDEX running_worker_idx ON hatchet.running (tenant_id, worker_id) WHERE worker_id IS NOT NULL;
COMMENT ON TABLE hatchet.running IS 'claimed attempts (state RUNNING), each with the time it times out';

-- Batches of a batch task handed to a worker as one START_BATCH (sql/batch.sql). A batch holds one slot of its worker
-- (its members' running rows hold none) until its last member leaves hatchet.running, whichever way: completed,
-- failed, cancelled, timed out or reaped with a dead worker (the trigger running_batch_member_done counts them down).
CREATE TABLE hatchet.batches (
    tenant_id          uuid        NOT NULL,
    id                 uuid        NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT pg_catalog.now(),
    worker_id          uuid        NOT NULL,
    task_definition_id bigint      NOT NULL,
    size               integer     NOT NULL,
    -- members still in hatchet.running
    remaining          integer     NOT NULL,
    queue              text        NOT NULL,
    batch_key          text        NOT NULL,
    slot_type          text        NOT NULL,
    -- why it was flushed: 'size', 'interval' or 'bytes'
    reason             text        NOT NULL,
    CONSTRAINT batches_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT batch_remaining_within_size CHECK (remaining BETWEEN 0 AND size),
    CONSTRAINT batch_reason_known CHECK (reason IN ('size', 'interval', 'bytes'))
) WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 25, autovacuum_vacuum_cost_delay = 0);
CREATE INDEX batches_group_idx ON hatchet.batches (tenant_id, queue, batch_key);
COMMENT ON TABLE hatchet.batches IS 'batches of a batch task running on a worker, each holding one slot until its last member is done';
-- Which queues are batch tasks' (assign leaves them to assign_batches): one probe per queue.
CREATE INDEX task_definitions_batch_idx ON hatchet.task_definitions (tenant_id, action) WHERE batch IS NOT NULL;

CREATE TABLE hatchet.idempotency_keys (
    tenant_id uuid NOT NULL,
    key       text NOT NULL,
    task_id   uuid NOT NULL,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_keys_task_idx ON hatchet.idempotency_keys (tenant_id, task_id);
COMMENT ON TABLE hatchet.idempotency_keys IS 'keys of unfinished tasks; a repeated enqueue with one returns the existing task';

-- Hatchet's workflow-level idempotency: a workflow whose definition has `idempotency` {expression, ttl_ms, method}
-- claims the key its expression gives for each new run; while another run holds the key (until expires_at), the
-- trigger is refused. One key space per tenant, shared by all workflows, as in Hatchet. Expired rows are taken over
-- by the next claim of their key, and each claim removes a few other expired ones.
CREATE TABLE hatchet.run_idempotency_keys (
    tenant_id   uuid        NOT NULL,
    key         text        NOT NULL,
    run_id      uuid        NOT NULL,
    expires_at  timestamptz NOT NULL,
    -- method STATUS: the key is also given back as soon as its run finishes (TTL: only by expiring)
    until_done  boolean     NOT NULL,
    CONSTRAINT run_idempotency_keys_pkey PRIMARY KEY (tenant_id, key)
);
CREATE INDEX run_idempotency_keys_run_idx ON hatchet.run_idempotency_keys (tenant_id, run_id);
CREATE INDEX run_idempotency_keys_expires_idx ON hatchet.run_idempotency_keys (tenant_id, expires_at);
COMMENT ON TABLE hatchet.run_idempotency_keys IS
    'idempotency keys claimed by workflow runs (a workflow''s idempotency config); a trigger whose key is held is refused';

-- Pending work that waits on something other than a worker: DAG children whose parents are not done, condition
-- waits (sleep, user event, parent output) and durable waits. Evaluated by the match engine.
CREATE TABLE hatchet.matches (
    tenant_id          uuid        NOT NULL,
    id                 uuid        NOT NULL,
    run_id             uuid        NOT NULL,
    task_definition_id bigint,
    -- the task this match will create (pre-allocated id) or signal
    task_id            uuid        NOT NULL,
    kind               text        NOT NULL,
    -- [{or_group, action, kind: parent|sleep|event, ...}] and which of them are satisfied
    conditions         jsonb       NOT NULL DEFAULT '[]',
    satisfied          jsonb       NOT NULL DEFAULT '{}',
    wake_at            timestamptz,
    created_at         timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT matches_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT match_kind_known CHECK (kind IN ('TRIGGER', 'SIGNAL'))
) WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 25);
CREATE INDEX matches_run_idx ON hatchet.matches (tenant_id, run_id);
CREATE INDEX matches_wake_idx ON hatchet.matches (tenant_id, wake_at) WHERE wake_at IS NOT NULL;
COMMENT ON TABLE hatchet.matches IS 'tasks not yet created or waiting for conditions (DAG edges, sleeps, events)';

-- ---------------------------------------------------------------------------------------------------------------------
-- Crons and one-off schedules
-- ---------------------------------------------------------------------------------------------------------------------

CREATE TABLE hatchet.crons (
    tenant_id           uuid        NOT NULL REFERENCES hatchet.tenants ON DELETE CASCADE,
    id                  uuid        NOT NULL,
    workflow_id         bigint      NOT NULL,
    name                text        NOT NULL,
    expression          text        NOT NULL,
    input               jsonb       NOT NULL DEFAULT '{}',
    additional_metadata jsonb       NOT NULL DEFAULT '{}',
    priority            smallint,
    -- DECLARED by a workflow version (replaced on registration) or created through the API
    method              text        NOT NULL DEFAULT 'API',
    enabled             boolean     NOT NULL DEFAULT true,
    -- the next tick to fire; advanced in the same transaction that creates the tick's run, so a tick fires once
    next_tick_at        timestamptz NOT NULL,
    last_tick_at        timestamptz,
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT crons_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT crons_name_key UNIQUE (tenant_id, workflow_id, name),
    CONSTRAINT cron_method_known CHECK (method IN ('DECLARED', 'API'))
);
CREATE INDEX crons_due_idx ON hatchet.crons (tenant_id, next_tick_at) WHERE enabled;
COMMENT ON TABLE hatchet.crons IS 'recurring triggers of a workflow (UTC cron expressions, 5 or 6 fields)';

CREATE TABLE hatchet.scheduled_runs (
    tenant_id           uuid        NOT NULL REFERENCES hatchet.tenants ON DELETE CASCADE,
    id                  uuid        NOT NULL,
    workflow_id         bigint      NOT NULL,
    run_at              timestamptz NOT NULL,
    input               jsonb       NOT NULL DEFAULT '{}',
    additional_metadata jsonb       NOT NULL DEFAULT '{}',
    priority            smallint,
    -- set when fired; the row is kept (until retention) so the schedule can be listed with its run
    fired_run_id        uuid,
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT scheduled_runs_pkey PRIMARY KEY (tenant_id, id)
);
CREATE INDEX scheduled_runs_due_idx ON hatchet.scheduled_runs (tenant_id, run_at) WHERE fired_run_id IS NULL;
COMMENT ON TABLE hatchet.scheduled_runs IS 'one-off runs of a workflow at a given time, persisted (never in memory)';

CREATE TABLE hatchet.event_filters (
    tenant_id      uuid        NOT NULL REFERENCES hatchet.tenants ON DELETE CASCADE,
    id             uuid        NOT NULL,
    workflow_id    bigint      NOT NULL,
    scope          text        NOT NULL,
    expression     text        NOT NULL,
    payload        jsonb       NOT NULL DEFAULT '{}',
    is_declarative boolean     NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT event_filters_pkey PRIMARY KEY (tenant_id, id)
);
CREATE INDEX event_filters_workflow_idx ON hatchet.event_filters (tenant_id, workflow_id, scope);
COMMENT ON TABLE hatchet.event_filters IS 'CEL filters deciding which events trigger a workflow (once per true filter)';

-- ---------------------------------------------------------------------------------------------------------------------
-- History: append-only, range-partitioned by day (partitions managed by hatchet.maintain_partitions)
-- ---------------------------------------------------------------------------------------------------------------------

CREATE TABLE hatchet.runs (
    tenant_id           uuid        NOT NULL,
    inserted_at         timestamptz NOT NULL,
    id                  uuid        NOT NULL,
    workflow_version_id bigint,
    input               jsonb       NOT NULL DEFAULT '{}',
    additional_metadata jsonb       NOT NULL DEFAULT '{}',
    priority            smallint    NOT NULL DEFAULT 1,
    parent_task_id      uuid,
    child_index         integer,
    child_key           text,
    triggered_by        text        NOT NULL DEFAULT 'manual',
    CONSTRAINT runs_pkey PRIMARY KEY (tenant_id, inserted_at, id)
) PARTITION BY RANGE (inserted_at);
COMMENT ON TABLE hatchet.runs IS 'workflow runs (a DAG or a single task); status is aggregated from their tasks';

CREATE TABLE hatchet.tasks (
    tenant_id           uuid        NOT NULL,
    inserted_at         timestamptz NOT NULL,
    id                  uuid        NOT NULL,
    -- the run this task belongs to; a task enqueued on its own is its own run (run_id = id)
    run_id              uuid        NOT NULL,
    task_definition_id  bigint,
    retries             integer     NOT NULL DEFAULT 0,
    backoff_factor      float8,
    backoff_max_seconds integer,
    execution_timeout   interval    NOT NULL,
    schedule_timeout    interval    NOT NULL,
    priority            smallint    NOT NULL,
    queue               text        NOT NULL,
    readable_id         text,
    idempotency_key     text,
    input               jsonb       NOT NULL,
    additional_metadata jsonb       NOT NULL DEFAULT '{}',
    -- flow control, evaluated once at enqueue (CEL keys already rendered):
    -- [{scope, key, max_runs, strategy}] gates passed in this order before the task may be dispatched
    concurrency         jsonb,
    -- [{key, units}] consumed when an attempt is assigned
    rate_limits         jsonb,
    -- {label: {value, comparator, required, weight}} matched against worker labels
    desired_labels      jsonb,
    sticky              hatchet.sticky_strategy,
    desired_worker_id   uuid,
    slot_type           text        NOT NULL DEFAULT 'default',
    slot_units          integer     NOT NULL DEFAULT 1,
    -- a batch task's group key, evaluated once at enqueue ('' when the task has no group key expression)
    batch_key           text,
    CONSTRAINT tasks_pkey PRIMARY KEY (tenant_id, inserted_at, id),
    CONSTRAINT task_priority_in_range CHECK (priority BETWEEN 1 AND 3),
    CONSTRAINT task_retries_not_negative CHECK (retries >= 0),
    CONSTRAINT task_input_is_object CHECK (jsonb_typeof(input) = 'object')
) PARTITION BY RANGE (inserted_at);
-- run_id first, not tenant_id: an index that leads with tenant_id alone is a trap for the per-row primary-key probes
-- (tenant_id, inserted_at, id) of dequeue and assign. On a day partition without statistics yet, a cached generic
-- plan picked it with only tenant_id as the condition and read every task of the tenant per claimed row (measured:
-- 0.4 s per 100 claimed in a fresh database under steady load).
CREATE INDEX tasks_run_idx ON hatchet.tasks (run_id, tenant_id);
COMMENT ON TABLE hatchet.tasks IS 'one row per task (not per attempt); immutable after insert';

CREATE TABLE hatchet.task_events (
    tenant_id        uuid                    NOT NULL,
    task_inserted_at timestamptz             NOT NULL,
    task_id          uuid                    NOT NULL,
    created_at       timestamptz             NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    retry_count      integer                 NOT NULL,
    event_type       hatchet.task_event_type NOT NULL,
    worker_id        uuid,
    worker_name      text,
    reason           text,
    -- On the event that ends an attempt a worker held (COMPLETED, FAILED, RETRYING, REASSIGNED, CANCELLED): when that
    -- attempt was assigned. The ASSIGNED event is not stored as a row of its own; hatchet.task_events() derives it
    -- from here, or from `running` while the attempt runs. One row per attempt instead of two on the hot path.
    assigned_at      timestamptz
) PARTITION BY RANGE (task_inserted_at);
CREATE INDEX task_events_task_idx ON hatchet.task_events (tenant_id, task_inserted_at, task_id);
COMMENT ON TABLE hatchet.task_events IS 'timeline of every task: what happened to which attempt, when and why';

CREATE TABLE hatchet.payloads (
    tenant_id        uuid        NOT NULL,
    task_inserted_at timestamptz NOT NULL,
    task_id          uuid        NOT NULL,
    retry_count      integer     NOT NULL,
    kind             text        NOT NULL,
    data             jsonb       NOT NULL,
    CONSTRAINT payloads_pkey PRIMARY KEY (tenant_id, task_inserted_at, task_id, retry_count, kind),
    CONSTRAINT payload_kind_known CHECK (kind IN ('OUTPUT', 'ERROR'))
) PARTITION BY RANGE (task_inserted_at);
COMMENT ON TABLE hatchet.payloads IS 'task outputs and error payloads, kept apart so task_events stays narrow';

CREATE TABLE hatchet.events (
    tenant_id           uuid        NOT NULL,
    inserted_at         timestamptz NOT NULL,
    id                  uuid        NOT NULL,
    key                 text        NOT NULL,
    payload             jsonb       NOT NULL DEFAULT '{}',
    additional_metadata jsonb       NOT NULL DEFAULT '{}',
    scope               text,
    CONSTRAINT events_pkey PRIMARY KEY (tenant_id, inserted_at, id)
) PARTITION BY RANGE (inserted_at);
CREATE INDEX events_key_idx ON hatchet.events (tenant_id, key, inserted_at);
COMMENT ON TABLE hatchet.events IS 'user events pushed with hatchet.push_event';

CREATE TABLE hatchet.logs (
    tenant_id        uuid        NOT NULL,
    task_inserted_at timestamptz NOT NULL,
    task_id          uuid        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    retry_count      integer     NOT NULL DEFAULT 0,
    level            text        NOT NULL DEFAULT 'INFO',
    message          text        NOT NULL
) PARTITION BY RANGE (task_inserted_at);
CREATE INDEX logs_task_idx ON hatchet.logs (tenant_id, task_inserted_at, task_id);
COMMENT ON TABLE hatchet.logs IS 'log lines written by tasks (ctx.log)';

-- ---------------------------------------------------------------------------------------------------------------------
-- workflows (issue 4): DAG matches, events, crons and schedules. Additions only; the tables above are unchanged.
-- ---------------------------------------------------------------------------------------------------------------------

-- The user-event keys a pending match waits for, so hatchet.push_event finds the waiting matches by key instead of
-- scanning them all. Partial: most matches wait only for their parents and never touch this index.
ALTER TABLE hatchet.matches ADD COLUMN event_keys text[] NOT NULL DEFAULT '{}';
CREATE INDEX matches_event_keys_idx ON hatchet.matches USING gin (event_keys) WHERE event_keys <> '{}';

-- New runs use the latest version of a workflow (highest id): one index probe.
CREATE INDEX workflow_versions_latest_idx ON hatchet.workflow_versions (tenant_id, workflow_id, id DESC);

-- Child runs are looked up by their parent task, to deduplicate them across the parent's retries.
CREATE INDEX runs_parent_task_idx ON hatchet.runs (tenant_id, parent_task_id) WHERE parent_task_id IS NOT NULL;

-- A schedule that could not fire (creating its run raised an error) keeps the reason and is no longer due.
ALTER TABLE hatchet.scheduled_runs ADD COLUMN error text;
-- Fired schedules are kept for hatchet.retention_days, then deleted by the background worker.
CREATE INDEX scheduled_runs_fired_idx ON hatchet.scheduled_runs (tenant_id, run_at) WHERE fired_run_id IS NOT NULL;

-- One filter per (workflow, scope, expression, payload), as in Hatchet.
CREATE UNIQUE INDEX event_filters_identity_idx
    ON hatchet.event_filters (tenant_id, workflow_id, scope, expression, md5(payload::text));

-- ---------------------------------------------------------------------------------------------------------------------
-- Issue 5 (server helper): rate-limit pauses for PauseRateLimit (hatchet.pause_rate_limit, flow_control.sql)
-- ---------------------------------------------------------------------------------------------------------------------

ALTER TABLE hatchet.rate_limits ADD COLUMN paused_until timestamptz;
COMMENT ON COLUMN hatchet.rate_limits.paused_until IS
    'no task takes units of this limit before this time (NULL: not paused)';

-- ---------------------------------------------------------------------------------------------------------------------
-- Incoming webhooks
-- ---------------------------------------------------------------------------------------------------------------------

CREATE TABLE hatchet.webhooks (
    tenant_id            uuid        NOT NULL REFERENCES hatchet.tenants ON DELETE CASCADE,
    -- tenant-unique; the receiving URL is /api/v1/stable/tenants/{tenant}/webhooks/{name}
    name                 text        NOT NULL,
    id                   uuid        NOT NULL,
    source_name          text        NOT NULL,
    -- CEL over {input: request body, headers: {lower-case name: value}}, giving the event key / scope (strings)
    event_key_expression text        NOT NULL,
    scope_expression     text,
    -- merged over the request body to make the event payload
    static_payload       jsonb,
    auth_type            text        NOT NULL,
    -- the secrets checked on every request: {username, password} | {headerName, apiKey} |
    -- {algorithm, encoding, signatureHeaderName, signingSecret}; never returned by the API
    auth                 jsonb       NOT NULL,
    return_event         boolean     NOT NULL DEFAULT true,
    created_at           timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at           timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT webhooks_pkey PRIMARY KEY (tenant_id, name),
    CONSTRAINT webhook_name_not_empty CHECK (name <> ''),
    CONSTRAINT webhook_source_known
        CHECK (source_name IN ('GENERIC', 'GITHUB', 'STRIPE', 'SLACK', 'LINEAR', 'SVIX')),
    CONSTRAINT webhook_auth_type_known CHECK (auth_type IN ('BASIC', 'API_KEY', 'HMAC')),
    CONSTRAINT webhook_auth_is_object CHECK (jsonb_typeof(auth) = 'object'),
    CONSTRAINT webhook_static_payload_is_object CHECK (static_payload IS NULL OR jsonb_typeof(static_payload) = 'object')
);
COMMENT ON TABLE hatchet.webhooks IS
    'incoming webhooks: how a request is authenticated and which event (key, scope, payload) it becomes';

-- ---------------------------------------------------------------------------------------------------------------------
-- Stream chunks
-- ---------------------------------------------------------------------------------------------------------------------

CREATE TABLE hatchet.stream_chunks (
    tenant_id   uuid        NOT NULL REFERENCES hatchet.tenants ON DELETE CASCADE,
    -- the workflow run the task belongs to: subscribers read by run
    run_id      uuid        NOT NULL,
    -- arrival order over the whole table; readers page by it
    seq         bigint      GENERATED ALWAYS AS IDENTITY,
    task_id     uuid        NOT NULL,
    -- the attempt that put the chunk: a retried attempt numbers its chunks from 0 again
    retry_count integer     NOT NULL,
    -- the SDK's per-attempt counter; a resent chunk (client retry) carries the same index and is stored once
    event_index bigint,
    message     bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    CONSTRAINT stream_chunks_pkey PRIMARY KEY (tenant_id, run_id, seq),
    CONSTRAINT stream_chunk_index_not_negative CHECK (event_index >= 0)
);
CREATE UNIQUE INDEX stream_chunks_attempt_index_idx
    ON hatchet.stream_chunks (tenant_id, task_id, retry_count, event_index) WHERE event_index IS NOT NULL;
CREATE INDEX stream_chunks_created_idx ON hatchet.stream_chunks (created_at);
COMMENT ON TABLE hatchet.stream_chunks IS
    'stream chunks put by running tasks, read by run subscribers; deleted after the run finished (prune_stream_chunks)';

-- ---------------------------------------------------------------------------------------------------------------------
-- Maintenance status
-- ---------------------------------------------------------------------------------------------------------------------

-- One row per tenant and maintenance job that ever failed (sql/maintenance.sql): the background worker runs each job
-- for each tenant in a subtransaction, so a failure is rolled back, logged, counted here and skipped, and the other
-- tenants and jobs go on. The row stays (with its count) after the job recovers; last_ok_at says it did.
CREATE TABLE hatchet.maintenance_status (
    -- NULL for the jobs that are not per tenant (partitions)
    tenant_id      uuid        REFERENCES hatchet.tenants ON DELETE CASCADE,
    job            text        NOT NULL,
    failures       bigint      NOT NULL DEFAULT 0,
    last_error     text,
    last_sqlstate  text,
    last_failed_at timestamptz,
    -- the first success after the last failure (NULL while the job is still failing)
    last_ok_at     timestamptz,
    CONSTRAINT maintenance_status_key UNIQUE NULLS NOT DISTINCT (tenant_id, job)
);
COMMENT ON TABLE hatchet.maintenance_status IS
    'maintenance jobs that failed, per tenant and job: how often, the last error and when, and when one next succeeded';

-- ---------------------------------------------------------------------------------------------------------------------
-- Durable execution (issue 19): the event log of durable tasks (sql/durable.sql)
-- ---------------------------------------------------------------------------------------------------------------------

-- One row per durable task that ever asked for a log entry: which invocation of the task is current and where it
-- appends next. A task's invocation is its attempt number + 1 (a restore after an eviction is a new attempt), so an
-- invocation that is not the running attempt is stale and fenced off. The row is locked for every append, which
-- serialises the entries of one task (Hatchet's v1_durable_event_log_file).
CREATE TABLE hatchet.durable_logs (
    tenant_id        uuid        NOT NULL,
    task_inserted_at timestamptz NOT NULL,
    task_id          uuid        NOT NULL,
    -- the latest invocation that appended; a higher one starts over at node 1 (replay)
    invocation       integer     NOT NULL,
    branch_id        bigint      NOT NULL DEFAULT 1,
    -- the node the current invocation appends next
    next_node        bigint      NOT NULL DEFAULT 1,
    -- how many entries were satisfied so far: each satisfied entry gets the next number
    satisfied_count  bigint      NOT NULL DEFAULT 0,
    -- branches made by hatchet.branch_durable_task: [{branch, parent, first_node}]; a node before first_node of a
    -- branch is read from its parent (branch 1 is the root)
    branches         jsonb       NOT NULL DEFAULT '[]',
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    -- What hatchet.durable_completed has handed to invocation released_invocation: the entries up to released_order
    -- in the order they were satisfied (a replay gets them in that order), and when that last moved on
    released_invocation integer     NOT NULL DEFAULT 0,
    released_order      bigint      NOT NULL DEFAULT 0,
    released_at         timestamptz,
    CONSTRAINT durable_logs_pkey PRIMARY KEY (tenant_id, task_inserted_at, task_id),
    CONSTRAINT durable_invocation_positive CHECK (invocation > 0),
    CONSTRAINT durable_next_node_positive CHECK (next_node > 0)
) PARTITION BY RANGE (task_inserted_at);
COMMENT ON TABLE hatchet.durable_logs IS
    'per durable task: the current invocation, branch and next node of its event log (locked per append)';

-- The entries of a durable task's event log, keyed as the protocol's DurableEventLogEntryRef (task, branch, node).
-- A replayed invocation walks the same nodes again: an entry that exists must be asked for with the same call
-- (idempotency_key), else the replay is not deterministic; a satisfied entry answers at once with its result.
CREATE TABLE hatchet.durable_log_entries (
    tenant_id        uuid        NOT NULL,
    task_inserted_at timestamptz NOT NULL,
    task_id          uuid        NOT NULL,
    branch_id        bigint      NOT NULL,
    node_id          bigint      NOT NULL,
    -- MEMO (a value computed once), WAIT_FOR (sleeps and user events, or-groups) or RUN (a child run)
    kind             text        NOT NULL,
    -- what was asked: md5 of the memo key, of the wait conditions or of the child's workflow and input
    idempotency_key  text        NOT NULL,
    invocation       integer     NOT NULL,
    label            text,
    -- WAIT_FOR: the conditions as the match engine holds them; RUN: the child run
    conditions       jsonb,
    child_run_id     uuid,
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    satisfied_at     timestamptz,
    satisfied_order  bigint,
    -- the bytes handed to the SDK (JSON text): the memo value, the wait result or the child's outputs
    result           bytea,
    is_failure       boolean     NOT NULL DEFAULT false,
    error            text,
    CONSTRAINT durable_log_entries_pkey PRIMARY KEY (tenant_id, task_inserted_at, task_id, branch_id, node_id),
    CONSTRAINT durable_entry_kind_known CHECK (kind IN ('MEMO', 'WAIT_FOR', 'RUN')),
    CONSTRAINT durable_satisfied_has_order CHECK ((satisfied_at IS NULL) = (satisfied_order IS NULL))
) PARTITION BY RANGE (task_inserted_at);
COMMENT ON TABLE hatchet.durable_log_entries IS
    'event log of durable tasks: memoized values, waits and child runs, replayed by node';

-- Child runs a durable task waits for (work in flight: a row leaves when the child finishes). Finishing a run looks
-- here, one probe of a small table, instead of in the partitioned log.
CREATE TABLE hatchet.durable_child_waits (
    tenant_id        uuid        NOT NULL,
    child_run_id     uuid        NOT NULL,
    task_inserted_at timestamptz NOT NULL,
    task_id          uuid        NOT NULL,
    branch_id        bigint      NOT NULL,
    node_id          bigint      NOT NULL,
    CONSTRAINT durable_child_waits_pkey PRIMARY KEY (tenant_id, child_run_id, task_id, branch_id, node_id)
) WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 25);
COMMENT ON TABLE hatchet.durable_child_waits IS 'unfinished child runs that durable tasks wait for';

-- A durable wait is a SIGNAL match: the same conditions as a DAG task's sleeps and user events, firing into the log
-- entry (branch, node) of the task instead of creating a task.
ALTER TABLE hatchet.matches ADD COLUMN durable_branch_id bigint;
ALTER TABLE hatchet.matches ADD COLUMN durable_node_id bigint;
ALTER TABLE hatchet.matches ADD CONSTRAINT match_signal_names_entry
    CHECK ((kind = 'SIGNAL') = (durable_node_id IS NOT NULL AND durable_branch_id IS NOT NULL));
-- Finishing a task looks for its durable waits here: a probe of this small index, whatever else is pending.
CREATE INDEX matches_signal_idx ON hatchet.matches (tenant_id, run_id) WHERE kind = 'SIGNAL';

-- 0.4.0, issue 20: paused workflows (Hatchet's workflow pause; hatchet.pause_workflow, sql/workflows.sql)
-- ---------------------------------------------------------------------------------------------------------------------

-- How a pause behaves, kept on the workflow while it lasts (all NULL while it is not paused).
ALTER TABLE hatchet.workflows
    ADD COLUMN paused_at timestamptz,
    -- queued attempts held longer than this (counted from when they were created, or from the pause if later) are
    -- cancelled; NULL: held until unpaused
    ADD COLUMN paused_queue_ttl interval,
    -- what a cron tick or a one-off schedule of the workflow does while it is paused: QUEUE (create the run, held
    -- like any other) or DROP (create nothing)
    ADD COLUMN paused_cron_behavior text,
    ADD COLUMN paused_scheduled_behavior text,
    ADD CONSTRAINT paused_behaviors_known
        CHECK (paused_cron_behavior IN ('QUEUE', 'DROP') AND paused_scheduled_behavior IN ('QUEUE', 'DROP')),
    ADD CONSTRAINT paused_queue_ttl_positive CHECK (paused_queue_ttl > interval '0');
COMMENT ON COLUMN hatchet.workflows.paused_at IS 'when the workflow was paused (NULL: not paused)';

-- The queues (task actions) of paused workflows, for every version: hatchet.assign skips them, so their attempts
-- stay queued. One primary-key probe per served queue keeps the check off the per-task path.
CREATE TABLE hatchet.paused_queues (
    tenant_id   uuid   NOT NULL,
    queue       text   NOT NULL,
    workflow_id bigint NOT NULL,
    CONSTRAINT paused_queues_pkey PRIMARY KEY (tenant_id, queue),
    CONSTRAINT paused_queues_workflow_fkey FOREIGN KEY (tenant_id, workflow_id)
        REFERENCES hatchet.workflows (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE hatchet.paused_queues IS 'queues of paused workflows: nothing on them is assigned until unpaused';

-- Worker labels given when the run was triggered (hatchet.run_workflow's desired_worker_labels): every task of the
-- run that declares no labels of its own is placed by them, as Hatchet places a run triggered with labels.
ALTER TABLE hatchet.runs ADD COLUMN desired_labels jsonb;
COMMENT ON COLUMN hatchet.runs.desired_labels IS
    'worker labels given at trigger time ({label: {value, comparator, required, weight}}); NULL: none';

-- The runs lists' additional-metadata filter (`additional_metadata @> '{"key": "value"}'` in hatchet.list_runs,
-- dashboard_runs and run_status_counts): without an index a filter that matches few runs reads the whole window.
-- jsonb_path_ops indexes exactly the containment operator, smaller than the default opclass. An index on the
-- partitioned table is created on every partition, those maintain_partitions creates later included.
CREATE INDEX runs_metadata_idx ON hatchet.runs USING gin (additional_metadata jsonb_path_ops);

-- ---------------------------------------------------------------------------------------------------------------------
-- OpenTelemetry spans (issue 20): what the SDKs' instrumentors export to the engine (TraceService/Export)
-- ---------------------------------------------------------------------------------------------------------------------

-- One row per span an SDK exported, under the tenant of the exporting token. Partitioned by the day it was stored, so
-- retention drops whole days like the other history tables (hatchet.partitioned_tables). The engine's own spans are
-- not stored: hatchet.run_trace derives them from the runs, tasks and task events when the trace is read.
CREATE TABLE hatchet.otel_spans (
    tenant_id           uuid        NOT NULL,
    inserted_at         timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    -- lowercase hex, as the read route returns them
    trace_id            text        NOT NULL,
    span_id             text        NOT NULL,
    parent_span_id      text,
    name                text        NOT NULL,
    kind                text        NOT NULL,
    service_name        text        NOT NULL,
    status_code         text        NOT NULL,
    status_message      text,
    start_time          timestamptz NOT NULL,
    duration_ns         bigint      NOT NULL,
    resource_attributes jsonb       NOT NULL DEFAULT '{}',
    span_attributes     jsonb       NOT NULL DEFAULT '{}',
    scope_name          text,
    scope_version       text,
    -- the task and the run the span belongs to: its hatchet.step_run_id and hatchet.workflow_run_id attributes
    task_id             uuid,
    run_id              uuid,
    retry_count         integer     NOT NULL DEFAULT 0,
    CONSTRAINT otel_span_ids_are_hex CHECK (trace_id ~ '^[0-9a-f]{32}$' AND span_id ~ '^[0-9a-f]{16}$'
                                            AND (parent_span_id IS NULL OR parent_span_id ~ '^[0-9a-f]{16}$')),
    CONSTRAINT otel_span_kind_known
        CHECK (kind IN ('UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER')),
    CONSTRAINT otel_span_status_known CHECK (status_code IN ('UNSET', 'OK', 'ERROR')),
    CONSTRAINT otel_span_duration_not_negative CHECK (duration_ns >= 0)
) PARTITION BY RANGE (inserted_at);
CREATE INDEX otel_spans_trace_idx ON hatchet.otel_spans (tenant_id, trace_id);
CREATE INDEX otel_spans_run_idx ON hatchet.otel_spans (tenant_id, run_id) WHERE run_id IS NOT NULL;
CREATE INDEX otel_spans_task_idx ON hatchet.otel_spans (tenant_id, task_id) WHERE task_id IS NOT NULL;
COMMENT ON TABLE hatchet.otel_spans IS
    'OpenTelemetry spans exported by the SDKs (hatchet.put_spans), read as traces with hatchet.run_trace';

-- Which final outcomes the tasks of each workflow run have reached: one row per run and outcome (COMPLETED, with a
-- skip counted as COMPLETED; FAILED; CANCELLED), added by a trigger on hatchet.task_events the first time a task of
-- the run ends that way (hatchet._note_run_outcomes, sql/runs.sql), never updated. A run's status is still derived
-- from its tasks (hatchet.run_status); this is the index that lets the dashboard find the runs that may have a final
-- status without deriving every run's: a run that ended COMPLETED, FAILED or CANCELLED has a row for that outcome,
-- and a finished run without a FAILED or CANCELLED row ended COMPLETED. Rows are candidates, checked by the reader: a
-- replayed run keeps the rows of its earlier ending. No unique key: two transactions finishing tasks of one run at
-- once may both add the row (readers skip the repeat), where a unique key would make the second wait for the first
-- and could deadlock two completion batches. Partitioned by the run's day like hatchet.runs, dropped with it.
CREATE TABLE hatchet.run_outcomes (
    tenant_id       uuid                    NOT NULL,
    outcome         hatchet.readable_status NOT NULL,
    run_inserted_at timestamptz             NOT NULL,
    run_id          uuid                    NOT NULL,
    CONSTRAINT run_outcome_is_final CHECK (outcome IN ('COMPLETED', 'FAILED', 'CANCELLED'))
) PARTITION BY RANGE (run_inserted_at);
-- The dashboard walks one outcome newest first; the counts probe (outcome, run) for sampled runs.
CREATE INDEX run_outcomes_idx ON hatchet.run_outcomes (tenant_id, outcome, run_inserted_at, run_id);
COMMENT ON TABLE hatchet.run_outcomes IS
    'final outcomes the tasks of each workflow run reached (candidates for the dashboard''s status filter)';
