-- Roles and privileges (issue 15, docs/security.md): an application role set up only by the documented script
-- (sql/setup/roles.sql) runs the README's examples in its own tenant, and is refused everything else with 42501:
-- naming another tenant, reading tables, secrets, internal helpers, administration. Another tenant's rows by id are
-- simply not there for it (the call acts in its own tenant). Trusted roles (server, admin members) keep acting for
-- any tenant; secrets stay with the server role.
\set VERBOSITY terse

-- try(statement): runs it as the current role; 'ok', or the SQLSTATE and message of the error (nothing it did is
-- kept then: the exception block rolls it back), generated ids shown as <id> (the fixed ones start with 00000000).
CREATE FUNCTION public.try(statement text) RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    EXECUTE statement;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ' ' || regexp_replace(SQLERRM, '(?!00000000)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}',
                                             '<id>', 'g');
END
$$;

-- ---------------------------------------------------------------------------------------------------------------------
-- What CREATE EXTENSION set up: four NOLOGIN group roles, PUBLIC shut out
-- ---------------------------------------------------------------------------------------------------------------------
SELECT g.kind, g.role_id, r.rolcanlogin, r.rolsuper
FROM hatchet.roles g JOIN pg_roles r ON r.oid = g.role_id ORDER BY g.kind;
-- No function of the schema is executable by PUBLIC, and no table or sequence is reachable by PUBLIC.
SELECT count(*) AS public_functions FROM pg_proc p
WHERE p.pronamespace = 'hatchet'::regnamespace
  AND (p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0));
SELECT count(*) AS public_relations FROM pg_class c
WHERE c.relnamespace = 'hatchet'::regnamespace AND c.relkind IN ('r', 'p', 'S', 'v')
  AND EXISTS (SELECT 1 FROM aclexplode(c.relacl) a WHERE a.grantee = 0);
-- Exactly what the app and consumer roles may call.
SELECT g.kind, string_agg(DISTINCT p.proname, ', ' ORDER BY p.proname) AS executes
FROM hatchet.roles g CROSS JOIN pg_proc p
WHERE g.kind IN ('app', 'consumer') AND p.pronamespace = 'hatchet'::regnamespace
  AND has_function_privilege(g.role_id, p.oid, 'EXECUTE')
GROUP BY g.kind ORDER BY g.kind;
-- No internal helper is executable by any of the four roles; the functions app and consumer call run as the owner.
SELECT g.kind, p.proname FROM hatchet.roles g CROSS JOIN pg_proc p
WHERE p.pronamespace = 'hatchet'::regnamespace AND p.proname LIKE '\_%'
  AND has_function_privilege(g.role_id, p.oid, 'EXECUTE');
SELECT DISTINCT p.proname AS invoker_api FROM hatchet.roles g CROSS JOIN pg_proc p
WHERE g.kind IN ('app', 'consumer') AND p.pronamespace = 'hatchet'::regnamespace
  AND has_function_privilege(g.role_id, p.oid, 'EXECUTE') AND NOT p.prosecdef
ORDER BY 1;
-- hatchet-server may run as a member of the server role without superuser: every function it may call that reads or
-- writes tables runs as the owner (the ones listed here touch no table).
SELECT DISTINCT p.proname AS server_invoker FROM hatchet.roles g CROSS JOIN pg_proc p
WHERE g.kind = 'server' AND p.pronamespace = 'hatchet'::regnamespace
  AND has_function_privilege(g.role_id, p.oid, 'EXECUTE') AND NOT p.prosecdef
ORDER BY 1;
-- Table privileges: none for app and consumer; token secrets for the server role only; webhook credentials for none.
SELECT g.kind, count(*) FILTER (WHERE has_any_column_privilege(g.role_id, c.oid, 'SELECT, INSERT, UPDATE, REFERENCES')
                                   OR has_table_privilege(g.role_id, c.oid, 'DELETE, TRUNCATE, TRIGGER')) AS tables,
       has_column_privilege(g.role_id, 'hatchet.tenants', 'token_secret', 'SELECT') AS token_secret,
       has_column_privilege(g.role_id, 'hatchet.webhooks', 'auth', 'SELECT') AS webhook_auth
