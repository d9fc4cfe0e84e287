//! Wire compatibility of our .proto files with the real hatchet-sdk.
//!
//! `fixtures/sdk_contract.txt` lists the gRPC contract compiled into hatchet-sdk (the version is on its first
//! line; regenerate it with `fixtures/dump_sdk_contract.py` when the SDK is upgraded). This test renders the
//! descriptor set that build.rs compiled from our own protos in the same normalized form and requires the two to
//! be identical: same services and paths, message names, field numbers, types, labels, `optional` and oneofs.

use hatchet_server::proto::FILE_DESCRIPTOR_SET;
use prost::Message;
use prost_types::{DescriptorProto, FileDescriptorSet};

fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

fn message_lines(prefix: &str, message: &DescriptorProto, lines: &mut Vec<String>) {
    let name = format!("{prefix}{}", message.name());
    for f in &message.field {
        let oneof = match f.oneof_index {
            Some(i) if !f.proto3_optional() => {
                format!(" oneof={}", message.oneof_decl[i as usize].name())
            }
            _ => String::new(),
        };
        lines.push(format!(
            "msg {name} {} {} {} {} {} opt={}{oneof}",
            f.number(),
            f.name(),
            f.r#type().as_str_name(),
            f.label().as_str_name(),
            f.type_name(),
            py_bool(f.proto3_optional()),
        ));
    }
    for nested in &message.nested_type {
        message_lines(&format!("{name}."), nested, lines);
    }
    for e in &message.enum_type {
        for v in &e.value {
            lines.push(format!(
                "enum {name}.{} {} {}",
                e.name(),
                v.number(),
                v.name()
            ));
        }
    }
}

/// Our descriptor set rendered as contract lines, for the files whose name starts with one of `prefixes`.
fn contract_of(prefixes: &[&str]) -> Vec<String> {
    let fds = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set decodes");
    let mut lines = Vec::new();
    for file in fds
        .file
        .iter()
        .filter(|f| prefixes.iter().any(|p| f.name().starts_with(p)))
    {
        let pkg = if file.package().is_empty() {
            String::new()
        } else {
            format!("{}.", file.package())
        };
        lines.push(format!("file {} package={}", file.name(), file.package()));
        for m in &file.message_type {
            message_lines(&pkg, m, &mut lines);
        }
        for e in &file.enum_type {
            for v in &e.value {
                lines.push(format!(
                    "enum {pkg}{} {} {}",
                    e.name(),
                    v.number(),
                    v.name()
                ));
            }
        }
        for s in &file.service {
            for m in &s.method {
                lines.push(format!(
                    "rpc /{pkg}{}/{} {} -> {} cs={} ss={}",
                    s.name(),
                    m.name(),
                    m.input_type(),
                    m.output_type(),
                    py_bool(m.client_streaming()),
                    py_bool(m.server_streaming()),
                ));
            }
        }
    }
    lines.sort();
    lines
}

/// The Hatchet protocol: every file but Google's well-known types and the OpenTelemetry collector (which is not
/// part of hatchet-sdk's contract; see `otlp_subset_has_the_spec_field_numbers`).
fn our_contract() -> Vec<String> {
    let fds = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set decodes");
    let hatchet: Vec<String> = fds
        .file
        .iter()
        .map(|f| f.name().to_owned())
        .filter(|n| !n.starts_with("google/") && !n.starts_with("opentelemetry/"))
        .collect();
    let prefixes: Vec<&str> = hatchet.iter().map(String::as_str).collect();
    contract_of(&prefixes)
}

/// The OTLP trace collector subset we compiled keeps the OpenTelemetry protocol's field numbers and types (checked
/// against the descriptors of the `opentelemetry-proto` Python package, 1.45.2) and its wire path.
#[test]
fn otlp_subset_has_the_spec_field_numbers() {
    let ours = contract_of(&["opentelemetry/"]);
    for line in [
        "rpc /opentelemetry.proto.collector.trace.v1.TraceService/Export .opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest -> .opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse cs=False ss=False",
        "msg opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest 1 resource_spans TYPE_MESSAGE LABEL_REPEATED .opentelemetry.proto.trace.v1.ResourceSpans opt=False",
        "msg opentelemetry.proto.trace.v1.ResourceSpans 2 scope_spans TYPE_MESSAGE LABEL_REPEATED .opentelemetry.proto.trace.v1.ScopeSpans opt=False",
        "msg opentelemetry.proto.trace.v1.Span 1 trace_id TYPE_BYTES LABEL_OPTIONAL  opt=False",
        "msg opentelemetry.proto.trace.v1.Span 2 span_id TYPE_BYTES LABEL_OPTIONAL  opt=False",
        "msg opentelemetry.proto.trace.v1.Span 4 parent_span_id TYPE_BYTES LABEL_OPTIONAL  opt=False",
        "msg opentelemetry.proto.trace.v1.Span 5 name TYPE_STRING LABEL_OPTIONAL  opt=False",
        "msg opentelemetry.proto.trace.v1.Span 7 start_time_unix_nano TYPE_FIXED64 LABEL_OPTIONAL  opt=False",
        "msg opentelemetry.proto.trace.v1.Span 8 end_time_unix_nano TYPE_FIXED64 LABEL_OPTIONAL  opt=False",
        "msg opentelemetry.proto.trace.v1.Span 9 attributes TYPE_MESSAGE LABEL_REPEATED .opentelemetry.proto.common.v1.KeyValue opt=False",
        "msg opentelemetry.proto.trace.v1.Span 15 status TYPE_MESSAGE LABEL_OPTIONAL .opentelemetry.proto.trace.v1.Status opt=False",
        "msg opentelemetry.proto.trace.v1.Status 3 code TYPE_ENUM LABEL_OPTIONAL .opentelemetry.proto.trace.v1.Status.StatusCode opt=False",
        "msg opentelemetry.proto.common.v1.AnyValue 3 int_value TYPE_INT64 LABEL_OPTIONAL  opt=False oneof=value",
        "msg opentelemetry.proto.common.v1.AnyValue 4 double_value TYPE_DOUBLE LABEL_OPTIONAL  opt=False oneof=value",
        "enum opentelemetry.proto.trace.v1.Span.SpanKind 5 SPAN_KIND_CONSUMER",
    ] {
        assert!(ours.iter().any(|o| o == line), "missing: {line}\nours: {ours:#?}");
    }
}

#[test]
fn protos_match_the_sdk_contract() {
    let expected: Vec<&str> = include_str!("fixtures/sdk_contract.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    let ours = our_contract();
    let missing: Vec<&&str> = expected
        .iter()
        .filter(|l| !ours.iter().any(|o| o == **l))
        .collect();
    let extra: Vec<&String> = ours
        .iter()
        .filter(|o| !expected.contains(&o.as_str()))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "our protos differ from the SDK contract\nmissing from ours:\n{missing:#?}\nonly in ours:\n{extra:#?}"
    );
    assert_eq!(ours.len(), expected.len());
}

#[test]
fn every_sdk_service_is_present() {
    let ours = our_contract();
    for path in [
        "/Dispatcher/GetVersion",
        "/Dispatcher/ListenV2",
        "/WorkflowService/TriggerWorkflow",
        "/EventsService/PutLog",
        "/v1.AdminService/PutWorkflow",
        "/v1.V1Dispatcher/DurableTask",
    ] {
        assert!(
            ours.iter().any(|l| l.starts_with(&format!("rpc {path} "))),
            "{path} missing"
        );
    }
}
