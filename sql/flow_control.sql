-- Flow control: concurrency keys and strategies (the gates an attempt passes before it may be dispatched) and rate
-- limits (units taken when an attempt is assigned; put, pause and list them here).
--
-- Every decision here is made inside the transaction that changes the state it depends on, under row locks on the
-- shared counters (concurrency_groups, rate_limits, worker_slots), so limits hold across any number of claimers and
-- a slot is given back in the same transaction that ends its holder. The CHECK constraints on those counters are the
-- last line of defence: a bug that would exceed max_runs or leak a slot fails the transaction instead.
--
-- Public: put_rate_limit, pause_rate_limit, list_rate_limits.
-- Calls: tenants.sql, tasks.sql (_queue_vtime, _task_state, cancel, _finish_unstarted: a task that never starts),
-- runs.sql (_on_tasks_finished).

-- ---------------------------------------------------------------------------------------------------------------------
-- Concurrency
-- ---------------------------------------------------------------------------------------------------------------------

-- Validates enqueue's concurrency options and turns them into the task's gate list ([] when there is no key).
CREATE FUNCTION hatchet._concurrency_option(p_queue text, p_key text, p_max_runs integer, p_strategy text)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
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
SET search_path = pg_catalog, pg_temp
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
                            -- A holder's row may have been held only for a moment (its STARTED acknowledgement):
                            -- the maintenance pass retries the preemption (_retry_preemptions).
                            INSERT INTO hatchet.preemption_waits (tenant_id, scope, key)
                            VALUES (p_tenant, v_group.scope, v_group.key)
                            ON CONFLICT ON CONSTRAINT preemption_waits_pkey DO NOTHING;
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
SET search_path = pg_catalog, pg_temp
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
SET search_path = pg_catalog, pg_temp
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
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_freed record;
    v_wait  hatchet.concurrency_queue;
    v_sibling hatchet.concurrency_queue;
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
            -- A workflow-level key counts runs: once this waiter's run holds the slot, its other tasks waiting for
            -- the key pass the gate their run holds and need no room. Left waiting, they would keep the run (and
            -- so the slot) from ever finishing.
            IF v_wait.run_id IS NOT NULL AND EXISTS (
                SELECT 1 FROM hatchet.concurrency_slots s
                WHERE s.tenant_id = p_tenant AND s.task_id = v_wait.run_id AND s.scope = v_freed.scope
                  AND s.key = v_freed.key) THEN
                LOOP
                    DELETE FROM hatchet.concurrency_queue q
                    WHERE q.ctid = (SELECT x.ctid FROM hatchet.tasks t
                                    JOIN hatchet.concurrency_queue x ON x.tenant_id = t.tenant_id AND x.task_id = t.id
                                    WHERE t.tenant_id = p_tenant AND t.run_id = v_wait.run_id
                                      AND t.inserted_at >= hatchet.uuid_time(v_wait.run_id)
                                      AND x.scope = v_freed.scope AND x.key = v_freed.key
                                    ORDER BY x.priority DESC, x.id LIMIT 1
                                    FOR UPDATE OF x SKIP LOCKED)
                    RETURNING q.* INTO v_sibling;
                    EXIT WHEN NOT FOUND;
                    PERFORM hatchet._admit(p_tenant, v_sibling.task_id, v_sibling.task_inserted_at,
                                           v_sibling.retry_count, v_sibling.app_retry_count,
                                           v_sibling.internal_retry_count, v_sibling.priority, v_sibling.stage);
                END LOOP;
            END IF;
            SELECT g.max_runs - g.running INTO v_room FROM hatchet.concurrency_groups g
            WHERE g.tenant_id = p_tenant AND g.scope = v_freed.scope AND g.key = v_freed.key;
        END LOOP;
    END LOOP;
END
$$;

-- Retries the preemption of CANCEL_IN_PROGRESS waiters. An arrival at a full key cancels the oldest holder it can lock
-- without waiting (_admit); when another transaction holds every holder's row it waits in concurrency_queue, because
-- a holder being finished gives its slot back to the waiters. But a row is also held briefly by work that does not
-- finish the holder: the STARTED acknowledgement, a timeout refresh, a slot release. The holder would then keep
-- running to its end with the newer run waiting behind it: CANCEL_IN_PROGRESS would have acted as a queue. _admit
-- records such keys in preemption_waits; each maintenance pass takes them (group row not held by anyone else) and,
-- while the key is full and a holder can be locked without waiting, admits the first waiter, which cancels that
-- holder. A key with no waiter left is forgotten. Returns how many waiters were admitted.
CREATE FUNCTION hatchet._retry_preemptions(p_tenant uuid, p_limit integer) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_key   record;
    v_wait  hatchet.concurrency_queue;
    v_cand  record;
    v_free  boolean;
    n integer := 0;
