DROP INDEX hatchet.tasks_run_idx;
