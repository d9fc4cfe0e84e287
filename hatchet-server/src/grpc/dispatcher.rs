//! `/Dispatcher/*`: the worker lifecycle.
//!
//! Implemented: `GetVersion`. Everything else waits for the extension's worker registry, assignment and
//! attempt-lifecycle functions (`hatchet.register_worker`, `hatchet.assign`, batched complete / fail) and answers
//! UNIMPLEMENTED until then. When they land, this module owns: one ListenV2 stream per worker fed by
//! NOTIFY-driven `hatchet.assign` calls, idempotent STARTED, batched COMPLETED/FAILED, heartbeats, and the
//! multiplexed `SubscribeToWorkflowRuns` stream (one FINISHED event per run, immediately if already terminal).

use super::{unimplemented, ResponseStream};
use crate::config::ENGINE_VERSION;
use crate::proto::{self, dispatcher_server::Dispatcher};
use crate::AppState;
use tonic::{Request, Response, Status, Streaming};

/// The `Dispatcher` service.
#[derive(Debug, Clone)]
pub struct DispatcherService {
    #[allow(dead_code)] // used by the handlers that land with the worker registry
    state: AppState,
}

impl DispatcherService {
    /// A service over the shared state.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl Dispatcher for DispatcherService {
    async fn register(
        &self,
        _request: Request<proto::WorkerRegisterRequest>,
    ) -> Result<Response<proto::WorkerRegisterResponse>, Status> {
        Err(unimplemented("Dispatcher.Register"))
    }

    type ListenStream = ResponseStream<proto::AssignedAction>;

    async fn listen(
        &self,
        _request: Request<proto::WorkerListenRequest>,
    ) -> Result<Response<Self::ListenStream>, Status> {
        Err(unimplemented("Dispatcher.Listen"))
    }

    type ListenV2Stream = ResponseStream<proto::AssignedAction>;

    async fn listen_v2(
        &self,
        _request: Request<proto::WorkerListenRequest>,
    ) -> Result<Response<Self::ListenV2Stream>, Status> {
        Err(unimplemented("Dispatcher.ListenV2"))
    }

    async fn heartbeat(
        &self,
        _request: Request<proto::HeartbeatRequest>,
    ) -> Result<Response<proto::HeartbeatResponse>, Status> {
        Err(unimplemented("Dispatcher.Heartbeat"))
    }

    type SubscribeToWorkflowEventsStream = ResponseStream<proto::WorkflowEvent>;

    async fn subscribe_to_workflow_events(
        &self,
        _request: Request<proto::SubscribeToWorkflowEventsRequest>,
    ) -> Result<Response<Self::SubscribeToWorkflowEventsStream>, Status> {
        Err(unimplemented("Dispatcher.SubscribeToWorkflowEvents"))
    }

    type SubscribeToWorkflowRunsStream = ResponseStream<proto::WorkflowRunEvent>;

    async fn subscribe_to_workflow_runs(
        &self,
        _request: Request<Streaming<proto::SubscribeToWorkflowRunsRequest>>,
    ) -> Result<Response<Self::SubscribeToWorkflowRunsStream>, Status> {
        Err(unimplemented("Dispatcher.SubscribeToWorkflowRuns"))
    }

    async fn send_step_action_event(
        &self,
        _request: Request<proto::StepActionEvent>,
    ) -> Result<Response<proto::ActionEventResponse>, Status> {
        Err(unimplemented("Dispatcher.SendStepActionEvent"))
    }

    async fn send_batch_action_event(
        &self,
        _request: Request<proto::BatchActionEvent>,
    ) -> Result<Response<proto::ActionEventResponse>, Status> {
        Err(unimplemented("Dispatcher.SendBatchActionEvent"))
    }

    async fn send_group_key_action_event(
        &self,
        _request: Request<proto::GroupKeyActionEvent>,
    ) -> Result<Response<proto::ActionEventResponse>, Status> {
        Err(unimplemented("Dispatcher.SendGroupKeyActionEvent"))
    }

    async fn put_overrides_data(
        &self,
        _request: Request<proto::OverridesData>,
    ) -> Result<Response<proto::OverridesDataResponse>, Status> {
        Err(unimplemented("Dispatcher.PutOverridesData"))
    }

    async fn unsubscribe(
        &self,
        _request: Request<proto::WorkerUnsubscribeRequest>,
    ) -> Result<Response<proto::WorkerUnsubscribeResponse>, Status> {
        Err(unimplemented("Dispatcher.Unsubscribe"))
    }

    async fn refresh_timeout(
        &self,
        _request: Request<proto::RefreshTimeoutRequest>,
    ) -> Result<Response<proto::RefreshTimeoutResponse>, Status> {
        Err(unimplemented("Dispatcher.RefreshTimeout"))
    }

    async fn release_slot(
        &self,
        _request: Request<proto::ReleaseSlotRequest>,
    ) -> Result<Response<proto::ReleaseSlotResponse>, Status> {
        Err(unimplemented("Dispatcher.ReleaseSlot"))
    }

    async fn restore_evicted_task(
        &self,
        _request: Request<proto::RestoreEvictedTaskRequest>,
    ) -> Result<Response<proto::RestoreEvictedTaskResponse>, Status> {
        Err(unimplemented("Dispatcher.RestoreEvictedTask"))
    }

    async fn upsert_worker_labels(
        &self,
        _request: Request<proto::UpsertWorkerLabelsRequest>,
    ) -> Result<Response<proto::UpsertWorkerLabelsResponse>, Status> {
        Err(unimplemented("Dispatcher.UpsertWorkerLabels"))
    }

    /// The SDK reads this right after registering its workflows and picks its code paths from it
    /// (see [`ENGINE_VERSION`]).
    async fn get_version(
        &self,
        _request: Request<proto::GetVersionRequest>,
    ) -> Result<Response<proto::GetVersionResponse>, Status> {
        Ok(Response::new(proto::GetVersionResponse {
            version: ENGINE_VERSION.to_owned(),
        }))
    }
}
