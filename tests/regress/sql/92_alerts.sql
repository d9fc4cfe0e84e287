-- Alerts (issue 17, docs/alerts.md): per-tenant channels with write-only secrets, and one delivery task per run and
-- channel (a run of the workflow hatchet:alerts), started in the transaction where a task fails for good. Everything runs in
-- one transaction that is rolled back, so the tests after this one see no channel.
\set VERBOSITY terse
BEGIN;

-- try(statement): 'ok', or the SQLSTATE and message of the error (what the statement did is rolled back).
CREATE FUNCTION pg_temp.try(statement text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE statement;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ' ' || SQLERRM;
END
$$;
CREATE FUNCTION pg_temp.alert_tasks() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM hatchet.tasks WHERE queue = 'hatchet:alerts:deliver' $$;

-- ---------------------------------------------------------------------------------------------------------------------
-- Settings: bad channels are refused with 22023 (22004 for a NULL, 23503 for an unknown tenant) and store nothing
-- ---------------------------------------------------------------------------------------------------------------------
SELECT s AS statement, pg_temp.try(s) AS result FROM unnest(ARRAY[
    $$SELECT hatchet.put_alert_channel('sms', secret => '{"url": "https://x.test/"}')$$,
    $$SELECT hatchet.put_alert_channel(NULL, secret => '{"url": "https://x.test/"}')$$,
    $$SELECT hatchet.put_alert_channel('slack')$$,
    $$SELECT hatchet.put_alert_channel('slack', secret => '{"url": "ftp://x.test/"}')$$,
    $$SELECT hatchet.put_alert_channel('slack', secret => '{"url": 7}')$$,
    $$SELECT hatchet.put_alert_channel('slack', '{"channel": "#ops"}', '{"url": "https://x.test/"}')$$,
    $$SELECT hatchet.put_alert_channel('slack', secret => '{"url": "https://x.test/", "headers": {}}')$$,
    $$SELECT hatchet.put_alert_channel('slack', secret => '"https://x.test/"')$$,
    $$SELECT hatchet.put_alert_channel('webhook', secret => '{"url": "http://x.test/", "headers": {"X-A": 1}}')$$,
    $$SELECT hatchet.put_alert_channel('webhook', secret => '{"url": "http://x.test/", "headers": {"Bad Name": "v"}}')$$,
    $$SELECT hatchet.put_alert_channel('webhook', secret => E'{"url": "http://x.test/", "headers": {"X-A": "a\\r\\nX-B: b"}}')$$,
    $$SELECT hatchet.put_alert_channel('webhook', secret => '{"url": "http://x.test/"}', events => ARRAY['everything'])$$,
    $$SELECT hatchet.put_alert_channel('webhook', secret => '{"url": "http://x.test/"}', events => ARRAY[]::text[])$$,
    $$SELECT hatchet.put_alert_channel('webhook', secret => '{"url": "http://x.test/"}', enabled => NULL)$$,
    $$SELECT hatchet.put_alert_channel('email', '{"port": 25, "tls": "none", "from": "a@x.test", "to": ["b@x.test"]}')$$,
    $$SELECT hatchet.put_alert_channel('email', '{"host": "h", "port": 0, "tls": "none", "from": "a@x.test", "to": ["b@x.test"]}')$$,
    $$SELECT hatchet.put_alert_channel('email', '{"host": "h", "port": "25", "tls": "none", "from": "a@x.test", "to": ["b@x.test"]}')$$,
    $$SELECT hatchet.put_alert_channel('email', '{"host": "h", "port": 25, "tls": "ssl", "from": "a@x.test", "to": ["b@x.test"]}')$$,
    $$SELECT hatchet.put_alert_channel('email', '{"host": "h", "port": 25, "tls": "none", "from": "nobody", "to": ["b@x.test"]}')$$,
    $$SELECT hatchet.put_alert_channel('email', '{"host": "h", "port": 25, "tls": "none", "from": "a@x.test", "to": []}')$$,
    $$SELECT hatchet.put_alert_channel('email', '{"host": "h", "port": 25, "tls": "none", "from": "a@x.test", "to": ["b@x.test"], "cc": []}')$$,
    $$SELECT hatchet.put_alert_channel('email', '{"host": "h", "port": 25, "tls": "none", "from": "a@x.test", "to": ["b@x.test"]}', '{"username": "u"}')$$,
    $$SELECT hatchet.put_alert_channel('email', '{"host": "h", "port": 25, "tls": "none", "from": "a@x.test", "to": ["b@x.test"]}', '{"token": "t"}')$$,
    $$SELECT hatchet.put_alert_channel('slack', secret => '{"url": "https://x.test/"}', tenant_id => '00000000-0000-7000-8000-0000000000ff')$$
]) AS s;
SELECT count(*) AS channels FROM hatchet.alert_channels;

-- ---------------------------------------------------------------------------------------------------------------------
-- Settings: created, listed without secrets, updated keeping the secret, deleted
-- ---------------------------------------------------------------------------------------------------------------------
SELECT hatchet.put_alert_channel('slack', secret => '{"url": "https://hooks.slack.test/T1/B1/s3cr3t"}') AS created;
SELECT hatchet.put_alert_channel('webhook', secret => '{"url": "http://127.0.0.1:9/alerts", "headers": {"Authorization": "Bearer hush"}}') AS created;
SELECT hatchet.put_alert_channel('email',
    '{"host": "127.0.0.1", "port": 2525, "tls": "none", "from": "hatchet@x.test", "to": ["ops@x.test", "dev@x.test"]}',
    '{"username": "mailer", "password": "pa55"}') AS created;
SELECT kind, enabled, events, settings, secret_fields, created_at <= updated_at AS times
FROM hatchet.alert_channels() ORDER BY kind;
-- The listing never carries a secret's value.
SELECT bool_and(NOT (to_jsonb(c)::text ~ '(s3cr3t|hush|pa55)')) AS no_secret_listed FROM hatchet.alert_channels() c;
-- An update without a secret keeps the stored one; without settings keeps the settings.
SELECT hatchet.put_alert_channel('email', enabled => false) AS created;
SELECT hatchet.put_alert_channel('webhook', secret => NULL, enabled => true) AS created;
SELECT 'email' AS kind, enabled, settings, secret FROM hatchet.alert_channel_secret('email', hatchet.default_tenant())
UNION ALL
SELECT 'webhook', enabled, settings, secret FROM hatchet.alert_channel_secret('webhook', hatchet.default_tenant());
SELECT hatchet.alert_tenants() = hatchet.default_tenant() AS alert_tenants;
SELECT w.name, d.readable_id, d.retries, d.backoff_factor, d.backoff_max_seconds, d.execution_timeout
FROM hatchet.workflows w JOIN hatchet.workflow_versions v ON v.tenant_id = w.tenant_id AND v.workflow_id = w.id
JOIN hatchet.task_definitions d ON d.tenant_id = v.tenant_id AND d.workflow_version_id = v.id
WHERE w.name = 'hatchet:alerts';
SELECT pg_temp.try($$SELECT hatchet.put_alert_channel('email', '{"host": ""}')$$) AS bad_update;
SELECT settings ->> 'host' AS host_kept FROM hatchet.alert_channels() WHERE kind = 'email';
-- Who may do what: the app and consumer roles nothing; the admin role everything but reading secrets.
SELECT g.kind,
       has_function_privilege(g.role_id, 'hatchet.put_alert_channel(text, jsonb, jsonb, boolean, text[], uuid)', 'EXECUTE') AS put,
       has_function_privilege(g.role_id, 'hatchet.alert_channels(uuid)', 'EXECUTE') AS list,
       has_function_privilege(g.role_id, 'hatchet.alert_channel_secret(text, uuid)', 'EXECUTE') AS read_secret,
       has_table_privilege(g.role_id, 'hatchet.alert_channels', 'SELECT') AS read_table
FROM hatchet.roles g ORDER BY g.kind;

-- ---------------------------------------------------------------------------------------------------------------------
-- A task enqueued on its own fails for good: one delivery per enabled channel (slack, webhook; email is disabled)
-- ---------------------------------------------------------------------------------------------------------------------
SELECT hatchet.enqueue('alerted_q', '{"n": 1}', retries => 1) AS t1 \gset
SELECT hatchet.fail(task_id, retry_count, 'first try broke') AS first_fail FROM hatchet.dequeue('alerted_q', 'w1');
-- A retry is not a failure for good: nothing yet.
SELECT pg_temp.alert_tasks() AS alert_tasks;
UPDATE hatchet.delayed_queue SET ready_at = now() WHERE task_id = :'t1';
SELECT hatchet.fail(task_id, retry_count, 'second try broke too') AS final_fail FROM hatchet.dequeue('alerted_q', 'w1');
SELECT a.subject = 'run:' || :'t1' AS subject_is_run, a.kind, a.event,
       t.queue, t.retries, t.additional_metadata, (t.input -> 'input') - 'failed_at' - 'run_id' - 'task_id' AS input,
       t.input -> 'input' ->> 'run_id' = :'t1' AND t.input -> 'input' ->> 'task_id' = :'t1' AS input_ids,
       (t.input -> 'input' ->> 'failed_at')::timestamptz BETWEEN now() AND clock_timestamp() AS failed_at
FROM hatchet.alerts a JOIN hatchet.tasks t ON t.id = a.task_id
ORDER BY a.kind;
-- A run of its own: the delivery task is its run (same id), the run's metadata names the channel.
SELECT a.kind, t.run_id = t.id AS own_run, (hatchet.run(a.task_id)).additional_metadata AS run_metadata
FROM hatchet.alerts a JOIN hatchet.tasks t ON t.id = a.task_id ORDER BY a.kind;
-- Each delivery is a run of its own (of the workflow hatchet:alerts, registered with the first channel), waiting on
-- hatchet:alerts:deliver; the input carries no secret.
SELECT hatchet.run_status(a.task_id) AS delivery_status, count(*) FROM hatchet.alerts a GROUP BY 1;
SELECT bool_and(NOT (t.input::text ~ '(s3cr3t|hush|pa55)')) AS no_secret_in_input
FROM hatchet.tasks t WHERE t.queue = 'hatchet:alerts:deliver';

-- Replayed and failed again: still one alert per run and channel.
SELECT count(*) AS replayed FROM hatchet.replay_tasks(ARRAY[:'t1'::uuid]);
SELECT hatchet.fail(task_id, retry_count, 'replay broke', retryable => false) AS replay_fail
FROM hatchet.dequeue('alerted_q', 'w1');
SELECT pg_temp.alert_tasks() AS alert_tasks;

-- Rolled back with the failure: no alert.
SELECT hatchet.enqueue('alerted_q', '{"n": 2}') AS t2 \gset
SAVEPOINT before_fail;
SELECT hatchet.fail(task_id, retry_count, 'rolled back', retryable => false) FROM hatchet.dequeue('alerted_q', 'w1');
SELECT pg_temp.alert_tasks() AS alert_tasks_inside;
ROLLBACK TO SAVEPOINT before_fail;
SELECT pg_temp.alert_tasks() AS alert_tasks_after_rollback;

-- ---------------------------------------------------------------------------------------------------------------------
-- A DAG run: the failed task names its workflow; the tasks it cancels add nothing
-- ---------------------------------------------------------------------------------------------------------------------
SELECT hatchet.register_workflow('{"name": "alerted_flow", "tasks": [
    {"readable_id": "extract"}, {"readable_id": "load", "parents": ["extract"]},
    {"readable_id": "report", "parents": ["extract"]}]}') IS NOT NULL AS registered;
