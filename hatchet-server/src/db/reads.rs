//! STOPGAP READ-ONLY QUERIES against the extension's tables, for what its SQL API has no function for yet.
//!
//! Every statement here is a plain `SELECT` on `hatchet.*` tables: it never writes, so it cannot break an
//! invariant the extension keeps. Each names the function that should replace it (see the report in issue 5);
//! when that function lands, the query here is deleted and the caller moves to it.

use serde_json::Value;
use sqlx::{PgPool, Row};
use uuid::Uuid;

/// What the registry knows about a worker.
#[derive(Debug, Clone)]
pub struct WorkerRecord {
    /// Name given at registration.
    pub name: String,
    /// False once it unsubscribed or was reaped for missing heartbeats.
    pub is_active: bool,
    /// Paused workers get no new assignments.
    pub is_paused: bool,
    /// Label set (`{key: value}`).
    pub labels: Value,
    /// The actions it serves.
    pub actions: Vec<String>,
    /// Capacity per slot type (`{"default": 100}`).
    pub slots: Value,
}

/// A worker of this tenant, or `None`.
///
/// Replace with: `hatchet.worker(worker_id uuid, tenant_id uuid)` returning the same columns (or a
/// `hatchet.heartbeat` that revives a worker reaped while it was still connected, see [`crate::dispatch`]).
pub async fn worker_record(
    pool: &PgPool,
    tenant: Uuid,
    worker_id: Uuid,
) -> Result<Option<WorkerRecord>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT w.name, w.is_active, w.is_paused, w.labels, \
                coalesce((SELECT array_agg(a.action ORDER BY a.action) FROM hatchet.worker_actions a \
                          WHERE a.tenant_id = w.tenant_id AND a.worker_id = w.id), '{}') AS actions, \
                coalesce((SELECT jsonb_object_agg(s.slot_type, s.capacity) FROM hatchet.worker_slots s \
                          WHERE s.tenant_id = w.tenant_id AND s.worker_id = w.id), '{}') AS slots \
         FROM hatchet.workers w WHERE w.tenant_id = $1 AND w.id = $2",
    )
    .bind(tenant)
    .bind(worker_id)
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok(WorkerRecord {
            name: r.try_get("name")?,
            is_active: r.try_get("is_active")?,
            is_paused: r.try_get("is_paused")?,
            labels: r.try_get("labels")?,
            actions: r.try_get("actions")?,
            slots: r.try_get("slots")?,
        })
    })
    .transpose()
}

/// The retry_count of a task's running attempt, or `None` if it is not running.
///
/// Replace with: `hatchet.refresh_timeout(task_id, retry_count => NULL, ...)` meaning "the running attempt"
/// (RefreshTimeout and ReleaseSlot carry only the task id).
pub async fn running_retry_count(
    pool: &PgPool,
    tenant: Uuid,
    task_id: Uuid,
) -> Result<Option<i32>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT r.retry_count FROM hatchet.running r WHERE r.tenant_id = $1 AND r.task_id = $2",
    )
    .bind(tenant)
    .bind(task_id)
    .fetch_optional(pool)
    .await
}

/// What a run was started with, for run details.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// The run input.
    pub input: Value,
    /// Additional metadata.
    pub additional_metadata: Value,
    /// When it was created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The workflow's name (`None` for a task enqueued with `hatchet.enqueue`).
    pub workflow_name: Option<String>,
    /// The workflow's external id.
    pub workflow_id: Option<Uuid>,
    /// The workflow version's external id.
    pub workflow_version_id: Option<Uuid>,
    /// The task that spawned it (child runs).
    pub parent_task_id: Option<Uuid>,
    /// `manual`, `event`, `cron` or `schedule`.
    pub triggered_by: String,
}

