//! Crons and schedules (create, delete, next fire), events (payload, the runs they started), rate limits
//! (remaining, next refill), concurrency keys (running/max, waiting) and queues (depth now, throughput over the last
//! hour as a chart).

use super::html::{self, action_button, ago, badge, esc, json_block, time};
use super::parse_uuid;
use super::session::{CsrfForm, Session};
use super::{render, svg, PageResult};
use crate::db::crons::{self as crons_db, StoredRun};
use crate::db::{dashboard as dashboard_db, events as events_db, flow_control, workflows};
use crate::error::AppError;
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};
use std::fmt::Write;

/// Events per page.
const EVENTS_PAGE: i64 = 50;

/// The routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/crons", get(crons).post(create))
        .route("/crons/{id}/delete", post(delete_cron))
        .route("/schedules/{id}/delete", post(delete_schedule))
        .route("/events", get(events))
        .route("/rate-limits", get(rate_limits))
        .route("/concurrency", get(concurrency))
        .route("/queues", get(queues))
}

async fn crons(State(state): State<AppState>, session: Session) -> PageResult {
    let tenant = session.tenant.0;
    let crons = crons_db::list_crons(&state.pool, tenant, None).await?;
    let schedules = crons_db::list_schedules(&state.pool, tenant, None).await?;
    let all_workflows = workflows::list_workflows(&state.pool, tenant, None, None).await?;
    let now = Utc::now();
    let csrf = &session.csrf;

    let mut body = String::from("<div id=\"crons-live\" data-live><h2>Crons</h2><table id=\"crons\"><thead><tr>\
        <th>Name</th><th>Workflow</th><th>Expression</th><th>Next fire</th><th>Created by</th><th>Input</th><th></th>\
        </tr></thead><tbody>");
    for c in &crons {
        let next = if c.enabled {
            hatchet_core::cron::parse(&c.expression)
                .ok()
                .and_then(|s| hatchet_core::cron::next_after(&s, now))
                .map(|at| {
                    format!(
                        "{} <span class=\"muted\">({})</span>",
                        time(at),
                        ago(at, now)
                    )
                })
                .unwrap_or_else(|| "<span class=\"muted\">never</span>".into())
        } else {
            "<span class=\"muted\">disabled</span>".into()
        };
        let delete = if c.method == "API" {
            action_button(&format!("/crons/{}/delete", c.id), "Delete", csrf, &[])
        } else {
            "<span class=\"muted\">declared by the workflow</span>".into()
        };
        let _ = write!(
            body,
            "<tr id=\"cron-{id}\" data-cron=\"{name}\"><td>{name}</td><td>{wf}</td><td class=\"mono\">{expr}</td><td>{next}</td>\
             <td>{method}</td><td class=\"mono\">{input}</td><td>{delete}</td></tr>",
            id = c.id,
            name = esc(&c.name),
            wf = esc(&c.run.workflow),
            expr = esc(&c.expression),
            method = esc(&c.method),
            input = esc(&c.run.input.to_string()),
        );
    }
    if crons.is_empty() {
        body.push_str("<tr><td colspan=\"7\" class=\"muted\">No crons.</td></tr>");
    }
    body.push_str("</tbody></table><h2>Scheduled runs</h2><table id=\"schedules\"><thead><tr><th>Workflow</th>\
                   <th>Runs at</th><th>Run</th><th>Input</th><th></th></tr></thead><tbody>");
    for s in &schedules {
        let fired = match (s.fired_run_id, &s.error) {
            (Some(run), _) => format!("<a class=\"mono\" href=\"/runs/{run}\">{run}</a>"),
            (None, Some(err)) => format!("<span class=\"error\">{}</span>", esc(err)),
            (None, None) => "<span class=\"muted\">pending</span>".into(),
        };
        let delete = if s.fired_run_id.is_none() {
            action_button(&format!("/schedules/{}/delete", s.id), "Delete", csrf, &[])
        } else {
            String::new()
        };
        let _ = write!(
            body,
            "<tr><td>{wf}</td><td>{at} <span class=\"muted\">({ago})</span></td><td>{fired}</td>\
             <td class=\"mono\">{input}</td><td>{delete}</td></tr>",
            wf = esc(&s.run.workflow),
            at = time(s.run_at),
            ago = ago(s.run_at, now),
            input = esc(&s.run.input.to_string()),
        );
    }
    if schedules.is_empty() {
        body.push_str("<tr><td colspan=\"5\" class=\"muted\">No scheduled runs.</td></tr>");
    }
    body.push_str("</tbody></table></div>");

    // Create forms.
    let mut options = String::new();
    for w in &all_workflows {
        let _ = write!(
            options,
            "<option value=\"{}\">{}</option>",
            html::attr(&w.name),
            esc(&w.name)
        );
    }
    let _ = write!(
        body,
        "<div class=\"grid\"><form method=\"post\" action=\"/crons\" class=\"card filters\" id=\"create-cron\">{csrf}\
         <input type=\"hidden\" name=\"kind\" value=\"cron\"><b>New cron</b>\
         <label>Workflow<select name=\"workflow\">{options}</select></label>\
         <label>Name<input name=\"name\" required></label>\
         <label>Expression<input name=\"expression\" placeholder=\"*/5 * * * *\" required></label>\
         <label>Input (JSON)<input name=\"input\" value=\"{{}}\"></label>\
         <button type=\"submit\">Create cron</button></form>\
         <form method=\"post\" action=\"/crons\" class=\"card filters\" id=\"create-schedule\">{csrf}\
         <input type=\"hidden\" name=\"kind\" value=\"schedule\"><b>New scheduled run</b>\
         <label>Workflow<select name=\"workflow\">{options}</select></label>\
         <label>Run at (RFC 3339, UTC)<input name=\"run_at\" placeholder=\"2030-01-01T00:00:00Z\" required></label>\
         <label>Input (JSON)<input name=\"input\" value=\"{{}}\"></label>\
         <button type=\"submit\">Schedule</button></form></div>",
        csrf = html::csrf_field(csrf),
    );
    Ok(render(
        "Crons & schedules",
        &session.chrome("/crons"),
        &body,
    ))
}

