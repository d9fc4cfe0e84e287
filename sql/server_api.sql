-- What hatchet-server's REST API needs beyond the core functions: event filters addressed by workflow id (the SDK
-- names workflows by their public UUID, hatchet.create_filter by name), filter updates, and incoming webhooks
-- (definitions plus the receiving side: a request turned into an event through hatchet.push_event).

-- ---------------------------------------------------------------------------------------------------------------------
-- Filters
-- ---------------------------------------------------------------------------------------------------------------------

-- Filters of a tenant, optionally only some ids / workflows (public ids) / scopes, one page of them, with the total
-- number that matched (for pagination).
CREATE FUNCTION hatchet.find_filters(
    tenant_id    uuid,
    filter_ids   uuid[]  DEFAULT NULL,
    workflow_ids uuid[]  DEFAULT NULL,
    scopes       text[]  DEFAULT NULL,
    max_rows     integer DEFAULT 50,
    skip_rows    integer DEFAULT 0
) RETURNS TABLE (filter_id uuid, workflow_id uuid, workflow text, scope text, expression text, payload jsonb,
                 is_declarative boolean, created_at timestamptz, total bigint)
LANGUAGE sql STABLE
AS $$
    SELECT f.id, w.external_id, w.name, f.scope, f.expression, f.payload, f.is_declarative, f.created_at,
           count(*) OVER ()
    FROM hatchet.event_filters f
    JOIN hatchet.workflows w ON w.tenant_id = f.tenant_id AND w.id = f.workflow_id
    WHERE f.tenant_id = find_filters.tenant_id
      AND (find_filters.filter_ids IS NULL OR f.id = ANY (find_filters.filter_ids))
      AND (find_filters.workflow_ids IS NULL OR w.external_id = ANY (find_filters.workflow_ids))
      AND (find_filters.scopes IS NULL OR f.scope = ANY (find_filters.scopes))
    ORDER BY f.created_at, f.id
    LIMIT greatest(coalesce(find_filters.max_rows, 50), 0) OFFSET greatest(coalesce(find_filters.skip_rows, 0), 0)
$$;
COMMENT ON FUNCTION hatchet.find_filters(uuid, uuid[], uuid[], text[], integer, integer) IS
    'a page of a tenant''s event filters by id, workflow public id and scope, with the total count';

CREATE FUNCTION hatchet.create_workflow_filter(
    workflow_id uuid,
    scope       text,
    expression  text,
    payload     jsonb DEFAULT '{}',
    tenant_id   uuid  DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql
AS $$
DECLARE
    p_tenant uuid := coalesce(create_workflow_filter.tenant_id, hatchet.default_tenant());
    v_name   text;
BEGIN
    IF create_workflow_filter.workflow_id IS NULL THEN
        PERFORM hatchet.raise_error('null_argument', ARRAY['workflow_id']);
    END IF;
    SELECT w.name INTO v_name FROM hatchet.workflows w
    WHERE w.tenant_id = p_tenant AND w.external_id = create_workflow_filter.workflow_id;
    IF v_name IS NULL THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['workflow', create_workflow_filter.workflow_id::text]);
    END IF;
    RETURN hatchet.create_filter(v_name, create_workflow_filter.scope, create_workflow_filter.expression,
                                 coalesce(create_workflow_filter.payload, '{}'), p_tenant);
END
$$;
COMMENT ON FUNCTION hatchet.create_workflow_filter(uuid, text, text, jsonb, uuid) IS
    'hatchet.create_filter for a workflow named by its public id';

-- Changes the given fields (NULL keeps a field). False if there is no such filter.
CREATE FUNCTION hatchet.update_filter(
    filter_id  uuid,
    expression text  DEFAULT NULL,
    scope      text  DEFAULT NULL,
    payload    jsonb DEFAULT NULL,
    tenant_id  uuid  DEFAULT NULL
) RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    p_tenant uuid := coalesce(update_filter.tenant_id, hatchet.default_tenant());
BEGIN
    IF update_filter.expression = '' OR update_filter.scope = '' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['a filter needs a scope and an expression']);
    END IF;
    IF update_filter.expression IS NOT NULL THEN
        PERFORM hatchet.cel_check(update_filter.expression);
    END IF;
    IF update_filter.payload IS NOT NULL THEN
        PERFORM hatchet._check_payload('payload', update_filter.payload);
    END IF;
    UPDATE hatchet.event_filters f
    SET expression = coalesce(update_filter.expression, f.expression),
        scope      = coalesce(update_filter.scope, f.scope),
        payload    = coalesce(update_filter.payload, f.payload)
    WHERE f.tenant_id = p_tenant AND f.id = update_filter.filter_id;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION hatchet.update_filter(uuid, text, text, jsonb, uuid) IS
    'change an event filter''s expression, scope or payload (NULL keeps it); false if there is no such filter';

