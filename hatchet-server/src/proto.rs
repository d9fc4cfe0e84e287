//! Generated protobuf messages and tonic services for Hatchet's worker protocol, and the small helpers every
//! layer shares to speak it (timestamps, the boxed response stream).
//!
//! The .proto files under `hatchet-server/proto/` are ours, written from the protocol the Hatchet SDKs speak;
//! `build.rs` compiles them with `protox` (no `protoc` needed). Three files have no proto package because the
//! SDKs call `/Dispatcher/…`, `/WorkflowService/…` and `/EventsService/…`; prost puts them in `_.rs`, which we
//! include at this module's root, so a package-less type is `proto::AssignedAction` and a `v1` type is
//! `proto::v1::CreateWorkflowVersionRequest`.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

include!(concat!(env!("OUT_DIR"), "/_.rs"));

/// Package `v1`: `v1.AdminService`, `v1.V1Dispatcher` and their shared condition / trigger messages.
pub mod v1 {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    include!(concat!(env!("OUT_DIR"), "/v1.rs"));
}

/// The OpenTelemetry protocol's trace collector (`opentelemetry.proto.*`): the SDKs' instrumentors export spans to
/// `TraceService/Export` on our gRPC port. The module tree mirrors the proto packages, which prost's generated code
/// refers to by relative paths.
pub mod opentelemetry {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    pub mod proto {
        pub mod common {
            pub mod v1 {
                #![allow(missing_docs, clippy::all, clippy::pedantic)]
                include!(concat!(
                    env!("OUT_DIR"),
                    "/opentelemetry.proto.common.v1.rs"
                ));
            }
        }
        pub mod resource {
            pub mod v1 {
                #![allow(missing_docs, clippy::all, clippy::pedantic)]
                include!(concat!(
                    env!("OUT_DIR"),
                    "/opentelemetry.proto.resource.v1.rs"
                ));
            }
        }
        pub mod trace {
            pub mod v1 {
                #![allow(missing_docs, clippy::all, clippy::pedantic)]
                include!(concat!(env!("OUT_DIR"), "/opentelemetry.proto.trace.v1.rs"));
            }
        }
        pub mod collector {
            pub mod trace {
                pub mod v1 {
                    #![allow(missing_docs, clippy::all, clippy::pedantic)]
                    include!(concat!(
                        env!("OUT_DIR"),
                        "/opentelemetry.proto.collector.trace.v1.rs"
                    ));
                }
            }
        }
    }
}

/// The encoded `FileDescriptorSet` of every .proto file we serve (including `google/protobuf/timestamp.proto`).
/// Used by the protocol compatibility check and available for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/hatchet_descriptor.bin"));

/// The boxed stream type of every server-streaming response.
pub(crate) type ResponseStream<T> =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<T, tonic::Status>> + Send>>;

/// A UTC time as a protobuf timestamp.
pub(crate) fn timestamp(at: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// A protobuf timestamp as a UTC time (`None` if out of range).
pub(crate) fn to_datetime(ts: &prost_types::Timestamp) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).ok()?)
}
