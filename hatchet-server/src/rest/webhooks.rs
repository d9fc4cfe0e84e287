//! Incoming webhooks (`hatchet.webhooks.*`): CRUD under `/api/v1/stable/tenants/{tenant}/webhooks[/{name}]` (bearer
//! token, Hatchet's `V1Webhook` / `V1WebhookList` shapes; the auth secrets are stored but never returned), and the
//! receiving endpoint `POST /api/v1/stable/tenants/{tenant}/webhooks/{name}` that outside systems call. That one
//! carries no bearer token: the request is authenticated by the webhook's own auth config, checked here:
//!
//! | auth type | the request must carry |
//! |---|---|
//! | `BASIC` | `Authorization: Basic base64(username:password)` |
//! | `API_KEY` | header `headerName` equal to `apiKey` |
//! | `HMAC` | header `signatureHeaderName` = HMAC(`signingSecret`, raw body) with `algorithm` (SHA1, SHA256, SHA512, MD5), `encoding` (HEX, BASE64, BASE64URL); an `sha256=`-style prefix is accepted; the STRIPE, SLACK and SVIX sources use their own signed message and header format (see `signed_message`) |
//!
//! Secrets are compared in constant time. An authenticated request becomes an event through
//! `hatchet.receive_webhook` (`db::webhooks`): key and scope from the webhook's CEL expressions over
//! `{input: body, headers}`, payload = body with the static payload merged over it, pushed with
//! `hatchet.push_event`, so it triggers workflows and satisfies waits like any event. The Stripe, Slack and Svix
//! schemes sign a timestamp: a request whose timestamp is more than five minutes from the server's clock (either
//! way) is refused with 403 and nothing is stored, so a captured request cannot be replayed later. A Slack
//! `url_verification` request is answered with its `challenge` once authenticated, and pushes no event.

use super::query::Body;
use super::resource::{self, Resource, Selection};
use super::shapes::Meta;
use crate::auth::http::AuthTenant;
use crate::db::webhooks as db;
use crate::error::AppError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use subtle::ConstantTimeEq;
use uuid::Uuid;

const COLLECTION: &str = "/v1/stable/tenants/{tenant}/webhooks";
const ONE: &str = "/v1/stable/tenants/{tenant}/webhooks/{webhook}";

/// The bearer-authenticated CRUD routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(COLLECTION, get(resource::list::<Webhook>).post(create))
        .route(
            ONE,
            get(resource::get_one::<Webhook>)
                .patch(update)
                .delete(resource::delete::<Webhook>),
        )
}

/// The public receiving route (no bearer token; see the module docs).
pub(crate) fn receive_router() -> Router<AppState> {
    Router::new().route(ONE, post(receive))
}

/// `V1Webhook`, with the auth secrets the receiving side checks (never serialized).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Webhook {
    metadata: Meta,
    tenant_id: String,
    name: String,
    source_name: String,
    event_key_expression: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope_expression: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    static_payload: Option<Value>,
    auth_type: String,
    return_event_as_response_payload: bool,
    #[serde(skip)]
    auth: Value,
}

/// The optional settings of `V1CreateWebhookRequest` and `V1UpdateWebhookRequest`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OptionsBody {
    #[serde(default)]
    scope_expression: Option<String>,
    #[serde(default)]
    static_payload: Option<Map<String, Value>>,
    #[serde(default)]
    return_event_as_response_payload: Option<bool>,
}