-- ---------------------------------------------------------------------------------------------------------------------
-- Incoming webhooks
-- ---------------------------------------------------------------------------------------------------------------------

CREATE TABLE hatchet.webhooks (
    tenant_id            uuid        NOT NULL REFERENCES hatchet.tenants ON DELETE CASCADE,
    -- tenant-unique; the receiving URL is /api/v1/stable/tenants/{tenant}/webhooks/{name}
    name                 text        NOT NULL,
    id                   uuid        NOT NULL,
    source_name          text        NOT NULL,
    -- CEL over {input: request body, headers: {lower-case name: value}}, giving the event key / scope (strings)
    event_key_expression text        NOT NULL,
    scope_expression     text,
    -- merged over the request body to make the event payload
    static_payload       jsonb,
    auth_type            text        NOT NULL,
    -- the secrets checked on every request: {username, password} | {headerName, apiKey} |
    -- {algorithm, encoding, signatureHeaderName, signingSecret}; never returned by the API
    auth                 jsonb       NOT NULL,
    return_event         boolean     NOT NULL DEFAULT true,
    created_at           timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at           timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT webhooks_pkey PRIMARY KEY (tenant_id, name),
    CONSTRAINT webhook_name_not_empty CHECK (name <> ''),
    CONSTRAINT webhook_source_known
        CHECK (source_name IN ('GENERIC', 'GITHUB', 'STRIPE', 'SLACK', 'LINEAR', 'SVIX')),
    CONSTRAINT webhook_auth_type_known CHECK (auth_type IN ('BASIC', 'API_KEY', 'HMAC')),
    CONSTRAINT webhook_auth_is_object CHECK (jsonb_typeof(auth) = 'object'),
    CONSTRAINT webhook_static_payload_is_object CHECK (static_payload IS NULL OR jsonb_typeof(static_payload) = 'object')
);
COMMENT ON TABLE hatchet.webhooks IS
    'incoming webhooks: how a request is authenticated and which event (key, scope, payload) it becomes';

-- Checks an auth config for its type: the fields the receiving side needs must be present and non-empty strings.
CREATE FUNCTION hatchet._check_webhook_auth(p_type text, p_auth jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    v_field text;
    v_fields text[] := CASE p_type
        WHEN 'BASIC' THEN ARRAY['username', 'password']
        WHEN 'API_KEY' THEN ARRAY['headerName', 'apiKey']
        WHEN 'HMAC' THEN ARRAY['algorithm', 'encoding', 'signatureHeaderName', 'signingSecret']
    END;
BEGIN
    IF v_fields IS NULL THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('auth type must be BASIC, API_KEY or HMAC, not %s', coalesce(p_type, 'null'))]);
    END IF;
    IF p_auth IS NULL OR jsonb_typeof(p_auth) <> 'object' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['auth must be a JSON object']);
    END IF;
    FOREACH v_field IN ARRAY v_fields LOOP
        IF jsonb_typeof(p_auth -> v_field) IS DISTINCT FROM 'string' OR p_auth ->> v_field = '' THEN
            PERFORM hatchet.raise_error('invalid_argument',
                ARRAY[format('%s auth needs a non-empty "%s"', p_type, v_field)]);
        END IF;
    END LOOP;
    IF p_type = 'HMAC' AND NOT (p_auth ->> 'algorithm' IN ('SHA1', 'SHA256', 'SHA512', 'MD5')) THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('HMAC algorithm must be SHA1, SHA256, SHA512 or MD5, not %s', p_auth ->> 'algorithm')]);
    END IF;
    IF p_type = 'HMAC' AND NOT (p_auth ->> 'encoding' IN ('HEX', 'BASE64', 'BASE64URL')) THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('HMAC encoding must be HEX, BASE64 or BASE64URL, not %s', p_auth ->> 'encoding')]);
    END IF;
END
$$;

