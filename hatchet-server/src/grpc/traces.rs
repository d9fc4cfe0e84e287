//! `/opentelemetry.proto.collector.trace.v1.TraceService/Export`: the OTLP trace collector the SDKs'
//! instrumentors export to (hatchet-sdk's `HatchetInstrumentor` sends its spans to the engine's gRPC address with the
//! tenant's bearer token once the engine reports the OBSERVABILITY version, v0.82.0).
//!
//! Each span is stored under the token's tenant with `hatchet.put_spans`, linked to the task and run named by its
//! `hatchet.step_run_id` and `hatchet.workflow_run_id` attributes (the instrumentor sets them on every span started
//! inside a task), and read back as a trace with `hatchet.run_trace` (REST `.../traces`). An export is stored whole
//! or not at all: a span that names another tenant (`hatchet.tenant_id`) is PERMISSION_DENIED, a malformed one
//! (ids of the wrong length, a run id that is not a UUID) INVALID_ARGUMENT, more than [`MAX_SPANS`] spans or
//! attributes over 64 kB RESOURCE_EXHAUSTED.

use crate::auth::grpc::tenant_of;
use crate::db::tasks;
use crate::error::AppError;
use crate::proto::opentelemetry::proto::collector::trace::v1::{
    trace_service_server, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use crate::proto::opentelemetry::proto::common::v1::{any_value, AnyValue, KeyValue};
use crate::proto::opentelemetry::proto::trace::v1::{span::SpanKind, status::StatusCode, Span};
use crate::state::AppState;
use serde_json::{json, Map, Value};
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// Spans one export may carry (the SDKs' batch processors send at most 512 by default).
pub(crate) const MAX_SPANS: usize = 1000;

/// The `TraceService` service.
#[derive(Debug, Clone)]
pub(crate) struct TraceService {
    state: AppState,
}

impl TraceService {
    /// A service over the shared state.
    pub(crate) fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl trace_service_server::TraceService for TraceService {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let tenant = tenant_of(&request)?.0;
        let spans = spans_json(tenant, &request.into_inner())?;
        if spans.is_empty() {
            return Ok(Response::new(ExportTraceServiceResponse::default()));
        }
        tasks::put_spans(&self.state.pool, tenant, &Value::Array(spans))
            .await
            .map_err(AppError::from)?;
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

/// The spans of an export as `hatchet.put_spans` takes them; an error for the first span that cannot be stored.
fn spans_json(tenant: Uuid, request: &ExportTraceServiceRequest) -> Result<Vec<Value>, Status> {
    let count: usize = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    if count > MAX_SPANS {
        return Err(Status::resource_exhausted(format!(
            "{count} spans in one export, over the limit of {MAX_SPANS}"
        )));
    }
    let mut out = Vec::with_capacity(count);
    for resource_spans in &request.resource_spans {
        let resource = attributes(
            resource_spans
                .resource
                .as_ref()
                .map_or(&[][..], |r| &r.attributes[..]),
        );
        let service = resource
            .get("service.name")
            .and_then(Value::as_str)
            .unwrap_or("unknown_service")
            .to_owned();
        for scope_spans in &resource_spans.scope_spans {
            let (scope_name, scope_version) =
                scope_spans.scope.as_ref().map_or((None, None), |s| {
                    (non_empty(&s.name), non_empty(&s.version))
                });
            for span in &scope_spans.spans {
                out.push(span_json(
                    tenant,
                    span,
                    &resource,
                    &service,
                    scope_name.as_deref(),
                    scope_version.as_deref(),
                )?);
            }
        }
    }
    Ok(out)
}

fn span_json(
    tenant: Uuid,
    span: &Span,
    resource: &Map<String, Value>,
    service: &str,
    scope_name: Option<&str>,
    scope_version: Option<&str>,
) -> Result<Value, Status> {
    let bad = |what: String| Status::invalid_argument(format!("span {:?}: {what}", span.name));
    if span.trace_id.len() != 16 || span.trace_id.iter().all(|b| *b == 0) {
        return Err(bad(format!(
            "trace_id must be 16 bytes, not all zero ({} given)",
            span.trace_id.len()
        )));
    }
    if span.span_id.len() != 8 || span.span_id.iter().all(|b| *b == 0) {
        return Err(bad(format!(
            "span_id must be 8 bytes, not all zero ({} given)",
            span.span_id.len()
        )));
    }
    if !span.parent_span_id.is_empty() && span.parent_span_id.len() != 8 {
        return Err(bad(format!(
            "parent_span_id must be 8 bytes ({} given)",
            span.parent_span_id.len()
        )));
    }
    let attrs = attributes(&span.attributes);
    if let Some(other) = attrs.get("hatchet.tenant_id").and_then(Value::as_str) {
        if other != tenant.to_string() {
            return Err(Status::permission_denied(format!(
                "span {:?} belongs to tenant {other}, not to the token's tenant",
                span.name
            )));
        }
    }
    let id_attr = |key: &str| -> Result<Option<Uuid>, Status> {
        match attrs.get(key).and_then(Value::as_str) {
            None | Some("") => Ok(None),
            Some(v) => Uuid::parse_str(v)
                .map(Some)
                .map_err(|_| bad(format!("{key} must be a UUID, not {v:?}"))),
        }
    };
    let task_id = id_attr("hatchet.step_run_id")?;
    let run_id = id_attr("hatchet.workflow_run_id")?;
    let retry_count = match attrs.get("hatchet.retry_count") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .and_then(|n| i32::try_from(n).ok())
    .unwrap_or(0)
    .max(0);
    let start = i64::try_from(span.start_time_unix_nano)
        .map_err(|_| bad("start_time_unix_nano is out of range".into()))?;
    let start_time = chrono::DateTime::from_timestamp_nanos(start);
    let duration = span
        .end_time_unix_nano
        .saturating_sub(span.start_time_unix_nano);
    let kind = match SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified) {
        SpanKind::Unspecified => "UNSPECIFIED",
        SpanKind::Internal => "INTERNAL",
        SpanKind::Server => "SERVER",
        SpanKind::Client => "CLIENT",
        SpanKind::Producer => "PRODUCER",
        SpanKind::Consumer => "CONSUMER",
    };
    let (status_code, status_message) = span.status.as_ref().map_or(("UNSET", None), |s| {
        let code = match StatusCode::try_from(s.code).unwrap_or(StatusCode::Unset) {
            StatusCode::Unset => "UNSET",
            StatusCode::Ok => "OK",
            StatusCode::Error => "ERROR",
        };
        (code, non_empty(&s.message))
    });
    Ok(json!({
        "trace_id": hex(&span.trace_id),
        "span_id": hex(&span.span_id),
        "parent_span_id": (!span.parent_span_id.is_empty()).then(|| hex(&span.parent_span_id)),
        "name": span.name,
        "kind": kind,
        "service_name": service,
        "status_code": status_code,
        "status_message": status_message,
        "start_time": start_time,
        "duration_ns": i64::try_from(duration).unwrap_or(i64::MAX),
        "resource_attributes": resource,
        "span_attributes": attrs,
        "scope_name": scope_name,
        "scope_version": scope_version,
        "task_id": task_id,
        "run_id": run_id,
        "retry_count": retry_count,
    }))
}

/// OTLP attributes as a JSON object (arrays and key-value lists nested, bytes as lowercase hex).
fn attributes(kvs: &[KeyValue]) -> Map<String, Value> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), any_value(kv.value.as_ref())))
        .collect()
}

