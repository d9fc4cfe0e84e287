-- Events and event filters: hatchet.push_event stores an event, satisfies the user-event conditions that are waiting
-- for it, and triggers every workflow whose event triggers match its key: once when the workflow has no filters, else
-- once per filter whose scope equals the event's and whose CEL expression holds. Filters are CEL over `input` (the
-- event payload), `additional_metadata`, `payload` (the filter's own payload), `event_id` and `event_key`.
--
-- Events pushed before a workflow is registered do not trigger it; a waiting condition only sees events pushed after it
-- started waiting. The event satisfies waits first and triggers runs second, so a run it triggers is not satisfied by
-- the very event that started it.
--
-- Public: push_event, push_events, list_events, events_by_id; filters: create_filter, delete_filter, list_filters (one
-- list, by workflow name or public id, ids and scopes, paged), create_workflow_filter, update_filter.
-- Calls: tenants.sql, options.sql, workflows.sql (_latest_version), runs.sql (creating runs, satisfying matches,
-- run_status).

-- ---------------------------------------------------------------------------------------------------------------------
-- Events
-- ---------------------------------------------------------------------------------------------------------------------

-- Does an event key match a trigger pattern? `*` matches any run of characters; nothing else is special.
-- Not pinned: inlined into _push_events' per-row match, so every name is qualified (sql/schema.sql).
CREATE FUNCTION hatchet._event_key_matches(p_pattern text, p_key text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT p_key OPERATOR(pg_catalog.~~) pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(
               p_pattern, '\', '\\'), '%', '\%'), '_', '\_'), '*', '%')
$$;

-- Creates a run an event triggers. A workflow with an idempotency config can refuse it (another run holds the key, or
-- the key expression fails on this payload): then no run is created and the push goes on, as in Hatchet.
CREATE FUNCTION hatchet._create_event_run(p_tenant uuid, p_workflow text, p_version bigint, p_payload jsonb,
                                          p_metadata jsonb, p_priority integer, p_triggers jsonb DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM hatchet.workflow_versions v
                   WHERE v.tenant_id = p_tenant AND v.id = p_version AND v.definition ? 'idempotency') THEN
        RETURN hatchet._create_run(p_tenant, p_version, p_payload, p_metadata, p_priority, 'event', p_triggers);
    END IF;
    -- Only workflows with a key pay for this block's subtransaction.
    BEGIN
        RETURN hatchet._create_run(p_tenant, p_version, p_payload, p_metadata, p_priority, 'event', p_triggers);
    EXCEPTION WHEN unique_violation OR invalid_parameter_value THEN
        IF SQLSTATE = '22023' THEN
            RAISE WARNING 'pg_hatchet: an event did not trigger a run of workflow "%": %', p_workflow, SQLERRM;
        END IF;
        RETURN NULL;
    END;
END
$$;

-- The one path for events, in order: each element {key, payload, additional_metadata, scope, priority} already valid.
CREATE FUNCTION hatchet._push_events(p_tenant uuid, p_events jsonb) RETURNS uuid[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_ids     uuid[] := '{}';
    v_e       jsonb;
    v_id      uuid;
    v_key     text;
    v_scope   text;
    v_payload jsonb;
    v_meta    jsonb;
    v_prio    integer;
    v_now     timestamptz;
    v_matches uuid[];
    v_match   uuid;
    v_wf      record;
    v_filter  record;
    v_cel     record;
    v_run_meta jsonb;
BEGIN
    -- Lock every run with a condition waiting for any of these keys up front, in one ordered pass, so bulk pushes
    -- racing each other (or completions in the same runs) cannot deadlock.
    PERFORM hatchet._lock_runs(ARRAY(
        SELECT x.run_id FROM hatchet.matches x
        WHERE x.tenant_id = p_tenant AND x.event_keys <> '{}'
          AND x.event_keys && ARRAY(SELECT e->>'key' FROM jsonb_array_elements(p_events) e)));
    FOR v_e IN SELECT e FROM jsonb_array_elements(p_events) WITH ORDINALITY AS x(e, ord) ORDER BY ord LOOP
        v_id := hatchet.gen_id();
        v_ids := v_ids || v_id;
        v_key := v_e->>'key';
        v_scope := v_e->>'scope';
        v_payload := v_e->'payload';
        v_meta := v_e->'additional_metadata';
        v_prio := (v_e->>'priority')::integer;
        v_now := clock_timestamp();
        INSERT INTO hatchet.events (tenant_id, inserted_at, id, key, payload, additional_metadata, scope)
        VALUES (p_tenant, hatchet.uuid_time(v_id), v_id, v_key, v_payload, v_meta, v_scope);

        -- 1. Conditions waiting for this key (DAG tasks' wait_for / skip_if / cancel_if user events).
        v_matches := ARRAY(SELECT x.id FROM hatchet.matches x
                           WHERE x.tenant_id = p_tenant AND x.event_keys <> '{}' AND x.event_keys @> ARRAY[v_key]
                           ORDER BY x.id);
        IF cardinality(v_matches) > 0 THEN
            -- (Locked above; runs created by this push's own triggers are invisible to everyone else.)
            PERFORM hatchet._lock_runs(ARRAY(SELECT x.run_id FROM hatchet.matches x
                                             WHERE x.tenant_id = p_tenant AND x.id = ANY (v_matches)));
            FOREACH v_match IN ARRAY v_matches LOOP
                PERFORM hatchet._satisfy_match(p_tenant, v_match, 'event', v_now, v_key, v_scope, v_payload, v_meta);
            END LOOP;
        END IF;

        -- 2. Workflows triggered by this key (latest versions), once per matching filter when they have filters.
        v_run_meta := hatchet._clean_metadata(v_meta)
                      || jsonb_build_object('hatchet__event_id', v_id, 'hatchet__event_key', v_key);
        FOR v_wf IN
            SELECT w.id AS workflow_id, w.name, v.id AS version_id,
                   EXISTS (SELECT 1 FROM hatchet.event_filters f
                           WHERE f.tenant_id = p_tenant AND f.workflow_id = w.id) AS has_filters
            FROM hatchet.workflows w
            CROSS JOIN LATERAL (SELECT x.id, x.event_triggers FROM hatchet.workflow_versions x
                                WHERE x.tenant_id = w.tenant_id AND x.workflow_id = w.id
                                ORDER BY x.id DESC LIMIT 1) v
            WHERE w.tenant_id = p_tenant
              AND EXISTS (SELECT 1 FROM unnest(v.event_triggers) p WHERE hatchet._event_key_matches(p, v_key))
            ORDER BY w.id
        LOOP
            IF NOT v_wf.has_filters THEN
                PERFORM hatchet._create_event_run(p_tenant, v_wf.name, v_wf.version_id, v_payload, v_run_meta, v_prio);
                CONTINUE;
            END IF;
            FOR v_filter IN
                SELECT f.id, f.expression, f.payload FROM hatchet.event_filters f
                WHERE f.tenant_id = p_tenant AND f.workflow_id = v_wf.workflow_id AND f.scope = v_scope
                ORDER BY f.created_at, f.id
            LOOP
                v_cel := hatchet._cel_bool(v_filter.expression, jsonb_build_object(
                    'input', v_payload, 'additional_metadata', v_meta, 'payload', v_filter.payload,
                    'event_id', v_id, 'event_key', v_key));
                IF v_cel.error IS NOT NULL THEN
                    -- A broken filter triggers nothing; the push itself succeeds (as in Hatchet).
                    RAISE WARNING 'pg_hatchet: a filter of workflow "%" (scope "%") did not trigger a run: %',
                        v_wf.name, v_scope, v_cel.error;
                ELSIF v_cel.ok THEN
                    PERFORM hatchet._create_event_run(p_tenant, v_wf.name, v_wf.version_id, v_payload, v_run_meta,
                                                      v_prio, jsonb_build_object('filter_payload', v_filter.payload));
                END IF;
            END LOOP;
        END LOOP;
    END LOOP;
    RETURN v_ids;
END
$$;

-- Validates one event given as JSON and returns it in the form _push_events takes. p_what names it in errors.
CREATE FUNCTION hatchet._check_event(p_what text, p_key text, p_payload jsonb, p_metadata jsonb, p_scope text,
                                     p_priority integer)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_key IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY[p_what || 'key']);
    END IF;
    IF p_key = '' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[p_what || 'key must not be empty']);
    END IF;
    PERFORM hatchet._check_payload(p_what || 'payload', p_payload);
    PERFORM hatchet._check_payload(p_what || 'additional_metadata', p_metadata);
    IF p_priority IS NOT NULL AND p_priority NOT BETWEEN 1 AND 3 THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('%spriority must be between 1 and 3, not %s', p_what, p_priority)]);
    END IF;
    RETURN jsonb_build_object('key', p_key, 'payload', p_payload, 'additional_metadata', p_metadata,
                              'scope', p_scope, 'priority', p_priority);
END
$$;

CREATE FUNCTION hatchet.push_event(
    key                 text,
    payload             jsonb   DEFAULT '{}',
    additional_metadata jsonb   DEFAULT '{}',
    scope               text    DEFAULT NULL,
    tenant_id           uuid    DEFAULT NULL,
    priority            integer DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (hatchet._push_events(hatchet._tenant(push_event.tenant_id),
        jsonb_build_array(hatchet._check_event('', push_event.key, push_event.payload, push_event.additional_metadata,
                                               push_event.scope, push_event.priority))))[1];
END
$$;
COMMENT ON FUNCTION hatchet.push_event(text, jsonb, jsonb, text, uuid, integer) IS
    'push an event: satisfies waiting conditions and triggers matching workflows; returns the event id';

-- Bulk push (Hatchet's BulkPushEvent, at most 1000 events): events is a JSON array of
-- {key, payload, additional_metadata, scope, priority}. Returns the event ids in order.
CREATE FUNCTION hatchet.push_events(events jsonb, tenant_id uuid DEFAULT NULL) RETURNS uuid[]
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_events jsonb := '[]';
    v_e      jsonb;
    v_ord    bigint;
BEGIN
    IF push_events.events IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['events']);
    END IF;
    IF jsonb_typeof(push_events.events) <> 'array' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['events must be a JSON array']);
    END IF;
    IF jsonb_array_length(push_events.events) > 1000 THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('at most 1000 events can be pushed at once, not %s', jsonb_array_length(push_events.events))]);
    END IF;
    FOR v_e, v_ord IN SELECT e, ord FROM jsonb_array_elements(push_events.events) WITH ORDINALITY AS x(e, ord) LOOP
        IF jsonb_typeof(v_e) <> 'object' THEN
            PERFORM hatchet.raise_error('invalid_argument', ARRAY[format('events[%s] must be a JSON object', v_ord)]);
        END IF;
        v_events := v_events || jsonb_build_array(hatchet._check_event(format('events[%s].', v_ord), v_e->>'key',
            coalesce(v_e->'payload', '{}'), coalesce(v_e->'additional_metadata', '{}'), v_e->>'scope',
            hatchet._json_int(v_e->'priority', format('events[%s].priority', v_ord), 'events')));
    END LOOP;
    RETURN hatchet._push_events(hatchet._tenant(push_events.tenant_id), v_events);