/// A run's row (or, for a task enqueued on its own, its task row), or `None`.
///
/// Replace with: `hatchet.run(run_id uuid, tenant_id uuid)` returning these columns.
pub async fn run_info(
    pool: &PgPool,
    tenant: Uuid,
    run_id: Uuid,
) -> Result<Option<RunInfo>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT r.input, r.additional_metadata, r.inserted_at AS created_at, w.name AS workflow_name, \
                w.external_id AS workflow_id, v.external_id AS workflow_version_id, r.parent_task_id, \
                r.triggered_by \
         FROM hatchet.runs r \
         LEFT JOIN hatchet.workflow_versions v ON v.tenant_id = r.tenant_id AND v.id = r.workflow_version_id \
         LEFT JOIN hatchet.workflows w ON w.tenant_id = v.tenant_id AND w.id = v.workflow_id \
         WHERE r.tenant_id = $1 AND r.inserted_at = hatchet.uuid_time($2) AND r.id = $2 \
         UNION ALL \
         SELECT t.input, t.additional_metadata, t.inserted_at, NULL, NULL, NULL, NULL, 'manual' \
         FROM hatchet.tasks t \
         WHERE t.tenant_id = $1 AND t.inserted_at = hatchet.uuid_time($2) AND t.id = $2 AND t.run_id = $2 \
           AND NOT EXISTS (SELECT 1 FROM hatchet.runs r \
                           WHERE r.tenant_id = $1 AND r.inserted_at = hatchet.uuid_time($2) AND r.id = $2) \
         LIMIT 1",
    )
    .bind(tenant)
    .bind(run_id)
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok(RunInfo {
            input: r.try_get("input")?,
            additional_metadata: r.try_get("additional_metadata")?,
            created_at: r.try_get("created_at")?,
            workflow_name: r.try_get("workflow_name")?,
            workflow_id: r.try_get("workflow_id")?,
            workflow_version_id: r.try_get("workflow_version_id")?,
            parent_task_id: r.try_get("parent_task_id")?,
            triggered_by: r.try_get("triggered_by")?,
        })
    })
    .transpose()
}

/// The external ids of a workflow (by name) and its latest version, or `None`.
///
/// Replace with: `hatchet.register_workflow` returning both ids (`CreateWorkflowVersionResponse` has both).
pub async fn workflow_ids(
    pool: &PgPool,
    tenant: Uuid,
    name: &str,
) -> Result<Option<(Uuid, Option<Uuid>)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT w.external_id, (SELECT v.external_id FROM hatchet.workflow_versions v \
                                WHERE v.tenant_id = w.tenant_id AND v.workflow_id = w.id \
                                ORDER BY v.id DESC LIMIT 1) AS version_id \
         FROM hatchet.workflows w WHERE w.tenant_id = $1 AND w.name = $2",
    )
    .bind(tenant)
    .bind(name)
    .fetch_optional(pool)
    .await?;
    row.map(|r| Ok((r.try_get("external_id")?, r.try_get("version_id")?)))
        .transpose()
}

/// Filters of [`list_runs`] (Hatchet's `GET /api/v1/stable/tenants/{tenant}/workflow-runs`).
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Created at or after.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Created at or before.
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// Workflow external ids.
    pub workflow_ids: Option<Vec<Uuid>>,
    /// Additional metadata the run must contain (`@>`).
    pub metadata: Option<Value>,
    /// Runs spawned by this task.
    pub parent_task_id: Option<Uuid>,
    /// Run statuses (QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED).
    pub statuses: Option<Vec<String>>,
    /// Runs with a task assigned to this worker.
    pub worker_id: Option<Uuid>,
    /// Runs triggered by this event.
    pub event_id: Option<Uuid>,
    /// Page size.
    pub limit: i64,
    /// Rows to skip.
    pub offset: i64,
}

/// One workflow run with what the REST shapes need.
#[derive(Debug, Clone)]
pub struct RunRow {
    /// The run id.
    pub id: Uuid,
    /// Aggregated status (`hatchet.run_status`).
    pub status: String,
    /// The rest.
    pub info: RunInfo,
    /// How many runs its tasks spawned.
    pub children: i64,
}

