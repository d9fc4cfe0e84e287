//! Runs: the list (filters by status, workflow, time window, metadata key/value and run id; counts per status;
//! keyset pages) and one run (its DAG, tasks with output, errors, logs and child runs, the timeline of attempts,
//! input and output, stream output) with its actions: cancel the run or a task, replay the run or a task (and what
//! follows it). Actions call the same functions as the REST API's `tasks/cancel` and `tasks/replay`.

use super::html::{self, action_button, badge, esc, json_block, time, url_enc};
use super::parse_uuid;
use super::session::Session;
use super::svg;
use super::{render, PageResult};
use crate::db::dashboard::{self as dashboard_db, RunPage};
use crate::db::runs::{self as runs_db, RunFilter, RunTask};
use crate::db::{streams, tasks, workflows};
use crate::error::AppError;
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::fmt::Write;
use uuid::Uuid;

/// Runs per page.
const PAGE_SIZE: i64 = 50;

/// The counts per status count each status up to this many runs of the window and filters and show "100+" beyond
/// (see `hatchet.run_status_counts`): exact below it, and the work is bounded with any history (a FAILED run's status
/// is derived from its tasks, about 0.05-0.15 ms a run on this machine, so 1,000 would cost the page 150 ms).
const COUNT_UP_TO: i32 = 100;

/// Candidates one page's search looks at, at most (`hatchet.dashboard_runs`); past it the page says where to go on.
const SEARCH_BUDGET: &str = "10,000";

/// Run statuses, in the order the counts show them.
const STATUSES: [&str; 5] = ["QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"];

/// Time windows of the filter: (value, label, length).
const WINDOWS: [(&str, &str, Option<i64>); 5] = [
    ("1h", "last hour", Some(3600)),
    ("24h", "last 24 hours", Some(86_400)),
    ("7d", "last 7 days", Some(7 * 86_400)),
    ("30d", "last 30 days", Some(30 * 86_400)),
    ("all", "all time", None),
];

/// The routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/runs", get(list))
        .route("/runs/{id}", get(detail))
        .route("/runs/{id}/cancel", post(cancel))
        .route("/runs/{id}/replay", post(replay))
        .route("/tasks/{id}/cancel", post(cancel))
        .route("/tasks/{id}/replay", post(replay))
}

/// The list's filters, from the query string.
#[derive(Debug, Default, Clone)]
struct Filters {
    status: Option<String>,
    workflow: Option<Uuid>,
    window: String,
    meta_key: String,
    meta_value: String,
    id: String,
    before: Option<Uuid>,
}

impl Filters {
    fn parse(query: Option<&str>) -> Result<Self, AppError> {
        let mut f = Filters {
            window: "24h".into(),
            ..Filters::default()
        };
        for (k, v) in form_pairs(query.unwrap_or("")) {
            let v = v.trim().to_owned();
            match k.as_str() {
                "status" if !v.is_empty() => {
                    if !STATUSES.contains(&v.as_str()) {
                        return Err(AppError::InvalidArgument(format!(
                            "status must be one of {}, not {v:?}",
                            STATUSES.join(", ")
                        )));
                    }
                    f.status = Some(v);
                }
                "workflow" if !v.is_empty() => f.workflow = Some(parse_uuid("workflow", &v)?),
                "window" if !v.is_empty() => {
                    if !WINDOWS.iter().any(|(w, _, _)| *w == v) {
                        return Err(AppError::InvalidArgument(format!(
                            "unknown time window {v:?}"
                        )));
                    }
                    f.window = v;
                }
                "key" => f.meta_key = v,
                "value" => f.meta_value = v,
                "id" => f.id = v,
                "before" if !v.is_empty() => f.before = Some(parse_uuid("before", &v)?),
                _ => {}
            }
        }
        Ok(f)
    }

    fn since(&self) -> Option<DateTime<Utc>> {
        WINDOWS
            .iter()
            .find(|(w, _, _)| *w == self.window)
            .and_then(|(_, _, secs)| *secs)
            .map(|s| Utc::now() - Duration::seconds(s))
    }

