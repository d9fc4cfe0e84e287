//! Server-wide constants and runtime settings.
//!
//! Constants here are protocol facts (the engine version we advertise, the message size limit the SDKs assume);
//! [`ServerConfig`] holds what an operator may tune.

use std::time::Duration;
use uuid::{uuid, Uuid};

/// The engine version reported by `Dispatcher.GetVersion`.
///
/// The SDKs choose their code paths from it (hatchet-sdk 1.43.1 `engine_version.py`, @hatchet-dev/typescript-sdk
/// 1.33.2 `engine-version.js`): `>= v0.78.23` selects the current worker protocol (slot_config, ListenV2; below it
/// hatchet-sdk takes a deprecated path that raises at random); `>= v0.80.0` opens the `V1Dispatcher.DurableTask`
/// stream for durable tasks (memo, waits, child runs, eviction: `grpc::dispatcher_v1`); v0.82.0 (OBSERVABILITY) and
/// v0.88.1 (BATCHING) gate no SDK code (batch tasks, START_BATCH and `SendBatchActionEvent`, are served:
/// `sql/batch.sql`); `>= v0.111.0` stops the SDK warning that a `RetryAfterException` delay will be ignored (it is
/// honoured: `hatchet.fail(retry_after)`). Raise it past a newer gate only when everything the SDKs then use works.
pub const ENGINE_VERSION: &str = "v0.111.0";

/// Largest gRPC message accepted or sent, matching the SDK's default `GRPC_MAX_{RECV,SEND}_MESSAGE_LENGTH`.
pub(crate) const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// The tenant the extension creates on install; `hatchet-server dev` mints its token for it.
pub const DEFAULT_TENANT_ID: Uuid = uuid!("707d0855-80ab-4e1f-a156-f1c4546cbf52");

/// How often the server pings idle HTTP/2 connections. Clients ping us every 10 s (the SDK's keepalive_time); the
/// server never rejects pings, whatever their rate.
pub(crate) const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// How long the server waits for a ping acknowledgement before dropping the connection.
pub(crate) const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The default `idle_in_transaction_session_timeout` of every server session (both pools): how long Postgres lets
/// a session sit idle inside an open transaction before it ends the session, and with it the transaction and its
/// locks. A replica that stops between two statements of a transaction (SIGSTOP, a debugger, a VM paused, a network
/// partition with the TCP connection still open) holds its row locks for that long. The completion transaction
/// (`complete_many`, then `assign` for the same worker) holds the worker's `hatchet.worker_slots` row, which the
/// maintenance pass needs to release that worker's unacknowledged or timed-out attempts and to reap it: the chaos
/// suite's third long run had a stopped replica hold it for 15 s, with the old 60 s default nothing bounded it below
/// a minute. Kept well under the extension's `hatchet.worker_dead_after_ms` (30 s by default, 10 s in the chaos
/// suite), so a stopped replica delays a release by at most this much past worker_dead_after. Every transaction the
/// server opens runs its statements back to back (no waiting on a client or the network in between), so a healthy
/// server is never idle in a transaction for anywhere near this long.
pub const IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(5);

/// A duration as a Postgres millisecond setting; 0 would mean "no limit", so a zero duration is raised to 1 ms.
pub(crate) fn pg_millis(d: Duration) -> String {
    d.as_millis().clamp(1, i32::MAX as u128).to_string()
}

/// Operator settings shared by every handler.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// How long a verified token (and a tenant's signing secret) is trusted without asking the database again.
    /// Revoking a token takes effect on other servers within this delay, for open streams too (they re-verify
    /// their token at least every half of it).
    pub auth_cache_ttl: Duration,
    /// After shutdown starts, how long in-flight requests and open streams get before the server stops anyway.
    pub shutdown_grace: Duration,
    /// The background loops' own connections (assigner, completion batcher, LISTEN notifier, run watcher, stream
    /// pruning): their pool size and the timeouts set on each of their sessions. See [`BackgroundPool`].
    pub background: BackgroundPool,
    /// Most runs one `SubscribeToWorkflowRuns` stream (or one metadata `SubscribeToWorkflowEvents` stream) may
    /// follow at once; one more ends the stream with RESOURCE_EXHAUSTED. An answered run no longer counts.
    pub max_subscriptions_per_stream: usize,
    /// The address people reach this server's dashboard at, e.g. `https://hatchet.example.com`: alerts link to
    /// `<public_url>/runs/<run id>`.
    pub public_url: String,
    /// Whether the dashboard signs in from a link (`GET /login?token=...`), as `hatchet-server dev` prints one. Off
    /// for `serve`: a link that sets a session cookie lets whoever sends it sign a browser in as their tenant.
    pub dashboard_link_login: bool,
    /// Whether the dashboard's session cookie is `Secure` (sent back over HTTPS only). `serve` sets it when its
    /// public URL is `https://` (TLS terminated by a proxy in front); [`crate::run`] sets it whenever it serves TLS.
    pub secure_cookies: bool,
    /// `idle_in_transaction_session_timeout` of every request-handling session (the background sessions have their
    /// own, [`BackgroundPool::idle_in_transaction_timeout`]). See [`IDLE_IN_TRANSACTION_TIMEOUT`].
    pub idle_in_transaction_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            auth_cache_ttl: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            background: BackgroundPool::default(),
            max_subscriptions_per_stream: 10_000,
            public_url: "http://localhost:8080".to_owned(),
            dashboard_link_login: false,
            secure_cookies: false,
            idle_in_transaction_timeout: IDLE_IN_TRANSACTION_TIMEOUT,
        }
    }
}

/// The pool of the background loops, separate from the pool that serves requests: a flood of API calls cannot
/// take the connections assignment and completion need, and a stuck background statement cannot take a request's.
/// Each session is opened with these settings, so one tenant's slow or blocked statement fails after a bounded
/// time (and is logged and skipped) instead of stalling the loop for every tenant after it.
#[derive(Debug, Clone)]
pub struct BackgroundPool {
    /// Most connections the background loops hold, the two `LISTEN` connections included.
    pub max_connections: u32,
    /// `statement_timeout` of every background session.
    pub statement_timeout: Duration,
    /// `lock_timeout` of every background session.
    pub lock_timeout: Duration,
    /// `idle_in_transaction_session_timeout` of every background session (see [`IDLE_IN_TRANSACTION_TIMEOUT`]).
    pub idle_in_transaction_timeout: Duration,
}

impl Default for BackgroundPool {
    fn default() -> Self {
        Self {
            max_connections: 8,
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(5),
            idle_in_transaction_timeout: IDLE_IN_TRANSACTION_TIMEOUT,
        }
    }
}

impl BackgroundPool {
    /// The session settings as `(name, value)` startup options, values in milliseconds (0 would mean "no limit"
    /// to Postgres, so a zero duration is raised to 1 ms).
    pub fn session_settings(&self) -> [(&'static str, String); 3] {
        let ms = pg_millis;
        [
            ("statement_timeout", ms(self.statement_timeout)),
            ("lock_timeout", ms(self.lock_timeout)),
            (
                "idle_in_transaction_session_timeout",
                ms(self.idle_in_transaction_timeout),
            ),
        ]
    }
}
