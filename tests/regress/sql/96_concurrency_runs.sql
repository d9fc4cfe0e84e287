-- Workflow-level concurrency with runs of several tasks (issue 20, Hatchet's concurrency_workflow_level and
-- concurrency_cancel_newest examples): a run that waited for its key and then got the slot lets all of its waiting
-- tasks through, and a run cancelled by CANCEL_NEWEST at creation cancels its later tasks and ends CANCELLED.
\set VERBOSITY terse
-- Each group's running count equals the slots held and stays within max_runs.
CREATE FUNCTION pg_temp.groups_consistent() RETURNS boolean LANGUAGE sql AS $$
    SELECT NOT EXISTS (SELECT 1 FROM hatchet.concurrency_groups g
                       WHERE g.running <> (SELECT count(*) FROM hatchet.concurrency_slots s
                                           WHERE s.tenant_id = g.tenant_id AND s.scope = g.scope AND s.key = g.key)
                          OR g.running > g.max_runs)
$$;

BEGIN;
-- Two root tasks, one workflow-level key (max 1): run 2 waits with both of its tasks.
SELECT hatchet.register_workflow($${"name": "TwoRoots",
    "concurrency": {"expression": "input.group", "max_runs": 1, "limit_strategy": "GROUP_ROUND_ROBIN"},
    "tasks": [{"readable_id": "t1"}, {"readable_id": "t2"}]}$$) IS NOT NULL AS registered;
SELECT hatchet.run_workflow('TwoRoots', '{"group": "g"}') AS run1 \gset
SELECT hatchet.run_workflow('TwoRoots', '{"group": "g"}') AS run2 \gset
SELECT (SELECT count(*) FROM hatchet.ready_queue WHERE run_id = :'run1') AS run1_ready,
       (SELECT count(*) FROM hatchet.concurrency_queue WHERE run_id = :'run2') AS run2_waiting;
SELECT hatchet.complete(task_id, retry_count) IS NOT NULL AS done
FROM hatchet.dequeue('tworoots:t1', n => 10) UNION ALL
SELECT hatchet.complete(task_id, retry_count) IS NOT NULL FROM hatchet.dequeue('tworoots:t2', n => 10);
-- Run 1 is done: run 2 gets the slot, and with it both of its tasks are admitted (none left waiting).
SELECT hatchet.run_status(:'run1') AS run1, hatchet.run_status(:'run2') AS run2;
SELECT (SELECT count(*) FROM hatchet.ready_queue WHERE run_id = :'run2') AS run2_ready,
       (SELECT count(*) FROM hatchet.concurrency_queue WHERE run_id = :'run2') AS run2_waiting;
SELECT key, running, max_runs FROM hatchet.concurrency_groups WHERE scope LIKE 'workflow:%';
SELECT hatchet.complete(task_id, retry_count) IS NOT NULL AS done
FROM hatchet.dequeue('tworoots:t1', n => 10) UNION ALL
SELECT hatchet.complete(task_id, retry_count) IS NOT NULL FROM hatchet.dequeue('tworoots:t2', n => 10);
SELECT hatchet.run_status(:'run2') AS run2;
SELECT key, running FROM hatchet.concurrency_groups WHERE scope LIKE 'workflow:%';
SELECT pg_temp.groups_consistent();
ROLLBACK;

BEGIN;
-- Hatchet's example shape: two keys (digit max 2, name max 1), two root tasks. Run 2 holds its digit slot and waits
-- at the name gate with both tasks; run 3 (same digit, another name) waits at the digit gate with both tasks. When
-- run 1 ends, run 3 gets the digit slot and its free name for both tasks, and run 2 the name slot for both.
SELECT hatchet.register_workflow($${"name": "TwoKeys", "concurrency": [
        {"expression": "input.digit", "max_runs": 2, "limit_strategy": "GROUP_ROUND_ROBIN"},
        {"expression": "input.name", "max_runs": 1, "limit_strategy": "GROUP_ROUND_ROBIN"}],
    "tasks": [{"readable_id": "t1"}, {"readable_id": "t2"}]}$$) IS NOT NULL AS registered;
