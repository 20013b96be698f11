//! Failure rules: exit ≠ 0 and status ≥ 500 retry with backoff; 4xx fails at once; a
//! failed step fails the run and cancels what would have followed.

mod common;

use common::{one_step, Server};
use serde_json::json;

#[test]
fn a_flaky_step_is_retried_until_it_succeeds() {
    let s = Server::start();
    s.deploy_ok(json!({"id": "flaky", "triggers": [{"event": "go"}], "retries": {"attempts": 3, "backoff": "20ms"},
        "steps": {"f": {"path": "guest:flaky"}, "after": {"path": "guest:echo", "after": [{"step": "f"}]}}}));
    let run = s.send_and_finish(json!({"name": "go", "data": {"succeed_on": 2}}));
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(run["steps"]["f"]["attempts"], 3);
    assert_eq!(
        run["steps"]["f"]["output"]["body"]["succeeded_on_attempt"],
        2
    );
    assert!(run["steps"]["f"]["error"].is_null());
    // The next step saw the successful output only.
    assert_eq!(
        run["steps"]["after"]["output"]["steps"]["f"]["body"]["succeeded_on_attempt"],
        2
    );
}

#[test]
fn retries_run_out_and_the_run_fails_cancelling_the_rest() {
    let s = Server::start();
    s.deploy_ok(json!({"id": "hopeless", "triggers": [{"event": "go"}], "retries": {"attempts": 1, "backoff": "10ms"},
        "steps": {"f": {"path": "guest:flaky"}, "next": {"path": "guest:echo", "after": [{"step": "f"}]}}}));
    let run = s.send_and_finish(json!({"name": "go", "data": {"succeed_on": 9}}));
    assert_eq!(run["status"], "failed");
    assert_eq!(run["steps"]["f"]["status"], "failed");
    assert_eq!(run["steps"]["f"]["attempts"], 2);
    let err = run["steps"]["f"]["error"].as_str().unwrap();
    assert!(
        err.contains("exited with code 1") && err.contains("after 2 attempts"),
        "{err}"
    );
    assert!(run["steps"]["f"]["log"]
        .as_str()
        .unwrap()
        .contains("attempt 1: failing on purpose"));
    assert_eq!(run["steps"]["next"]["status"], "cancelled");
    assert!(run["ended_at"].is_i64());
}

#[test]
fn a_4xx_status_fails_at_once_and_5xx_is_retried() {
    let s = Server::start();
    s.deploy_ok(json!({"id": "status", "triggers": [{"event": "go"}], "retries": {"attempts": 2, "backoff": "10ms"},
        "steps": {"r": {"path": "guest:respond"}}}));
    let run = s.send_and_finish(json!({"name": "go", "data": {"status": 404}}));
    assert_eq!(run["status"], "failed");
    assert_eq!(run["steps"]["r"]["attempts"], 1);
    assert_eq!(run["steps"]["r"]["error"], "step returned status 404");
    assert_eq!(
        run["steps"]["r"]["output"]["status"], 404,
        "the failing output is kept for inspection"
    );
    let run = s.send_and_finish(json!({"name": "go", "data": {"status": 503}}));
    assert_eq!(run["status"], "failed");
    assert_eq!(run["steps"]["r"]["attempts"], 3);
    let run = s.send_and_finish(json!({"name": "go", "data": {"status": 201}}));
    assert_eq!(run["status"], "completed");
    assert_eq!(run["steps"]["r"]["output"]["body"]["status"], 201);
}

#[test]
fn non_json_stdout_is_stored_as_a_body_string() {
    let s = Server::start();
    s.deploy_ok(one_step("plain", "go", "plain", json!({})));
    let run = s.send_and_finish(json!({"name": "go"}));
    assert_eq!(run["status"], "completed");
    assert_eq!(
        run["steps"]["s"]["output"],
        json!({"body": "just some text\n"})
    );
}

#[test]
fn an_executing_step_shows_as_running_in_the_api() {
    let s = Server::start();
    s.deploy_ok(one_step(
        "slow",
        "slow",
        "spin",
        // Long enough that a slow machine still polls it mid-step.
        json!({"limits": {"timeout": "4s"}, "retries": {"attempts": 0}}),
    ));
    let id = s.send(json!({"name": "slow"}));
    let run_id = s.runs_of(&id).remove(0);
    let run = s.wait_run(&run_id, |r| r["steps"]["s"]["status"] == "running");
    assert_eq!(run["status"], "running", "{run:#}");
    assert_eq!(run["steps"]["s"]["attempts"], 1, "{run:#}");
    assert!(run["steps"]["s"]["started_at"].is_i64(), "{run:#}");
    // The listing shows the same.
    let (_, page) = s.get("/v1/runs?function=slow");
    assert_eq!(
        page["data"][0]["steps"]["s"]["status"], "running",
        "{page:#}"
    );
    let done = s.wait_done(&run_id);
    assert_eq!(done["status"], "failed", "{done:#}");
    assert_eq!(done["steps"]["s"]["attempts"], 1, "{done:#}");
}
