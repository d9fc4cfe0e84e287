//! `/v1.AdminService/*`: workflow registration, run details, task cancellation, REST-less triggering.
//!
//! | RPC | what it does |
//! |---|---|
//! | `PutWorkflow` | the proto as JSON ([`definition`](super::definition)) into `hatchet.register_workflow`; a worker whose registration fails exits, so every definition the extension can store must pass |
//! | `GetRunDetails` | `hatchet.run_status` + `hatchet.run_tasks`: status, `done`, and each created task's output or error (FAILED only) by readable id; NOT_FOUND for an unknown run (the SDK retries that) |
//! | `CancelTasks` | `hatchet.cancel_run` for run ids, `hatchet.cancel` for task ids; a filter selects runs as `runs.list` does (`hatchet.list_runs`, at most 1000) |
//! | `TriggerWorkflowRun` | `hatchet.run_workflow`, mapped like v0 `TriggerWorkflow` ([`super::workflows`]) |
//! | `ReplayTasks` | `hatchet.replay_tasks` over the given run / task ids and the runs a filter selects (as `CancelTasks`): finished tasks get a new attempt |
//! | `BranchDurableTask` | `hatchet.branch_durable_task`: the durable task starts a new branch of its event log at the given node and runs again from there |

use super::definition::workflow_json;
use super::parse_id;
use super::workflows::v1_trigger;
use crate::auth::grpc::tenant_of;
use crate::db::{runs as db, workflows};
use crate::error::AppError;
use crate::proto::to_datetime;
use crate::proto::v1::{self, admin_service_server};
use crate::state::AppState;
use serde_json::Value;
use std::collections::HashMap;
use tonic::{Request, Response, Status};

/// The `v1.AdminService` service.
#[derive(Debug, Clone)]
pub(crate) struct AdminService {
    state: AppState,
}

impl AdminService {
    /// A service over the shared state.
    pub(crate) fn new(state: AppState) -> Self {
        Self { state }
    }

    /// The runs and tasks a `CancelTasks` / `ReplayTasks` request names: its external ids, then the runs its filter
    /// selects (as `runs.list` would, newest first, at most 1000). Neither given is INVALID_ARGUMENT.
    async fn selected(
        &self,
        tenant: uuid::Uuid,
        external_ids: &[String],
        filter: Option<&v1::TasksFilter>,
    ) -> Result<Vec<uuid::Uuid>, Status> {
        let mut ids = external_ids
            .iter()
            .map(|raw| parse_id("external_ids", raw))
            .collect::<Result<Vec<_>, _>>()?;
        let Some(f) = filter else {
            if ids.is_empty() {
                return Err(Status::invalid_argument("give external_ids or a filter"));
            }
            return Ok(ids);
        };
        let since = f
            .since
            .as_ref()
            .and_then(to_datetime)
            .ok_or_else(|| Status::invalid_argument("filter.since is required"))?;
        let workflow_ids = f
            .workflow_ids
            .iter()
            .map(|w| parse_id("filter.workflow_ids", w))
            .collect::<Result<Vec<_>, _>>()?;
        let run_filter = db::RunFilter {
            since: Some(since),
            until: f.until.as_ref().and_then(to_datetime),
            workflow_ids: (!workflow_ids.is_empty()).then_some(workflow_ids),
            metadata: metadata_pairs(&f.additional_metadata)?,
            statuses: (!f.statuses.is_empty()).then(|| f.statuses.clone()),
            limit: 1000,
            ..Default::default()
        };
        let (rows, _) = db::list_runs(&self.state.pool, tenant, &run_filter)
            .await
            .map_err(AppError::from)?;
        ids.extend(rows.iter().map(|r| r.id));
        Ok(ids)
    }
}

#[tonic::async_trait]
impl admin_service_server::AdminService for AdminService {
    async fn put_workflow(
        &self,
        request: Request<v1::CreateWorkflowVersionRequest>,
    ) -> Result<Response<v1::CreateWorkflowVersionResponse>, Status> {
        let tenant = tenant_of(&request)?.0;
        let req = request.into_inner();
        let definition = workflow_json(&req);
        let version = workflows::register_workflow(&self.state.pool, tenant, &definition)
            .await
            .map_err(|err| match AppError::from(err) {
                // A parent that is not a task of the workflow: the definition is wrong, nothing is missing.
                AppError::NotFound(msg) => AppError::InvalidArgument(msg),
                other => other,
            })?;
        let workflow_id = workflows::workflow_ids(&self.state.pool, tenant, &req.name)
            .await
            .map_err(AppError::from)?
            .map(|(w, _)| w.to_string())
            .unwrap_or_default();
        tracing::info!(workflow = %req.name, %version, "workflow registered");
        Ok(Response::new(v1::CreateWorkflowVersionResponse {
            id: version.to_string(),
            workflow_id,
        }))
    }

