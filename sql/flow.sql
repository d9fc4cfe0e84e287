-- Flow control: concurrency keys and strategies, rate limits, the worker registry and set-based assignment.
--
-- Every decision here is made inside the transaction that changes the state it depends on, under row locks on the
-- shared counters (concurrency_groups, rate_limits, worker_slots), so limits hold across any number of claimers and
-- a slot is given back in the same transaction that ends its holder. The CHECK constraints on those counters are the
-- last line of defence: a bug that would exceed max_runs or leak a slot fails the transaction instead.

-- ---------------------------------------------------------------------------------------------------------------------
-- Concurrency
-- ---------------------------------------------------------------------------------------------------------------------

-- Validates enqueue's concurrency options and turns them into the task's gate list ([] when there is no key).
CREATE FUNCTION hatchet._concurrency_option(p_queue text, p_key text, p_max_runs integer, p_strategy text)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF p_key IS NULL THEN
        IF p_max_runs IS NOT NULL OR p_strategy IS NOT NULL THEN
            PERFORM hatchet.raise_error('invalid_argument', ARRAY['max_runs and strategy need a concurrency_key']);
        END IF;
        RETURN NULL;
    END IF;
    IF coalesce(p_max_runs, 1) < 1 THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format('max_runs must be at least 1, not %s', p_max_runs)]);
    END IF;
    IF coalesce(upper(p_strategy), 'GROUP_ROUND_ROBIN') NOT IN ('GROUP_ROUND_ROBIN', 'CANCEL_IN_PROGRESS', 'CANCEL_NEWEST') THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format(
            'strategy must be GROUP_ROUND_ROBIN, CANCEL_IN_PROGRESS or CANCEL_NEWEST, not %s', p_strategy)]);
    END IF;
    RETURN jsonb_build_array(jsonb_build_object(
        'scope', p_queue, 'key', p_key, 'max_runs', coalesce(p_max_runs, 1),
        'strategy', coalesce(upper(p_strategy), 'GROUP_ROUND_ROBIN')));
END
$$;

-- Validates enqueue's rate_limits option: a JSON array of {"key": text, "units": positive integer (default 1)}.
CREATE FUNCTION hatchet._rate_limits_option(p_limits jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF p_limits IS NULL THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(p_limits) <> 'array' OR EXISTS (
        SELECT 1 FROM jsonb_array_elements(p_limits) AS x
        WHERE jsonb_typeof(x) <> 'object' OR coalesce(x ->> 'key', '') = ''
           OR (x ? 'units' AND (jsonb_typeof(x -> 'units') <> 'number' OR (x ->> 'units')::numeric < 1
                                OR (x ->> 'units')::numeric <> floor((x ->> 'units')::numeric)))) THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY['rate_limits must be a JSON array of {"key": text, "units": positive integer}']);
    END IF;
    IF jsonb_array_length(p_limits) = 0 THEN
        RETURN NULL;
    END IF;
    RETURN p_limits;
END
$$;

