-- The dashboard's status filter and counts (sql/dashboard.sql over hatchet.run_outcomes): after every transition of a
-- run (queued, running, retried, completed, failed, cancelled, replayed, skipped, an on_failure task, an evicted
-- durable task), dashboard_runs(with_status => S) returns exactly the runs hatchet.run_status puts in S, newest first
-- and each once, and run_status_counts counts them (each status up to a cap: counting up to 1 says 1 and "more" for
-- two or more). Then the metadata filter, alone and with a status, for a value rare among the day's runs (read through
-- runs_metadata_idx) and one common among them (a walk of the day). Earlier tests' runs share the database: only this
-- test's workflows are looked at. Everything is rolled back.
\set VERBOSITY terse
BEGIN;
SELECT hatchet.register_workflow('{"name": "st_chain", "tasks": [
    {"readable_id": "a"}, {"readable_id": "b", "parents": ["a"], "retries": 1}]}') IS NOT NULL AS chain;
SELECT hatchet.register_workflow('{"name": "st_single", "tasks": [{"readable_id": "s"}]}') IS NOT NULL AS single;
SELECT hatchet.register_workflow('{"name": "st_handled", "tasks": [{"readable_id": "f"}],
    "on_failure_task": {"readable_id": "handler"}}') IS NOT NULL AS handled;
SELECT hatchet.register_workflow('{"name": "st_guarded", "tasks": [{"readable_id": "start"},
    {"readable_id": "t", "parents": ["start"], "conditions": {
        "wait_for": [{"kind": "sleep", "sleep_for": "1h"}],
        "skip_if": [{"kind": "event", "key": "st_guarded:skip"}]}}]}') IS NOT NULL AS guarded;
SELECT hatchet.register_workflow('{"name": "st_durable", "tasks": [{"readable_id": "d", "is_durable": true}]}')
    IS NOT NULL AS durable;
CREATE TEMP TABLE st_workflows AS
SELECT array_agg(id) AS ids FROM hatchet.list_workflows() WHERE name LIKE 'st\_%';

-- Per status: how many of this test's runs hatchet.run_status puts in it; whether dashboard_runs with that status
-- returns exactly those runs (as a list: in order, each once), and whether run_status_counts says as many.
CREATE FUNCTION pg_temp.filters() RETURNS text LANGUAGE sql AS $$
    WITH truth AS (
        SELECT r.id, r.inserted_at, hatchet.run_status(r.id) AS status
        FROM hatchet.runs r
        JOIN hatchet.workflow_versions v ON v.tenant_id = r.tenant_id AND v.id = r.workflow_version_id
        JOIN hatchet.workflows w ON w.tenant_id = v.tenant_id AND w.id = v.workflow_id
        WHERE w.external_id = ANY ((SELECT ids FROM st_workflows)::uuid[])
    ), counts AS (
        SELECT c.status, c.runs, c.more FROM hatchet.run_status_counts(workflow_ids => (SELECT ids FROM st_workflows)) c
    ), capped AS (
        SELECT c.status, c.runs, c.more
        FROM hatchet.run_status_counts(workflow_ids => (SELECT ids FROM st_workflows), up_to => 1) c
    ), checked AS (
        SELECT s.status, s.n, (SELECT count(*) FROM truth t WHERE t.status = s.status) AS runs,
               ARRAY(SELECT d.id FROM hatchet.dashboard_runs(workflow_ids => (SELECT ids FROM st_workflows),
                                                            with_status => s.status, "limit" => 500) d)
                   = ARRAY(SELECT t.id FROM truth t WHERE t.status = s.status
                           ORDER BY t.inserted_at DESC, t.id DESC) AS listed,
               (SELECT c.runs FROM counts c WHERE c.status = s.status AND NOT c.more)
                   = (SELECT count(*) FROM truth t WHERE t.status = s.status) AS counted,
               (SELECT (c.runs, c.more) FROM capped c WHERE c.status = s.status)
                   = (SELECT (least(count(*), 1), count(*) > 1) FROM truth t WHERE t.status = s.status) AS capped
        FROM unnest(ARRAY['QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED']) WITH ORDINALITY s(status, n)
    )
    SELECT string_agg(c.status || ' ' || c.runs
                      || CASE WHEN c.listed THEN '' ELSE ' (LIST WRONG)' END
                      || CASE WHEN c.counted THEN '' ELSE ' (COUNT WRONG)' END
                      || CASE WHEN c.capped THEN '' ELSE ' (CAPPED COUNT WRONG)' END, ', ' ORDER BY c.n)
    FROM checked c