BEGIN
    FOR v_key IN
        SELECT w.scope, w.key FROM hatchet.preemption_waits w
        WHERE w.tenant_id = p_tenant ORDER BY w.scope, w.key LIMIT p_limit
    LOOP
        -- The group row serialises every decision on the key: one held by an admitter or a releaser right now is
        -- left for the next pass.
        PERFORM 1 FROM hatchet.concurrency_groups g
        WHERE g.tenant_id = p_tenant AND g.scope = v_key.scope AND g.key = v_key.key
        FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        WHILE n < p_limit AND EXISTS (SELECT 1 FROM hatchet.concurrency_groups g
                                      WHERE g.tenant_id = p_tenant AND g.scope = v_key.scope AND g.key = v_key.key
                                        AND g.running >= g.max_runs) LOOP
            -- A holder lockable now: _admit (same transaction) locks the same one and cancels it. Without one, the
            -- waiter stays where it is, in its place in the queue.
            v_free := false;
            FOR v_cand IN
                SELECT s.task_id FROM hatchet.concurrency_slots s
                WHERE s.tenant_id = p_tenant AND s.scope = v_key.scope AND s.key = v_key.key
                ORDER BY s.admitted_at, s.task_id
            LOOP
                IF hatchet._try_lock_holder(p_tenant, v_cand.task_id) THEN
                    v_free := true;
                    EXIT;
                END IF;
            END LOOP;
            EXIT WHEN NOT v_free;
            DELETE FROM hatchet.concurrency_queue q
            WHERE q.ctid = (SELECT x.ctid FROM hatchet.concurrency_queue x
                            WHERE x.tenant_id = p_tenant AND x.scope = v_key.scope AND x.key = v_key.key
                            ORDER BY x.priority DESC, x.id LIMIT 1
                            FOR UPDATE SKIP LOCKED)
            RETURNING q.* INTO v_wait;
            EXIT WHEN NOT FOUND;
            PERFORM hatchet._admit(p_tenant, v_wait.task_id, v_wait.task_inserted_at, v_wait.retry_count,
                                   v_wait.app_retry_count, v_wait.internal_retry_count, v_wait.priority, v_wait.stage);
            n := n + 1;
        END LOOP;
        IF NOT EXISTS (SELECT 1 FROM hatchet.concurrency_queue q
                       WHERE q.tenant_id = p_tenant AND q.scope = v_key.scope AND q.key = v_key.key) THEN
            DELETE FROM hatchet.preemption_waits w
            WHERE w.tenant_id = p_tenant AND w.scope = v_key.scope AND w.key = v_key.key;
        END IF;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION hatchet._retry_preemptions(uuid, integer) IS
    'admit CANCEL_IN_PROGRESS waiters whose preemption found every holder locked, cancelling the oldest holder';

-- ---------------------------------------------------------------------------------------------------------------------
-- Rate limits
-- ---------------------------------------------------------------------------------------------------------------------

-- Validates enqueue's rate_limits option: a JSON array of {"key": text, "units": positive integer (default 1)}.
CREATE FUNCTION hatchet._rate_limits_option(p_limits jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
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

CREATE FUNCTION hatchet._rate_limit_window(p_duration text) RETURNS interval
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
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
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(put_rate_limit.tenant_id);
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
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(pause_rate_limit.tenant_id);
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
SET search_path = pg_catalog, pg_temp
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
SET search_path = pg_catalog, pg_temp
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

-- The tenant's rate limits by key (those whose key contains `search`), as they stand now: a window that has passed
-- shows as refilled, and paused_until is set while a pause lasts.
CREATE FUNCTION hatchet.list_rate_limits(search text DEFAULT NULL, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (key text, limit_value integer, remaining integer, "window" text, last_refill timestamptz,
               paused_until timestamptz)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(list_rate_limits.tenant_id);
    v_now    timestamptz := clock_timestamp();
BEGIN
    RETURN QUERY
    SELECT r.key, r.limit_value,
           CASE WHEN v_now >= r.last_refill + r.window_size THEN r.limit_value ELSE r.remaining END,
           r.window_size::text, r.last_refill,
           CASE WHEN r.paused_until > v_now THEN r.paused_until END
    FROM hatchet.rate_limits r
    WHERE r.tenant_id = p_tenant AND (list_rate_limits.search IS NULL OR strpos(r.key, list_rate_limits.search) > 0)
    ORDER BY r.key;
END
$$;
COMMENT ON FUNCTION hatchet.list_rate_limits(text, uuid) IS
    'rate limits (optionally those whose key contains search): limit, units left now, window, pause';
