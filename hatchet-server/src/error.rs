//! One error type for every handler, with one mapping to HTTP and one to gRPC.
//!
//! Handlers return `Result<_, AppError>`; `?` on a `sqlx::Error` goes through [`From<sqlx::Error>`], which is the
//! single place where the extension's SQLSTATEs become domain errors (see `docs/sql-api.md`):
//!
//! | SQLSTATE | meaning in pg_hatchet | HTTP | gRPC |
//! |---|---|---|---|
//! | 22023, 22004, 22P02, 22007, 22008, 2201B, 22003 | bad or missing argument | 400 | INVALID_ARGUMENT |
//! | 22P05, 22021 | unstorable input (a `\u0000` in JSON, a NUL byte in text) | 400 | INVALID_ARGUMENT |
//! | 42704, P0002 | unknown task / workflow / tenant | 404 | NOT_FOUND |
//! | 23505 with a run id as the detail | another run holds the workflow's idempotency key | 409 | ALREADY_EXISTS "idempotency key collision", with Hatchet's `IdempotencyCollisionError` as the status detail |
//! | 23505, 42710 | duplicate (unique violation, object exists) | 409 | ALREADY_EXISTS |
//! | 55000 | stale attempt or wrong state | 409 | FAILED_PRECONDITION |
//! | 54000 | payload over the limit | 413 | RESOURCE_EXHAUSTED |
//! | 57P01-57P03, 08xxx, pool timeout, I/O | database unavailable | 503 | UNAVAILABLE |
//! | anything else | bug or unexpected state | 500 | INTERNAL |
//!
//! Client errors carry the database's message (written for users: `queue "emails" does not exist`). Internal
//! errors are logged with their detail and answered with a bare "internal error".

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use prost::Message;
use serde_json::json;
use uuid::Uuid;

use crate::proto::v1;

/// The message of an idempotency collision; the SDK recognises the error by it (and by ALREADY_EXISTS).
const IDEMPOTENCY_COLLISION: &str = "idempotency key collision";

/// An error a request handler can return, already classified for the client.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed or names invalid values.
    #[error("{0}")]
    InvalidArgument(String),
    /// The caller has no valid token.
    #[error("{0}")]
    Unauthenticated(String),
    /// The token is valid but does not grant access to the named resource (another tenant's, for example).
    #[error("{0}")]
    PermissionDenied(String),
    /// The named resource does not exist (for this tenant).
    #[error("{0}")]
    NotFound(String),
    /// The resource already exists.
    #[error("{0}")]
    AlreadyExists(String),
    /// A trigger refused because another run holds the workflow's idempotency key.
    #[error("{IDEMPOTENCY_COLLISION}")]
    IdempotencyCollision {
        /// The run holding the key.
        existing: Uuid,
    },
    /// A bulk trigger some of whose runs were refused for their idempotency keys.
    #[error("{IDEMPOTENCY_COLLISION}")]
    BulkIdempotencyCollision {
        /// The runs that did start (and stay started).
        started: Vec<Uuid>,
        /// For each refused trigger, the run holding its key.
        collisions: Vec<Uuid>,
    },
    /// The resource is not in a state that allows the operation (a stale attempt, for example).
    #[error("{0}")]
    FailedPrecondition(String),
    /// A size or count limit was exceeded.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The operation exists in the protocol but this server does not implement it yet.
    #[error("{0}")]
    Unimplemented(String),
    /// A dependency (the database) is unreachable; the client should retry.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else. The detail is logged, never sent to the client.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    /// Wraps an unexpected error; its detail is logged when the error is turned into a response.
    pub(crate) fn internal(err: impl Into<anyhow::Error>) -> Self {
        AppError::Internal(err.into())
    }

    /// The HTTP status this error maps to.
    pub(crate) fn http_status(&self) -> StatusCode {
        match self {
            AppError::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            AppError::PermissionDenied(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::AlreadyExists(_)
            | AppError::IdempotencyCollision { .. }
            | AppError::BulkIdempotencyCollision { .. }
            | AppError::FailedPrecondition(_) => StatusCode::CONFLICT,
            AppError::ResourceExhausted(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Unimplemented(_) => StatusCode::NOT_IMPLEMENTED,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The gRPC code this error maps to.
    pub(crate) fn grpc_code(&self) -> tonic::Code {
        match self {
            AppError::InvalidArgument(_) => tonic::Code::InvalidArgument,
            AppError::Unauthenticated(_) => tonic::Code::Unauthenticated,
            AppError::PermissionDenied(_) => tonic::Code::PermissionDenied,
            AppError::NotFound(_) => tonic::Code::NotFound,
            AppError::AlreadyExists(_)
            | AppError::IdempotencyCollision { .. }
            | AppError::BulkIdempotencyCollision { .. } => tonic::Code::AlreadyExists,
            AppError::FailedPrecondition(_) => tonic::Code::FailedPrecondition,
            AppError::ResourceExhausted(_) => tonic::Code::ResourceExhausted,
            AppError::Unimplemented(_) => tonic::Code::Unimplemented,
            AppError::Unavailable(_) => tonic::Code::Unavailable,
            AppError::Internal(_) => tonic::Code::Internal,
        }
    }

    /// The message sent to the client; logs internal errors (the only place they are logged).
    pub(crate) fn client_message(&self) -> String {
        if let AppError::Internal(err) = self {
            tracing::error!(error = ?err, "internal error");
        }
        self.to_string()
    }
}

/// The SQLSTATEs of input Postgres cannot store: 22P05 (`\u0000` in JSON, which jsonb cannot hold) and 22021 (a
/// NUL byte or invalid UTF-8 in text).
const UNSTORABLE: [&str; 2] = ["22P05", "22021"];

/// The SQLSTATEs of an unknown task, run, workflow or tenant.
const NOT_FOUND: [&str; 2] = ["42704", "P0002"];

/// Whether a database error says the named object does not exist (what [`AppError::NotFound`] is made from), for
/// the callers that try something else then.
pub(crate) fn is_not_found(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().is_some_and(|c| NOT_FOUND.contains(&c.as_ref())))
}

/// What a database error with this SQLSTATE means to the client; `None` for an error the client did not cause
/// (an internal error). A unique violation that names an idempotency key's holder is told apart by the caller.
fn from_sqlstate(code: &str, message: String) -> Option<AppError> {
    Some(match code {
        "22023" | "22004" | "22P02" | "22007" | "22008" | "2201B" | "22003" => {
            AppError::InvalidArgument(message)
        }
        // Input Postgres cannot store: resending it can never succeed, so it is the client's error.
        code if UNSTORABLE.contains(&code) => AppError::InvalidArgument(message),
        code if NOT_FOUND.contains(&code) => AppError::NotFound(message),
        "23505" | "42710" => AppError::AlreadyExists(message),
        "55000" => AppError::FailedPrecondition(message),
        "54000" => AppError::ResourceExhausted(message),
        code if code.starts_with("08") || code.starts_with("57P") => {
            tracing::warn!(%code, %message, "database unavailable");
            AppError::Unavailable("database unavailable".into())
        }
        _ => return None,
    })
}

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) => {
                if let Some(existing) = idempotency_holder(&err) {
                    return AppError::IdempotencyCollision { existing };
                }
                let code = db.code().unwrap_or_default();
                from_sqlstate(&code, db.message().to_owned())
                    .unwrap_or_else(|| AppError::Internal(err.into()))
            }
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                tracing::warn!(error = %err, "database unavailable");
                AppError::Unavailable("database unavailable".into())
            }
            _ => AppError::Internal(err.into()),
        }
    }
}

