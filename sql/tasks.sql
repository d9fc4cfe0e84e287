-- Tasks: the lifecycle of a task and its attempts. Enqueue (the one path by which tasks come into being, also used
-- by workflow runs), dequeue, complete, fail, refresh_timeout, cancel, status, timeline, single-task reads and logs.
--
-- Public: enqueue, enqueue_many, dequeue, complete, complete_many, fail, refresh_timeout, cancel, task_status,
-- task_events, task, running_attempt, put_log, task_logs, put_spans, run_trace.
-- Calls: tenants.sql, options.sql, flow_control.sql (concurrency gates and rate limits of an attempt), workers.sql
-- (_placement_option), workflows.sql (_definition_flow: a workflow task's options), runs.sql (_lock_pending_runs and
-- _on_tasks_finished: a finished workflow task advances its run in the same transaction), durable.sql
-- (_durable_finished: the same for the task of a single-task run).

-- ---------------------------------------------------------------------------------------------------------------------
-- Enqueue
-- ---------------------------------------------------------------------------------------------------------------------

CREATE FUNCTION hatchet._check_task_options(
    p_queue text, p_priority integer, p_retries integer, p_backoff_factor float8, p_backoff_max_seconds integer,
    p_metadata jsonb
) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_queue IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['queue']);
    END IF;
    IF p_queue = '' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['queue name must not be empty']);
    END IF;
    IF p_priority IS NULL OR p_priority NOT BETWEEN 1 AND 3 THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('priority must be between 1 and 3, not %s', coalesce(p_priority::text, 'null'))]);
    END IF;
    IF p_retries IS NULL OR p_retries < 0 THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('retries must be zero or more, not %s', coalesce(p_retries::text, 'null'))]);
    END IF;
    IF p_backoff_factor IS NOT NULL AND NOT (p_backoff_factor > 0) THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('backoff_factor must be positive, not %s', p_backoff_factor)]);
    END IF;
    IF p_backoff_max_seconds IS NOT NULL AND p_backoff_max_seconds <= 0 THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('backoff_max_seconds must be positive, not %s', p_backoff_max_seconds)]);
    END IF;
    PERFORM hatchet._check_payload('additional_metadata', p_metadata);
END
$$;
COMMENT ON FUNCTION hatchet._check_task_options(text, integer, integer, float8, integer, jsonb) IS
    'reject bad enqueue options with a clear error before anything is written';

-- The fair-queueing virtual time of a queue (creating the queue row on first use). A task with no concurrency key
-- is a flow of its own and starts at the virtual time, which keeps plain tasks FIFO and interleaves them fairly with
-- keyed ones.
-- Not pinned: called per admitted task, so every name is qualified (sql/schema.sql).
CREATE FUNCTION hatchet._queue_vtime(p_tenant uuid, p_queue text) RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v bigint;
BEGIN
    SELECT q.vtime INTO v FROM hatchet.queues q
    WHERE q.tenant_id OPERATOR(pg_catalog.=) p_tenant AND q.name OPERATOR(pg_catalog.=) p_queue;
    IF NOT FOUND THEN
        INSERT INTO hatchet.queues (tenant_id, name) VALUES (p_tenant, p_queue) ON CONFLICT DO NOTHING;
        v := 0;
    END IF;
    RETURN v;
END
$$;

