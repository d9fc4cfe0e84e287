-- Conditions on DAG tasks (Hatchet's wait_for / skip_if / cancel_if): sleeps, user events (key, scope, CEL over the
-- payload), parent-output CEL; conditions with the same or_group are OR'ed, groups AND'ed.
-- Sleeps are woken here by calling the match engine with a later "now" (deterministic); 86_worker_time.sql shows the
-- background worker doing it in real time.
\set VERBOSITY terse
CREATE FUNCTION pg_temp.work(q text, output jsonb DEFAULT '{}') RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE t record;
BEGIN
    SELECT * INTO t FROM hatchet.dequeue(q, 'sql-worker');
    IF NOT FOUND THEN RETURN NULL; END IF;
    PERFORM hatchet.complete(t.task_id, t.retry_count, output);
    RETURN t.input;
END $$;
-- What the worker's pass does for the sleeps of one run, as if it ran `after` from now.
CREATE FUNCTION pg_temp.wake(run uuid, after interval) RETURNS void LANGUAGE plpgsql AS $$
DECLARE m uuid;
BEGIN
    PERFORM hatchet._lock_runs(ARRAY[run]);
    FOR m IN SELECT id FROM hatchet.matches WHERE run_id = run AND wake_at IS NOT NULL ORDER BY id LOOP
        PERFORM hatchet._satisfy_match(hatchet.default_tenant(), m, 'sleep', clock_timestamp() + after);
    END LOOP;
END $$;
CREATE FUNCTION pg_temp.status(run uuid, task text) RETURNS text LANGUAGE sql AS $$
    SELECT status FROM hatchet.run_tasks(run) WHERE readable_id = task $$;

-- 1. A root task that waits 1 minute before it is queued (a sleep from the start of the run).
SELECT hatchet.register_workflow('{"name": "nap", "tasks": [{"readable_id": "t",
    "conditions": {"wait_for": [{"kind": "sleep", "sleep_for": "1m"}]}}]}') IS NOT NULL AS registered;
SELECT hatchet.run_workflow('nap', '{"n": 1}') AS run \gset
SELECT readable_id, status, task_id = :'run' AS task_will_be_run FROM hatchet.run_tasks(:'run');
SELECT hatchet.run_status(:'run'), wake_at > now() + interval '50 seconds' AS wakes_in_a_minute
FROM hatchet.matches WHERE run_id = :'run';
SELECT pg_temp.wake(:'run', '30 seconds');
SELECT pg_temp.status(:'run', 't') AS after_30s;
SELECT pg_temp.wake(:'run', '61 seconds');
SELECT pg_temp.status(:'run', 't') AS after_61s, (SELECT count(*) FROM hatchet.matches WHERE run_id = :'run') AS pending;
SELECT pg_temp.work('nap:t') AS input;

-- 2. After its parent: wait 1 hour OR for event "go" (one or_group). The wait starts when the parent completes, so an
-- event pushed before that does not count.
SELECT hatchet.register_workflow('{"name": "either", "tasks": [{"readable_id": "start"},
    {"readable_id": "next", "parents": ["start"], "conditions": {"wait_for": [
        {"kind": "sleep", "sleep_for": "1h", "or_group": "g"},
        {"kind": "event", "key": "either:go", "or_group": "g", "data_key": "go_event"}]}}]}') IS NOT NULL AS registered;
SELECT hatchet.run_workflow('either') AS run \gset
SELECT hatchet.push_event('either:go', '{"early": true}') IS NOT NULL AS pushed_too_early;
SELECT pg_temp.status(:'run', 'next') AS before_parent;
SELECT pg_temp.work('either:start', '{"s": 1}') IS NOT NULL AS start_done;
SELECT pg_temp.status(:'run', 'next') AS waiting, (SELECT event_keys FROM hatchet.matches WHERE run_id = :'run');
SELECT hatchet.push_event('either:go', '{"at": "now"}') IS NOT NULL AS pushed;
SELECT pg_temp.status(:'run', 'next') AS after_event;
SELECT pg_temp.work('either:next') AS input;
-- The same, satisfied by the sleep instead.
SELECT hatchet.run_workflow('either') AS run \gset
SELECT pg_temp.work('either:start') IS NOT NULL AS start_done;
SELECT pg_temp.wake(:'run', '2 hours');
SELECT pg_temp.work('either:next') AS input;

-- 3. Two groups are AND'ed: sleep 10 minutes AND event "ready".
SELECT hatchet.register_workflow('{"name": "both", "tasks": [{"readable_id": "t", "conditions": {"wait_for": [
    {"kind": "sleep", "sleep_for": "10m", "or_group": "time"},
    {"kind": "event", "key": "both:ready", "or_group": "signal"}]}}]}') IS NOT NULL AS registered;
SELECT hatchet.run_workflow('both') AS run \gset
SELECT hatchet.push_event('both:ready') IS NOT NULL AS pushed;
SELECT pg_temp.status(:'run', 't') AS event_only;
SELECT pg_temp.wake(:'run', '11 minutes');
SELECT pg_temp.status(:'run', 't') AS event_and_sleep;
SELECT pg_temp.work('both:t') AS input;
-- Sleep first, then the event.
SELECT hatchet.run_workflow('both') AS run \gset
SELECT pg_temp.wake(:'run', '11 minutes');
SELECT pg_temp.status(:'run', 't') AS sleep_only, (SELECT wake_at IS NULL FROM hatchet.matches WHERE run_id = :'run')
    AS no_more_wakeups;
SELECT hatchet.push_event('both:ready') IS NOT NULL AS pushed;
SELECT pg_temp.status(:'run', 't') AS sleep_and_event;
SELECT pg_temp.work('both:t') IS NOT NULL AS done;

