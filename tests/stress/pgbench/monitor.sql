-- record the highest number of attempts seen running at once per key; keep the workers alive
INSERT INTO stress_max (key, max_running)
SELECT concurrency_key, count(*) FROM hatchet.running WHERE queue = 'stress' AND concurrency_key IS NOT NULL
GROUP BY concurrency_key
ON CONFLICT (key) DO UPDATE SET max_running = greatest(stress_max.max_running, excluded.max_running);
SELECT hatchet.heartbeat(ARRAY(SELECT id FROM hatchet.workers));
