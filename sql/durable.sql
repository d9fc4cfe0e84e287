-- Durable execution: the event log of a durable task, its waits, child runs and memoized values, and eviction.
--
-- How it works (Hatchet's durable execution, v0.80 protocol):
--   * A durable task asks for log entries while it runs: MEMO (a value computed once), WAIT_FOR (sleeps and user
--     events in or-groups) and RUN (child runs). Entries are keyed by (task, branch, node): the n-th entry a run of
--     the task asks for is node n. Each (re)start of the task is a new invocation and walks nodes 1, 2, ... again
--     (replay): an entry already in the log must be asked for with the same call (else the replay is not
--     deterministic and the task is told so), and a satisfied one answers at once with its stored result, so
--     memoized work does not run again, a sleep does not start over and a child is spawned once per entry.
--   * The invocation of an attempt is its retry_count + 1. A durable task gives its slot back while it waits
--     (eviction): its attempt ends with an EVICTED event and the next attempt waits in the delayed queue (reason
--     'evicted', ready_at 'infinity') until something it waits for is satisfied; it is then queued ahead of new work
--     (priority 4), runs as the next invocation and replays its log. A request naming any other invocation than the
--     running attempt's is stale and refused (SQLSTATE 55000), which fences off the old invocation.
--   * A wait is a SIGNAL match of the match engine (runs.sql): the same sleep and user-event conditions as a DAG
--     task's, satisfied by hatchet.push_event and by the background worker's sleep pass; when it fires
--     (hatchet._fire_match) it satisfies the log entry instead of creating a task. A child run is waited for in
--     durable_child_waits and satisfies its entry in the transaction that finishes it (hatchet._durable_finished,
--     called by the task lifecycle: _on_tasks_finished for workflow tasks, and complete_many, _fail_attempt, cancel
--     and _finish_unstarted for the task of a single-task run, whose hot rows carry no run_id).
--   * Everything is in tables, so a wait survives restarts of the server, the worker and Postgres.
--
-- Lock order: the task's run (hatchet._lock_runs), then its log row (durable_logs), then what queuing locks. Finishing
-- a child takes the parent's log row while holding the child's run lock; nothing takes a child's run lock while
-- holding a parent's log row, so the order is acyclic.
--
-- Results are bytes for the SDK (JSON text): a memo's value as the worker sent it; a wait's
-- {"CREATE": {<readable data key>: [<event payload> | {"sleep_duration": "<duration>"}]}}; a child run's output (a
-- single-task run) or {<task readable id>: <output>} (a DAG run), or its error.
--
-- Public: durable_memo, durable_complete_memo, durable_wait_for, durable_trigger_runs, durable_completed,
-- durable_stale, durable_evict, restore_evicted, branch_durable_task, register_durable_event, durable_event_result,
-- durable_log.
-- Calls: tenants.sql, tasks.sql (_reject_stale, _release, _promote_due), runs.sql (_lock_runs, _satisfy_match,
-- _number_conditions, run_workflow, finished_runs, run_status).

-- ---------------------------------------------------------------------------------------------------------------------
-- The log
-- ---------------------------------------------------------------------------------------------------------------------

-- Starts an append to the log of a durable task by invocation p_invocation: locks the task's run and log row (creating
-- the row on first use) and returns it. The invocation must be the running attempt's (retry_count + 1); a higher
-- invocation than the log's latest starts over at node 1 (a replay).
CREATE FUNCTION hatchet._durable_begin(p_tenant uuid, p_task uuid, p_invocation integer)
RETURNS hatchet.durable_logs
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_at      timestamptz;
    v_run     uuid;
    v_durable boolean;
    v_attempt integer;
    v_log     hatchet.durable_logs;
BEGIN
    IF p_task IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['task_id']);
    END IF;
    IF p_invocation IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['invocation']);
    END IF;
    v_at := hatchet.uuid_time(p_task);
    SELECT t.run_id, coalesce(d.is_durable, false) INTO v_run, v_durable
    FROM hatchet.tasks t
    LEFT JOIN hatchet.task_definitions d ON d.tenant_id = t.tenant_id AND d.id = t.task_definition_id
    WHERE t.tenant_id = p_tenant AND t.inserted_at = v_at AND t.id = p_task;
    IF NOT FOUND THEN
        PERFORM hatchet.raise_error('unknown_task', ARRAY[p_task::text]);
    END IF;
    IF NOT v_durable THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format('task "%s" is not a durable task', p_task)]);
    END IF;
    PERFORM hatchet._lock_runs(ARRAY[v_run]);
    SELECT r.retry_count INTO v_attempt FROM hatchet.running r WHERE r.tenant_id = p_tenant AND r.task_id = p_task;
    IF v_attempt IS NULL OR v_attempt + 1 <> p_invocation THEN
        PERFORM hatchet._reject_stale(p_tenant, p_task, p_invocation - 1);
    END IF;
    INSERT INTO hatchet.durable_logs (tenant_id, task_inserted_at, task_id, invocation)
    VALUES (p_tenant, v_at, p_task, p_invocation)
    ON CONFLICT DO NOTHING;
    SELECT l.* INTO v_log FROM hatchet.durable_logs l
    WHERE l.tenant_id = p_tenant AND l.task_inserted_at = v_at AND l.task_id = p_task
    FOR UPDATE;
    IF p_invocation > v_log.invocation THEN
        UPDATE hatchet.durable_logs l SET invocation = p_invocation, next_node = 1
        WHERE l.tenant_id = p_tenant AND l.task_inserted_at = v_at AND l.task_id = p_task
        RETURNING l.* INTO v_log;
    END IF;
    RETURN v_log;
END
$$;

-- The branch node p_node of the log's current branch lives in: the current branch from its branch point on, else
-- the parent's (recursively); branch 1 is the root.
CREATE FUNCTION hatchet._durable_branch_of(p_log hatchet.durable_logs, p_node bigint) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_branch bigint := p_log.branch_id;
    v_point  jsonb;
BEGIN
    LOOP
        SELECT b INTO v_point FROM jsonb_array_elements(p_log.branches) b WHERE (b->>'branch')::bigint = v_branch;
        IF v_point IS NULL OR p_node >= (v_point->>'first_node')::bigint THEN
            RETURN v_branch;
        END IF;
        v_branch := (v_point->>'parent')::bigint;
    END LOOP;
END
$$;

