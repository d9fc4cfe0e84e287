-- pg_hatchet 0.2.0 -> 0.3.0 (applied by ALTER EXTENSION pg_hatchet UPDATE TO '0.3.0').
--
-- What 0.3.0 changes in the installed SQL, by topic (each section says what it changes). Each definition below is the
-- same text as in sql/*.sql, so an updated 0.2.0 and a fresh 0.3.0 have the same catalog (tests/upgrade).

\echo Use "ALTER EXTENSION pg_hatchet UPDATE TO '0.3.0'" to load this file. \quit

-- 0. The Rust functions of pg_hatchet/src/security.rs (issue 15, section 4): who is calling, and the tenant a call
--    acts for. First, because the SQL-language functions of every section call hatchet._tenant.
CREATE FUNCTION hatchet."_caller"() RETURNS oid
STRICT STABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'caller_wrapper';

CREATE FUNCTION hatchet."_invalidate_security"("relation" oid) RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'invalidate_security_wrapper';

CREATE FUNCTION hatchet."_tenant"("tenant_id" uuid) RETURNS uuid
STABLE PARALLEL RESTRICTED
LANGUAGE c
AS 'MODULE_PATHNAME', 'resolve_tenant_wrapper';

-- =====================================================================================================================
-- 1. Hardening: CEL budget, maintenance isolation, quotas (issue 15)
-- =====================================================================================================================

-- CEL budget: no SQL changes (the limits live in the library and its hatchet.cel_* settings). New settings:
-- hatchet.cel_max_length, cel_max_depth, cel_max_cost, cel_timeout, ddl_lock_timeout, max_log_line_bytes,
-- max_logs_per_task, max_stream_chunk_bytes, max_stream_chunks_per_task, max_error_bytes.

-- Maintenance isolation: failures per tenant and job (sql/schema.sql).
-- One row per tenant and maintenance job that ever failed (sql/maintenance.sql): the background worker runs each job
-- for each tenant in a subtransaction, so a failure is rolled back, logged, counted here and skipped, and the other
-- tenants and jobs go on. The row stays (with its count) after the job recovers; last_ok_at says it did.
CREATE TABLE hatchet.maintenance_status (
    -- NULL for the jobs that are not per tenant (partitions)
    tenant_id      uuid        REFERENCES hatchet.tenants ON DELETE CASCADE,
    job            text        NOT NULL,
    failures       bigint      NOT NULL DEFAULT 0,
    last_error     text,
    last_sqlstate  text,
    last_failed_at timestamptz,
    -- the first success after the last failure (NULL while the job is still failing)
    last_ok_at     timestamptz,
    CONSTRAINT maintenance_status_key UNIQUE NULLS NOT DISTINCT (tenant_id, job)
);
COMMENT ON TABLE hatchet.maintenance_status IS
    'maintenance jobs that failed, per tenant and job: how often, the last error and when, and when one next succeeded';

-- Quotas on what tasks write (sql/options.sql, sql/tasks.sql, sql/streams.sql).
CREATE OR REPLACE FUNCTION hatchet._check_size(p_what text, p_bytes integer, p_setting text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_limit integer := current_setting(p_setting)::integer;
BEGIN
    IF p_bytes > v_limit THEN
        PERFORM hatchet.raise_error('limit_exceeded', ARRAY[format('%s is %s bytes, over the limit of %s bytes (%s)',
                                                                   p_what, p_bytes, v_limit, p_setting)]);
    END IF;
END
$$;
COMMENT ON FUNCTION hatchet._check_size(text, integer, text) IS 'reject an item over the byte limit of a setting (54000)';

CREATE OR REPLACE FUNCTION hatchet._check_count(p_what text, p_task uuid, p_setting text, p_count bigint) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_limit integer := current_setting(p_setting)::integer;
BEGIN
    IF p_count >= v_limit THEN
        PERFORM hatchet.raise_error('limit_exceeded', ARRAY[format('task "%s" already wrote %s %s, the limit (%s)',
                                                                   p_task, v_limit, p_what, p_setting)]);
    END IF;
END
$$;
COMMENT ON FUNCTION hatchet._check_count(text, uuid, text, bigint) IS
    'reject one more item of a task that reached the count limit of a setting (54000)';

CREATE OR REPLACE FUNCTION hatchet.put_log(task_id uuid, message text, level text DEFAULT 'INFO', retry_count integer DEFAULT NULL,
                                created_at timestamptz DEFAULT NULL, tenant_id uuid DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := coalesce(put_log.tenant_id, hatchet.default_tenant());
    v_at timestamptz := hatchet.uuid_time(put_log.task_id);
BEGIN
    IF put_log.message IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['message']);
    END IF;
    PERFORM hatchet._check_size('log line', octet_length(put_log.message), 'hatchet.max_log_line_bytes');
    IF NOT EXISTS (SELECT 1 FROM hatchet.tasks t WHERE t.tenant_id = p_tenant AND t.inserted_at = v_at
                                                   AND t.id = put_log.task_id) THEN
        PERFORM hatchet.raise_error('unknown_task', ARRAY[put_log.task_id::text]);
    END IF;
    PERFORM hatchet._check_count('log lines', put_log.task_id, 'hatchet.max_logs_per_task',
        (SELECT count(*) FROM (SELECT 1 FROM hatchet.logs l
                               WHERE l.tenant_id = p_tenant AND l.task_inserted_at = v_at AND l.task_id = put_log.task_id
                               LIMIT current_setting('hatchet.max_logs_per_task')::integer) x));
    INSERT INTO hatchet.logs (tenant_id, task_inserted_at, task_id, created_at, retry_count, level, message)
    VALUES (p_tenant, v_at, put_log.task_id, coalesce(put_log.created_at, clock_timestamp()),
            coalesce(put_log.retry_count,
                     (SELECT r.retry_count FROM hatchet.running r WHERE r.tenant_id = p_tenant AND r.task_id = put_log.task_id),
                     0),
            upper(coalesce(put_log.level, 'INFO')), put_log.message);
END
$$;
COMMENT ON FUNCTION hatchet.put_log(uuid, text, text, integer, timestamptz, uuid) IS 'append a log line of a task';

CREATE OR REPLACE FUNCTION hatchet.fail(
    task_id     uuid,
    retry_count integer,
    error       text,
    retryable   boolean DEFAULT true,
    tenant_id   uuid    DEFAULT NULL
) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := coalesce(fail.tenant_id, hatchet.default_tenant());
    v_run    hatchet.running;
BEGIN
    IF fail.error IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['error']);
    END IF;
    IF fail.retryable IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['retryable']);
    END IF;
    PERFORM hatchet._check_size('error', octet_length(fail.error), 'hatchet.max_error_bytes');
    DELETE FROM hatchet.running r
    WHERE r.tenant_id = p_tenant AND r.task_id = fail.task_id AND r.retry_count = fail.retry_count
    RETURNING r.* INTO v_run;
    IF NOT FOUND THEN
        PERFORM hatchet._reject_stale(p_tenant, fail.task_id, fail.retry_count);
    END IF;
    RETURN hatchet._fail_attempt(p_tenant, v_run, fail.error, fail.retryable);
END
$$;
COMMENT ON FUNCTION hatchet.fail(uuid, integer, text, boolean, uuid) IS
    'fail the running attempt: returns QUEUED if a retry was scheduled (with backoff), FAILED if none remain';

CREATE OR REPLACE FUNCTION hatchet.put_stream_chunk(
    task_id     uuid,
    message     bytea,
    event_index bigint      DEFAULT NULL,
    tenant_id   uuid        DEFAULT NULL,
    created_at  timestamptz DEFAULT NULL
) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := coalesce(put_stream_chunk.tenant_id, hatchet.default_tenant());
    p_task   uuid := put_stream_chunk.task_id;
    v_run    uuid;
    v_retry  integer;
BEGIN
    IF p_task IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['task_id']);
    END IF;
    IF put_stream_chunk.message IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['message']);
    END IF;
    PERFORM hatchet._check_size('stream chunk', octet_length(put_stream_chunk.message), 'hatchet.max_stream_chunk_bytes');
    IF put_stream_chunk.event_index < 0 THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('event_index must not be negative, not %s', put_stream_chunk.event_index)]);
    END IF;
    SELECT t.run_id INTO v_run FROM hatchet.tasks t
    WHERE t.tenant_id = p_tenant AND t.inserted_at = hatchet.uuid_time(p_task) AND t.id = p_task;
    IF v_run IS NULL THEN
        PERFORM hatchet.raise_error('unknown_task', ARRAY[p_task::text]);
    END IF;
    PERFORM hatchet._check_count('stream chunks', p_task, 'hatchet.max_stream_chunks_per_task',
        (SELECT count(*) FROM (SELECT 1 FROM hatchet.stream_chunks c
                               WHERE c.tenant_id = p_tenant AND c.run_id = v_run AND c.task_id = p_task
                               LIMIT current_setting('hatchet.max_stream_chunks_per_task')::integer) x));
    v_retry := coalesce((SELECT r.retry_count FROM hatchet.running r WHERE r.tenant_id = p_tenant AND r.task_id = p_task),
                        (SELECT max(e.retry_count) FROM hatchet.task_events e
                         WHERE e.tenant_id = p_tenant AND e.task_inserted_at = hatchet.uuid_time(p_task)
                           AND e.task_id = p_task),
                        0);
    INSERT INTO hatchet.stream_chunks (tenant_id, run_id, task_id, retry_count, event_index, message, created_at)
    VALUES (p_tenant, v_run, p_task, v_retry, put_stream_chunk.event_index, put_stream_chunk.message,
            coalesce(put_stream_chunk.created_at, clock_timestamp()))
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;  -- the same chunk again (a client retry): stored once
    END IF;
    PERFORM pg_notify('hatchet_stream', v_run::text);
    RETURN true;
END
$$;
COMMENT ON FUNCTION hatchet.put_stream_chunk(uuid, bytea, bigint, uuid, timestamptz) IS
    'append a stream chunk of a task to its run''s stream and NOTIFY hatchet_stream; false if it was already stored';

-- Maintenance isolated per tenant and job, partition DDL with a short lock_timeout (sql/crons.sql,
-- sql/maintenance.sql).
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
COMMENT ON FUNCTION hatchet._tenant_time_triggers(uuid, timestamptz, integer) IS
    'fire one tenant''s due cron ticks, schedules and sleeps (one run per tick, never twice)';

CREATE OR REPLACE FUNCTION hatchet._time_triggers_due() RETURNS timestamptz
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_next timestamptz;
BEGIN
    SELECT min(x) INTO v_next FROM (
        SELECT (SELECT min(c2.next_tick_at) FROM hatchet.crons c2 WHERE c2.tenant_id = t.tenant_id AND c2.enabled) AS x
        FROM hatchet.tenants t
        UNION ALL
        SELECT (SELECT min(s2.run_at) FROM hatchet.scheduled_runs s2
                WHERE s2.tenant_id = t.tenant_id AND s2.fired_run_id IS NULL AND s2.error IS NULL)
        FROM hatchet.tenants t
        UNION ALL
        SELECT (SELECT min(m2.wake_at) FROM hatchet.matches m2 WHERE m2.tenant_id = t.tenant_id AND m2.wake_at IS NOT NULL)
        FROM hatchet.tenants t
    ) due;
    RETURN v_next;
END
$$;
COMMENT ON FUNCTION hatchet._time_triggers_due() IS 'when the next cron tick, schedule or sleep of any tenant is due';

CREATE OR REPLACE FUNCTION hatchet._partition_ddl(p_sql text, p_done text, p_name text) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- with its unit ('100ms'), which is what lock_timeout takes
    v_timeout text := coalesce(current_setting('hatchet.ddl_lock_timeout', true), '100ms');
    v_saved   text := current_setting('lock_timeout');
BEGIN
    PERFORM set_config('lock_timeout', v_timeout, true);
    BEGIN
        EXECUTE p_sql;
    EXCEPTION WHEN lock_not_available THEN
        PERFORM set_config('lock_timeout', v_saved, true);
        RAISE WARNING 'pg_hatchet: partition % not %: its table is in use (lock not granted within %); trying again later',
            p_name, p_done, v_timeout;
        RETURN 'skipped';
    END;
    PERFORM set_config('lock_timeout', v_saved, true);
    RETURN p_done;
END
$$;
COMMENT ON FUNCTION hatchet._partition_ddl(text, text, text) IS
    'run one partition DDL with a short lock_timeout; ''skipped'' if its locks were not granted in time';

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
END
$$;
COMMENT ON FUNCTION hatchet.maintain_partitions(integer, integer) IS
    'create missing daily history partitions ahead of today and drop those past retention';

CREATE OR REPLACE FUNCTION hatchet.maintenance_jobs() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ARRAY['record_pass', 'promote_due', 'reap_dead_workers', 'release_unacknowledged', 'reap_timeouts',
                 'expire_queued', 'time_triggers']
$$;
COMMENT ON FUNCTION hatchet.maintenance_jobs() IS 'the per-tenant jobs of a maintenance pass, in order';

CREATE OR REPLACE FUNCTION hatchet._maintenance_failed(p_tenant uuid, p_job text, p_sqlstate text, p_error text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO hatchet.maintenance_status AS s (tenant_id, job, failures, last_error, last_sqlstate, last_failed_at)
    VALUES (p_tenant, p_job, 1, p_error, p_sqlstate, clock_timestamp())
    ON CONFLICT (tenant_id, job) DO UPDATE
    SET failures = s.failures + 1, last_error = excluded.last_error, last_sqlstate = excluded.last_sqlstate,
        last_failed_at = excluded.last_failed_at, last_ok_at = NULL;
    RAISE WARNING 'pg_hatchet: maintenance job "%" failed for %, skipped until the next pass: % (SQLSTATE %)',
        p_job, coalesce('tenant ' || p_tenant, 'all tenants'), p_error, p_sqlstate;
END
$$;
COMMENT ON FUNCTION hatchet._maintenance_failed(uuid, text, text, text) IS
    'count a failed maintenance job in hatchet.maintenance_status and log it';

CREATE OR REPLACE FUNCTION hatchet._failing_jobs() RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(array_agg(coalesce(s.tenant_id::text, '') || '/' || s.job), '{}')
    FROM hatchet.maintenance_status s WHERE s.last_ok_at IS NULL
$$;
COMMENT ON FUNCTION hatchet._failing_jobs() IS 'the maintenance jobs failing now, as tenant/job';

CREATE OR REPLACE FUNCTION hatchet._maintenance_job(p_tenant uuid, p_job text, p_now timestamptz, p_limit integer,
                                         p_failing text[] DEFAULT '{}') RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_state text;
    v_error text;
BEGIN
    BEGIN
        CASE p_job
            WHEN 'record_pass' THEN PERFORM hatchet._record_pass(p_tenant, p_now);
            WHEN 'promote_due' THEN PERFORM hatchet._promote_due(p_tenant, NULL, p_now, p_limit);
            WHEN 'reap_dead_workers' THEN PERFORM hatchet._reap_dead_workers(p_tenant, p_now);
            WHEN 'release_unacknowledged' THEN PERFORM hatchet._release_unacknowledged(p_tenant, p_now, p_limit);
            WHEN 'reap_timeouts' THEN PERFORM hatchet._reap_timeouts(p_tenant, p_now, p_limit);
            WHEN 'expire_queued' THEN PERFORM hatchet._expire_queued(p_tenant, p_now, p_limit);
            WHEN 'time_triggers' THEN PERFORM hatchet._tenant_time_triggers(p_tenant, p_now, p_limit);
        END CASE;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_error = MESSAGE_TEXT;
        PERFORM hatchet._maintenance_failed(p_tenant, p_job, v_state, v_error);
        RETURN false;
    END;
    IF (coalesce(p_tenant::text, '') || '/' || p_job) = ANY (p_failing) THEN
        UPDATE hatchet.maintenance_status s SET last_ok_at = clock_timestamp()
        WHERE s.tenant_id IS NOT DISTINCT FROM p_tenant AND s.job = p_job AND s.last_ok_at IS NULL;
    END IF;
    RETURN true;
END
$$;
COMMENT ON FUNCTION hatchet._maintenance_job(uuid, text, timestamptz, integer, text[]) IS
    'run one maintenance job for one tenant in a subtransaction; a failure is recorded and skipped';

CREATE OR REPLACE FUNCTION hatchet.run_maintenance() RETURNS timestamptz
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now     timestamptz := clock_timestamp();
    v_limit   integer := coalesce(current_setting('hatchet.batch_limit', true)::integer, 1000);
    v_failing text[] := hatchet._failing_jobs();
    v_next    timestamptz;
    v_tenant  uuid;
    v_job     text;
BEGIN
    FOR v_tenant IN SELECT t.tenant_id FROM hatchet.tenants t ORDER BY t.tenant_id LOOP
        FOREACH v_job IN ARRAY hatchet.maintenance_jobs() LOOP
            PERFORM hatchet._maintenance_job(v_tenant, v_job, v_now, v_limit, v_failing);
        END LOOP;
    END LOOP;
    SELECT min(x) INTO v_next FROM (
        SELECT (SELECT min(d.ready_at) FROM hatchet.delayed_queue d WHERE d.tenant_id = t.tenant_id) AS x
        FROM hatchet.tenants t
        UNION ALL
        SELECT (SELECT min(r.timeout_at) FROM hatchet.running r WHERE r.tenant_id = t.tenant_id) FROM hatchet.tenants t
        UNION ALL
        SELECT (SELECT min(r.schedule_timeout_at) FROM hatchet.ready_queue r WHERE r.tenant_id = t.tenant_id)
        FROM hatchet.tenants t
        UNION ALL
        SELECT (SELECT min(r.schedule_timeout_at) FROM hatchet.concurrency_queue r WHERE r.tenant_id = t.tenant_id)
        FROM hatchet.tenants t
    ) due;
    -- Crons, schedules and sleeps (sql/crons.sql, sql/runs.sql): their next due time counts too.
    RETURN least(v_next, hatchet._time_triggers_due());
END
$$;
COMMENT ON FUNCTION hatchet.run_maintenance() IS
    'one pass of the background worker: promote due tasks, time out attempts, expire queued tasks; returns next due time';

CREATE OR REPLACE FUNCTION hatchet._run_time_triggers(p_now timestamptz DEFAULT NULL) RETURNS timestamptz
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now     timestamptz := coalesce(p_now, clock_timestamp());
    v_limit   integer := coalesce(current_setting('hatchet.batch_limit', true)::integer, 1000);
    v_failing text[] := hatchet._failing_jobs();
    v_tenant  uuid;
BEGIN
    FOR v_tenant IN SELECT t.tenant_id FROM hatchet.tenants t ORDER BY t.tenant_id LOOP
        PERFORM hatchet._maintenance_job(v_tenant, 'time_triggers', v_now, v_limit, v_failing);
    END LOOP;
    RETURN hatchet._time_triggers_due();
END
$$;
COMMENT ON FUNCTION hatchet._run_time_triggers(timestamptz) IS
    'fire due cron ticks, schedules and sleeps (one run per tick, never twice); returns when the next one is due';

-- =====================================================================================================================
-- 2. Fault recovery (issue 16)
-- =====================================================================================================================

-- hatchet.running.started_at: the worker's acknowledgement of an attempt (its STARTED); unacknowledged attempts are
-- released after worker_dead_after (hatchet._release_unacknowledged).
ALTER TABLE hatchet.running ADD COLUMN started_at timestamptz;

-- Attempts taken from a worker declared dead, kept until it comes back under the same id (the server then sends it a
-- cancellation for each, so it stops running work that was retried elsewhere) or for a day.
CREATE TABLE hatchet.reaped_attempts (
    tenant_id   uuid        NOT NULL,
    worker_id   uuid        NOT NULL,
    task_id     uuid        NOT NULL,
    retry_count integer     NOT NULL,
    reaped_at   timestamptz NOT NULL,
    CONSTRAINT reaped_attempts_pkey PRIMARY KEY (tenant_id, worker_id, task_id, retry_count)
);
CREATE INDEX reaped_attempts_reaped_idx ON hatchet.reaped_attempts (tenant_id, reaped_at);
COMMENT ON TABLE hatchet.reaped_attempts IS
    'attempts retried because their worker was declared dead; cancelled on that worker if it comes back';

-- Per tenant, when maintenance last ran and since when it has run without a gap. A gap (Postgres down, the background
-- worker stopped) means heartbeats could not be recorded either: workers get worker_dead_after counted from the end
-- of the gap (reachable_since) before they can be declared dead, so an outage is not mistaken for their death.
CREATE TABLE hatchet.maintenance_state (
    tenant_id       uuid        NOT NULL REFERENCES hatchet.tenants ON DELETE CASCADE,
    last_pass_at    timestamptz NOT NULL,
    reachable_since timestamptz NOT NULL,
    CONSTRAINT maintenance_state_pkey PRIMARY KEY (tenant_id)
);
COMMENT ON TABLE hatchet.maintenance_state IS
    'last maintenance pass per tenant and the end of the last gap between passes (outage grace for workers)';

-- Takes a worker out of service (it unsubscribed or is dead): its running attempts are retried elsewhere as internal
-- failures (capped at 10, separately from the task's own retries) and its slots are freed.
CREATE OR REPLACE FUNCTION hatchet.deregister_worker(worker_id uuid, reason text DEFAULT 'worker unregistered',
                                          tenant_id uuid DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := coalesce(deregister_worker.tenant_id, hatchet.default_tenant());
    v_run hatchet.running;
    v_round integer;
    n integer := 0;
BEGIN
    UPDATE hatchet.workers w SET is_active = false
    WHERE w.tenant_id = p_tenant AND w.id = deregister_worker.worker_id;
    -- FOR UPDATE, not SKIP LOCKED: a row locked for a moment (a completion, an acknowledgement) must not be left
    -- RUNNING on a worker taken out of service. A row updated while this waited has a new version this statement's
    -- snapshot cannot delete, so the next round (a new snapshot) takes it; a row a completion deleted is gone.
    FOR v_round IN 1 .. 3 LOOP
        FOR v_run IN
            DELETE FROM hatchet.running r
            WHERE r.ctid = ANY (ARRAY(SELECT x.ctid FROM hatchet.running x
                                      WHERE x.tenant_id = p_tenant AND x.worker_id = deregister_worker.worker_id
                                      FOR UPDATE))
            RETURNING r.*
        LOOP
            PERFORM hatchet._fail_attempt(p_tenant, v_run, deregister_worker.reason, true, true);
            n := n + 1;
        END LOOP;
        EXIT WHEN NOT EXISTS (SELECT 1 FROM hatchet.running x
                              WHERE x.tenant_id = p_tenant AND x.worker_id = deregister_worker.worker_id);
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION hatchet.deregister_worker(uuid, text, uuid) IS
    'take a worker out of service and retry its running attempts elsewhere; returns how many were retried';

-- The worker acknowledged these attempts (its STARTED events, batched by the server): they were delivered, so the
-- maintenance pass no longer releases them as undelivered. Idempotent; a stale or finished attempt is skipped.
-- Returns how many were newly acknowledged.
CREATE OR REPLACE FUNCTION hatchet.acknowledge_attempts(task_ids uuid[], retry_counts integer[], tenant_id uuid DEFAULT NULL)
RETURNS integer
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH ack AS (
        UPDATE hatchet.running r SET started_at = pg_catalog.clock_timestamp()
        FROM unnest(acknowledge_attempts.task_ids, acknowledge_attempts.retry_counts) AS a(task_id, retry_count)
        WHERE r.tenant_id = hatchet._tenant(acknowledge_attempts.tenant_id)
          AND r.task_id = a.task_id AND r.retry_count = a.retry_count AND r.started_at IS NULL
        RETURNING 1
    )
    SELECT count(*)::integer FROM ack
$$;
COMMENT ON FUNCTION hatchet.acknowledge_attempts(uuid[], integer[], uuid) IS
    'record that a worker received these attempts (STARTED); returns how many were newly acknowledged';

-- A worker declared dead came back under the same id: the attempts taken from it (retried elsewhere) are returned
-- once, and forgotten, so that the server can tell it to cancel them.
CREATE OR REPLACE FUNCTION hatchet.take_reaped_attempts(worker_id uuid, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (task_id uuid, retry_count integer)
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    DELETE FROM hatchet.reaped_attempts a
    WHERE a.tenant_id = hatchet._tenant(take_reaped_attempts.tenant_id)
      AND a.worker_id = take_reaped_attempts.worker_id
    RETURNING a.task_id, a.retry_count
$$;
COMMENT ON FUNCTION hatchet.take_reaped_attempts(uuid, uuid) IS
    'the attempts taken from a worker declared dead, to cancel on it now that it is back (returned once)';

-- Records this tenant's maintenance pass and returns since when maintenance has run without a gap. A gap longer than
-- an outage (5 s, or three poll intervals if longer) means Postgres or the background worker was away: nobody could
-- heartbeat, so the grace of every worker starts again at its end. The first pass ever is no outage.
CREATE OR REPLACE FUNCTION hatchet._record_pass(p_tenant uuid, p_now timestamptz) RETURNS timestamptz
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- (a setting with a unit reads as text like '1s' or '1500ms')
    v_outage interval := greatest(interval '5 seconds',
                                  3 * coalesce(current_setting('hatchet.poll_interval_ms', true)::interval,
                                               interval '1 second'));
    v_since timestamptz;
BEGIN
    INSERT INTO hatchet.maintenance_state AS m (tenant_id, last_pass_at, reachable_since)
    VALUES (p_tenant, p_now, '-infinity')
    ON CONFLICT ON CONSTRAINT maintenance_state_pkey DO UPDATE
    SET last_pass_at = greatest(m.last_pass_at, excluded.last_pass_at),
        reachable_since = CASE WHEN excluded.last_pass_at - m.last_pass_at > v_outage THEN excluded.last_pass_at
                               ELSE m.reachable_since END
    RETURNING m.reachable_since INTO v_since;
    RETURN v_since;
END
$$;

-- Workers silent for longer than hatchet.worker_dead_after_ms while the engine was reachable are dead: their
-- attempts are reassigned, and each is remembered (reaped_attempts) and announced on hatchet_cancel, so that the
-- worker, if it was only cut off and comes back, is told to stop them. Silence counts from the later of the last
-- heartbeat and the end of the last maintenance gap (hatchet._record_pass): after an outage every worker gets the
-- full grace to heartbeat again.
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
    END LOOP;
    RETURN n;
END
$$;

-- Attempts pushed to a registered worker that it never acknowledged (no STARTED) within worker_dead_after, counted
-- like worker silence from the end of the last outage: the assignment committed but never reached the worker (the
-- server replica died between commit and push, or the commit's answer was lost). They are retried elsewhere as
-- internal failures (REASSIGNED), and a cancellation is announced in case the worker has them after all.
CREATE OR REPLACE FUNCTION hatchet._release_unacknowledged(p_tenant uuid, p_now timestamptz, p_limit integer) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run hatchet.running;
    n integer := 0;
    v_after interval := make_interval(secs => coalesce(current_setting('hatchet.worker_dead_after_ms', true)::integer,
                                                        30000) / 1000.0);
    v_since timestamptz := coalesce((SELECT m.reachable_since FROM hatchet.maintenance_state m
                                     WHERE m.tenant_id = p_tenant), '-infinity');
BEGIN
    IF v_since >= p_now - v_after THEN
        RETURN 0;
    END IF;
    FOR v_run IN
        DELETE FROM hatchet.running r
        WHERE r.ctid = ANY (ARRAY(
            SELECT x.ctid FROM hatchet.running x
            WHERE x.tenant_id = p_tenant AND x.worker_id IS NOT NULL AND x.started_at IS NULL
              AND x.assigned_at < p_now - v_after
            ORDER BY x.assigned_at LIMIT p_limit
            FOR UPDATE SKIP LOCKED))
        RETURNING r.*
    LOOP
        PERFORM pg_notify('hatchet_cancel',
                          v_run.task_id::text || ':' || v_run.retry_count || ':' || v_run.worker_id::text);
        PERFORM hatchet._fail_attempt(p_tenant, v_run,
            'the worker never acknowledged the assignment (no STARTED within worker_dead_after)', true, true);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

-- One maintenance pass over every tenant: promote due delayed attempts, time out expired attempts, cancel queued
-- attempts past their schedule timeout. Returns when the next known item is due (NULL if nothing is pending), which
-- the background worker uses as its next wake-up.
CREATE OR REPLACE FUNCTION hatchet.run_maintenance() RETURNS timestamptz
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now     timestamptz := clock_timestamp();
    v_limit   integer := coalesce(current_setting('hatchet.batch_limit', true)::integer, 1000);
    v_failing text[] := hatchet._failing_jobs();
    v_next    timestamptz;
    v_tenant  uuid;
    v_job     text;
BEGIN
    FOR v_tenant IN SELECT t.tenant_id FROM hatchet.tenants t ORDER BY t.tenant_id LOOP
        FOREACH v_job IN ARRAY hatchet.maintenance_jobs() LOOP
            PERFORM hatchet._maintenance_job(v_tenant, v_job, v_now, v_limit, v_failing);
        END LOOP;
    END LOOP;
    SELECT min(x) INTO v_next FROM (
        SELECT (SELECT min(d.ready_at) FROM hatchet.delayed_queue d WHERE d.tenant_id = t.tenant_id) AS x
        FROM hatchet.tenants t
        UNION ALL
        SELECT (SELECT min(r.timeout_at) FROM hatchet.running r WHERE r.tenant_id = t.tenant_id) FROM hatchet.tenants t
        UNION ALL
        SELECT (SELECT min(r.schedule_timeout_at) FROM hatchet.ready_queue r WHERE r.tenant_id = t.tenant_id)
        FROM hatchet.tenants t
        UNION ALL
        SELECT (SELECT min(r.schedule_timeout_at) FROM hatchet.concurrency_queue r WHERE r.tenant_id = t.tenant_id)
        FROM hatchet.tenants t
    ) due;
    -- Crons, schedules and sleeps (sql/crons.sql, sql/runs.sql): their next due time counts too.
    RETURN least(v_next, hatchet._time_triggers_due());
END
$$;
COMMENT ON FUNCTION hatchet.run_maintenance() IS
    'one pass of the background worker: promote due tasks, time out attempts, expire queued tasks; returns next due time';


-- =====================================================================================================================
-- 3. SDK parity (issue 20)
-- =====================================================================================================================

-- Workflow-level idempotency keys (Hatchet's IdempotencyConfig): the table of claimed keys, the definition keeps its
-- idempotency config, runs claim their key when created and STATUS keys are given back when their run finishes; an
-- event whose run is refused for its key creates no run.
CREATE TABLE hatchet.run_idempotency_keys (
    tenant_id   uuid        NOT NULL,
    key         text        NOT NULL,
    run_id      uuid        NOT NULL,
    expires_at  timestamptz NOT NULL,
    -- method STATUS: the key is also given back as soon as its run finishes (TTL: only by expiring)
    until_done  boolean     NOT NULL,
    CONSTRAINT run_idempotency_keys_pkey PRIMARY KEY (tenant_id, key)
);
CREATE INDEX run_idempotency_keys_run_idx ON hatchet.run_idempotency_keys (tenant_id, run_id);
CREATE INDEX run_idempotency_keys_expires_idx ON hatchet.run_idempotency_keys (tenant_id, expires_at);
COMMENT ON TABLE hatchet.run_idempotency_keys IS
    'idempotency keys claimed by workflow runs (a workflow''s idempotency config); a trigger whose key is held is refused';

CREATE OR REPLACE FUNCTION hatchet._normalise_workflow(p_def jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE
-- The recursive cycle check over jsonb_array_elements is estimated far above its real cost: without this, JIT
-- compilation alone takes ~150 ms per registration.
SET jit = off
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_name     text := p_def->>'name';
    v_tasks    jsonb := '[]';
    v_task     jsonb;
    v_onf      jsonb;
    v_dup      text;
    v_missing  record;
    v_cycle    text[];
    v_conc     jsonb := '[]';
    v_item     jsonb;
    v_filters  jsonb := '[]';
    v_prio     integer;
    v_cron     text;
    v_crons    text[];
    v_idem     jsonb;
BEGIN
    IF jsonb_typeof(p_def) IS DISTINCT FROM 'object' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['a workflow definition must be a JSON object']);
    END IF;
    IF coalesce(v_name, '') = '' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['a workflow definition needs a "name"']);
    END IF;
    IF jsonb_typeof(p_def->'tasks') IS DISTINCT FROM 'array' OR jsonb_array_length(p_def->'tasks') = 0 THEN
        PERFORM hatchet.raise_error('invalid_workflow', ARRAY[v_name, 'it has no tasks']);
    END IF;
    FOR v_task IN SELECT e FROM jsonb_array_elements(p_def->'tasks') WITH ORDINALITY AS x(e, ord) ORDER BY ord LOOP
        v_tasks := v_tasks || jsonb_build_array(hatchet._normalise_task(v_name, v_task, false));
    END LOOP;
    IF jsonb_typeof(p_def->'on_failure_task') = 'object' THEN
        v_onf := hatchet._normalise_task(v_name, p_def->'on_failure_task', true);
        IF v_onf ? 'conditions' AND v_onf->'conditions' <> '{}' THEN
            PERFORM hatchet.raise_error('invalid_workflow', ARRAY[v_name, 'the on_failure task cannot have conditions']);
        END IF;
    END IF;

    SELECT t->>'readable_id' INTO v_dup
    FROM jsonb_array_elements(v_tasks || CASE WHEN v_onf IS NULL THEN '[]' ELSE jsonb_build_array(v_onf) END) t
    GROUP BY 1 HAVING count(*) > 1 ORDER BY 1 LIMIT 1;
    IF FOUND THEN
        PERFORM hatchet.raise_error('invalid_workflow', ARRAY[v_name, format('task "%s" is declared twice', v_dup)]);
    END IF;

    SELECT t->>'readable_id' AS task, p AS parent INTO v_missing
    FROM jsonb_array_elements(v_tasks) WITH ORDINALITY AS x(t, ord)
    CROSS JOIN LATERAL jsonb_array_elements_text(t->'parents') p
    WHERE NOT EXISTS (SELECT 1 FROM jsonb_array_elements(v_tasks) o WHERE o->>'readable_id' = p)
    ORDER BY ord LIMIT 1;
    IF FOUND THEN
        PERFORM hatchet.raise_error('unknown_workflow_task', ARRAY[v_name, v_missing.parent,
            format('Task "%s" lists it as a parent.', v_missing.task)]);
    END IF;

    -- Tasks on a cycle are those that can reach themselves through parent -> child edges.
    WITH RECURSIVE edge AS (
        SELECT p AS parent, t->>'readable_id' AS child
        FROM jsonb_array_elements(v_tasks) t CROSS JOIN LATERAL jsonb_array_elements_text(t->'parents') p
    ), reach(src, dst) AS (
        SELECT parent, child FROM edge
        UNION
        SELECT r.src, e.child FROM reach r JOIN edge e ON e.parent = r.dst
    )
    SELECT array_agg(DISTINCT src ORDER BY src) INTO v_cycle FROM reach WHERE src = dst;
    IF v_cycle IS NOT NULL THEN
        PERFORM hatchet.raise_error('invalid_workflow', ARRAY[v_name,
            format('its tasks form a cycle (through %s)',
                   (SELECT string_agg(format('"%s"', c), ', ' ORDER BY c) FROM unnest(v_cycle) c))]);
    END IF;

    -- Workflow-level concurrency: `concurrency` (one) and `concurrency_arr` (a list) of the proto, in that order.
    FOR v_item IN
        SELECT e FROM (SELECT 1 AS o, e FROM jsonb_array_elements(CASE jsonb_typeof(p_def->'concurrency')
                                                                  WHEN 'array' THEN p_def->'concurrency'
                                                                  WHEN 'object' THEN jsonb_build_array(p_def->'concurrency')
                                                                  ELSE '[]' END) e
                       UNION ALL
                       SELECT 2, e FROM jsonb_array_elements(CASE jsonb_typeof(p_def->'concurrency_arr')
                                                             WHEN 'array' THEN p_def->'concurrency_arr'
                                                             ELSE '[]' END) e) x
    LOOP
        v_conc := v_conc || jsonb_build_array(hatchet._normalise_concurrency(v_name, 'workflow', v_item));
    END LOOP;

    FOR v_item IN SELECT e FROM jsonb_array_elements(coalesce(nullif(p_def->'default_filters', 'null'), '[]')) e LOOP
        IF coalesce(v_item->>'expression', '') = '' OR coalesce(v_item->>'scope', '') = '' THEN
            PERFORM hatchet.raise_error('invalid_workflow', ARRAY[v_name,
                'each default filter needs an expression and a scope']);
        END IF;
        PERFORM hatchet.cel_check(v_item->>'expression');
        v_filters := v_filters || jsonb_build_array(jsonb_build_object(
            'expression', v_item->>'expression', 'scope', v_item->>'scope',
            'payload', coalesce(hatchet._json_object(v_item->'payload', 'default filter payload', v_name), '{}')));
    END LOOP;

    v_prio := coalesce(hatchet._json_int(p_def->'default_priority', 'default_priority', v_name), 1);
    IF v_prio NOT BETWEEN 1 AND 3 THEN
        PERFORM hatchet.raise_error('invalid_workflow', ARRAY[v_name,
            format('default_priority must be between 1 and 3, not %s', v_prio)]);
    END IF;

    v_crons := hatchet._json_texts(p_def->'cron_triggers', 'cron_triggers', v_name);
    FOREACH v_cron IN ARRAY v_crons LOOP
        PERFORM hatchet.check_cron(v_cron);
    END LOOP;

    -- Workflow-level idempotency (Hatchet's IdempotencyConfig): the CEL expression giving a run's key, how long a run
    -- holds it, and whether a finished run gives it back at once (STATUS) or only time does (TTL, the default).
    IF jsonb_typeof(p_def->'idempotency') = 'object' THEN
        v_idem := p_def->'idempotency';
        IF coalesce(v_idem->>'expression', '') = '' THEN
            PERFORM hatchet.raise_error('invalid_workflow', ARRAY[v_name, 'idempotency needs a key expression']);
        END IF;
        PERFORM hatchet.cel_check(v_idem->>'expression');
        IF jsonb_typeof(v_idem->'ttl_ms') IS DISTINCT FROM 'number' OR (v_idem->>'ttl_ms') !~ '^[0-9]{1,15}$'
           OR (v_idem->>'ttl_ms')::bigint = 0 THEN
            PERFORM hatchet.raise_error('invalid_workflow', ARRAY[v_name,
                format('idempotency ttl_ms must be a positive number of milliseconds, not %s',
                       coalesce(v_idem->'ttl_ms', 'null'))]);
        END IF;
        v_idem := jsonb_build_object('expression', v_idem->>'expression', 'ttl_ms', (v_idem->>'ttl_ms')::bigint,
            'method', coalesce(hatchet._enum_name(v_idem->'method', ARRAY['TTL', 'STATUS'], 'idempotency method',
                                                  v_name), 'TTL'));
    END IF;

    RETURN jsonb_strip_nulls(jsonb_build_object(
        'name', v_name,
        'version', coalesce(p_def->>'version', ''),
        'description', nullif(p_def->>'description', ''),
        'event_triggers', to_jsonb(hatchet._json_texts(p_def->'event_triggers', 'event_triggers', v_name)),
        'cron_triggers', to_jsonb(v_crons),
        'cron_input', hatchet._json_object(p_def->'cron_input', 'cron_input', v_name),
        'tasks', v_tasks,
        'on_failure_task', v_onf,
        'concurrency', v_conc,
        'sticky', hatchet._enum_name(p_def->'sticky', ARRAY['SOFT', 'HARD'], 'sticky', v_name),
        'default_priority', v_prio,
        'default_filters', v_filters,
        'idempotency', v_idem));
END
$$;

CREATE OR REPLACE FUNCTION hatchet._claim_run_key(p_tenant uuid, p_config jsonb, p_input jsonb, p_metadata jsonb, p_run uuid)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now    timestamptz := clock_timestamp();
    v_res    jsonb;
    v_key    text;
    v_holder uuid;
BEGIN
    v_res := hatchet.cel_try(p_config->>'expression',
                             jsonb_build_object('input', p_input, 'additional_metadata', p_metadata));
    IF v_res ? 'error' OR jsonb_typeof(v_res->'value') IS DISTINCT FROM 'string' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format('idempotency key expression "%s" failed: %s',
            p_config->>'expression', coalesce(v_res->>'error', 'it must evaluate to a string'))]);
    END IF;
    v_key := v_res->>'value';
    DELETE FROM hatchet.run_idempotency_keys k
    WHERE k.tenant_id = p_tenant AND (k.tenant_id, k.key) IN (
        SELECT x.tenant_id, x.key FROM hatchet.run_idempotency_keys x
        WHERE x.tenant_id = p_tenant AND x.expires_at <= v_now AND x.key <> v_key
        ORDER BY x.expires_at LIMIT 10 FOR UPDATE SKIP LOCKED);
    -- A held key is locked but left alone (the WHERE fails), so RETURNING gives nothing: then it is a collision.
    INSERT INTO hatchet.run_idempotency_keys AS k (tenant_id, key, run_id, expires_at, until_done)
    VALUES (p_tenant, v_key, p_run, v_now + make_interval(secs => (p_config->>'ttl_ms')::bigint / 1000.0),
            p_config->>'method' = 'STATUS')
    ON CONFLICT ON CONSTRAINT run_idempotency_keys_pkey DO UPDATE
    SET run_id = EXCLUDED.run_id, expires_at = EXCLUDED.expires_at, until_done = EXCLUDED.until_done
    WHERE k.expires_at <= v_now
    RETURNING k.run_id INTO v_holder;
    IF v_holder IS NULL THEN
        SELECT k.run_id INTO v_holder FROM hatchet.run_idempotency_keys k
        WHERE k.tenant_id = p_tenant AND k.key = v_key;
        PERFORM hatchet.raise_error('idempotency_collision', ARRAY[v_key, v_holder::text]);
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION hatchet._release_run_keys(p_tenant uuid, p_runs uuid[]) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    DELETE FROM hatchet.run_idempotency_keys k
    WHERE k.tenant_id = p_tenant AND k.run_id = ANY (p_runs) AND k.until_done
      AND NOT EXISTS (SELECT 1 FROM hatchet.matches x WHERE x.tenant_id = p_tenant AND x.run_id = k.run_id)
      AND NOT EXISTS (
          SELECT 1 FROM hatchet.tasks t
          WHERE t.tenant_id = p_tenant AND t.run_id = k.run_id AND t.inserted_at >= hatchet.uuid_time(k.run_id)
            AND (EXISTS (SELECT 1 FROM hatchet.ready_queue q WHERE q.tenant_id = p_tenant AND q.task_id = t.id)
                 OR EXISTS (SELECT 1 FROM hatchet.running q WHERE q.tenant_id = p_tenant AND q.task_id = t.id)
                 OR EXISTS (SELECT 1 FROM hatchet.delayed_queue q WHERE q.tenant_id = p_tenant AND q.task_id = t.id)
                 OR EXISTS (SELECT 1 FROM hatchet.concurrency_queue q
                            WHERE q.tenant_id = p_tenant AND q.task_id = t.id)))
$$;

CREATE OR REPLACE FUNCTION hatchet._create_run(
    p_tenant uuid, p_version bigint, p_input jsonb, p_metadata jsonb, p_priority integer, p_triggered_by text,
    p_triggers jsonb DEFAULT NULL, p_parent_task_id uuid DEFAULT NULL, p_child_index integer DEFAULT NULL,
    p_child_key text DEFAULT NULL, p_desired_worker_id uuid DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id     uuid := hatchet.gen_id();
    v_run    hatchet.runs;
    v_def    hatchet.task_definitions;
    v_single boolean;
    v_now    timestamptz := clock_timestamp();
    v_place  jsonb := '{}';
    v_idem   jsonb;
BEGIN
    SELECT v.definition->'idempotency' INTO v_idem
    FROM hatchet.workflow_versions v WHERE v.tenant_id = p_tenant AND v.id = p_version;
    IF v_idem IS NOT NULL THEN
        PERFORM hatchet._claim_run_key(p_tenant, v_idem, p_input, p_metadata, v_id);
    END IF;
    INSERT INTO hatchet.runs (tenant_id, inserted_at, id, workflow_version_id, input, additional_metadata, priority,
                              parent_task_id, child_index, child_key, triggered_by)
    SELECT p_tenant, hatchet.uuid_time(v_id), v_id, p_version, p_input, p_metadata,
           coalesce(p_priority, v.default_priority), p_parent_task_id, p_child_index, p_child_key, p_triggered_by
    FROM hatchet.workflow_versions v WHERE v.tenant_id = p_tenant AND v.id = p_version
    RETURNING * INTO v_run;
    -- Root tasks go to the worker the trigger asked for (SOFT unless the workflow is HARD sticky); later tasks
    -- decide from the first task when they are queued (_run_placement).
    IF p_desired_worker_id IS NOT NULL THEN
        v_place := jsonb_build_object('desired_worker_id', p_desired_worker_id, 'sticky',
            coalesce((SELECT v.sticky FROM hatchet.workflow_versions v
                      WHERE v.tenant_id = p_tenant AND v.id = p_version), 'SOFT'::hatchet.sticky_strategy));
    END IF;
    SELECT count(*) = 1 INTO v_single
    FROM hatchet.task_definitions d WHERE d.tenant_id = p_tenant AND d.workflow_version_id = p_version;
    -- Every pending match first, then the root tasks: a root task can end while it is queued (cancelled by a
    -- CANCEL_NEWEST key, failed by a key expression), and its outcome must reach the matches of its children.
    FOR v_def IN
        SELECT d.* FROM hatchet.task_definitions d
        WHERE d.tenant_id = p_tenant AND d.workflow_version_id = p_version
        ORDER BY (NOT d.is_on_failure AND cardinality(d.parents) = 0 AND d.conditions = '{}'), d.id
    LOOP
        IF v_def.is_on_failure THEN
            PERFORM hatchet._insert_match(p_tenant, v_id, v_def.id, NULL,
                                          hatchet._on_failure_conditions(p_tenant, p_version));
        ELSIF cardinality(v_def.parents) > 0 THEN
            PERFORM hatchet._insert_match(p_tenant, v_id, v_def.id, NULL, hatchet._parent_conditions(v_def));
        ELSIF v_def.conditions <> '{}' THEN
            PERFORM hatchet._insert_match(p_tenant, v_id, v_def.id, CASE WHEN v_single THEN v_id END,
                                          hatchet._wait_conditions(v_def, v_now));
        ELSE
            PERFORM hatchet._queue_task(p_tenant, v_run, v_def,
                                        CASE WHEN v_single THEN v_id ELSE hatchet.gen_id() END, p_triggers, v_place);
        END IF;
    END LOOP;
    RETURN v_id;
END
$$;

CREATE OR REPLACE FUNCTION hatchet._on_tasks_finished(p_tenant uuid, p_task_ids uuid[], p_run_ids uuid[], p_outcome text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run uuid;
BEGIN
    IF p_task_ids IS NULL OR cardinality(p_task_ids) = 0 THEN
        RETURN;
    END IF;
    PERFORM hatchet._advance(p_tenant, p_task_ids, p_run_ids,
                             array_fill(p_outcome, ARRAY[cardinality(p_task_ids)]));
    -- A run holds its workflow-level concurrency slots (they count runs, not tasks) until its last task is done:
    -- give them back, and admit waiting runs, in this same transaction.
    FOR v_run IN
        SELECT DISTINCT r FROM unnest(p_run_ids) AS r
        WHERE r IS NOT NULL
          AND EXISTS (SELECT 1 FROM hatchet.concurrency_slots s WHERE s.tenant_id = p_tenant AND s.task_id = r)
    LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM hatchet.matches x WHERE x.tenant_id = p_tenant AND x.run_id = v_run);
        CONTINUE WHEN EXISTS (
            SELECT 1 FROM hatchet.tasks t
            WHERE t.tenant_id = p_tenant AND t.run_id = v_run
              AND (EXISTS (SELECT 1 FROM hatchet.ready_queue q WHERE q.tenant_id = p_tenant AND q.task_id = t.id)
                   OR EXISTS (SELECT 1 FROM hatchet.running q WHERE q.tenant_id = p_tenant AND q.task_id = t.id)
                   OR EXISTS (SELECT 1 FROM hatchet.delayed_queue q WHERE q.tenant_id = p_tenant AND q.task_id = t.id)
                   OR EXISTS (SELECT 1 FROM hatchet.concurrency_queue q
                              WHERE q.tenant_id = p_tenant AND q.task_id = t.id)));
        PERFORM hatchet._release_slots(p_tenant, ARRAY[v_run]);
    END LOOP;
    PERFORM hatchet._release_run_keys(p_tenant, p_run_ids);
END
$$;
COMMENT ON FUNCTION hatchet._on_tasks_finished(uuid, uuid[], uuid[], text) IS
    'advance the DAG runs of tasks that just reached COMPLETED, FAILED or CANCELLED (same transaction)';

CREATE OR REPLACE FUNCTION hatchet.cancel_run(run_id uuid, tenant_id uuid DEFAULT NULL, reason text DEFAULT 'run cancelled by user')
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := coalesce(cancel_run.tenant_id, hatchet.default_tenant());
    p_run    uuid := cancel_run.run_id;
    v_task   uuid;
    v_match  uuid;
    v_fired  record;
    n        integer;
BEGIN
    IF p_run IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['run_id']);
    END IF;
    IF hatchet._run_row(p_tenant, p_run) IS NULL
       AND NOT EXISTS (SELECT 1 FROM hatchet.tasks t WHERE t.tenant_id = p_tenant AND t.run_id = p_run
                                                       AND t.inserted_at >= hatchet.uuid_time(p_run)) THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['run', p_run::text]);
    END IF;
    -- Lock order: the run's in-flight rows first, then the run (as complete and fail do), so a worker completing one
    -- of these tasks right now waits for us instead of deadlocking with us; its result is then stale.
    PERFORM 1 FROM hatchet.running r
    WHERE r.tenant_id = p_tenant AND (r.run_id = p_run OR r.task_id = p_run) FOR UPDATE;
    PERFORM 1 FROM hatchet.ready_queue r
    WHERE r.tenant_id = p_tenant AND (r.run_id = p_run OR r.task_id = p_run) FOR UPDATE;
    PERFORM 1 FROM hatchet.delayed_queue r
    WHERE r.tenant_id = p_tenant AND (r.run_id = p_run OR r.task_id = p_run) FOR UPDATE;
    PERFORM hatchet._lock_runs(ARRAY[p_run]);
    n := -hatchet._count_cancelled(p_tenant, p_run);
    FOR v_task IN
        SELECT t.id FROM hatchet.tasks t
        WHERE t.tenant_id = p_tenant AND t.run_id = p_run AND t.inserted_at >= hatchet.uuid_time(p_run)
          AND (SELECT s.state FROM hatchet._task_state(p_tenant, t.id) s) IN ('QUEUED', 'RUNNING')
        ORDER BY t.id
    LOOP
        PERFORM hatchet.cancel(v_task, p_tenant, cancel_run.reason);
    END LOOP;
    FOR v_match IN SELECT x.id FROM hatchet.matches x WHERE x.tenant_id = p_tenant AND x.run_id = p_run ORDER BY x.id
    LOOP
        v_fired := hatchet._fire_match(p_tenant, v_match, 'CANCEL', cancel_run.reason);
        IF v_fired.task_id IS NOT NULL THEN
            PERFORM hatchet._advance(p_tenant, ARRAY[v_fired.task_id], ARRAY[p_run], ARRAY[v_fired.outcome]);
        END IF;
    END LOOP;
    PERFORM hatchet._release_run_keys(p_tenant, ARRAY[p_run]);
    RETURN n + hatchet._count_cancelled(p_tenant, p_run);
END
$$;
COMMENT ON FUNCTION hatchet.cancel_run(uuid, uuid, text) IS
    'cancel every unfinished task of a run (queued, running or waiting); returns how many were cancelled';

CREATE OR REPLACE FUNCTION hatchet._create_event_run(p_tenant uuid, p_workflow text, p_version bigint, p_payload jsonb,
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

CREATE OR REPLACE FUNCTION hatchet._push_events(p_tenant uuid, p_events jsonb) RETURNS uuid[]
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

CREATE OR REPLACE FUNCTION hatchet.run_shape(run_id uuid, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (task_id uuid, readable_id text, step_id uuid, children_step_ids uuid[])
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH r AS (
        SELECT x.tenant_id, x.id, v.external_id AS version
        FROM hatchet.runs x
        JOIN hatchet.workflow_versions v ON v.tenant_id = x.tenant_id AND v.id = x.workflow_version_id
        WHERE x.tenant_id = hatchet._tenant(run_shape.tenant_id)
          AND x.inserted_at = hatchet.uuid_time(run_shape.run_id) AND x.id = run_shape.run_id
    ), defs AS (
        SELECT d.readable_id, d.parents, md5(r.version::text || ':' || d.readable_id)::uuid AS step_id
        FROM r JOIN hatchet.task_definitions d ON d.tenant_id = r.tenant_id
        JOIN hatchet.workflow_versions v ON v.tenant_id = d.tenant_id AND v.id = d.workflow_version_id
        WHERE v.external_id = r.version
    )
    SELECT t.id, t.readable_id, p.step_id,
           ARRAY(SELECT c.step_id FROM defs c WHERE p.readable_id = ANY (c.parents) ORDER BY c.readable_id)
    FROM r
    JOIN hatchet.tasks t ON t.tenant_id = r.tenant_id AND t.run_id = r.id AND t.inserted_at >= hatchet.uuid_time(r.id)
    JOIN defs p ON p.readable_id = t.readable_id
    ORDER BY t.inserted_at, t.id
$$;
COMMENT ON FUNCTION hatchet.run_shape(uuid, uuid) IS
    'the created tasks of a run with stable step ids and the step ids of their children (Hatchet''s run shape)';

CREATE OR REPLACE FUNCTION hatchet.trigger_cron(cron_id uuid, tenant_id uuid DEFAULT NULL) RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant  uuid := hatchet._tenant(trigger_cron.tenant_id);
    c         hatchet.crons;
    v_version bigint;
BEGIN
    IF trigger_cron.cron_id IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['cron_id']);
    END IF;
    SELECT x.* INTO c FROM hatchet.crons x WHERE x.tenant_id = p_tenant AND x.id = trigger_cron.cron_id;
    IF NOT FOUND THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['cron', trigger_cron.cron_id::text]);
    END IF;
    SELECT v.id INTO v_version FROM hatchet.workflow_versions v
    WHERE v.tenant_id = p_tenant AND v.workflow_id = c.workflow_id ORDER BY v.id DESC LIMIT 1;
    RETURN hatchet._create_run(p_tenant, v_version, c.input,
        hatchet._clean_metadata(c.additional_metadata) || jsonb_build_object(
            'hatchet__cron_name', c.name, 'hatchet__cron_expression', c.expression, 'hatchet__triggered_by', 'cron'),
        c.priority, 'cron');
END
$$;
COMMENT ON FUNCTION hatchet.trigger_cron(uuid, uuid) IS
    'run a cron''s workflow once now, with the cron''s input and metadata; its schedule is unchanged; returns the run id';

CREATE OR REPLACE FUNCTION hatchet.receive_webhook(
    name      text,
    body      jsonb,
    headers   jsonb DEFAULT '{}',
    tenant_id uuid  DEFAULT NULL,
    OUT event_id uuid,
    OUT event_key text,
    OUT event_scope text,
    OUT event_payload jsonb
)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := coalesce(receive_webhook.tenant_id, hatchet.default_tenant());
    v_hook   record;
    v_vars   jsonb;
    v_value  jsonb;
BEGIN
    SELECT * INTO v_hook FROM hatchet.webhooks w WHERE w.tenant_id = p_tenant AND w.name = receive_webhook.name;
    IF NOT FOUND THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['webhook', receive_webhook.name]);
    END IF;
    event_payload := CASE WHEN jsonb_typeof(receive_webhook.body) = 'object' THEN receive_webhook.body
                          ELSE jsonb_build_object('body', receive_webhook.body) END
                     || coalesce(v_hook.static_payload, '{}');
    v_vars := jsonb_build_object('input', event_payload, 'headers', coalesce(receive_webhook.headers, '{}'));
    v_value := hatchet.cel_eval(v_hook.event_key_expression, v_vars);
    IF jsonb_typeof(v_value) IS DISTINCT FROM 'string' OR v_value #>> '{}' = '' THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('the event key expression of webhook "%s" gave %s, not a non-empty string',
                         v_hook.name, coalesce(v_value::text, 'null'))]);
    END IF;
    event_key := v_value #>> '{}';
    IF v_hook.scope_expression IS NOT NULL THEN
        v_value := hatchet.cel_eval(v_hook.scope_expression, v_vars);
        IF jsonb_typeof(v_value) IS DISTINCT FROM 'string' THEN
            PERFORM hatchet.raise_error('invalid_argument',
                ARRAY[format('the scope expression of webhook "%s" gave %s, not a string',
                             v_hook.name, coalesce(v_value::text, 'null'))]);
        END IF;
        event_scope := nullif(v_value #>> '{}', '');
    END IF;
    event_id := hatchet.push_event(event_key, event_payload, jsonb_build_object('hatchet__webhook_name', v_hook.name),
                                   event_scope, p_tenant);
END
$$;
COMMENT ON FUNCTION hatchet.receive_webhook(text, jsonb, jsonb, uuid) IS
    'turn an (authenticated) incoming webhook request into an event: body + static payload, key and scope from CEL';

CREATE OR REPLACE FUNCTION hatchet.complete_many(
    task_ids     uuid[],
    retry_counts integer[],
    outputs      jsonb[] DEFAULT NULL,
    tenant_id    uuid    DEFAULT NULL
) RETURNS integer
LANGUAGE plpgsql
-- As for dequeue: one generic plan instead of re-planning per batch (complete_many of 1: 0.72 -> 0.39 ms).
SET plan_cache_mode = force_generic_plan
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := coalesce(complete_many.tenant_id, hatchet.default_tenant());
    v_now    timestamptz := clock_timestamp();
    v_limit  integer := current_setting('hatchet.max_payload_bytes')::integer;
    v_n      integer;
    v_bad    record;
    v_workers uuid[];
    v_slot_types text[];
    v_units integer[];
    v_keyed uuid[];
    v_dag_tasks uuid[];
    v_dag_runs uuid[];
BEGIN
    IF task_ids IS NULL OR retry_counts IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['task_ids and retry_counts']);
    END IF;
    IF cardinality(task_ids) <> cardinality(retry_counts)
       OR (outputs IS NOT NULL AND cardinality(outputs) <> cardinality(task_ids)) THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY['task_ids, retry_counts and outputs must have the same length']);
    END IF;
    IF outputs IS NOT NULL THEN
        SELECT ord, o INTO v_bad FROM unnest(outputs) WITH ORDINALITY AS u(o, ord)
        WHERE pg_column_size(o) > v_limit ORDER BY ord LIMIT 1;
        IF FOUND THEN
            PERFORM hatchet._check_payload(format('outputs[%s]', v_bad.ord), v_bad.o, false);
        END IF;
    END IF;

    WITH input AS (
        SELECT DISTINCT ON (i.task_id) i.task_id, i.retry_count, i.output
        FROM unnest(task_ids, retry_counts, coalesce(outputs, array_fill(NULL::jsonb, ARRAY[cardinality(task_ids)])))
             AS i(task_id, retry_count, output)
    ), done AS (
        -- (task_id = ANY: probes the primary key per id; a join alone let the generic plan merge-join over every
        -- running row of the tenant)
        DELETE FROM hatchet.running r
        USING input i
        WHERE r.tenant_id = p_tenant AND r.task_id = ANY (task_ids)
          AND r.task_id = i.task_id AND r.retry_count = i.retry_count
        RETURNING r.task_id, r.task_inserted_at, r.retry_count, r.worker_id, r.worker_name, r.slot_type, r.slot_units,
                  r.queue, r.concurrency_key, r.run_id, r.assigned_at, i.output
    ), ev AS (
        INSERT INTO hatchet.task_events (tenant_id, task_inserted_at, task_id, created_at, retry_count, event_type,
                                         worker_id, worker_name, assigned_at)
        SELECT p_tenant, d.task_inserted_at, d.task_id, v_now, d.retry_count, 'COMPLETED', d.worker_id, d.worker_name,
               d.assigned_at
        FROM done d
    ), out AS (
        -- An empty output is the absence of a payload row: no-op tasks write nothing here.
        INSERT INTO hatchet.payloads (tenant_id, task_inserted_at, task_id, retry_count, kind, data)
        SELECT p_tenant, d.task_inserted_at, d.task_id, d.retry_count, 'OUTPUT', d.output
        FROM done d WHERE d.output IS NOT NULL AND d.output <> '{}'::jsonb
    ), idem AS (
        DELETE FROM hatchet.idempotency_keys k USING done d WHERE k.tenant_id = p_tenant AND k.task_id = d.task_id
    ), run_keys AS (
        -- The task of a single-task workflow run is the run (its hot rows carry no run_id): done, it gives back the
        -- run's STATUS idempotency key. (DAG runs give theirs back in _on_tasks_finished.)
        DELETE FROM hatchet.run_idempotency_keys k USING done d
        WHERE k.tenant_id = p_tenant AND d.run_id IS NULL AND k.run_id = d.task_id AND k.until_done
    )
    SELECT count(*), array_agg(d.worker_id), array_agg(d.slot_type), array_agg(d.slot_units),
           array_agg(d.task_id) FILTER (WHERE d.concurrency_key IS NOT NULL),
           array_agg(d.task_id) FILTER (WHERE d.run_id IS NOT NULL), array_agg(d.run_id) FILTER (WHERE d.run_id IS NOT NULL)
    INTO v_n, v_workers, v_slot_types, v_units, v_keyed, v_dag_tasks, v_dag_runs
    FROM done d;
    IF v_n > 0 THEN
        -- Separate statements, after the one above, so they see its effects (outputs are readable by DAG children).
        -- Lock order: hot rows (taken above), then the DAG runs, then concurrency groups, then worker slots.
        -- (Plain SQL consumers hold neither worker slots nor gates nor DAG runs: nothing more to do for them.)
        IF v_dag_runs IS NOT NULL THEN
            PERFORM hatchet._lock_pending_runs(p_tenant, v_dag_runs);
        END IF;
        IF v_keyed IS NOT NULL OR cardinality(array_remove(v_workers, NULL)) > 0 THEN
            PERFORM hatchet._release(p_tenant, v_workers, v_slot_types, v_units, v_keyed);
        END IF;
        IF v_dag_tasks IS NOT NULL THEN
            PERFORM hatchet._on_tasks_finished(p_tenant, v_dag_tasks, v_dag_runs, 'COMPLETED');
        END IF;
    END IF;
    RETURN v_n;
END
$$;
COMMENT ON FUNCTION hatchet.complete_many(uuid[], integer[], jsonb[], uuid) IS
    'complete a batch of attempts in one statement; stale attempts are skipped; returns how many completed';

CREATE OR REPLACE FUNCTION hatchet._fail_attempt(p_tenant uuid, p_run hatchet.running, p_error text, p_retryable boolean,
                                      p_internal boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now  timestamptz := clock_timestamp();
    v_task record;
    v_next integer := p_run.retry_count + 1;
    v_delay interval;
    v_retry boolean;
    v_max_internal constant integer := 10;
BEGIN
    SELECT t.retries, t.backoff_factor, t.backoff_max_seconds, t.schedule_timeout INTO v_task
    FROM hatchet.tasks t
    WHERE t.tenant_id = p_tenant AND t.inserted_at = p_run.task_inserted_at AND t.id = p_run.task_id;

    -- The worker slot is free either way. Concurrency slots stay with a retry that is queued at once (the task
    -- never stops being in progress) and are given back when it finishes or waits out a backoff.
    v_retry := p_retryable AND ((p_internal AND p_run.internal_retry_count < v_max_internal)
                                OR (NOT p_internal AND p_run.app_retry_count < v_task.retries));
    PERFORM hatchet._lock_pending_runs(p_tenant, ARRAY[p_run.run_id]);
    PERFORM hatchet._release(p_tenant, ARRAY[p_run.worker_id], ARRAY[p_run.slot_type], ARRAY[p_run.slot_units],
        CASE WHEN p_run.concurrency_key IS NOT NULL
                  AND (NOT v_retry OR (NOT p_internal AND v_task.backoff_factor IS NOT NULL))
             THEN ARRAY[p_run.task_id] ELSE '{}' END);

    IF v_retry THEN
        INSERT INTO hatchet.task_events (tenant_id, task_inserted_at, task_id, created_at, retry_count, event_type,
                                         worker_id, worker_name, reason, assigned_at)
        VALUES (p_tenant, p_run.task_inserted_at, p_run.task_id, v_now, p_run.retry_count,
                CASE WHEN p_internal THEN 'REASSIGNED' ELSE 'RETRYING' END::hatchet.task_event_type,
                p_run.worker_id, p_run.worker_name, p_error, p_run.assigned_at);
        IF NOT p_internal AND v_task.backoff_factor IS NOT NULL THEN
            v_delay := hatchet.backoff_delay(v_task.backoff_factor, v_task.backoff_max_seconds,
                                             p_run.app_retry_count + 1);
            INSERT INTO hatchet.delayed_queue (tenant_id, task_id, task_inserted_at, ready_at, retry_count,
                                               app_retry_count, internal_retry_count, priority, queue, reason,
                                               concurrency_key, run_id, task_definition_id)
            VALUES (p_tenant, p_run.task_id, p_run.task_inserted_at, v_now + v_delay, v_next,
                    p_run.app_retry_count + 1, p_run.internal_retry_count, 4, p_run.queue, 'backoff',
                    -- no concurrency_key: its slots were given back above; it passes the gates again when due
                    NULL, p_run.run_id, p_run.task_definition_id);
        ELSE
            -- Retries go ahead of new work: priority 4 is above every user priority.
            INSERT INTO hatchet.ready_queue (tenant_id, task_id, task_inserted_at, fair_rank, schedule_timeout_at,
                                             retry_count, app_retry_count, internal_retry_count, priority, queue,
                                             concurrency_key, run_id, task_definition_id)
            VALUES (p_tenant, p_run.task_id, p_run.task_inserted_at, hatchet._queue_vtime(p_tenant, p_run.queue),
                    v_now + v_task.schedule_timeout, v_next,
                    p_run.app_retry_count + CASE WHEN p_internal THEN 0 ELSE 1 END,
                    p_run.internal_retry_count + CASE WHEN p_internal THEN 1 ELSE 0 END,
                    4, p_run.queue, p_run.concurrency_key, p_run.run_id, p_run.task_definition_id);
            PERFORM hatchet._ready(p_run.queue);
        END IF;
        RETURN 'QUEUED';
    END IF;

    INSERT INTO hatchet.task_events (tenant_id, task_inserted_at, task_id, created_at, retry_count, event_type,
                                     worker_id, worker_name, reason, assigned_at)
    VALUES (p_tenant, p_run.task_inserted_at, p_run.task_id, v_now, p_run.retry_count, 'FAILED', p_run.worker_id,
            p_run.worker_name, p_error, p_run.assigned_at);
    DELETE FROM hatchet.idempotency_keys k WHERE k.tenant_id = p_tenant AND k.task_id = p_run.task_id;
    DELETE FROM hatchet.run_idempotency_keys k  -- a single-task workflow run (see complete_many)
    WHERE k.tenant_id = p_tenant AND k.run_id = p_run.task_id AND k.until_done;
    IF p_run.run_id IS NOT NULL THEN
        PERFORM hatchet._on_tasks_finished(p_tenant, ARRAY[p_run.task_id], ARRAY[p_run.run_id], 'FAILED');
    END IF;
    RETURN 'FAILED';
END
$$;

CREATE OR REPLACE FUNCTION hatchet.cancel(
    task_id   uuid,
    tenant_id uuid DEFAULT NULL,
    reason    text DEFAULT 'cancelled by user'
) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := coalesce(cancel.tenant_id, hatchet.default_tenant());
    p_task   uuid := cancel.task_id;
    v_run    hatchet.running;
    v_found  boolean;
    v_at     timestamptz;
    v_rc     integer;
    v_queue  text;
    v_key    text;
    v_run_id uuid;
BEGIN
    IF p_task IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['task_id']);
    END IF;
    -- An attempt moves ready -> running (dequeue) and running -> ready/delayed (retry). Looking in that order, and
    -- again if a concurrent move hid it, finds it wherever it is.
    FOR attempt IN 1..3 LOOP
        DELETE FROM hatchet.ready_queue r WHERE r.tenant_id = p_tenant AND r.task_id = p_task
        RETURNING r.task_inserted_at, r.retry_count, r.queue, r.concurrency_key, r.run_id
        INTO v_at, v_rc, v_queue, v_key, v_run_id;
        v_found := FOUND;
        IF NOT v_found THEN
            DELETE FROM hatchet.delayed_queue r WHERE r.tenant_id = p_tenant AND r.task_id = p_task
            RETURNING r.task_inserted_at, r.retry_count, r.queue, r.concurrency_key, r.run_id
            INTO v_at, v_rc, v_queue, v_key, v_run_id;
            v_found := FOUND;
        END IF;
        IF NOT v_found THEN
            DELETE FROM hatchet.concurrency_queue r WHERE r.tenant_id = p_tenant AND r.task_id = p_task
            RETURNING r.task_inserted_at, r.retry_count, r.queue, r.key, r.run_id
            INTO v_at, v_rc, v_queue, v_key, v_run_id;
            v_found := FOUND;
        END IF;
        IF NOT v_found THEN
            DELETE FROM hatchet.running r WHERE r.tenant_id = p_tenant AND r.task_id = p_task
            RETURNING r.* INTO v_run;
            IF FOUND THEN
                PERFORM hatchet._lock_pending_runs(p_tenant, ARRAY[v_run.run_id]);
                PERFORM hatchet._release(p_tenant, ARRAY[v_run.worker_id], ARRAY[v_run.slot_type],
                                         ARRAY[v_run.slot_units], ARRAY[p_task]);
                -- channel hatchet_cancel, payload "task_id:retry_count:worker_id" (worker empty for SQL consumers)
                PERFORM pg_notify('hatchet_cancel',
                                  p_task::text || ':' || v_run.retry_count || ':' || coalesce(v_run.worker_id::text, ''));
                v_at := v_run.task_inserted_at;
                v_rc := v_run.retry_count;
                v_run_id := v_run.run_id;
                v_found := true;
            END IF;
        END IF;
        IF v_found THEN
            -- (v_run is NULL unless the attempt was running: then it keeps its worker and assignment time)
            INSERT INTO hatchet.task_events (tenant_id, task_inserted_at, task_id, retry_count, event_type, reason,
                                             worker_id, worker_name, assigned_at)
            VALUES (p_tenant, v_at, p_task, v_rc, 'CANCELLED', cancel.reason, v_run.worker_id, v_run.worker_name,
                    v_run.assigned_at);
            DELETE FROM hatchet.idempotency_keys k WHERE k.tenant_id = p_tenant AND k.task_id = p_task;
            DELETE FROM hatchet.run_idempotency_keys k  -- a single-task workflow run (see complete_many)
            WHERE k.tenant_id = p_tenant AND k.run_id = p_task AND k.until_done;
            -- Whatever gates it held (or waited behind) are given back, and waiters take the room.
            PERFORM hatchet._lock_pending_runs(p_tenant, ARRAY[v_run_id]);
            PERFORM hatchet._release_slots(p_tenant, ARRAY[p_task]);
            IF v_run_id IS NOT NULL THEN
                PERFORM hatchet._on_tasks_finished(p_tenant, ARRAY[p_task], ARRAY[v_run_id], 'CANCELLED');
            END IF;
            RETURN true;
        END IF;
        -- Not in flight: finished, unknown, or moved between our looks.
        IF (SELECT s.state FROM hatchet._task_state(p_tenant, p_task) s) IS NULL THEN
            PERFORM hatchet.raise_error('unknown_task', ARRAY[p_task::text]);
        END IF;
        IF (SELECT s.state FROM hatchet._task_state(p_tenant, p_task) s) IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN
            RETURN false;
        END IF;
    END LOOP;
    RETURN false;
END
$$;
COMMENT ON FUNCTION hatchet.cancel(uuid, uuid, text) IS
    'cancel a queued or running task; false if it had already finished';

-- =====================================================================================================================
-- 4. Roles and privileges (issue 15); last, so that its grants and SECURITY DEFINER options apply to the final
--    definitions above
-- =====================================================================================================================

-- 4b. Every API function resolves its tenant with hatchet._tenant and runs as the owner (SECURITY DEFINER): the
--     same text as in sql/*.sql (python3 scripts/changed-functions.py <0.2.0 commit> prints these).
-- sql/tasks.sql
CREATE OR REPLACE FUNCTION hatchet.enqueue(
    queue               text,
    input               jsonb       DEFAULT '{}',
    priority            integer     DEFAULT 1,
    run_at              timestamptz DEFAULT NULL,
    retries             integer     DEFAULT 0,
    backoff_factor      float8      DEFAULT NULL,
    backoff_max_seconds integer     DEFAULT NULL,
    execution_timeout   text        DEFAULT '60s',
    schedule_timeout    text        DEFAULT '5m',
    idempotency_key     text        DEFAULT NULL,
    additional_metadata jsonb       DEFAULT '{}',
    tenant_id           uuid        DEFAULT NULL,
    concurrency_key     text        DEFAULT NULL,
    max_runs            integer     DEFAULT NULL,
    strategy            text        DEFAULT NULL,
    rate_limits         jsonb       DEFAULT NULL,
    desired_worker_labels jsonb     DEFAULT NULL,
    desired_worker_id   uuid        DEFAULT NULL,
    sticky              text        DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant   uuid := hatchet._tenant(enqueue.tenant_id);
    p_key      text := enqueue.idempotency_key;
    v_id       uuid;
    v_exec     interval;
    v_sched    interval;
    v_gates    jsonb;
    v_limits   jsonb;
    v_place    jsonb;
BEGIN
    PERFORM hatchet._check_task_options(enqueue.queue, enqueue.priority, enqueue.retries, enqueue.backoff_factor,
                                        enqueue.backoff_max_seconds, enqueue.additional_metadata);
    v_gates := hatchet._concurrency_option(enqueue.queue, enqueue.concurrency_key, enqueue.max_runs, enqueue.strategy);
    v_limits := hatchet._rate_limits_option(enqueue.rate_limits);
    v_place := hatchet._placement_option(enqueue.desired_worker_labels, enqueue.desired_worker_id, enqueue.sticky);
    PERFORM hatchet._check_payload('input', enqueue.input);
    IF enqueue.execution_timeout IS NULL OR enqueue.schedule_timeout IS NULL THEN
        PERFORM hatchet.raise_error('null_argument',
            ARRAY[CASE WHEN enqueue.execution_timeout IS NULL THEN 'execution_timeout' ELSE 'schedule_timeout' END]);
    END IF;
    v_exec := hatchet.parse_duration(enqueue.execution_timeout);
    v_sched := hatchet.parse_duration(enqueue.schedule_timeout);

    IF p_key IS NOT NULL THEN
        -- A key held by an unfinished task returns that task. Insert-first so two racing callers cannot both win:
        -- the second blocks on the unique index until the first commits, then sees the conflict.
        v_id := hatchet.gen_id();
        INSERT INTO hatchet.idempotency_keys AS k (tenant_id, key, task_id) VALUES (p_tenant, p_key, v_id)
        ON CONFLICT ON CONSTRAINT idempotency_keys_pkey DO NOTHING;
        IF NOT FOUND THEN
            SELECT k.task_id INTO v_id FROM hatchet.idempotency_keys k
            WHERE k.tenant_id = p_tenant AND k.key = p_key;
            IF FOUND THEN
                RETURN v_id;
            END IF;
            -- The holder finished between the conflict and the read: the key is free again.
            RETURN hatchet.enqueue(enqueue.queue, enqueue.input, enqueue.priority, enqueue.run_at, enqueue.retries,
                                   enqueue.backoff_factor, enqueue.backoff_max_seconds, enqueue.execution_timeout,
                                   enqueue.schedule_timeout, p_key, enqueue.additional_metadata, p_tenant,
                                   enqueue.concurrency_key, enqueue.max_runs, enqueue.strategy, enqueue.rate_limits,
                                   enqueue.desired_worker_labels, enqueue.desired_worker_id, enqueue.sticky);
        END IF;
        RETURN (hatchet._enqueue_batch(p_tenant, enqueue.queue, ARRAY[enqueue.input], enqueue.priority,
                                       enqueue.run_at, enqueue.retries, enqueue.backoff_factor,
                                       enqueue.backoff_max_seconds, v_exec, v_sched, p_key,
                                       enqueue.additional_metadata, ARRAY[v_id], NULL, NULL, NULL, v_gates,
                                       v_limits, v_place))[1];
    END IF;

    RETURN (hatchet._enqueue_batch(p_tenant, enqueue.queue, ARRAY[enqueue.input], enqueue.priority, enqueue.run_at,
                                   enqueue.retries, enqueue.backoff_factor, enqueue.backoff_max_seconds, v_exec,
                                   v_sched, NULL, enqueue.additional_metadata, NULL, NULL, NULL, NULL, v_gates,
                                   v_limits, v_place))[1];
END
$$;

CREATE OR REPLACE FUNCTION hatchet.enqueue_many(
    queue               text,
    inputs              jsonb[],
    priority            integer     DEFAULT 1,
    run_at              timestamptz DEFAULT NULL,
    retries             integer     DEFAULT 0,
    backoff_factor      float8      DEFAULT NULL,
    backoff_max_seconds integer     DEFAULT NULL,
    execution_timeout   text        DEFAULT '60s',
    schedule_timeout    text        DEFAULT '5m',
    additional_metadata jsonb       DEFAULT '{}',
    tenant_id           uuid        DEFAULT NULL,
    concurrency_key     text        DEFAULT NULL,
    max_runs            integer     DEFAULT NULL,
    strategy            text        DEFAULT NULL,
    rate_limits         jsonb       DEFAULT NULL
) RETURNS uuid[]
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(enqueue_many.tenant_id);
    v_bad    record;
    v_limit  integer := current_setting('hatchet.max_payload_bytes')::integer;
BEGIN
    PERFORM hatchet._check_task_options(enqueue_many.queue, enqueue_many.priority, enqueue_many.retries,
                                        enqueue_many.backoff_factor, enqueue_many.backoff_max_seconds,
                                        enqueue_many.additional_metadata);
    IF inputs IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['inputs']);
    END IF;
    IF cardinality(inputs) = 0 THEN
        RETURN '{}';
    END IF;
    -- One pass finds the first bad input, so the error can name its position.
    SELECT ord, i INTO v_bad FROM unnest(inputs) WITH ORDINALITY AS u(i, ord)
    WHERE i IS NULL OR jsonb_typeof(i) <> 'object' OR pg_column_size(i) > v_limit
    ORDER BY ord LIMIT 1;
    IF FOUND THEN
        PERFORM hatchet._check_payload(format('inputs[%s]', v_bad.ord), v_bad.i);
    END IF;
    IF enqueue_many.execution_timeout IS NULL OR enqueue_many.schedule_timeout IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['execution_timeout and schedule_timeout']);
    END IF;
    RETURN hatchet._enqueue_batch(p_tenant, enqueue_many.queue, inputs, enqueue_many.priority, enqueue_many.run_at,
                                  enqueue_many.retries, enqueue_many.backoff_factor,
                                  enqueue_many.backoff_max_seconds,
                                  hatchet.parse_duration(enqueue_many.execution_timeout),
                                  hatchet.parse_duration(enqueue_many.schedule_timeout), NULL,
                                  enqueue_many.additional_metadata, NULL, NULL, NULL, NULL,
                                  hatchet._concurrency_option(enqueue_many.queue, enqueue_many.concurrency_key,
                                                              enqueue_many.max_runs, enqueue_many.strategy),
                                  hatchet._rate_limits_option(enqueue_many.rate_limits));
END
$$;

CREATE OR REPLACE FUNCTION hatchet.dequeue(
    queue     text,
    worker    text    DEFAULT NULL,
    n         integer DEFAULT 1,
    tenant_id uuid    DEFAULT NULL
) RETURNS TABLE (task_id uuid, retry_count integer, input jsonb, additional_metadata jsonb, timeout_at timestamptz,
                 priority integer)
LANGUAGE plpgsql
SECURITY DEFINER
-- The claimed rows are deleted by ctid. Without this the planner prices a TID scan of 100 ctids above a sequential
-- scan of any ready queue under a few hundred pages, and then reads the whole queue on every claim (measured: a
-- 20,000-task drain spent a third of its dequeue time there).
SET enable_seqscan = off
-- One plan for every call: re-planning the claim for each new set of ctids (custom plans) cost more than the claim
-- itself for small batches (dequeue of 1: 0.88 -> 0.26 ms). The generic plan prunes task partitions at run time.
SET plan_cache_mode = force_generic_plan
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid    := hatchet._tenant(dequeue.tenant_id);
    p_queue  text    := dequeue.queue;
    p_worker text    := dequeue.worker;
    p_n      integer := dequeue.n;
    v_now    timestamptz := clock_timestamp();
    v_ctids  tid[];
    v_any_rl boolean;
BEGIN
    IF p_queue IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['queue']);
    END IF;
    IF p_n IS NULL OR p_n NOT BETWEEN 1 AND 10000 THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('n must be between 1 and 10000, not %s', coalesce(p_n::text, 'null'))]);
    END IF;

    -- Due run_at/backoff items of this queue become claimable right away instead of at the worker's next pass.
    -- The EXISTS is one index probe, so an idle delayed queue costs nothing here.
    IF EXISTS (SELECT 1 FROM hatchet.delayed_queue d WHERE d.tenant_id = p_tenant AND d.ready_at <= v_now) THEN
        PERFORM hatchet._promote_due(p_tenant, p_queue, v_now, 1000);
    END IF;

    -- Read the dispatch index in order and stop after n rows; skip rows other claimers hold.
    SELECT c.ctids, c.any_rate_limited INTO v_ctids, v_any_rl FROM hatchet._claim_ready(p_tenant, p_queue, p_n, true) c;
    IF v_ctids IS NULL THEN
        RETURN;
    END IF;
    IF v_any_rl THEN
        -- Rate-limited rows without units left are parked until their window refills; the rest are dispatched.
        v_ctids := hatchet._apply_rate_limits(p_tenant, v_ctids, v_now);
    END IF;

    RETURN QUERY
    WITH claimed AS (
        DELETE FROM hatchet.ready_queue r
        WHERE r.ctid = ANY (v_ctids)
        RETURNING r.*
    ), work AS (
        SELECT c.*, t.input, t.additional_metadata, v_now + t.execution_timeout AS timeout_at
        FROM claimed c
        CROSS JOIN LATERAL (SELECT x.* FROM hatchet.tasks x  -- per-row probe: pruned to one partition
                            WHERE x.tenant_id = c.tenant_id AND x.inserted_at = c.task_inserted_at AND x.id = c.task_id) t
    ), run AS (
        INSERT INTO hatchet.running (tenant_id, task_id, task_inserted_at, assigned_at, timeout_at, retry_count,
                                     app_retry_count, internal_retry_count, priority, queue, worker_name,
                                     concurrency_key, run_id, task_definition_id)
        SELECT w.tenant_id, w.task_id, w.task_inserted_at, v_now, w.timeout_at, w.retry_count, w.app_retry_count,
               w.internal_retry_count, w.priority, w.queue, p_worker, w.concurrency_key, w.run_id,
               w.task_definition_id
        FROM work w
    ), vt AS (
        -- Advance the queue's virtual time to the highest rank dispatched. Never waits: if another claimer holds
        -- the queue row, it is advancing it too.
        UPDATE hatchet.queues q SET vtime = m.rank
        FROM (SELECT max(w.fair_rank) AS rank FROM work w) m
        WHERE q.ctid = (SELECT x.ctid FROM hatchet.queues x
                        WHERE x.tenant_id = p_tenant AND x.name = p_queue FOR UPDATE SKIP LOCKED)
          AND m.rank > q.vtime
    )
    SELECT w.task_id, w.retry_count, w.input, w.additional_metadata, w.timeout_at, w.priority::integer
    FROM work w
    ORDER BY w.priority DESC, w.fair_rank, w.id;
END
$$;

CREATE OR REPLACE FUNCTION hatchet.complete_many(
    task_ids     uuid[],
    retry_counts integer[],
    outputs      jsonb[] DEFAULT NULL,
    tenant_id    uuid    DEFAULT NULL
) RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
-- As for dequeue: one generic plan instead of re-planning per batch (complete_many of 1: 0.72 -> 0.39 ms).
SET plan_cache_mode = force_generic_plan
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(complete_many.tenant_id);
    v_now    timestamptz := clock_timestamp();
    v_limit  integer := current_setting('hatchet.max_payload_bytes')::integer;
    v_n      integer;
    v_bad    record;
    v_workers uuid[];
    v_slot_types text[];
    v_units integer[];
    v_keyed uuid[];
    v_dag_tasks uuid[];
    v_dag_runs uuid[];
BEGIN
    IF task_ids IS NULL OR retry_counts IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['task_ids and retry_counts']);
    END IF;
    IF cardinality(task_ids) <> cardinality(retry_counts)
       OR (outputs IS NOT NULL AND cardinality(outputs) <> cardinality(task_ids)) THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY['task_ids, retry_counts and outputs must have the same length']);
    END IF;
    IF outputs IS NOT NULL THEN
        SELECT ord, o INTO v_bad FROM unnest(outputs) WITH ORDINALITY AS u(o, ord)
        WHERE pg_column_size(o) > v_limit ORDER BY ord LIMIT 1;
        IF FOUND THEN
            PERFORM hatchet._check_payload(format('outputs[%s]', v_bad.ord), v_bad.o, false);
        END IF;
    END IF;

    WITH input AS (
        SELECT DISTINCT ON (i.task_id) i.task_id, i.retry_count, i.output
        FROM unnest(task_ids, retry_counts, coalesce(outputs, array_fill(NULL::jsonb, ARRAY[cardinality(task_ids)])))
             AS i(task_id, retry_count, output)
    ), done AS (
        -- (task_id = ANY: probes the primary key per id; a join alone let the generic plan merge-join over every
        -- running row of the tenant)
        DELETE FROM hatchet.running r
        USING input i
        WHERE r.tenant_id = p_tenant AND r.task_id = ANY (task_ids)
          AND r.task_id = i.task_id AND r.retry_count = i.retry_count
        RETURNING r.task_id, r.task_inserted_at, r.retry_count, r.worker_id, r.worker_name, r.slot_type, r.slot_units,
                  r.queue, r.concurrency_key, r.run_id, r.assigned_at, i.output
    ), ev AS (
        INSERT INTO hatchet.task_events (tenant_id, task_inserted_at, task_id, created_at, retry_count, event_type,
                                         worker_id, worker_name, assigned_at)
        SELECT p_tenant, d.task_inserted_at, d.task_id, v_now, d.retry_count, 'COMPLETED', d.worker_id, d.worker_name,
               d.assigned_at
        FROM done d
    ), out AS (
        -- An empty output is the absence of a payload row: no-op tasks write nothing here.
        INSERT INTO hatchet.payloads (tenant_id, task_inserted_at, task_id, retry_count, kind, data)
        SELECT p_tenant, d.task_inserted_at, d.task_id, d.retry_count, 'OUTPUT', d.output
        FROM done d WHERE d.output IS NOT NULL AND d.output <> '{}'::jsonb
    ), idem AS (
        DELETE FROM hatchet.idempotency_keys k USING done d WHERE k.tenant_id = p_tenant AND k.task_id = d.task_id
    ), run_keys AS (
        -- The task of a single-task workflow run is the run (its hot rows carry no run_id): done, it gives back the
        -- run's STATUS idempotency key. (DAG runs give theirs back in _on_tasks_finished.)
        DELETE FROM hatchet.run_idempotency_keys k USING done d
        WHERE k.tenant_id = p_tenant AND d.run_id IS NULL AND k.run_id = d.task_id AND k.until_done
    )
    SELECT count(*), array_agg(d.worker_id), array_agg(d.slot_type), array_agg(d.slot_units),
           array_agg(d.task_id) FILTER (WHERE d.concurrency_key IS NOT NULL),
           array_agg(d.task_id) FILTER (WHERE d.run_id IS NOT NULL), array_agg(d.run_id) FILTER (WHERE d.run_id IS NOT NULL)
    INTO v_n, v_workers, v_slot_types, v_units, v_keyed, v_dag_tasks, v_dag_runs
    FROM done d;
    IF v_n > 0 THEN
        -- Separate statements, after the one above, so they see its effects (outputs are readable by DAG children).
        -- Lock order: hot rows (taken above), then the DAG runs, then concurrency groups, then worker slots.
        -- (Plain SQL consumers hold neither worker slots nor gates nor DAG runs: nothing more to do for them.)
        IF v_dag_runs IS NOT NULL THEN
            PERFORM hatchet._lock_pending_runs(p_tenant, v_dag_runs);
        END IF;
        IF v_keyed IS NOT NULL OR cardinality(array_remove(v_workers, NULL)) > 0 THEN
            PERFORM hatchet._release(p_tenant, v_workers, v_slot_types, v_units, v_keyed);
        END IF;
        IF v_dag_tasks IS NOT NULL THEN
            PERFORM hatchet._on_tasks_finished(p_tenant, v_dag_tasks, v_dag_runs, 'COMPLETED');
        END IF;
    END IF;
    RETURN v_n;
END
$$;

CREATE OR REPLACE FUNCTION hatchet.complete(
    task_id     uuid,
    retry_count integer,
    output      jsonb DEFAULT '{}',
    tenant_id   uuid  DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(complete.tenant_id);
BEGIN
    IF complete.output IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['output']);
    END IF;
    IF complete.task_id IS NULL OR complete.retry_count IS NULL
       OR hatchet.complete_many(ARRAY[complete.task_id], ARRAY[complete.retry_count], ARRAY[complete.output],
                                p_tenant) = 0 THEN
        PERFORM hatchet._reject_stale(p_tenant, complete.task_id, complete.retry_count);
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION hatchet.fail(
    task_id     uuid,
    retry_count integer,
    error       text,
    retryable   boolean DEFAULT true,
    tenant_id   uuid    DEFAULT NULL
) RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(fail.tenant_id);
    v_run    hatchet.running;
BEGIN
    IF fail.error IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['error']);
    END IF;
    IF fail.retryable IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['retryable']);
    END IF;
    PERFORM hatchet._check_size('error', octet_length(fail.error), 'hatchet.max_error_bytes');
    DELETE FROM hatchet.running r
    WHERE r.tenant_id = p_tenant AND r.task_id = fail.task_id AND r.retry_count = fail.retry_count
    RETURNING r.* INTO v_run;
    IF NOT FOUND THEN
        PERFORM hatchet._reject_stale(p_tenant, fail.task_id, fail.retry_count);
    END IF;
    RETURN hatchet._fail_attempt(p_tenant, v_run, fail.error, fail.retryable);
END
$$;

CREATE OR REPLACE FUNCTION hatchet.refresh_timeout(
    task_id     uuid,
    retry_count integer,  -- NULL: the attempt that is running
    by          text,
    tenant_id   uuid DEFAULT NULL
) RETURNS timestamptz
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(refresh_timeout.tenant_id);
    v_by     interval;
    v_run    hatchet.running;
BEGIN
    IF refresh_timeout.by IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['by']);
    END IF;
    v_by := hatchet.parse_duration(refresh_timeout.by);
    -- retry_count NULL: whichever attempt is running (a worker protocol call names only the task).
    UPDATE hatchet.running r SET timeout_at = r.timeout_at + v_by
    WHERE r.tenant_id = p_tenant AND r.task_id = refresh_timeout.task_id
      AND (refresh_timeout.retry_count IS NULL OR r.retry_count = refresh_timeout.retry_count)
    RETURNING r.* INTO v_run;
    IF NOT FOUND THEN
        IF refresh_timeout.task_id IS NULL THEN
            PERFORM hatchet.raise_error('null_argument', ARRAY['task_id']);
        END IF;
        PERFORM hatchet._reject_stale(p_tenant, refresh_timeout.task_id,
                                      coalesce(refresh_timeout.retry_count,
                                               (SELECT s.current FROM hatchet._task_state(p_tenant, refresh_timeout.task_id) s),
                                               0));
    END IF;
    INSERT INTO hatchet.task_events (tenant_id, task_inserted_at, task_id, retry_count, event_type, worker_id,
                                     worker_name, reason)
    VALUES (p_tenant, v_run.task_inserted_at, v_run.task_id, v_run.retry_count, 'TIMEOUT_REFRESHED', v_run.worker_id,
            v_run.worker_name, format('extended by %s', refresh_timeout.by));
    RETURN v_run.timeout_at;
END
$$;

CREATE OR REPLACE FUNCTION hatchet.cancel(
    task_id   uuid,
    tenant_id uuid DEFAULT NULL,
    reason    text DEFAULT 'cancelled by user'
) RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(cancel.tenant_id);
    p_task   uuid := cancel.task_id;
    v_run    hatchet.running;
    v_found  boolean;
    v_at     timestamptz;
    v_rc     integer;
    v_queue  text;
    v_key    text;
    v_run_id uuid;
BEGIN
    IF p_task IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['task_id']);
    END IF;
    -- An attempt moves ready -> running (dequeue) and running -> ready/delayed (retry). Looking in that order, and
    -- again if a concurrent move hid it, finds it wherever it is.
    FOR attempt IN 1..3 LOOP
        DELETE FROM hatchet.ready_queue r WHERE r.tenant_id = p_tenant AND r.task_id = p_task
        RETURNING r.task_inserted_at, r.retry_count, r.queue, r.concurrency_key, r.run_id
        INTO v_at, v_rc, v_queue, v_key, v_run_id;
        v_found := FOUND;
        IF NOT v_found THEN
            DELETE FROM hatchet.delayed_queue r WHERE r.tenant_id = p_tenant AND r.task_id = p_task
            RETURNING r.task_inserted_at, r.retry_count, r.queue, r.concurrency_key, r.run_id
            INTO v_at, v_rc, v_queue, v_key, v_run_id;
            v_found := FOUND;
        END IF;
        IF NOT v_found THEN
            DELETE FROM hatchet.concurrency_queue r WHERE r.tenant_id = p_tenant AND r.task_id = p_task
            RETURNING r.task_inserted_at, r.retry_count, r.queue, r.key, r.run_id
            INTO v_at, v_rc, v_queue, v_key, v_run_id;
            v_found := FOUND;
        END IF;
        IF NOT v_found THEN
            DELETE FROM hatchet.running r WHERE r.tenant_id = p_tenant AND r.task_id = p_task
            RETURNING r.* INTO v_run;
            IF FOUND THEN
                PERFORM hatchet._lock_pending_runs(p_tenant, ARRAY[v_run.run_id]);
                PERFORM hatchet._release(p_tenant, ARRAY[v_run.worker_id], ARRAY[v_run.slot_type],
                                         ARRAY[v_run.slot_units], ARRAY[p_task]);
                -- channel hatchet_cancel, payload "task_id:retry_count:worker_id" (worker empty for SQL consumers)
                PERFORM pg_notify('hatchet_cancel',
                                  p_task::text || ':' || v_run.retry_count || ':' || coalesce(v_run.worker_id::text, ''));
                v_at := v_run.task_inserted_at;
                v_rc := v_run.retry_count;
                v_run_id := v_run.run_id;
                v_found := true;
            END IF;
        END IF;
        IF v_found THEN
            -- (v_run is NULL unless the attempt was running: then it keeps its worker and assignment time)
            INSERT INTO hatchet.task_events (tenant_id, task_inserted_at, task_id, retry_count, event_type, reason,
                                             worker_id, worker_name, assigned_at)
            VALUES (p_tenant, v_at, p_task, v_rc, 'CANCELLED', cancel.reason, v_run.worker_id, v_run.worker_name,
                    v_run.assigned_at);
            DELETE FROM hatchet.idempotency_keys k WHERE k.tenant_id = p_tenant AND k.task_id = p_task;
            DELETE FROM hatchet.run_idempotency_keys k  -- a single-task workflow run (see complete_many)
            WHERE k.tenant_id = p_tenant AND k.run_id = p_task AND k.until_done;
            -- Whatever gates it held (or waited behind) are given back, and waiters take the room.
            PERFORM hatchet._lock_pending_runs(p_tenant, ARRAY[v_run_id]);
            PERFORM hatchet._release_slots(p_tenant, ARRAY[p_task]);
            IF v_run_id IS NOT NULL THEN
                PERFORM hatchet._on_tasks_finished(p_tenant, ARRAY[p_task], ARRAY[v_run_id], 'CANCELLED');
            END IF;
            RETURN true;
        END IF;
        -- Not in flight: finished, unknown, or moved between our looks.
        IF (SELECT s.state FROM hatchet._task_state(p_tenant, p_task) s) IS NULL THEN
            PERFORM hatchet.raise_error('unknown_task', ARRAY[p_task::text]);
        END IF;
        IF (SELECT s.state FROM hatchet._task_state(p_tenant, p_task) s) IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN
            RETURN false;
        END IF;
    END LOOP;
    RETURN false;
END
$$;

CREATE OR REPLACE FUNCTION hatchet.task_status(task_id uuid, tenant_id uuid DEFAULT NULL) RETURNS text
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_state text;
BEGIN
    IF task_status.task_id IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['task_id']);
    END IF;
    SELECT s.state INTO v_state
    FROM hatchet._task_state(hatchet._tenant(task_status.tenant_id), task_status.task_id) s;
    IF v_state IS NULL THEN
        PERFORM hatchet.raise_error('unknown_task', ARRAY[task_status.task_id::text]);
    END IF;
    RETURN v_state;
END
$$;

CREATE OR REPLACE FUNCTION hatchet.task_events(task_id uuid, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (event_type text, created_at timestamptz, retry_count integer, reason text, worker text)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(task_events.tenant_id);
    p_task   uuid := task_events.task_id;
    v_at     timestamptz := hatchet.uuid_time(task_events.task_id);
BEGIN
    IF p_task IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['task_id']);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM hatchet.tasks t WHERE t.tenant_id = p_tenant AND t.inserted_at = v_at
                                                   AND t.id = p_task) THEN
        PERFORM hatchet.raise_error('unknown_task', ARRAY[p_task::text]);
    END IF;
    RETURN QUERY
    SELECT x.event_type, x.created_at, x.retry_count, x.reason, x.worker
    FROM (
        -- The task row is the QUEUED event of attempt 0: it is not stored twice.
        SELECT 'QUEUED'::text AS event_type, t.inserted_at AS created_at, 0 AS retry_count,
               format('queue %s', t.queue) AS reason, NULL::text AS worker, 0 AS ord
        FROM hatchet.tasks t WHERE t.tenant_id = p_tenant AND t.inserted_at = v_at AND t.id = p_task
        UNION ALL
        SELECT e.event_type::text, e.created_at, e.retry_count, e.reason,
               coalesce(e.worker_name, e.worker_id::text), 1
        FROM hatchet.task_events e
        WHERE e.tenant_id = p_tenant AND e.task_inserted_at = v_at AND e.task_id = p_task
        UNION ALL
        -- ASSIGNED is stored on the event that ended the attempt (assigned_at), or is the running attempt itself.
        SELECT 'ASSIGNED', e.assigned_at, e.retry_count, NULL, coalesce(e.worker_name, e.worker_id::text), 1
        FROM hatchet.task_events e
        WHERE e.tenant_id = p_tenant AND e.task_inserted_at = v_at AND e.task_id = p_task AND e.assigned_at IS NOT NULL
        UNION ALL
        SELECT 'ASSIGNED', r.assigned_at, r.retry_count, NULL, coalesce(r.worker_name, r.worker_id::text), 1
        FROM hatchet.running r WHERE r.tenant_id = p_tenant AND r.task_id = p_task
    ) x
    ORDER BY x.created_at, x.ord;
END
$$;

CREATE OR REPLACE FUNCTION hatchet.task(task_id uuid, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (id uuid, run_id uuid, readable_id text, queue text, status text, created_at timestamptz)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(task.tenant_id);
BEGIN
    IF task.task_id IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['task_id']);
    END IF;
    RETURN QUERY
    SELECT t.id, t.run_id, t.readable_id, t.queue, s.state, t.inserted_at
    FROM hatchet.tasks t CROSS JOIN LATERAL hatchet._task_state(p_tenant, t.id) s
    WHERE t.tenant_id = p_tenant AND t.inserted_at = hatchet.uuid_time(task.task_id) AND t.id = task.task_id;
END
$$;

CREATE OR REPLACE FUNCTION hatchet.running_attempt(task_id uuid, tenant_id uuid DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF running_attempt.task_id IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['task_id']);
    END IF;
    RETURN (SELECT r.retry_count FROM hatchet.running r
            WHERE r.tenant_id = hatchet._tenant(running_attempt.tenant_id)
              AND r.task_id = running_attempt.task_id);
END
$$;

CREATE OR REPLACE FUNCTION hatchet.put_log(task_id uuid, message text, level text DEFAULT 'INFO', retry_count integer DEFAULT NULL,
                                created_at timestamptz DEFAULT NULL, tenant_id uuid DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(put_log.tenant_id);
    v_at timestamptz := hatchet.uuid_time(put_log.task_id);
BEGIN
    IF put_log.message IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['message']);
    END IF;
    PERFORM hatchet._check_size('log line', octet_length(put_log.message), 'hatchet.max_log_line_bytes');
    IF NOT EXISTS (SELECT 1 FROM hatchet.tasks t WHERE t.tenant_id = p_tenant AND t.inserted_at = v_at
                                                   AND t.id = put_log.task_id) THEN
        PERFORM hatchet.raise_error('unknown_task', ARRAY[put_log.task_id::text]);
    END IF;
    PERFORM hatchet._check_count('log lines', put_log.task_id, 'hatchet.max_logs_per_task',
        (SELECT count(*) FROM (SELECT 1 FROM hatchet.logs l
                               WHERE l.tenant_id = p_tenant AND l.task_inserted_at = v_at AND l.task_id = put_log.task_id
                               LIMIT current_setting('hatchet.max_logs_per_task')::integer) x));
    INSERT INTO hatchet.logs (tenant_id, task_inserted_at, task_id, created_at, retry_count, level, message)
    VALUES (p_tenant, v_at, put_log.task_id, coalesce(put_log.created_at, clock_timestamp()),
            coalesce(put_log.retry_count,
                     (SELECT r.retry_count FROM hatchet.running r WHERE r.tenant_id = p_tenant AND r.task_id = put_log.task_id),
                     0),
            upper(coalesce(put_log.level, 'INFO')), put_log.message);
END
$$;

CREATE OR REPLACE FUNCTION hatchet.task_logs(task_id uuid, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (created_at timestamptz, retry_count integer, level text, message text)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT l.created_at, l.retry_count, l.level, l.message FROM hatchet.logs l
    WHERE l.tenant_id = hatchet._tenant(task_logs.tenant_id)
      AND l.task_inserted_at = hatchet.uuid_time(task_logs.task_id) AND l.task_id = task_logs.task_id
    ORDER BY l.created_at
$$;

-- sql/flow_control.sql
CREATE OR REPLACE FUNCTION hatchet.put_rate_limit(key text, "limit" integer, duration text DEFAULT 'MINUTE',
                                       tenant_id uuid DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(put_rate_limit.tenant_id);
    v_window interval := hatchet._rate_limit_window(put_rate_limit.duration);
BEGIN
    IF put_rate_limit.key IS NULL OR put_rate_limit.key = '' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['rate limit key must not be empty']);
    END IF;
    IF put_rate_limit."limit" IS NULL OR put_rate_limit."limit" < 1 THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('limit must be at least 1, not %s', coalesce(put_rate_limit."limit"::text, 'null'))]);
    END IF;
    IF v_window IS NULL THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format(
            'duration must be SECOND, MINUTE, HOUR, DAY, WEEK, MONTH or YEAR, not %s', put_rate_limit.duration)]);
    END IF;
    INSERT INTO hatchet.rate_limits AS r (tenant_id, key, limit_value, remaining, window_size, last_refill)
    VALUES (p_tenant, put_rate_limit.key, put_rate_limit."limit", put_rate_limit."limit", v_window, clock_timestamp())
    ON CONFLICT ON CONSTRAINT rate_limits_pkey DO UPDATE
    -- Lowering a limit clamps what is left in the current window; raising it does not grant units mid-window.
    SET limit_value = excluded.limit_value, window_size = excluded.window_size,
        remaining = least(r.remaining, excluded.limit_value);
END
$$;

CREATE OR REPLACE FUNCTION hatchet.pause_rate_limit(key text, paused_until timestamptz, tenant_id uuid DEFAULT NULL)
RETURNS timestamptz
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(pause_rate_limit.tenant_id);
    v_now    timestamptz := clock_timestamp();
    v_until  timestamptz := CASE WHEN pause_rate_limit.paused_until > v_now THEN pause_rate_limit.paused_until END;
BEGIN
    IF pause_rate_limit.key IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['key']);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM hatchet.rate_limits r WHERE r.tenant_id = p_tenant AND r.key = pause_rate_limit.key)
    THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['rate limit', pause_rate_limit.key]);
    END IF;
    -- Hot rows first (the global lock order): tasks parked on this limit come back when the pause now ends.
    UPDATE hatchet.delayed_queue d SET ready_at = coalesce(v_until, v_now)
    FROM hatchet.tasks t
    WHERE d.tenant_id = p_tenant AND d.reason = 'rate_limit' AND d.ready_at > coalesce(v_until, v_now)
      AND t.tenant_id = d.tenant_id AND t.inserted_at = d.task_inserted_at AND t.id = d.task_id
      AND t.rate_limits @> jsonb_build_array(jsonb_build_object('key', pause_rate_limit.key));
    UPDATE hatchet.rate_limits r SET paused_until = v_until
    WHERE r.tenant_id = p_tenant AND r.key = pause_rate_limit.key;
    RETURN v_until;
END
$$;

CREATE OR REPLACE FUNCTION hatchet.list_rate_limits(search text DEFAULT NULL, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (key text, limit_value integer, remaining integer, "window" text, last_refill timestamptz,
               paused_until timestamptz)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(list_rate_limits.tenant_id);
    v_now    timestamptz := clock_timestamp();
BEGIN
    RETURN QUERY
    SELECT r.key, r.limit_value,
           CASE WHEN v_now >= r.last_refill + r.window_size THEN r.limit_value ELSE r.remaining END,
           r.window_size::text, r.last_refill,
           CASE WHEN r.paused_until > v_now THEN r.paused_until END
    FROM hatchet.rate_limits r
    WHERE r.tenant_id = p_tenant AND (list_rate_limits.search IS NULL OR strpos(r.key, list_rate_limits.search) > 0)
    ORDER BY r.key;
END
$$;

-- sql/workers.sql
CREATE OR REPLACE FUNCTION hatchet.register_worker(
    name        text,
    actions     text[],
    slots       jsonb DEFAULT '{"default": 100}',
    labels      jsonb DEFAULT '{}',
    tenant_id   uuid  DEFAULT NULL,
    worker_id   uuid  DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(register_worker.tenant_id);
    v_id     uuid := coalesce(register_worker.worker_id, hatchet.gen_id());
    v_bad    text;
BEGIN
    IF register_worker.name IS NULL OR register_worker.name = '' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['worker name must not be empty']);
    END IF;
    IF register_worker.actions IS NULL OR EXISTS (SELECT 1 FROM unnest(register_worker.actions) a WHERE a IS NULL OR a = '') THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['actions must be a list of non-empty names']);
    END IF;
    IF register_worker.slots IS NULL OR jsonb_typeof(register_worker.slots) <> 'object' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['slots must be a JSON object of slot type to capacity']);
    END IF;
    SELECT k INTO v_bad FROM jsonb_each(register_worker.slots) AS e(k, v)
    WHERE jsonb_typeof(v) <> 'number' OR (v #>> '{}')::numeric < 0 OR (v #>> '{}')::numeric <> floor((v #>> '{}')::numeric)
    LIMIT 1;
    IF v_bad IS NOT NULL THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('slot capacity of "%s" must be a non-negative integer', v_bad)]);
    END IF;
    PERFORM hatchet._check_payload('labels', register_worker.labels);

    INSERT INTO hatchet.workers AS w (tenant_id, id, name, labels, is_active, last_heartbeat_at)
    VALUES (p_tenant, v_id, register_worker.name, register_worker.labels, true, clock_timestamp())
    ON CONFLICT ON CONSTRAINT workers_pkey DO UPDATE
    SET name = excluded.name, labels = excluded.labels, is_active = true, last_heartbeat_at = excluded.last_heartbeat_at;
    DELETE FROM hatchet.worker_actions a WHERE a.tenant_id = p_tenant AND a.worker_id = v_id;
    INSERT INTO hatchet.worker_actions (tenant_id, worker_id, action)
    SELECT DISTINCT p_tenant, v_id, a FROM unnest(register_worker.actions) AS a;
    -- Capacity can change on re-registration; slots in use stay counted (capacity never drops below use).
    INSERT INTO hatchet.worker_slots AS s (tenant_id, worker_id, slot_type, capacity)
    SELECT p_tenant, v_id, k, (v #>> '{}')::integer FROM jsonb_each(register_worker.slots) AS e(k, v)
    ON CONFLICT ON CONSTRAINT worker_slots_pkey DO UPDATE SET capacity = greatest(excluded.capacity, s.used);
    RETURN v_id;
END
$$;

CREATE OR REPLACE FUNCTION hatchet.heartbeat(worker_ids uuid[], tenant_id uuid DEFAULT NULL) RETURNS integer
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    -- Only workers that are still alive may heartbeat: a worker declared dead must register again.
    WITH beat AS (
        UPDATE hatchet.workers w SET last_heartbeat_at = clock_timestamp()
        WHERE w.tenant_id = hatchet._tenant(heartbeat.tenant_id) AND w.id = ANY (worker_ids)
          AND w.is_active
        RETURNING 1
    )
    SELECT count(*)::integer FROM beat
$$;

CREATE OR REPLACE FUNCTION hatchet.set_worker_paused(worker_id uuid, paused boolean, tenant_id uuid DEFAULT NULL) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE hatchet.workers w SET is_paused = set_worker_paused.paused
    WHERE w.tenant_id = hatchet._tenant(set_worker_paused.tenant_id) AND w.id = set_worker_paused.worker_id;
    IF NOT FOUND THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['worker', set_worker_paused.worker_id::text]);
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION hatchet.upsert_worker_labels(worker_id uuid, labels jsonb, tenant_id uuid DEFAULT NULL) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM hatchet._check_payload('labels', upsert_worker_labels.labels);
    UPDATE hatchet.workers w SET labels = w.labels || upsert_worker_labels.labels
    WHERE w.tenant_id = hatchet._tenant(upsert_worker_labels.tenant_id)
      AND w.id = upsert_worker_labels.worker_id;
    IF NOT FOUND THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['worker', upsert_worker_labels.worker_id::text]);
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION hatchet.deregister_worker(worker_id uuid, reason text DEFAULT 'worker unregistered',
                                          tenant_id uuid DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(deregister_worker.tenant_id);
    v_run hatchet.running;
    v_round integer;
    n integer := 0;
BEGIN
    UPDATE hatchet.workers w SET is_active = false
    WHERE w.tenant_id = p_tenant AND w.id = deregister_worker.worker_id;
    -- FOR UPDATE, not SKIP LOCKED: a row locked for a moment (a completion, an acknowledgement) must not be left
    -- RUNNING on a worker taken out of service. A row updated while this waited has a new version this statement's
    -- snapshot cannot delete, so the next round (a new snapshot) takes it; a row a completion deleted is gone.
    FOR v_round IN 1 .. 3 LOOP
        FOR v_run IN
            DELETE FROM hatchet.running r
            WHERE r.ctid = ANY (ARRAY(SELECT x.ctid FROM hatchet.running x
                                      WHERE x.tenant_id = p_tenant AND x.worker_id = deregister_worker.worker_id
                                      FOR UPDATE))
            RETURNING r.*
        LOOP
            PERFORM hatchet._fail_attempt(p_tenant, v_run, deregister_worker.reason, true, true);
            n := n + 1;
        END LOOP;
        EXIT WHEN NOT EXISTS (SELECT 1 FROM hatchet.running x
                              WHERE x.tenant_id = p_tenant AND x.worker_id = deregister_worker.worker_id);
    END LOOP;
    RETURN n;
END
$$;

CREATE OR REPLACE FUNCTION hatchet.assign(
    worker_ids uuid[]  DEFAULT NULL,
    max_tasks  integer DEFAULT 100,
    tenant_id  uuid    DEFAULT NULL
) RETURNS TABLE (worker_id uuid, task_id uuid, retry_count integer, queue text, input jsonb,
                 additional_metadata jsonb, priority integer, run_id uuid, readable_id text,
                 task_inserted_at timestamptz, timeout_at timestamptz, queued_at timestamptz)
LANGUAGE plpgsql
SECURITY DEFINER
-- As hatchet.dequeue: claimed rows are deleted by TID scan at any queue size, and one generic plan serves every call.
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(assign.tenant_id);
    v_now    timestamptz := clock_timestamp();
    v_after  interval := make_interval(secs => coalesce(current_setting('hatchet.worker_dead_after_ms', true)::integer,
                                                         30000) / 1000.0);
    v_left   integer := assign.max_tasks;
    v_queue  text;
    v_cap    integer;
    v_ctids  tid[];
    v_any_rl boolean;
    v_cand   record;
    v_w      integer;
    v_best   integer;
    v_best_score bigint;
    v_score  bigint;
    -- worker state for this call, indexed in parallel
    w_ids    uuid[];
    w_labels jsonb[];
    w_types  text[];
    w_free   integer[];
    w_actions text[][];
    a_ctids  tid[] := '{}';
    a_workers uuid[] := '{}';
    a_types text[] := '{}';
    a_units integer[] := '{}';
BEGIN
    IF assign.max_tasks IS NULL OR assign.max_tasks NOT BETWEEN 1 AND 10000 THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('max_tasks must be between 1 and 10000, not %s', coalesce(assign.max_tasks::text, 'null'))]);
    END IF;
    IF EXISTS (SELECT 1 FROM hatchet.delayed_queue d WHERE d.tenant_id = p_tenant AND d.ready_at <= v_now) THEN
        PERFORM hatchet._promote_due(p_tenant, NULL, v_now, 1000);
    END IF;

    -- Free capacity per (worker, slot type) of live workers, read after locking their worker_slots rows (in the
    -- global lock order): two assigners never hand out the same slot, and the CHECK on used <= capacity backs it up.
    PERFORM 1 FROM hatchet.worker_slots s
    JOIN hatchet.workers w ON w.tenant_id = s.tenant_id AND w.id = s.worker_id
    WHERE s.tenant_id = p_tenant AND w.is_active AND NOT w.is_paused AND w.last_heartbeat_at >= v_now - v_after
      AND (assign.worker_ids IS NULL OR s.worker_id = ANY (assign.worker_ids))
    ORDER BY s.worker_id, s.slot_type
    FOR UPDATE OF s;
    SELECT array_agg(s.worker_id ORDER BY s.worker_id, s.slot_type), array_agg(w.labels ORDER BY s.worker_id, s.slot_type),
           array_agg(s.slot_type ORDER BY s.worker_id, s.slot_type),
           array_agg(s.capacity - s.used ORDER BY s.worker_id, s.slot_type)
    INTO w_ids, w_labels, w_types, w_free
    FROM hatchet.worker_slots s
    JOIN hatchet.workers w ON w.tenant_id = s.tenant_id AND w.id = s.worker_id
    WHERE s.tenant_id = p_tenant AND w.is_active AND NOT w.is_paused AND w.last_heartbeat_at >= v_now - v_after
      AND (assign.worker_ids IS NULL OR s.worker_id = ANY (assign.worker_ids))
      AND s.capacity > s.used;
    IF w_ids IS NULL THEN
        RETURN;
    END IF;

    FOR v_queue IN
        SELECT x.action
        FROM (SELECT DISTINCT a.action FROM hatchet.worker_actions a
              WHERE a.tenant_id = p_tenant AND a.worker_id = ANY (w_ids)) x
        -- A scalar subquery, not EXISTS: the planner may turn an EXISTS into a join that aggregates the whole ready
        -- queue (cost growing with the backlog); this stays one index probe per served queue.
        WHERE (SELECT true FROM hatchet.ready_queue r WHERE r.tenant_id = p_tenant AND r.queue = x.action LIMIT 1)
        ORDER BY x.action
    LOOP
        EXIT WHEN v_left <= 0;
        -- How many this queue could take at most: the free default-type slots of workers serving it.
        SELECT coalesce(sum(w_free[i]), 0) INTO v_cap
        FROM generate_subscripts(w_ids, 1) AS i
        WHERE EXISTS (SELECT 1 FROM hatchet.worker_actions a
                      WHERE a.tenant_id = p_tenant AND a.worker_id = w_ids[i] AND a.action = v_queue);
        CONTINUE WHEN v_cap <= 0;
        -- Unbounded: rows this call locks but leaves (no eligible worker) stay ready, and later calls must see them.
        SELECT c.ctids, c.any_rate_limited INTO v_ctids, v_any_rl
        FROM hatchet._claim_ready(p_tenant, v_queue, least(v_cap, v_left), false) c;
        CONTINUE WHEN v_ctids IS NULL;

        FOR v_cand IN
            SELECT r.ctid AS rctid, r.task_id, r.rate_limited, t.desired_labels, t.sticky, t.desired_worker_id,
                   t.slot_type, t.slot_units, t.rate_limits
            FROM hatchet.ready_queue r
            CROSS JOIN LATERAL (SELECT x.* FROM hatchet.tasks x  -- per-row probe: pruned to one partition
                            WHERE x.tenant_id = r.tenant_id AND x.inserted_at = r.task_inserted_at AND x.id = r.task_id) t
            WHERE r.ctid = ANY (v_ctids)
            ORDER BY r.priority DESC, r.fair_rank, r.id
        LOOP
            EXIT WHEN v_left <= 0;
            v_best := NULL;
            v_best_score := NULL;
            FOR v_w IN 1 .. cardinality(w_ids) LOOP
                CONTINUE WHEN w_types[v_w] <> v_cand.slot_type OR w_free[v_w] < v_cand.slot_units;
                CONTINUE WHEN NOT EXISTS (SELECT 1 FROM hatchet.worker_actions a
                                          WHERE a.tenant_id = p_tenant AND a.worker_id = w_ids[v_w]
                                            AND a.action = v_queue);
                v_score := hatchet._worker_score(w_ids[v_w], w_labels[v_w], v_cand.desired_labels, v_cand.sticky,
                                                 v_cand.desired_worker_id);
                CONTINUE WHEN v_score IS NULL;
                IF v_best IS NULL OR v_score > v_best_score
                   OR (v_score = v_best_score AND w_free[v_w] > w_free[v_best]) THEN
                    v_best := v_w;
                    v_best_score := v_score;
                END IF;
            END LOOP;
            CONTINUE WHEN v_best IS NULL; -- no eligible worker now: it stays queued (until schedule timeout)
            -- A call for some workers only (the server assigns to the workers whose completions it just applied)
            -- leaves a SOFT-sticky task to its desired worker when that one is outside the call, alive and has room:
            -- the next call that includes it takes it. SOFT only falls back to others when its worker is full.
            IF v_cand.sticky = 'SOFT' AND assign.worker_ids IS NOT NULL AND v_cand.desired_worker_id IS NOT NULL
               AND NOT (v_cand.desired_worker_id = ANY (w_ids)) AND EXISTS (
                   SELECT 1 FROM hatchet.worker_slots s
                   JOIN hatchet.workers w ON w.tenant_id = s.tenant_id AND w.id = s.worker_id
                   JOIN hatchet.worker_actions a ON a.tenant_id = s.tenant_id AND a.worker_id = s.worker_id
                                                AND a.action = v_queue
                   WHERE s.tenant_id = p_tenant AND s.worker_id = v_cand.desired_worker_id
                     AND s.slot_type = v_cand.slot_type AND s.capacity - s.used >= v_cand.slot_units
                     AND w.is_active AND NOT w.is_paused AND w.last_heartbeat_at >= v_now - v_after) THEN
                CONTINUE;
            END IF;
            IF v_cand.rate_limited THEN
                IF NOT (hatchet._apply_rate_limits(p_tenant, ARRAY[v_cand.rctid], v_now) @> ARRAY[v_cand.rctid]) THEN
                    CONTINUE; -- parked until its window refills, or failed: the rest of the queue goes on
                END IF;
            END IF;
            w_free[v_best] := w_free[v_best] - v_cand.slot_units;
            a_ctids := a_ctids || v_cand.rctid;
            a_workers := a_workers || w_ids[v_best];
            a_types := a_types || v_cand.slot_type;
            a_units := a_units || v_cand.slot_units;
            v_left := v_left - 1;
        END LOOP;
    END LOOP;

    IF cardinality(a_ctids) = 0 THEN
        RETURN;
    END IF;

    UPDATE hatchet.worker_slots s SET used = s.used + u.units
    FROM (SELECT w, st, sum(n)::integer AS units FROM unnest(a_workers, a_types, a_units) AS x(w, st, n)
          GROUP BY w, st) u
    WHERE s.tenant_id = p_tenant AND s.worker_id = u.w AND s.slot_type = u.st;

    RETURN QUERY
    WITH pick AS (
        SELECT * FROM unnest(a_ctids, a_workers, a_types, a_units) AS p(rctid, worker_id, slot_type, slot_units)
    ), claimed AS (
        DELETE FROM hatchet.ready_queue r USING pick p
        WHERE r.ctid = p.rctid
        RETURNING r.*, p.worker_id AS assigned_worker, p.slot_type AS assigned_slot_type, p.slot_units AS assigned_units
    ), work AS (
        SELECT c.*, t.input, t.additional_metadata, t.readable_id, t.inserted_at AS queued_at,
               v_now + t.execution_timeout AS timeout_at
        FROM claimed c
        CROSS JOIN LATERAL (SELECT x.* FROM hatchet.tasks x  -- per-row probe: pruned to one partition
                            WHERE x.tenant_id = c.tenant_id AND x.inserted_at = c.task_inserted_at AND x.id = c.task_id) t
    ), run AS (
        INSERT INTO hatchet.running (tenant_id, task_id, task_inserted_at, assigned_at, timeout_at, retry_count,
                                     app_retry_count, internal_retry_count, slot_units, priority, queue, worker_id,
                                     slot_type, concurrency_key, run_id, task_definition_id)
        SELECT w.tenant_id, w.task_id, w.task_inserted_at, v_now, w.timeout_at, w.retry_count, w.app_retry_count,
               w.internal_retry_count, w.assigned_units, w.priority, w.queue, w.assigned_worker, w.assigned_slot_type,
               w.concurrency_key, w.run_id, w.task_definition_id
        FROM work w
    )
    -- (no ASSIGNED event row: hatchet.task_events() derives it from `running`, then from the attempt's final event)
    SELECT w.assigned_worker, w.task_id, w.retry_count, w.queue, w.input, w.additional_metadata, w.priority::integer,
           w.run_id, w.readable_id, w.task_inserted_at, w.timeout_at, w.queued_at
    FROM work w
    ORDER BY w.assigned_worker, w.priority DESC, w.fair_rank, w.id;
END
$$;

CREATE OR REPLACE FUNCTION hatchet.release_slot(task_id uuid, tenant_id uuid DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(release_slot.tenant_id);
    v_run hatchet.running;
BEGIN
    SELECT * INTO v_run FROM hatchet.running r
    WHERE r.tenant_id = p_tenant AND r.task_id = release_slot.task_id FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM hatchet._reject_stale(p_tenant, release_slot.task_id, -1);
    END IF;
    IF v_run.worker_id IS NULL OR v_run.slot_units = 0 THEN
        RETURN false;
    END IF;
    PERFORM hatchet._release(p_tenant, ARRAY[v_run.worker_id], ARRAY[v_run.slot_type], ARRAY[v_run.slot_units], '{}');
    UPDATE hatchet.running r SET slot_units = 0 WHERE r.tenant_id = p_tenant AND r.task_id = release_slot.task_id;
    RETURN true;
END
$$;

CREATE OR REPLACE FUNCTION hatchet.list_workers(tenant_id uuid DEFAULT NULL, worker_id uuid DEFAULT NULL)
RETURNS TABLE (id uuid, name text, is_active boolean, is_paused boolean, labels jsonb, actions text[], slots jsonb,
               used jsonb, last_heartbeat_at timestamptz, created_at timestamptz)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(list_workers.tenant_id);
BEGIN
    RETURN QUERY
    SELECT w.id, w.name, w.is_active, w.is_paused, w.labels,
           coalesce((SELECT array_agg(a.action ORDER BY a.action) FROM hatchet.worker_actions a
                     WHERE a.tenant_id = w.tenant_id AND a.worker_id = w.id), '{}'),
           coalesce((SELECT jsonb_object_agg(s.slot_type, s.capacity) FROM hatchet.worker_slots s
                     WHERE s.tenant_id = w.tenant_id AND s.worker_id = w.id), '{}'),
           coalesce((SELECT jsonb_object_agg(s.slot_type, s.used) FROM hatchet.worker_slots s
                     WHERE s.tenant_id = w.tenant_id AND s.worker_id = w.id), '{}'),
           w.last_heartbeat_at, w.created_at
    FROM hatchet.workers w
    WHERE w.tenant_id = p_tenant AND (list_workers.worker_id IS NULL OR w.id = list_workers.worker_id)
    ORDER BY w.created_at DESC, w.id;
END
$$;

CREATE OR REPLACE FUNCTION hatchet.worker(worker_id uuid, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (id uuid, name text, is_active boolean, is_paused boolean, labels jsonb, actions text[], slots jsonb,
               used jsonb, last_heartbeat_at timestamptz, created_at timestamptz)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF worker.worker_id IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['worker_id']);
    END IF;
    RETURN QUERY SELECT * FROM hatchet.list_workers(worker.tenant_id, worker.worker_id);
END
$$;

-- sql/workflows.sql
CREATE OR REPLACE FUNCTION hatchet.register_workflow(definition jsonb, tenant_id uuid DEFAULT NULL) RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant   uuid := hatchet._tenant(register_workflow.tenant_id);
    v_def      jsonb;
    v_name     text;
    v_wf       bigint;
    v_latest   record;
    v_checksum text;
    v_version  bigint;
    v_ext      uuid;
    v_task     jsonb;
    v_slot     record;
    v_crons    text[];
BEGIN
    IF register_workflow.definition IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['definition']);
    END IF;
    PERFORM hatchet._check_payload('definition', register_workflow.definition);
    v_def := hatchet._normalise_workflow(register_workflow.definition);
    v_name := v_def->>'name';

    -- Concurrent registrations of one workflow queue up on its row, so versions are created one at a time.
    INSERT INTO hatchet.workflows (tenant_id, external_id, name) VALUES (p_tenant, hatchet.gen_id(), v_name)
    ON CONFLICT ON CONSTRAINT workflows_name_key DO NOTHING;
    SELECT w.id INTO v_wf FROM hatchet.workflows w WHERE w.tenant_id = p_tenant AND w.name = v_name FOR UPDATE;

    SELECT v.id, v.external_id, v.definition INTO v_latest
    FROM hatchet.workflow_versions v WHERE v.tenant_id = p_tenant AND v.workflow_id = v_wf
    ORDER BY v.id DESC LIMIT 1;
    IF FOUND AND v_latest.definition = v_def THEN
        RETURN v_latest.external_id;
    END IF;

    -- Going back to an older definition makes a new (latest) version; its checksum must still be unique.
    v_checksum := md5(v_def::text);
    IF EXISTS (SELECT 1 FROM hatchet.workflow_versions v
               WHERE v.tenant_id = p_tenant AND v.workflow_id = v_wf AND v.checksum = v_checksum) THEN
        v_checksum := md5(v_def::text || ':' || v_latest.id);
    END IF;
    v_ext := hatchet.gen_id();
    INSERT INTO hatchet.workflow_versions (tenant_id, external_id, workflow_id, version, checksum, definition, sticky,
                                           default_priority, concurrency, event_triggers, cron_triggers, cron_input)
    VALUES (p_tenant, v_ext, v_wf, v_def->>'version', v_checksum, v_def,
            (v_def->>'sticky')::hatchet.sticky_strategy, (v_def->>'default_priority')::smallint,
            coalesce(v_def->'concurrency', '[]'),
            ARRAY(SELECT jsonb_array_elements_text(coalesce(v_def->'event_triggers', '[]'))),
            ARRAY(SELECT jsonb_array_elements_text(coalesce(v_def->'cron_triggers', '[]'))),
            v_def->'cron_input')
    RETURNING id INTO v_version;

    FOR v_task IN
        SELECT t || jsonb_build_object('is_on_failure', ord > jsonb_array_length(v_def->'tasks'))
        FROM jsonb_array_elements((v_def->'tasks') || CASE WHEN v_def ? 'on_failure_task'
                                                          THEN jsonb_build_array(v_def->'on_failure_task')
                                                          ELSE '[]' END)
             WITH ORDINALITY AS x(t, ord)
        ORDER BY ord
    LOOP
        -- A task holds one kind of slot: the first slot type it requests (by name).
        SELECT s.key, (s.value #>> '{}')::numeric::integer AS units INTO v_slot
        FROM jsonb_each(v_task->'slot_requests') s ORDER BY s.key LIMIT 1;
        INSERT INTO hatchet.task_definitions (tenant_id, workflow_version_id, readable_id, action, parents,
                                              is_on_failure, is_durable, retries, backoff_factor, backoff_max_seconds,
                                              execution_timeout, schedule_timeout, concurrency, rate_limits,
                                              worker_labels, conditions, slot_type, slot_units)
        VALUES (p_tenant, v_version, v_task->>'readable_id', v_task->>'action',
                ARRAY(SELECT jsonb_array_elements_text(v_task->'parents')), (v_task->>'is_on_failure')::boolean,
                (v_task->>'is_durable')::boolean, (v_task->>'retries')::integer,
                (v_task->>'backoff_factor')::float8, (v_task->>'backoff_max_seconds')::integer,
                hatchet.parse_duration(v_task->>'timeout'), hatchet.parse_duration(v_task->>'schedule_timeout'),
                coalesce(v_task->'concurrency', '[]'), coalesce(v_task->'rate_limits', '[]'),
                coalesce(v_task->'worker_labels', '{}'), coalesce(v_task->'conditions', '{}'),
                v_slot.key, v_slot.units);
    END LOOP;

    -- Declared crons follow the latest definition: kept (with their next tick) while still declared, so
    -- re-registering on every worker start neither skips nor repeats a tick; removed once no longer declared.
    v_crons := ARRAY(SELECT jsonb_array_elements_text(coalesce(v_def->'cron_triggers', '[]')));
    DELETE FROM hatchet.crons c
    WHERE c.tenant_id = p_tenant AND c.workflow_id = v_wf AND c.method = 'DECLARED' AND NOT (c.expression = ANY (v_crons));
    UPDATE hatchet.crons c SET input = coalesce(v_def->'cron_input', '{}')
    WHERE c.tenant_id = p_tenant AND c.workflow_id = v_wf AND c.method = 'DECLARED';
    INSERT INTO hatchet.crons (tenant_id, id, workflow_id, name, expression, input, method, next_tick_at)
    SELECT p_tenant, hatchet.gen_id(), v_wf, e, e, coalesce(v_def->'cron_input', '{}'), 'DECLARED',
           coalesce(hatchet.cron_next(e, clock_timestamp()), 'infinity')
    FROM (SELECT DISTINCT e FROM unnest(v_crons) e) x
    ON CONFLICT ON CONSTRAINT crons_name_key DO NOTHING;

    -- Declarative filters are replaced by every registration (Hatchet's default_filters).
    DELETE FROM hatchet.event_filters f
    WHERE f.tenant_id = p_tenant AND f.workflow_id = v_wf AND f.is_declarative;
    INSERT INTO hatchet.event_filters (tenant_id, id, workflow_id, scope, expression, payload, is_declarative)
    SELECT p_tenant, hatchet.gen_id(), v_wf, f->>'scope', f->>'expression', f->'payload', true
    FROM jsonb_array_elements(coalesce(v_def->'default_filters', '[]')) f
    ON CONFLICT DO NOTHING;
    RETURN v_ext;
END
$$;

CREATE OR REPLACE FUNCTION hatchet.list_workflows(workflow_name text DEFAULT NULL, workflow_id uuid DEFAULT NULL,
                                       tenant_id uuid DEFAULT NULL)
RETURNS TABLE (id uuid, name text, is_paused boolean, created_at timestamptz, version_id uuid, version text,
               version_created_at timestamptz, event_triggers text[], cron_triggers text[], description text,
               sticky text)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(list_workflows.tenant_id);
BEGIN
    RETURN QUERY
    SELECT w.external_id, w.name, w.is_paused, w.created_at, v.external_id, v.version, v.created_at,
           coalesce(v.event_triggers, '{}'), coalesce(v.cron_triggers, '{}'), v.definition ->> 'description',
           v.sticky::text
    FROM hatchet.workflows w
    LEFT JOIN LATERAL (SELECT x.* FROM hatchet.workflow_versions x
                       WHERE x.tenant_id = w.tenant_id AND x.workflow_id = w.id ORDER BY x.id DESC LIMIT 1) v ON true
    WHERE w.tenant_id = p_tenant
      AND (list_workflows.workflow_name IS NULL OR w.name = list_workflows.workflow_name)
      AND (list_workflows.workflow_id IS NULL OR w.external_id = list_workflows.workflow_id)
    ORDER BY w.name;
END
$$;

-- sql/runs.sql
CREATE OR REPLACE FUNCTION hatchet.run_workflow(
    name                text,
    input               jsonb   DEFAULT '{}',
    additional_metadata jsonb   DEFAULT '{}',
    priority            integer DEFAULT NULL,
    tenant_id           uuid    DEFAULT NULL,
    parent_task_id      uuid    DEFAULT NULL,
    child_index         integer DEFAULT NULL,
    child_key           text    DEFAULT NULL,
    desired_worker_id   uuid    DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(run_workflow.tenant_id);
    v_wf     record;
    v_id     uuid;
BEGIN
    PERFORM hatchet._check_run_options(run_workflow.input, run_workflow.additional_metadata, run_workflow.priority);
    v_wf := hatchet._latest_version(p_tenant, run_workflow.name);
    IF run_workflow.desired_worker_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM hatchet.workers w WHERE w.tenant_id = p_tenant AND w.id = run_workflow.desired_worker_id) THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['worker', run_workflow.desired_worker_id::text]);
    END IF;

    -- A child run spawned again by a retry of its parent (same parent task and child index or key) is the same run.
    IF run_workflow.parent_task_id IS NOT NULL
       AND (run_workflow.child_key IS NOT NULL OR run_workflow.child_index IS NOT NULL) THEN
        PERFORM pg_advisory_xact_lock(1212240963, hashtext(run_workflow.parent_task_id::text));
        SELECT r.id INTO v_id FROM hatchet.runs r
        WHERE r.tenant_id = p_tenant AND r.parent_task_id = run_workflow.parent_task_id
          AND r.inserted_at >= hatchet.uuid_time(run_workflow.parent_task_id)
          AND CASE WHEN run_workflow.child_key IS NOT NULL THEN r.child_key = run_workflow.child_key
                   ELSE r.child_key IS NULL AND r.child_index = run_workflow.child_index END
        ORDER BY r.inserted_at LIMIT 1;
        IF FOUND THEN
            RETURN v_id;
        END IF;
    END IF;

    RETURN hatchet._create_run(p_tenant, v_wf.version_id, run_workflow.input, run_workflow.additional_metadata,
                               run_workflow.priority, 'manual', NULL, run_workflow.parent_task_id,
                               run_workflow.child_index, run_workflow.child_key, run_workflow.desired_worker_id);
END
$$;

CREATE OR REPLACE FUNCTION hatchet.cancel_run(run_id uuid, tenant_id uuid DEFAULT NULL, reason text DEFAULT 'run cancelled by user')
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(cancel_run.tenant_id);
    p_run    uuid := cancel_run.run_id;
    v_task   uuid;
    v_match  uuid;
    v_fired  record;
    n        integer;
BEGIN
    IF p_run IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['run_id']);
    END IF;
    IF hatchet._run_row(p_tenant, p_run) IS NULL
       AND NOT EXISTS (SELECT 1 FROM hatchet.tasks t WHERE t.tenant_id = p_tenant AND t.run_id = p_run
                                                       AND t.inserted_at >= hatchet.uuid_time(p_run)) THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['run', p_run::text]);
    END IF;
    -- Lock order: the run's in-flight rows first, then the run (as complete and fail do), so a worker completing one
    -- of these tasks right now waits for us instead of deadlocking with us; its result is then stale.
    PERFORM 1 FROM hatchet.running r
    WHERE r.tenant_id = p_tenant AND (r.run_id = p_run OR r.task_id = p_run) FOR UPDATE;
    PERFORM 1 FROM hatchet.ready_queue r
    WHERE r.tenant_id = p_tenant AND (r.run_id = p_run OR r.task_id = p_run) FOR UPDATE;
    PERFORM 1 FROM hatchet.delayed_queue r
    WHERE r.tenant_id = p_tenant AND (r.run_id = p_run OR r.task_id = p_run) FOR UPDATE;
    PERFORM hatchet._lock_runs(ARRAY[p_run]);
    n := -hatchet._count_cancelled(p_tenant, p_run);
    FOR v_task IN
        SELECT t.id FROM hatchet.tasks t
        WHERE t.tenant_id = p_tenant AND t.run_id = p_run AND t.inserted_at >= hatchet.uuid_time(p_run)
          AND (SELECT s.state FROM hatchet._task_state(p_tenant, t.id) s) IN ('QUEUED', 'RUNNING')
        ORDER BY t.id
    LOOP
        PERFORM hatchet.cancel(v_task, p_tenant, cancel_run.reason);
    END LOOP;
    FOR v_match IN SELECT x.id FROM hatchet.matches x WHERE x.tenant_id = p_tenant AND x.run_id = p_run ORDER BY x.id
    LOOP
        v_fired := hatchet._fire_match(p_tenant, v_match, 'CANCEL', cancel_run.reason);
        IF v_fired.task_id IS NOT NULL THEN
            PERFORM hatchet._advance(p_tenant, ARRAY[v_fired.task_id], ARRAY[p_run], ARRAY[v_fired.outcome]);
        END IF;
    END LOOP;
    PERFORM hatchet._release_run_keys(p_tenant, ARRAY[p_run]);
    RETURN n + hatchet._count_cancelled(p_tenant, p_run);
END
$$;

CREATE OR REPLACE FUNCTION hatchet.replay_tasks(task_or_run_ids uuid[], tenant_id uuid DEFAULT NULL)
RETURNS TABLE (task_id uuid, run_id uuid, retry_count integer)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant  uuid := hatchet._tenant(replay_tasks.tenant_id);
    v_id      uuid;
    v_plan    jsonb := '{}';
    v_key     text;
    v_val     jsonb;
    v_rid     uuid;
    v_run     hatchet.runs;
    v_task    record;
    v_sel     text[];
    v_direct  text[];
    v_desc    text[];
    v_def     hatchet.task_definitions;
    v_existing uuid;
    v_out_ids uuid[];
    v_out_res text[];
BEGIN
    IF replay_tasks.task_or_run_ids IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['task_or_run_ids']);
    END IF;
    IF array_position(replay_tasks.task_or_run_ids, NULL) IS NOT NULL THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['task_or_run_ids must not contain NULL']);
    END IF;
    -- Resolve: {run id: ["*"] for the whole run (or a task enqueued on its own), or the readable ids chosen}.
    FOREACH v_id IN ARRAY replay_tasks.task_or_run_ids LOOP
        IF (hatchet._run_row(p_tenant, v_id)).id IS NOT NULL THEN
            v_plan := v_plan || jsonb_build_object(v_id::text, '["*"]'::jsonb);
            CONTINUE;
        END IF;
        SELECT t.id, t.run_id, t.readable_id INTO v_task FROM hatchet.tasks t
        WHERE t.tenant_id = p_tenant AND t.inserted_at = hatchet.uuid_time(v_id) AND t.id = v_id;
        IF NOT FOUND THEN
            PERFORM hatchet.raise_error('unknown_object', ARRAY['task or run', v_id::text]);
        END IF;
        IF v_task.run_id = v_task.id OR v_task.readable_id IS NULL THEN
            v_plan := v_plan || jsonb_build_object(v_task.run_id::text, '["*"]'::jsonb);
        ELSIF NOT coalesce(v_plan -> (v_task.run_id::text) ? '*', false) THEN
            v_plan := v_plan || jsonb_build_object(v_task.run_id::text,
                coalesce(v_plan -> (v_task.run_id::text), '[]') || to_jsonb(v_task.readable_id));
        END IF;
    END LOOP;

    -- One replay at a time per tenant (Hatchet does the same), then the runs' locks in key order.
    PERFORM pg_advisory_xact_lock(1212240963, hashtext('replay:' || p_tenant::text));
    PERFORM hatchet._lock_runs(ARRAY(SELECT k::uuid FROM jsonb_object_keys(v_plan) k));

    FOR v_key, v_val IN SELECT e.key, e.value FROM jsonb_each(v_plan) e ORDER BY e.key LOOP
        v_rid := v_key::uuid;
        v_run := hatchet._run_row(p_tenant, v_rid);
        IF v_run.id IS NULL THEN
            -- A task enqueued on its own.
            CONTINUE WHEN (hatchet._task_state(p_tenant, v_rid)).state NOT IN ('COMPLETED', 'FAILED', 'CANCELLED');
            task_id := v_rid;
            run_id := v_rid;
            retry_count := hatchet._replay_attempt(p_tenant, v_rid);
            RETURN NEXT;
            CONTINUE;
        END IF;
        CONTINUE WHEN hatchet.run_status(v_rid, p_tenant) NOT IN ('COMPLETED', 'FAILED', 'CANCELLED');

        IF v_val ? '*' THEN
            v_sel := ARRAY(SELECT d.readable_id FROM hatchet.task_definitions d
                           WHERE d.tenant_id = p_tenant AND d.workflow_version_id = v_run.workflow_version_id
                             AND NOT d.is_on_failure);
        ELSE
            v_sel := ARRAY(SELECT jsonb_array_elements_text(v_val));
        END IF;
        -- Everything strictly downstream of the chosen tasks waits for its parents again; the chosen tasks that are
        -- not downstream of another chosen one start now. The on_failure task is decided again at the end.
        WITH RECURSIVE down(rid) AS (
            SELECT c.readable_id FROM hatchet.task_definitions c
            WHERE c.tenant_id = p_tenant AND c.workflow_version_id = v_run.workflow_version_id
              AND c.parents && v_sel
            UNION
            SELECT c.readable_id FROM hatchet.task_definitions c JOIN down ON down.rid = ANY (c.parents)
            WHERE c.tenant_id = p_tenant AND c.workflow_version_id = v_run.workflow_version_id
        )
        SELECT coalesce(array_agg(rid), '{}') INTO v_desc FROM down;
        v_desc := v_desc || ARRAY(SELECT d.readable_id FROM hatchet.task_definitions d
                                  WHERE d.tenant_id = p_tenant AND d.workflow_version_id = v_run.workflow_version_id
                                    AND d.is_on_failure AND NOT d.readable_id = ANY (v_desc));
        v_direct := ARRAY(SELECT x FROM unnest(v_sel) x WHERE NOT x = ANY (v_desc));

        FOR v_def IN
            SELECT d.* FROM hatchet.task_definitions d
            WHERE d.tenant_id = p_tenant AND d.workflow_version_id = v_run.workflow_version_id
              AND d.readable_id = ANY (v_desc)
            ORDER BY d.id
        LOOP
            SELECT t.id INTO v_existing FROM hatchet.tasks t
            WHERE t.tenant_id = p_tenant AND t.run_id = v_rid AND t.inserted_at >= v_run.inserted_at
              AND t.readable_id = v_def.readable_id
            ORDER BY t.inserted_at DESC LIMIT 1;
            PERFORM hatchet._insert_match(p_tenant, v_rid, v_def.id, v_existing,
                CASE WHEN v_def.is_on_failure THEN hatchet._on_failure_conditions(p_tenant, v_run.workflow_version_id)
                     ELSE hatchet._parent_conditions(v_def) END);
        END LOOP;
        -- Tasks that are not replayed keep their outcome: apply it to the re-armed conditions.
        SELECT array_agg(t.id ORDER BY t.id),
               array_agg(CASE o.event_type WHEN 'SKIPPED' THEN 'COMPLETED' ELSE o.event_type END ORDER BY t.id)
        INTO v_out_ids, v_out_res
        FROM hatchet.tasks t CROSS JOIN LATERAL hatchet._task_outcome(p_tenant, t.id) o
        WHERE t.tenant_id = p_tenant AND t.run_id = v_rid AND t.inserted_at >= v_run.inserted_at
          AND NOT (t.readable_id = ANY (v_direct || v_desc)) AND o.event_type IS NOT NULL;
        IF v_out_ids IS NOT NULL THEN
            PERFORM hatchet._advance(p_tenant, v_out_ids, array_fill(v_rid, ARRAY[cardinality(v_out_ids)]), v_out_res);
        END IF;
        FOR v_task IN
            SELECT t.id FROM hatchet.tasks t
            WHERE t.tenant_id = p_tenant AND t.run_id = v_rid AND t.inserted_at >= v_run.inserted_at
              AND t.readable_id = ANY (v_direct)
            ORDER BY t.id
        LOOP
            task_id := v_task.id;
            run_id := v_rid;
            retry_count := hatchet._replay_attempt(p_tenant, v_task.id);
            RETURN NEXT;
        END LOOP;
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION hatchet.run_status(run_id uuid, tenant_id uuid DEFAULT NULL) RETURNS text
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(run_status.tenant_id);
    p_run    uuid := run_status.run_id;
    v        record;
    v_pending boolean;
BEGIN
    IF p_run IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['run_id']);
    END IF;
    SELECT count(*) AS n,
           count(*) FILTER (WHERE s.state = 'QUEUED') AS queued,
           count(*) FILTER (WHERE s.state = 'FAILED') AS failed,
           count(*) FILTER (WHERE s.state = 'CANCELLED') AS cancelled
    INTO v
    FROM hatchet.tasks t CROSS JOIN LATERAL hatchet._task_state(p_tenant, t.id) s
    WHERE t.tenant_id = p_tenant AND t.run_id = p_run AND t.inserted_at >= hatchet.uuid_time(p_run);
    v_pending := EXISTS (SELECT 1 FROM hatchet.matches x WHERE x.tenant_id = p_tenant AND x.run_id = p_run);
    IF v.n = 0 AND NOT v_pending AND hatchet._run_row(p_tenant, p_run) IS NULL THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['run', p_run::text]);
    END IF;
    IF v_pending OR v.queued > 0 OR EXISTS (
        SELECT 1 FROM hatchet.tasks t CROSS JOIN LATERAL hatchet._task_state(p_tenant, t.id) s
        WHERE t.tenant_id = p_tenant AND t.run_id = p_run AND t.inserted_at >= hatchet.uuid_time(p_run)
          AND s.state = 'RUNNING') THEN
        RETURN CASE WHEN v.n > v.queued THEN 'RUNNING' ELSE 'QUEUED' END;
    END IF;
    RETURN CASE WHEN v.failed > 0 THEN 'FAILED' WHEN v.cancelled > 0 THEN 'CANCELLED' ELSE 'COMPLETED' END;
END
$$;

CREATE OR REPLACE FUNCTION hatchet.run_tasks(run_id uuid, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (task_id uuid, readable_id text, status text, retry_count integer, output jsonb, error text,
               queue text, created_at timestamptz)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(run_tasks.tenant_id);
    p_run    uuid := run_tasks.run_id;
BEGIN
    IF p_run IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['run_id']);
    END IF;
    PERFORM hatchet.run_status(p_run, p_tenant);  -- raises for an unknown run
    RETURN QUERY
    SELECT t.id, t.readable_id,
           CASE WHEN s.state NOT IN ('QUEUED', 'RUNNING')
                     AND EXISTS (SELECT 1 FROM hatchet.matches x  -- re-armed by a replay: waits for its parents
                                 WHERE x.tenant_id = p_tenant AND x.run_id = p_run AND x.task_id = t.id) THEN 'PENDING'
                WHEN o.event_type = 'SKIPPED' AND s.state = 'COMPLETED' THEN 'SKIPPED' ELSE s.state END,
           coalesce(s.current, o.retry_count, 0),
           CASE WHEN s.state = 'COMPLETED' THEN hatchet._task_output(p_tenant, t.id) END,
           CASE WHEN s.state IN ('FAILED', 'CANCELLED') THEN o.reason END,
           t.queue, t.inserted_at
    FROM hatchet.tasks t
    CROSS JOIN LATERAL hatchet._task_state(p_tenant, t.id) s
    LEFT JOIN LATERAL hatchet._task_outcome(p_tenant, t.id) o ON true
    WHERE t.tenant_id = p_tenant AND t.run_id = p_run AND t.inserted_at >= hatchet.uuid_time(p_run)
    UNION ALL
    SELECT CASE WHEN x.task_id = x.run_id THEN x.task_id END, d.readable_id, 'PENDING', 0, NULL::jsonb, NULL::text,
           d.action, x.created_at
    FROM hatchet.matches x
    JOIN hatchet.task_definitions d ON d.tenant_id = x.tenant_id AND d.id = x.task_definition_id
    WHERE x.tenant_id = p_tenant AND x.run_id = p_run
      AND NOT EXISTS (SELECT 1 FROM hatchet.tasks t
                      WHERE t.tenant_id = p_tenant AND t.inserted_at = hatchet.uuid_time(x.task_id) AND t.id = x.task_id);
END
$$;

CREATE OR REPLACE FUNCTION hatchet.run_events(run_id uuid, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (readable_id text, task_id uuid, event_type text, created_at timestamptz, retry_count integer,
               reason text, worker text)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(run_events.tenant_id);
    p_run    uuid := run_events.run_id;
BEGIN
    PERFORM hatchet.run_status(p_run, p_tenant);  -- raises for an unknown run
    RETURN QUERY
    SELECT t.readable_id, t.id, e.event_type, e.created_at, e.retry_count, e.reason, e.worker
    FROM hatchet.tasks t
    CROSS JOIN LATERAL hatchet.task_events(t.id, p_tenant) e
    WHERE t.tenant_id = p_tenant AND t.run_id = p_run AND t.inserted_at >= hatchet.uuid_time(p_run)
    ORDER BY e.created_at, t.readable_id;
END
$$;

CREATE OR REPLACE FUNCTION hatchet.run(run_id uuid, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (id uuid, status text, input jsonb, additional_metadata jsonb, created_at timestamptz,
               workflow_name text, workflow_id uuid, workflow_version_id uuid, parent_task_id uuid,
               triggered_by text, children bigint)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(run.tenant_id);
    v_run    hatchet.runs;
BEGIN
    IF run.run_id IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['run_id']);
    END IF;
    v_run := hatchet._run_row(p_tenant, run.run_id);
    IF v_run.id IS NOT NULL THEN
        RETURN QUERY SELECT * FROM hatchet._run_view(p_tenant, v_run);
        RETURN;
    END IF;
    RETURN QUERY
    SELECT t.id, hatchet.task_status(t.id, p_tenant), t.input, t.additional_metadata, t.inserted_at,
           NULL::text, NULL::uuid, NULL::uuid, NULL::uuid, 'manual'::text, 0::bigint
    FROM hatchet.tasks t
    WHERE t.tenant_id = p_tenant AND t.inserted_at = hatchet.uuid_time(run.run_id) AND t.id = run.run_id
      AND t.run_id = t.id;
END
$$;

CREATE OR REPLACE FUNCTION hatchet.list_runs(
    since          timestamptz DEFAULT NULL,
    until          timestamptz DEFAULT NULL,
    workflow_ids   uuid[]      DEFAULT NULL,
    metadata       jsonb       DEFAULT NULL,
    parent_task    uuid        DEFAULT NULL,
    statuses       text[]      DEFAULT NULL,
    worker_id      uuid        DEFAULT NULL,
    event_id       uuid        DEFAULT NULL,
    "limit"        integer     DEFAULT 50,
    "offset"       integer     DEFAULT 0,
    tenant_id      uuid        DEFAULT NULL
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
    p_tenant uuid := hatchet._tenant(list_runs.tenant_id);
    v_bad    text;
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
    RETURN QUERY
    SELECT v.*, count(*) OVER ()
    FROM hatchet.runs r
    JOIN hatchet.workflow_versions wv ON wv.tenant_id = r.tenant_id AND wv.id = r.workflow_version_id
    JOIN hatchet.workflows w ON w.tenant_id = wv.tenant_id AND w.id = wv.workflow_id
    CROSS JOIN LATERAL hatchet._run_view(p_tenant, r) v
    WHERE r.tenant_id = p_tenant
      AND r.inserted_at >= coalesce(list_runs.since, '-infinity') AND r.inserted_at <= coalesce(list_runs.until, 'infinity')
      AND (list_runs.workflow_ids IS NULL OR w.external_id = ANY (list_runs.workflow_ids))
      AND (list_runs.metadata IS NULL OR r.additional_metadata @> list_runs.metadata)
      AND (list_runs.parent_task IS NULL OR r.parent_task_id = list_runs.parent_task)
      AND (list_runs.event_id IS NULL OR r.additional_metadata ->> 'hatchet__event_id' = list_runs.event_id::text)
      AND (list_runs.statuses IS NULL OR v.status = ANY (list_runs.statuses))
      AND (list_runs.worker_id IS NULL OR EXISTS (
              SELECT 1 FROM hatchet.tasks t CROSS JOIN LATERAL hatchet.task_events(t.id, p_tenant) e
              WHERE t.tenant_id = r.tenant_id AND t.run_id = r.id AND t.inserted_at >= r.inserted_at
                AND e.event_type = 'ASSIGNED' AND e.worker = list_runs.worker_id::text))
    ORDER BY r.inserted_at DESC, r.id DESC
    LIMIT list_runs."limit" OFFSET list_runs."offset";
END
$$;

CREATE OR REPLACE FUNCTION hatchet.run_children(run_id uuid, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (task_id uuid, children bigint)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(run_children.tenant_id);
BEGIN
    IF run_children.run_id IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['run_id']);
    END IF;
    RETURN QUERY
    SELECT c.parent_task_id, count(*)
    FROM hatchet.runs c
    WHERE c.tenant_id = p_tenant AND c.parent_task_id IN
          (SELECT t.id FROM hatchet.tasks t WHERE t.tenant_id = p_tenant AND t.run_id = run_children.run_id
             AND t.inserted_at >= hatchet.uuid_time(run_children.run_id))
    GROUP BY c.parent_task_id
    ORDER BY c.parent_task_id;
END
$$;

CREATE OR REPLACE FUNCTION hatchet.finished_runs(run_ids uuid[], tenant_id uuid DEFAULT NULL)
RETURNS TABLE (run_id uuid, run_status text, task_id uuid, readable_id text, status text, retry_count integer,
               output jsonb, error text, queue text, created_at timestamptz)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(finished_runs.tenant_id);
    v_run    uuid;
    v_status text;
BEGIN
    IF finished_runs.run_ids IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['run_ids']);
    END IF;
    IF cardinality(finished_runs.run_ids) > 10000 THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format('at most 10000 run ids at once, not %s',
                                                                     cardinality(finished_runs.run_ids))]);
    END IF;
    FOR v_run IN SELECT DISTINCT r FROM unnest(finished_runs.run_ids) r WHERE r IS NOT NULL ORDER BY 1 LOOP
        CONTINUE WHEN hatchet._run_row(p_tenant, v_run) IS NULL
                  AND NOT EXISTS (SELECT 1 FROM hatchet.tasks t
                                  WHERE t.tenant_id = p_tenant AND t.inserted_at = hatchet.uuid_time(v_run)
                                    AND t.id = v_run);
        v_status := hatchet.run_status(v_run, p_tenant);
        CONTINUE WHEN v_status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED');
        RETURN QUERY
        SELECT v_run, v_status, t.task_id, t.readable_id, t.status, t.retry_count, t.output, t.error, t.queue,
               t.created_at
        FROM hatchet.run_tasks(v_run, p_tenant) t
        WHERE t.task_id IS NOT NULL
        ORDER BY t.created_at, t.task_id;
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION hatchet.find_runs_by_metadata(tenant_id uuid, key text, value text, since timestamptz)
RETURNS TABLE (run_id uuid, created_at timestamptz)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.id, r.inserted_at FROM hatchet.runs r
    WHERE r.tenant_id = hatchet._tenant(find_runs_by_metadata.tenant_id) AND r.inserted_at >= find_runs_by_metadata.since
      AND r.additional_metadata ->> find_runs_by_metadata.key = find_runs_by_metadata.value
    ORDER BY r.inserted_at, r.id
$$;

-- sql/events.sql
CREATE OR REPLACE FUNCTION hatchet.push_event(
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

CREATE OR REPLACE FUNCTION hatchet.push_events(events jsonb, tenant_id uuid DEFAULT NULL) RETURNS uuid[]
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

CREATE OR REPLACE FUNCTION hatchet.list_events(
    keys      text[]      DEFAULT NULL,
    since     timestamptz DEFAULT NULL,
    until     timestamptz DEFAULT NULL,
    "limit"   integer     DEFAULT 50,
    "offset"  integer     DEFAULT 0,
    tenant_id uuid        DEFAULT NULL
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
BEGIN
    PERFORM hatchet._check_page(list_events."limit", list_events."offset");
    RETURN QUERY
    SELECT e.id, e.key, e.payload, e.additional_metadata, e.scope, e.inserted_at,
           coalesce((SELECT jsonb_agg(jsonb_build_object('id', r.id, 'status', hatchet.run_status(r.id, p_tenant))
                                      ORDER BY r.id)
                     FROM hatchet.runs r
                     WHERE r.tenant_id = e.tenant_id AND r.inserted_at >= e.inserted_at
                       AND r.additional_metadata ->> 'hatchet__event_id' = e.id::text), '[]'),
           count(*) OVER ()
    FROM hatchet.events e
    WHERE e.tenant_id = p_tenant AND (list_events.keys IS NULL OR e.key = ANY (list_events.keys))
      AND e.inserted_at >= coalesce(list_events.since, '-infinity')
      AND e.inserted_at <= coalesce(list_events.until, 'infinity')
    ORDER BY e.inserted_at DESC, e.id DESC
    LIMIT list_events."limit" OFFSET list_events."offset";
END
$$;

CREATE OR REPLACE FUNCTION hatchet.create_filter(
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

CREATE OR REPLACE FUNCTION hatchet.delete_filter(filter_id uuid, tenant_id uuid DEFAULT NULL) RETURNS boolean
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

CREATE OR REPLACE FUNCTION hatchet.list_filters(
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

CREATE OR REPLACE FUNCTION hatchet.create_workflow_filter(
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

CREATE OR REPLACE FUNCTION hatchet.update_filter(
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

-- sql/webhooks.sql
CREATE OR REPLACE FUNCTION hatchet.create_webhook(
    name                 text,
    source_name          text,
    event_key_expression text,
    auth_type            text,
    auth                 jsonb,
    scope_expression     text    DEFAULT NULL,
    static_payload       jsonb   DEFAULT NULL,
    return_event         boolean DEFAULT true,
    tenant_id            uuid    DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(create_webhook.tenant_id);
    v_id     uuid := hatchet.gen_id();
BEGIN
    IF coalesce(create_webhook.name, '') = '' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['a webhook needs a name']);
    END IF;
    IF NOT coalesce(create_webhook.source_name IN ('GENERIC', 'GITHUB', 'STRIPE', 'SLACK', 'LINEAR', 'SVIX'), false) THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('unknown webhook source %s', coalesce(create_webhook.source_name, 'null'))]);
    END IF;
    PERFORM hatchet._check_webhook_event(coalesce(create_webhook.event_key_expression, ''),
                                         create_webhook.scope_expression, create_webhook.static_payload);
    PERFORM hatchet._check_webhook_auth(create_webhook.auth_type, create_webhook.auth);
    INSERT INTO hatchet.webhooks (tenant_id, name, id, source_name, event_key_expression, scope_expression,
                                  static_payload, auth_type, auth, return_event)
    VALUES (p_tenant, create_webhook.name, v_id, create_webhook.source_name, create_webhook.event_key_expression,
            nullif(create_webhook.scope_expression, ''), create_webhook.static_payload, create_webhook.auth_type,
            create_webhook.auth, coalesce(create_webhook.return_event, true))
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        PERFORM hatchet.raise_error('duplicate_object', ARRAY['webhook', create_webhook.name]);
    END IF;
    RETURN v_id;
END
$$;

CREATE OR REPLACE FUNCTION hatchet.update_webhook(
    name                 text,
    event_key_expression text    DEFAULT NULL,
    scope_expression     text    DEFAULT NULL,
    static_payload       jsonb   DEFAULT NULL,
    return_event         boolean DEFAULT NULL,
    tenant_id            uuid    DEFAULT NULL
) RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM hatchet._check_webhook_event(update_webhook.event_key_expression, update_webhook.scope_expression,
                                         update_webhook.static_payload);
    UPDATE hatchet.webhooks w
    SET event_key_expression = coalesce(update_webhook.event_key_expression, w.event_key_expression),
        scope_expression     = CASE WHEN update_webhook.scope_expression IS NULL THEN w.scope_expression
                                    ELSE nullif(update_webhook.scope_expression, '') END,
        static_payload       = coalesce(update_webhook.static_payload, w.static_payload),
        return_event         = coalesce(update_webhook.return_event, w.return_event),
        updated_at           = now()
    WHERE w.tenant_id = hatchet._tenant(update_webhook.tenant_id) AND w.name = update_webhook.name;
    RETURN FOUND;
END
$$;

CREATE OR REPLACE FUNCTION hatchet.delete_webhook(name text, tenant_id uuid DEFAULT NULL) RETURNS boolean
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH gone AS (
        DELETE FROM hatchet.webhooks w
        WHERE w.tenant_id = hatchet._tenant(delete_webhook.tenant_id) AND w.name = delete_webhook.name
        RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM gone)
$$;

CREATE OR REPLACE FUNCTION hatchet.find_webhooks(
    tenant_id    uuid,
    names        text[]  DEFAULT NULL,
    source_names text[]  DEFAULT NULL,
    max_rows     integer DEFAULT 50,
    skip_rows    integer DEFAULT 0
) RETURNS TABLE (webhook_id uuid, name text, source_name text, event_key_expression text, scope_expression text,
                 static_payload jsonb, auth_type text, auth jsonb, return_event boolean, created_at timestamptz,
                 updated_at timestamptz, total bigint)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT w.id, w.name, w.source_name, w.event_key_expression, w.scope_expression, w.static_payload, w.auth_type,
           w.auth, w.return_event, w.created_at, w.updated_at, count(*) OVER ()
    FROM hatchet.webhooks w
    WHERE w.tenant_id = hatchet._tenant(find_webhooks.tenant_id)
      AND (find_webhooks.names IS NULL OR w.name = ANY (find_webhooks.names))
      AND (find_webhooks.source_names IS NULL OR w.source_name = ANY (find_webhooks.source_names))
    ORDER BY w.created_at, w.name
    LIMIT greatest(coalesce(find_webhooks.max_rows, 50), 0) OFFSET greatest(coalesce(find_webhooks.skip_rows, 0), 0)
$$;

CREATE OR REPLACE FUNCTION hatchet.receive_webhook(
    name      text,
    body      jsonb,
    headers   jsonb DEFAULT '{}',
    tenant_id uuid  DEFAULT NULL,
    OUT event_id uuid,
    OUT event_key text,
    OUT event_scope text,
    OUT event_payload jsonb
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(receive_webhook.tenant_id);
    v_hook   record;
    v_vars   jsonb;
    v_value  jsonb;
BEGIN
    SELECT * INTO v_hook FROM hatchet.webhooks w WHERE w.tenant_id = p_tenant AND w.name = receive_webhook.name;
    IF NOT FOUND THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['webhook', receive_webhook.name]);
    END IF;
    event_payload := CASE WHEN jsonb_typeof(receive_webhook.body) = 'object' THEN receive_webhook.body
                          ELSE jsonb_build_object('body', receive_webhook.body) END
                     || coalesce(v_hook.static_payload, '{}');
    v_vars := jsonb_build_object('input', event_payload, 'headers', coalesce(receive_webhook.headers, '{}'));
    v_value := hatchet.cel_eval(v_hook.event_key_expression, v_vars);
    IF jsonb_typeof(v_value) IS DISTINCT FROM 'string' OR v_value #>> '{}' = '' THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('the event key expression of webhook "%s" gave %s, not a non-empty string',
                         v_hook.name, coalesce(v_value::text, 'null'))]);
    END IF;
    event_key := v_value #>> '{}';
    IF v_hook.scope_expression IS NOT NULL THEN
        v_value := hatchet.cel_eval(v_hook.scope_expression, v_vars);
        IF jsonb_typeof(v_value) IS DISTINCT FROM 'string' THEN
            PERFORM hatchet.raise_error('invalid_argument',
                ARRAY[format('the scope expression of webhook "%s" gave %s, not a string',
                             v_hook.name, coalesce(v_value::text, 'null'))]);
        END IF;
        event_scope := nullif(v_value #>> '{}', '');
    END IF;
    event_id := hatchet.push_event(event_key, event_payload, jsonb_build_object('hatchet__webhook_name', v_hook.name),
                                   event_scope, p_tenant);
END
$$;

-- sql/crons.sql
CREATE OR REPLACE FUNCTION hatchet.create_cron(
    workflow            text,
    name                text,
    expression          text,
    input               jsonb   DEFAULT '{}',
    additional_metadata jsonb   DEFAULT '{}',
    priority            integer DEFAULT NULL,
    tenant_id           uuid    DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(create_cron.tenant_id);
    v_wf     record;
    v_id     uuid := hatchet.gen_id();
    v_next   timestamptz;
BEGIN
    v_wf := hatchet._latest_version(p_tenant, create_cron.workflow);
    IF create_cron.name IS NULL OR create_cron.expression IS NULL THEN
        PERFORM hatchet.raise_error('null_argument',
            ARRAY[CASE WHEN create_cron.name IS NULL THEN 'name' ELSE 'expression' END]);
    END IF;
    IF create_cron.name = '' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['cron name must not be empty']);
    END IF;
    PERFORM hatchet._check_run_options(create_cron.input, create_cron.additional_metadata, create_cron.priority);
    v_next := hatchet.cron_next(create_cron.expression, clock_timestamp());  -- raises for a bad expression
    IF v_next IS NULL THEN
        PERFORM hatchet.raise_error('invalid_cron', ARRAY[create_cron.expression, 'The expression never fires.']);
    END IF;
    INSERT INTO hatchet.crons (tenant_id, id, workflow_id, name, expression, input, additional_metadata, priority,
                               method, next_tick_at)
    VALUES (p_tenant, v_id, v_wf.workflow_id, create_cron.name, create_cron.expression, create_cron.input,
            create_cron.additional_metadata, create_cron.priority, 'API', v_next)
    ON CONFLICT ON CONSTRAINT crons_name_key DO NOTHING;
    IF NOT FOUND THEN
        PERFORM hatchet.raise_error('duplicate_object',
            ARRAY['cron', format('%s" of workflow "%s', create_cron.name, create_cron.workflow)]);
    END IF;
    RETURN v_id;
END
$$;

CREATE OR REPLACE FUNCTION hatchet.delete_cron(cron_id uuid, tenant_id uuid DEFAULT NULL) RETURNS boolean
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH gone AS (
        DELETE FROM hatchet.crons c
        WHERE c.tenant_id = hatchet._tenant(delete_cron.tenant_id) AND c.id = delete_cron.cron_id
        RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM gone)
$$;

CREATE OR REPLACE FUNCTION hatchet.list_crons(workflow text DEFAULT NULL, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (cron_id uuid, workflow text, name text, expression text, input jsonb, additional_metadata jsonb,
               priority integer, method text, enabled boolean, next_tick_at timestamptz, last_tick_at timestamptz,
               created_at timestamptz)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.id, w.name, c.name, c.expression, c.input, c.additional_metadata, c.priority, c.method, c.enabled,
           c.next_tick_at, c.last_tick_at, c.created_at
    FROM hatchet.crons c
    JOIN hatchet.workflows w ON w.tenant_id = c.tenant_id AND w.id = c.workflow_id
    WHERE c.tenant_id = hatchet._tenant(list_crons.tenant_id)
      AND (list_crons.workflow IS NULL OR w.name = list_crons.workflow)
    ORDER BY w.name, c.name
$$;

CREATE OR REPLACE FUNCTION hatchet.schedule(
    workflow            text,
    run_at              timestamptz,
    input               jsonb   DEFAULT '{}',
    additional_metadata jsonb   DEFAULT '{}',
    priority            integer DEFAULT NULL,
    tenant_id           uuid    DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(schedule.tenant_id);
    v_wf     record;
    v_id     uuid := hatchet.gen_id();
BEGIN
    v_wf := hatchet._latest_version(p_tenant, schedule.workflow);
    IF schedule.run_at IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['run_at']);
    END IF;
    IF NOT isfinite(schedule.run_at) THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['run_at must be a finite time']);
    END IF;
    PERFORM hatchet._check_run_options(schedule.input, schedule.additional_metadata, schedule.priority);
    INSERT INTO hatchet.scheduled_runs (tenant_id, id, workflow_id, run_at, input, additional_metadata, priority)
    VALUES (p_tenant, v_id, v_wf.workflow_id, schedule.run_at, schedule.input, schedule.additional_metadata,
            schedule.priority);
    RETURN v_id;
END
$$;

CREATE OR REPLACE FUNCTION hatchet.delete_schedule(schedule_id uuid, tenant_id uuid DEFAULT NULL) RETURNS boolean
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH gone AS (
        DELETE FROM hatchet.scheduled_runs s
        WHERE s.tenant_id = hatchet._tenant(delete_schedule.tenant_id)
          AND s.id = delete_schedule.schedule_id
        RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM gone)
$$;

CREATE OR REPLACE FUNCTION hatchet.list_schedules(workflow text DEFAULT NULL, tenant_id uuid DEFAULT NULL)
RETURNS TABLE (schedule_id uuid, workflow text, run_at timestamptz, input jsonb, additional_metadata jsonb,
               priority integer, fired_run_id uuid, error text, created_at timestamptz)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.id, w.name, s.run_at, s.input, s.additional_metadata, s.priority, s.fired_run_id, s.error, s.created_at
    FROM hatchet.scheduled_runs s
    JOIN hatchet.workflows w ON w.tenant_id = s.tenant_id AND w.id = s.workflow_id
    WHERE s.tenant_id = hatchet._tenant(list_schedules.tenant_id)
      AND (list_schedules.workflow IS NULL OR w.name = list_schedules.workflow)
    ORDER BY s.run_at, s.id
$$;

-- sql/streams.sql
CREATE OR REPLACE FUNCTION hatchet.put_stream_chunk(
    task_id     uuid,
    message     bytea,
    event_index bigint      DEFAULT NULL,
    tenant_id   uuid        DEFAULT NULL,
    created_at  timestamptz DEFAULT NULL
) RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(put_stream_chunk.tenant_id);
    p_task   uuid := put_stream_chunk.task_id;
    v_run    uuid;
    v_retry  integer;
BEGIN
    IF p_task IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['task_id']);
    END IF;
    IF put_stream_chunk.message IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['message']);
    END IF;
    PERFORM hatchet._check_size('stream chunk', octet_length(put_stream_chunk.message), 'hatchet.max_stream_chunk_bytes');
    IF put_stream_chunk.event_index < 0 THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('event_index must not be negative, not %s', put_stream_chunk.event_index)]);
    END IF;
    SELECT t.run_id INTO v_run FROM hatchet.tasks t
    WHERE t.tenant_id = p_tenant AND t.inserted_at = hatchet.uuid_time(p_task) AND t.id = p_task;
    IF v_run IS NULL THEN
        PERFORM hatchet.raise_error('unknown_task', ARRAY[p_task::text]);
    END IF;
    PERFORM hatchet._check_count('stream chunks', p_task, 'hatchet.max_stream_chunks_per_task',
        (SELECT count(*) FROM (SELECT 1 FROM hatchet.stream_chunks c
                               WHERE c.tenant_id = p_tenant AND c.run_id = v_run AND c.task_id = p_task
                               LIMIT current_setting('hatchet.max_stream_chunks_per_task')::integer) x));
    v_retry := coalesce((SELECT r.retry_count FROM hatchet.running r WHERE r.tenant_id = p_tenant AND r.task_id = p_task),
                        (SELECT max(e.retry_count) FROM hatchet.task_events e
                         WHERE e.tenant_id = p_tenant AND e.task_inserted_at = hatchet.uuid_time(p_task)
                           AND e.task_id = p_task),
                        0);
    INSERT INTO hatchet.stream_chunks (tenant_id, run_id, task_id, retry_count, event_index, message, created_at)
    VALUES (p_tenant, v_run, p_task, v_retry, put_stream_chunk.event_index, put_stream_chunk.message,
            coalesce(put_stream_chunk.created_at, clock_timestamp()))
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;  -- the same chunk again (a client retry): stored once
    END IF;
    PERFORM pg_notify('hatchet_stream', v_run::text);
    RETURN true;
END
$$;

CREATE OR REPLACE FUNCTION hatchet.read_stream_chunks(
    run_id    uuid,
    after_seq bigint   DEFAULT 0,
    tenant_id uuid     DEFAULT NULL,
    settle    interval DEFAULT '5 seconds'
) RETURNS TABLE (seq bigint, task_id uuid, retry_count integer, event_index bigint, message bytea,
                 created_at timestamptz, settled boolean)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.seq, c.task_id, c.retry_count, c.event_index, c.message, c.created_at,
           c.created_at < pg_catalog.clock_timestamp() - read_stream_chunks.settle
    FROM hatchet.stream_chunks c
    WHERE c.tenant_id = hatchet._tenant(read_stream_chunks.tenant_id)
      AND c.run_id = read_stream_chunks.run_id
      AND c.seq > coalesce(read_stream_chunks.after_seq, 0)
    ORDER BY c.seq
$$;

CREATE OR REPLACE FUNCTION hatchet.run_stream_state(run_id uuid, tenant_id uuid DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(run_stream_state.tenant_id);
    v_status text := hatchet.run_status(run_stream_state.run_id, p_tenant);
BEGIN
    RETURN jsonb_build_object(
        'status', v_status,
        'tasks', coalesce((
            SELECT jsonb_agg(jsonb_build_object('task_id', t.task_id, 'readable_id', t.readable_id,
                                                'status', t.status, 'retry_count', t.retry_count,
                                                'output', t.output, 'error', t.error)
                             ORDER BY t.created_at, t.task_id)
            FROM hatchet.run_tasks(run_stream_state.run_id, p_tenant) t
            WHERE t.task_id IS NOT NULL), '[]'::jsonb));
END
$$;

-- sql/maintenance.sql
CREATE OR REPLACE FUNCTION hatchet.prune_stream_chunks(grace interval DEFAULT '5 minutes', max_age interval DEFAULT '1 day')
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_deleted bigint := 0;
    v_n       bigint;
    v_run     record;
    v_done    boolean;
BEGIN
    DELETE FROM hatchet.stream_chunks c WHERE c.created_at < clock_timestamp() - prune_stream_chunks.max_age;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    FOR v_run IN
        SELECT c.tenant_id, c.run_id FROM hatchet.stream_chunks c
        GROUP BY c.tenant_id, c.run_id
        HAVING max(c.created_at) < clock_timestamp() - prune_stream_chunks.grace
    LOOP
        BEGIN
            v_done := hatchet.run_status(v_run.run_id, v_run.tenant_id) IN ('COMPLETED', 'FAILED', 'CANCELLED');
        EXCEPTION WHEN undefined_object THEN
            v_done := true;  -- the run itself is gone (history retention)
        END;
        IF v_done THEN
            DELETE FROM hatchet.stream_chunks c WHERE c.tenant_id = v_run.tenant_id AND c.run_id = v_run.run_id;
            GET DIAGNOSTICS v_n = ROW_COUNT;
            v_deleted := v_deleted + v_n;
        END IF;
    END LOOP;
    RETURN v_deleted;
END
$$;


-- 4c. sql/security.sql, as it is: the roles table, tenant bindings, the group roles, the binding functions and the
--     privileges (last: its grants cover every function above).
-- Roles and privileges (docs/security.md): the four group roles, the tenants each role is bound to, and who may
-- execute what. pg_hatchet lives in the application's own database, so installing it must give no role more power
-- than it had: PUBLIC may use nothing, the tables are reached only through the API functions, and a role that is
-- not trusted (see below) acts only for the tenants an administrator bound it to.
--
-- The group roles (NOLOGIN; names from the settings hatchet.app_role, hatchet.consumer_role, hatchet.server_role and
-- hatchet.admin_role, read when this script runs; roles are cluster-wide, so an existing role is used as it is):
--   app       enqueue and trigger runs, push events, cancel and replay, read status, results and logs
--   consumer  SQL consumers: dequeue, complete, fail, refresh_timeout, put_log, put_stream_chunk
--   server    hatchet-server: every API function except tenant administration, the token tables, webhook secrets
--   admin     tenants and bindings, definitions, every API function except those that return secrets
-- Trusted callers (a superuser, or a role with the privileges of the server or admin role) act for any tenant, as
-- before; app and consumer members act for their bound tenants only (hatchet._tenant, pg_hatchet/src/security.rs).
-- The API functions are SECURITY DEFINER (they run as the extension's owner) with the pinned search_path; the
-- internal `_` helpers are SECURITY INVOKER and executable by nobody but the owner, who is the current user inside
-- an API function. Maintenance (run_maintenance, maintain_partitions) stays with superusers and the background worker.
--
-- This file runs last (finalize in lib.rs) so that the privileges cover every function defined before it.
--
-- Public: grant_tenant, revoke_tenant, list_tenant_grants, create_tenant, my_tenants. Internal: _security_changed,
-- and in Rust (security.rs) _caller, _tenant, _invalidate_security.
-- Calls: tenants.sql.

-- ---------------------------------------------------------------------------------------------------------------------
-- Tables (kept here rather than in schema.sql: they exist for the privilege model and are created with it)
-- ---------------------------------------------------------------------------------------------------------------------

CREATE TABLE hatchet.roles (
    kind    text    NOT NULL,
    role_id regrole NOT NULL,
    CONSTRAINT roles_pkey PRIMARY KEY (kind),
    CONSTRAINT role_kind_known CHECK (kind IN ('app', 'consumer', 'server', 'admin'))
);
COMMENT ON TABLE hatchet.roles IS
    'the group role of each kind (app, consumer, server, admin), chosen when the extension was created';

CREATE TABLE hatchet.tenant_grants (
    tenant_id  uuid        NOT NULL REFERENCES hatchet.tenants ON DELETE CASCADE,
    -- a role, or a group role whose members it binds too (membership with the group's privileges)
    role_id    regrole     NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT tenant_grants_pkey PRIMARY KEY (tenant_id, role_id)
);
COMMENT ON TABLE hatchet.tenant_grants IS
    'which tenants a role that is not trusted may act for (hatchet.grant_tenant, hatchet.revoke_tenant)';
-- Bindings are configuration: pg_dump keeps them.
SELECT pg_catalog.pg_extension_config_dump('hatchet.tenant_grants', '');

-- Every backend caches who is trusted and which tenants a role is bound to (security.rs); a change to either table
-- tells them all to look again.
CREATE FUNCTION hatchet._security_changed() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM hatchet._invalidate_security(TG_RELID);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION hatchet._security_changed() IS
    'trigger: the roles or tenant bindings changed; every backend drops its cached answers';
CREATE TRIGGER roles_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON hatchet.roles
    FOR EACH STATEMENT EXECUTE FUNCTION hatchet._security_changed();
CREATE TRIGGER tenant_grants_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON hatchet.tenant_grants
    FOR EACH STATEMENT EXECUTE FUNCTION hatchet._security_changed();

-- ---------------------------------------------------------------------------------------------------------------------
-- The group roles: created when absent (another database of the cluster may have created them already)
-- ---------------------------------------------------------------------------------------------------------------------

DO $$
DECLARE
    v_kind text;
    v_name text;
BEGIN
    FOREACH v_kind IN ARRAY ARRAY['app', 'consumer', 'server', 'admin'] LOOP
        v_name := pg_catalog.current_setting('hatchet.' || v_kind || '_role');
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = v_name) THEN
            BEGIN
                EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', v_name);
                EXECUTE pg_catalog.format('COMMENT ON ROLE %I IS %L', v_name,
                                          'pg_hatchet ' || v_kind || ' group role (docs/security.md)');
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- a CREATE EXTENSION in another database created it first
            END;
        END IF;
        INSERT INTO hatchet.roles (kind, role_id) VALUES (v_kind, pg_catalog.quote_ident(v_name)::regrole);
    END LOOP;
END
$$;

-- ---------------------------------------------------------------------------------------------------------------------
-- Tenants and bindings
-- ---------------------------------------------------------------------------------------------------------------------

CREATE FUNCTION hatchet.create_tenant(name text, tenant_id uuid DEFAULT NULL) RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id uuid := coalesce(create_tenant.tenant_id, hatchet.gen_id());
BEGIN
    IF create_tenant.name IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['name']);
    END IF;
    IF create_tenant.name = '' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['tenant name must not be empty']);
    END IF;
    INSERT INTO hatchet.tenants (tenant_id, name) VALUES (v_id, create_tenant.name)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        PERFORM hatchet.raise_error('duplicate_object', ARRAY['tenant',
            CASE WHEN EXISTS (SELECT 1 FROM hatchet.tenants t WHERE t.tenant_id = v_id) THEN v_id::text
                 ELSE create_tenant.name END]);
    END IF;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION hatchet.create_tenant(text, uuid) IS 'create a tenant (name unique) and return its id';

CREATE FUNCTION hatchet.grant_tenant(role regrole, tenant uuid) RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF grant_tenant.role IS NULL OR grant_tenant.tenant IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['role and tenant']);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM hatchet.tenants t WHERE t.tenant_id = grant_tenant.tenant) THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['tenant', grant_tenant.tenant::text]);
    END IF;
    INSERT INTO hatchet.tenant_grants (tenant_id, role_id) VALUES (grant_tenant.tenant, grant_tenant.role)
    ON CONFLICT ON CONSTRAINT tenant_grants_pkey DO NOTHING;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION hatchet.grant_tenant(regrole, uuid) IS
    'bind a role (and the roles that have its privileges) to a tenant; false if it already was';

CREATE FUNCTION hatchet.revoke_tenant(role regrole, tenant uuid) RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF revoke_tenant.role IS NULL OR revoke_tenant.tenant IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['role and tenant']);
    END IF;
    DELETE FROM hatchet.tenant_grants g
    WHERE g.tenant_id = revoke_tenant.tenant AND g.role_id = revoke_tenant.role;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION hatchet.revoke_tenant(regrole, uuid) IS
    'remove a role''s binding to a tenant; false if there was none';

CREATE FUNCTION hatchet.list_tenant_grants(role regrole DEFAULT NULL)
RETURNS TABLE (role_id regrole, tenant_id uuid, tenant_name text, granted_at timestamptz)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT g.role_id, g.tenant_id, t.name, g.granted_at
    FROM hatchet.tenant_grants g JOIN hatchet.tenants t ON t.tenant_id = g.tenant_id
    WHERE list_tenant_grants.role IS NULL OR g.role_id = list_tenant_grants.role
    ORDER BY g.role_id::text, t.name
$$;
COMMENT ON FUNCTION hatchet.list_tenant_grants(regrole) IS 'the tenant bindings, of one role or of all';

CREATE FUNCTION hatchet.my_tenants() RETURNS TABLE (tenant_id uuid, name text)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.tenant_id, t.name FROM hatchet.tenants t
    WHERE EXISTS (SELECT 1 FROM hatchet.tenant_grants g JOIN pg_catalog.pg_roles r ON r.oid = g.role_id
                  WHERE g.tenant_id = t.tenant_id AND pg_catalog.pg_has_role(hatchet._caller(), r.oid, 'USAGE'))
    ORDER BY t.name
$$;
COMMENT ON FUNCTION hatchet.my_tenants() IS 'the tenants the calling role is bound to';

-- ---------------------------------------------------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------------------------------------------------

DO $$
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