-- Inserts tasks (one per input) and their first attempts: the one path by which tasks come into being, used by
-- enqueue, enqueue_many and workflow runs. p_ids pre-allocates the task ids; p_run_ids places the tasks in DAG runs
-- (NULL: each task is its own run); p_definition_id / p_readable_id name the workflow task they instantiate, whose
-- flow control (CEL concurrency keys, rate limits, labels) is evaluated per task here. p_concurrency / p_rate_limits
-- are the same for every task (enqueue's options). Tasks without flow control take a set-based fast path.
CREATE FUNCTION hatchet._enqueue_batch(
    p_tenant uuid, p_queue text, p_inputs jsonb[], p_priority integer, p_run_at timestamptz, p_retries integer,
    p_backoff_factor float8, p_backoff_max_seconds integer, p_execution_timeout interval, p_schedule_timeout interval,
    p_idempotency_key text, p_metadata jsonb, p_ids uuid[] DEFAULT NULL, p_run_ids uuid[] DEFAULT NULL,
    p_definition_id bigint DEFAULT NULL, p_readable_id text DEFAULT NULL, p_concurrency jsonb DEFAULT NULL,
    p_rate_limits jsonb DEFAULT NULL, p_placement jsonb DEFAULT NULL
) RETURNS uuid[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now      timestamptz := clock_timestamp();
    v_ids      uuid[];
    v_delayed  boolean := p_run_at IS NOT NULL AND p_run_at > v_now;
    v_flow     boolean := p_definition_id IS NOT NULL OR p_concurrency IS NOT NULL OR p_rate_limits IS NOT NULL
                          OR p_placement IS NOT NULL;
    v_rank     bigint;
    v_t        record;
    v_failed_ords integer[];
    v_errors   text[];
BEGIN
    IF p_ids IS NOT NULL THEN
        v_ids := p_ids;
    ELSIF cardinality(p_inputs) = 1 THEN
        -- (an expression, not a query: a single enqueue saves an executor run, 26k of its 700k instructions)
        v_ids := ARRAY[hatchet.gen_id()];
    ELSE
        SELECT array_agg(hatchet.gen_id() ORDER BY ord) INTO v_ids FROM generate_subscripts(p_inputs, 1) AS ord;
    END IF;

    IF NOT v_flow THEN
        INSERT INTO hatchet.tasks (tenant_id, inserted_at, id, run_id, task_definition_id, readable_id, retries,
                                   backoff_factor, backoff_max_seconds, execution_timeout, schedule_timeout, priority,
                                   queue, idempotency_key, input, additional_metadata)
        SELECT p_tenant, hatchet.uuid_time(i.id), i.id, coalesce(p_run_ids[i.ord], i.id), NULL, p_readable_id,
               p_retries, p_backoff_factor, p_backoff_max_seconds, p_execution_timeout, p_schedule_timeout, p_priority,
               p_queue, p_idempotency_key, i.input, p_metadata
        FROM unnest(v_ids, p_inputs) WITH ORDINALITY AS i(id, input, ord);
    ELSE
        WITH f AS (
            SELECT i.id, i.input, i.ord,
                   CASE WHEN p_definition_id IS NOT NULL
                        THEN hatchet._definition_flow(p_tenant, p_definition_id, i.input, p_metadata) END AS flow
            FROM unnest(v_ids, p_inputs) WITH ORDINALITY AS i(id, input, ord)
        ), ins AS (
            INSERT INTO hatchet.tasks (tenant_id, inserted_at, id, run_id, task_definition_id, readable_id, retries,
                                       backoff_factor, backoff_max_seconds, execution_timeout, schedule_timeout,
                                       priority, queue, idempotency_key, input, additional_metadata, concurrency,
                                       rate_limits, desired_labels, sticky, slot_type, slot_units, desired_worker_id,
                                       batch_key)
            SELECT p_tenant, hatchet.uuid_time(f.id), f.id, coalesce(p_run_ids[f.ord], f.id), p_definition_id,
                   p_readable_id, p_retries, p_backoff_factor, p_backoff_max_seconds, p_execution_timeout,
                   p_schedule_timeout, p_priority, p_queue, p_idempotency_key, f.input, p_metadata,
                   -- (jsonb_strip_nulls leaves no JSON null behind: absent means none)
                   coalesce(f.flow -> 'concurrency', p_concurrency), coalesce(f.flow -> 'rate_limits', p_rate_limits),
                   coalesce(f.flow -> 'desired_labels', p_placement -> 'desired_labels'),
                   coalesce(f.flow ->> 'sticky', p_placement ->> 'sticky')::hatchet.sticky_strategy,
                   coalesce(f.flow ->> 'slot_type', 'default'), coalesce((f.flow ->> 'slot_units')::integer, 1),
                   (p_placement ->> 'desired_worker_id')::uuid, f.flow ->> 'batch_key'
            FROM f
        )
        SELECT array_agg(f.ord) FILTER (WHERE f.flow ? 'error'), array_agg(f.flow ->> 'error') FILTER (WHERE f.flow ? 'error')
        INTO v_failed_ords, v_errors
        FROM f;
        -- Tasks whose flow-control expressions failed are created FAILED with the reason; the rest go on.
        FOR k IN 1 .. coalesce(cardinality(v_failed_ords), 0) LOOP
            PERFORM hatchet._finish_unstarted(p_tenant, v_ids[v_failed_ords[k]], hatchet.uuid_time(v_ids[v_failed_ords[k]]),
                                              0, p_run_ids[v_failed_ords[k]], 'FAILED', v_errors[k]);
        END LOOP;
    END IF;

    IF v_delayed THEN
        -- Waiting for run_at holds no concurrency slot: gates are passed when it comes due.
        INSERT INTO hatchet.delayed_queue (tenant_id, task_id, task_inserted_at, ready_at, priority, queue, reason,
                                           run_id, task_definition_id)
        SELECT p_tenant, u.id, hatchet.uuid_time(u.id), p_run_at, p_priority, p_queue, 'run_at', p_run_ids[u.ord],
               p_definition_id
        FROM unnest(v_ids) WITH ORDINALITY AS u(id, ord)
        WHERE v_failed_ords IS NULL OR NOT u.ord = ANY (v_failed_ords);
        INSERT INTO hatchet.task_events (tenant_id, task_inserted_at, task_id, retry_count, event_type, reason)
        SELECT p_tenant, hatchet.uuid_time(id), id, 0, 'SCHEDULED', format('run at %s', p_run_at)
        FROM unnest(v_ids) WITH ORDINALITY AS u(id, ord)
        WHERE v_failed_ords IS NULL OR NOT u.ord = ANY (v_failed_ords);
        RETURN v_ids;
    END IF;

    IF NOT v_flow THEN
        v_rank := hatchet._queue_vtime(p_tenant, p_queue);
        INSERT INTO hatchet.ready_queue (tenant_id, task_id, task_inserted_at, fair_rank, schedule_timeout_at,
                                         priority, queue, run_id, task_definition_id)
        SELECT p_tenant, id, hatchet.uuid_time(id), v_rank, v_now + p_schedule_timeout, p_priority, p_queue,
               p_run_ids[ord], p_definition_id
        FROM unnest(v_ids) WITH ORDINALITY AS u(id, ord)
        ORDER BY ord;
    ELSE
        -- Each task passes its concurrency gates (if any) in input order; the others enter the ready queue.
        -- (By id, not by a join with tasks: a join key computed from the id cannot prune partitions.)
        FOR k IN 1 .. cardinality(v_ids) LOOP
            CONTINUE WHEN v_failed_ords IS NOT NULL AND k = ANY (v_failed_ords);
            PERFORM hatchet._admit(p_tenant, v_ids[k], hatchet.uuid_time(v_ids[k]), 0, 0, 0, p_priority);
        END LOOP;
    END IF;
    -- Wake LISTENers on every enqueue (hatchet._ready: one hatchet_ready notification after commit, sent by the
    -- notifier process). Notifying only when the queue looked empty loses wake-ups: rows another consumer has claimed
    -- but not yet deleted still look like work, that consumer then finds nothing more and waits, and the new task
    -- sits until a poll.
    -- (Tasks with flow control are announced by hatchet._admit when they pass their gates.)
    IF NOT v_flow THEN
        PERFORM hatchet._ready(p_queue);
    END IF;
    RETURN v_ids;
END
$$;

CREATE FUNCTION hatchet.enqueue(
    queue               text,
    input               jsonb       DEFAULT '{}',
    priority            integer     DEFAULT 1,
    run_at              timestamptz DEFAULT NULL,
    retries             integer     DEFAULT 0,
    backoff_factor      float8      DEFAULT NULL,
    backoff_max_seconds integer     DEFAULT NULL,
    execution_timeout   text        DEFAULT '60s',
    schedule_timeout    text        DEFAULT '5m',
    idempotency_key     text        DEFAULT NULL,
    additional_metadata jsonb       DEFAULT '{}',
    tenant_id           uuid        DEFAULT NULL,
    concurrency_key     text        DEFAULT NULL,
    max_runs            integer     DEFAULT NULL,
    strategy            text        DEFAULT NULL,
    rate_limits         jsonb       DEFAULT NULL,
    desired_worker_labels jsonb     DEFAULT NULL,
    desired_worker_id   uuid        DEFAULT NULL,
    sticky              text        DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant   uuid := hatchet._tenant(enqueue.tenant_id);
    p_key      text := enqueue.idempotency_key;
    v_id       uuid;
    v_exec     interval;
    v_sched    interval;
    v_gates    jsonb;
    v_limits   jsonb;
    v_place    jsonb;
BEGIN
    -- A single enqueue is mostly fixed cost: each pinned helper call saves and restores search_path, and each PERFORM
    -- is an executor run. So the checks run in one statement, and the option helpers only for options that are
    -- given (785k -> 702k instructions per single enqueue, Valgrind).
    PERFORM hatchet._check_task_options(enqueue.queue, enqueue.priority, enqueue.retries, enqueue.backoff_factor,
                                        enqueue.backoff_max_seconds, enqueue.additional_metadata),
            hatchet._check_payload('input', enqueue.input);
    IF enqueue.concurrency_key IS NOT NULL OR enqueue.max_runs IS NOT NULL OR enqueue.strategy IS NOT NULL THEN
        v_gates := hatchet._concurrency_option(enqueue.queue, enqueue.concurrency_key, enqueue.max_runs,
                                               enqueue.strategy);
    END IF;
    IF enqueue.rate_limits IS NOT NULL THEN
        v_limits := hatchet._rate_limits_option(enqueue.rate_limits);
    END IF;
    IF enqueue.desired_worker_labels IS NOT NULL OR enqueue.desired_worker_id IS NOT NULL
       OR enqueue.sticky IS NOT NULL THEN
        v_place := hatchet._placement_option(enqueue.desired_worker_labels, enqueue.desired_worker_id, enqueue.sticky);
    END IF;
    IF enqueue.execution_timeout IS NULL OR enqueue.schedule_timeout IS NULL THEN
        PERFORM hatchet.raise_error('null_argument',
            ARRAY[CASE WHEN enqueue.execution_timeout IS NULL THEN 'execution_timeout' ELSE 'schedule_timeout' END]);
    END IF;
    v_exec := hatchet.parse_duration(enqueue.execution_timeout);
    v_sched := hatchet.parse_duration(enqueue.schedule_timeout);

    IF p_key IS NOT NULL THEN
        -- A key held by an unfinished task returns that task. Insert-first so two racing callers cannot both win:
        -- the second blocks on the unique index until the first commits, then sees the conflict.
        v_id := hatchet.gen_id();
        INSERT INTO hatchet.idempotency_keys AS k (tenant_id, key, task_id) VALUES (p_tenant, p_key, v_id)
        ON CONFLICT ON CONSTRAINT idempotency_keys_pkey DO NOTHING;
        IF NOT FOUND THEN
            SELECT k.task_id INTO v_id FROM hatchet.idempotency_keys k
            WHERE k.tenant_id = p_tenant AND k.key = p_key;
            IF FOUND THEN
                RETURN v_id;
            END IF;
            -- The holder finished between the conflict and the read: the key is free again.
            RETURN hatchet.enqueue(enqueue.queue, enqueue.input, enqueue.priority, enqueue.run_at, enqueue.retries,
                                   enqueue.backoff_factor, enqueue.backoff_max_seconds, enqueue.execution_timeout,
                                   enqueue.schedule_timeout, p_key, enqueue.additional_metadata, p_tenant,
                                   enqueue.concurrency_key, enqueue.max_runs, enqueue.strategy, enqueue.rate_limits,
                                   enqueue.desired_worker_labels, enqueue.desired_worker_id, enqueue.sticky);
        END IF;
        RETURN (hatchet._enqueue_batch(p_tenant, enqueue.queue, ARRAY[enqueue.input], enqueue.priority,
                                       enqueue.run_at, enqueue.retries, enqueue.backoff_factor,
                                       enqueue.backoff_max_seconds, v_exec, v_sched, p_key,
                                       enqueue.additional_metadata, ARRAY[v_id], NULL, NULL, NULL, v_gates,
                                       v_limits, v_place))[1];
    END IF;

    RETURN (hatchet._enqueue_batch(p_tenant, enqueue.queue, ARRAY[enqueue.input], enqueue.priority, enqueue.run_at,
                                   enqueue.retries, enqueue.backoff_factor, enqueue.backoff_max_seconds, v_exec,
                                   v_sched, NULL, enqueue.additional_metadata, NULL, NULL, NULL, NULL, v_gates,
                                   v_limits, v_place))[1];
END
$$;
COMMENT ON FUNCTION hatchet.enqueue(text, jsonb, integer, timestamptz, integer, float8, integer, text, text, text,
                                    jsonb, uuid, text, integer, text, jsonb, jsonb, uuid, text) IS
    'enqueue one task in the caller''s transaction and return its id';

CREATE FUNCTION hatchet.enqueue_many(
    queue               text,
    inputs              jsonb[],
    priority            integer     DEFAULT 1,
    run_at              timestamptz DEFAULT NULL,
    retries             integer     DEFAULT 0,
    backoff_factor      float8      DEFAULT NULL,
    backoff_max_seconds integer     DEFAULT NULL,
    execution_timeout   text        DEFAULT '60s',
    schedule_timeout    text        DEFAULT '5m',
    additional_metadata jsonb       DEFAULT '{}',
    tenant_id           uuid        DEFAULT NULL,
    concurrency_key     text        DEFAULT NULL,
    max_runs            integer     DEFAULT NULL,
    strategy            text        DEFAULT NULL,
    rate_limits         jsonb       DEFAULT NULL
) RETURNS uuid[]
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(enqueue_many.tenant_id);
    v_bad    record;
    v_limit  integer := current_setting('hatchet.max_payload_bytes')::integer;
BEGIN
    PERFORM hatchet._check_task_options(enqueue_many.queue, enqueue_many.priority, enqueue_many.retries,
                                        enqueue_many.backoff_factor, enqueue_many.backoff_max_seconds,
                                        enqueue_many.additional_metadata);
    IF inputs IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['inputs']);
    END IF;
    IF cardinality(inputs) = 0 THEN
        RETURN '{}';
    END IF;
    -- One pass finds the first bad input, so the error can name its position.
    SELECT ord, i INTO v_bad FROM unnest(inputs) WITH ORDINALITY AS u(i, ord)
    WHERE i IS NULL OR jsonb_typeof(i) <> 'object' OR pg_column_size(i) > v_limit
    ORDER BY ord LIMIT 1;
    IF FOUND THEN
        PERFORM hatchet._check_payload(format('inputs[%s]', v_bad.ord), v_bad.i);
    END IF;
    IF enqueue_many.execution_timeout IS NULL OR enqueue_many.schedule_timeout IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['execution_timeout and schedule_timeout']);
    END IF;
    RETURN hatchet._enqueue_batch(p_tenant, enqueue_many.queue, inputs, enqueue_many.priority, enqueue_many.run_at,
                                  enqueue_many.retries, enqueue_many.backoff_factor,
                                  enqueue_many.backoff_max_seconds,
                                  hatchet.parse_duration(enqueue_many.execution_timeout),
                                  hatchet.parse_duration(enqueue_many.schedule_timeout), NULL,
                                  enqueue_many.additional_metadata, NULL, NULL, NULL, NULL,
                                  hatchet._concurrency_option(enqueue_many.queue, enqueue_many.concurrency_key,
                                                              enqueue_many.max_runs, enqueue_many.strategy),
                                  hatchet._rate_limits_option(enqueue_many.rate_limits));
END
$$;
COMMENT ON FUNCTION hatchet.enqueue_many(text, jsonb[], integer, timestamptz, integer, float8, integer, text, text,
                                         jsonb, uuid, text, integer, text, jsonb) IS
    'enqueue one task per input in one statement; returns the ids in input order';

-- Ends an attempt that never started (it was queued): records the terminal event and gives back what it held.
CREATE FUNCTION hatchet._finish_unstarted(p_tenant uuid, p_task_id uuid, p_task_inserted_at timestamptz,
                                          p_retry_count integer, p_run_id uuid, p_outcome text, p_reason text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO hatchet.task_events (tenant_id, task_inserted_at, task_id, retry_count, event_type, reason)
    VALUES (p_tenant, p_task_inserted_at, p_task_id, p_retry_count, p_outcome::hatchet.task_event_type, p_reason);
    PERFORM hatchet._release_slots(p_tenant, ARRAY[p_task_id]);
    DELETE FROM hatchet.idempotency_keys k WHERE k.tenant_id = p_tenant AND k.task_id = p_task_id;
    IF p_run_id IS NOT NULL THEN
        PERFORM hatchet._on_tasks_finished(p_tenant, ARRAY[p_task_id], ARRAY[p_run_id], p_outcome);
    ELSE
        PERFORM hatchet._durable_finished(p_tenant, ARRAY[p_task_id], ARRAY[p_task_id]);
    END IF;
END
$$;

-- ---------------------------------------------------------------------------------------------------------------------
-- Dequeue
-- ---------------------------------------------------------------------------------------------------------------------

-- Moves due delayed attempts (run_at reached, backoff over) into the ready queue. Retries keep their priority 4.
CREATE FUNCTION hatchet._promote_due(p_tenant uuid, p_queue text, p_now timestamptz, p_limit integer)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
    v_queues text[];
    g_ids uuid[];
    g_at timestamptz[];
    g_rc integer[];
    g_app integer[];
    g_int integer[];
    g_prio integer[];
BEGIN
    WITH due AS (
        DELETE FROM hatchet.delayed_queue d
        WHERE d.ctid = ANY (ARRAY(
            SELECT x.ctid FROM hatchet.delayed_queue x
            WHERE x.tenant_id = p_tenant AND x.ready_at <= p_now AND (p_queue IS NULL OR x.queue = p_queue)
            ORDER BY x.ready_at
            LIMIT p_limit
            FOR UPDATE SKIP LOCKED))
        RETURNING d.*
    ), due_tasks AS (
        SELECT d.*, t.schedule_timeout, t.rate_limits IS NOT NULL AS rate_limited,
               -- it must (re)pass its concurrency gates: it holds no slot after run_at or a backoff
               (t.concurrency IS NOT NULL AND d.concurrency_key IS NULL) AS gated
        FROM due d
        CROSS JOIN LATERAL (SELECT x.* FROM hatchet.tasks x  -- per-row probe: pruned to one partition
                            WHERE x.tenant_id = d.tenant_id AND x.inserted_at = d.task_inserted_at AND x.id = d.task_id) t
    ), ready AS (
        INSERT INTO hatchet.ready_queue (tenant_id, task_id, task_inserted_at, fair_rank, schedule_timeout_at,
                                         retry_count, app_retry_count, internal_retry_count, priority, queue,
                                         concurrency_key, desired_worker_id, run_id, task_definition_id, rate_limited)
        SELECT d.tenant_id, d.task_id, d.task_inserted_at, coalesce(q.vtime, 0), p_now + d.schedule_timeout,
               d.retry_count, d.app_retry_count, d.internal_retry_count, d.priority, d.queue, d.concurrency_key,
               d.desired_worker_id, d.run_id, d.task_definition_id, d.rate_limited
        FROM due_tasks d
        LEFT JOIN hatchet.queues q ON q.tenant_id = d.tenant_id AND q.name = d.queue
        WHERE NOT d.gated
        ORDER BY d.ready_at
        RETURNING queue
    )
    SELECT (SELECT count(*) FROM ready)::integer, (SELECT array_agg(DISTINCT r.queue) FROM ready r),
           array_agg(d.task_id ORDER BY d.ready_at) FILTER (WHERE d.gated),
           array_agg(d.task_inserted_at ORDER BY d.ready_at) FILTER (WHERE d.gated),
           array_agg(d.retry_count ORDER BY d.ready_at) FILTER (WHERE d.gated),
           array_agg(d.app_retry_count ORDER BY d.ready_at) FILTER (WHERE d.gated),
           array_agg(d.internal_retry_count ORDER BY d.ready_at) FILTER (WHERE d.gated),
           array_agg(d.priority::integer ORDER BY d.ready_at) FILTER (WHERE d.gated)
    INTO n, v_queues, g_ids, g_at, g_rc, g_app, g_int, g_prio
    FROM due_tasks d;
    -- Consumers of each queue that got work are woken (gated attempts: by _admit below).
    PERFORM hatchet._ready(q) FROM unnest(v_queues) AS q;
    -- Gated attempts (deleted above) pass their concurrency gates one by one, in due order.
    FOR i IN 1 .. coalesce(cardinality(g_ids), 0) LOOP
        PERFORM hatchet._admit(p_tenant, g_ids[i], g_at[i], g_rc[i], g_app[i], g_int[i], g_prio[i]);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

-- Lock up to p_n ready rows of a queue in dispatch order (priority 4 first, then fair rank, then FIFO), skipping rows
-- other claimers hold. With p_bounded, each priority is read on from where this session's previous claims of the queue
-- stopped (hatchet._claim_bounds, see claim.rs in the extension): while a transaction holds back vacuum, the deleted
-- rows of earlier claims stay in the dispatch index, and reading from the start would visit every one of them again.
-- The queue is read from the start when there are no bounds, and again when the bounded read comes up short.
CREATE FUNCTION hatchet._claim_ready(p_tenant uuid, p_queue text, p_n integer, p_bounded boolean,
                                     OUT ctids tid[], OUT any_rate_limited boolean,
                                     OUT first_day timestamptz, OUT last_day timestamptz)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    b        bigint[];
    v_from   CONSTANT bigint := -9223372036854775808;
    v_prios  smallint[];
    v_ranks  bigint[];
    v_ids    bigint[];
    s_ctids  tid[];
    s_rl     boolean;
    s_prios  smallint[];
    s_ranks  bigint[];
    s_ids    bigint[];
    s_first  timestamptz;
    s_last   timestamptz;
BEGIN
    IF p_bounded THEN
        b := hatchet._claim_bounds(p_tenant, p_queue);
    END IF;
    IF b IS NOT NULL THEN
        SELECT array_agg(x.ctid), bool_or(x.rate_limited), array_agg(x.priority), array_agg(x.fair_rank),
               array_agg(x.id), min(x.task_inserted_at), max(x.task_inserted_at)
        INTO ctids, any_rate_limited, v_prios, v_ranks, v_ids, first_day, last_day
        -- (A lateral read per priority, in dispatch order: FOR UPDATE is not allowed in the branches of a UNION.)
        FROM (SELECT c.* FROM unnest('{4,3,2,1}'::smallint[]) AS p(prio)
              CROSS JOIN LATERAL (
                  SELECT r.ctid, r.rate_limited, r.priority, r.fair_rank, r.id, r.task_inserted_at
                  FROM hatchet.ready_queue r
                  WHERE r.tenant_id = p_tenant AND r.queue = p_queue AND r.priority = p.prio
                    AND (r.fair_rank, r.id) >= (coalesce(b[9 - 2 * p.prio], v_from), coalesce(b[10 - 2 * p.prio], v_from))
                  ORDER BY r.fair_rank, r.id
                  LIMIT p_n
                  FOR UPDATE SKIP LOCKED) c
              LIMIT p_n) x;
        IF coalesce(cardinality(ctids), 0) = p_n THEN
            PERFORM hatchet._claim_seen(p_tenant, p_queue, false, v_prios, v_ranks, v_ids);
            RETURN;
        END IF;
    END IF;

    -- From the start, for what is still wanted (rows this transaction already locked are not skipped by SKIP
    -- LOCKED, hence the ctid filter).
    SELECT array_agg(x.ctid), bool_or(x.rate_limited), array_agg(x.priority), array_agg(x.fair_rank), array_agg(x.id),
           min(x.task_inserted_at), max(x.task_inserted_at)
    INTO s_ctids, s_rl, s_prios, s_ranks, s_ids, s_first, s_last
    FROM (SELECT c.ctid, c.rate_limited, c.priority, c.fair_rank, c.id, c.task_inserted_at FROM hatchet.ready_queue c
          WHERE c.tenant_id = p_tenant AND c.queue = p_queue AND c.ctid <> ALL (coalesce(ctids, '{}'))
          ORDER BY c.priority DESC, c.fair_rank, c.id
          LIMIT p_n - coalesce(cardinality(ctids), 0)
          FOR UPDATE SKIP LOCKED) x;
    ctids := ctids || s_ctids;
    any_rate_limited := any_rate_limited OR s_rl;
    first_day := least(first_day, s_first);
    last_day := greatest(last_day, s_last);
    IF p_bounded THEN
        PERFORM hatchet._claim_seen(p_tenant, p_queue, true, coalesce(v_prios || s_prios, '{}'),
                                    coalesce(v_ranks || s_ranks, '{}'), coalesce(v_ids || s_ids, '{}'));
    END IF;
END
$$;

CREATE FUNCTION hatchet.dequeue(
    queue     text,
    worker    text    DEFAULT NULL,
    n         integer DEFAULT 1,
    tenant_id uuid    DEFAULT NULL
) RETURNS TABLE (task_id uuid, retry_count integer, input jsonb, additional_metadata jsonb, timeout_at timestamptz,
                 priority integer)
LANGUAGE plpgsql
SECURITY DEFINER
-- The claimed rows are deleted by ctid. Without this the planner prices a TID scan of 100 ctids above a sequential
-- scan of any ready queue under a few hundred pages, and then reads the whole queue on every claim (measured: a
-- 20,000-task drain spent a third of its dequeue time there).
SET enable_seqscan = off
-- One plan for every call: re-planning the claim for each new set of ctids (custom plans) cost more than the claim
-- itself for small batches (dequeue of 1: 0.88 -> 0.26 ms). The generic plan prunes task partitions at run time.
SET plan_cache_mode = force_generic_plan
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid    := hatchet._tenant(dequeue.tenant_id);
    p_queue  text    := dequeue.queue;
    p_worker text    := dequeue.worker;
    p_n      integer := dequeue.n;
    v_now    timestamptz := clock_timestamp();
    v_ctids  tid[];
    v_any_rl boolean;
    v_first  timestamptz;
    v_last   timestamptz;
BEGIN
    IF p_queue IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['queue']);
    END IF;
    IF p_n IS NULL OR p_n NOT BETWEEN 1 AND 10000 THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('n must be between 1 and 10000, not %s', coalesce(p_n::text, 'null'))]);
    END IF;
    -- A batch task's attempts go to workers in batches (hatchet.assign_batches, with labels, stickiness and rate limits
    -- applied per member), never one by one. One probe of a partial index that only batch tasks enter.
    IF EXISTS (SELECT 1 FROM hatchet.task_definitions d
               WHERE d.tenant_id = p_tenant AND d.action = p_queue AND d.batch IS NOT NULL) THEN
        RAISE EXCEPTION USING ERRCODE = '0A000',
            MESSAGE = format('queue "%s" belongs to a batch task: dequeue does not hand out batch tasks', p_queue),
            HINT = 'Batch tasks run on workers of hatchet-server (hatchet.assign_batches); serve them with a Hatchet SDK worker.';
    END IF;

    -- Due run_at/backoff items of this queue become claimable right away instead of at the worker's next pass.
    -- The EXISTS is one index probe, so an idle delayed queue costs nothing here.
    IF EXISTS (SELECT 1 FROM hatchet.delayed_queue d WHERE d.tenant_id = p_tenant AND d.ready_at <= v_now) THEN
        PERFORM hatchet._promote_due(p_tenant, p_queue, v_now, 1000);
    END IF;

    -- Read the dispatch index in order and stop after n rows; skip rows other claimers hold.
    SELECT c.ctids, c.any_rate_limited, c.first_day, c.last_day INTO v_ctids, v_any_rl, v_first, v_last
    FROM hatchet._claim_ready(p_tenant, p_queue, p_n, true) c;
    IF v_ctids IS NULL THEN
        RETURN;
    END IF;
    IF v_any_rl THEN
        -- Rate-limited rows without units left are parked until their window refills; the rest are dispatched.
        v_ctids := hatchet._apply_rate_limits(p_tenant, v_ctids, v_now);
    END IF;

    RETURN QUERY
    WITH claimed AS (
        DELETE FROM hatchet.ready_queue r
        WHERE r.ctid = ANY (v_ctids)
        -- (only the columns used: the whole row cost 1.8k instructions per task more, bench/storage_model.py)
        RETURNING r.tenant_id, r.task_id, r.task_inserted_at, r.id, r.fair_rank, r.retry_count, r.app_retry_count,
                  r.internal_retry_count, r.priority, r.queue, r.concurrency_key, r.run_id, r.task_definition_id
    ), work AS (
        SELECT c.*, t.input, t.additional_metadata, v_now + t.execution_timeout AS timeout_at
        FROM claimed c
        -- per-row probe: pruned to one partition. The bounds of the claimed rows' days (variables: the generic plan
        -- prunes with them when the statement starts) leave only their partitions to set up, not every day's.
        CROSS JOIN LATERAL (SELECT x.input, x.additional_metadata, x.execution_timeout FROM hatchet.tasks x
                            WHERE x.tenant_id = c.tenant_id AND x.inserted_at = c.task_inserted_at AND x.id = c.task_id
                              AND x.inserted_at BETWEEN v_first AND v_last) t
    ), run AS (
        INSERT INTO hatchet.running (tenant_id, task_id, task_inserted_at, assigned_at, timeout_at, retry_count,
                                     app_retry_count, internal_retry_count, priority, queue, worker_name,
                                     concurrency_key, run_id, task_definition_id)
        SELECT w.tenant_id, w.task_id, w.task_inserted_at, v_now, w.timeout_at, w.retry_count, w.app_retry_count,
               w.internal_retry_count, w.priority, w.queue, p_worker, w.concurrency_key, w.run_id,
               w.task_definition_id
        FROM work w
    ), vt AS (
        -- Advance the queue's virtual time to the highest rank dispatched. Never waits: if another claimer holds
        -- the queue row, it is advancing it too.
        UPDATE hatchet.queues q SET vtime = m.rank
        FROM (SELECT max(w.fair_rank) AS rank FROM work w) m
        WHERE q.ctid = (SELECT x.ctid FROM hatchet.queues x
                        WHERE x.tenant_id = p_tenant AND x.name = p_queue FOR UPDATE SKIP LOCKED)
          AND m.rank > q.vtime
    )
    SELECT w.task_id, w.retry_count, w.input, w.additional_metadata, w.timeout_at, w.priority::integer
    FROM work w
    ORDER BY w.priority DESC, w.fair_rank, w.id;
