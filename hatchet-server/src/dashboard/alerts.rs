//! Alert settings: the tenant's alert channels (a Slack incoming webhook, a generic JSON webhook, email over SMTP)
//! listed, added or replaced, test-sent and deleted, and the alerts sent lately.
//!
//! Every action calls what the REST API's `alert-channels` routes call (`db::alerts::put_channel`,
//! `delete_channel`, `list_channels`, `list_alerts`, and `alerting::send_test` for the test), so the checks are the
//! extension's (`hatchet._check_alert_channel`) and a bad form is the REST API's 400. Secrets are write-only here
//! too: the page names which secret fields are stored, never their values, and a form whose secret fields are left
//! empty keeps the stored secret (`put_alert_channel` with a NULL secret).

use super::html::{self, action_button, esc, json_block, time};
use super::session::{CsrfForm, Session};
use super::{render, PageResult};
use crate::db::alerts::{self as db, PutChannel};
use crate::error::AppError;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::fmt::Write;

/// The events a channel can be told about, with what the form says of each.
const EVENTS: [(&str, &str); 3] = [
    ("run_failed", "a run failed for good"),
    ("worker_died", "a worker died"),
    ("cron_missed", "a cron missed ticks"),
];

/// Alerts sent shown at the bottom of the page.
const RECENT: i32 = 20;

/// The routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/alerts", get(page).post(put))
        .route("/alerts/{kind}/delete", post(delete))
        .route("/alerts/{kind}/test", post(test))
}

/// A channel kind from a path or form: one of the three, or 400 (the extension's own words).
fn kind_of(kind: &str) -> Result<&'static str, AppError> {
    match kind {
        "slack" => Ok("slack"),
        "webhook" => Ok("webhook"),
        "email" => Ok("email"),
        other => Err(AppError::InvalidArgument(format!(
            "alert channel kind must be slack, webhook or email, not {other}"
        ))),
    }
}

async fn page(State(state): State<AppState>, session: Session) -> PageResult {
    let body = render_page(&state, &session, None).await?;
    Ok(render("Alerts", &session.chrome("/alerts"), &body))
}

