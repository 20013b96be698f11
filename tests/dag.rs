//! Functions as DAGs of real wasm steps: outputs flow along edges, `if` skips subtrees,
//! one event fans out to several functions.

mod common;

use common::Server;
use serde_json::json;

#[test]
fn a_chain_passes_each_output_to_the_next_step() {
    let s = Server::start();
    s.deploy_ok(
        json!({"id": "chain", "triggers": [{"event": "demo/hello"}], "steps": {
            "hello": {"path": "guest:hello"},
            "shout": {"path": "guest:shout", "after": [{"step": "hello"}]},
            "echo": {"path": "guest:echo", "after": [{"step": "shout"}]}
        }}),
    );
    let run = s.send_and_finish(
        json!({"name": "demo/hello", "data": {"name": "Ada"}, "user": {"id": "u_1"}}),
    );
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(
        run["steps"]["hello"]["output"]["body"]["message"],
        "Hello, Ada!"
    );
    assert_eq!(run["steps"]["hello"]["log"], "greeting Ada\n");
    assert_eq!(
        run["steps"]["shout"]["output"]["body"],
        json!({"shout": "HELLO, ADA!", "from_length": 11})
    );
    // The last step saw the trigger event, both earlier outputs, and its context.
    let seen = &run["steps"]["echo"]["output"];
    assert_eq!(seen["event"]["data"]["name"], "Ada");
    assert_eq!(seen["steps"]["shout"]["body"]["shout"], "HELLO, ADA!");
    assert_eq!(seen["ctx"]["step_id"], "echo");
    assert_eq!(seen["ctx"]["function_id"], "chain");
    assert_eq!(seen["ctx"]["attempt"], 0);
    assert_eq!(seen["ctx"]["run_id"], run["id"]);
    assert_eq!(run["user_id"], "u_1");
    for step in ["hello", "shout", "echo"] {
        assert_eq!(run["steps"][step]["attempts"], 1);
        assert!(
            run["steps"][step]["ended_at"].as_i64() >= run["steps"][step]["started_at"].as_i64()
        );
    }
}

#[test]
fn steps_in_c_rust_and_wat_chain_in_one_run() {
    let s = Server::start();
    s.deploy_ok(
        json!({"id": "polyglot", "triggers": [{"event": "poly"}], "steps": {
            "c": {"path": "guest:hello"},
            "rust": {"path": "guest:reverse", "after": [{"step": "c"}]},
            "wat": {"path": "guest:echo", "after": [{"step": "rust"}]}
        }}),
    );
    let run = s.send_and_finish(json!({"name": "poly", "data": {"name": "weir"}}));
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(run["steps"]["rust"]["output"]["body"]["reversed"], "riew");
    assert_eq!(run["steps"]["rust"]["log"], "reversing weir\n");
    assert_eq!(
        run["steps"]["wat"]["output"]["steps"]["rust"]["body"]["reversed"],
        "riew"
    );
    assert_eq!(
        run["steps"]["wat"]["output"]["steps"]["c"]["body"]["message"],
        "Hello, weir!"
    );
}

#[test]
fn a_false_if_skips_its_subtree_and_the_run_still_completes() {
    let s = Server::start();
    s.deploy_ok(json!({"id": "branch", "triggers": [{"event": "order/placed"}], "steps": {
        "check": {"path": "guest:echo"},
        "ship": {"path": "guest:echo", "after": [{"step": "check", "if": "response.event.data.paid == true"}]},
        "remind": {"path": "guest:echo", "after": [{"step": "check", "if": "response.event.data.paid == false"}]},
        "remind-again": {"path": "guest:echo", "after": [{"step": "remind"}]},
        "close": {"path": "guest:echo", "after": [{"step": "ship"}, {"step": "remind-again"}]}
    }}));
    let paid = s.send_and_finish(json!({"name": "order/placed", "data": {"paid": true}}));
    assert_eq!(paid["status"], "completed", "{paid:#}");
    assert_eq!(paid["steps"]["ship"]["status"], "completed");
    assert_eq!(paid["steps"]["remind"]["status"], "skipped");
    assert_eq!(paid["steps"]["remind-again"]["status"], "skipped");
    assert_eq!(paid["steps"]["remind-again"]["attempts"], 0);
    // A join runs when one of its edges is taken and the others resolved as skipped.
    assert_eq!(paid["steps"]["close"]["status"], "completed");
    let unpaid = s.send_and_finish(json!({"name": "order/placed", "data": {"paid": false}}));
    assert_eq!(unpaid["steps"]["ship"]["status"], "skipped");
    assert_eq!(unpaid["steps"]["remind-again"]["status"], "completed");
    assert_eq!(unpaid["steps"]["close"]["status"], "completed");
}

