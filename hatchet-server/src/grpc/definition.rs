//! Workflow definitions: `v1.CreateWorkflowVersionRequest` to the JSON `hatchet.register_workflow` takes.
//!
//! The JSON uses the proto's own field names (snake_case) and enum value names, so the extension validates one
//! documented shape whoever registers (the SDKs through this server, or SQL users by hand). Unset optional fields are
//! left out; empty strings stay empty and the extension applies its defaults (`timeout` 60 s, `schedule_timeout` 5 m).
//! JSON carried in proto `string`/`bytes` fields (`cron_input`, filter payloads, the input JSON schema) is passed
//! as JSON text and parsed by the extension, which reports invalid JSON with the workflow's name.

use crate::proto::v1::{
    self, ConcurrencyLimitStrategy, IdempotencyMethod, RateLimitDuration, StickyStrategy,
    WorkerLabelComparator,
};
use serde_json::{json, Map, Value};

/// The whole request.
pub(crate) fn workflow_json(r: &v1::CreateWorkflowVersionRequest) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(r.name));
    m.insert("description".into(), json!(r.description));
    m.insert("version".into(), json!(r.version));
    m.insert("event_triggers".into(), json!(r.event_triggers));
    m.insert("cron_triggers".into(), json!(r.cron_triggers));
    m.insert(
        "tasks".into(),
        Value::Array(r.tasks.iter().map(task_json).collect()),
    );
    if let Some(c) = &r.concurrency {
        m.insert("concurrency".into(), concurrency_json(c));
    }
    if let Some(input) = &r.cron_input {
        m.insert("cron_input".into(), json!(input));
    }
    if let Some(t) = &r.on_failure_task {
        m.insert("on_failure_task".into(), task_json(t));
    }
    if let Some(s) = r.sticky {
        m.insert(
            "sticky".into(),
            enum_name(StickyStrategy::try_from(s).map(|e| e.as_str_name()), s),
        );
    }
    if let Some(p) = r.default_priority {
        m.insert("default_priority".into(), json!(p));
    }
    if !r.concurrency_arr.is_empty() {
        m.insert(
            "concurrency_arr".into(),
            Value::Array(r.concurrency_arr.iter().map(concurrency_json).collect()),
        );
    }
    if !r.default_filters.is_empty() {
        m.insert(
            "default_filters".into(),
            Value::Array(
                r.default_filters
                    .iter()
                    .map(|f| {
                        let mut o = Map::new();
                        o.insert("expression".into(), json!(f.expression));
                        o.insert("scope".into(), json!(f.scope));
                        if let Some(p) = &f.payload {
                            o.insert("payload".into(), json!(String::from_utf8_lossy(p)));
                        }
                        Value::Object(o)
                    })
                    .collect(),
            ),
        );
    }
    if let Some(schema) = &r.input_json_schema {
        m.insert(
            "input_json_schema".into(),
            serde_json::from_slice(schema)
                .unwrap_or_else(|_| json!(String::from_utf8_lossy(schema))),
        );
    }
    if let Some(i) = &r.idempotency {
        let mut o = Map::new();
        o.insert("expression".into(), json!(i.expression));
        o.insert("ttl_ms".into(), json!(i.ttl_ms));
        if let Some(method) = i.method {
            o.insert(
                "method".into(),
                enum_name(
                    IdempotencyMethod::try_from(method).map(|e| e.as_str_name()),
                    method,
                ),
            );
        }
        m.insert("idempotency".into(), Value::Object(o));
    }
    Value::Object(m)
}