/// The page's body; `notice` is the outcome of a test send (already HTML).
async fn render_page(
    state: &AppState,
    session: &Session,
    notice: Option<String>,
) -> Result<String, AppError> {
    let tenant = session.tenant.0;
    let channels = db::list_channels(&state.pool, tenant).await?;
    let sent = db::list_alerts(&state.pool, tenant, RECENT).await?;
    let csrf = &session.csrf;
    let mut body = notice.unwrap_or_default();

    body.push_str(
        "<table id=\"alert-channels\"><thead><tr><th>Channel</th><th>Enabled</th><th>Events</th><th>Settings</th>\
         <th>Secret</th><th>Updated</th><th></th></tr></thead><tbody>",
    );
    for c in &channels {
        let secret = if c.secret_fields.is_empty() {
            "<span class=\"muted\">none</span>".to_owned()
        } else {
            c.secret_fields
                .iter()
                .map(|f| format!("{} <span class=\"muted\">set</span>", esc(f)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let settings = if c.settings.as_object().is_some_and(Map::is_empty) {
            "<span class=\"muted\">none</span>".to_owned()
        } else {
            json_block(&c.settings)
        };
        let _ = write!(
            body,
            "<tr data-channel=\"{kind}\"><td>{kind}</td><td>{enabled}</td><td>{events}</td><td>{settings}</td>\
             <td class=\"secret-fields\">{secret}</td><td>{updated}</td><td>{test} {delete}</td></tr>",
            kind = esc(&c.kind),
            enabled = if c.enabled { "yes" } else { "no" },
            events = esc(&c.events.join(", ")),
            updated = time(c.updated_at),
            test = action_button(&format!("/alerts/{}/test", c.kind), "Send a test", csrf, &[]),
            delete = action_button(&format!("/alerts/{}/delete", c.kind), "Delete", csrf, &[]),
        );
    }
    if channels.is_empty() {
        body.push_str(
            "<tr><td colspan=\"7\" class=\"muted\">No alert channel: nothing is sent when a run fails.</td></tr>",
        );
    }
    body.push_str("</tbody></table>");

    // One form per kind; a stored channel's form says its secret is kept when left empty.
    let stored = |kind: &str| channels.iter().find(|c| c.kind == kind);
    let keep = |kind: &str, what: &str| {
        if stored(kind).is_some() {
            format!("stored; leave empty to keep the {what}")
        } else {
            String::new()
        }
    };
    let events = |kind: &str| {
        let mut out = String::from("<fieldset><legend>Events</legend>");
        for (event, label) in EVENTS {
            let on = stored(kind).map_or(event == "run_failed", |c| {
                c.events.iter().any(|e| e == event)
            });
            let _ = write!(
                out,
                "<label><input type=\"checkbox\" name=\"ev_{event}\" value=\"on\"{}> {label}</label>",
                if on { " checked" } else { "" }
            );
        }
        let enabled = stored(kind).is_none_or(|c| c.enabled);
        let _ = write!(
            out,
            "</fieldset><label><input type=\"checkbox\" name=\"enabled\" value=\"on\"{}> enabled</label>",
            if enabled { " checked" } else { "" }
        );
        out
    };
    let email = stored("email").map(|c| &c.settings);
    let setting = |key: &str| {
        email
            .and_then(|s| s.get(key))
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .unwrap_or_default()
    };
    let to = email
        .and_then(|s| s.get("to"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let tls = setting("tls");
    let tls_options: String = ["starttls", "tls", "none"]
        .iter()
        .map(|t| {
            format!(
                "<option value=\"{t}\"{}>{t}</option>",
                if tls == *t { " selected" } else { "" }
            )
        })
        .collect();
    let _ = write!(
        body,
        "<h2>Add or replace a channel</h2><div class=\"grid\">\
         <form method=\"post\" action=\"/alerts\" class=\"card filters\" id=\"put-slack\" autocomplete=\"off\">{csrf_field}\
         <input type=\"hidden\" name=\"kind\" value=\"slack\"><b>Slack</b>\
         <label>Incoming webhook URL<input name=\"url\" type=\"password\" placeholder=\"{slack_keep}\"></label>{slack_events}\
         <button type=\"submit\">Save Slack</button></form>\
         <form method=\"post\" action=\"/alerts\" class=\"card filters\" id=\"put-webhook\" autocomplete=\"off\">{csrf_field}\
         <input type=\"hidden\" name=\"kind\" value=\"webhook\"><b>Webhook (JSON POST)</b>\
         <label>URL<input name=\"url\" type=\"password\" placeholder=\"{webhook_keep}\"></label>\
         <label>Extra headers (JSON object)<input name=\"headers\" placeholder='{{\"Authorization\": \"Bearer ...\"}}'></label>\
         {webhook_events}<button type=\"submit\">Save webhook</button></form>\
         <form method=\"post\" action=\"/alerts\" class=\"card filters\" id=\"put-email\" autocomplete=\"off\">{csrf_field}\
         <input type=\"hidden\" name=\"kind\" value=\"email\"><b>Email (SMTP)</b>\
         <label>SMTP host<input name=\"host\" value=\"{host}\"></label>\
         <label>Port<input name=\"port\" value=\"{port}\" inputmode=\"numeric\"></label>\
         <label>TLS<select name=\"tls\">{tls_options}</select></label>\
         <label>From<input name=\"from\" value=\"{from}\"></label>\
         <label>To (comma-separated)<input name=\"to\" value=\"{to}\"></label>\
         <label>Username<input name=\"username\" type=\"password\" placeholder=\"{email_keep}\"></label>\
         <label>Password<input name=\"password\" type=\"password\"></label>\
         {email_events}<button type=\"submit\">Save email</button></form></div>\
         <p class=\"hint\">Secrets (URLs, headers, SMTP credentials) are never shown again; leave them empty to keep \
         the stored ones. The same settings are at <code>/api/v1/stable/tenants/{tenant}/alert-channels</code>.</p>",
        csrf_field = html::csrf_field(csrf),
        slack_keep = html::attr(&keep("slack", "URL")),
        webhook_keep = html::attr(&keep("webhook", "URL and headers")),
        email_keep = html::attr(&keep("email", "credentials")),
        slack_events = events("slack"),
        webhook_events = events("webhook"),
        email_events = events("email"),
        host = html::attr(&setting("host")),
        port = html::attr(&setting("port")),
        from = html::attr(&setting("from")),
        to = html::attr(&to),
        tenant = tenant,
    );

    body.push_str(
        "<h2>Alerts sent</h2><div id=\"alerts-live\" data-live><table id=\"alerts-sent\"><thead><tr><th>About</th>\
         <th>Event</th><th>Channel</th><th>Delivery run</th><th>Enqueued</th></tr></thead><tbody>",
    );
    for a in &sent {
        let _ = write!(
            body,
            "<tr><td class=\"mono\">{subject}</td><td>{event}</td><td>{kind}</td>\
             <td><a class=\"mono\" href=\"/runs/{run}\">{run}</a></td><td>{at}</td></tr>",
            subject = esc(&a.subject),
            event = esc(&a.event),
            kind = esc(&a.kind),
            run = a.task_id,
            at = time(a.created_at),
        );
    }
    if sent.is_empty() {
        body.push_str("<tr><td colspan=\"5\" class=\"muted\">No alert sent yet.</td></tr>");
    }
    let _ = write!(
        body,
        "</tbody></table><p class=\"hint\">The newest {RECENT}. Each is a run of the workflow \
         <code>hatchet:alerts</code>: its timeline shows the attempts.</p></div>"
    );
    Ok(body)
}

/// The add-or-replace form of one kind (fields of the other kinds are absent).
#[derive(Debug, Deserialize)]
struct PutForm {
    #[serde(default)]
    csrf: String,
    kind: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    headers: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    port: String,
    #[serde(default)]
    tls: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    enabled: Option<String>,
    #[serde(default)]
    ev_run_failed: Option<String>,
    #[serde(default)]
    ev_worker_died: Option<String>,
    #[serde(default)]
    ev_cron_missed: Option<String>,
}

impl PutForm {
    /// What `put_alert_channel` is called with, as the REST API's PUT body would say it.
    fn channel(&self) -> Result<PutChannel, AppError> {
        let kind = kind_of(self.kind.trim())?;
        let events: Vec<String> = [
            ("run_failed", &self.ev_run_failed),
            ("worker_died", &self.ev_worker_died),
            ("cron_missed", &self.ev_cron_missed),
        ]
        .iter()
        .filter(|(_, on)| on.is_some())
        .map(|(e, _)| (*e).to_owned())
        .collect();
        let url = self.url.trim();
        let headers = self.headers.trim();
        let (settings, secret) = match kind {
            "slack" => (None, (!url.is_empty()).then(|| json!({ "url": url }))),
            "webhook" => {
                let headers: Option<Value> = if headers.is_empty() {
                    None
                } else {
                    Some(serde_json::from_str(headers).map_err(|e| {
                        AppError::InvalidArgument(format!(
                            "webhook headers must be a JSON object: {e}"
                        ))
                    })?)
                };
                match (url.is_empty(), headers) {
                    (true, None) => (None, None),
                    (true, Some(_)) => {
                        return Err(AppError::InvalidArgument(
                            "give the webhook url again to change its headers (secrets are replaced whole)".into(),
                        ))
                    }
                    (false, None) => (None, Some(json!({ "url": url }))),
                    (false, Some(h)) => (None, Some(json!({ "url": url, "headers": h }))),
                }
            }
            _ => {
                let port = self.port.trim();
                let port: Value = match port.parse::<u16>() {
                    Ok(p) => json!(p),
                    Err(_) if port.is_empty() => Value::Null,
                    Err(_) => {
                        return Err(AppError::InvalidArgument(format!(
                            "the SMTP port must be a number from 1 to 65535, not {port:?}"
                        )))
                    }
                };
                let to: Vec<&str> = self
                    .to
                    .split([',', ';', ' ', '\n'])
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .collect();
                let mut settings = json!({"host": self.host.trim(), "tls": self.tls.trim(),
                                          "from": self.from.trim(), "to": to});
                if !port.is_null() {
                    settings["port"] = port;
                }
                let secret = match (self.username.is_empty(), self.password.is_empty()) {
                    (true, true) => None,
                    _ => Some(json!({"username": self.username, "password": self.password})),
                };
                (Some(settings), secret)
            }
        };
        Ok(PutChannel {
            kind: kind.to_owned(),
            settings,
            secret,
            enabled: self.enabled.is_some(),
            events,
        })
    }
}

/// `POST /alerts`: creates or replaces a channel with `put_alert_channel`, as the REST PUT does.
async fn put(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<PutForm>,
) -> PageResult {
    session.check_csrf(&form.csrf)?;
    let channel = form.channel()?;
    db::put_channel(&state.pool, session.tenant.0, &channel).await?;
    Ok(Redirect::to("/alerts").into_response())
}

/// `POST /alerts/{kind}/delete`.
async fn delete(
    State(state): State<AppState>,
    session: Session,
    Path(kind): Path<String>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    session.check_csrf(&form.csrf)?;
    let kind = kind_of(&kind)?;
    if !db::delete_channel(&state.pool, session.tenant.0, kind).await? {
        return Err(AppError::NotFound(format!("alert channel \"{kind}\" is not set")).into());
    }
    Ok(Redirect::to("/alerts").into_response())
}

/// `POST /alerts/{kind}/test`: sends a test alert now and shows the page with what happened.
async fn test(
    State(state): State<AppState>,
    session: Session,
    Path(kind): Path<String>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    session.check_csrf(&form.csrf)?;
    let kind = kind_of(&kind)?;
    let outcome = crate::alerting::send_test(
        &state.pool,
        &state.config.public_url,
        session.tenant.0,
        kind,
    )
    .await?;
    let notice = match outcome {
        Ok(sent) => format!(
            "<p class=\"notice\" role=\"status\" id=\"test-result\" data-delivered=\"true\">Test alert sent \
             through the {kind} channel to {}.</p>",
            esc(&match &sent["to"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        ),
        Err(reason) => format!(
            "<p class=\"error\" role=\"alert\" id=\"test-result\" data-delivered=\"false\">The test alert through \
             the {kind} channel was not delivered: {}</p>",
            esc(&reason)
        ),
    };
    let body = render_page(&state, &session, Some(notice)).await?;
    Ok(render("Alerts", &session.chrome("/alerts"), &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(kind: &str) -> PutForm {
        PutForm {
            csrf: String::new(),
            kind: kind.into(),
            url: String::new(),
            headers: String::new(),
            host: String::new(),
            port: String::new(),
            tls: String::new(),
            from: String::new(),
            to: String::new(),
            username: String::new(),
            password: String::new(),
            enabled: Some("on".into()),
            ev_run_failed: Some("on".into()),
            ev_worker_died: None,
            ev_cron_missed: None,
        }
    }

    #[test]
    fn empty_secret_fields_keep_the_stored_secret() {
        let c = form("slack").channel().unwrap();
        assert_eq!((c.settings, c.secret), (None, None));
        assert_eq!(c.events, vec!["run_failed"]);
        let mut f = form("webhook");
        f.url = " http://127.0.0.1:9/hook ".into();
        f.headers = r#"{"X-Key": "k"}"#.into();
        let c = f.channel().unwrap();
        assert_eq!(
            c.secret,
            Some(json!({"url": "http://127.0.0.1:9/hook", "headers": {"X-Key": "k"}}))
        );
        f.url.clear();
        assert!(matches!(f.channel(), Err(AppError::InvalidArgument(_))));
    }

    #[test]
    fn email_settings_come_from_the_form() {
        let mut f = form("email");
        f.host = "127.0.0.1".into();
        f.port = "2525".into();
        f.tls = "none".into();
        f.from = "a@example.com".into();
        f.to = "b@example.com, c@example.com".into();
        f.enabled = None;
        let c = f.channel().unwrap();
        assert_eq!(
            c.settings,
            Some(
                json!({"host": "127.0.0.1", "port": 2525, "tls": "none", "from": "a@example.com",
                        "to": ["b@example.com", "c@example.com"]})
            )
        );
        assert_eq!(c.secret, None);
        assert!(!c.enabled);
        f.port = "smtp".into();
        assert!(matches!(f.channel(), Err(AppError::InvalidArgument(_))));
        assert!(matches!(
            form("pager").channel(),
            Err(AppError::InvalidArgument(_))
        ));
    }
}
