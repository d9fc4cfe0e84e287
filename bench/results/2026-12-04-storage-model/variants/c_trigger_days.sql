-- candidate: the run_outcomes trigger's probe of tasks bounded by the events' first and last task day
CREATE OR REPLACE FUNCTION hatchet._note_run_outcomes() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_first timestamptz;
    v_last  timestamptz;
BEGIN
    -- A tenant without any runs row has no outcome to note (the EXISTS on runs below would fail for each of its
    -- events), so a statement whose final events all belong to such tenants, e.g. every completion batch of a plain
    -- SQL queue, returns here after one runs probe per tenant instead of probing tasks once per event: 160.6k -> 142.4k
    -- instructions per task on the SQL drain (bench/results/2026-12-04-storage-model). Exact, not a heuristic: the
    -- statement below would insert nothing, under the same snapshot. (A statement of RETRYING or REASSIGNED events
    -- only has no final event: it returns here too.)
    IF NOT EXISTS (SELECT 1 FROM (SELECT DISTINCT e.tenant_id FROM new_events e
                                  WHERE e.event_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'SKIPPED')) n
                   WHERE EXISTS (SELECT 1 FROM hatchet.runs r WHERE r.tenant_id = n.tenant_id OFFSET 0)) THEN
        RETURN NULL;
    END IF;
    -- The first and last day of the events' tasks bound the probe of tasks (variables: the plan prunes the day
    -- partitions with them when the statement starts, instead of setting up every day's).
    SELECT min(e.task_inserted_at), max(e.task_inserted_at) INTO v_first, v_last
    FROM new_events e WHERE e.event_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'SKIPPED');
    -- Each finished workflow task probes its run and its outcome row by key (OFFSET 0 keeps the two subqueries as
    -- per-row probes). Without it, the planner turned the run's EXISTS into a semi-join that hashed every run of the
    -- partition against the statement's events: a completion batch of 100 DAG tasks read 100 x 1,000 rows with 1,000
    -- runs in history, and the SQL DAG drain spent three quarters of its time here.
    INSERT INTO hatchet.run_outcomes (tenant_id, outcome, run_inserted_at, run_id)
    SELECT DISTINCT t.tenant_id, o.outcome, hatchet.uuid_time(t.run_id), t.run_id
    FROM (SELECT e.tenant_id, e.task_inserted_at, e.task_id,
                 (CASE e.event_type WHEN 'SKIPPED' THEN 'COMPLETED' ELSE e.event_type::text END)::hatchet.readable_status
                     AS outcome
          FROM new_events e
          WHERE e.event_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'SKIPPED')) o
    JOIN hatchet.tasks t ON t.tenant_id = o.tenant_id AND t.inserted_at = o.task_inserted_at AND t.id = o.task_id
                        AND t.inserted_at BETWEEN v_first AND v_last
    WHERE t.task_definition_id IS NOT NULL
      -- (a run past retention whose later task still finishes has no partition to note it in, and no list entry)
      AND EXISTS (SELECT 1 FROM hatchet.runs r
                  WHERE r.tenant_id = t.tenant_id AND r.inserted_at = hatchet.uuid_time(t.run_id) AND r.id = t.run_id
                  OFFSET 0)
      AND NOT EXISTS (SELECT 1 FROM hatchet.run_outcomes x
                      WHERE x.tenant_id = t.tenant_id AND x.outcome = o.outcome
                        AND x.run_inserted_at = hatchet.uuid_time(t.run_id) AND x.run_id = t.run_id
                      OFFSET 0);
    RETURN NULL;
END
$$;
