-- measurement only
DROP TRIGGER task_events_run_outcomes ON hatchet.task_events;