END
$$;
COMMENT ON FUNCTION hatchet.dequeue(text, text, integer, uuid) IS
    'claim up to n ready attempts of a queue: priority 3 first, fair rank, FIFO; concurrent callers never share one';

-- ---------------------------------------------------------------------------------------------------------------------
-- Finishing attempts
-- ---------------------------------------------------------------------------------------------------------------------

-- Explains why (task, attempt) cannot report a result, as an error: the task does not exist (42704) or that attempt
-- is not the running one (55000).
CREATE FUNCTION hatchet._reject_stale(p_tenant uuid, p_task uuid, p_retry_count integer) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_state text;
    v_current integer;
BEGIN
    IF p_task IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['task_id']);
    END IF;
    IF p_retry_count IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['retry_count']);
    END IF;
    SELECT s.state, s.current INTO v_state, v_current FROM hatchet._task_state(p_tenant, p_task) s;
    IF v_state IS NULL THEN
        PERFORM hatchet.raise_error('unknown_task', ARRAY[p_task::text]);
    END IF;
    PERFORM hatchet.raise_error('stale_attempt', ARRAY[p_task::text, p_retry_count::text,
        CASE
            WHEN v_state = 'RUNNING' THEN format('The running attempt is %s.', v_current)
            WHEN v_state = 'QUEUED' THEN format('The task is queued (attempt %s has not started).', v_current)
            ELSE format('The task is already %s.', lower(v_state))
        END]);