SELECT hatchet.run_workflow('alerted_flow', '{"day": 3}') AS run \gset
SELECT hatchet.fail(task_id, retry_count, 'extract: source gone', retryable => false) AS failed
FROM hatchet.dequeue('alerted_flow:extract', 'w1');
SELECT hatchet.run_status(:'run');
SELECT a.kind, t.input #>> '{input,workflow}' AS workflow, t.input #>> '{input,task}' AS task,
       t.input #>> '{input,error}' AS error, t.input #>> '{input,run_id}' = :'run' AS run_id
FROM hatchet.alerts a JOIN hatchet.tasks t ON t.id = a.task_id
WHERE a.subject = 'run:' || :'run' ORDER BY a.kind;

-- ---------------------------------------------------------------------------------------------------------------------
-- Deliveries: the server's consumer takes them with dequeue; a delivery that fails for good raises no alert itself
-- ---------------------------------------------------------------------------------------------------------------------
SELECT count(*) AS taken, hatchet.fail(task_id, retry_count, 'slack said 500', retryable => false) AS outcome
FROM hatchet.dequeue('hatchet:alerts:deliver', 'hatchet-server', 1)
GROUP BY 2;
SELECT count(*) AS alerts, pg_temp.alert_tasks() AS alert_tasks FROM hatchet.alerts;
SELECT hatchet.run_status(t.id) AS delivery_status, count(*) FROM hatchet.tasks t WHERE t.queue = 'hatchet:alerts:deliver'
GROUP BY 1 ORDER BY 1;
SELECT subject LIKE 'run:%' AS about_a_run, kind, event FROM hatchet.list_alerts(10) ORDER BY kind, subject LIMIT 2;
SELECT pg_temp.try($$SELECT * FROM hatchet.list_alerts(0)$$) AS bad_limit;

