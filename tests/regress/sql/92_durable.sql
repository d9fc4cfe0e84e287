-- Durable execution (sql/durable.sql): a durable task's event log (memo, waits, child runs), replay by node,
-- non-determinism, fencing of stale invocations, eviction and restore. Attempts are claimed with hatchet.dequeue
-- (invocation = retry_count + 1); sleeps are woken by calling the match engine with a later "now".
\set VERBOSITY terse
CREATE FUNCTION pg_temp.wake(run uuid, after interval) RETURNS void LANGUAGE plpgsql AS $$
DECLARE m uuid;
BEGIN
    PERFORM hatchet._lock_runs(ARRAY[run]);
    FOR m IN SELECT id FROM hatchet.matches WHERE run_id = run AND wake_at IS NOT NULL ORDER BY id LOOP
        PERFORM hatchet._satisfy_match(hatchet.default_tenant(), m, 'sleep', clock_timestamp() + after);
    END LOOP;
END $$;
-- Generated ids are not part of the output: <id> stands for any.
CREATE FUNCTION pg_temp.noid(t text) RETURNS text LANGUAGE sql AS $$
    SELECT regexp_replace(t, '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<id>', 'g') $$;
CREATE FUNCTION pg_temp.log(task uuid) RETURNS TABLE (node bigint, kind text, label text, status text, inv integer,
                                                      result jsonb, error text)
LANGUAGE sql AS $$ SELECT node_id, kind, pg_temp.noid(label), status, invocation, result, error
                   FROM hatchet.durable_log(task) $$;
CREATE FUNCTION pg_temp.events(task uuid) RETURNS TABLE (event_type text, retry_count integer, reason text)
LANGUAGE sql AS $$ SELECT event_type, retry_count, pg_temp.noid(reason) FROM hatchet.task_events(task)
                   ORDER BY created_at $$;
-- Runs a statement and shows its error (SQLSTATE and message, ids elided), or 'ok'.
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || pg_temp.noid(SQLERRM);
END $$;

SELECT hatchet.register_workflow('{"name": "dur", "tasks": [{"readable_id": "d", "is_durable": true}]}')
    IS NOT NULL AS registered;
SELECT hatchet.register_workflow('{"name": "kid", "tasks": [{"readable_id": "k"}]}') IS NOT NULL AS registered;
SELECT hatchet.register_workflow('{"name": "plain", "tasks": [{"readable_id": "p"}]}') IS NOT NULL AS registered;

-- 1. Memo: the first call has no value; the worker stores it; a replay (next invocation) finds it.
SELECT hatchet.run_workflow('dur', '{"n": 1}') AS task \gset
SELECT task_id = :'task' AS claimed, retry_count FROM hatchet.dequeue('dur:d', 'w1');
SELECT branch_id, node_id, already_existed, result, nondeterminism FROM hatchet.durable_memo(:'task', 1, 'k1');
SELECT hatchet.durable_complete_memo(:'task', 1, 1, 1, 'k1', convert_to('{"v": 42}', 'UTF8')) AS stored;
SELECT hatchet.durable_complete_memo(:'task', 1, 1, 1, 'k1', convert_to('{"v": 43}', 'UTF8')) AS stored_again;
-- A memo with another key at the same node of this invocation is the next node, not a conflict.
SELECT node_id, already_existed FROM hatchet.durable_memo(:'task', 1, 'k2', convert_to('"inline"', 'UTF8'));
SELECT * FROM pg_temp.log(:'task');

-- 2. A wait (sleep 1 minute OR event "dur:go"): a SIGNAL match until satisfied.
SELECT branch_id, node_id, nondeterminism FROM hatchet.durable_wait_for(:'task', 1,
    '[{"type": "sleep", "sleep_for": "1m", "group": "g1", "data_key": "sleep:1m"},
      {"type": "event", "key": "dur:go", "group": "g1", "data_key": "dur:go"}]', 'nap or go');
SELECT kind, event_keys, wake_at > now() + interval '50 seconds' AS wakes_in_a_minute, durable_node_id
FROM hatchet.matches WHERE task_id = :'task';
SELECT count(*) AS completed_before FROM hatchet.durable_completed(
    jsonb_build_array(jsonb_build_object('task_id', :'task', 'invocation', 1, 'branch_id', 1, 'node_id', 3)));
