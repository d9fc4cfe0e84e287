//! Incoming webhooks (`sql/webhooks.sql`): CRUD and `receive_webhook`, which turns an authenticated request into an
//! event. The request's authentication is checked by the caller ([`crate::rest::webhooks`]).

use super::{int_arg, page, Counted};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// A stored webhook, secrets included (`hatchet.find_webhooks`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct WebhookRow {
    /// Webhook id.
    pub webhook_id: Uuid,
    /// Name, unique per tenant (the receiving URL's last segment).
    pub name: String,
    /// Who sends it (`GENERIC`, `STRIPE`, `SLACK`, `SVIX`, ...): selects the HMAC signing scheme.
    pub source_name: String,
    /// CEL expression giving the event key.
    pub event_key_expression: String,
    /// CEL expression giving the event scope.
    pub scope_expression: Option<String>,
    /// Merged over the body to make the event payload.
    pub static_payload: Option<Value>,
    /// `BASIC`, `API_KEY` or `HMAC`.
    pub auth_type: String,
    /// The auth settings and secrets.
    pub auth: Value,
    /// Whether the receiving endpoint answers with the event.
    pub return_event: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// `hatchet.find_webhooks`: one page of a tenant's webhooks by name and source, and the total.
pub(crate) async fn find_webhooks(
    pool: &PgPool,
    tenant: Uuid,
    names: Option<&[String]>,
    sources: Option<&[String]>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<WebhookRow>, i64), sqlx::Error> {
    let rows: Vec<Counted<WebhookRow>> = sqlx::query_as(
        "SELECT webhook_id, name, source_name, event_key_expression, scope_expression, static_payload, auth_type, \
                auth, return_event, created_at, updated_at, total \
         FROM hatchet.find_webhooks(tenant_id => $1, names => $2, source_names => $3, max_rows => $4, \
                                    skip_rows => $5)",
    )
    .bind(tenant)
    .bind(names)
    .bind(sources)
    .bind(int_arg(limit))
    .bind(int_arg(offset))
    .fetch_all(pool)
    .await?;
    Ok(page(rows))
}

/// The optional settings of a webhook, at creation and in an update (`None`: the default, or unchanged).
#[derive(Debug, Clone, Default)]
pub(crate) struct WebhookOptions {
    /// CEL expression giving the event scope.
    pub scope_expression: Option<String>,
    /// Merged over the body to make the event payload.
    pub static_payload: Option<Value>,
    /// Whether the receiving endpoint answers with the event.
    pub return_event: Option<bool>,
}

/// What [`create_webhook`] creates.
#[derive(Debug, Clone)]
pub(crate) struct NewWebhook {
    /// Name.
    pub name: String,
    /// Source.
    pub source_name: String,
    /// CEL expression giving the event key.
    pub event_key_expression: String,
    /// `BASIC`, `API_KEY` or `HMAC`.
    pub auth_type: String,
    /// The auth settings and secrets.
    pub auth: Value,
    /// The rest.
    pub options: WebhookOptions,
}

/// `hatchet.create_webhook`.
pub(crate) async fn create_webhook(
    pool: &PgPool,
    tenant: Uuid,
    w: &NewWebhook,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT hatchet.create_webhook(name => $1, source_name => $2, event_key_expression => $3, \
         auth_type => $4, auth => $5, scope_expression => $6, static_payload => $7, return_event => $8, \
         tenant_id => $9)",
    )
    .bind(&w.name)
    .bind(&w.source_name)
    .bind(&w.event_key_expression)
    .bind(&w.auth_type)
    .bind(&w.auth)
    .bind(w.options.scope_expression.as_deref())
    .bind(w.options.static_payload.as_ref())
    .bind(w.options.return_event)
    .bind(tenant)
    .execute(pool)
    .await
    .map(|_| ())
}

/// `hatchet.update_webhook`: changes what is given (`None` keeps it); false if there is no such webhook.
pub(crate) async fn update_webhook(
    pool: &PgPool,
    tenant: Uuid,
    name: &str,
    event_key_expression: Option<&str>,
    u: &WebhookOptions,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT hatchet.update_webhook(name => $1, event_key_expression => $2, scope_expression => $3, \
         static_payload => $4, return_event => $5, tenant_id => $6)",
    )
    .bind(name)
    .bind(event_key_expression)
    .bind(u.scope_expression.as_deref())
    .bind(u.static_payload.as_ref())
    .bind(u.return_event)
    .bind(tenant)
    .fetch_one(pool)
    .await
}

/// `hatchet.delete_webhook`: false if there was none.
pub(crate) async fn delete_webhook(
    pool: &PgPool,
    tenant: Uuid,
    name: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT hatchet.delete_webhook(name => $1, tenant_id => $2)")
        .bind(name)
        .bind(tenant)
        .fetch_one(pool)
        .await
}

/// The event [`receive_webhook`] pushed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct ReceivedEvent {
    /// Event id.
    pub event_id: Uuid,
    /// Its key.
    pub event_key: String,
    /// Its scope.
    pub event_scope: Option<String>,
    /// Its payload.
    pub event_payload: Value,
}

/// `hatchet.receive_webhook`: evaluates the webhook's expressions over `{input: body, headers}` and pushes the
/// event. Unknown webhook: SQLSTATE 42704; expressions that give no string key: 22023.
pub(crate) async fn receive_webhook(
    pool: &PgPool,
    tenant: Uuid,
    name: &str,
    body: &Value,
    headers: &Value,
) -> Result<ReceivedEvent, sqlx::Error> {
    sqlx::query_as(
        "SELECT event_id, event_key, event_scope, event_payload \
         FROM hatchet.receive_webhook(name => $1, body => $2, headers => $3, tenant_id => $4)",
    )
    .bind(name)
    .bind(body)
    .bind(headers)
    .bind(tenant)
    .fetch_one(pool)
    .await
}
