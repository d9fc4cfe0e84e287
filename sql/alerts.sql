-- Alerts (docs/alerts.md): per-tenant alert channels (a Slack incoming webhook, a generic JSON webhook, email over
-- SMTP) and the alerts they are sent. When a task fails for good, the run it belongs to will end FAILED; a trigger on
-- the task timeline starts, in that same transaction, one run of the internal workflow `hatchet:alerts` (its one task
-- is on the queue `hatchet:alerts:deliver`) per enabled channel, at most once per run and channel (hatchet.alerts).
-- hatchet-server consumes that queue through hatchet.dequeue / complete / fail like any SQL consumer and does the
-- network part, so a slow or dead Slack never holds up the failure path, and a delivery that fails is retried with
-- backoff by the engine. Alert deliveries are ordinary workflow runs: listed, retried and timed out like the rest.
--
-- Secrets (a Slack or webhook URL, webhook headers, SMTP credentials) are written by put_alert_channel and read back
-- only by hatchet.alert_channel_secret, which only the server role may execute (security.sql); alert_channels never
-- returns them.
--
-- Public: put_alert_channel, delete_alert_channel, alert_channels, alert_channel_secret, alert_tenants, list_alerts.
-- Internal: _check_alert_channel, _alert_workflow, _enqueue_alert, _alert_on_task_failed (trigger),
-- _alert_worker_died (maintenance.sql's _reap_dead_workers), _alert_cron_missed (crons.sql's _tenant_time_triggers).
-- Calls: workflows.sql (register_workflow), runs.sql (run_workflow).

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