END
$$;

-- Where a task is now, read in one statement (one snapshot): RUNNING, QUEUED, a terminal status, or NULL if no such
-- task exists. `current` is the current attempt's retry_count where known.
CREATE FUNCTION hatchet._task_state(p_tenant uuid, p_task uuid, OUT state text, OUT current integer)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    SELECT coalesce(
               (SELECT 'RUNNING' FROM hatchet.running r WHERE r.tenant_id = p_tenant AND r.task_id = p_task),
               (SELECT 'QUEUED' FROM hatchet.ready_queue r WHERE r.tenant_id = p_tenant AND r.task_id = p_task),
               -- an evicted durable task is still running as far as its run is concerned (Hatchet counts it in the
               -- RUNNING bucket, flagged as evicted): it waits for what it asked for, off any worker
               (SELECT CASE WHEN r.reason = 'evicted' THEN 'RUNNING' ELSE 'QUEUED' END
                FROM hatchet.delayed_queue r WHERE r.tenant_id = p_tenant AND r.task_id = p_task),
               (SELECT 'QUEUED' FROM hatchet.concurrency_queue r WHERE r.tenant_id = p_tenant AND r.task_id = p_task),
               (SELECT CASE e.event_type WHEN 'SKIPPED' THEN 'COMPLETED' ELSE e.event_type::text END
                FROM hatchet.task_events e
                WHERE e.tenant_id = p_tenant AND e.task_inserted_at = hatchet.uuid_time(p_task)
                  AND e.task_id = p_task AND e.event_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'SKIPPED')
                ORDER BY e.created_at DESC LIMIT 1),
               (SELECT 'QUEUED' FROM hatchet.tasks t
                WHERE t.tenant_id = p_tenant AND t.inserted_at = hatchet.uuid_time(p_task) AND t.id = p_task)),
           coalesce(
               (SELECT r.retry_count FROM hatchet.running r WHERE r.tenant_id = p_tenant AND r.task_id = p_task),
               (SELECT r.retry_count FROM hatchet.ready_queue r WHERE r.tenant_id = p_tenant AND r.task_id = p_task),
               (SELECT r.retry_count FROM hatchet.delayed_queue r
                WHERE r.tenant_id = p_tenant AND r.task_id = p_task),
               (SELECT r.retry_count FROM hatchet.concurrency_queue r
                WHERE r.tenant_id = p_tenant AND r.task_id = p_task))
    INTO state, current;
END
$$;