SELECT hatchet.push_event('dur:go', '{"id": "e1"}') IS NOT NULL AS pushed;
SELECT invocation, node_id, convert_from(result, 'UTF8')::jsonb AS result, is_failure, satisfied_order
FROM hatchet.durable_completed(
    jsonb_build_array(jsonb_build_object('task_id', :'task', 'invocation', 1, 'branch_id', 1, 'node_id', 3)));
SELECT count(*) AS matches_left FROM hatchet.matches WHERE task_id = :'task';

-- 3. Bad input changes nothing.
SELECT * FROM hatchet.durable_wait_for(:'task', 1, '[]');
SELECT * FROM hatchet.durable_wait_for(:'task', 1, '[{"type": "nap"}]');
SELECT * FROM hatchet.durable_wait_for(:'task', 1, '[{"type": "sleep", "sleep_for": "soon"}]');
SELECT * FROM hatchet.durable_wait_for(:'task', 1, '[{"type": "sleep"}]');
SELECT * FROM hatchet.durable_wait_for(:'task', 1, '[{"type": "event"}]');
SELECT * FROM hatchet.durable_memo(:'task', 1, NULL);
SELECT pg_temp.try(format('SELECT hatchet.durable_complete_memo(%L, 1, 1, 3, %L, %L)', :'task', 'k1', 'x'));
SELECT * FROM hatchet.durable_trigger_runs(:'task', 1, '[{"input": {}}]');
-- A stale invocation (2 is not running) and a task that is not durable.
SELECT pg_temp.try(format('SELECT * FROM hatchet.durable_memo(%L, 2, %L)', :'task', 'k1'));
SELECT hatchet.run_workflow('plain') AS plain \gset
SELECT task_id = :'plain' AS claimed FROM hatchet.dequeue('plain:p', 'w1');
SELECT pg_temp.try(format('SELECT * FROM hatchet.durable_memo(%L, 1, %L)', :'plain', 'k1'));
SELECT hatchet.complete(:'plain', 0) IS NOT NULL AS plain_done;
SELECT count(*) AS entries FROM hatchet.durable_log(:'task');

-- 4. Children: one run entry per trigger, spawned once; finishing a child satisfies its entry.
SELECT node_id, run_id IS NOT NULL AS spawned, nondeterminism
FROM hatchet.durable_trigger_runs(:'task', 1, '[{"name": "kid", "input": {"i": 0}}, {"name": "kid", "input": {"i": 1}}]')
ORDER BY node_id;
SELECT count(*) AS children FROM hatchet.runs WHERE parent_task_id = :'task';
SELECT t.input->'input' AS input, hatchet.complete(t.task_id, t.retry_count, jsonb_build_object('doubled', (t.input->'input'->>'i')::int * 2)) IS NOT NULL AS done
FROM hatchet.dequeue('kid:k', 'w1', 1) t;
SELECT * FROM pg_temp.log(:'task');

-- 5. Eviction while waiting for the second child: the slot is free, the task waits in the delayed queue, and the
-- child finishing restores it as attempt 1 (invocation 2), ahead of new work.
SELECT hatchet.durable_evict(:'task', 1, 'ttl 15m exceeded') AS restores_as_attempt;
SELECT hatchet.task_status(:'task') AS status_evicted, (SELECT reason || ' ' || (ready_at = 'infinity')
    FROM hatchet.delayed_queue WHERE task_id = :'task') AS delayed;
SELECT * FROM pg_temp.events(:'task') WHERE event_type = 'EVICTED';
-- The run's view (GetRunDetails, runs.get): still RUNNING, flagged evicted.
SELECT readable_id, status, evicted FROM hatchet.run_tasks(:'task');
SELECT pg_temp.try(format('SELECT * FROM hatchet.durable_memo(%L, 1, %L)', :'task', 'k1'));
SELECT t.input->'input' AS input, hatchet.complete(t.task_id, t.retry_count, '{"doubled": 2}') IS NOT NULL AS done
FROM hatchet.dequeue('kid:k', 'w1', 1) t;
SELECT task_id = :'task' AS restored, retry_count, priority FROM hatchet.ready_queue WHERE task_id = :'task';
SELECT task_id = :'task' AS claimed, retry_count FROM hatchet.dequeue('dur:d', 'w1');

