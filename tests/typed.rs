//! The typed world `typed-step` run by the real binary: a Rust step (a core module
//! exporting `weir:step/handler@0.1.0#run`, wrapped by weir at upload) and a Python one
//! (componentize-py) get the input document as `run`'s argument, return their output or a
//! `step-error`, log through `host.log` and fan out through `host.send-event` — events
//! that go through ingest like any other, once per run and step, and that fail the step
//! with a clear error when they are wrong or too many.

mod common;

use common::{guest, Server};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// `fanout` (the typed Rust step) on `order/placed`, and `item` (echo) on `order/item`.
fn fan_out(s: &Server, limits: Value) {
    s.deploy_ok(
        json!({"id": "fanout", "triggers": [{"event": "order/placed"}],
        "retries": {"attempts": 2, "backoff": "10ms"},
        "steps": {"split": {"path": "guest:typed-fanout", "limits": limits}}}),
    );
    s.deploy_ok(json!({"id": "item", "triggers": [{"event": "order/item"}],
        "steps": {"echo": {"path": "guest:echo"}}}));
}

/// The stored events named `name`.
fn events_named(s: &Server, name: &str) -> Vec<Value> {
    let (st, body) = s.get(&format!("/v1/events?name={name}&limit=1000"));
    assert_eq!(st, 200, "{body}");
    body["data"].as_array().unwrap().clone()
}

fn upload(s: &Server, name: &str) -> (u16, Value) {
    let bytes = std::fs::read(guest(name)).unwrap();
    let sha = hex::encode(Sha256::digest(&bytes));
    s.put_raw(&format!("/v1/components/{sha}"), &bytes)
}

#[test]
fn uploads_say_which_world_a_component_is_in() {
    let s = Server::start();
    let (st, body) = upload(&s, "typed-fanout");
    assert_eq!(st, 200, "{body}");
    // A core module exporting the typed entry point: wrapped into a typed-step component.
    assert_eq!(body["kind"], "module");
    assert_eq!(body["world"], "typed-step");
    let (_, body) = upload(&s, "hello");
    assert_eq!(body["world"], "step");
    let (_, body) = upload(&s, "echo");
    assert_eq!(
        (&body["kind"], &body["world"]),
        (&json!("component"), &json!("step"))
    );
}

#[test]
fn a_typed_step_fans_out_events_that_start_runs_and_logs_through_the_host() {
    let s = Server::start();
    fan_out(&s, json!({}));
    let run = s.send_and_finish(json!({"name": "order/placed",
        "data": {"order": "o-1", "items": ["a", "b", "c"]}, "user": {"id": "u-7"}}));
    assert_eq!(run["status"], "completed", "{run:#}");
    let split = &run["steps"]["split"];
    assert_eq!(split["output"]["body"]["count"], 3, "{split:#}");
    assert_eq!(split["output"]["body"]["lang"], "rust-typed");
    assert_eq!(split["log"], "[info] fanning out 3 items (attempt 0)\n");
    // Recorded with the step: the ids `send-event` returned, and the events' names.
    let ids = split["output"]["body"]["sent"].as_array().unwrap();
    let sent = split["sent"].as_array().unwrap();
    assert_eq!(sent.len(), 3, "{split:#}");
    let run_id = run["id"].as_str().unwrap();
    // The UI's run page lists them, each linked to its event.
    let (st, page) = s.get(&format!("/runs/{run_id}"));
    assert_eq!(st, 200);
    let page = page.as_str().unwrap();
    assert!(page.contains("Events sent"), "{page}");
    for id in ids {
        let link = format!("href=\"/events/{}\"", id.as_str().unwrap());
        assert!(page.contains(&link), "{link} in {page}");
    }
    for (i, (item, (id, rec))) in ["a", "b", "c"].iter().zip(ids.iter().zip(sent)).enumerate() {
        assert_eq!(rec, &json!({"id": id, "name": "order/item"}));
        let (st, ev) = s.get(&format!("/v1/events/{}", id.as_str().unwrap()));
        assert_eq!(st, 200, "{ev}");
        assert_eq!(ev["data"], json!({"order": "o-1", "item": item}));
        assert_eq!(ev["user"], json!({"id": "u-7"}));
        assert_eq!(
            ev["idempotency_key"],
            format!("weir:step:{run_id}:split:{i}")
        );
        // Each started the function it triggers, like any event.
        let runs = s.runs_of(id.as_str().unwrap());
        assert_eq!(runs.len(), 1, "{ev:#}");
        let item_run = s.wait_done(&runs[0]);
        assert_eq!(item_run["status"], "completed");
        assert_eq!(
            item_run["steps"]["echo"]["output"]["event"]["data"]["item"],
            *item
        );
    }
}