-- ---------------------------------------------------------------------------------------------------------------------
-- A worker declared dead (no heartbeat): a worker_died alert on the channels that want it, once per death
-- ---------------------------------------------------------------------------------------------------------------------
SELECT hatchet.put_alert_channel('webhook', events => ARRAY['run_failed', 'worker_died']) AS created;
SELECT kind, events, secret_fields FROM hatchet.alert_channels() WHERE kind = 'webhook';
SELECT hatchet.register_worker('alerts-w1', ARRAY['alerted_q']) AS w1 \gset
SELECT hatchet._reap_dead_workers(hatchet.default_tenant(), clock_timestamp() + interval '1 hour') >= 0 AS reaped;
SELECT is_active AS w1_active FROM hatchet.workers WHERE id = :'w1';
SELECT a.kind, a.event, (t.input -> 'input') - 'worker_id' - 'last_heartbeat_at' AS input,
       t.input #>> '{input,last_heartbeat_at}' IS NOT NULL AS last_heartbeat
FROM hatchet.alerts a JOIN hatchet.tasks t ON t.id = a.task_id
WHERE a.subject LIKE 'worker:' || :'w1' || ':%' ORDER BY a.kind;
-- Already dead: reaping again adds nothing.
SELECT hatchet._reap_dead_workers(hatchet.default_tenant(), clock_timestamp() + interval '2 hours') >= 0 AS reaped;
SELECT count(*) AS worker_alerts FROM hatchet.alerts WHERE subject LIKE 'worker:' || :'w1' || ':%';

