-- cancel a running task (the worker would get CANCEL_STEP_RUN)
SELECT hatchet.cancel(task_id) FROM (SELECT task_id FROM hatchet.running WHERE queue = 'stress'
                                     ORDER BY assigned_at DESC LIMIT 1 FOR UPDATE SKIP LOCKED) x;
