//! CEL expressions (concurrency keys, dynamic rate limits, conditions, event filters), evaluated with a real CEL
//! implementation (crate `cel-interpreter`) over JSON variables, within limits.
//!
//! Compiled programs are cached per thread because the same few expressions are evaluated for every task of a
//! workflow. An expression that fails to compile or evaluate, even one that makes the third-party parser or
//! interpreter panic, comes back as an error, never as a panic: a caller can fail just the one task with the reason.
//!
//! # Why expressions are bounded, and how
//!
//! Expressions are written by tenants and run inside shared transactions (the server's completion batch, the
//! background worker's pass). Without bounds, `input.l.map(x, input.l.map(y, input.l))` over a big list runs for
//! hours, and a deeply nested expression overflows the stack of the parser. So:
//!
//! - **Size, before anything else** ([`Limits::max_length`], [`Limits::max_depth`]): the length in bytes and the
//!   bracket / `?:` nesting are checked on the text, before the (recursive) parser sees it; the depth of the parsed
//!   tree is checked too. Registration (`cel_check`) and every evaluation apply them.
//! - **Work, while evaluating** ([`Limits::max_cost`], [`Limits::max_time`]): CEL has no loops except the
//!   comprehension macros (`all`, `exists`, `exists_one`, `map`, `filter`), which the parser expands into
//!   comprehension nodes. Before a program is cached we rewrite each comprehension's loop condition to
//!   `@hatchet_meter(accumulator) && <condition>`, a call of a function registered only in our context (the `@`
//!   makes it impossible to name from CEL text). The interpreter evaluates that condition before every iteration;
//!   the meter charges `1 + the accumulator's length` (the interpreter copies the accumulator list on every step, so
//!   this is the real cost of `map` and `filter`), checks the deadline and asks the caller's `interrupted` hook, and
//!   stops the evaluation with an error when any of them says so. No code of ours ever unwinds through the
//!   interpreter's frames: it returns an ordinary error, and the caller acts on an interrupt after the evaluation
//!   returned (in Postgres: `CHECK_FOR_INTERRUPTS`).
//!
//! Outside comprehensions the work is bounded by the size of the expression times the size of its values.

use cel_interpreter::{Context, ExecutionError, Value};
use cel_parser::ast::{CallExpr, EntryExpr, Expr};
use cel_parser::Expression;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Cached programs per thread; cleared when full so a stream of distinct expressions cannot grow memory unbounded.
const CACHE_CAPACITY: usize = 512;
/// The name of the metering function; not a valid CEL identifier, so no expression can call or shadow it.
const METER: &str = "@hatchet_meter";

/// The bounds an expression is checked and evaluated against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest expression, in bytes.
    pub max_length: usize,
    /// Deepest nesting: of brackets and `?:` in the text, and of the parsed tree.
    pub max_depth: usize,
    /// Most work units one evaluation may spend in comprehensions: each iteration costs one plus the length of the
    /// comprehension's accumulator.
    pub max_cost: u64,
    /// Longest one evaluation may take (checked at every comprehension iteration); `None`: no time limit.
    pub max_time: Option<Duration>,
}

impl Default for Limits {
    /// The extension's defaults (its `hatchet.cel_*` settings start here).
    fn default() -> Self {
        Limits {
            max_length: 4096,
            max_depth: 32,
            max_cost: 10_000_000,
            max_time: Some(Duration::from_secs(1)),
        }
    }
}

/// Why an expression could not be evaluated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CelError {
    /// It does not compile, is over a size limit, or failed while evaluating (a missing key, a type error).
    Invalid(String),
    /// It spent more than its evaluation budget (work or time).
    OverBudget(String),
    /// The caller's `interrupted` hook asked it to stop (in Postgres: a cancel or terminate request is pending).
    Interrupted,
}

impl fmt::Display for CelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CelError::Invalid(m) | CelError::OverBudget(m) => f.write_str(m),
            CelError::Interrupted => f.write_str("the evaluation was interrupted"),
        }
    }
}

impl From<CelError> for String {
    fn from(e: CelError) -> Self {
        e.to_string()
    }
}