-- Validates enqueue's placement options: desired worker labels {label: {value, comparator, required, weight}},
-- a desired worker and a sticky strategy (SOFT prefers it, HARD requires it).
CREATE FUNCTION hatchet._placement_option(p_labels jsonb, p_worker uuid, p_sticky text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
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

-- Admits one attempt of a task through its concurrency gates, starting at gate p_stage (earlier gates are held).
-- For each gate: lock the group row; if it has room, take a slot; if not, by strategy: GROUP_ROUND_ROBIN waits in
-- concurrency_queue, CANCEL_NEWEST cancels this task, CANCEL_IN_PROGRESS cancels the group's oldest holder and takes
-- its slot. An attempt that passes every gate enters the ready queue with its fair-queueing rank.
-- Returns 'READY', 'WAITING' or 'CANCELLED'.
CREATE FUNCTION hatchet._admit(p_tenant uuid, p_task_id uuid, p_task_inserted_at timestamptz, p_retry_count integer,
                               p_app_retry_count integer, p_internal_retry_count integer, p_priority integer,
                               p_stage integer DEFAULT 0)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    v_now   timestamptz := clock_timestamp();
    v_task  record;
    v_gate  jsonb;
    v_group hatchet.concurrency_groups;
    v_max   integer;
    v_rank  bigint;
    v_last_key   text;
    v_oldest uuid;
    v_holder uuid;
    v_cand   record;
BEGIN
    SELECT t.queue, t.run_id, t.task_definition_id, t.concurrency, t.rate_limits IS NOT NULL AS rate_limited,
           t.schedule_timeout, t.desired_worker_id,
           CASE WHEN t.run_id = t.id THEN NULL ELSE t.run_id END AS dag_run_id
    INTO v_task
    FROM hatchet.tasks t WHERE t.tenant_id = p_tenant AND t.inserted_at = p_task_inserted_at AND t.id = p_task_id;

    FOR i IN p_stage .. coalesce(jsonb_array_length(v_task.concurrency), 0) - 1 LOOP
        v_gate := v_task.concurrency -> i;
        v_max := (v_gate ->> 'max_runs')::integer;
        INSERT INTO hatchet.concurrency_groups AS g (tenant_id, scope, key, strategy, max_runs)
        VALUES (p_tenant, v_gate ->> 'scope', v_gate ->> 'key', (v_gate ->> 'strategy')::hatchet.concurrency_strategy,
                v_max)
        ON CONFLICT ON CONSTRAINT concurrency_groups_pkey DO NOTHING;
        -- The group row is the lock every admitter of this key takes: decisions for one key are serialised.
        SELECT * INTO v_group FROM hatchet.concurrency_groups g
        WHERE g.tenant_id = p_tenant AND g.scope = v_gate ->> 'scope' AND g.key = v_gate ->> 'key'
        FOR UPDATE;
        -- A workflow-level gate is held by the run: a later task of a run that holds it passes straight through.
        v_holder := CASE WHEN coalesce((v_gate ->> 'per_run')::boolean, false) AND v_task.dag_run_id IS NOT NULL
                         THEN v_task.dag_run_id ELSE p_task_id END;
        IF v_holder <> p_task_id AND EXISTS (
            SELECT 1 FROM hatchet.concurrency_slots s
            WHERE s.tenant_id = p_tenant AND s.task_id = v_holder AND s.scope = v_group.scope AND s.key = v_group.key) THEN
            CONTINUE;
        END IF;
        IF v_group.max_runs <> v_max THEN
            -- A new definition changed max_runs: adopt it without breaking the invariant for current holders.
            UPDATE hatchet.concurrency_groups g SET max_runs = greatest(v_max, g.running)
            WHERE g.tenant_id = p_tenant AND g.scope = v_group.scope AND g.key = v_group.key;
        END IF;

        IF v_group.running >= v_max THEN
            CASE v_gate ->> 'strategy'
                WHEN 'GROUP_ROUND_ROBIN' THEN
                    INSERT INTO hatchet.concurrency_queue (tenant_id, task_id, task_inserted_at, schedule_timeout_at,
                                                           retry_count, app_retry_count, internal_retry_count, stage,
                                                           priority, scope, key, queue, run_id, task_definition_id)
                    VALUES (p_tenant, p_task_id, p_task_inserted_at, v_now + v_task.schedule_timeout, p_retry_count,
                            p_app_retry_count, p_internal_retry_count, i, p_priority, v_group.scope, v_group.key,
                            v_task.queue, v_task.dag_run_id, v_task.task_definition_id);
                    RETURN 'WAITING';
                WHEN 'CANCEL_NEWEST' THEN
                    PERFORM hatchet._release_slots(p_tenant, ARRAY[p_task_id]);
                    INSERT INTO hatchet.task_events (tenant_id, task_inserted_at, task_id, retry_count, event_type,
                                                     reason)
                    VALUES (p_tenant, p_task_inserted_at, p_task_id, p_retry_count, 'CANCELLED',
                            format('CONCURRENCY_LIMIT: key "%s" already has %s of %s runs (CANCEL_NEWEST)',
                                   v_group.key, v_group.running, v_max));
                    DELETE FROM hatchet.idempotency_keys k WHERE k.tenant_id = p_tenant AND k.task_id = p_task_id;
                    IF v_task.dag_run_id IS NOT NULL THEN
                        PERFORM hatchet._on_tasks_finished(p_tenant, ARRAY[p_task_id], ARRAY[v_task.dag_run_id],
                                                           'CANCELLED');
                    END IF;
                    RETURN 'CANCELLED';
                ELSE -- CANCEL_IN_PROGRESS: newer arrivals preempt the oldest holders, queued or running.
                    WHILE v_group.running >= v_max LOOP
                        -- The oldest holder we can lock without waiting: one that another transaction is finishing
                        -- right now would give its slot back when that transaction gets this group row, which we
                        -- hold, so waiting for it would deadlock.
                        v_oldest := NULL;
                        FOR v_cand IN
                            SELECT s.task_id FROM hatchet.concurrency_slots s
                            WHERE s.tenant_id = p_tenant AND s.scope = v_group.scope AND s.key = v_group.key
                            ORDER BY s.admitted_at, s.task_id
                        LOOP
                            IF hatchet._try_lock_holder(p_tenant, v_cand.task_id) THEN
                                v_oldest := v_cand.task_id;
                                EXIT;
                            END IF;
                        END LOOP;
                        IF v_oldest IS NULL THEN
                            -- Every holder is being finished by someone else: wait for the slot they give back.
                            INSERT INTO hatchet.concurrency_queue (tenant_id, task_id, task_inserted_at,
                                                                   schedule_timeout_at, retry_count, app_retry_count,
                                                                   internal_retry_count, stage, priority, scope, key,
                                                                   queue, run_id, task_definition_id)
                            VALUES (p_tenant, p_task_id, p_task_inserted_at, v_now + v_task.schedule_timeout,
                                    p_retry_count, p_app_retry_count, p_internal_retry_count, i, p_priority,
                                    v_group.scope, v_group.key, v_task.queue, v_task.dag_run_id,
                                    v_task.task_definition_id);
                            RETURN 'WAITING';
                        END IF;
                        PERFORM hatchet._cancel_holder(p_tenant, v_oldest,
                            format('CONCURRENCY_LIMIT: cancelled by a newer run of key "%s" (CANCEL_IN_PROGRESS)',
                                   v_group.key));
                        SELECT * INTO v_group FROM hatchet.concurrency_groups g
                        WHERE g.tenant_id = p_tenant AND g.scope = v_group.scope AND g.key = v_group.key;
                    END LOOP;
            END CASE;
        END IF;

        INSERT INTO hatchet.concurrency_slots (tenant_id, task_id, scope, key, strategy, task_inserted_at, admitted_at)
        VALUES (p_tenant, v_holder, v_group.scope, v_group.key, v_group.strategy, p_task_inserted_at, v_now);
        -- Start-time fair queueing: this key's next item starts at max(its last rank + 1, the queue's virtual time),
        -- so keys interleave in plain index order and a key with a huge backlog cannot starve a small one.
        v_rank := greatest(v_group.last_rank + 1, hatchet._queue_vtime(p_tenant, v_task.queue));
        UPDATE hatchet.concurrency_groups g SET running = g.running + 1, last_rank = v_rank
        WHERE g.tenant_id = p_tenant AND g.scope = v_group.scope AND g.key = v_group.key;
        IF v_holder = p_task_id THEN
            -- Marks the attempt as holding task-level slots, which it gives back when it finishes.
            v_last_key := v_group.key;
        END IF;
    END LOOP;

    INSERT INTO hatchet.ready_queue (tenant_id, task_id, task_inserted_at, fair_rank, schedule_timeout_at, retry_count,
                                     app_retry_count, internal_retry_count, priority, queue, concurrency_key, run_id,
                                     task_definition_id, desired_worker_id, rate_limited)
    VALUES (p_tenant, p_task_id, p_task_inserted_at,
            coalesce(v_rank, hatchet._queue_vtime(p_tenant, v_task.queue)), v_now + v_task.schedule_timeout,
            p_retry_count, p_app_retry_count, p_internal_retry_count, p_priority, v_task.queue, v_last_key,
            v_task.dag_run_id, v_task.task_definition_id, v_task.desired_worker_id, v_task.rate_limited);
    -- Admitted now (at enqueue, or when a slot frees up): wake the queue's consumers.
    PERFORM hatchet._ready(v_task.queue);
    RETURN 'READY';