/// The run holding the idempotency key a trigger was refused for: `hatchet._claim_run_key` raises 23505 with that
/// run's id as the detail (other unique violations carry no such detail).
pub(crate) fn idempotency_holder(err: &sqlx::Error) -> Option<Uuid> {
    let sqlx::Error::Database(db) = err else {
        return None;
    };
    if db.code().as_deref() != Some("23505") {
        return None;
    }
    let pg = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()?;
    Uuid::parse_str(pg.detail()?).ok()
}

/// `google.rpc.Status`: what a gRPC error carries in its `grpc-status-details-bin` trailer, which the SDK unpacks
/// for an idempotency collision.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

/// A gRPC error with one detail message (`type.googleapis.com/v1.<name>`), as Hatchet sends its collisions.
fn status_with_detail(
    code: tonic::Code,
    message: &str,
    name: &str,
    detail: Vec<u8>,
) -> tonic::Status {
    let status = RpcStatus {
        code: code as i32,
        message: message.to_owned(),
        details: vec![prost_types::Any {
            type_url: format!("type.googleapis.com/v1.{name}"),
            value: detail,
        }],
    };
    tonic::Status::with_details(code, message, status.encode_to_vec().into())
}

fn collision(existing: &Uuid) -> v1::IdempotencyCollisionError {
    v1::IdempotencyCollisionError {
        existing_run_external_id: existing.to_string(),
        colliding_run_external_id: String::new(),
    }
}

impl From<AppError> for tonic::Status {
    fn from(err: AppError) -> Self {
        let code = err.grpc_code();
        match &err {
            AppError::IdempotencyCollision { existing } => status_with_detail(
                code,
                IDEMPOTENCY_COLLISION,
                "IdempotencyCollisionError",
                collision(existing).encode_to_vec(),
            ),
            AppError::BulkIdempotencyCollision {
                started,
                collisions,
            } => status_with_detail(
                code,
                IDEMPOTENCY_COLLISION,
                "BulkTriggerIdempotencyCollisionError",
                v1::BulkTriggerIdempotencyCollisionError {
                    successful_workflow_run_external_ids: started
                        .iter()
                        .map(Uuid::to_string)
                        .collect(),
                    collisions: collisions.iter().map(collision).collect(),
                }
                .encode_to_vec(),
            ),
            _ => tonic::Status::new(code, err.client_message()),
        }
    }
}

