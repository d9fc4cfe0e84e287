-- Batch tasks (Hatchet's hatchet.batch_task): attempts of a batch task wait in the ready queue like any other, but
-- go to a worker in batches: up to the task's batch size at once, members of one batch sharing a group key (a CEL
-- expression evaluated at enqueue, tasks.batch_key), flushed when the batch is full, when its oldest member has
-- waited the flush interval, or when its inputs reach what one gRPC message can carry (4 MiB less 64 KiB). A batch is
-- one START_BATCH on the wire and holds one slot of its worker; each member keeps its own task row, attempt, events,
-- output and retries.
--
-- Exactness: a member is claimed from the ready queue (FOR UPDATE SKIP LOCKED, then deleted) into exactly one batch;
-- its running row names the batch. Whatever takes a member out of hatchet.running (completion, failure, retry,
-- cancellation, timeout, a dead worker's reaping) counts the batch down (trigger running_batch_member_done), and the
-- last one out gives the batch's slot back. A member that is retried goes back to the ready queue and joins a later
-- batch.
--
-- Public: assign_batches, batch_attempts.

-- Counts a batch down when one of its members leaves hatchet.running; the last one out frees the batch's slot.
-- The batch row is locked by the UPDATE, so two members finishing at once count down one after the other.
CREATE FUNCTION hatchet._batch_member_done() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_b hatchet.batches;
BEGIN
    UPDATE hatchet.batches b SET remaining = b.remaining - 1
    WHERE b.tenant_id = OLD.tenant_id AND b.id = OLD.batch_id
    RETURNING b.* INTO v_b;
    IF FOUND AND v_b.remaining = 0 THEN
        DELETE FROM hatchet.batches b WHERE b.tenant_id = v_b.tenant_id AND b.id = v_b.id;
        -- (a worker declared dead had its slots zeroed already: never below zero)
        UPDATE hatchet.worker_slots s SET used = s.used - 1
        WHERE s.tenant_id = v_b.tenant_id AND s.worker_id = v_b.worker_id AND s.slot_type = v_b.slot_type
          AND s.used > 0;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER running_batch_member_done AFTER DELETE ON hatchet.running
FOR EACH ROW WHEN (OLD.batch_id IS NOT NULL) EXECUTE FUNCTION hatchet._batch_member_done();

-- Hands out batches of the batch tasks served by live workers (all of them, or worker_ids), as hatchet.assign does
-- for other tasks: one row per member, members of a batch together and in dispatch order (batch_index). A group
-- (task definition, batch key) is flushed when it holds batch_max_size ready members ('size'), when the inputs of
-- the members taken so far fill one gRPC message ('bytes', 4 MiB less 64 KiB), or when its oldest ready member has
-- waited batch_max_interval_ms ('interval', 1 s if the task sets none); batch_group_max_runs caps the batches of one key
-- running at once. A batch goes to one live worker serving the queue with a free slot of the task's slot type, and
-- takes one slot there.
--
-- Placement and rate limits apply to every member, as in hatchet.assign: a member joins a batch only on a worker its
-- required desired labels accept and, if HARD sticky, only on its desired worker (hatchet._worker_score); members no
-- free worker accepts stay ready (until their schedule timeout). Each worker with a free slot is offered the group's
-- members in dispatch order that it accepts (up to the size and the bytes), and the batch goes to the offer that
-- holds the group's oldest waiting member, then to the one whose members score highest there (the label weights,
-- +1,000,000 per SOFT-sticky member on its own worker), then the larger, then the worker with most free slots. A
-- member SOFT sticky to a worker outside this call that has room is left for a call that includes it. Then each
-- member takes its rate-limit units (hatchet._apply_rate_limits): members without units left are parked until
-- their window refills (reason 'rate_limit') and the batch goes without them, so no window is ever exceeded.
CREATE FUNCTION hatchet.assign_batches(
    worker_ids  uuid[]  DEFAULT NULL,
    max_batches integer DEFAULT 50,
    tenant_id   uuid    DEFAULT NULL
) RETURNS TABLE (worker_id uuid, batch_id uuid, batch_key text, batch_size integer, batch_index integer,
                 trigger_reason text, task_id uuid, retry_count integer, queue text, input jsonb,
                 additional_metadata jsonb, priority integer, run_id uuid, readable_id text,
                 task_inserted_at timestamptz, timeout_at timestamptz, queued_at timestamptz, parent_run_id uuid)