/// One `CreateTaskOpts`.
pub(crate) fn task_json(t: &v1::CreateTaskOpts) -> Value {
    let mut m = Map::new();
    m.insert("readable_id".into(), json!(t.readable_id));
    m.insert("action".into(), json!(t.action));
    m.insert("timeout".into(), json!(t.timeout));
    m.insert("inputs".into(), json!(t.inputs));
    m.insert("parents".into(), json!(t.parents));
    m.insert("retries".into(), json!(t.retries));
    m.insert(
        "rate_limits".into(),
        Value::Array(
            t.rate_limits
                .iter()
                .map(|r| {
                    let mut o = Map::new();
                    o.insert("key".into(), json!(r.key));
                    insert_opt(&mut o, "units", r.units.map(|u| json!(u)));
                    insert_opt(&mut o, "key_expr", r.key_expr.as_ref().map(|v| json!(v)));
                    insert_opt(
                        &mut o,
                        "units_expr",
                        r.units_expr.as_ref().map(|v| json!(v)),
                    );
                    insert_opt(
                        &mut o,
                        "limit_values_expr",
                        r.limit_values_expr.as_ref().map(|v| json!(v)),
                    );
                    insert_opt(
                        &mut o,
                        "duration",
                        r.duration.map(|d| {
                            enum_name(RateLimitDuration::try_from(d).map(|e| e.as_str_name()), d)
                        }),
                    );
                    Value::Object(o)
                })
                .collect(),
        ),
    );
    m.insert(
        "worker_labels".into(),
        desired_labels_json(&t.worker_labels),
    );
    insert_opt(&mut m, "backoff_factor", t.backoff_factor.map(|f| json!(f)));
    insert_opt(
        &mut m,
        "backoff_max_seconds",
        t.backoff_max_seconds.map(|s| json!(s)),
    );
    m.insert(
        "concurrency".into(),
        Value::Array(t.concurrency.iter().map(concurrency_json).collect()),
    );
    if let Some(c) = &t.conditions {
        m.insert("conditions".into(), conditions_json(c));
    }
    insert_opt(
        &mut m,
        "schedule_timeout",
        t.schedule_timeout.as_ref().map(|s| json!(s)),
    );
    m.insert("is_durable".into(), json!(t.is_durable));
    if !t.slot_requests.is_empty() {
        m.insert("slot_requests".into(), json!(t.slot_requests));
    }
    if let Some(b) = &t.batch {
        m.insert(
            "batch".into(),
            json!({
                "batch_max_size": b.batch_max_size,
                "batch_max_interval_ms": b.batch_max_interval_ms,
                "batch_group_key": b.batch_group_key,
                "batch_group_max_runs": b.batch_group_max_runs,
                "broadcast_output": b.broadcast_output,
            }),
        );
    }
    Value::Object(m)
}

/// One `Concurrency` setting.
pub(crate) fn concurrency_json(c: &v1::Concurrency) -> Value {
    let mut o = Map::new();
    o.insert("expression".into(), json!(c.expression));
    insert_opt(&mut o, "max_runs", c.max_runs.map(|v| json!(v)));
    insert_opt(
        &mut o,
        "limit_strategy",
        c.limit_strategy.map(|s| {
            enum_name(
                ConcurrencyLimitStrategy::try_from(s).map(|e| e.as_str_name()),
                s,
            )
        }),
    );
    insert_opt(&mut o, "name", c.name.as_ref().map(|v| json!(v)));
    insert_opt(
        &mut o,
        "is_tenant_scoped",
        c.is_tenant_scoped.map(|v| json!(v)),
    );
    insert_opt(
        &mut o,
        "max_runs_expression",
        c.max_runs_expression.as_ref().map(|v| json!(v)),
    );
    Value::Object(o)
}

/// Desired worker labels (`map<string, DesiredWorkerLabels>`), also used by triggers.
pub(crate) fn desired_labels_json(
    labels: &std::collections::HashMap<String, v1::DesiredWorkerLabels>,
) -> Value {
    let mut out = Map::new();
    for (key, l) in labels {
        let mut o = Map::new();
        insert_opt(&mut o, "str_value", l.str_value.as_ref().map(|v| json!(v)));
        insert_opt(&mut o, "int_value", l.int_value.map(|v| json!(v)));
        insert_opt(&mut o, "required", l.required.map(|v| json!(v)));
        insert_opt(
            &mut o,
            "comparator",
            l.comparator.map(|c| {
                enum_name(
                    WorkerLabelComparator::try_from(c).map(|e| e.as_str_name()),
                    c,
                )
            }),
        );
        insert_opt(&mut o, "weight", l.weight.map(|v| json!(v)));
        out.insert(key.clone(), Value::Object(o));
    }
    Value::Object(out)
}

