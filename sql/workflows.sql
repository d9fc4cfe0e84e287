-- Workflows: registration, runs and DAG advancement, conditions, events, crons and schedules.
--
-- The lifecycle API (api.sql) calls hatchet._on_tasks_finished in the same transaction whenever a task that belongs to
-- a DAG run (run_id set on its hot row) reaches COMPLETED, FAILED or CANCELLED.

CREATE FUNCTION hatchet._on_tasks_finished(p_tenant uuid, p_task_ids uuid[], p_run_ids uuid[], p_outcome text)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    -- Workflow runs are not implemented yet, so no task has a run_id and nothing calls this with work to do.
    RETURN;
END
$$;