END
$$;
COMMENT ON FUNCTION hatchet.push_events(jsonb, uuid) IS
    'push up to 1000 events ([{key, payload, additional_metadata, scope, priority}]); returns their ids in order';

-- Events, newest first, one page of them (by offset, or by keyset: "before" is the last id of the previous page),
-- with the runs each triggered. Matches are counted up to 10,000 (10,001 means "more"); payloads only when
-- include_payloads is true, and then the page's payloads must fit in 16 MiB (54000 otherwise).
CREATE FUNCTION hatchet.list_events(
    keys             text[]      DEFAULT NULL,
    since            timestamptz DEFAULT NULL,
    until            timestamptz DEFAULT NULL,
    "limit"          integer     DEFAULT 50,
    "offset"         integer     DEFAULT 0,
    tenant_id        uuid        DEFAULT NULL,
    before           uuid        DEFAULT NULL,
    include_payloads boolean     DEFAULT false,
    scopes           text[]      DEFAULT NULL,
    metadata         jsonb       DEFAULT NULL,
    workflow_ids     uuid[]      DEFAULT NULL,
    run_statuses     text[]      DEFAULT NULL
)
RETURNS TABLE (id uuid, key text, payload jsonb, additional_metadata jsonb, scope text, created_at timestamptz,
               runs jsonb, total bigint)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(list_events.tenant_id);
    c_count  constant integer := 10000;  -- matches counted at most (plus one, to say "more")