fn conditions_json(c: &v1::TaskConditions) -> Value {
    fn base(b: Option<&v1::BaseMatchCondition>) -> Value {
        let b = b.cloned().unwrap_or_default();
        json!({
            "readable_data_key": b.readable_data_key,
            "action": enum_name(v1::Action::try_from(b.action).map(|e| e.as_str_name()), b.action),
            "or_group_id": b.or_group_id,
            "expression": b.expression,
        })
    }
    json!({
        "parent_override_conditions": c.parent_override_conditions.iter().map(|p| json!({
            "base": base(p.base.as_ref()),
            "parent_readable_id": p.parent_readable_id,
        })).collect::<Vec<_>>(),
        "sleep_conditions": c.sleep_conditions.iter().map(|s| json!({
            "base": base(s.base.as_ref()),
            "sleep_for": s.sleep_for,
        })).collect::<Vec<_>>(),
        "user_event_conditions": c.user_event_conditions.iter().map(|u| {
            let mut o = Map::new();
            o.insert("base".into(), base(u.base.as_ref()));
            o.insert("user_event_key".into(), json!(u.user_event_key));
            insert_opt(&mut o, "event_scope", u.event_scope.as_ref().map(|v| json!(v)));
            if let Some(ts) = &u.consider_events_since {
                insert_opt(&mut o, "consider_events_since", crate::proto::to_datetime(ts).map(|t| json!(t.to_rfc3339())));
            }
            Value::Object(o)
        }).collect::<Vec<_>>(),
    })
}

fn insert_opt(m: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        m.insert(key.to_owned(), v);
    }
}

/// An enum as its proto value name; an unknown number stays a number (the extension names it in its error).
fn enum_name(name: Result<&'static str, prost::UnknownEnumValue>, raw: i32) -> Value {
    match name {
        Ok(n) => json!(n),
        Err(_) => json!(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn dag_with_everything() {
        let req = v1::CreateWorkflowVersionRequest {
            name: "DAGWorkflow".into(),
            cron_triggers: vec!["*/5 * * * *".into()],
            cron_input: Some(r#"{"a":1}"#.into()),
            default_priority: Some(2),
            sticky: Some(StickyStrategy::Hard as i32),
            concurrency_arr: vec![v1::Concurrency {
                expression: "input.group".into(),
                max_runs: Some(2),
                limit_strategy: Some(ConcurrencyLimitStrategy::GroupRoundRobin as i32),
                ..Default::default()
            }],
            tasks: vec![
                v1::CreateTaskOpts {
                    readable_id: "step1".into(),
                    action: "dagworkflow:step1".into(),
                    timeout: "5s".into(),
                    inputs: "{}".into(),
                    retries: 3,
                    backoff_factor: Some(2.0),
                    slot_requests: HashMap::from([("default".to_owned(), 1)]),
                    rate_limits: vec![v1::CreateTaskRateLimit {
                        key: "api".into(),
                        units: Some(1),
                        duration: Some(RateLimitDuration::Second as i32),
                        ..Default::default()
                    }],
                    worker_labels: HashMap::from([(
                        "model".to_owned(),
                        v1::DesiredWorkerLabels {
                            str_value: Some("fancy".into()),
                            required: Some(true),
                            comparator: Some(WorkerLabelComparator::NotEqual as i32),
                            ..Default::default()
                        },
                    )]),
                    ..Default::default()
                },
                v1::CreateTaskOpts {
                    readable_id: "step2".into(),
                    action: "dagworkflow:step2".into(),
                    parents: vec!["step1".into()],
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let j = workflow_json(&req);
        assert_eq!(j["name"], "DAGWorkflow");
        assert_eq!(j["sticky"], "HARD");
        assert_eq!(j["default_priority"], 2);
        assert_eq!(j["cron_input"], r#"{"a":1}"#);
        assert_eq!(
            j["concurrency_arr"][0]["limit_strategy"],
            "GROUP_ROUND_ROBIN"
        );
        assert_eq!(j["concurrency_arr"][0]["max_runs"], 2);
        let step1 = &j["tasks"][0];
        assert_eq!(step1["timeout"], "5s");
        assert_eq!(step1["retries"], 3);
        assert_eq!(step1["backoff_factor"], 2.0);
        assert_eq!(step1["slot_requests"], json!({"default": 1}));
        assert_eq!(
            step1["rate_limits"][0],
            json!({"key": "api", "units": 1, "duration": "SECOND"})
        );
        assert_eq!(
            step1["worker_labels"]["model"],
            json!({"str_value": "fancy", "required": true, "comparator": "NOT_EQUAL"})
        );
        assert!(step1.get("backoff_max_seconds").is_none());
        assert_eq!(j["tasks"][1]["parents"], json!(["step1"]));
        assert!(j.get("on_failure_task").is_none());
        assert!(j.get("concurrency").is_none());
    }

    #[test]
    fn unknown_enum_values_stay_numbers() {
        let c = v1::Concurrency {
            expression: "x".into(),
            limit_strategy: Some(42),
            ..Default::default()
        };
        assert_eq!(concurrency_json(&c)["limit_strategy"], 42);
    }
}