/// The body is Hatchet's `APIErrors` shape, which the SDK's REST client parses:
/// `{"errors": [{"description": "..."}]}`.
impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.http_status();
        let body = json!({ "errors": [{ "description": self.client_message() }] });
        (status, Json(body)).into_response()
    }
}

/// How long a worker's call that must not be lost (COMPLETED, FAILED, the start of its action stream, the token
/// check in front of them) waits for an unreachable database before it gets UNAVAILABLE. The SDK gives a failed
/// event up after about 15 s of its own retries, so an outage longer than that would otherwise leave the attempt
/// RUNNING until its timeout and run it again (the chaos suite's `postmaster_kill_long` found it).
pub(crate) const OUTAGE_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// How long `Register` waits for an unreachable database: below the 30 s the SDK gives the call, so the worker
/// gets an answer (success, or UNAVAILABLE it retries) rather than a deadline of its own.
pub(crate) const REGISTER_WAIT: std::time::Duration = std::time::Duration::from_secs(25);

/// Runs `op` until it returns anything but [`AppError::Unavailable`], waiting out a database outage for up to
/// `wait` (backoff 100 ms doubling to 2 s), or until `shutdown` fires; then the last UNAVAILABLE goes back to the
/// caller. `op` must be safe to run again after a failure whose commit may have happened (idempotent).
/// The caller's call simply takes longer, and its client's deadline still cuts it short.
pub(crate) async fn when_reachable<T, F, Fut>(
    wait: std::time::Duration,
    shutdown: Option<&tokio_util::sync::CancellationToken>,
    what: &'static str,
    mut op: F,
) -> Result<T, AppError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, AppError>>,
{
    let started = tokio::time::Instant::now();
    let mut backoff = std::time::Duration::from_millis(100);
    loop {
        match op().await {
            Err(AppError::Unavailable(msg)) if started.elapsed() < wait => {
                tracing::debug!(%msg, what, "database unavailable; retrying");
                let sleep = tokio::time::sleep(backoff.min(wait.saturating_sub(started.elapsed())));
                match shutdown {
                    Some(shutdown) => tokio::select! {
                        () = sleep => {}
                        () = shutdown.cancelled() => return Err(AppError::Unavailable(msg)),
                    },
                    None => sleep.await,
                }
                backoff = (backoff * 2).min(std::time::Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_line_up() {
        let cases = [
            (
                AppError::InvalidArgument("x".into()),
                400,
                tonic::Code::InvalidArgument,
            ),
            (
                AppError::Unauthenticated("x".into()),
                401,
                tonic::Code::Unauthenticated,
            ),
            (AppError::NotFound("x".into()), 404, tonic::Code::NotFound),
            (
                AppError::FailedPrecondition("x".into()),
                409,
                tonic::Code::FailedPrecondition,
            ),
            (
                AppError::ResourceExhausted("x".into()),
                413,
                tonic::Code::ResourceExhausted,
            ),
            (
                AppError::Unimplemented("x".into()),
                501,
                tonic::Code::Unimplemented,
            ),
            (
                AppError::Unavailable("x".into()),
                503,
                tonic::Code::Unavailable,
            ),
        ];
        for (err, http, grpc) in cases {
            assert_eq!(err.http_status().as_u16(), http, "{err:?}");
            assert_eq!(err.grpc_code(), grpc, "{err:?}");
        }
    }

    #[test]
    fn sqlstates_map_to_client_errors() {
        let client = |code: &str| from_sqlstate(code, "m".into()).map(|e| e.grpc_code());
        // Input Postgres cannot store: a \u0000 in JSON (22P05), a NUL byte in text (22021).
        assert_eq!(client("22P05"), Some(tonic::Code::InvalidArgument));
        assert_eq!(client("22021"), Some(tonic::Code::InvalidArgument));
        assert_eq!(client("22023"), Some(tonic::Code::InvalidArgument));
        assert_eq!(client("P0002"), Some(tonic::Code::NotFound));
        assert_eq!(client("23505"), Some(tonic::Code::AlreadyExists));
        assert_eq!(client("54000"), Some(tonic::Code::ResourceExhausted));
        assert_eq!(client("57P01"), Some(tonic::Code::Unavailable));
        assert_eq!(client("08006"), Some(tonic::Code::Unavailable));
        // Anything else is the server's own error, reported as internal without its detail.
        assert_eq!(client("42883"), None);
        assert_eq!(client("XX000"), None);
    }

    #[test]
    fn internal_errors_hide_their_detail() {
        let status = tonic::Status::from(AppError::internal(anyhow::anyhow!("secret detail")));
        assert_eq!(status.code(), tonic::Code::Internal);
        assert_eq!(status.message(), "internal error");
    }
}
