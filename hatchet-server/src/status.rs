//! The status of a task and of a run, as the extension reports them, with every shape the SDKs see them in.
//!
//! | extension | [`TaskStatus`] | [`RunStatus`] | REST `V1TaskStatus` | gRPC `v1.RunStatus` | REST `WorkflowRunStatus` |
//! |---|---|---|---|---|---|
//! | `PENDING` (waits for parents or conditions) | yes | | QUEUED | QUEUED | |
//! | `QUEUED` | yes | yes | QUEUED | QUEUED | QUEUED |
//! | `RUNNING` | yes | yes | RUNNING | RUNNING | RUNNING |
//! | `COMPLETED` | yes | yes | COMPLETED | COMPLETED | SUCCEEDED |
//! | `SKIPPED` (a false `skip_if`) | yes | | COMPLETED | COMPLETED | |
//! | `FAILED` | yes | yes | FAILED | FAILED | FAILED |
//! | `CANCELLED` | yes | yes | CANCELLED | CANCELLED | CANCELLED |
//!
//! Both decode from the extension's `text` columns (an unknown value is a decode error: the extension's statuses are
//! a closed set) and from JSON. The SDK's result of a task is built here too: a completed task's output (`{}` when
//! it had none), `{"skipped": true}` for a skipped one, the error text for a failed one (a cancelled one has none, as
//! in Hatchet).

use crate::proto::v1::RunStatus as ProtoRunStatus;
use serde::Deserialize;
use serde_json::{json, Value};

/// Where a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub(crate) enum TaskStatus {
    /// Not created yet: waits for its parents or conditions.
    Pending,
    /// Ready, delayed or waiting for a concurrency slot.
    Queued,
    /// An attempt runs on a worker.
    Running,
    /// Finished with an output.
    Completed,
    /// Finished without running (its `skip_if` held).
    Skipped,
    /// Finished with an error, retries exhausted.
    Failed,
    /// Cancelled (by a user, a timeout or a cancel-in-progress concurrency strategy).
    Cancelled,
}

/// Where a run is, aggregated from its tasks by `hatchet.run_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub(crate) enum RunStatus {
    /// No task has started.
    Queued,
    /// Some task started and the run has not finished.
    Running,
    /// Every task completed (or was skipped).
    Completed,
    /// Finished, and some task failed.
    Failed,
    /// Finished, and some task was cancelled (none failed).
    Cancelled,
}

impl TaskStatus {
    /// The extension's name of the status.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "PENDING",
            TaskStatus::Queued => "QUEUED",
            TaskStatus::Running => "RUNNING",
            TaskStatus::Completed => "COMPLETED",
            TaskStatus::Skipped => "SKIPPED",
            TaskStatus::Failed => "FAILED",
            TaskStatus::Cancelled => "CANCELLED",
        }
    }

    /// Whether the task started: it runs or has finished.
    pub(crate) fn has_started(self) -> bool {
        !matches!(self, TaskStatus::Pending | TaskStatus::Queued)
    }

    /// REST `V1TaskStatus`: PENDING counts as QUEUED, SKIPPED as COMPLETED.
    pub(crate) fn rest(self) -> &'static str {
        self.as_run().map_or("QUEUED", RunStatus::rest)
    }

    /// gRPC `v1.RunStatus`: PENDING counts as QUEUED, SKIPPED as COMPLETED.
    pub(crate) fn proto(self) -> ProtoRunStatus {
        self.as_run()
            .map_or(ProtoRunStatus::Queued, RunStatus::proto)
    }

    /// The run status with the same meaning (SKIPPED is COMPLETED); `None` for PENDING.
    fn as_run(self) -> Option<RunStatus> {
        Some(match self {
            TaskStatus::Pending => return None,
            TaskStatus::Queued => RunStatus::Queued,
            TaskStatus::Running => RunStatus::Running,
            TaskStatus::Completed | TaskStatus::Skipped => RunStatus::Completed,
            TaskStatus::Failed => RunStatus::Failed,
            TaskStatus::Cancelled => RunStatus::Cancelled,
        })
    }

    /// Whether the task completed, skipped or not.
    pub(crate) fn is_completed(self) -> bool {
        matches!(self, TaskStatus::Completed | TaskStatus::Skipped)
    }

    /// Whether the task failed or was cancelled.
    pub(crate) fn is_error(self) -> bool {
        matches!(self, TaskStatus::Failed | TaskStatus::Cancelled)
    }

    /// The output the SDK reads for a finished task: the task's output (`{}` if none) once COMPLETED,
    /// `{"skipped": true}` once SKIPPED (as Hatchet reports it); `None` otherwise.
    pub(crate) fn sdk_output(self, output: Option<&Value>) -> Option<Value> {
        match self {
            TaskStatus::Completed => Some(output.cloned().unwrap_or_else(|| json!({}))),
            TaskStatus::Skipped => Some(json!({"skipped": true})),
            _ => None,
        }
    }

    /// The error text of a failed or cancelled task as the run's event stream reports it (the status in lower case
    /// when none was recorded); `None` otherwise.
    pub(crate) fn sdk_error(self, error: Option<&str>) -> Option<String> {
        self.is_error()
            .then(|| error.map_or_else(|| self.as_str().to_lowercase(), str::to_owned))
    }

    /// The error of a task in a run's results (`SubscribeToWorkflowRuns` FINISHED, `GetRunDetails`): only a FAILED
    /// task has one, as in Hatchet, whose engine records no error for a cancelled task (a user's cancel, a
    /// `cancel_if`, a cancelled parent), so the SDK's `aio_result` raises for failures only.
    pub(crate) fn result_error(self, error: Option<&str>) -> Option<String> {
        (self == TaskStatus::Failed).then(|| self.sdk_error(error).unwrap_or_default())
    }
}

