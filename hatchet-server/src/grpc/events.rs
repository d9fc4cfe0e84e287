//! `/EventsService/*`: events and task logs.
//!
//! `Push` / `BulkPush` go to `hatchet.push_events` (one statement for a whole bulk push, so either every event is
//! stored and has triggered what it should, or none); `PutLog` to `hatchet.put_log`; `PutStreamEvent` to
//! `hatchet.put_stream_chunk` (see [`crate::dispatch::streams`]). `ReplaySingleEvent` pushes a stored event
//! (`hatchet.events_by_id`) again as a new event.

use super::{parse_id, parse_json};
use crate::auth::grpc::tenant_of;
use crate::db::{events, tasks};
use crate::dispatch::streams;
use crate::error::AppError;
use crate::proto::{self, events_service_server, timestamp, to_datetime};
use crate::state::AppState;
use serde_json::{json, Value};
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// The `EventsService` service.
#[derive(Debug, Clone)]
pub(crate) struct EventsService {
    state: AppState,
}

impl EventsService {
    /// A service over the shared state.
    pub(crate) fn new(state: AppState) -> Self {
        Self { state }
    }

    async fn push_all(
        &self,
        tenant: Uuid,
        requests: Vec<proto::PushEventRequest>,
    ) -> Result<Vec<proto::Event>, Status> {
        let mut events = Vec::with_capacity(requests.len());
        for (i, r) in requests.iter().enumerate() {
            let payload = parse_json(&format!("events[{i}].payload"), &r.payload)?;
            let metadata = parse_json(
                &format!("events[{i}].additional_metadata"),
                r.additional_metadata.as_deref().unwrap_or(""),
            )?;
            events.push(json!({
                "key": r.key,
                "payload": payload,
                "additional_metadata": metadata,
                "scope": r.scope,
                "priority": r.priority,
            }));
        }
        let ids = events::push_events(&self.state.pool, tenant, &Value::Array(events))
            .await
            .map_err(AppError::from)?;
        self.state.dispatch.wake_assigner();
        let now = chrono::Utc::now();
        Ok(requests
            .into_iter()
            .zip(ids)
            .map(|(r, id)| proto::Event {
                tenant_id: tenant.to_string(),
                event_id: id.to_string(),
                key: r.key,
                payload: r.payload,
                event_timestamp: Some(r.event_timestamp.unwrap_or_else(|| timestamp(now))),
                additional_metadata: r.additional_metadata,
                scope: r.scope,
            })
            .collect())
    }
}

#[tonic::async_trait]
impl events_service_server::EventsService for EventsService {
    async fn push(
        &self,
        request: Request<proto::PushEventRequest>,
    ) -> Result<Response<proto::Event>, Status> {
        let tenant = tenant_of(&request)?.0;
        let mut events = self.push_all(tenant, vec![request.into_inner()]).await?;
        Ok(Response::new(events.remove(0)))
    }

    async fn bulk_push(
        &self,
        request: Request<proto::BulkPushEventRequest>,
    ) -> Result<Response<proto::Events>, Status> {
        let tenant = tenant_of(&request)?.0;
        let events = self.push_all(tenant, request.into_inner().events).await?;
        Ok(Response::new(proto::Events { events }))
    }

    /// Pushes a stored event again, as Hatchet does: a new event with the same key, payload, metadata and scope,
    /// which triggers what it would trigger now. NOT_FOUND for an unknown id.
    async fn replay_single_event(
        &self,
        request: Request<proto::ReplayEventRequest>,
    ) -> Result<Response<proto::Event>, Status> {
        let tenant = tenant_of(&request)?.0;
        let id = parse_id("event_id", &request.get_ref().event_id)?;
        let old = events::events_by_id(&self.state.pool, tenant, &[id])
            .await
            .map_err(AppError::from)?
            .into_iter()
            .next()
            .ok_or_else(|| Status::not_found(format!("event {id} does not exist")))?;
        let again = proto::PushEventRequest {
            key: old.key,
            payload: old.payload.to_string(),
            additional_metadata: Some(old.additional_metadata.to_string()),
            scope: old.scope,
            ..Default::default()
        };
        let mut events = self.push_all(tenant, vec![again]).await?;
        Ok(Response::new(events.remove(0)))
    }

    async fn put_log(
        &self,
        request: Request<proto::PutLogRequest>,
    ) -> Result<Response<proto::PutLogResponse>, Status> {
        let tenant = tenant_of(&request)?.0;
        let r = request.into_inner();
        let task_id = parse_id("task_run_external_id", &r.task_run_external_id)?;
        tasks::put_log(
            &self.state.pool,
            tenant,
            task_id,
            &r.message,
            r.level.as_deref().filter(|l| !l.is_empty()),
            r.task_retry_count,
            r.created_at.as_ref().and_then(to_datetime),
        )
        .await
        .map_err(AppError::from)?;
        self.state.dispatch.changed(Some(tenant));
        Ok(Response::new(proto::PutLogResponse {}))
    }

    async fn put_stream_event(
        &self,
        request: Request<proto::PutStreamEventRequest>,
    ) -> Result<Response<proto::PutStreamEventResponse>, Status> {
        let tenant = tenant_of(&request)?.0;
        let r = request.into_inner();
        let task_id = parse_id("task_run_external_id", &r.task_run_external_id)?;
        if r.event_index.is_some_and(|i| i < 0) {
            return Err(Status::invalid_argument("event_index must not be negative"));
        }
        streams::put_chunk(
            &self.state.dispatch,
            tenant,
            task_id,
            &r.message,
            r.event_index,
            r.created_at.as_ref().and_then(to_datetime),
        )
        .await?;
        self.state.dispatch.changed(Some(tenant));
        Ok(Response::new(proto::PutStreamEventResponse {}))
    }
}
