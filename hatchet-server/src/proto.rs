//! Generated protobuf messages and tonic services for Hatchet's worker protocol.
//!
//! The .proto files under `hatchet-server/proto/` are ours, written from the contract in
//! `shared/reference/sdk_protocol.md`; `build.rs` compiles them with `protox` (no `protoc` needed). Three files have
//! no proto package because the SDKs call `/Dispatcher/…`, `/WorkflowService/…` and `/EventsService/…`; prost puts
//! them in `_.rs`, which we include at this module's root, so a package-less type is `proto::AssignedAction` and a
//! `v1` type is `proto::v1::CreateWorkflowVersionRequest`.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

include!(concat!(env!("OUT_DIR"), "/_.rs"));

/// Package `v1`: `v1.AdminService`, `v1.V1Dispatcher` and their shared condition / trigger messages.
pub mod v1 {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    include!(concat!(env!("OUT_DIR"), "/v1.rs"));
}

/// The encoded `FileDescriptorSet` of every .proto file we serve (including `google/protobuf/timestamp.proto`).
/// Used by the protocol compatibility check and available for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/hatchet_descriptor.bin"));
