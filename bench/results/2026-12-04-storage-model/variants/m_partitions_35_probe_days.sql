-- measurement only: 30 more day partitions of every partitioned table (as a database keeping a month of history has)
SELECT count(*) FROM hatchet.maintain_partitions(days_ahead => 33);
-- candidate: dequeue's task probe bounded by the claimed rows' days (initial pruning); as a variant the claim with its
-- new OUT columns is a function of another name (an extension member cannot be dropped here)
CREATE FUNCTION hatchet._claim_ready_days(p_tenant uuid, p_queue text, p_n integer, p_bounded boolean,
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
    FROM hatchet._claim_ready_days(p_tenant, p_queue, p_n, true) c;
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
