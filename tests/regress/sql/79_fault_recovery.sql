-- Fault recovery (issue 16): assignments a worker never acknowledged are released within worker_dead_after; after an
-- outage (a gap between maintenance passes) workers get worker_dead_after again before they can be declared dead;
-- the attempts taken from a dead worker are kept for the server to cancel when the worker comes back.
-- Each part uses a tenant of its own, created in the transaction, so the background worker's passes never see it.
\set VERBOSITY terse
\set t '''00000000-0000-4000-8000-0000000000f1'''
\set w '''00000000-0000-7000-8000-0000000000f1'''

BEGIN;
INSERT INTO hatchet.tenants (tenant_id, name) VALUES (:t, 'fault-recovery');
-- The first pass ever is no outage: no grace.
SELECT hatchet._record_pass(:t, clock_timestamp()) = '-infinity' AS no_grace_at_first;
SELECT hatchet.register_worker('w-ack', ARRAY['ack:q'], '{"default": 4}', tenant_id => :t, worker_id => :w)
    IS NOT NULL AS registered;
SELECT hatchet.enqueue('ack:q', '{"n": 1}', tenant_id => :t) AS acked \gset
SELECT hatchet.enqueue('ack:q', '{"n": 2}', tenant_id => :t) AS lost \gset
SELECT count(*) AS assigned FROM hatchet.assign(tenant_id => :t);
-- The worker acknowledges the first (its STARTED); a second acknowledgement, or one of an unknown attempt, is a no-op.
SELECT hatchet.acknowledge_attempts(ARRAY[:'acked'::uuid], ARRAY[0], :t) AS acknowledged;
SELECT hatchet.acknowledge_attempts(ARRAY[:'acked'::uuid, gen_random_uuid()], ARRAY[0, 0], :t) AS again;
SELECT hatchet.acknowledge_attempts(ARRAY[:'lost'::uuid], ARRAY[7], :t) AS stale_attempt;
SELECT input ->> 'n' AS n, started_at IS NOT NULL AS acknowledged FROM hatchet.running r
JOIN hatchet.tasks t ON t.tenant_id = r.tenant_id AND t.id = r.task_id WHERE r.tenant_id = :t ORDER BY n;
-- Not yet worker_dead_after old: nothing is released.
SELECT hatchet._release_unacknowledged(:t, clock_timestamp(), 100) AS released_early;
-- A minute later the worker is alive (it heartbeats) but never got the second attempt: it is retried elsewhere.
UPDATE hatchet.running SET assigned_at = assigned_at - interval '1 minute' WHERE tenant_id = :t;
SELECT hatchet.heartbeat(ARRAY[:w::uuid], :t) AS alive;
SELECT hatchet._release_unacknowledged(:t, clock_timestamp(), 100) AS released;
SELECT task_id = :'acked' AS still_running_is_the_acknowledged FROM hatchet.running WHERE tenant_id = :t;
SELECT retry_count, internal_retry_count, app_retry_count FROM hatchet.ready_queue WHERE task_id = :'lost';
SELECT event_type, retry_count, reason FROM hatchet.task_events(:'lost', :t) WHERE event_type = 'REASSIGNED';
SELECT used FROM hatchet.worker_slots WHERE tenant_id = :t;
-- The run_maintenance pass does the same (here: nothing left to release).
SELECT hatchet._release_unacknowledged(:t, clock_timestamp(), 100) AS nothing_left;
-- SQL consumers (hatchet.dequeue) have no worker to acknowledge: never released this way.
SELECT hatchet.enqueue('ack:sql', tenant_id => :t) IS NOT NULL AS queued;
SELECT count(*) AS dequeued FROM hatchet.dequeue('ack:sql', 'consumer', 1, tenant_id => :t);
UPDATE hatchet.running SET assigned_at = assigned_at - interval '1 minute' WHERE tenant_id = :t AND worker_id IS NULL;
SELECT hatchet._release_unacknowledged(:t, clock_timestamp(), 100) AS consumers_untouched;
ROLLBACK;

