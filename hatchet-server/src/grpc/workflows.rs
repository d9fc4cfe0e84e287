//! `/WorkflowService/*`: triggering runs, scheduling, rate limits.
//!
//! | RPC | what it does |
//! |---|---|
//! | `TriggerWorkflow` | `hatchet.run_workflow` (child runs carry their parent task, index and key; `desired_worker_id` (sticky children) places the run on that worker); a key of the workflow's idempotency config that another run holds is ALREADY_EXISTS "idempotency key collision" with Hatchet's `IdempotencyCollisionError` detail |
//! | `BulkTriggerWorkflow` | the same for each request, in one transaction ([`crate::db::runs::run_workflows`]): all runs start or none, except those refused for their workflow's idempotency key (ALREADY_EXISTS with Hatchet's `BulkTriggerIdempotencyCollisionError`: the runs that started and the holder of each refused key) |
//! | `ScheduleWorkflow` | `hatchet.schedule` once per requested time |
//! | `PutRateLimit` | `hatchet.put_rate_limit` |
//! | `PauseRateLimit` | `hatchet.pause_rate_limit` (no task takes the key's units until `paused_until`) |
//! | `PutWorkflow` | the legacy v0 registration; current SDKs use `v1.AdminService.PutWorkflow`: not implemented |
//!
//! Every request that starts runs (`TriggerWorkflow`, `BulkTriggerWorkflow`, `ScheduleWorkflow` and v1
//! `TriggerWorkflowRun`) maps its workflow name, input, metadata and priority through one function, `trigger`.

use super::{parse_id, parse_json, unimplemented};
use crate::auth::grpc::tenant_of;
use crate::db::crons::{self, StoredRun};
use crate::db::runs::{Trigger, Triggered};
use crate::db::{flow_control, workflows};
use crate::error::AppError;
use crate::proto::{self, v1, workflow_service_server, RateLimitDuration};
use crate::proto::{timestamp, to_datetime};
use crate::state::AppState;
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// Most runs one `BulkTriggerWorkflow` may start (the SDK sends chunks of at most 1000).
const MAX_BULK: usize = 1000;

/// The `WorkflowService` service.
#[derive(Debug, Clone)]
pub(crate) struct WorkflowService {
    state: AppState,
}

impl WorkflowService {
    /// A service over the shared state.
    pub(crate) fn new(state: AppState) -> Self {
        Self { state }
    }
}

/// What every trigger request carries, as the extension's arguments: the workflow name, the input and metadata as
/// JSON text (empty is `{}`) and the priority (0 or absent: the workflow's default). Both trigger RPCs, v0
/// [`v0_trigger`] and v1 [`v1_trigger`], and `ScheduleWorkflow` go through here.
fn trigger(
    name: &str,
    input: &str,
    additional_metadata: &str,
    priority: Option<i32>,
) -> Result<Trigger, Status> {
    Ok(Trigger {
        name: name.to_owned(),
        input: parse_json("input", input)?,
        additional_metadata: parse_json("additional_metadata", additional_metadata)?,
        priority: priority.filter(|p| *p != 0),
        ..Trigger::default()
    })
}

/// A v0 `TriggerWorkflow` (also each item of `BulkTriggerWorkflow`): a child run carries its parent task, index
/// and key; `desired_worker_id` (sticky children) places the run on that worker.
pub(crate) fn v0_trigger(r: &v1::TriggerWorkflowRequest) -> Result<Trigger, Status> {
    let optional_id = |field: &str, value: Option<&str>| {
        value
            .filter(|s| !s.is_empty())
            .map(|id| parse_id(field, id))
            .transpose()
    };
    let mut t = trigger(
        &r.name,
        &r.input,
        r.additional_metadata.as_deref().unwrap_or(""),
        r.priority,
    )?;
    t.parent_task_id = optional_id(
        "parent_task_run_external_id",
        r.parent_task_run_external_id.as_deref(),
    )?;
    t.desired_worker_id = optional_id("desired_worker_id", r.desired_worker_id.as_deref())?;
    t.desired_worker_labels = trigger_labels(&r.desired_worker_labels);
    t.child_index = t.parent_task_id.and(r.child_index);
    t.child_key = t
        .parent_task_id
        .and(r.child_key.clone())
        .filter(|k| !k.is_empty());
    Ok(t)
}

/// A v1 `TriggerWorkflowRun`: the same fields, with input and metadata as JSON bytes.
pub(crate) fn v1_trigger(r: &v1::TriggerWorkflowRunRequest) -> Result<Trigger, Status> {
    let utf8 = |field: &str, bytes: &[u8]| {
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| Status::invalid_argument(format!("{field} is not UTF-8")))
    };
    let mut t = trigger(
        &r.workflow_name,
        &utf8("input", &r.input)?,
        &utf8("additional_metadata", &r.additional_metadata)?,
        r.priority,
    )?;
    t.desired_worker_labels = trigger_labels(&r.desired_worker_labels);
    Ok(t)
}