const RUN_COLUMNS: &str = "r.id, r.input, r.additional_metadata, r.inserted_at AS created_at, w.name AS workflow_name, \
     w.external_id AS workflow_id, v.external_id AS workflow_version_id, r.parent_task_id, r.triggered_by, \
     hatchet.run_status(r.id, r.tenant_id) AS status, \
     (SELECT count(*) FROM hatchet.runs c WHERE c.tenant_id = r.tenant_id AND c.parent_task_id IN \
        (SELECT t.id FROM hatchet.tasks t WHERE t.tenant_id = r.tenant_id AND t.run_id = r.id \
           AND t.inserted_at >= r.inserted_at)) AS children";

fn run_row(r: &sqlx::postgres::PgRow) -> Result<RunRow, sqlx::Error> {
    Ok(RunRow {
        id: r.try_get("id")?,
        status: r.try_get("status")?,
        children: r.try_get("children")?,
        info: RunInfo {
            input: r.try_get("input")?,
            additional_metadata: r.try_get("additional_metadata")?,
            created_at: r.try_get("created_at")?,
            workflow_name: r.try_get("workflow_name")?,
            workflow_id: r.try_get("workflow_id")?,
            workflow_version_id: r.try_get("workflow_version_id")?,
            parent_task_id: r.try_get("parent_task_id")?,
            triggered_by: r.try_get("triggered_by")?,
        },
    })
}

/// Workflow runs matching a filter, newest first, and how many match in all.
///
/// Replace with: `hatchet.list_runs(since, until, workflows text[], metadata jsonb, parent_task_id uuid,
/// statuses text[], worker_id uuid, event_id uuid, "limit" int, "offset" int, tenant_id uuid)` returning the run
/// columns plus status and a total count (an index on runs(tenant_id, inserted_at) already serves it).
pub async fn list_runs(
    pool: &PgPool,
    tenant: Uuid,
    f: &RunFilter,
) -> Result<(Vec<RunRow>, i64), sqlx::Error> {
    let filter = "FROM hatchet.runs r \
         JOIN hatchet.workflow_versions v ON v.tenant_id = r.tenant_id AND v.id = r.workflow_version_id \
         JOIN hatchet.workflows w ON w.tenant_id = v.tenant_id AND w.id = v.workflow_id \
         WHERE r.tenant_id = $1 \
           AND r.inserted_at >= coalesce($2, '-infinity') AND r.inserted_at <= coalesce($3, 'infinity') \
           AND ($4::uuid[] IS NULL OR w.external_id = ANY ($4)) \
           AND ($5::jsonb IS NULL OR r.additional_metadata @> $5) \
           AND ($6::uuid IS NULL OR r.parent_task_id = $6) \
           AND ($7::text[] IS NULL OR hatchet.run_status(r.id, r.tenant_id) = ANY ($7)) \
           AND ($8::uuid IS NULL OR EXISTS (SELECT 1 FROM hatchet.tasks t JOIN hatchet.task_events e \
                  ON e.tenant_id = t.tenant_id AND e.task_inserted_at = t.inserted_at AND e.task_id = t.id \
                WHERE t.tenant_id = r.tenant_id AND t.run_id = r.id AND t.inserted_at >= r.inserted_at \
                  AND e.worker_id = $8)) \
           AND ($9::text IS NULL OR r.additional_metadata ->> 'hatchet__event_id' = $9)";
    let list = format!(
        "SELECT {RUN_COLUMNS} {filter} ORDER BY r.inserted_at DESC, r.id DESC LIMIT $10 OFFSET $11"
    );
    let count = format!("SELECT count(*) {filter}");
    let event = f.event_id.map(|e| e.to_string());
    // Both strings are built from constants above; every value is a bind parameter.
    let rows = sqlx::query(sqlx::AssertSqlSafe(list))
        .bind(tenant)
        .bind(f.since)
        .bind(f.until)
        .bind(f.workflow_ids.as_deref())
        .bind(f.metadata.as_ref())
        .bind(f.parent_task_id)
        .bind(f.statuses.as_deref())
        .bind(f.worker_id)
        .bind(event.as_deref())
        .bind(f.limit)
        .bind(f.offset)
        .fetch_all(pool)
        .await?;
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count))
        .bind(tenant)
        .bind(f.since)
        .bind(f.until)
        .bind(f.workflow_ids.as_deref())
        .bind(f.metadata.as_ref())
        .bind(f.parent_task_id)
        .bind(f.statuses.as_deref())
        .bind(f.worker_id)
        .bind(event.as_deref())
        .fetch_one(pool)
        .await?;
    Ok((rows.iter().map(run_row).collect::<Result<_, _>>()?, total))
}