#[test]
fn a_retried_typed_step_sends_its_events_once_and_a_failed_one_sends_none() {
    let s = Server::start();
    fan_out(&s, json!({}));
    // The first attempt sends two events, then returns step-error 503: retried. Only the
    // attempt that completes sends.
    let run = s.send_and_finish(json!({"name": "order/placed",
        "data": {"order": "o-2", "items": ["x", "y"], "fail_first": 503}}));
    assert_eq!(run["status"], "completed", "{run:#}");
    let split = &run["steps"]["split"];
    assert_eq!(split["attempts"], 2);
    assert_eq!(split["log"], "[info] fanning out 2 items (attempt 1)\n");
    let items = events_named(&s, "order/item");
    assert_eq!(items.len(), 2, "sent once: {items:#?}");
    let mut got: Vec<&str> = items
        .iter()
        .map(|e| e["data"]["item"].as_str().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, ["x", "y"]);
    // A step-error 400 fails at once, with its message; what it sent is dropped.
    let run = s.send_and_finish(json!({"name": "order/placed",
        "data": {"order": "o-3", "items": ["z"], "fail": 400}}));
    assert_eq!(run["status"], "failed", "{run:#}");
    let split = &run["steps"]["split"];
    assert_eq!(split["attempts"], 1);
    assert_eq!(split["error"], "step error 400: failing, as asked");
    assert_eq!(
        split["output"],
        json!({"status": 400, "error": "failing, as asked"})
    );
    assert!(
        split["log"]
            .as_str()
            .unwrap()
            .ends_with("1 events sent by this attempt were dropped: it did not complete"),
        "{split:#}"
    );
    assert_eq!(events_named(&s, "order/item").len(), 2);
}

/// Runs the fan-out with `data` and `limits`; returns its step, which must have failed.
fn refused(s: &Server, data: Value) -> Value {
    let run = s.send_and_finish(json!({"name": "order/placed", "data": data}));
    assert_eq!(run["status"], "failed", "{run:#}");
    let split = run["steps"]["split"].clone();
    // Not retried: the same events would be refused again.
    assert_eq!(split["attempts"], 1, "{split:#}");
    split
}

