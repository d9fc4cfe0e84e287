-- What Hatchet's own SDK suite reads (issue 20): a webhook's key and scope expressions see its static payload and its
-- events name it; a cron can be run now without moving its schedule; a run's shape (steps and their children).
\set VERBOSITY terse

BEGIN;
-- The static payload is merged over the body before the expressions run; the event names its webhook.
SELECT hatchet.create_webhook('static-hook', 'GENERIC', '''hook:'' + input.kind', 'API_KEY',
    '{"headerName": "X-Key", "apiKey": "k"}', scope_expression => 'input.customer',
    static_payload => '{"kind": "order", "customer": "cust-1", "source": "static"}') IS NOT NULL AS created;
SELECT event_key, event_scope, event_payload
FROM hatchet.receive_webhook('static-hook', '{"source": "body", "n": 1}');
SELECT key, scope, additional_metadata FROM hatchet.events WHERE key = 'hook:order';
-- A caller's own hatchet__ metadata keys are dropped from the runs an event starts, this one included.
SELECT hatchet.register_workflow($${"name": "Hooked", "event_triggers": ["hook:order"],
    "tasks": [{"readable_id": "t"}]}$$) IS NOT NULL AS registered;
SELECT event_key FROM hatchet.receive_webhook('static-hook', '{"n": 2}');
SELECT r.additional_metadata ? 'hatchet__webhook_name' AS run_names_webhook, r.additional_metadata ? 'hatchet__event_id'
       AS run_names_event
FROM hatchet.runs r WHERE r.input->>'n' = '2';
ROLLBACK;

BEGIN;
-- A cron run now: its input and metadata, a new run each time, the schedule unchanged.
SELECT hatchet.register_workflow($${"name": "Nightly", "tasks": [{"readable_id": "t"}]}$$) IS NOT NULL AS registered;
SELECT hatchet.create_cron('Nightly', 'at-midnight', '0 0 * * *', '{"n": 7}', '{"who": "me"}') AS cron \gset
SELECT next_tick_at AS tick FROM hatchet.crons WHERE id = :'cron' \gset
SELECT hatchet.trigger_cron(:'cron') AS run1 \gset
SELECT hatchet.trigger_cron(:'cron') <> :'run1' AS another_run;
SELECT input, additional_metadata, triggered_by FROM hatchet.runs WHERE id = :'run1';
SELECT next_tick_at = :'tick' AS schedule_unchanged, last_tick_at IS NULL AS never_ticked
FROM hatchet.crons WHERE id = :'cron';
ROLLBACK;
SELECT hatchet.trigger_cron('00000000-0000-0000-0000-000000000001');
SELECT hatchet.trigger_cron(NULL);

BEGIN;
-- A diamond: every created task with its step and its children's steps; steps are the version's, not the run's.
SELECT hatchet.register_workflow($${"name": "ShapeDiamond", "tasks": [{"readable_id": "a"},
    {"readable_id": "b", "parents": ["a"]}, {"readable_id": "c", "parents": ["a"]},
    {"readable_id": "d", "parents": ["b", "c"]}]}$$) IS NOT NULL AS registered;
SELECT hatchet.run_workflow('ShapeDiamond') AS run1 \gset
SELECT hatchet.run_workflow('ShapeDiamond') AS run2 \gset
-- Only `a` exists so far.
SELECT readable_id, cardinality(children_step_ids) AS children FROM hatchet.run_shape(:'run1');
SELECT hatchet.complete(task_id, retry_count) IS NOT NULL AS done FROM hatchet.dequeue('shapediamond:a', n => 10);
SELECT s.readable_id, s.task_id IS NOT NULL AS has_task,
       ARRAY(SELECT c.readable_id FROM hatchet.run_shape(:'run1') c WHERE c.step_id = ANY (s.children_step_ids)
             ORDER BY 1) AS created_children
FROM hatchet.run_shape(:'run1') s ORDER BY s.readable_id;
SELECT (SELECT array_agg(step_id ORDER BY readable_id) FROM hatchet.run_shape(:'run1'))
     = (SELECT array_agg(step_id ORDER BY readable_id) FROM hatchet.run_shape(:'run2')) AS same_steps;
SELECT count(*) AS unknown_run FROM hatchet.run_shape('00000000-0000-0000-0000-000000000001');
ROLLBACK;
