-- Flow control declared on workflow definitions: CEL concurrency keys (task and workflow level, several gates in
-- order), dynamic rate limits from CEL, and a failing expression failing just that task.
\set VERBOSITY terse

BEGIN;
SELECT hatchet.register_workflow($${"name": "PerUser", "tasks": [{"readable_id": "work",
    "concurrency": [{"expression": "input.user", "max_runs": 1, "limit_strategy": "GROUP_ROUND_ROBIN"}],
    "rate_limits": [{"key_expr": "'llm-' + input.user", "units": 1, "limit_values_expr": "5", "duration": "MINUTE"}]}]}$$)
    IS NOT NULL AS registered;
SELECT hatchet.run_workflow('PerUser', '{"user": "ann"}') AS r1 \gset
SELECT hatchet.run_workflow('PerUser', '{"user": "ann"}') AS r2 \gset
SELECT hatchet.run_workflow('PerUser', '{"user": "bob"}') AS r3 \gset
-- Keys come from CEL over the run input: one of ann's runs waits for her slot, bob's runs at once.
SELECT key, running, max_runs FROM hatchet.concurrency_groups WHERE scope = 'peruser:work' ORDER BY key;
SELECT (SELECT count(*) FROM hatchet.ready_queue WHERE queue = 'peruser:work') AS ready,
       (SELECT count(*) FROM hatchet.concurrency_queue WHERE queue = 'peruser:work') AS waiting;
-- Dynamic rate limits are created from CEL on first use and consumed at dispatch.
SELECT input -> 'input' ->> 'user' AS user FROM hatchet.dequeue('peruser:work', n => 10) ORDER BY 1;
SELECT key, limit_value, remaining FROM hatchet.rate_limits WHERE key LIKE 'llm-%' ORDER BY key;
-- A key expression that fails (no "user" in the input) fails that run's task with the reason; the backend is fine.
SELECT hatchet.run_workflow('PerUser', '{"name": "no user"}') AS bad \gset
SELECT hatchet.run_status(:'bad');
SELECT error FROM hatchet.run_tasks(:'bad');
ROLLBACK;

BEGIN;
-- Workflow-level concurrency counts runs, not tasks: run 1 holds the slot for both of its tasks (b needs a), so
-- run 2 waits until run 1 is done, even between a and b.
SELECT hatchet.register_workflow($${"name": "OnePerGroup",
    "concurrency": {"expression": "input.group", "max_runs": 1, "limit_strategy": "GROUP_ROUND_ROBIN"},
    "tasks": [{"readable_id": "a"}, {"readable_id": "b", "parents": ["a"]}]}$$) IS NOT NULL AS registered;
SELECT hatchet.run_workflow('OnePerGroup', '{"group": "g"}') AS run1 \gset
SELECT hatchet.run_workflow('OnePerGroup', '{"group": "g"}') AS run2 \gset
SELECT hatchet.run_status(:'run1') AS run1, hatchet.run_status(:'run2') AS run2;
SELECT hatchet.complete(task_id, retry_count) FROM hatchet.dequeue('onepergroup:a', n => 10);
-- Run 1's second task passes the gate its run holds; run 2 is still waiting.
SELECT count(*) AS run1_b_claimed FROM hatchet.dequeue('onepergroup:b', n => 10);
SELECT (SELECT count(*) FROM hatchet.concurrency_queue WHERE queue = 'onepergroup:a') AS run2_waiting;
SELECT hatchet.complete(task_id, retry_count) FROM hatchet.running WHERE queue = 'onepergroup:b';
-- Run 1 is done: its slot goes to run 2 in the same transaction.
SELECT hatchet.run_status(:'run1') AS run1;
SELECT count(*) AS run2_a_claimed FROM hatchet.dequeue('onepergroup:a', n => 10);
SELECT key, running FROM hatchet.concurrency_groups WHERE scope LIKE 'workflow:%';
ROLLBACK;

BEGIN;
-- Several gates on one task are passed in declared order: per user (max 2), then a global one (max 1).
SELECT hatchet.register_workflow($${"name": "TwoGates", "tasks": [{"readable_id": "t", "concurrency": [
    {"expression": "input.user", "max_runs": 2, "limit_strategy": "GROUP_ROUND_ROBIN"},
    {"expression": "'all'", "max_runs": 1, "limit_strategy": "GROUP_ROUND_ROBIN"}]}]}$$) IS NOT NULL AS registered;
SELECT hatchet.run_workflow('TwoGates', '{"user": "ann"}') IS NOT NULL AS run_a;
SELECT hatchet.run_workflow('TwoGates', '{"user": "bob"}') IS NOT NULL AS run_b;
-- Bob passed his own gate and waits at the global one (stage 1), holding his first slot meanwhile.
SELECT key, stage FROM hatchet.concurrency_queue WHERE queue = 'twogates:t';
SELECT key, running FROM hatchet.concurrency_groups WHERE scope = 'twogates:t' ORDER BY key;
SELECT hatchet.complete(task_id, retry_count) FROM hatchet.dequeue('twogates:t');
SELECT input -> 'input' ->> 'user' AS next FROM hatchet.dequeue('twogates:t');
ROLLBACK;
