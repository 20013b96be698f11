//! `GET /v1/stream` against the real binary: a listener sees events arrive and runs move
//! on live, filtered by function and user, and only its own tenant's.

mod common;

use std::sync::mpsc;

use common::{listen, one_step, Server, DEADLINE, TWO_TENANTS};
use serde_json::{json, Value};

/// Collects updates until `done` holds for one; returns all of them.
fn until(
    rx: &mpsc::Receiver<(String, Value)>,
    done: impl Fn(&str, &Value) -> bool,
) -> Vec<(String, Value)> {
    let mut got = Vec::new();
    loop {
        let (n, v) = rx
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("the stream went quiet; so far: {got:?}"));
        let stop = done(&n, &v);
        got.push((n, v));
        if stop {
            return got;
        }
    }
}

#[test]
fn a_listener_sees_an_event_arrive_and_its_run_complete_step_by_step() {
    let s = Server::start();
    s.deploy_ok(
        json!({"id": "chain", "triggers": [{"event": "go"}], "steps": {
        "a": {"path": "guest:hello"},
        "b": {"path": "guest:echo", "after": [{"step": "a"}]}}}),
    );
    s.deploy_ok(one_step("other", "elsewhere", "echo", json!({})));
    let all = listen(&s, "/v1/stream", None);
    let chain = listen(&s, "/v1/stream?function=chain", None);
    let eid = s.send(json!({"name": "go", "data": {"name": "Ada"}, "user": {"id": "u1"}}));
    let got = until(&all, |n, v| {
        n == "run.updated" && v["status"] == "completed"
    });
    // The event is streamed once (usually before its run; matching may be quicker).
    let received: Vec<&Value> = got
        .iter()
        .filter(|(n, _)| n == "event.received")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        received,
        [&json!({"type": "event.received", "id": eid, "name": "go", "user_id": "u1"})]
    );
    let runs: Vec<&Value> = got
        .iter()
        .filter(|(n, _)| n == "run.updated")
        .map(|(_, v)| v)
        .collect();
    assert!(
        runs.iter()
            .any(|v| v["status"] == "running" && v.get("step").is_none()),
        "the new run is streamed: {runs:?}"
    );
    let steps: Vec<(&str, &str)> = runs
        .iter()
        .filter_map(|v| Some((v["step"].as_str()?, v["step_status"].as_str()?)))
        .collect();
    assert!(
        steps.contains(&("a", "completed")) && steps.contains(&("b", "completed")),
        "each step's end is streamed: {steps:?}"
    );
    let run_id = runs[0]["run_id"].clone();
    assert!(runs
        .iter()
        .all(|v| v["run_id"] == run_id && v["function_id"] == "chain"));
    // The function filter leaves the event out and keeps the run.
    let filtered = until(&chain, |n, v| {
        n == "run.updated" && v["status"] == "completed"
    });
    assert!(
        filtered.iter().all(|(n, _)| n == "run.updated"),
        "{filtered:?}"
    );
    // Another function's run is not on `chain`'s stream.
    s.send(json!({"name": "elsewhere"}));
    s.send(json!({"name": "go", "user": {"id": "u2"}}));
    let next = until(&chain, |n, v| {
        n == "run.updated" && v["status"] == "completed"
    });
    assert!(
        next.iter().all(|(_, v)| v["function_id"] == "chain"),
        "{next:?}"
    );
}

#[test]
fn the_stream_is_per_tenant_and_filters_by_user() {
    let a = Server::serve(TWO_TENANTS, "api_acme_0001", "evt_acme_0001");
    let g = Server::serve_view(&a, "api_globex_01", "evt_globex_01");
    a.deploy_ok(one_step("f", "go", "echo", json!({})));
    g.deploy_ok(one_step("f", "go", "echo", json!({})));
    let acme_u2 = listen(&a, "/v1/stream?user=u2", Some("api_acme_0001"));
    let globex = listen(&g, "/v1/stream", Some("api_globex_01"));
    a.send(json!({"name": "go", "user": {"id": "u1"}}));
    a.send(json!({"name": "go", "user": {"id": "u2"}}));
    let got = until(&acme_u2, |n, v| {
        n == "run.updated" && v["status"] == "completed"
    });
    assert!(got.iter().all(|(_, v)| v["user_id"] == "u2"), "{got:?}");
    // globex's listener saw nothing of acme: everything on it is its own event's.
    let gid = g.send(json!({"name": "go", "user": {"id": "u1"}}));
    let seen = until(&globex, |n, v| {
        n == "run.updated" && v["status"] == "completed"
    });
    let runs = g.runs_of(&gid);
    for (n, v) in &seen {
        match n.as_str() {
            "event.received" => assert_eq!(v["id"], json!(gid)),
            _ => assert!(
                runs.contains(&v["run_id"].as_str().unwrap().to_string()),
                "{v}"
            ),
        }
    }
    assert!(seen.iter().any(|(n, _)| n == "event.received"), "{seen:?}");
    // The stream needs an API key, like the rest of /v1.
    let (st, body, _) = a.request("GET", "/v1/stream", None, None);
    assert_eq!((st, body["code"].as_str()), (401, Some("unauthorized")));
    let (st, _, _) = a.request("GET", "/v1/stream", None, Some("evt_acme_0001"));
    assert_eq!(st, 403);
}

#[test]
fn a_deploy_is_announced_to_the_functions_listeners_only() {
    let s = Server::start();
    s.deploy_ok(one_step("f", "go", "echo", json!({})));
    let mine = listen(&s, "/v1/stream?function=f", None);
    let other = listen(&s, "/v1/stream?function=g", None);
    assert_eq!(s.deploy_ok(one_step("f", "go", "hello", json!({}))), 2);
    let got = until(&mine, |n, _| n == "function.deployed");
    assert_eq!(
        got.last().unwrap().1,
        json!({"type": "function.deployed", "function_id": "f", "version": 2})
    );
    // `g`'s listener hears its own deploy, and nothing of `f`'s before it.
    s.deploy_ok(one_step("g", "go", "echo", json!({})));
    let got = until(&other, |n, _| n == "function.deployed");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1["function_id"], "g");
}
