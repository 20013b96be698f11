//! Hostile guests end with an error naming what they hit, and the host keeps serving.

mod common;

use common::{one_step, Server};
use serde_json::json;

fn failure(s: &Server, id: &str, guest: &str, limits: serde_json::Value) -> String {
    s.deploy_ok(one_step(id, id, guest, json!({"limits": limits})));
    let run = s.send_and_finish(json!({"name": id}));
    assert_eq!(run["status"], "failed", "{run:#}");
    run["steps"]["s"]["error"].as_str().unwrap().to_string()
}

#[test]
fn hostile_guests_fail_with_the_limit_they_hit() {
    let s = Server::start();
    let e = failure(&s, "trap", "trap", json!({}));
    assert!(e.contains("trapped") && e.contains("unreachable"), "{e}");
    let e = failure(&s, "spin", "spin", json!({"timeout": "300ms"}));
    assert!(e.contains("deadline 300ms exceeded"), "{e}");
    let e = failure(&s, "membomb", "membomb", json!({"memory": "16MiB"}));
    assert!(e.contains("memory limit 16 MiB exceeded"), "{e}");
    let e = failure(
        &s,
        "flood",
        "flood",
        json!({"stdout": "64KiB", "timeout": "1s"}),
    );
    assert!(e.contains("stdout over 64 KiB"), "{e}");
    // The host is healthy and still runs good steps.
    s.deploy_ok(one_step("fine", "fine", "echo", json!({})));
    let run = s.send_and_finish(json!({"name": "fine"}));
    assert_eq!(run["status"], "completed");
}