impl From<OptionsBody> for db::WebhookOptions {
    fn from(o: OptionsBody) -> Self {
        db::WebhookOptions {
            scope_expression: o.scope_expression,
            static_payload: o.static_payload.map(Value::Object),
            return_event: o.return_event_as_response_payload,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateRequest {
    source_name: String,
    name: String,
    event_key_expression: String,
    auth_type: String,
    auth: Map<String, Value>,
    #[serde(flatten)]
    options: OptionsBody,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateRequest {
    #[serde(default)]
    event_key_expression: Option<String>,
    #[serde(flatten)]
    options: OptionsBody,
}

impl Resource for Webhook {
    type Key = String;
    type Row = db::WebhookRow;

    fn parse_key(raw: &str) -> Result<String, AppError> {
        Ok(raw.to_owned())
    }

    fn not_found(name: &String) -> AppError {
        AppError::NotFound(format!("webhook \"{name}\" does not exist"))
    }

    fn from_row(tenant: Uuid, r: db::WebhookRow) -> Self {
        let metadata = Meta {
            id: r.webhook_id.to_string(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        };
        Webhook {
            metadata,
            tenant_id: tenant.to_string(),
            name: r.name,
            source_name: r.source_name,
            event_key_expression: r.event_key_expression,
            scope_expression: r.scope_expression,
            static_payload: r.static_payload,
            auth_type: r.auth_type,
            return_event_as_response_payload: r.return_event,
            auth: r.auth,
        }
    }

    /// By name, or by `webhookNames` and `sourceNames`.
    async fn find(
        state: &AppState,
        tenant: Uuid,
        selection: Selection<'_, String>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<db::WebhookRow>, i64), AppError> {
        let (names, sources) = match selection {
            Selection::Key(name) => (Some(vec![name.clone()]), None),
            Selection::Query(p) => (p.list("webhookNames"), p.list("sourceNames")),
        };
        let found = db::find_webhooks(
            &state.pool,
            tenant,
            names.as_deref(),
            sources.as_deref(),
            limit,
            offset,
        );
        Ok(found.await?)
    }

    async fn delete(state: &AppState, tenant: Uuid, name: &String) -> Result<bool, AppError> {
        Ok(db::delete_webhook(&state.pool, tenant, name).await?)
    }
}

async fn create(
    State(state): State<AppState>,
    auth: AuthTenant,
    Path(tenant_path): Path<String>,
    Body(req): Body<CreateRequest>,
) -> Result<Json<Webhook>, AppError> {
    auth.check_path(&tenant_path)?;
    let tenant = auth.0 .0;
    let new = db::NewWebhook {
        name: req.name,
        source_name: req.source_name,
        event_key_expression: req.event_key_expression,
        auth_type: req.auth_type,
        auth: Value::Object(req.auth),
        options: req.options.into(),
    };
    db::create_webhook(&state.pool, tenant, &new).await?;
    Ok(Json(resource::find(&state, tenant, &new.name).await?))
}

async fn update(
    State(state): State<AppState>,
    auth: AuthTenant,
    Path((tenant_path, name)): Path<(String, String)>,
    Body(req): Body<UpdateRequest>,
) -> Result<Json<Webhook>, AppError> {
    auth.check_path(&tenant_path)?;
    let tenant = auth.0 .0;
    let options = req.options.into();
    let found = db::update_webhook(
        &state.pool,
        tenant,
        &name,
        req.event_key_expression.as_deref(),
        &options,
    )
    .await?;
    resource::updated(&state, tenant, &name, found).await
}

/// The receiving endpoint. 404 for an unknown webhook (or tenant), 403 when the request fails the webhook's auth,
/// 400 for a body that is not JSON or expressions that do not give a string key; nothing is written then.
async fn receive(
    State(state): State<AppState>,
    Path((tenant_path, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, AppError> {
    let not_found = || AppError::NotFound(format!("webhook \"{name}\" does not exist"));
    let tenant = Uuid::parse_str(&tenant_path).map_err(|_| not_found())?;
    let stored: Webhook = resource::find(&state, tenant, &name)
        .await
        .map_err(|_| not_found())?;
    if !authenticated(
        &stored.source_name,
        &stored.auth_type,
        &stored.auth,
        &headers,
        &body,
    ) {
        return Err(AppError::PermissionDenied(format!(
            "the request failed the authentication of webhook \"{name}\""
        )));
    }
    if let Some(reason) = stale(
        &stored.source_name,
        &stored.auth_type,
        &stored.auth,
        &headers,
        Utc::now().timestamp(),
    ) {
        return Err(AppError::PermissionDenied(format!(
            "webhook \"{name}\": {reason}"
        )));
    }
    let payload: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| AppError::InvalidArgument(format!("the body is not JSON: {e}")))?
    };
    // Slack checks a new endpoint with a signed `url_verification` request and expects its challenge back.
    if stored.source_name == "SLACK" && payload["type"] == "url_verification" {
        if let Some(challenge) = payload["challenge"].as_str() {
            return Ok(Json(json!({ "challenge": challenge })));
        }
    }
    let mut header_map = Map::new();
    for (k, v) in &headers {
        if let Ok(v) = v.to_str() {
            header_map.insert(k.as_str().to_owned(), Value::String(v.to_owned()));
        }
    }
    let event = db::receive_webhook(
        &state.pool,
        tenant,
        &name,
        &payload,
        &Value::Object(header_map),
    )
    .await?;
    state.dispatch.wake_assigner();
    if !stored.return_event_as_response_payload {
        return Ok(Json(json!({ "message": "ok" })));
    }
    let now = Utc::now();
    Ok(Json(json!({
        "message": "ok",
        "event": {
            "metadata": Meta::new(event.event_id, now),
            "key": event.event_key,
            "tenantId": tenant.to_string(),
            "payload": event.event_payload,
            "scope": event.event_scope,
            "seenAt": now,
            "triggeringWebhookName": name,
            "workflowRunSummary": {"running": 0, "queued": 0, "succeeded": 0, "failed": 0, "cancelled": 0},
        }
    })))
}

/// Whether a request passes a webhook's auth config. `source` selects the signing scheme of HMAC webhooks (see
/// [`signed_message`]).
fn authenticated(
    source: &str,
    auth_type: &str,
    auth: &Value,
    headers: &HeaderMap,
    body: &[u8],
) -> bool {
    let field = |k: &str| auth.get(k).and_then(Value::as_str).unwrap_or("");
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    match auth_type {
        "BASIC" => {
            let Some(given) = header("authorization").and_then(|h| {
                h.strip_prefix("Basic ")
                    .or_else(|| h.strip_prefix("basic "))
            }) else {
                return false;
            };
            let expected = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                field("username"),
                field("password")
            ));
            eq(given.trim().as_bytes(), expected.as_bytes())
        }
        "API_KEY" => match header(field("headerName")) {
            Some(given) => eq(given.as_bytes(), field("apiKey").as_bytes()),
            None => false,
        },
        "HMAC" => {
            let Some(given) = header(field("signatureHeaderName")) else {
                return false;
            };
            let Some((message, candidates)) = signed_message(source, given, headers, body) else {
                return false;
            };
            let secret = field("signingSecret");
            let key = match source {
                // Svix secrets are `whsec_<base64 key>`.
                "SVIX" => secret
                    .strip_prefix("whsec_")
                    .and_then(|k| base64::engine::general_purpose::STANDARD.decode(k).ok())
                    .unwrap_or_else(|| secret.as_bytes().to_vec()),
                _ => secret.as_bytes().to_vec(),
            };
            let Some(mac) = hmac_of(field("algorithm"), &key, &message) else {
                return false;
            };
            let expected = encode(field("encoding"), &mac);
            candidates.iter().any(|c| {
                let c = if field("encoding") == "HEX" {
                    c.to_ascii_lowercase()
                } else {
                    c.clone()
                };
                eq(c.as_bytes(), expected.as_bytes())
            })
        }
        _ => false,
    }
}

/// How far a signed timestamp may be from the server's clock, either way (Stripe's and Svix's own libraries use
/// five minutes, and Slack recommends it).
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 300;

/// Why an authenticated request of a scheme with a signed timestamp (HMAC webhooks of the `STRIPE`, `SLACK` and
/// `SVIX` sources) is refused as a possible replay: its timestamp is missing, not a number, or more than
/// [`TIMESTAMP_TOLERANCE_SECS`] from `now` (unix seconds). `None` for every other scheme.
fn stale(
    source: &str,
    auth_type: &str,
    auth: &Value,
    headers: &HeaderMap,
    now: i64,
) -> Option<String> {
    if auth_type != "HMAC" {
        return None;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let given = match source {
        "STRIPE" => header(
            auth.get("signatureHeaderName")
                .and_then(Value::as_str)
                .unwrap_or(""),
        )
        .and_then(|h| {
            h.split(',')
                .filter_map(|part| part.trim().split_once('='))
                .find(|(k, _)| *k == "t")
                .map(|(_, v)| v)
        }),
        "SLACK" => header("x-slack-request-timestamp"),
        "SVIX" => header("svix-timestamp"),
        _ => return None,
    };
    let Some(ts) = given.and_then(|t| t.trim().parse::<i64>().ok()) else {
        return Some("the request carries no valid signed timestamp".into());
    };
    let skew = now.saturating_sub(ts);
    if skew.abs() > TIMESTAMP_TOLERANCE_SECS {
        return Some(format!(
            "the request's signed timestamp is {} seconds {} the server's clock, more than the {} allowed \
             (a replayed or delayed request)",
            skew.abs(),
            if skew > 0 { "behind" } else { "ahead of" },
            TIMESTAMP_TOLERANCE_SECS
        ));
    }
    None
}

/// What an HMAC webhook's sender signed, and the signatures the header offers, by source:
///
/// | source | signed message | signature header value |
/// |---|---|---|
/// | `STRIPE` | `{t}.{body}` | `t=<unix time>,v1=<sig>[,v1=<sig>...]` |
/// | `SLACK` | `v0:{X-Slack-Request-Timestamp}:{body}` | `v0=<sig>` |
/// | `SVIX` | `{svix-id}.{svix-timestamp}.{body}` | `v1,<sig> [v1,<sig> ...]` |
/// | any other | the body | `<sig>`, or `sha256=<sig>` (GitHub) style |
fn signed_message(
    source: &str,
    given: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<(Vec<u8>, Vec<String>)> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let prefixed = |prefix: &str| [prefix.as_bytes(), body].concat();
    match source {
        "STRIPE" => {
            let mut t = None;
            let mut sigs = Vec::new();
            for part in given.split(',') {
                match part.trim().split_once('=') {
                    Some(("t", v)) => t = Some(v.to_owned()),
                    Some(("v1", v)) => sigs.push(v.to_owned()),
                    _ => {}
                }
            }
            Some((prefixed(&format!("{}.", t?)), sigs))
        }
        "SLACK" => {
            let ts = header("x-slack-request-timestamp")?;
            Some((
                prefixed(&format!("v0:{ts}:")),
                vec![given.strip_prefix("v0=")?.to_owned()],
            ))
        }
        "SVIX" => {
            let (id, ts) = (header("svix-id")?, header("svix-timestamp")?);
            let sigs = given
                .split_whitespace()
                .filter_map(|s| s.strip_prefix("v1,"))
                .map(str::to_owned)
                .collect();
            Some((prefixed(&format!("{id}.{ts}.")), sigs))
        }
        _ => {
            let bare = match given.split_once('=') {
                Some((prefix, rest))
                    if ["sha1", "sha256", "sha512", "md5"]
                        .contains(&prefix.to_ascii_lowercase().as_str()) =>
                {
                    rest
                }
                _ => given,
            };
            Some((body.to_vec(), vec![bare.to_owned()]))
        }
    }
}

fn eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// HMAC of `body` under `key`; `None` for an unknown algorithm.
pub fn hmac_of(algorithm: &str, key: &[u8], body: &[u8]) -> Option<Vec<u8>> {
    use hmac::{Hmac, KeyInit, Mac};
    fn run<M: Mac + KeyInit>(key: &[u8], body: &[u8]) -> Vec<u8> {
        let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    }
    Some(match algorithm {
        "SHA1" => run::<Hmac<sha1::Sha1>>(key, body),
        "SHA256" => run::<Hmac<sha2::Sha256>>(key, body),
        "SHA512" => run::<Hmac<sha2::Sha512>>(key, body),
        "MD5" => run::<Hmac<md5::Md5>>(key, body),
        _ => return None,
    })
}

/// A signature in one of the webhook encodings (HEX is lower case).
pub fn encode(encoding: &str, bytes: &[u8]) -> String {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    match encoding {
        "BASE64" => STANDARD.encode(bytes),
        "BASE64URL" => URL_SAFE.encode(bytes),
        _ => bytes.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_known_vector() {
        // RFC 4231 test case 2.
        let mac = hmac_of("SHA256", b"Jefe", b"what do ya want for nothing?").unwrap();
        assert_eq!(
            encode("HEX", &mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(hmac_of("SHA3", b"k", b"b").is_none());
    }

    #[test]
    fn auth_checks() {
        let mut headers = HeaderMap::new();
        let basic = json!({"username": "u", "password": "p"});
        assert!(!authenticated("GENERIC", "BASIC", &basic, &headers, b""));
        headers.insert("authorization", "Basic dTpw".parse().unwrap());
        assert!(authenticated("GENERIC", "BASIC", &basic, &headers, b""));
        headers.insert("authorization", "Basic dTpx".parse().unwrap());
        assert!(!authenticated("GENERIC", "BASIC", &basic, &headers, b""));

        let key = json!({"headerName": "X-Key", "apiKey": "secret"});
        headers.insert("x-key", "secret".parse().unwrap());
        assert!(authenticated("GENERIC", "API_KEY", &key, &headers, b""));
        headers.insert("x-key", "secreT".parse().unwrap());
        assert!(!authenticated("GENERIC", "API_KEY", &key, &headers, b""));

        let hmac = json!({"algorithm": "SHA256", "encoding": "HEX", "signatureHeaderName": "X-Sig",
                          "signingSecret": "Jefe"});
        let body = b"what do ya want for nothing?";
        let sig = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        headers.insert("x-sig", format!("sha256={sig}").parse().unwrap());
        assert!(authenticated("GENERIC", "HMAC", &hmac, &headers, body));
        headers.insert("x-sig", sig.parse().unwrap());
        assert!(authenticated("GENERIC", "HMAC", &hmac, &headers, body));
        assert!(!authenticated(
            "GENERIC",
            "HMAC",
            &hmac,
            &headers,
            b"tampered"
        ));
        // A base64 signature's padding is not an algorithm prefix.
        headers.insert("x-sig", "sha256x=".parse().unwrap());
        assert!(!authenticated("GENERIC", "HMAC", &hmac, &headers, body));
    }

    #[test]
    fn signed_timestamps_must_be_recent() {
        let now = 1_700_000_000;
        let auth = json!({"signatureHeaderName": "Stripe-Signature"});
        let mut stripe = HeaderMap::new();
        let at = |t: i64| format!("t={t},v1=00").parse().unwrap();
        stripe.insert("stripe-signature", at(now - 299));
        assert_eq!(stale("STRIPE", "HMAC", &auth, &stripe, now), None);
        stripe.insert("stripe-signature", at(now + 300));
        assert_eq!(stale("STRIPE", "HMAC", &auth, &stripe, now), None);
        stripe.insert("stripe-signature", at(now - 301));
        assert!(stale("STRIPE", "HMAC", &auth, &stripe, now)
            .unwrap()
            .contains("301 seconds behind"));
        stripe.insert("stripe-signature", at(now + 3600));
        assert!(stale("STRIPE", "HMAC", &auth, &stripe, now)
            .unwrap()
            .contains("ahead of"));
        stripe.insert("stripe-signature", "v1=00".parse().unwrap());
        assert!(stale("STRIPE", "HMAC", &auth, &stripe, now).is_some());

        let mut slack = HeaderMap::new();
        slack.insert("x-slack-request-timestamp", "1699999000".parse().unwrap());
        assert!(stale("SLACK", "HMAC", &auth, &slack, now).is_some());
        slack.insert("x-slack-request-timestamp", "1700000010".parse().unwrap());
        assert_eq!(stale("SLACK", "HMAC", &auth, &slack, now), None);

        let mut svix = HeaderMap::new();
        svix.insert("svix-timestamp", "nope".parse().unwrap());
        assert!(stale("SVIX", "HMAC", &auth, &svix, now).is_some());
        svix.insert("svix-timestamp", "1699999999".parse().unwrap());
        assert_eq!(stale("SVIX", "HMAC", &auth, &svix, now), None);

        // Schemes without a signed timestamp have no window.
        assert_eq!(
            stale("GENERIC", "HMAC", &auth, &HeaderMap::new(), now),
            None
        );
        assert_eq!(
            stale("STRIPE", "BASIC", &auth, &HeaderMap::new(), now),
            None
        );
    }

    fn sign_hex(key: &[u8], message: &str) -> String {
        encode("HEX", &hmac_of("SHA256", key, message.as_bytes()).unwrap())
    }

    #[test]
    fn source_signing_schemes() {
        let body = br#"{"type":"invoice.paid"}"#;
        let text = std::str::from_utf8(body).unwrap();
        let auth = |header: &str| {
            json!({"algorithm": "SHA256", "encoding": "HEX", "signatureHeaderName": header,
                   "signingSecret": "whsec_c2VjcmV0"})
        };

        // Stripe: t=<time>,v1=<hex of "t.body">; any v1 may match.
        let stripe = auth("Stripe-Signature");
        let good = sign_hex(b"whsec_c2VjcmV0", &format!("1700000000.{text}"));
        let mut headers = HeaderMap::new();
        headers.insert(
            "stripe-signature",
            format!("t=1700000000,v1=deadbeef,v1={good}")
                .parse()
                .unwrap(),
        );
        assert!(authenticated("STRIPE", "HMAC", &stripe, &headers, body));
        headers.insert(
            "stripe-signature",
            format!("t=1700000001,v1={good}").parse().unwrap(),
        );
        assert!(!authenticated("STRIPE", "HMAC", &stripe, &headers, body));
        // The same header checked as GENERIC is not a bare signature.
        assert!(!authenticated("GENERIC", "HMAC", &stripe, &headers, body));

        // Slack: v0=<hex of "v0:ts:body">.
        let slack = auth("X-Slack-Signature");
        let sig = sign_hex(b"whsec_c2VjcmV0", &format!("v0:1700000000:{text}"));
        let mut headers = HeaderMap::new();
        headers.insert("x-slack-request-timestamp", "1700000000".parse().unwrap());
        headers.insert("x-slack-signature", format!("v0={sig}").parse().unwrap());
        assert!(authenticated("SLACK", "HMAC", &slack, &headers, body));
        headers.remove("x-slack-request-timestamp");
        assert!(!authenticated("SLACK", "HMAC", &slack, &headers, body));

        // Svix: v1,<base64 of "id.ts.body">, keyed with the base64-decoded secret.
        let mut svix = auth("svix-signature");
        svix["encoding"] = json!("BASE64");
        let mac = hmac_of(
            "SHA256",
            b"secret",
            format!("msg_1.1700000000.{text}").as_bytes(),
        )
        .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("svix-id", "msg_1".parse().unwrap());
        headers.insert("svix-timestamp", "1700000000".parse().unwrap());
        headers.insert(
            "svix-signature",
            format!("v1,bm9wZQ== v1,{}", encode("BASE64", &mac))
                .parse()
                .unwrap(),
        );
        assert!(authenticated("SVIX", "HMAC", &svix, &headers, body));
        headers.insert("svix-id", "msg_2".parse().unwrap());
        assert!(!authenticated("SVIX", "HMAC", &svix, &headers, body));
    }
}
