//! Workers (slots used/total, labels, last heartbeat, paused; pause and resume) and workflows (versions, tasks,
//! triggers, concurrency and rate-limit settings).

use super::html::{action_button, ago, badge, esc, time};
use super::session::{CsrfForm, Session};
use super::{render, PageError, PageResult};
use crate::db::dashboard as dashboard_db;
use crate::db::workers::{self as workers_db, WorkerRow};
use crate::db::workflows as workflows_db;
use crate::error::AppError;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::Utc;
use serde_json::Value;
use std::fmt::Write;
use std::time::Duration;
use uuid::Uuid;

/// Shown INACTIVE after this long without a heartbeat, as the REST API does (the extension reaps it at 30 s).
const STALE_AFTER: Duration = Duration::from_secs(30);

/// The routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/workers", get(workers))
        .route("/workers/{id}/pause", post(pause))
        .route("/workers/{id}/resume", post(resume))
        .route("/workflows", get(workflows))
        .route("/workflows/{id}", get(workflow))
}

fn worker_status(w: &WorkerRow) -> &'static str {
    let stale = (Utc::now() - w.last_heartbeat_at)
        .to_std()
        .is_ok_and(|age| age > STALE_AFTER);
    if !w.record.is_active || stale {
        "INACTIVE"
    } else if w.record.is_paused {
        "PAUSED"
    } else {
        "ACTIVE"
    }
}

fn slots_text(w: &WorkerRow) -> String {
    let Value::Object(slots) = &w.record.slots else {
        return String::new();
    };
    slots
        .iter()
        .map(|(kind, limit)| {
            let limit = limit.as_i64().unwrap_or(0);
            let used = w.used.get(kind).and_then(Value::as_i64).unwrap_or(0);
            format!("{} {used}/{limit}", esc(kind))
        })
        .collect::<Vec<_>>()
        .join("<br>")
}

