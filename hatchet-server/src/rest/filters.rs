//! Event filters (`hatchet.filters.*`): `/api/v1/stable/tenants/{tenant}/filters[/{filter}]`, list / create / get /
//! update / delete, answering Hatchet's `V1Filter` / `V1FilterList` shapes. Workflows are named by their public id
//! (`workflowId`); the extension functions are in [`crate::db::events`] (`list_filters`, `create_workflow_filter`,
//! `update_filter`, `delete_filter`).

use super::query::{parse_uuid, Body};
use super::resource::{self, Resource, Selection};
use super::shapes::Meta;
use crate::auth::http::AuthTenant;
use crate::db::events as db;
use crate::error::AppError;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// The routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/stable/tenants/{tenant}/filters",
            get(resource::list::<Filter>).post(create),
        )
        .route(
            "/v1/stable/tenants/{tenant}/filters/{filter}",
            get(resource::get_one::<Filter>)
                .patch(update)
                .delete(resource::delete::<Filter>),
        )
}

/// `V1Filter`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Filter {
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

impl Resource for Filter {
    type Key = Uuid;
    type Row = db::FilterRow;

    fn parse_key(raw: &str) -> Result<Uuid, AppError> {
        parse_uuid("filter id", raw)
    }

    fn not_found(id: &Uuid) -> AppError {
        AppError::NotFound(format!("filter {id} does not exist"))
    }

    fn from_row(tenant: Uuid, r: db::FilterRow) -> Self {
        Filter {
            metadata: Meta::new(r.filter_id, r.created_at),
            tenant_id: tenant.to_string(),
            workflow_id: r.workflow_id.to_string(),
            scope: r.scope,
            expression: r.expression,
            payload: r.payload,
            is_declarative: r.is_declarative,
        }
    }

    /// By id, or by `workflowIds` and `scopes`.
    async fn find(
        state: &AppState,
        tenant: Uuid,
        selection: Selection<'_, Uuid>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<db::FilterRow>, i64), AppError> {
        let (ids, workflows, scopes) = match selection {
            Selection::Key(id) => (Some(vec![*id]), None, None),
            Selection::Query(p) => (None, p.uuids("workflowIds")?, p.list("scopes")),
        };
        let found = db::list_filters(
            &state.pool,
            tenant,
            ids.as_deref(),
            workflows.as_deref(),
            scopes.as_deref(),
            limit,
            offset,
        );
        Ok(found.await?)
    }

    async fn delete(state: &AppState, tenant: Uuid, id: &Uuid) -> Result<bool, AppError> {
        Ok(db::delete_filter(&state.pool, tenant, *id).await?)
    }
}

async fn create(
    State(state): State<AppState>,
    auth: AuthTenant,
    Path(tenant_path): Path<String>,
    Body(req): Body<CreateRequest>,
) -> Result<Json<Filter>, AppError> {
    auth.check_path(&tenant_path)?;
    let tenant = auth.0 .0;
    let workflow = parse_uuid("workflowId", &req.workflow_id)?;
    let id = db::create_workflow_filter(
        &state.pool,
        tenant,
        workflow,
        &req.scope,
        &req.expression,
        &Value::Object(req.payload.unwrap_or_default()),
    )
    .await?;
    Ok(Json(resource::find(&state, tenant, &id).await?))
}

async fn update(
    State(state): State<AppState>,
    auth: AuthTenant,
    Path((tenant_path, filter)): Path<(String, String)>,
    Body(req): Body<UpdateRequest>,
) -> Result<Json<Filter>, AppError> {
    auth.check_path(&tenant_path)?;
    let tenant = auth.0 .0;
    let id = Filter::parse_key(&filter)?;
    let found = db::update_filter(
        &state.pool,
        tenant,
        id,
        req.expression.as_deref(),
        req.scope.as_deref(),
        req.payload.map(Value::Object).as_ref(),
    )
    .await?;
    resource::updated(&state, tenant, &id, found).await
}
