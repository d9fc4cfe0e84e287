//! Events and event filters (`sql/events.sql`): pushing events, the event list, and filter CRUD.

use super::{int_arg, page, Counted};
use crate::status::RunStatus;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// `hatchet.push_events`: stores events and triggers what waits for them; returns the event ids in order.
/// Each event is `{key, payload, additional_metadata, scope, priority}`.
pub(crate) async fn push_events(
    pool: &PgPool,
    tenant: Uuid,
    events: &Value,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT hatchet.push_events(events => $1, tenant_id => $2)")
        .bind(events)
        .bind(tenant)
        .fetch_one(pool)
        .await
}

/// A run an event triggered, with its status.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TriggeredRun {
    /// The run.
    pub id: Uuid,
    /// Its status now.
    pub status: RunStatus,
}

/// A stored event (`hatchet.list_events`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct EventRow {
    /// Event id.
    pub id: Uuid,
    /// Key.
    pub key: String,
    /// Payload.
    pub payload: Value,
    /// Additional metadata.
    pub additional_metadata: Value,
    /// Scope.
    pub scope: Option<String>,
    /// When it was pushed.
    pub created_at: DateTime<Utc>,
    /// The runs it triggered.
    #[sqlx(json)]
    pub runs: Vec<TriggeredRun>,
}

/// The filters of `event.list` beyond keys and time (`hatchet.list_events`); `None` means no filter.
#[derive(Debug, Clone, Default)]
pub(crate) struct EventFilter {
    /// The event's scope is one of these.
    pub scopes: Option<Vec<String>>,
    /// The event's additional metadata contains this object.
    pub metadata: Option<Value>,
    /// The event triggered a run of one of these workflows (public ids) ...
    pub workflow_ids: Option<Vec<Uuid>>,
    /// ... whose status is one of these (QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED).
    pub run_statuses: Option<Vec<String>>,
}

/// `hatchet.list_events`: one page of a tenant's events (by key, creation time and `filter`), newest first, and the
/// total.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn list_events(
    pool: &PgPool,
    tenant: Uuid,
    keys: Option<&[String]>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    filter: &EventFilter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<EventRow>, i64), sqlx::Error> {
    query_events(
        pool,
        tenant,
        keys,
        (since, until),
        filter,
        None,
        limit,
        offset,
    )
    .await
}