#[derive(Debug, Deserialize)]
struct CreateForm {
    #[serde(default)]
    csrf: String,
    kind: String,
    workflow: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    expression: String,
    #[serde(default)]
    run_at: String,
    #[serde(default)]
    input: String,
}

/// `POST /crons`: creates a cron or a one-off schedule with the same functions as the REST API.
async fn create(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<CreateForm>,
) -> PageResult {
    session.check_csrf(&form.csrf)?;
    let tenant = session.tenant.0;
    let input: Value = if form.input.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str(&form.input)
            .map_err(|e| AppError::InvalidArgument(format!("input must be JSON: {e}")))?
    };
    let run = StoredRun {
        workflow: form.workflow.clone(),
        input,
        additional_metadata: json!({}),
        priority: None,
    };
    match form.kind.as_str() {
        "cron" => {
            crons_db::create_cron(
                &state.pool,
                tenant,
                form.name.trim(),
                form.expression.trim(),
                &run,
            )
            .await?;
        }
        "schedule" => {
            let at = chrono::DateTime::parse_from_rfc3339(form.run_at.trim())
                .map_err(|_| {
                    AppError::InvalidArgument(format!(
                        "run_at must be an RFC 3339 time, not {:?}",
                        form.run_at
                    ))
                })?
                .with_timezone(&Utc);
            crons_db::schedule(&state.pool, tenant, at, &run).await?;
        }
        other => return Err(AppError::InvalidArgument(format!("unknown kind {other:?}")).into()),
    }
    state.dispatch.changed(Some(tenant));
    Ok(Redirect::to("/crons").into_response())
}

async fn delete_cron(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    session.check_csrf(&form.csrf)?;
    let id = parse_uuid("cron id", &id)?;
    if !crons_db::delete_cron(&state.pool, session.tenant.0, id).await? {
        return Err(AppError::NotFound(format!("cron {id} does not exist")).into());
    }
    state.dispatch.changed(Some(session.tenant.0));
    Ok(Redirect::to("/crons").into_response())
}

async fn delete_schedule(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    session.check_csrf(&form.csrf)?;
    let id = parse_uuid("schedule id", &id)?;
    if !crons_db::delete_schedule(&state.pool, session.tenant.0, id).await? {
        return Err(AppError::NotFound(format!("scheduled run {id} does not exist")).into());
    }
    state.dispatch.changed(Some(session.tenant.0));
    Ok(Redirect::to("/crons").into_response())
}

#[derive(Debug, Deserialize)]
struct EventQuery {
    #[serde(default)]
    key: String,
    /// Keyset cursor: the last event of the previous page.
    #[serde(default)]
    before: String,
}