#[test]
fn an_if_that_cannot_be_evaluated_is_not_taken_and_says_why() {
    let s = Server::start();
    s.deploy_ok(json!({"id": "strict", "triggers": [{"event": "e"}], "steps": {
        "a": {"path": "guest:echo"},
        "b": {"path": "guest:echo", "after": [{"step": "a", "if": "response.event.data.missing == 1"}]}
    }}));
    let run = s.send_and_finish(json!({"name": "e", "data": {}}));
    assert_eq!(run["status"], "completed");
    assert_eq!(run["steps"]["b"]["status"], "skipped");
    let why = run["steps"]["b"]["error"].as_str().unwrap();
    assert!(
        why.contains("edge from `a` not taken") && why.contains("missing"),
        "{why}"
    );
}

#[test]
fn one_event_fans_out_to_every_function_it_triggers() {
    let s = Server::start();
    for id in ["fan-a", "fan-b"] {
        s.deploy_ok(json!({"id": id, "triggers": [{"event": "user/signed.up"}], "steps": {"s": {"path": "guest:echo"}}}));
    }
    s.deploy_ok(json!({"id": "filtered-out", "triggers": [{"event": "user/signed.up", "expression": "data.plan == 'pro'"}],
        "steps": {"s": {"path": "guest:echo"}}}));
    s.deploy_ok(json!({"id": "other-event", "triggers": [{"event": "user/deleted"}], "steps": {"s": {"path": "guest:echo"}}}));
    let id = s.send(json!({"name": "user/signed.up", "data": {"plan": "free"}}));
    let runs = s.runs_of(&id);
    assert_eq!(runs.len(), 2, "{runs:?}");
    let mut functions: Vec<String> = runs
        .iter()
        .map(|r| {
            let run = s.wait_done(r);
            assert_eq!(run["status"], "completed");
            run["function_id"].as_str().unwrap().to_string()
        })
        .collect();
    functions.sort();
    assert_eq!(functions, vec!["fan-a", "fan-b"]);
    // The seed's bare-field form of a trigger expression matches too.
    let id = s.send(json!({"name": "user/signed.up", "data": {"plan": "pro"}}));
    assert_eq!(s.runs_of(&id).len(), 3);
}

#[test]
fn runs_list_filters_and_pages() {
    let s = Server::start();
    s.deploy_ok(json!({"id": "listed", "triggers": [{"event": "e"}], "steps": {"s": {"path": "guest:echo"}}}));
    for i in 0..5 {
        s.send_and_finish(json!({"name": "e", "user": {"id": if i < 2 { "u1" } else { "u2" }}}));
    }
    let (_, p1) = s.get("/v1/runs?function=listed&limit=3");
    assert_eq!(p1["data"].as_array().unwrap().len(), 3);
    let cursor = p1["next_cursor"].as_str().unwrap();
    let (_, p2) = s.get(&format!("/v1/runs?function=listed&limit=3&cursor={cursor}"));
    assert_eq!(p2["data"].as_array().unwrap().len(), 2);
    assert!(p2["next_cursor"].is_null());
    let (_, u1) = s.get("/v1/runs?user=u1");
    assert_eq!(u1["data"].as_array().unwrap().len(), 2);
    let (_, done) = s.get("/v1/runs?status=completed&limit=100");
    assert_eq!(done["data"].as_array().unwrap().len(), 5);
    let (_, failed) = s.get("/v1/runs?status=failed");
    assert!(failed["data"].as_array().unwrap().is_empty());
    let (st, bad) = s.get("/v1/runs?status=sideways");
    assert_eq!(st, 400);
    assert!(bad["error"].as_str().unwrap().contains("sideways"));
    let (_, f) = s.get("/v1/functions/listed");
    assert_eq!(f["runs"]["completed"], 5);
    assert_eq!(f["runs"]["running"], 0);
}

#[test]
fn under_load_every_step_runs_exactly_once() {
    let s = Server::start();
    s.deploy_ok(
        json!({"id": "pair", "triggers": [{"event": "load/pair"}], "steps": {
            "hello": {"path": "guest:hello"},
            "shout": {"path": "guest:shout", "after": [{"step": "hello"}]}
        }}),
    );
    // 300 runs arriving together: steps finish while the dispatcher is scanning, which is
    // when a finished step could be picked up again.
    let batch: Vec<_> = (0..300)
        .map(|i| json!({"name": "load/pair", "data": {"name": format!("n{i}")}}))
        .collect();
    let (st, body) = s.post(&format!("/e/{}", s.event_key), &json!(batch));
    assert_eq!(st, 200, "{body}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, f) = s.get("/v1/functions/pair");
        if f["runs"]["completed"] == 300 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{f:#}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (_, metrics) = s.get("/metrics");
    let text = metrics.as_str().unwrap();
    let executed = text
        .lines()
        .find_map(|l| l.strip_prefix("weir_steps_executed_total "))
        .unwrap();
    assert_eq!(executed, "600", "two steps per run, none twice:\n{text}");
}
