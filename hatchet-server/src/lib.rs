//! hatchet-server: the thin front service of pg_hatchet.
//!
//! It speaks Hatchet's worker protocol (gRPC with tonic, REST with axum) so the official Hatchet SDKs run
//! unchanged, while every scheduling decision lives inside Postgres in the `pg_hatchet` extension. The server holds
//! connections, not state: it authenticates callers, translates calls into the extension's SQL API (all SQL lives
//! in [`db`]) and streams results back.
//!
//! The binary (`src/main.rs`) only parses flags; everything it does is available here so tests can run the real
//! server in-process: bind two listeners on port 0, build an [`AppState`], call [`run`].
//!
//! Modules depend on each other one way only, each on the ones left of it (none imports one that imports it back):
//!
//! ```text
//! proto, config, error, status -> db -> auth, metrics, cluster -> dispatch, alerting -> state -> grpc, dashboard -> rest
//! -> server
//! ```
//!
//! | module | what it holds |
//! |---|---|
//! | `proto` | the generated protocol, protobuf timestamps, the boxed response stream |
//! | `config`, `error`, `status` | constants and settings; [`AppError`] and its SQLSTATE mapping; task and run statuses with their SDK shapes |
//! | [`db`] | every SQL statement, one file per file of the extension's `sql/` |
//! | [`auth`], [`metrics`], [`cluster`] | API tokens; Prometheus metrics; the local Postgres of `dev` and the tests |
//! | `dispatch` | what lives in memory: connected workers, assignment and completion loops, run and stream subscriptions |
//! | `alerting` | the alert sender: consumes the `hatchet:alerts` queue, posts to Slack / webhooks, mails over SMTP |
//! | `state` | [`AppState`], what every handler gets |
//! | `grpc`, [`rest`] | the two transports' handlers |
//! | `dashboard` | the HTML dashboard served at `/` on the REST port (merged into [`rest::app`]) |
//! | `server` | [`run`]: both listeners until shutdown |
//!
//! Only what `main.rs` and the integration tests use is public; everything else is `pub(crate)`.

#![warn(missing_docs)]

mod alerting;
pub mod auth;
pub mod cluster;
pub mod config;
mod dashboard;
pub mod db;
mod dispatch;
mod error;
mod grpc;
pub mod metrics;
pub mod proto;
pub mod rest;
mod server;
mod state;
mod status;

pub use error::AppError;
pub use server::{check_exposure, run, Listeners, TlsFiles};
pub use state::AppState;
