//! `/v1.AdminService/*`: workflow registration, run details, task cancel / replay.
//!
//! Nothing is implemented yet. `PutWorkflow` needs `hatchet.register_workflow` (the SDK exits if it fails, so it
//! must accept every definition it can store), `GetRunDetails` a run-status function keyed by run external id
//! (answer NOT_FOUND for unknown ids: the SDK retries that here), `CancelTasks` / `ReplayTasks`
//! `hatchet.cancel` / a replay function, `TriggerWorkflowRun` `hatchet.run_workflow`.

use super::unimplemented;
use crate::proto::v1::{self, admin_service_server};
use crate::AppState;
use tonic::{Request, Response, Status};

/// The `v1.AdminService` service.
#[derive(Debug, Clone)]
pub struct AdminService {
    #[allow(dead_code)] // used once workflow registration lands
    state: AppState,
}

impl AdminService {
    /// A service over the shared state.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl admin_service_server::AdminService for AdminService {
    async fn put_workflow(
        &self,
        _request: Request<v1::CreateWorkflowVersionRequest>,
    ) -> Result<Response<v1::CreateWorkflowVersionResponse>, Status> {
        Err(unimplemented("v1.AdminService.PutWorkflow"))
    }

    async fn cancel_tasks(
        &self,
        _request: Request<v1::CancelTasksRequest>,
    ) -> Result<Response<v1::CancelTasksResponse>, Status> {
        Err(unimplemented("v1.AdminService.CancelTasks"))
    }

    async fn replay_tasks(
        &self,
        _request: Request<v1::ReplayTasksRequest>,
    ) -> Result<Response<v1::ReplayTasksResponse>, Status> {
        Err(unimplemented("v1.AdminService.ReplayTasks"))
    }

    async fn trigger_workflow_run(
        &self,
        _request: Request<v1::TriggerWorkflowRunRequest>,
    ) -> Result<Response<v1::TriggerWorkflowRunResponse>, Status> {
        Err(unimplemented("v1.AdminService.TriggerWorkflowRun"))
    }

    async fn get_run_details(
        &self,
        _request: Request<v1::GetRunDetailsRequest>,
    ) -> Result<Response<v1::GetRunDetailsResponse>, Status> {
        Err(unimplemented("v1.AdminService.GetRunDetails"))
    }

    async fn branch_durable_task(
        &self,
        _request: Request<v1::BranchDurableTaskRequest>,
    ) -> Result<Response<v1::BranchDurableTaskResponse>, Status> {
        Err(unimplemented("v1.AdminService.BranchDurableTask"))
    }
}