LANGUAGE plpgsql
SECURITY DEFINER
SET enable_seqscan = off
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant  uuid := hatchet._tenant(assign_batches.tenant_id);
    v_now     timestamptz := clock_timestamp();
    v_after   interval := make_interval(secs => coalesce(current_setting('hatchet.worker_dead_after_ms', true)::integer,
                                                          30000) / 1000.0);
    -- A batch goes out as one gRPC message, which the SDKs accept up to 4 MiB: its inputs (as JSON text, plus what
    -- wraps each member) stay under that, with room for the rest of the message.
    v_max_bytes CONSTANT bigint := 4194304 - 65536;
    v_left    integer := assign_batches.max_batches;
    v_queue   text;
    v_ctids   tid[];
    g         record;
    v_size    integer;
    v_wait    interval;
    v_n       integer;
    v_nw      integer;
    v_head    integer;
    v_bytes   bigint;
    v_reason  text;
    v_running integer;
    v_w       integer;
    v_x       integer;
    v_score   bigint;
    v_sum     bigint;
    v_list    integer[];
    v_best    integer;
    v_best_list integer[];
    v_best_sum  bigint;
    v_best_reason text;
    v_limited tid[];
    v_passed  tid[];
    v_batch   uuid;
    w_ids     uuid[];
    w_labels  jsonb[];
    w_types   text[];
    w_free    integer[];
    w_serves  boolean[];
    -- per member of the group at hand: still ready and not yet taken; scored yet; its score on each worker, flattened
    -- ((member - 1) * workers + worker; NULL: it may not run there), for groups with placement only
    m_left    boolean[];
    m_scored  boolean[];
    m_scores  bigint[];
    a_ctids   tid[] := '{}';
    a_batches uuid[] := '{}';
    a_index   integer[] := '{}';
    a_sizes   integer[] := '{}';
    a_keys    text[] := '{}';
    a_reasons text[] := '{}';
    a_workers uuid[] := '{}';
    a_types   text[] := '{}';