async fn events(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<EventQuery>,
) -> PageResult {
    let tenant = session.tenant.0;
    let key = q.key.trim();
    let keys = (!key.is_empty()).then(|| vec![key.to_owned()]);
    let before = match q.before.trim() {
        "" => None,
        b => Some(parse_uuid("before", b)?),
    };
    // One more than a page: whether there is an older page, without counting anything.
    let mut rows = events_db::list_events_before(
        &state.pool,
        tenant,
        keys.as_deref(),
        before,
        EVENTS_PAGE + 1,
    )
    .await?;
    let more = rows.len() > usize::try_from(EVENTS_PAGE).unwrap_or(50);
    rows.truncate(usize::try_from(EVENTS_PAGE).unwrap_or(50));
    let next = if more {
        rows.last().map(|e| e.id)
    } else {
        None
    };
    let mut body = format!(
        "<form method=\"get\" action=\"/events\" class=\"filters\"><label>Key<input name=\"key\" value=\"{}\">\
         </label><button type=\"submit\">Filter</button></form>",
        html::attr(key)
    );
    body.push_str("<div id=\"events-live\" data-live><table id=\"events\"><thead><tr><th>Key</th><th>Pushed</th>\
                   <th>Payload</th><th>Metadata</th><th>Runs started</th></tr></thead><tbody>");
    for e in &rows {
        let runs = e
            .runs
            .iter()
            .map(|r| {
                format!(
                    "<a class=\"mono\" href=\"/runs/{id}\">{id}</a> {}",
                    badge(r.status.as_str()),
                    id = r.id
                )
            })
            .collect::<Vec<_>>()
            .join("<br>");
        let _ = write!(
            body,
            "<tr data-event-id=\"{id}\"><td class=\"mono\">{key}{scope}</td><td>{at}</td><td>{payload}</td>\
             <td>{meta}</td><td>{runs}</td></tr>",
            id = e.id,
            key = esc(&e.key),
            scope = e.scope.as_deref().map(|s| format!("<br><span class=\"muted\">scope {}</span>", esc(s))).unwrap_or_default(),
            at = time(e.created_at),
            payload = json_block(&e.payload),
            meta = json_block(&e.additional_metadata),
            runs = if runs.is_empty() { "<span class=\"muted\">none</span>".into() } else { runs },
        );
    }
    if rows.is_empty() {
        body.push_str("<tr><td colspan=\"5\" class=\"muted\">No events.</td></tr>");
    }
    body.push_str("</tbody></table><div class=\"pager\">");
    let key_query = if key.is_empty() {
        String::new()
    } else {
        format!("key={}&", html::url_enc(key))
    };
    if before.is_some() {
        let _ = write!(
            body,
            "<a href=\"/events?{}\" id=\"newest\">Newest</a>",
            html::attr(key_query.trim_end_matches('&'))
        );
    }
    if let Some(last) = next {
        let _ = write!(
            body,
            "<a href=\"/events?{}before={last}\" id=\"older\">Older</a>",
            html::attr(&key_query)
        );
    }
    let _ = write!(
        body,
        "</div><p class=\"hint\">{EVENTS_PAGE} events a page, newest first.</p></div>"
    );
    Ok(render("Events", &session.chrome("/events"), &body))
}

async fn rate_limits(State(state): State<AppState>, session: Session) -> PageResult {
    let rows = flow_control::list_rate_limits(&state.pool, session.tenant.0, None).await?;
    let now = Utc::now();
    let mut body = String::from("<div id=\"rate-limits-live\" data-live><table id=\"rate-limits\"><thead><tr>\
        <th>Key</th><th>Remaining</th><th>Limit</th><th>Window</th><th>Next refill</th><th>Paused until</th>\
        </tr></thead><tbody>");
    for r in &rows {
        // The window refills to full at last_refill + window; the extension reports a passed window as refilled.
        let next = parse_interval_seconds(&r.window)
            .map(|secs| r.last_refill + chrono::Duration::seconds(secs))
            .filter(|at| *at > now)
            .map(|at| {
                format!(
                    "{} <span class=\"muted\">({})</span>",
                    time(at),
                    ago(at, now)
                )
            })
            .unwrap_or_else(|| "<span class=\"muted\">full</span>".into());
        let _ = write!(
            body,
            "<tr><td class=\"mono\">{key}</td><td>{remaining}</td><td>{limit}</td><td>{window}</td><td>{next}</td>\
             <td>{paused}</td></tr>",
            key = esc(&r.key),
            remaining = r.remaining,
            limit = r.limit_value,
            window = esc(&r.window),
            paused = r.paused_until.map(time).unwrap_or_default(),
        );
    }
    if rows.is_empty() {
        body.push_str("<tr><td colspan=\"6\" class=\"muted\">No rate limits.</td></tr>");
    }
    body.push_str("</tbody></table></div>");
    Ok(render(
        "Rate limits",
        &session.chrome("/rate-limits"),
        &body,
    ))
}

