-- pg_hatchet 0.2.0 -> 0.3.0 (applied by ALTER EXTENSION pg_hatchet UPDATE TO '0.3.0').
--
-- What 0.3.0 changes in the installed SQL, by topic (each section says what it changes). Each definition below is the
-- same text as in sql/*.sql, so an updated 0.2.0 and a fresh 0.3.0 have the same catalog (tests/upgrade).

\echo Use "ALTER EXTENSION pg_hatchet UPDATE TO '0.3.0'" to load this file. \quit

-- =====================================================================================================================
-- 1. Hardening: CEL budget, maintenance isolation, quotas (issue 15)
-- =====================================================================================================================


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
SET search_path = pg_catalog, pg_temp
AS $$
    WITH ack AS (
        UPDATE hatchet.running r SET started_at = pg_catalog.clock_timestamp()
        FROM unnest(acknowledge_attempts.task_ids, acknowledge_attempts.retry_counts) AS a(task_id, retry_count)
        WHERE r.tenant_id = coalesce(acknowledge_attempts.tenant_id, hatchet.default_tenant())
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
SET search_path = pg_catalog, pg_temp
AS $$
    DELETE FROM hatchet.reaped_attempts a
    WHERE a.tenant_id = coalesce(take_reaped_attempts.tenant_id, hatchet.default_tenant())
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
    v_now   timestamptz := clock_timestamp();
    v_limit integer := coalesce(current_setting('hatchet.batch_limit', true)::integer, 1000);
    v_next  timestamptz;
    v_tenant uuid;
BEGIN
    FOR v_tenant IN SELECT t.tenant_id FROM hatchet.tenants t LOOP
        PERFORM hatchet._record_pass(v_tenant, v_now);
        PERFORM hatchet._promote_due(v_tenant, NULL, v_now, v_limit);
        PERFORM hatchet._reap_dead_workers(v_tenant, v_now);
        PERFORM hatchet._release_unacknowledged(v_tenant, v_now, v_limit);
        PERFORM hatchet._reap_timeouts(v_tenant, v_now, v_limit);
        PERFORM hatchet._expire_queued(v_tenant, v_now, v_limit);
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
    -- Crons, schedules and sleeps (sql/crons.sql, sql/runs.sql): fired here, and their next due time counts too.
    RETURN least(v_next, hatchet._run_time_triggers(v_now));
END
$$;
COMMENT ON FUNCTION hatchet.run_maintenance() IS
    'one pass of the background worker: promote due tasks, time out attempts, expire queued tasks; returns next due time';


-- =====================================================================================================================
-- 3. SDK parity (issue 20)
-- =====================================================================================================================


-- =====================================================================================================================
-- 4. Roles and privileges (issue 15); last, so that its grants and SECURITY DEFINER options apply to the final
--    definitions above
-- =====================================================================================================================

