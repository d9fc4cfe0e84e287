-- sql/setup/roles.sql: the superuser-only steps that let an application's own login role use pg_hatchet
-- (docs/security.md). Not part of the extension: run it with psql, as a superuser, in the database where
-- pg_hatchet is installed, once per application role (running it again changes nothing):
--
--   psql -v role=shop_app -v tenant_name=shop -f sql/setup/roles.sql DBNAME
--
-- Variables:
--   role         (required) the application's login role; created (LOGIN, no password) if it does not exist. Give
--                it a password afterwards with psql's \password, or use your usual authentication.
--   kinds        which pg_hatchet group roles it joins, comma-separated: app (enqueue, trigger, read status),
--                consumer (dequeue, complete, fail, refresh), server, admin. Default: app,consumer.
--   tenant_name  the tenant it is bound to, created if there is none of that name; or
--   tenant       the id of an existing tenant. Neither: the default tenant.
-- Everything happens in one transaction: an error leaves nothing behind.

\set ON_ERROR_STOP on
\if :{?role}
\else
    \echo 'usage: psql -v role=ROLE [-v kinds=app,consumer] [-v tenant_name=NAME | -v tenant=UUID] -f sql/setup/roles.sql DBNAME'
    \quit
\endif
\if :{?kinds}
\else
    \set kinds 'app,consumer'
\endif
\if :{?tenant_name}
\else
    \set tenant_name ''
\endif
\if :{?tenant}
\else
    \set tenant ''
\endif

BEGIN;
-- A safe path for everything below (a schema on the superuser's own path could otherwise shadow what it calls).
SET LOCAL search_path = pg_catalog, pg_temp;
-- (psql does not substitute variables inside the DO block's body: the values travel as transaction-local settings)
SELECT pg_catalog.set_config('hatchet_setup.role', :'role', true) AS role_set,
       pg_catalog.set_config('hatchet_setup.kinds', :'kinds', true) AS kinds_set,
       pg_catalog.set_config('hatchet_setup.tenant_name', :'tenant_name', true) AS tenant_name_set,
       pg_catalog.set_config('hatchet_setup.tenant', :'tenant', true) AS tenant_set \gset

DO $$
DECLARE
    v_role        text   := pg_catalog.current_setting('hatchet_setup.role');
    v_kinds       text[] := pg_catalog.string_to_array(
                                pg_catalog.replace(pg_catalog.current_setting('hatchet_setup.kinds'), ' ', ''), ',');
    v_tenant_name text   := nullif(pg_catalog.current_setting('hatchet_setup.tenant_name'), '');
    v_tenant      uuid   := nullif(pg_catalog.current_setting('hatchet_setup.tenant'), '')::uuid;
    v_kind        text;
    v_group       regrole;
BEGIN
    IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) current_user) THEN
        RAISE EXCEPTION 'sql/setup/roles.sql must be run by a superuser' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'pg_hatchet') THEN
        RAISE EXCEPTION 'pg_hatchet is not installed in database "%"', pg_catalog.current_database()
            USING HINT = 'CREATE EXTENSION pg_hatchet first.';
    END IF;
    IF v_role IS NULL OR v_role OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'the role variable must name a role';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) v_role) THEN
        EXECUTE pg_catalog.format('CREATE ROLE %I LOGIN', v_role);
    END IF;
    IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) v_role) THEN
        RAISE EXCEPTION 'role "%" is a superuser: it would not be bound to any tenant', v_role;
    END IF;

    FOREACH v_kind IN ARRAY v_kinds LOOP
        SELECT r.role_id INTO v_group FROM hatchet.roles r WHERE r.kind OPERATOR(pg_catalog.=) v_kind;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'unknown kind "%"', v_kind USING HINT = 'The kinds are app, consumer, server and admin.';
        END IF;
        IF NOT pg_catalog.pg_has_role(v_role, v_group, 'MEMBER') THEN
            EXECUTE pg_catalog.format('GRANT %s TO %I', v_group, v_role);
        END IF;
    END LOOP;

    IF v_tenant_name IS NOT NULL THEN
        SELECT t.tenant_id INTO v_tenant FROM hatchet.tenants t WHERE t.name OPERATOR(pg_catalog.=) v_tenant_name;
        IF NOT FOUND THEN
            v_tenant := hatchet.create_tenant(v_tenant_name);
        END IF;
    END IF;
    PERFORM hatchet.grant_tenant(pg_catalog.quote_ident(v_role)::regrole,
                                 coalesce(v_tenant, hatchet.default_tenant()));
END
$$;

-- What the role has now: its pg_hatchet group roles and its tenants.
SELECT g.kind, g.role_id AS group_role
FROM hatchet.roles g
WHERE pg_catalog.pg_has_role(:'role', g.role_id, 'MEMBER')
ORDER BY g.kind;
SELECT l.role_id AS role, l.tenant_name FROM hatchet.list_tenant_grants(pg_catalog.quote_ident(:'role')::regrole) l;
COMMIT;