/// A parsed, metered program and the depth of its tree (checked against each call's limits).
struct Compiled {
    expr: Expression,
    depth: usize,
}

thread_local! {
    static PROGRAMS: RefCell<HashMap<String, Rc<Compiled>>> = RefCell::new(HashMap::new());
    static BUDGET: RefCell<Option<Budget>> = const { RefCell::new(None) };
}

/// What one evaluation may still spend; lives in [`BUDGET`] while the evaluation runs.
struct Budget {
    spent: u64,
    max_cost: u64,
    deadline: Option<Instant>,
    max_time: Option<Duration>,
    interrupted: fn() -> bool,
    tripped: Option<CelError>,
}

/// Whether `expr` compiles within the default limits; the error says why not.
pub fn check(expr: &str) -> Result<(), String> {
    check_with(expr, &Limits::default()).map_err(String::from)
}

/// Whether `expr` compiles within `limits` (length, nesting); the error says why not. The program is cached for
/// later evaluation.
pub fn check_with(expr: &str, limits: &Limits) -> Result<(), CelError> {
    compile(expr, limits).map(|_| ())
}

/// Compile `expr`, or take it from the cache; either way check it against `limits`.
fn compile(expr: &str, limits: &Limits) -> Result<Rc<Compiled>, CelError> {
    if expr.len() > limits.max_length {
        return Err(CelError::Invalid(format!(
            "the expression is {} bytes long, over the limit of {} bytes",
            expr.len(),
            limits.max_length
        )));
    }
    let cached = PROGRAMS.with(|c| c.borrow().get(expr).cloned());
    let program = match cached {
        Some(p) => p,
        None => {
            // Before the parser, which recurses once per nesting level: deep nesting must not reach it.
            let nesting = text_nesting(expr);
            if nesting > limits.max_depth {
                return Err(too_deep(nesting, limits));
            }
            let source = expr.to_string();
            // The parser is third-party code: a panic on odd input is caught and reported as a compile error.
            let mut parsed =
                std::panic::catch_unwind(move || cel_parser::Parser::new().parse(&source))
                    .map_err(|_| {
                        CelError::Invalid("the expression could not be parsed".to_string())
                    })?
                    .map_err(|e| CelError::Invalid(e.to_string()))?;
            let depth = tree_depth(&parsed, limits.max_depth + 1);
            if depth > limits.max_depth {
                return Err(too_deep(depth, limits));
            }
            meter_comprehensions(&mut parsed);
            let program = Rc::new(Compiled {
                expr: parsed,
                depth,
            });
            PROGRAMS.with(|c| {
                let mut c = c.borrow_mut();
                if c.len() >= CACHE_CAPACITY {
                    c.clear();
                }
                c.insert(expr.to_string(), program.clone());
            });
            program
        }
    };
    if program.depth > limits.max_depth {
        return Err(too_deep(program.depth, limits));
    }
    Ok(program)
}

fn too_deep(depth: usize, limits: &Limits) -> CelError {
    CelError::Invalid(format!(
        "the expression is nested {depth} levels deep, over the limit of {}",
        limits.max_depth
    ))
}

