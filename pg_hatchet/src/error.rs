//! One error type for every failure pg_hatchet reports to a caller.
//!
//! Each variant carries a SQLSTATE chosen so that clients can branch on the code instead of parsing messages (a plain
//! `Err` from a `#[pg_extern]` would surface as 22000 for everything). The PL/pgSQL API functions raise through
//! [`raise_error`] so that messages and codes come from this one place too.

use hatchet_core::cron::CronError;
use hatchet_core::duration::DurationError;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

/// Everything that can go wrong in a pg_hatchet call, with a Postgres-style message (lower case, no trailing period,
/// names in quotes).
#[derive(Debug, thiserror::Error, PartialEq)]
pub(crate) enum HatchetError {
    /// A required argument was NULL.
    #[error("{0} must not be null")]
    NullArgument(String),
    /// An argument has a value outside what the function accepts.
    #[error("{0}")]
    InvalidArgument(String),
    /// A duration string that is not in Hatchet's format (`"30s"`, `"5m"`, `"1h30m"`).
    #[error("invalid duration \"{0}\"")]
    InvalidDuration(String, &'static str),
    /// A payload above `hatchet.max_payload_bytes`.
    #[error("{what} is {size} bytes, over the limit of {limit} bytes")]
    PayloadTooLarge { what: String, size: i64, limit: i64 },
    /// A size or count limit other than the payload size (a CEL budget, a per-task quota of logs or stream chunks).
    #[error("{0}")]
    LimitExceeded(String),
    /// No task with this id exists for the tenant.
    #[error("task \"{0}\" does not exist")]
    UnknownTask(String),
    /// A named object (queue, workflow, worker, ...) does not exist.
    #[error("{kind} \"{name}\" does not exist")]
    UnknownObject { kind: String, name: String },
    /// The attempt named by (task id, retry_count) is no longer the one that may report a result.
    #[error("attempt {attempt} of task \"{task}\" is not running")]
    StaleAttempt {
        task: String,
        attempt: String,
        why: String,
    },
    /// A workflow definition that cannot be registered (duplicate task, cycle, bad condition, ...).
    #[error("invalid workflow \"{workflow}\": {why}")]
    InvalidWorkflow { workflow: String, why: String },
    /// A workflow task names a parent (or a condition names a task) that the workflow does not declare.
    #[error("workflow \"{workflow}\" has no task \"{task}\"")]
    UnknownWorkflowTask {
        workflow: String,
        task: String,
        detail: String,
    },
    /// A cron expression that does not parse (5 fields, or 6 with seconds first; UTC).
    #[error("invalid cron expression \"{0}\"")]
    InvalidCron(String, String),
    /// An object with this name already exists (a cron name within its workflow, ...).
    #[error("{kind} \"{name}\" already exists")]
    DuplicateObject { kind: String, name: String },
    /// A trigger of a workflow with an idempotency config whose key another run holds. The detail is the id of
    /// that run alone, so a client can report it (Hatchet's `IdempotencyCollisionError.existing_run_external_id`).
    #[error("idempotency key \"{key}\" is held by run \"{run}\"")]
    IdempotencyCollision { key: String, run: String },
    /// The calling role is not bound to the tenant it names (`hatchet.grant_tenant`, docs/security.md).
    #[error("role \"{role}\" may not act for tenant \"{tenant}\"")]
    TenantNotGranted { role: String, tenant: String },
    /// The calling role names no tenant and is bound to none, or to several.
    #[error("{}", if *count == 0 {
        format!("role \"{role}\" is not bound to any tenant")
    } else {
        format!("role \"{role}\" is bound to {count} tenants and the call names none")
    })]
    NoTenant { role: String, count: usize },
}

impl From<DurationError> for HatchetError {
    fn from(e: DurationError) -> Self {
        HatchetError::InvalidDuration(e.input().to_string(), e.reason())
    }
}

impl From<CronError> for HatchetError {
    fn from(e: CronError) -> Self {
        HatchetError::InvalidCron(e.expression().to_string(), e.reason().to_string())
    }
}

