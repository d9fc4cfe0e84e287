-- Roles and privileges (docs/security.md): the four group roles, the tenants each role is bound to, and who may
-- execute what. pg_hatchet lives in the application's own database, so installing it must give no role more power
-- than it had: PUBLIC may use nothing, the tables are reached only through the API functions, and a role that is
-- not trusted (see below) acts only for the tenants an administrator bound it to.
--
-- The group roles (NOLOGIN; names from the settings hatchet.app_role, hatchet.consumer_role, hatchet.server_role and
-- hatchet.admin_role, read when this script runs; roles are cluster-wide, so an existing role is used as it is):
--   app       enqueue and trigger runs, push events, cancel and replay, read status, results and logs
--   consumer  SQL consumers: dequeue, complete, fail, refresh_timeout, put_log, put_stream_chunk
--   server    hatchet-server: every API function except tenant administration, the token tables, webhook secrets
--   admin     tenants and bindings, definitions, every API function except those that return secrets
-- Trusted callers (a superuser, or a role with the privileges of the server or admin role) act for any tenant, as
-- before; app and consumer members act for their bound tenants only (hatchet._tenant, pg_hatchet/src/security.rs).
-- The API functions are SECURITY DEFINER (they run as the extension's owner) with the pinned search_path; the
-- internal `_` helpers are SECURITY INVOKER and executable by nobody but the owner, who is the current user inside
-- an API function. Maintenance (run_maintenance, maintain_partitions) stays with superusers and the background worker.
--
-- This file runs last (finalize in lib.rs) so that the privileges cover every function defined before it.
--
-- Public: grant_tenant, revoke_tenant, list_tenant_grants, create_tenant, my_tenants. Internal: _security_changed,
-- and in Rust (security.rs) _caller, _tenant, _invalidate_security.
-- Calls: tenants.sql.

-- ---------------------------------------------------------------------------------------------------------------------
-- Tables (kept here rather than in schema.sql: they exist for the privilege model and are created with it)
-- ---------------------------------------------------------------------------------------------------------------------

CREATE TABLE hatchet.roles (
    kind    text    NOT NULL,
    role_id regrole NOT NULL,
    CONSTRAINT roles_pkey PRIMARY KEY (kind),
    CONSTRAINT role_kind_known CHECK (kind IN ('app', 'consumer', 'server', 'admin'))
);
COMMENT ON TABLE hatchet.roles IS
    'the group role of each kind (app, consumer, server, admin), chosen when the extension was created';

CREATE TABLE hatchet.tenant_grants (
    tenant_id  uuid        NOT NULL REFERENCES hatchet.tenants ON DELETE CASCADE,
    -- a role, or a group role whose members it binds too (membership with the group's privileges)
    role_id    regrole     NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT tenant_grants_pkey PRIMARY KEY (tenant_id, role_id)
);
COMMENT ON TABLE hatchet.tenant_grants IS
    'which tenants a role that is not trusted may act for (hatchet.grant_tenant, hatchet.revoke_tenant)';
-- Bindings are configuration: pg_dump keeps them.
SELECT pg_catalog.pg_extension_config_dump('hatchet.tenant_grants', '');

-- Every backend caches who is trusted and which tenants a role is bound to (security.rs); a change to either table
-- tells them all to look again.
CREATE FUNCTION hatchet._security_changed() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM hatchet._invalidate_security(TG_RELID);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION hatchet._security_changed() IS
    'trigger: the roles or tenant bindings changed; every backend drops its cached answers';
CREATE TRIGGER roles_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON hatchet.roles
    FOR EACH STATEMENT EXECUTE FUNCTION hatchet._security_changed();
CREATE TRIGGER tenant_grants_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON hatchet.tenant_grants
    FOR EACH STATEMENT EXECUTE FUNCTION hatchet._security_changed();

-- ---------------------------------------------------------------------------------------------------------------------
-- The group roles: created when absent (another database of the cluster may have created them already)
-- ---------------------------------------------------------------------------------------------------------------------

DO $$
DECLARE
    v_kind text;
    v_name text;
BEGIN
    FOREACH v_kind IN ARRAY ARRAY['app', 'consumer', 'server', 'admin'] LOOP
        v_name := pg_catalog.current_setting('hatchet.' || v_kind || '_role');
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = v_name) THEN
            BEGIN
                EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', v_name);
                EXECUTE pg_catalog.format('COMMENT ON ROLE %I IS %L', v_name,
                                          'pg_hatchet ' || v_kind || ' group role (docs/security.md)');
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- a CREATE EXTENSION in another database created it first
            END;
        END IF;
        INSERT INTO hatchet.roles (kind, role_id) VALUES (v_kind, pg_catalog.quote_ident(v_name)::regrole);
    END LOOP;
END
$$;

-- ---------------------------------------------------------------------------------------------------------------------
-- Tenants and bindings
-- ---------------------------------------------------------------------------------------------------------------------

CREATE FUNCTION hatchet.create_tenant(name text, tenant_id uuid DEFAULT NULL) RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id uuid := coalesce(create_tenant.tenant_id, hatchet.gen_id());
BEGIN
    IF create_tenant.name IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['name']);
    END IF;
    IF create_tenant.name = '' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['tenant name must not be empty']);
    END IF;
    INSERT INTO hatchet.tenants (tenant_id, name) VALUES (v_id, create_tenant.name)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        PERFORM hatchet.raise_error('duplicate_object', ARRAY['tenant',
            CASE WHEN EXISTS (SELECT 1 FROM hatchet.tenants t WHERE t.tenant_id = v_id) THEN v_id::text
                 ELSE create_tenant.name END]);
    END IF;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION hatchet.create_tenant(text, uuid) IS 'create a tenant (name unique) and return its id';

