-- dequeue probes each claimed task's row in the partitions of the claimed rows' days only (the first and last day
-- _claim_ready saw bound the probe, so that the generic plan sets up no other day's partition). A batch whose tasks
-- were created on different days (a retry of yesterday's task beside today's work) still hands out every one of them
-- with its input: here one task is moved to the day before. Rolled back.
\set VERBOSITY terse
BEGIN;
SELECT hatchet.enqueue('days_q', '{"n": 1}') AS older \gset
SELECT hatchet.enqueue('days_q', '{"n": 2}') AS newer \gset
UPDATE hatchet.tasks SET inserted_at = inserted_at - interval '1 day' WHERE id = :'older';
UPDATE hatchet.ready_queue SET task_inserted_at = task_inserted_at - interval '1 day' WHERE task_id = :'older';
SELECT count(DISTINCT r.task_inserted_at::date) AS days FROM hatchet.ready_queue r WHERE r.queue = 'days_q';
SELECT task_id = :'older' AS is_older, input FROM hatchet.dequeue('days_q', 'w', 10) ORDER BY input ->> 'n';
SELECT count(*) AS running FROM hatchet.running WHERE queue = 'days_q';
SELECT count(*) AS still_queued FROM hatchet.ready_queue WHERE queue = 'days_q';
-- The bounded claim reads on from where this session's claims stopped; a second batch after new work finds it.
SELECT hatchet.enqueue('days_q', '{"n": 3}') IS NOT NULL AS queued;
SELECT input FROM hatchet.dequeue('days_q', 'w', 10);
ROLLBACK;
