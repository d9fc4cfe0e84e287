-- pg_hatchet 0.3.0 -> 0.4.0 (docs/releasing.md). One section per topic; each CREATE OR REPLACE carries the same
-- text as sql/*.sql, and when a function appears twice the last copy is the one that counts.
\echo Use "ALTER EXTENSION pg_hatchet UPDATE TO '0.4.0'" to load this file. \quit

-- ---------------------------------------------------------------------------------------------------------------------
-- 1. Privileges as a function (sql/security.sql): hatchet._grant_api applies the grant lists to every function that
--    exists; 0.3.0 ran the same statements once in a DO block.
-- ---------------------------------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION hatchet._grant_api() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_app      text := (SELECT r.role_id::text FROM hatchet.roles r WHERE r.kind = 'app');
    v_consumer text := (SELECT r.role_id::text FROM hatchet.roles r WHERE r.kind = 'consumer');
    v_server   text := (SELECT r.role_id::text FROM hatchet.roles r WHERE r.kind = 'server');
    v_admin    text := (SELECT r.role_id::text FROM hatchet.roles r WHERE r.kind = 'admin');
    -- Exactly what each kind calls; the server and admin roles get every API function (no leading _) but these.
    c_app      text[] := ARRAY['default_tenant', 'my_tenants', 'enqueue', 'enqueue_many', 'run_workflow', 'schedule',
                               'push_event', 'push_events', 'cancel', 'cancel_run', 'replay_tasks', 'task_status',
                               'task', 'task_events', 'task_logs', 'run_status', 'run', 'run_tasks', 'run_events',
                               'run_children', 'run_shape', 'list_runs', 'finished_runs', 'find_runs_by_metadata',
                               'list_events', 'read_stream_chunks', 'run_stream_state'];
    c_consumer text[] := ARRAY['default_tenant', 'my_tenants', 'dequeue', 'complete', 'complete_many', 'fail',
                               'refresh_timeout', 'running_attempt', 'put_log', 'put_stream_chunk', 'task_status',
                               'task'];
    c_superuser_only text[] := ARRAY['run_maintenance', 'maintain_partitions'];
    c_admin_only     text[] := ARRAY['create_tenant', 'grant_tenant', 'revoke_tenant', 'list_tenant_grants'];
    c_server_only    text[] := ARRAY['find_webhooks'];  -- returns webhook credentials
    v_fn   regprocedure;
    v_name text;
BEGIN
    REVOKE ALL ON ALL TABLES IN SCHEMA hatchet FROM PUBLIC;
    REVOKE ALL ON ALL SEQUENCES IN SCHEMA hatchet FROM PUBLIC;
    REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA hatchet FROM PUBLIC;
    EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA hatchet TO %s, %s, %s, %s', v_app, v_consumer, v_server, v_admin);

    FOR v_fn, v_name IN
        SELECT p.oid::regprocedure, p.proname FROM pg_catalog.pg_proc p
        WHERE p.pronamespace = 'hatchet'::regnamespace AND p.prokind IN ('f', 'p')
        ORDER BY p.oid
    LOOP
        IF v_name = ANY (c_app) THEN
            EXECUTE pg_catalog.format('GRANT EXECUTE ON ROUTINE %s TO %s', v_fn, v_app);
        END IF;
        IF v_name = ANY (c_consumer) THEN
            EXECUTE pg_catalog.format('GRANT EXECUTE ON ROUTINE %s TO %s', v_fn, v_consumer);
        END IF;
        CONTINUE WHEN v_name LIKE '\_%' OR v_name = ANY (c_superuser_only);
        IF NOT v_name = ANY (c_admin_only) THEN
            EXECUTE pg_catalog.format('GRANT EXECUTE ON ROUTINE %s TO %s', v_fn, v_server);
        END IF;
        IF NOT v_name = ANY (c_server_only) THEN
            EXECUTE pg_catalog.format('GRANT EXECUTE ON ROUTINE %s TO %s', v_fn, v_admin);
        END IF;
    END LOOP;

    -- The server's own statements (hatchet-server/src/db/tenants.rs, db/maintenance.rs): token secrets and API
    -- tokens, and the queue depth gauge. Only the server role may read token_secret.
    EXECUTE pg_catalog.format('GRANT SELECT, UPDATE (token_secret) ON hatchet.tenants TO %s', v_server);
    EXECUTE pg_catalog.format('GRANT SELECT, INSERT, UPDATE ON hatchet.api_tokens TO %s', v_server);
    EXECUTE pg_catalog.format('GRANT SELECT ON hatchet.ready_queue TO %s', v_server);
    EXECUTE pg_catalog.format('GRANT SELECT (tenant_id, name, created_at) ON hatchet.tenants TO %s', v_admin);
END
$$;
COMMENT ON FUNCTION hatchet._grant_api() IS
    'revokes everything from PUBLIC and grants each group role exactly its API (run at install and by every upgrade)';


-- ---------------------------------------------------------------------------------------------------------------------
-- Last: privileges for everything this script created (keep this the final statement).
-- ---------------------------------------------------------------------------------------------------------------------

SELECT hatchet._grant_api();
