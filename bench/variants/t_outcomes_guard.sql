-- PROPOSAL for the run_outcomes trigger (sql/runs.sql, not applied here): return at once for tenants without task
-- definitions (plain SQL queues), instead of probing tasks once per event. Measured with bench/storage_model.py.
CREATE OR REPLACE FUNCTION hatchet._note_run_outcomes() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- A tenant without task definitions has no workflow runs to note (a workflow cannot be deleted while it has runs
    -- in progress): one probe per statement instead of one per event.
    IF NOT EXISTS (SELECT 1 FROM hatchet.task_definitions d
                   WHERE d.tenant_id IN (SELECT DISTINCT e.tenant_id FROM new_events e)) THEN
        RETURN NULL;
    END IF;
    INSERT INTO hatchet.run_outcomes (tenant_id, outcome, run_inserted_at, run_id)
    SELECT DISTINCT t.tenant_id, o.outcome, hatchet.uuid_time(t.run_id), t.run_id
    FROM (SELECT e.tenant_id, e.task_inserted_at, e.task_id,
                 (CASE e.event_type WHEN 'SKIPPED' THEN 'COMPLETED' ELSE e.event_type::text END)::hatchet.readable_status
                     AS outcome
          FROM new_events e
          WHERE e.event_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'SKIPPED')) o
    JOIN hatchet.tasks t ON t.tenant_id = o.tenant_id AND t.inserted_at = o.task_inserted_at AND t.id = o.task_id
    WHERE t.task_definition_id IS NOT NULL
      -- (a run past retention whose later task still finishes has no partition to note it in, and no list entry)
      AND EXISTS (SELECT 1 FROM hatchet.runs r
                  WHERE r.tenant_id = t.tenant_id AND r.inserted_at = hatchet.uuid_time(t.run_id) AND r.id = t.run_id)
      AND NOT EXISTS (SELECT 1 FROM hatchet.run_outcomes x
                      WHERE x.tenant_id = t.tenant_id AND x.outcome = o.outcome
                        AND x.run_inserted_at = hatchet.uuid_time(t.run_id) AND x.run_id = t.run_id);
    RETURN NULL;
END
$$;