BEGIN
    IF assign_batches.max_batches IS NULL OR assign_batches.max_batches NOT BETWEEN 1 AND 1000 THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format('max_batches must be between 1 and 1000, not %s',
                                                                    coalesce(assign_batches.max_batches::text, 'null'))]);
    END IF;
    -- Nothing to do for a tenant without batch tasks (the common case): one index probe.
    IF NOT EXISTS (SELECT 1 FROM hatchet.task_definitions d WHERE d.tenant_id = p_tenant AND d.batch IS NOT NULL) THEN
        RETURN;
    END IF;

    -- Free capacity of live workers, locked in the global order (as hatchet.assign).
    PERFORM 1 FROM hatchet.worker_slots s
    JOIN hatchet.workers w ON w.tenant_id = s.tenant_id AND w.id = s.worker_id
    WHERE s.tenant_id = p_tenant AND w.is_active AND NOT w.is_paused AND w.last_heartbeat_at >= v_now - v_after
      AND (assign_batches.worker_ids IS NULL OR s.worker_id = ANY (assign_batches.worker_ids))
    ORDER BY s.worker_id, s.slot_type
    FOR UPDATE OF s;
    SELECT array_agg(s.worker_id ORDER BY s.worker_id, s.slot_type), array_agg(w.labels ORDER BY s.worker_id, s.slot_type),
           array_agg(s.slot_type ORDER BY s.worker_id, s.slot_type),
           array_agg(s.capacity - s.used ORDER BY s.worker_id, s.slot_type)
    INTO w_ids, w_labels, w_types, w_free
    FROM hatchet.worker_slots s
    JOIN hatchet.workers w ON w.tenant_id = s.tenant_id AND w.id = s.worker_id
    WHERE s.tenant_id = p_tenant AND w.is_active AND NOT w.is_paused AND w.last_heartbeat_at >= v_now - v_after
      AND (assign_batches.worker_ids IS NULL OR s.worker_id = ANY (assign_batches.worker_ids))
      AND s.capacity > s.used;
    IF w_ids IS NULL THEN
        RETURN;
    END IF;
    v_nw := cardinality(w_ids);

    FOR v_queue IN
        SELECT DISTINCT d.action FROM hatchet.task_definitions d
        WHERE d.tenant_id = p_tenant AND d.batch IS NOT NULL
          AND (SELECT true FROM hatchet.ready_queue r WHERE r.tenant_id = p_tenant AND r.queue = d.action LIMIT 1)
          AND NOT EXISTS (SELECT 1 FROM hatchet.paused_queues p WHERE p.tenant_id = p_tenant AND p.queue = d.action)
          AND EXISTS (SELECT 1 FROM hatchet.worker_actions a
                      WHERE a.tenant_id = p_tenant AND a.action = d.action AND a.worker_id = ANY (w_ids))
        ORDER BY d.action
    LOOP
        EXIT WHEN v_left <= 0;
        w_serves := ARRAY(SELECT EXISTS (SELECT 1 FROM hatchet.worker_actions a
                                         WHERE a.tenant_id = p_tenant AND a.worker_id = w_ids[i] AND a.action = v_queue)
                          FROM generate_subscripts(w_ids, 1) AS i ORDER BY i);
        -- The head of the queue (bounded: the cost does not grow with the backlog), locked; rows left unbatched stay
        -- ready when this transaction ends.
        SELECT c.ctids INTO v_ctids FROM hatchet._claim_ready(p_tenant, v_queue, 1000, false) c;
        CONTINUE WHEN v_ctids IS NULL;

        FOR g IN
            SELECT t.task_definition_id AS definition_id, coalesce(t.batch_key, '') AS key, d.batch AS cfg,
                   t.slot_type,
                   array_agg(r.ctid ORDER BY r.priority DESC, r.fair_rank, r.id) AS ctids,
                   array_agg(pg_catalog.octet_length(t.input::text)::bigint + 128
                             ORDER BY r.priority DESC, r.fair_rank, r.id) AS sizes,
                   -- when each became ready: its schedule timeout counts from then
                   array_agg(r.schedule_timeout_at - t.schedule_timeout ORDER BY r.priority DESC, r.fair_rank, r.id)
                       AS since,
                   array_agg(r.rate_limited ORDER BY r.priority DESC, r.fair_rank, r.id) AS limited,
                   array_agg(t.desired_labels ORDER BY r.priority DESC, r.fair_rank, r.id) AS labels,
                   array_agg(t.sticky ORDER BY r.priority DESC, r.fair_rank, r.id) AS sticky,
                   array_agg(t.desired_worker_id ORDER BY r.priority DESC, r.fair_rank, r.id) AS desired,
                   bool_or(t.desired_labels IS NOT NULL OR t.sticky IS NOT NULL) AS placed
            FROM hatchet.ready_queue r
            CROSS JOIN LATERAL (SELECT x.* FROM hatchet.tasks x  -- per-row probe: pruned to one partition
                                WHERE x.tenant_id = r.tenant_id AND x.inserted_at = r.task_inserted_at
                                  AND x.id = r.task_id) t
            JOIN hatchet.task_definitions d ON d.tenant_id = p_tenant AND d.id = t.task_definition_id
            WHERE r.ctid = ANY (v_ctids) AND d.batch IS NOT NULL
            GROUP BY t.task_definition_id, coalesce(t.batch_key, ''), d.batch, t.slot_type
            ORDER BY min(r.id)
        LOOP
            v_size := (g.cfg ->> 'max_size')::integer;
            v_wait := make_interval(secs => coalesce((g.cfg ->> 'max_interval_ms')::integer, 1000) / 1000.0);
            v_n := cardinality(g.ctids);
            m_left := array_fill(true, ARRAY[v_n]);
            m_scored := array_fill(false, ARRAY[v_n]);
            m_scores := CASE WHEN g.placed THEN array_fill(NULL::bigint, ARRAY[v_n * v_nw]) END;
            v_head := 1;
            WHILE v_left > 0 LOOP
                WHILE v_head <= v_n AND NOT m_left[v_head] LOOP
                    v_head := v_head + 1;
                END LOOP;
                EXIT WHEN v_head > v_n;
                IF g.cfg ? 'group_max_runs' THEN
                    SELECT count(*) INTO v_running FROM hatchet.batches b
                    WHERE b.tenant_id = p_tenant AND b.queue = v_queue AND b.batch_key = g.key;
                    EXIT WHEN v_running >= (g.cfg ->> 'group_max_runs')::integer;
                END IF;
                -- What each worker with room would take: the members it accepts, in order, up to the batch size and,
                -- past the first, while the inputs fit; and whether that batch is due (full, or its oldest member has
                -- waited the interval). Without placement every worker would take the same members.
                v_best := NULL;
                FOR v_w IN 1 .. v_nw LOOP
                    CONTINUE WHEN w_types[v_w] <> g.slot_type OR w_free[v_w] < 1 OR NOT w_serves[v_w];
                    IF g.placed OR v_best IS NULL THEN
                        v_list := '{}';
                        v_bytes := 0;
                        v_sum := 0;
                        v_reason := NULL;
                        FOR i IN v_head .. v_n LOOP
                            EXIT WHEN cardinality(v_list) = v_size;
                            CONTINUE WHEN NOT m_left[i];
                            IF g.placed AND NOT m_scored[i] THEN
                                -- A member's scores on every worker, when it is first offered (a backlog that is not
                                -- due costs nothing). None if it is SOFT sticky to a worker outside this call that
                                -- has room: it is left for a call that includes that worker (as in hatchet.assign).
                                m_scored[i] := true;
                                IF NOT (g.sticky[i] = 'SOFT' AND assign_batches.worker_ids IS NOT NULL
                                        AND g.desired[i] IS NOT NULL AND NOT (g.desired[i] = ANY (w_ids))
                                        AND hatchet._worker_has_room(p_tenant, g.desired[i], v_queue, g.slot_type, 1,
                                                                     v_now - v_after)) THEN
                                    FOR v_x IN 1 .. v_nw LOOP
                                        CONTINUE WHEN w_types[v_x] <> g.slot_type OR NOT w_serves[v_x];
                                        m_scores[(i - 1) * v_nw + v_x] := hatchet._worker_score(w_ids[v_x],
                                            w_labels[v_x], g.labels[i], g.sticky[i], g.desired[i]);
                                    END LOOP;
                                END IF;
                            END IF;
                            v_score := CASE WHEN g.placed THEN m_scores[(i - 1) * v_nw + v_w] ELSE 0 END;
                            CONTINUE WHEN v_score IS NULL;
                            IF cardinality(v_list) > 0 AND v_bytes + g.sizes[i] > v_max_bytes THEN
                                v_reason := 'bytes';
                                EXIT;
                            END IF;
                            v_bytes := v_bytes + g.sizes[i];
                            v_sum := v_sum + v_score;
                            v_list := v_list || i;
                        END LOOP;
                        IF v_reason IS NULL AND cardinality(v_list) = v_size THEN
                            v_reason := 'size';
                        END IF;
                        IF v_reason IS NULL AND cardinality(v_list) > 0
                           AND (SELECT min(g.since[i]) FROM unnest(v_list) AS i) + v_wait <= v_now THEN
                            v_reason := 'interval';
                        END IF;
                    END IF;
                    CONTINUE WHEN v_reason IS NULL; -- not full and not due (or nothing it accepts): no batch here
                    IF v_best IS NULL
                       OR ROW(v_list[1] = v_head, v_sum, cardinality(v_list), w_free[v_w])
                          > ROW(v_best_list[1] = v_head, v_best_sum, cardinality(v_best_list), w_free[v_best]) THEN
                        v_best := v_w;
                        v_best_list := v_list;
                        v_best_sum := v_sum;
                        v_best_reason := v_reason;
                    END IF;
                END LOOP;
                EXIT WHEN v_best IS NULL; -- no room, or nothing due: the members stay ready
                -- Rate limits, member by member in dispatch order: those without units left are parked (or failed, if
                -- they can never run) and are no longer ready; the batch goes with the others.
                v_limited := ARRAY(SELECT g.ctids[i] FROM unnest(v_best_list) AS i WHERE g.limited[i]);
                IF cardinality(v_limited) > 0 THEN
                    v_passed := hatchet._apply_rate_limits(p_tenant, v_limited, v_now);
                    FOR i IN 1 .. cardinality(v_best_list) LOOP
                        IF g.limited[v_best_list[i]] AND NOT (g.ctids[v_best_list[i]] = ANY (v_passed)) THEN
                            m_left[v_best_list[i]] := false;
                        END IF;
                    END LOOP;
                    v_best_list := ARRAY(SELECT u.i FROM unnest(v_best_list) WITH ORDINALITY AS u(i, o)
                                         WHERE m_left[u.i] ORDER BY u.o);
                    CONTINUE WHEN cardinality(v_best_list) = 0;
                END IF;
                v_batch := hatchet.gen_id();
                INSERT INTO hatchet.batches (tenant_id, id, created_at, worker_id, task_definition_id, size, remaining,
                                             queue, batch_key, slot_type, reason)
                VALUES (p_tenant, v_batch, v_now, w_ids[v_best], g.definition_id, cardinality(v_best_list),
                        cardinality(v_best_list), v_queue, g.key, g.slot_type, v_best_reason);
                w_free[v_best] := w_free[v_best] - 1;
                FOR k IN 1 .. cardinality(v_best_list) LOOP
                    m_left[v_best_list[k]] := false;
                    a_ctids := a_ctids || g.ctids[v_best_list[k]];
                    a_batches := a_batches || v_batch;
                    a_index := a_index || (k - 1);
                    a_sizes := a_sizes || cardinality(v_best_list);
                    a_keys := a_keys || g.key;
                    a_reasons := a_reasons || v_best_reason;
                    a_workers := a_workers || w_ids[v_best];
                    a_types := a_types || g.slot_type;
                END LOOP;
                v_left := v_left - 1;
            END LOOP;
        END LOOP;
    END LOOP;

    IF cardinality(a_ctids) = 0 THEN
        RETURN;
    END IF;

    UPDATE hatchet.worker_slots s SET used = s.used + u.batches
    FROM (SELECT w, st, count(DISTINCT b)::integer AS batches
          FROM unnest(a_workers, a_types, a_batches) AS x(w, st, b) GROUP BY w, st) u
    WHERE s.tenant_id = p_tenant AND s.worker_id = u.w AND s.slot_type = u.st;

    RETURN QUERY
    WITH pick AS (
        SELECT * FROM unnest(a_ctids, a_batches, a_index, a_sizes, a_keys, a_reasons, a_workers, a_types)
            AS p(rctid, batch_id, batch_index, batch_size, batch_key, reason, worker_id, slot_type)
    ), claimed AS (
        DELETE FROM hatchet.ready_queue r USING pick p
        WHERE r.ctid = p.rctid
        RETURNING r.*, p.worker_id AS assigned_worker, p.slot_type AS assigned_slot_type, p.batch_id AS assigned_batch,
                  p.batch_index AS assigned_index, p.batch_size AS assigned_size, p.batch_key AS assigned_key,
                  p.reason AS assigned_reason
    ), work AS (
        SELECT c.*, t.input, t.additional_metadata, t.readable_id, t.inserted_at AS queued_at,
               v_now + t.execution_timeout AS timeout_at
        FROM claimed c
        CROSS JOIN LATERAL (SELECT x.* FROM hatchet.tasks x  -- per-row probe: pruned to one partition
                            WHERE x.tenant_id = c.tenant_id AND x.inserted_at = c.task_inserted_at AND x.id = c.task_id) t
    ), run AS (
        INSERT INTO hatchet.running (tenant_id, task_id, task_inserted_at, assigned_at, timeout_at, retry_count,
                                     app_retry_count, internal_retry_count, slot_units, priority, queue, worker_id,
                                     slot_type, concurrency_key, run_id, task_definition_id, batch_id)
        SELECT w.tenant_id, w.task_id, w.task_inserted_at, v_now, w.timeout_at, w.retry_count, w.app_retry_count,
               w.internal_retry_count, 0, w.priority, w.queue, w.assigned_worker, w.assigned_slot_type,
               w.concurrency_key, w.run_id, w.task_definition_id, w.assigned_batch
        FROM work w
    )
    SELECT w.assigned_worker, w.assigned_batch, w.assigned_key, w.assigned_size, w.assigned_index, w.assigned_reason,
           w.task_id, w.retry_count, w.queue, w.input, w.additional_metadata, w.priority::integer, w.run_id,
           w.readable_id, w.task_inserted_at, w.timeout_at, w.queued_at,
           (SELECT p.run_id FROM hatchet.runs r
            JOIN hatchet.tasks p ON p.tenant_id = r.tenant_id AND p.inserted_at = hatchet.uuid_time(r.parent_task_id)
                                AND p.id = r.parent_task_id
            WHERE r.tenant_id = w.tenant_id AND r.inserted_at = hatchet.uuid_time(coalesce(w.run_id, w.task_id))
              AND r.id = coalesce(w.run_id, w.task_id))
    FROM work w
    ORDER BY w.assigned_batch, w.assigned_index;