-- Gives back what attempts held when they leave `running`: worker slots, and (for p_slot_tasks: the tasks that
-- finished or wait for a backoff) their concurrency slots, admitting waiters into the freed room. Takes arrays so
-- one call serves a whole batch.
CREATE FUNCTION hatchet._release(p_tenant uuid, p_workers uuid[], p_slot_types text[], p_units integer[],
                                 p_slot_tasks uuid[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- Lock order everywhere: concurrency groups (by scope, key), then worker slots (by worker, slot type), then
    -- rate limits (by key). Keeping one global order is what keeps concurrent completions, cancels, enqueues and
    -- assignments from deadlocking on each other.
    IF cardinality(p_slot_tasks) > 0 THEN
        PERFORM hatchet._release_slots(p_tenant, p_slot_tasks);
    END IF;
    PERFORM 1 FROM hatchet.worker_slots ws
    WHERE ws.tenant_id = p_tenant AND ws.worker_id = ANY (p_workers)
    ORDER BY ws.worker_id, ws.slot_type FOR UPDATE;
    UPDATE hatchet.worker_slots ws SET used = ws.used - s.units
    FROM (SELECT w, st, sum(u)::integer AS units
          FROM unnest(p_workers, p_slot_types, p_units) AS x(w, st, u)
          WHERE w IS NOT NULL GROUP BY w, st) s
    WHERE ws.tenant_id = p_tenant AND ws.worker_id = s.w AND ws.slot_type = coalesce(s.st, 'default');
END
$$;

CREATE FUNCTION hatchet.complete_many(
    task_ids     uuid[],
    retry_counts integer[],
    outputs      jsonb[] DEFAULT NULL,
    tenant_id    uuid    DEFAULT NULL
) RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
-- As for dequeue: one generic plan instead of re-planning per batch (complete_many of 1: 0.72 -> 0.39 ms).
SET plan_cache_mode = force_generic_plan
-- (the running rows are deleted by ctid: see dequeue)
SET enable_seqscan = off
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(complete_many.tenant_id);
    v_now    timestamptz := clock_timestamp();
    v_limit  integer := current_setting('hatchet.max_payload_bytes')::integer;
    v_n      integer;
    v_bad    record;
    v_workers uuid[];
    v_slot_types text[];
    v_units integer[];
    v_keyed uuid[];
    v_dag_tasks uuid[];
    v_dag_runs uuid[];
    v_single uuid[];
    v_done uuid[];
    v_ctids tid[];
BEGIN
    IF task_ids IS NULL OR retry_counts IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['task_ids and retry_counts']);
    END IF;
    IF cardinality(task_ids) <> cardinality(retry_counts)
       OR (outputs IS NOT NULL AND cardinality(outputs) <> cardinality(task_ids)) THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY['task_ids, retry_counts and outputs must have the same length']);
    END IF;
    IF outputs IS NOT NULL THEN
        SELECT ord, o INTO v_bad FROM unnest(outputs) WITH ORDINALITY AS u(o, ord)
        WHERE pg_column_size(o) > v_limit ORDER BY ord LIMIT 1;
        IF FOUND THEN
            PERFORM hatchet._check_payload(format('outputs[%s]', v_bad.ord), v_bad.o, false);
        END IF;
    END IF;

    -- Each (task, attempt) pair is looked up with one primary-key probe (a subplan: the planner cannot turn it into a
    -- scan of all the tenant's running rows) and the attempts found are deleted by ctid, without a join and with no
    -- other condition (the ctids are the tenant's rows of those attempts; a condition on the tenant would let the
    -- planner read all its rows instead). A second pass runs only when some pair was not completed (a stale attempt,
    -- a repeated pair, or a row another transaction updated while this statement ran, e.g. refresh_timeout: a delete
    -- by ctid does not follow an update): it locks the attempts still running, in task order so that overlapping
    -- completions do not deadlock, and deletes them by ctid in the next statement, which sees them.
    v_n := 0;
    LOOP
        WITH done AS (
            DELETE FROM hatchet.running r
            WHERE r.ctid = ANY (coalesce(v_ctids,
                                         ARRAY(SELECT p.c
                                               FROM (SELECT (SELECT x.ctid FROM hatchet.running x
                                                             WHERE x.tenant_id = p_tenant AND x.task_id = i.id
                                                               AND x.retry_count = i.retry_count) AS c
                                                     FROM unnest(task_ids, retry_counts) AS i(id, retry_count)
                                                     OFFSET 0) p
                                               WHERE p.c IS NOT NULL)))
            RETURNING r.task_id, r.task_inserted_at, r.retry_count, r.worker_id, r.worker_name, r.slot_type,
                      r.slot_units, r.queue, r.concurrency_key, r.run_id, r.assigned_at
        ), ev AS (
            INSERT INTO hatchet.task_events (tenant_id, task_inserted_at, task_id, created_at, retry_count, event_type,
                                             worker_id, worker_name, assigned_at)
            SELECT p_tenant, d.task_inserted_at, d.task_id, v_now, d.retry_count, 'COMPLETED', d.worker_id,
                   d.worker_name, d.assigned_at
            FROM done d
        ), out AS (
            -- The output of the first pair naming the completed attempt. An empty output is the absence of a payload
            -- row: no-op tasks write nothing here (and without outputs nothing here runs).
            INSERT INTO hatchet.payloads (tenant_id, task_inserted_at, task_id, retry_count, kind, data)
            SELECT p_tenant, f.task_inserted_at, f.task_id, f.retry_count, 'OUTPUT', f.output
            FROM (SELECT DISTINCT ON (d.task_id) d.task_inserted_at, d.task_id, d.retry_count, o.output
                  FROM done d
                  JOIN unnest(task_ids, retry_counts, outputs) WITH ORDINALITY AS o(task_id, retry_count, output, ord)
                    ON o.task_id = d.task_id AND o.retry_count = d.retry_count
                  WHERE outputs IS NOT NULL
                  ORDER BY d.task_id, o.ord) f
            WHERE f.output IS NOT NULL AND f.output <> '{}'::jsonb
        )
        -- (Only what a later step uses is collected: a plain SQL consumer's attempts hold no worker slot, and the
        -- tasks done are the single ones and the DAG ones.)
        SELECT v_n + count(*),
               v_workers || array_agg(d.worker_id) FILTER (WHERE d.worker_id IS NOT NULL),
               v_slot_types || array_agg(d.slot_type) FILTER (WHERE d.worker_id IS NOT NULL),
               v_units || array_agg(d.slot_units) FILTER (WHERE d.worker_id IS NOT NULL),
               v_keyed || array_agg(d.task_id) FILTER (WHERE d.concurrency_key IS NOT NULL),
               v_dag_tasks || array_agg(d.task_id) FILTER (WHERE d.run_id IS NOT NULL),
               v_dag_runs || array_agg(d.run_id) FILTER (WHERE d.run_id IS NOT NULL),
               v_single || array_agg(d.task_id) FILTER (WHERE d.run_id IS NULL)
        INTO v_n, v_workers, v_slot_types, v_units, v_keyed, v_dag_tasks, v_dag_runs, v_single
        FROM done d;
        v_done := v_single || v_dag_tasks;
        EXIT WHEN v_ctids IS NOT NULL OR v_n >= cardinality(task_ids);
        v_ctids := ARRAY(SELECT p.c
                         FROM (SELECT (SELECT x.ctid FROM hatchet.running x
                                       WHERE x.tenant_id = p_tenant AND x.task_id = i.id
                                         AND x.retry_count = i.retry_count
                                       FOR UPDATE) AS c
                               FROM (SELECT DISTINCT u.id, u.retry_count
                                     FROM unnest(task_ids, retry_counts) AS u(id, retry_count)
                                     WHERE u.id <> ALL (coalesce(v_done, '{}'))
                                     ORDER BY u.id, u.retry_count) i
                               OFFSET 0) p
                         WHERE p.c IS NOT NULL);
        EXIT WHEN cardinality(v_ctids) = 0;
    END LOOP;
    IF v_n > 0 THEN
        -- Idempotency keys the finished tasks held, if the tenant has any (one index probe when it has none); found
        -- like the running rows, by one probe per task.
        IF EXISTS (SELECT 1 FROM hatchet.idempotency_keys k WHERE k.tenant_id = p_tenant) THEN
            DELETE FROM hatchet.idempotency_keys k
            WHERE k.ctid = ANY (ARRAY(SELECT pg_catalog.unnest(ARRAY(SELECT x.ctid FROM hatchet.idempotency_keys x
                                                                     WHERE x.tenant_id = p_tenant AND x.task_id = i.id))
                                      FROM unnest(v_done) AS i(id)));
        END IF;
        -- The task of a single-task workflow run is the run (its hot rows carry no run_id): done, it gives back the
        -- run's STATUS idempotency key. (DAG runs give theirs back in _on_tasks_finished.)
        IF v_single IS NOT NULL
           AND EXISTS (SELECT 1 FROM hatchet.run_idempotency_keys k WHERE k.tenant_id = p_tenant AND k.until_done) THEN
            -- (A key taken over by another run meanwhile is a new version at another ctid: not deleted.)
            DELETE FROM hatchet.run_idempotency_keys k
            WHERE k.ctid = ANY (ARRAY(SELECT pg_catalog.unnest(ARRAY(SELECT x.ctid FROM hatchet.run_idempotency_keys x
                                                                     WHERE x.tenant_id = p_tenant AND x.run_id = i.id
                                                                       AND x.until_done))
                                      FROM unnest(v_single) AS i(id)));
        END IF;
    END IF;
    IF v_n > 0 THEN
        -- Separate statements, after the one above, so they see its effects (outputs are readable by DAG children).
        -- Lock order: hot rows (taken above), then the DAG runs, then concurrency groups, then worker slots.
        -- (Plain SQL consumers hold neither worker slots nor gates nor DAG runs: nothing more to do for them.)
        IF v_dag_runs IS NOT NULL THEN
            PERFORM hatchet._lock_pending_runs(p_tenant, v_dag_runs);
        END IF;
        IF v_keyed IS NOT NULL OR v_workers IS NOT NULL THEN
            PERFORM hatchet._release(p_tenant, v_workers, v_slot_types, v_units, v_keyed);
        END IF;
        IF v_dag_tasks IS NOT NULL THEN
            PERFORM hatchet._on_tasks_finished(p_tenant, v_dag_tasks, v_dag_runs, 'COMPLETED');
        END IF;
        -- Tasks that are their own run: durable waits and parents waiting for them (durable.sql).
        -- (Only when the tenant has any SIGNAL match or durable child wait, which a plain SQL queue's tenant does
        -- not: one probe each instead of _durable_finished's index probe per task. These are reads of later
        -- statements of this transaction, as _durable_finished's own reads are.)
        IF v_single IS NOT NULL
           AND (EXISTS (SELECT 1 FROM hatchet.matches x WHERE x.tenant_id = p_tenant AND x.kind = 'SIGNAL')
                OR EXISTS (SELECT 1 FROM hatchet.durable_child_waits w WHERE w.tenant_id = p_tenant)) THEN
            PERFORM hatchet._durable_finished(p_tenant, v_single, v_single);
        END IF;
    END IF;
    RETURN v_n;
END
$$;
COMMENT ON FUNCTION hatchet.complete_many(uuid[], integer[], jsonb[], uuid) IS
    'complete a batch of attempts in one statement; stale attempts are skipped; returns how many completed';

CREATE FUNCTION hatchet.complete(
    task_id     uuid,
    retry_count integer,
    output      jsonb DEFAULT '{}',
    tenant_id   uuid  DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(complete.tenant_id);
BEGIN
    IF complete.output IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['output']);
    END IF;
    IF complete.task_id IS NULL OR complete.retry_count IS NULL
       OR hatchet.complete_many(ARRAY[complete.task_id], ARRAY[complete.retry_count], ARRAY[complete.output],
                                p_tenant) = 0 THEN
        PERFORM hatchet._reject_stale(p_tenant, complete.task_id, complete.retry_count);
    END IF;
END
$$;
COMMENT ON FUNCTION hatchet.complete(uuid, integer, jsonb, uuid) IS
    'complete the running attempt (task_id, retry_count); a stale attempt is rejected with SQLSTATE 55000';

-- Fails one attempt that has already been removed from `running` (by fail, the timeout reaper or worker loss):
-- queues the next attempt while retries remain, else records FAILED. Returns 'QUEUED' or 'FAILED'.
-- p_internal marks a failure that is not the task's fault (lost worker): it uses the internal retry budget.
-- p_retry_after (the task asked to be retried after this delay, e.g. the SDK's RetryAfterException) replaces the
-- task's backoff for this retry; the retry still counts against the task's retries.
CREATE FUNCTION hatchet._fail_attempt(p_tenant uuid, p_run hatchet.running, p_error text, p_retryable boolean,
                                      p_internal boolean DEFAULT false, p_retry_after interval DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now  timestamptz := clock_timestamp();
    v_task record;
    v_next integer := p_run.retry_count + 1;
    v_delay interval;
    v_retry boolean;
    v_max_internal constant integer := 10;
BEGIN
    SELECT t.retries, t.backoff_factor, t.backoff_max_seconds, t.schedule_timeout,
           t.rate_limits IS NOT NULL AS rate_limited INTO v_task
    FROM hatchet.tasks t
    WHERE t.tenant_id = p_tenant AND t.inserted_at = p_run.task_inserted_at AND t.id = p_run.task_id;

    -- The worker slot is free either way. Concurrency slots stay with a retry that is queued at once (the task
    -- never stops being in progress) and are given back when it finishes or waits out a backoff.
    v_retry := p_retryable AND ((p_internal AND p_run.internal_retry_count < v_max_internal)
                                OR (NOT p_internal AND p_run.app_retry_count < v_task.retries));
    PERFORM hatchet._lock_pending_runs(p_tenant, ARRAY[p_run.run_id]);
    PERFORM hatchet._release(p_tenant, ARRAY[p_run.worker_id], ARRAY[p_run.slot_type], ARRAY[p_run.slot_units],
        CASE WHEN p_run.concurrency_key IS NOT NULL
                  AND (NOT v_retry OR (NOT p_internal AND (v_task.backoff_factor IS NOT NULL
                                                           OR p_retry_after IS NOT NULL)))
             THEN ARRAY[p_run.task_id] ELSE '{}' END);

    IF v_retry THEN
        INSERT INTO hatchet.task_events (tenant_id, task_inserted_at, task_id, created_at, retry_count, event_type,
                                         worker_id, worker_name, reason, assigned_at)
        VALUES (p_tenant, p_run.task_inserted_at, p_run.task_id, v_now, p_run.retry_count,
                CASE WHEN p_internal THEN 'REASSIGNED' ELSE 'RETRYING' END::hatchet.task_event_type,
                p_run.worker_id, p_run.worker_name, p_error, p_run.assigned_at);
        IF NOT p_internal AND (v_task.backoff_factor IS NOT NULL OR p_retry_after IS NOT NULL) THEN
            v_delay := COALESCE(p_retry_after,
                                hatchet.backoff_delay(v_task.backoff_factor, v_task.backoff_max_seconds,
                                                      p_run.app_retry_count + 1));
            INSERT INTO hatchet.delayed_queue (tenant_id, task_id, task_inserted_at, ready_at, retry_count,
                                               app_retry_count, internal_retry_count, priority, queue, reason,
                                               concurrency_key, run_id, task_definition_id)
            VALUES (p_tenant, p_run.task_id, p_run.task_inserted_at, v_now + v_delay, v_next,
                    p_run.app_retry_count + 1, p_run.internal_retry_count, 4, p_run.queue, 'backoff',
                    -- no concurrency_key: its slots were given back above; it passes the gates again when due
                    NULL, p_run.run_id, p_run.task_definition_id);
        ELSE
            -- Retries go ahead of new work: priority 4 is above every user priority. A rate-limited task's retry
            -- takes its units again like any attempt (rate_limited: the chaos suite found retries skipping them).
            INSERT INTO hatchet.ready_queue (tenant_id, task_id, task_inserted_at, fair_rank, schedule_timeout_at,
                                             retry_count, app_retry_count, internal_retry_count, priority, queue,
                                             concurrency_key, run_id, task_definition_id, rate_limited)
            VALUES (p_tenant, p_run.task_id, p_run.task_inserted_at, hatchet._queue_vtime(p_tenant, p_run.queue),
                    v_now + v_task.schedule_timeout, v_next,
                    p_run.app_retry_count + CASE WHEN p_internal THEN 0 ELSE 1 END,
                    p_run.internal_retry_count + CASE WHEN p_internal THEN 1 ELSE 0 END,
                    4, p_run.queue, p_run.concurrency_key, p_run.run_id, p_run.task_definition_id,
                    v_task.rate_limited);
            PERFORM hatchet._ready(p_run.queue);
        END IF;
        RETURN 'QUEUED';
    END IF;

    INSERT INTO hatchet.task_events (tenant_id, task_inserted_at, task_id, created_at, retry_count, event_type,
                                     worker_id, worker_name, reason, assigned_at)
    VALUES (p_tenant, p_run.task_inserted_at, p_run.task_id, v_now, p_run.retry_count, 'FAILED', p_run.worker_id,
            p_run.worker_name, p_error, p_run.assigned_at);
    DELETE FROM hatchet.idempotency_keys k WHERE k.tenant_id = p_tenant AND k.task_id = p_run.task_id;
    DELETE FROM hatchet.run_idempotency_keys k  -- a single-task workflow run (see complete_many)
    WHERE k.tenant_id = p_tenant AND k.run_id = p_run.task_id AND k.until_done;
    IF p_run.run_id IS NOT NULL THEN
        PERFORM hatchet._on_tasks_finished(p_tenant, ARRAY[p_run.task_id], ARRAY[p_run.run_id], 'FAILED');
    ELSE
        PERFORM hatchet._durable_finished(p_tenant, ARRAY[p_run.task_id], ARRAY[p_run.task_id]);
    END IF;
    RETURN 'FAILED';
END
$$;

CREATE FUNCTION hatchet.fail(
    task_id     uuid,
    retry_count integer,
    error       text,
    retryable   boolean DEFAULT true,
    tenant_id   uuid    DEFAULT NULL,
    retry_after interval DEFAULT NULL  -- retry after this delay instead of the task's backoff (still a retry)
) RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(fail.tenant_id);
    v_run    hatchet.running;
BEGIN
    IF fail.error IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['error']);
    END IF;
    IF fail.retryable IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['retryable']);
    END IF;
    IF fail.retry_after < interval '0' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['retry_after must not be negative']);
    END IF;
    PERFORM hatchet._check_size('error', octet_length(fail.error), 'hatchet.max_error_bytes');
    DELETE FROM hatchet.running r
    WHERE r.tenant_id = p_tenant AND r.task_id = fail.task_id AND r.retry_count = fail.retry_count
    RETURNING r.* INTO v_run;
    IF NOT FOUND THEN
        PERFORM hatchet._reject_stale(p_tenant, fail.task_id, fail.retry_count);
    END IF;
    RETURN hatchet._fail_attempt(p_tenant, v_run, fail.error, fail.retryable, false, fail.retry_after);
END
$$;
COMMENT ON FUNCTION hatchet.fail(uuid, integer, text, boolean, uuid, interval) IS
    'fail the running attempt: returns QUEUED if a retry was scheduled (after retry_after, else with backoff), '
    'FAILED if none remain';

CREATE FUNCTION hatchet.refresh_timeout(
    task_id     uuid,
    retry_count integer,  -- NULL: the attempt that is running
    by          text,
    tenant_id   uuid DEFAULT NULL
) RETURNS timestamptz
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(refresh_timeout.tenant_id);
    v_by     interval;
    v_run    hatchet.running;
BEGIN
    IF refresh_timeout.by IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['by']);
    END IF;
    v_by := hatchet.parse_duration(refresh_timeout.by);
    -- retry_count NULL: whichever attempt is running (a worker protocol call names only the task).
    UPDATE hatchet.running r SET timeout_at = r.timeout_at + v_by
    WHERE r.tenant_id = p_tenant AND r.task_id = refresh_timeout.task_id
      AND (refresh_timeout.retry_count IS NULL OR r.retry_count = refresh_timeout.retry_count)
    RETURNING r.* INTO v_run;
    -- A member of a batch (sql/batch.sql) names the batch's handler, which the SDK refreshes through its first member:
    -- the whole batch gets the time.
    IF FOUND AND v_run.batch_id IS NOT NULL THEN
        UPDATE hatchet.running r SET timeout_at = r.timeout_at + v_by
        WHERE r.tenant_id = p_tenant AND r.worker_id = v_run.worker_id AND r.batch_id = v_run.batch_id
          AND r.task_id <> v_run.task_id;
    END IF;
    IF v_run.task_id IS NULL THEN
        IF refresh_timeout.task_id IS NULL THEN
            PERFORM hatchet.raise_error('null_argument', ARRAY['task_id']);
        END IF;
        PERFORM hatchet._reject_stale(p_tenant, refresh_timeout.task_id,
                                      coalesce(refresh_timeout.retry_count,
                                               (SELECT s.current FROM hatchet._task_state(p_tenant, refresh_timeout.task_id) s),
                                               0));
    END IF;
    INSERT INTO hatchet.task_events (tenant_id, task_inserted_at, task_id, retry_count, event_type, worker_id,
                                     worker_name, reason)
    VALUES (p_tenant, v_run.task_inserted_at, v_run.task_id, v_run.retry_count, 'TIMEOUT_REFRESHED', v_run.worker_id,
            v_run.worker_name, format('extended by %s', refresh_timeout.by));
    RETURN v_run.timeout_at;
