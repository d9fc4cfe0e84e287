-- Tenants: every row of pg_hatchet belongs to exactly one tenant (hatchet.tenants in schema.sql). Every API function
-- resolves the tenant it acts for with hatchet._tenant (pg_hatchet/src/security.rs): a trusted caller's call that
-- names no tenant uses the default one; other callers act for the tenants they are bound to (security.sql).
--
-- Public: default_tenant.
-- Calls: nothing (every other function file calls hatchet.default_tenant).

CREATE FUNCTION hatchet.default_tenant() RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT '707d0855-80ab-4e1f-a156-f1c4546cbf52'::uuid $$;
COMMENT ON FUNCTION hatchet.default_tenant() IS 'the tenant used when a call names none';