    fn metadata(&self) -> Option<Value> {
        (!self.meta_key.is_empty()).then(|| {
            let mut m = Map::new();
            m.insert(
                self.meta_key.clone(),
                Value::String(self.meta_value.clone()),
            );
            Value::Object(m)
        })
    }

    /// The query string of these filters with a status (or none) and without the page cursor.
    fn query(&self, status: Option<&str>) -> String {
        let mut q = format!("window={}", url_enc(&self.window));
        if let Some(s) = status {
            let _ = write!(q, "&status={}", url_enc(s));
        }
        if let Some(w) = self.workflow {
            let _ = write!(q, "&workflow={w}");
        }
        if !self.meta_key.is_empty() {
            let _ = write!(
                q,
                "&key={}&value={}",
                url_enc(&self.meta_key),
                url_enc(&self.meta_value)
            );
        }
        q
    }
}

/// `application/x-www-form-urlencoded` pairs, in order.
fn form_pairs(query: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match (bytes[i], hex) {
                (b'+', _) => out.push(b' '),
                (b'%', Some(b)) => {
                    out.push(b);
                    i += 2;
                }
                (b, _) => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

async fn list(
    State(state): State<AppState>,
    session: Session,
    RawQuery(query): RawQuery,
) -> PageResult {
    let tenant = session.tenant.0;
    let f = Filters::parse(query.as_deref())?;
    // A run id (or a task id) typed into the search box opens that run.
    if !f.id.is_empty() {
        let id = parse_uuid("run id", &f.id)?;
        let run = super::resolve_run(&state, tenant, id).await?;
        return Ok(Redirect::to(&format!("/runs/{}", run.id)).into_response());
    }
    let since = f.since();
    let metadata = f.metadata();
    let workflow_ids = f.workflow.map(|w| vec![w]);
    let page = RunPage {
        since,
        workflow_ids: workflow_ids.clone(),
        metadata: metadata.clone(),
        status: f.status.clone(),
        before: f.before,
        limit: i32::try_from(PAGE_SIZE + 1).unwrap_or(51),
    };
    // The page, the count of each status and the workflow menu are independent reads: asked at once on pooled
    // connections (seven of the pool's ten), the page waits for the slowest of them instead of their sum. The counts
    // describe the window, not the page: the first page shows them, later pages skip the work.
    let count = |status: &'static str| {
        let (state, workflow_ids, metadata) = (&state, workflow_ids.as_deref(), metadata.as_ref());
        async move {
            dashboard_db::run_status_counts(
                &state.pool,
                tenant,
                since,
                workflow_ids,
                metadata,
                COUNT_UP_TO,
                Some(&[status]),
            )
            .await
        }
    };
    let counts = async {
        if f.before.is_some() {
            return Ok(Vec::new());
        }
        let [q, r, c, fa, ca] = STATUSES;
        let (q, r, c, fa, ca) = tokio::join!(count(q), count(r), count(c), count(fa), count(ca));
        Ok::<_, sqlx::Error>([q?, r?, c?, fa?, ca?].concat())
    };
    let (rows, counts, all_workflows) = tokio::join!(
        dashboard_db::dashboard_runs(&state.pool, tenant, &page),
        counts,
        workflows::list_workflows(&state.pool, tenant, None, None)
    );
    let (found, counts, all_workflows) = (rows?, counts?, all_workflows?);
    let (mut rows, resume) = (found.rows, found.resume_before);
    let more = rows.len() > usize::try_from(PAGE_SIZE).unwrap_or(50);
    rows.truncate(usize::try_from(PAGE_SIZE).unwrap_or(50));
    let next = if more {
        rows.last().map(|r| r.id)
    } else {
        None
    };

    let mut body = String::new();
    // Filters.
    body.push_str("<form method=\"get\" action=\"/runs\" class=\"filters\" id=\"run-filters\">");
    body.push_str("<label>Status<select name=\"status\"><option value=\"\">any</option>");
    for s in STATUSES {
        let sel = if f.status.as_deref() == Some(s) {
            " selected"
        } else {
            ""
        };
        let _ = write!(body, "<option value=\"{s}\"{sel}>{s}</option>");
    }
    body.push_str(
        "</select></label><label>Workflow<select name=\"workflow\"><option value=\"\">any</option>",
    );
    for w in &all_workflows {
        let sel = if f.workflow == Some(w.id) {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            body,
            "<option value=\"{}\"{sel}>{}</option>",
            w.id,
            esc(&w.name)
        );
    }
    body.push_str("</select></label><label>Created<select name=\"window\">");
    for (w, label, _) in WINDOWS {
        let sel = if f.window == w { " selected" } else { "" };
        let _ = write!(body, "<option value=\"{w}\"{sel}>{label}</option>");
    }
    let _ = write!(
        body,
        "</select></label><label>Metadata key<input name=\"key\" value=\"{}\" size=\"12\"></label>\
         <label>value<input name=\"value\" value=\"{}\" size=\"12\"></label>\
         <label>Run id<input name=\"id\" id=\"run-id-search\" placeholder=\"uuid\" size=\"36\"></label>\
         <button type=\"submit\">Filter</button></form>",
        html::attr(&f.meta_key),
        html::attr(&f.meta_value)
    );

    body.push_str("<div id=\"runs-live\" data-live>");
    // Counts per status: exact up to COUNT_UP_TO, then "100+"; "12+" when the count gave up early having found 12
    // (`hatchet.run_status_counts`), "?" when it gave up having found none.
    let shown = |runs: i64, more: bool| match (runs, more) {
        (0, true) => "?".to_owned(),
        (n, true) => format!("{n}+"),
        (n, false) => n.to_string(),
    };
    let total: i64 = counts.iter().map(|c| c.runs).sum();
    let total_more = counts.iter().any(|c| c.more);
    body.push_str("<div class=\"counts\" id=\"status-counts\">");
    if f.before.is_some() {
        body.push_str("<span class=\"hint\">counts per status are on the newest page</span>");
    } else {
        let _ = write!(
            body,
            "<a href=\"/runs?{}\"{} data-status=\"all\"><b>{}</b>all</a>",
            html::attr(&f.query(None)),
            if f.status.is_none() {
                " class=\"active\""
            } else {
                ""
            },
            shown(total, total_more)
        );
        for c in &counts {
            let active = if f.status.as_deref() == Some(c.status.as_str()) {
                " class=\"active\""
            } else {
                ""
            };
            let _ = write!(
                body,
                "<a href=\"/runs?{}\"{active} data-status=\"{}\"><b>{}</b>{}</a>",
                html::attr(&f.query(Some(&c.status))),
                esc(&c.status),
                shown(c.runs, c.more),
                esc(&c.status)
            );
        }
        if total_more {
            let _ = write!(
                body,
                "<span class=\"hint\">runs in the window, each status counted up to {COUNT_UP_TO}{}</span>",
                if counts.iter().any(|c| c.more && c.runs < i64::from(COUNT_UP_TO)) {
                    " (fewer with +, or ?: counting stopped after looking at 2,000 runs)"
                } else {
                    ""
                }
            );
        }
    }
    body.push_str("</div>");

    body.push_str(
        "<table id=\"runs\"><thead><tr><th>Run</th><th>Workflow</th><th>Status</th><th>Created</th>\
         <th>Metadata</th><th>Child runs</th></tr></thead><tbody>",
    );
    for r in &rows {
        let _ = write!(
            body,
            "<tr data-run=\"{id}\"><td class=\"mono\"><a href=\"/runs/{id}\">{id}</a></td><td>{wf}</td><td>{status}</td>\
             <td>{created}</td><td class=\"mono\">{meta}</td><td>{children}</td></tr>",
            id = r.id,
            wf = esc(r.info.workflow_name.as_deref().unwrap_or("")),
            status = badge(r.status.as_str()),
            created = time(r.info.created_at),
            meta = metadata_text(&r.info.additional_metadata),
            children = r.children,
        );
    }
    if rows.is_empty() {
        body.push_str("<tr><td colspan=\"6\" class=\"muted\">No runs match.</td></tr>");
    }
    body.push_str("</tbody></table><div class=\"pager\">");
    if f.before.is_some() {
        let _ = write!(
            body,
            "<a href=\"/runs?{}\">Newest</a>",
            html::attr(&f.query(f.status.as_deref()))
        );
    }
    if let Some(last) = next {
        let _ = write!(
            body,
            "<a href=\"/runs?{}&amp;before={last}\" id=\"older\">Older</a>",
            html::attr(&f.query(f.status.as_deref()))
        );
    } else if let Some(resume) = resume {
        // The search looked at as many runs as one page may without filling it: the rest of the window is older.
        let _ = write!(
            body,
            "<span class=\"hint\" id=\"search-stopped\">searched {SEARCH_BUDGET} runs for this page</span>\
             <a href=\"/runs?{}&amp;before={resume}\" id=\"older\">Search older runs</a>",
            html::attr(&f.query(f.status.as_deref()))
        );
    }
    body.push_str("</div></div>");
    Ok(render("Runs", &session.chrome("/runs"), &body))
}

fn metadata_text(value: &Value) -> String {
    match value {
        Value::Object(m) => m
            .iter()
            .filter(|(k, _)| !k.starts_with("hatchet__"))
            .take(4)
            .map(|(k, v)| {
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                format!("{}={}", esc(k), esc(&v))
            })
            .collect::<Vec<_>>()
            .join("<br>"),
        _ => String::new(),
    }
}

async fn detail(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> PageResult {
    let tenant = session.tenant.0;
    let id = parse_uuid("run id", &id)?;
    let run = super::resolve_run(&state, tenant, id).await?;
    let run_tasks = runs_db::run_tasks(&state.pool, tenant, run.id).await?;
    let events = runs_db::run_events(&state.pool, tenant, run.id).await?;
    let graph = dashboard_db::run_graph(&state.pool, tenant, run.id).await?;
    let children = runs_db::run_children(&state.pool, tenant, run.id).await?;
    let chunks = streams::read_stream_chunks(&state.pool, tenant, run.id, 0).await?;
    let csrf = &session.csrf;

    let by_name: HashMap<&str, &RunTask> = run_tasks
        .iter()
        .filter_map(|t| Some((t.readable_id.as_deref()?, t)))
        .collect();
    let nodes: Vec<svg::Node> = graph
        .iter()
        .map(|g| svg::Node {
            name: g.readable_id.clone(),
            parents: g.parents.clone(),
            status: by_name
                .get(g.readable_id.as_str())
                .map_or("PENDING", |t| t.status.as_str())
                .to_owned(),
            on_failure: g.is_on_failure,
        })
        .collect();

    let mut body = String::from("<div id=\"run-live\" data-live>");
    let _ = write!(
        body,
        "<div class=\"grid\"><div class=\"card\"><b>Status</b> <span id=\"run-status\">{status}</span><br>\
         <b>Workflow</b> {wf}<br><b>Created</b> {created}<br><b>Run id</b> <span class=\"mono\">{id}</span>{parent}</div>\
         <div class=\"card\"><b>Additional metadata</b>{meta}</div></div>",
        status = badge(run.status.as_str()),
        wf = esc(run.info.workflow_name.as_deref().unwrap_or("")),
        created = time(run.info.created_at),
        id = run.id,
        parent = run
            .info
            .parent_task_id
            .map(|p| format!("<br><b>Spawned by</b> <a class=\"mono\" href=\"/runs/{p}\">task {p}</a>"))
            .unwrap_or_default(),
        meta = json_block(&run.info.additional_metadata),
    );
    body.push_str("<div class=\"actions\">");
    if run.status.is_terminal() {
        body.push_str(&action_button(
            &format!("/runs/{}/replay", run.id),
            "Replay run",
            csrf,
            &[],
        ));
    } else {
        body.push_str(&action_button(
            &format!("/runs/{}/cancel", run.id),
            "Cancel run",
            csrf,
            &[],
        ));
    }
    body.push_str("</div>");

    body.push_str("<h2>Graph</h2>");
    body.push_str(&svg::dag(&nodes));

    body.push_str("<h2>Tasks</h2>");
    for t in &run_tasks {
        let name = t.readable_id.clone().unwrap_or_else(|| t.queue.clone());
        let _ = write!(
            body,
            "<section class=\"card task\" id=\"task-{anchor}\" data-status=\"{status_text}\"><h3>{name} {status} \
             <span class=\"muted\">attempt {attempt}</span></h3>",
            anchor = html::attr(&name),
            status_text = t.status.as_str(),
            name = esc(&name),
            status = badge(t.status.as_str()),
            attempt = t.retry_count + 1,
        );
        if let Some(task_id) = t.task_id {
            let _ = write!(
                body,
                "<div class=\"mono muted\">task {task_id}</div><div class=\"actions\">"
            );
            let back = run.id.to_string();
            if t.status.has_started() && !matches!(t.status, crate::status::TaskStatus::Running) {
                body.push_str(&action_button(
                    &format!("/tasks/{task_id}/replay"),
                    "Replay task and what follows",
                    csrf,
                    &[("back", &back)],
                ));
            } else {
                body.push_str(&action_button(
                    &format!("/tasks/{task_id}/cancel"),
                    "Cancel task",
                    csrf,
                    &[("back", &back)],
                ));
            }
            body.push_str("</div>");
            if let Some(out) = &t.output {
                let _ = write!(body, "<b>Output</b>{}", json_block(out));
            }
            if let Some(err) = &t.error {
                let _ = write!(
                    body,
                    "<b>Error</b><pre class=\"log error-text\">{}</pre>",
                    esc(err)
                );
            }
            let logs = tasks::task_logs(&state.pool, tenant, task_id).await?;
            if !logs.is_empty() {
                body.push_str("<b>Logs</b><pre class=\"log\">");
                for l in &logs {
                    let _ = writeln!(
                        body,
                        "<span class=\"log-line\">{} [{}] #{} {}</span>",
                        l.created_at.format("%H:%M:%S%.3f"),
                        esc(&l.level),
                        l.retry_count + 1,
                        esc(&l.message)
                    );
                }
                body.push_str("</pre>");
            }
            if children.get(&task_id).copied().unwrap_or(0) > 0 {
                let filter = RunFilter {
                    parent_task_id: Some(task_id),
                    limit: 100,
                    ..RunFilter::default()
                };
                let (kids, _) = runs_db::list_runs(&state.pool, tenant, &filter).await?;
                body.push_str("<b>Child runs</b><ul class=\"children\">");
                for k in &kids {
                    let _ = write!(
                        body,
                        "<li><a class=\"mono\" href=\"/runs/{id}\">{id}</a> {wf} {status}</li>",
                        id = k.id,
                        wf = esc(k.info.workflow_name.as_deref().unwrap_or("")),
                        status = badge(k.status.as_str())
                    );
                }
                body.push_str("</ul>");
            }
        } else {
            body.push_str("<div class=\"muted\">waiting for its parents or conditions</div>");
        }
        body.push_str("</section>");
    }

    body.push_str(
        "<h2>Timeline</h2><table id=\"timeline\"><thead><tr><th>Time</th><th>Task</th><th>Event</th><th>Attempt</th>\
         <th>Worker</th><th>Reason</th></tr></thead><tbody>",
    );
    for e in &events {
        let _ = write!(
            body,
            "<tr data-event=\"{kind}\"><td>{at}</td><td>{task}</td><td>{event}</td><td>{attempt}</td>\
             <td class=\"mono\">{worker}</td><td>{reason}</td></tr>",
            kind = esc(&e.event_type),
            at = time(e.created_at),
            task = esc(e.readable_id.as_deref().unwrap_or("")),
            event = badge(&e.event_type),
            attempt = e.retry_count + 1,
            worker = esc(e.worker.as_deref().unwrap_or("")),
            reason = esc(e.reason.as_deref().unwrap_or("")),
        );
    }
    body.push_str("</tbody></table>");

    body.push_str("<h2>Input</h2>");
    body.push_str(&json_block(&run.info.input));
    let outputs: Map<String, Value> = run_tasks
        .iter()
        .filter_map(|t| Some((t.readable_id.clone()?, t.sdk_output()?)))
        .collect();
    body.push_str("<h2>Output</h2>");
    body.push_str(&json_block(&json!(outputs)));

    body.push_str("<h2>Stream output</h2>");
    if chunks.is_empty() {
        body.push_str(
            "<p class=\"muted\">No stream chunks (or they were pruned after the run finished).</p>",
        );
    } else {
        body.push_str("<pre class=\"log\" id=\"stream\">");
        for c in &chunks {
            body.push_str(&esc(&String::from_utf8_lossy(&c.message)));
        }
        body.push_str("</pre>");
    }
    body.push_str("</div>");
    let title = format!("Run {}", run.info.workflow_name.as_deref().unwrap_or(""));
    Ok(render(&title, &session.chrome("/runs"), &body))
}

/// An action's form: the CSRF token and, for task actions, the run to go back to.
#[derive(Debug, serde::Deserialize)]
struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    back: Option<String>,
}

/// Where to go after an action on `id`: the run named by `back` (a UUID, or the run page of `id` itself).
fn back_to(form: &ActionForm, id: Uuid) -> Result<String, AppError> {
    let run = match form.back.as_deref().filter(|b| !b.is_empty()) {
        Some(b) => parse_uuid("back", b)?,
        None => id,
    };
    Ok(format!("/runs/{run}"))
}

/// `POST /runs/{id}/cancel`, `POST /tasks/{id}/cancel`: as REST `tasks/cancel` with one id.
async fn cancel(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> PageResult {
    session.check_csrf(&form.csrf)?;
    let tenant = session.tenant.0;
    let id = parse_uuid("id", &id)?;
    let to = back_to(&form, id)?;
    if !runs_db::cancel_run_or_task(&state.pool, tenant, id).await? {
        // Nothing to cancel: unknown (404 from the functions) or already finished.
        super::resolve_run(&state, tenant, id).await?;
    }
    state.dispatch.wake_runs();
    state.dispatch.wake_assigner();
    state.dispatch.changed(Some(tenant));
    Ok(Redirect::to(&to).into_response())
}

/// `POST /runs/{id}/replay`, `POST /tasks/{id}/replay`: as REST `tasks/replay` with one id (a task replays with
/// everything downstream of it).
async fn replay(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> PageResult {
    session.check_csrf(&form.csrf)?;
    let tenant = session.tenant.0;
    let id = parse_uuid("id", &id)?;
    let to = back_to(&form, id)?;
    runs_db::replay_tasks(&state.pool, tenant, &[id]).await?;
    state.dispatch.wake_assigner();
    state.dispatch.changed(Some(tenant));
    Ok(Redirect::to(&to).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_refuse_bad_values() {
        let f =
            Filters::parse(Some("status=FAILED&window=7d&key=user+id&value=a%26b&id=")).unwrap();
        assert_eq!(f.status.as_deref(), Some("FAILED"));
        assert_eq!(f.window, "7d");
        assert_eq!(f.meta_key, "user id");
        assert_eq!(f.meta_value, "a&b");
        assert_eq!(f.metadata(), Some(json!({"user id": "a&b"})));
        assert!(Filters::parse(Some("status=DONE")).is_err());
        assert!(Filters::parse(Some("window=2y")).is_err());
        assert!(Filters::parse(Some("before=nope")).is_err());
        assert_eq!(Filters::parse(None).unwrap().window, "24h");
    }

    #[test]
    fn filter_query_round_trips() {
        let f = Filters::parse(Some("window=1h&key=k%3D&value=%3Cv%3E")).unwrap();
        let again = Filters::parse(Some(&f.query(Some("RUNNING")))).unwrap();
        assert_eq!(again.meta_key, "k=");
        assert_eq!(again.meta_value, "<v>");
        assert_eq!(again.status.as_deref(), Some("RUNNING"));
    }
}
