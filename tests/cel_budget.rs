//! The CEL cost budget through the real binary: deploy refuses expressions whose static
//! bound is over it; a deployable one that a crafted event makes expensive is cut off
//! at run time, does not match, and is counted.

mod common;

use common::Server;
use serde_json::{json, Value};

/// Seven nested comprehensions over ten elements: 10^7 evaluations of the body (~13 s
/// of ingest with the old evaluator).
const TEN_TO_THE_SEVENTH: &str = "[1,2,3,4,5,6,7,8,9,10].all(a, [1,2,3,4,5,6,7,8,9,10].all(b, \
    [1,2,3,4,5,6,7,8,9,10].all(c, [1,2,3,4,5,6,7,8,9,10].all(d, [1,2,3,4,5,6,7,8,9,10].all(e, \
    [1,2,3,4,5,6,7,8,9,10].all(f, [1,2,3,4,5,6,7,8,9,10].all(g, a+b+c+d+e+f+g > 0)))))))";

fn deploy_error(s: &Server, def: Value) -> String {
    let (st, body) = s.deploy(def);
    assert_eq!(st, 400, "{body}");
    body["error"].as_str().unwrap().to_string()
}

fn trigger_errors(s: &Server) -> u64 {
    let (_, metrics) = s.get("/metrics");
    metrics
        .as_str()
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("weir_trigger_errors_total "))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn the_ten_million_step_trigger_is_refused_at_deploy_naming_it() {
    let s = Server::start();
    let e = deploy_error(
        &s,
        json!({"id": "hostile", "triggers": [{"event": "e", "expression": TEN_TO_THE_SEVENTH}],
            "steps": {"a": {"path": "guest:echo"}}}),
    );
    assert!(
        e.starts_with(&format!(
            "function `hostile`: triggers[0].expression: `{TEN_TO_THE_SEVENTH}` may cost up to"
        )),
        "{e}"
    );
    assert!(e.contains("budget of 10000"), "{e}");
    // An edge condition that nests passes over event data is refused the same way.
    let nested = "event.data.xs.exists(x, event.data.ys.exists(y, x == y))";
    let e = deploy_error(
        &s,
        json!({"id": "quadratic", "triggers": [{"event": "e"}],
            "steps": {"a": {"path": "guest:echo", "after": [{"step": "$trigger", "if": nested}]}}}),
    );
    assert!(
        e.contains(&format!(
            "function `quadratic`: steps.a.after[0].if: `{nested}`"
        )) && e.contains("nests passes"),
        "{e}"
    );
    let (st, _) = s.get("/v1/functions/hostile");
    assert_eq!(st, 404, "nothing was deployed");
}

#[test]
fn a_deployable_trigger_on_a_crafted_big_event_is_cut_off_and_counted() {
    let s = Server::start();
    s.deploy_ok(
        json!({"id": "always", "triggers": [{"event": "order/placed"}],
        "steps": {"a": {"path": "guest:echo"}}}),
    );
    s.deploy_ok(
        json!({"id": "big-spender", "triggers": [{"event": "order/placed",
        "expression": "event.data.items.exists(i, i.price > 100)"}],
        "steps": {"a": {"path": "guest:echo"}}}),
    );
    let errors_before = trigger_errors(&s);
    // 30,000 items (~400 KB, well within the ingress limits), none of them matching:
    // about 300,000 cost units, thirty times the default budget.
    let items: Vec<Value> = (0..30_000).map(|_| json!({"price": 1})).collect();
    let big = s.send(json!({"name": "order/placed", "data": {"items": items}}));
    // Both triggers are matched in one pass; `always` makes the run list non-empty.
    let runs = s.runs_of(&big);
    assert_eq!(runs.len(), 1, "only `always` ran: {runs:?}");
    assert_eq!(s.wait_done(&runs[0])["function_id"], "always");
    assert_eq!(
        trigger_errors(&s),
        errors_before + 1,
        "the cut-off is counted"
    );
    // Counted per tenant too, as a budget cut-off.
    let (_, metrics) = s.get("/metrics");
    assert!(
        metrics
            .as_str()
            .unwrap()
            .lines()
            .any(|l| l == "weir_cel_budget_exceeded_total{tenant=\"default\"} 1"),
        "{metrics}"
    );
    // The same trigger on an ordinary event matches.
    let small =
        s.send(json!({"name": "order/placed", "data": {"items": [{"price": 5}, {"price": 500}]}}));
    assert_eq!(s.runs_of(&small).len(), 2);
    assert_eq!(trigger_errors(&s), errors_before + 1);
}

#[test]
fn an_edge_if_that_runs_out_of_budget_fails_its_step_saying_why() {
    let s = Server::start();
    s.deploy_ok(
        json!({"id": "checkout", "triggers": [{"event": "order/placed"}], "steps": {
        "first": {"path": "guest:echo"},
        "big": {"path": "guest:echo",
                "after": [{"step": "first", "if": "event.data.items.exists(i, i.price > 100)"}]}}}),
    );
    let items: Vec<Value> = (0..30_000).map(|_| json!({"price": 1})).collect();
    let run =
        s.runs_of(&s.send(json!({"name": "order/placed", "data": {"items": items}})))[0].clone();
    let done = s.wait_done(&run);
    assert_eq!(done["status"], "failed", "{done:#}");
    assert_eq!(done["steps"]["first"]["status"], "completed");
    assert_eq!(done["steps"]["big"]["status"], "failed");
    assert_eq!(done["steps"]["big"]["attempts"], 0, "it never ran");
    let error = done["steps"]["big"]["error"].as_str().unwrap();
    assert!(
        error.contains("edge from `first`") && error.contains("CEL cost budget"),
        "{error}"
    );
    // On an ordinary event the same edge is simply evaluated.
    let ok = s
        .runs_of(&s.send(json!({"name": "order/placed", "data": {"items": [{"price": 500}]}})))[0]
        .clone();
    assert_eq!(s.wait_done(&ok)["status"], "completed");
}
