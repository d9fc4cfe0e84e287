-- A rate-limited task's retry that is queued at once (no backoff: a failure, a timeout or a lost worker) takes its
-- units again like any attempt. Found by the chaos suite (issue 16): such retries entered the ready queue unmarked
-- and were assigned past the limit (5 assignments in one 1-second window of 4).
BEGIN;
SELECT hatchet.put_rate_limit('rlretry', 1, 'MINUTE');
SELECT hatchet.enqueue('rlretry', '{"n": 1}', retries => 2, rate_limits => '[{"key": "rlretry"}]') AS t \gset
SELECT count(*) AS first_attempt FROM hatchet.dequeue('rlretry');
SELECT remaining FROM hatchet.rate_limits WHERE key = 'rlretry';
-- The attempt fails (retryable, no backoff): its retry is queued at once, marked as rate limited.
SELECT hatchet.fail(:'t', 0, 'boom');
SELECT retry_count, rate_limited FROM hatchet.ready_queue WHERE queue = 'rlretry';
-- The window's only unit is spent: the retry waits for the refill instead of running now.
SELECT count(*) AS retry_too_early FROM hatchet.dequeue('rlretry');
SELECT retry_count, reason FROM hatchet.delayed_queue WHERE queue = 'rlretry';
SELECT remaining FROM hatchet.rate_limits WHERE key = 'rlretry';
-- Once the window refills the retry runs and takes the unit.
UPDATE hatchet.rate_limits SET last_refill = now() - interval '61 seconds' WHERE key = 'rlretry';
UPDATE hatchet.delayed_queue SET ready_at = now() - interval '1 second' WHERE queue = 'rlretry';
SELECT retry_count FROM hatchet.dequeue('rlretry');
SELECT remaining FROM hatchet.rate_limits WHERE key = 'rlretry';
ROLLBACK;
