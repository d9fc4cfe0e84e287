-- CEL is bounded (issue 15): expressions are refused when too long or too deep (at registration and evaluation),
-- an evaluation has a work and a time budget, and statement_timeout cancels a long one.
\set VERBOSITY terse
-- SQLSTATE and the reason (the quoted expression left out: it can be long).
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || coalesce(substring(SQLERRM from '": (.*)$'), SQLERRM); END $$;
-- A list of n numbers as the run input {"l": [...]}.
CREATE FUNCTION pg_temp.list_input(n integer) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('l', (SELECT jsonb_agg(i) FROM generate_series(1, n) i)) $$;

-- Length and nesting limits (hatchet.cel_max_length, hatchet.cel_max_depth): 22023 from cel_check.
SHOW hatchet.cel_max_length;
SHOW hatchet.cel_max_depth;
SELECT pg_temp.err(format('SELECT hatchet.cel_check(%L)', repeat('1+', 2100) || '1')) AS too_long;
SELECT pg_temp.err(format('SELECT hatchet.cel_check(%L)', repeat('(', 1000) || '1' || repeat(')', 1000))) AS too_deep;
SELECT pg_temp.err(format('SELECT hatchet.cel_check(%L)', repeat('a.', 500) || 'b')) AS too_deep_chain;
SELECT hatchet.cel_check('input.user.region + ":" + string(input.n % 16)') AS realistic_ok;
-- The settings apply at once; evaluation checks them too.
SET hatchet.cel_max_length = 16;
SELECT pg_temp.err($$SELECT hatchet.cel_check('input.user.region')$$) AS over_a_lowered_limit;
SELECT pg_temp.err($$SELECT hatchet.cel_eval('input.user.region', '{"input": {"user": {"region": "eu"}}}')$$) AS eval_too;
RESET hatchet.cel_max_length;
-- Registration refuses an over-deep expression with 22023 and registers nothing.
SELECT pg_temp.err(format($$SELECT hatchet.register_workflow(%L)$$, jsonb_build_object('name', 'DeepKey',
    'tasks', jsonb_build_array(jsonb_build_object('readable_id', 't',
        'concurrency', jsonb_build_array(jsonb_build_object('expression', repeat('(', 40) || 'input.k' || repeat(')', 40),
                                                            'max_runs', 1)))))))
    AS deep_key_refused;
SELECT count(*) AS deep_key_registered FROM hatchet.workflows WHERE name = 'DeepKey';

-- The work budget (hatchet.cel_max_cost): nested maps over a 1,000-element list would take on the order of 10^9
-- steps; the evaluation stops at the budget. cel_eval raises 54000, cel_try returns the reason.
SET hatchet.cel_timeout = 0;  -- the work budget alone, whatever the machine's speed
SHOW hatchet.cel_max_cost;
SELECT pg_temp.err(format('SELECT hatchet.cel_eval(%L, %L)',
    'input.l.map(x, input.l.map(y, input.l.map(z, z)))', jsonb_build_object('input', pg_temp.list_input(1000))))
    AS nested_map;
SELECT hatchet.cel_try('input.l.map(x, input.l.map(y, y)).size()', jsonb_build_object('input', pg_temp.list_input(1000)))
    AS nested_map_try;
-- A comprehension within the budget is unaffected.
SELECT hatchet.cel_eval('input.l.filter(x, x > 997)', jsonb_build_object('input', pg_temp.list_input(1000)))
    AS within_budget;
RESET hatchet.cel_timeout;

-- The time limit (hatchet.cel_timeout), with the work budget out of the way.
SET hatchet.cel_max_cost = 2147483647;
SET hatchet.cel_timeout = 50;
SELECT pg_temp.err(format('SELECT hatchet.cel_eval(%L, %L)',
    'input.l.map(x, input.l.map(y, input.l.map(z, z)))', jsonb_build_object('input', pg_temp.list_input(1000))))
    AS over_time;

-- statement_timeout cancels a long evaluation (57014), with both budgets out of the way.
SET hatchet.cel_timeout = 0;
SET statement_timeout = '300ms';
SELECT hatchet.cel_eval('input.l.map(x, input.l.map(y, input.l.map(z, z)))',
                        jsonb_build_object('input', pg_temp.list_input(1000)));
RESET statement_timeout;
RESET hatchet.cel_timeout;
RESET hatchet.cel_max_cost;
-- The backend is fine afterwards, and so is the next evaluation.
SELECT hatchet.cel_eval('input.l.map(x, x + x)', '{"input": {"l": [1, 2]}}') AS after_cancel;

-- A task whose concurrency key expression runs out of budget fails with the reason; its run fails; a run whose input
-- keeps the same expression within budget runs.
BEGIN;
SET LOCAL hatchet.cel_max_cost = 100000;
SET LOCAL hatchet.cel_timeout = 0;
SELECT hatchet.register_workflow($${"name": "CostlyKey", "tasks": [{"readable_id": "t",
    "concurrency": [{"expression": "string(input.l.map(x, input.l.map(y, y)).size())", "max_runs": 1,
                     "limit_strategy": "GROUP_ROUND_ROBIN"}]}]}$$) IS NOT NULL AS registered;
SELECT hatchet.run_workflow('CostlyKey', pg_temp.list_input(1000)) AS big \gset
SELECT hatchet.run_workflow('CostlyKey', pg_temp.list_input(3)) AS small \gset
SELECT hatchet.run_status(:'big') AS big_status, hatchet.run_status(:'small') AS small_status;
SELECT error FROM hatchet.run_tasks(:'big');
SELECT key FROM hatchet.concurrency_groups WHERE scope = 'costlykey:t' ORDER BY key;
ROLLBACK;