BEGIN
    PERFORM hatchet._check_page(list_events."limit", list_events."offset");
    IF list_events.include_payloads IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['include_payloads']);
    END IF;
    RETURN QUERY
    WITH matched AS MATERIALIZED (
        SELECT e.tenant_id, e.id, e.inserted_at
        FROM hatchet.events e
        WHERE e.tenant_id = p_tenant AND (list_events.keys IS NULL OR e.key = ANY (list_events.keys))
          AND e.inserted_at >= coalesce(list_events.since, '-infinity')
          AND e.inserted_at <= coalesce(list_events.until, 'infinity')
          AND (list_events.before IS NULL
               OR (e.inserted_at, e.id) < (hatchet.uuid_time(list_events.before), list_events.before))
          AND (list_events.scopes IS NULL OR e.scope = ANY (list_events.scopes))
          AND (list_events.metadata IS NULL OR e.additional_metadata @> list_events.metadata)
          -- an event that triggered a run of one of these workflows / in one of these statuses
          AND ((list_events.workflow_ids IS NULL AND list_events.run_statuses IS NULL) OR EXISTS (
                  SELECT 1 FROM hatchet.runs r
                  LEFT JOIN hatchet.workflow_versions v ON v.tenant_id = r.tenant_id AND v.id = r.workflow_version_id
                  LEFT JOIN hatchet.workflows w ON w.tenant_id = v.tenant_id AND w.id = v.workflow_id
                  WHERE r.tenant_id = e.tenant_id AND r.inserted_at >= e.inserted_at
                    AND r.additional_metadata @> jsonb_build_object('hatchet__event_id', e.id::text)
                    AND (list_events.workflow_ids IS NULL OR w.external_id = ANY (list_events.workflow_ids))
                    AND (list_events.run_statuses IS NULL
                         OR hatchet.run_status(r.id, p_tenant) = ANY (list_events.run_statuses))))
        ORDER BY e.inserted_at DESC, e.id DESC
        LIMIT greatest(c_count + 1, list_events."offset" + list_events."limit")
    ), page AS (
        SELECT e.*, sum(octet_length(e.payload::text)) OVER () AS bytes
        FROM (SELECT m.* FROM matched m ORDER BY m.inserted_at DESC, m.id DESC
              LIMIT list_events."limit" OFFSET list_events."offset") m
        JOIN hatchet.events e ON e.tenant_id = m.tenant_id AND e.inserted_at = m.inserted_at AND e.id = m.id
    )
    SELECT e.id, e.key, CASE WHEN list_events.include_payloads THEN e.payload END, e.additional_metadata, e.scope,
           e.inserted_at,
           coalesce((SELECT jsonb_agg(jsonb_build_object('id', r.id, 'status', hatchet.run_status(r.id, p_tenant))
                                      ORDER BY r.id)
                     FROM hatchet.runs r
                     WHERE r.tenant_id = e.tenant_id AND r.inserted_at >= e.inserted_at
                       AND r.additional_metadata ->> 'hatchet__event_id' = e.id::text), '[]'),
           (SELECT least(count(*), c_count + 1) FROM matched)
    FROM page e
    WHERE NOT list_events.include_payloads OR hatchet._page_fits('payloads', e.bytes)
    ORDER BY e.inserted_at DESC, e.id DESC;