BEGIN;
INSERT INTO hatchet.tenants (tenant_id, name) VALUES (:t, 'fault-recovery');
SELECT hatchet.register_worker('w-grace', ARRAY['grace:q'], '{"default": 4}', tenant_id => :t, worker_id => :w)
    IS NOT NULL AS registered;
SELECT hatchet.enqueue('grace:q', '{}', tenant_id => :t) AS task \gset
SELECT count(*) AS assigned FROM hatchet.assign(tenant_id => :t);
-- Passes one second apart: no outage, reachable since the first.
SELECT hatchet._record_pass(:t, clock_timestamp() - interval '61 seconds') = '-infinity' AS first_pass;
SELECT hatchet._record_pass(:t, clock_timestamp() - interval '60 seconds') = '-infinity' AS no_gap_no_grace;
-- Then nothing for 50 s (Postgres was down): the next pass starts the grace.
SELECT hatchet._record_pass(:t, clock_timestamp() - interval '10 seconds') AS back \gset
SELECT reachable_since = :'back' AS grace_from_the_end_of_the_gap, last_pass_at = :'back' AS recorded
FROM hatchet.maintenance_state WHERE tenant_id = :t;
-- A crash restart of Postgres takes a few seconds: passes every second, then a gap of 4 s is an outage too (the second
-- long chaos run: two such restarts 4-5 s apart, each under the old 5 s floor, and workers declared dead between).
SELECT hatchet._record_pass(:t, clock_timestamp() - interval '9 seconds') = :'back' AS no_gap_still_the_same;
SELECT hatchet._record_pass(:t, clock_timestamp() - interval '5 seconds') AS back \gset
SELECT reachable_since = :'back' AS a_4s_gap_starts_the_grace FROM hatchet.maintenance_state WHERE tenant_id = :t;
-- The worker's last heartbeat is from before the outage: by the clock it is long dead, but it had only 5 s to
-- heartbeat since the engine was reachable again (worker_dead_after is 30 s): not reaped, its attempt not released.
UPDATE hatchet.workers SET last_heartbeat_at = now() - interval '2 minutes' WHERE tenant_id = :t;
UPDATE hatchet.running SET assigned_at = assigned_at - interval '2 minutes' WHERE tenant_id = :t;
SELECT hatchet._reap_dead_workers(:t, clock_timestamp()) AS reaped_in_grace;
SELECT hatchet._release_unacknowledged(:t, clock_timestamp(), 100) AS released_in_grace;
SELECT count(*) AS running FROM hatchet.running WHERE tenant_id = :t;
-- Silent for 30 s after the engine came back: dead. Its attempt is retried and remembered for its return.
SELECT hatchet._reap_dead_workers(:t, clock_timestamp() + interval '26 seconds') AS reaped_after_grace;
SELECT is_active FROM hatchet.workers WHERE tenant_id = :t;
SELECT event_type, reason FROM hatchet.task_events(:'task', :t) WHERE event_type = 'REASSIGNED';
SELECT task_id = :'task' AS is_the_task, retry_count FROM hatchet.reaped_attempts WHERE tenant_id = :t;
-- It comes back (the server registers it again under its id) and takes them, once, to cancel them on the worker.
SELECT hatchet.register_worker('w-grace', ARRAY['grace:q'], '{"default": 4}', tenant_id => :t, worker_id => :w)
    IS NOT NULL AS registered_again;
SELECT task_id = :'task' AS is_the_task, retry_count FROM hatchet.take_reaped_attempts(:w, :t);
SELECT count(*) AS taken_once FROM hatchet.take_reaped_attempts(:w, :t);
-- Another tenant's worker of the same id sees nothing.
SELECT count(*) AS other_tenant FROM hatchet.take_reaped_attempts(:w);
ROLLBACK;
