//! Conditions: the CEL of edges and waits, evaluated over what a run knows so far.

use serde_json::{Map, Value};

use crate::expr::{Expr, ExprError};
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

/// Whether a wait's condition (`async.match`, `cancel.if`) holds, under the function's
/// CEL budget; one that fails to evaluate or runs out of budget does not hold.
pub(super) fn holds(f: &Function, cond: Option<&Expr>, vars: &[(&str, &Value)]) -> bool {
    cond.is_none_or(|c| match c.eval_bool_with_budget(vars, f.cel_budget) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(function = f.id, "a wait's condition does not hold: {e}");
            false
        }
    })
}

/// The edge's `if`, with `async` bound, under the function's CEL budget. A condition
/// that fails to evaluate is not taken (and the child says why); one that runs out of
/// budget fails the child step, and with it the run (see `settle`).
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
    match cond.eval_bool_with_budget(&vars, f.cel_budget) {
        Ok(b) => b,
        Err(err) => {
            let from = edge
                .parent
                .map(|p| f.steps[p].id.as_str())
                .unwrap_or(crate::function::TRIGGER);
            let st = &mut run.steps[child];
            if let ExprError::Budget { .. } = err {
                st.status = StepStatus::Failed;
                st.error = Some(format!("the `if` of the edge from `{from}` failed: {err}"));
            } else {
                st.error = Some(format!("edge from `{from}` not taken: {err}"));
            }
            false
        }
    }
}
