-- search_path safety (CVE-2018-1058 class): a schema on the caller's search_path holds look-alikes of what
-- pg_hatchet's SQL calls: better-matching overloads (they win even when pg_catalog is searched first, as it is when
-- the path does not name it) and plain shadows (they win when the path puts the schema before pg_catalog). Every
-- function pins search_path = pg_catalog, pg_temp, and the few that do not (per-row helpers, listed in the header of
-- sql/schema.sql) qualify every name, so none of them may run. Each look-alike announces itself with a NOTICE and
-- then does what the real one does: this file's expected output has no NOTICE at all.
\set VERBOSITY terse

CREATE SCHEMA evil;
-- Functions.
CREATE FUNCTION evil.format(text, text) RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN RAISE NOTICE 'evil format(text, text) ran'; RETURN format($1, $2); END $$;
CREATE FUNCTION evil.format(text, integer) RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN RAISE NOTICE 'evil format(text, integer) ran'; RETURN format($1, $2); END $$;
CREATE FUNCTION evil.format(text, timestamptz) RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN RAISE NOTICE 'evil format(text, timestamptz) ran'; RETURN format($1, $2); END $$;
CREATE FUNCTION evil.format(text, jsonb) RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN RAISE NOTICE 'evil format(text, jsonb) ran'; RETURN format($1, $2); END $$;
CREATE FUNCTION evil.jsonb_typeof(jsonb) RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN RAISE NOTICE 'evil jsonb_typeof ran'; RETURN jsonb_typeof($1); END $$;
CREATE FUNCTION evil.jsonb_build_object(text, jsonb) RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN RAISE NOTICE 'evil jsonb_build_object(text, jsonb) ran'; RETURN jsonb_build_object($1, $2); END $$;
CREATE FUNCTION evil.jsonb_array_elements(jsonb) RETURNS SETOF jsonb LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN RAISE NOTICE 'evil jsonb_array_elements ran'; RETURN QUERY SELECT jsonb_array_elements($1); END $$;
CREATE FUNCTION evil.upper(text) RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN RAISE NOTICE 'evil upper ran'; RETURN upper($1); END $$;
CREATE FUNCTION evil.lower(text) RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN RAISE NOTICE 'evil lower ran'; RETURN lower($1); END $$;
CREATE FUNCTION evil.replace(text, text, text) RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN RAISE NOTICE 'evil replace ran'; RETURN replace($1, $2, $3); END $$;
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN RAISE NOTICE 'evil now ran'; RETURN now(); END $$;
CREATE FUNCTION evil.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN RAISE NOTICE 'evil clock_timestamp ran'; RETURN clock_timestamp(); END $$;
CREATE FUNCTION evil.current_setting(text) RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN RAISE NOTICE 'evil current_setting(text) ran'; RETURN current_setting($1); END $$;
CREATE FUNCTION evil.current_setting(text, boolean) RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN RAISE NOTICE 'evil current_setting(text, boolean) ran'; RETURN current_setting($1, $2); END $$;
CREATE FUNCTION evil.cardinality(uuid[]) RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN RAISE NOTICE 'evil cardinality(uuid[]) ran'; RETURN cardinality($1); END $$;
CREATE FUNCTION evil.cardinality(jsonb[]) RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN RAISE NOTICE 'evil cardinality(jsonb[]) ran'; RETURN cardinality($1); END $$;
CREATE FUNCTION evil.pg_column_size(jsonb) RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN RAISE NOTICE 'evil pg_column_size(jsonb) ran'; RETURN pg_column_size($1); END $$;
CREATE FUNCTION evil.pg_notify(text, text) RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN RAISE NOTICE 'evil pg_notify ran'; PERFORM pg_notify($1, $2); END $$;
-- Operators: exact-type overloads beat pg_catalog's polymorphic ones (enum =, text || anynonarray, anyarray @>);
-- the others shadow pg_catalog's own when evil comes first.
CREATE FUNCTION evil.event_type_eq(hatchet.task_event_type, hatchet.task_event_type) RETURNS boolean LANGUAGE plpgsql
SET search_path = pg_catalog AS $$ BEGIN RAISE NOTICE 'evil = (task_event_type) ran'; RETURN $1 = $2; END $$;
CREATE OPERATOR evil.= (FUNCTION = evil.event_type_eq, LEFTARG = hatchet.task_event_type,
                        RIGHTARG = hatchet.task_event_type);