-- 6. The replay (invocation 2) walks the log again: memo and waits answer from the log, children are not spawned
-- again, and a different call at a logged node is non-determinism.
SELECT node_id, already_existed, convert_from(result, 'UTF8') AS result FROM hatchet.durable_memo(:'task', 2, 'k1');
SELECT node_id, pg_temp.noid(nondeterminism) AS nondeterminism
FROM hatchet.durable_wait_for(:'task', 2, '[{"type": "sleep", "sleep_for": "1s"}]');
SELECT node_id, already_existed FROM hatchet.durable_memo(:'task', 2, 'k2');
SELECT node_id, nondeterminism FROM hatchet.durable_wait_for(:'task', 2,
    '[{"type": "sleep", "sleep_for": "1m", "group": "other-uuid", "data_key": "sleep:1m"},
      {"type": "event", "key": "dur:go", "group": "other-uuid", "data_key": "dur:go"}]');
SELECT count(*) AS no_new_match FROM hatchet.matches WHERE task_id = :'task';
SELECT node_id, nondeterminism IS NULL AS deterministic
FROM hatchet.durable_trigger_runs(:'task', 2, '[{"name": "kid", "input": {"i": 0}}, {"name": "kid", "input": {"i": 1}}]')
ORDER BY node_id;
SELECT count(*) AS children_still FROM hatchet.runs WHERE parent_task_id = :'task';
SELECT node_id, nondeterminism IS NULL AS appended FROM hatchet.durable_wait_for(:'task', 2,
    '[{"type": "sleep", "sleep_for": "10m", "group": "a", "data_key": "sleep:10m"},
      {"type": "event", "key": "dur:ready", "group": "b", "data_key": "dur:ready"}]');
-- The old invocation is fenced off.
SELECT pg_temp.try(format('SELECT * FROM hatchet.durable_wait_for(%L, 1, %L)', :'task', '[{"type": "sleep", "sleep_for": "1s"}]'));

-- 7. Two groups AND'ed (sleep 10 minutes AND event): the event alone is not enough; evicted meanwhile, then restored
-- by the sleep through the match engine.
SELECT hatchet.push_event('dur:ready', '{"ok": true}') IS NOT NULL AS pushed;
SELECT status FROM pg_temp.log(:'task') WHERE node = 6;
SELECT hatchet.durable_evict(:'task', 2) AS restores_as_attempt;
SELECT pg_temp.wake(:'task', '11 minutes');
SELECT status, result FROM pg_temp.log(:'task') WHERE node = 6;
SELECT retry_count FROM hatchet.ready_queue WHERE task_id = :'task';
SELECT retry_count FROM hatchet.dequeue('dur:d', 'w1');
SELECT hatchet.complete(:'task', 2, '{"done": true}') IS NOT NULL AS completed;
SELECT hatchet.run_status(:'task');
SELECT * FROM pg_temp.events(:'task');
SELECT * FROM pg_temp.log(:'task');

-- 8. A wait with a lookback: an event pushed before the wait counts when it is newer than `since`; a durable task
-- that finishes leaves no match behind; restore_evicted requeues an evicted task at once.
SELECT hatchet.run_workflow('dur') AS task \gset
SELECT retry_count FROM hatchet.dequeue('dur:d', 'w1');
SELECT hatchet.push_event('dur:past', '{"old": true}', scope => 's1') IS NOT NULL AS pushed;
SELECT node_id FROM hatchet.durable_wait_for(:'task', 1, jsonb_build_array(jsonb_build_object('type', 'event',
    'key', 'dur:past', 'scope', 's1', 'since', now() - interval '1 hour', 'group', 'g', 'data_key', 'past')));
SELECT status, result FROM pg_temp.log(:'task');
SELECT node_id FROM hatchet.durable_wait_for(:'task', 1, '[{"type": "event", "key": "dur:never", "group": "g"}]');
SELECT hatchet.durable_evict(:'task', 1, 'worker shutting down') AS restores_as_attempt;
SELECT hatchet.restore_evicted(:'task') AS restored, hatchet.restore_evicted(:'task') AS restored_twice;
SELECT status, evicted FROM hatchet.run_tasks(:'task');
SELECT retry_count FROM hatchet.dequeue('dur:d', 'w1');
-- The legacy signal API: a wait named by a signal key, armed once per key, read back when satisfied.
SELECT hatchet.register_durable_event(:'task', 'sig-1',
    '[{"type": "event", "key": "dur:sig", "group": "g", "data_key": "dur:sig"}]') AS node;
SELECT hatchet.register_durable_event(:'task', 'sig-1',
    '[{"type": "event", "key": "dur:sig", "group": "g", "data_key": "dur:sig"}]') AS same_node;
