//! Server-wide constants and runtime settings.
//!
//! Constants here are protocol facts (the engine version we advertise, the message size limit the SDKs assume);
//! [`ServerConfig`] holds what an operator may tune.

use std::time::Duration;
use uuid::{uuid, Uuid};

/// The engine version reported by `Dispatcher.GetVersion`.
///
/// The SDK chooses its code paths from it: `>= v0.78.23` selects the current worker protocol (slot_config,
/// ListenV2); below that, hatchet-sdk 1.43.1 takes a deprecated path that raises at random. `>= v0.80.0` would make
/// the SDK open the `V1Dispatcher.DurableTask` stream, so raise it only once that stream is implemented.
pub const ENGINE_VERSION: &str = "v0.79.0";

/// Largest gRPC message accepted or sent, matching the SDK's default `GRPC_MAX_{RECV,SEND}_MESSAGE_LENGTH`.
pub(crate) const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// The tenant the extension creates on install; `hatchet-server dev` mints its token for it.
pub const DEFAULT_TENANT_ID: Uuid = uuid!("707d0855-80ab-4e1f-a156-f1c4546cbf52");

/// How often the server pings idle HTTP/2 connections. Clients ping us every 10 s (the SDK's keepalive_time); the
/// server never rejects pings, whatever their rate.
pub(crate) const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// How long the server waits for a ping acknowledgement before dropping the connection.
pub(crate) const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Operator settings shared by every handler.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// How long a verified token (and a tenant's signing secret) is trusted without asking the database again.
    /// Revoking a token takes effect on other servers within this delay.
    pub auth_cache_ttl: Duration,
    /// After shutdown starts, how long in-flight requests and open streams get before the server stops anyway.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            auth_cache_ttl: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}