-- Appends the next entry of the log (kind, idempotency key): returns its node and branch and, when the node already
-- exists (a replay, possibly in an ancestor branch), the stored entry. A node that holds a different call is not
-- appended: `nondeterminism` says why.
CREATE FUNCTION hatchet._durable_append(p_log hatchet.durable_logs, p_kind text, p_key text, p_label text,
                                        p_conditions jsonb, p_what text,
                                        OUT node_id bigint, OUT entry hatchet.durable_log_entries,
                                        OUT nondeterminism text, OUT branch_id bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
BEGIN
    node_id := p_log.next_node;
    -- A node before the current branch's branch point lives in an ancestor branch (written before the branch).
    branch_id := hatchet._durable_branch_of(p_log, node_id);
    SELECT e.* INTO entry FROM hatchet.durable_log_entries e
    WHERE e.tenant_id = p_log.tenant_id AND e.task_inserted_at = p_log.task_inserted_at AND e.task_id = p_log.task_id
      AND e.branch_id = branch_id AND e.node_id = node_id;
    IF FOUND AND (entry.kind <> p_kind OR entry.idempotency_key <> p_key) THEN
        nondeterminism := format('durable task "%s" asked for %s at node %s (invocation %s), but its event log holds '
                                 '%s there from invocation %s: the task does not replay deterministically',
                                 p_log.task_id, p_what, node_id, p_log.invocation, lower(entry.kind), entry.invocation);
        entry := NULL;
        RETURN;
    END IF;
    IF NOT FOUND THEN
        branch_id := p_log.branch_id;
        INSERT INTO hatchet.durable_log_entries (tenant_id, task_inserted_at, task_id, branch_id, node_id, kind,
                                                 idempotency_key, invocation, label, conditions)
        VALUES (p_log.tenant_id, p_log.task_inserted_at, p_log.task_id, branch_id, node_id, p_kind, p_key,
                p_log.invocation, p_label, p_conditions);
        entry := NULL;
    END IF;
    UPDATE hatchet.durable_logs l SET next_node = node_id + 1
    WHERE l.tenant_id = p_log.tenant_id AND l.task_inserted_at = p_log.task_inserted_at AND l.task_id = p_log.task_id;
END
$$;

-- Satisfies one entry (once): stores its result, numbers it, and restores the task if it is evicted. Locks the log row.
CREATE FUNCTION hatchet._durable_satisfy(p_tenant uuid, p_task uuid, p_branch bigint, p_node bigint, p_result bytea,
                                         p_is_failure boolean DEFAULT false, p_error text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_at    timestamptz := hatchet.uuid_time(p_task);
    v_count bigint;
BEGIN
    SELECT l.satisfied_count INTO v_count FROM hatchet.durable_logs l
    WHERE l.tenant_id = p_tenant AND l.task_inserted_at = v_at AND l.task_id = p_task
    FOR UPDATE;
    UPDATE hatchet.durable_log_entries e
    SET satisfied_at = clock_timestamp(), satisfied_order = v_count + 1, result = p_result,
        is_failure = p_is_failure, error = p_error
    WHERE e.tenant_id = p_tenant AND e.task_inserted_at = v_at AND e.task_id = p_task
      AND e.branch_id = p_branch AND e.node_id = p_node AND e.satisfied_at IS NULL;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE hatchet.durable_logs l SET satisfied_count = v_count + 1
    WHERE l.tenant_id = p_tenant AND l.task_inserted_at = v_at AND l.task_id = p_task;
    PERFORM hatchet._durable_wake(p_tenant, p_task);
    RETURN true;
END
$$;

-- Queues an evicted task now (its wait is over, or restore_evicted was called): ahead of new work, as the next
-- invocation. Returns whether it was evicted.
CREATE FUNCTION hatchet._durable_wake(p_tenant uuid, p_task uuid) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now   timestamptz := clock_timestamp();
    v_queue text;
BEGIN
    UPDATE hatchet.delayed_queue d SET ready_at = v_now
    WHERE d.tenant_id = p_tenant AND d.task_id = p_task AND d.reason = 'evicted' AND d.ready_at > v_now
    RETURNING d.queue INTO v_queue;
    IF v_queue IS NULL THEN
        RETURN false;
    END IF;
    PERFORM hatchet._promote_due(p_tenant, v_queue, v_now, 100);
    RETURN true;
END
$$;

-- The SDK's bytes for a wait that fired: {"CREATE": {data key: [data, ...]}} over the satisfied conditions.
CREATE FUNCTION hatchet._durable_wait_result(p_conditions jsonb, p_satisfied jsonb) RETURNS bytea
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT convert_to(jsonb_build_object('CREATE', coalesce(jsonb_object_agg(k, v), '{}'))::text, 'UTF8')
    FROM (SELECT coalesce(c->>'data_key', c->>'key', 'sleep') AS k,
                 jsonb_agg(CASE c->>'type' WHEN 'sleep' THEN jsonb_build_object('sleep_duration', c->>'sleep_for')
                                           ELSE p_satisfied->(c->>'id') END ORDER BY ord) AS v
          FROM jsonb_array_elements(p_conditions) WITH ORDINALITY AS x(c, ord)
          WHERE p_satisfied ? (c->>'id')
          GROUP BY 1) s
$$;

-- Called by hatchet._fire_match for a SIGNAL match (a durable wait) that fired: satisfies its log entry. p_action
-- FAIL (a CEL condition could not be evaluated) satisfies it as a failure with the reason.
CREATE FUNCTION hatchet._durable_signal(p_tenant uuid, p_match hatchet.matches, p_action text, p_reason text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_action = 'FAIL' THEN
        PERFORM hatchet._durable_satisfy(p_tenant, p_match.task_id, p_match.durable_branch_id, p_match.durable_node_id,
                                         NULL, true, p_reason);
    ELSE
        PERFORM hatchet._durable_satisfy(p_tenant, p_match.task_id, p_match.durable_branch_id, p_match.durable_node_id,
                                         hatchet._durable_wait_result(p_match.conditions, p_match.satisfied));
    END IF;
END
$$;

-- Called by hatchet._on_tasks_finished with the runs whose tasks just finished: satisfies the RUN entries of durable
-- tasks waiting for those of them that are now finished, with the child's outputs or its error.
CREATE FUNCTION hatchet._durable_children_finished(p_tenant uuid, p_runs uuid[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    w         hatchet.durable_child_waits;
    v_status  text;
    v_outputs jsonb;
    v_error   text;
BEGIN
    FOR w IN
        SELECT x.* FROM hatchet.durable_child_waits x
        WHERE x.tenant_id = p_tenant AND x.child_run_id = ANY (p_runs)
        ORDER BY x.child_run_id, x.task_id, x.branch_id, x.node_id
    LOOP
        -- A single-task run (its task is the run) gives its task's output itself, a DAG run its outputs by task, as
        -- Hatchet's engine does (the SDKs unwrap neither for a durable child).
        SELECT min(f.run_status),
               CASE WHEN count(*) = 1 AND bool_and(f.task_id = w.child_run_id)
                    THEN coalesce(min(f.output::text)::jsonb, '{}')
                    ELSE coalesce(jsonb_object_agg(f.readable_id, coalesce(f.output, '{}'))
                                      FILTER (WHERE f.status = 'COMPLETED' AND f.readable_id IS NOT NULL), '{}') END,
               min(f.error) FILTER (WHERE f.status IN ('FAILED', 'CANCELLED') AND f.error IS NOT NULL)
        INTO v_status, v_outputs, v_error
        FROM hatchet.finished_runs(ARRAY[w.child_run_id], p_tenant) f;
        CONTINUE WHEN v_status IS NULL;
        DELETE FROM hatchet.durable_child_waits x
        WHERE x.tenant_id = p_tenant AND x.child_run_id = w.child_run_id AND x.task_id = w.task_id
          AND x.branch_id = w.branch_id AND x.node_id = w.node_id;
        IF v_status = 'COMPLETED' THEN
            PERFORM hatchet._durable_satisfy(p_tenant, w.task_id, w.branch_id, w.node_id,
                                             convert_to(v_outputs::text, 'UTF8'));
        ELSE
            PERFORM hatchet._durable_satisfy(p_tenant, w.task_id, w.branch_id, w.node_id, NULL, true,
                                             coalesce(v_error, format('child run %s %s', w.child_run_id,
                                                                      lower(v_status))));
        END IF;
    END LOOP;
END
$$;

-- Called by the task lifecycle whenever tasks finish (COMPLETED, FAILED, CANCELLED), with their runs (a single-task
-- run is its task: p_runs = p_tasks): a finished durable task waits for nothing any more (its SIGNAL matches go), and
-- durable tasks waiting for these runs as children get their results. Cheap when nothing is durable: one probe of a
-- partial index and one of a table that is empty unless a durable task waits for a child.
CREATE FUNCTION hatchet._durable_finished(p_tenant uuid, p_tasks uuid[], p_runs uuid[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_runs uuid[];
BEGIN
    v_runs := ARRAY(SELECT DISTINCT x.run_id FROM hatchet.matches x
                    WHERE x.tenant_id = p_tenant AND x.kind = 'SIGNAL' AND x.run_id = ANY (p_runs)
                      AND x.task_id = ANY (p_tasks));
    IF cardinality(v_runs) > 0 THEN
        PERFORM hatchet._lock_runs(v_runs);
        DELETE FROM hatchet.matches x
        WHERE x.tenant_id = p_tenant AND x.kind = 'SIGNAL' AND x.run_id = ANY (v_runs) AND x.task_id = ANY (p_tasks);
    END IF;
    IF EXISTS (SELECT 1 FROM hatchet.durable_child_waits w WHERE w.tenant_id = p_tenant)
       AND EXISTS (SELECT 1 FROM hatchet.durable_child_waits w
                   WHERE w.tenant_id = p_tenant AND w.child_run_id = ANY (p_runs)) THEN
        PERFORM hatchet._durable_children_finished(p_tenant, p_runs);
    END IF;
END
$$;

-- Checks the wait conditions of durable_wait_for (22023 on bad input) and returns what identifies the wait for
-- replays: the conditions in order without their group ids (the SDK makes new ones on every run) or the event
-- lookback start.
CREATE FUNCTION hatchet._durable_check_conditions(p_conditions jsonb) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_c jsonb;
BEGIN
    IF p_conditions IS NULL OR jsonb_typeof(p_conditions) <> 'array' OR jsonb_array_length(p_conditions) = 0 THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['conditions must be a non-empty JSON array']);
    END IF;
    FOR v_c IN SELECT e FROM jsonb_array_elements(p_conditions) e LOOP
        IF jsonb_typeof(v_c) <> 'object' OR NOT (v_c->>'type' = ANY (ARRAY['sleep', 'event'])) THEN
            PERFORM hatchet.raise_error('invalid_argument', ARRAY[format(
                'a wait condition must be an object with type "sleep" or "event", not %s', v_c)]);
        END IF;
        IF v_c->>'type' = 'sleep' THEN
            IF coalesce(v_c->>'sleep_for', '') = '' THEN
                PERFORM hatchet.raise_error('invalid_argument', ARRAY['a sleep condition needs sleep_for']);
            END IF;
            PERFORM hatchet.parse_duration(v_c->>'sleep_for');
        ELSIF coalesce(v_c->>'key', '') = '' THEN
            PERFORM hatchet.raise_error('invalid_argument', ARRAY['an event condition needs a key']);
        END IF;
    END LOOP;
    RETURN md5((SELECT jsonb_agg(c - 'group' - 'since' ORDER BY ord)::text
                FROM jsonb_array_elements(p_conditions) WITH ORDINALITY AS x(c, ord)));
END
$$;

-- Arms the wait of entry p_node (branch p_log.branch_id) as a SIGNAL match: sleeps count from p_from (now unless
-- given: a wait armed again counts from when it was first asked for), and events pushed since a condition's `since`
-- count too (oldest first, until the match fires). A legacy wait (p_label: its signal key) first gets its log entry
-- here. The caller holds the task's run lock and log row (hatchet._durable_begin).
CREATE FUNCTION hatchet._durable_arm(p_log hatchet.durable_logs, p_node bigint, p_conditions jsonb, p_label text,
                                     p_from timestamptz DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_tenant uuid := p_log.tenant_id;
    v_now    timestamptz := clock_timestamp();
    v_conds  jsonb;
    v_match  uuid := hatchet.gen_id();
    v_ev     record;
BEGIN
    IF p_label IS NOT NULL THEN
        INSERT INTO hatchet.durable_log_entries (tenant_id, task_inserted_at, task_id, branch_id, node_id, kind,
                                                 idempotency_key, invocation, label, conditions)
        VALUES (v_tenant, p_log.task_inserted_at, p_log.task_id, p_log.branch_id, p_node, 'WAIT_FOR',
                hatchet._durable_check_conditions(p_conditions), p_log.invocation, p_label, p_conditions);
    END IF;
    v_conds := hatchet._number_conditions((
        SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
                   'type', c->>'type', 'action', 'QUEUE', 'group', coalesce(c->>'group', 'durable'),
                   'data_key', c->>'data_key', 'key', c->>'key', 'scope', c->>'scope',
                   'expression', nullif(c->>'expression', ''), 'sleep_for', c->>'sleep_for',
                   'until', coalesce(p_from, v_now) + hatchet.parse_duration(c->>'sleep_for'))) ORDER BY ord)
        FROM jsonb_array_elements(p_conditions) WITH ORDINALITY AS x(c, ord)));
    INSERT INTO hatchet.matches (tenant_id, id, run_id, task_id, kind, conditions, wake_at, event_keys,
                                 durable_branch_id, durable_node_id)
    VALUES (v_tenant, v_match,
            (SELECT t.run_id FROM hatchet.tasks t
             WHERE t.tenant_id = v_tenant AND t.inserted_at = p_log.task_inserted_at AND t.id = p_log.task_id),
            p_log.task_id, 'SIGNAL', v_conds,
            (SELECT min((x->>'until')::timestamptz) FROM jsonb_array_elements(v_conds) x WHERE x ? 'until'),
            ARRAY(SELECT DISTINCT x->>'key' FROM jsonb_array_elements(v_conds) x WHERE x->>'type' = 'event' ORDER BY 1),
            p_log.branch_id, p_node);
    FOR v_ev IN
        SELECT e.key, e.scope, e.payload, e.additional_metadata
        FROM jsonb_array_elements(p_conditions) c
        CROSS JOIN LATERAL (SELECT x.* FROM hatchet.events x
                            WHERE x.tenant_id = v_tenant AND x.key = c->>'key'
                              AND x.inserted_at >= (c->>'since')::timestamptz
                              AND (c->>'scope' IS NULL OR x.scope = c->>'scope')) e
        WHERE c->>'type' = 'event' AND c ? 'since'
        ORDER BY e.inserted_at, e.id
    LOOP
        EXIT WHEN NOT EXISTS (SELECT 1 FROM hatchet.matches x WHERE x.tenant_id = v_tenant AND x.id = v_match);
        PERFORM hatchet._satisfy_match(v_tenant, v_match, 'event', v_now, v_ev.key, v_ev.scope, v_ev.payload,
                                       v_ev.additional_metadata);
    END LOOP;
END
$$;

-- ---------------------------------------------------------------------------------------------------------------------
-- The API the server calls for the DurableTask stream
-- ---------------------------------------------------------------------------------------------------------------------

-- A memo entry (ctx.aio_memo): the next node of the log, keyed by the SDK's memo key. On a replay whose entry holds a
-- value, already_existed is true and result is that value (the function is not run again); otherwise the worker
-- computes it and sends it with hatchet.durable_complete_memo. A payload given here is stored at once.
CREATE FUNCTION hatchet.durable_memo(
    task_id    uuid,
    invocation integer,
    key        bytea,
    payload    bytea DEFAULT NULL,
    tenant_id  uuid  DEFAULT NULL
) RETURNS TABLE (branch_id bigint, node_id bigint, already_existed boolean, result bytea, nondeterminism text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(durable_memo.tenant_id);
    v_log    hatchet.durable_logs;
    v_app    record;
BEGIN
    IF durable_memo.key IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['key']);
    END IF;
    v_log := hatchet._durable_begin(p_tenant, durable_memo.task_id, durable_memo.invocation);
    v_app := hatchet._durable_append(v_log, 'MEMO', md5(durable_memo.key), NULL, NULL, 'a memoized value');
    branch_id := v_app.branch_id;
    node_id := v_app.node_id;
    nondeterminism := v_app.nondeterminism;
    already_existed := (v_app.entry).satisfied_at IS NOT NULL;
    result := (v_app.entry).result;
    IF nondeterminism IS NULL AND NOT already_existed AND durable_memo.payload IS NOT NULL THEN
        PERFORM hatchet._durable_satisfy(p_tenant, durable_memo.task_id, branch_id, node_id, durable_memo.payload);
    END IF;
    RETURN NEXT;
END
$$;
COMMENT ON FUNCTION hatchet.durable_memo(uuid, integer, bytea, bytea, uuid) IS
    'the next memo entry of a durable task''s log: its node, and its value when a replay finds one';

-- Stores the value a worker computed for a memo entry (once: a value already stored is kept). Returns whether it was
-- stored. The entry must be a memo with the same key.
CREATE FUNCTION hatchet.durable_complete_memo(
    task_id    uuid,
    invocation integer,
    branch_id  bigint,
    node_id    bigint,
    key        bytea,
    payload    bytea,
    tenant_id  uuid DEFAULT NULL
) RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(durable_complete_memo.tenant_id);
    v_log    hatchet.durable_logs;
    v_kind   text;
    v_key    text;
BEGIN
    IF durable_complete_memo.branch_id IS NULL OR durable_complete_memo.node_id IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['branch_id and node_id']);
    END IF;
    v_log := hatchet._durable_begin(p_tenant, durable_complete_memo.task_id, durable_complete_memo.invocation);
    SELECT e.kind, e.idempotency_key INTO v_kind, v_key FROM hatchet.durable_log_entries e
    WHERE e.tenant_id = p_tenant AND e.task_inserted_at = v_log.task_inserted_at AND e.task_id = v_log.task_id
      AND e.branch_id = durable_complete_memo.branch_id AND e.node_id = durable_complete_memo.node_id;
    IF v_kind IS DISTINCT FROM 'MEMO' OR v_key <> md5(coalesce(durable_complete_memo.key, ''::bytea)) THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format(
            'durable task "%s" has no memo entry with this key at node %s of branch %s',
            durable_complete_memo.task_id, durable_complete_memo.node_id, durable_complete_memo.branch_id)]);
    END IF;
    RETURN hatchet._durable_satisfy(p_tenant, durable_complete_memo.task_id, durable_complete_memo.branch_id,
                                    durable_complete_memo.node_id, coalesce(durable_complete_memo.payload, ''::bytea));
END
$$;
COMMENT ON FUNCTION hatchet.durable_complete_memo(uuid, integer, bigint, bigint, bytea, bytea, uuid) IS
    'store the value a worker computed for a memo entry of a durable task (the first value stays)';

-- A wait entry (ctx.aio_wait_for / aio_sleep_for / aio_wait_for_event): conditions is a JSON array of
-- {type: "sleep", sleep_for} and {type: "event", key, scope?, expression?, since?} objects, each with `group` (its
-- or-group: conditions of one group are OR'ed, groups AND'ed) and `data_key` (the key of its data in the result).
-- The first time, the wait becomes a SIGNAL match (sleeps count from now; `since` also matches events pushed since
-- then); on a replay the entry's match or result is reused. A replay of a wait that is neither satisfied nor armed
-- any more (the task was cancelled or failed while it waited, then replayed) arms it again with the conditions it
-- was first asked with: its sleeps count from that first time, so a replayed sleep does not start over.
CREATE FUNCTION hatchet.durable_wait_for(
    task_id    uuid,
    invocation integer,
    conditions jsonb,
    label      text DEFAULT NULL,
    tenant_id  uuid DEFAULT NULL
) RETURNS TABLE (branch_id bigint, node_id bigint, nondeterminism text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(durable_wait_for.tenant_id);
    v_log    hatchet.durable_logs;
    v_app    record;
    v_key    text;
BEGIN
    v_key := hatchet._durable_check_conditions(durable_wait_for.conditions);
    v_log := hatchet._durable_begin(p_tenant, durable_wait_for.task_id, durable_wait_for.invocation);
    v_app := hatchet._durable_append(v_log, 'WAIT_FOR', v_key, durable_wait_for.label, durable_wait_for.conditions,
                                     'a wait');
    branch_id := v_app.branch_id;
    node_id := v_app.node_id;
    nondeterminism := v_app.nondeterminism;
    IF nondeterminism IS NULL AND (v_app.entry).node_id IS NULL THEN
        -- appended now (not a replay, whose match or result is already there)
        PERFORM hatchet._durable_arm(v_log, v_app.node_id, durable_wait_for.conditions, NULL);
    ELSIF nondeterminism IS NULL AND (v_app.entry).satisfied_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM hatchet.matches x
                          WHERE x.tenant_id = p_tenant AND x.kind = 'SIGNAL' AND x.task_id = durable_wait_for.task_id
                            AND x.run_id = (SELECT t.run_id FROM hatchet.tasks t
                                            WHERE t.tenant_id = p_tenant AND t.inserted_at = v_log.task_inserted_at
                                              AND t.id = v_log.task_id)
                            AND x.durable_branch_id = v_app.branch_id AND x.durable_node_id = v_app.node_id) THEN
        -- a replay of a wait whose match went with the attempt that asked for it (cancelled, failed, timed out)
        v_log.branch_id := v_app.branch_id;
        PERFORM hatchet._durable_arm(v_log, v_app.node_id, (v_app.entry).conditions, NULL, (v_app.entry).created_at);
    END IF;
    RETURN NEXT;
END
$$;
COMMENT ON FUNCTION hatchet.durable_wait_for(uuid, integer, jsonb, text, uuid) IS
    'the next wait entry of a durable task''s log (sleeps and user events in or-groups), a match until satisfied';

-- Child runs (a durable task's workflow.aio_run / aio_run_many): one RUN entry per trigger, in order. A trigger is
-- {name, input?, additional_metadata?, priority?, child_index?, child_key?, desired_worker_id?}. The first time an
-- entry is appended its run is started; on a replay the entry's run is returned and nothing is started again. A
-- child_key names the child: a replay with another input still gets the same run. The SDK's child_index (its spawn
-- counter) names it otherwise: a new entry whose index already belongs to a child of the same workflow gets that
-- run; one whose index belongs to another workflow's child is a non-determinism (and appends nothing).
CREATE FUNCTION hatchet.durable_trigger_runs(
    task_id    uuid,
    invocation integer,
    triggers   jsonb,
    tenant_id  uuid DEFAULT NULL
) RETURNS TABLE (branch_id bigint, node_id bigint, run_id uuid, nondeterminism text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(durable_trigger_runs.tenant_id);
    v_log    hatchet.durable_logs;
    v_app    record;
    v_key    text;
    t        jsonb;
    v_run    uuid;
    v_status text;
    v_held   text;
BEGIN
    IF durable_trigger_runs.triggers IS NULL OR jsonb_typeof(durable_trigger_runs.triggers) <> 'array' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['triggers must be a JSON array']);
    END IF;
    v_log := hatchet._durable_begin(p_tenant, durable_trigger_runs.task_id, durable_trigger_runs.invocation);
    FOR t IN SELECT e FROM jsonb_array_elements(durable_trigger_runs.triggers) WITH ORDINALITY AS x(e, ord)
             ORDER BY ord LOOP
        IF jsonb_typeof(t) <> 'object' OR coalesce(t->>'name', '') = '' THEN
            PERFORM hatchet.raise_error('invalid_argument', ARRAY['each trigger must be an object with a name']);
        END IF;
        v_key := md5(concat_ws(E'\n', t->>'name',
                               CASE WHEN t ? 'child_key' THEN 'key:' || (t->>'child_key')
                                    ELSE coalesce(t->'input', '{}')::text END));
        v_app := hatchet._durable_append(v_log, 'RUN', v_key, NULL, NULL, format('a run of "%s"', t->>'name'));
        branch_id := v_app.branch_id;
        node_id := v_app.node_id;
        nondeterminism := v_app.nondeterminism;
        IF nondeterminism IS NOT NULL THEN
            run_id := NULL;
            RETURN NEXT;
            RETURN;
        END IF;
        IF (v_app.entry).node_id IS NOT NULL THEN
            v_log.next_node := v_app.node_id + 1;
            run_id := (v_app.entry).child_run_id;
            RETURN NEXT;
            CONTINUE;
        END IF;
        IF t ? 'child_index' AND NOT t ? 'child_key' AND v_log.branch_id = 1 THEN
            SELECT w.name INTO v_held
            FROM hatchet.runs r
            JOIN hatchet.workflow_versions v ON v.tenant_id = r.tenant_id AND v.id = r.workflow_version_id
            JOIN hatchet.workflows w ON w.tenant_id = v.tenant_id AND w.id = v.workflow_id
            WHERE r.tenant_id = p_tenant AND r.parent_task_id = v_log.task_id
              AND r.inserted_at >= v_log.task_inserted_at
              AND r.child_key IS NULL AND r.child_index = (t->>'child_index')::integer
            ORDER BY r.inserted_at LIMIT 1;
            IF v_held IS NOT NULL AND v_held <> t->>'name' THEN
                DELETE FROM hatchet.durable_log_entries e
                WHERE e.tenant_id = p_tenant AND e.task_inserted_at = v_log.task_inserted_at
                  AND e.task_id = v_log.task_id AND e.branch_id = v_log.branch_id AND e.node_id = v_app.node_id;
                UPDATE hatchet.durable_logs l SET next_node = v_app.node_id
                WHERE l.tenant_id = p_tenant AND l.task_inserted_at = v_log.task_inserted_at
                  AND l.task_id = v_log.task_id;
                run_id := NULL;
                nondeterminism := format('non-determinism: durable task %s spawned "%s" at child index %s, which '
                                         'already belongs to a run of "%s"', v_log.task_id, t->>'name',
                                         t->>'child_index', v_held);
                RETURN NEXT;
                RETURN;
            END IF;
        END IF;
        v_log.next_node := v_app.node_id + 1;
        v_run := hatchet.run_workflow(
            name => t->>'name', input => coalesce(t->'input', '{}'),
            additional_metadata => coalesce(t->'additional_metadata', '{}'),
            priority => (t->>'priority')::integer, tenant_id => p_tenant, parent_task_id => v_log.task_id,
            -- the entry's node numbers the child (in branch 1; in a later branch its branch and node name it) unless
            -- the SDK gave a key: replays find the same run
            child_index => CASE WHEN t ? 'child_key' OR v_log.branch_id <> 1 THEN NULL
                                ELSE coalesce((t->>'child_index')::integer, v_app.node_id::integer) END,
            child_key => coalesce(t->>'child_key', CASE WHEN v_log.branch_id <> 1
                                                        THEN format('branch %s node %s', v_log.branch_id, v_app.node_id)
                                                   END),
            desired_worker_id => (t->>'desired_worker_id')::uuid);
        UPDATE hatchet.durable_log_entries e SET child_run_id = v_run
        WHERE e.tenant_id = p_tenant AND e.task_inserted_at = v_log.task_inserted_at AND e.task_id = v_log.task_id
          AND e.branch_id = v_log.branch_id AND e.node_id = v_app.node_id;
        INSERT INTO hatchet.durable_child_waits (tenant_id, child_run_id, task_inserted_at, task_id, branch_id, node_id)
        VALUES (p_tenant, v_run, v_log.task_inserted_at, v_log.task_id, v_log.branch_id, v_app.node_id)
        ON CONFLICT DO NOTHING;
        -- A run found again by its key may be finished already.
        v_status := hatchet.run_status(v_run, p_tenant);
        IF v_status IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN
            PERFORM hatchet._durable_children_finished(p_tenant, ARRAY[v_run]);
        END IF;
        run_id := v_run;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION hatchet.durable_trigger_runs(uuid, integer, jsonb, uuid) IS
    'one run entry per trigger in a durable task''s log; starts each child once per entry, replays get the same run';

-- The satisfied entries among those a worker waits for (the worker_status poll of the DurableTask stream), in the
-- order they were satisfied: refs is a JSON array of {task_id, invocation, branch_id, node_id}. Each row repeats the
-- ref and carries the result; satisfied_order numbers the waits and child runs the task's current log line sees
-- 1, 2, 3, ... in the order they were satisfied (NULL for a memo, which the worker does not wait on in order).
--
-- Ordered release (Hatchet's): an entry is handed to the running invocation only after every entry satisfied before
-- it, so a replay whose concurrent branches wait on several finished entries at once resumes them in the order the
-- first run did, and asks for its next entries in the same order (else its log would not match). Entries held back
-- stay unreturned until the earlier ones were handed out (the worker names them again); what was handed out is kept
-- in the task's log row, so a reconnect or another server replica continues where the last left off. An entry held
-- back for a minute without progress (the invocation never asks for an earlier one) is handed out anyway. Refs of
-- an invocation that is not the log's current one are answered without ordering; the entries of a task whose log
-- row is locked at the moment wait for the next poll (never for the lock).
CREATE FUNCTION hatchet.durable_completed(refs jsonb, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (task_id uuid, invocation integer, branch_id bigint, node_id bigint, result bytea, is_failure boolean,
               error text, satisfied_order bigint)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(durable_completed.tenant_id);
    h        record;
    v_task   uuid;
    v_inv    integer;
    v_log    hatchet.durable_logs;
    v_skip   boolean := false;
    v_base   bigint;
    v_since  timestamptz;
    v_moved  boolean;
BEGIN
    IF durable_completed.refs IS NULL OR jsonb_typeof(durable_completed.refs) <> 'array' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['refs must be a JSON array']);
    END IF;
    FOR h IN
        WITH r AS (
            SELECT DISTINCT x.task_id, x.invocation, x.branch_id, x.node_id
            FROM jsonb_to_recordset(durable_completed.refs) AS x(task_id uuid, invocation integer, branch_id bigint,
                                                                node_id bigint)
            WHERE x.task_id IS NOT NULL
        ), hits AS (
            SELECT r.task_id, r.invocation, e.task_inserted_at, e.branch_id, e.node_id, e.kind, e.result,
                   e.is_failure, e.error
            FROM r
            JOIN hatchet.durable_log_entries e
              ON e.tenant_id = p_tenant AND e.task_inserted_at = hatchet.uuid_time(r.task_id) AND e.task_id = r.task_id
             AND e.branch_id = r.branch_id AND e.node_id = r.node_id
            WHERE e.satisfied_at IS NOT NULL
        ), ranked AS (
            -- the waits and child runs of the current log line of each task with a hit, numbered in satisfied order
            SELECT e.task_id, e.branch_id, e.node_id,
                   row_number() OVER (PARTITION BY e.task_id ORDER BY e.satisfied_order) AS release_rank
            FROM (SELECT DISTINCT hits.task_id, hits.task_inserted_at FROM hits) t
            JOIN hatchet.durable_logs l
              ON l.tenant_id = p_tenant AND l.task_inserted_at = t.task_inserted_at AND l.task_id = t.task_id
            JOIN hatchet.durable_log_entries e
              ON e.tenant_id = p_tenant AND e.task_inserted_at = t.task_inserted_at AND e.task_id = t.task_id
            WHERE e.satisfied_at IS NOT NULL AND e.kind <> 'MEMO' AND e.branch_id <> 0
              AND e.branch_id = CASE WHEN l.branches = '[]' THEN l.branch_id
                                     ELSE hatchet._durable_branch_of(l, e.node_id) END
        )
        SELECT hits.*, ranked.release_rank
        FROM hits
        LEFT JOIN ranked ON ranked.task_id = hits.task_id AND ranked.branch_id = hits.branch_id
                        AND ranked.node_id = hits.node_id
        ORDER BY hits.task_id, hits.invocation, ranked.release_rank NULLS FIRST, hits.branch_id, hits.node_id
    LOOP
        IF v_task IS DISTINCT FROM h.task_id OR v_inv IS DISTINCT FROM h.invocation THEN
            -- the previous invocation's progress, then this one's log row (never waited for: no lock cycles)
            IF v_log.task_id IS NOT NULL AND NOT v_skip AND (v_moved OR v_log.released_invocation <> v_inv) THEN
                UPDATE hatchet.durable_logs l
                SET released_invocation = v_inv, released_order = v_base,
                    released_at = CASE WHEN v_moved THEN clock_timestamp() ELSE v_since END
                WHERE l.tenant_id = p_tenant AND l.task_inserted_at = v_log.task_inserted_at
                  AND l.task_id = v_log.task_id;
            END IF;
            v_task := h.task_id;
            v_inv := h.invocation;
            v_moved := false;
            v_log := NULL;
            SELECT l.* INTO v_log FROM hatchet.durable_logs l
            WHERE l.tenant_id = p_tenant AND l.task_inserted_at = h.task_inserted_at AND l.task_id = h.task_id
            FOR UPDATE SKIP LOCKED;
            v_skip := v_log.task_id IS NULL;
            IF NOT v_skip AND v_log.invocation = v_inv THEN
                v_base := CASE WHEN v_log.released_invocation = v_inv THEN v_log.released_order ELSE 0 END;
                v_since := CASE WHEN v_log.released_invocation = v_inv THEN v_log.released_at
                                ELSE clock_timestamp() END;
            ELSIF NOT v_skip THEN
                -- not the current invocation: answered as it is, nothing recorded
                v_log := NULL;
            END IF;
        END IF;
        CONTINUE WHEN v_skip AND h.release_rank IS NOT NULL;
        satisfied_order := h.release_rank;
        IF h.release_rank IS NOT NULL AND v_log.task_id IS NOT NULL AND h.release_rank > v_base THEN
            IF h.release_rank > v_base + 1 AND v_since > clock_timestamp() - interval '1 minute' THEN
                CONTINUE;  -- held back until the earlier entries were handed out
            END IF;
            v_base := h.release_rank;
            v_moved := true;
        END IF;
        task_id := h.task_id;
        invocation := h.invocation;
        branch_id := h.branch_id;
        node_id := h.node_id;
        result := h.result;
        is_failure := h.is_failure;
        error := h.error;
        RETURN NEXT;
    END LOOP;
    IF v_log.task_id IS NOT NULL AND NOT v_skip AND (v_moved OR v_log.released_invocation <> v_inv) THEN
        UPDATE hatchet.durable_logs l
        SET released_invocation = v_inv, released_order = v_base,
            released_at = CASE WHEN v_moved THEN clock_timestamp() ELSE v_since END
        WHERE l.tenant_id = p_tenant AND l.task_inserted_at = v_log.task_inserted_at AND l.task_id = v_log.task_id;
    END IF;
END
$$;
COMMENT ON FUNCTION hatchet.durable_completed(jsonb, uuid) IS
    'which of the given durable log entries are satisfied, with their results, handed out in satisfied order';

-- The invocations named by refs (the worker_status poll's {task_id, invocation, ...}) that their task has moved on
-- from: a later attempt is current (queued, running or evicted), or the task is finished. A worker still running one
-- of them missed its cancellation (it was lost while the server restarted, say); the server tells it to drop that
-- invocation (server_evict, as Hatchet's engine does for a stale invocation), instead of letting it wait on and run
-- the rest of its code a second time. The reason says what the task is on now.
CREATE FUNCTION hatchet.durable_stale(refs jsonb, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (task_id uuid, invocation integer, reason text)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(durable_stale.tenant_id);
BEGIN
    IF durable_stale.refs IS NULL OR jsonb_typeof(durable_stale.refs) <> 'array' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['refs must be a JSON array']);
    END IF;
    RETURN QUERY
    SELECT r.task_id, r.invocation,
           CASE WHEN s.state IN ('COMPLETED', 'FAILED', 'CANCELLED')
                THEN format('invocation %s of durable task %s is stale: the task is %s', r.invocation, r.task_id,
                            lower(s.state))
                ELSE format('invocation %s of durable task %s is stale: the task is on invocation %s', r.invocation,
                            r.task_id, s.current + 1) END
    FROM (SELECT DISTINCT x.task_id, x.invocation
          FROM jsonb_to_recordset(durable_stale.refs) AS x(task_id uuid, invocation integer)
          WHERE x.task_id IS NOT NULL AND x.invocation IS NOT NULL) r
    CROSS JOIN LATERAL hatchet._task_state(p_tenant, r.task_id) s
    WHERE s.state IN ('COMPLETED', 'FAILED', 'CANCELLED') OR r.invocation < s.current + 1
    ORDER BY r.task_id, r.invocation;
END
$$;
COMMENT ON FUNCTION hatchet.durable_stale(jsonb, uuid) IS
    'the durable task invocations among the given refs that their task has moved on from (to drop on the worker)';

-- Evicts the running invocation of a waiting durable task (the SDK's eviction policy chose it): the attempt ends
-- with an EVICTED event (reason in the timeline), its worker slot is free, and the next attempt waits in the delayed
-- queue until something the task waits for is satisfied (at once if nothing is pending any more). Its concurrency
-- slots stay: the task is still in progress. Returns the attempt that will restore it.
CREATE FUNCTION hatchet.durable_evict(
    task_id    uuid,
    invocation integer,
    reason     text DEFAULT NULL,
    tenant_id  uuid DEFAULT NULL
) RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant  uuid := hatchet._tenant(durable_evict.tenant_id);
    v_now     timestamptz := clock_timestamp();
    v_log     hatchet.durable_logs;
    v_run     hatchet.running;
    v_pending boolean;
BEGIN
    v_log := hatchet._durable_begin(p_tenant, durable_evict.task_id, durable_evict.invocation);
    DELETE FROM hatchet.running r WHERE r.tenant_id = p_tenant AND r.task_id = durable_evict.task_id
    RETURNING r.* INTO v_run;
    PERFORM hatchet._release(p_tenant, ARRAY[v_run.worker_id], ARRAY[v_run.slot_type], ARRAY[v_run.slot_units], '{}');
    -- What it still waits for: unsatisfied waits and children its current branch sees (not those of a branch it
    -- left, nor legacy signals).
    v_pending := EXISTS (SELECT 1 FROM hatchet.durable_log_entries e
                         WHERE e.tenant_id = p_tenant AND e.task_inserted_at = v_log.task_inserted_at
                           AND e.task_id = v_log.task_id AND e.satisfied_at IS NULL AND e.kind <> 'MEMO'
                           AND e.branch_id = hatchet._durable_branch_of(v_log, e.node_id));
    INSERT INTO hatchet.task_events (tenant_id, task_inserted_at, task_id, created_at, retry_count, event_type,
                                     worker_id, worker_name, reason, assigned_at)
    VALUES (p_tenant, v_run.task_inserted_at, v_run.task_id, v_now, v_run.retry_count, 'EVICTED', v_run.worker_id,
            v_run.worker_name,
            coalesce(nullif(durable_evict.reason, ''), 'evicted while waiting')
                || CASE WHEN v_pending THEN '; waiting for ' || (
                        SELECT string_agg(hatchet._durable_label(e) || ' (node ' || e.node_id || ')', ', '
                                          ORDER BY e.node_id)
                        FROM hatchet.durable_log_entries e
                        WHERE e.tenant_id = p_tenant AND e.task_inserted_at = v_log.task_inserted_at
                          AND e.task_id = v_log.task_id AND e.satisfied_at IS NULL AND e.kind <> 'MEMO'
                          AND e.branch_id = hatchet._durable_branch_of(v_log, e.node_id))
                        ELSE '' END,
            v_run.assigned_at);
    INSERT INTO hatchet.delayed_queue (tenant_id, task_id, task_inserted_at, ready_at, retry_count, app_retry_count,
                                       internal_retry_count, priority, queue, reason, concurrency_key, run_id,
                                       task_definition_id)
    VALUES (p_tenant, v_run.task_id, v_run.task_inserted_at, 'infinity', v_run.retry_count + 1, v_run.app_retry_count,
            v_run.internal_retry_count, 4, v_run.queue, 'evicted', v_run.concurrency_key, v_run.run_id,
            v_run.task_definition_id);
    IF NOT v_pending THEN
        PERFORM hatchet._durable_wake(p_tenant, durable_evict.task_id);
    END IF;
    RETURN v_run.retry_count + 1;
END
$$;
COMMENT ON FUNCTION hatchet.durable_evict(uuid, integer, text, uuid) IS
    'evict a waiting durable task: its slot is freed and it is queued again when what it waits for is satisfied';

-- Queues an evicted durable task now, whatever it waits for (Hatchet's RestoreEvictedTask). Returns false if the
-- task is not evicted.
CREATE FUNCTION hatchet.restore_evicted(task_id uuid, tenant_id uuid DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(restore_evicted.tenant_id);
BEGIN
    IF restore_evicted.task_id IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['task_id']);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM hatchet.tasks t WHERE t.tenant_id = p_tenant
                     AND t.inserted_at = hatchet.uuid_time(restore_evicted.task_id) AND t.id = restore_evicted.task_id)
    THEN
        PERFORM hatchet.raise_error('unknown_task', ARRAY[restore_evicted.task_id::text]);
    END IF;
    RETURN hatchet._durable_wake(p_tenant, restore_evicted.task_id);
END
$$;
COMMENT ON FUNCTION hatchet.restore_evicted(uuid, uuid) IS
    'queue an evicted durable task now; false if it is not evicted';

-- Branches a durable task's log at node p_node of branch p_branch (Hatchet's BranchDurableTask, the SDK's
-- reset_durable_task): a new branch whose nodes before p_node are read from p_branch's lineage and from p_node on
-- are written anew, and the task runs again from its log on it. A running attempt is stopped (EVICTED with the
-- reason, a cancellation on channel hatchet_cancel for its worker) and queued at once; an evicted one is queued; a
-- finished task is replayed; a queued one just starts on the new branch. Waits of the abandoned entries are dropped.
CREATE FUNCTION hatchet.branch_durable_task(
    task_id   uuid,
    node_id   bigint,
    branch_id bigint DEFAULT 1,
    tenant_id uuid   DEFAULT NULL
) RETURNS TABLE (new_branch_id bigint, from_node_id bigint)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    p_tenant  uuid := hatchet._tenant(branch_durable_task.tenant_id);
    p_task    uuid := branch_durable_task.task_id;
    p_node    bigint := branch_durable_task.node_id;
    p_branch  bigint := branch_durable_task.branch_id;
    v_at      timestamptz;
    v_run_id  uuid;
    v_durable boolean;
    v_log     hatchet.durable_logs;
    v_from    hatchet.durable_logs;
    v_new     bigint;
    v_r       hatchet.running;
    v_reason  text;
BEGIN
    IF p_task IS NULL OR p_node IS NULL OR p_branch IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['task_id, node_id and branch_id']);
    END IF;
    v_at := hatchet.uuid_time(p_task);
    SELECT t.run_id, coalesce(d.is_durable, false) INTO v_run_id, v_durable
    FROM hatchet.tasks t
    LEFT JOIN hatchet.task_definitions d ON d.tenant_id = t.tenant_id AND d.id = t.task_definition_id
    WHERE t.tenant_id = p_tenant AND t.inserted_at = v_at AND t.id = p_task;
    IF NOT FOUND THEN
        PERFORM hatchet.raise_error('unknown_task', ARRAY[p_task::text]);
    END IF;
    IF NOT v_durable THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format('task "%s" is not a durable task', p_task)]);
    END IF;
    PERFORM hatchet._lock_runs(ARRAY[v_run_id]);
    SELECT l.* INTO v_log FROM hatchet.durable_logs l
    WHERE l.tenant_id = p_tenant AND l.task_inserted_at = v_at AND l.task_id = p_task
    FOR UPDATE;
    v_from := v_log;
    v_from.branch_id := p_branch;
    IF v_log.task_id IS NULL OR p_node < 1
       OR NOT (p_branch = 1 OR v_log.branches @> jsonb_build_array(jsonb_build_object('branch', p_branch)))
       OR NOT EXISTS (SELECT 1 FROM hatchet.durable_log_entries e
                      WHERE e.tenant_id = p_tenant AND e.task_inserted_at = v_at AND e.task_id = p_task
                        AND e.branch_id = hatchet._durable_branch_of(v_from, p_node) AND e.node_id = p_node) THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['durable log entry',
            format('node %s of branch %s of task %s', p_node, p_branch, p_task)]);
    END IF;
    v_new := 1 + greatest(1, coalesce((SELECT max((b->>'branch')::bigint)
                                       FROM jsonb_array_elements(v_log.branches) b), 1));
    UPDATE hatchet.durable_logs l
    SET branches = l.branches || jsonb_build_array(jsonb_build_object('branch', v_new, 'parent', p_branch,
                                                                      'first_node', p_node)),
        branch_id = v_new, next_node = 1
    WHERE l.tenant_id = p_tenant AND l.task_inserted_at = v_at AND l.task_id = p_task
    RETURNING l.* INTO v_log;
    -- Waits of entries the new branch does not see are abandoned.
    DELETE FROM hatchet.matches x
    WHERE x.tenant_id = p_tenant AND x.kind = 'SIGNAL' AND x.run_id = v_run_id AND x.task_id = p_task
      AND x.durable_branch_id <> 0
      AND NOT (x.durable_node_id < p_node
               AND x.durable_branch_id = hatchet._durable_branch_of(v_log, x.durable_node_id));

    v_reason := format('branched at node %s of branch %s: replaying on branch %s', p_node, p_branch, v_new);
    DELETE FROM hatchet.running r WHERE r.tenant_id = p_tenant AND r.task_id = p_task RETURNING r.* INTO v_r;
    IF v_r.task_id IS NOT NULL THEN
        PERFORM hatchet._release(p_tenant, ARRAY[v_r.worker_id], ARRAY[v_r.slot_type], ARRAY[v_r.slot_units], '{}');
        INSERT INTO hatchet.task_events (tenant_id, task_inserted_at, task_id, retry_count, event_type, worker_id,
                                         worker_name, reason, assigned_at)
        VALUES (p_tenant, v_r.task_inserted_at, p_task, v_r.retry_count, 'EVICTED', v_r.worker_id, v_r.worker_name,
                v_reason, v_r.assigned_at);
        INSERT INTO hatchet.delayed_queue (tenant_id, task_id, task_inserted_at, ready_at, retry_count,
                                           app_retry_count, internal_retry_count, priority, queue, reason,
                                           concurrency_key, run_id, task_definition_id)
        VALUES (p_tenant, p_task, v_r.task_inserted_at, 'infinity', v_r.retry_count + 1, v_r.app_retry_count,
                v_r.internal_retry_count, 4, v_r.queue, 'evicted', v_r.concurrency_key, v_r.run_id,
                v_r.task_definition_id);
        -- channel hatchet_cancel, payload "task_id:retry_count:worker_id": the worker stops the old invocation
        PERFORM pg_notify('hatchet_cancel',
                          p_task::text || ':' || v_r.retry_count || ':' || coalesce(v_r.worker_id::text, ''));
        PERFORM hatchet._durable_wake(p_tenant, p_task);
    ELSIF NOT hatchet._durable_wake(p_tenant, p_task)
          AND (SELECT s.state FROM hatchet._task_state(p_tenant, p_task) s) IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN
        PERFORM hatchet.replay_tasks(ARRAY[p_task], p_tenant);
    END IF;
    new_branch_id := v_new;
    from_node_id := p_node;
    RETURN NEXT;
