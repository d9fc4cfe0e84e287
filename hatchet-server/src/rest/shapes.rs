//! The JSON shapes of Hatchet's REST API that the SDKs parse (generated from Hatchet's OpenAPI spec into strict
//! pydantic models on the Python side): field names in camelCase, datetimes in RFC 3339, required fields always
//! present. Only the shapes this server returns are here; optional fields we have no data for are left out rather
//! than invented.

// Field names are the spec's own; documenting each again here would only repeat it.
#![allow(missing_docs)]

use crate::db::crons::StoredRun;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// `APIResourceMeta`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Meta {
    /// The resource's public id.
    pub id: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Meta {
    /// Meta for a resource that is never updated.
    pub(crate) fn new(id: impl ToString, created_at: DateTime<Utc>) -> Self {
        Self {
            id: id.to_string(),
            created_at,
            updated_at: created_at,
        }
    }
}

/// `PaginationResponse` (snake_case in Hatchet's spec).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Pagination {
    /// 1-based page.
    pub current_page: i64,
    /// The next page (the last page points at itself, as in Hatchet).
    pub next_page: i64,
    /// Page count.
    pub num_pages: i64,
}

impl Pagination {
    /// Pagination for `total` rows seen through `offset` / `limit`.
    pub(crate) fn new(offset: i64, limit: i64, total: i64) -> Self {
        let limit = limit.max(1);
        let num_pages = ((total + limit - 1) / limit).max(1);
        let current_page = offset / limit + 1;
        Self {
            current_page,
            next_page: (current_page + 1).min(num_pages),
            num_pages,
        }
    }
}

/// `V1TaskSummary`: a task, or a workflow run shown as one row in run lists.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TaskSummary {
    pub metadata: Meta,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_count: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i32>,
    pub additional_metadata: Value,
    pub created_at: DateTime<Utc>,
    pub display_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    pub input: Value,
    pub num_spawned_children: i64,
    pub output: Value,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    pub task_external_id: String,
    /// Hatchet's internal bigint task id; pg_hatchet has none (tasks are keyed by UUID), so always 0.
    pub task_id: i64,
    pub task_inserted_at: DateTime<Utc>,
    pub tenant_id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub workflow_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_name: Option<String>,
    pub workflow_run_external_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_version_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_task_external_id: Option<String>,
    /// An evicted durable task (it counts as RUNNING; Hatchet's `isEvicted`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub is_evicted: bool,
    /// The tasks of a DAG run in a run list (Hatchet fills it for DAG rows only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub children: Option<Vec<TaskSummary>>,
}

/// `V1TaskSummaryList`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TaskSummaryList {
    pub pagination: Pagination,
    pub rows: Vec<TaskSummary>,
}

/// `V1TaskEvent`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TaskEvent {
    pub id: i64,
    pub task_id: String,
    pub timestamp: DateTime<Utc>,
    pub event_type: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_display_name: Option<String>,
    pub retry_count: i32,
    pub attempt: i32,
}

/// `V1WorkflowRun`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WorkflowRun {
    pub metadata: Meta,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<i64>,
    pub tenant_id: String,
    pub additional_metadata: Value,
    pub display_name: String,
    pub workflow_id: String,
    pub output: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_version_id: Option<String>,
    pub input: Value,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_task_external_id: Option<String>,
}

/// `WorkflowRunShapeItemForWorkflowRunDetails`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ShapeItem {
    pub task_external_id: String,
    pub step_id: String,
    pub children_step_ids: Vec<String>,
    pub task_name: String,
}

/// `V1WorkflowRunDetails`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WorkflowRunDetails {
    pub run: WorkflowRun,
    pub task_events: Vec<TaskEvent>,
    pub shape: Vec<ShapeItem>,
    pub tasks: Vec<TaskSummary>,
}

/// `V1LogLine`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LogLine {
    pub created_at: DateTime<Utc>,
    pub message: String,
    pub metadata: Value,
    pub task_external_id: String,
    pub retry_count: i32,
    pub attempt: i32,
    pub level: String,
}

/// `V1LogLineList`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LogLineList {
    pub pagination: Pagination,
    pub rows: Vec<LogLine>,
}

/// `CronWorkflows`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CronWorkflow {
    pub metadata: Meta,
    pub tenant_id: String,
    pub workflow_version_id: String,
    pub workflow_id: String,
    pub workflow_name: String,
    pub cron: String,
    pub name: String,
    pub input: Value,
    pub additional_metadata: Value,
    pub enabled: bool,
    /// `DEFAULT` (declared with `on_crons`) or `API`.
    pub method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

/// `ScheduledWorkflows`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ScheduledWorkflow {
    pub metadata: Meta,
    pub tenant_id: String,
    pub workflow_version_id: String,
    pub workflow_id: String,
    pub workflow_name: String,
    pub trigger_at: DateTime<Utc>,
    pub input: Value,
    pub additional_metadata: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_run_status: Option<&'static str>,
    pub method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

/// A `{rows, pagination}` list.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct List<T> {
    pub rows: Vec<T>,
    pub pagination: Pagination,
}

impl<T> List<T> {
    /// One page of `total` rows seen through `offset` / `limit`.
    pub(crate) fn page(rows: Vec<T>, offset: i64, limit: i64, total: i64) -> Self {
        Self {
            rows,
            pagination: Pagination::new(offset, limit, total),
        }
    }

    /// One page holding everything.
    pub(crate) fn all(rows: Vec<T>) -> Self {
        let total = i64::try_from(rows.len()).unwrap_or(i64::MAX);
        Self {
            rows,
            pagination: Pagination::new(0, total.max(1), total),
        }
    }
}

/// Our task event types as `V1TaskEventType`.
pub(crate) fn event_type(kind: &str) -> &'static str {
    match kind {
        "ASSIGNED" => "ASSIGNED",
        "TIMEOUT_REFRESHED" => "TIMEOUT_REFRESHED",
        "RETRYING" => "RETRYING",
        "REASSIGNED" => "REASSIGNED",
        "TIMED_OUT" => "TIMED_OUT",
        "COMPLETED" => "FINISHED",
        "FAILED" => "FAILED",
        "CANCELLED" => "CANCELLED",
        "SKIPPED" => "SKIPPED",
        _ => "QUEUED",
    }
}

/// The run fields of the requests that start runs (`runs.create`, `cron.create`, `scheduled.create`), flattened into
/// each request body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RunFields {
    #[serde(default)]
    pub input: Option<Value>,
    #[serde(default)]
    pub additional_metadata: Option<Value>,
    #[serde(default)]
    pub priority: Option<i32>,
}

impl RunFields {
    /// The input and metadata, `{}` when not given.
    pub(crate) fn input_and_metadata(&self) -> (Value, Value) {
        let or_empty = |v: &Option<Value>| v.clone().unwrap_or_else(|| json!({}));
        (or_empty(&self.input), or_empty(&self.additional_metadata))
    }

    /// What a cron or schedule of `workflow` with these fields starts.
    pub(crate) fn stored(&self, workflow: String) -> StoredRun {
        let (input, additional_metadata) = self.input_and_metadata();
        StoredRun {
            workflow,
            input,
            additional_metadata,
            priority: self.priority,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagination() {
        let p = Pagination::new(0, 50, 0);
        assert_eq!((p.current_page, p.next_page, p.num_pages), (1, 1, 1));
        let p = Pagination::new(50, 50, 120);
        assert_eq!((p.current_page, p.next_page, p.num_pages), (2, 3, 3));
        let p = Pagination::new(100, 50, 120);
        assert_eq!((p.current_page, p.next_page, p.num_pages), (3, 3, 3));
    }
}