/// Seconds of an interval as Postgres prints one (`00:01:00`, `1 day`, `2 days 03:00:00`, `1 mon`): what rate-limit
/// windows look like. `None` for anything else.
fn parse_interval_seconds(text: &str) -> Option<i64> {
    let mut total = 0i64;
    let mut parts = text.split_whitespace().peekable();
    while let Some(part) = parts.next() {
        if part.contains(':') {
            let mut hms = part.split(':');
            let h: i64 = hms.next()?.parse().ok()?;
            let m: i64 = hms.next()?.parse().ok()?;
            let s: f64 = hms.next().unwrap_or("0").parse().ok()?;
            total += h * 3600 + m * 60 + s as i64;
        } else {
            let n: i64 = part.parse().ok()?;
            let unit = parts.next()?;
            total += n * match unit.trim_end_matches('s') {
                "day" => 86_400,
                "mon" => 30 * 86_400,
                "year" => 365 * 86_400,
                _ => return None,
            };
        }
    }
    Some(total)
}

async fn concurrency(State(state): State<AppState>, session: Session) -> PageResult {
    let rows = dashboard_db::list_concurrency(&state.pool, session.tenant.0).await?;
    let mut body = String::from("<div id=\"concurrency-live\" data-live><table id=\"concurrency\"><thead><tr>\
        <th>Scope</th><th>Key</th><th>Strategy</th><th>Running / max</th><th>Waiting</th></tr></thead><tbody>");
    for r in &rows {
        let _ = write!(
            body,
            "<tr><td class=\"mono\">{scope}</td><td class=\"mono\">{key}</td><td>{strategy}</td>\
             <td>{running} / {max}</td><td>{waiting}</td></tr>",
            scope = esc(&r.scope),
            key = esc(&r.key),
            strategy = esc(&r.strategy),
            running = r.running,
            max = r.max_runs,
            waiting = r.waiting,
        );
    }
    if rows.is_empty() {
        body.push_str("<tr><td colspan=\"5\" class=\"muted\">No concurrency key has anything running or waiting.</td></tr>");
    }
    body.push_str("</tbody></table><p class=\"hint\">The busiest 500 keys.</p></div>");
    Ok(render(
        "Concurrency",
        &session.chrome("/concurrency"),
        &body,
    ))
}

async fn queues(State(state): State<AppState>, session: Session) -> PageResult {
    let rows = dashboard_db::queue_stats(&state.pool, session.tenant.0).await?;
    let mut body = String::from("<div id=\"queues-live\" data-live><table id=\"queues\"><thead><tr><th>Queue</th>\
        <th>Ready</th><th>Delayed</th><th>Waiting for a slot</th><th>Running</th><th>Last hour (per 5 min)</th>\
        </tr></thead><tbody>");
    for q in &rows {
        let done: i64 = q.completed.iter().sum();
        let failed: i64 = q.failed.iter().sum();
        let _ = write!(
            body,
            "<tr data-queue=\"{name}\"><td class=\"mono\">{name}</td><td>{ready}</td><td>{delayed}</td><td>{waiting}</td>\
             <td>{running}</td><td>{chart}<br><span class=\"muted\">{done} completed, {failed} failed</span></td></tr>",
            name = esc(&q.queue),
            ready = q.ready,
            delayed = q.delayed,
            waiting = q.waiting,
            running = q.running,
            chart = svg::throughput(&q.completed, &q.failed, "5 minutes"),
        );
    }
    if rows.is_empty() {
        body.push_str("<tr><td colspan=\"6\" class=\"muted\">No queue has work or finished anything in the last hour.</td></tr>");
    }
    body.push_str("</tbody></table></div>");
    Ok(render("Queues", &session.chrome("/queues"), &body))
}

#[cfg(test)]
mod tests {
    use super::parse_interval_seconds;

    #[test]
    fn intervals_as_postgres_prints_them() {
        assert_eq!(parse_interval_seconds("00:01:00"), Some(60));
        assert_eq!(parse_interval_seconds("1 day"), Some(86_400));
        assert_eq!(
            parse_interval_seconds("2 days 03:00:00"),
            Some(2 * 86_400 + 3 * 3600)
        );
        assert_eq!(parse_interval_seconds("soon"), None);
    }
}
