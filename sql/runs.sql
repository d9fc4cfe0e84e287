-- Runs: workflow runs and DAG advancement (the match engine), run create / cancel / replay, run status, timeline and
-- the run reads.
--
-- How a run moves (Hatchet's match engine):
--   * hatchet.run_workflow creates a hatchet.runs row, queues the root tasks through hatchet._enqueue_batch (the one
--     task-creation path) and creates one hatchet.matches row per other task: "when these conditions hold, do X".
--   * A condition is satisfied by an internal event (a parent task COMPLETED / FAILED / CANCELLED), a user event
--     (hatchet.push_event) or a sleep coming due (the background worker). Conditions with the same `group` are OR'ed;
--     the groups of one action are AND'ed. An action fires when all its groups hold; when several do, the first of
--     SKIP > CANCEL > QUEUE > CREATE_MATCH wins.
--   * The task lifecycle (tasks.sql) calls hatchet._on_tasks_finished in the same transaction whenever a workflow
--     task reaches COMPLETED, FAILED or CANCELLED, so a child is queued in the transaction that completes its last
--     parent.
--   * A task that is skipped or cancelled before it ever ran still gets a hatchet.tasks row and a SKIPPED / CANCELLED
--     event, so run status and timelines show it, and its own outcome cascades to its children in turn.
--
-- Every writer of a run's matches first takes a transaction advisory lock on the run (hatchet._lock_runs, in a fixed
-- order), so two parents finishing at once, an event and a completion, or a sleep and a cancel never interleave.
-- Lock order: a task's hot rows (running / ready_queue), then its run, then what queuing a task locks (concurrency
-- groups): firing a match queues tasks while holding the run lock.
--
-- Task input of a workflow task is the shape the SDKs expect as the action payload (Hatchet's V1StepRunData):
--   {"input": <run input>, "parents": {<readable_id>: <output>}, "triggered_by": "manual" | "event" | "cron" |
--    "schedule", "triggers": {...} (when an event filter or a user-event condition contributed data),
--    "step_run_errors": {<readable_id>: <error>} (on_failure tasks only)}
--
-- The reads take the tenant and only ever return that tenant's rows; task timelines are read through
-- hatchet.task_events() (never the table), so how events are stored can change underneath.
--
-- Public: run_workflow, cancel_run, replay_tasks, run_status, run_tasks, run_events, run, run_shape, list_runs,
-- run_children, finished_runs, find_runs_by_metadata, task_status_counts, task_stats.
-- Calls: tenants.sql, options.sql, tasks.sql (creating, cancelling and reading tasks), flow_control.sql (_admit,
-- _release_slots), workflows.sql (_latest_version), durable.sql (_durable_signal and _durable_children_finished: a
-- durable task's waits are SIGNAL matches, and its children satisfy its log when they finish).

-- ---------------------------------------------------------------------------------------------------------------------
-- Locks and small reads
-- ---------------------------------------------------------------------------------------------------------------------

-- Serialises every change to the pending matches of the given runs: one transaction advisory lock per run, taken in
-- key order so two transactions locking overlapping sets of runs cannot deadlock. Only runs that have pending matches
-- need it (a run gains matches only when it is created, before anyone else can see it).
CREATE FUNCTION hatchet._lock_runs(p_runs uuid[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k integer;
BEGIN
    FOR k IN SELECT DISTINCT hashtext(r::text) FROM unnest(p_runs) AS r WHERE r IS NOT NULL ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(1212240963, k);  -- 1212240963 = 'HATC': pg_hatchet's run locks
    END LOOP;
END
$$;

-- Locks the runs among p_runs that have pending matches (only those have anything to advance). The lifecycle API
-- should call this before it gives back concurrency slots, so the lock order is always: the task's hot rows, then its
-- run, then concurrency groups (firing a match admits tasks through concurrency gates while holding the run's lock).
CREATE FUNCTION hatchet._lock_pending_runs(p_tenant uuid, p_runs uuid[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_runs IS NULL OR cardinality(p_runs) = 0 THEN
        RETURN;
    END IF;
    PERFORM hatchet._lock_runs(ARRAY(SELECT DISTINCT r FROM unnest(p_runs) r
                                     WHERE EXISTS (SELECT 1 FROM hatchet.matches x
                                                   WHERE x.tenant_id = p_tenant AND x.run_id = r)));
END
$$;

CREATE FUNCTION hatchet._run_row(p_tenant uuid, p_run uuid) RETURNS hatchet.runs
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.* FROM hatchet.runs r
    WHERE r.tenant_id = p_tenant AND r.inserted_at = hatchet.uuid_time(p_run) AND r.id = p_run
$$;

-- The output of a task's completed attempt ({} when it completed without one).
-- This and _task_outcome are PL/pgSQL, not SQL, for their cached plans: a SQL function with a SET clause is never
-- inlined and plans its query again for every statement that calls it, which cost about 40 % of the instructions of
-- the SQL DAG drain (DAG advancement calls both once per parent of every task it queues).
CREATE FUNCTION hatchet._task_output(p_tenant uuid, p_task uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN coalesce((SELECT p.data FROM hatchet.payloads p
                     WHERE p.tenant_id = p_tenant AND p.task_inserted_at = hatchet.uuid_time(p_task)
                       AND p.task_id = p_task AND p.kind = 'OUTPUT'
                     ORDER BY p.retry_count DESC LIMIT 1), '{}'::jsonb);
END
$$;

-- The latest terminal event of a task (COMPLETED, FAILED, CANCELLED or SKIPPED), if any (NULLs if none).
CREATE FUNCTION hatchet._task_outcome(p_tenant uuid, p_task uuid,
                                      OUT event_type text, OUT reason text, OUT retry_count integer)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    SELECT e.event_type::text, e.reason, e.retry_count INTO event_type, reason, retry_count
    FROM hatchet.task_events e
    WHERE e.tenant_id = p_tenant AND e.task_inserted_at = hatchet.uuid_time(p_task) AND e.task_id = p_task
      AND e.event_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'SKIPPED')
    ORDER BY e.created_at DESC LIMIT 1;
END
$$;

-- ---------------------------------------------------------------------------------------------------------------------
-- Conditions and matches
-- ---------------------------------------------------------------------------------------------------------------------

-- A CEL condition: true, false, or an error (a non-boolean result is an error too). Never raises.
CREATE FUNCTION hatchet._cel_bool(p_expr text, p_vars jsonb, OUT ok boolean, OUT error text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v jsonb := hatchet.cel_try(p_expr, p_vars);
BEGIN
    ok := false;
    IF v ? 'error' THEN
        error := format('CEL expression "%s" failed: %s', p_expr, v->>'error');
    ELSIF jsonb_typeof(v->'value') = 'boolean' THEN
        ok := (v->'value')::text::boolean;
    ELSE
        error := format('CEL expression "%s" returned %s, not a boolean', p_expr, coalesce(v->'value', 'null'));
    END IF;
END
$$;

-- The action a match takes now, or NULL: an action fires when each of its groups has a satisfied condition
-- (OR within a group, AND across groups); precedence SKIP > CANCEL > QUEUE > CREATE_MATCH.
CREATE FUNCTION hatchet._match_action(p_conditions jsonb, p_satisfied jsonb) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT g.action
    FROM (SELECT c->>'action' AS action, c->>'group' AS grp, bool_or(p_satisfied ? (c->>'id')) AS ok
          FROM jsonb_array_elements(p_conditions) c GROUP BY 1, 2) g
    GROUP BY g.action
    HAVING bool_and(g.ok)
    ORDER BY array_position(ARRAY['SKIP', 'CANCEL', 'QUEUE', 'CREATE_MATCH'], g.action)
    LIMIT 1
$$;

-- Numbers the conditions of a match ("id": "1", "2", ...), the keys of its `satisfied` map.
CREATE FUNCTION hatchet._number_conditions(p_conditions jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(jsonb_agg(c || jsonb_build_object('id', ord::text) ORDER BY ord), '[]')
    FROM jsonb_array_elements(p_conditions) WITH ORDINALITY AS x(c, ord)
$$;

-- The conditions of a task with parents (Hatchet's getParentInDAGGroupMatch), per parent P:
--   * P COMPLETED -> QUEUE (CREATE_MATCH when the task also waits for sleeps or user events: those start counting
--     once the parents are done); a wait_for parent condition replaces this with its CEL over P's output;
--   * P COMPLETED with output.skipped -> SKIP (all parents skipped => skipped; mixed => runs), unless the task has
--     skip_if parent conditions, which replace it;
--   * P FAILED or CANCELLED -> CANCEL, one group shared by all parents (any parent failed => cancelled); a cancel_if
--     parent condition joins its CEL (on P COMPLETED) to P's FAILED/CANCELLED in its own group.
CREATE FUNCTION hatchet._parent_conditions(p_def hatchet.task_definitions) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_conds    jsonb := '[]';
    v_c        jsonb := p_def.conditions;
    v_complete text;
    v_any_skip boolean;
    v_parent   text;
    v_o        jsonb;
    v_found    boolean;
BEGIN
    v_complete := CASE WHEN EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce(v_c->'wait_for', '[]') ||
                                                                     coalesce(v_c->'skip_if', '[]') ||
                                                                     coalesce(v_c->'cancel_if', '[]')) e
                                    WHERE e->>'kind' IN ('sleep', 'event'))
                       THEN 'CREATE_MATCH' ELSE 'QUEUE' END;
    v_any_skip := EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce(v_c->'skip_if', '[]')) e
                          WHERE e->>'kind' = 'parent');
    FOREACH v_parent IN ARRAY p_def.parents LOOP
        v_found := false;
        FOR v_o IN SELECT e FROM jsonb_array_elements(coalesce(v_c->'wait_for', '[]')) e
                   WHERE e->>'kind' = 'parent' AND e->>'parent' = v_parent LOOP
            v_conds := v_conds || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
                'type', 'parent', 'parent', v_parent, 'on', '["COMPLETED"]'::jsonb, 'expression', v_o->>'expression',
                'action', v_complete, 'group', 'wait_for:' || (v_o->>'or_group'), 'list', 'wait_for')));
            v_found := true;
        END LOOP;
        IF NOT v_found THEN
            v_conds := v_conds || jsonb_build_array(jsonb_build_object(
                'type', 'parent', 'parent', v_parent, 'on', '["COMPLETED"]'::jsonb, 'action', v_complete,
                'group', 'parent:' || v_parent));
        END IF;

        v_found := false;
        FOR v_o IN SELECT e FROM jsonb_array_elements(coalesce(v_c->'skip_if', '[]')) e
                   WHERE e->>'kind' = 'parent' AND e->>'parent' = v_parent LOOP
            v_conds := v_conds || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
                'type', 'parent', 'parent', v_parent, 'on', '["COMPLETED"]'::jsonb, 'expression', v_o->>'expression',
                'action', 'SKIP', 'group', 'skip_if:' || (v_o->>'or_group'), 'list', 'skip_if')));
            v_found := true;
        END LOOP;
        IF NOT v_found AND NOT v_any_skip THEN
            v_conds := v_conds || jsonb_build_array(jsonb_build_object(
                'type', 'parent', 'parent', v_parent, 'on', '["COMPLETED"]'::jsonb, 'skipped', true,
                'action', 'SKIP', 'group', 'skipped:' || v_parent));
        END IF;

        v_found := false;
        FOR v_o IN SELECT e FROM jsonb_array_elements(coalesce(v_c->'cancel_if', '[]')) e
                   WHERE e->>'kind' = 'parent' AND e->>'parent' = v_parent LOOP
            v_conds := v_conds || jsonb_build_array(
                jsonb_strip_nulls(jsonb_build_object(
                    'type', 'parent', 'parent', v_parent, 'on', '["COMPLETED"]'::jsonb,
                    'expression', v_o->>'expression', 'action', 'CANCEL', 'group', 'cancel_if:' || (v_o->>'or_group'),
                    'list', 'cancel_if')),
                jsonb_build_object(
                    'type', 'parent', 'parent', v_parent, 'on', '["FAILED", "CANCELLED"]'::jsonb, 'action', 'CANCEL',
                    'group', 'cancel_if:' || (v_o->>'or_group')));
            v_found := true;
        END LOOP;
        IF NOT v_found THEN
            v_conds := v_conds || jsonb_build_array(jsonb_build_object(
                'type', 'parent', 'parent', v_parent, 'on', '["FAILED", "CANCELLED"]'::jsonb, 'action', 'CANCEL',
                'group', 'parents_failed'));
        END IF;
    END LOOP;
    RETURN hatchet._number_conditions(v_conds);
