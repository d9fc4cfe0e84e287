//! `/v1.V1Dispatcher/*`: durable tasks.
//!
//! Nothing is implemented yet. While [`ENGINE_VERSION`](crate::config::ENGINE_VERSION) stays below v0.80.0 the SDK
//! never opens `DurableTask`; it uses the legacy `RegisterDurableEvent` + `ListenForDurableEvent` pair for
//! `aio_sleep_for` / `aio_wait_for`, which need the extension's durable sleeps and event waits.

use super::unimplemented;
use crate::proto::v1::{self, v1_dispatcher_server::V1Dispatcher};
use crate::proto::ResponseStream;
use crate::state::AppState;
use tonic::{Request, Response, Status, Streaming};

/// The `v1.V1Dispatcher` service.
#[derive(Debug, Clone)]
pub(crate) struct V1DispatcherService {
    #[allow(dead_code)] // used once durable tasks land
    state: AppState,
}

impl V1DispatcherService {
    /// A service over the shared state.
    pub(crate) fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl V1Dispatcher for V1DispatcherService {
    type DurableTaskStream = ResponseStream<v1::DurableTaskResponse>;

    async fn durable_task(
        &self,
        _request: Request<Streaming<v1::DurableTaskRequest>>,
    ) -> Result<Response<Self::DurableTaskStream>, Status> {
        Err(unimplemented("v1.V1Dispatcher.DurableTask"))
    }

    async fn register_durable_event(
        &self,
        _request: Request<v1::RegisterDurableEventRequest>,
    ) -> Result<Response<v1::RegisterDurableEventResponse>, Status> {
        Err(unimplemented("v1.V1Dispatcher.RegisterDurableEvent"))
    }

    type ListenForDurableEventStream = ResponseStream<v1::DurableEvent>;

    async fn listen_for_durable_event(
        &self,
        _request: Request<Streaming<v1::ListenForDurableEventRequest>>,
    ) -> Result<Response<Self::ListenForDurableEventStream>, Status> {
        Err(unimplemented("v1.V1Dispatcher.ListenForDurableEvent"))
    }
}
