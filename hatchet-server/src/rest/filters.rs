//! Event filters (`hatchet.filters.*`): `/api/v1/stable/tenants/{tenant}/filters[/{filter}]`, list / create / get /
//! update / delete, answering Hatchet's `V1Filter` / `V1FilterList` shapes. Workflows are named by their public id
//! (`workflowId`); the SQL lives in `sql/server_api.sql` (`list_filters`, `create_workflow_filter`, `update_filter`)
//! and `sql/events.sql` (`delete_filter`).

use super::query::{parse_uuid, Params};
use super::shapes::{List, Meta, Pagination};
use crate::auth::http::AuthTenant;
use crate::{AppError, AppState};
use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::Row;
use uuid::Uuid;

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/stable/tenants/{tenant}/filters",
            get(list).post(create),
        )
        .route(
            "/v1/stable/tenants/{tenant}/filters/{filter}",
            get(get_one).patch(update).delete(delete),
        )
}

/// `V1Filter`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    metadata: Meta,
    tenant_id: String,
    workflow_id: String,
    scope: String,
    expression: String,
    payload: Value,
    is_declarative: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateRequest {
    workflow_id: String,
    expression: String,
    scope: String,
    #[serde(default)]
    payload: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateRequest {
    #[serde(default)]
    expression: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    payload: Option<Map<String, Value>>,
}

/// One page of filters, with the total count.
async fn find(
    state: &AppState,
    tenant: Uuid,
    ids: Option<&[Uuid]>,
    workflows: Option<&[Uuid]>,
    scopes: Option<&[String]>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Filter>, i64), AppError> {
    let rows = sqlx::query(
        "SELECT filter_id, workflow_id, scope, expression, payload, is_declarative, created_at, total \
         FROM hatchet.list_filters(tenant_id => $1, filter_ids => $2, workflow_ids => $3, scopes => $4, \
                                   max_rows => $5, skip_rows => $6)",
    )
    .bind(tenant)
    .bind(ids)
    .bind(workflows)
    .bind(scopes)
    .bind(i32::try_from(limit).unwrap_or(i32::MAX))
    .bind(i32::try_from(offset).unwrap_or(i32::MAX))
    .fetch_all(&state.pool)
    .await?;
    let mut total = 0;
    let mut filters = Vec::with_capacity(rows.len());
    for r in rows {
        total = r.try_get("total")?;
        let id: Uuid = r.try_get("filter_id")?;
        let created_at: DateTime<Utc> = r.try_get("created_at")?;
        let workflow: Uuid = r.try_get("workflow_id")?;
        filters.push(Filter {
            metadata: Meta::new(id, created_at),
            tenant_id: tenant.to_string(),
            workflow_id: workflow.to_string(),
            scope: r.try_get("scope")?,
            expression: r.try_get("expression")?,
            payload: r.try_get("payload")?,
            is_declarative: r.try_get("is_declarative")?,
        });
    }
    Ok((filters, total))
}

async fn find_one(state: &AppState, tenant: Uuid, filter: &str) -> Result<Filter, AppError> {
    let id = parse_uuid("filter id", filter)?;
    find(state, tenant, Some(&[id]), None, None, 1, 0)
        .await?
        .0
        .pop()
        .ok_or_else(|| AppError::NotFound(format!("filter {id} does not exist")))
}

async fn list(
    State(state): State<AppState>,
    auth: AuthTenant,
    Path(tenant_path): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<List<Filter>>, AppError> {
    auth.check_path(&tenant_path)?;
    let p = Params::parse(raw.as_deref());
    let (offset, limit) = p.page()?;
    let workflows = p.uuids("workflowIds")?;
    let scopes = p.list("scopes");
    let (rows, total) = find(
        &state,
        auth.0 .0,
        None,
        workflows.as_deref(),
        scopes.as_deref(),
        limit,
        offset,
    )
    .await?;
    Ok(Json(List {
        rows,
        pagination: Pagination::new(offset, limit, total),
    }))
}

async fn create(
    State(state): State<AppState>,
    auth: AuthTenant,
    Path(tenant_path): Path<String>,
    body: Result<Json<CreateRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Filter>, AppError> {
    auth.check_path(&tenant_path)?;
    let Json(req) = body.map_err(|e| AppError::InvalidArgument(e.body_text()))?;
    let tenant = auth.0 .0;
    let workflow = parse_uuid("workflowId", &req.workflow_id)?;
    let id: Uuid = sqlx::query_scalar(
        "SELECT hatchet.create_workflow_filter(workflow_id => $1, scope => $2, expression => $3, \
         payload => $4, tenant_id => $5)",
    )
    .bind(workflow)
    .bind(&req.scope)
    .bind(&req.expression)
    .bind(Value::Object(req.payload.unwrap_or_default()))
    .bind(tenant)
    .fetch_one(&state.pool)
    .await?;
    Ok(Json(find_one(&state, tenant, &id.to_string()).await?))
}

async fn get_one(
    State(state): State<AppState>,
    auth: AuthTenant,
    Path((tenant_path, filter)): Path<(String, String)>,
) -> Result<Json<Filter>, AppError> {
    auth.check_path(&tenant_path)?;
    Ok(Json(find_one(&state, auth.0 .0, &filter).await?))
}

async fn update(
    State(state): State<AppState>,
    auth: AuthTenant,
    Path((tenant_path, filter)): Path<(String, String)>,
    body: Result<Json<UpdateRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Filter>, AppError> {
    auth.check_path(&tenant_path)?;
    let Json(req) = body.map_err(|e| AppError::InvalidArgument(e.body_text()))?;
    let tenant = auth.0 .0;
    let id = parse_uuid("filter id", &filter)?;
    let found: bool = sqlx::query_scalar(
        "SELECT hatchet.update_filter(filter_id => $1, expression => $2, scope => $3, payload => $4, \
         tenant_id => $5)",
    )
    .bind(id)
    .bind(req.expression)
    .bind(req.scope)
    .bind(req.payload.map(Value::Object))
    .bind(tenant)
    .fetch_one(&state.pool)
    .await?;
    if !found {
        return Err(AppError::NotFound(format!("filter {id} does not exist")));
    }
    Ok(Json(find_one(&state, tenant, &filter).await?))
}

async fn delete(
    State(state): State<AppState>,
    auth: AuthTenant,
    Path((tenant_path, filter)): Path<(String, String)>,
) -> Result<Json<Filter>, AppError> {
    auth.check_path(&tenant_path)?;
    let tenant = auth.0 .0;
    let existing = find_one(&state, tenant, &filter).await?;
    let id = parse_uuid("filter id", &filter)?;
    let deleted: bool =
        sqlx::query_scalar("SELECT hatchet.delete_filter(filter_id => $1, tenant_id => $2)")
            .bind(id)
            .bind(tenant)
            .fetch_one(&state.pool)
            .await?;
    if !deleted {
        return Err(AppError::NotFound(format!("filter {id} does not exist")));
    }
    Ok(Json(existing))
}