impl RunStatus {
    /// The extension's name of the status.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "QUEUED",
            RunStatus::Running => "RUNNING",
            RunStatus::Completed => "COMPLETED",
            RunStatus::Failed => "FAILED",
            RunStatus::Cancelled => "CANCELLED",
        }
    }

    /// Whether the run finished.
    pub(crate) fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
        )
    }

    /// REST `V1TaskStatus` (the run lists show runs as task summaries): the same names.
    pub(crate) fn rest(self) -> &'static str {
        self.as_str()
    }

    /// REST `WorkflowRunStatus`, the older enum of scheduled runs: COMPLETED is SUCCEEDED.
    pub(crate) fn workflow_run_status(self) -> &'static str {
        match self {
            RunStatus::Completed => "SUCCEEDED",
            other => other.as_str(),
        }
    }

    /// gRPC `v1.RunStatus`.
    pub(crate) fn proto(self) -> ProtoRunStatus {
        match self {
            RunStatus::Queued => ProtoRunStatus::Queued,
            RunStatus::Running => ProtoRunStatus::Running,
            RunStatus::Completed => ProtoRunStatus::Completed,
            RunStatus::Failed => ProtoRunStatus::Failed,
            RunStatus::Cancelled => ProtoRunStatus::Cancelled,
        }
    }
}

impl std::str::FromStr for TaskStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "PENDING" => TaskStatus::Pending,
            "QUEUED" => TaskStatus::Queued,
            "RUNNING" => TaskStatus::Running,
            "COMPLETED" => TaskStatus::Completed,
            "SKIPPED" => TaskStatus::Skipped,
            "FAILED" => TaskStatus::Failed,
            "CANCELLED" => TaskStatus::Cancelled,
            other => return Err(format!("unknown task status {other:?}")),
        })
    }
}

impl std::str::FromStr for RunStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "QUEUED" => RunStatus::Queued,
            "RUNNING" => RunStatus::Running,
            "COMPLETED" => RunStatus::Completed,
            "FAILED" => RunStatus::Failed,
            "CANCELLED" => RunStatus::Cancelled,
            other => return Err(format!("unknown run status {other:?}")),
        })
    }
}

/// Decodes a status from a `text` column.
macro_rules! decode_from_text {
    ($status:ty) => {
        impl sqlx::Type<sqlx::Postgres> for $status {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $status {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<'r, sqlx::Postgres>>::decode(value)?;
                Ok(text.parse()?)
            }
        }
    };
}

decode_from_text!(TaskStatus);
decode_from_text!(RunStatus);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(TaskStatus::Pending.rest(), "QUEUED");
        assert_eq!(TaskStatus::Skipped.rest(), "COMPLETED");
        assert_eq!(TaskStatus::Skipped.proto(), ProtoRunStatus::Completed);
        assert_eq!(RunStatus::Completed.workflow_run_status(), "SUCCEEDED");
        assert_eq!(
            TaskStatus::Skipped.sdk_output(None),
            Some(json!({"skipped": true}))
        );
        assert_eq!(TaskStatus::Completed.sdk_output(None), Some(json!({})));
        assert_eq!(TaskStatus::Running.sdk_output(None), None);
        assert_eq!(
            TaskStatus::Cancelled.sdk_error(None).as_deref(),
            Some("cancelled")
        );
        assert_eq!(TaskStatus::Completed.sdk_error(Some("x")), None);
        assert_eq!(TaskStatus::Cancelled.result_error(Some("x")), None);
        assert_eq!(
            TaskStatus::Failed.result_error(None).as_deref(),
            Some("failed")
        );
        assert_eq!("SKIPPED".parse::<TaskStatus>(), Ok(TaskStatus::Skipped));
        assert!("SKIPPED".parse::<RunStatus>().is_err());
        assert_eq!(
            serde_json::from_value::<RunStatus>(json!("CANCELLED")).unwrap(),
            RunStatus::Cancelled
        );
    }
}