END
$$;
COMMENT ON FUNCTION hatchet.list_events(text[], timestamptz, timestamptz, integer, integer, uuid, uuid, boolean, text[],
                                        jsonb, uuid[], text[]) IS
    'events, newest first, one page (by offset or keyset), with the runs each triggered ([{id, status}]) and the '
    'number of matches counted up to 10,000; payloads only when include_payloads; filtered by key, time, scope, '
    'metadata (containment) and the workflows and statuses of the runs they triggered';

-- Events by id (the SDKs' event.get, event.list(event_ids=...), and ReplaySingleEvent), in the order given, each with
-- the runs it triggered ([{id, status}]) as list_events gives them; unknown ids (and another tenant's) are left out.
CREATE FUNCTION hatchet.events_by_id(event_ids uuid[], tenant_id uuid DEFAULT NULL)
RETURNS TABLE (id uuid, key text, payload jsonb, additional_metadata jsonb, scope text, created_at timestamptz,
               runs jsonb)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(events_by_id.tenant_id);
BEGIN
    IF cardinality(events_by_id.event_ids) > 1000 THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('at most 1000 event ids at once, not %s', cardinality(events_by_id.event_ids))]);
    END IF;
    RETURN QUERY
    SELECT e.id, e.key, e.payload, e.additional_metadata, e.scope, e.inserted_at,
           coalesce((SELECT jsonb_agg(jsonb_build_object('id', r.id, 'status', hatchet.run_status(r.id, p_tenant))
                                      ORDER BY r.id)
                     FROM hatchet.runs r
                     WHERE r.tenant_id = e.tenant_id AND r.inserted_at >= e.inserted_at
                       AND r.additional_metadata ->> 'hatchet__event_id' = e.id::text), '[]')
    FROM unnest(events_by_id.event_ids) WITH ORDINALITY AS x(event_id, ord)
    JOIN hatchet.events e ON e.tenant_id = p_tenant AND e.inserted_at = hatchet.uuid_time(x.event_id)
                         AND e.id = x.event_id
    ORDER BY x.ord;
