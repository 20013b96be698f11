//! Durable time and coordination with real guests: sleeps, waits for another event
//! (both outcomes), cancellation, future-dated events and cron, across restarts.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use serde_json::json;

fn signup_flow() -> serde_json::Value {
    json!({"id": "signup", "triggers": [{"event": "user/signed.up"}],
    "cancel": [{"event": "user/deleted", "if": "event.user.id == async.user.id"}],
    "steps": {
        "send": {"path": "guest:echo"},
        "verified": {"path": "guest:echo", "after": [{"step": "send",
            "async": {"event": "user/verified", "match": "event.user.id == async.user.id", "ttl": "1500ms"}}]},
        "nudge": {"path": "guest:echo", "after": [{"step": "send",
            "async": {"event": "user/verified", "match": "event.user.id == async.user.id", "ttl": "1500ms", "onTimeout": true}}]}
    }})
}

fn start_signup(s: &Server, user: &str) -> String {
    let ev = s.send(json!({"name": "user/signed.up", "user": {"id": user}}));
    let run = s.runs_of(&ev)[0].clone();
    s.wait_run(&run, |r| r["status"] == "waiting");
    run
}

#[test]
fn a_matching_event_resumes_the_run_and_reaches_the_step() {
    let s = Server::start();
    s.deploy_ok(signup_flow());
    let run = start_signup(&s, "u1");
    let (_, waiting) = s.get(&format!("/v1/runs/{run}"));
    let awaiting = &waiting["steps"]["verified"]["awaiting"][0];
    assert_eq!(awaiting["event"], "user/verified");
    assert!(awaiting["expires_at"].as_i64().unwrap() > waiting["created_at"].as_i64().unwrap());
    assert_eq!(waiting["steps"]["verified"]["status"], "waiting");
    // Another user's verification does not resume this run.
    s.send(json!({"name": "user/verified", "user": {"id": "someone-else"}}));
    s.send(json!({"name": "user/verified", "user": {"id": "u1"}, "data": {"via": "email"}}));
    let done = s.wait_done(&run);
    assert_eq!(done["status"], "completed", "{done:#}");
    assert_eq!(done["steps"]["verified"]["status"], "completed");
    assert_eq!(done["steps"]["nudge"]["status"], "skipped");
    // The awaited event is in the step's stdin as `async`.
    assert_eq!(
        done["steps"]["verified"]["output"]["async"]["data"]["via"],
        "email"
    );
    assert_eq!(
        done["steps"]["verified"]["output"]["async"]["user"]["id"],
        "u1"
    );
}

#[test]
fn without_a_matching_event_the_timeout_edge_runs() {
    let s = Server::start();
    s.deploy_ok(signup_flow());
    let run = start_signup(&s, "u2");
    let done = s.wait_done(&run);
    assert_eq!(done["status"], "completed", "{done:#}");
    assert_eq!(done["steps"]["verified"]["status"], "skipped");
    assert_eq!(done["steps"]["nudge"]["status"], "completed");
    assert!(done["steps"]["nudge"]["output"]["async"].is_null());
}

#[test]
fn a_cancel_event_or_call_stops_the_run() {
    let s = Server::start();
    s.deploy_ok(signup_flow());
    let a = start_signup(&s, "ua");
    let b = start_signup(&s, "ub");
    s.send(json!({"name": "user/deleted", "user": {"id": "ua"}}));
    let ra = s.wait_done(&a);
    assert_eq!(ra["status"], "cancelled");
    assert_eq!(ra["steps"]["verified"]["status"], "cancelled");
    assert_eq!(ra["steps"]["nudge"]["status"], "cancelled");
    let (st, rb) = s.post(&format!("/v1/runs/{b}/cancel"), &json!({}));
    assert_eq!(st, 200, "{rb}");
    assert_eq!(rb["status"], "cancelled");
    // A cancelled run runs no further step, even after its timers would have fired: a
    // run started later, whose timeout edge fires after theirs would have, completing
    // shows the dispatcher has passed their time.
    let later = start_signup(&s, "uc");
    let rc = s.wait_done(&later);
    assert_eq!(rc["steps"]["nudge"]["status"], "completed", "{rc:#}");
    for id in [&a, &b] {
        let (_, r) = s.get(&format!("/v1/runs/{id}"));
        assert_eq!(r["status"], "cancelled");
        assert_eq!(r["steps"]["nudge"]["attempts"], 0);
    }
    let (st, _) = s.post("/v1/runs/nope/cancel", &json!({}));
    assert_eq!(st, 404);
}

