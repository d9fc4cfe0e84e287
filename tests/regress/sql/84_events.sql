-- Events: stored, fanned out to every workflow whose trigger pattern matches (`*` wildcards), once per matching filter
-- when the workflow has filters (CEL + scope).
\set VERBOSITY terse
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}', '<id>', 'g'); END $$;
-- The runs an event triggered, per workflow.
CREATE FUNCTION pg_temp.runs_of(event uuid) RETURNS TABLE (workflow text, runs bigint) LANGUAGE sql AS $$
    SELECT w.name, count(*) FROM hatchet.runs r
    JOIN hatchet.workflow_versions v ON v.id = r.workflow_version_id JOIN hatchet.workflows w ON w.id = v.workflow_id
    WHERE r.additional_metadata->>'hatchet__event_id' = event::text GROUP BY w.name ORDER BY w.name $$;

SELECT hatchet.register_workflow('{"name": "on_user", "event_triggers": ["user:*"], "tasks": [{"readable_id": "t"}]}')
       IS NOT NULL AS a,
       hatchet.register_workflow('{"name": "on_signup", "event_triggers": ["user:signup", "account:created"],
                                   "tasks": [{"readable_id": "t"}]}') IS NOT NULL AS b,
       hatchet.register_workflow('{"name": "on_anything", "event_triggers": ["*"], "tasks": [{"readable_id": "t"}]}')
       IS NOT NULL AS c,
       hatchet.register_workflow('{"name": "literal", "event_triggers": ["a_b%c:*"], "tasks": [{"readable_id": "t"}]}')
       IS NOT NULL AS d;

-- Fan-out: one event, every matching workflow (the exact key, the wildcard, the catch-all), one run each.
SELECT hatchet.push_event('user:signup', '{"user": "ann"}', '{"source": "web", "hatchet__event_id": "forged"}',
                          priority => 2) AS e \gset
SELECT * FROM pg_temp.runs_of(:'e');
-- The run input is the event payload; the metadata carries the event id and key (a caller's hatchet__ keys are
-- dropped); the event's priority applies.
SELECT r.input, r.additional_metadata->>'source' AS source,
       r.additional_metadata->>'hatchet__event_id' = :'e' AS has_event_id,
       r.additional_metadata->>'hatchet__event_key' AS event_key, r.priority, r.triggered_by
FROM hatchet.runs r JOIN hatchet.workflow_versions v ON v.id = r.workflow_version_id
JOIN hatchet.workflows w ON w.id = v.workflow_id
WHERE r.additional_metadata->>'hatchet__event_id' = :'e' AND w.name = 'on_signup';
SELECT input FROM hatchet.dequeue('on_signup:t');
SELECT key, payload, scope FROM hatchet.events WHERE id = :'e';
SELECT * FROM pg_temp.runs_of(hatchet.push_event('user:login'));
SELECT * FROM pg_temp.runs_of(hatchet.push_event('account:created'));
-- `*` is the only wildcard: `_` and `%` in a pattern are literal characters.
SELECT * FROM pg_temp.runs_of(hatchet.push_event('a_b%c:1'));
SELECT * FROM pg_temp.runs_of(hatchet.push_event('axbyc:1'));

