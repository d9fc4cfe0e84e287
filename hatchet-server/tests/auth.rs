//! Tokens against a real database: minting, the CLI, and every way a request can fail authentication, over both
//! gRPC (a real tonic client against the running server) and REST (the router via `oneshot`).

mod common;

use axum::body::Body;
use chrono::{DateTime, Utc};
use common::{mint, with_auth, TestServer};
use hatchet_server::auth::{sign, Claims, MintRequest, TenantId};
use hatchet_server::config::DEFAULT_TENANT_ID;
use hatchet_server::proto::{dispatcher_client::DispatcherClient, GetVersionRequest};
use hatchet_server::{rest, AppError, AppState};
use http_body_util::BodyExt;
use std::time::Duration;
use tonic::codec::CompressionEncoding;
use tower::ServiceExt;
use uuid::Uuid;

fn claims(tenant: Uuid, exp_offset_secs: i64) -> Claims {
    let now = Utc::now().timestamp();
    Claims {
        sub: tenant.to_string(),
        server_url: "http://localhost:8080".into(),
        grpc_broadcast_address: "localhost:7077".into(),
        iat: now,
        exp: now + exp_offset_secs,
        token_id: Uuid::new_v4().to_string(),
    }
}

async fn tenant_secret(state: &AppState) -> Vec<u8> {
    sqlx::query_scalar("SELECT token_secret FROM hatchet.tenants WHERE tenant_id = $1")
        .bind(DEFAULT_TENANT_ID)
        .fetch_one(&state.pool)
        .await
        .expect("secret")
}

/// Authorization values that must all be refused, with a label for failure messages.
async fn bad_credentials(state: &AppState) -> Vec<(&'static str, Option<String>)> {
    // Make sure the tenant has a secret before reading it.
    let revoked = mint(state, "to-revoke").await;
    assert!(state
        .auth
        .revoke(DEFAULT_TENANT_ID, revoked.token_id)
        .await
        .unwrap());
    let secret = tenant_secret(state).await;
    let expired = sign(&claims(DEFAULT_TENANT_ID, -120), &secret).unwrap();
    let foreign = sign(
        &claims(DEFAULT_TENANT_ID, 3600),
        b"some other server's secret",
    )
    .unwrap();
    let unknown_tenant = sign(&claims(Uuid::new_v4(), 3600), &secret).unwrap();
    let unrecorded = sign(&claims(DEFAULT_TENANT_ID, 3600), &secret).unwrap();
    let alg_none = {
        // A token that claims to need no signature at all.
        let good = mint(state, "alg-none").await.token;
        let payload = good.split('.').nth(1).unwrap().to_owned();
        format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.")
    };
    vec![
        ("missing", None),
        ("empty bearer", Some("bearer ".into())),
        ("wrong scheme", Some(format!("Basic {}", revoked.token))),
        ("malformed", Some("bearer not-a-jwt".into())),
        ("garbage jwt", Some("bearer eyJ.eyJ.sig".into())),
        ("expired", Some(format!("bearer {expired}"))),
        ("foreign-signed", Some(format!("bearer {foreign}"))),
        ("unknown tenant", Some(format!("bearer {unknown_tenant}"))),
        ("never recorded", Some(format!("bearer {unrecorded}"))),
        ("revoked", Some(format!("bearer {}", revoked.token))),
        ("alg none", Some(format!("bearer {alg_none}"))),
    ]
}

