-- (b) the input, metadata and execution timeout carried in the ready row: the claim does not probe the task partition
-- (only rows queued by the plain enqueue path carry them here; the others are still probed)
ALTER TABLE hatchet.ready_queue ADD COLUMN input jsonb, ADD COLUMN additional_metadata jsonb,
                                ADD COLUMN execution_timeout interval;
CREATE OR REPLACE FUNCTION hatchet._enqueue_batch(
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
                                         priority, queue, run_id, task_definition_id, input, additional_metadata,
                                         execution_timeout)
        SELECT p_tenant, id, hatchet.uuid_time(id), v_rank, v_now + p_schedule_timeout, p_priority, p_queue,
               p_run_ids[ord], p_definition_id, input, p_metadata, p_execution_timeout
        FROM unnest(v_ids, p_inputs) WITH ORDINALITY AS u(id, input, ord)
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


CREATE OR REPLACE FUNCTION hatchet.dequeue(
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
BEGIN
    IF p_queue IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['queue']);
    END IF;
    IF p_n IS NULL OR p_n NOT BETWEEN 1 AND 10000 THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('n must be between 1 and 10000, not %s', coalesce(p_n::text, 'null'))]);
    END IF;

    -- Due run_at/backoff items of this queue become claimable right away instead of at the worker's next pass.
    -- The EXISTS is one index probe, so an idle delayed queue costs nothing here.
    IF EXISTS (SELECT 1 FROM hatchet.delayed_queue d WHERE d.tenant_id = p_tenant AND d.ready_at <= v_now) THEN
        PERFORM hatchet._promote_due(p_tenant, p_queue, v_now, 1000);
    END IF;

    -- Read the dispatch index in order and stop after n rows; skip rows other claimers hold.
    SELECT c.ctids, c.any_rate_limited INTO v_ctids, v_any_rl FROM hatchet._claim_ready(p_tenant, p_queue, p_n, true) c;
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
        RETURNING r.*
    ), work AS (
        SELECT c.tenant_id, c.task_id, c.task_inserted_at, c.id, c.fair_rank, c.retry_count, c.app_retry_count,
               c.internal_retry_count, c.priority, c.queue, c.concurrency_key, c.run_id, c.task_definition_id,
               coalesce(c.input, t.input) AS input, coalesce(c.additional_metadata, t.additional_metadata) AS additional_metadata,
               v_now + coalesce(c.execution_timeout, t.execution_timeout) AS timeout_at
        FROM claimed c
        LEFT JOIN LATERAL (SELECT x.input, x.additional_metadata, x.execution_timeout FROM hatchet.tasks x
                           WHERE c.input IS NULL
                             AND x.tenant_id = c.tenant_id AND x.inserted_at = c.task_inserted_at AND x.id = c.task_id) t
                          ON true
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