END
$$;
COMMENT ON FUNCTION hatchet.branch_durable_task(uuid, bigint, bigint, uuid) IS
    'branch a durable task''s event log at a node and run the task again from its log on the new branch';

-- ---------------------------------------------------------------------------------------------------------------------
-- The legacy signal API (RegisterDurableEvent / ListenForDurableEvent, SDKs talking to engines below v0.80.0)
-- ---------------------------------------------------------------------------------------------------------------------

-- A wait named by the task's own signal key instead of a log position: it is an entry of branch 0 (the log proper
-- starts at branch 1) labelled with the key, armed once per key (registering the key again returns the same entry).
-- The running attempt is the invocation that registers it. Returns the entry's node.
CREATE FUNCTION hatchet.register_durable_event(
    task_id    uuid,
    signal_key text,
    conditions jsonb,
    tenant_id  uuid DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(register_durable_event.tenant_id);
    v_at     timestamptz := hatchet.uuid_time(register_durable_event.task_id);
    v_rc     integer;
    v_node   bigint;
    v_log    hatchet.durable_logs;
BEGIN
    IF coalesce(register_durable_event.signal_key, '') = '' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['signal_key must not be empty']);
    END IF;
    SELECT r.retry_count INTO v_rc FROM hatchet.running r
    WHERE r.tenant_id = p_tenant AND r.task_id = register_durable_event.task_id;
    IF v_rc IS NULL THEN
        PERFORM hatchet._reject_stale(p_tenant, register_durable_event.task_id, -1);
    END IF;
    v_log := hatchet._durable_begin(p_tenant, register_durable_event.task_id, v_rc + 1);
    SELECT e.node_id INTO v_node FROM hatchet.durable_log_entries e
    WHERE e.tenant_id = p_tenant AND e.task_inserted_at = v_at AND e.task_id = register_durable_event.task_id
      AND e.branch_id = 0 AND e.label = register_durable_event.signal_key;
    IF v_node IS NOT NULL THEN
        RETURN v_node;
    END IF;
    v_node := 1 + coalesce((SELECT max(e.node_id) FROM hatchet.durable_log_entries e
                            WHERE e.tenant_id = p_tenant AND e.task_inserted_at = v_at
                              AND e.task_id = register_durable_event.task_id AND e.branch_id = 0), 0);
    -- The wait itself is appended as the next entry of branch 0, the way durable_wait_for arms one.
    v_log.branch_id := 0;
    v_log.next_node := v_node;
    PERFORM hatchet._durable_arm(v_log, v_node, register_durable_event.conditions,
                                 register_durable_event.signal_key);
    RETURN v_node;