FROM hatchet.roles g CROSS JOIN pg_class c
WHERE c.relnamespace = 'hatchet'::regnamespace AND c.relkind IN ('r', 'p')
GROUP BY g.kind, g.role_id ORDER BY g.kind;
-- No function reads a token secret (so none can return one); _grant_api names the column only to grant it to the
-- server role.
SELECT p.proname FROM pg_proc p WHERE p.pronamespace = 'hatchet'::regnamespace AND p.prosrc LIKE '%token_secret%'
    AND p.proname <> '_grant_api';

-- ---------------------------------------------------------------------------------------------------------------------
-- Another tenant with work of its own (as superuser)
-- ---------------------------------------------------------------------------------------------------------------------
SELECT hatchet.create_tenant('regress_other', '00000000-0000-7000-8000-00000000a002') AS other \gset
SELECT try($$SELECT hatchet.create_tenant('regress_other')$$) AS duplicate_name;
SELECT hatchet.enqueue('other_q', '{"secret": "theirs"}', tenant_id => :'other') AS other_task \gset
SELECT hatchet.enqueue('other_run_q', '{}', tenant_id => :'other') AS other_running \gset
SELECT count(*) AS claimed FROM hatchet.dequeue('other_run_q', 'w-other', 1, tenant_id => :'other');
SELECT hatchet.register_workflow('{"name": "other_flow", "tasks": [{"readable_id": "a"}]}', tenant_id => :'other')
       IS NOT NULL AS registered;
SELECT hatchet.run_workflow('other_flow', '{}', tenant_id => :'other') AS other_run \gset

-- ---------------------------------------------------------------------------------------------------------------------
-- The documented setup script: a login role for the application, in its own tenant
-- ---------------------------------------------------------------------------------------------------------------------
\set role regress_shop_app
\set tenant_name regress_shop
\set ECHO none
\i setup/roles.sql
\set ECHO all
-- Again: nothing changes.
\set ECHO none
\i setup/roles.sql
\set ECHO all
SELECT tenant_id AS shop FROM hatchet.tenants WHERE name = 'regress_shop' \gset
SELECT r.rolcanlogin, r.rolsuper FROM pg_roles r WHERE r.rolname = 'regress_shop_app';
-- The README's workflow is registered by an administrator (here the superuser) for the application's tenant.
SELECT hatchet.register_workflow('{"name": "etl", "tasks": [
    {"readable_id": "extract"},
    {"readable_id": "transform", "parents": ["extract"], "retries": 2},
    {"readable_id": "load", "parents": ["transform"]}]}', tenant_id => :'shop') IS NOT NULL AS registered;

-- ---------------------------------------------------------------------------------------------------------------------
-- The README's examples, as the application role (no tenant named: its only tenant)
-- ---------------------------------------------------------------------------------------------------------------------
SET ROLE regress_shop_app;
SELECT name FROM hatchet.my_tenants();
BEGIN;
SELECT hatchet.enqueue('send_welcome', '{"to": "ada@example.com"}', retries => 3, backoff_factor => 2) AS task_id \gset
COMMIT;
SELECT hatchet.task_status(:'task_id');
SELECT retry_count, input FROM hatchet.dequeue('send_welcome', 'worker-1');
SELECT hatchet.fail(:'task_id', 0, 'SMTP timeout');
SELECT pg_sleep(2.1);
SELECT retry_count, input FROM hatchet.dequeue('send_welcome', 'worker-1');
SELECT hatchet.complete(:'task_id', 1, '{"message_id": "m-42"}');
SELECT event_type, retry_count, reason, worker FROM hatchet.task_events(:'task_id');
SELECT count(*) FROM unnest(hatchet.enqueue_many('reports', array_fill('{"customer": "big"}'::jsonb, ARRAY[1000]),
                                                 concurrency_key => 'big', max_runs => 2));