-- ---------------------------------------------------------------------------------------------------------------------
-- A cron fired so late that later ticks were skipped (in a tenant of its own, so no other cron fires): a cron_missed
-- alert once per late tick; a tick fired on time skips nothing and says nothing
-- ---------------------------------------------------------------------------------------------------------------------
SELECT hatchet.create_tenant('regress_alerts_cron', '00000000-0000-7000-8000-00000000c017') AS ct \gset
SELECT hatchet.put_alert_channel('webhook', secret => '{"url": "http://127.0.0.1:9/cron"}',
                                 events => ARRAY['cron_missed'], tenant_id => :'ct') AS created;
SELECT hatchet.register_workflow('{"name": "alerted_nightly", "tasks": [{"readable_id": "report"}]}',
                                 tenant_id => :'ct') IS NOT NULL AS registered;
SELECT hatchet.create_cron('alerted_nightly', 'every-minute', '* * * * *', tenant_id => :'ct') AS cron \gset
UPDATE hatchet.crons SET next_tick_at = date_trunc('minute', clock_timestamp()) - interval '10 minutes'
WHERE tenant_id = :'ct' AND id = :'cron';
SELECT hatchet._tenant_time_triggers(:'ct', clock_timestamp(), 100);
SELECT a.kind, a.event, (t.input -> 'input') - 'cron_id' - 'due_at' - 'fired_at' AS input,
       t.input #>> '{input,cron_id}' = :'cron' AS cron_id,
       (t.input #>> '{input,due_at}')::timestamptz < (t.input #>> '{input,fired_at}')::timestamptz AS late
FROM hatchet.alerts a JOIN hatchet.tasks t ON t.tenant_id = a.tenant_id AND t.id = a.task_id
WHERE a.tenant_id = :'ct' ORDER BY a.subject;
-- The next tick, fired on time: nothing skipped, no alert.
UPDATE hatchet.crons SET next_tick_at = clock_timestamp() WHERE tenant_id = :'ct' AND id = :'cron';
SELECT hatchet._tenant_time_triggers(:'ct', clock_timestamp(), 100);
SELECT count(*) AS cron_alerts FROM hatchet.alerts WHERE tenant_id = :'ct';

-- ---------------------------------------------------------------------------------------------------------------------
-- Retention: the record of an alert older than hatchet.retention_days goes with the history it is about
-- ---------------------------------------------------------------------------------------------------------------------
INSERT INTO hatchet.alerts (tenant_id, subject, kind, event, task_id, created_at)
VALUES (hatchet.default_tenant(), 'run:old', 'slack', 'run_failed', hatchet.gen_id(), now() - interval '40 days');
SELECT count(*) >= 0 AS maintained FROM hatchet.maintain_partitions(retention_days => 30);
SELECT count(*) FILTER (WHERE subject = 'run:old') AS old_alerts, count(*) AS alerts FROM hatchet.alerts;

-- ---------------------------------------------------------------------------------------------------------------------
-- Another tenant without channels: its failures enqueue nothing; deleting channels stops alerts
-- ---------------------------------------------------------------------------------------------------------------------
SELECT hatchet.create_tenant('regress_alerts_other', '00000000-0000-7000-8000-00000000a017') AS other \gset
SELECT hatchet.enqueue('other_alerted_q', '{}', tenant_id => :'other') AS t3 \gset
SELECT hatchet.fail(task_id, retry_count, 'broke', retryable => false, tenant_id => :'other')
FROM hatchet.dequeue('other_alerted_q', 'w1', tenant_id => :'other');
SELECT count(*) AS other_alerts FROM hatchet.alerts WHERE tenant_id = :'other';
SELECT hatchet.delete_alert_channel('slack') AS deleted, hatchet.delete_alert_channel('slack') AS again,
       hatchet.delete_alert_channel('webhook') AS webhook, hatchet.delete_alert_channel('email') AS email;
SELECT pg_temp.alert_tasks() AS before;
SELECT hatchet.enqueue('alerted_q', '{"n": 3}') AS t4 \gset
SELECT hatchet.fail(task_id, retry_count, 'no one listens', retryable => false) FROM hatchet.dequeue('alerted_q', 'w1');
SELECT pg_temp.alert_tasks() AS after;

ROLLBACK;
SELECT count(*) AS channels_left FROM hatchet.alert_channels;
