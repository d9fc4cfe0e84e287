//! `/v1.AdminService/*`: workflow registration, run details, task cancellation, REST-less triggering.
//!
//! | RPC | what it does |
//! |---|---|
//! | `PutWorkflow` | the proto as JSON ([`definition`](super::definition)) into `hatchet.register_workflow`; a worker whose registration fails exits, so every definition the extension can store must pass |
//! | `GetRunDetails` | `hatchet.run_status` + `hatchet.run_tasks`: status, `done`, and each created task's output or error (FAILED only) by readable id; NOT_FOUND for an unknown run (the SDK retries that) |
//! | `CancelTasks` | `hatchet.cancel_run` for run ids, `hatchet.cancel` for task ids |
//! | `TriggerWorkflowRun` | `hatchet.run_workflow`, mapped like v0 `TriggerWorkflow` ([`super::workflows`]) |
//! | `ReplayTasks` | not implemented over gRPC; replay is served over REST (`POST .../tasks/replay`, `hatchet.replay_tasks`, see [`crate::rest::tasks`]) |
//! | `BranchDurableTask` | not implemented (the extension keeps no durable event log) |

use super::definition::workflow_json;
use super::workflows::v1_trigger;
use super::{parse_id, unimplemented};
use crate::auth::grpc::tenant_of;
use crate::db::{runs as db, workflows};
use crate::error::AppError;
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
        if req.filter.is_some() {
            return Err(unimplemented("v1.AdminService.CancelTasks with a filter"));
        }
        let mut cancelled = Vec::new();
        for raw in &req.external_ids {
            let id = parse_id("external_ids", raw)?;
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
        _request: Request<v1::ReplayTasksRequest>,
    ) -> Result<Response<v1::ReplayTasksResponse>, Status> {
        Err(unimplemented("v1.AdminService.ReplayTasks"))
    }

    async fn trigger_workflow_run(
        &self,
        request: Request<v1::TriggerWorkflowRunRequest>,
    ) -> Result<Response<v1::TriggerWorkflowRunResponse>, Status> {
        let tenant = tenant_of(&request)?.0;
        let trigger = v1_trigger(request.get_ref())?;
        let run = db::run_workflow(&self.state.pool, tenant, &trigger)
            .await
            .map_err(AppError::from)?;
        self.state.dispatch.wake_assigner();
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
                    is_evicted: false,
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
            is_evicted: false,
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
