//! Conditions: the CEL of edges and waits, evaluated over what a run knows so far.

use serde_json::{Map, Value};

use crate::function::Function;
use crate::run::{Run, StepStatus};

/// The outputs of every completed step, by id.
pub fn outputs(run: &Run) -> Value {
    let m: Map<String, Value> = run
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Completed)
        .map(|s| {
            (
                s.id.clone(),
                s.output.as_ref().map_or(Value::Null, |o| o.get().clone()),
            )
        })
        .collect();
    Value::Object(m)
}

pub(super) fn holds(cond: Option<&crate::expr::Expr>, vars: &[(&str, &Value)]) -> bool {
    cond.is_none_or(|c| c.eval_bool(vars).unwrap_or(false))
}

/// The edge's `if`, with `async` bound; a failing condition is not taken.
pub(super) fn edge_condition(
    f: &Function,
    run: &mut Run,
    child: usize,
    e: usize,
    async_event: &Value,
) -> bool {
    let edge = &f.steps[child].incoming[e];
    let Some(cond) = &edge.cond else { return true };
    let steps = outputs(run);
    let response = edge
        .parent
        .and_then(|p| run.steps[p].output.as_ref().map(|o| o.get().clone()))
        .unwrap_or(Value::Null);
    let vars = [
        ("event", run.event.get()),
        ("steps", &steps),
        ("response", &response),
        ("async", async_event),
    ];
    match cond.eval_bool(&vars) {
        Ok(b) => b,
        Err(err) => {
            let from = edge
                .parent
                .map(|p| f.steps[p].id.as_str())
                .unwrap_or(crate::function::TRIGGER);
            run.steps[child].error = Some(format!("edge from `{from}` not taken: {err}"));
            false
        }
    }
}
