-- (a2) MEASUREMENT ONLY, as (a) (a_claim_update_hot.sql, below) with the indexes a working model needs: the dispatch
-- index excludes claimed rows (partial) and the claimed rows' timeouts are indexed for the reaper. The claim changes
-- a column of both predicates, so it is not a HOT update: it adds entries to the primary key, the schedule-timeout
-- and the claim-timeout indexes (as today's running insert adds to the primary key and the timeout index).
-- (a) MEASUREMENT ONLY, not a working model: the claim updates the ready row into a claimed state instead of deleting
-- it and inserting a running row; completion deletes the claimed ready row. The columns it updates are in no index, so
-- the claim is a HOT update that touches no index (the dispatch index keeps the claimed rows; the claim skips them).
-- Nothing else (reapers, cancel, the server path) knows the claimed state: this is the upper bound of what merging
-- `running` into `ready_queue` saves on the SQL drain, with no running-timeout index at all.
ALTER TABLE hatchet.ready_queue ADD COLUMN claimed_at timestamptz, ADD COLUMN timeout_at timestamptz,
                                ADD COLUMN worker_name text;
CREATE OR REPLACE FUNCTION hatchet._claim_ready(p_tenant uuid, p_queue text, p_n integer, p_bounded boolean,
                                     OUT ctids tid[], OUT any_rate_limited boolean)
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
BEGIN
    IF p_bounded THEN
        b := hatchet._claim_bounds(p_tenant, p_queue);
    END IF;
    IF b IS NOT NULL THEN
        SELECT array_agg(x.ctid), bool_or(x.rate_limited), array_agg(x.priority), array_agg(x.fair_rank),
               array_agg(x.id)
        INTO ctids, any_rate_limited, v_prios, v_ranks, v_ids
        -- (A lateral read per priority, in dispatch order: FOR UPDATE is not allowed in the branches of a UNION.)
        FROM (SELECT c.* FROM unnest('{4,3,2,1}'::smallint[]) AS p(prio)
              CROSS JOIN LATERAL (
                  SELECT r.ctid, r.rate_limited, r.priority, r.fair_rank, r.id FROM hatchet.ready_queue r
                  WHERE r.tenant_id = p_tenant AND r.queue = p_queue AND r.priority = p.prio AND r.claimed_at IS NULL
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
    SELECT array_agg(x.ctid), bool_or(x.rate_limited), array_agg(x.priority), array_agg(x.fair_rank), array_agg(x.id)
    INTO s_ctids, s_rl, s_prios, s_ranks, s_ids
    FROM (SELECT c.ctid, c.rate_limited, c.priority, c.fair_rank, c.id FROM hatchet.ready_queue c
          WHERE c.tenant_id = p_tenant AND c.queue = p_queue AND c.claimed_at IS NULL AND c.ctid <> ALL (coalesce(ctids, '{}'))
          ORDER BY c.priority DESC, c.fair_rank, c.id
          LIMIT p_n - coalesce(cardinality(ctids), 0)
          FOR UPDATE SKIP LOCKED) x;
    ctids := ctids || s_ctids;
    any_rate_limited := any_rate_limited OR s_rl;
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
    WITH work AS (
        -- (a) the claim updates the ready row into the claimed state: no running row
        UPDATE hatchet.ready_queue r SET claimed_at = v_now, worker_name = p_worker,
                                         timeout_at = v_now + t.execution_timeout
        FROM hatchet.tasks t
        WHERE r.ctid = ANY (v_ctids)
          AND t.tenant_id = r.tenant_id AND t.inserted_at = r.task_inserted_at AND t.id = r.task_id
        RETURNING r.task_id, r.retry_count, r.priority, r.fair_rank, r.id, t.input, t.additional_metadata,
                  v_now + t.execution_timeout AS timeout_at
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

CREATE OR REPLACE FUNCTION hatchet.complete_many(
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

    -- The running attempts named are found with one primary-key probe per id (a subplan: the planner cannot turn it
    -- into a scan of all the tenant's running rows) and deleted by ctid, without a join. The pair that decides for a
    -- task is the first one naming it. A second pass runs only when some id was not completed (a stale attempt, a
    -- duplicate id, or a row another transaction updated while this statement ran, e.g. refresh_timeout: the delete
    -- of its old version by ctid does not follow it): it locks the attempts still running, in task order so that
    -- overlapping completions do not deadlock, and deletes them by ctid in the next statement, which sees them.
    v_n := 0;
    LOOP
        WITH done AS (
            -- (No tenant condition here: the ctids are the tenant's rows, and the condition would let the planner
            -- read the tenant's rows instead of these.)
            DELETE FROM hatchet.ready_queue r
            WHERE r.ctid = ANY (coalesce(v_ctids,
                                         ARRAY(SELECT p.c
                                               FROM (SELECT (SELECT x.ctid FROM hatchet.ready_queue x
                                                             WHERE x.tenant_id = p_tenant AND x.task_id = i.id) AS c
                                                     FROM unnest(task_ids) AS i(id) OFFSET 0) p
                                               WHERE p.c IS NOT NULL)))
              AND r.retry_count = retry_counts[pg_catalog.array_position(task_ids, r.task_id)]
              AND r.claimed_at IS NOT NULL
            RETURNING r.task_id, r.task_inserted_at, r.retry_count, NULL::uuid AS worker_id, r.worker_name,
                      NULL::text AS slot_type, 1 AS slot_units, r.queue, r.concurrency_key, r.run_id,
                      r.claimed_at AS assigned_at,
                      outputs[pg_catalog.array_position(task_ids, r.task_id)] AS output
        ), ev AS (
            INSERT INTO hatchet.task_events (tenant_id, task_inserted_at, task_id, created_at, retry_count, event_type,
                                             worker_id, worker_name, assigned_at)
            SELECT p_tenant, d.task_inserted_at, d.task_id, v_now, d.retry_count, 'COMPLETED', d.worker_id,
                   d.worker_name, d.assigned_at
            FROM done d
        ), out AS (
            -- An empty output is the absence of a payload row: no-op tasks write nothing here.
            INSERT INTO hatchet.payloads (tenant_id, task_inserted_at, task_id, retry_count, kind, data)
            SELECT p_tenant, d.task_inserted_at, d.task_id, d.retry_count, 'OUTPUT', d.output
            FROM done d WHERE d.output IS NOT NULL AND d.output <> '{}'::jsonb
        )
        SELECT v_n + count(*), v_workers || array_agg(d.worker_id), v_slot_types || array_agg(d.slot_type),
               v_units || array_agg(d.slot_units),
               v_keyed || array_agg(d.task_id) FILTER (WHERE d.concurrency_key IS NOT NULL),
               v_dag_tasks || array_agg(d.task_id) FILTER (WHERE d.run_id IS NOT NULL),
               v_dag_runs || array_agg(d.run_id) FILTER (WHERE d.run_id IS NOT NULL),
               v_single || array_agg(d.task_id) FILTER (WHERE d.run_id IS NULL), v_done || array_agg(d.task_id)
        INTO v_n, v_workers, v_slot_types, v_units, v_keyed, v_dag_tasks, v_dag_runs, v_single, v_done
        FROM done d;
        EXIT WHEN v_ctids IS NOT NULL OR v_n >= cardinality(task_ids);
        v_ctids := ARRAY(SELECT p.c
                         FROM (SELECT (SELECT x.ctid FROM hatchet.ready_queue x
                                       WHERE x.tenant_id = p_tenant AND x.task_id = i.id AND x.claimed_at IS NOT NULL
                                         AND x.retry_count = retry_counts[pg_catalog.array_position(task_ids, i.id)]
                                       FOR UPDATE) AS c
                               FROM (SELECT DISTINCT u.id FROM unnest(task_ids) AS u(id)
                                     WHERE u.id <> ALL (coalesce(v_done, '{}')) ORDER BY u.id) i OFFSET 0) p
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
                                      FROM unnest(v_done) AS i(id)))
              AND k.tenant_id = p_tenant AND k.task_id = ANY (v_done);
        END IF;
        -- The task of a single-task workflow run is the run (its hot rows carry no run_id): done, it gives back the
        -- run's STATUS idempotency key. (DAG runs give theirs back in _on_tasks_finished.)
        IF v_single IS NOT NULL
           AND EXISTS (SELECT 1 FROM hatchet.run_idempotency_keys k WHERE k.tenant_id = p_tenant AND k.until_done) THEN
            DELETE FROM hatchet.run_idempotency_keys k
            WHERE k.ctid = ANY (ARRAY(SELECT pg_catalog.unnest(ARRAY(SELECT x.ctid FROM hatchet.run_idempotency_keys x
                                                                     WHERE x.tenant_id = p_tenant AND x.run_id = i.id))
                                      FROM unnest(v_single) AS i(id)))
              AND k.tenant_id = p_tenant AND k.run_id = ANY (v_single) AND k.until_done;
        END IF;
    END IF;
    IF v_n > 0 THEN
        -- Separate statements, after the one above, so they see its effects (outputs are readable by DAG children).
        -- Lock order: hot rows (taken above), then the DAG runs, then concurrency groups, then worker slots.
        -- (Plain SQL consumers hold neither worker slots nor gates nor DAG runs: nothing more to do for them.)
        IF v_dag_runs IS NOT NULL THEN
            PERFORM hatchet._lock_pending_runs(p_tenant, v_dag_runs);
        END IF;
        IF v_keyed IS NOT NULL OR cardinality(array_remove(v_workers, NULL)) > 0 THEN
            PERFORM hatchet._release(p_tenant, v_workers, v_slot_types, v_units, v_keyed);
        END IF;
        IF v_dag_tasks IS NOT NULL THEN
            PERFORM hatchet._on_tasks_finished(p_tenant, v_dag_tasks, v_dag_runs, 'COMPLETED');
        END IF;
        -- Tasks that are their own run: durable waits and parents waiting for them (durable.sql).
        IF v_single IS NOT NULL THEN
            PERFORM hatchet._durable_finished(p_tenant, v_single, v_single);
        END IF;
    END IF;
    RETURN v_n;
END
$$;
DROP INDEX hatchet.ready_queue_dispatch_idx;
CREATE INDEX ready_queue_dispatch_idx ON hatchet.ready_queue (tenant_id, queue, priority DESC, fair_rank, id)
    WHERE claimed_at IS NULL;
CREATE INDEX ready_queue_claim_timeout_idx ON hatchet.ready_queue (timeout_at) WHERE claimed_at IS NOT NULL;
