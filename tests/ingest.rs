//! `POST /e/{key}`: the Inngest wire format, durable acks, clear errors, idempotency.

mod common;

use common::Server;
use serde_json::{json, Value};

#[test]
fn one_event_or_an_array_each_gets_an_id_and_is_stored() {
    let s = Server::start();
    let (st, one) = s.post(
        "/e/k",
        &json!({"name": "a/b", "data": {"x": 1}, "user": {"id": "u"}, "v": "1"}),
    );
    assert_eq!(st, 200);
    assert_eq!(one["status"], 200);
    assert!(one.get("error").is_none());
    let id = one["ids"][0].as_str().unwrap();
    let (st, ev) = s.get(&format!("/v1/events/{id}"));
    assert_eq!(st, 200);
    assert_eq!(
        (
            ev["name"].clone(),
            ev["data"]["x"].clone(),
            ev["user"]["id"].clone()
        ),
        (json!("a/b"), json!(1), json!("u"))
    );
    let batch: Vec<Value> = (0..3)
        .map(|i| json!({"name": "n", "data": {"i": i}}))
        .collect();
    let (st, many) = s.post("/e/k", &json!(batch));
    assert_eq!(st, 200);
    let ids: Vec<&str> = many["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "ids are sortable in arrival order");
    let (_, listed) = s.get("/v1/events?name=n");
    assert_eq!(listed["data"].as_array().unwrap().len(), 3);
}

#[test]
fn the_key_may_come_as_a_bearer_token() {
    let s = Server::start();
    let r = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
        .post(format!("{}/e", s.url))
        .header("Authorization", "Bearer evt_key")
        .send(br#"[{"name":"x"}]"#.as_slice())
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
        .post(format!("{}/e", s.url))
        .send(br#"[{"name":"x"}]"#.as_slice())
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[test]
fn bad_input_gets_a_clear_error_naming_index_and_field() {
    let s = Server::start();
    let cases: &[(&[u8], u16, &str)] = &[
        (b"{\"name\": ", 400, "not valid JSON"),
        (
            b"[{\"name\":\"ok\"},{\"data\":{}}]",
            400,
            "event[1].name: is required",
        ),
        (
            b"{\"name\":\"x\",\"data\":[1,2]}",
            400,
            "event[0].data: must be an object, got array",
        ),
        (
            b"{\"name\":\"x\",\"user\":\"bob\"}",
            400,
            "event[0].user: must be an object",
        ),
        (
            b"{\"name\":\"x\",\"ts\":\"noon\"}",
            400,
            "event[0].ts: must be a number",
        ),
        (b"{\"name\":\"\"}", 400, "event[0].name: must not be empty"),
        (b"[]", 400, "empty array"),
        (b"\"hello\"", 400, "got string"),
    ];
    for (body, status, needle) in cases {
        let (st, reply) = s.post_raw("/e/k", body);
        assert_eq!(st, *status, "{}: {reply}", String::from_utf8_lossy(body));
        assert_eq!(reply["status"], *status);
        let msg = reply["error"].as_str().unwrap();
        assert!(msg.contains(needle), "{msg:?} should contain {needle:?}");
    }
    // Nothing from the rejected batches was stored.
    let (_, listed) = s.get("/v1/events");
    assert!(listed["data"].as_array().unwrap().is_empty(), "{listed}");
}

#[test]
fn oversized_bodies_and_batches_get_413() {
    let s = Server::start();
    let big = json!({"name": "big", "data": {"blob": "x".repeat(3 << 20)}});
    let (st, reply) = s.post("/e/k", &big);
    assert_eq!(st, 413, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("larger than"));
    let many: Vec<Value> = (0..5001).map(|_| json!({"name": "n"})).collect();
    let (st, reply) = s.post("/e/k", &json!(many));
    assert_eq!(st, 413, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("5001 events"));
    // The server is still fine.
    assert_eq!(s.post("/e/k", &json!({"name": "small"})).0, 200);
}

#[test]
fn a_repeated_idempotency_id_is_accepted_but_triggers_nothing() {
    let s = Server::start();
    s.deploy_ok(json!({"id": "once", "triggers": [{"event": "pay"}], "steps": {"s": {"path": "guest:echo"}}}));
    let first = s.send(json!({"name": "pay", "id": "invoice-7"}));
    let second = s.send(json!({"name": "pay", "id": "invoice-7"}));
    assert_ne!(first, second);
    assert_eq!(s.runs_of(&first).len(), 1);
    let (_, ev) = s.get(&format!("/v1/events/{second}"));
    assert_eq!(ev["duplicate_of"], first);
    assert_eq!(ev["run_ids"], json!([]));
    let (_, f) = s.get("/v1/functions/once");
    let total: u64 = f["runs"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 1);
}

#[test]
fn the_openapi_document_describes_every_endpoint() {
    let s = Server::start();
    let (st, doc) = s.get("/openapi.json");
    assert_eq!(st, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/e/{key}", "post"),
        ("/e", "post"),
        ("/v1/components/{sha256}", "put"),
        ("/v1/functions", "get"),
        ("/v1/functions", "post"),
        ("/v1/functions/{id}", "get"),
        ("/v1/functions/{id}/versions", "get"),
        ("/v1/functions/{id}/rollout", "get"),
        ("/v1/functions/{id}/rollout", "put"),
        ("/v1/functions/{id}/promote", "post"),
        ("/v1/functions/{id}/rollback", "post"),
        ("/v1/events", "get"),
        ("/v1/events/{id}", "get"),
        ("/v1/runs", "get"),
        ("/v1/runs/{id}", "get"),
        ("/v1/runs/{id}/cancel", "post"),
        ("/v1/schemas", "get"),
        ("/v1/schemas/{name}", "get"),
        ("/v1/schemas/{name}", "put"),
        ("/v1/schemas/{name}/inferred", "get"),
        ("/v1/replays", "get"),
        ("/v1/replays", "post"),
        ("/v1/replays/{id}", "get"),
        ("/v1/replays/{id}/cancel", "post"),
        ("/v1/stream", "get"),
        ("/v1/session", "post"),
        ("/v1/session", "delete"),
        ("/v1/users", "get"),
        ("/v1/users/{id}", "get"),
        ("/v1/users/{id}", "delete"),
        ("/v1/users/{id}/timeline", "get"),
        ("/health", "get"),
        ("/metrics", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not documented"
        );
    }
}

#[test]
fn unknown_events_and_runs_are_404_with_json_errors() {
    let s = Server::start();
    let (st, e) = s.get("/v1/events/nope");
    assert_eq!((st, e["status"].clone()), (404, json!(404)));
    let (st, _) = s.get("/v1/runs/nope");
    assert_eq!(st, 404);
    let (st, e) = s.get("/v1/nothing-here");
    assert_eq!(st, 404);
    assert!(e["error"].is_string());
    let (st, h) = s.get("/health");
    assert_eq!((st, h["status"].clone()), (200, json!("ok")));
}
