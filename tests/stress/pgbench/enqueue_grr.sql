-- a task for one of 40 GROUP_ROUND_ROBIN keys (max_runs 3); short timeouts so abandoned claims time out
\set k random(1, 40)
SELECT hatchet.enqueue('stress', jsonb_build_object('k', :k), retries => 2, execution_timeout => '2s',
                       schedule_timeout => '30s', concurrency_key => 'grr-' || :k, max_runs => 3);