/// Worker labels given at trigger time, in the JSON `hatchet.run_workflow` takes (`None` when there are none).
fn trigger_labels(
    labels: &std::collections::HashMap<String, v1::DesiredWorkerLabels>,
) -> Option<serde_json::Value> {
    (!labels.is_empty()).then(|| super::definition::desired_labels_json(labels))
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
        request: Request<proto::ScheduleWorkflowRequest>,
    ) -> Result<Response<proto::WorkflowVersion>, Status> {
        let tenant = tenant_of(&request)?.0;
        let r = request.into_inner();
        // The same fields as a trigger, mapped the same way.
        let t = trigger(
            &r.name,
            &r.input,
            r.additional_metadata.as_deref().unwrap_or(""),
            r.priority,
        )?;
        let run = StoredRun {
            workflow: t.name,
            input: t.input,
            additional_metadata: t.additional_metadata,
            priority: t.priority,
        };
        if r.schedules.is_empty() {
            return Err(Status::invalid_argument(
                "schedules must name at least one time",
            ));
        }
        let mut scheduled = Vec::with_capacity(r.schedules.len());
        for ts in &r.schedules {
            let at = to_datetime(ts).ok_or_else(|| {
                Status::invalid_argument("schedules holds an out-of-range timestamp")
            })?;
            let id = crons::schedule(&self.state.pool, tenant, at, &run)
                .await
                .map_err(AppError::from)?;
            scheduled.push(proto::ScheduledWorkflow {
                id: id.to_string(),
                trigger_at: Some(*ts),
            });
        }
        let (workflow_id, version_id) = workflows::workflow_ids(&self.state.pool, tenant, &r.name)
            .await
            .map_err(AppError::from)?
            .unwrap_or((Uuid::nil(), None));
        let now = timestamp(chrono::Utc::now());
        Ok(Response::new(proto::WorkflowVersion {
            id: version_id.map(|v| v.to_string()).unwrap_or_default(),
            created_at: Some(now),
            updated_at: Some(now),
            version: String::new(),
            order: 0,
            workflow_id: workflow_id.to_string(),
            scheduled_workflows: scheduled,
        }))
    }

    async fn trigger_workflow(
        &self,
        request: Request<v1::TriggerWorkflowRequest>,
    ) -> Result<Response<proto::TriggerWorkflowResponse>, Status> {
        let tenant = tenant_of(&request)?.0;
        let t = v0_trigger(request.get_ref())?;
        let run = self
            .state
            .dispatch
            .trigger(tenant, &t)
            .await
            .map_err(AppError::from)?;
        Ok(Response::new(proto::TriggerWorkflowResponse {
            workflow_run_id: run.to_string(),
        }))
    }

    async fn bulk_trigger_workflow(
        &self,
        request: Request<proto::BulkTriggerWorkflowRequest>,
    ) -> Result<Response<proto::BulkTriggerWorkflowResponse>, Status> {
        let tenant = tenant_of(&request)?.0;
        let r = request.into_inner();
        if r.workflows.len() > MAX_BULK {
            return Err(Status::invalid_argument(format!(
                "at most {MAX_BULK} runs can be triggered at once, not {}",
                r.workflows.len()
            )));
        }
        let triggers = r
            .workflows
            .iter()
            .map(v0_trigger)
            .collect::<Result<Vec<_>, _>>()?;
        let done = self
            .state
            .dispatch
            .trigger_many(tenant, &triggers)
            .await
            .map_err(AppError::from)?;
        let (mut started, mut collisions) = (Vec::new(), Vec::new());
        for d in done {
            match d {
                Triggered::Started(id) => started.push(id),
                Triggered::Collided(holder) => collisions.push(holder),
            }
        }
        if !collisions.is_empty() {
            return Err(AppError::BulkIdempotencyCollision {
                started,
                collisions,
            }
            .into());
        }
        Ok(Response::new(proto::BulkTriggerWorkflowResponse {
            workflow_run_ids: started.iter().map(Uuid::to_string).collect(),
        }))
    }

    async fn put_rate_limit(
        &self,
        request: Request<proto::PutRateLimitRequest>,
    ) -> Result<Response<proto::PutRateLimitResponse>, Status> {
        let tenant = tenant_of(&request)?.0;
        let r = request.into_inner();
        let duration = RateLimitDuration::try_from(r.duration).map_err(|_| {
            Status::invalid_argument(format!("unknown rate limit duration {}", r.duration))
        })?;
        flow_control::put_rate_limit(
            &self.state.pool,
            tenant,
            &r.key,
            r.limit,
            duration.as_str_name(),
        )
        .await
        .map_err(AppError::from)?;
        self.state.dispatch.wake_assigner();
        Ok(Response::new(proto::PutRateLimitResponse {}))
    }

    async fn pause_rate_limit(
        &self,
        request: Request<proto::PauseRateLimitRequest>,
    ) -> Result<Response<proto::PauseRateLimitResponse>, Status> {
        let tenant = tenant_of(&request)?.0;
        let r = request.into_inner();
        if r.key.is_empty() {
            return Err(Status::invalid_argument("key must not be empty"));
        }
        let until = match &r.paused_until {
            Some(ts) => Some(to_datetime(ts).ok_or_else(|| {
                Status::invalid_argument("paused_until is an out-of-range timestamp")
            })?),
            None => None,
        };
        let paused = flow_control::pause_rate_limit(&self.state.pool, tenant, &r.key, until)
            .await
            .map_err(AppError::from)?;
        // An unpause lets parked tasks run at once.
        self.state.dispatch.wake_assigner();
        Ok(Response::new(proto::PauseRateLimitResponse {
            paused_until: Some(timestamp(paused.unwrap_or_else(chrono::Utc::now))),
        }))
    }
}