SELECT hatchet.durable_event_result(:'task', 'sig-1') IS NULL AS not_yet;
SELECT hatchet.push_event('dur:sig', '{"s": 1}') IS NOT NULL AS pushed;
SELECT convert_from(hatchet.durable_event_result(:'task', 'sig-1'), 'UTF8') AS result;
SELECT hatchet.register_durable_event(:'task', '', '[]');
SELECT hatchet.cancel(:'task') AS cancelled;
SELECT count(*) AS matches_left FROM hatchet.matches WHERE task_id = :'task';
SELECT * FROM hatchet.restore_evicted('00000000-0000-7000-8000-000000000000');

-- 9. Branching (BranchDurableTask, the SDK's reset_durable_task): a finished task branched at its child's node runs
-- again; the node before the branch point is read from branch 1, the child is spawned anew on the new branch.
SELECT hatchet.run_workflow('dur') AS task \gset
SELECT retry_count FROM hatchet.dequeue('dur:d', 'w1');
SELECT branch_id, node_id FROM hatchet.durable_memo(:'task', 1, 'a', convert_to('"A"', 'UTF8'));
SELECT branch_id, node_id, run_id IS NOT NULL AS spawned
FROM hatchet.durable_trigger_runs(:'task', 1, '[{"name": "kid", "input": {"i": 5}}]');
SELECT hatchet.complete(t.task_id, t.retry_count, '{"doubled": 10}') IS NOT NULL AS kid_done
FROM hatchet.dequeue('kid:k', 'w1', 1) t;
SELECT hatchet.complete(:'task', 0, '{"v": 1}') IS NOT NULL AS completed;
SELECT * FROM hatchet.branch_durable_task(:'task', 2, 1);
SELECT hatchet.task_status(:'task') AS replayed;
SELECT retry_count FROM hatchet.dequeue('dur:d', 'w1');
SELECT branch_id, node_id, already_existed, convert_from(result, 'UTF8') AS result
FROM hatchet.durable_memo(:'task', 2, 'a');
SELECT branch_id, node_id, run_id IS NOT NULL AS spawned
FROM hatchet.durable_trigger_runs(:'task', 2, '[{"name": "kid", "input": {"i": 5}}]');
SELECT count(*) AS children FROM hatchet.runs WHERE parent_task_id = :'task';
-- Branching a running task stops that attempt (EVICTED, with the reason) and queues the next one at once.
SELECT * FROM hatchet.branch_durable_task(:'task', 1, 2);
SELECT event_type, retry_count, reason FROM pg_temp.events(:'task') WHERE event_type IN ('EVICTED', 'COMPLETED');
SELECT retry_count FROM hatchet.dequeue('dur:d', 'w1');
SELECT branch_id, node_id, already_existed FROM hatchet.durable_memo(:'task', 3, 'a');
SELECT branch_id, node_id, kind, status FROM hatchet.durable_log(:'task') ORDER BY branch_id, node_id;
-- No such node or branch: 42704, nothing changes.
SELECT pg_temp.try(format('SELECT * FROM hatchet.branch_durable_task(%L, 9, 1)', :'task'));
SELECT pg_temp.try(format('SELECT * FROM hatchet.branch_durable_task(%L, 1, 7)', :'task'));
SELECT retry_count FROM hatchet.running WHERE task_id = :'task';
SELECT hatchet.cancel(:'task') AS cancelled;

-- 10. Ordered release: durable_completed hands the running invocation its satisfied entries in the order they were
-- satisfied, whatever order it waits on them in (a memo is not held back), and a reconnect gets them again. A replay
-- of a wait whose match went with a cancelled attempt arms it again, its sleep counting from when it was first asked.
CREATE FUNCTION pg_temp.refs(task uuid, inv integer, VARIADIC nodes bigint[]) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_agg(jsonb_build_object('task_id', task, 'invocation', inv, 'branch_id', 1, 'node_id', n))
    FROM unnest(nodes) n $$;
SELECT hatchet.run_workflow('dur') AS task \gset
SELECT retry_count FROM hatchet.dequeue('dur:d', 'w1');
SELECT node_id FROM hatchet.durable_wait_for(:'task', 1, '[{"type": "event", "key": "dur:e1", "group": "g"}]');
SELECT node_id FROM hatchet.durable_wait_for(:'task', 1, '[{"type": "event", "key": "dur:e2", "group": "g"}]');
SELECT node_id FROM hatchet.durable_wait_for(:'task', 1, '[{"type": "event", "key": "dur:e3", "group": "g"}]');
-- Satisfied 3, 2, 1 while the first invocation waits on all three: handed out as they come.
SELECT hatchet.push_event('dur:e3', '{}') IS NOT NULL AS pushed;
SELECT node_id, satisfied_order FROM hatchet.durable_completed(pg_temp.refs(:'task', 1, 1, 2, 3));
SELECT hatchet.push_event('dur:e2', '{}') IS NOT NULL AS pushed;
SELECT hatchet.push_event('dur:e1', '{}') IS NOT NULL AS pushed;
SELECT node_id, satisfied_order FROM hatchet.durable_completed(pg_temp.refs(:'task', 1, 1, 2, 3));
SELECT node_id FROM hatchet.durable_memo(:'task', 1, 'm', convert_to('"M"', 'UTF8'));
SELECT node_id FROM hatchet.durable_wait_for(:'task', 1, '[{"type": "sleep", "sleep_for": "1h", "group": "s"}]');
SELECT hatchet.cancel(:'task') AS cancelled;
SELECT count(*) AS matches_left FROM hatchet.matches WHERE task_id = :'task';
SELECT count(*) AS replayed FROM hatchet.replay_tasks(ARRAY[:'task']::uuid[]);
SELECT retry_count + 1 AS inv FROM hatchet.dequeue('dur:d', 'w1') \gset
-- The replay waits on node 1 first, then node 2: held back until node 3, satisfied first, was asked for too.
SELECT node_id, nondeterminism FROM hatchet.durable_wait_for(:'task', :inv,
    '[{"type": "event", "key": "dur:e1", "group": "other"}]');
SELECT count(*) AS handed_out FROM hatchet.durable_completed(pg_temp.refs(:'task', :inv, 1));
SELECT node_id FROM hatchet.durable_wait_for(:'task', :inv, '[{"type": "event", "key": "dur:e2", "group": "other"}]');
SELECT count(*) AS handed_out FROM hatchet.durable_completed(pg_temp.refs(:'task', :inv, 1, 2));
SELECT node_id FROM hatchet.durable_wait_for(:'task', :inv, '[{"type": "event", "key": "dur:e3", "group": "other"}]');
SELECT node_id, satisfied_order FROM hatchet.durable_completed(pg_temp.refs(:'task', :inv, 1, 2, 3));
-- Named again (a reconnect): handed out again; the old invocation's refs are answered without ordering.
SELECT node_id, satisfied_order FROM hatchet.durable_completed(pg_temp.refs(:'task', :inv, 2));
SELECT invocation, node_id, satisfied_order FROM hatchet.durable_completed(pg_temp.refs(:'task', 1, 1));
SELECT released_invocation = :inv AS released_to_replay, released_order
FROM hatchet.durable_logs WHERE task_id = :'task';
-- The memo answers from the log and is not held back.
SELECT node_id, already_existed FROM hatchet.durable_memo(:'task', :inv, 'm');
SELECT node_id, satisfied_order, convert_from(result, 'UTF8') AS result
FROM hatchet.durable_completed(pg_temp.refs(:'task', :inv, 4));
-- The sleep: armed again, counting from when the first invocation asked for it.
SELECT node_id, nondeterminism FROM hatchet.durable_wait_for(:'task', :inv,
    '[{"type": "sleep", "sleep_for": "1h", "group": "other"}]');
SELECT count(*) AS matches, bool_and(x.durable_node_id = 5) AS for_node_5,
       bool_and(x.wake_at = e.created_at + interval '1 hour') AS counts_from_first_ask
FROM hatchet.matches x JOIN hatchet.durable_log_entries e ON e.task_id = x.task_id AND e.node_id = x.durable_node_id
WHERE x.task_id = :'task';
-- Invocations the task has moved on from (the server tells their worker to drop them): the first, not the running
-- one; once the task is finished, the running one too. Bad input is 22023.
SELECT invocation, pg_temp.noid(reason) AS reason
FROM hatchet.durable_stale(pg_temp.refs(:'task', 1, 1) || pg_temp.refs(:'task', :inv, 1));
SELECT * FROM hatchet.durable_stale('{}');
SELECT hatchet.cancel(:'task') AS cancelled;
SELECT invocation, pg_temp.noid(reason) AS reason FROM hatchet.durable_stale(pg_temp.refs(:'task', :inv, 1));