END
$$;

-- Locks the hot row of a slot holder without waiting. False if another transaction holds it (it is being claimed,
-- finished or cancelled right now). A run holding a workflow-level slot has no hot row of its own: true.
CREATE FUNCTION hatchet._try_lock_holder(p_tenant uuid, p_holder uuid) RETURNS boolean
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM 1 FROM hatchet.ready_queue r WHERE r.tenant_id = p_tenant AND r.task_id = p_holder FOR UPDATE SKIP LOCKED;
    IF FOUND THEN RETURN true; END IF;
    PERFORM 1 FROM hatchet.running r WHERE r.tenant_id = p_tenant AND r.task_id = p_holder FOR UPDATE SKIP LOCKED;
    IF FOUND THEN RETURN true; END IF;
    PERFORM 1 FROM hatchet.delayed_queue r WHERE r.tenant_id = p_tenant AND r.task_id = p_holder FOR UPDATE SKIP LOCKED;
    IF FOUND THEN RETURN true; END IF;
    -- Not lockable: either some other transaction holds its row (it exists, we just could not lock it), or it is a
    -- run holder with no row of its own.
    RETURN NOT (EXISTS (SELECT 1 FROM hatchet.ready_queue r WHERE r.tenant_id = p_tenant AND r.task_id = p_holder)
                OR EXISTS (SELECT 1 FROM hatchet.running r WHERE r.tenant_id = p_tenant AND r.task_id = p_holder)
                OR EXISTS (SELECT 1 FROM hatchet.delayed_queue r WHERE r.tenant_id = p_tenant AND r.task_id = p_holder));
END
$$;

-- Cancels whatever holds a slot: a task, or every unfinished task of a run holding a workflow-level slot (then the
-- run's slot itself is given back).
CREATE FUNCTION hatchet._cancel_holder(p_tenant uuid, p_holder uuid, p_reason text) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_task uuid;
BEGIN
    IF (SELECT s.state FROM hatchet._task_state(p_tenant, p_holder) s) IS NOT NULL THEN
        PERFORM hatchet.cancel(p_holder, p_tenant, p_reason);
        RETURN;
    END IF;
    FOR v_task IN
        SELECT r.task_id FROM hatchet.ready_queue r WHERE r.tenant_id = p_tenant AND r.run_id = p_holder
        UNION SELECT r.task_id FROM hatchet.delayed_queue r WHERE r.tenant_id = p_tenant AND r.run_id = p_holder
        UNION SELECT r.task_id FROM hatchet.concurrency_queue r WHERE r.tenant_id = p_tenant AND r.run_id = p_holder
        UNION SELECT r.task_id FROM hatchet.running r WHERE r.tenant_id = p_tenant AND r.run_id = p_holder
    LOOP
        PERFORM hatchet.cancel(v_task, p_tenant, p_reason);
    END LOOP;
    PERFORM hatchet._release_slots(p_tenant, ARRAY[p_holder]);
END
$$;

-- Gives back every concurrency slot the given tasks hold and admits waiting attempts into the freed room, in the
-- same transaction. Groups are handled in (scope, key) order so two releasers cannot deadlock on them.
CREATE FUNCTION hatchet._release_slots(p_tenant uuid, p_task_ids uuid[]) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_freed record;
    v_wait  hatchet.concurrency_queue;
    v_room  integer;
BEGIN
    FOR v_freed IN
        WITH gone AS (
            DELETE FROM hatchet.concurrency_slots s
            WHERE s.tenant_id = p_tenant AND s.task_id = ANY (p_task_ids)
            RETURNING s.scope, s.key
        )
        SELECT g.scope, g.key, count(*)::integer AS n FROM gone g GROUP BY g.scope, g.key ORDER BY g.scope, g.key
    LOOP
        UPDATE hatchet.concurrency_groups g SET running = g.running - v_freed.n
        WHERE g.tenant_id = p_tenant AND g.scope = v_freed.scope AND g.key = v_freed.key
        RETURNING g.max_runs - g.running INTO v_room;
        -- Fill the freed room from the waiters of this key, highest priority (retries) first, then arrival order.
        WHILE coalesce(v_room, 0) > 0 LOOP
            DELETE FROM hatchet.concurrency_queue q
            WHERE q.ctid = (SELECT x.ctid FROM hatchet.concurrency_queue x
                            WHERE x.tenant_id = p_tenant AND x.scope = v_freed.scope AND x.key = v_freed.key
                            ORDER BY x.priority DESC, x.id LIMIT 1
                            FOR UPDATE SKIP LOCKED)
            RETURNING q.* INTO v_wait;
            EXIT WHEN NOT FOUND;
            PERFORM hatchet._admit(p_tenant, v_wait.task_id, v_wait.task_inserted_at, v_wait.retry_count,
                                   v_wait.app_retry_count, v_wait.internal_retry_count, v_wait.priority, v_wait.stage);
            SELECT g.max_runs - g.running INTO v_room FROM hatchet.concurrency_groups g
            WHERE g.tenant_id = p_tenant AND g.scope = v_freed.scope AND g.key = v_freed.key;
        END LOOP;
    END LOOP;
END
$$;

-- ---------------------------------------------------------------------------------------------------------------------
-- Rate limits
-- ---------------------------------------------------------------------------------------------------------------------

CREATE FUNCTION hatchet._rate_limit_window(p_duration text) RETURNS interval
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    RETURN CASE upper(p_duration)
        WHEN 'SECOND' THEN interval '1 second'
        WHEN 'MINUTE' THEN interval '1 minute'
        WHEN 'HOUR' THEN interval '1 hour'
        WHEN 'DAY' THEN interval '1 day'
        WHEN 'WEEK' THEN interval '7 days'
        WHEN 'MONTH' THEN interval '1 month'
        WHEN 'YEAR' THEN interval '1 year'
    END;
END
$$;

CREATE FUNCTION hatchet.put_rate_limit(key text, "limit" integer, duration text DEFAULT 'MINUTE',
                                       tenant_id uuid DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    p_tenant uuid := coalesce(put_rate_limit.tenant_id, hatchet.default_tenant());
    v_window interval := hatchet._rate_limit_window(put_rate_limit.duration);
BEGIN
    IF put_rate_limit.key IS NULL OR put_rate_limit.key = '' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['rate limit key must not be empty']);
    END IF;
    IF put_rate_limit."limit" IS NULL OR put_rate_limit."limit" < 1 THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('limit must be at least 1, not %s', coalesce(put_rate_limit."limit"::text, 'null'))]);
    END IF;
    IF v_window IS NULL THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format(
            'duration must be SECOND, MINUTE, HOUR, DAY, WEEK, MONTH or YEAR, not %s', put_rate_limit.duration)]);
    END IF;
    INSERT INTO hatchet.rate_limits AS r (tenant_id, key, limit_value, remaining, window_size, last_refill)
    VALUES (p_tenant, put_rate_limit.key, put_rate_limit."limit", put_rate_limit."limit", v_window, clock_timestamp())
    ON CONFLICT ON CONSTRAINT rate_limits_pkey DO UPDATE
    -- Lowering a limit clamps what is left in the current window; raising it does not grant units mid-window.
    SET limit_value = excluded.limit_value, window_size = excluded.window_size,
        remaining = least(r.remaining, excluded.limit_value);
