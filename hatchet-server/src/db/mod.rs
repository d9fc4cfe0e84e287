//! Every SQL statement the server runs, in one place, one file per file of the extension's `sql/` directory.
//!
//! | module | extension surface (`sql/<file>.sql`) |
//! |---|---|
//! | this file | pool-level checks: ping, extension installed / created, the database itself |
//! | `tenants` | tenants and API tokens (direct statements on `hatchet.tenants`, `hatchet.api_tokens`) |
//! | `tasks` | the attempt lifecycle: `complete_many`, `fail`, `refresh_timeout`, `cancel`, `running_attempt`, `task`, logs, OpenTelemetry spans (`put_spans`, `run_trace`) |
//! | `flow_control` | rate limits: `put_rate_limit`, `pause_rate_limit`, `list_rate_limits` |
//! | `workers` | the worker registry and `assign` |
//! | `workflows` | `register_workflow`, `list_workflows` |
//! | `runs` | runs: `run_workflow`, `cancel_run`, `replay_tasks`, status, tasks, timeline, reads |
//! | `events` | `push_events`, `list_events` and event filters |
//! | `webhooks` | incoming webhooks: CRUD and `receive_webhook` |
//! | `crons` | crons and one-off schedules |
//! | `alerts` | alert channels (`put_alert_channel`, `alert_channels`, `alert_channel_secret`) and the `hatchet:alerts` queue |
//! | `streams` | stream chunks: `put_stream_chunk`, `read_stream_chunks`, `run_stream_state` |
//! | `maintenance` | `prune_stream_chunks` and the queue depth read of `/metrics` |
//! | `dashboard` | the dashboard's own reads: workflow versions and tasks, concurrency keys, queue statistics, run counts |
//!
//! Handlers never embed SQL and never open transactions: they call a function here, which names the extension
//! object it touches and does any multi-statement work itself. That keeps the server's contract with pg_hatchet
//! (schema `hatchet`, see `docs/sql-api.md`) reviewable in one folder, and makes a schema change a change of one
//! file on this side. Rows map onto `#[derive(sqlx::FromRow)]` structs whose fields are the function's columns.
//! Functions return `sqlx::Error`; callers turn it into an [`AppError`](crate::error::AppError) with `?`, which maps
//! SQLSTATEs in one place.

pub(crate) mod alerts;
pub(crate) mod crons;
pub(crate) mod dashboard;
pub(crate) mod durable;
pub(crate) mod events;
pub(crate) mod flow_control;
pub(crate) mod maintenance;
pub(crate) mod runs;
pub(crate) mod streams;
pub(crate) mod tasks;
pub(crate) mod tenants;
pub(crate) mod webhooks;
pub(crate) mod workers;
pub(crate) mod workflows;

use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgPool, Row};

/// The extension's name, as in `CREATE EXTENSION`.
const EXTENSION: &str = "pg_hatchet";

/// Cheapest round trip that proves the pool can reach Postgres.
pub(crate) async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
}

/// The installed version of pg_hatchet in this database, or `None` if the extension is not created.
pub async fn extension_version(pool: &PgPool) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = $1")
        .bind(EXTENSION)
        .fetch_optional(pool)
        .await
}

/// Whether the extension's files are installed in this Postgres (it can be created).
pub(crate) async fn extension_available(pool: &PgPool) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = $1)",
    )
    .bind(EXTENSION)
    .fetch_one(pool)
    .await
}

/// `CREATE EXTENSION IF NOT EXISTS pg_hatchet`.
pub(crate) async fn create_extension(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_hatchet")
        .execute(pool)
        .await
        .map(|_| ())
}

/// Whether a database with this name exists in the cluster.
pub(crate) async fn database_exists(pool: &PgPool, name: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(pool)
        .await
}

/// `CREATE DATABASE <name>`; the name is quoted as an identifier, never interpolated raw.
pub(crate) async fn create_database(pool: &PgPool, name: &str) -> Result<(), sqlx::Error> {
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    // The name is quoted above (double quotes doubled), so it cannot break out of the identifier.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted}")))
        .execute(pool)
        .await
        .map(|_| ())
}

/// A row of a paged read (`list_runs`, `list_events`, `list_filters`, `find_webhooks`): the row itself and the
/// `total` column, which repeats on every row how many rows match in all.
struct Counted<T> {
    row: T,
    total: i64,
}

impl<'r, T: FromRow<'r, PgRow>> FromRow<'r, PgRow> for Counted<T> {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            row: T::from_row(row)?,
            total: row.try_get("total")?,
        })
    }
}

/// A page of rows and the total number of matching rows (0 for an empty page).
fn page<T>(rows: Vec<Counted<T>>) -> (Vec<T>, i64) {
    let total = rows.first().map_or(0, |r| r.total);
    (rows.into_iter().map(|r| r.row).collect(), total)
}

/// A page size or offset as the extension's `integer` arguments take it (saturating).
fn int_arg(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