END
$$;
COMMENT ON FUNCTION hatchet.assign_batches(uuid[], integer, uuid) IS
    'assign ready members of batch tasks to live workers in batches (size, interval, bytes; group keys); one row per member';

-- The attempts of a batch that are still running, among task_ids: what a worker's batch event (one retry count for
-- all members) refers to. A member already finished, retried, cancelled or reaped is not returned.
CREATE FUNCTION hatchet.batch_attempts(batch_id uuid, task_ids uuid[], tenant_id uuid DEFAULT NULL)
RETURNS TABLE (task_id uuid, retry_count integer)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(batch_attempts.tenant_id);
BEGIN
    IF batch_attempts.batch_id IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['batch_id']);
    END IF;
    IF cardinality(batch_attempts.task_ids) > 1000 THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('at most 1000 task ids at once, not %s', cardinality(batch_attempts.task_ids))]);
    END IF;
    RETURN QUERY
    SELECT r.task_id, r.retry_count FROM hatchet.running r
    WHERE r.tenant_id = p_tenant AND r.task_id = ANY (batch_attempts.task_ids)
      AND r.batch_id = batch_attempts.batch_id
    ORDER BY r.task_id;
END
$$;
COMMENT ON FUNCTION hatchet.batch_attempts(uuid, uuid[], uuid) IS
    'the running attempts of a batch among the given members (task id and retry count)';