END
$$;
COMMENT ON FUNCTION hatchet.refresh_timeout(uuid, integer, text, uuid) IS
    'extend the running attempt''s timeout by a duration; returns the new timeout_at';

-- ---------------------------------------------------------------------------------------------------------------------
-- Cancel
-- ---------------------------------------------------------------------------------------------------------------------

-- Cancels a task wherever it is. Returns true if it was cancelled, false if it had already finished. A running
-- attempt is removed at once (its result will be rejected as stale) and announced on channel hatchet_cancel so a
-- server can tell the worker to stop.
CREATE FUNCTION hatchet.cancel(
    task_id   uuid,
    tenant_id uuid DEFAULT NULL,
    reason    text DEFAULT 'cancelled by user'
) RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(cancel.tenant_id);
    p_task   uuid := cancel.task_id;
    v_run    hatchet.running;
    v_found  boolean;
    v_at     timestamptz;
    v_rc     integer;
    v_queue  text;
    v_key    text;
    v_run_id uuid;
BEGIN
    IF p_task IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['task_id']);
    END IF;
    -- An attempt moves ready -> running (dequeue) and running -> ready/delayed (retry). Looking in that order, and
    -- again if a concurrent move hid it, finds it wherever it is.
    FOR attempt IN 1..3 LOOP
        DELETE FROM hatchet.ready_queue r WHERE r.tenant_id = p_tenant AND r.task_id = p_task
        RETURNING r.task_inserted_at, r.retry_count, r.queue, r.concurrency_key, r.run_id
        INTO v_at, v_rc, v_queue, v_key, v_run_id;
        v_found := FOUND;
        IF NOT v_found THEN
            DELETE FROM hatchet.delayed_queue r WHERE r.tenant_id = p_tenant AND r.task_id = p_task
            RETURNING r.task_inserted_at, r.retry_count, r.queue, r.concurrency_key, r.run_id
            INTO v_at, v_rc, v_queue, v_key, v_run_id;
            v_found := FOUND;
        END IF;
        IF NOT v_found THEN
            DELETE FROM hatchet.concurrency_queue r WHERE r.tenant_id = p_tenant AND r.task_id = p_task
            RETURNING r.task_inserted_at, r.retry_count, r.queue, r.key, r.run_id
            INTO v_at, v_rc, v_queue, v_key, v_run_id;
            v_found := FOUND;
        END IF;
        IF NOT v_found THEN
            DELETE FROM hatchet.running r WHERE r.tenant_id = p_tenant AND r.task_id = p_task
            RETURNING r.* INTO v_run;
            IF FOUND THEN
                PERFORM hatchet._lock_pending_runs(p_tenant, ARRAY[v_run.run_id]);
                PERFORM hatchet._release(p_tenant, ARRAY[v_run.worker_id], ARRAY[v_run.slot_type],
                                         ARRAY[v_run.slot_units], ARRAY[p_task]);
                -- channel hatchet_cancel, payload "task_id:retry_count:worker_id" (worker empty for SQL consumers)
                PERFORM pg_notify('hatchet_cancel',
                                  p_task::text || ':' || v_run.retry_count || ':' || coalesce(v_run.worker_id::text, ''));
                v_at := v_run.task_inserted_at;
                v_rc := v_run.retry_count;
                v_run_id := v_run.run_id;
                v_found := true;
            END IF;
        END IF;
        IF v_found THEN
            -- (v_run is NULL unless the attempt was running: then it keeps its worker and assignment time)
            INSERT INTO hatchet.task_events (tenant_id, task_inserted_at, task_id, retry_count, event_type, reason,
                                             worker_id, worker_name, assigned_at)
            VALUES (p_tenant, v_at, p_task, v_rc, 'CANCELLED', cancel.reason, v_run.worker_id, v_run.worker_name,
                    v_run.assigned_at);
            DELETE FROM hatchet.idempotency_keys k WHERE k.tenant_id = p_tenant AND k.task_id = p_task;
            DELETE FROM hatchet.run_idempotency_keys k  -- a single-task workflow run (see complete_many)
            WHERE k.tenant_id = p_tenant AND k.run_id = p_task AND k.until_done;
            -- Whatever gates it held (or waited behind) are given back, and waiters take the room.
            PERFORM hatchet._lock_pending_runs(p_tenant, ARRAY[v_run_id]);
            PERFORM hatchet._release_slots(p_tenant, ARRAY[p_task]);
            IF v_run_id IS NOT NULL THEN
                PERFORM hatchet._on_tasks_finished(p_tenant, ARRAY[p_task], ARRAY[v_run_id], 'CANCELLED');
            ELSE
                PERFORM hatchet._durable_finished(p_tenant, ARRAY[p_task], ARRAY[p_task]);
            END IF;
            RETURN true;
        END IF;
        -- Not in flight: finished, unknown, or moved between our looks.
        IF (SELECT s.state FROM hatchet._task_state(p_tenant, p_task) s) IS NULL THEN
            PERFORM hatchet.raise_error('unknown_task', ARRAY[p_task::text]);
        END IF;
        IF (SELECT s.state FROM hatchet._task_state(p_tenant, p_task) s) IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN
            RETURN false;
        END IF;
    END LOOP;
    RETURN false;
END
$$;
COMMENT ON FUNCTION hatchet.cancel(uuid, uuid, text) IS
    'cancel a queued or running task; false if it had already finished';

-- ---------------------------------------------------------------------------------------------------------------------
-- Status, timeline and reads
-- ---------------------------------------------------------------------------------------------------------------------

CREATE FUNCTION hatchet.task_status(task_id uuid, tenant_id uuid DEFAULT NULL) RETURNS text
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_state text;
BEGIN
    IF task_status.task_id IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['task_id']);
    END IF;
    SELECT s.state INTO v_state
    FROM hatchet._task_state(hatchet._tenant(task_status.tenant_id), task_status.task_id) s;
    IF v_state IS NULL THEN
        PERFORM hatchet.raise_error('unknown_task', ARRAY[task_status.task_id::text]);
    END IF;
    RETURN v_state;
END
$$;
COMMENT ON FUNCTION hatchet.task_status(uuid, uuid) IS 'QUEUED, RUNNING, COMPLETED, FAILED or CANCELLED';

