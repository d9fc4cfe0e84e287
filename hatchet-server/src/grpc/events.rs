//! `/EventsService/*`: events, task logs and stream chunks.
//!
//! Nothing is implemented yet: `Push` / `BulkPush` need `hatchet.push_event`, `PutLog` a task-log table and
//! function, `PutStreamEvent` a stream-chunk path (NOTIFY or a table) for `SubscribeToWorkflowEvents`. The SDK
//! only logs a failed `PutLog`, so UNIMPLEMENTED there does not break workers.

use super::unimplemented;
use crate::proto::{self, events_service_server};
use crate::AppState;
use tonic::{Request, Response, Status};

/// The `EventsService` service.
#[derive(Debug, Clone)]
pub struct EventsService {
    #[allow(dead_code)] // used once events land
    state: AppState,
}

impl EventsService {
    /// A service over the shared state.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl events_service_server::EventsService for EventsService {
    async fn push(
        &self,
        _request: Request<proto::PushEventRequest>,
    ) -> Result<Response<proto::Event>, Status> {
        Err(unimplemented("EventsService.Push"))
    }

    async fn bulk_push(
        &self,
        _request: Request<proto::BulkPushEventRequest>,
    ) -> Result<Response<proto::Events>, Status> {
        Err(unimplemented("EventsService.BulkPush"))
    }

    async fn replay_single_event(
        &self,
        _request: Request<proto::ReplayEventRequest>,
    ) -> Result<Response<proto::Event>, Status> {
        Err(unimplemented("EventsService.ReplaySingleEvent"))
    }

    async fn put_log(
        &self,
        _request: Request<proto::PutLogRequest>,
    ) -> Result<Response<proto::PutLogResponse>, Status> {
        Err(unimplemented("EventsService.PutLog"))
    }

    async fn put_stream_event(
        &self,
        _request: Request<proto::PutStreamEventRequest>,
    ) -> Result<Response<proto::PutStreamEventResponse>, Status> {
        Err(unimplemented("EventsService.PutStreamEvent"))
    }
}