#[test]
fn a_sleep_survives_a_kill_and_fires_once() {
    let s = Server::start();
    s.deploy_ok(
        json!({"id": "sleepy", "triggers": [{"event": "nap"}], "steps": {
        "before": {"path": "guest:echo"},
        "after": {"path": "guest:echo", "after": [{"step": "before", "wait": "2s"}]}}}),
    );
    let ev = s.send(json!({"name": "nap"}));
    let run = s.runs_of(&ev)[0].clone();
    let sleeping = s.wait_run(&run, |r| r["status"] == "sleeping");
    let wake = sleeping["steps"]["after"]["wake_at"].as_i64().unwrap();
    assert_eq!(sleeping["steps"]["after"]["status"], "sleeping");
    let s = s.kill_and_restart();
    let done = s.wait_done(&run);
    assert_eq!(done["status"], "completed");
    assert_eq!(done["steps"]["after"]["attempts"], 1, "fired exactly once");
    assert!(
        done["steps"]["after"]["started_at"].as_i64().unwrap() >= wake,
        "not before its time"
    );
}

#[test]
fn a_future_dated_event_is_held_until_its_time() {
    let s = Server::start();
    s.deploy_ok(json!({"id": "later", "triggers": [{"event": "remind"}], "steps": {"s": {"path": "guest:echo"}}}));
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 1500;
    let ev = s.send(json!({"name": "remind", "ts": at}));
    // An event sent after it, for now, is matched: the ingest loop has passed the
    // future-dated one by then, and must have held it back.
    let now_ev = s.send(json!({"name": "remind"}));
    s.runs_of(&now_ev);
    let (_, e) = s.get(&format!("/v1/events/{ev}"));
    assert!(e["run_ids"].as_array().unwrap().is_empty(), "not yet: {e}");
    let runs = s.runs_of(&ev);
    let run = s.wait_done(&runs[0]);
    assert!(run["created_at"].as_i64().unwrap() >= at, "{run}");
}

#[test]
fn a_cron_trigger_fires_each_tick_once() {
    let s = Server::start();
    s.deploy_ok(json!({"id": "ticker", "triggers": [{"cron": "*/1 * * * * *"}], "steps": {"s": {"path": "guest:echo"}}}));
    let deadline = Instant::now() + Duration::from_secs(30);
    let ticks = loop {
        let (_, runs) = s.get("/v1/runs?function=ticker&limit=100");
        let runs = runs["data"].as_array().unwrap().clone();
        if runs.len() >= 2 || Instant::now() > deadline {
            break runs;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(ticks.len() >= 2, "{ticks:?}");
    let mut seen: Vec<i64> = ticks
        .iter()
        .map(|r| {
            s.wait_done(r["id"].as_str().unwrap())["steps"]["s"]["output"]["event"]["data"]["tick"]
                .as_i64()
                .unwrap()
        })
        .collect();
    let n = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), n, "no tick fired twice: {seen:?}");
}

#[test]
fn a_cron_tick_missed_while_down_fires_once_on_start() {
    let s = Server::start();
    s.deploy_ok(json!({"id": "every2", "triggers": [{"cron": "*/2 * * * * *"}], "steps": {"s": {"path": "guest:echo"}}}));
    let ticks_of = |s: &Server| -> Vec<i64> {
        let (_, runs) = s.get("/v1/runs?function=every2&limit=1000");
        let mut t: Vec<i64> = runs["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r["steps"]["s"]["output"]["event"]["data"]["tick"]
                    .as_i64()
                    .unwrap_or(0)
            })
            .collect();
        t.sort();
        t
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while ticks_of(&s).iter().filter(|t| **t > 0).count() < 1 {
        assert!(Instant::now() < deadline, "no first tick");
        std::thread::sleep(Duration::from_millis(100));
    }
    let down_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let s = s.kill_pause_restart(Duration::from_millis(4500));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ticks = ticks_of(&s);
        if ticks.iter().any(|t| *t > down_at) {
            let mut d = ticks.clone();
            d.dedup();
            assert_eq!(d, ticks, "no tick fired twice");
            // Two ticks fell in the 4.5 s outage; the latest of them fires once on start.
            let missed: Vec<&i64> = ticks
                .iter()
                .filter(|t| **t > down_at && **t < down_at + 4500)
                .collect();
            assert_eq!(missed.len(), 1, "{ticks:?} (down at {down_at})");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the missed tick never fired: {ticks:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