END
$$;

-- The sleep and user-event conditions of a task, armed at p_now: a root task's from the start of its run, a child's
-- once its parents are done. wait_for -> QUEUE, skip_if -> SKIP, cancel_if -> CANCEL.
CREATE FUNCTION hatchet._wait_conditions(p_def hatchet.task_definitions, p_now timestamptz) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT hatchet._number_conditions(coalesce(jsonb_agg(jsonb_strip_nulls(
               jsonb_build_object(
                   'type', e->>'kind',
                   'action', CASE l.name WHEN 'wait_for' THEN 'QUEUE' WHEN 'skip_if' THEN 'SKIP' ELSE 'CANCEL' END,
                   'group', l.name || ':' || (e->>'or_group'), 'list', l.name,
                   'expression', e->>'expression', 'data_key', e->>'data_key',
                   'key', e->>'key', 'scope', e->>'scope', 'sleep_for', e->>'sleep_for',
                   'until', p_now + hatchet.parse_duration(e->>'sleep_for')))
               ORDER BY l.ord, x.ord), '[]'))
    FROM unnest(ARRAY['wait_for', 'skip_if', 'cancel_if']) WITH ORDINALITY AS l(name, ord)
    CROSS JOIN LATERAL jsonb_array_elements(coalesce(p_def.conditions->l.name, '[]')) WITH ORDINALITY AS x(e, ord)
    WHERE e->>'kind' IN ('sleep', 'event')
$$;

-- The on_failure task's conditions (Hatchet's getParentOnFailureGroupMatches): any other task FAILED -> QUEUE (one
-- group); every other task COMPLETED (or skipped) or CANCELLED -> SKIP.
CREATE FUNCTION hatchet._on_failure_conditions(p_tenant uuid, p_version bigint) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT hatchet._number_conditions(coalesce(jsonb_agg(c ORDER BY d.id, c->>'action' DESC), '[]'))
    FROM hatchet.task_definitions d
    CROSS JOIN LATERAL (VALUES
        (jsonb_build_object('type', 'parent', 'parent', d.readable_id, 'on', '["FAILED"]'::jsonb, 'action', 'QUEUE',
                            'group', 'any_failed')),
        (jsonb_build_object('type', 'parent', 'parent', d.readable_id, 'on', '["COMPLETED", "CANCELLED"]'::jsonb,
                            'action', 'SKIP', 'group', 'done:' || d.readable_id, 'why', 'no task failed'))) AS x(c)
    WHERE d.tenant_id = p_tenant AND d.workflow_version_id = p_version AND NOT d.is_on_failure
$$;

