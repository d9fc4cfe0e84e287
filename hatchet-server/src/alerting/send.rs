//! Delivering one alert: what it says ([`AlertText`]) and how each kind of channel gets it ([`Sender`]).
//!
//! | kind | request |
//! |---|---|
//! | `slack` | `POST` of `{"text": ...}` to the incoming-webhook URL (Slack's documented payload) |
//! | `webhook` | `POST` of the alert as JSON (see [`AlertText::webhook_body`]) with the channel's extra headers and `X-Hatchet-Alert-Id` (the delivery's task id, the same on every retry, so a receiver can drop repeats) |
//! | `email` | a plain-text message over SMTP: TLS from the first byte (`tls`), upgraded with STARTTLS (`starttls`) or plaintext (`none`), with AUTH when the secret has a username |
//!
//! Anything but a 2xx answer, a refused connection or an SMTP error is an error: the caller fails the attempt and
//! the engine retries it with backoff. HTTPS is verified against the Mozilla roots compiled in (webpki-roots), so
//! nothing is read from the network or the disk to trust a server.

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

/// Longest a single send may take; below the delivery attempt's 30 s execution timeout, so a slow endpoint fails
/// the attempt here (with a reason) rather than by timing out.
const SEND_TIMEOUT: Duration = Duration::from_secs(20);

/// Most bytes of an error answer quoted in the failure reason.
const QUOTED_BODY: usize = 300;

/// What an alert says, from the delivery's input (written by `hatchet._alert_on_task_failed` for `run_failed`,
/// `hatchet._alert_worker_died` for `worker_died`, `hatchet._alert_cron_missed` for `cron_missed`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AlertText {
    /// The tenant the alert belongs to.
    pub tenant: Uuid,
    /// `run_failed`, `worker_died` or `cron_missed`; `test` for a test alert ([`AlertText::test`]).
    pub event: String,
    /// The delivery input as written by the extension (`channel` removed): the webhook body's fields.
    pub fields: Value,
}

impl AlertText {
    /// Reads the delivery input; missing fields become empty (the alert is still sent, saying less).
    pub(crate) fn from_input(tenant: Uuid, input: &Value) -> Self {
        let mut fields = input.clone();
        if let Some(map) = fields.as_object_mut() {
            map.remove("channel");
        } else {
            fields = json!({});
        }
        Self {
            tenant,
            event: str_field(input, "event"),
            fields,
        }
    }

    /// A test alert for a channel of `kind` (the settings page's and the REST API's "send a test"): it says so,
    /// and links to the alert settings.
    pub(crate) fn test(tenant: Uuid, kind: &str) -> Self {
        Self {
            tenant,
            event: "test".to_owned(),
            fields: json!({"channel_kind": kind}),
        }
    }

    fn s(&self, key: &str) -> String {
        str_field(&self.fields, key)
    }

    fn n(&self, key: &str) -> i64 {
        self.fields
            .get(key)
            .and_then(Value::as_i64)
            .unwrap_or_default()
    }

    /// The dashboard page of what the alert is about: `<public url>/runs/<run id>` (`/workers#worker-<worker id>` for a
    /// dead worker, `/crons#cron-<cron id>` for a cron that missed ticks).
    pub(crate) fn link(&self, public_url: &str) -> String {
        let base = public_url.trim_end_matches('/');
        match self.event.as_str() {
            "worker_died" => format!("{base}/workers#worker-{}", self.s("worker_id")),
            "cron_missed" => format!("{base}/crons#cron-{}", self.s("cron_id")),
            "test" => format!("{base}/alerts"),
            _ => format!("{base}/runs/{}", self.s("run_id")),
        }
    }

    /// One line for a subject or a Slack preview.
    pub(crate) fn subject(&self) -> String {
        match self.event.as_str() {
            "worker_died" => format!("[pg_hatchet] worker {} died", self.s("worker")),
            "cron_missed" => format!(
                "[pg_hatchet] cron {} of {} missed ticks",
                self.s("cron"),
                self.s("workflow")
            ),
            "test" => format!("[pg_hatchet] test alert ({})", self.s("channel_kind")),
            _ => format!("[pg_hatchet] run of {} failed", self.s("workflow")),
        }
    }