async fn http_get(
    state: &AppState,
    path: &str,
    authorization: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut req = axum::http::Request::builder().uri(path);
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    let resp = rest::app(state.clone())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn minted_token_round_trips() {
    let state = common::state().await;
    let minted = state
        .auth
        .mint(&MintRequest {
            tenant_id: DEFAULT_TENANT_ID,
            name: "round-trip".into(),
            expires_in: Duration::from_secs(7 * 86_400),
            server_url: "http://example.test:8080".into(),
            grpc_broadcast_address: "example.test:7077".into(),
        })
        .await
        .unwrap();

    // The claims the SDK reads, without verifying, are all there.
    assert!(minted.token.starts_with("ey") && minted.token.split('.').count() == 3);
    let decoded: Claims = jsonwebtoken::dangerous::insecure_decode_claims(&minted.token).unwrap();
    assert_eq!(decoded.sub, DEFAULT_TENANT_ID.to_string());
    assert_eq!(decoded.server_url, "http://example.test:8080");
    assert_eq!(decoded.grpc_broadcast_address, "example.test:7077");
    assert_eq!(decoded.token_id, minted.token_id.to_string());
    assert_eq!(decoded.exp - decoded.iat, 7 * 86_400);

    // The server accepts it and attributes it to the tenant.
    assert_eq!(
        state.auth.verify(&minted.token).await.unwrap(),
        TenantId(DEFAULT_TENANT_ID)
    );

    // It is recorded for revocation.
    let (name, expires_at, revoked_at): (String, DateTime<Utc>, Option<DateTime<Utc>>) = sqlx::query_as(
        "SELECT name, expires_at, revoked_at FROM hatchet.api_tokens WHERE tenant_id = $1 AND token_id = $2",
    )
    .bind(DEFAULT_TENANT_ID)
    .bind(minted.token_id)
    .fetch_one(&state.pool)
    .await
    .unwrap();
    assert_eq!(name, "round-trip");
    assert_eq!(expires_at.timestamp(), decoded.exp);
    assert!(revoked_at.is_none());

    // The tenant secret is 32 random bytes, created once and reused.
    let secret = tenant_secret(&state).await;
    assert_eq!(secret.len(), 32);
    mint(&state, "second").await;
    assert_eq!(tenant_secret(&state).await, secret);
}

#[tokio::test]
async fn minting_for_an_unknown_tenant_is_not_found() {
    let state = common::state().await;
    let err = state
        .auth
        .mint(&MintRequest {
            tenant_id: Uuid::new_v4(),
            name: "nobody".into(),
            expires_in: Duration::from_secs(60),
            server_url: String::new(),
            grpc_broadcast_address: String::new(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::NotFound(_)), "{err:?}");
}

#[tokio::test]
async fn grpc_refuses_bad_tokens_with_unauthenticated() {
    let server = TestServer::start().await;
    let mut client =
        DispatcherClient::new(server.channel().await).send_compressed(CompressionEncoding::Gzip);
    for (case, authorization) in bad_credentials(&server.state).await {
        let status = client
            .get_version(with_auth(GetVersionRequest {}, authorization.as_deref()))
            .await
            .expect_err(case);
        assert_eq!(
            status.code(),
            tonic::Code::Unauthenticated,
            "{case}: {status:?}"
        );
    }
    // Both spellings of the scheme are accepted (the Python SDK sends lower-case).
    for scheme in ["bearer", "Bearer"] {
        let value = format!("{scheme} {}", server.token);
        let resp = client
            .get_version(with_auth(GetVersionRequest {}, Some(&value)))
            .await;
        assert!(resp.is_ok(), "{scheme}: {resp:?}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn rest_refuses_bad_tokens_with_401() {
    let state = common::state().await;
    let path = "/api/v1/stable/tenants/707d0855-80ab-4e1f-a156-f1c4546cbf52/workflow-runs";
    for (case, authorization) in bad_credentials(&state).await {
        let (status, body) = http_get(&state, path, authorization.as_deref()).await;
        assert_eq!(status, 401, "{case}");
        let description = body["errors"][0]["description"]
            .as_str()
            .unwrap_or_default();
        assert!(
            !description.is_empty(),
            "{case}: APIErrors body expected, got {body}"
        );
    }
    // A good token passes authentication and reaches the route.
    let token = mint(&state, "rest").await.token;
    for scheme in ["Bearer", "bearer"] {
        let (status, body) = http_get(&state, path, Some(&format!("{scheme} {token}"))).await;
        assert_eq!(status, 200, "{scheme}: {body}");
        assert!(body["rows"].is_array(), "{scheme}: {body}");
    }
    // Another tenant's path is refused without saying whether that tenant exists.
    let foreign = "/api/v1/stable/tenants/00000000-0000-0000-0000-000000000001/workflow-runs";
    let (status, _) = http_get(&state, foreign, Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, 403);
    // A route this server does not serve yet says so, after authentication.
    let unbuilt = "/api/v1/tenants/707d0855-80ab-4e1f-a156-f1c4546cbf52/members";
    let (status, body) = http_get(&state, unbuilt, Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, 501, "{body}");
    assert!(body["errors"][0]["description"]
        .as_str()
        .unwrap()
        .contains("not implemented yet"));
}

#[tokio::test]
async fn revocation_elsewhere_takes_effect_after_the_cache_ttl() {
    let server = TestServer::start().await;
    let minted = mint(&server.state, "revoked-elsewhere").await;
    let mut client = DispatcherClient::new(server.channel().await);
    let bearer = format!("bearer {}", minted.token);
    client
        .get_version(with_auth(GetVersionRequest {}, Some(&bearer)))
        .await
        .expect("valid before revocation");

    // Another server (or an operator) revokes it directly in the database.
    let pool = common::pool().await;
    sqlx::query(
        "UPDATE hatchet.api_tokens SET revoked_at = now() WHERE tenant_id = $1 AND token_id = $2",
    )
    .bind(DEFAULT_TENANT_ID)
    .bind(minted.token_id)
    .execute(&pool)
    .await
    .unwrap();
    tokio::time::sleep(server.state.config.auth_cache_ttl + Duration::from_millis(100)).await;

    let status = client
        .get_version(with_auth(GetVersionRequest {}, Some(&bearer)))
        .await
        .expect_err("revoked");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert_eq!(status.message(), "token revoked");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn cli_creates_and_revokes_tokens() {
    let state = common::state().await;
    let bin = env!("CARGO_BIN_EXE_hatchet-server");
    let out = tokio::process::Command::new(bin)
        .args([
            "token",
            "create",
            "--tenant",
            &DEFAULT_TENANT_ID.to_string(),
            "--name",
            "cli",
        ])
        .args([
            "--expires-in",
            "2d",
            "--database-url",
            &common::database_url(),
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(
        state.auth.verify(&token).await.unwrap(),
        TenantId(DEFAULT_TENANT_ID)
    );
    let decoded: Claims = jsonwebtoken::dangerous::insecure_decode_claims(&token).unwrap();
    assert_eq!(decoded.exp - decoded.iat, 2 * 86_400);

    let out = tokio::process::Command::new(bin)
        .args([
            "token",
            "revoke",
            "--tenant",
            &DEFAULT_TENANT_ID.to_string(),
        ])
        .args([
            "--token-id",
            &decoded.token_id,
            "--database-url",
            &common::database_url(),
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tokio::time::sleep(state.config.auth_cache_ttl + Duration::from_millis(100)).await;
    assert!(state.auth.verify(&token).await.is_err());

    // A bad duration is rejected before anything is written.
    let out = tokio::process::Command::new(bin)
        .args([
            "token",
            "create",
            "--tenant",
            &DEFAULT_TENANT_ID.to_string(),
            "--expires-in",
            "90",
        ])
        .args(["--database-url", &common::database_url()])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid duration"));
}
