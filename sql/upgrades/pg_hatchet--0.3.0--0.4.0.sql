-- pg_hatchet 0.3.0 -> 0.4.0 (docs/releasing.md). One section per topic; each CREATE OR REPLACE carries the same
-- text as sql/*.sql, and when a function appears twice the last copy is the one that counts.
\echo Use "ALTER EXTENSION pg_hatchet UPDATE TO '0.4.0'" to load this file. \quit

-- ---------------------------------------------------------------------------------------------------------------------
-- 1. Privileges as a function (sql/security.sql): hatchet._grant_api applies the grant lists to every function that
--    exists; 0.3.0 ran the same statements once in a DO block.
-- ---------------------------------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION hatchet._grant_api() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_app      text := (SELECT r.role_id::text FROM hatchet.roles r WHERE r.kind = 'app');
    v_consumer text := (SELECT r.role_id::text FROM hatchet.roles r WHERE r.kind = 'consumer');
    v_server   text := (SELECT r.role_id::text FROM hatchet.roles r WHERE r.kind = 'server');
    v_admin    text := (SELECT r.role_id::text FROM hatchet.roles r WHERE r.kind = 'admin');
    -- Exactly what each kind calls; the server and admin roles get every API function (no leading _) but these.
    c_app      text[] := ARRAY['default_tenant', 'my_tenants', 'enqueue', 'enqueue_many', 'run_workflow', 'schedule',
                               'push_event', 'push_events', 'cancel', 'cancel_run', 'replay_tasks', 'task_status',
                               'task', 'task_events', 'task_logs', 'run_status', 'run', 'run_tasks', 'run_events',
                               'run_children', 'run_shape', 'list_runs', 'finished_runs', 'find_runs_by_metadata',
                               'list_events', 'read_stream_chunks', 'run_stream_state'];
    c_consumer text[] := ARRAY['default_tenant', 'my_tenants', 'dequeue', 'complete', 'complete_many', 'fail',
                               'refresh_timeout', 'running_attempt', 'put_log', 'put_stream_chunk', 'task_status',
                               'task'];
    c_superuser_only text[] := ARRAY['run_maintenance', 'maintain_partitions'];
    c_admin_only     text[] := ARRAY['create_tenant', 'grant_tenant', 'revoke_tenant', 'list_tenant_grants'];
    c_server_only    text[] := ARRAY['find_webhooks'];  -- returns webhook credentials
    v_fn   regprocedure;
    v_name text;
BEGIN
    REVOKE ALL ON ALL TABLES IN SCHEMA hatchet FROM PUBLIC;
    REVOKE ALL ON ALL SEQUENCES IN SCHEMA hatchet FROM PUBLIC;
    REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA hatchet FROM PUBLIC;
    EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA hatchet TO %s, %s, %s, %s', v_app, v_consumer, v_server, v_admin);

    FOR v_fn, v_name IN
        SELECT p.oid::regprocedure, p.proname FROM pg_catalog.pg_proc p
        WHERE p.pronamespace = 'hatchet'::regnamespace AND p.prokind IN ('f', 'p')
        ORDER BY p.oid
    LOOP
        IF v_name = ANY (c_app) THEN
            EXECUTE pg_catalog.format('GRANT EXECUTE ON ROUTINE %s TO %s', v_fn, v_app);
        END IF;
        IF v_name = ANY (c_consumer) THEN
            EXECUTE pg_catalog.format('GRANT EXECUTE ON ROUTINE %s TO %s', v_fn, v_consumer);
        END IF;
        CONTINUE WHEN v_name LIKE '\_%' OR v_name = ANY (c_superuser_only);
        IF NOT v_name = ANY (c_admin_only) THEN
            EXECUTE pg_catalog.format('GRANT EXECUTE ON ROUTINE %s TO %s', v_fn, v_server);
        END IF;
        IF NOT v_name = ANY (c_server_only) THEN
            EXECUTE pg_catalog.format('GRANT EXECUTE ON ROUTINE %s TO %s', v_fn, v_admin);
        END IF;
    END LOOP;

    -- The server's own statements (hatchet-server/src/db/tenants.rs, db/maintenance.rs): token secrets and API
    -- tokens, and the queue depth gauge. Only the server role may read token_secret.
    EXECUTE pg_catalog.format('GRANT SELECT, UPDATE (token_secret) ON hatchet.tenants TO %s', v_server);
    EXECUTE pg_catalog.format('GRANT SELECT, INSERT, UPDATE ON hatchet.api_tokens TO %s', v_server);
    EXECUTE pg_catalog.format('GRANT SELECT ON hatchet.ready_queue TO %s', v_server);
    EXECUTE pg_catalog.format('GRANT SELECT (tenant_id, name, created_at) ON hatchet.tenants TO %s', v_admin);
END
$$;
COMMENT ON FUNCTION hatchet._grant_api() IS
    'revokes everything from PUBLIC and grants each group role exactly its API (run at install and by every upgrade)';


-- ---------------------------------------------------------------------------------------------------------------------
-- 2. Bounded lists (sql/options.sql, sql/runs.sql, sql/events.sql): list_runs and list_events count matches up to
--    10,000 instead of evaluating all of them, page by keyset ("before") as well as offset, and return payloads only
--    when include_payloads (16 MiB per page); a page holds at most 1,000 rows.
-- ---------------------------------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION hatchet._check_page(p_limit integer, p_offset integer) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 1000 THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format('limit must be between 1 and 1000, not %s',
                                                                     coalesce(p_limit::text, 'null'))]);
    END IF;
    IF p_offset IS NULL OR p_offset < 0 THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format('offset must not be negative, not %s',
                                                                     coalesce(p_offset::text, 'null'))]);
    END IF;
END
$$;
COMMENT ON FUNCTION hatchet._check_page(integer, integer) IS 'reject a limit outside 1..1000 or a negative offset';

CREATE FUNCTION hatchet._page_fits(p_what text, p_bytes bigint) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF coalesce(p_bytes, 0) > 16 * 1024 * 1024 THEN
        PERFORM hatchet.raise_error('limit_exceeded', ARRAY[format(
            'the %s of this page are %s bytes, over the limit of 16777216 bytes: ask for fewer rows or leave the '
            'payloads out', p_what, p_bytes)]);
    END IF;
    RETURN true;
END
$$;
COMMENT ON FUNCTION hatchet._page_fits(text, bigint) IS
    'true when one page''s payloads fit in 16 MiB; 54000 otherwise (list_runs, list_events)';

DROP FUNCTION hatchet.list_runs(timestamptz, timestamptz, uuid[], jsonb, uuid, text[], uuid, uuid, integer, integer, uuid);
CREATE FUNCTION hatchet.list_runs(
    since            timestamptz DEFAULT NULL,
    until            timestamptz DEFAULT NULL,
    workflow_ids     uuid[]      DEFAULT NULL,
    metadata         jsonb       DEFAULT NULL,
    parent_task      uuid        DEFAULT NULL,
    statuses         text[]      DEFAULT NULL,
    worker_id        uuid        DEFAULT NULL,
    event_id         uuid        DEFAULT NULL,
    "limit"          integer     DEFAULT 50,
    "offset"         integer     DEFAULT 0,
    tenant_id        uuid        DEFAULT NULL,
    before           uuid        DEFAULT NULL,
    include_payloads boolean     DEFAULT false
)
RETURNS TABLE (id uuid, status text, input jsonb, additional_metadata jsonb, created_at timestamptz,
               workflow_name text, workflow_id uuid, workflow_version_id uuid, parent_task_id uuid,
               triggered_by text, children bigint, total bigint)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant  uuid := hatchet._tenant(list_runs.tenant_id);
    c_count   constant integer := 10000;  -- matches counted at most (plus one, to say "more")
    v_bad     text;
BEGIN
    PERFORM hatchet._check_page(list_runs."limit", list_runs."offset");
    SELECT s INTO v_bad FROM unnest(list_runs.statuses) s
    WHERE s IS NULL OR s NOT IN ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED') LIMIT 1;
    IF FOUND THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format(
            'statuses must be QUEUED, RUNNING, COMPLETED, FAILED or CANCELLED, not %s', coalesce(v_bad, 'null'))]);
    END IF;
    IF list_runs.metadata IS NOT NULL AND jsonb_typeof(list_runs.metadata) <> 'object' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['metadata must be a JSON object']);
    END IF;
    IF list_runs.include_payloads IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['include_payloads']);
    END IF;
    RETURN QUERY
    WITH matched AS MATERIALIZED (
        SELECT r
        FROM hatchet.runs r
        WHERE r.tenant_id = p_tenant
          AND r.inserted_at >= coalesce(list_runs.since, '-infinity')
          AND r.inserted_at <= coalesce(list_runs.until, 'infinity')
          AND (list_runs.before IS NULL
               OR (r.inserted_at, r.id) < (hatchet.uuid_time(list_runs.before), list_runs.before))
          AND (list_runs.workflow_ids IS NULL OR EXISTS (
                  SELECT 1 FROM hatchet.workflow_versions wv
                  JOIN hatchet.workflows w ON w.tenant_id = wv.tenant_id AND w.id = wv.workflow_id
                  WHERE wv.tenant_id = r.tenant_id AND wv.id = r.workflow_version_id
                    AND w.external_id = ANY (list_runs.workflow_ids)))
          AND (list_runs.metadata IS NULL OR r.additional_metadata @> list_runs.metadata)
          AND (list_runs.parent_task IS NULL OR r.parent_task_id = list_runs.parent_task)
          AND (list_runs.event_id IS NULL OR r.additional_metadata ->> 'hatchet__event_id' = list_runs.event_id::text)
          AND (list_runs.statuses IS NULL OR hatchet.run_status(r.id, p_tenant) = ANY (list_runs.statuses))
          AND (list_runs.worker_id IS NULL OR EXISTS (
                  SELECT 1 FROM hatchet.tasks t CROSS JOIN LATERAL hatchet.task_events(t.id, p_tenant) e
                  WHERE t.tenant_id = r.tenant_id AND t.run_id = r.id AND t.inserted_at >= r.inserted_at
                    AND e.event_type = 'ASSIGNED' AND e.worker = list_runs.worker_id::text))
        ORDER BY r.inserted_at DESC, r.id DESC
        LIMIT greatest(c_count + 1, list_runs."offset" + list_runs."limit")
    ), page AS (
        SELECT m.r FROM matched m
        ORDER BY (m.r).inserted_at DESC, (m.r).id DESC
        LIMIT list_runs."limit" OFFSET list_runs."offset"
    ), sized AS (
        SELECT p.r, sum(octet_length((p.r).input::text)) OVER () AS bytes FROM page p
    )
    SELECT v.id, v.status, CASE WHEN list_runs.include_payloads THEN v.input END, v.additional_metadata,
           v.created_at, v.workflow_name, v.workflow_id, v.workflow_version_id, v.parent_task_id, v.triggered_by,
           v.children, (SELECT least(count(*), c_count + 1) FROM matched)
    FROM sized c CROSS JOIN LATERAL hatchet._run_view(p_tenant, c.r) v
    WHERE NOT list_runs.include_payloads OR hatchet._page_fits('inputs', c.bytes)
    ORDER BY v.created_at DESC, v.id DESC;
END
$$;
COMMENT ON FUNCTION hatchet.list_runs(timestamptz, timestamptz, uuid[], jsonb, uuid, text[], uuid, uuid, integer,
                                      integer, uuid, uuid, boolean) IS
    'workflow runs matching a filter, newest first, one page (by offset or keyset), with the number of matches counted '
    'up to 10,000; inputs only when include_payloads';

DROP FUNCTION hatchet.list_events(text[], timestamptz, timestamptz, integer, integer, uuid);
CREATE FUNCTION hatchet.list_events(
    keys             text[]      DEFAULT NULL,
    since            timestamptz DEFAULT NULL,
    until            timestamptz DEFAULT NULL,
    "limit"          integer     DEFAULT 50,
    "offset"         integer     DEFAULT 0,
    tenant_id        uuid        DEFAULT NULL,
    before           uuid        DEFAULT NULL,
    include_payloads boolean     DEFAULT false
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
COMMENT ON FUNCTION hatchet.list_events(text[], timestamptz, timestamptz, integer, integer, uuid, uuid, boolean) IS
    'events, newest first, one page (by offset or keyset), with the runs each triggered ([{id, status}]) and the '
    'number of matches counted up to 10,000; payloads only when include_payloads';

-- ---------------------------------------------------------------------------------------------------------------------
-- 3. Alerts (sql/alerts.sql, docs/alerts.md): alert channels, the alerts sent, the trigger that enqueues them when a
--    task fails for good; alert_channel_secret is server-only in _grant_api (sql/security.sql).
-- ---------------------------------------------------------------------------------------------------------------------

-- ---------------------------------------------------------------------------------------------------------------------
-- Tables (kept here rather than in schema.sql: they exist for alerting and are created with it)
-- ---------------------------------------------------------------------------------------------------------------------

CREATE TABLE hatchet.alert_channels (
    tenant_id  uuid        NOT NULL REFERENCES hatchet.tenants ON DELETE CASCADE,
    -- one channel of each kind per tenant
    kind       text        NOT NULL,
    enabled    boolean     NOT NULL DEFAULT true,
    -- what the channel is told about: run_failed (a run failed for good), worker_died (no heartbeat for
    -- hatchet.worker_dead_after_ms: declared dead, its attempts retried elsewhere), cron_missed (a cron skipped ticks
    -- because the engine was down or behind)
    events     text[]      NOT NULL DEFAULT ARRAY['run_failed'],
    -- not secret, returned by alert_channels: email {host, port, tls, from, to}; {} for slack and webhook
    settings   jsonb       NOT NULL DEFAULT '{}',
    -- secret, read only by the server role (alert_channel_secret): slack {url}; webhook {url, headers};
    -- email {username, password} or {}
    secret     jsonb       NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT alert_channels_pkey PRIMARY KEY (tenant_id, kind),
    CONSTRAINT alert_channel_kind_known CHECK (kind IN ('slack', 'webhook', 'email')),
    CONSTRAINT alert_channel_events_known CHECK (events <@ ARRAY['run_failed', 'worker_died', 'cron_missed']::text[]),
    CONSTRAINT alert_channel_settings_is_object CHECK (jsonb_typeof(settings) = 'object'),
    CONSTRAINT alert_channel_secret_is_object CHECK (jsonb_typeof(secret) = 'object')
);
COMMENT ON TABLE hatchet.alert_channels IS
    'where a tenant''s alerts go (slack, webhook, email); secret is readable by the server role only';
-- Channels are configuration: pg_dump keeps them.
SELECT pg_catalog.pg_extension_config_dump('hatchet.alert_channels', '');

CREATE TABLE hatchet.alerts (
    tenant_id  uuid        NOT NULL REFERENCES hatchet.tenants ON DELETE CASCADE,
    -- what the alert is about, 'run:<run id>', 'worker:<worker id>:<last heartbeat>' or 'cron:<cron id>:<tick>'; one
    -- alert per subject and channel, ever
    subject    text        NOT NULL,
    kind       text        NOT NULL,
    event      text        NOT NULL,
    -- the delivery: a run of the workflow hatchet:alerts (its one task has the same id)
    task_id    uuid        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT alerts_pkey PRIMARY KEY (tenant_id, subject, kind)
);
CREATE INDEX alerts_created_idx ON hatchet.alerts (tenant_id, created_at);
COMMENT ON TABLE hatchet.alerts IS
    'alerts enqueued: one per subject (a failed run) and channel kind, with the task that delivers it';

-- ---------------------------------------------------------------------------------------------------------------------
-- Settings
-- ---------------------------------------------------------------------------------------------------------------------

-- Checks a channel as put_alert_channel is about to store it (settings and secret already merged).
CREATE FUNCTION hatchet._check_alert_channel(p_kind text, p_events text[], p_settings jsonb, p_secret jsonb)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_bad  text;
    v_key  text;
    v_val  jsonb;
BEGIN
    IF p_kind IS NULL OR p_kind NOT IN ('slack', 'webhook', 'email') THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[pg_catalog.format('alert channel kind must be slack, webhook or email, not %s',
                                    coalesce(p_kind, 'null'))]);
    END IF;
    IF p_events IS NULL OR pg_catalog.cardinality(p_events) = 0 THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['an alert channel needs at least one event']);
    END IF;
    SELECT e INTO v_bad FROM pg_catalog.unnest(p_events) e
    WHERE e IS NULL OR e NOT IN ('run_failed', 'worker_died', 'cron_missed') LIMIT 1;
    IF FOUND THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[pg_catalog.format('alert events must be run_failed, worker_died or cron_missed, not %s',
                                    coalesce(v_bad, 'null'))]);
    END IF;
    IF p_settings IS NULL OR pg_catalog.jsonb_typeof(p_settings) <> 'object' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['alert channel settings must be a JSON object']);
    END IF;
    IF p_secret IS NULL OR pg_catalog.jsonb_typeof(p_secret) <> 'object' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['alert channel secret must be a JSON object']);
    END IF;

    IF p_kind IN ('slack', 'webhook') THEN
        IF p_settings <> '{}' THEN
            PERFORM hatchet.raise_error('invalid_argument',
                ARRAY[pg_catalog.format('a %s channel takes no settings, only a secret url', p_kind)]);
        END IF;
        SELECT k INTO v_bad FROM pg_catalog.jsonb_object_keys(p_secret) k
        WHERE k NOT IN ('url', 'headers') OR (p_kind = 'slack' AND k = 'headers') LIMIT 1;
        IF FOUND THEN
            PERFORM hatchet.raise_error('invalid_argument',
                ARRAY[pg_catalog.format('unknown field "%s" in a %s channel''s secret', v_bad, p_kind)]);
        END IF;
        IF pg_catalog.jsonb_typeof(p_secret -> 'url') IS DISTINCT FROM 'string'
           OR (p_secret ->> 'url') !~ '^https?://[^/\s]+' THEN
            PERFORM hatchet.raise_error('invalid_argument',
                ARRAY[pg_catalog.format('a %s channel needs an http:// or https:// "url" in its secret', p_kind)]);
        END IF;
        IF p_secret ? 'headers' THEN
            IF pg_catalog.jsonb_typeof(p_secret -> 'headers') <> 'object' THEN
                PERFORM hatchet.raise_error('invalid_argument', ARRAY['webhook headers must be a JSON object']);
            END IF;
            FOR v_key, v_val IN SELECT h.key, h.value FROM pg_catalog.jsonb_each(p_secret -> 'headers') h LOOP
                IF v_key !~ '^[A-Za-z0-9!#$%&''*+.^_`|~-]+$' OR pg_catalog.jsonb_typeof(v_val) <> 'string'
                   OR (v_val #>> '{}') ~ '[\r\n]' THEN
                    PERFORM hatchet.raise_error('invalid_argument',
                        ARRAY[pg_catalog.format('webhook header "%s" needs a token name and a one-line string value',
                                                v_key)]);
                END IF;
            END LOOP;
        END IF;
        RETURN;
    END IF;

    -- email
    SELECT k INTO v_bad FROM pg_catalog.jsonb_object_keys(p_settings) k
    WHERE k NOT IN ('host', 'port', 'tls', 'from', 'to') LIMIT 1;
    IF FOUND THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[pg_catalog.format('unknown field "%s" in an email channel''s settings', v_bad)]);
    END IF;
    IF pg_catalog.jsonb_typeof(p_settings -> 'host') IS DISTINCT FROM 'string' OR p_settings ->> 'host' = '' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['an email channel needs an SMTP "host"']);
    END IF;
    IF pg_catalog.jsonb_typeof(p_settings -> 'port') IS DISTINCT FROM 'number'
       OR (p_settings ->> 'port') !~ '^[0-9]{1,5}$' OR (p_settings ->> 'port')::integer NOT BETWEEN 1 AND 65535 THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['an email channel needs an SMTP "port" from 1 to 65535']);
    END IF;
    IF NOT coalesce(p_settings ->> 'tls' IN ('none', 'starttls', 'tls'), false)
       OR pg_catalog.jsonb_typeof(p_settings -> 'tls') <> 'string' THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY['an email channel''s "tls" must be none, starttls or tls']);
    END IF;
    IF pg_catalog.jsonb_typeof(p_settings -> 'from') IS DISTINCT FROM 'string'
       OR (p_settings ->> 'from') !~ '^[^@\s<>]+@[^@\s<>]+$' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['an email channel needs a "from" address']);
    END IF;
    IF pg_catalog.jsonb_typeof(p_settings -> 'to') IS DISTINCT FROM 'array'
       OR pg_catalog.jsonb_array_length(p_settings -> 'to') = 0
       OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(p_settings -> 'to') a
                  WHERE pg_catalog.jsonb_typeof(a) <> 'string' OR (a #>> '{}') !~ '^[^@\s<>]+@[^@\s<>]+$') THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY['an email channel needs a non-empty "to" list of addresses']);
    END IF;
    SELECT k INTO v_bad FROM pg_catalog.jsonb_object_keys(p_secret) k WHERE k NOT IN ('username', 'password') LIMIT 1;
    IF FOUND THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[pg_catalog.format('unknown field "%s" in an email channel''s secret', v_bad)]);
    END IF;
    IF (p_secret ? 'username') <> (p_secret ? 'password')
       OR pg_catalog.jsonb_typeof(coalesce(p_secret -> 'username', '""')) <> 'string'
       OR pg_catalog.jsonb_typeof(coalesce(p_secret -> 'password', '""')) <> 'string' THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY['an email channel''s secret holds both "username" and "password" (strings) or neither']);
    END IF;
END
$$;
COMMENT ON FUNCTION hatchet._check_alert_channel(text, text[], jsonb, jsonb) IS
    'reject an alert channel whose kind, events, settings or secret are not what its kind needs';

-- Registers the tenant's internal workflow hatchet:alerts (once; a definition registered again is a no-op) whose runs
-- deliver alerts: one task, retried with backoff 2^n s up to 10 minutes for about an hour; an attempt that hangs
-- times out after 30 s and counts as a failure.
CREATE FUNCTION hatchet._alert_workflow(p_tenant uuid) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM hatchet.workflows w WHERE w.tenant_id = p_tenant AND w.name = 'hatchet:alerts') THEN
        PERFORM hatchet.register_workflow(
            '{"name": "hatchet:alerts", "description": "alert deliveries (docs/alerts.md)",
              "tasks": [{"readable_id": "deliver", "retries": 10, "backoff_factor": 2, "backoff_max_seconds": 600,
                         "timeout": "30s", "schedule_timeout": "24h"}]}',
            p_tenant);
    END IF;
END
$$;
COMMENT ON FUNCTION hatchet._alert_workflow(uuid) IS
    'register the tenant''s internal workflow hatchet:alerts (queue hatchet:alerts:deliver) if it is not there yet';

-- Creates or replaces a tenant's channel of one kind. settings NULL keeps the stored settings ({} for a new
-- channel), secret NULL keeps the stored secret, so a settings page can change the rest without knowing the secret.
-- Returns true when the channel was created, false when it was updated.
CREATE FUNCTION hatchet.put_alert_channel(
    kind      text,
    settings  jsonb   DEFAULT NULL,
    secret    jsonb   DEFAULT NULL,
    enabled   boolean DEFAULT true,
    events    text[]  DEFAULT ARRAY['run_failed'],
    tenant_id uuid    DEFAULT NULL
) RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(put_alert_channel.tenant_id);
    v_old    hatchet.alert_channels;
    v_new    boolean;
BEGIN
    IF put_alert_channel.enabled IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['enabled']);
    END IF;
    SELECT c.* INTO v_old FROM hatchet.alert_channels c
    WHERE c.tenant_id = p_tenant AND c.kind = put_alert_channel.kind
    FOR UPDATE;
    v_new := NOT FOUND;
    PERFORM hatchet._check_alert_channel(put_alert_channel.kind, put_alert_channel.events,
                                         coalesce(put_alert_channel.settings, v_old.settings, '{}'),
                                         coalesce(put_alert_channel.secret, v_old.secret, '{}'));
    INSERT INTO hatchet.alert_channels AS c (tenant_id, kind, enabled, events, settings, secret)
    VALUES (p_tenant, put_alert_channel.kind, put_alert_channel.enabled, put_alert_channel.events,
            coalesce(put_alert_channel.settings, v_old.settings, '{}'),
            coalesce(put_alert_channel.secret, v_old.secret, '{}'))
    ON CONFLICT ON CONSTRAINT alert_channels_pkey DO UPDATE
    SET enabled = excluded.enabled, events = excluded.events, settings = excluded.settings,
        secret = excluded.secret, updated_at = pg_catalog.now();
    PERFORM hatchet._alert_workflow(p_tenant);
    RETURN v_new;
END
$$;
COMMENT ON FUNCTION hatchet.put_alert_channel(text, jsonb, jsonb, boolean, text[], uuid) IS
    'create or replace the tenant''s slack, webhook or email alert channel (NULL settings or secret: keep)';

CREATE FUNCTION hatchet.delete_alert_channel(kind text, tenant_id uuid DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(delete_alert_channel.tenant_id);
BEGIN
    DELETE FROM hatchet.alert_channels c WHERE c.tenant_id = p_tenant AND c.kind = delete_alert_channel.kind;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION hatchet.delete_alert_channel(text, uuid) IS
    'remove the tenant''s alert channel of this kind; false if there was none (queued deliveries are dropped)';

-- The tenant's channels without their secrets: secret_fields names which secret fields are set, never their values.
CREATE FUNCTION hatchet.alert_channels(tenant_id uuid DEFAULT NULL)
RETURNS TABLE (kind text, enabled boolean, events text[], settings jsonb, secret_fields text[],
               created_at timestamptz, updated_at timestamptz)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(alert_channels.tenant_id);
BEGIN
    RETURN QUERY
    SELECT c.kind, c.enabled, c.events, c.settings,
           ARRAY(SELECT k FROM pg_catalog.jsonb_object_keys(c.secret) k ORDER BY k),
           c.created_at, c.updated_at
    FROM hatchet.alert_channels c
    WHERE c.tenant_id = p_tenant
    ORDER BY c.kind;
END
$$;
COMMENT ON FUNCTION hatchet.alert_channels(uuid) IS
    'the tenant''s alert channels with their settings; secrets are named (secret_fields), never returned';

-- What hatchet-server needs to deliver one alert: the channel as it is now, secret included. No row when the
-- channel was removed since the alert was enqueued. Executable by the server role only (security.sql).
CREATE FUNCTION hatchet.alert_channel_secret(kind text, tenant_id uuid)
RETURNS TABLE (enabled boolean, settings jsonb, secret jsonb)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(alert_channel_secret.tenant_id);
BEGIN
    RETURN QUERY
    SELECT c.enabled, c.settings, c.secret FROM hatchet.alert_channels c
    WHERE c.tenant_id = p_tenant AND c.kind = alert_channel_secret.kind;
END
$$;
COMMENT ON FUNCTION hatchet.alert_channel_secret(text, uuid) IS
    'a channel''s settings and secret, for hatchet-server''s alert sender (server role only)';

-- The tenants that have at least one alert channel: the ones whose hatchet:alerts queue the server consumes.
CREATE FUNCTION hatchet.alert_tenants() RETURNS SETOF uuid
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT DISTINCT c.tenant_id FROM hatchet.alert_channels c ORDER BY c.tenant_id
$$;
COMMENT ON FUNCTION hatchet.alert_tenants() IS 'tenants with an alert channel (hatchet-server consumes their alerts)';

-- The tenant's alerts, newest first: which run, which channel, and the delivery task (its status is the run status
-- of that task).
CREATE FUNCTION hatchet.list_alerts(max_rows integer DEFAULT 50, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (subject text, kind text, event text, task_id uuid, created_at timestamptz)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(list_alerts.tenant_id);
BEGIN
    IF list_alerts.max_rows IS NULL OR list_alerts.max_rows NOT BETWEEN 1 AND 1000 THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[pg_catalog.format('max_rows must be between 1 and 1000, not %s',
                                    coalesce(list_alerts.max_rows::text, 'null'))]);
    END IF;
    RETURN QUERY
    SELECT a.subject, a.kind, a.event, a.task_id, a.created_at FROM hatchet.alerts a
    WHERE a.tenant_id = p_tenant
    ORDER BY a.created_at DESC, a.subject, a.kind
    LIMIT list_alerts.max_rows;
END
$$;
COMMENT ON FUNCTION hatchet.list_alerts(integer, uuid) IS 'the tenant''s most recent alerts and their delivery tasks';

-- ---------------------------------------------------------------------------------------------------------------------
-- Enqueueing
-- ---------------------------------------------------------------------------------------------------------------------

-- One delivery run per enabled channel that wants p_event, unless this subject already had an alert on that
-- channel (the row is inserted first: a concurrent failure of the same run waits on it, then skips). The run's input
-- says what happened (no secrets: inputs are readable by whoever reads runs); the server adds the channel's secret
-- and the dashboard link when it sends.
CREATE FUNCTION hatchet._enqueue_alert(p_tenant uuid, p_event text, p_subject text, p_input jsonb) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_kind text;
    v_id   uuid;
    n      integer := 0;
BEGIN
    FOR v_kind IN
        SELECT c.kind FROM hatchet.alert_channels c
        WHERE c.tenant_id = p_tenant AND c.enabled AND p_event = ANY (c.events)
        ORDER BY c.kind
    LOOP
        INSERT INTO hatchet.alerts (tenant_id, subject, kind, event, task_id)
        VALUES (p_tenant, p_subject, v_kind, p_event, hatchet.gen_id())
        ON CONFLICT ON CONSTRAINT alerts_pkey DO NOTHING;
        CONTINUE WHEN NOT FOUND;
        v_id := hatchet.run_workflow('hatchet:alerts',
                                     p_input || jsonb_build_object('channel', v_kind, 'event', p_event),
                                     jsonb_build_object('hatchet_alert', v_kind), NULL, p_tenant);
        UPDATE hatchet.alerts a SET task_id = v_id
        WHERE a.tenant_id = p_tenant AND a.subject = p_subject AND a.kind = v_kind;
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION hatchet._enqueue_alert(uuid, text, text, jsonb) IS
    'start one hatchet:alerts delivery run per enabled channel for this event, once per subject and channel';

-- Trigger on hatchet.task_events (FAILED rows only, see the WHEN clause): a task failed for good, so its run will
-- end FAILED. Costs one index probe when the tenant has no channel. A problem here must never undo the failure it
-- reports: it is logged as a warning and the failure commits without its alert.
CREATE FUNCTION hatchet._alert_on_task_failed() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_task hatchet.tasks;
    v_name text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM hatchet.alert_channels c
                   WHERE c.tenant_id = NEW.tenant_id AND c.enabled AND 'run_failed' = ANY (c.events)) THEN
        RETURN NULL;
    END IF;
    BEGIN
        SELECT t.* INTO v_task FROM hatchet.tasks t
        WHERE t.tenant_id = NEW.tenant_id AND t.inserted_at = NEW.task_inserted_at AND t.id = NEW.task_id;
        -- A delivery that failed for good is not itself alerted on (that would never end).
        IF NOT FOUND OR v_task.queue = 'hatchet:alerts:deliver' THEN
            RETURN NULL;
        END IF;
        SELECT w.name INTO v_name
        FROM hatchet.runs r
        JOIN hatchet.workflow_versions v ON v.tenant_id = r.tenant_id AND v.id = r.workflow_version_id
        JOIN hatchet.workflows w ON w.tenant_id = v.tenant_id AND w.id = v.workflow_id
        WHERE r.tenant_id = NEW.tenant_id AND r.inserted_at = hatchet.uuid_time(v_task.run_id) AND r.id = v_task.run_id;
        PERFORM hatchet._enqueue_alert(NEW.tenant_id, 'run_failed', 'run:' || v_task.run_id::text,
            jsonb_build_object('run_id', v_task.run_id, 'task_id', v_task.id,
                               'workflow', coalesce(v_name, v_task.queue),
                               'task', coalesce(v_task.readable_id, v_task.queue),
                               'attempt', NEW.retry_count,
                               'error', pg_catalog.left(coalesce(NEW.reason, ''), 2000),
                               'failed_at', NEW.created_at));
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'pg_hatchet: no alert for the failure of task %: %', NEW.task_id, SQLERRM;
    END;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION hatchet._alert_on_task_failed() IS
    'trigger: a task failed for good; enqueue the run_failed alerts of its run (once per run and channel)';
CREATE TRIGGER task_failed_alert AFTER INSERT ON hatchet.task_events
    FOR EACH ROW WHEN (NEW.event_type = 'FAILED') EXECUTE FUNCTION hatchet._alert_on_task_failed();

-- Called by hatchet._reap_dead_workers for each worker it declares dead (no heartbeat for worker_dead_after): one
-- worker_died alert per channel that wants it, once per death (the subject names the last heartbeat). Like the
-- trigger above, a problem here is a warning, never a failed maintenance pass.
CREATE FUNCTION hatchet._alert_worker_died(p_tenant uuid, p_worker uuid, p_attempts bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    w hatchet.workers;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM hatchet.alert_channels c
                   WHERE c.tenant_id = p_tenant AND c.enabled AND 'worker_died' = ANY (c.events)) THEN
        RETURN;
    END IF;
    BEGIN
        SELECT x.* INTO w FROM hatchet.workers x WHERE x.tenant_id = p_tenant AND x.id = p_worker;
        PERFORM hatchet._enqueue_alert(p_tenant, 'worker_died',
            'worker:' || p_worker::text || ':' || coalesce(w.last_heartbeat_at::text, ''),
            jsonb_build_object('worker_id', p_worker, 'worker', coalesce(w.name, ''),
                               'last_heartbeat_at', w.last_heartbeat_at, 'attempts_retried', coalesce(p_attempts, 0)));
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'pg_hatchet: no alert for the death of worker %: %', p_worker, SQLERRM;
    END;
END
$$;
COMMENT ON FUNCTION hatchet._alert_worker_died(uuid, uuid, bigint) IS
    'a worker was declared dead; start its worker_died alerts (once per death and channel)';

-- Called by hatchet._tenant_time_triggers when a cron fires a tick that is so late that later ticks were due too:
-- those are skipped (at most one catch-up run after downtime), and the channels that want cron_missed are told, once
-- per late tick. p_cron is the cron before it was advanced.
CREATE FUNCTION hatchet._alert_cron_missed(p_tenant uuid, p_cron hatchet.crons, p_now timestamptz) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_workflow text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM hatchet.alert_channels c
                   WHERE c.tenant_id = p_tenant AND c.enabled AND 'cron_missed' = ANY (c.events)) THEN
        RETURN;
    END IF;
    BEGIN
        SELECT w.name INTO v_workflow FROM hatchet.workflows w
        WHERE w.tenant_id = p_tenant AND w.id = p_cron.workflow_id;
        PERFORM hatchet._enqueue_alert(p_tenant, 'cron_missed',
            'cron:' || p_cron.id::text || ':' || hatchet._iso_utc(p_cron.next_tick_at),
            jsonb_build_object('cron_id', p_cron.id, 'cron', p_cron.name, 'expression', p_cron.expression,
                               'workflow', coalesce(v_workflow, ''),
                               'due_at', hatchet._iso_utc(p_cron.next_tick_at), 'fired_at', hatchet._iso_utc(p_now)));
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'pg_hatchet: no alert for the missed ticks of cron %: %', p_cron.id, SQLERRM;
    END;
END
$$;
COMMENT ON FUNCTION hatchet._alert_cron_missed(uuid, hatchet.crons, timestamptz) IS
    'a cron fired so late that later ticks were skipped; start its cron_missed alerts (once per tick and channel)';

CREATE OR REPLACE FUNCTION hatchet._grant_api() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_app      text := (SELECT r.role_id::text FROM hatchet.roles r WHERE r.kind = 'app');
    v_consumer text := (SELECT r.role_id::text FROM hatchet.roles r WHERE r.kind = 'consumer');
    v_server   text := (SELECT r.role_id::text FROM hatchet.roles r WHERE r.kind = 'server');
    v_admin    text := (SELECT r.role_id::text FROM hatchet.roles r WHERE r.kind = 'admin');
    -- Exactly what each kind calls; the server and admin roles get every API function (no leading _) but these.
    c_app      text[] := ARRAY['default_tenant', 'my_tenants', 'enqueue', 'enqueue_many', 'run_workflow', 'schedule',
                               'push_event', 'push_events', 'cancel', 'cancel_run', 'replay_tasks', 'task_status',
                               'task', 'task_events', 'task_logs', 'run_status', 'run', 'run_tasks', 'run_events',
                               'run_children', 'run_shape', 'list_runs', 'finished_runs', 'find_runs_by_metadata',
                               'list_events', 'read_stream_chunks', 'run_stream_state'];
    c_consumer text[] := ARRAY['default_tenant', 'my_tenants', 'dequeue', 'complete', 'complete_many', 'fail',
                               'refresh_timeout', 'running_attempt', 'put_log', 'put_stream_chunk', 'task_status',
                               'task'];
    c_superuser_only text[] := ARRAY['run_maintenance', 'maintain_partitions'];
    c_admin_only     text[] := ARRAY['create_tenant', 'grant_tenant', 'revoke_tenant', 'list_tenant_grants'];
    c_server_only    text[] := ARRAY['find_webhooks', 'alert_channel_secret'];  -- return credentials
    v_fn   regprocedure;
    v_name text;
BEGIN
    REVOKE ALL ON ALL TABLES IN SCHEMA hatchet FROM PUBLIC;
    REVOKE ALL ON ALL SEQUENCES IN SCHEMA hatchet FROM PUBLIC;
    REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA hatchet FROM PUBLIC;
    EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA hatchet TO %s, %s, %s, %s', v_app, v_consumer, v_server, v_admin);

    FOR v_fn, v_name IN
        SELECT p.oid::regprocedure, p.proname FROM pg_catalog.pg_proc p
        WHERE p.pronamespace = 'hatchet'::regnamespace AND p.prokind IN ('f', 'p')
        ORDER BY p.oid
    LOOP
        IF v_name = ANY (c_app) THEN
            EXECUTE pg_catalog.format('GRANT EXECUTE ON ROUTINE %s TO %s', v_fn, v_app);
        END IF;
        IF v_name = ANY (c_consumer) THEN
            EXECUTE pg_catalog.format('GRANT EXECUTE ON ROUTINE %s TO %s', v_fn, v_consumer);
        END IF;
        CONTINUE WHEN v_name LIKE '\_%' OR v_name = ANY (c_superuser_only);
        IF NOT v_name = ANY (c_admin_only) THEN
            EXECUTE pg_catalog.format('GRANT EXECUTE ON ROUTINE %s TO %s', v_fn, v_server);
        END IF;
        IF NOT v_name = ANY (c_server_only) THEN
            EXECUTE pg_catalog.format('GRANT EXECUTE ON ROUTINE %s TO %s', v_fn, v_admin);
        END IF;
    END LOOP;

    -- The server's own statements (hatchet-server/src/db/tenants.rs, db/maintenance.rs): token secrets and API
    -- tokens, and the queue depth gauge. Only the server role may read token_secret.
    EXECUTE pg_catalog.format('GRANT SELECT, UPDATE (token_secret) ON hatchet.tenants TO %s', v_server);
    EXECUTE pg_catalog.format('GRANT SELECT, INSERT, UPDATE ON hatchet.api_tokens TO %s', v_server);
    EXECUTE pg_catalog.format('GRANT SELECT ON hatchet.ready_queue TO %s', v_server);
    EXECUTE pg_catalog.format('GRANT SELECT (tenant_id, name, created_at) ON hatchet.tenants TO %s', v_admin);
END
$$;
COMMENT ON FUNCTION hatchet._grant_api() IS
    'revokes everything from PUBLIC and grants each group role exactly its API (run at install and by every upgrade)';


-- ---------------------------------------------------------------------------------------------------------------------
-- 4. worker_died alerts (sql/maintenance.sql): _reap_dead_workers starts the alerts of each worker it declares dead.
-- ---------------------------------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION hatchet._reap_dead_workers(p_tenant uuid, p_now timestamptz) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_dead uuid;
    v_cancelled bigint;
    n integer := 0;
    v_after interval := make_interval(secs => coalesce(current_setting('hatchet.worker_dead_after_ms', true)::integer,
                                                        30000) / 1000.0);
    v_since timestamptz := coalesce((SELECT m.reachable_since FROM hatchet.maintenance_state m
                                     WHERE m.tenant_id = p_tenant), '-infinity');
BEGIN
    DELETE FROM hatchet.reaped_attempts a WHERE a.tenant_id = p_tenant AND a.reaped_at < p_now - interval '1 day';
    FOR v_dead IN
        SELECT w.id FROM hatchet.workers w
        WHERE w.tenant_id = p_tenant AND w.is_active AND greatest(w.last_heartbeat_at, v_since) < p_now - v_after
        FOR UPDATE SKIP LOCKED
    LOOP
        WITH held AS (
            INSERT INTO hatchet.reaped_attempts (tenant_id, worker_id, task_id, retry_count, reaped_at)
            SELECT p_tenant, v_dead, r.task_id, r.retry_count, p_now FROM hatchet.running r
            WHERE r.tenant_id = p_tenant AND r.worker_id = v_dead
            ON CONFLICT ON CONSTRAINT reaped_attempts_pkey DO NOTHING
            RETURNING task_id, retry_count
        )
        SELECT count(pg_notify('hatchet_cancel', h.task_id::text || ':' || h.retry_count || ':' || v_dead::text))
        INTO v_cancelled FROM held h;
        n := n + hatchet.deregister_worker(v_dead, 'worker stopped sending heartbeats', p_tenant);
        PERFORM hatchet._alert_worker_died(p_tenant, v_dead, v_cancelled);
    END LOOP;
    RETURN n;
END
$$;


-- ---------------------------------------------------------------------------------------------------------------------
-- 5. Alert records expire with retention (sql/maintenance.sql): maintain_partitions deletes old hatchet.alerts rows.
-- ---------------------------------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION hatchet.maintain_partitions(
    days_ahead     integer DEFAULT NULL,
    retention_days integer DEFAULT NULL
) RETURNS TABLE (action text, partition_name text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_ahead     integer := coalesce(days_ahead, current_setting('hatchet.partition_days_ahead', true)::integer, 3);
    v_retention integer := coalesce(retention_days, current_setting('hatchet.retention_days', true)::integer, 30);
    v_today     date    := (clock_timestamp() AT TIME ZONE 'UTC')::date;
    v_oldest_live timestamptz;
    v_table     text;
    v_day       date;
    v_name      text;
    v_upper     date;
    r           record;
BEGIN
    IF v_ahead < 1 THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['days_ahead must be at least 1']);
    END IF;
    IF v_retention < 1 THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['retention_days must be at least 1']);
    END IF;

    -- Serialise concurrent maintainers (the worker and a manual call) so neither trips over the other's DDL.
    PERFORM pg_advisory_xact_lock(hashtext('pg_hatchet.maintain_partitions'));

    FOREACH v_table IN ARRAY hatchet.partitioned_tables() LOOP
        FOR v_day IN SELECT d::date FROM generate_series(v_today - 1, v_today + v_ahead, interval '1 day') AS d LOOP
            v_name := format('%s_p%s', v_table, to_char(v_day, 'YYYYMMDD'));
            IF to_regclass(format('hatchet.%I', v_name)) IS NULL THEN
                action := hatchet._partition_ddl(format(
                    'CREATE TABLE hatchet.%I PARTITION OF hatchet.%I FOR VALUES FROM (%L) TO (%L)',
                    v_name, v_table,
                    (v_day::timestamp AT TIME ZONE 'UTC'), ((v_day + 1)::timestamp AT TIME ZONE 'UTC')),
                    'created', v_name);
                partition_name := v_name;
                RETURN NEXT;
            END IF;
        END LOOP;
    END LOOP;

    -- The oldest task that still has an attempt in flight pins its partition (and every later one).
    SELECT min(x) INTO v_oldest_live FROM (
        SELECT min(task_inserted_at) AS x FROM hatchet.ready_queue
        UNION ALL SELECT min(task_inserted_at) FROM hatchet.delayed_queue
        UNION ALL SELECT min(task_inserted_at) FROM hatchet.running
        UNION ALL SELECT min(task_inserted_at) FROM hatchet.concurrency_queue
        -- An unfinished workflow run pins the day of its runs row too (a UUIDv7's first 48 bits are its creation time
        -- in ms; spelled out in SQL because this runs before the Rust functions exist, at CREATE EXTENSION).
        UNION ALL SELECT to_timestamp(min(('x' || left(replace(u_run::text, '-', ''), 12))::bit(48)::bigint) / 1000.0)
        FROM (SELECT run_id FROM hatchet.matches
              UNION ALL SELECT run_id FROM hatchet.ready_queue WHERE run_id IS NOT NULL
              UNION ALL SELECT run_id FROM hatchet.running WHERE run_id IS NOT NULL) AS unfinished(u_run)
    ) live;

    FOR r IN
        SELECT c.relname, p.relname AS parent
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        JOIN pg_namespace n ON n.oid = p.relnamespace
        WHERE n.nspname = 'hatchet' AND p.relname = ANY (hatchet.partitioned_tables())
          AND c.relname ~ '_p[0-9]{8}$'
        ORDER BY c.relname
    LOOP
        v_upper := to_date(right(r.relname, 8), 'YYYYMMDD') + 1;
        IF v_upper <= v_today - v_retention
           AND (v_oldest_live IS NULL OR (v_upper::timestamp AT TIME ZONE 'UTC') <= v_oldest_live) THEN
            action := hatchet._partition_ddl(format('DROP TABLE hatchet.%I', r.relname), 'dropped', r.relname);
            partition_name := r.relname;
            RETURN NEXT;
        END IF;
    END LOOP;

    -- The record of alerts sent (sql/alerts.sql) expires with the history it is about.
    DELETE FROM hatchet.alerts a WHERE a.created_at < ((v_today - v_retention)::timestamp AT TIME ZONE 'UTC');
END
$$;


-- ---------------------------------------------------------------------------------------------------------------------
-- 6. cron_missed alerts (sql/crons.sql): _tenant_time_triggers tells _alert_cron_missed when a tick it fires is so late
--    that later ticks are skipped.
-- ---------------------------------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION hatchet._tenant_time_triggers(p_tenant uuid, p_now timestamptz, p_limit integer) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now       timestamptz := p_now;
    v_limit     integer := p_limit;
    v_retention integer := coalesce(current_setting('hatchet.retention_days', true)::integer, 30);
    c           hatchet.crons;
    s           hatchet.scheduled_runs;
    m           record;
    v_version   bigint;
    v_run       uuid;
    v_next      timestamptz;
BEGIN
    -- Cron ticks. FOR UPDATE re-checks next_tick_at on the latest row version, so a tick a concurrent pass has
    -- just fired (and advanced) is not fired again; SKIP LOCKED leaves a cron another pass holds to that pass.
    FOR c IN
        SELECT x.* FROM hatchet.crons x
        WHERE x.tenant_id = p_tenant AND x.enabled AND x.next_tick_at <= v_now
        ORDER BY x.next_tick_at
        LIMIT v_limit
        FOR UPDATE SKIP LOCKED
    LOOP
        BEGIN
            SELECT v.id INTO STRICT v_version FROM hatchet.workflow_versions v
            WHERE v.tenant_id = p_tenant AND v.workflow_id = c.workflow_id ORDER BY v.id DESC LIMIT 1;
            PERFORM hatchet._create_run(p_tenant, v_version, c.input,
                hatchet._clean_metadata(c.additional_metadata) || jsonb_build_object(
                    'hatchet__cron_name', c.name, 'hatchet__cron_expression', c.expression,
                    'hatchet__scheduled_at', hatchet._iso_utc(c.next_tick_at), 'hatchet__triggered_by', 'cron'),
                c.priority, 'cron');
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'pg_hatchet: cron % (%) skipped the tick due at %: %', c.name, c.id,
                hatchet._iso_utc(c.next_tick_at), SQLERRM;
        END;
        -- A tick after the one just fired was due too: those are skipped, never replayed (cron_missed alerts).
        IF c.next_tick_at < v_now - interval '1 second'
           AND hatchet.cron_next(c.expression, c.next_tick_at) <= v_now THEN
            PERFORM hatchet._alert_cron_missed(p_tenant, c, v_now);
        END IF;
        -- The next tick after now (not after the tick just fired): at most one catch-up run after downtime.
        v_next := hatchet.cron_next(c.expression, greatest(v_now, c.next_tick_at));
        UPDATE hatchet.crons x
        SET last_tick_at = c.next_tick_at, next_tick_at = coalesce(v_next, 'infinity'),
            enabled = v_next IS NOT NULL
        WHERE x.tenant_id = p_tenant AND x.id = c.id;
    END LOOP;

    -- One-off schedules.
    FOR s IN
        SELECT x.* FROM hatchet.scheduled_runs x
        WHERE x.tenant_id = p_tenant AND x.fired_run_id IS NULL AND x.error IS NULL AND x.run_at <= v_now
        ORDER BY x.run_at
        LIMIT v_limit
        FOR UPDATE SKIP LOCKED
    LOOP
        BEGIN
            SELECT v.id INTO STRICT v_version FROM hatchet.workflow_versions v
            WHERE v.tenant_id = p_tenant AND v.workflow_id = s.workflow_id ORDER BY v.id DESC LIMIT 1;
            v_run := hatchet._create_run(p_tenant, v_version, s.input,
                hatchet._clean_metadata(s.additional_metadata) || jsonb_build_object(
                    'hatchet__scheduled_at', hatchet._iso_utc(s.run_at), 'hatchet__triggered_by', 'schedule'),
                s.priority, 'schedule');
            UPDATE hatchet.scheduled_runs x SET fired_run_id = v_run WHERE x.tenant_id = p_tenant AND x.id = s.id;
        EXCEPTION WHEN OTHERS THEN
            UPDATE hatchet.scheduled_runs x SET error = SQLERRM WHERE x.tenant_id = p_tenant AND x.id = s.id;
            RAISE WARNING 'pg_hatchet: schedule % could not fire: %', s.id, SQLERRM;
        END;
    END LOOP;

    -- Sleeps of pending matches. A run whose matches another transaction is changing right now is left to the
    -- next pass rather than waited for.
    FOR m IN
        SELECT x.id, x.run_id FROM hatchet.matches x
        WHERE x.tenant_id = p_tenant AND x.wake_at <= v_now
        ORDER BY x.wake_at
        LIMIT v_limit
    LOOP
        CONTINUE WHEN NOT pg_try_advisory_xact_lock(1212240963, hashtext(m.run_id::text));
        BEGIN
            PERFORM hatchet._satisfy_match(p_tenant, m.id, 'sleep', v_now);
        EXCEPTION WHEN OTHERS THEN
            UPDATE hatchet.matches x SET wake_at = v_now + interval '5 seconds'
            WHERE x.tenant_id = p_tenant AND x.id = m.id;
            RAISE WARNING 'pg_hatchet: sleep of match % could not be completed: %', m.id, SQLERRM;
        END;
    END LOOP;

    -- Fired schedules are history: kept for the retention period after they fired (their run id's time), then
    -- deleted. A schedule fires after its run_at, so the index on run_at narrows the search.
    DELETE FROM hatchet.scheduled_runs x
    WHERE x.ctid = ANY (ARRAY(
        SELECT y.ctid FROM hatchet.scheduled_runs y
        WHERE y.tenant_id = p_tenant AND y.fired_run_id IS NOT NULL
          AND y.run_at < v_now - make_interval(days => v_retention)
          AND hatchet.uuid_time(y.fired_run_id) < v_now - make_interval(days => v_retention)
        LIMIT v_limit));
END
$$;


-- ---------------------------------------------------------------------------------------------------------------------
-- Last: privileges for everything this script created (keep this the final statement).
-- ---------------------------------------------------------------------------------------------------------------------

SELECT hatchet._grant_api();