$$;
-- Claim one task of a queue as a SQL worker, then complete it, fail it for good, or fail it with retries allowed.
CREATE FUNCTION pg_temp.work(q text, how text DEFAULT 'complete') RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE t record;
BEGIN
    SELECT * INTO t FROM hatchet.dequeue(q, 'st-worker');
    IF NOT FOUND THEN RETURN NULL; END IF;
    CASE how
        WHEN 'complete' THEN PERFORM hatchet.complete(t.task_id, t.retry_count, '{}');
        WHEN 'fail' THEN PERFORM hatchet.fail(t.task_id, t.retry_count, 'boom', retryable => false);
        WHEN 'retry' THEN PERFORM hatchet.fail(t.task_id, t.retry_count, 'try again');
        WHEN 'claim' THEN NULL;
    END CASE;
    RETURN t.task_id;
END $$;

SELECT hatchet.run_workflow('st_chain', '{"n": 1}') AS chain1 \gset
SELECT hatchet.run_workflow('st_chain', '{"n": 2}') AS chain2 \gset
SELECT hatchet.run_workflow('st_single', '{"n": 3}') AS single1 \gset
SELECT hatchet.run_workflow('st_single', '{"n": 4}') AS single2 \gset
SELECT pg_temp.filters() AS queued;
SELECT pg_temp.work('st_chain:a', 'claim') IS NOT NULL AS claimed;
SELECT pg_temp.filters() AS one_running;
SELECT hatchet.complete(task_id, retry_count, '{}') IS NOT NULL AS a_done FROM hatchet.running WHERE queue = 'st_chain:a';
SELECT pg_temp.filters() AS first_task_done_second_queued;
SELECT pg_temp.work('st_chain:a') IS NOT NULL AS second_a_done;
SELECT pg_temp.work('st_chain:b') IS NOT NULL AS b_done;
SELECT pg_temp.filters() AS one_completed;
-- chain2's b fails with a retry left: queued again (RETRYING), then fails for good.
SELECT pg_temp.work('st_chain:b', 'retry') IS NOT NULL AS b_retrying;
SELECT pg_temp.filters() AS retrying;
SELECT pg_temp.work('st_chain:b', 'fail') IS NOT NULL AS b_failed;
SELECT hatchet.run_status(:'chain2') AS chain2;
SELECT pg_temp.work('st_single:s', 'fail') IS NOT NULL AS single_failed;
SELECT hatchet.cancel_run(:'single2') AS cancelled;
SELECT pg_temp.filters() AS completed_failed_cancelled;
-- Which outcomes each run's tasks reached: one row per run and outcome.
SELECT CASE o.run_id WHEN :'chain1' THEN 'chain1' WHEN :'chain2' THEN 'chain2' WHEN :'single1' THEN 'single1'
                     WHEN :'single2' THEN 'single2' END AS run, string_agg(o.outcome::text, ' ' ORDER BY o.outcome) AS outcomes
FROM hatchet.run_outcomes o WHERE o.run_id IN (:'chain1', :'chain2', :'single1', :'single2') GROUP BY o.run_id ORDER BY 1;

-- Replays: the failed chain runs again (its FAILED row stays: the filter checks the status) and completes; the
-- failed single run is replayed and cancelled while queued, so it ends CANCELLED with a FAILED row too.
SELECT count(*) AS replayed FROM hatchet.replay_tasks(ARRAY[:'chain2'::uuid]);
SELECT pg_temp.filters() AS failed_run_replayed;
SELECT pg_temp.work('st_chain:a') IS NOT NULL AS a_again, pg_temp.work('st_chain:b') IS NOT NULL AS b_again;
SELECT hatchet.run_status(:'chain2') AS chain2;
SELECT count(*) AS replayed FROM hatchet.replay_tasks(ARRAY[:'single1'::uuid]);
SELECT hatchet.cancel_run(:'single1') AS cancelled;
SELECT hatchet.run_status(:'single1') AS single1;
SELECT pg_temp.filters() AS after_replays;
-- Replaying one task of the completed chain: a runs again, b waits for it; then both complete again.
SELECT hatchet.replay_tasks(ARRAY[(SELECT id FROM hatchet.tasks WHERE run_id = :'chain1' AND readable_id = 'a')])
    IS NOT NULL AS replayed;
