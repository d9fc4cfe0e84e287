//! The gRPC side: Hatchet's five worker-protocol services and the OpenTelemetry trace collector, one module each.
//!
//! | module | service (wire path) |
//! |---|---|
//! | [`dispatcher`] | `/Dispatcher/*`: worker registration, ListenV2, task events, heartbeats, result streams |
//! | [`workflows`] | `/WorkflowService/*`: trigger, bulk trigger, schedule, rate limits (put, pause) |
//! | [`events`] | `/EventsService/*`: events, logs, stream chunks |
//! | [`admin_v1`] | `/v1.AdminService/*`: workflow registration, run details, cancel, trigger |
//! | [`dispatcher_v1`] | `/v1.V1Dispatcher/*`: durable tasks (not implemented) |
//! | [`traces`] | `/opentelemetry.proto.collector.trace.v1.TraceService/Export`: the SDKs' OpenTelemetry spans |
//!
//! Handlers parse the request, call [`crate::db`] (or [`crate::dispatch`] for what lives in memory: worker
//! streams, run subscriptions, stream chunks) and build the reply; they hold no SQL and open no transactions.
//!
//! Every service accepts and sends gzip (the SDKs gzip every request; without `accept_compressed` every call
//! fails) and caps messages at [`MAX_MESSAGE_BYTES`]. Authentication happens before any handler, in
//! [`GrpcAuthLayer`](crate::auth::grpc::GrpcAuthLayer); handlers get the tenant with
//! [`tenant_of`](crate::auth::grpc::tenant_of). An RPC this server cannot serve yet answers UNIMPLEMENTED via
//! [`unimplemented`]; the SDK does not retry that code, so the failure is immediate and honest.

mod admin_v1;
mod definition;
mod dispatcher;
mod dispatcher_v1;
mod events;
mod traces;
mod workflows;

use crate::config::MAX_MESSAGE_BYTES;
use crate::proto::opentelemetry::proto::collector::trace::v1::trace_service_server::TraceServiceServer;
use crate::proto::{
    dispatcher_server::DispatcherServer, events_service_server::EventsServiceServer,
    v1::admin_service_server::AdminServiceServer, v1::v1_dispatcher_server::V1DispatcherServer,
    workflow_service_server::WorkflowServiceServer,
};
use crate::state::AppState;
use tonic::codec::CompressionEncoding;
use tonic::service::Routes;

/// Applies the settings every service shares: gzip both ways and the message size cap.
macro_rules! configured {
    ($server:expr) => {
        $server
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    };
}

/// All six services, configured, ready for `Server::add_routes`.
pub(crate) fn routes(state: &AppState) -> Routes {
    let mut builder = Routes::builder();
    builder
        .add_service(configured!(DispatcherServer::new(
            dispatcher::DispatcherService::new(state.clone())
        )))
        .add_service(configured!(WorkflowServiceServer::new(
            workflows::WorkflowService::new(state.clone())
        )))
        .add_service(configured!(EventsServiceServer::new(
            events::EventsService::new(state.clone())
        )))
        .add_service(configured!(AdminServiceServer::new(
            admin_v1::AdminService::new(state.clone())
        )))
        .add_service(configured!(V1DispatcherServer::new(
            dispatcher_v1::V1DispatcherService::new(state.clone())
        )))
        .add_service(configured!(TraceServiceServer::new(
            traces::TraceService::new(state.clone())
        )));
    let router = builder
        .routes()
        .into_axum_router()
        .layer(axum::middleware::map_response(client_error_codes));
    Routes::from(router)
}

/// tonic answers a request body that is not valid protobuf with INTERNAL and one over the size cap with
/// OUT_OF_RANGE. Both are the client's fault, and the SDKs treat INTERNAL as a server bug, so they are answered as
/// INVALID_ARGUMENT and RESOURCE_EXHAUSTED. tonic reports both before any handler runs, as a trailers-only
/// response, so the status is in the response headers.
async fn client_error_codes(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    let status = headers.get("grpc-status").map(|v| v.as_bytes().to_vec());
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(|m| m.replace("%20", " "))
        .unwrap_or_default();
    let code = match status.as_deref() {
        Some(b"13") if message.starts_with("failed to decode Protobuf message") => {
            tonic::Code::InvalidArgument
        }
        Some(b"11") if message.starts_with("Error, decoded message length too large") => {
            tonic::Code::ResourceExhausted
        }
        _ => return response,
    };
    headers.insert("grpc-status", http::HeaderValue::from(code as i32));
    response
}

/// UNIMPLEMENTED for an RPC that exists in the protocol but not yet in this server. `method` is the wire name,
/// e.g. `Dispatcher.Register`.
fn unimplemented(method: &str) -> tonic::Status {
    tonic::Status::unimplemented(format!("{method} is not implemented yet"))
}

/// Parses a UUID request field, or INVALID_ARGUMENT naming the field.
fn parse_id(field: &str, value: &str) -> Result<uuid::Uuid, tonic::Status> {
    uuid::Uuid::parse_str(value.trim()).map_err(|_| {
        tonic::Status::invalid_argument(format!("{field} must be a UUID, not {value:?}"))
    })
}

/// Parses a JSON-text request field (`input`, `payload`, `additional_metadata`); empty means `{}`.
fn parse_json(field: &str, value: &str) -> Result<serde_json::Value, tonic::Status> {
    if value.trim().is_empty() {
        return Ok(serde_json::json!({}));
    }
    serde_json::from_str(value)
        .map_err(|err| tonic::Status::invalid_argument(format!("{field} is not valid JSON: {err}")))
}
