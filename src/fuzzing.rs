//! The bodies of the fuzz targets in `fuzz/`, shared with the regression test that
//! replays every saved input (`tests/fuzz_regressions.rs`).

use serde_json::json;

use crate::event::{check_depth, parse_batch};
use crate::expr::{content_size, Expr, ExprError, DEFAULT_BUDGET};
use crate::function::{Function, FunctionDef};

/// The CEL parser (antlr4rust) panics on some inputs; `Expr::compile` catches that and
/// reports a parse error. libFuzzer's panic hook aborts on every panic, so fuzz targets
/// call this once to let those known, caught panics unwind while any other panic still
/// aborts (and is reported as a crash).
pub fn tolerate_caught_parser_panics() {
    let fuzzer_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info
            .location()
            .is_some_and(|l| l.file().contains("antlr4rust"))
        {
            return;
        }
        fuzzer_hook(info);
    }));
}

/// Parses a body as `POST /e` would; must never panic.
pub fn event_parse(data: &[u8]) {
    if check_depth(data, 64).is_ok() {
        if let Ok(events) = parse_batch(data, 5_000) {
            for e in events {
                let _ = e.to_value();
                let _ = e.user_id();
            }
        }
    }
}

/// Parses and validates a function definition; must never panic.
pub fn function_parse(data: &[u8]) {
    if let Ok(def) = FunctionDef::from_json(data) {
        let _ = Function::compile(def, 1, |_, _| Ok(()));
    }
}

/// Compiles an expression and evaluates it against a sample event; must never panic,
/// never run past its cost budget, and never cost more than its static bound.
pub fn cel_compile(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(expr) = Expr::compile(src) else {
        return;
    };
    let event = json!({"name": "a/b", "data": {"n": 1, "s": "x", "l": [1, 2], "m": {"k": true}}, "user": {"id": "u1"}});
    let steps = json!({});
    let vars = [("event", &event), ("async", &event), ("steps", &steps)];
    // The meter stops evaluation at its budget: a refused charge counts one unit, and
    // any work after it would count more.
    for budget in [0, 1, 2, 5, 17, 100, DEFAULT_BUDGET] {
        let (result, used) = expr.eval_bool_counted(&vars, budget);
        match result {
            Err(ExprError::Budget { .. }) => assert_eq!(
                used,
                budget + 1,
                "`{src}` went on after running out of its budget of {budget}"
            ),
            _ => assert!(
                used <= budget,
                "`{src}` spent {used} of a budget of {budget}"
            ),
        }
    }
    // The static bound is an upper bound: with it as the budget, evaluation never runs out.
    let n = vars.iter().map(|(_, v)| content_size(v)).max().unwrap_or(1);
    let bound = expr.bound_at(n);
    if bound <= 1_000_000 {
        let (result, used) = expr.eval_bool_counted(&vars, bound);
        assert!(
            !matches!(result, Err(ExprError::Budget { .. })),
            "`{src}` cost {used}, more than its static bound of {bound}"
        );
    }
}