SELECT pg_temp.filters() AS task_replayed;
SELECT pg_temp.work('st_chain:a') IS NOT NULL AS a_again;
SELECT pg_temp.filters() AS replayed_task_done_child_queued;
SELECT pg_temp.work('st_chain:b') IS NOT NULL AS b_again;
SELECT pg_temp.filters() AS replayed_run_completed;

-- An on_failure task: the run is RUNNING while its handler runs, FAILED after.
SELECT hatchet.run_workflow('st_handled') AS handled \gset
SELECT pg_temp.work('st_handled:f', 'fail') IS NOT NULL AS f_failed;
SELECT hatchet.run_status(:'handled') AS handled;
SELECT pg_temp.filters() AS handler_queued;
SELECT pg_temp.work('st_handled:handler') IS NOT NULL AS handler_done;
SELECT hatchet.run_status(:'handled') AS handled;
SELECT pg_temp.filters() AS handled_failure;

-- A skipped task (skip_if on an event) counts as completed.
SELECT hatchet.run_workflow('st_guarded') AS guarded \gset
SELECT pg_temp.work('st_guarded:start') IS NOT NULL AS started;
SELECT pg_temp.filters() AS waiting_for_a_condition;
SELECT hatchet.push_event('st_guarded:skip') IS NOT NULL AS skip_pushed;
SELECT hatchet.run_status(:'guarded') AS guarded;
SELECT pg_temp.filters() AS skipped;

-- An evicted durable task is RUNNING (off any worker, waiting in delayed_queue); restored and completed, COMPLETED.
SELECT hatchet.run_workflow('st_durable') AS dur \gset
SELECT pg_temp.work('st_durable:d', 'claim') = :'dur' AS claimed;
SELECT node_id FROM hatchet.durable_wait_for(:'dur', 1, '[{"type": "sleep", "sleep_for": "1h", "group": "g"}]', 'nap');
SELECT hatchet.durable_evict(:'dur', 1, 'ttl exceeded') AS restores_as_attempt;
SELECT hatchet.run_status(:'dur') AS evicted;
SELECT pg_temp.filters() AS durable_evicted;
SELECT hatchet.restore_evicted(:'dur') AS restored;
SELECT hatchet.complete(task_id, retry_count, '{}') IS NOT NULL AS dur_done
FROM hatchet.dequeue('st_durable:d', 'st-worker');
SELECT pg_temp.filters() AS durable_done;

-- Keyset pages of a status filter add up to the whole list; a window with no runs has none.
SELECT hatchet.run_workflow('st_single') IS NOT NULL AS created, pg_temp.work('st_single:s') IS NOT NULL AS completed
FROM generate_series(1, 3);
SELECT count(hatchet.run_workflow('st_single')) AS left_queued FROM generate_series(1, 3);
SELECT pg_temp.filters() AS before_paging;
CREATE FUNCTION pg_temp.paged(s text, size integer) RETURNS uuid[] LANGUAGE plpgsql AS $$
DECLARE acc uuid[] := '{}'; page uuid[]; last uuid;
BEGIN
    LOOP
        page := ARRAY(SELECT d.id FROM hatchet.dashboard_runs(workflow_ids => (SELECT ids FROM st_workflows),
                                                              with_status => s, before => last, "limit" => size) d);
        acc := acc || page;
        EXIT WHEN cardinality(page) < size;
        last := page[size];
    END LOOP;
    RETURN acc;
END $$;
SELECT s AS status, cardinality(pg_temp.paged(s, 2)) AS runs,
       pg_temp.paged(s, 2) = ARRAY(SELECT d.id FROM hatchet.dashboard_runs(
           workflow_ids => (SELECT ids FROM st_workflows), with_status => s, "limit" => 500) d) AS pages_add_up