    async fn cancel_tasks(
        &self,
        request: Request<v1::CancelTasksRequest>,
    ) -> Result<Response<v1::CancelTasksResponse>, Status> {
        let tenant = tenant_of(&request)?.0;
        let req = request.into_inner();
        let ids = self
            .selected(tenant, &req.external_ids, req.filter.as_ref())
            .await?;
        let mut cancelled = Vec::new();
        for id in ids {
            if db::cancel_run_or_task(&self.state.pool, tenant, id)
                .await
                .map_err(AppError::from)?
            {
                cancelled.push(id.to_string());
            }
        }
        self.state.dispatch.wake_runs();
        Ok(Response::new(v1::CancelTasksResponse {
            cancelled_tasks: cancelled,
        }))
    }

    async fn replay_tasks(
        &self,
        request: Request<v1::ReplayTasksRequest>,
    ) -> Result<Response<v1::ReplayTasksResponse>, Status> {
        let tenant = tenant_of(&request)?.0;
        let req = request.into_inner();
        let ids = self
            .selected(tenant, &req.external_ids, req.filter.as_ref())
            .await?;
        let replayed = if ids.is_empty() {
            Vec::new()
        } else {
            db::replay_tasks(&self.state.pool, tenant, &ids)
                .await
                .map_err(AppError::from)?
        };
        self.state.dispatch.wake_assigner();
        Ok(Response::new(v1::ReplayTasksResponse {
            replayed_tasks: replayed.iter().map(ToString::to_string).collect(),
        }))
    }

    async fn trigger_workflow_run(
        &self,
        request: Request<v1::TriggerWorkflowRunRequest>,
    ) -> Result<Response<v1::TriggerWorkflowRunResponse>, Status> {
        let tenant = tenant_of(&request)?.0;
        let trigger = v1_trigger(request.get_ref())?;
        let run = self
            .state
            .dispatch
            .trigger(tenant, &trigger)
            .await
            .map_err(AppError::from)?;
        Ok(Response::new(v1::TriggerWorkflowRunResponse {
            external_id: run.to_string(),
        }))
    }

    async fn get_run_details(
        &self,
        request: Request<v1::GetRunDetailsRequest>,
    ) -> Result<Response<v1::GetRunDetailsResponse>, Status> {
        let tenant = tenant_of(&request)?.0;
        let run = parse_id("external_id", &request.get_ref().external_id)?;
        let status = db::run_status(&self.state.pool, tenant, run)
            .await
            .map_err(AppError::from)?;
        let tasks = db::run_tasks(&self.state.pool, tenant, run)
            .await
            .map_err(AppError::from)?;
        let info = db::run_info(&self.state.pool, tenant, run)
            .await
            .map_err(AppError::from)?;
        let mut task_runs = HashMap::new();
        let is_evicted = tasks.iter().any(|t| t.evicted);
        // Tasks not created yet (waiting for parents or conditions) are left out, as in Hatchet.
        for t in tasks {
            let (Some(task_id), Some(readable_id)) = (t.task_id, t.readable_id.clone()) else {
                continue;
            };
            task_runs.insert(
                readable_id.clone(),
                v1::TaskRunDetail {
                    external_id: task_id.to_string(),
                    status: t.status.proto() as i32,
                    error: t.result_error(),
                    output: t.sdk_output().map(|o| o.to_string().into_bytes()),
                    readable_id,
                    is_evicted: t.evicted,
                },
            );
        }
        let (input, metadata) = info
            .map(|i| (i.input, i.additional_metadata))
            .unwrap_or((Value::Null, Value::Null));
        Ok(Response::new(v1::GetRunDetailsResponse {
            input: if input.is_null() {
                Vec::new()
            } else {
                input.to_string().into_bytes()
            },
            status: status.proto() as i32,
            task_runs,
            done: status.is_terminal(),
            additional_metadata: if metadata.is_null() {
                Vec::new()
            } else {
                metadata.to_string().into_bytes()
            },
            is_evicted,
        }))
    }

    async fn branch_durable_task(
        &self,
        request: Request<v1::BranchDurableTaskRequest>,
    ) -> Result<Response<v1::BranchDurableTaskResponse>, Status> {
        let tenant = tenant_of(&request)?.0;
        let r = request.into_inner();
        let task_id = parse_id("task_external_id", &r.task_external_id)?;
        let branch = crate::db::durable::branch_durable_task(
            &self.state.pool,
            tenant,
            task_id,
            r.node_id,
            r.branch_id,
        )
        .await
        .map_err(AppError::from)?;
        self.state.dispatch.wake_assigner();
        Ok(Response::new(v1::BranchDurableTaskResponse {
            task_external_id: task_id.to_string(),
            node_id: r.node_id,
            branch_id: branch,
        }))
    }
}

/// A filter's `"key:value"` metadata pairs as a JSON object (`None` for none).
fn metadata_pairs(pairs: &[String]) -> Result<Option<Value>, Status> {
    if pairs.is_empty() {
        return Ok(None);
    }
    let mut out = serde_json::Map::new();
    for pair in pairs {
        let (k, v) = pair.split_once(':').ok_or_else(|| {
            Status::invalid_argument(format!(
                "filter.additional_metadata entries must be key:value, not {pair:?}"
            ))
        })?;
        out.insert(k.to_owned(), Value::String(v.to_owned()));
    }
    Ok(Some(Value::Object(out)))
}
