-- Incoming webhooks: their definitions (how a request is authenticated and which event it becomes) and the receiving
-- side, a request turned into an event through hatchet.push_event.
--
-- Public: create_webhook, update_webhook, delete_webhook, find_webhooks, receive_webhook. Internal: _check_webhook_auth,
-- _check_webhook_event (what create and update share).
-- Calls: tenants.sql, events.sql (push_event).

-- Checks an auth config for its type: the fields the receiving side needs must be present and non-empty strings.
CREATE FUNCTION hatchet._check_webhook_auth(p_type text, p_auth jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
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

-- Checks what a webhook turns a request into, as create_webhook and update_webhook take it: the CEL expressions must
-- compile (an empty event key expression is refused; an empty scope expression means none; NULL: unchanged) and the
-- static payload must be a JSON object.
CREATE FUNCTION hatchet._check_webhook_event(p_key_expression text, p_scope_expression text, p_static_payload jsonb)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_key_expression = '' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['a webhook needs an event key expression']);
    END IF;
    IF p_key_expression IS NOT NULL THEN
        PERFORM hatchet.cel_check(p_key_expression);
    END IF;
    IF coalesce(p_scope_expression, '') <> '' THEN
        PERFORM hatchet.cel_check(p_scope_expression);
    END IF;
    IF p_static_payload IS NOT NULL AND jsonb_typeof(p_static_payload) <> 'object' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['static payload must be a JSON object']);
    END IF;
END
$$;
COMMENT ON FUNCTION hatchet._check_webhook_event(text, text, jsonb) IS
    'reject a webhook''s empty event key expression, a CEL expression that does not compile or a non-object payload';

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
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(create_webhook.tenant_id);
    v_id     uuid := hatchet.gen_id();
BEGIN
    IF coalesce(create_webhook.name, '') = '' THEN
        PERFORM hatchet.raise_error('invalid_argument', ARRAY['a webhook needs a name']);
    END IF;
    IF NOT coalesce(create_webhook.source_name IN ('GENERIC', 'GITHUB', 'STRIPE', 'SLACK', 'LINEAR', 'SVIX'), false) THEN
        PERFORM hatchet.raise_error('invalid_argument',
            ARRAY[format('unknown webhook source %s', coalesce(create_webhook.source_name, 'null'))]);
    END IF;
    PERFORM hatchet._check_webhook_event(coalesce(create_webhook.event_key_expression, ''),
                                         create_webhook.scope_expression, create_webhook.static_payload);
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
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM hatchet._check_webhook_event(update_webhook.event_key_expression, update_webhook.scope_expression,
                                         update_webhook.static_payload);
    UPDATE hatchet.webhooks w
    SET event_key_expression = coalesce(update_webhook.event_key_expression, w.event_key_expression),
        scope_expression     = CASE WHEN update_webhook.scope_expression IS NULL THEN w.scope_expression
                                    ELSE nullif(update_webhook.scope_expression, '') END,
        static_payload       = coalesce(update_webhook.static_payload, w.static_payload),
        return_event         = coalesce(update_webhook.return_event, w.return_event),
        updated_at           = now()
    WHERE w.tenant_id = hatchet._tenant(update_webhook.tenant_id) AND w.name = update_webhook.name;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION hatchet.update_webhook(text, text, text, jsonb, boolean, uuid) IS
    'change a webhook''s event key / scope expression, static payload or response mode; false if there is none';

CREATE FUNCTION hatchet.delete_webhook(name text, tenant_id uuid DEFAULT NULL) RETURNS boolean
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH gone AS (
        DELETE FROM hatchet.webhooks w
        WHERE w.tenant_id = hatchet._tenant(delete_webhook.tenant_id) AND w.name = delete_webhook.name
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
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT w.id, w.name, w.source_name, w.event_key_expression, w.scope_expression, w.static_payload, w.auth_type,
           w.auth, w.return_event, w.created_at, w.updated_at, count(*) OVER ()
    FROM hatchet.webhooks w
    WHERE w.tenant_id = hatchet._tenant(find_webhooks.tenant_id)
      AND (find_webhooks.names IS NULL OR w.name = ANY (find_webhooks.names))
      AND (find_webhooks.source_names IS NULL OR w.source_name = ANY (find_webhooks.source_names))
    ORDER BY w.created_at, w.name
    LIMIT greatest(coalesce(find_webhooks.max_rows, 50), 0) OFFSET greatest(coalesce(find_webhooks.skip_rows, 0), 0)
$$;
COMMENT ON FUNCTION hatchet.find_webhooks(uuid, text[], text[], integer, integer) IS
    'a page of a tenant''s webhooks by name and source, with the total count (includes the auth secrets)';

-- The receiving side, after the caller checked the request's authentication: the payload = body with the static
-- payload merged over it, the event key (and scope) from the webhook's CEL expressions over {input: payload,
-- headers} (so they can use static values, as in Hatchet), pushed like any event with the webhook's name in the
-- engine's metadata key hatchet__webhook_name (the REST API's triggeringWebhookName). Returns the event id, key,
-- scope and payload.
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
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p_tenant uuid := hatchet._tenant(receive_webhook.tenant_id);
    v_hook   record;
    v_vars   jsonb;
    v_value  jsonb;
BEGIN
    SELECT * INTO v_hook FROM hatchet.webhooks w WHERE w.tenant_id = p_tenant AND w.name = receive_webhook.name;
    IF NOT FOUND THEN
        PERFORM hatchet.raise_error('unknown_object', ARRAY['webhook', receive_webhook.name]);
    END IF;
    event_payload := CASE WHEN jsonb_typeof(receive_webhook.body) = 'object' THEN receive_webhook.body
                          ELSE jsonb_build_object('body', receive_webhook.body) END
                     || coalesce(v_hook.static_payload, '{}');
    v_vars := jsonb_build_object('input', event_payload, 'headers', coalesce(receive_webhook.headers, '{}'));
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
    event_id := hatchet.push_event(event_key, event_payload, jsonb_build_object('hatchet__webhook_name', v_hook.name),
                                   event_scope, p_tenant);
END
$$;
COMMENT ON FUNCTION hatchet.receive_webhook(text, jsonb, jsonb, uuid) IS
    'turn an (authenticated) incoming webhook request into an event: body + static payload, key and scope from CEL';
