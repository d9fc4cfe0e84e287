DROP TRIGGER task_failed_alert ON hatchet.task_events;
DROP TRIGGER running_batch_member_done ON hatchet.running;
