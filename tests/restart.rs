//! Durability across restarts: SIGKILL the real process, start it again on the same
//! store, and find finished runs intact and unfinished ones finished.

mod common;

use common::{one_step, Server};
use serde_json::{json, Value};

#[test]
fn finished_runs_survive_and_unfinished_ones_finish_after_a_kill() {
    let s = Server::start();
    s.deploy_ok(json!({"id": "chain", "triggers": [{"event": "demo/hello"}], "steps": {
        "hello": {"path": "guest:hello"}, "shout": {"path": "guest:shout", "after": [{"step": "hello"}]}}}));
    s.deploy_ok(json!({"id": "slow-retry", "triggers": [{"event": "retry/me"}], "retries": {"attempts": 3, "backoff": "2s"},
        "steps": {"f": {"path": "guest:flaky"}, "after": {"path": "guest:echo", "after": [{"step": "f"}]}}}));
    let done = s.send_and_finish(json!({"name": "demo/hello", "data": {"name": "Kim"}}));
    assert_eq!(done["status"], "completed");

    let ev = s.send(json!({"name": "retry/me", "data": {"succeed_on": 1}}));
    let run_id = s.runs_of(&ev)[0].clone();
    // Wait until the first attempt failed and a retry is parked in the queue.
    let parked = s.wait_run(&run_id, |r| {
        r["steps"]["f"]["attempts"] == 1 && r["steps"]["f"]["wake_at"].is_i64()
    });
    assert_eq!(parked["status"], "running");

    let s = s.kill_and_restart();
    let (_, again) = s.get(&format!("/v1/runs/{}", done["id"].as_str().unwrap()));
    assert_eq!(again, done, "a finished run is exactly as it was");
    let finished = s.wait_done(&run_id);
    assert_eq!(finished["status"], "completed", "{finished:#}");
    assert_eq!(finished["steps"]["f"]["attempts"], 2);
    assert_eq!(finished["steps"]["after"]["status"], "completed");
    // Functions are still deployed after the restart.
    let (_, list) = s.get("/v1/functions");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["chain", "slow-retry"]);
    let more = s.send_and_finish(json!({"name": "demo/hello", "data": {"name": "Lee"}}));
    assert_eq!(
        more["steps"]["shout"]["output"]["body"]["shout"],
        "HELLO, LEE!"
    );
}

#[test]
fn acknowledged_events_are_never_lost_and_all_get_their_runs() {
    let s = Server::start();
    s.deploy_ok(json!({"id": "count", "triggers": [{"event": "tick"}], "steps": {"s": {"path": "guest:echo"}}}));
    let batch: Vec<Value> = (0..200)
        .map(|i| json!({"name": "tick", "data": {"i": i}}))
        .collect();
    let (st, reply) = s.post("/e/k", &json!(batch));
    assert_eq!(st, 200);
    let ids: Vec<String> = reply["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().into())
        .collect();
    // Kill right after the acknowledgement, before the runs can all have been created.
    let s = s.kill_and_restart();
    for id in &ids {
        let runs = s.runs_of(id);
        assert_eq!(runs.len(), 1, "event {id} has runs {runs:?}");
    }
    let (_, all) = s.get("/v1/runs?function=count&limit=1000");
    let runs = all["data"].as_array().unwrap();
    assert_eq!(runs.len(), 200);
    for r in runs {
        let r = s.wait_done(r["id"].as_str().unwrap());
        assert_eq!(r["status"], "completed");
    }
}

#[test]
fn an_attempt_cut_short_by_a_kill_counts_and_retries_run_out() {
    let s = Server::start();
    // A step that runs for seconds and is allowed one retry.
    s.deploy_ok(one_step(
        "long",
        "long",
        "spin",
        json!({"limits": {"timeout": "8s"}, "retries": {"attempts": 1, "backoff": "100ms"}}),
    ));
    let id = s.send(json!({"name": "long"}));
    let run_id = s.runs_of(&id).remove(0);
    let mut s = s;
    // Each kill lands while the step runs: the first uses up the retry, the second fails
    // the step, as a step that keeps taking the process down would.
    for attempt in 1..=2 {
        s.wait_run(&run_id, |r| {
            r["steps"]["s"]["status"] == "running" && r["steps"]["s"]["attempts"] == attempt
        });
        // The claim is on disk once the store says no claim is pending.
        s.wait_metric("weir_claims_not_durable", |v| v == 0.0);
        s = s.kill_and_restart();
    }
    let run = s.wait_done(&run_id);
    assert_eq!(run["status"], "failed", "{run:#}");
    assert_eq!(run["steps"]["s"]["attempts"], 2, "{run:#}");
    let error = run["steps"]["s"]["error"].as_str().unwrap();
    assert!(
        error.contains("interrupted") && error.contains("after 2 attempts"),
        "{error}"
    );
}

#[test]
fn a_clean_stop_does_not_count_against_a_running_step() {
    let s = Server::start();
    // Runs longer than the stop's grace period, and may not fail even once.
    s.deploy_ok(one_step(
        "long",
        "long",
        "spin",
        json!({"limits": {"timeout": "7s"}, "retries": {"attempts": 0}}),
    ));
    let id = s.send(json!({"name": "long"}));
    let run_id = s.runs_of(&id).remove(0);
    s.wait_run(&run_id, |r| r["steps"]["s"]["status"] == "running");
    // SIGTERM: the step outlasts the grace period, so the process leaves it for the
    // next start instead of recording a failed attempt.
    let s = s.stop_and_restart();
    let run = s.wait_run(&run_id, |r| r["steps"]["s"]["status"] == "running");
    assert_eq!(run["steps"]["s"]["attempts"], 1, "{run:#}");
    // It runs again in full (and, spinning, times out: the step's own failure).
    let run = s.wait_done(&run_id);
    assert_eq!(run["steps"]["s"]["attempts"], 1, "{run:#}");
    let error = run["steps"]["s"]["error"].as_str().unwrap();
    assert!(
        error.contains("deadline") && !error.contains("interrupted"),
        "{error}"
    );
}
