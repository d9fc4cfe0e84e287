-- The server's REST helpers: filters addressed by workflow public id (list / create / update), and incoming
-- webhooks (definitions, validation, and a request turned into an event that triggers workflows).
\set VERBOSITY terse
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}', '<id>', 'g'); END $$;

SELECT hatchet.register_workflow('{"name": "hooked", "event_triggers": ["gh:*"], "tasks": [{"readable_id": "t"}]}')
       IS NOT NULL AS registered;
SELECT external_id AS wf FROM hatchet.workflows WHERE name = 'hooked' \gset

-- Filters by workflow id.
SELECT hatchet.create_workflow_filter(:'wf', 'acme', 'input.n > 1', '{"team": "a"}') AS f1 \gset
SELECT hatchet.create_workflow_filter(:'wf', 'other', 'true') AS f2 \gset
SELECT pg_temp.err($$SELECT hatchet.create_workflow_filter(hatchet.gen_id(), 'acme', 'true')$$);
SELECT pg_temp.err(format('SELECT hatchet.create_workflow_filter(%L, ''acme'', ''input.n >'')', :'wf'));
SELECT pg_temp.err(format('SELECT hatchet.create_workflow_filter(%L, ''acme'', ''input.n > 1'', ''{"team": "a"}'')', :'wf'));
SELECT workflow, scope, expression, payload, is_declarative, workflow_id = :'wf' AS by_id, total
FROM hatchet.list_filters(tenant_id => hatchet.default_tenant()) ORDER BY created_at, filter_id;
SELECT scope, total FROM hatchet.list_filters(tenant_id => hatchet.default_tenant(), scopes => ARRAY['other']);
SELECT count(*) AS none FROM hatchet.list_filters(tenant_id => hatchet.default_tenant(), workflow_ids => ARRAY[hatchet.gen_id()]);
SELECT scope, total FROM hatchet.list_filters(tenant_id => hatchet.default_tenant(), max_rows => 1, skip_rows => 1);
SELECT hatchet.update_filter(:'f1', expression => 'input.n > 2') AS updated;
SELECT hatchet.update_filter(:'f1', payload => '{"team": "b"}', scope => 'acme2') AS updated;
SELECT hatchet.update_filter(hatchet.gen_id(), scope => 'x') AS updated;
SELECT pg_temp.err(format('SELECT hatchet.update_filter(%L, expression => ''(('')', :'f1'));
SELECT pg_temp.err(format('SELECT hatchet.update_filter(%L, scope => '''')', :'f1'));
SELECT scope, expression, payload FROM hatchet.list_filters(tenant_id => hatchet.default_tenant(), filter_ids => ARRAY[:'f1'::uuid]);
SELECT hatchet.delete_filter(:'f1') AND hatchet.delete_filter(:'f2') AS deleted;

-- Webhooks: validation.
SELECT pg_temp.err($$SELECT hatchet.create_webhook('', 'GENERIC', '''k''', 'BASIC', '{"username": "u", "password": "p"}')$$);
SELECT pg_temp.err($$SELECT hatchet.create_webhook('h', 'NOPE', '''k''', 'BASIC', '{"username": "u", "password": "p"}')$$);
SELECT pg_temp.err($$SELECT hatchet.create_webhook('h', 'GENERIC', '''k'' +', 'BASIC', '{"username": "u", "password": "p"}')$$);
SELECT pg_temp.err($$SELECT hatchet.create_webhook('h', 'GENERIC', '''k''', 'BASIC', '{"username": "u"}')$$);
SELECT pg_temp.err($$SELECT hatchet.create_webhook('h', 'GENERIC', '''k''', 'OAUTH', '{}')$$);
SELECT pg_temp.err($$SELECT hatchet.create_webhook('h', 'GENERIC', '''k''', 'HMAC',
    '{"algorithm": "SHA3", "encoding": "HEX", "signatureHeaderName": "x-sig", "signingSecret": "s"}')$$);
SELECT pg_temp.err($$SELECT hatchet.create_webhook('h', 'GENERIC', '''k''', 'API_KEY',
    '{"headerName": "x-key", "apiKey": "s"}', static_payload => '[1]')$$);
SELECT count(*) AS webhooks FROM hatchet.webhooks;

-- A webhook whose key comes from the body and a header, with a scope and a static payload.
SELECT hatchet.create_webhook('github', 'GITHUB', '''gh:'' + headers["x-github-event"] + ":" + input.action',
                              'HMAC', '{"algorithm": "SHA256", "encoding": "HEX", "signatureHeaderName": "x-hub-signature-256",
                                        "signingSecret": "s3cret"}',
                              scope_expression => 'input.repo', static_payload => '{"source": "github"}')
       IS NOT NULL AS created;
SELECT pg_temp.err($$SELECT hatchet.create_webhook('github', 'GENERIC', '''k''', 'API_KEY',
    '{"headerName": "x-key", "apiKey": "s"}')$$);
SELECT name, source_name, auth_type, scope_expression, static_payload, return_event, total
FROM hatchet.find_webhooks(hatchet.default_tenant());
SELECT count(*) AS none FROM hatchet.find_webhooks(hatchet.default_tenant(), source_names => ARRAY['STRIPE']);

SELECT event_key, event_scope, event_payload
FROM hatchet.receive_webhook('github', '{"action": "opened", "repo": "acme/app"}',
                             '{"x-github-event": "pull_request"}') \gset
SELECT :'event_key' AS key, :'event_scope' AS scope, :'event_payload' AS payload;
-- The event is stored and triggered the workflow whose trigger matches the key.
SELECT e.key, e.scope, e.payload FROM hatchet.events e WHERE e.key = 'gh:pull_request:opened';
SELECT input FROM hatchet.dequeue('hooked:t');
-- A key expression that gives no string, or fails, rejects the request and stores nothing.
SELECT pg_temp.err($$SELECT * FROM hatchet.receive_webhook('github', '{"action": 1, "repo": "r"}',
                                                           '{"x-github-event": "push"}')$$);
SELECT pg_temp.err($$SELECT * FROM hatchet.receive_webhook('github', '{"repo": "r"}', '{}')$$);
SELECT pg_temp.err($$SELECT * FROM hatchet.receive_webhook('nope', '{}', '{}')$$);
SELECT count(*) AS events FROM hatchet.events WHERE key LIKE 'gh:%';

SELECT hatchet.update_webhook('github', event_key_expression => '''gh:static''', scope_expression => '',
                              return_event => false) AS updated;
SELECT hatchet.update_webhook('nope', return_event => false) AS updated;
SELECT pg_temp.err($$SELECT hatchet.update_webhook('github', event_key_expression => '')$$);
SELECT event_key, event_scope FROM hatchet.receive_webhook('github', '[1, 2]', '{}');
SELECT event_payload FROM hatchet.receive_webhook('github', '[1, 2]', '{}');
SELECT event_key_expression, scope_expression, return_event FROM hatchet.find_webhooks(hatchet.default_tenant());
SELECT hatchet.delete_webhook('github') AS deleted, hatchet.delete_webhook('github') AS again;