SELECT count(*) FROM unnest(hatchet.enqueue_many('reports', array_fill('{"customer": "small"}'::jsonb, ARRAY[2]),
                                                 concurrency_key => 'small', max_runs => 2));
SELECT input ->> 'customer' AS customer FROM hatchet.dequeue('reports', 'worker-1', 10);
SELECT hatchet.run_workflow('etl', '{"day": "2026-11-23"}') AS run \gset
SELECT readable_id, status FROM hatchet.run_tasks(:'run') ORDER BY readable_id;
SELECT hatchet.complete(task_id, retry_count, '{"rows": 42}') FROM hatchet.dequeue('etl:extract');
SELECT input FROM hatchet.dequeue('etl:transform');
-- Naming its own tenant is the same as naming none.
SELECT hatchet.task_status(:'task_id', tenant_id => :'shop');

-- ---------------------------------------------------------------------------------------------------------------------
-- Refused: another tenant named (42501), whatever the function
-- ---------------------------------------------------------------------------------------------------------------------
SELECT try(format($$SELECT hatchet.enqueue('q', '{}', tenant_id => %L)$$, :'other')) AS enqueue;
SELECT try(format($$SELECT hatchet.enqueue_many('q', ARRAY['{}']::jsonb[], tenant_id => %L)$$, :'other'))
       AS enqueue_many;
SELECT try(format($$SELECT * FROM hatchet.dequeue('other_q', 'w', 10, tenant_id => %L)$$, :'other')) AS dequeue;
SELECT try(format($$SELECT hatchet.task_status(%L, %L)$$, :'other_task', :'other')) AS task_status;
SELECT try(format($$SELECT hatchet.complete(%L, 0, '{}', %L)$$, :'other_running', :'other')) AS complete;
SELECT try(format($$SELECT hatchet.cancel(%L, %L)$$, :'other_task', :'other')) AS cancel;
SELECT try(format($$SELECT hatchet.run_workflow('other_flow', '{}', tenant_id => %L)$$, :'other')) AS run_workflow;
SELECT try(format($$SELECT * FROM hatchet.run_tasks(%L, %L)$$, :'other_run', :'other')) AS run_tasks;
SELECT try(format($$SELECT * FROM hatchet.list_runs(tenant_id => %L)$$, :'other')) AS list_runs;
SELECT try(format($$SELECT hatchet.push_event('k', '{}', tenant_id => %L)$$, :'other')) AS push_event;
SELECT try(format($$SELECT * FROM hatchet.find_runs_by_metadata(%L, 'k', 'v', now())$$, :'other')) AS find_runs;

-- Another tenant's rows by id, no tenant named: the call acts in the caller's tenant, where they do not exist
-- (the same answer as for an id that exists nowhere, so ids of other tenants cannot be probed).
SELECT try(format($$SELECT hatchet.task_status(%L)$$, :'other_task')) AS task_status;
SELECT try(format($$SELECT hatchet.complete(%L, 0)$$, :'other_running')) AS complete;
SELECT try(format($$SELECT hatchet.fail(%L, 0, 'x')$$, :'other_running')) AS fail;
SELECT try(format($$SELECT hatchet.cancel(%L)$$, :'other_task')) AS cancel;
SELECT try(format($$SELECT hatchet.run_status(%L)$$, :'other_run')) AS run_status;
SELECT count(*) AS events FROM hatchet.task_events(:'task_id');
SELECT count(*) AS other_rows FROM hatchet.task(:'other_task');
SELECT count(*) AS other_runs FROM hatchet.finished_runs(ARRAY[:'other_run']::uuid[]);

-- Reading or writing tables directly, secrets included.
SELECT try('SELECT count(*) FROM hatchet.tasks') AS tasks;
SELECT try('SELECT count(*) FROM hatchet.ready_queue') AS ready_queue;
SELECT try('SELECT name FROM hatchet.tenants') AS tenants;
SELECT try('SELECT token_secret FROM hatchet.tenants') AS token_secret;
SELECT try('SELECT auth FROM hatchet.webhooks') AS webhook_auth;
SELECT try('SELECT * FROM hatchet.api_tokens') AS api_tokens;
SELECT try(format($$INSERT INTO hatchet.tenant_grants (tenant_id, role_id) VALUES (%L, 'regress_shop_app')$$,
                  :'other')) AS bind_itself;