/// An upper bound, from the text alone, of how deep the parser will recurse: per open bracket (`(`, `[`, `{`) one
/// level, plus its conditionals (`?`: `a ? b : c ? d : e` nests) and the operators of its longest run of operands
/// (`a.b + c[0] < d` parses as a tree as deep as its operators, `.` and `[` included); `&&`, `||`, `,` and `:` end a
/// run, since the parser reads such lists in a loop. String literals are skipped. Numbers like `1.5e-3` count their
/// `.` and `-`, which only errs on the safe side.
fn text_nesting(expr: &str) -> usize {
    #[derive(Default)]
    struct Level {
        conditionals: usize,
        run: usize,
    }
    let bytes = expr.as_bytes();
    let mut levels: Vec<Level> = vec![Level::default()];
    let mut max = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let next = bytes.get(i + 1).copied();
        let mut step = 1;
        match b {
            b'\'' | b'"' => {
                // A string literal: '...', "...", '''...''' or """...""" (escapes skipped; raw strings too, which at
                // worst ends one early and counts a bracket too many: conservative).
                let triple = bytes.get(i..i + 3) == Some(&[b, b, b][..]);
                let close: &[u8] = if triple {
                    &bytes[i..i + 3]
                } else {
                    &bytes[i..i + 1]
                };
                let mut j = i + close.len();
                while j < bytes.len() && !bytes[j..].starts_with(close) {
                    j += if bytes[j] == b'\\' { 2 } else { 1 };
                }
                i = j + close.len();
                continue;
            }
            b'(' | b'{' => levels.push(Level::default()),
            b'[' => {
                // an index is an operator of the run it follows, and opens a level of its own
                if let Some(l) = levels.last_mut() {
                    l.run += 1;
                }
                levels.push(Level::default());
            }
            b')' | b']' | b'}' if levels.len() > 1 => {
                levels.pop();
            }
            b'?' => {
                if let Some(l) = levels.last_mut() {
                    l.conditionals += 1;
                    l.run = 0;
                }
            }
            b',' | b':' => {
                if let Some(l) = levels.last_mut() {
                    l.run = 0;
                }
            }
            b'&' | b'|' if next == Some(b) => {
                if let Some(l) = levels.last_mut() {
                    l.run = 0;
                }
                step = 2;
            }
            b'=' | b'!' | b'<' | b'>' | b'+' | b'-' | b'*' | b'/' | b'%' | b'.' => {
                if let Some(l) = levels.last_mut() {
                    l.run += 1;
                }
                if next == Some(b'=') {
                    step = 2;
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let mut j = i;
                while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                    j += 1;
                }
                if &bytes[i..j] == b"in" {
                    if let Some(l) = levels.last_mut() {
                        l.run += 1;
                    }
                }
                step = j - i;
            }
            _ => {}
        }
        let depth: usize = levels.iter().map(|l| 1 + l.conditionals + l.run).sum();
        max = max.max(depth);
        i += step;
    }
    max
}

/// The depth of the tree, counted up to `cap` (deeper trees are rejected anyway; the cap keeps this walk short).
fn tree_depth(e: &Expression, cap: usize) -> usize {
    if cap == 0 {
        return 0;
    }
    let below = |e: &Expression| tree_depth(e, cap - 1);
    let children = match &e.expr {
        Expr::Call(c) => c
            .target
            .iter()
            .map(|t| below(t))
            .chain(c.args.iter().map(below))
            .max(),
        Expr::Comprehension(c) => [
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ]
        .into_iter()
        .map(|x| below(x))
        .max(),
        Expr::List(l) => l.elements.iter().map(below).max(),
        Expr::Map(m) => m.entries.iter().map(|x| entry_depth(&x.expr, cap)).max(),
        Expr::Struct(s) => s.entries.iter().map(|x| entry_depth(&x.expr, cap)).max(),
        Expr::Select(s) => Some(below(&s.operand)),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => None,
    };
    1 + children.unwrap_or(0)
}

fn entry_depth(e: &EntryExpr, cap: usize) -> usize {
    match e {
        EntryExpr::MapEntry(m) => tree_depth(&m.key, cap - 1).max(tree_depth(&m.value, cap - 1)),
        EntryExpr::StructField(f) => tree_depth(&f.value, cap - 1),
    }
}

