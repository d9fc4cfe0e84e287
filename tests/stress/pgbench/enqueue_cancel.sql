-- tasks for CANCEL_IN_PROGRESS (max_runs 2) and CANCEL_NEWEST (max_runs 1) keys
\set k random(1, 10)
SELECT hatchet.enqueue('stress', jsonb_build_object('cip', :k), execution_timeout => '2s',
                       concurrency_key => 'cip-' || :k, max_runs => 2, strategy => 'CANCEL_IN_PROGRESS');
SELECT hatchet.enqueue('stress', jsonb_build_object('cn', :k), execution_timeout => '2s',
                       concurrency_key => 'cn-' || :k, max_runs => 1, strategy => 'CANCEL_NEWEST');
