//! Deploy-time validation over HTTP, component uploads, and versions.

mod common;

use common::{guest, Server};
use serde_json::json;
use sha2::{Digest, Sha256};

fn deploy_error(s: &Server, def: serde_json::Value) -> String {
    let (st, body) = s.deploy(def);
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["status"], 400);
    body["error"].as_str().unwrap().to_string()
}

#[test]
fn invalid_functions_are_rejected_naming_the_step_and_field() {
    let s = Server::start();
    let e = deploy_error(
        &s,
        json!({"id": "f", "triggers": [{"event": "e"}], "steps": {
        "a": {"path": "guest:echo", "after": [{"step": "b"}]}, "b": {"path": "guest:echo", "after": [{"step": "a"}]}}}),
    );
    assert!(e.contains("cycle through a, b"), "{e}");
    let e = deploy_error(
        &s,
        json!({"id": "f", "triggers": [{"event": "e"}], "steps": {
        "a": {"path": "guest:echo", "after": [{"step": "nobody"}]}}}),
    );
    assert!(
        e.contains("steps.a.after[0].step: unknown parent step `nobody`"),
        "{e}"
    );
    let e = deploy_error(
        &s,
        json!({"id": "f", "triggers": [{"event": "e", "expression": "event.data.x >"}], "steps": {
        "a": {"path": "guest:echo"}}}),
    );
    assert!(e.contains("triggers[0].expression: invalid CEL"), "{e}");
    let e = deploy_error(
        &s,
        json!({"id": "f", "triggers": [{"event": "e"}], "steps": {
        "a": {"path": "guest:echo", "after": [{"step": "$trigger", "if": "))"}]}}}),
    );
    assert!(e.contains("steps.a.after[0].if: invalid CEL"), "{e}");
    let e = deploy_error(
        &s,
        json!({"id": "f", "triggers": [{"event": "e"}], "steps": {
        "a": {"path": "guest:echo", "limits": {"timeout": "5 fortnights"}}}}),
    );
    assert!(e.contains("steps.a.limits: timeout"), "{e}");
    let e = deploy_error(
        &s,
        json!({"id": "f", "triggers": [{"event": "e"}], "steps": {
        "a": {"path": "guest:echo", "retires": {"attempts": 1}}}}),
    );
    assert!(
        e.contains("steps.a") && e.contains("unknown field `retires`"),
        "{e}"
    );
    let e = deploy_error(
        &s,
        json!({"id": "f", "triggers": [{"event": "e"}], "steps": {
        "a": {"path": format!("sha256:{}", "ab".repeat(32))}}}),
    );
    assert!(
        e.contains("steps.a.path") && e.contains("not uploaded"),
        "{e}"
    );
    let e = deploy_error(
        &s,
        json!({"id": "f", "triggers": [{"event": "e"}], "steps": {
        "a": {"path": "file://./steps/a.wasm"}}}),
    );
    assert!(e.contains("steps.a.path") && e.contains("sha256:"), "{e}");
    let e = deploy_error(
        &s,
        json!({"id": "f", "triggers": [{"event": "e"}], "concurrency": {"limit": 1},
        "steps": {"a": {"path": "guest:echo"}}}),
    );
    assert!(
        e.contains("concurrency") && e.contains("not supported yet"),
        "{e}"
    );
    let e = deploy_error(
        &s,
        json!({"id": "f", "triggers": [{"event": "e"}], "steps": {
        "a": {"path": "guest:echo", "after": [{"step": "$trigger", "wait": "10 parsecs"}]}}}),
    );
    assert!(
        e.contains("steps.a.after[0].wait") && e.contains("unknown unit"),
        "{e}"
    );
    let (st, body) = s.post_raw("/v1/functions", b"{not json");
    assert_eq!(st, 400, "{body}");
    // Nothing was deployed by any of these.
    let (_, list) = s.get("/v1/functions");
    assert!(list["data"].as_array().unwrap().is_empty(), "{list}");
}

#[test]
fn uploads_are_checked_against_their_hash_and_must_be_usable_steps() {
    let s = Server::start();
    let bytes = std::fs::read(guest("hello")).unwrap();
    let (st, e) = s.put_raw(&format!("/v1/components/{}", "0".repeat(64)), &bytes);
    assert_eq!(st, 400);
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("body hashes to sha256:"),
        "{e}"
    );
    let junk = b"definitely not wasm";
    let (st, e) = s.put_raw(
        &format!("/v1/components/{}", hex::encode(Sha256::digest(junk))),
        junk,
    );
    assert_eq!(st, 400);
    assert!(
        e["error"].as_str().unwrap().contains("not a WebAssembly"),
        "{e}"
    );
    let bad = std::fs::read(guest("imports-unknown")).unwrap();
    let (st, e) = s.put_raw(
        &format!("/v1/components/{}", hex::encode(Sha256::digest(&bad))),
        &bad,
    );
    assert_eq!(st, 400);
    let msg = e["error"].as_str().unwrap();
    assert!(
        msg.contains("imports something weir does not provide") && msg.contains("acme:secret/keys"),
        "{msg}"
    );
    // A preview1 module is accepted and reported as such; a component as a component.
    let (st, ok) = s.put_raw(
        &format!("/v1/components/{}", hex::encode(Sha256::digest(&bytes))),
        &bytes,
    );
    assert_eq!((st, ok["kind"].as_str()), (200, Some("module")));
    let echo = std::fs::read(guest("echo")).unwrap();
    let (st, ok) = s.put_raw(
        &format!("/v1/components/{}", hex::encode(Sha256::digest(&echo))),
        &echo,
    );
    assert_eq!((st, ok["kind"].as_str()), (200, Some("component")));
}

#[test]
fn each_changed_deploy_is_a_new_version_and_runs_keep_theirs() {
    let s = Server::start();
    let v1 = json!({"id": "versioned", "triggers": [{"event": "e"}], "steps": {"s": {"path": "guest:echo"}}});
    assert_eq!(s.deploy_ok(v1.clone()), 1);
    assert_eq!(
        s.deploy_ok(v1),
        1,
        "an identical definition is not a new version"
    );
    let first = s.send_and_finish(json!({"name": "e"}));
    assert_eq!(first["function_version"], 1);
    let v2 = json!({"id": "versioned", "triggers": [{"event": "e"}], "steps": {"s": {"path": "guest:hello"}}});
    assert_eq!(s.deploy_ok(v2), 2);
    let second = s.send_and_finish(json!({"name": "e", "data": {"name": "v2"}}));
    assert_eq!(second["function_version"], 2);
    assert_eq!(
        second["steps"]["s"]["output"]["body"]["message"],
        "Hello, v2!"
    );
    let (_, f) = s.get("/v1/functions/versioned");
    assert_eq!(f["version"], 2);
    assert_eq!(f["versions"].as_array().unwrap().len(), 2);
    assert_eq!(f["runs"]["completed"], 2);
    let (st, _) = s.get("/v1/functions/nope");
    assert_eq!(st, 404);
}
