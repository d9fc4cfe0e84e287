//! `/WorkflowService/*`: triggering runs, scheduling, rate limits.
//!
//! Nothing is implemented yet: `TriggerWorkflow` / `BulkTriggerWorkflow` need `hatchet.run_workflow` (runs of
//! registered workflows, with parent / child keys), `ScheduleWorkflow` needs `hatchet.schedule`, and the rate-limit
//! calls need `hatchet.put_rate_limit`. Each answers UNIMPLEMENTED until its SQL function exists.
//! `PutWorkflow` is the legacy v0 registration; current SDKs use `v1.AdminService.PutWorkflow`.

use super::unimplemented;
use crate::proto::{self, workflow_service_server};
use crate::AppState;
use tonic::{Request, Response, Status};

/// The `WorkflowService` service.
#[derive(Debug, Clone)]
pub struct WorkflowService {
    #[allow(dead_code)] // used once triggering lands
    state: AppState,
}

impl WorkflowService {
    /// A service over the shared state.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl workflow_service_server::WorkflowService for WorkflowService {
    async fn put_workflow(
        &self,
        _request: Request<proto::PutWorkflowRequest>,
    ) -> Result<Response<proto::WorkflowVersion>, Status> {
        Err(unimplemented("WorkflowService.PutWorkflow"))
    }

    async fn schedule_workflow(
        &self,
        _request: Request<proto::ScheduleWorkflowRequest>,
    ) -> Result<Response<proto::WorkflowVersion>, Status> {
        Err(unimplemented("WorkflowService.ScheduleWorkflow"))
    }

    async fn trigger_workflow(
        &self,
        _request: Request<proto::v1::TriggerWorkflowRequest>,
    ) -> Result<Response<proto::TriggerWorkflowResponse>, Status> {
        Err(unimplemented("WorkflowService.TriggerWorkflow"))
    }

    async fn bulk_trigger_workflow(
        &self,
        _request: Request<proto::BulkTriggerWorkflowRequest>,
    ) -> Result<Response<proto::BulkTriggerWorkflowResponse>, Status> {
        Err(unimplemented("WorkflowService.BulkTriggerWorkflow"))
    }

    async fn put_rate_limit(
        &self,
        _request: Request<proto::PutRateLimitRequest>,
    ) -> Result<Response<proto::PutRateLimitResponse>, Status> {
        Err(unimplemented("WorkflowService.PutRateLimit"))
    }

    async fn pause_rate_limit(
        &self,
        _request: Request<proto::PauseRateLimitRequest>,
    ) -> Result<Response<proto::PauseRateLimitResponse>, Status> {
        Err(unimplemented("WorkflowService.PauseRateLimit"))
    }
}
