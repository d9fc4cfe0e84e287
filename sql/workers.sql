-- Workers: the registry (register, heartbeat, pause, labels, deregister), where a task may run (desired labels and
-- sticky placement), set-based assignment of ready attempts to workers' slots, and the worker reads.
--
-- Assignment decides under row locks on worker_slots (and, through flow_control.sql, on rate_limits), in the
-- transaction that changes them, so a slot is never given twice and is given back in the transaction that ends its
-- holder.
--
-- Public: register_worker, heartbeat, set_worker_paused, upsert_worker_labels, deregister_worker,
-- acknowledge_attempts, take_reaped_attempts, assign, release_slot, list_workers, worker.
-- Calls: tenants.sql, options.sql, tasks.sql (claiming, promoting, failing and releasing attempts; task_events),
-- flow_control.sql (_apply_rate_limits).

-- ---------------------------------------------------------------------------------------------------------------------
-- Registry
-- ---------------------------------------------------------------------------------------------------------------------

CREATE FUNCTION hatchet.register_worker(
    name        text,
    actions     text[],
    slots       jsonb DEFAULT '{"default": 100}',
    labels      jsonb DEFAULT '{}',
    tenant_id   uuid  DEFAULT NULL,
    worker_id   uuid  DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(register_worker.tenant_id);
    v_id     uuid := coalesce(register_worker.worker_id, hatchet.gen_id());
    v_bad    text;
BEGIN
    IF register_worker.name IS NULL OR register_worker.name = '' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['worker name must not be empty']);
    END IF;
    IF register_worker.actions IS NULL OR EXISTS (SELECT 1 FROM unnest(register_worker.actions) a WHERE a IS NULL OR a = '') THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['actions must be a list of non-empty names']);
    END IF;
    IF register_worker.slots IS NULL OR jsonb_typeof(register_worker.slots) <> 'object' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['slots must be a JSON object of slot type to capacity']);
    END IF;
    SELECT k INTO v_bad FROM jsonb_each(register_worker.slots) AS e(k, v)
    WHERE jsonb_typeof(v) <> 'number' OR (v #>> '{}')::numeric < 0 OR (v #>> '{}')::numeric <> floor((v #>> '{}')::numeric)
    LIMIT 1;
    IF v_bad IS NOT NULL THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('slot capacity of "%s" must be a non-negative integer', v_bad)]);
    END IF;
    PERFORM hatchet._check_payload('labels', register_worker.labels);

    INSERT INTO hatchet.workers AS w (tenant_id, id, name, labels, is_active, last_heartbeat_at)
    VALUES (p_tenant, v_id, register_worker.name, register_worker.labels, true, clock_timestamp())
    ON CONFLICT ON CONSTRAINT workers_pkey DO UPDATE
    SET name = excluded.name, labels = excluded.labels, is_active = true, last_heartbeat_at = excluded.last_heartbeat_at;
    DELETE FROM hatchet.worker_actions a WHERE a.tenant_id = p_tenant AND a.worker_id = v_id;
    INSERT INTO hatchet.worker_actions (tenant_id, worker_id, action)
    SELECT DISTINCT p_tenant, v_id, a FROM unnest(register_worker.actions) AS a;
    -- Capacity can change on re-registration; slots in use stay counted (capacity never drops below use).
    INSERT INTO hatchet.worker_slots AS s (tenant_id, worker_id, slot_type, capacity)
    SELECT p_tenant, v_id, k, (v #>> '{}')::integer FROM jsonb_each(register_worker.slots) AS e(k, v)
    ON CONFLICT ON CONSTRAINT worker_slots_pkey DO UPDATE SET capacity = greatest(excluded.capacity, s.used);
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION hatchet.register_worker(text, text[], jsonb, jsonb, uuid, uuid) IS
    'register (or re-register) a worker with the actions it serves, its slot capacity per slot type and its labels';

CREATE FUNCTION hatchet.heartbeat(worker_ids uuid[], tenant_id uuid DEFAULT NULL) RETURNS integer
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    -- Only workers that are still alive may heartbeat: a worker declared dead must register again.
    WITH beat AS (
        UPDATE hatchet.workers w SET last_heartbeat_at = clock_timestamp()
        WHERE w.tenant_id = hatchet._tenant(heartbeat.tenant_id) AND w.id = ANY (worker_ids)
          AND w.is_active
        RETURNING 1
    )
    SELECT count(*)::integer FROM beat
$$;
COMMENT ON FUNCTION hatchet.heartbeat(uuid[], uuid) IS 'record that these workers are alive; returns how many are';

CREATE FUNCTION hatchet.set_worker_paused(worker_id uuid, paused boolean, tenant_id uuid DEFAULT NULL) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE hatchet.workers w SET is_paused = set_worker_paused.paused
    WHERE w.tenant_id = hatchet._tenant(set_worker_paused.tenant_id) AND w.id = set_worker_paused.worker_id;
    IF NOT FOUND THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['worker', set_worker_paused.worker_id::text]);
    END IF;
