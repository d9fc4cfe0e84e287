-- Crons, one-off schedules and sleeps: the time-driven triggers the background worker fires (Hatchet's ticker).
--
-- Everything is a row: a cron is hatchet.crons with the next tick to fire, a schedule is hatchet.scheduled_runs, a
-- sleep is a pending match with wake_at. The worker's maintenance pass (hatchet.run_maintenance) calls
-- hatchet._tenant_time_triggers for each tenant, which fires what is due, and hatchet._time_triggers_due, which says
-- when the next thing is due, so the worker sleeps
-- exactly until then (at most hatchet.poll_interval_ms).
--
-- Exactly once: a cron row is locked (FOR UPDATE SKIP LOCKED), its run created and next_tick_at advanced in one
-- transaction, so a tick fires once whatever crashes or restarts, and two passes racing (the worker and a manual call)
-- never both fire it. A schedule is marked fired (fired_run_id) in the transaction that creates its run.
--
-- Downtime policy: after the server was down (or the worker stopped), each cron fires AT MOST ONE catch-up run, for
-- the oldest tick it missed (its hatchet__scheduled_at says when that tick was due), then continues from the first tick
-- after now. Missed ticks are never replayed as a storm. Overdue schedules all fire once, as soon as possible.
--
-- Runs created here carry Hatchet's reserved metadata: crons hatchet__cron_name, hatchet__cron_expression,
-- hatchet__scheduled_at and hatchet__triggered_by = 'cron'; schedules hatchet__scheduled_at and
-- hatchet__triggered_by = 'schedule'. hatchet__scheduled_at is the due time in UTC, ISO 8601 with milliseconds.
--
-- Public: create_cron, delete_cron, list_crons, trigger_cron, schedule, delete_schedule, reschedule, list_schedules.
-- Calls: tenants.sql, options.sql, workflows.sql (_latest_version), runs.sql (_create_run, _satisfy_match).

-- ---------------------------------------------------------------------------------------------------------------------
-- Crons
-- ---------------------------------------------------------------------------------------------------------------------

CREATE FUNCTION hatchet._iso_utc(p_ts timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT to_char(p_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;

CREATE FUNCTION hatchet.create_cron(
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
COMMENT ON FUNCTION hatchet.create_cron(text, text, text, jsonb, jsonb, integer, uuid) IS
    'run a workflow on a cron expression (5 fields, or 6 with seconds first; UTC); returns the cron id';

CREATE FUNCTION hatchet.delete_cron(cron_id uuid, tenant_id uuid DEFAULT NULL) RETURNS boolean
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
COMMENT ON FUNCTION hatchet.delete_cron(uuid, uuid) IS
    'delete a cron (a declared one comes back when its workflow is registered again); false if there was none';

CREATE FUNCTION hatchet.list_crons(workflow text DEFAULT NULL, tenant_id uuid DEFAULT NULL)
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
COMMENT ON FUNCTION hatchet.list_crons(text, uuid) IS 'crons (declared and created through the API), per workflow';

-- Runs a cron's workflow now, once, as a tick would (its input, metadata and priority, the latest version), without
-- moving its schedule (Hatchet's "trigger a cron now"). Returns the run id; an unknown cron is 42704.
CREATE FUNCTION hatchet.trigger_cron(cron_id uuid, tenant_id uuid DEFAULT NULL) RETURNS uuid
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

-- ---------------------------------------------------------------------------------------------------------------------
-- Schedules
-- ---------------------------------------------------------------------------------------------------------------------

CREATE FUNCTION hatchet.schedule(
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
COMMENT ON FUNCTION hatchet.schedule(text, timestamptz, jsonb, jsonb, integer, uuid) IS
    'run a workflow once at run_at (a row, fired by the background worker); returns the schedule id';

CREATE FUNCTION hatchet.delete_schedule(schedule_id uuid, tenant_id uuid DEFAULT NULL) RETURNS boolean
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
COMMENT ON FUNCTION hatchet.delete_schedule(uuid, uuid) IS
    'delete a schedule (if it has not fired, it never will); false if there was none';

-- Moves schedules that have not fired to other times (scheduled.update, scheduled.bulk_update): one row per id given,
-- in order, with a NULL error when it was moved, else why not (no such schedule; it fired already, or failed to fire).
-- At most 500 at once; a time that is NULL or not finite is refused (22023) and nothing moves.
CREATE FUNCTION hatchet.reschedule(schedule_ids uuid[], run_ats timestamptz[], tenant_id uuid DEFAULT NULL)
RETURNS TABLE (schedule_id uuid, error text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant uuid := hatchet._tenant(reschedule.tenant_id);
BEGIN
    IF reschedule.schedule_ids IS NULL OR reschedule.run_ats IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['schedule_ids and run_ats']);
    END IF;
    IF cardinality(reschedule.schedule_ids) <> cardinality(reschedule.run_ats) THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['schedule_ids and run_ats must have the same length']);
    END IF;
    IF cardinality(reschedule.schedule_ids) > 500 THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY[format(
            'at most 500 schedules at once, not %s', cardinality(reschedule.schedule_ids))]);
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(reschedule.schedule_ids, reschedule.run_ats) AS u(id, at)
               WHERE u.id IS NULL OR u.at IS NULL OR NOT isfinite(u.at)) THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['every schedule needs an id and a finite time']);
    END IF;
    RETURN QUERY
    WITH wanted AS (
        SELECT u.id, u.at, u.ord FROM unnest(reschedule.schedule_ids, reschedule.run_ats) WITH ORDINALITY AS u(id, at, ord)
    ),
    moved AS (
        UPDATE hatchet.scheduled_runs s SET run_at = w.at
        FROM wanted w
        WHERE s.tenant_id = p_tenant AND s.id = w.id AND s.fired_run_id IS NULL AND s.error IS NULL
        RETURNING s.id
    )
    SELECT w.id,
           CASE WHEN w.id IN (SELECT m.id FROM moved m) THEN NULL
                WHEN EXISTS (SELECT 1 FROM hatchet.scheduled_runs s WHERE s.tenant_id = p_tenant AND s.id = w.id)
                    THEN 'Scheduled run has already been triggered and cannot be rescheduled.'
                ELSE 'Scheduled workflow not found.' END
    FROM wanted w
    ORDER BY w.ord;
END
$$;
COMMENT ON FUNCTION hatchet.reschedule(uuid[], timestamptz[], uuid) IS
    'move schedules that have not fired to other times; per id, NULL or why it was not moved';

CREATE FUNCTION hatchet.list_schedules(workflow text DEFAULT NULL, tenant_id uuid DEFAULT NULL)
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
COMMENT ON FUNCTION hatchet.list_schedules(text, uuid) IS
    'one-off schedules, pending and fired (fired ones are kept for hatchet.retention_days)';

-- ---------------------------------------------------------------------------------------------------------------------
-- Firing what is due
-- ---------------------------------------------------------------------------------------------------------------------

-- Fires due cron ticks, due schedules and due sleeps of one tenant (at most p_limit of each). Called for each tenant
-- by hatchet.run_maintenance and hatchet._run_time_triggers, in a subtransaction of its own (_maintenance_job).
--
-- A run that cannot be created (its creation raised an error) must not stop the pass or fire again and again: each
-- firing runs in its own subtransaction; a failed cron tick is skipped with a WARNING, a failed schedule keeps the
-- error in scheduled_runs.error, a failed sleep is retried 5 s later with a WARNING. A firing that waited longer than
-- the pass's lock_timeout for a lock (SQLSTATE 55P03, see _maintenance_job) did not fail: it is rolled back and left
-- due, unchanged, for the next pass (a LOG line). So a lock a stalled client holds on what a firing needs delays it
-- by a pass; only a lock held past the cron's next tick makes ticks late enough for the downtime policy above.
CREATE FUNCTION hatchet._tenant_time_triggers(p_tenant uuid, p_now timestamptz, p_limit integer) RETURNS void
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
            -- A tick of a workflow paused with DROP for crons creates nothing (the tick still passes).
            IF NOT hatchet._paused_drops(p_tenant, c.workflow_id, 'cron') THEN
                PERFORM hatchet._create_run(p_tenant, v_version, c.input,
                    hatchet._clean_metadata(c.additional_metadata) || jsonb_build_object(
                        'hatchet__cron_name', c.name, 'hatchet__cron_expression', c.expression,
                        'hatchet__scheduled_at', hatchet._iso_utc(c.next_tick_at), 'hatchet__triggered_by', 'cron'),
                    c.priority, 'cron');
            END IF;
        EXCEPTION
            WHEN lock_not_available THEN
                -- A lock held past the pass's lock_timeout (_maintenance_job): the tick stays due, unfired, and
                -- the next pass fires it.
                RAISE LOG 'pg_hatchet: cron % (%) tick due at % left for the next pass: %', c.name, c.id,
                    hatchet._iso_utc(c.next_tick_at), SQLERRM;
                CONTINUE;
            WHEN OTHERS THEN
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
            IF hatchet._paused_drops(p_tenant, s.workflow_id, 'schedule') THEN
                -- Due while its workflow is paused with DROP for schedules: it fires no run, and says why.
                UPDATE hatchet.scheduled_runs x SET error = 'dropped: the workflow was paused when it was due'
                WHERE x.tenant_id = p_tenant AND x.id = s.id;
                CONTINUE;
            END IF;
            v_run := hatchet._create_run(p_tenant, v_version, s.input,
                hatchet._clean_metadata(s.additional_metadata) || jsonb_build_object(
                    'hatchet__scheduled_at', hatchet._iso_utc(s.run_at), 'hatchet__triggered_by', 'schedule'),
                s.priority, 'schedule');
            UPDATE hatchet.scheduled_runs x SET fired_run_id = v_run WHERE x.tenant_id = p_tenant AND x.id = s.id;
        EXCEPTION
            WHEN lock_not_available THEN
                RAISE LOG 'pg_hatchet: schedule % left for the next pass: %', s.id, SQLERRM;
            WHEN OTHERS THEN
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
        EXCEPTION
            WHEN lock_not_available THEN
                RAISE LOG 'pg_hatchet: sleep of match % left for the next pass: %', m.id, SQLERRM;
            WHEN OTHERS THEN
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

-- When the next cron tick, schedule or sleep of any tenant is due (NULL if none).
CREATE FUNCTION hatchet._time_triggers_due() RETURNS timestamptz
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