CREATE FUNCTION hatchet.grant_tenant(role regrole, tenant uuid) RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF grant_tenant.role IS NULL OR grant_tenant.tenant IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['role and tenant']);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM hatchet.tenants t WHERE t.tenant_id = grant_tenant.tenant) THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['tenant', grant_tenant.tenant::text]);
    END IF;
    INSERT INTO hatchet.tenant_grants (tenant_id, role_id) VALUES (grant_tenant.tenant, grant_tenant.role)
    ON CONFLICT ON CONSTRAINT tenant_grants_pkey DO NOTHING;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION hatchet.grant_tenant(regrole, uuid) IS
    'bind a role (and the roles that have its privileges) to a tenant; false if it already was';

CREATE FUNCTION hatchet.revoke_tenant(role regrole, tenant uuid) RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF revoke_tenant.role IS NULL OR revoke_tenant.tenant IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['role and tenant']);
    END IF;
    DELETE FROM hatchet.tenant_grants g
    WHERE g.tenant_id = revoke_tenant.tenant AND g.role_id = revoke_tenant.role;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION hatchet.revoke_tenant(regrole, uuid) IS
    'remove a role''s binding to a tenant; false if there was none';

CREATE FUNCTION hatchet.list_tenant_grants(role regrole DEFAULT NULL)
RETURNS TABLE (role_id regrole, tenant_id uuid, tenant_name text, granted_at timestamptz)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT g.role_id, g.tenant_id, t.name, g.granted_at
    FROM hatchet.tenant_grants g JOIN hatchet.tenants t ON t.tenant_id = g.tenant_id
    WHERE list_tenant_grants.role IS NULL OR g.role_id = list_tenant_grants.role
    ORDER BY g.role_id::text, t.name
$$;
COMMENT ON FUNCTION hatchet.list_tenant_grants(regrole) IS 'the tenant bindings, of one role or of all';

CREATE FUNCTION hatchet.my_tenants() RETURNS TABLE (tenant_id uuid, name text)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.tenant_id, t.name FROM hatchet.tenants t
    WHERE EXISTS (SELECT 1 FROM hatchet.tenant_grants g JOIN pg_catalog.pg_roles r ON r.oid = g.role_id
                  WHERE g.tenant_id = t.tenant_id AND pg_catalog.pg_has_role(hatchet._caller(), r.oid, 'USAGE'))
    ORDER BY t.name
$$;
COMMENT ON FUNCTION hatchet.my_tenants() IS 'the tenants the calling role is bound to';

-- ---------------------------------------------------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------------------------------------------------

-- Granting is a function so that every upgrade script ends with the same call (docs/releasing.md): it applies the
-- lists below to every function that exists, so a function added by an upgrade gets its privileges too.
CREATE FUNCTION hatchet._grant_api() RETURNS void
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
                               'list_events', 'read_stream_chunks', 'run_stream_state', 'durable_log'];
    c_consumer text[] := ARRAY['default_tenant', 'my_tenants', 'dequeue', 'complete', 'complete_many', 'fail',
                               'refresh_timeout', 'running_attempt', 'put_log', 'put_stream_chunk', 'task_status',
                               'task'];
    c_superuser_only text[] := ARRAY['run_maintenance', 'maintain_partitions'];
    c_admin_only     text[] := ARRAY['create_tenant', 'grant_tenant', 'revoke_tenant', 'list_tenant_grants'];
    c_server_only    text[] := ARRAY['find_webhooks', 'alert_channel_secret'];  -- return credentials
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

SELECT hatchet._grant_api();
