//! Compiles our .proto files with the pure-Rust `protox` compiler (so no `protoc` is needed on CI) and generates
//! prost messages plus tonic servers and clients. The encoded descriptor set is written to
//! `$OUT_DIR/hatchet_descriptor.bin` so the crate can expose it (compatibility checks, gRPC reflection later).

use prost::Message;
use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "dispatcher.proto",
    "events.proto",
    "workflows.proto",
    "v1/dispatcher.proto",
    "v1/workflows.proto",
    "v1/shared/condition.proto",
    "v1/shared/trigger.proto",
    "opentelemetry/proto/common/v1/common.proto",
    "opentelemetry/proto/resource/v1/resource.proto",
    "opentelemetry/proto/trace/v1/trace.proto",
    "opentelemetry/proto/collector/trace/v1/trace_service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed=proto/{proto}");
    }
    let fds = protox::compile(PROTOS, ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("hatchet_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        // Clients are used by the integration tests and are handy for tooling; they cost little to compile.
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
