-- fail one running attempt, retryable or not
\set r random(0, 1)
SELECT hatchet.fail(task_id, retry_count, 'stress failure', :r = 1)
FROM (SELECT task_id, retry_count FROM hatchet.running WHERE queue = 'stress'
        AND concurrency_key IS DISTINCT FROM 'grr-7'
      ORDER BY assigned_at DESC LIMIT 1 FOR UPDATE SKIP LOCKED) x;