SELECT try('DELETE FROM hatchet.running') AS running;
-- Internal helpers.
SELECT try(format($$SELECT hatchet._tenant(%L)$$, :'other')) AS _tenant;
SELECT try('SELECT hatchet._caller()') AS _caller;
SELECT try(format($$SELECT hatchet._task_state(%L, %L)$$, :'other', :'other_task')) AS _task_state;
SELECT try(format($$SELECT hatchet._enqueue_batch(%L, 'q', ARRAY['{}']::jsonb[], 1, NULL, 0, NULL, NULL,
                                                  '1m', '5m', NULL, '{}')$$, :'other')) AS _enqueue_batch;
SELECT try('SELECT hatchet.raise_error(''internal'')') AS raise_error;
-- Administration and server-only functions.
SELECT try(format($$SELECT hatchet.grant_tenant('regress_shop_app', %L)$$, :'other')) AS grant_tenant;
SELECT try($$SELECT hatchet.create_tenant('regress_mine')$$) AS create_tenant;
SELECT try($$SELECT * FROM hatchet.list_tenant_grants()$$) AS list_tenant_grants;
SELECT try($$SELECT hatchet.register_workflow('{"name": "mine", "tasks": [{"readable_id": "a"}]}')$$)
       AS register_workflow;
SELECT try($$SELECT hatchet.put_rate_limit('openai', 100, 'MINUTE')$$) AS put_rate_limit;
SELECT try(format($$SELECT * FROM hatchet.find_webhooks(%L)$$, :'shop')) AS find_webhooks;
SELECT try($$SELECT hatchet.create_webhook('h', 'GENERIC', '''k''', 'API_KEY', '{"headerName": "x", "apiKey": "s"}')$$)
       AS create_webhook;
SELECT try($$SELECT * FROM hatchet.assign('{}')$$) AS assign;
SELECT try($$SELECT hatchet.register_worker('w', ARRAY['q'], '{"default": 1}')$$) AS register_worker;
SELECT try($$SELECT hatchet.run_maintenance()$$) AS run_maintenance;
RESET ROLE;

-- Nothing of the other tenant changed.
SELECT hatchet.task_status(:'other_task', :'other') AS queued, hatchet.task_status(:'other_running', :'other') AS running,
       hatchet.run_status(:'other_run', :'other') AS run;
SELECT count(*) AS other_grants FROM hatchet.tenant_grants WHERE tenant_id = :'other';
SELECT count(*) AS other_events FROM hatchet.events WHERE tenant_id = :'other';

-- ---------------------------------------------------------------------------------------------------------------------
-- Bindings: none, several, revoked (other sessions see a change at once: tests/isolation/specs/97_tenant_grants.spec)
-- ---------------------------------------------------------------------------------------------------------------------
CREATE ROLE regress_unbound LOGIN IN ROLE hatchet_app;
SET ROLE regress_unbound;
SELECT try($$SELECT hatchet.enqueue('q', '{}')$$) AS no_tenant;
RESET ROLE;
SELECT hatchet.grant_tenant('regress_unbound', :'shop') AS granted, hatchet.grant_tenant('regress_unbound', :'other')
       AS granted_other, hatchet.grant_tenant('regress_unbound', :'other') AS again;
SET ROLE regress_unbound;
SELECT try($$SELECT hatchet.enqueue('q', '{}')$$) AS two_tenants;
SELECT hatchet.enqueue('q', '{}', tenant_id => :'other') IS NOT NULL AS named_other;
SELECT name FROM hatchet.my_tenants();
RESET ROLE;
SELECT role_id, tenant_name FROM hatchet.list_tenant_grants('regress_unbound');
SELECT hatchet.revoke_tenant('regress_unbound', :'other') AS revoked, hatchet.revoke_tenant('regress_unbound', :'other')
       AS again;