-- Filters: a workflow with filters runs once per filter whose scope is the event's and whose CEL holds
-- (vars: input = payload, additional_metadata, payload = the filter's payload, event_key, event_id).
SELECT hatchet.register_workflow($${"name": "on_order", "event_triggers": ["order:*"], "tasks": [{"readable_id": "t"}],
    "default_filters": [{"expression": "input.amount > payload.min", "scope": "acme", "payload": {"min": 100, "tier": "big"}}]}$$)
    IS NOT NULL AS registered;
SELECT hatchet.create_filter('on_order', 'acme', 'additional_metadata.vip == true', '{"tier": "vip"}') IS NOT NULL AS vip,
       hatchet.create_filter('on_order', 'globex', 'event_key == ''order:created''', '{"tier": "globex"}') IS NOT NULL AS globex;
SELECT workflow, scope, expression, payload, is_declarative FROM hatchet.list_filters('on_order');
SELECT hatchet.push_event('order:created', '{"amount": 500}', '{"vip": true}', scope => 'acme') AS e \gset
SELECT * FROM pg_temp.runs_of(:'e');
SELECT input->'triggers' AS triggers FROM hatchet.dequeue('on_order:t', n => 10) ORDER BY input->'triggers'->>'filter_payload';
SELECT * FROM pg_temp.runs_of(hatchet.push_event('order:created', '{"amount": 5}', '{"vip": false}', scope => 'acme'))
    AS small_order;
SELECT * FROM pg_temp.runs_of(hatchet.push_event('order:created', '{"amount": 5}', scope => 'globex')) AS globex_order;
-- Without a scope, or with a scope no filter has, a workflow that has filters is not triggered.
SELECT count(*) AS unscoped FROM pg_temp.runs_of(hatchet.push_event('order:created', '{"amount": 500}'))
WHERE workflow = 'on_order';
SELECT count(*) AS unknown_scope FROM pg_temp.runs_of(hatchet.push_event('order:created', '{"amount": 500}', scope => 'x'))
WHERE workflow = 'on_order';
-- A filter that fails to evaluate triggers nothing; the push succeeds with a warning.
SELECT hatchet.create_filter('on_order', 'broken', 'input.missing > 1') AS broken_filter \gset
SELECT count(*) AS broken FROM pg_temp.runs_of(hatchet.push_event('order:created', '{}', scope => 'broken'))
WHERE workflow = 'on_order';
SELECT hatchet.delete_filter(:'broken_filter') AS deleted, hatchet.delete_filter(:'broken_filter') AS deleted_again;
SELECT pg_temp.err($$SELECT hatchet.create_filter('on_order', 'acme', 'additional_metadata.vip == true', '{"tier": "vip"}')$$)
    AS duplicate_filter;
SELECT pg_temp.err($$SELECT hatchet.create_filter('on_order', 'acme', 'input.x ==')$$) AS bad_filter_cel;
SELECT pg_temp.err($$SELECT hatchet.create_filter('nope', 'acme', 'true')$$) AS unknown_workflow;

-- Bulk push: ids in order, each event handled as if pushed alone.
SELECT cardinality(hatchet.push_events($$[{"key": "user:a", "payload": {"i": 1}}, {"key": "nobody:listens"},
    {"key": "order:created", "payload": {"amount": 1000}, "scope": "acme", "priority": 3}]$$)) AS pushed \gset
SELECT :pushed AS pushed;
SELECT e.key, (SELECT count(*) FROM hatchet.runs r WHERE r.additional_metadata->>'hatchet__event_id' = e.id::text) AS runs
FROM hatchet.events e WHERE e.key IN ('user:a', 'nobody:listens') OR (e.key = 'order:created' AND e.payload->>'amount' = '1000')
ORDER BY e.key;

-- An event pushed before a workflow exists does not trigger it later.
SELECT hatchet.push_event('late:event') IS NOT NULL AS pushed;
SELECT hatchet.register_workflow('{"name": "late", "event_triggers": ["late:*"], "tasks": [{"readable_id": "t"}]}')
    IS NOT NULL AS registered;
SELECT count(*) AS late_runs FROM hatchet.runs r JOIN hatchet.workflow_versions v ON v.id = r.workflow_version_id
JOIN hatchet.workflows w ON w.id = v.workflow_id WHERE w.name = 'late';
-- A new version's triggers replace the old ones.
SELECT hatchet.register_workflow('{"name": "on_signup", "event_triggers": ["account:created"],
                                   "tasks": [{"readable_id": "t"}]}') IS NOT NULL AS new_version;
SELECT * FROM pg_temp.runs_of(hatchet.push_event('user:signup')) WHERE workflow = 'on_signup';

-- Bad input changes nothing.
CREATE TEMP TABLE before AS SELECT (SELECT count(*) FROM hatchet.events) AS events, (SELECT count(*) FROM hatchet.runs) AS runs;
SELECT pg_temp.err($$SELECT hatchet.push_event(NULL)$$) AS null_key;
SELECT pg_temp.err($$SELECT hatchet.push_event('')$$) AS empty_key;
SELECT pg_temp.err($$SELECT hatchet.push_event('user:x', '[1]')$$) AS array_payload;
SELECT pg_temp.err($$SELECT hatchet.push_event('user:x', additional_metadata => '"m"')$$) AS string_metadata;
SELECT pg_temp.err($$SELECT hatchet.push_event('user:x', priority => 0)$$) AS bad_priority;
SELECT pg_temp.err($$SELECT hatchet.push_events('{}')$$) AS events_not_array;
SELECT pg_temp.err($$SELECT hatchet.push_events('[{"key": "user:x"}, 5]')$$) AS event_not_object;
SELECT pg_temp.err($$SELECT hatchet.push_events('[{"key": "user:x"}, {"payload": {}}]')$$) AS event_without_key;
SELECT pg_temp.err($$SELECT hatchet.push_events((SELECT jsonb_agg(jsonb_build_object('key', 'k')) FROM generate_series(1, 1001)))$$)
    AS too_many;
SET hatchet.max_payload_bytes = 1024;
SELECT pg_temp.err($$SELECT hatchet.push_event('user:x', jsonb_build_object('blob', repeat('x', 2000)))$$) AS too_large;
RESET hatchet.max_payload_bytes;
SELECT (SELECT count(*) FROM hatchet.events) = b.events AS no_events, (SELECT count(*) FROM hatchet.runs) = b.runs AS no_runs
FROM before b;

-- Clean up the queued tasks of this file.
SELECT count(hatchet.cancel(r.task_id)) >= 0 AS cleaned FROM hatchet.ready_queue r
WHERE r.queue IN ('on_user:t', 'on_signup:t', 'on_anything:t', 'literal:t', 'on_order:t');