/// One workflow run (not a task enqueued on its own), or `None`.
///
/// Replace with: `hatchet.run(run_id uuid, tenant_id uuid)`.
pub async fn run_row_by_id(
    pool: &PgPool,
    tenant: Uuid,
    run_id: Uuid,
) -> Result<Option<RunRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM hatchet.runs r \
         JOIN hatchet.workflow_versions v ON v.tenant_id = r.tenant_id AND v.id = r.workflow_version_id \
         JOIN hatchet.workflows w ON w.tenant_id = v.tenant_id AND w.id = v.workflow_id \
         WHERE r.tenant_id = $1 AND r.inserted_at = hatchet.uuid_time($2) AND r.id = $2"
    );
    // Built from constants; the id is a bind parameter.
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(run_id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(run_row).transpose()
}

/// The run a task belongs to, or `None` if there is no such task.
///
/// Replace with: `hatchet.task(task_id uuid, tenant_id uuid)` returning the task row.
pub async fn run_of_task(
    pool: &PgPool,
    tenant: Uuid,
    task_id: Uuid,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT t.run_id FROM hatchet.tasks t \
         WHERE t.tenant_id = $1 AND t.inserted_at = hatchet.uuid_time($2) AND t.id = $2",
    )
    .bind(tenant)
    .bind(task_id)
    .fetch_optional(pool)
    .await
}

/// A registered worker as the REST API shows it.
#[derive(Debug, Clone)]
pub struct WorkerRow {
    /// Worker id.
    pub id: Uuid,
    /// The registry entry.
    pub record: WorkerRecord,
    /// Last heartbeat.
    pub last_heartbeat_at: chrono::DateTime<chrono::Utc>,
    /// Registration time.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Slots in use per slot type.
    pub used: Value,
}

/// Workers of a tenant (all, or one), newest first.
///
/// Replace with: `hatchet.list_workers(tenant_id uuid)` returning these columns.
pub async fn list_workers(
    pool: &PgPool,
    tenant: Uuid,
    only: Option<Uuid>,
) -> Result<Vec<WorkerRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT w.id, w.name, w.is_active, w.is_paused, w.labels, w.last_heartbeat_at, w.created_at, \
                coalesce((SELECT array_agg(a.action ORDER BY a.action) FROM hatchet.worker_actions a \
                          WHERE a.tenant_id = w.tenant_id AND a.worker_id = w.id), '{}') AS actions, \
                coalesce((SELECT jsonb_object_agg(s.slot_type, s.capacity) FROM hatchet.worker_slots s \
                          WHERE s.tenant_id = w.tenant_id AND s.worker_id = w.id), '{}') AS slots, \
                coalesce((SELECT jsonb_object_agg(s.slot_type, s.used) FROM hatchet.worker_slots s \
                          WHERE s.tenant_id = w.tenant_id AND s.worker_id = w.id), '{}') AS used \
         FROM hatchet.workers w WHERE w.tenant_id = $1 AND ($2::uuid IS NULL OR w.id = $2) \
         ORDER BY w.created_at DESC",
    )
    .bind(tenant)
    .bind(only)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(WorkerRow {
                id: r.try_get("id")?,
                last_heartbeat_at: r.try_get("last_heartbeat_at")?,
                created_at: r.try_get("created_at")?,
                used: r.try_get("used")?,
                record: WorkerRecord {
                    name: r.try_get("name")?,
                    is_active: r.try_get("is_active")?,
                    is_paused: r.try_get("is_paused")?,
                    labels: r.try_get("labels")?,
                    actions: r.try_get("actions")?,
                    slots: r.try_get("slots")?,
                },
            })
        })
        .collect()
}