SELECT hatchet.run_workflow('TwoKeys', '{"digit": "1", "name": "anna"}') AS run1 \gset
SELECT hatchet.run_workflow('TwoKeys', '{"digit": "1", "name": "anna"}') AS run2 \gset
SELECT hatchet.run_workflow('TwoKeys', '{"digit": "1", "name": "levin"}') AS run3 \gset
SELECT CASE run_id WHEN :'run2' THEN 'run2' WHEN :'run3' THEN 'run3' END AS run, key, stage, count(*)
FROM hatchet.concurrency_queue WHERE run_id IN (:'run2', :'run3') GROUP BY 1, key, stage ORDER BY 1;
SELECT hatchet.complete(task_id, retry_count) IS NOT NULL AS done
FROM hatchet.dequeue('twokeys:t1', n => 10) UNION ALL
SELECT hatchet.complete(task_id, retry_count) IS NOT NULL FROM hatchet.dequeue('twokeys:t2', n => 10);
SELECT hatchet.run_status(:'run1') AS run1,
       (SELECT count(*) FROM hatchet.ready_queue WHERE run_id IN (:'run2', :'run3')) AS run2_run3_ready,
       (SELECT count(*) FROM hatchet.concurrency_queue WHERE run_id IN (:'run2', :'run3')) AS run2_run3_waiting;
SELECT key, running, max_runs FROM hatchet.concurrency_groups WHERE scope LIKE 'workflow:%' ORDER BY key;
SELECT hatchet.complete(task_id, retry_count) IS NOT NULL AS done
FROM hatchet.dequeue('twokeys:t1', n => 10) UNION ALL
SELECT hatchet.complete(task_id, retry_count) IS NOT NULL FROM hatchet.dequeue('twokeys:t2', n => 10);
SELECT hatchet.run_status(:'run2') AS run2, hatchet.run_status(:'run3') AS run3;
SELECT key, running FROM hatchet.concurrency_groups WHERE scope LIKE 'workflow:%' ORDER BY key;
SELECT pg_temp.groups_consistent();
ROLLBACK;

BEGIN;
-- CANCEL_NEWEST at workflow level with a DAG (step2 needs step1): the extra run's step1 is cancelled at admission,
-- step2 is cancelled with it, and the run ends CANCELLED. The first run is untouched and finishes.
SELECT hatchet.register_workflow($${"name": "CancelNewestDag",
    "concurrency": {"expression": "input.group", "max_runs": 1, "limit_strategy": "CANCEL_NEWEST"},
    "tasks": [{"readable_id": "step1"}, {"readable_id": "step2", "parents": ["step1"]}]}$$) IS NOT NULL AS registered;
SELECT hatchet.run_workflow('CancelNewestDag', '{"group": "A"}') AS first \gset
SELECT hatchet.run_workflow('CancelNewestDag', '{"group": "A"}') AS extra \gset
SELECT hatchet.run_status(:'first') AS first, hatchet.run_status(:'extra') AS extra;
SELECT readable_id, status FROM hatchet.run_tasks(:'extra') ORDER BY readable_id;
SELECT count(*) AS extra_pending_matches FROM hatchet.matches WHERE run_id = :'extra';
SELECT hatchet.complete(task_id, retry_count) IS NOT NULL AS done FROM hatchet.dequeue('cancelnewestdag:step1');
SELECT hatchet.complete(task_id, retry_count) IS NOT NULL AS done FROM hatchet.dequeue('cancelnewestdag:step2');
SELECT hatchet.run_status(:'first') AS first;
SELECT key, running FROM hatchet.concurrency_groups WHERE scope LIKE 'workflow:%';
SELECT pg_temp.groups_consistent();
ROLLBACK;