END
$$;
COMMENT ON FUNCTION hatchet.put_rate_limit(text, integer, text, uuid) IS
    'create or change a fixed-window rate limit (SECOND ... YEAR) that refills to full once per window';

-- Pauses a rate limit until a time (Hatchet's PauseRateLimit): until then no task takes its units, so every task
-- that names it stays queued (parked until the pause ends). A time in the past, or NULL, unpauses it now, and the
-- tasks parked by the pause come back at once. Returns the time it is paused until (NULL: not paused).
CREATE FUNCTION hatchet.pause_rate_limit(key text, paused_until timestamptz, tenant_id uuid DEFAULT NULL)
RETURNS timestamptz
LANGUAGE plpgsql
AS $$
DECLARE
    p_tenant uuid := coalesce(pause_rate_limit.tenant_id, hatchet.default_tenant());
    v_now    timestamptz := clock_timestamp();
    v_until  timestamptz := CASE WHEN pause_rate_limit.paused_until > v_now THEN pause_rate_limit.paused_until END;
BEGIN
    IF pause_rate_limit.key IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['key']);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM hatchet.rate_limits r WHERE r.tenant_id = p_tenant AND r.key = pause_rate_limit.key)
    THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['rate limit', pause_rate_limit.key]);
    END IF;
    -- Hot rows first (the global lock order): tasks parked on this limit come back when the pause now ends.
    UPDATE hatchet.delayed_queue d SET ready_at = coalesce(v_until, v_now)
    FROM hatchet.tasks t
    WHERE d.tenant_id = p_tenant AND d.reason = 'rate_limit' AND d.ready_at > coalesce(v_until, v_now)
      AND t.tenant_id = d.tenant_id AND t.inserted_at = d.task_inserted_at AND t.id = d.task_id
      AND t.rate_limits @> jsonb_build_array(jsonb_build_object('key', pause_rate_limit.key));
    UPDATE hatchet.rate_limits r SET paused_until = v_until
    WHERE r.tenant_id = p_tenant AND r.key = pause_rate_limit.key;
    RETURN v_until;
END
$$;
COMMENT ON FUNCTION hatchet.pause_rate_limit(text, timestamptz, uuid) IS
    'pause a rate limit until a time (no task takes its units meanwhile); a past time or NULL unpauses it';

