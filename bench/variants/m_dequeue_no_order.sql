-- MEASUREMENT ONLY: dequeue without sorting its result (what the final ORDER BY costs)
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
        SELECT c.*, t.input, t.additional_metadata, v_now + t.execution_timeout AS timeout_at
        FROM claimed c
        CROSS JOIN LATERAL (SELECT x.* FROM hatchet.tasks x  -- per-row probe: pruned to one partition
                            WHERE x.tenant_id = c.tenant_id AND x.inserted_at = c.task_inserted_at AND x.id = c.task_id) t
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
    FROM work w;
END
$$;