CREATE FUNCTION hatchet.task_events(task_id uuid, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (event_type text, created_at timestamptz, retry_count integer, reason text, worker text)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(task_events.tenant_id);
    p_task   uuid := task_events.task_id;
    v_at     timestamptz := hatchet.uuid_time(task_events.task_id);
BEGIN
    IF p_task IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['task_id']);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM hatchet.tasks t WHERE t.tenant_id = p_tenant AND t.inserted_at = v_at
                                                   AND t.id = p_task) THEN
        PERFORM hatchet.raise_error('unknown_task', ARRAY[p_task::text]);
    END IF;
    RETURN QUERY
    SELECT x.event_type, x.created_at, x.retry_count, x.reason, x.worker
    FROM (
        -- The task row is the QUEUED event of attempt 0: it is not stored twice.
        SELECT 'QUEUED'::text AS event_type, t.inserted_at AS created_at, 0 AS retry_count,
               format('queue %s', t.queue) AS reason, NULL::text AS worker, 0 AS ord
        FROM hatchet.tasks t WHERE t.tenant_id = p_tenant AND t.inserted_at = v_at AND t.id = p_task
        UNION ALL
        SELECT e.event_type::text, e.created_at, e.retry_count, e.reason,
               coalesce(e.worker_name, e.worker_id::text), 1
        FROM hatchet.task_events e
        WHERE e.tenant_id = p_tenant AND e.task_inserted_at = v_at AND e.task_id = p_task
        UNION ALL
        -- ASSIGNED is stored on the event that ended the attempt (assigned_at), or is the running attempt itself.
        SELECT 'ASSIGNED', e.assigned_at, e.retry_count, NULL, coalesce(e.worker_name, e.worker_id::text), 1
        FROM hatchet.task_events e
        WHERE e.tenant_id = p_tenant AND e.task_inserted_at = v_at AND e.task_id = p_task AND e.assigned_at IS NOT NULL
        UNION ALL
        SELECT 'ASSIGNED', r.assigned_at, r.retry_count, NULL, coalesce(r.worker_name, r.worker_id::text), 1
        FROM hatchet.running r WHERE r.tenant_id = p_tenant AND r.task_id = p_task
    ) x
    ORDER BY x.created_at, x.ord;
END
$$;
COMMENT ON FUNCTION hatchet.task_events(uuid, uuid) IS 'the timeline of a task: each event with time, attempt and reason';

-- One task: its run, readable id, queue, status and creation time; no row if it does not exist.
CREATE FUNCTION hatchet.task(task_id uuid, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (id uuid, run_id uuid, readable_id text, queue text, status text, created_at timestamptz)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(task.tenant_id);
BEGIN
    IF task.task_id IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['task_id']);
    END IF;
    RETURN QUERY
    SELECT t.id, t.run_id, t.readable_id, t.queue, s.state, t.inserted_at
    FROM hatchet.tasks t CROSS JOIN LATERAL hatchet._task_state(p_tenant, t.id) s
    WHERE t.tenant_id = p_tenant AND t.inserted_at = hatchet.uuid_time(task.task_id) AND t.id = task.task_id;
END
$$;
COMMENT ON FUNCTION hatchet.task(uuid, uuid) IS 'one task with its run and status (no row if unknown)';

-- The retry_count of a task's running attempt, or NULL if it is not running (RefreshTimeout and ReleaseSlot name
-- only the task).
CREATE FUNCTION hatchet.running_attempt(task_id uuid, tenant_id uuid DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF running_attempt.task_id IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['task_id']);
    END IF;
    RETURN (SELECT r.retry_count FROM hatchet.running r
            WHERE r.tenant_id = hatchet._tenant(running_attempt.tenant_id)
              AND r.task_id = running_attempt.task_id);
END
$$;
COMMENT ON FUNCTION hatchet.running_attempt(uuid, uuid) IS 'the retry_count of a task''s running attempt, or NULL';

-- ---------------------------------------------------------------------------------------------------------------------
-- Logs
-- ---------------------------------------------------------------------------------------------------------------------

-- Appends log lines written by a task (ctx.log). Lines for unknown tasks are refused, and so (54000) are lines over
-- hatchet.max_log_line_bytes and lines beyond hatchet.max_logs_per_task of one task.
CREATE FUNCTION hatchet.put_log(task_id uuid, message text, level text DEFAULT 'INFO', retry_count integer DEFAULT NULL,
                                created_at timestamptz DEFAULT NULL, tenant_id uuid DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(put_log.tenant_id);
    v_at timestamptz := hatchet.uuid_time(put_log.task_id);
BEGIN
    IF put_log.message IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['message']);
    END IF;
    PERFORM hatchet._check_size('log line', octet_length(put_log.message), 'hatchet.max_log_line_bytes');
    IF NOT EXISTS (SELECT 1 FROM hatchet.tasks t WHERE t.tenant_id = p_tenant AND t.inserted_at = v_at
                                                   AND t.id = put_log.task_id) THEN
        PERFORM hatchet.raise_error('unknown_task', ARRAY[put_log.task_id::text]);
    END IF;
    PERFORM hatchet._check_count('log lines', put_log.task_id, 'hatchet.max_logs_per_task',
        (SELECT count(*) FROM (SELECT 1 FROM hatchet.logs l
                               WHERE l.tenant_id = p_tenant AND l.task_inserted_at = v_at AND l.task_id = put_log.task_id
                               LIMIT current_setting('hatchet.max_logs_per_task')::integer) x));
    INSERT INTO hatchet.logs (tenant_id, task_inserted_at, task_id, created_at, retry_count, level, message)
    VALUES (p_tenant, v_at, put_log.task_id, coalesce(put_log.created_at, clock_timestamp()),
            coalesce(put_log.retry_count,
                     (SELECT r.retry_count FROM hatchet.running r WHERE r.tenant_id = p_tenant AND r.task_id = put_log.task_id),
                     0),
            upper(coalesce(put_log.level, 'INFO')), put_log.message);
END
$$;
COMMENT ON FUNCTION hatchet.put_log(uuid, text, text, integer, timestamptz, uuid) IS 'append a log line of a task';

CREATE FUNCTION hatchet.task_logs(task_id uuid, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (created_at timestamptz, retry_count integer, level text, message text)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT l.created_at, l.retry_count, l.level, l.message FROM hatchet.logs l
    WHERE l.tenant_id = hatchet._tenant(task_logs.tenant_id)
      AND l.task_inserted_at = hatchet.uuid_time(task_logs.task_id) AND l.task_id = task_logs.task_id
    ORDER BY l.created_at
$$;

-- ---------------------------------------------------------------------------------------------------------------------
-- OpenTelemetry traces
-- ---------------------------------------------------------------------------------------------------------------------

-- Stores spans an SDK's OpenTelemetry instrumentor exported (the server's TraceService/Export), under the calling
-- tenant. `spans` is a JSON array of objects with the columns of hatchet.otel_spans (trace_id, span_id and
-- parent_span_id in lowercase hex; start_time as a timestamp; task_id and run_id from the span's hatchet.step_run_id
-- and hatchet.workflow_run_id attributes). At most 1000 spans a call and 64 kB of attributes a span (54000, nothing
-- stored). A span already stored (same trace and span id: an exporter that retried, or two exporters in one process)
-- is skipped. Returns how many spans were stored.
CREATE FUNCTION hatchet.put_spans(spans jsonb, tenant_id uuid DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(put_spans.tenant_id);
    v_big    text;
    v_count  integer;
BEGIN
    IF put_spans.spans IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['spans']);
    END IF;
    IF jsonb_typeof(put_spans.spans) <> 'array' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['spans must be a JSON array']);
    END IF;
    IF jsonb_array_length(put_spans.spans) > 1000 THEN
        PERFORM hatchet.raise_error('limit_exceeded', ARRAY[format(
            '%s spans in one export, over the limit of 1000', jsonb_array_length(put_spans.spans))]);
    END IF;
    SELECT s ->> 'name' INTO v_big FROM jsonb_array_elements(put_spans.spans) AS x(s)
    WHERE octet_length(coalesce(s -> 'span_attributes', '{}')::text)
          + octet_length(coalesce(s -> 'resource_attributes', '{}')::text) > 65536
    LIMIT 1;
    IF FOUND THEN
        PERFORM hatchet.raise_error('limit_exceeded', ARRAY[format(
            'the attributes of span "%s" are over the limit of 65536 bytes', v_big)]);
    END IF;
    SELECT s ->> 'name' INTO v_big FROM jsonb_array_elements(put_spans.spans) AS x(s)
    WHERE NOT (coalesce(s ->> 'trace_id', '') ~ '^[0-9a-f]{32}$' AND coalesce(s ->> 'span_id', '') ~ '^[0-9a-f]{16}$'
               AND coalesce(s ->> 'parent_span_id', '0000000000000000') ~ '^[0-9a-f]{16}$')
    LIMIT 1;
    IF FOUND THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format(
            'span "%s": trace_id must be 32 and span ids 16 lowercase hex digits', v_big)]);
    END IF;
    INSERT INTO hatchet.otel_spans (tenant_id, trace_id, span_id, parent_span_id, name, kind, service_name, status_code,
                                    status_message, start_time, duration_ns, resource_attributes, span_attributes,
                                    scope_name, scope_version, task_id, run_id, retry_count)
    SELECT p_tenant, i.trace_id, i.span_id, i.parent_span_id, i.name, i.kind, i.service_name, i.status_code,
           i.status_message, i.start_time, i.duration_ns, coalesce(i.resource_attributes, '{}'),
           coalesce(i.span_attributes, '{}'), i.scope_name, i.scope_version, i.task_id, i.run_id,
           coalesce(i.retry_count, 0)
    FROM (SELECT DISTINCT ON (r.trace_id, r.span_id) r.*
          FROM jsonb_to_recordset(put_spans.spans) AS r(
                   trace_id text, span_id text, parent_span_id text, name text, kind text, service_name text,
                   status_code text, status_message text, start_time timestamptz, duration_ns bigint,
                   resource_attributes jsonb, span_attributes jsonb, scope_name text, scope_version text,
                   task_id uuid, run_id uuid, retry_count integer)
          ORDER BY r.trace_id, r.span_id) i
    WHERE NOT EXISTS (SELECT 1 FROM hatchet.otel_spans o
                      WHERE o.tenant_id = p_tenant AND o.trace_id = i.trace_id AND o.span_id = i.span_id);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END
$$;
COMMENT ON FUNCTION hatchet.put_spans(jsonb, uuid) IS 'store OpenTelemetry spans exported by an SDK (at most 1000)';

-- The attributes of the engine's spans of one task attempt (hatchet.run_trace).
CREATE FUNCTION hatchet._engine_span_attributes(p_task uuid, p_run uuid, p_readable text, p_queue text,
                                                p_workflow uuid, p_version uuid, p_retry integer) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'hatchet.span_source', 'engine', 'hatchet.step_run_id', p_task::text, 'hatchet.workflow_run_id', p_run::text,
        'hatchet.step_name', p_readable, 'hatchet.task_name', p_readable, 'hatchet.action_id', p_queue,
        'hatchet.retry_count', p_retry::text, 'hatchet.workflow_id', p_workflow::text,
        'hatchet.workflow_version_id', p_version::text))
$$;
COMMENT ON FUNCTION hatchet._engine_span_attributes(uuid, uuid, text, text, uuid, uuid, integer) IS
    'attributes of the engine spans of a task attempt, as Hatchet names them';