CREATE FUNCTION hatchet.create_webhook(
    name                 text,
    source_name          text,
    event_key_expression text,
    auth_type            text,
    auth                 jsonb,
    scope_expression     text    DEFAULT NULL,
    static_payload       jsonb   DEFAULT NULL,
    return_event         boolean DEFAULT true,
    tenant_id            uuid    DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql
AS $$
DECLARE
    p_tenant uuid := coalesce(create_webhook.tenant_id, hatchet.default_tenant());
    v_id     uuid := hatchet.gen_id();
BEGIN
    IF coalesce(create_webhook.name, '') = '' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['a webhook needs a name']);
    END IF;
    IF NOT coalesce(create_webhook.source_name IN ('GENERIC', 'GITHUB', 'STRIPE', 'SLACK', 'LINEAR', 'SVIX'), false) THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('unknown webhook source %s', coalesce(create_webhook.source_name, 'null'))]);
    END IF;
    IF coalesce(create_webhook.event_key_expression, '') = '' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['a webhook needs an event key expression']);
    END IF;
    PERFORM hatchet.cel_check(create_webhook.event_key_expression);
    IF coalesce(create_webhook.scope_expression, '') <> '' THEN
        PERFORM hatchet.cel_check(create_webhook.scope_expression);
    END IF;
    IF create_webhook.static_payload IS NOT NULL AND jsonb_typeof(create_webhook.static_payload) <> 'object' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['static payload must be a JSON object']);
    END IF;
    PERFORM hatchet._check_webhook_auth(create_webhook.auth_type, create_webhook.auth);
    INSERT INTO hatchet.webhooks (tenant_id, name, id, source_name, event_key_expression, scope_expression,
                                  static_payload, auth_type, auth, return_event)
    VALUES (p_tenant, create_webhook.name, v_id, create_webhook.source_name, create_webhook.event_key_expression,
            nullif(create_webhook.scope_expression, ''), create_webhook.static_payload, create_webhook.auth_type,
            create_webhook.auth, coalesce(create_webhook.return_event, true))
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        PERFORM hatchet.raise_error('duplicate_object', ARRAY['webhook', create_webhook.name]);
    END IF;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION hatchet.create_webhook(text, text, text, text, jsonb, text, jsonb, boolean, uuid) IS
    'define an incoming webhook (name unique per tenant) with its auth, event key / scope CEL and static payload';

-- Changes the given fields (NULL keeps a field; an empty scope expression removes it). False if there is none.
CREATE FUNCTION hatchet.update_webhook(
    name                 text,
    event_key_expression text    DEFAULT NULL,
    scope_expression     text    DEFAULT NULL,
    static_payload       jsonb   DEFAULT NULL,
    return_event         boolean DEFAULT NULL,
    tenant_id            uuid    DEFAULT NULL
) RETURNS boolean
LANGUAGE plpgsql
AS $$
BEGIN
    IF update_webhook.event_key_expression = '' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['a webhook needs an event key expression']);
    END IF;
    IF update_webhook.event_key_expression IS NOT NULL THEN
        PERFORM hatchet.cel_check(update_webhook.event_key_expression);
    END IF;
    IF coalesce(update_webhook.scope_expression, '') <> '' THEN
        PERFORM hatchet.cel_check(update_webhook.scope_expression);
    END IF;
    IF update_webhook.static_payload IS NOT NULL AND jsonb_typeof(update_webhook.static_payload) <> 'object' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['static payload must be a JSON object']);
    END IF;
    UPDATE hatchet.webhooks w
    SET event_key_expression = coalesce(update_webhook.event_key_expression, w.event_key_expression),
        scope_expression     = CASE WHEN update_webhook.scope_expression IS NULL THEN w.scope_expression
                                    ELSE nullif(update_webhook.scope_expression, '') END,
        static_payload       = coalesce(update_webhook.static_payload, w.static_payload),
        return_event         = coalesce(update_webhook.return_event, w.return_event),
        updated_at           = now()
    WHERE w.tenant_id = coalesce(update_webhook.tenant_id, hatchet.default_tenant()) AND w.name = update_webhook.name;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION hatchet.update_webhook(text, text, text, jsonb, boolean, uuid) IS
    'change a webhook''s event key / scope expression, static payload or response mode; false if there is none';

CREATE FUNCTION hatchet.delete_webhook(name text, tenant_id uuid DEFAULT NULL) RETURNS boolean
LANGUAGE sql
AS $$
    WITH gone AS (
        DELETE FROM hatchet.webhooks w
        WHERE w.tenant_id = coalesce(delete_webhook.tenant_id, hatchet.default_tenant()) AND w.name = delete_webhook.name
        RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM gone)