/// Rewrite every comprehension's loop condition `c` to `@hatchet_meter(accumulator) && c` (see the module docs).
fn meter_comprehensions(e: &mut Expression) {
    match &mut e.expr {
        Expr::Call(c) => {
            if let Some(t) = c.target.as_deref_mut() {
                meter_comprehensions(t);
            }
            c.args.iter_mut().for_each(meter_comprehensions);
        }
        Expr::Comprehension(c) => {
            for x in [
                &mut c.iter_range,
                &mut c.accu_init,
                &mut c.loop_cond,
                &mut c.loop_step,
                &mut c.result,
            ] {
                meter_comprehensions(x);
            }
            let meter = Expression {
                id: 0,
                expr: Expr::Call(CallExpr {
                    func_name: METER.to_string(),
                    target: None,
                    args: vec![Expression {
                        id: 0,
                        expr: Expr::Ident(c.accu_var.clone()),
                    }],
                }),
            };
            let cond = std::mem::take(&mut *c.loop_cond);
            *c.loop_cond = Expression {
                id: 0,
                expr: Expr::Call(CallExpr {
                    func_name: cel_parser::ast::operators::LOGICAL_AND.to_string(),
                    target: None,
                    args: vec![meter, cond],
                }),
            };
        }
        Expr::List(l) => l.elements.iter_mut().for_each(meter_comprehensions),
        Expr::Map(m) => m.entries.iter_mut().for_each(|x| meter_entry(&mut x.expr)),
        Expr::Struct(s) => s.entries.iter_mut().for_each(|x| meter_entry(&mut x.expr)),
        Expr::Select(s) => meter_comprehensions(&mut s.operand),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

fn meter_entry(e: &mut EntryExpr) {
    match e {
        EntryExpr::MapEntry(m) => {
            meter_comprehensions(&mut m.key);
            meter_comprehensions(&mut m.value);
        }
        EntryExpr::StructField(f) => meter_comprehensions(&mut f.value),
    }
}

/// The metering function: charge one iteration, then check the budget, the clock and the interrupt hook.
fn meter(accumulator: Value) -> Result<Value, ExecutionError> {
    let size = match &accumulator {
        Value::List(l) => l.len() as u64,
        Value::Map(m) => m.map.len() as u64,
        _ => 0,
    };
    BUDGET.with(|b| {
        let mut b = b.borrow_mut();
        let Some(b) = b.as_mut() else {
            return Ok(Value::Bool(true));
        };
        if b.tripped.is_none() {
            b.spent = b.spent.saturating_add(1 + size);
            if b.spent > b.max_cost {
                b.tripped = Some(CelError::OverBudget(format!(
                    "the expression exceeded its evaluation budget of {} steps",
                    b.max_cost
                )));
            } else if (b.interrupted)() {
                b.tripped = Some(CelError::Interrupted);
            } else if b.deadline.is_some_and(|d| Instant::now() >= d) {
                let ms = b.max_time.unwrap_or_default().as_millis();
                b.tripped = Some(CelError::OverBudget(format!(
                    "the expression exceeded its evaluation time limit of {ms} ms"
                )));
            }
        }
        match &b.tripped {
            None => Ok(Value::Bool(true)),
            Some(e) => Err(ExecutionError::function_error(METER, e)),
        }
    })
}

/// Clears the thread's budget when an evaluation ends, however it ends.
struct BudgetGuard;

impl Drop for BudgetGuard {
    fn drop(&mut self) {
        BUDGET.with(|b| b.borrow_mut().take());
    }
}

fn never_interrupted() -> bool {
    false
}

/// Evaluate `expr` within the default limits, never interrupted (see [`eval_with`]).
pub fn eval(expr: &str, vars: &serde_json::Value) -> Result<serde_json::Value, String> {
    eval_with(expr, vars, &Limits::default(), never_interrupted).map_err(String::from)
}

/// Evaluate `expr` with the top-level keys of `vars` (a JSON object, or null for none) as variables; the result as
/// JSON. `interrupted` is asked at every comprehension iteration; when it says true the evaluation stops with
/// [`CelError::Interrupted`].
pub fn eval_with(
    expr: &str,
    vars: &serde_json::Value,
    limits: &Limits,
    interrupted: fn() -> bool,
) -> Result<serde_json::Value, CelError> {
    let program = compile(expr, limits)?;
    let mut ctx = Context::default();
    ctx.add_function(METER, meter);
    if let Some(obj) = vars.as_object() {
        for (name, value) in obj {
            let v = cel_interpreter::to_value(value)
                .map_err(|e| CelError::Invalid(format!("variable \"{name}\": {e}")))?;
            ctx.add_variable_from_value(name.clone(), v);
        }
    } else if !vars.is_null() {
        return Err(CelError::Invalid(
            "variables must be a JSON object".to_string(),
        ));
    }
    BUDGET.with(|b| {
        *b.borrow_mut() = Some(Budget {
            spent: 0,
            max_cost: limits.max_cost,
            deadline: limits.max_time.map(|t| Instant::now() + t),
            max_time: limits.max_time,
            interrupted,
            tripped: None,
        })
    });
    let guard = BudgetGuard;
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ctx.resolve(&program.expr)));
    // A tripped budget wins over whatever the interpreter made of the meter's error.
    let tripped = BUDGET.with(|b| b.borrow_mut().as_mut().and_then(|b| b.tripped.take()));
    drop(guard);
    if let Some(e) = tripped {
        return Err(e);
    }
    let result = result
        .map_err(|_| CelError::Invalid("the expression failed to evaluate".to_string()))?
        .map_err(|e| CelError::Invalid(e.to_string()))?;
    to_json(&result).map_err(CelError::Invalid)
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

    /// Run `f` on a thread with the stack of a Postgres backend (8 MiB): a debug build of the ANTLR parser uses
    /// about 100 KiB per nesting level (a release build about 7 KiB), more than a test thread's 2 MiB allows at
    /// the default limit of 32 levels.
    fn on_backend_stack(f: impl FnOnce() + Send + 'static) {
        std::thread::Builder::new()
            .stack_size(8 << 20)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap();
    }

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
        let limits = Limits::default();
        let a = compile("input.n * 2", &limits).unwrap();
        let b = compile("input.n * 2", &limits).unwrap();
        assert!(Rc::ptr_eq(&a, &b));
    }

    #[test]
    fn comprehensions_still_work_when_metered() {
        let vars = json!({"input": {"l": [1, 2, 3], "m": {"a": 1, "b": 2}}});
        assert_eq!(eval("input.l.map(x, x + x)", &vars), Ok(json!([2, 4, 6])));
        assert_eq!(eval("input.l.filter(x, x > 1)", &vars), Ok(json!([2, 3])));
        assert_eq!(eval("input.l.all(x, x > 0)", &vars), Ok(json!(true)));
        assert_eq!(eval("input.l.exists(x, x == 3)", &vars), Ok(json!(true)));
        assert_eq!(eval("input.l.exists_one(x, x > 2)", &vars), Ok(json!(true)));
        assert_eq!(eval("input.m.all(k, k != 'c')", &vars), Ok(json!(true)));
        assert_eq!(
            eval("input.l.map(x, input.l.map(y, x * y))", &vars),
            Ok(json!([[1, 2, 3], [2, 4, 6], [3, 6, 9]]))
        );
    }

    #[test]
    fn the_meter_cannot_be_called_from_cel_text() {
        assert!(check("@hatchet_meter([])").is_err());
        // and a comprehension's own variables cannot reach it either
        let r = eval("[1].map(x, hatchet_meter(x))", &json!({}));
        assert!(r.is_err());
    }

    #[test]
    fn nested_map_over_a_big_list_runs_out_of_budget_fast() {
        let big: Vec<i64> = (0..10_000).collect();
        let vars = json!({ "input": { "l": big } });
        // The work budget alone (no time limit): without it this would run for days.
        let limits = Limits {
            max_time: None,
            ..Limits::default()
        };
        let r = eval_with(
            "input.l.map(x, input.l.map(y, input.l.map(z, x + y + z)))",
            &vars,
            &limits,
            never_interrupted,
        );
        assert_eq!(
            r,
            Err(CelError::OverBudget(
                "the expression exceeded its evaluation budget of 10000000 steps".to_string()
            ))
        );
    }

    #[test]
    fn the_budget_is_per_evaluation() {
        let l: Vec<i64> = (0..100).collect();
        let vars = json!({ "input": { "l": l } });
        let limits = Limits {
            max_cost: 10_000,
            ..Limits::default()
        };
        // 100 iterations over an accumulator growing to 99 elements: 100 + 4950 steps, twice in a row.
        for _ in 0..2 {
            assert!(eval_with("input.l.map(x, x)", &vars, &limits, never_interrupted).is_ok());
        }
        let tight = Limits {
            max_cost: 1_000,
            ..Limits::default()
        };
        assert!(matches!(
            eval_with("input.l.map(x, x)", &vars, &tight, never_interrupted),
            Err(CelError::OverBudget(_))
        ));
    }

    #[test]
    fn the_time_limit_stops_a_long_evaluation() {
        let big: Vec<i64> = (0..10_000).collect();
        let vars = json!({ "input": { "l": big } });
        let limits = Limits {
            max_cost: u64::MAX,
            max_time: Some(Duration::from_millis(1)),
            ..Limits::default()
        };
        let r = eval_with(
            "input.l.map(x, input.l.map(y, y))",
            &vars,
            &limits,
            never_interrupted,
        );
        assert_eq!(
            r,
            Err(CelError::OverBudget(
                "the expression exceeded its evaluation time limit of 1 ms".to_string()
            ))
        );
    }

    #[test]
    fn an_interrupt_stops_the_evaluation() {
        fn always() -> bool {
            true
        }
        let vars = json!({ "input": { "l": [1, 2, 3] } });
        let r = eval_with("input.l.map(x, x)", &vars, &Limits::default(), always);
        assert_eq!(r, Err(CelError::Interrupted));
        // no comprehension: nothing to interrupt, the (bounded) evaluation finishes
        assert_eq!(
            eval_with("input.l[0]", &vars, &Limits::default(), always),
            Ok(json!(1))
        );
        // the budget of an interrupted evaluation does not leak into the next one
        assert_eq!(eval("input.l.map(x, x)", &vars), Ok(json!([1, 2, 3])));
    }

    #[test]
    fn long_and_deep_expressions_are_refused_before_parsing() {
        on_backend_stack(|| {
            let long = format!("'{}'", "a".repeat(5000));
            assert_eq!(
                check(&long),
                Err("the expression is 5002 bytes long, over the limit of 4096 bytes".to_string())
            );
            let deep = format!("{}1{}", "(".repeat(2000), ")".repeat(2000));
            assert_eq!(
                check(&deep),
                Err("the expression is nested 2001 levels deep, over the limit of 32".to_string())
            );
            // Deep without brackets: chains the parser recurses on (each of these overflows a 2 MiB stack in a debug
            // build at 1,000 to 2,000 operators when it reaches the parser).
            for chain in [
                vec!["1"; 2000].join("+"),
                vec!["1"; 1000].join("<"),
                format!("a{}", ".b".repeat(2000)),
                format!("a{}", "[0]".repeat(1300)),
                "true ? 1 : ".repeat(60) + "0",
            ] {
                assert!(chain.len() <= 4096);
                let e = check(&chain).unwrap_err();
                assert!(e.contains("levels deep, over the limit of 32"), "{e}");
            }
            // brackets and operators inside string literals do not count
            assert_eq!(
                check(&format!("'{}' + \"{}\"", "(".repeat(100), "[+".repeat(100))),
                Ok(())
            );
            assert_eq!(check(&format!("'''{}'''", "(\"".repeat(100))), Ok(()));
        });
    }

    #[test]
    fn realistic_expressions_fit_the_default_limits() {
        on_backend_stack(|| {
            let vars = json!({"input": {"k0": "v0", "l": [1, 2]}});
            let ors = (0..40)
                .map(|i| format!("input.k{i} == 'v{i}'"))
                .collect::<Vec<_>>()
                .join(" || ");
            assert_eq!(check(&ors), Ok(()));
            let key = "input.tenant + ':' + input.user.region + ':' + string(input.user.id % 16) + ':' + input.kind";
            assert_eq!(check(key), Ok(()));
            assert_eq!(
                eval(
                    "input.l.exists(x, input.l.filter(y, y > x).size() > 0) ? 'a' : 'b'",
                    &vars
                ),
                Ok(json!("a"))
            );
            assert_eq!(
                eval(&format!("{}1{}", "(".repeat(30), ")".repeat(30)), &vars),
                Ok(json!(1))
            );
        });
    }
}
