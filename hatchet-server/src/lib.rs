//! hatchet-server: the thin front service of pg_hatchet.
//!
//! It speaks Hatchet's worker protocol (gRPC with tonic, REST with axum) so the official Hatchet SDKs run
//! unchanged, while every scheduling decision lives inside Postgres in the `pg_hatchet` extension. The server holds
//! connections, not state: it authenticates callers, translates calls into the extension's SQL API (all SQL lives
//! in [`db`]) and streams results back.
//!
//! The binary (`src/main.rs`) only parses flags; everything it does is available here so tests can run the real
//! server in-process: bind two listeners on port 0, build an [`AppState`], call [`run`].

#![warn(missing_docs)]

pub mod auth;
pub mod cluster;
pub mod config;
pub mod db;
mod dispatch;
pub mod duration;
mod error;
mod grpc;
pub mod metrics;
pub mod proto;
pub mod rest;
mod server;
mod state;
mod status;

pub use error::AppError;
pub use server::{run, Listeners, TlsFiles};
pub use state::AppState;