    /// The human-readable alert: what happened, why, and the link.
    pub(crate) fn body(&self, public_url: &str) -> String {
        let link = self.link(public_url);
        if self.event == "worker_died" {
            return format!(
                "Worker {worker} ({id}) stopped sending heartbeats and was declared dead; \
                 {attempts} running attempt(s) will be retried on other workers.\n\
                 Last heartbeat: {last}\n\
                 Worker: {link}\n",
                worker = self.s("worker"),
                id = self.s("worker_id"),
                attempts = self.n("attempts_retried"),
                last = self.s("last_heartbeat_at"),
            );
        }
        if self.event == "test" {
            return format!(
                "A test alert from pg_hatchet for tenant {tenant}: this {kind} channel works.\n\
                 Alert settings: {link}\n",
                tenant = self.tenant,
                kind = self.s("channel_kind"),
            );
        }
        if self.event == "cron_missed" {
            return format!(
                "Cron {cron} ({expression}) of {workflow} fired its tick due at {due} only at {fired}; \
                 the ticks due in between were skipped.\n\
                 Cron: {link}\n",
                cron = self.s("cron"),
                expression = self.s("expression"),
                workflow = self.s("workflow"),
                due = self.s("due_at"),
                fired = self.s("fired_at"),
            );
        }
        let error = self.s("error");
        let error = if error.is_empty() {
            "(no reason given)".to_owned()
        } else {
            error
        };
        format!(
            "A run of {workflow} failed for good: task {task} gave up after attempt {attempts}.\n\
             Reason: {error}\n\
             Run: {link}\n",
            workflow = self.s("workflow"),
            task = self.s("task"),
            attempts = self.n("attempt") + 1,
        )
    }

    /// The generic webhook's JSON body: every field of the alert, plus `tenant_id`, `url` and `text`.
    pub(crate) fn webhook_body(&self, public_url: &str) -> Value {
        let mut body = self.fields.clone();
        if let Some(map) = body.as_object_mut() {
            map.insert("event".into(), json!(self.event));
            map.insert("tenant_id".into(), json!(self.tenant));
            map.insert("url".into(), json!(self.link(public_url)));
            map.insert("text".into(), json!(self.body(public_url)));
        }
        body
    }
}