impl HatchetError {
    /// The SQLSTATE this error is reported with.
    pub(crate) fn sqlstate(&self) -> PgSqlErrorCode {
        use PgSqlErrorCode::*;
        match self {
            HatchetError::NullArgument(_) => ERRCODE_NULL_VALUE_NOT_ALLOWED,
            HatchetError::InvalidArgument(_) | HatchetError::InvalidDuration(..) => {
                ERRCODE_INVALID_PARAMETER_VALUE
            }
            HatchetError::PayloadTooLarge { .. } | HatchetError::LimitExceeded(_) => {
                ERRCODE_PROGRAM_LIMIT_EXCEEDED
            }
            HatchetError::UnknownTask(_) | HatchetError::UnknownObject { .. } => {
                ERRCODE_UNDEFINED_OBJECT
            }
            HatchetError::StaleAttempt { .. } => ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            HatchetError::InvalidWorkflow { .. } | HatchetError::InvalidCron(..) => {
                ERRCODE_INVALID_PARAMETER_VALUE
            }
            HatchetError::UnknownWorkflowTask { .. } => ERRCODE_UNDEFINED_OBJECT,
            HatchetError::DuplicateObject { .. } => ERRCODE_DUPLICATE_OBJECT,
            HatchetError::IdempotencyCollision { .. } => ERRCODE_UNIQUE_VIOLATION,
            HatchetError::TenantNotGranted { .. } | HatchetError::NoTenant { .. } => {
                ERRCODE_INSUFFICIENT_PRIVILEGE
            }
        }
    }

    fn detail(&self) -> Option<String> {
        match self {
            HatchetError::StaleAttempt { why, .. } => Some(why.clone()),
            HatchetError::InvalidDuration(_, why) => Some((*why).to_string()),
            HatchetError::UnknownWorkflowTask { detail, .. } if !detail.is_empty() => {
                Some(detail.clone())
            }
            HatchetError::InvalidCron(_, why) => Some(why.clone()),
            HatchetError::IdempotencyCollision { run, .. } => Some(run.clone()),
            _ => None,
        }
    }

    fn hint(&self) -> Option<&'static str> {
        match self {
            HatchetError::InvalidDuration(..) => Some(hatchet_core::duration::SYNTAX_HINT),
            HatchetError::PayloadTooLarge { .. } => Some("Raise hatchet.max_payload_bytes or store large data elsewhere."),
            HatchetError::StaleAttempt { .. } => {
                Some("Only the current attempt of a running task can report a result; this one was superseded.")
            }
            HatchetError::InvalidCron(..) => Some(hatchet_core::cron::SYNTAX_HINT),
            HatchetError::TenantNotGranted { .. } | HatchetError::NoTenant { count: 0, .. } => {
                Some("An administrator binds a role to a tenant with hatchet.grant_tenant(role, tenant).")
            }
            HatchetError::NoTenant { .. } => Some("Pass tenant_id => the tenant the call is for."),
            _ => None,
        }
    }

    /// Turn the error into the report Postgres raises.
    pub(crate) fn into_report(self) -> ErrorReport {
        let mut report = ErrorReport::new(self.sqlstate(), self.to_string(), "pg_hatchet");
        if let Some(detail) = self.detail() {
            report = report.set_detail(detail);
        }
        if let Some(hint) = self.hint() {
            report = report.set_hint(hint);
        }
        report
    }

    /// Raise the error as a Postgres ERROR. Never returns.
    pub(crate) fn raise(self) -> ! {
        self.into_report().report(PgLogLevel::ERROR);
        unreachable!("ERROR level reports do not return")
    }
}

