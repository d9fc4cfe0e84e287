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

fn our_contract() -> Vec<String> {
    let fds = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set decodes");
    let mut lines = Vec::new();
    for file in fds.file.iter().filter(|f| !f.name().starts_with("google/")) {
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