$$;
COMMENT ON FUNCTION hatchet.delete_webhook(text, uuid) IS 'delete a webhook; false if there was none';

-- Webhooks of a tenant (optionally by name / source), one page, with the total count. `auth` is included because
-- the receiving side needs it; the REST API never returns it.
CREATE FUNCTION hatchet.find_webhooks(
    tenant_id    uuid,
    names        text[]  DEFAULT NULL,
    source_names text[]  DEFAULT NULL,
    max_rows     integer DEFAULT 50,
    skip_rows    integer DEFAULT 0
) RETURNS TABLE (webhook_id uuid, name text, source_name text, event_key_expression text, scope_expression text,
                 static_payload jsonb, auth_type text, auth jsonb, return_event boolean, created_at timestamptz,
                 updated_at timestamptz, total bigint)
LANGUAGE sql STABLE
AS $$
    SELECT w.id, w.name, w.source_name, w.event_key_expression, w.scope_expression, w.static_payload, w.auth_type,
           w.auth, w.return_event, w.created_at, w.updated_at, count(*) OVER ()
    FROM hatchet.webhooks w
    WHERE w.tenant_id = find_webhooks.tenant_id
      AND (find_webhooks.names IS NULL OR w.name = ANY (find_webhooks.names))
      AND (find_webhooks.source_names IS NULL OR w.source_name = ANY (find_webhooks.source_names))
    ORDER BY w.created_at, w.name
    LIMIT greatest(coalesce(find_webhooks.max_rows, 50), 0) OFFSET greatest(coalesce(find_webhooks.skip_rows, 0), 0)
$$;
COMMENT ON FUNCTION hatchet.find_webhooks(uuid, text[], text[], integer, integer) IS
    'a page of a tenant''s webhooks by name and source, with the total count (includes the auth secrets)';

-- The receiving side, after the caller checked the request's authentication: the event key (and scope) from the
-- webhook's CEL expressions over {input: body, headers}, the payload = body with the static payload merged over it,
-- pushed like any event. Returns the event id, key, scope and payload.
CREATE FUNCTION hatchet.receive_webhook(
    name      text,
    body      jsonb,
    headers   jsonb DEFAULT '{}',
    tenant_id uuid  DEFAULT NULL,
    OUT event_id uuid,
    OUT event_key text,
    OUT event_scope text,
    OUT event_payload jsonb
)
LANGUAGE plpgsql
AS $$
DECLARE
    p_tenant uuid := coalesce(receive_webhook.tenant_id, hatchet.default_tenant());
    v_hook   record;
    v_vars   jsonb;
    v_value  jsonb;
BEGIN
    SELECT * INTO v_hook FROM hatchet.webhooks w WHERE w.tenant_id = p_tenant AND w.name = receive_webhook.name;
    IF NOT FOUND THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['webhook', receive_webhook.name]);
    END IF;
    v_vars := jsonb_build_object('input', coalesce(receive_webhook.body, '{}'),
                                 'headers', coalesce(receive_webhook.headers, '{}'));
    v_value := hatchet.cel_eval(v_hook.event_key_expression, v_vars);
    IF jsonb_typeof(v_value) IS DISTINCT FROM 'string' OR v_value #>> '{}' = '' THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('the event key expression of webhook "%s" gave %s, not a non-empty string',
                         v_hook.name, coalesce(v_value::text, 'null'))]);
    END IF;
    event_key := v_value #>> '{}';
    IF v_hook.scope_expression IS NOT NULL THEN
        v_value := hatchet.cel_eval(v_hook.scope_expression, v_vars);
        IF jsonb_typeof(v_value) IS DISTINCT FROM 'string' THEN
            PERFORM hatchet.raise_error('invalid_argument',
                ARRAY[format('the scope expression of webhook "%s" gave %s, not a string',
                             v_hook.name, coalesce(v_value::text, 'null'))]);
        END IF;
        event_scope := nullif(v_value #>> '{}', '');
    END IF;
    event_payload := CASE WHEN jsonb_typeof(receive_webhook.body) = 'object' THEN receive_webhook.body
                          ELSE jsonb_build_object('body', receive_webhook.body) END
                     || coalesce(v_hook.static_payload, '{}');
    event_id := hatchet.push_event(event_key, event_payload, '{}'::jsonb, event_scope, p_tenant);
END
$$;
COMMENT ON FUNCTION hatchet.receive_webhook(text, jsonb, jsonb, uuid) IS
    'turn an (authenticated) incoming webhook request into an event: key and scope from CEL, body + static payload';