/// Raise one of pg_hatchet's errors from PL/pgSQL, so every message and SQLSTATE comes from [`HatchetError`].
///
/// `kind` names the variant; `args` are its fields in order. An unknown kind is itself an internal error.
#[pg_extern(volatile, parallel_unsafe)]
pub(crate) fn raise_error(kind: &str, args: default!(Vec<Option<String>>, "'{}'")) {
    // The arguments in order; a missing or NULL one is an empty string.
    let mut args = args.into_iter().map(Option::unwrap_or_default);
    let mut next = || args.next().unwrap_or_default();
    // `fields!(Name: a, b)` is `HatchetError::Name { a: next(), b: next() }`: the fields take the arguments in order.
    macro_rules! fields {
        ($variant:ident: $($field:ident),+) => {
            HatchetError::$variant { $($field: next()),+ }
        };
    }
    let err = match kind {
        "null_argument" => HatchetError::NullArgument(next()),
        "invalid_argument" => HatchetError::InvalidArgument(next()),
        "payload_too_large" => HatchetError::PayloadTooLarge {
            what: next(),
            size: next().parse().unwrap_or(-1),
            limit: next().parse().unwrap_or(-1),
        },
        "limit_exceeded" => HatchetError::LimitExceeded(next()),
        "unknown_task" => HatchetError::UnknownTask(next()),
        "unknown_object" => fields!(UnknownObject: kind, name),
        "stale_attempt" => fields!(StaleAttempt: task, attempt, why),
        "invalid_workflow" => fields!(InvalidWorkflow: workflow, why),
        "unknown_workflow_task" => fields!(UnknownWorkflowTask: workflow, task, detail),
        "invalid_cron" => HatchetError::InvalidCron(next(), next()),
        "duplicate_object" => fields!(DuplicateObject: kind, name),
        "idempotency_collision" => fields!(IdempotencyCollision: key, run),
        other => {
            ErrorReport::new(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!("unknown error kind \"{other}\""),
                "pg_hatchet",
            )
            .report(PgLogLevel::ERROR);
            unreachable!()
        }
    };
    err.raise()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_follow_postgres_style() {
        let e = HatchetError::UnknownTask("0190".into());
        assert_eq!(e.to_string(), "task \"0190\" does not exist");
        assert_eq!(e.sqlstate(), PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT);
        let e = HatchetError::StaleAttempt {
            task: "t".into(),
            attempt: "2".into(),
            why: "x".into(),
        };
        assert_eq!(e.to_string(), "attempt 2 of task \"t\" is not running");
        assert_eq!(
            e.sqlstate(),
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE
        );
        assert_eq!(
            HatchetError::NullArgument("queue".into()).sqlstate(),
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED
        );
    }

    #[test]
    fn tenant_binding_errors_are_42501_with_a_hint() {
        let e = HatchetError::TenantNotGranted {
            role: "shop_app".into(),
            tenant: "0190".into(),
        };
        assert_eq!(
            e.to_string(),
            "role \"shop_app\" may not act for tenant \"0190\""
        );
        assert_eq!(e.sqlstate(), PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE);
        assert!(e.hint().unwrap().contains("hatchet.grant_tenant"));
        let none = HatchetError::NoTenant {
            role: "shop_app".into(),
            count: 0,
        };
        assert_eq!(
            none.to_string(),
            "role \"shop_app\" is not bound to any tenant"
        );
        assert!(none.hint().unwrap().contains("hatchet.grant_tenant"));
        let two = HatchetError::NoTenant {
            role: "shop_app".into(),
            count: 2,
        };
        assert_eq!(
            two.to_string(),
            "role \"shop_app\" is bound to 2 tenants and the call names none"
        );
        assert_eq!(
            two.sqlstate(),
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE
        );
        assert!(two.hint().unwrap().contains("tenant_id"));
    }

    #[test]
    fn core_errors_keep_message_detail_and_hint() {
        let e = HatchetError::from(hatchet_core::duration::parse_micros("10").unwrap_err());
        assert_eq!(e.to_string(), "invalid duration \"10\"");
        assert_eq!(e.detail().as_deref(), Some("A number has no unit."));
        assert_eq!(e.hint(), Some(hatchet_core::duration::SYNTAX_HINT));
        assert_eq!(
            e.sqlstate(),
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE
        );
        let e = HatchetError::from(hatchet_core::cron::parse("* * *").unwrap_err());
        assert_eq!(e.to_string(), "invalid cron expression \"* * *\"");
        assert_eq!(
            e.detail().as_deref(),
            Some("Expected 5 fields, or 6 with seconds first, but found 3.")
        );
        assert_eq!(e.hint(), Some(hatchet_core::cron::SYNTAX_HINT));
    }
}