fn str_field(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Sends alerts; one per server (it holds the HTTP client's connection pool).
#[derive(Debug)]
pub(crate) struct Sender {
    http: reqwest::Client,
    public_url: String,
}

impl Sender {
    /// A sender whose links start with `public_url`.
    pub(crate) fn new(public_url: String) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(SEND_TIMEOUT)
            .user_agent(concat!("pg_hatchet-alerts/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, public_url })
    }

    /// The base of the links in alerts.
    pub(crate) fn public_url(&self) -> &str {
        &self.public_url
    }

    /// Delivers `text` to a channel of `kind`; returns where it went (the host, or the recipients), never a
    /// secret, or the reason it was not delivered.
    pub(crate) async fn send(
        &self,
        kind: &str,
        settings: &Value,
        secret: &Value,
        text: &AlertText,
        delivery: Uuid,
    ) -> Result<Value, String> {
        match kind {
            "slack" => {
                let body = json!({"text": format!("*{}*\n{}", text.subject(), text.body(&self.public_url))});
                self.post(kind, secret, &body, delivery).await
            }
            "webhook" => {
                self.post(kind, secret, &text.webhook_body(&self.public_url), delivery)
                    .await
            }
            "email" => self.email(settings, secret, text).await,
            other => Err(format!("unknown alert channel kind {other:?}")),
        }
    }

    async fn post(
        &self,
        kind: &str,
        secret: &Value,
        body: &Value,
        delivery: Uuid,
    ) -> Result<Value, String> {
        let url = secret
            .get("url")
            .and_then(Value::as_str)
            .ok_or("the channel has no url")?;
        let parsed =
            reqwest::Url::parse(url).map_err(|e| format!("the channel's url is invalid: {e}"))?;
        let host = parsed.host_str().unwrap_or_default().to_owned();
        let mut request = self.http.post(parsed).json(body);
        if kind == "webhook" {
            request = request.header("X-Hatchet-Alert-Id", delivery.to_string());
            if let Some(headers) = secret.get("headers").and_then(Value::as_object) {
                for (name, value) in headers {
                    request = request.header(name.as_str(), value.as_str().unwrap_or_default());
                }
            }
        }
        // The error text of reqwest names the URL, which is the secret for Slack: say only the host.
        let response = request
            .send()
            .await
            .map_err(|e| format!("{kind} request to {host} failed: {}", describe(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(json!(host));
        }
        let answer = response.text().await.unwrap_or_default();
        let quoted: String = answer.chars().take(QUOTED_BODY).collect();
        Err(format!(
            "{kind} endpoint {host} answered {status}: {quoted}"
        ))
    }

    async fn email(
        &self,
        settings: &Value,
        secret: &Value,
        text: &AlertText,
    ) -> Result<Value, String> {
        let s = |k: &str| settings.get(k).and_then(Value::as_str).unwrap_or_default();
        let host = s("host");
        let port = settings
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok());
        let port = port.ok_or("the email channel has no valid port")?;
        let builder = match s("tls") {
            "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(host),
            "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host),
            _ => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                host,
            )),
        }
        .map_err(|e| format!("SMTP setup for {host} failed: {e}"))?;
        let mut builder = builder.port(port).timeout(Some(SEND_TIMEOUT));
        if let (Some(user), Some(password)) = (
            secret.get("username").and_then(Value::as_str),
            secret.get("password").and_then(Value::as_str),
        ) {
            builder = builder.credentials(Credentials::new(user.to_owned(), password.to_owned()));
        }
        let mailer = builder.build();

        let from = s("from")
            .parse()
            .map_err(|e| format!("bad from address: {e}"))?;
        let mut message = Message::builder()
            .from(from)
            .subject(text.subject())
            .header(ContentType::TEXT_PLAIN);
        let mut recipients = Vec::new();
        for to in settings
            .get("to")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let to = to.as_str().unwrap_or_default();
            message = message.to(to.parse().map_err(|e| format!("bad recipient {to}: {e}"))?);
            recipients.push(to.to_owned());
        }
        let message = message
            .body(text.body(&self.public_url))
            .map_err(|e| format!("building the email failed: {e}"))?;
        mailer
            .send(message)
            .await
            .map_err(|e| format!("SMTP delivery via {host}:{port} failed: {e}"))?;
        Ok(json!(recipients))
    }
}

/// A transport error without the URL (which may be the secret).
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_request() {
        "request error"
    } else {
        "transport error"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        what.to_owned()
    } else {
        format!("{what} ({detail})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text() -> AlertText {
        AlertText::from_input(
            Uuid::nil(),
            &json!({"event": "run_failed", "run_id": "r1", "task_id": "t1", "workflow": "etl", "task": "load",
                    "attempt": 2, "error": "disk full", "failed_at": "2026-01-01T00:00:00Z", "channel": "slack"}),
        )
    }

    #[test]
    fn link_joins_the_public_url_and_the_run() {
        assert_eq!(
            text().link("https://hatchet.example.com/"),
            "https://hatchet.example.com/runs/r1"
        );
        assert_eq!(
            text().link("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080/runs/r1"
        );
    }

    #[test]
    fn body_says_what_failed_why_and_where() {
        let body = text().body("http://h");
        assert!(
            body.contains("A run of etl failed for good: task load gave up after attempt 3."),
            "{body}"
        );
        assert!(body.contains("Reason: disk full"), "{body}");
        assert!(body.contains("Run: http://h/runs/r1"), "{body}");
        assert_eq!(text().subject(), "[pg_hatchet] run of etl failed");
    }

    #[test]
    fn missing_fields_are_empty_not_fatal() {
        let t = AlertText::from_input(Uuid::nil(), &json!({}));
        assert!(t.body("http://h").contains("(no reason given)"));
        let t = AlertText::from_input(Uuid::nil(), &json!("not an object"));
        assert_eq!(t.webhook_body("http://h")["url"], "http://h/runs/");
    }

    #[test]
    fn webhook_body_carries_every_field_but_the_channel() {
        let b = text().webhook_body("http://h");
        assert_eq!(b["event"], "run_failed");
        assert_eq!(b["url"], "http://h/runs/r1");
        assert_eq!(b["attempt"], 2);
        assert_eq!(b["failed_at"], "2026-01-01T00:00:00Z");
        assert_eq!(b["tenant_id"], Uuid::nil().to_string());
        assert!(b.get("channel").is_none());
    }

    #[test]
    fn a_test_alert_says_so_and_links_to_the_settings() {
        let t = AlertText::test(Uuid::nil(), "webhook");
        assert_eq!(t.subject(), "[pg_hatchet] test alert (webhook)");
        assert_eq!(t.link("https://h.example/"), "https://h.example/alerts");
        assert!(t
            .body("https://h.example")
            .contains("this webhook channel works"));
        let body = t.webhook_body("https://h.example");
        assert_eq!(body["event"], "test");
        assert_eq!(body["url"], "https://h.example/alerts");
    }

    #[test]
    fn a_dead_worker_links_to_the_worker() {
        let t = AlertText::from_input(
            Uuid::nil(),
            &json!({"event": "worker_died", "worker_id": "w1", "worker": "billing-1", "attempts_retried": 3,
                    "last_heartbeat_at": "2026-01-01T00:00:00Z", "channel": "email"}),
        );
        assert_eq!(t.subject(), "[pg_hatchet] worker billing-1 died");
        assert_eq!(t.link("http://h/"), "http://h/workers#worker-w1");
        let body = t.body("http://h");
        assert!(
            body.contains("Worker billing-1 (w1) stopped sending heartbeats"),
            "{body}"
        );
        assert!(
            body.contains("3 running attempt(s) will be retried"),
            "{body}"
        );
        assert_eq!(t.webhook_body("http://h")["worker"], "billing-1");
    }

    #[test]
    fn a_missed_cron_links_to_the_cron() {
        let t = AlertText::from_input(
            Uuid::nil(),
            &json!({"event": "cron_missed", "cron_id": "c1", "cron": "nightly", "expression": "0 3 * * *",
                    "workflow": "report", "due_at": "2026-01-01T03:00:00Z", "fired_at": "2026-01-03T09:00:00Z"}),
        );
        assert_eq!(
            t.subject(),
            "[pg_hatchet] cron nightly of report missed ticks"
        );
        assert_eq!(t.link("http://h"), "http://h/crons#cron-c1");
        let body = t.body("http://h");
        assert!(
            body.contains("due at 2026-01-01T03:00:00Z only at 2026-01-03T09:00:00Z"),
            "{body}"
        );
    }
}