-- Creates a pending match. Its task_id is the id the task will get: the run id for a single-task workflow (its task
-- is the run, as in Hatchet), else the match id as a placeholder: DAG tasks get a fresh id when they are created, so
-- a task's inserted_at (and the QUEUED entry of its timeline) is when it was really queued.
CREATE FUNCTION hatchet._insert_match(p_tenant uuid, p_run uuid, p_def bigint, p_task uuid, p_conditions jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id uuid := hatchet.gen_id();
BEGIN
    INSERT INTO hatchet.matches (tenant_id, id, run_id, task_definition_id, task_id, kind, conditions, wake_at,
                                 event_keys)
    VALUES (p_tenant, v_id, p_run, p_def, coalesce(p_task, v_id), 'TRIGGER', p_conditions,
            (SELECT min((c->>'until')::timestamptz) FROM jsonb_array_elements(p_conditions) c WHERE c ? 'until'),
            ARRAY(SELECT DISTINCT c->>'key' FROM jsonb_array_elements(p_conditions) c
                  WHERE c->>'type' = 'event' ORDER BY 1));
END
$$;

-- The input of a workflow task (Hatchet's action payload): the run input, the outputs of its parents, how the run
-- was triggered, trigger data, and for the on_failure task the errors of the tasks that failed.
CREATE FUNCTION hatchet._task_input(p_tenant uuid, p_run hatchet.runs, p_def hatchet.task_definitions,
                                    p_triggers jsonb DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_parents jsonb;
    v_errors  jsonb;
    v_input   jsonb;
BEGIN
    SELECT coalesce(jsonb_object_agg(t.readable_id, hatchet._task_output(p_tenant, t.id))
                        FILTER (WHERE o.event_type IN ('COMPLETED', 'SKIPPED')), '{}'),
           coalesce(jsonb_object_agg(t.readable_id, coalesce(o.reason, 'failed'))
                        FILTER (WHERE o.event_type = 'FAILED'), '{}')
    INTO v_parents, v_errors
    FROM hatchet.tasks t
    CROSS JOIN LATERAL hatchet._task_outcome(p_tenant, t.id) o
    WHERE t.tenant_id = p_tenant AND t.run_id = p_run.id AND t.inserted_at >= p_run.inserted_at
      AND (p_def.is_on_failure OR t.readable_id = ANY (p_def.parents));
    v_input := jsonb_build_object('input', p_run.input, 'parents', v_parents, 'triggered_by', p_run.triggered_by);
    IF p_triggers IS NOT NULL AND p_triggers <> '{}' THEN
        v_input := v_input || jsonb_build_object('triggers', p_triggers);
    END IF;
    IF p_def.is_on_failure THEN
        v_input := v_input || jsonb_build_object('step_run_errors', v_errors);
    END IF;
    RETURN v_input;
END
$$;

-- Where the later tasks of a run should run (the placement option of _enqueue_batch), from its first task:
--   * a sticky workflow (SOFT or HARD): on the worker that ran (or runs) the first task, as Hatchet does; until that
--     task has been assigned, on the worker the trigger asked for, if any;
--   * otherwise, when the trigger named a desired worker (a child spawned with sticky=True): that worker, SOFT;
--   * and the worker labels the run was triggered with (runs.desired_labels), for tasks that declare none.
-- NULL when there is nothing to honour. The worker comes from the first task's timeline (hatchet.task_events), the
-- one place that knows which worker ran an attempt.
CREATE FUNCTION hatchet._run_placement(p_tenant uuid, p_run hatchet.runs) RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_sticky hatchet.sticky_strategy;
    v_first  record;
    v_text   text;
    v_worker uuid;
    -- labels the run was triggered with, for the tasks that declare none
    v_labels jsonb := jsonb_strip_nulls(jsonb_build_object('desired_labels', p_run.desired_labels));
BEGIN
    SELECT v.sticky INTO v_sticky FROM hatchet.workflow_versions v
    WHERE v.tenant_id = p_tenant AND v.id = p_run.workflow_version_id;
    SELECT t.id, t.desired_worker_id, t.sticky INTO v_first FROM hatchet.tasks t
    WHERE t.tenant_id = p_tenant AND t.run_id = p_run.id AND t.inserted_at >= p_run.inserted_at
    ORDER BY t.inserted_at, t.id LIMIT 1;
    IF NOT FOUND OR (v_sticky IS NULL AND v_first.desired_worker_id IS NULL) THEN
        RETURN nullif(v_labels, '{}');
    END IF;
    IF v_sticky IS NOT NULL THEN
        SELECT e.worker INTO v_text FROM hatchet.task_events(v_first.id, p_tenant) e
        WHERE e.event_type = 'ASSIGNED' ORDER BY e.created_at DESC, e.retry_count DESC LIMIT 1;
        -- Only a registered worker (server path) can be pinned; a SQL consumer's free-form name cannot.
        IF v_text ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
            SELECT w.id INTO v_worker FROM hatchet.workers w WHERE w.tenant_id = p_tenant AND w.id = v_text::uuid;
        END IF;
    END IF;
    v_worker := coalesce(v_worker, v_first.desired_worker_id);
    IF v_worker IS NULL THEN
        RETURN nullif(v_labels, '{}');
    END IF;
    RETURN jsonb_build_object('desired_worker_id', v_worker,
                              'sticky', coalesce(v_sticky, v_first.sticky, 'SOFT'::hatchet.sticky_strategy)) || v_labels;
END
$$;

-- Queues a workflow task through the one task-creation path, with its definition's queue (action), retries and
-- timeouts, and the run's priority and metadata. p_placement: where it should run ('{}' = anywhere; NULL = decide
-- from the run, see _run_placement).
CREATE FUNCTION hatchet._queue_task(p_tenant uuid, p_run hatchet.runs, p_def hatchet.task_definitions, p_task uuid,
                                    p_triggers jsonb DEFAULT NULL, p_placement jsonb DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_placement IS NULL THEN
        p_placement := hatchet._run_placement(p_tenant, p_run);
    END IF;
    RETURN (hatchet._enqueue_batch(
        p_tenant => p_tenant, p_queue => p_def.action,
        p_inputs => ARRAY[hatchet._task_input(p_tenant, p_run, p_def, p_triggers)],
        p_priority => p_run.priority::integer, p_run_at => NULL::timestamptz, p_retries => p_def.retries,
        p_backoff_factor => p_def.backoff_factor, p_backoff_max_seconds => p_def.backoff_max_seconds,
        p_execution_timeout => p_def.execution_timeout, p_schedule_timeout => p_def.schedule_timeout,
        p_idempotency_key => NULL::text, p_metadata => p_run.additional_metadata, p_ids => ARRAY[p_task],
        p_run_ids => ARRAY[p_run.id], p_definition_id => p_def.id, p_readable_id => p_def.readable_id,
        p_placement => nullif(p_placement, '{}')))[1];
END
$$;

-- Records a workflow task that ends before it ever runs (skipped, cancelled by a parent or condition, failed by a
-- condition that could not be evaluated): a task row and its terminal event, so run status and timelines show it. A
-- skipped task completes with output {"skipped": true}, which is how its children learn that it was skipped.
CREATE FUNCTION hatchet._insert_finished_task(p_tenant uuid, p_run hatchet.runs, p_def hatchet.task_definitions,
                                              p_task uuid, p_event hatchet.task_event_type, p_reason text,
                                              p_triggers jsonb DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_at timestamptz := hatchet.uuid_time(p_task);
BEGIN
    INSERT INTO hatchet.tasks (tenant_id, inserted_at, id, run_id, task_definition_id, readable_id, retries,
                               backoff_factor, backoff_max_seconds, execution_timeout, schedule_timeout, priority,
                               queue, input, additional_metadata)
    VALUES (p_tenant, v_at, p_task, p_run.id, p_def.id, p_def.readable_id, p_def.retries, p_def.backoff_factor,
            p_def.backoff_max_seconds, p_def.execution_timeout, p_def.schedule_timeout, p_run.priority, p_def.action,
            hatchet._task_input(p_tenant, p_run, p_def, p_triggers), p_run.additional_metadata);
    INSERT INTO hatchet.task_events (tenant_id, task_inserted_at, task_id, retry_count, event_type, reason)
    VALUES (p_tenant, v_at, p_task, 0, p_event, p_reason);
    IF p_event = 'SKIPPED' THEN
        INSERT INTO hatchet.payloads (tenant_id, task_inserted_at, task_id, retry_count, kind, data)
        VALUES (p_tenant, v_at, p_task, 0, 'OUTPUT', '{"skipped": true}');
    END IF;
END
$$;

-- Why a match fired, from the first satisfied condition of the action that fired (for the timeline).
CREATE FUNCTION hatchet._match_reason(p_conditions jsonb, p_satisfied jsonb, p_action text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((
        SELECT CASE
            WHEN c ? 'why' THEN c->>'why'
            WHEN c->>'type' = 'parent' AND (c->>'skipped')::boolean THEN 'every parent was skipped'
            WHEN c->>'type' = 'parent' AND c ? 'expression'
                THEN format('%s: parent "%s" output matched %s', c->>'list', c->>'parent', c->>'expression')
            WHEN c->>'type' = 'parent'
                THEN format('parent "%s" %s', c->>'parent', lower(p_satisfied->(c->>'id')->>'outcome'))
            WHEN c->>'type' = 'event' THEN format('%s: event "%s"', c->>'list', c->>'key')
            ELSE format('%s: slept %s', c->>'list', c->>'sleep_for')
        END
        FROM jsonb_array_elements(p_conditions) WITH ORDINALITY AS x(c, ord)
        WHERE c->>'action' = p_action AND p_satisfied ? (c->>'id')
        ORDER BY ord LIMIT 1), lower(p_action))
$$;

-- The next attempt number of a finished task (one past its last terminal event).
CREATE FUNCTION hatchet._next_attempt(p_tenant uuid, p_task uuid) RETURNS integer
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((hatchet._task_outcome(p_tenant, p_task)).retry_count, 0) + 1
$$;

-- Queues a new attempt of a finished task (a replay): retry budgets start again and it goes ahead of user work
-- (priority 4, like retries), through its concurrency gates. p_input replaces the stored input (a DAG task replayed
-- after its parents ran again sees their new outputs). Returns the new attempt's retry_count.
CREATE FUNCTION hatchet._replay_attempt(p_tenant uuid, p_task uuid, p_input jsonb DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_next integer := hatchet._next_attempt(p_tenant, p_task);
BEGIN
    IF p_input IS NOT NULL THEN
        UPDATE hatchet.tasks t SET input = p_input
        WHERE t.tenant_id = p_tenant AND t.inserted_at = hatchet.uuid_time(p_task) AND t.id = p_task;
    END IF;
    PERFORM hatchet._admit(p_tenant, p_task, hatchet.uuid_time(p_task), v_next, 0, 0, 4);
    RETURN v_next;
END
$$;

-- Ends a new attempt of a replayed task before it runs (its parents failed, were cancelled or skipped it again).
CREATE FUNCTION hatchet._replay_finished(p_tenant uuid, p_task uuid, p_event hatchet.task_event_type, p_reason text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_next integer := hatchet._next_attempt(p_tenant, p_task);
    v_at   timestamptz := hatchet.uuid_time(p_task);
BEGIN
    INSERT INTO hatchet.task_events (tenant_id, task_inserted_at, task_id, retry_count, event_type, reason)
    VALUES (p_tenant, v_at, p_task, v_next, p_event, p_reason);
    IF p_event = 'SKIPPED' THEN
        INSERT INTO hatchet.payloads (tenant_id, task_inserted_at, task_id, retry_count, kind, data)
        VALUES (p_tenant, v_at, p_task, v_next, 'OUTPUT', '{"skipped": true}');
    END IF;
END
$$;

-- Fires a match: deletes it and creates its task (QUEUE: queued; SKIP / CANCEL / FAIL: finished at once), or re-arms
-- it with the task's sleep and user-event conditions (CREATE_MATCH). Returns the finished task and its outcome when
-- that outcome must cascade to other matches of the run (COMPLETED for a skip), else NULLs. A match that is already
-- gone (fired by a cascade a moment ago) is left alone.
CREATE FUNCTION hatchet._fire_match(p_tenant uuid, p_match uuid, p_action text, p_reason text DEFAULT NULL,
                                    OUT task_id uuid, OUT outcome text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m        hatchet.matches;
    v_run    hatchet.runs;
    v_def    hatchet.task_definitions;
    v_task   uuid;
    v_conds  jsonb;
    v_trig   jsonb;
    v_reason text;
    v_exists boolean;
BEGIN
    IF p_action = 'CREATE_MATCH' THEN
        SELECT x.* INTO m FROM hatchet.matches x WHERE x.tenant_id = p_tenant AND x.id = p_match;
    ELSE
        DELETE FROM hatchet.matches x WHERE x.tenant_id = p_tenant AND x.id = p_match RETURNING x.* INTO m;
    END IF;
    IF m.id IS NULL THEN
        RETURN;
    END IF;
    IF m.kind = 'SIGNAL' THEN
        -- A durable task's wait (durable.sql): it satisfies the task's log entry instead of creating a task.
        PERFORM hatchet._durable_signal(p_tenant, m, p_action, p_reason);
        RETURN;
    END IF;
    SELECT d.* INTO v_def FROM hatchet.task_definitions d WHERE d.tenant_id = p_tenant AND d.id = m.task_definition_id;
    IF p_action = 'CREATE_MATCH' THEN
        v_conds := hatchet._wait_conditions(v_def, clock_timestamp());
        UPDATE hatchet.matches x
        SET conditions = v_conds, satisfied = '{}',
            wake_at = (SELECT min((c->>'until')::timestamptz) FROM jsonb_array_elements(v_conds) c WHERE c ? 'until'),
            event_keys = ARRAY(SELECT DISTINCT c->>'key' FROM jsonb_array_elements(v_conds) c
                               WHERE c->>'type' = 'event' ORDER BY 1)
        WHERE x.tenant_id = p_tenant AND x.id = m.id;
        RETURN;
    END IF;

    v_run := hatchet._run_row(p_tenant, m.run_id);
    -- A match names its task: the run (single-task workflow), an existing task (re-armed by a replay), or only
    -- itself (placeholder: the task gets a fresh id now).
    v_task := CASE WHEN m.task_id = m.run_id OR m.task_id <> m.id THEN m.task_id ELSE hatchet.gen_id() END;
    v_exists := EXISTS (SELECT 1 FROM hatchet.tasks t
                        WHERE t.tenant_id = p_tenant AND t.inserted_at = hatchet.uuid_time(v_task) AND t.id = v_task);
    -- Data of the user events and sleeps that satisfied the match, keyed by readable_data_key (or event key).
    SELECT jsonb_object_agg(coalesce(c->>'data_key', c->>'key', 'sleep'), m.satisfied->(c->>'id') ORDER BY ord)
    INTO v_trig
    FROM jsonb_array_elements(m.conditions) WITH ORDINALITY AS x(c, ord)
    WHERE c->>'type' IN ('event', 'sleep') AND m.satisfied ? (c->>'id');
    v_reason := coalesce(p_reason, hatchet._match_reason(m.conditions, m.satisfied, p_action));
    IF v_exists THEN
        -- A replayed task: a new attempt of the same task, with its input rebuilt from the new parent outputs.
        IF p_action = 'QUEUE' THEN
            PERFORM hatchet._replay_attempt(p_tenant, v_task, hatchet._task_input(p_tenant, v_run, v_def, v_trig));
        ELSE
            PERFORM hatchet._replay_finished(p_tenant, v_task,
                (CASE p_action WHEN 'SKIP' THEN 'SKIPPED' WHEN 'CANCEL' THEN 'CANCELLED' ELSE 'FAILED' END)::hatchet.task_event_type,
                v_reason);
            task_id := v_task;
            outcome := CASE p_action WHEN 'SKIP' THEN 'COMPLETED' WHEN 'CANCEL' THEN 'CANCELLED' ELSE 'FAILED' END;
        END IF;
        RETURN;
    END IF;
    CASE p_action
        WHEN 'QUEUE' THEN
            PERFORM hatchet._queue_task(p_tenant, v_run, v_def, v_task, v_trig);
        WHEN 'SKIP' THEN
            PERFORM hatchet._insert_finished_task(p_tenant, v_run, v_def, v_task, 'SKIPPED', v_reason, v_trig);
            task_id := v_task;
            outcome := 'COMPLETED';
        WHEN 'CANCEL' THEN
            PERFORM hatchet._insert_finished_task(p_tenant, v_run, v_def, v_task, 'CANCELLED', v_reason, v_trig);
            task_id := v_task;
            outcome := 'CANCELLED';
        WHEN 'FAIL' THEN
            PERFORM hatchet._insert_finished_task(p_tenant, v_run, v_def, v_task, 'FAILED', v_reason, v_trig);
            task_id := v_task;
            outcome := 'FAILED';
    END CASE;
END
$$;

-- Saves newly satisfied conditions of a match and fires it if an action is now complete.
CREATE FUNCTION hatchet._settle_match(p_tenant uuid, p_match uuid, p_satisfied jsonb, p_wake_at timestamptz,
                                      OUT task_id uuid, OUT outcome text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_conds  jsonb;
    v_action text;
BEGIN
    UPDATE hatchet.matches x SET satisfied = p_satisfied, wake_at = p_wake_at
    WHERE x.tenant_id = p_tenant AND x.id = p_match
    RETURNING x.conditions INTO v_conds;
    v_action := hatchet._match_action(v_conds, p_satisfied);
    IF v_action IS NOT NULL THEN
        SELECT f.task_id, f.outcome INTO task_id, outcome FROM hatchet._fire_match(p_tenant, p_match, v_action) f;
    END IF;
END
$$;

-- The match engine's core: applies finished tasks (COMPLETED / FAILED / CANCELLED) to the parent conditions of the
-- pending matches of their runs, fires what became ready, and applies the outcomes that firing produced (a skipped or
-- cancelled child finishes at once and cascades to its own children) until nothing changes.
CREATE FUNCTION hatchet._advance(p_tenant uuid, p_tasks uuid[], p_runs uuid[], p_outcomes text[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    i         integer := 1;
    v_task    uuid;
    v_run     uuid;
    v_outcome text;
    v_rid     text;
    v_output  jsonb;
    v_input   jsonb;
    v_match   uuid;
    m         hatchet.matches;
    c         jsonb;
    v_sat     jsonb;
    v_changed boolean;
    v_ok      boolean;
    v_err     text;
    v_cel     record;
    v_fired   record;
BEGIN
    PERFORM hatchet._lock_pending_runs(p_tenant, p_runs);
    WHILE i <= cardinality(p_tasks) LOOP
        v_task := p_tasks[i];
        v_run := p_runs[i];
        v_outcome := p_outcomes[i];
        i := i + 1;
        CONTINUE WHEN v_run IS NULL;
        SELECT t.readable_id INTO v_rid FROM hatchet.tasks t
        WHERE t.tenant_id = p_tenant AND t.inserted_at = hatchet.uuid_time(v_task) AND t.id = v_task;
        CONTINUE WHEN v_rid IS NULL;
        v_output := NULL;
        v_input := NULL;
        FOR v_match IN
            SELECT x.id FROM hatchet.matches x
            WHERE x.tenant_id = p_tenant AND x.run_id = v_run
              AND x.conditions @> jsonb_build_array(jsonb_build_object('type', 'parent', 'parent', v_rid))
            ORDER BY x.id
        LOOP
            SELECT x.* INTO m FROM hatchet.matches x WHERE x.tenant_id = p_tenant AND x.id = v_match;
            CONTINUE WHEN NOT FOUND;
            v_sat := m.satisfied;
            v_changed := false;
            v_err := NULL;
            FOR c IN SELECT e FROM jsonb_array_elements(m.conditions) e
                     WHERE e->>'type' = 'parent' AND e->>'parent' = v_rid AND e->'on' ? v_outcome
                       AND NOT (m.satisfied ? (e->>'id'))
            LOOP
                IF v_outcome = 'COMPLETED' AND v_output IS NULL THEN
                    v_output := hatchet._task_output(p_tenant, v_task);
                END IF;
                IF coalesce((c->>'skipped')::boolean, false) THEN
                    v_ok := coalesce(v_output->'skipped' = 'true'::jsonb, false);
                ELSIF c ? 'expression' AND v_outcome = 'COMPLETED' THEN
                    IF v_input IS NULL THEN
                        v_input := coalesce((hatchet._run_row(p_tenant, v_run)).input, '{}');
                    END IF;
                    v_cel := hatchet._cel_bool(c->>'expression', jsonb_build_object('input', v_input, 'output', v_output));
                    v_ok := v_cel.ok;
                    v_err := coalesce(v_err, v_cel.error);
                ELSE
                    v_ok := true;
                END IF;
                IF v_ok THEN
                    v_sat := v_sat || jsonb_build_object(c->>'id', jsonb_build_object('parent', v_rid,
                                                                                       'outcome', v_outcome));
                    v_changed := true;
                END IF;
            END LOOP;
            IF v_err IS NOT NULL THEN
                -- A condition that cannot be evaluated fails the task with the reason (and cascades like a failure).
                v_fired := hatchet._fire_match(p_tenant, m.id, 'FAIL', v_err);
            ELSIF v_changed THEN
                v_fired := hatchet._settle_match(p_tenant, m.id, v_sat, m.wake_at);
            ELSE
                CONTINUE;
            END IF;
            IF v_fired.task_id IS NOT NULL THEN
                p_tasks := p_tasks || v_fired.task_id;
                p_runs := p_runs || v_run;
                p_outcomes := p_outcomes || v_fired.outcome;
            END IF;
        END LOOP;
    END LOOP;
END
$$;

-- Called by the task lifecycle (tasks.sql) in the transaction that finishes workflow tasks.
CREATE FUNCTION hatchet._on_tasks_finished(p_tenant uuid, p_task_ids uuid[], p_run_ids uuid[], p_outcome text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run uuid;
BEGIN
    IF p_task_ids IS NULL OR cardinality(p_task_ids) = 0 THEN
        RETURN;
    END IF;
    PERFORM hatchet._advance(p_tenant, p_task_ids, p_run_ids,
                             array_fill(p_outcome, ARRAY[cardinality(p_task_ids)]));
    -- Durable tasks among them wait for nothing any more, and durable tasks waiting for these runs get their results.
    PERFORM hatchet._durable_finished(p_tenant, p_task_ids, p_run_ids);
    -- A run holds its workflow-level concurrency slots (they count runs, not tasks) until its last task is done:
    -- give them back, and admit waiting runs, in this same transaction.
    FOR v_run IN
        SELECT DISTINCT r FROM unnest(p_run_ids) AS r
        WHERE r IS NOT NULL
          AND EXISTS (SELECT 1 FROM hatchet.concurrency_slots s WHERE s.tenant_id = p_tenant AND s.task_id = r)
    LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM hatchet.matches x WHERE x.tenant_id = p_tenant AND x.run_id = v_run);
        CONTINUE WHEN EXISTS (
            SELECT 1 FROM hatchet.tasks t
            WHERE t.tenant_id = p_tenant AND t.run_id = v_run
              AND (EXISTS (SELECT 1 FROM hatchet.ready_queue q WHERE q.tenant_id = p_tenant AND q.task_id = t.id)
                   OR EXISTS (SELECT 1 FROM hatchet.running q WHERE q.tenant_id = p_tenant AND q.task_id = t.id)
                   OR EXISTS (SELECT 1 FROM hatchet.delayed_queue q WHERE q.tenant_id = p_tenant AND q.task_id = t.id)
                   OR EXISTS (SELECT 1 FROM hatchet.concurrency_queue q
                              WHERE q.tenant_id = p_tenant AND q.task_id = t.id)));
        PERFORM hatchet._release_slots(p_tenant, ARRAY[v_run]);
    END LOOP;
    PERFORM hatchet._release_run_keys(p_tenant, p_run_ids);
END
$$;
COMMENT ON FUNCTION hatchet._on_tasks_finished(uuid, uuid[], uuid[], text) IS
    'advance the DAG runs of tasks that just reached COMPLETED, FAILED or CANCELLED (same transaction)';

-- Satisfies the sleep (p_kind 'sleep': until <= p_now) or user-event (p_kind 'event': key and scope match, CEL over
-- the event payload holds) conditions of one match, fires it if it is ready and cascades the outcome. The caller holds
-- the run's lock.
CREATE FUNCTION hatchet._satisfy_match(p_tenant uuid, p_match uuid, p_kind text, p_now timestamptz,
                                       p_key text DEFAULT NULL, p_scope text DEFAULT NULL,
                                       p_payload jsonb DEFAULT NULL, p_metadata jsonb DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m         hatchet.matches;
    c         jsonb;
    v_sat     jsonb;
    v_changed boolean := false;
    v_err     text;
    v_cel     record;
    v_ok      boolean;
    v_wake    timestamptz;
    v_fired   record;
BEGIN
    SELECT x.* INTO m FROM hatchet.matches x WHERE x.tenant_id = p_tenant AND x.id = p_match;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    v_sat := m.satisfied;
    FOR c IN SELECT e FROM jsonb_array_elements(m.conditions) e
             WHERE e->>'type' = p_kind AND NOT (m.satisfied ? (e->>'id'))
               AND CASE p_kind
                       WHEN 'sleep' THEN (e->>'until')::timestamptz <= p_now
                       ELSE e->>'key' = p_key AND (e->>'scope' IS NULL OR e->>'scope' = p_scope)
                   END
    LOOP
        v_ok := true;
        IF p_kind = 'event' AND c ? 'expression' THEN
            v_cel := hatchet._cel_bool(c->>'expression',
                                       jsonb_build_object('input', p_payload, 'additional_metadata', p_metadata));
            v_ok := v_cel.ok;
            v_err := coalesce(v_err, v_cel.error);
        END IF;
        IF v_ok THEN
            v_sat := v_sat || jsonb_build_object(c->>'id', CASE p_kind WHEN 'sleep'
                                                               THEN jsonb_build_object('slept', c->'sleep_for')
                                                               ELSE p_payload END);
            v_changed := true;
        END IF;
    END LOOP;
    IF v_err IS NOT NULL THEN
        v_fired := hatchet._fire_match(p_tenant, m.id, 'FAIL', v_err);
    ELSIF v_changed OR p_kind = 'sleep' THEN
        SELECT min((e->>'until')::timestamptz) INTO v_wake FROM jsonb_array_elements(m.conditions) e
        WHERE e ? 'until' AND NOT (v_sat ? (e->>'id'));
        v_fired := hatchet._settle_match(p_tenant, m.id, v_sat, v_wake);
    ELSE
        RETURN;
    END IF;
    IF v_fired.task_id IS NOT NULL THEN
        PERFORM hatchet._advance(p_tenant, ARRAY[v_fired.task_id], ARRAY[m.run_id], ARRAY[v_fired.outcome]);
    END IF;
END
$$;

-- ---------------------------------------------------------------------------------------------------------------------
-- Creating runs
-- ---------------------------------------------------------------------------------------------------------------------

-- Claims the idempotency key of a new run p_run of a workflow with an idempotency config (Hatchet's
-- ClaimIdempotencyKeys): the key is the config's CEL expression over the run's input and metadata; the run holds it
-- for ttl_ms, or until it finishes when the method is STATUS (hatchet._release_run_keys). A key another run holds
-- refuses the trigger: SQLSTATE 23505, with the id of the holding run as the error's detail. A key expression that
-- fails or gives no string is 22023. Each claim also removes a few expired keys of the tenant, so keys that are never
-- claimed again do not pile up.
CREATE FUNCTION hatchet._claim_run_key(p_tenant uuid, p_config jsonb, p_input jsonb, p_metadata jsonb, p_run uuid)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now    timestamptz := clock_timestamp();
    v_res    jsonb;
    v_key    text;
    v_holder uuid;
BEGIN
    v_res := hatchet.cel_try(p_config->>'expression',
                             jsonb_build_object('input', p_input, 'additional_metadata', p_metadata));
    IF v_res ? 'error' OR jsonb_typeof(v_res->'value') IS DISTINCT FROM 'string' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format('idempotency key expression "%s" failed: %s',
            p_config->>'expression', coalesce(v_res->>'error', 'it must evaluate to a string'))]);
    END IF;
    v_key := v_res->>'value';
    DELETE FROM hatchet.run_idempotency_keys k
    WHERE k.tenant_id = p_tenant AND (k.tenant_id, k.key) IN (
        SELECT x.tenant_id, x.key FROM hatchet.run_idempotency_keys x
        WHERE x.tenant_id = p_tenant AND x.expires_at <= v_now AND x.key <> v_key
        ORDER BY x.expires_at LIMIT 10 FOR UPDATE SKIP LOCKED);
    -- A held key is locked but left alone (the WHERE fails), so RETURNING gives nothing: then it is a collision.
    INSERT INTO hatchet.run_idempotency_keys AS k (tenant_id, key, run_id, expires_at, until_done)
    VALUES (p_tenant, v_key, p_run, v_now + make_interval(secs => (p_config->>'ttl_ms')::bigint / 1000.0),
            p_config->>'method' = 'STATUS')
    ON CONFLICT ON CONSTRAINT run_idempotency_keys_pkey DO UPDATE
    SET run_id = EXCLUDED.run_id, expires_at = EXCLUDED.expires_at, until_done = EXCLUDED.until_done
    WHERE k.expires_at <= v_now
    RETURNING k.run_id INTO v_holder;
    IF v_holder IS NULL THEN
        SELECT k.run_id INTO v_holder FROM hatchet.run_idempotency_keys k
        WHERE k.tenant_id = p_tenant AND k.key = v_key;
        PERFORM hatchet.raise_error('idempotency_collision', ARRAY[v_key, v_holder::text]);
    END IF;
END
$$;

-- Gives back the STATUS-method idempotency keys of the runs among p_runs that have finished (nothing queued, running,
-- waiting or pending), so the next trigger with the key runs at once (Hatchet's ReleaseIdempotencyKeys).
CREATE FUNCTION hatchet._release_run_keys(p_tenant uuid, p_runs uuid[]) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    DELETE FROM hatchet.run_idempotency_keys k
    WHERE k.tenant_id = p_tenant AND k.run_id = ANY (p_runs) AND k.until_done
      AND NOT EXISTS (SELECT 1 FROM hatchet.matches x WHERE x.tenant_id = p_tenant AND x.run_id = k.run_id)
      AND NOT EXISTS (
          SELECT 1 FROM hatchet.tasks t
          WHERE t.tenant_id = p_tenant AND t.run_id = k.run_id AND t.inserted_at >= hatchet.uuid_time(k.run_id)
            AND (EXISTS (SELECT 1 FROM hatchet.ready_queue q WHERE q.tenant_id = p_tenant AND q.task_id = t.id)
                 OR EXISTS (SELECT 1 FROM hatchet.running q WHERE q.tenant_id = p_tenant AND q.task_id = t.id)
                 OR EXISTS (SELECT 1 FROM hatchet.delayed_queue q WHERE q.tenant_id = p_tenant AND q.task_id = t.id)
                 OR EXISTS (SELECT 1 FROM hatchet.concurrency_queue q
                            WHERE q.tenant_id = p_tenant AND q.task_id = t.id)))
$$;

-- Creates a run of a workflow version: the runs row, its root tasks queued, a pending match for every other task.
-- A workflow with an idempotency config first claims the run's key (hatchet._claim_run_key: 23505 while another run
-- holds it).
CREATE FUNCTION hatchet._create_run(
    p_tenant uuid, p_version bigint, p_input jsonb, p_metadata jsonb, p_priority integer, p_triggered_by text,
    p_triggers jsonb DEFAULT NULL, p_parent_task_id uuid DEFAULT NULL, p_child_index integer DEFAULT NULL,
    p_child_key text DEFAULT NULL, p_desired_worker_id uuid DEFAULT NULL, p_desired_labels jsonb DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id     uuid := hatchet.gen_id();
    v_run    hatchet.runs;
    v_def    hatchet.task_definitions;
    v_single boolean;
    v_now    timestamptz := clock_timestamp();
    v_place  jsonb := '{}';
    v_idem   jsonb;
BEGIN
    SELECT v.definition->'idempotency' INTO v_idem
    FROM hatchet.workflow_versions v WHERE v.tenant_id = p_tenant AND v.id = p_version;
    IF v_idem IS NOT NULL THEN
        PERFORM hatchet._claim_run_key(p_tenant, v_idem, p_input, p_metadata, v_id);
    END IF;
    INSERT INTO hatchet.runs (tenant_id, inserted_at, id, workflow_version_id, input, additional_metadata, priority,
                              parent_task_id, child_index, child_key, triggered_by, desired_labels)
    SELECT p_tenant, hatchet.uuid_time(v_id), v_id, p_version, p_input, p_metadata,
           coalesce(p_priority, v.default_priority), p_parent_task_id, p_child_index, p_child_key, p_triggered_by,
           p_desired_labels
    FROM hatchet.workflow_versions v WHERE v.tenant_id = p_tenant AND v.id = p_version
    RETURNING * INTO v_run;
    -- Root tasks go to the worker the trigger asked for (SOFT unless the workflow is HARD sticky); later tasks
    -- decide from the first task when they are queued (_run_placement).
    IF p_desired_worker_id IS NOT NULL THEN
        v_place := jsonb_build_object('desired_worker_id', p_desired_worker_id, 'sticky',
            coalesce((SELECT v.sticky FROM hatchet.workflow_versions v
                      WHERE v.tenant_id = p_tenant AND v.id = p_version), 'SOFT'::hatchet.sticky_strategy));
    END IF;
    -- Worker labels given at trigger time place the tasks that declare none of their own (the root tasks here, the
    -- others through _run_placement).
    IF p_desired_labels IS NOT NULL THEN
        v_place := v_place || jsonb_build_object('desired_labels', p_desired_labels);
    END IF;
    SELECT count(*) = 1 INTO v_single
    FROM hatchet.task_definitions d WHERE d.tenant_id = p_tenant AND d.workflow_version_id = p_version;
    -- Every pending match first, then the root tasks: a root task can end while it is queued (cancelled by a
    -- CANCEL_NEWEST key, failed by a key expression), and its outcome must reach the matches of its children.
    FOR v_def IN
        SELECT d.* FROM hatchet.task_definitions d
        WHERE d.tenant_id = p_tenant AND d.workflow_version_id = p_version
        ORDER BY (NOT d.is_on_failure AND cardinality(d.parents) = 0 AND d.conditions = '{}'), d.id
    LOOP
        IF v_def.is_on_failure THEN
            PERFORM hatchet._insert_match(p_tenant, v_id, v_def.id, NULL,
                                          hatchet._on_failure_conditions(p_tenant, p_version));
        ELSIF cardinality(v_def.parents) > 0 THEN
            PERFORM hatchet._insert_match(p_tenant, v_id, v_def.id, NULL, hatchet._parent_conditions(v_def));
        ELSIF v_def.conditions <> '{}' THEN
            PERFORM hatchet._insert_match(p_tenant, v_id, v_def.id, CASE WHEN v_single THEN v_id END,
                                          hatchet._wait_conditions(v_def, v_now));
        ELSE
            PERFORM hatchet._queue_task(p_tenant, v_run, v_def,
                                        CASE WHEN v_single THEN v_id ELSE hatchet.gen_id() END, p_triggers, v_place);
        END IF;
    END LOOP;
    RETURN v_id;
END
$$;

-- Worker labels given when a run is triggered, as the SDKs send them ({label: {str_value | int_value, comparator,
-- required, weight}}) or as enqueue takes them ({label: {value, ...}}), in the form task definitions keep. NULL or {}
-- is none; anything else that is not such a map is 22023.
CREATE FUNCTION hatchet._trigger_labels(p_labels jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_out jsonb := '{}';
    v_l   record;
BEGIN
    IF p_labels IS NULL OR p_labels = '{}' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(p_labels) <> 'object'
       OR EXISTS (SELECT 1 FROM jsonb_each(p_labels) AS e(k, v) WHERE jsonb_typeof(e.v) <> 'object') THEN
        PERFORM hatchet._placement_option(p_labels, NULL, NULL);  -- refuses it with the expected shape
    END IF;
    FOR v_l IN SELECT e.k, e.v FROM jsonb_each(p_labels) AS e(k, v) LOOP
        v_out := v_out || jsonb_build_object(v_l.k, jsonb_strip_nulls(jsonb_build_object(
            'value', coalesce(v_l.v -> 'int_value', v_l.v -> 'str_value', v_l.v -> 'value'),
            'comparator', upper(coalesce(v_l.v ->> 'comparator', 'EQUAL')),
            'required', coalesce((v_l.v ->> 'required')::boolean, false),
            'weight', coalesce((v_l.v ->> 'weight')::integer, 100))));
    END LOOP;
    PERFORM hatchet._placement_option(v_out, NULL, NULL);
    RETURN v_out;
END
$$;

CREATE FUNCTION hatchet.run_workflow(
    name                text,
    input               jsonb   DEFAULT '{}',
    additional_metadata jsonb   DEFAULT '{}',
    priority            integer DEFAULT NULL,
    tenant_id           uuid    DEFAULT NULL,
    parent_task_id      uuid    DEFAULT NULL,
    child_index         integer DEFAULT NULL,
    child_key           text    DEFAULT NULL,
    desired_worker_id   uuid    DEFAULT NULL,
    desired_worker_labels jsonb DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(run_workflow.tenant_id);
    v_wf     record;
    v_id     uuid;
    v_labels jsonb := hatchet._trigger_labels(run_workflow.desired_worker_labels);
BEGIN
    PERFORM hatchet._check_run_options(run_workflow.input, run_workflow.additional_metadata, run_workflow.priority);
    v_wf := hatchet._latest_version(p_tenant, run_workflow.name);
    IF run_workflow.desired_worker_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM hatchet.workers w WHERE w.tenant_id = p_tenant AND w.id = run_workflow.desired_worker_id) THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['worker', run_workflow.desired_worker_id::text]);
    END IF;

    -- A child run spawned again by a retry of its parent (same parent task and child index or key) is the same run.
    IF run_workflow.parent_task_id IS NOT NULL
       AND (run_workflow.child_key IS NOT NULL OR run_workflow.child_index IS NOT NULL) THEN
        PERFORM pg_advisory_xact_lock(1212240963, hashtext(run_workflow.parent_task_id::text));
        SELECT r.id INTO v_id FROM hatchet.runs r
        WHERE r.tenant_id = p_tenant AND r.parent_task_id = run_workflow.parent_task_id
          AND r.inserted_at >= hatchet.uuid_time(run_workflow.parent_task_id)
          AND CASE WHEN run_workflow.child_key IS NOT NULL THEN r.child_key = run_workflow.child_key
                   ELSE r.child_key IS NULL AND r.child_index = run_workflow.child_index END
        ORDER BY r.inserted_at LIMIT 1;
        IF FOUND THEN
            RETURN v_id;
        END IF;
    END IF;

    RETURN hatchet._create_run(p_tenant, v_wf.version_id, run_workflow.input, run_workflow.additional_metadata,
                               run_workflow.priority, 'manual', NULL, run_workflow.parent_task_id,
                               run_workflow.child_index, run_workflow.child_key, run_workflow.desired_worker_id,
                               v_labels);
END
$$;
COMMENT ON FUNCTION hatchet.run_workflow(text, jsonb, jsonb, integer, uuid, uuid, integer, text, uuid, jsonb) IS
    'run the latest version of a workflow: root tasks are queued (on desired_worker_id if given, on workers matching desired_worker_labels if given and the task declares none), the others wait for their parents and follow the workflow''s sticky strategy; returns the run id';

-- ---------------------------------------------------------------------------------------------------------------------
-- Cancel, replay, status and timeline
-- ---------------------------------------------------------------------------------------------------------------------

CREATE FUNCTION hatchet._count_cancelled(p_tenant uuid, p_run uuid) RETURNS integer
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT count(*)::integer FROM hatchet.tasks t
    WHERE t.tenant_id = p_tenant AND t.run_id = p_run AND t.inserted_at >= hatchet.uuid_time(p_run)
      AND (hatchet._task_outcome(p_tenant, t.id)).event_type = 'CANCELLED'
$$;

-- Cancels everything of a run that has not finished: queued and running tasks (hatchet.cancel), then tasks still
-- waiting for conditions. Returns how many tasks it cancelled, including those cancelled by the cascade.
CREATE FUNCTION hatchet.cancel_run(run_id uuid, tenant_id uuid DEFAULT NULL, reason text DEFAULT 'run cancelled by user')
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(cancel_run.tenant_id);
    p_run    uuid := cancel_run.run_id;
    v_task   uuid;
    v_match  uuid;
    v_fired  record;
    n        integer;
BEGIN
    IF p_run IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['run_id']);
    END IF;
    IF hatchet._run_row(p_tenant, p_run) IS NULL
       AND NOT EXISTS (SELECT 1 FROM hatchet.tasks t WHERE t.tenant_id = p_tenant AND t.run_id = p_run
                                                       AND t.inserted_at >= hatchet.uuid_time(p_run)) THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['run', p_run::text]);
    END IF;
    -- Lock order: the run's in-flight rows first, then the run (as complete and fail do), so a worker completing one
    -- of these tasks right now waits for us instead of deadlocking with us; its result is then stale.
    PERFORM 1 FROM hatchet.running r
    WHERE r.tenant_id = p_tenant AND (r.run_id = p_run OR r.task_id = p_run) FOR UPDATE;
    PERFORM 1 FROM hatchet.ready_queue r
    WHERE r.tenant_id = p_tenant AND (r.run_id = p_run OR r.task_id = p_run) FOR UPDATE;
    PERFORM 1 FROM hatchet.delayed_queue r
    WHERE r.tenant_id = p_tenant AND (r.run_id = p_run OR r.task_id = p_run) FOR UPDATE;
    PERFORM hatchet._lock_runs(ARRAY[p_run]);
    n := -hatchet._count_cancelled(p_tenant, p_run);
    FOR v_task IN
        SELECT t.id FROM hatchet.tasks t
        WHERE t.tenant_id = p_tenant AND t.run_id = p_run AND t.inserted_at >= hatchet.uuid_time(p_run)
          AND (SELECT s.state FROM hatchet._task_state(p_tenant, t.id) s) IN ('QUEUED', 'RUNNING')
        ORDER BY t.id
    LOOP
        PERFORM hatchet.cancel(v_task, p_tenant, cancel_run.reason);
    END LOOP;
    FOR v_match IN SELECT x.id FROM hatchet.matches x WHERE x.tenant_id = p_tenant AND x.run_id = p_run ORDER BY x.id
    LOOP
        v_fired := hatchet._fire_match(p_tenant, v_match, 'CANCEL', cancel_run.reason);
        IF v_fired.task_id IS NOT NULL THEN
            PERFORM hatchet._advance(p_tenant, ARRAY[v_fired.task_id], ARRAY[p_run], ARRAY[v_fired.outcome]);
        END IF;
    END LOOP;
    PERFORM hatchet._release_run_keys(p_tenant, ARRAY[p_run]);
    RETURN n + hatchet._count_cancelled(p_tenant, p_run);
END
$$;
COMMENT ON FUNCTION hatchet.cancel_run(uuid, uuid, text) IS
    'cancel every unfinished task of a run (queued, running or waiting); returns how many were cancelled';

-- The status of a run, aggregated from its tasks (a task enqueued on its own is a run of one task):
--   * every task finished and nothing pending: FAILED if any failed, else CANCELLED if any was cancelled, else
--     COMPLETED (a skipped task counts as completed);
--   * otherwise RUNNING once any task has started or finished, QUEUED before that.
-- Replays finished tasks and runs (Hatchet's ReplayTasks). A run id replays the whole run; a task id of a DAG run
-- replays that task and every task downstream of it (they wait for it again, and see its new output); a task
-- enqueued on its own gets a new attempt. Runs and tasks that are still queued or running are left alone, as in
-- Hatchet. All ids are resolved before anything changes, so an unknown id (42704) changes nothing. Returns the tasks
-- that got a new attempt now (downstream tasks get theirs when their parents finish).
CREATE FUNCTION hatchet.replay_tasks(task_or_run_ids uuid[], tenant_id uuid DEFAULT NULL)
RETURNS TABLE (task_id uuid, run_id uuid, retry_count integer)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant  uuid := hatchet._tenant(replay_tasks.tenant_id);
    v_id      uuid;
    v_plan    jsonb := '{}';
    v_key     text;
    v_val     jsonb;
    v_rid     uuid;
    v_run     hatchet.runs;
    v_task    record;
    v_sel     text[];
    v_direct  text[];
    v_desc    text[];
    v_def     hatchet.task_definitions;
    v_existing uuid;
    v_out_ids uuid[];
    v_out_res text[];
BEGIN
    IF replay_tasks.task_or_run_ids IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['task_or_run_ids']);
    END IF;
    IF array_position(replay_tasks.task_or_run_ids, NULL) IS NOT NULL THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['task_or_run_ids must not contain NULL']);
    END IF;
    -- Resolve: {run id: ["*"] for the whole run (or a task enqueued on its own), or the readable ids chosen}.
    FOREACH v_id IN ARRAY replay_tasks.task_or_run_ids LOOP
        IF (hatchet._run_row(p_tenant, v_id)).id IS NOT NULL THEN
            v_plan := v_plan || jsonb_build_object(v_id::text, '["*"]'::jsonb);
            CONTINUE;
        END IF;
        SELECT t.id, t.run_id, t.readable_id INTO v_task FROM hatchet.tasks t
        WHERE t.tenant_id = p_tenant AND t.inserted_at = hatchet.uuid_time(v_id) AND t.id = v_id;
        IF NOT FOUND THEN
            PERFORM hatchet.raise_error('unknown_object', ARRAY['task or run', v_id::text]);
        END IF;
        IF v_task.run_id = v_task.id OR v_task.readable_id IS NULL THEN
            v_plan := v_plan || jsonb_build_object(v_task.run_id::text, '["*"]'::jsonb);
        ELSIF NOT coalesce(v_plan -> (v_task.run_id::text) ? '*', false) THEN
            v_plan := v_plan || jsonb_build_object(v_task.run_id::text,
                coalesce(v_plan -> (v_task.run_id::text), '[]') || to_jsonb(v_task.readable_id));
        END IF;
    END LOOP;

    -- One replay at a time per tenant (Hatchet does the same), then the runs' locks in key order.
    PERFORM pg_advisory_xact_lock(1212240963, hashtext('replay:' || p_tenant::text));
    PERFORM hatchet._lock_runs(ARRAY(SELECT k::uuid FROM jsonb_object_keys(v_plan) k));

    FOR v_key, v_val IN SELECT e.key, e.value FROM jsonb_each(v_plan) e ORDER BY e.key LOOP
        v_rid := v_key::uuid;
        v_run := hatchet._run_row(p_tenant, v_rid);
        IF v_run.id IS NULL THEN
            -- A task enqueued on its own.
            CONTINUE WHEN (hatchet._task_state(p_tenant, v_rid)).state NOT IN ('COMPLETED', 'FAILED', 'CANCELLED');
            task_id := v_rid;
            run_id := v_rid;
            retry_count := hatchet._replay_attempt(p_tenant, v_rid);
            RETURN NEXT;
            CONTINUE;
        END IF;
        CONTINUE WHEN hatchet.run_status(v_rid, p_tenant) NOT IN ('COMPLETED', 'FAILED', 'CANCELLED');

        IF v_val ? '*' THEN
            v_sel := ARRAY(SELECT d.readable_id FROM hatchet.task_definitions d
                           WHERE d.tenant_id = p_tenant AND d.workflow_version_id = v_run.workflow_version_id
                             AND NOT d.is_on_failure);
        ELSE
            v_sel := ARRAY(SELECT jsonb_array_elements_text(v_val));
        END IF;
        -- Everything strictly downstream of the chosen tasks waits for its parents again; the chosen tasks that are
        -- not downstream of another chosen one start now. The on_failure task is decided again at the end.
        WITH RECURSIVE down(rid) AS (
            SELECT c.readable_id FROM hatchet.task_definitions c
            WHERE c.tenant_id = p_tenant AND c.workflow_version_id = v_run.workflow_version_id
              AND c.parents && v_sel
            UNION
            SELECT c.readable_id FROM hatchet.task_definitions c JOIN down ON down.rid = ANY (c.parents)
            WHERE c.tenant_id = p_tenant AND c.workflow_version_id = v_run.workflow_version_id
        )
        SELECT coalesce(array_agg(rid), '{}') INTO v_desc FROM down;
        v_desc := v_desc || ARRAY(SELECT d.readable_id FROM hatchet.task_definitions d
                                  WHERE d.tenant_id = p_tenant AND d.workflow_version_id = v_run.workflow_version_id
                                    AND d.is_on_failure AND NOT d.readable_id = ANY (v_desc));
        v_direct := ARRAY(SELECT x FROM unnest(v_sel) x WHERE NOT x = ANY (v_desc));

        FOR v_def IN
            SELECT d.* FROM hatchet.task_definitions d
            WHERE d.tenant_id = p_tenant AND d.workflow_version_id = v_run.workflow_version_id
              AND d.readable_id = ANY (v_desc)
            ORDER BY d.id
        LOOP
            SELECT t.id INTO v_existing FROM hatchet.tasks t
            WHERE t.tenant_id = p_tenant AND t.run_id = v_rid AND t.inserted_at >= v_run.inserted_at
              AND t.readable_id = v_def.readable_id
            ORDER BY t.inserted_at DESC LIMIT 1;
            PERFORM hatchet._insert_match(p_tenant, v_rid, v_def.id, v_existing,
                CASE WHEN v_def.is_on_failure THEN hatchet._on_failure_conditions(p_tenant, v_run.workflow_version_id)
                     ELSE hatchet._parent_conditions(v_def) END);
        END LOOP;
        -- Tasks that are not replayed keep their outcome: apply it to the re-armed conditions.
        SELECT array_agg(t.id ORDER BY t.id),
               array_agg(CASE o.event_type WHEN 'SKIPPED' THEN 'COMPLETED' ELSE o.event_type END ORDER BY t.id)
        INTO v_out_ids, v_out_res
        FROM hatchet.tasks t CROSS JOIN LATERAL hatchet._task_outcome(p_tenant, t.id) o
        WHERE t.tenant_id = p_tenant AND t.run_id = v_rid AND t.inserted_at >= v_run.inserted_at
          AND NOT (t.readable_id = ANY (v_direct || v_desc)) AND o.event_type IS NOT NULL;
        IF v_out_ids IS NOT NULL THEN
            PERFORM hatchet._advance(p_tenant, v_out_ids, array_fill(v_rid, ARRAY[cardinality(v_out_ids)]), v_out_res);
        END IF;
        FOR v_task IN
            SELECT t.id FROM hatchet.tasks t
            WHERE t.tenant_id = p_tenant AND t.run_id = v_rid AND t.inserted_at >= v_run.inserted_at
              AND t.readable_id = ANY (v_direct)
            ORDER BY t.id
        LOOP
            task_id := v_task.id;
            run_id := v_rid;
            retry_count := hatchet._replay_attempt(p_tenant, v_task.id);
            RETURN NEXT;
        END LOOP;
    END LOOP;
END
$$;
COMMENT ON FUNCTION hatchet.replay_tasks(uuid[], uuid) IS
    'replay finished runs or tasks: a new attempt of each, and of everything downstream of a replayed DAG task; returns the tasks re-queued now';

CREATE FUNCTION hatchet.run_status(run_id uuid, tenant_id uuid DEFAULT NULL) RETURNS text
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(run_status.tenant_id);
    p_run    uuid := run_status.run_id;
    v        record;
    v_pending boolean;
BEGIN
    IF p_run IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['run_id']);
    END IF;
    SELECT count(*) AS n,
           count(*) FILTER (WHERE s.state = 'QUEUED') AS queued,
           count(*) FILTER (WHERE s.state = 'FAILED') AS failed,
           count(*) FILTER (WHERE s.state = 'CANCELLED') AS cancelled
    INTO v
    FROM hatchet.tasks t CROSS JOIN LATERAL hatchet._task_state(p_tenant, t.id) s
    WHERE t.tenant_id = p_tenant AND t.run_id = p_run AND t.inserted_at >= hatchet.uuid_time(p_run);
    v_pending := EXISTS (SELECT 1 FROM hatchet.matches x WHERE x.tenant_id = p_tenant AND x.run_id = p_run);
    IF v.n = 0 AND NOT v_pending AND hatchet._run_row(p_tenant, p_run) IS NULL THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['run', p_run::text]);
    END IF;
    IF v_pending OR v.queued > 0 OR EXISTS (
        SELECT 1 FROM hatchet.tasks t CROSS JOIN LATERAL hatchet._task_state(p_tenant, t.id) s
        WHERE t.tenant_id = p_tenant AND t.run_id = p_run AND t.inserted_at >= hatchet.uuid_time(p_run)
          AND s.state = 'RUNNING') THEN
        RETURN CASE WHEN v.n > v.queued THEN 'RUNNING' ELSE 'QUEUED' END;
    END IF;
    RETURN CASE WHEN v.failed > 0 THEN 'FAILED' WHEN v.cancelled > 0 THEN 'CANCELLED' ELSE 'COMPLETED' END;
END
$$;
COMMENT ON FUNCTION hatchet.run_status(uuid, uuid) IS
    'QUEUED, RUNNING, COMPLETED, FAILED or CANCELLED, aggregated from the run''s tasks';

-- Statement trigger on hatchet.task_events: the first time a task of a workflow run ends COMPLETED (or SKIPPED),
-- FAILED or CANCELLED, the run gets that outcome's row in hatchet.run_outcomes, the dashboard's index of runs by final
-- status. One set-based statement per inserting statement (a batch of completions is one call, not one per event):
-- a row trigger cost 22 % more instructions per task on the SQL drain, this one 2.4 % (bench/security_cost.py's
-- method). A task enqueued on its own (no task definition) has no runs row and no dashboard entry: nothing written;
-- in a tenant with no runs at all its batch costs a probe of runs, in a tenant with runs one primary-key probe of
-- tasks per event. A later task of the run with the same outcome finds the row and writes nothing, so
-- a workflow run writes one row per outcome its tasks reach (two tasks of one run in one statement: DISTINCT). Not
-- deferred to commit and not checking whether the run is finished: which rows exist depends only on the events,
-- never on which of two transactions finishing the run's last tasks commits first.
CREATE FUNCTION hatchet._note_run_outcomes() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- A tenant without any runs row has no outcome to note (the EXISTS on runs below would fail for each of its
    -- events), so a statement whose final events all belong to such tenants, e.g. every completion batch of a plain
    -- SQL queue, returns here after one runs probe per tenant instead of probing tasks once per event: 160.6k -> 142.4k
    -- instructions per task on the SQL drain (bench/results/2026-12-04-storage-model). Exact, not a heuristic: the
    -- statement below would insert nothing, under the same snapshot. (A statement of RETRYING or REASSIGNED events
    -- only has no final event: it returns here too.)
    IF NOT EXISTS (SELECT 1 FROM (SELECT DISTINCT e.tenant_id FROM new_events e
                                  WHERE e.event_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'SKIPPED')) n
                   WHERE EXISTS (SELECT 1 FROM hatchet.runs r WHERE r.tenant_id = n.tenant_id OFFSET 0)) THEN
        RETURN NULL;
    END IF;
    -- Each finished workflow task probes its run and its outcome row by key (OFFSET 0 keeps the two subqueries as
    -- per-row probes). Without it, the planner turned the run's EXISTS into a semi-join that hashed every run of the
    -- partition against the statement's events: a completion batch of 100 DAG tasks read 100 x 1,000 rows with 1,000
    -- runs in history, and the SQL DAG drain spent three quarters of its time here.
    INSERT INTO hatchet.run_outcomes (tenant_id, outcome, run_inserted_at, run_id)
    SELECT DISTINCT t.tenant_id, o.outcome, hatchet.uuid_time(t.run_id), t.run_id
    FROM (SELECT e.tenant_id, e.task_inserted_at, e.task_id,
                 (CASE e.event_type WHEN 'SKIPPED' THEN 'COMPLETED' ELSE e.event_type::text END)::hatchet.readable_status
                     AS outcome
          FROM new_events e
          WHERE e.event_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'SKIPPED')) o
    JOIN hatchet.tasks t ON t.tenant_id = o.tenant_id AND t.inserted_at = o.task_inserted_at AND t.id = o.task_id
    WHERE t.task_definition_id IS NOT NULL
      -- (a run past retention whose later task still finishes has no partition to note it in, and no list entry)
      AND EXISTS (SELECT 1 FROM hatchet.runs r
                  WHERE r.tenant_id = t.tenant_id AND r.inserted_at = hatchet.uuid_time(t.run_id) AND r.id = t.run_id
                  OFFSET 0)
      AND NOT EXISTS (SELECT 1 FROM hatchet.run_outcomes x
                      WHERE x.tenant_id = t.tenant_id AND x.outcome = o.outcome
                        AND x.run_inserted_at = hatchet.uuid_time(t.run_id) AND x.run_id = t.run_id
                      OFFSET 0);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION hatchet._note_run_outcomes() IS
    'trigger: tasks of workflow runs reached final outcomes; note them in hatchet.run_outcomes (once per outcome)';
CREATE TRIGGER task_events_run_outcomes AFTER INSERT ON hatchet.task_events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION hatchet._note_run_outcomes();

-- The tasks of a run: created ones with their status (SKIPPED shown as such), output and error, and the ones still
-- waiting for parents or conditions as PENDING (task_id NULL until they are created, except a single-task run's).
CREATE FUNCTION hatchet.run_tasks(run_id uuid, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (task_id uuid, readable_id text, status text, retry_count integer, output jsonb, error text,
               queue text, created_at timestamptz, evicted boolean)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(run_tasks.tenant_id);
    p_run    uuid := run_tasks.run_id;
BEGIN
    IF p_run IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['run_id']);
    END IF;
    PERFORM hatchet.run_status(p_run, p_tenant);  -- raises for an unknown run
    RETURN QUERY
    SELECT t.id, t.readable_id,
           CASE WHEN s.state NOT IN ('QUEUED', 'RUNNING')
                     AND EXISTS (SELECT 1 FROM hatchet.matches x  -- re-armed by a replay: waits for its parents
                                 WHERE x.tenant_id = p_tenant AND x.run_id = p_run AND x.task_id = t.id) THEN 'PENDING'
                WHEN o.event_type = 'SKIPPED' AND s.state = 'COMPLETED' THEN 'SKIPPED' ELSE s.state END,
           coalesce(s.current, o.retry_count, 0),
           CASE WHEN s.state = 'COMPLETED' THEN hatchet._task_output(p_tenant, t.id) END,
           CASE WHEN s.state IN ('FAILED', 'CANCELLED') THEN o.reason END,
           t.queue, t.inserted_at,
           EXISTS (SELECT 1 FROM hatchet.delayed_queue d
                   WHERE d.tenant_id = p_tenant AND d.task_id = t.id AND d.reason = 'evicted')
    FROM hatchet.tasks t
    CROSS JOIN LATERAL hatchet._task_state(p_tenant, t.id) s
    LEFT JOIN LATERAL hatchet._task_outcome(p_tenant, t.id) o ON true
    WHERE t.tenant_id = p_tenant AND t.run_id = p_run AND t.inserted_at >= hatchet.uuid_time(p_run)
    UNION ALL
    SELECT CASE WHEN x.task_id = x.run_id THEN x.task_id END, d.readable_id, 'PENDING', 0, NULL::jsonb, NULL::text,
           d.action, x.created_at, false
    FROM hatchet.matches x
    JOIN hatchet.task_definitions d ON d.tenant_id = x.tenant_id AND d.id = x.task_definition_id
    WHERE x.tenant_id = p_tenant AND x.run_id = p_run
      AND NOT EXISTS (SELECT 1 FROM hatchet.tasks t
                      WHERE t.tenant_id = p_tenant AND t.inserted_at = hatchet.uuid_time(x.task_id) AND t.id = x.task_id);
END
$$;
COMMENT ON FUNCTION hatchet.run_tasks(uuid, uuid) IS
    'the tasks of a run with status (PENDING while waiting for parents or conditions; an evicted durable task is '
    'RUNNING with evicted true), output and error';

-- The timeline of a run: every event of every task, in time order.
CREATE FUNCTION hatchet.run_events(run_id uuid, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (readable_id text, task_id uuid, event_type text, created_at timestamptz, retry_count integer,
               reason text, worker text)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(run_events.tenant_id);
    p_run    uuid := run_events.run_id;
BEGIN
    PERFORM hatchet.run_status(p_run, p_tenant);  -- raises for an unknown run
    RETURN QUERY
    SELECT t.readable_id, t.id, e.event_type, e.created_at, e.retry_count, e.reason, e.worker
    FROM hatchet.tasks t
    CROSS JOIN LATERAL hatchet.task_events(t.id, p_tenant) e
    WHERE t.tenant_id = p_tenant AND t.run_id = p_run AND t.inserted_at >= hatchet.uuid_time(p_run)
    ORDER BY e.created_at, t.readable_id;
END
$$;
COMMENT ON FUNCTION hatchet.run_events(uuid, uuid) IS 'the timeline of a run: each task event with time and reason';

-- ---------------------------------------------------------------------------------------------------------------------
-- Reads
-- ---------------------------------------------------------------------------------------------------------------------

-- The columns every run read returns, for a set of run rows (an internal building block of run and list_runs).
CREATE FUNCTION hatchet._run_view(p_tenant uuid, p_run hatchet.runs)
RETURNS TABLE (id uuid, status text, input jsonb, additional_metadata jsonb, created_at timestamptz,
               workflow_name text, workflow_id uuid, workflow_version_id uuid, parent_task_id uuid,
               triggered_by text, children bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT p_run.id, hatchet.run_status(p_run.id, p_tenant), p_run.input, p_run.additional_metadata, p_run.inserted_at,
           w.name, w.external_id, v.external_id, p_run.parent_task_id, p_run.triggered_by,
           (SELECT count(*) FROM hatchet.runs c
            WHERE c.tenant_id = p_tenant AND c.parent_task_id IN
                  (SELECT t.id FROM hatchet.tasks t
                   WHERE t.tenant_id = p_tenant AND t.run_id = p_run.id AND t.inserted_at >= p_run.inserted_at))
    -- (outer joins: a run of a deleted workflow (hatchet.delete_workflow) is still a run, with NULL workflow columns)
    FROM (SELECT) AS one
    LEFT JOIN hatchet.workflow_versions v ON v.tenant_id = p_tenant AND v.id = p_run.workflow_version_id
    LEFT JOIN hatchet.workflows w ON w.tenant_id = v.tenant_id AND w.id = v.workflow_id;
END
$$;

-- One run with its status, workflow and how many runs its tasks spawned. A task enqueued on its own (hatchet.enqueue)
-- is its own run: it is returned too, with NULL workflow columns. No row if there is no such run.
CREATE FUNCTION hatchet.run(run_id uuid, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (id uuid, status text, input jsonb, additional_metadata jsonb, created_at timestamptz,
               workflow_name text, workflow_id uuid, workflow_version_id uuid, parent_task_id uuid,
               triggered_by text, children bigint)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(run.tenant_id);
    v_run    hatchet.runs;
BEGIN
    IF run.run_id IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['run_id']);
    END IF;
    v_run := hatchet._run_row(p_tenant, run.run_id);
    IF v_run.id IS NOT NULL THEN
        RETURN QUERY SELECT * FROM hatchet._run_view(p_tenant, v_run);
        RETURN;
    END IF;
    RETURN QUERY
    SELECT t.id, hatchet.task_status(t.id, p_tenant), t.input, t.additional_metadata, t.inserted_at,
           NULL::text, NULL::uuid, NULL::uuid, NULL::uuid, 'manual'::text, 0::bigint
    FROM hatchet.tasks t
    WHERE t.tenant_id = p_tenant AND t.inserted_at = hatchet.uuid_time(run.run_id) AND t.id = run.run_id
      AND t.run_id = t.id;
END
$$;
COMMENT ON FUNCTION hatchet.run(uuid, uuid) IS
    'one run (or a task enqueued on its own) with status, workflow and number of spawned child runs; no row if unknown';

-- The shape of a run (Hatchet's WorkflowRunShapeItem): one row per task the run has created, with a step id for its
-- task definition and the step ids of the tasks that list it as a parent. Step ids are stable per workflow version
-- and readable id (an md5 of both, as a uuid), since task definitions have bigint keys.
CREATE FUNCTION hatchet.run_shape(run_id uuid, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (task_id uuid, readable_id text, step_id uuid, children_step_ids uuid[])
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH r AS (
        SELECT x.tenant_id, x.id, v.external_id AS version
        FROM hatchet.runs x
        JOIN hatchet.workflow_versions v ON v.tenant_id = x.tenant_id AND v.id = x.workflow_version_id
        WHERE x.tenant_id = hatchet._tenant(run_shape.tenant_id)
          AND x.inserted_at = hatchet.uuid_time(run_shape.run_id) AND x.id = run_shape.run_id
    ), defs AS (
        SELECT d.readable_id, d.parents, md5(r.version::text || ':' || d.readable_id)::uuid AS step_id
        FROM r JOIN hatchet.task_definitions d ON d.tenant_id = r.tenant_id
        JOIN hatchet.workflow_versions v ON v.tenant_id = d.tenant_id AND v.id = d.workflow_version_id
        WHERE v.external_id = r.version
    )
    SELECT t.id, t.readable_id, p.step_id,
           ARRAY(SELECT c.step_id FROM defs c WHERE p.readable_id = ANY (c.parents) ORDER BY c.readable_id)
    FROM r
    JOIN hatchet.tasks t ON t.tenant_id = r.tenant_id AND t.run_id = r.id AND t.inserted_at >= hatchet.uuid_time(r.id)
    JOIN defs p ON p.readable_id = t.readable_id
    ORDER BY t.inserted_at, t.id
$$;
COMMENT ON FUNCTION hatchet.run_shape(uuid, uuid) IS
    'the created tasks of a run with stable step ids and the step ids of their children (Hatchet''s run shape)';

-- Workflow runs matching a filter, newest first, one page of them, each with the number of runs matching in all.
-- Bounded work: matches are counted up to 10,000 (a total of 10,001 means "more than 10,000") and never evaluated past
-- that or past the page, so a list costs the same with a million runs in history. Pages go by "offset" or, cheaper
-- and stable while runs arrive, by keyset: "before" is the last id of the previous page. Inputs are returned only
-- when include_payloads is true, and then the page's inputs must fit in 16 MiB (54000 otherwise: ask for fewer rows).
CREATE FUNCTION hatchet.list_runs(
    since            timestamptz DEFAULT NULL,
    until            timestamptz DEFAULT NULL,
    workflow_ids     uuid[]      DEFAULT NULL,
    metadata         jsonb       DEFAULT NULL,
    parent_task      uuid        DEFAULT NULL,
    statuses         text[]      DEFAULT NULL,
    worker_id        uuid        DEFAULT NULL,
    event_id         uuid        DEFAULT NULL,
    "limit"          integer     DEFAULT 50,
    "offset"         integer     DEFAULT 0,
    tenant_id        uuid        DEFAULT NULL,
    before           uuid        DEFAULT NULL,
    include_payloads boolean     DEFAULT false
)
RETURNS TABLE (id uuid, status text, input jsonb, additional_metadata jsonb, created_at timestamptz,
               workflow_name text, workflow_id uuid, workflow_version_id uuid, parent_task_id uuid,
               triggered_by text, children bigint, total bigint)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant  uuid := hatchet._tenant(list_runs.tenant_id);
    c_count   constant integer := 10000;  -- matches counted at most (plus one, to say "more")
    v_bad     text;
BEGIN
    PERFORM hatchet._check_page(list_runs."limit", list_runs."offset");
    SELECT s INTO v_bad FROM unnest(list_runs.statuses) s
    WHERE s IS NULL OR s NOT IN ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED') LIMIT 1;
    IF FOUND THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format(
            'statuses must be QUEUED, RUNNING, COMPLETED, FAILED or CANCELLED, not %s', coalesce(v_bad, 'null'))]);
    END IF;
    IF list_runs.metadata IS NOT NULL AND jsonb_typeof(list_runs.metadata) <> 'object' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['metadata must be a JSON object']);
    END IF;
    IF list_runs.include_payloads IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['include_payloads']);
    END IF;
    RETURN QUERY
    WITH matched AS MATERIALIZED (
        SELECT r
        FROM hatchet.runs r
        WHERE r.tenant_id = p_tenant
          AND r.inserted_at >= coalesce(list_runs.since, '-infinity')
          AND r.inserted_at <= coalesce(list_runs.until, 'infinity')
          AND (list_runs.before IS NULL
               OR (r.inserted_at, r.id) < (hatchet.uuid_time(list_runs.before), list_runs.before))
          AND (list_runs.workflow_ids IS NULL OR EXISTS (
                  SELECT 1 FROM hatchet.workflow_versions wv
                  JOIN hatchet.workflows w ON w.tenant_id = wv.tenant_id AND w.id = wv.workflow_id
                  WHERE wv.tenant_id = r.tenant_id AND wv.id = r.workflow_version_id
                    AND w.external_id = ANY (list_runs.workflow_ids)))
          AND (list_runs.metadata IS NULL OR r.additional_metadata @> list_runs.metadata)
          AND (list_runs.parent_task IS NULL OR r.parent_task_id = list_runs.parent_task)
          AND (list_runs.event_id IS NULL OR r.additional_metadata ->> 'hatchet__event_id' = list_runs.event_id::text)
          AND (list_runs.statuses IS NULL OR hatchet.run_status(r.id, p_tenant) = ANY (list_runs.statuses))
          AND (list_runs.worker_id IS NULL OR EXISTS (
                  SELECT 1 FROM hatchet.tasks t CROSS JOIN LATERAL hatchet.task_events(t.id, p_tenant) e
                  WHERE t.tenant_id = r.tenant_id AND t.run_id = r.id AND t.inserted_at >= r.inserted_at
                    AND e.event_type = 'ASSIGNED' AND e.worker = list_runs.worker_id::text))
        ORDER BY r.inserted_at DESC, r.id DESC
        LIMIT greatest(c_count + 1, list_runs."offset" + list_runs."limit")
    ), page AS (
        SELECT m.r FROM matched m
        ORDER BY (m.r).inserted_at DESC, (m.r).id DESC
        LIMIT list_runs."limit" OFFSET list_runs."offset"
    ), sized AS (
        SELECT p.r, sum(octet_length((p.r).input::text)) OVER () AS bytes FROM page p
    )
    SELECT v.id, v.status, CASE WHEN list_runs.include_payloads THEN v.input END, v.additional_metadata,
           v.created_at, v.workflow_name, v.workflow_id, v.workflow_version_id, v.parent_task_id, v.triggered_by,
           v.children, (SELECT least(count(*), c_count + 1) FROM matched)
    FROM sized c CROSS JOIN LATERAL hatchet._run_view(p_tenant, c.r) v
    WHERE NOT list_runs.include_payloads OR hatchet._page_fits('inputs', c.bytes)
    ORDER BY v.created_at DESC, v.id DESC;
END
$$;
COMMENT ON FUNCTION hatchet.list_runs(timestamptz, timestamptz, uuid[], jsonb, uuid, text[], uuid, uuid, integer,
                                      integer, uuid, uuid, boolean) IS
    'workflow runs matching a filter, newest first, one page (by offset or keyset), with the number of matches counted '
    'up to 10,000; inputs only when include_payloads';

-- How many runs each task of a run spawned (tasks that spawned none are absent).
CREATE FUNCTION hatchet.run_children(run_id uuid, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (task_id uuid, children bigint)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(run_children.tenant_id);
BEGIN
    IF run_children.run_id IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['run_id']);
    END IF;
    RETURN QUERY
    SELECT c.parent_task_id, count(*)
    FROM hatchet.runs c
    WHERE c.tenant_id = p_tenant AND c.parent_task_id IN
          (SELECT t.id FROM hatchet.tasks t WHERE t.tenant_id = p_tenant AND t.run_id = run_children.run_id
             AND t.inserted_at >= hatchet.uuid_time(run_children.run_id))
    GROUP BY c.parent_task_id
    ORDER BY c.parent_task_id;
END
$$;
COMMENT ON FUNCTION hatchet.run_children(uuid, uuid) IS 'how many child runs each task of a run spawned';

-- The finished runs among run_ids (COMPLETED, FAILED or CANCELLED), one row per created task with its status, output
-- and error: what SubscribeToWorkflowRuns sends. Unknown, unfinished and NULL ids are left out.
CREATE FUNCTION hatchet.finished_runs(run_ids uuid[], tenant_id uuid DEFAULT NULL)
RETURNS TABLE (run_id uuid, run_status text, task_id uuid, readable_id text, status text, retry_count integer,
               output jsonb, error text, queue text, created_at timestamptz)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(finished_runs.tenant_id);
    v_run    uuid;
    v_status text;
BEGIN
    IF finished_runs.run_ids IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['run_ids']);
    END IF;
    IF cardinality(finished_runs.run_ids) > 10000 THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format('at most 10000 run ids at once, not %s',
                                                                     cardinality(finished_runs.run_ids))]);
    END IF;
    FOR v_run IN SELECT DISTINCT r FROM unnest(finished_runs.run_ids) r WHERE r IS NOT NULL ORDER BY 1 LOOP
        CONTINUE WHEN hatchet._run_row(p_tenant, v_run) IS NULL
                  AND NOT EXISTS (SELECT 1 FROM hatchet.tasks t
                                  WHERE t.tenant_id = p_tenant AND t.inserted_at = hatchet.uuid_time(v_run)
                                    AND t.id = v_run);
        v_status := hatchet.run_status(v_run, p_tenant);
        CONTINUE WHEN v_status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED');
        RETURN QUERY
        SELECT v_run, v_status, t.task_id, t.readable_id, t.status, t.retry_count, t.output, t.error, t.queue,
               t.created_at
        FROM hatchet.run_tasks(v_run, p_tenant) t
        WHERE t.task_id IS NOT NULL
        ORDER BY t.created_at, t.task_id;
    END LOOP;
END
$$;
COMMENT ON FUNCTION hatchet.finished_runs(uuid[], uuid) IS
    'the finished runs among the given ids: status, and each task''s status, output and error';

-- Runs whose additional metadata has `key` = `value`, created at or after `since` (for subscriptions by metadata,
-- which page forward by creation time; an index range scan on runs_pkey, never the whole history).
CREATE FUNCTION hatchet.find_runs_by_metadata(tenant_id uuid, key text, value text, since timestamptz)
RETURNS TABLE (run_id uuid, created_at timestamptz)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.id, r.inserted_at FROM hatchet.runs r
    WHERE r.tenant_id = hatchet._tenant(find_runs_by_metadata.tenant_id) AND r.inserted_at >= find_runs_by_metadata.since
      AND r.additional_metadata ->> find_runs_by_metadata.key = find_runs_by_metadata.value
    ORDER BY r.inserted_at, r.id
$$;
COMMENT ON FUNCTION hatchet.find_runs_by_metadata(uuid, text, text, timestamptz) IS
    'runs created since a time whose additional metadata has key = value (stream subscriptions by metadata)';

-- ---------------------------------------------------------------------------------------------------------------------
-- Metrics (the SDKs' metrics.get_task_metrics and get_task_stats)
-- ---------------------------------------------------------------------------------------------------------------------

-- How many tasks created in [since, until) are in each readable status now (one row per status, zeros included),
-- optionally only tasks of these workflows (external ids), of child runs of one parent task, or of runs one event
-- triggered. Reads the tasks of the window one by one: meant for dashboards and tests, not for hot paths.
CREATE FUNCTION hatchet.task_status_counts(
    since               timestamptz,
    until               timestamptz DEFAULT NULL,
    workflow_ids        uuid[]      DEFAULT NULL,
    parent_task_id      uuid        DEFAULT NULL,
    triggering_event_id uuid        DEFAULT NULL,
    tenant_id           uuid        DEFAULT NULL
) RETURNS TABLE (status text, count bigint)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(task_status_counts.tenant_id);
    v_until  timestamptz := coalesce(task_status_counts.until, 'infinity');
    v_defs   bigint[];
BEGIN
    IF task_status_counts.since IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['since']);
    END IF;
    IF task_status_counts.workflow_ids IS NOT NULL THEN
        v_defs := ARRAY(SELECT d.id FROM hatchet.workflows w
                        JOIN hatchet.workflow_versions v ON v.tenant_id = w.tenant_id AND v.workflow_id = w.id
                        JOIN hatchet.task_definitions d ON d.tenant_id = v.tenant_id AND d.workflow_version_id = v.id
                        WHERE w.tenant_id = p_tenant AND w.external_id = ANY (task_status_counts.workflow_ids));
    END IF;
    RETURN QUERY
    WITH picked AS (
        SELECT (hatchet._task_state(p_tenant, t.id)).state AS state
        FROM hatchet.tasks t
        WHERE t.tenant_id = p_tenant AND t.inserted_at >= task_status_counts.since AND t.inserted_at < v_until
          AND (v_defs IS NULL OR t.task_definition_id = ANY (v_defs))
          AND (task_status_counts.triggering_event_id IS NULL
               OR t.additional_metadata ->> 'hatchet__event_id' = task_status_counts.triggering_event_id::text)
          AND (task_status_counts.parent_task_id IS NULL OR EXISTS (
                   SELECT 1 FROM hatchet.runs r
                   WHERE r.tenant_id = p_tenant AND r.inserted_at = hatchet.uuid_time(t.run_id) AND r.id = t.run_id
                     AND r.parent_task_id = task_status_counts.parent_task_id))
    )
    SELECT s.name::text, count(p.state)
    FROM unnest(enum_range(NULL::hatchet.readable_status)) AS s(name)
    LEFT JOIN picked p ON p.state = s.name::text
    GROUP BY s.name
    ORDER BY s.name;
END
$$;
COMMENT ON FUNCTION hatchet.task_status_counts(timestamptz, timestamptz, uuid[], uuid, uuid, uuid) IS
    'tasks created in a time window by readable status (all five, zeros included), optionally by workflow, parent task or triggering event';

-- Work in flight right now, per task name (the task's readable id, or its queue for a task enqueued on its own) and
-- state (QUEUED: ready, delayed or waiting for a concurrency slot; RUNNING), with the queue, how many and the oldest
-- task creation time.
CREATE FUNCTION hatchet.task_stats(tenant_id uuid DEFAULT NULL)
RETURNS TABLE (task_name text, state text, queue text, count bigint, oldest timestamptz,
               oldest_excluding_retries timestamptz)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(task_stats.tenant_id);
BEGIN
    RETURN QUERY
    WITH flight AS (
        SELECT 'QUEUED' AS state, r.queue, r.task_id, r.task_inserted_at, r.retry_count, r.task_definition_id
        FROM hatchet.ready_queue r WHERE r.tenant_id = p_tenant
        UNION ALL
        SELECT 'QUEUED', d.queue, d.task_id, d.task_inserted_at, d.retry_count, d.task_definition_id
        FROM hatchet.delayed_queue d WHERE d.tenant_id = p_tenant
        UNION ALL
        SELECT 'QUEUED', c.queue, c.task_id, c.task_inserted_at, c.retry_count, c.task_definition_id
        FROM hatchet.concurrency_queue c WHERE c.tenant_id = p_tenant
        UNION ALL
        SELECT 'RUNNING', x.queue, x.task_id, x.task_inserted_at, x.retry_count, x.task_definition_id
        FROM hatchet.running x WHERE x.tenant_id = p_tenant
    )
    SELECT coalesce(d.readable_id, f.queue), f.state, f.queue, count(*), min(f.task_inserted_at),
           min(f.task_inserted_at) FILTER (WHERE f.retry_count = 0)
    FROM flight f
    LEFT JOIN hatchet.task_definitions d ON d.tenant_id = p_tenant AND d.id = f.task_definition_id
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3;
END
$$;
COMMENT ON FUNCTION hatchet.task_stats(uuid) IS
    'queued and running tasks now, per task name, state and queue: how many and the oldest';