FROM unnest(ARRAY['QUEUED', 'COMPLETED', 'FAILED', 'CANCELLED']) s;
SELECT count(*) AS completed_in_the_future FROM hatchet.dashboard_runs(
    since => now() + interval '1 hour', workflow_ids => (SELECT ids FROM st_workflows), with_status => 'COMPLETED');
SELECT count(*) AS running_in_the_future FROM hatchet.dashboard_runs(
    since => now() + interval '1 hour', workflow_ids => (SELECT ids FROM st_workflows), with_status => 'RUNNING');
-- The metadata filter: 2 runs of 50 new ones have the rare value (fewer than 20 of the newest 2,000: the index's
-- side), 48 the common one (a walk); the oldest 20 of them complete. With and without a status, dashboard_runs returns
-- what its status list filtered by hand holds (in order), keyset pages of 3 add up to it, and run_status_counts counts
-- it.
SELECT count(hatchet.run_workflow('st_single', '{}', jsonb_build_object(
           'm', CASE WHEN i IN (10, 40) THEN 'rare' ELSE 'common' END))) AS tagged
FROM generate_series(1, 50) i;
SELECT count(pg_temp.work('st_single:s')) AS completed FROM generate_series(1, 20);
CREATE FUNCTION pg_temp.paged_m(v text, s text, size integer) RETURNS uuid[] LANGUAGE plpgsql AS $$
DECLARE acc uuid[] := '{}'; page uuid[]; last uuid;
BEGIN
    LOOP
        page := ARRAY(SELECT d.id FROM hatchet.dashboard_runs(workflow_ids => (SELECT ids FROM st_workflows),
                                                              metadata => jsonb_build_object('m', v), with_status => s,
                                                              before => last, "limit" => size) d);
        acc := acc || page;
        EXIT WHEN cardinality(page) < size;
        last := page[size];
    END LOOP;
    RETURN acc;
END $$;
SELECT v.v AS value, coalesce(s.s, 'any') AS status, count(l.id) AS runs,
       ARRAY(SELECT d.id FROM hatchet.dashboard_runs(workflow_ids => (SELECT ids FROM st_workflows),
                                                    metadata => jsonb_build_object('m', v.v), with_status => s.s,
                                                    "limit" => 500) d)
           = ARRAY(SELECT l2.id FROM hatchet.dashboard_runs(workflow_ids => (SELECT ids FROM st_workflows),
                                                           with_status => s.s, "limit" => 500) l2
                   WHERE l2.additional_metadata @> jsonb_build_object('m', v.v)) AS same_list,
       pg_temp.paged_m(v.v, s.s, 3)
           = ARRAY(SELECT d.id FROM hatchet.dashboard_runs(workflow_ids => (SELECT ids FROM st_workflows),
                                                          metadata => jsonb_build_object('m', v.v), with_status => s.s,
                                                          "limit" => 500) d) AS pages_add_up,
       s.s IS NULL OR (SELECT c.runs FROM hatchet.run_status_counts(workflow_ids => (SELECT ids FROM st_workflows),
                                                                  metadata => jsonb_build_object('m', v.v)) c
                       WHERE c.status = s.s) = count(l.id) AS counted
FROM (VALUES ('rare'), ('common')) v(v)
CROSS JOIN (VALUES (NULL), ('QUEUED'), ('COMPLETED')) s(s)
LEFT JOIN LATERAL (SELECT l.id FROM hatchet.dashboard_runs(workflow_ids => (SELECT ids FROM st_workflows),
                                                          with_status => s.s, "limit" => 500) l
                   WHERE l.additional_metadata @> jsonb_build_object('m', v.v)) l ON true
GROUP BY v.v, s.s ORDER BY v.v DESC, s.s NULLS FIRST;

-- A task enqueued on its own is no workflow run: no row in run_outcomes.
SELECT hatchet.enqueue('st_solo') AS solo \gset
SELECT pg_temp.work('st_solo') = :'solo' AS solo_done,
       (SELECT count(*) FROM hatchet.run_outcomes WHERE run_id = :'solo') AS solo_outcomes;
ROLLBACK;
