DROP INDEX hatchet.running_timeout_idx;