#[test]
fn bad_events_and_too_many_fail_the_step_naming_what_was_wrong() {
    let s = Server::start();
    fan_out(&s, json!({"events": 2, "event_size": "1KiB"}));
    let big = json!({"name": "big", "data": {"s": "x".repeat(2000)}}).to_string();
    let too_big = format!(
        "event 0 is {} bytes, over limits.event_size (1 KiB)",
        big.len()
    );
    let cases = [
        (
            json!({"raw": ["{not json"]}),
            "event 0 is not valid JSON: key must be a string at line 1 column 2",
        ),
        (
            json!({"raw": [r#"{"data": {}}"#]}),
            "event[0].name: is required",
        ),
        (
            json!({"raw": [r#"[{"name": "a"}]"#]}),
            "event 0 must be one event object, got array",
        ),
        (
            json!({"raw": [r#"{"name": "weir/cron"}"#]}),
            "event[0].name: the `weir/` prefix is reserved for weir's own events",
        ),
        (json!({"raw": [big]}), too_big.as_str()),
        (
            json!({"items": [1, 2, 3]}),
            "more than 2 events sent by one step (limits.events)",
        ),
    ];
    for (data, why) in cases {
        let split = refused(&s, data.clone());
        assert_eq!(
            split["error"],
            format!("host.send-event refused an event: {why}"),
            "{data}: {split:#}"
        );
    }
    // The guest saw the refusal too (it logs it).
    let split = refused(&s, json!({"raw": ["{not json"]}));
    assert!(
        split["log"]
            .as_str()
            .unwrap()
            .contains("[error] refused: event 0 is not valid JSON"),
        "{split:#}"
    );
    // Nothing of a refused step was sent (the accepted events of the too-many case too).
    let (_, all) = s.get("/v1/events?limit=1000");
    let names: Vec<&str> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(names.iter().all(|n| *n == "order/placed"), "{names:?}");
    // The limits are the server's to cap.
    let (st, body) = s.deploy(json!({"id": "greedy", "triggers": [{"event": "g"}],
        "steps": {"s": {"path": "guest:typed-fanout", "limits": {"events": 5000}}}}));
    assert_eq!(st, 400, "{body}");
    assert_eq!(
        body["error"],
        "function `greedy`: steps.s.limits.events: 5000 is above this server's ceiling of 1000"
    );
}

#[test]
fn typed_components_of_the_wrong_shape_are_refused_at_upload_naming_it() {
    let s = Server::start();
    for (name, why) in [
        (
            "typed-wrong-run",
            "`weir:step/handler@0.1.0` must export `run: func(input: string) -> \
             result<string, step-error { status: u16, message: string }>`; its `run` is \
             `func(input: u32) -> u32`",
        ),
        (
            "typed-host-v2",
            "imports `weir:step/host@0.2.0`, but this weir provides `weir:step/host@0.1.0` \
             (package weir:step@0.1.0)",
        ),
        (
            "typed-handler-v2",
            "exports `weir:step/handler@0.2.0`, but this weir runs \
             `weir:step/handler@0.1.0` (world typed-step)",
        ),
    ] {
        let (st, body) = upload(&s, name);
        assert_eq!(st, 400, "{name}: {body}");
        assert_eq!(body["code"], "invalid_component", "{name}: {body}");
        let msg = body["error"].as_str().unwrap();
        assert!(msg.ends_with(why), "{name}: {msg}");
    }
}

#[test]
fn a_typed_python_step_returns_its_output_logs_and_sends_through_the_host() {
    let s = Server::start();
    s.deploy_ok(json!({"id": "greet", "triggers": [{"event": "go"}],
        "steps": {"greet": {"path": "guest:py-typed_greet"}}}));
    let run = s.send_and_finish(json!({"name": "go", "data": {"name": "Ada"}}));
    assert_eq!(run["status"], "completed", "{run:#}");
    let greet = &run["steps"]["greet"];
    assert_eq!(greet["output"]["body"]["message"], "Hello, Ada!");
    assert_eq!(greet["output"]["body"]["lang"], "python-typed");
    assert_eq!(greet["log"], "[info] greeting Ada from typed Python\n");
    let id = greet["output"]["body"]["event"].as_str().unwrap();
    assert_eq!(greet["sent"], json!([{"id": id, "name": "greeting/sent"}]));
    let (_, ev) = s.get(&format!("/v1/events/{id}"));
    assert_eq!(ev["data"], json!({"to": "Ada"}));
    // A step-error raised in Python: its status decides (400: failed at once).
    let run = s.send_and_finish(json!({"name": "go", "data": {"name": 7}}));
    assert_eq!(run["status"], "failed", "{run:#}");
    assert_eq!(
        run["steps"]["greet"]["error"],
        "step error 400: name must be a string, got 7"
    );
    assert_eq!(run["steps"]["greet"]["attempts"], 1);
}