END
$$;
COMMENT ON FUNCTION hatchet.register_durable_event(uuid, text, jsonb, uuid) IS
    'legacy durable wait of the running attempt, named by a signal key (once per key)';

-- The result of a legacy wait once it is satisfied (the bytes ListenForDurableEvent sends), else NULL.
CREATE FUNCTION hatchet.durable_event_result(task_id uuid, signal_key text, tenant_id uuid DEFAULT NULL)
RETURNS bytea
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(e.result, convert_to(jsonb_build_object('error', e.error)::text, 'UTF8'))
    FROM hatchet.durable_log_entries e
    WHERE e.tenant_id = hatchet._tenant(durable_event_result.tenant_id)
      AND e.task_inserted_at = hatchet.uuid_time(durable_event_result.task_id)
      AND e.task_id = durable_event_result.task_id AND e.branch_id = 0 AND e.label = durable_event_result.signal_key
      AND e.satisfied_at IS NOT NULL
$$;
COMMENT ON FUNCTION hatchet.durable_event_result(uuid, text, uuid) IS
    'the result of a legacy durable wait (register_durable_event) once satisfied, else NULL';

-- ---------------------------------------------------------------------------------------------------------------------
-- Reads
-- ---------------------------------------------------------------------------------------------------------------------

-- What an entry is, for people: its label, else what it waits for ("sleep 5s and event order:paid", "sleep 1m or
-- event go" within one or-group), the child run, or "memo".
CREATE FUNCTION hatchet._durable_label(p_entry hatchet.durable_log_entries) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(p_entry.label, CASE p_entry.kind
        WHEN 'WAIT_FOR' THEN (
            SELECT string_agg(g.alts, ' and ' ORDER BY g.first)
            FROM (SELECT string_agg(CASE c->>'type' WHEN 'sleep' THEN 'sleep ' || (c->>'sleep_for')
                                                    ELSE 'event ' || (c->>'key') END, ' or ' ORDER BY ord) AS alts,
                         min(ord) AS first
                  FROM jsonb_array_elements(p_entry.conditions) WITH ORDINALITY AS x(c, ord)
                  GROUP BY coalesce(c->>'group', '')) g)
        WHEN 'RUN' THEN 'child run ' || coalesce(p_entry.child_run_id::text, '')
        ELSE 'memo' END)
$$;

-- A stored result as JSON: the JSON it holds, or the text as a JSON string when it is not JSON (a memo's bytes are
-- whatever the worker sent). NULL for no bytes.
CREATE FUNCTION hatchet._durable_json(p_bytes bytea) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_bytes IS NULL OR p_bytes = ''::bytea THEN
        RETURN NULL;
    END IF;
    BEGIN
        RETURN convert_from(p_bytes, 'UTF8')::jsonb;
    EXCEPTION WHEN OTHERS THEN
        RETURN to_jsonb(encode(p_bytes, 'escape'));
    END;
END
$$;

-- The event log of a durable task, in node order: what each entry is, whether it is satisfied, and what a waiting
-- or evicted task waits for (status WAITING).
CREATE FUNCTION hatchet.durable_log(task_id uuid, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (branch_id bigint, node_id bigint, kind text, label text, status text, invocation integer,
               child_run_id uuid, created_at timestamptz, satisfied_at timestamptz, result jsonb, error text)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(durable_log.tenant_id);
    v_at     timestamptz := hatchet.uuid_time(durable_log.task_id);
BEGIN
    IF durable_log.task_id IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['task_id']);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM hatchet.tasks t WHERE t.tenant_id = p_tenant AND t.inserted_at = v_at
                                                   AND t.id = durable_log.task_id) THEN
        PERFORM hatchet.raise_error('unknown_task', ARRAY[durable_log.task_id::text]);
    END IF;
    RETURN QUERY
    SELECT e.branch_id, e.node_id, e.kind,
           hatchet._durable_label(e),
           CASE WHEN e.satisfied_at IS NULL THEN 'WAITING' WHEN e.is_failure THEN 'FAILED' ELSE 'SATISFIED' END,
           e.invocation, e.child_run_id, e.created_at, e.satisfied_at,
           hatchet._durable_json(e.result),
           e.error
    FROM hatchet.durable_log_entries e
    WHERE e.tenant_id = p_tenant AND e.task_inserted_at = v_at AND e.task_id = durable_log.task_id
    ORDER BY e.branch_id, e.node_id;
END
$$;
COMMENT ON FUNCTION hatchet.durable_log(uuid, uuid) IS
    'the event log of a durable task: memo, wait and child-run entries in node order, and which are still waiting';
