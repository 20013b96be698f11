//! Every error reply is JSON `{"error", "code", "status"}` with a stable code, axum's own
//! rejections included, and nothing already accepted is lost by a bad request.

mod common;

use common::Server;
use serde_json::{json, Value};

fn assert_error(got: (u16, Value), status: u16, code: &str) -> Value {
    let (s, body) = got;
    assert_eq!(s, status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    body
}

#[test]
fn malformed_queries_unknown_things_and_wrong_methods_answer_json_with_codes() {
    let s = Server::start();
    // axum's query rejection used to answer plain text.
    let body = assert_error(s.get("/v1/runs?limit=-1"), 400, "invalid_query");
    assert!(body["error"].as_str().unwrap().contains("limit"), "{body}");
    assert_error(s.get("/v1/events?limit=lots"), 400, "invalid_query");
    assert_error(s.get("/v1/runs?status=bogus"), 400, "invalid_query");
    assert_error(s.get("/v1/runs/01NOPE"), 404, "run_not_found");
    assert_error(s.get("/v1/events/01NOPE"), 404, "event_not_found");
    assert_error(s.get("/v1/functions/nope"), 404, "function_not_found");
    assert_error(s.get("/v1/nothing-here"), 404, "no_such_endpoint");
    let (status, body, _) = s.request("PUT", "/v1/runs", Some(b"{}"), None);
    assert_error((status, body), 405, "method_not_allowed");
}

#[test]
fn bad_events_definitions_and_components_name_what_is_wrong() {
    let s = Server::start();
    let body = assert_error(
        s.post_raw("/e/dev", br#"[{"name":"ok"},{"data":{}}]"#),
        400,
        "invalid_event",
    );
    assert!(
        body["error"].as_str().unwrap().contains("event[1].name"),
        "{body}"
    );
    assert_error(s.post_raw("/e/dev", b"{not json"), 400, "invalid_event");
    let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
    assert_error(s.post_raw("/e/dev", deep.as_bytes()), 400, "too_deep");
    // A client still sending a too-large body reads the 413, every time (weir reads and
    // drops the rest instead of resetting the connection under it).
    let big = vec![b' '; 4 << 20];
    for _ in 0..10 {
        assert_error(s.post_raw("/e/dev", &big), 413, "payload_too_large");
        assert_error(s.post_raw("/v1/functions", &big), 413, "payload_too_large");
    }
    let many = serde_json::to_vec(&vec![json!({"name": "x"}); 5001]).unwrap();
    assert_error(s.post_raw("/e/dev", &many), 413, "too_many_events");

    assert_error(
        s.post_raw("/v1/functions", br#"{"id": "f", "stepz": {}}"#),
        400,
        "invalid_definition",
    );
    let body = assert_error(
        s.deploy(json!({"id": "f", "triggers": [{"event": "e"}],
            "steps": {"a": {"path": "guest:hello", "after": [{"step": "ghost"}]}}})),
        400,
        "invalid_function",
    );
    assert!(body["error"].as_str().unwrap().contains("ghost"), "{body}");
    assert_error(
        s.put_raw("/v1/components/xyz", b"\0asm"),
        400,
        "invalid_digest",
    );
    let zeros = "0".repeat(64);
    assert_error(
        s.put_raw(&format!("/v1/components/{zeros}"), b"\0asm"),
        400,
        "hash_mismatch",
    );
    // Nothing accepted before was lost: a good event still goes through.
    let (status, ok) = s.post("/e/dev", &json!({"name": "fine"}));
    assert_eq!(status, 200, "{ok}");
    let id = ok["ids"][0].as_str().unwrap();
    assert_eq!(s.get(&format!("/v1/events/{id}")).0, 200);
}
