//! CEL expressions (concurrency keys, dynamic rate limits, conditions, event filters), evaluated with a real CEL
//! implementation (crate `cel-interpreter`).
//!
//! Hatchet evaluates these at enqueue/trigger time; so do we, inside the backend. Compiled programs are cached per
//! backend because the same few expressions are evaluated for every task of a workflow. An expression that fails to
//! compile or evaluate must never take the backend down: [`cel_try`] returns the error as data so the caller can fail
//! just that task with the reason.

use crate::error::HatchetError;
use cel_interpreter::{Context, Program, Value};
use pgrx::prelude::*;
use pgrx::JsonB;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// Cached programs per backend; cleared when full so a stream of distinct expressions cannot grow memory unbounded.
const CACHE_CAPACITY: usize = 512;

thread_local! {
    static PROGRAMS: RefCell<HashMap<String, Rc<Program>>> = RefCell::new(HashMap::new());
}

fn compile(expr: &str) -> Result<Rc<Program>, String> {
    if let Some(p) = PROGRAMS.with(|c| c.borrow().get(expr).cloned()) {
        return Ok(p);
    }
    let source = expr.to_string();
    // The parser is third-party code: a panic on odd input is caught and reported as a compile error.
    let program = std::panic::catch_unwind(move || Program::compile(&source))
        .map_err(|_| "the expression could not be parsed".to_string())?
        .map_err(|e| e.to_string())?;
    let program = Rc::new(program);
    PROGRAMS.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= CACHE_CAPACITY {
            c.clear();
        }
        c.insert(expr.to_string(), program.clone());
    });
    Ok(program)
}

/// Evaluate `expr` with the top-level keys of `vars` (a JSON object) as variables; the result as JSON.
pub fn eval(expr: &str, vars: &serde_json::Value) -> Result<serde_json::Value, String> {
    let program = compile(expr)?;
    let mut ctx = Context::default();
    if let Some(obj) = vars.as_object() {
        for (name, value) in obj {
            let v = cel_interpreter::to_value(value)
                .map_err(|e| format!("variable \"{name}\": {e}"))?;
            ctx.add_variable_from_value(name.clone(), v);
        }
    } else if !vars.is_null() {
        return Err("variables must be a JSON object".to_string());
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| program.execute(&ctx)))
        .map_err(|_| "the expression failed to evaluate".to_string())?
        .map_err(|e| e.to_string())?;
    to_json(&result)
}

fn to_json(value: &Value) -> Result<serde_json::Value, String> {
    value
        .json()
        .map_err(|e| format!("the result cannot be represented as JSON: {e:?}"))
}

/// `hatchet.cel_eval(expr, vars)`: the value of a CEL expression; a compile or evaluation error is SQLSTATE 22023.
#[pg_extern(immutable, parallel_safe)]
pub fn cel_eval(expr: &str, vars: default!(JsonB, "'{}'")) -> JsonB {
    match eval(expr, &vars.0) {
        Ok(v) => JsonB(v),
        Err(e) => {
            HatchetError::InvalidArgument(format!("CEL expression \"{expr}\" failed: {e}")).raise()
        }
    }
}

/// `hatchet.cel_try(expr, vars)`: `{"value": ...}` or `{"error": "..."}`, never an SQL error. Used where a bad
/// expression must fail one task with its reason instead of the whole statement.
#[pg_extern(immutable, parallel_safe)]
pub fn cel_try(expr: &str, vars: default!(JsonB, "'{}'")) -> JsonB {
    match eval(expr, &vars.0) {
        Ok(v) => JsonB(serde_json::json!({ "value": v })),
        Err(e) => JsonB(serde_json::json!({ "error": e })),
    }
}

/// `hatchet.cel_check(expr)`: raise 22023 if the expression does not compile (used when definitions are registered).
#[pg_extern(immutable, parallel_safe)]
pub fn cel_check(expr: &str) -> bool {
    match compile(expr) {
        Ok(_) => true,
        Err(e) => {
            HatchetError::InvalidArgument(format!("invalid CEL expression \"{expr}\": {e}")).raise()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::eval;
    use serde_json::json;

    #[test]
    fn evaluates_keys_and_conditions() {
        let vars =
            json!({"input": {"user_id": "u1", "n": 12}, "additional_metadata": {"tier": "gold"}});
        assert_eq!(eval("input.user_id", &vars), Ok(json!("u1")));
        assert_eq!(eval("input.n > 10", &vars), Ok(json!(true)));
        assert_eq!(
            eval("additional_metadata.tier + '-' + input.user_id", &vars),
            Ok(json!("gold-u1"))
        );
        assert_eq!(eval("'*'", &vars), Ok(json!("*")));
    }

    #[test]
    fn errors_are_values_not_panics() {
        let vars = json!({"input": {}});
        assert!(eval("input.missing", &vars).is_err());
        assert!(eval("input.", &vars).is_err());
        assert!(eval("1 +", &vars).is_err());
        assert!(eval("input", &json!([1])).is_err());
    }
}