-- Takes the units an attempt needs from every rate limit it names, all or nothing. Windows refill to full when they
-- have passed (Hatchet's fixed-window semantics); units are never given back. Returns ok, or when to try again, or an
-- error for a request that can never be served (unknown key, more units than the limit).
CREATE FUNCTION hatchet._take_rate_limits(p_tenant uuid, p_limits jsonb, p_now timestamptz,
                                          OUT ok boolean, OUT retry_at timestamptz, OUT error text)
LANGUAGE plpgsql
AS $$
DECLARE
    v_req record;
    v_rl  hatchet.rate_limits;
BEGIN
    ok := true;
    -- Lock in key order so two claimers needing the same keys cannot deadlock.
    FOR v_req IN
        SELECT x ->> 'key' AS key, sum(coalesce((x ->> 'units')::integer, 1))::integer AS units
        FROM jsonb_array_elements(p_limits) AS x GROUP BY x ->> 'key' ORDER BY x ->> 'key'
    LOOP
        SELECT * INTO v_rl FROM hatchet.rate_limits r WHERE r.tenant_id = p_tenant AND r.key = v_req.key FOR UPDATE;
        IF NOT FOUND THEN
            ok := false;
            error := format('rate limit "%s" does not exist', v_req.key);
            RETURN;
        END IF;
        IF v_req.units > v_rl.limit_value THEN
            ok := false;
            error := format('task needs %s units of rate limit "%s", whose limit is %s', v_req.units, v_req.key,
                            v_rl.limit_value);
            RETURN;
        END IF;
        IF v_rl.paused_until > p_now THEN
            -- Paused (PauseRateLimit): nobody takes units until it is unpaused or the pause ends.
            ok := false;
            retry_at := greatest(coalesce(retry_at, v_rl.paused_until), v_rl.paused_until);
            CONTINUE;
        END IF;
        IF p_now >= v_rl.last_refill + v_rl.window_size THEN
            UPDATE hatchet.rate_limits r SET remaining = r.limit_value, last_refill = p_now
            WHERE r.tenant_id = p_tenant AND r.key = v_req.key;
            v_rl.remaining := v_rl.limit_value;
            v_rl.last_refill := p_now;
        END IF;
        IF v_rl.remaining < v_req.units THEN
            ok := false;
            retry_at := greatest(coalesce(retry_at, v_rl.last_refill + v_rl.window_size),
                                 v_rl.last_refill + v_rl.window_size);
        END IF;
    END LOOP;
    IF ok THEN
        UPDATE hatchet.rate_limits r SET remaining = r.remaining - x.units
        FROM (SELECT y ->> 'key' AS key, sum(coalesce((y ->> 'units')::integer, 1))::integer AS units
              FROM jsonb_array_elements(p_limits) AS y GROUP BY y ->> 'key') x
        WHERE r.tenant_id = p_tenant AND r.key = x.key;
    END IF;
END
$$;

-- For the claimed ready rows that consume rate limits: take their units, or park them in the delayed queue until
-- their window refills (so they do not block the rest of the queue), or fail them if they can never run. Returns the
-- ctids that may be dispatched.
CREATE FUNCTION hatchet._apply_rate_limits(p_tenant uuid, p_ctids tid[], p_now timestamptz) RETURNS tid[]
LANGUAGE plpgsql
AS $$
DECLARE
    v_row  record;
    v_take record;
    v_out  tid[] := p_ctids;
    v_parked hatchet.ready_queue;
BEGIN
    FOR v_row IN
        SELECT r.ctid AS rctid, r.task_id, r.task_inserted_at, t.rate_limits
        FROM hatchet.ready_queue r
        CROSS JOIN LATERAL (SELECT x.* FROM hatchet.tasks x  -- per-row probe: pruned to one partition
                            WHERE x.tenant_id = r.tenant_id AND x.inserted_at = r.task_inserted_at AND x.id = r.task_id) t
        WHERE r.ctid = ANY (p_ctids) AND r.rate_limited
        ORDER BY r.priority DESC, r.fair_rank, r.id
    LOOP
        SELECT * INTO v_take FROM hatchet._take_rate_limits(p_tenant, v_row.rate_limits, p_now);
        CONTINUE WHEN v_take.ok;
        v_out := array_remove(v_out, v_row.rctid);
        DELETE FROM hatchet.ready_queue r WHERE r.ctid = v_row.rctid RETURNING r.* INTO v_parked;
        IF v_take.error IS NOT NULL THEN
            -- Can never run: fail it now with the reason instead of leaving it to time out.
            PERFORM hatchet._finish_unstarted(p_tenant, v_parked.task_id, v_parked.task_inserted_at,
                                              v_parked.retry_count, v_parked.run_id, 'FAILED', v_take.error);
        ELSE
            -- It keeps its concurrency slots while parked: it is still admitted and comes back at retry_at.
            INSERT INTO hatchet.delayed_queue (tenant_id, task_id, task_inserted_at, ready_at, retry_count,
                                               app_retry_count, internal_retry_count, priority, queue, reason,
                                               concurrency_key, run_id, task_definition_id, desired_worker_id)
            VALUES (p_tenant, v_parked.task_id, v_parked.task_inserted_at, v_take.retry_at, v_parked.retry_count,
                    v_parked.app_retry_count, v_parked.internal_retry_count, v_parked.priority, v_parked.queue,
                    'rate_limit', v_parked.concurrency_key, v_parked.run_id, v_parked.task_definition_id,
                    v_parked.desired_worker_id);
        END IF;
    END LOOP;
    RETURN v_out;
END
$$;

-- Ends an attempt that never started (it was queued): records the terminal event and gives back what it held.
CREATE FUNCTION hatchet._finish_unstarted(p_tenant uuid, p_task_id uuid, p_task_inserted_at timestamptz,
                                          p_retry_count integer, p_run_id uuid, p_outcome text, p_reason text)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO hatchet.task_events (tenant_id, task_inserted_at, task_id, retry_count, event_type, reason)
    VALUES (p_tenant, p_task_inserted_at, p_task_id, p_retry_count, p_outcome::hatchet.task_event_type, p_reason);
    PERFORM hatchet._release_slots(p_tenant, ARRAY[p_task_id]);
    DELETE FROM hatchet.idempotency_keys k WHERE k.tenant_id = p_tenant AND k.task_id = p_task_id;
    IF p_run_id IS NOT NULL THEN
        PERFORM hatchet._on_tasks_finished(p_tenant, ARRAY[p_task_id], ARRAY[p_run_id], p_outcome);
    END IF;
END
$$;

-- ---------------------------------------------------------------------------------------------------------------------
-- Worker registry
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
AS $$
DECLARE
    p_tenant uuid := coalesce(register_worker.tenant_id, hatchet.default_tenant());
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
AS $$
    -- Only workers that are still alive may heartbeat: a worker declared dead must register again.
    WITH beat AS (
        UPDATE hatchet.workers w SET last_heartbeat_at = clock_timestamp()
        WHERE w.tenant_id = coalesce(heartbeat.tenant_id, hatchet.default_tenant()) AND w.id = ANY (worker_ids)
          AND w.is_active
        RETURNING 1
    )
    SELECT count(*)::integer FROM beat
$$;
COMMENT ON FUNCTION hatchet.heartbeat(uuid[], uuid) IS 'record that these workers are alive; returns how many are';

CREATE FUNCTION hatchet.set_worker_paused(worker_id uuid, paused boolean, tenant_id uuid DEFAULT NULL) RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE hatchet.workers w SET is_paused = set_worker_paused.paused
    WHERE w.tenant_id = coalesce(set_worker_paused.tenant_id, hatchet.default_tenant()) AND w.id = set_worker_paused.worker_id;
    IF NOT FOUND THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['worker', set_worker_paused.worker_id::text]);
    END IF;
END
$$;

