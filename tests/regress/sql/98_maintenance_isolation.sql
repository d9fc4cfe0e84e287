-- Maintenance is isolated per tenant and per job (issue 15): a job that fails for one tenant is rolled back, logged,
-- counted in hatchet.maintenance_status and skipped; the other tenants' timeouts, schedule timeouts and crons still
-- happen in the same pass, and the failing job recovers once its data does. Inside a transaction, so the background
-- worker cannot see (or race) these rows.
\set VERBOSITY terse

BEGIN;
INSERT INTO hatchet.tenants (tenant_id, name) VALUES
    ('00000000-0000-4000-8000-00000000000a', 'poisoned'),
    ('00000000-0000-4000-8000-00000000000b', 'healthy');
-- For each tenant: an attempt past its execution timeout, a queued attempt past its schedule timeout, a due cron.
CREATE TEMP TABLE t (tenant text, kind text, task_id uuid);
INSERT INTO t SELECT name, 'timed_out', hatchet.enqueue('maint_iso', execution_timeout => '1s', tenant_id => tenant_id)
FROM hatchet.tenants WHERE name IN ('poisoned', 'healthy');
SELECT count(*) AS claimed FROM hatchet.dequeue('maint_iso', 'w', n => 5, tenant_id => '00000000-0000-4000-8000-00000000000a');
SELECT count(*) AS claimed FROM hatchet.dequeue('maint_iso', 'w', n => 5, tenant_id => '00000000-0000-4000-8000-00000000000b');
UPDATE hatchet.running SET timeout_at = assigned_at WHERE queue = 'maint_iso';
INSERT INTO t SELECT name, 'unclaimed', hatchet.enqueue('maint_iso', schedule_timeout => '1s', tenant_id => tenant_id)
FROM hatchet.tenants WHERE name IN ('poisoned', 'healthy');
UPDATE hatchet.ready_queue SET schedule_timeout_at = now() - interval '1 second' WHERE queue = 'maint_iso';
SELECT count(hatchet.register_workflow('{"name": "Nightly", "tasks": [{"readable_id": "run"}]}', tenant_id)) AS registered
FROM hatchet.tenants WHERE name IN ('poisoned', 'healthy');
SELECT count(hatchet.create_cron('Nightly', 'nightly', '0 3 * * *', tenant_id => tenant_id)) AS crons
FROM hatchet.tenants WHERE name IN ('poisoned', 'healthy');
UPDATE hatchet.crons SET next_tick_at = now() - interval '1 minute' WHERE name = 'nightly';

-- The poison: writing a task event or advancing a cron of tenant "poisoned" raises (think of a corrupt row or a
-- broken trigger an operator added).
CREATE FUNCTION public.poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.tenant_id = '00000000-0000-4000-8000-00000000000a' THEN
        RAISE EXCEPTION 'poisoned % row', CASE WHEN TG_TABLE_NAME = 'crons' THEN 'cron' ELSE 'task event' END;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER poison BEFORE INSERT ON hatchet.task_events FOR EACH ROW EXECUTE FUNCTION public.poison();
CREATE TRIGGER poison BEFORE UPDATE ON hatchet.crons FOR EACH ROW EXECUTE FUNCTION public.poison();

-- The pass completes (today's engine would abort here, for every tenant).
SELECT hatchet.run_maintenance() IS NOT NULL AS pass_completed;
-- The healthy tenant's timeout, schedule timeout and cron tick all happened; the poisoned tenant's were rolled back.
SELECT t.tenant, t.kind, hatchet.task_status(t.task_id, x.tenant_id) AS status
FROM t JOIN hatchet.tenants x ON x.name = t.tenant ORDER BY 1, 2;
SELECT x.name AS tenant, c.last_tick_at IS NOT NULL AS fired FROM hatchet.crons c JOIN hatchet.tenants x USING (tenant_id)
WHERE c.name = 'nightly' ORDER BY 1;
-- The failures are visible per tenant and job.
SELECT x.name AS tenant, s.job, s.failures, s.last_sqlstate, s.last_error, s.last_failed_at IS NOT NULL AS failed_at,
       s.last_ok_at IS NULL AS still_failing
FROM hatchet.maintenance_status s JOIN hatchet.tenants x USING (tenant_id) ORDER BY 1, 2;
-- Each pass counts again.
SELECT hatchet.run_maintenance() IS NOT NULL AS second_pass;
SELECT s.job, s.failures FROM hatchet.maintenance_status s
WHERE s.tenant_id = '00000000-0000-4000-8000-00000000000a' ORDER BY 1;
-- Once the data is fixed, the next pass does the work and marks the jobs recovered (the count stays).
DROP TRIGGER poison ON hatchet.task_events;
DROP TRIGGER poison ON hatchet.crons;
SELECT hatchet.run_maintenance() IS NOT NULL AS third_pass;
SELECT t.tenant, t.kind, hatchet.task_status(t.task_id, x.tenant_id) AS status
FROM t JOIN hatchet.tenants x ON x.name = t.tenant WHERE t.tenant = 'poisoned' ORDER BY 1, 2;
SELECT s.job, s.failures, s.last_ok_at IS NOT NULL AS recovered FROM hatchet.maintenance_status s
WHERE s.tenant_id = '00000000-0000-4000-8000-00000000000a' ORDER BY 1;
ROLLBACK;

-- A job for no tenant in particular (tenant NULL) is recorded the same way; an unknown job is such a failure.
BEGIN;
SELECT hatchet._maintenance_job(NULL, 'no_such_job', now(), 10) AS ran;
SELECT tenant_id IS NULL AS all_tenants, job, failures, last_sqlstate FROM hatchet.maintenance_status;
ROLLBACK;
