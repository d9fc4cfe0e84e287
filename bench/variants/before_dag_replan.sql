-- The SQL DAG path before session 19 (measurement only, bench/storage_model.py --dag): the run_outcomes trigger with
-- its run check as a plain EXISTS (flattened into a semi-join over every run of the partition), and _task_output /
-- _task_outcome as SQL-language functions (planned again by every calling statement).
CREATE OR REPLACE FUNCTION hatchet._note_run_outcomes() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
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

-- The output of a task's completed attempt ({} when it completed without one).
CREATE OR REPLACE FUNCTION hatchet._task_output(p_tenant uuid, p_task uuid) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT p.data FROM hatchet.payloads p
                     WHERE p.tenant_id = p_tenant AND p.task_inserted_at = hatchet.uuid_time(p_task)
                       AND p.task_id = p_task AND p.kind = 'OUTPUT'
                     ORDER BY p.retry_count DESC LIMIT 1), '{}'::jsonb)
$$;

-- The latest terminal event of a task (COMPLETED, FAILED, CANCELLED or SKIPPED), if any.
CREATE OR REPLACE FUNCTION hatchet._task_outcome(p_tenant uuid, p_task uuid,
                                      OUT event_type text, OUT reason text, OUT retry_count integer)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT e.event_type::text, e.reason, e.retry_count FROM hatchet.task_events e
    WHERE e.tenant_id = p_tenant AND e.task_inserted_at = hatchet.uuid_time(p_task) AND e.task_id = p_task
      AND e.event_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'SKIPPED')
    ORDER BY e.created_at DESC LIMIT 1
$$;

