//! The OTLP trace collector (`TraceService/Export`) and the trace read route against a real server and database:
//! spans are stored under the token's tenant only, a span exported again is stored once, a refused export stores
//! nothing, and one tenant never reads another's trace.

mod common;

use axum::body::Body;
use common::{with_auth, TestServer};
use hatchet_server::auth::MintRequest;
use hatchet_server::config::DEFAULT_TENANT_ID;
use hatchet_server::proto::opentelemetry::proto::collector::trace::v1::{
    trace_service_client::TraceServiceClient, ExportTraceServiceRequest,
};
use hatchet_server::proto::opentelemetry::proto::common::v1::{any_value, AnyValue, KeyValue};
use hatchet_server::proto::opentelemetry::proto::trace::v1::{ResourceSpans, ScopeSpans, Span};
use hatchet_server::{rest, AppState};
use http_body_util::BodyExt;
use std::time::Duration;
use tower::ServiceExt;
use uuid::Uuid;

fn span(trace: &[u8; 16], n: u8, run: Uuid) -> Span {
    Span {
        trace_id: trace.to_vec(),
        span_id: vec![0, 0, 0, 0, 0, 0, 1, n],
        name: format!("span-{n}"),
        start_time_unix_nano: 1_800_000_000_000_000_000 + u64::from(n),
        end_time_unix_nano: 1_800_000_000_000_000_500 + u64::from(n),
        attributes: vec![KeyValue {
            key: "hatchet.workflow_run_id".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(run.to_string())),
            }),
        }],
        ..Default::default()
    }
}

fn export(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn stored(state: &AppState, tenant: Uuid, trace: &[u8; 16]) -> i64 {
    let hex: String = trace.iter().map(|b| format!("{b:02x}")).collect();
    sqlx::query_scalar(
        "SELECT count(*) FROM hatchet.otel_spans WHERE tenant_id = $1 AND trace_id = $2",
    )
    .bind(tenant)
    .bind(hex)
    .fetch_one(&state.pool)
    .await
    .unwrap()
}

async fn read(state: &AppState, tenant: Uuid, run: Uuid, token: &str) -> (u16, serde_json::Value) {
    let req = axum::http::Request::builder()
        .uri(format!(
            "/api/v1/stable/tenants/{tenant}/traces?run_external_id={run}"
        ))
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let resp = rest::app(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn spans_stay_with_the_tenant_of_the_token() {
    let server = TestServer::start().await;
    let state = server.state.clone();
    let other: Uuid = sqlx::query_scalar("SELECT hatchet.create_tenant($1)")
        .bind(format!("traces-{}", Uuid::new_v4()))
        .fetch_one(&state.pool)
        .await
        .unwrap();
    let other_token = state
        .auth
        .mint(&MintRequest {
            tenant_id: other,
            name: "traces".into(),
            expires_in: Duration::from_secs(3600),
            server_url: "http://localhost:8080".into(),
            grpc_broadcast_address: "localhost:7077".into(),
        })
        .await
        .unwrap()
        .token;
    let mut client = TraceServiceClient::new(server.channel().await);
    let trace = *Uuid::new_v4().as_bytes();
    let run = Uuid::new_v4();
    let mine = format!("Bearer {}", server.token);
    let theirs = format!("Bearer {other_token}");

    // Stored under the exporting token's tenant; exported twice, stored once.
    for _ in 0..2 {
        client
            .export(with_auth(
                export(vec![span(&trace, 1, run), span(&trace, 2, run)]),
                Some(mine.as_str()),
            ))
            .await
            .unwrap();
    }
    assert_eq!(stored(&state, DEFAULT_TENANT_ID, &trace).await, 2);
    assert_eq!(stored(&state, other, &trace).await, 0);

    // The same ids from the other tenant are that tenant's own.
    client
        .export(with_auth(
            export(vec![span(&trace, 1, run)]),
            Some(theirs.as_str()),
        ))
        .await
        .unwrap();
    assert_eq!(stored(&state, other, &trace).await, 1);

    let (status, body) = read(&state, DEFAULT_TENANT_ID, run, &server.token).await;
    assert_eq!(status, 200, "{body}");
    let names: Vec<&str> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["spanName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["span-1", "span-2"]);
    let (status, body) = read(&state, other, run, &other_token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"].as_array().unwrap().len(), 1);
    // A run id that has no spans of that tenant and is no run of it: 404; another tenant's path: 403.
    let (status, _) = read(&state, other, Uuid::new_v4(), &other_token).await;
    assert_eq!(status, 404);
    let (status, _) = read(&state, DEFAULT_TENANT_ID, run, &other_token).await;
    assert_eq!(status, 403);

    // A refused export stores nothing, not even its good spans.
    let fresh = *Uuid::new_v4().as_bytes();
    let mut bad = span(&fresh, 3, run);
    bad.attributes.push(KeyValue {
        key: "hatchet.tenant_id".into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(other.to_string())),
        }),
    });
    let err = client
        .export(with_auth(
            export(vec![span(&fresh, 1, run), bad]),
            Some(mine.as_str()),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    let many = (0..=200u8)
        .flat_map(|n| (0..5u8).map(move |m| (n, m)))
        .map(|(n, m)| {
            let mut s = span(&fresh, n, run);
            s.span_id[5] = m;
            s
        })
        .collect();
    let err = client
        .export(with_auth(export(many), Some(mine.as_str())))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    let err = client
        .export(with_auth(export(vec![span(&fresh, 1, run)]), None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert_eq!(stored(&state, DEFAULT_TENANT_ID, &fresh).await, 0);

    server.stop().await.unwrap();
}
