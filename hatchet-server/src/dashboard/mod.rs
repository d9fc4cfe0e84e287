//! The dashboard: server-rendered HTML pages for one tenant, served at `/` on the REST port by the same binary.
//!
//! | path | page |
//! |---|---|
//! | `/login`, `/logout` | sign-in with an API token ([`session`]) |
//! | `/runs`, `/runs/{id}` | runs with filters and keyset paging; one run: DAG, timeline, input/output, logs, stream, children, actions ([`runs`]) |
//! | `/workers`, `/workflows`, `/workflows/{id}` | workers with pause/resume; workflows, versions and task settings ([`registry`]) |
//! | `/crons`, `/events`, `/rate-limits`, `/concurrency`, `/queues` | the other resources ([`operations`]) |
//! | `/alerts` | alert channels: add, replace, send a test, delete; the alerts sent ([`alerts`]) |
//! | `/live` | server-sent events: "this tenant changed", debounced ([`live`]) |
//! | `/static/...` | the one stylesheet and the one small script, compiled into the binary |
//!
//! Design: every page is a plain GET rendered from the extension's SQL functions (the same `db` functions the REST
//! API calls; the dashboard has no SQL of its own), every action a POST form with a CSRF token that calls the same
//! function as the matching REST route. Live updates cost nothing while nothing changes: `/live` waits on the
//! in-memory change signal fed by the server's one `LISTEN` connection and by what workers report
//! ([`Dispatch::changed`](crate::dispatch::Dispatch::changed)), and the page script then re-fetches the page and
//! swaps its `data-live` parts. Graphs (the DAG, the queue chart) are SVG drawn here ([`svg`]). Nothing is fetched
//! from another origin, and the Content-Security-Policy says so.

pub(crate) mod alerts;
pub(crate) mod html;
pub(crate) mod live;
pub(crate) mod operations;
pub(crate) mod registry;
pub(crate) mod runs;
pub(crate) mod session;
pub(crate) mod svg;

use crate::error::AppError;
use crate::state::AppState;
use axum::http::header::{
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::map_response;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use uuid::Uuid;

/// The stylesheet.
const CSS: &str = include_str!("assets/dashboard.css");
/// The page script: live refresh and small conveniences.
const JS: &str = include_str!("assets/dashboard.js");

/// Same-origin everything; inline scripts are refused (the script is a file), inline SVG and styles are allowed.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The dashboard's routes (merged at `/` next to `/api`, `/health` and `/metrics`).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/runs") }))
        .route("/login", get(session::login_form).post(session::login))
        .route("/logout", post(session::logout))
        .route("/live", get(live::live))
        .route(
            "/static/dashboard.css",
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route(
            "/static/dashboard.js",
            get(|| async { asset("text/javascript; charset=utf-8", JS) }),
        )
        .merge(runs::router())
        .merge(registry::router())
        .merge(operations::router())
        .merge(alerts::router())
        .layer(map_response(security_headers))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// An error of a dashboard page: an HTML page with the REST API's status code, or a redirect to sign-in.
#[derive(Debug)]
pub(crate) enum PageError {
    /// No valid session: a redirect (303) to `/login`.
    SignIn,
    /// A form without the right CSRF token.
    Forbidden(String),
    /// What a REST handler would have answered.
    App(AppError),
}

impl From<AppError> for PageError {
    fn from(err: AppError) -> Self {
        PageError::App(err)
    }
}

impl From<sqlx::Error> for PageError {
    fn from(err: sqlx::Error) -> Self {
        PageError::App(err.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            PageError::SignIn => return Redirect::to("/login").into_response(),
            PageError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
            PageError::App(err) => {
                let status = err.http_status();
                if status.is_server_error() {
                    // The page shows the client message only; the operator needs the cause.
                    tracing::warn!(error = %err, "dashboard page failed");
                }
                (status, err.client_message())
            }
        };
        let body = format!(
            "<p class=\"error\" role=\"alert\">{}</p><p><a href=\"/runs\">Back to runs</a></p>",
            html::esc(&message)
        );
        let title = status.canonical_reason().unwrap_or("Error");
        (status, Html(html::page(title, None, &body))).into_response()
    }
}

/// A UUID from a path or form, or 400.
pub(crate) fn parse_uuid(field: &str, v: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(v.trim())
        .map_err(|_| AppError::InvalidArgument(format!("{field} must be a UUID, not {v:?}")))
}

/// The workflow run of an id that names a run or one of its tasks, as the REST API resolves it (404 if neither, or
/// if it is another tenant's).
pub(crate) async fn resolve_run(
    state: &AppState,
    tenant: Uuid,
    id: Uuid,
) -> Result<crate::db::runs::RunRow, AppError> {
    use crate::db::{runs, tasks};
    if let Some(row) = runs::run_row_by_id(&state.pool, tenant, id).await? {
        return Ok(row);
    }
    if let Some(run) = tasks::run_of_task(&state.pool, tenant, id).await? {
        if let Some(row) = runs::run_row_by_id(&state.pool, tenant, run).await? {
            return Ok(row);
        }
    }
    Err(AppError::NotFound(format!("run {id} does not exist")))
}

/// What a page handler returns.
pub(crate) type PageResult = Result<Response, PageError>;

/// A rendered page, never cached.
pub(crate) fn render(title: &str, chrome: &html::Chrome<'_>, body: &str) -> Response {
    session::no_store(Html(html::page(title, Some(chrome), body)).into_response())
}