CREATE FUNCTION evil.sticky_eq(hatchet.sticky_strategy, hatchet.sticky_strategy) RETURNS boolean LANGUAGE plpgsql
SET search_path = pg_catalog AS $$ BEGIN RAISE NOTICE 'evil = (sticky_strategy) ran'; RETURN $1 = $2; END $$;
CREATE OPERATOR evil.= (FUNCTION = evil.sticky_eq, LEFTARG = hatchet.sticky_strategy,
                        RIGHTARG = hatchet.sticky_strategy);
CREATE FUNCTION evil.text_int_cat(text, integer) RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN RAISE NOTICE 'evil || (text, integer) ran'; RETURN $1 || $2; END $$;
CREATE OPERATOR evil.|| (FUNCTION = evil.text_int_cat, LEFTARG = text, RIGHTARG = integer);
CREATE FUNCTION evil.tids_contain(tid[], tid[]) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN RAISE NOTICE 'evil @> (tid[]) ran'; RETURN $1 @> $2; END $$;
CREATE OPERATOR evil.@> (FUNCTION = evil.tids_contain, LEFTARG = tid[], RIGHTARG = tid[]);
CREATE FUNCTION evil.text_eq(text, text) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN RAISE NOTICE 'evil = (text) ran'; RETURN $1 = $2; END $$;
CREATE OPERATOR evil.= (FUNCTION = evil.text_eq, LEFTARG = text, RIGHTARG = text);
CREATE FUNCTION evil.text_ne(text, text) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN RAISE NOTICE 'evil <> (text) ran'; RETURN $1 <> $2; END $$;
CREATE OPERATOR evil.<> (FUNCTION = evil.text_ne, LEFTARG = text, RIGHTARG = text);
CREATE FUNCTION evil.text_like(text, text) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN RAISE NOTICE 'evil ~~ (text) ran'; RETURN $1 ~~ $2; END $$;
CREATE OPERATOR evil.~~ (FUNCTION = evil.text_like, LEFTARG = text, RIGHTARG = text);
CREATE FUNCTION evil.uuid_eq(uuid, uuid) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN RAISE NOTICE 'evil = (uuid) ran'; RETURN $1 = $2; END $$;
CREATE OPERATOR evil.= (FUNCTION = evil.uuid_eq, LEFTARG = uuid, RIGHTARG = uuid);
CREATE FUNCTION evil.jsonb_field(jsonb, text) RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN RAISE NOTICE 'evil ->> (jsonb, text) ran'; RETURN $1 ->> $2; END $$;
CREATE OPERATOR evil.->> (FUNCTION = evil.jsonb_field, LEFTARG = jsonb, RIGHTARG = text);

-- Every function of the extension written in SQL or PL/pgSQL pins its search_path, except the per-row helpers that
-- qualify every name instead (the Rust functions resolve no names).
SELECT p.proname AS unpinned
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
WHERE n.nspname = 'hatchet' AND l.lanname IN ('sql', 'plpgsql')
  AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)
ORDER BY 1;

BEGIN;
-- (The statements below name only pg_hatchet's functions, literals and SQL syntax, so whatever runs in evil ran
-- inside pg_hatchet.)
-- 1. The schema after pg_catalog (the usual case: a path that does not name pg_catalog searches it first).
SET LOCAL search_path = evil, public;
SELECT hatchet.enqueue('sp_q', '{"n": 1}', run_at => CURRENT_TIMESTAMP + interval '1 hour') IS NOT NULL AS delayed;
SELECT hatchet.enqueue('sp_q', '{"n": 2}') AS t1 \gset
SELECT count(*) AS claimed FROM hatchet.dequeue('sp_q', 'w1');
SELECT hatchet.task_status(:'t1') AS status;
SELECT hatchet.cancel(:'t1') AS cancelled;
SELECT hatchet.task_status(:'t1') AS status;