/// `hatchet.list_events` by keyset: the newest `limit` events older than `before` (an event id; `None`: the newest).
pub(crate) async fn list_events_before(
    pool: &PgPool,
    tenant: Uuid,
    keys: Option<&[String]>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<EventRow>, sqlx::Error> {
    Ok(query_events(
        pool,
        tenant,
        keys,
        (None, None),
        &EventFilter::default(),
        before,
        limit,
        0,
    )
    .await?
    .0)
}

#[allow(clippy::too_many_arguments)]
async fn query_events(
    pool: &PgPool,
    tenant: Uuid,
    keys: Option<&[String]>,
    (since, until): (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    filter: &EventFilter,
    before: Option<Uuid>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<EventRow>, i64), sqlx::Error> {
    let rows: Vec<Counted<EventRow>> = sqlx::query_as(
        "SELECT id, key, payload, additional_metadata, scope, created_at, runs, total \
         FROM hatchet.list_events(keys => $1, since => $2, until => $3, \"limit\" => $4, \"offset\" => $5, \
                                  tenant_id => $6, before => $7, include_payloads => true, scopes => $8, \
                                  metadata => $9, workflow_ids => $10, run_statuses => $11)",
    )
    .bind(keys)
    .bind(since)
    .bind(until)
    .bind(int_arg(limit))
    .bind(int_arg(offset))
    .bind(tenant)
    .bind(before)
    .bind(filter.scopes.as_deref())
    .bind(filter.metadata.as_ref())
    .bind(filter.workflow_ids.as_deref())
    .bind(filter.run_statuses.as_deref())
    .fetch_all(pool)
    .await?;
    Ok(page(rows))
}

/// An event filter (`hatchet.list_filters`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct FilterRow {
    /// Filter id.
    pub filter_id: Uuid,
    /// The workflow's public id.
    pub workflow_id: Uuid,
    /// The scope events must carry.
    pub scope: String,
    /// The CEL expression over the event.
    pub expression: String,
    /// The payload merged into triggered runs' input.
    pub payload: Value,
    /// Declared with the workflow (not created through the API).
    pub is_declarative: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// `hatchet.list_filters`: one page of a tenant's filters by id, workflow public id and scope, and the total.
pub(crate) async fn list_filters(
    pool: &PgPool,
    tenant: Uuid,
    ids: Option<&[Uuid]>,
    workflows: Option<&[Uuid]>,
    scopes: Option<&[String]>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<FilterRow>, i64), sqlx::Error> {
    let rows: Vec<Counted<FilterRow>> = sqlx::query_as(
        "SELECT filter_id, workflow_id, scope, expression, payload, is_declarative, created_at, total \
         FROM hatchet.list_filters(tenant_id => $1, filter_ids => $2, workflow_ids => $3, scopes => $4, \
                                   max_rows => $5, skip_rows => $6)",
    )
    .bind(tenant)
    .bind(ids)
    .bind(workflows)
    .bind(scopes)
    .bind(int_arg(limit))
    .bind(int_arg(offset))
    .fetch_all(pool)
    .await?;
    Ok(page(rows))
}

/// `hatchet.create_workflow_filter`: a filter of a workflow named by its public id; returns the filter id.
pub(crate) async fn create_workflow_filter(
    pool: &PgPool,
    tenant: Uuid,
    workflow_id: Uuid,
    scope: &str,
    expression: &str,
    payload: &Value,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT hatchet.create_workflow_filter(workflow_id => $1, scope => $2, expression => $3, \
         payload => $4, tenant_id => $5)",
    )
    .bind(workflow_id)
    .bind(scope)
    .bind(expression)
    .bind(payload)
    .bind(tenant)
    .fetch_one(pool)
    .await
}

/// `hatchet.update_filter`: changes what is given (`None` keeps it); false if there is no such filter.
pub(crate) async fn update_filter(
    pool: &PgPool,
    tenant: Uuid,
    id: Uuid,
    expression: Option<&str>,
    scope: Option<&str>,
    payload: Option<&Value>,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT hatchet.update_filter(filter_id => $1, expression => $2, scope => $3, payload => $4, \
         tenant_id => $5)",
    )
    .bind(id)
    .bind(expression)
    .bind(scope)
    .bind(payload)
    .bind(tenant)
    .fetch_one(pool)
    .await
}

/// `hatchet.delete_filter`: false if there was none.
pub(crate) async fn delete_filter(
    pool: &PgPool,
    tenant: Uuid,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT hatchet.delete_filter(filter_id => $1, tenant_id => $2)")
        .bind(id)
        .bind(tenant)
        .fetch_one(pool)
        .await
}

/// `hatchet.cel_try`: a CEL expression evaluated over these variables, as the extension evaluates event filters:
/// `{"value": ...}` or `{"error": "..."}`.
pub(crate) async fn cel_try(
    pool: &PgPool,
    expression: &str,
    vars: &Value,
) -> Result<Value, sqlx::Error> {
    sqlx::query_scalar("SELECT hatchet.cel_try($1, $2)")
        .bind(expression)
        .bind(vars)
        .fetch_one(pool)
        .await
}

/// `hatchet.events_by_id`: these events (unknown ids left out), in the order given.
pub(crate) async fn events_by_id(
    pool: &PgPool,
    tenant: Uuid,
    ids: &[Uuid],
) -> Result<Vec<EventRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, key, payload, additional_metadata, scope, created_at, runs \
         FROM hatchet.events_by_id(event_ids => $1, tenant_id => $2)",
    )
    .bind(ids)
    .bind(tenant)
    .fetch_all(pool)
    .await
}