-- 4. A user event with a scope and a CEL expression over its payload.
SELECT hatchet.register_workflow($${"name": "approval", "tasks": [{"readable_id": "t", "conditions": {"wait_for": [
    {"kind": "event", "key": "approval:decided", "scope": "acme", "expression": "input.approved == true"}]}}]}$$)
    IS NOT NULL AS registered;
SELECT hatchet.run_workflow('approval') AS run \gset
SELECT hatchet.push_event('approval:decided', '{"approved": true}', scope => 'other') IS NOT NULL AS wrong_scope,
       hatchet.push_event('approval:decided', '{"approved": true}') IS NOT NULL AS no_scope,
       hatchet.push_event('approval:decided', '{"approved": false}', scope => 'acme') IS NOT NULL AS not_approved,
       hatchet.push_event('approval:other', '{"approved": true}', scope => 'acme') IS NOT NULL AS other_key;
SELECT pg_temp.status(:'run', 't') AS still_waiting;
SELECT hatchet.push_event('approval:decided', '{"approved": true, "by": "ann"}', scope => 'acme') IS NOT NULL AS approved;
SELECT pg_temp.work('approval:t') AS input;

-- 5. skip_if and cancel_if on user events, alongside a wait: whichever comes first decides.
SELECT hatchet.register_workflow('{"name": "guarded", "tasks": [{"readable_id": "start"},
    {"readable_id": "t", "parents": ["start"], "conditions": {
        "wait_for": [{"kind": "sleep", "sleep_for": "1h"}],
        "skip_if": [{"kind": "event", "key": "guarded:skip"}],
        "cancel_if": [{"kind": "event", "key": "guarded:cancel"}]}},
    {"readable_id": "after", "parents": ["t"]}]}') IS NOT NULL AS registered;
SELECT hatchet.run_workflow('guarded') AS skip_run \gset
SELECT hatchet.run_workflow('guarded') AS cancel_run \gset
SELECT hatchet.run_workflow('guarded') AS sleep_run \gset
SELECT count(pg_temp.work('guarded:start')) AS starts_done FROM generate_series(1, 3);
SELECT hatchet.push_event('guarded:skip') IS NOT NULL AS skip_pushed;
SELECT readable_id, status, error FROM hatchet.run_tasks(:'skip_run') ORDER BY readable_id;
SELECT hatchet.run_status(:'skip_run') AS skip_run_status;
-- The skip event reached every waiting run; the next ones are fresh.
SELECT pg_temp.status(:'cancel_run', 't') AS also_skipped, pg_temp.status(:'sleep_run', 't') AS also_skipped;
SELECT hatchet.run_workflow('guarded') AS cancel_run \gset
SELECT hatchet.run_workflow('guarded') AS sleep_run \gset
SELECT count(pg_temp.work('guarded:start')) AS starts_done FROM generate_series(1, 2);
SELECT hatchet.cancel_run(:'sleep_run') >= 0 AS sleep_run_aside;  -- keep it out of the cancel event
SELECT hatchet.push_event('guarded:cancel') IS NOT NULL AS cancel_pushed;
SELECT readable_id, status, error FROM hatchet.run_tasks(:'cancel_run') ORDER BY readable_id;
SELECT hatchet.run_status(:'cancel_run') AS cancel_run_status;
SELECT hatchet.run_workflow('guarded') AS sleep_run \gset
SELECT pg_temp.work('guarded:start') IS NOT NULL AS start_done;
SELECT pg_temp.wake(:'sleep_run', '61 minutes');
SELECT readable_id, status FROM hatchet.run_tasks(:'sleep_run') ORDER BY readable_id;
SELECT hatchet.cancel_run(:'sleep_run') AS cleaned;

-- 6. wait_for on a parent's output (CEL with `output` and the run's `input`).
SELECT hatchet.register_workflow($${"name": "threshold", "tasks": [{"readable_id": "measure"},
    {"readable_id": "alert", "parents": ["measure"],
     "conditions": {"wait_for": [{"kind": "parent", "parent": "measure", "expression": "output.value > input.limit"}],
                    "skip_if": [{"kind": "parent", "parent": "measure", "expression": "output.value <= input.limit"}]}}]}$$)
    IS NOT NULL AS registered;
SELECT hatchet.run_workflow('threshold', '{"limit": 10}') AS high \gset
SELECT hatchet.run_workflow('threshold', '{"limit": 10}') AS low \gset
SELECT pg_temp.work('threshold:measure', '{"value": 42}') IS NOT NULL AS measured;
SELECT pg_temp.work('threshold:measure', '{"value": 3}') IS NOT NULL AS measured;
SELECT pg_temp.status(:'high', 'alert') AS high_alert, pg_temp.status(:'low', 'alert') AS low_alert;
SELECT pg_temp.work('threshold:alert') AS alert_input;

-- 7. An event condition whose CEL fails on the payload fails the task with the reason.
SELECT hatchet.run_workflow('approval') AS run \gset
SELECT hatchet.push_event('approval:decided', '{"nothing": 1}', scope => 'acme') IS NOT NULL AS pushed;
SELECT readable_id, status, error FROM hatchet.run_tasks(:'run');
SELECT hatchet.run_status(:'run');
SELECT count(*) AS matches_left FROM hatchet.matches m JOIN hatchet.runs r ON r.id = m.run_id
JOIN hatchet.workflow_versions v ON v.id = r.workflow_version_id JOIN hatchet.workflows w ON w.id = v.workflow_id
WHERE w.name IN ('nap', 'either', 'both', 'approval', 'guarded', 'threshold');
