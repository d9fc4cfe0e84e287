-- cancel a queued task
SELECT hatchet.cancel(task_id) FROM (SELECT task_id FROM hatchet.ready_queue WHERE queue = 'stress'
                                     LIMIT 1 FOR UPDATE SKIP LOCKED) x;
