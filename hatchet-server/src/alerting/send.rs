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

/// What an alert says, from the delivery's input (written by `hatchet._alert_on_task_failed`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AlertText {
    /// The tenant the run belongs to.
    pub tenant: Uuid,
    /// `run_failed`.
    pub event: String,
    /// The run that failed.
    pub run_id: String,
    /// The task that failed for good.
    pub task_id: String,
    /// The workflow's name (the queue's, for a task enqueued on its own).
    pub workflow: String,
    /// The task's readable id (the queue, for a task enqueued on its own).
    pub task: String,
    /// The attempt that failed (0 is the first).
    pub attempt: i64,
    /// The failure reason.
    pub error: String,
    /// When it failed.
    pub failed_at: String,
}

impl AlertText {
    /// Reads the delivery input; missing fields become empty (the alert is still sent, saying less).
    pub(crate) fn from_input(tenant: Uuid, input: &Value) -> Self {
        let s = |k: &str| {
            input
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Self {
            tenant,
            event: s("event"),
            run_id: s("run_id"),
            task_id: s("task_id"),
            workflow: s("workflow"),
            task: s("task"),
            attempt: input
                .get("attempt")
                .and_then(Value::as_i64)
                .unwrap_or_default(),
            error: s("error"),
            failed_at: s("failed_at"),
        }
    }

    /// The run's page on the dashboard: `<public url>/runs/<run id>`.
    pub(crate) fn link(&self, public_url: &str) -> String {
        format!("{}/runs/{}", public_url.trim_end_matches('/'), self.run_id)
    }

    /// One line for a subject or a Slack preview.
    pub(crate) fn subject(&self) -> String {
        format!("[pg_hatchet] run of {} failed", self.workflow)
    }

    /// The human-readable alert: what failed, why, and the link.
    pub(crate) fn body(&self, public_url: &str) -> String {
        let error = if self.error.is_empty() {
            "(no reason given)"
        } else {
            &self.error
        };
        format!(
            "A run of {workflow} failed for good: task {task} gave up after attempt {attempts}.\n\
             Reason: {error}\n\
             Run: {link}\n",
            workflow = self.workflow,
            task = self.task,
            attempts = self.attempt + 1,
            link = self.link(public_url),
        )
    }

    /// The generic webhook's JSON body.
    pub(crate) fn webhook_body(&self, public_url: &str) -> Value {
        json!({
            "event": self.event,
            "tenant_id": self.tenant,
            "run_id": self.run_id,
            "task_id": self.task_id,
            "workflow": self.workflow,
            "task": self.task,
            "attempt": self.attempt,
            "error": self.error,
            "failed_at": self.failed_at,
            "url": self.link(public_url),
            "text": self.body(public_url),
        })
    }
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
    }

    #[test]
    fn missing_fields_are_empty_not_fatal() {
        let t = AlertText::from_input(Uuid::nil(), &json!({}));
        assert_eq!(t.attempt, 0);
        assert!(t.body("http://h").contains("(no reason given)"));
    }

    #[test]
    fn webhook_body_carries_every_field() {
        let b = text().webhook_body("http://h");
        assert_eq!(b["event"], "run_failed");
        assert_eq!(b["url"], "http://h/runs/r1");
        assert_eq!(b["attempt"], 2);
        assert_eq!(b["tenant_id"], Uuid::nil().to_string());
    }
}