/// A workflow as the REST API shows it.
#[derive(Debug, Clone)]
pub struct WorkflowRow {
    /// External id.
    pub id: Uuid,
    /// Name (case kept).
    pub name: String,
    /// Paused workflows start no runs from triggers.
    pub is_paused: bool,
    /// Creation time.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Latest version's external id.
    pub version_id: Option<Uuid>,
    /// Latest version's label.
    pub version: Option<String>,
    /// Latest version's creation time.
    pub version_created_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Event keys of the latest version.
    pub event_triggers: Vec<String>,
    /// Cron expressions of the latest version.
    pub cron_triggers: Vec<String>,
    /// Latest version's description.
    pub description: Option<String>,
}

/// Workflows of a tenant, by name (exact) or id, or all.
///
/// Replace with: `hatchet.list_workflows(name text, tenant_id uuid)`.
pub async fn list_workflows(
    pool: &PgPool,
    tenant: Uuid,
    name: Option<&str>,
    id: Option<Uuid>,
) -> Result<Vec<WorkflowRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT w.external_id, w.name, w.is_paused, w.created_at, v.external_id AS version_id, v.version, \
                v.created_at AS version_created_at, coalesce(v.event_triggers, '{}') AS event_triggers, \
                coalesce(v.cron_triggers, '{}') AS cron_triggers, v.definition ->> 'description' AS description \
         FROM hatchet.workflows w \
         LEFT JOIN LATERAL (SELECT x.* FROM hatchet.workflow_versions x \
                            WHERE x.tenant_id = w.tenant_id AND x.workflow_id = w.id ORDER BY x.id DESC LIMIT 1) v \
                ON true \
         WHERE w.tenant_id = $1 AND ($2::text IS NULL OR w.name = $2) AND ($3::uuid IS NULL OR w.external_id = $3) \
         ORDER BY w.name",
    )
    .bind(tenant)
    .bind(name)
    .bind(id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(WorkflowRow {
                id: r.try_get("external_id")?,
                name: r.try_get("name")?,
                is_paused: r.try_get("is_paused")?,
                created_at: r.try_get("created_at")?,
                version_id: r.try_get("version_id")?,
                version: r.try_get("version")?,
                version_created_at: r.try_get("version_created_at")?,
                event_triggers: r.try_get("event_triggers")?,
                cron_triggers: r.try_get("cron_triggers")?,
                description: r.try_get("description")?,
            })
        })
        .collect()
}

/// A stored event.
#[derive(Debug, Clone)]
pub struct EventRow {
    /// Event id.
    pub id: Uuid,
    /// Key.
    pub key: String,
    /// Payload.
    pub payload: Value,
    /// Additional metadata.
    pub additional_metadata: Value,
    /// Scope.
    pub scope: Option<String>,
    /// When it was pushed.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The runs it triggered, with their status.
    pub runs: Vec<(Uuid, String)>,
}