-- The trace of a run (or of a task): Hatchet's observability view. The trace is the one the spans stored for that run
-- or task belong to (the latest attempt's), else the trace its run was triggered in (the traceparent of its
-- additional metadata), else one derived from the run id. Returned: every span stored with that trace, and the
-- engine's own spans, derived from what the extension recorded for each run of the trace: hatchet.engine.workflow_run
-- (the run was created), hatchet.engine.event (the event that triggered it), and per attempt of each task
-- hatchet.engine.queued (from entering the queue to being assigned) and hatchet.engine.start_step_run (from being
-- assigned to its end; ERROR unless it completed). An SDK's hatchet.start_step_run span hangs under its run's
-- workflow_run span. One page ("offset", "limit" 1 to 1000) by start time, with the total; 42704 for a run or task
-- that neither exists nor has spans.
CREATE FUNCTION hatchet.run_trace(run_id uuid, "offset" integer DEFAULT 0, "limit" integer DEFAULT 1000,
                                  tenant_id uuid DEFAULT NULL)
RETURNS TABLE (trace_id text, span_id text, parent_span_id text, name text, kind text, service_name text,
               status_code text, status_message text, start_time timestamptz, duration_ns bigint,
               resource_attributes jsonb, span_attributes jsonb, scope_name text, scope_version text,
               retry_count integer, total bigint)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(run_trace.tenant_id);
    p_id     uuid := run_trace.run_id;
    c_tp     text := '^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$';
    v_run    uuid;
    v_meta   jsonb;
    v_trace  text;
    v_runs   uuid[];
BEGIN
    IF p_id IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['run_id']);
    END IF;
    PERFORM hatchet._check_page(run_trace."limit", run_trace."offset");
    -- The run the id names: a run, or the run of a task.
    SELECT r.id, r.additional_metadata INTO v_run, v_meta FROM hatchet.runs r
    WHERE r.tenant_id = p_tenant AND r.inserted_at = hatchet.uuid_time(p_id) AND r.id = p_id;
    IF v_run IS NULL THEN
        SELECT t.run_id, t.additional_metadata INTO v_run, v_meta FROM hatchet.tasks t
        WHERE t.tenant_id = p_tenant AND t.inserted_at = hatchet.uuid_time(p_id) AND t.id = p_id;
    END IF;
    SELECT o.trace_id INTO v_trace FROM hatchet.otel_spans o
    WHERE o.tenant_id = p_tenant AND (o.task_id = p_id OR o.run_id = p_id)
    ORDER BY o.retry_count DESC, o.start_time DESC
    LIMIT 1;
    IF v_trace IS NULL AND v_run IS NULL THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['run or task', p_id::text]);
    END IF;
    v_trace := coalesce(v_trace, (regexp_match(v_meta ->> 'traceparent', c_tp))[1],
                        md5('hatchet-engine-wf-trace:' || v_run::text));
    -- The runs of the trace: those its stored spans ran in, and the run asked for.
    v_runs := ARRAY(SELECT DISTINCT o.run_id FROM hatchet.otel_spans o
                    WHERE o.tenant_id = p_tenant AND o.trace_id = v_trace AND o.run_id IS NOT NULL
                    UNION SELECT v_run WHERE v_run IS NOT NULL);

    RETURN QUERY
    WITH runs AS (
        SELECT r.id, r.inserted_at, r.additional_metadata AS meta,
               (regexp_match(r.additional_metadata ->> 'traceparent', c_tp))[2] AS tp_span,
               (regexp_match(r.additional_metadata ->> 'traceparent', c_tp))[1] = v_trace AS tp_here,
               CASE WHEN r.additional_metadata ->> 'hatchet__event_id' ~ '^[0-9a-f-]{36}$'
                    THEN r.additional_metadata ->> 'hatchet__event_id' END AS event_id,
               w.name AS workflow_name, w.external_id AS workflow_id, v.external_id AS version_id,
               substr(md5('hatchet-engine-wf-span:' || r.id::text), 1, 16) AS wf_span
        FROM unnest(v_runs) AS u(id)
        JOIN hatchet.runs r ON r.tenant_id = p_tenant AND r.inserted_at = hatchet.uuid_time(u.id) AND r.id = u.id
        LEFT JOIN hatchet.workflow_versions v ON v.tenant_id = r.tenant_id AND v.id = r.workflow_version_id
        LEFT JOIN hatchet.workflows w ON w.tenant_id = v.tenant_id AND w.id = v.workflow_id
    ),
    tasks AS (
        SELECT t.id, t.inserted_at, t.readable_id, t.queue, x.id AS run_id, x.wf_span, x.workflow_id, x.version_id
        FROM runs x
        JOIN hatchet.tasks t ON t.run_id = x.id AND t.tenant_id = p_tenant
    ),
    -- Every attempt that was assigned (from the event that ended it, or the running attempt) and every attempt that
    -- ended (assigned or not), once each.
    attempts AS (
        SELECT DISTINCT ON (a.task_id, a.retry_count) a.task_id, a.retry_count, a.assigned_at
        FROM (SELECT e.task_id, e.retry_count, e.assigned_at
              FROM tasks t JOIN hatchet.task_events e
                ON e.tenant_id = p_tenant AND e.task_inserted_at = t.inserted_at AND e.task_id = t.id
              WHERE e.assigned_at IS NOT NULL
              UNION ALL
              SELECT r.task_id, r.retry_count, r.assigned_at
              FROM tasks t JOIN hatchet.running r ON r.tenant_id = p_tenant AND r.task_id = t.id) a
        ORDER BY a.task_id, a.retry_count, a.assigned_at
    ),
    ends AS (
        SELECT DISTINCT ON (e.task_id, e.retry_count) e.task_id, e.retry_count, e.assigned_at,
               e.event_type::text AS end_type, e.created_at AS ended_at, e.reason
        FROM tasks t JOIN hatchet.task_events e
          ON e.tenant_id = p_tenant AND e.task_inserted_at = t.inserted_at AND e.task_id = t.id
        WHERE e.event_type IN ('COMPLETED', 'FAILED', 'RETRYING', 'REASSIGNED', 'CANCELLED', 'TIMED_OUT')
        ORDER BY e.task_id, e.retry_count, e.created_at
    ),
    engine AS (
        SELECT x.wf_span AS span_id,
               CASE WHEN x.event_id IS NOT NULL
                    THEN substr(md5('hatchet-engine-evt-span:' || x.event_id || ':' || x.id::text), 1, 16)
                    WHEN x.tp_here THEN x.tp_span END AS parent_span_id,
               'hatchet.engine.workflow_run' AS name, 'OK' AS status_code, NULL::text AS status_message,
               x.inserted_at AS start_time, 0::bigint AS duration_ns,
               jsonb_build_object('hatchet.span_source', 'engine', 'hatchet.workflow_run_id', x.id::text,
                                  'hatchet.workflow_id', x.workflow_id::text,
                                  'hatchet.workflow_name', x.workflow_name) AS span_attributes,
               0 AS retry_count
        FROM runs x
        UNION ALL
        SELECT substr(md5('hatchet-engine-evt-span:' || x.event_id || ':' || x.id::text), 1, 16),
               CASE WHEN x.tp_here THEN x.tp_span END,
               'hatchet.engine.event', 'OK', NULL,
               coalesce(hatchet.uuid_time(x.event_id::uuid), x.inserted_at), 0,
               jsonb_build_object('hatchet.span_source', 'engine', 'hatchet.event_key', x.meta ->> 'hatchet__event_key',
                                  'hatchet.event_id', x.event_id),
               0
        FROM runs x WHERE x.event_id IS NOT NULL
        UNION ALL
        SELECT substr(md5('hatchet-engine-sr-span:' || t.id::text || ':' || a.retry_count || ':queued'), 1, 16),
               t.wf_span, 'hatchet.engine.queued', 'OK', NULL, q.queued_at,
               (extract(epoch FROM a.assigned_at - q.queued_at) * 1e9)::bigint,
               hatchet._engine_span_attributes(t.id, t.run_id, t.readable_id, t.queue, t.workflow_id, t.version_id,
                                               a.retry_count),
               a.retry_count
        FROM attempts a JOIN tasks t ON t.id = a.task_id
        CROSS JOIN LATERAL (
            -- attempt 0 entered the queue with the task; a retry when the attempt before it ended
            SELECT least(a.assigned_at, coalesce(
                       (SELECT max(e.created_at) FROM hatchet.task_events e
                        WHERE e.tenant_id = p_tenant AND e.task_inserted_at = t.inserted_at AND e.task_id = t.id
                          AND e.retry_count = a.retry_count - 1),
                       t.inserted_at)) AS queued_at) q
        UNION ALL
        SELECT substr(md5('hatchet-engine-sr-span:' || t.id::text || ':' || d.retry_count || ':step_run'), 1, 16),
               t.wf_span, 'hatchet.engine.start_step_run',
               CASE WHEN d.end_type = 'COMPLETED' THEN 'OK' ELSE 'ERROR' END,
               CASE d.end_type WHEN 'COMPLETED' THEN NULL
                               WHEN 'CANCELLED' THEN coalesce(d.reason, 'task cancelled')
                               WHEN 'TIMED_OUT' THEN coalesce(d.reason, 'task timed out')
                               WHEN 'REASSIGNED' THEN coalesce(d.reason, 'worker lost')
                               ELSE coalesce(d.reason, 'task failed') END,
               coalesce(d.assigned_at, t.inserted_at),
               greatest((extract(epoch FROM d.ended_at - coalesce(d.assigned_at, t.inserted_at)) * 1e9)::bigint, 0),
               hatchet._engine_span_attributes(t.id, t.run_id, t.readable_id, t.queue, t.workflow_id, t.version_id,
                                               d.retry_count),
               d.retry_count
        FROM ends d JOIN tasks t ON t.id = d.task_id
    ),
    spans AS (
        (SELECT DISTINCT ON (o.span_id) o.trace_id, o.span_id,
                CASE WHEN o.name LIKE 'hatchet.start\_step\_run%' AND o.run_id IS NOT NULL
                          AND o.parent_span_id IS NOT NULL
                     THEN substr(md5('hatchet-engine-wf-span:' || o.run_id::text), 1, 16)
                     ELSE o.parent_span_id END AS parent_span_id,
                o.name, o.kind, o.service_name, o.status_code, o.status_message, o.start_time, o.duration_ns,
                o.resource_attributes, o.span_attributes, o.scope_name, o.scope_version, o.retry_count
         FROM hatchet.otel_spans o
         WHERE o.tenant_id = p_tenant AND o.trace_id = v_trace
         ORDER BY o.span_id, o.inserted_at)
        UNION ALL
        SELECT v_trace, g.span_id, g.parent_span_id, g.name, 'INTERNAL', 'hatchet-engine', g.status_code,
               g.status_message, g.start_time, g.duration_ns, '{"service.name": "hatchet-engine"}'::jsonb,
               g.span_attributes, 'hatchet-engine', NULL, g.retry_count
        FROM engine g
    )
    SELECT s.trace_id, s.span_id, s.parent_span_id, s.name, s.kind, s.service_name, s.status_code, s.status_message,
           s.start_time, s.duration_ns, s.resource_attributes, s.span_attributes, s.scope_name, s.scope_version,
           s.retry_count, count(*) OVER ()
    FROM spans s
    ORDER BY s.start_time, s.span_id
    OFFSET run_trace."offset" LIMIT run_trace."limit";
END
$$;
COMMENT ON FUNCTION hatchet.run_trace(uuid, integer, integer, uuid) IS
    'the OpenTelemetry trace of a run or task: its stored spans and the engine''s spans, one page by start time';