CREATE FUNCTION hatchet.upsert_worker_labels(worker_id uuid, labels jsonb, tenant_id uuid DEFAULT NULL) RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM hatchet._check_payload('labels', upsert_worker_labels.labels);
    UPDATE hatchet.workers w SET labels = w.labels || upsert_worker_labels.labels
    WHERE w.tenant_id = coalesce(upsert_worker_labels.tenant_id, hatchet.default_tenant())
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
AS $$
DECLARE
    p_tenant uuid := coalesce(deregister_worker.tenant_id, hatchet.default_tenant());
    v_run hatchet.running;
    n integer := 0;
BEGIN
    UPDATE hatchet.workers w SET is_active = false
    WHERE w.tenant_id = p_tenant AND w.id = deregister_worker.worker_id;
    FOR v_run IN
        DELETE FROM hatchet.running r
        WHERE r.ctid = ANY (ARRAY(SELECT x.ctid FROM hatchet.running x
                                  WHERE x.tenant_id = p_tenant AND x.worker_id = deregister_worker.worker_id
                                  FOR UPDATE SKIP LOCKED))
        RETURNING r.*
    LOOP
        PERFORM hatchet._fail_attempt(p_tenant, v_run, deregister_worker.reason, true, true);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION hatchet.deregister_worker(uuid, text, uuid) IS
    'take a worker out of service and retry its running attempts elsewhere; returns how many were retried';

-- Workers silent for longer than hatchet.worker_dead_after_ms are dead: their attempts are reassigned.
CREATE FUNCTION hatchet._reap_dead_workers(p_tenant uuid, p_now timestamptz) RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_dead uuid;
    n integer := 0;
    v_after interval := make_interval(secs => coalesce(current_setting('hatchet.worker_dead_after_ms', true)::integer,
                                                        30000) / 1000.0);
BEGIN
    FOR v_dead IN
        SELECT w.id FROM hatchet.workers w
        WHERE w.tenant_id = p_tenant AND w.is_active AND w.last_heartbeat_at < p_now - v_after
        FOR UPDATE SKIP LOCKED
    LOOP
        n := n + hatchet.deregister_worker(v_dead, 'worker stopped sending heartbeats', p_tenant);
    END LOOP;
    RETURN n;
END
$$;

-- ---------------------------------------------------------------------------------------------------------------------
-- Assignment
-- ---------------------------------------------------------------------------------------------------------------------