fn labels_text(labels: &Value) -> String {
    match labels {
        Value::Object(map) if !map.is_empty() => map
            .iter()
            .map(|(k, v)| {
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                format!("<span class=\"mono\">{}={}</span>", esc(k), esc(&v))
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => "<span class=\"muted\">none</span>".into(),
    }
}

async fn workers(State(state): State<AppState>, session: Session) -> PageResult {
    let rows = workers_db::list_workers(&state.pool, session.tenant.0, None).await?;
    let now = Utc::now();
    let mut body = String::from(
        "<div id=\"workers\" data-live><table><thead><tr><th>Name</th><th>Status</th><th>Slots used/total</th>\
         <th>Labels</th><th>Last heartbeat</th><th>Actions served</th><th></th></tr></thead><tbody>",
    );
    for w in &rows {
        let status = worker_status(w);
        let toggle = if w.record.is_paused {
            action_button(
                &format!("/workers/{}/resume", w.id),
                "Resume",
                &session.csrf,
                &[],
            )
        } else {
            action_button(
                &format!("/workers/{}/pause", w.id),
                "Pause",
                &session.csrf,
                &[],
            )
        };
        let _ = write!(
            body,
            "<tr id=\"worker-{id}\"><td>{name}<br><span class=\"mono muted\">{id}</span></td><td>{status}</td>\
             <td class=\"mono\">{slots}</td><td>{labels}</td><td>{hb} <span class=\"muted\">({ago})</span></td>\
             <td class=\"mono\">{actions}</td><td>{toggle}</td></tr>",
            id = w.id,
            name = esc(&w.record.name),
            status = badge(status),
            slots = slots_text(w),
            labels = labels_text(&w.record.labels),
            hb = time(w.last_heartbeat_at),
            ago = ago(w.last_heartbeat_at, now),
            actions = w.record.actions.iter().map(|a| esc(a)).collect::<Vec<_>>().join("<br>"),
        );
    }
    if rows.is_empty() {
        body.push_str(
            "<tr><td colspan=\"7\" class=\"muted\">No workers have registered.</td></tr>",
        );
    }
    body.push_str("</tbody></table></div>");
    Ok(render("Workers", &session.chrome("/workers"), &body))
}

async fn set_paused(
    state: &AppState,
    session: &Session,
    id: &str,
    csrf: &str,
    paused: bool,
) -> PageResult {
    session.check_csrf(csrf)?;
    let id = super::parse_uuid("worker id", id)?;
    // The same check and call as `PATCH /api/v1/workers/{id}`: an unknown worker (or another tenant's) is 404.
    if workers_db::list_workers(&state.pool, session.tenant.0, Some(id))
        .await?
        .is_empty()
    {
        return Err(AppError::NotFound(format!("worker {id} does not exist")).into());
    }
    workers_db::set_worker_paused(&state.pool, session.tenant.0, id, paused).await?;
    state.dispatch.wake_assigner();
    state.dispatch.changed(Some(session.tenant.0));
    Ok(Redirect::to("/workers").into_response())
}

async fn pause(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    set_paused(&state, &session, &id, &form.csrf, true).await
}

async fn resume(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    set_paused(&state, &session, &id, &form.csrf, false).await
}

async fn workflows(State(state): State<AppState>, session: Session) -> PageResult {
    let rows = workflows_db::list_workflows(&state.pool, session.tenant.0, None, None).await?;
    let mut body = String::from(
        "<div id=\"workflows\" data-live><table><thead><tr><th>Workflow</th><th>Latest version</th>\
         <th>Event triggers</th><th>Cron triggers</th><th>Paused</th><th>Created</th></tr></thead><tbody>",
    );
    for w in &rows {
        let _ = write!(
            body,
            "<tr><td><a href=\"/workflows/{id}\">{name}</a></td><td class=\"mono\">{version}</td>\
             <td class=\"mono\">{events}</td><td class=\"mono\">{crons}</td><td>{paused}</td><td>{created}</td></tr>",
            id = w.id,
            name = esc(&w.name),
            version = esc(w.version.as_deref().unwrap_or("")),
            events = w.event_triggers.iter().map(|e| esc(e)).collect::<Vec<_>>().join("<br>"),
            crons = w.cron_triggers.iter().map(|e| esc(e)).collect::<Vec<_>>().join("<br>"),
            paused = if w.is_paused { "yes" } else { "no" },
            created = time(w.created_at),
        );
    }
    if rows.is_empty() {
        body.push_str(
            "<tr><td colspan=\"6\" class=\"muted\">No workflows are registered.</td></tr>",
        );
    }
    body.push_str("</tbody></table></div>");
    Ok(render("Workflows", &session.chrome("/workflows"), &body))
}

async fn workflow(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> PageResult {
    let id: Uuid = super::parse_uuid("workflow id", &id)?;
    let tenant = session.tenant.0;
    let w = workflows_db::list_workflows(&state.pool, tenant, None, Some(id))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| {
            PageError::App(AppError::NotFound(format!("workflow {id} does not exist")))
        })?;
    let versions = dashboard_db::workflow_versions(&state.pool, tenant, id).await?;
    let tasks = dashboard_db::workflow_tasks(&state.pool, tenant, id).await?;
    let mut body = String::new();
    let _ = write!(
        body,
        "<div class=\"grid\"><div class=\"card\"><b>Event triggers</b><br>{events}</div>\
         <div class=\"card\"><b>Cron triggers</b><br>{crons}</div>\
         <div class=\"card\"><b>Description</b><br>{desc}</div></div>",
        events = list_or_none(&w.event_triggers),
        crons = list_or_none(&w.cron_triggers),
        desc = esc(w.description.as_deref().unwrap_or("")),
    );
    body.push_str("<h2>Tasks of the latest version</h2><table><thead><tr><th>Task</th><th>Parents</th>\
                   <th>Retries</th><th>Timeouts</th><th>Concurrency</th><th>Rate limits</th></tr></thead><tbody>");
    for t in &tasks {
        let _ = write!(
            body,
            "<tr><td>{name}{kind}<br><span class=\"mono muted\">{action}</span></td><td class=\"mono\">{parents}</td>\
             <td>{retries}{backoff}</td><td>execution {exec}<br>schedule {sched}</td>\
             <td class=\"mono\">{conc}</td><td class=\"mono\">{rl}</td></tr>",
            name = esc(&t.readable_id),
            kind = if t.is_on_failure { " <span class=\"muted\">(on failure)</span>" } else if t.is_durable { " <span class=\"muted\">(durable)</span>" } else { "" },
            action = esc(&t.action),
            parents = t.parents.iter().map(|p| esc(p)).collect::<Vec<_>>().join(", "),
            retries = t.retries,
            backoff = t.backoff_factor.map(|f| format!("<br>backoff ×{f}")).unwrap_or_default(),
            exec = esc(&t.execution_timeout),
            sched = esc(&t.schedule_timeout),
            conc = settings_text(&t.concurrency),
            rl = settings_text(&t.rate_limits),
        );
    }
    body.push_str("</tbody></table>");
    if let Some(v) = versions.first() {
        let _ = write!(
            body,
            "<h2>Workflow-level concurrency</h2>{}",
            settings_text(&v.concurrency)
        );
    }
    body.push_str("<h2>Versions</h2><table><thead><tr><th>Version</th><th>Id</th><th>Created</th><th>Tasks</th></tr></thead><tbody>");
    for v in &versions {
        let _ = write!(
            body,
            "<tr><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(v.version.as_deref().unwrap_or("")),
            v.id,
            time(v.created_at),
            v.tasks
        );
    }
    body.push_str("</tbody></table>");
    let _ = write!(
        body,
        "<p><a href=\"/runs?workflow={}\">Runs of this workflow</a></p>",
        w.id
    );
    Ok(render(
        &format!("Workflow {}", w.name),
        &session.chrome("/workflows"),
        &body,
    ))
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "<span class=\"muted\">none</span>".into()
    } else {
        items
            .iter()
            .map(|e| format!("<span class=\"mono\">{}</span>", esc(e)))
            .collect::<Vec<_>>()
            .join("<br>")
    }
}

/// A list of settings objects (`[{expression, max_runs, strategy}]`, `[{key, units, ...}]`) as `k=v` lines.
fn settings_text(value: &Value) -> String {
    match value {
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|item| match item {
                Value::Object(map) => map
                    .iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| {
                        let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                        format!("{}={}", esc(k), esc(&v))
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
                other => esc(&other.to_string()),
            })
            .collect::<Vec<_>>()
            .join("<br>"),
        _ => "<span class=\"muted\">none</span>".into(),
    }
}