SET ROLE regress_unbound;
SELECT try(format($$SELECT hatchet.enqueue('q', '{}', tenant_id => %L)$$, :'other')) AS after_revoke;
SELECT hatchet.enqueue('q', '{}') IS NOT NULL AS only_tenant;
RESET ROLE;
-- A binding of a group role binds its members; bad arguments.
CREATE ROLE regress_team NOLOGIN;
CREATE ROLE regress_member LOGIN IN ROLE hatchet_app, regress_team;
SELECT hatchet.grant_tenant('regress_team', :'other') AS granted;
SET ROLE regress_member;
SELECT name FROM hatchet.my_tenants();
SELECT hatchet.enqueue('q', '{}') IS NOT NULL AS through_group;
RESET ROLE;
SELECT try($$SELECT hatchet.grant_tenant('regress_team', '00000000-0000-7000-8000-0000000000ff')$$) AS unknown_tenant;
SELECT try($$SELECT hatchet.grant_tenant('regress_team', NULL)$$) AS null_tenant;

-- ---------------------------------------------------------------------------------------------------------------------
-- Trusted roles: a non-superuser member of the server role acts for any tenant and reads token secrets; a member of
-- the admin role administers but cannot read secrets
-- ---------------------------------------------------------------------------------------------------------------------
CREATE ROLE regress_server LOGIN IN ROLE hatchet_server;
CREATE ROLE regress_admin LOGIN IN ROLE hatchet_admin;
SET ROLE regress_server;
SELECT hatchet.enqueue('q', '{}') IS NOT NULL AS default_tenant,
       hatchet.enqueue('q', '{}', tenant_id => :'other') IS NOT NULL AS other_tenant;
SELECT token_secret IS NULL AS no_secret_yet FROM hatchet.tenants WHERE tenant_id = :'other';
SELECT count(*) AS webhooks FROM hatchet.find_webhooks(tenant_id => :'other');
SELECT try($$SELECT hatchet.grant_tenant('regress_server', hatchet.default_tenant())$$) AS grant_tenant;
RESET ROLE;
SET ROLE regress_admin;
SELECT hatchet.create_tenant('regress_third', '00000000-0000-7000-8000-00000000a003') AS third;
SELECT hatchet.grant_tenant('regress_unbound', '00000000-0000-7000-8000-00000000a003') AS granted;
SELECT hatchet.put_rate_limit('regress_limit', 10, 'MINUTE', tenant_id => :'other') IS NOT NULL AS rate_limit;
SELECT name FROM hatchet.tenants WHERE tenant_id = :'other';
SELECT try('SELECT token_secret FROM hatchet.tenants') AS token_secret;
SELECT try(format($$SELECT * FROM hatchet.find_webhooks(%L)$$, :'other')) AS find_webhooks;
SELECT try('SELECT count(*) FROM hatchet.tasks') AS tasks;
RESET ROLE;

-- ---------------------------------------------------------------------------------------------------------------------
-- Another database of the cluster: CREATE EXTENSION finds the roles already there; a configured name is used (and
-- created when absent)
-- ---------------------------------------------------------------------------------------------------------------------
CREATE DATABASE regress_roles_second;
\c regress_roles_second
SET hatchet.app_role = 'regress_custom_app';
CREATE EXTENSION pg_hatchet;
SELECT kind, role_id FROM hatchet.roles ORDER BY kind;
SELECT has_function_privilege('regress_custom_app', 'hatchet.enqueue(text, jsonb, integer, timestamptz, integer,
                              float8, integer, text, text, text, jsonb, uuid, text, integer, text, jsonb, jsonb, uuid,
                              text)', 'EXECUTE') AS custom_app_enqueues;
\c contrib_regression
DROP DATABASE regress_roles_second;
DROP ROLE regress_custom_app;

-- Clean up the login roles (their bindings first: a binding does not keep a role from being dropped).
DELETE FROM hatchet.tenant_grants WHERE role_id::text LIKE 'regress\_%';
DROP ROLE regress_shop_app, regress_unbound, regress_member, regress_team, regress_server, regress_admin;
DROP FUNCTION public.try(text);