fn any_value(value: Option<&AnyValue>) -> Value {
    match value.and_then(|v| v.value.as_ref()) {
        None => Value::Null,
        Some(any_value::Value::StringValue(s)) => Value::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(i)) => json!(i),
        Some(any_value::Value::DoubleValue(d)) => json!(d),
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(|v| any_value(Some(v))).collect())
        }
        Some(any_value::Value::KvlistValue(l)) => Value::Object(attributes(&l.values)),
        Some(any_value::Value::BytesValue(b)) => Value::String(hex(b)),
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
    use crate::proto::opentelemetry::proto::common::v1::InstrumentationScope;
    use crate::proto::opentelemetry::proto::resource::v1::Resource;
    use crate::proto::opentelemetry::proto::trace::v1::{ResourceSpans, ScopeSpans};

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
        }
    }

    fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv(
                        "service.name",
                        any_value::Value::StringValue("svc".into()),
                    )],
                    dropped_attributes_count: 0,
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "scope".into(),
                        version: "1.0".into(),
                        ..Default::default()
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    fn span(attrs: Vec<KeyValue>) -> Span {
        Span {
            trace_id: vec![0xab; 16],
            span_id: vec![1, 2, 3, 4, 5, 6, 7, 8],
            name: "work".into(),
            kind: SpanKind::Consumer as i32,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_000_001_500,
            attributes: attrs,
            ..Default::default()
        }
    }

    #[test]
    fn a_span_becomes_a_row_linked_to_its_task_and_run() {
        let tenant = Uuid::new_v4();
        let task = Uuid::new_v4();
        let rows = spans_json(
            tenant,
            &request(vec![span(vec![
                kv(
                    "hatchet.step_run_id",
                    any_value::Value::StringValue(task.to_string()),
                ),
                kv(
                    "hatchet.tenant_id",
                    any_value::Value::StringValue(tenant.to_string()),
                ),
                kv("hatchet.retry_count", any_value::Value::IntValue(2)),
                kv("n", any_value::Value::DoubleValue(1.5)),
            ])]),
        )
        .unwrap();
        let row = &rows[0];
        assert_eq!(row["trace_id"], "ab".repeat(16));
        assert_eq!(row["span_id"], "0102030405060708");
        assert_eq!(row["parent_span_id"], Value::Null);
        assert_eq!(row["kind"], "CONSUMER");
        assert_eq!(row["service_name"], "svc");
        assert_eq!(row["scope_name"], "scope");
        assert_eq!(row["duration_ns"], 1500);
        assert_eq!(row["task_id"], task.to_string());
        assert_eq!(row["run_id"], Value::Null);
        assert_eq!(row["retry_count"], 2);
        assert_eq!(row["span_attributes"]["n"], 1.5);
    }

    #[test]
    fn bad_spans_are_refused() {
        let tenant = Uuid::new_v4();
        let other = kv(
            "hatchet.tenant_id",
            any_value::Value::StringValue(Uuid::new_v4().to_string()),
        );
        let err = spans_json(tenant, &request(vec![span(vec![other])])).unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied);

        let not_uuid = kv(
            "hatchet.workflow_run_id",
            any_value::Value::StringValue("nope".into()),
        );
        let err = spans_json(tenant, &request(vec![span(vec![not_uuid])])).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);

        let mut short = span(vec![]);
        short.trace_id = vec![1; 8];
        let err = spans_json(tenant, &request(vec![short])).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);

        let many = (0..=MAX_SPANS).map(|_| span(vec![])).collect();
        let err = spans_json(tenant, &request(many)).unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    }
}