-- 2. The schema before pg_catalog: the main API, end to end.
SET LOCAL search_path = evil, pg_catalog, public;
-- Plain tasks: enqueue, enqueue_many, dequeue, refresh, logs, fail (with a retry), complete, timeline, cancel.
SELECT hatchet.enqueue('sp_a', '{"n": 1}', retries => 1, additional_metadata => '{"k": "v"}') AS a1 \gset
SELECT hatchet.enqueue_many('sp_a', ARRAY['{"n": 2}', '{"n": 3}']::jsonb[]) AS many \gset
SELECT count(*) AS claimed FROM hatchet.dequeue('sp_a', 'w1', 3);
SELECT hatchet.refresh_timeout(:'a1', 0, '30s') IS NOT NULL AS refreshed;
SELECT hatchet.put_log(:'a1', 'hello', 'info');
SELECT hatchet.fail(:'a1', 0, 'boom') AS after_fail;
SELECT count(*) AS claimed FROM hatchet.dequeue('sp_a', 'w1', 3);
SELECT hatchet.complete(:'a1', 1, '{"ok": true}');
SELECT hatchet.complete_many(:'many', '{0, 0}') AS completed_many;
SELECT hatchet.task_status(:'a1') AS status, hatchet.running_attempt(:'a1') IS NULL AS not_running;
SELECT count(*) AS events FROM hatchet.task_events(:'a1');
SELECT count(*) AS logs FROM hatchet.task_logs(:'a1');
SELECT count(*) AS tasks FROM hatchet.task(:'a1');
SELECT hatchet.enqueue('sp_a', '{"n": 4}') AS a4 \gset
SELECT hatchet.cancel(:'a4') AS cancelled;
-- Flow control: a concurrency key (CEL), a rate limit.
SELECT hatchet.put_rate_limit('sp_limit', 10, 'MINUTE');
SELECT hatchet.enqueue('sp_fc', '{"user": "ann"}', concurrency_key => 'input.user', max_runs => 1,
                       strategy => 'GROUP_ROUND_ROBIN', rate_limits => '[{"key": "sp_limit"}]') IS NOT NULL AS gated;
SELECT count(*) AS claimed FROM hatchet.dequeue('sp_fc', 'w1');
SELECT count(*) AS limits FROM hatchet.list_rate_limits('sp_');
SELECT hatchet.pause_rate_limit('sp_limit', CURRENT_TIMESTAMP + interval '1 minute') IS NOT NULL AS paused;
-- Workers: register, labels, heartbeat, assign (labels, SOFT sticky), list, deregister.
SELECT hatchet.register_worker('sp-w', ARRAY['sp_w'], '{"default": 5}', '{"gpu": 4, "region": "eu"}',
                               worker_id => '00000000-0000-7000-8000-0000000000e1') IS NOT NULL AS registered;
SELECT hatchet.upsert_worker_labels('00000000-0000-7000-8000-0000000000e1', '{"zone": "a"}');
SELECT hatchet.heartbeat('{00000000-0000-7000-8000-0000000000e1}') AS beats;
SELECT hatchet.enqueue('sp_w', '{}', desired_worker_labels => '{"gpu": {"value": 2, "comparator": "GT"},
                                                                "region": {"value": "eu"}}',
                       desired_worker_id => '00000000-0000-7000-8000-0000000000e1', sticky => 'SOFT')
       IS NOT NULL AS queued;
SELECT count(*) AS assigned FROM hatchet.assign('{00000000-0000-7000-8000-0000000000e1}');
SELECT count(*) AS workers FROM hatchet.list_workers(worker_id => '00000000-0000-7000-8000-0000000000e1');
SELECT hatchet.deregister_worker('00000000-0000-7000-8000-0000000000e1') AS released;
-- Workflows: register (a DAG with an event trigger and a condition), run, complete a task, reads, cancel; event
-- filters and events; crons and schedules.
SELECT hatchet.register_workflow($${"name": "sp_flow", "event_triggers": ["sp:*"], "tasks": [
    {"readable_id": "first"},
    {"readable_id": "second", "parents": ["first"], "conditions": {"wait_for": [{"kind": "sleep", "sleep_for": "1s"}]}}
  ]}$$) IS NOT NULL AS registered;
