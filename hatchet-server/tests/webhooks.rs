//! Incoming webhooks through the REST router: the source-specific signing schemes (Stripe, Slack) end to end, and
//! Slack's `url_verification` challenge. (Generic BASIC / API_KEY / HMAC webhooks run with the real SDK in
//! tests/e2e/test_filters_webhooks.py.)

mod common;

use axum::body::Body;
use base64::Engine;
use chrono::Utc;
use hatchet_server::config::DEFAULT_TENANT_ID;
use hatchet_server::rest::webhooks::{encode, hmac_of};
use hatchet_server::{rest, AppState};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use uuid::Uuid;

async fn call(
    state: &AppState,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (u16, Value) {
    let mut req = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = rest::app(state.clone())
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn create(state: &AppState, token: &str, source: &str, header: &str) -> String {
    let name = format!("{}-{}", source.to_lowercase(), Uuid::new_v4().simple());
    let (status, body) = call(
        state,
        "POST",
        &format!("/api/v1/stable/tenants/{DEFAULT_TENANT_ID}/webhooks"),
        &[("authorization", format!("Bearer {token}"))],
        json!({
            "sourceName": source, "name": name, "eventKeyExpression": "'hook:' + input.type",
            "authType": "HMAC",
            "auth": {"algorithm": "SHA256", "encoding": "HEX", "signatureHeaderName": header,
                     "signingSecret": "whsec_test"},
        })
        .to_string()
        .into_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["authType"], "HMAC");
    assert!(
        body.get("auth").is_none(),
        "secrets are never returned: {body}"
    );
    name
}

async fn events_with_key(state: &AppState, key: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM hatchet.events WHERE key = $1")
        .bind(key)
        .fetch_one(&state.pool)
        .await
        .unwrap()
}

fn sign(message: &str) -> String {
    encode(
        "HEX",
        &hmac_of("SHA256", b"whsec_test", message.as_bytes()).unwrap(),
    )
}

#[tokio::test]
async fn stripe_signatures_are_checked_over_timestamp_and_body() {
    let state = common::state().await;
    let token = common::mint(&state, "webhooks").await.token;
    let name = create(&state, &token, "STRIPE", "Stripe-Signature").await;
    let path = format!("/api/v1/stable/tenants/{DEFAULT_TENANT_ID}/webhooks/{name}");
    let kind = Uuid::new_v4().simple().to_string();
    let body = json!({"type": kind}).to_string();
    let now = Utc::now().timestamp();
    let good = sign(&format!("{now}.{body}"));

    let forged = format!("t={now},v1={}", sign(&body));
    let (status, _) = call(
        &state,
        "POST",
        &path,
        &[("stripe-signature", forged)],
        body.clone().into_bytes(),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(events_with_key(&state, &format!("hook:{kind}")).await, 0);

    let (status, resp) = call(
        &state,
        "POST",
        &path,
        &[("stripe-signature", format!("t={now},v1={good}"))],
        body.into_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["event"]["key"], format!("hook:{kind}"));
    assert_eq!(events_with_key(&state, &format!("hook:{kind}")).await, 1);
}

/// A correctly signed request whose signed timestamp is more than five minutes old (a replay) or ahead is refused
/// and stores nothing, for each scheme that signs a timestamp.
#[tokio::test]
async fn signed_requests_older_than_five_minutes_are_refused() {
    let state = common::state().await;
    let token = common::mint(&state, "webhooks").await.token;
    let stripe = create(&state, &token, "STRIPE", "Stripe-Signature").await;
    let slack = create(&state, &token, "SLACK", "X-Slack-Signature").await;
    let svix = create(&state, &token, "SVIX", "svix-signature").await;
    let path = |name: &str| format!("/api/v1/stable/tenants/{DEFAULT_TENANT_ID}/webhooks/{name}");
    // Svix secrets are `whsec_<base64 key>`: the HMAC key of "whsec_test" is base64-decoded "test".
    let svix_key = base64::engine::general_purpose::STANDARD
        .decode("test")
        .unwrap();
    let sign_svix = |m: &str| encode("HEX", &hmac_of("SHA256", &svix_key, m.as_bytes()).unwrap());
    let now = Utc::now().timestamp();
    for (label, t) in [
        ("old", now - 301),
        ("replayed", 1_700_000_000),
        ("future", now + 3600),
    ] {
        let kind = Uuid::new_v4().simple().to_string();
        let body = json!({"type": kind}).to_string();
        let requests: Vec<(&str, Vec<(&str, String)>)> = vec![
            (
                &stripe,
                vec![(
                    "stripe-signature",
                    format!("t={t},v1={}", sign(&format!("{t}.{body}"))),
                )],
            ),
            (
                &slack,
                vec![
                    ("x-slack-request-timestamp", t.to_string()),
                    (
                        "x-slack-signature",
                        format!("v0={}", sign(&format!("v0:{t}:{body}"))),
                    ),
                ],
            ),
            (
                &svix,
                vec![
                    ("svix-id", "msg_1".to_owned()),
                    ("svix-timestamp", t.to_string()),
                    (
                        "svix-signature",
                        format!("v1,{}", sign_svix(&format!("msg_1.{t}.{body}"))),
                    ),
                ],
            ),
        ];
        for (name, headers) in requests {
            let (status, resp) = call(
                &state,
                "POST",
                &path(name),
                &headers,
                body.clone().into_bytes(),
            )
            .await;
            assert_eq!(status, 403, "{label} {name}: {resp}");
            assert!(
                resp.to_string().contains("timestamp"),
                "{label} {name}: {resp}"
            );
        }
        assert_eq!(events_with_key(&state, &format!("hook:{kind}")).await, 0);

        // The same requests signed now go through (the refusal was the timestamp, not the signature).
        let (status, resp) = call(
            &state,
            "POST",
            &path(&svix),
            &[
                ("svix-id", "msg_1".to_owned()),
                ("svix-timestamp", now.to_string()),
                (
                    "svix-signature",
                    format!("v1,{}", sign_svix(&format!("msg_1.{now}.{body}"))),
                ),
            ],
            body.clone().into_bytes(),
        )
        .await;
        assert_eq!(status, 200, "{label}: {resp}");
        assert_eq!(events_with_key(&state, &format!("hook:{kind}")).await, 1);
    }
}

#[tokio::test]
async fn slack_url_verification_gets_its_challenge_back() {
    let state = common::state().await;
    let token = common::mint(&state, "webhooks").await.token;
    let name = create(&state, &token, "SLACK", "X-Slack-Signature").await;
    let path = format!("/api/v1/stable/tenants/{DEFAULT_TENANT_ID}/webhooks/{name}");
    let body = json!({"type": "url_verification", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})
        .to_string();
    let now = Utc::now().timestamp();
    let headers = |sig: String| {
        vec![
            ("x-slack-request-timestamp", now.to_string()),
            ("x-slack-signature", sig),
        ]
    };
    let (status, _) = call(
        &state,
        "POST",
        &path,
        &headers("v0=00".into()),
        body.clone().into_bytes(),
    )
    .await;
    assert_eq!(status, 403);
    let sig = format!("v0={}", sign(&format!("v0:{now}:{body}")));
    let (status, resp) = call(&state, "POST", &path, &headers(sig), body.into_bytes()).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        resp,
        json!({"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})
    );
    assert_eq!(events_with_key(&state, "hook:url_verification").await, 0);
}