-- Does a worker's label set satisfy one desired label? Comparators as Hatchet's: EQUAL / NOT_EQUAL on strings or
-- integers, GT / GTE / LT / LTE on integers (desired value compared to the worker's: worker GT desired).
CREATE FUNCTION hatchet._label_matches(p_worker_labels jsonb, p_key text, p_want jsonb) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    v_have jsonb := p_worker_labels -> p_key;
    v_cmp  text  := upper(coalesce(p_want ->> 'comparator', 'EQUAL'));
    v_val  jsonb := p_want -> 'value';
BEGIN
    IF v_have IS NULL OR v_val IS NULL THEN
        RETURN false;
    END IF;
    IF v_cmp IN ('EQUAL', 'NOT_EQUAL') THEN
        RETURN (v_have #>> '{}' = v_val #>> '{}') = (v_cmp = 'EQUAL');
    END IF;
    IF jsonb_typeof(v_have) <> 'number' OR jsonb_typeof(v_val) <> 'number' THEN
        RETURN false;
    END IF;
    RETURN CASE v_cmp
        WHEN 'GREATER_THAN' THEN (v_have #>> '{}')::numeric > (v_val #>> '{}')::numeric
        WHEN 'GT' THEN (v_have #>> '{}')::numeric > (v_val #>> '{}')::numeric
        WHEN 'GREATER_THAN_OR_EQUAL' THEN (v_have #>> '{}')::numeric >= (v_val #>> '{}')::numeric
        WHEN 'GTE' THEN (v_have #>> '{}')::numeric >= (v_val #>> '{}')::numeric
        WHEN 'LESS_THAN' THEN (v_have #>> '{}')::numeric < (v_val #>> '{}')::numeric
        WHEN 'LT' THEN (v_have #>> '{}')::numeric < (v_val #>> '{}')::numeric
        WHEN 'LESS_THAN_OR_EQUAL' THEN (v_have #>> '{}')::numeric <= (v_val #>> '{}')::numeric
        WHEN 'LTE' THEN (v_have #>> '{}')::numeric <= (v_val #>> '{}')::numeric
        ELSE false
    END;
END
$$;

-- The score of a worker for a task: NULL if the worker may not run it (a required label fails, or HARD sticky to
-- another worker), else the sum of the weights of satisfied desired labels (+1,000,000 for the SOFT-sticky worker).
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
    IF p_sticky = 'HARD' AND p_desired_worker IS NOT NULL AND p_desired_worker <> p_worker_id THEN
        RETURN NULL;
    END IF;
    IF p_sticky = 'SOFT' AND p_desired_worker = p_worker_id THEN
        v_score := 1000000;
    END IF;
    IF p_desired IS NULL OR jsonb_typeof(p_desired) <> 'object' THEN
        RETURN v_score;
    END IF;
    FOR v_label IN SELECT k, v FROM jsonb_each(p_desired) AS e(k, v) LOOP
        v_ok := hatchet._label_matches(p_worker_labels, v_label.k, v_label.v);
        IF NOT v_ok AND coalesce((v_label.v ->> 'required')::boolean, true) THEN
            RETURN NULL;
        END IF;
        IF v_ok THEN
            v_score := v_score + coalesce((v_label.v ->> 'weight')::integer, 100);
        END IF;
    END LOOP;
    RETURN v_score;
END
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
                 task_inserted_at timestamptz, timeout_at timestamptz, queued_at timestamptz)
LANGUAGE plpgsql
-- As hatchet.dequeue: claimed rows are deleted by TID scan at any queue size, and one generic plan serves every call.
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := coalesce(assign.tenant_id, hatchet.default_tenant());
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
               AND NOT (v_cand.desired_worker_id = ANY (w_ids)) AND EXISTS (
                   SELECT 1 FROM hatchet.worker_slots s
                   JOIN hatchet.workers w ON w.tenant_id = s.tenant_id AND w.id = s.worker_id
                   JOIN hatchet.worker_actions a ON a.tenant_id = s.tenant_id AND a.worker_id = s.worker_id
                                                AND a.action = v_queue
                   WHERE s.tenant_id = p_tenant AND s.worker_id = v_cand.desired_worker_id
                     AND s.slot_type = v_cand.slot_type AND s.capacity - s.used >= v_cand.slot_units
                     AND w.is_active AND NOT w.is_paused AND w.last_heartbeat_at >= v_now - v_after) THEN
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
           w.run_id, w.readable_id, w.task_inserted_at, w.timeout_at, w.queued_at
    FROM work w
    ORDER BY w.assigned_worker, w.priority DESC, w.fair_rank, w.id;
END
$$;
COMMENT ON FUNCTION hatchet.assign(uuid[], integer, uuid) IS
    'assign ready attempts to free slots of live workers (labels, sticky, slot cost, rate limits); returns the assignments';

-- ---------------------------------------------------------------------------------------------------------------------
-- Flow control of workflow tasks: evaluated from the definition when a task is created
-- ---------------------------------------------------------------------------------------------------------------------

-- Hatchet's enum numbers (proto ConcurrencyLimitStrategy) or names, to our three strategies.
CREATE FUNCTION hatchet._strategy_name(p jsonb) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
    SELECT CASE coalesce(p #>> '{}', '0')
        WHEN '0' THEN 'CANCEL_IN_PROGRESS' WHEN 'CANCEL_IN_PROGRESS' THEN 'CANCEL_IN_PROGRESS'
        WHEN '1' THEN 'CANCEL_NEWEST' WHEN 'DROP_NEWEST' THEN 'CANCEL_NEWEST'
        WHEN '2' THEN 'GROUP_ROUND_ROBIN' WHEN 'QUEUE_NEWEST' THEN 'GROUP_ROUND_ROBIN'
        WHEN '3' THEN 'GROUP_ROUND_ROBIN' WHEN 'GROUP_ROUND_ROBIN' THEN 'GROUP_ROUND_ROBIN'
        WHEN '4' THEN 'CANCEL_NEWEST' WHEN 'CANCEL_NEWEST' THEN 'CANCEL_NEWEST'
    END
$$;

-- Proto RateLimitDuration numbers or names to a window name put_rate_limit understands.
CREATE FUNCTION hatchet._duration_name(p jsonb) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
    SELECT CASE coalesce(p #>> '{}', '1')
        WHEN '0' THEN 'SECOND' WHEN '1' THEN 'MINUTE' WHEN '2' THEN 'HOUR' WHEN '3' THEN 'DAY'
        WHEN '4' THEN 'WEEK' WHEN '5' THEN 'MONTH' WHEN '6' THEN 'YEAR'
        ELSE upper(p #>> '{}')
    END
$$;

-- Evaluates a task definition's flow control for one new task (CEL over input and additional_metadata):
-- {concurrency: [gates], rate_limits: [{key, units}], desired_labels, sticky, slot_type, slot_units} or
-- {error: reason} when an expression fails, in which case the task is created FAILED with that reason.
CREATE FUNCTION hatchet._definition_flow(p_tenant uuid, p_definition_id bigint, p_input jsonb, p_metadata jsonb)
RETURNS jsonb
LANGUAGE plpgsql
AS $$
DECLARE
    v_def   record;
    -- A workflow task's input is Hatchet's action payload {"input": <run input>, "parents": {...}}: CEL sees the run
    -- input as `input` and parent outputs as `parents`, as in Hatchet.
    v_vars  jsonb := jsonb_build_object('input', coalesce(p_input -> 'input', p_input), 'additional_metadata', p_metadata,
                                        'parents', coalesce(p_input -> 'parents', '{}'));
    v_gates jsonb := '[]';
    v_rls   jsonb := '[]';
    v_c     jsonb;
    v_r     jsonb;
    v_res   jsonb;
    v_key   text;
    v_units integer;
    v_limit integer;
    v_labels jsonb := '{}';
    v_l     record;
BEGIN
    SELECT d.action, d.concurrency, d.rate_limits, d.worker_labels, d.slot_type, d.slot_units, v.concurrency AS wf_concurrency,
           v.sticky, v.workflow_id
    INTO v_def
    FROM hatchet.task_definitions d
    JOIN hatchet.workflow_versions v ON v.tenant_id = d.tenant_id AND v.id = d.workflow_version_id
    WHERE d.tenant_id = p_tenant AND d.id = p_definition_id;
    IF NOT FOUND THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['task definition', p_definition_id::text]);
    END IF;

    -- Workflow-level gates first (they count runs: the run holds the slot), then the task's own, in declared order.
    FOR v_c IN SELECT x FROM jsonb_array_elements(v_def.wf_concurrency) AS x LOOP
        v_res := hatchet.cel_try(v_c ->> 'expression', v_vars);
        IF v_res ? 'error' OR jsonb_typeof(v_res -> 'value') <> 'string' THEN
            RETURN jsonb_build_object('error', format('concurrency key expression "%s" failed: %s',
                v_c ->> 'expression', coalesce(v_res ->> 'error', 'it must evaluate to a string')));
        END IF;
        v_gates := v_gates || jsonb_build_object('scope', 'workflow:' || v_def.workflow_id, 'key', v_res ->> 'value',
            'max_runs', coalesce((v_c ->> 'max_runs')::integer, 1),
            'strategy', hatchet._strategy_name(coalesce(v_c -> 'limit_strategy', v_c -> 'strategy')), 'per_run', true);
    END LOOP;
    FOR v_c IN SELECT x FROM jsonb_array_elements(v_def.concurrency) AS x LOOP
        v_res := hatchet.cel_try(v_c ->> 'expression', v_vars);
        IF v_res ? 'error' OR jsonb_typeof(v_res -> 'value') <> 'string' THEN
            RETURN jsonb_build_object('error', format('concurrency key expression "%s" failed: %s',
                v_c ->> 'expression', coalesce(v_res ->> 'error', 'it must evaluate to a string')));
        END IF;
        v_gates := v_gates || jsonb_build_object('scope', v_def.action, 'key', v_res ->> 'value',
            'max_runs', coalesce((v_c ->> 'max_runs')::integer, 1),
            'strategy', hatchet._strategy_name(coalesce(v_c -> 'limit_strategy', v_c -> 'strategy')));
    END LOOP;

    -- Rate limits: static keys, or keys / units / limits from CEL (dynamic limits are created on first use).
    FOR v_r IN SELECT x FROM jsonb_array_elements(v_def.rate_limits) AS x LOOP
        IF v_r ? 'key_expr' AND coalesce(v_r ->> 'key_expr', '') <> '' THEN
            v_res := hatchet.cel_try(v_r ->> 'key_expr', v_vars);
            IF v_res ? 'error' THEN
                RETURN jsonb_build_object('error', format('rate limit key expression "%s" failed: %s',
                                                          v_r ->> 'key_expr', v_res ->> 'error'));
            END IF;
            v_key := v_res ->> 'value';
        ELSE
            v_key := v_r ->> 'key';
        END IF;
        IF coalesce(v_r ->> 'units_expr', '') <> '' THEN
            v_res := hatchet.cel_try(v_r ->> 'units_expr', v_vars);
            IF v_res ? 'error' OR jsonb_typeof(v_res -> 'value') <> 'number' THEN
                RETURN jsonb_build_object('error', format('rate limit units expression "%s" failed: %s',
                    v_r ->> 'units_expr', coalesce(v_res ->> 'error', 'it must evaluate to a number')));
            END IF;
            v_units := (v_res ->> 'value')::numeric::integer;
        ELSE
            v_units := coalesce((v_r ->> 'units')::integer, 1);
        END IF;
        -- A dynamic limit only for a dynamic key, and only a positive one: the SDK sends limit_values_expr "-1" for
        -- static keys, whose limit comes from put_rate_limit.
        IF coalesce(v_r ->> 'key_expr', '') <> ''
           AND coalesce(v_r ->> 'limit_values_expr', v_r ->> 'limit_expr', '') NOT IN ('', '-1') THEN
            v_res := hatchet.cel_try(coalesce(v_r ->> 'limit_values_expr', v_r ->> 'limit_expr'), v_vars);
            IF v_res ? 'error' OR jsonb_typeof(v_res -> 'value') <> 'number' THEN
                RETURN jsonb_build_object('error', format('rate limit limit expression failed: %s',
                    coalesce(v_res ->> 'error', 'it must evaluate to a number')));
            END IF;
            v_limit := (v_res ->> 'value')::numeric::integer;
            IF v_limit >= 1 AND NOT EXISTS (SELECT 1 FROM hatchet.rate_limits r WHERE r.tenant_id = p_tenant AND r.key = v_key
                                                               AND r.limit_value = v_limit) THEN
                PERFORM hatchet.put_rate_limit(v_key, v_limit, hatchet._duration_name(v_r -> 'duration'), p_tenant);
            END IF;
        END IF;
        v_rls := v_rls || jsonb_build_object('key', v_key, 'units', v_units);
    END LOOP;

    -- Desired worker labels, normalised from the proto shape {str_value | int_value, required, comparator, weight}.
    FOR v_l IN SELECT k, v FROM jsonb_each(coalesce(v_def.worker_labels, '{}')) AS e(k, v) LOOP
        v_labels := v_labels || jsonb_build_object(v_l.k, jsonb_build_object(
            'value', coalesce(v_l.v -> 'int_value', v_l.v -> 'str_value', v_l.v -> 'value'),
            'comparator', coalesce(v_l.v ->> 'comparator', 'EQUAL'),
            'required', coalesce((v_l.v ->> 'required')::boolean, false),
            'weight', coalesce((v_l.v ->> 'weight')::integer, 100)));
    END LOOP;

    RETURN jsonb_strip_nulls(jsonb_build_object(
        'concurrency', CASE WHEN jsonb_array_length(v_gates) > 0 THEN v_gates END,
        'rate_limits', CASE WHEN jsonb_array_length(v_rls) > 0 THEN v_rls END,
        'desired_labels', CASE WHEN v_labels <> '{}' THEN v_labels END,
        'sticky', v_def.sticky, 'slot_type', v_def.slot_type, 'slot_units', v_def.slot_units));
END
$$;

-- ---------------------------------------------------------------------------------------------------------------------
-- Worker-side calls
-- ---------------------------------------------------------------------------------------------------------------------

-- Frees the worker slot of a running attempt before it finishes (Hatchet's ctx.release_slot): the attempt stays
-- RUNNING and can still complete or fail, but no longer counts against its worker's capacity.
CREATE FUNCTION hatchet.release_slot(task_id uuid, tenant_id uuid DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    p_tenant uuid := coalesce(release_slot.tenant_id, hatchet.default_tenant());
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

-- Appends log lines written by a task (ctx.log). Lines for unknown tasks are refused.
CREATE FUNCTION hatchet.put_log(task_id uuid, message text, level text DEFAULT 'INFO', retry_count integer DEFAULT NULL,
                                created_at timestamptz DEFAULT NULL, tenant_id uuid DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    p_tenant uuid := coalesce(put_log.tenant_id, hatchet.default_tenant());
    v_at timestamptz := hatchet.uuid_time(put_log.task_id);
BEGIN
    IF put_log.message IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['message']);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM hatchet.tasks t WHERE t.tenant_id = p_tenant AND t.inserted_at = v_at
                                                   AND t.id = put_log.task_id) THEN
        PERFORM hatchet.raise_error('unknown_task', ARRAY[put_log.task_id::text]);
    END IF;
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
AS $$
    SELECT l.created_at, l.retry_count, l.level, l.message FROM hatchet.logs l
    WHERE l.tenant_id = coalesce(task_logs.tenant_id, hatchet.default_tenant())
      AND l.task_inserted_at = hatchet.uuid_time(task_logs.task_id) AND l.task_id = task_logs.task_id
    ORDER BY l.created_at
$$;