SELECT hatchet.run_workflow('sp_flow', '{"x": 1}', '{"sp_m": "sp-1"}') AS r1 \gset
SELECT hatchet.run_status(:'r1') AS run_status;
SELECT task_id AS r1_first FROM hatchet.dequeue('sp_flow:first', 'w1') \gset
SELECT hatchet.complete(:'r1_first', 0, '{"y": 2}');
SELECT count(*) AS run_tasks FROM hatchet.run_tasks(:'r1');
SELECT count(*) AS run_rows FROM hatchet.run(:'r1');
SELECT count(*) >= 1 AS listed FROM hatchet.list_runs(since => CURRENT_TIMESTAMP - interval '1 hour');
SELECT count(*) AS finished FROM hatchet.finished_runs(ARRAY[:'r1']::uuid[]);
SELECT count(*) AS found
FROM hatchet.find_runs_by_metadata(hatchet.default_tenant(), 'sp_m', 'sp-1', CURRENT_TIMESTAMP - interval '1 hour');
SELECT hatchet.cancel_run(:'r1') AS run_cancelled;
SELECT hatchet.create_filter('sp_flow', 'sp-scope', 'input.x == 1') IS NOT NULL AS filtered;
SELECT hatchet.push_events('[{"key": "sp:one", "payload": {"x": 1}, "scope": "sp-scope"}]') IS NOT NULL AS pushed;
SELECT hatchet.push_event('sp:two', '{"x": 2}', scope => 'sp-scope') IS NOT NULL AS pushed;
SELECT count(*) AS events FROM hatchet.list_events(ARRAY['sp:one', 'sp:two']);
SELECT count(*) AS filters FROM hatchet.list_filters('sp_flow');
SELECT hatchet.create_cron('sp_flow', 'sp-cron', '*/5 * * * *') IS NOT NULL AS cron;
SELECT hatchet.schedule('sp_flow', CURRENT_TIMESTAMP - interval '1 second') IS NOT NULL AS scheduled;
SELECT count(*) AS crons FROM hatchet.list_crons('sp_flow');
SELECT count(*) AS schedules FROM hatchet.list_schedules('sp_flow');
SELECT count(*) AS workflows FROM hatchet.list_workflows('sp_flow');
-- Webhooks and streams.
SELECT hatchet.create_webhook('sp-hook', 'GENERIC', '''sp:'' + input.kind', 'API_KEY',
                              '{"headerName": "x-key", "apiKey": "s"}') IS NOT NULL AS webhook;
SELECT event_key AS hooked FROM hatchet.receive_webhook('sp-hook', '{"kind": "hooked"}', '{"x-key": "s"}');
SELECT hatchet.enqueue('sp_s', '{}') AS s1 \gset
SELECT count(*) AS claimed FROM hatchet.dequeue('sp_s', 'w1');
SELECT hatchet.put_stream_chunk(:'s1', '\x6869') AS streamed;
SELECT count(*) AS chunks FROM hatchet.read_stream_chunks(:'s1', settle => '0 seconds');
-- Maintenance: the background worker's pass (the due schedule fires), pruning.
SELECT hatchet.run_maintenance() IS NOT NULL AS maintained;
SELECT hatchet.prune_stream_chunks() IS NOT NULL AS pruned;
-- The per-row helpers that qualify names instead of pinning the path, called directly.
SELECT hatchet._event_key_matches('sp:*', 'sp:x') AS key_matches,
       hatchet._label_matches('{"gpu": 4}', 'gpu', '{"value": 2, "comparator": "GT"}') AS label_matches,
       hatchet._worker_score('00000000-0000-7000-8000-0000000000e1', '{"gpu": 4}', '{"gpu": {"value": 4}}', 'HARD',
                             '00000000-0000-7000-8000-0000000000e1') AS score,
       hatchet._queue_vtime(hatchet.default_tenant(), 'sp_a') IS NOT NULL AS vtime;
ROLLBACK;

SET client_min_messages = warning;
DROP SCHEMA evil CASCADE;