END
$$;
COMMENT ON FUNCTION hatchet.events_by_id(uuid[], uuid) IS
    'events by id, in the order given, with the runs each triggered; unknown ids are left out';

-- ---------------------------------------------------------------------------------------------------------------------
-- Filters
-- ---------------------------------------------------------------------------------------------------------------------

-- Filters (besides a workflow's declared default_filters, which registration replaces).
CREATE FUNCTION hatchet.create_filter(
    workflow   text,
    scope      text,
    expression text,
    payload    jsonb DEFAULT '{}',
    tenant_id  uuid  DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(create_filter.tenant_id);
    v_wf     record;
    v_id     uuid := hatchet.gen_id();
BEGIN
    v_wf := hatchet._latest_version(p_tenant, create_filter.workflow);
    IF coalesce(create_filter.scope, '') = '' OR coalesce(create_filter.expression, '') = '' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['a filter needs a scope and an expression']);
    END IF;
    PERFORM hatchet._check_payload('payload', create_filter.payload);
    PERFORM hatchet.cel_check(create_filter.expression);
    INSERT INTO hatchet.event_filters (tenant_id, id, workflow_id, scope, expression, payload)
    VALUES (p_tenant, v_id, v_wf.workflow_id, create_filter.scope, create_filter.expression, create_filter.payload)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        PERFORM hatchet.raise_error('duplicate_object',
            ARRAY['filter', format('%s (scope %s) of workflow %s', create_filter.expression, create_filter.scope,
                                   create_filter.workflow)]);
    END IF;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION hatchet.create_filter(text, text, text, jsonb, uuid) IS
    'add an event filter to a workflow: events with this scope trigger it once per filter whose CEL holds';

CREATE FUNCTION hatchet.delete_filter(filter_id uuid, tenant_id uuid DEFAULT NULL) RETURNS boolean
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH gone AS (
        DELETE FROM hatchet.event_filters f
        WHERE f.tenant_id = hatchet._tenant(delete_filter.tenant_id) AND f.id = delete_filter.filter_id
        RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM gone)
$$;
COMMENT ON FUNCTION hatchet.delete_filter(uuid, uuid) IS 'delete an event filter; false if there was none';

-- The one list of event filters: a tenant's filters, optionally only one workflow (by name) or some ids, workflows
-- (public ids) and scopes, oldest first, one page of them (max_rows NULL: all), each row with the total number that
-- matched (for pagination).
CREATE FUNCTION hatchet.list_filters(
    workflow     text    DEFAULT NULL,
    tenant_id    uuid    DEFAULT NULL,
    filter_ids   uuid[]  DEFAULT NULL,
    workflow_ids uuid[]  DEFAULT NULL,
    scopes       text[]  DEFAULT NULL,
    max_rows     integer DEFAULT NULL,
    skip_rows    integer DEFAULT 0
) RETURNS TABLE (filter_id uuid, workflow_id uuid, workflow text, scope text, expression text, payload jsonb,
                 is_declarative boolean, created_at timestamptz, total bigint)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT f.id, w.external_id, w.name, f.scope, f.expression, f.payload, f.is_declarative, f.created_at,
           count(*) OVER ()
    FROM hatchet.event_filters f
    JOIN hatchet.workflows w ON w.tenant_id = f.tenant_id AND w.id = f.workflow_id
    WHERE f.tenant_id = hatchet._tenant(list_filters.tenant_id)
      AND (list_filters.workflow IS NULL OR w.name = list_filters.workflow)
      AND (list_filters.filter_ids IS NULL OR f.id = ANY (list_filters.filter_ids))
      AND (list_filters.workflow_ids IS NULL OR w.external_id = ANY (list_filters.workflow_ids))
      AND (list_filters.scopes IS NULL OR f.scope = ANY (list_filters.scopes))
    ORDER BY f.created_at, f.id
    LIMIT CASE WHEN list_filters.max_rows IS NOT NULL THEN greatest(list_filters.max_rows, 0) END
    OFFSET greatest(coalesce(list_filters.skip_rows, 0), 0)
$$;
COMMENT ON FUNCTION hatchet.list_filters(text, uuid, uuid[], uuid[], text[], integer, integer) IS
    'a page of a tenant''s event filters by workflow name, id, workflow public id and scope, with the total count';

CREATE FUNCTION hatchet.create_workflow_filter(
    workflow_id uuid,
    scope       text,
    expression  text,
    payload     jsonb DEFAULT '{}',
    tenant_id   uuid  DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(create_workflow_filter.tenant_id);
    v_name   text;
BEGIN
    IF create_workflow_filter.workflow_id IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['workflow_id']);
    END IF;
    SELECT w.name INTO v_name FROM hatchet.workflows w
    WHERE w.tenant_id = p_tenant AND w.external_id = create_workflow_filter.workflow_id;
    IF v_name IS NULL THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['workflow', create_workflow_filter.workflow_id::text]);
    END IF;
    RETURN hatchet.create_filter(v_name, create_workflow_filter.scope, create_workflow_filter.expression,
                                 coalesce(create_workflow_filter.payload, '{}'), p_tenant);