END
$$;

CREATE FUNCTION hatchet.upsert_worker_labels(worker_id uuid, labels jsonb, tenant_id uuid DEFAULT NULL) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM hatchet._check_payload('labels', upsert_worker_labels.labels);
    UPDATE hatchet.workers w SET labels = w.labels || upsert_worker_labels.labels
    WHERE w.tenant_id = hatchet._tenant(upsert_worker_labels.tenant_id)
      AND w.id = upsert_worker_labels.worker_id;
    IF NOT FOUND THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['worker', upsert_worker_labels.worker_id::text]);
    END IF;
END
$$;

-- Takes a worker out of service (it unsubscribed or is dead): its running attempts are retried elsewhere as internal
-- failures (capped at 10, separately from the task's own retries) and its slots are freed.
CREATE FUNCTION hatchet.deregister_worker(worker_id uuid, reason text DEFAULT 'worker unregistered',
                                          tenant_id uuid DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(deregister_worker.tenant_id);
    v_run hatchet.running;
    v_round integer;
    n integer := 0;
BEGIN
    UPDATE hatchet.workers w SET is_active = false
    WHERE w.tenant_id = p_tenant AND w.id = deregister_worker.worker_id;
    -- FOR UPDATE, not SKIP LOCKED: a row locked for a moment (a completion, an acknowledgement) must not be left
    -- RUNNING on a worker taken out of service. A row updated while this waited has a new version this statement's
    -- snapshot cannot delete, so the next round (a new snapshot) takes it; a row a completion deleted is gone.
    FOR v_round IN 1 .. 3 LOOP
        FOR v_run IN
            DELETE FROM hatchet.running r
            WHERE r.ctid = ANY (ARRAY(SELECT x.ctid FROM hatchet.running x
                                      WHERE x.tenant_id = p_tenant AND x.worker_id = deregister_worker.worker_id
                                      FOR UPDATE))
            RETURNING r.*
        LOOP
            PERFORM hatchet._fail_attempt(p_tenant, v_run, deregister_worker.reason, true, true);
            n := n + 1;
        END LOOP;
        EXIT WHEN NOT EXISTS (SELECT 1 FROM hatchet.running x
                              WHERE x.tenant_id = p_tenant AND x.worker_id = deregister_worker.worker_id);
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION hatchet.deregister_worker(uuid, text, uuid) IS
    'take a worker out of service and retry its running attempts elsewhere; returns how many were retried';

-- The worker acknowledged these attempts (its STARTED events, batched by the server): they were delivered, so the
-- maintenance pass no longer releases them as undelivered. Idempotent; a stale or finished attempt is skipped.
-- Returns how many were newly acknowledged.
--
-- The rows are found by one primary-key probe per pair and updated by ctid, so that they are locked in ctid order
-- (a TID scan sorts its list), the order hatchet.complete_many's delete locks them in. An acknowledgement batch and
-- a completion batch overlap all the time (a short task's STARTED and COMPLETED reach the server together): when the
-- update followed the join's order instead, the two deadlocked, and every completion of the worker waited for
-- Postgres's deadlock_timeout (1 s) before one of them was aborted (bench/results/2026-12-04-sdk-trace). An update by
-- ctid does not follow a concurrent update of the row (refresh_timeout, release_slot): a second pass, only when some
-- pair was not acknowledged, locks the attempts still unacknowledged in task order, as complete_many's second pass
-- does, and updates them. An attempt left unacknowledged would be released as undelivered while it runs.
CREATE FUNCTION hatchet.acknowledge_attempts(task_ids uuid[], retry_counts integer[], tenant_id uuid DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(acknowledge_attempts.tenant_id);
    v_ctids  tid[];
    n integer;
    m integer;
BEGIN
    WITH ack AS (
        UPDATE hatchet.running r SET started_at = clock_timestamp()
        WHERE r.ctid = ANY (ARRAY(
                  SELECT p.c
                  FROM (SELECT (SELECT x.ctid FROM hatchet.running x
                                WHERE x.tenant_id = p_tenant AND x.task_id = a.task_id
                                  AND x.retry_count = a.retry_count) AS c
                        FROM unnest(acknowledge_attempts.task_ids, acknowledge_attempts.retry_counts)
                             AS a(task_id, retry_count)
                        OFFSET 0) p
                  WHERE p.c IS NOT NULL))
          AND r.started_at IS NULL
        RETURNING 1
    )
    SELECT count(*)::integer INTO n FROM ack;
    IF n >= coalesce(cardinality(acknowledge_attempts.task_ids), 0) THEN
        RETURN n;
    END IF;
    v_ctids := ARRAY(SELECT p.c
                     FROM (SELECT (SELECT x.ctid FROM hatchet.running x
                                   WHERE x.tenant_id = p_tenant AND x.task_id = i.id
                                     AND x.retry_count = i.retry_count AND x.started_at IS NULL
                                   FOR UPDATE) AS c
                           FROM (SELECT DISTINCT u.id, u.retry_count
                                 FROM unnest(acknowledge_attempts.task_ids, acknowledge_attempts.retry_counts)
                                      AS u(id, retry_count)
                                 ORDER BY u.id, u.retry_count) i
                           OFFSET 0) p
                     WHERE p.c IS NOT NULL);
    IF cardinality(v_ctids) = 0 THEN
        RETURN n;
    END IF;
    WITH ack AS (
        UPDATE hatchet.running r SET started_at = clock_timestamp()
        WHERE r.ctid = ANY (v_ctids) AND r.started_at IS NULL
        RETURNING 1
    )
    SELECT count(*)::integer INTO m FROM ack;
    RETURN n + m;
END
$$;
COMMENT ON FUNCTION hatchet.acknowledge_attempts(uuid[], integer[], uuid) IS
    'record that a worker received these attempts (STARTED); returns how many were newly acknowledged';

-- A worker declared dead came back under the same id: the attempts taken from it (retried elsewhere) are returned
-- once, and forgotten, so that the server can tell it to cancel them.
CREATE FUNCTION hatchet.take_reaped_attempts(worker_id uuid, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (task_id uuid, retry_count integer)
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    DELETE FROM hatchet.reaped_attempts a
    WHERE a.tenant_id = hatchet._tenant(take_reaped_attempts.tenant_id)
      AND a.worker_id = take_reaped_attempts.worker_id
    RETURNING a.task_id, a.retry_count
$$;
COMMENT ON FUNCTION hatchet.take_reaped_attempts(uuid, uuid) IS
    'the attempts taken from a worker declared dead, to cancel on it now that it is back (returned once)';

-- ---------------------------------------------------------------------------------------------------------------------
-- Placement and assignment
-- ---------------------------------------------------------------------------------------------------------------------

-- Validates enqueue's placement options: desired worker labels {label: {value, comparator, required, weight}},
-- a desired worker and a sticky strategy (SOFT prefers it, HARD requires it).
CREATE FUNCTION hatchet._placement_option(p_labels jsonb, p_worker uuid, p_sticky text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_labels IS NULL AND p_worker IS NULL AND p_sticky IS NULL THEN
        RETURN NULL;
    END IF;
    IF p_labels IS NOT NULL AND (jsonb_typeof(p_labels) <> 'object' OR EXISTS (
        SELECT 1 FROM jsonb_each(p_labels) AS e(k, v)
        WHERE jsonb_typeof(v) <> 'object' OR NOT v ? 'value'
           OR upper(coalesce(v ->> 'comparator', 'EQUAL')) NOT IN ('EQUAL', 'NOT_EQUAL', 'GT', 'GTE', 'LT', 'LTE',
               'GREATER_THAN', 'GREATER_THAN_OR_EQUAL', 'LESS_THAN', 'LESS_THAN_OR_EQUAL'))) THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[
            'desired_worker_labels must map labels to {"value": ..., "comparator": EQUAL|NOT_EQUAL|GT|GTE|LT|LTE, "required": bool, "weight": int}']);
    END IF;
    IF p_sticky IS NOT NULL AND upper(p_sticky) NOT IN ('SOFT', 'HARD') THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format('sticky must be SOFT or HARD, not %s', p_sticky)]);
    END IF;
    IF p_sticky IS NOT NULL AND p_worker IS NULL THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['sticky needs a desired_worker_id']);
    END IF;
    RETURN jsonb_strip_nulls(jsonb_build_object('desired_labels', p_labels, 'desired_worker_id', p_worker,
                              'sticky', coalesce(upper(p_sticky), CASE WHEN p_worker IS NOT NULL THEN 'SOFT' END)));
END
$$;

-- Does a worker's label set satisfy one desired label? Comparators as Hatchet's: EQUAL / NOT_EQUAL on strings or
-- integers, GT / GTE / LT / LTE on integers (desired value compared to the worker's: worker GT desired).
-- Not pinned: called per worker and label in assign, so every name is qualified (sql/schema.sql).
CREATE FUNCTION hatchet._label_matches(p_worker_labels jsonb, p_key text, p_want jsonb) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    v_have pg_catalog.jsonb := (p_worker_labels OPERATOR(pg_catalog.->) p_key);
    v_cmp  pg_catalog.text  := pg_catalog.upper(coalesce((p_want OPERATOR(pg_catalog.->>) 'comparator'), 'EQUAL'));
    v_val  pg_catalog.jsonb := (p_want OPERATOR(pg_catalog.->) 'value');
    v_have_n numeric;
    v_val_n  numeric;
BEGIN
    IF v_have IS NULL OR v_val IS NULL THEN
        RETURN false;
    END IF;
    IF v_cmp OPERATOR(pg_catalog.=) ANY ('{EQUAL,NOT_EQUAL}') THEN
        RETURN ((v_have OPERATOR(pg_catalog.#>>) '{}') OPERATOR(pg_catalog.=) (v_val OPERATOR(pg_catalog.#>>) '{}'))
               OPERATOR(pg_catalog.=) (v_cmp OPERATOR(pg_catalog.=) 'EQUAL');
    END IF;
    IF pg_catalog.jsonb_typeof(v_have) OPERATOR(pg_catalog.<>) 'number'
       OR pg_catalog.jsonb_typeof(v_val) OPERATOR(pg_catalog.<>) 'number' THEN
        RETURN false;
    END IF;
    v_have_n := (v_have OPERATOR(pg_catalog.#>>) '{}')::numeric;
    v_val_n := (v_val OPERATOR(pg_catalog.#>>) '{}')::numeric;
    RETURN CASE
        WHEN v_cmp OPERATOR(pg_catalog.=) ANY ('{GREATER_THAN,GT}') THEN v_have_n OPERATOR(pg_catalog.>) v_val_n
        WHEN v_cmp OPERATOR(pg_catalog.=) ANY ('{GREATER_THAN_OR_EQUAL,GTE}')
            THEN v_have_n OPERATOR(pg_catalog.>=) v_val_n
        WHEN v_cmp OPERATOR(pg_catalog.=) ANY ('{LESS_THAN,LT}') THEN v_have_n OPERATOR(pg_catalog.<) v_val_n
        WHEN v_cmp OPERATOR(pg_catalog.=) ANY ('{LESS_THAN_OR_EQUAL,LTE}') THEN v_have_n OPERATOR(pg_catalog.<=) v_val_n
        ELSE false
    END;
END
$$;

-- The score of a worker for a task: NULL if the worker may not run it (a required label fails, or HARD sticky to
-- another worker), else the sum of the weights of satisfied desired labels (+1,000,000 for the SOFT-sticky worker).
-- Not pinned: called per candidate and worker in assign, so every name is qualified (sql/schema.sql).
CREATE FUNCTION hatchet._worker_score(p_worker_id uuid, p_worker_labels jsonb, p_desired jsonb,
                                      p_sticky hatchet.sticky_strategy, p_desired_worker uuid)
RETURNS bigint
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    v_score bigint := 0;
    v_label record;
    v_ok boolean;
BEGIN
    IF p_sticky OPERATOR(pg_catalog.=) 'HARD' AND p_desired_worker IS NOT NULL
       AND p_desired_worker OPERATOR(pg_catalog.<>) p_worker_id THEN
        RETURN NULL;
    END IF;
    IF p_sticky OPERATOR(pg_catalog.=) 'SOFT' AND p_desired_worker OPERATOR(pg_catalog.=) p_worker_id THEN
        v_score := 1000000;
    END IF;
    IF p_desired IS NULL OR pg_catalog.jsonb_typeof(p_desired) OPERATOR(pg_catalog.<>) 'object' THEN
        RETURN v_score;
    END IF;
    FOR v_label IN SELECT e.k, e.v FROM pg_catalog.jsonb_each(p_desired) AS e(k, v) LOOP
        v_ok := hatchet._label_matches(p_worker_labels, v_label.k, v_label.v);
        IF NOT v_ok AND coalesce((v_label.v OPERATOR(pg_catalog.->>) 'required')::boolean, true) THEN
            RETURN NULL;
        END IF;
        IF v_ok THEN
            v_score := v_score OPERATOR(pg_catalog.+)
                       coalesce((v_label.v OPERATOR(pg_catalog.->>) 'weight')::integer, 100);
        END IF;
    END LOOP;
    RETURN v_score;
END
$$;

-- Could this worker take a task of this queue now: alive (heartbeat since p_alive_since), not paused, serving the
-- queue, with p_units free slots of the slot type? Used to leave a SOFT-sticky task to its desired worker when an
-- assignment call covers other workers only (hatchet.assign, hatchet.assign_batches).
CREATE FUNCTION hatchet._worker_has_room(p_tenant uuid, p_worker uuid, p_queue text, p_slot_type text,
                                         p_units integer, p_alive_since timestamptz) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (
        SELECT 1 FROM hatchet.worker_slots s
        JOIN hatchet.workers w ON w.tenant_id = s.tenant_id AND w.id = s.worker_id
        JOIN hatchet.worker_actions a ON a.tenant_id = s.tenant_id AND a.worker_id = s.worker_id AND a.action = p_queue
        WHERE s.tenant_id = p_tenant AND s.worker_id = p_worker AND s.slot_type = p_slot_type
          AND s.capacity - s.used >= p_units
          AND w.is_active AND NOT w.is_paused AND w.last_heartbeat_at >= p_alive_since)
$$;

-- Set-based assignment for the server: hands ready attempts to free slots of many workers at once. For each queue
-- served by the given live, unpaused workers: claims up to the free capacity in dispatch order (priority, fair rank,
-- FIFO) with SKIP LOCKED, takes rate-limit units (parking the limited ones), and gives each attempt to the best
-- eligible worker: required labels and HARD sticky filter, label weights and SOFT sticky rank, and among equals the
-- worker with the most free slots, which spreads ties. Slot use and running rows are written in the
-- same statement batch, so completing a batch and assigning the next can share one transaction.
CREATE FUNCTION hatchet.assign(
    worker_ids uuid[]  DEFAULT NULL,
    max_tasks  integer DEFAULT 100,
    tenant_id  uuid    DEFAULT NULL
) RETURNS TABLE (worker_id uuid, task_id uuid, retry_count integer, queue text, input jsonb,
                 additional_metadata jsonb, priority integer, run_id uuid, readable_id text,
                 task_inserted_at timestamptz, timeout_at timestamptz, queued_at timestamptz, parent_run_id uuid)
LANGUAGE plpgsql
SECURITY DEFINER
-- As hatchet.dequeue: claimed rows are deleted by TID scan at any queue size, and one generic plan serves every call.
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(assign.tenant_id);
    v_now    timestamptz := clock_timestamp();
    v_after  interval := make_interval(secs => coalesce(current_setting('hatchet.worker_dead_after_ms', true)::integer,
                                                         30000) / 1000.0);
    v_left   integer := assign.max_tasks;
    v_queue  text;
    v_cap    integer;
    v_ctids  tid[];
    v_any_rl boolean;
    v_cand   record;
    v_w      integer;
    v_best   integer;
    v_best_score bigint;
    v_score  bigint;
    -- worker state for this call, indexed in parallel
    w_ids    uuid[];
    w_labels jsonb[];
    w_types  text[];
    w_free   integer[];
    w_actions text[][];
    a_ctids  tid[] := '{}';
    a_workers uuid[] := '{}';
    a_types text[] := '{}';
    a_units integer[] := '{}';
BEGIN
    IF assign.max_tasks IS NULL OR assign.max_tasks NOT BETWEEN 1 AND 10000 THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('max_tasks must be between 1 and 10000, not %s', coalesce(assign.max_tasks::text, 'null'))]);
    END IF;
    IF EXISTS (SELECT 1 FROM hatchet.delayed_queue d WHERE d.tenant_id = p_tenant AND d.ready_at <= v_now) THEN
        PERFORM hatchet._promote_due(p_tenant, NULL, v_now, 1000);
    END IF;

    -- Free capacity per (worker, slot type) of live workers, read after locking their worker_slots rows (in the
    -- global lock order): two assigners never hand out the same slot, and the CHECK on used <= capacity backs it up.
    PERFORM 1 FROM hatchet.worker_slots s
    JOIN hatchet.workers w ON w.tenant_id = s.tenant_id AND w.id = s.worker_id
    WHERE s.tenant_id = p_tenant AND w.is_active AND NOT w.is_paused AND w.last_heartbeat_at >= v_now - v_after
      AND (assign.worker_ids IS NULL OR s.worker_id = ANY (assign.worker_ids))
    ORDER BY s.worker_id, s.slot_type
    FOR UPDATE OF s;
    SELECT array_agg(s.worker_id ORDER BY s.worker_id, s.slot_type), array_agg(w.labels ORDER BY s.worker_id, s.slot_type),
           array_agg(s.slot_type ORDER BY s.worker_id, s.slot_type),
           array_agg(s.capacity - s.used ORDER BY s.worker_id, s.slot_type)
    INTO w_ids, w_labels, w_types, w_free
    FROM hatchet.worker_slots s
    JOIN hatchet.workers w ON w.tenant_id = s.tenant_id AND w.id = s.worker_id
    WHERE s.tenant_id = p_tenant AND w.is_active AND NOT w.is_paused AND w.last_heartbeat_at >= v_now - v_after
      AND (assign.worker_ids IS NULL OR s.worker_id = ANY (assign.worker_ids))
      AND s.capacity > s.used;
    IF w_ids IS NULL THEN
        RETURN;
    END IF;

    FOR v_queue IN
        SELECT x.action
        FROM (SELECT DISTINCT a.action FROM hatchet.worker_actions a
              WHERE a.tenant_id = p_tenant AND a.worker_id = ANY (w_ids)) x
        -- A scalar subquery, not EXISTS: the planner may turn an EXISTS into a join that aggregates the whole ready
        -- queue (cost growing with the backlog); this stays one index probe per served queue.
        WHERE (SELECT true FROM hatchet.ready_queue r WHERE r.tenant_id = p_tenant AND r.queue = x.action LIMIT 1)
          -- A paused workflow's queues keep their attempts until it is unpaused (hatchet.pause_workflow).
          AND NOT EXISTS (SELECT 1 FROM hatchet.paused_queues p WHERE p.tenant_id = p_tenant AND p.queue = x.action)
          -- A batch task's attempts go out in batches (hatchet.assign_batches), never one by one.
          AND NOT EXISTS (SELECT 1 FROM hatchet.task_definitions d
                          WHERE d.tenant_id = p_tenant AND d.action = x.action AND d.batch IS NOT NULL)
        ORDER BY x.action
    LOOP
        EXIT WHEN v_left <= 0;
        -- How many this queue could take at most: the free default-type slots of workers serving it.
        SELECT coalesce(sum(w_free[i]), 0) INTO v_cap
        FROM generate_subscripts(w_ids, 1) AS i
        WHERE EXISTS (SELECT 1 FROM hatchet.worker_actions a
                      WHERE a.tenant_id = p_tenant AND a.worker_id = w_ids[i] AND a.action = v_queue);
        CONTINUE WHEN v_cap <= 0;
        -- Unbounded: rows this call locks but leaves (no eligible worker) stay ready, and later calls must see them.
        SELECT c.ctids, c.any_rate_limited INTO v_ctids, v_any_rl
        FROM hatchet._claim_ready(p_tenant, v_queue, least(v_cap, v_left), false) c;
        CONTINUE WHEN v_ctids IS NULL;

        FOR v_cand IN
            SELECT r.ctid AS rctid, r.task_id, r.rate_limited, t.desired_labels, t.sticky, t.desired_worker_id,
                   t.slot_type, t.slot_units, t.rate_limits
            FROM hatchet.ready_queue r
            CROSS JOIN LATERAL (SELECT x.* FROM hatchet.tasks x  -- per-row probe: pruned to one partition
                            WHERE x.tenant_id = r.tenant_id AND x.inserted_at = r.task_inserted_at AND x.id = r.task_id) t
            WHERE r.ctid = ANY (v_ctids)
            ORDER BY r.priority DESC, r.fair_rank, r.id
        LOOP
            EXIT WHEN v_left <= 0;
            v_best := NULL;
            v_best_score := NULL;
            FOR v_w IN 1 .. cardinality(w_ids) LOOP
                CONTINUE WHEN w_types[v_w] <> v_cand.slot_type OR w_free[v_w] < v_cand.slot_units;
                CONTINUE WHEN NOT EXISTS (SELECT 1 FROM hatchet.worker_actions a
                                          WHERE a.tenant_id = p_tenant AND a.worker_id = w_ids[v_w]
                                            AND a.action = v_queue);
                v_score := hatchet._worker_score(w_ids[v_w], w_labels[v_w], v_cand.desired_labels, v_cand.sticky,
                                                 v_cand.desired_worker_id);
                CONTINUE WHEN v_score IS NULL;
                IF v_best IS NULL OR v_score > v_best_score
                   OR (v_score = v_best_score AND w_free[v_w] > w_free[v_best]) THEN
                    v_best := v_w;
                    v_best_score := v_score;
                END IF;
            END LOOP;
            CONTINUE WHEN v_best IS NULL; -- no eligible worker now: it stays queued (until schedule timeout)
            -- A call for some workers only (the server assigns to the workers whose completions it just applied)
            -- leaves a SOFT-sticky task to its desired worker when that one is outside the call, alive and has room:
            -- the next call that includes it takes it. SOFT only falls back to others when its worker is full.
            IF v_cand.sticky = 'SOFT' AND assign.worker_ids IS NOT NULL AND v_cand.desired_worker_id IS NOT NULL
               AND NOT (v_cand.desired_worker_id = ANY (w_ids))
               AND hatchet._worker_has_room(p_tenant, v_cand.desired_worker_id, v_queue, v_cand.slot_type,
                                            v_cand.slot_units, v_now - v_after) THEN
                CONTINUE;
            END IF;
            IF v_cand.rate_limited THEN
                IF NOT (hatchet._apply_rate_limits(p_tenant, ARRAY[v_cand.rctid], v_now) @> ARRAY[v_cand.rctid]) THEN
                    CONTINUE; -- parked until its window refills, or failed: the rest of the queue goes on
                END IF;
            END IF;
            w_free[v_best] := w_free[v_best] - v_cand.slot_units;
            a_ctids := a_ctids || v_cand.rctid;
            a_workers := a_workers || w_ids[v_best];
            a_types := a_types || v_cand.slot_type;
            a_units := a_units || v_cand.slot_units;
            v_left := v_left - 1;
        END LOOP;
    END LOOP;

    IF cardinality(a_ctids) = 0 THEN
        RETURN;
    END IF;

    UPDATE hatchet.worker_slots s SET used = s.used + u.units
    FROM (SELECT w, st, sum(n)::integer AS units FROM unnest(a_workers, a_types, a_units) AS x(w, st, n)
          GROUP BY w, st) u
    WHERE s.tenant_id = p_tenant AND s.worker_id = u.w AND s.slot_type = u.st;

    RETURN QUERY
    WITH pick AS (
        SELECT * FROM unnest(a_ctids, a_workers, a_types, a_units) AS p(rctid, worker_id, slot_type, slot_units)
    ), claimed AS (
        DELETE FROM hatchet.ready_queue r USING pick p
        WHERE r.ctid = p.rctid
        RETURNING r.*, p.worker_id AS assigned_worker, p.slot_type AS assigned_slot_type, p.slot_units AS assigned_units
    ), work AS (
        SELECT c.*, t.input, t.additional_metadata, t.readable_id, t.inserted_at AS queued_at,
               v_now + t.execution_timeout AS timeout_at
        FROM claimed c
        CROSS JOIN LATERAL (SELECT x.* FROM hatchet.tasks x  -- per-row probe: pruned to one partition
                            WHERE x.tenant_id = c.tenant_id AND x.inserted_at = c.task_inserted_at AND x.id = c.task_id) t
    ), run AS (
        INSERT INTO hatchet.running (tenant_id, task_id, task_inserted_at, assigned_at, timeout_at, retry_count,
                                     app_retry_count, internal_retry_count, slot_units, priority, queue, worker_id,
                                     slot_type, concurrency_key, run_id, task_definition_id)
        SELECT w.tenant_id, w.task_id, w.task_inserted_at, v_now, w.timeout_at, w.retry_count, w.app_retry_count,
               w.internal_retry_count, w.assigned_units, w.priority, w.queue, w.assigned_worker, w.assigned_slot_type,
               w.concurrency_key, w.run_id, w.task_definition_id
        FROM work w
    )
    -- (no ASSIGNED event row: hatchet.task_events() derives it from `running`, then from the attempt's final event)
    SELECT w.assigned_worker, w.task_id, w.retry_count, w.queue, w.input, w.additional_metadata, w.priority::integer,
           w.run_id, w.readable_id, w.task_inserted_at, w.timeout_at, w.queued_at,
           -- a child run's parent: the run of the task that spawned it (the SDKs' parent workflow run id). The
           -- task's run is run_id, or the task itself for a single-task run (run_id NULL here); a task enqueued on
           -- its own has no runs row.
           (SELECT p.run_id FROM hatchet.runs r
            JOIN hatchet.tasks p ON p.tenant_id = r.tenant_id AND p.inserted_at = hatchet.uuid_time(r.parent_task_id)
                                AND p.id = r.parent_task_id
            WHERE r.tenant_id = w.tenant_id AND r.inserted_at = hatchet.uuid_time(coalesce(w.run_id, w.task_id))
              AND r.id = coalesce(w.run_id, w.task_id))
    FROM work w
    ORDER BY w.assigned_worker, w.priority DESC, w.fair_rank, w.id;
END
$$;
COMMENT ON FUNCTION hatchet.assign(uuid[], integer, uuid) IS
    'assign ready attempts to free slots of live workers (labels, sticky, slot cost, rate limits); returns the assignments';

-- hatchet.assign with a bounded lock wait, for the server's assignment in the transaction that made the work ready
-- (a trigger: one commit instead of the trigger's and then the assigner's). The slot rows of the workers are locked
-- in hatchet.assign's order; if any lock it needs is not free within lock_wait_ms (another assigner or a completion
-- batch holds it), or the wait would deadlock, or the assignment fails in any other way (logged as a WARNING),
-- nothing is assigned and nothing this call did is kept (its own subtransaction rolls back): the caller's
-- transaction goes on, and the server's assigner loop, woken after the commit, hands the work out. A trigger never
-- fails because of its assignment. Bad arguments (lock_wait_ms, max_tasks, tenant) still raise. lock_timeout is the
-- caller's again afterwards.
CREATE FUNCTION hatchet.try_assign(
    worker_ids   uuid[],
    max_tasks    integer DEFAULT 100,
    tenant_id    uuid    DEFAULT NULL,
    lock_wait_ms integer DEFAULT 30
) RETURNS TABLE (worker_id uuid, task_id uuid, retry_count integer, queue text, input jsonb,
                 additional_metadata jsonb, priority integer, run_id uuid, readable_id text,
                 task_inserted_at timestamptz, timeout_at timestamptz, queued_at timestamptz, parent_run_id uuid)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_lock_timeout text := current_setting('lock_timeout');
    v_tenant uuid;
    v_state text;
    v_error text;
BEGIN
    IF try_assign.lock_wait_ms IS NULL OR try_assign.lock_wait_ms NOT BETWEEN 1 AND 10000 THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('lock_wait_ms must be between 1 and 10000, not %s',
                         coalesce(try_assign.lock_wait_ms::text, 'null'))]);
    END IF;
    IF try_assign.max_tasks IS NULL OR try_assign.max_tasks NOT BETWEEN 1 AND 10000 THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('max_tasks must be between 1 and 10000, not %s',
                         coalesce(try_assign.max_tasks::text, 'null'))]);
    END IF;
    -- Bad arguments are the caller's to see: the tenant (unknown, or not the caller's) is resolved before the block.
    v_tenant := hatchet._tenant(try_assign.tenant_id);
    PERFORM set_config('lock_timeout', try_assign.lock_wait_ms || 'ms', true);
    BEGIN
        -- hatchet.assign returns its rows only when it is done: an error inside it leaves none here.
        RETURN QUERY SELECT * FROM hatchet.assign(try_assign.worker_ids, try_assign.max_tasks, v_tenant);
    EXCEPTION
        WHEN lock_not_available OR deadlock_detected THEN
            NULL;  -- the assigner loop takes it
        WHEN OTHERS THEN
            -- Whatever else went wrong in the assignment, the work that made the tasks ready stands: the assigner
            -- loop takes them (and meets the same error, if it is not transient, where it is reported too).
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_error = MESSAGE_TEXT;
            RAISE WARNING 'pg_hatchet: try_assign assigned nothing, the assigner will: % (SQLSTATE %)', v_error, v_state;
    END;
    PERFORM set_config('lock_timeout', v_lock_timeout, true);
END
$$;
COMMENT ON FUNCTION hatchet.try_assign(uuid[], integer, uuid, integer) IS
    'hatchet.assign, or nothing when a lock it needs is not free within lock_wait_ms or it fails (the transaction goes on)';

-- Frees the worker slot of a running attempt before it finishes (Hatchet's ctx.release_slot): the attempt stays
-- RUNNING and can still complete or fail, but no longer counts against its worker's capacity.
CREATE FUNCTION hatchet.release_slot(task_id uuid, tenant_id uuid DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(release_slot.tenant_id);
    v_run hatchet.running;
BEGIN
    SELECT * INTO v_run FROM hatchet.running r
    WHERE r.tenant_id = p_tenant AND r.task_id = release_slot.task_id FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM hatchet._reject_stale(p_tenant, release_slot.task_id, -1);
    END IF;
    IF v_run.worker_id IS NULL OR v_run.slot_units = 0 THEN
        RETURN false;
    END IF;
    PERFORM hatchet._release(p_tenant, ARRAY[v_run.worker_id], ARRAY[v_run.slot_type], ARRAY[v_run.slot_units], '{}');
    UPDATE hatchet.running r SET slot_units = 0 WHERE r.tenant_id = p_tenant AND r.task_id = release_slot.task_id;
    RETURN true;
END
$$;
COMMENT ON FUNCTION hatchet.release_slot(uuid, uuid) IS
    'give back a running attempt''s worker slot early; the attempt keeps running';

-- ---------------------------------------------------------------------------------------------------------------------
-- Reads
-- ---------------------------------------------------------------------------------------------------------------------

-- Workers of a tenant, newest first (or only one), with the queues they serve and their slots per slot type.
CREATE FUNCTION hatchet.list_workers(tenant_id uuid DEFAULT NULL, worker_id uuid DEFAULT NULL)
RETURNS TABLE (id uuid, name text, is_active boolean, is_paused boolean, labels jsonb, actions text[], slots jsonb,
               used jsonb, last_heartbeat_at timestamptz, created_at timestamptz)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(list_workers.tenant_id);
BEGIN
    RETURN QUERY
    SELECT w.id, w.name, w.is_active, w.is_paused, w.labels,
           coalesce((SELECT array_agg(a.action ORDER BY a.action) FROM hatchet.worker_actions a
                     WHERE a.tenant_id = w.tenant_id AND a.worker_id = w.id), '{}'),
           coalesce((SELECT jsonb_object_agg(s.slot_type, s.capacity) FROM hatchet.worker_slots s
                     WHERE s.tenant_id = w.tenant_id AND s.worker_id = w.id), '{}'),
           coalesce((SELECT jsonb_object_agg(s.slot_type, s.used) FROM hatchet.worker_slots s
                     WHERE s.tenant_id = w.tenant_id AND s.worker_id = w.id), '{}'),
           w.last_heartbeat_at, w.created_at
    FROM hatchet.workers w
    WHERE w.tenant_id = p_tenant AND (list_workers.worker_id IS NULL OR w.id = list_workers.worker_id)
    ORDER BY w.created_at DESC, w.id;
END
$$;
COMMENT ON FUNCTION hatchet.list_workers(uuid, uuid) IS
    'workers of a tenant (or one of them) with actions, slot capacity and slots in use per slot type';

-- One worker of a tenant; no row if it does not exist.
CREATE FUNCTION hatchet.worker(worker_id uuid, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (id uuid, name text, is_active boolean, is_paused boolean, labels jsonb, actions text[], slots jsonb,
               used jsonb, last_heartbeat_at timestamptz, created_at timestamptz)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF worker.worker_id IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['worker_id']);
    END IF;
    RETURN QUERY SELECT * FROM hatchet.list_workers(worker.tenant_id, worker.worker_id);
END
$$;
COMMENT ON FUNCTION hatchet.worker(uuid, uuid) IS 'one worker (no row if unknown), as hatchet.list_workers shows it';
