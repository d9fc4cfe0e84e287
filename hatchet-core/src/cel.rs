//! CEL expressions (concurrency keys, dynamic rate limits, conditions, event filters), evaluated with a real CEL
//! implementation (crate `cel-interpreter`) over JSON variables.
//!
//! Compiled programs are cached per thread because the same few expressions are evaluated for every task of a
//! workflow. An expression that fails to compile or evaluate, even one that makes the third-party parser or
//! interpreter panic, comes back as an error message, never as a panic: a caller can fail just the one task with the
//! reason.

use cel_interpreter::{Context, Program, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// Cached programs per thread; cleared when full so a stream of distinct expressions cannot grow memory unbounded.
const CACHE_CAPACITY: usize = 512;

thread_local! {
    static PROGRAMS: RefCell<HashMap<String, Rc<Program>>> = RefCell::new(HashMap::new());
}

/// Whether `expr` compiles; the error says why not. The program is cached for later evaluation.
pub fn check(expr: &str) -> Result<(), String> {
    compile(expr).map(|_| ())
}

/// Compile `expr`, or take it from the cache.
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

/// Evaluate `expr` with the top-level keys of `vars` (a JSON object, or null for none) as variables; the result as
/// JSON.
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

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(eval("1 + 2", &serde_json::Value::Null), Ok(json!(3)));
    }

    #[test]
    fn errors_are_values_not_panics() {
        let vars = json!({"input": {}});
        assert!(eval("input.missing", &vars).is_err());
        assert!(eval("input.", &vars).is_err());
        assert!(eval("1 +", &vars).is_err());
        assert!(eval("input", &json!([1])).is_err());
        assert!(check("1 +").is_err());
        assert_eq!(check("input.n > 1"), Ok(()));
    }

    #[test]
    fn compiled_programs_are_reused() {
        let a = compile("input.n * 2").unwrap();
        let b = compile("input.n * 2").unwrap();
        assert!(Rc::ptr_eq(&a, &b));
    }
}
