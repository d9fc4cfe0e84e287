DROP INDEX hatchet.task_events_task_idx;