END
$$;
COMMENT ON FUNCTION hatchet.create_workflow_filter(uuid, text, text, jsonb, uuid) IS
    'hatchet.create_filter for a workflow named by its public id';

-- Changes the given fields (NULL keeps a field). False if there is no such filter.
CREATE FUNCTION hatchet.update_filter(
    filter_id  uuid,
    expression text  DEFAULT NULL,
    scope      text  DEFAULT NULL,
    payload    jsonb DEFAULT NULL,
    tenant_id  uuid  DEFAULT NULL
) RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(update_filter.tenant_id);
BEGIN
    IF update_filter.expression = '' OR update_filter.scope = '' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['a filter needs a scope and an expression']);
    END IF;
    IF update_filter.expression IS NOT NULL THEN
        PERFORM hatchet.cel_check(update_filter.expression);
    END IF;
    IF update_filter.payload IS NOT NULL THEN
        PERFORM hatchet._check_payload('payload', update_filter.payload);
    END IF;
    UPDATE hatchet.event_filters f
    SET expression = coalesce(update_filter.expression, f.expression),
        scope      = coalesce(update_filter.scope, f.scope),
        payload    = coalesce(update_filter.payload, f.payload)
    WHERE f.tenant_id = p_tenant AND f.id = update_filter.filter_id;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION hatchet.update_filter(uuid, text, text, jsonb, uuid) IS
    'change an event filter''s expression, scope or payload (NULL keeps it); false if there is no such filter';