/// Events of a tenant, newest first, and the total.
///
/// Replace with: `hatchet.list_events(keys text[], since, until, "limit", "offset", tenant_id)` returning the
/// event columns and the runs each triggered.
pub async fn list_events(
    pool: &PgPool,
    tenant: Uuid,
    keys: Option<&[String]>,
    since: Option<chrono::DateTime<chrono::Utc>>,
    until: Option<chrono::DateTime<chrono::Utc>>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<EventRow>, i64), sqlx::Error> {
    let rows = sqlx::query(
        "SELECT e.id, e.key, e.payload, e.additional_metadata, e.scope, e.inserted_at, \
                coalesce((SELECT array_agg(r.id ORDER BY r.id) FROM hatchet.runs r \
                          WHERE r.tenant_id = e.tenant_id AND r.inserted_at >= e.inserted_at \
                            AND r.additional_metadata ->> 'hatchet__event_id' = e.id::text), '{}') AS run_ids, \
                count(*) OVER () AS total \
         FROM hatchet.events e \
         WHERE e.tenant_id = $1 AND ($2::text[] IS NULL OR e.key = ANY ($2)) \
           AND e.inserted_at >= coalesce($3, '-infinity') AND e.inserted_at <= coalesce($4, 'infinity') \
         ORDER BY e.inserted_at DESC, e.id DESC LIMIT $5 OFFSET $6",
    )
    .bind(tenant)
    .bind(keys)
    .bind(since)
    .bind(until)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    let mut total = 0;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        total = r.try_get("total")?;
        let run_ids: Vec<Uuid> = r.try_get("run_ids")?;
        let mut runs = Vec::with_capacity(run_ids.len());
        for id in run_ids {
            let status: String = sqlx::query_scalar("SELECT hatchet.run_status($1, $2)")
                .bind(id)
                .bind(tenant)
                .fetch_one(pool)
                .await?;
            runs.push((id, status));
        }
        out.push(EventRow {
            id: r.try_get("id")?,
            key: r.try_get("key")?,
            payload: r.try_get("payload")?,
            additional_metadata: r.try_get("additional_metadata")?,
            scope: r.try_get("scope")?,
            created_at: r.try_get("inserted_at")?,
            runs,
        });
    }
    Ok((out, total))
}

/// A rate limit's state.
#[derive(Debug, Clone)]
pub struct RateLimitRow {
    /// Key.
    pub key: String,
    /// Units per window.
    pub limit_value: i32,
    /// Units left in the current window.
    pub remaining: i32,
    /// Window length, as Postgres prints an interval.
    pub window: String,
    /// Start of the current window.
    pub last_refill: chrono::DateTime<chrono::Utc>,
}

/// The tenant's rate limits by key.
///
/// Replace with: `hatchet.list_rate_limits(search text, tenant_id uuid)`.
pub async fn list_rate_limits(
    pool: &PgPool,
    tenant: Uuid,
    search: Option<&str>,
) -> Result<Vec<RateLimitRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT key, limit_value, remaining, window_size::text AS window, last_refill FROM hatchet.rate_limits \
         WHERE tenant_id = $1 AND ($2::text IS NULL OR strpos(key, $2) > 0) ORDER BY key",
    )
    .bind(tenant)
    .bind(search)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(RateLimitRow {
                key: r.try_get("key")?,
                limit_value: r.try_get("limit_value")?,
                remaining: r.try_get("remaining")?,
                window: r.try_get("window")?,
                last_refill: r.try_get("last_refill")?,
            })
        })
        .collect()
}

/// How many runs each task of a run spawned (tasks that spawned none are absent).
///
/// Replace with: a `children` column in `hatchet.run_tasks`.
pub async fn children_counts(
    pool: &PgPool,
    tenant: Uuid,
    run_id: Uuid,
) -> Result<std::collections::HashMap<Uuid, i64>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT c.parent_task_id, count(*) AS n FROM hatchet.runs c \
         WHERE c.tenant_id = $1 AND c.parent_task_id IN \
               (SELECT t.id FROM hatchet.tasks t WHERE t.tenant_id = $1 AND t.run_id = $2 \
                  AND t.inserted_at >= hatchet.uuid_time($2)) \
         GROUP BY c.parent_task_id",
    )
    .bind(tenant)
    .bind(run_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("parent_task_id")?, r.try_get("n")?)))
        .collect()
}
