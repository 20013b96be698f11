//! Versions and rollouts against the real binary: weights, sticky users, monotonic
//! raises, promote and rollback, automatic rollback of a failing canary, durability
//! across SIGKILL, bad input, tenants, and `weir dev` reloading a changed file.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{one_step, Server};
use serde_json::{json, Value};

/// Ten thousand runs on a debug build take a while on 2 cores.
const LONG: Duration = Duration::from_secs(300);

/// Deploys version 1 (`guest` v1) and version 2 of function `id` on `event`.
fn two_versions(s: &Server, id: &str, event: &str, v1: &str, v2: &str) {
    assert_eq!(s.deploy_ok(one_step(id, event, v1, json!({}))), 1);
    let mut second = one_step(id, event, v2, json!({}));
    second["name"] = json!("the new release");
    assert_eq!(s.deploy_ok(second), 2);
}

fn put_rollout(s: &Server, id: &str, body: Value) -> Value {
    let (st, r) = s.put_raw(
        &format!("/v1/functions/{id}/rollout"),
        body.to_string().as_bytes(),
    );
    assert_eq!(st, 200, "{r}");
    r
}

fn rollout(s: &Server, id: &str) -> Value {
    let (st, r) = s.get(&format!("/v1/functions/{id}/rollout"));
    assert_eq!(st, 200, "{r}");
    r
}

/// A version's figures in a rollout.
fn figures(r: &Value, version: u64) -> Value {
    r["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == version)
        .cloned()
        .unwrap_or_else(|| panic!("no version {version} in {r}"))
}

fn ended(r: &Value) -> u64 {
    r["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["completed"].as_u64().unwrap() + v["failed"].as_u64().unwrap())
        .sum()
}

/// Polls the rollout until `n` runs under it have ended.
fn wait_ended(s: &Server, id: &str, n: u64) -> Value {
    let deadline = Instant::now() + LONG;
    loop {
        let r = rollout(s, id);
        if ended(&r) >= n {
            return r;
        }
        assert!(Instant::now() < deadline, "runs never ended: {r:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends events in batches of 500; returns their ids.
fn send_many(s: &Server, events: Vec<Value>) -> Vec<String> {
    let mut ids = Vec::new();
    for chunk in events.chunks(500) {
        let (st, body) = s.post(&format!("/e/{}", s.event_key), &json!(chunk));
        assert_eq!(st, 200, "{body}");
        ids.extend(
            body["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string()),
        );
    }
    ids
}

/// Every run of a function: (run id, user id, version, rollout id).
fn runs(s: &Server, function: &str) -> Vec<(String, String, u64, Value)> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/runs?function={function}&limit=1000&cursor={c}"),
            None => format!("/v1/runs?function={function}&limit=1000"),
        };
        let (st, page) = s.get(&path);
        assert_eq!(st, 200, "{page}");
        for r in page["data"].as_array().unwrap() {
            out.push((
                r["id"].as_str().unwrap().to_string(),
                r["user_id"].as_str().unwrap_or_default().to_string(),
                r["function_version"].as_u64().unwrap(),
                r["rollout_id"].clone(),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

fn users_versions(rs: &[(String, String, u64, Value)], rollout_id: &str) -> HashMap<String, u64> {
    let mut by_user: HashMap<String, u64> = HashMap::new();
    for (run, user, version, rid) in rs.iter().filter(|r| r.3 == rollout_id) {
        let _ = rid;
        let prev = by_user.insert(user.clone(), *version);
        assert!(
            prev.is_none_or(|p| p == *version),
            "user {user} got versions {prev:?} and {version} under one rollout (run {run})"
        );
    }
    by_user
}

#[test]
fn a_90_10_rollout_splits_by_user_raises_monotonically_promotes_and_rolls_back() {
    let s = Server::start();
    two_versions(&s, "checkout", "order/placed", "respond", "respond");
    let r = put_rollout(
        &s,
        "checkout",
        json!({"versions": [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]}),
    );
    assert_eq!(r["status"], "active");
    assert_eq!(r["replaced"], Value::Null);
    let first = r["id"].as_str().unwrap().to_string();

    let events: Vec<Value> = (0..10_000)
        .map(|i| json!({"name": "order/placed", "data": {"n": i}, "user": {"id": format!("u_{}", i % 1000)}}))
        .collect();
    send_many(&s, events);
    let r = wait_ended(&s, "checkout", 10_000);
    let (v1, v2) = (figures(&r, 1), figures(&r, 2));
    assert_eq!(
        v1["runs"].as_u64().unwrap() + v2["runs"].as_u64().unwrap(),
        10_000
    );
    let share = v2["runs"].as_f64().unwrap() / 10_000.0;
    assert!(
        (0.08..=0.12).contains(&share),
        "version 2 got {share} of the runs, not 10 % ± 2"
    );
    assert_eq!(v2["completed"], v2["runs"], "{r}");
    assert_eq!(v2["failure_rate"], 0.0);
    assert!(v2["p50_ms"].as_u64().is_some() && v2["p95_ms"].as_u64() >= v2["p50_ms"].as_u64());

    // Every user's runs are on one version; the figures agree with the runs.
    let all = runs(&s, "checkout");
    let before = users_versions(&all, &first);
    assert_eq!(before.len(), 1000);
    let on_v2 = all.iter().filter(|r| r.2 == 2).count() as u64;
    assert_eq!(on_v2, v2["runs"].as_u64().unwrap());

    // 10 -> 50: nobody on version 2 leaves it.
    let r = put_rollout(
        &s,
        "checkout",
        json!({"versions": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}]}),
    );
    assert_eq!(r["replaced"]["id"], first.as_str());
    assert_eq!(r["replaced"]["status"], "replaced");
    assert_eq!(
        figures(&r["replaced"], 2)["runs"],
        v2["runs"],
        "the replaced figures are kept"
    );
    let second = r["id"].as_str().unwrap().to_string();
    let events: Vec<Value> = (0..1000)
        .map(|i| json!({"name": "order/placed", "user": {"id": format!("u_{i}")}}))
        .collect();
    send_many(&s, events);
    wait_ended(&s, "checkout", 1000);
    let after = users_versions(&runs(&s, "checkout"), &second);
    assert_eq!(after.len(), 1000);
    let mut moved = 0;
    for (user, v) in &before {
        if *v == 2 {
            assert_eq!(
                after[user], 2,
                "user {user} left version 2 when its weight rose"
            );
        } else if after[user] == 2 {
            moved += 1;
        }
    }
    assert!(
        moved > 300,
        "raising to 50 % moved only {moved} users onto version 2"
    );

    // Promote in one call: everything new goes to version 2.
    let (st, p) = s.post("/v1/functions/checkout/promote", &json!({"version": 2}));
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["versions"][0]["weight"], 100);
    let promoted = p["id"].as_str().unwrap().to_string();
    send_many(
        &s,
        (0..200)
            .map(|i| json!({"name": "order/placed", "user": {"id": format!("u_{i}")}}))
            .collect(),
    );
    wait_ended(&s, "checkout", 200);
    let rs = runs(&s, "checkout");
    let v: Vec<u64> = rs
        .iter()
        .filter(|r| r.3 == promoted.as_str())
        .map(|r| r.2)
        .collect();
    assert_eq!(v.len(), 200);
    assert!(v.iter().all(|v| *v == 2));

    // Roll back in one call: the 50/50 rollout again; the promotion is recorded rolled back.
    let (st, b) = s.post("/v1/functions/checkout/rollback", &json!({}));
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["origin"], "rollback");
    assert_eq!(b["versions"][0]["weight"], 50);
    assert_eq!(b["replaced"]["id"], promoted.as_str());
    assert_eq!(b["replaced"]["status"], "rolled_back");
    let r = rollout(&s, "checkout");
    let history: Vec<&str> = r["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        history,
        [promoted.as_str(), second.as_str(), first.as_str()]
    );
}

#[test]
fn a_failing_canary_is_rolled_back_by_weir_and_alerts() {
    let s = Server::start();
    two_versions(&s, "pay", "pay/requested", "respond", "unavailable");
    // A function that alerts on rollbacks.
    s.deploy_ok(one_step(
        "alert",
        "weir/rollout.rolled_back",
        "respond",
        json!({}),
    ));
    let r = put_rollout(
        &s,
        "pay",
        json!({"versions": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}],
               "analysis": {"min_runs": 20, "max_failure_rate_increase": 0.1}}),
    );
    let id = r["id"].as_str().unwrap().to_string();
    // Enough users that version 2 sees well over 20 runs.
    send_many(
        &s,
        (0..200)
            .map(|i| json!({"name": "pay/requested", "user": {"id": format!("p{i}")}}))
            .collect(),
    );
    let deadline = Instant::now() + LONG;
    let r = loop {
        let r = rollout(&s, "pay");
        if r["status"] == "rolled_back" {
            break r;
        }
        assert!(Instant::now() < deadline, "never rolled back: {r:#}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(r["id"], id.as_str());
    let reason = r["reason"].as_str().unwrap();
    assert!(reason.contains("version 2 failed 100.0%"), "{reason}");
    assert_eq!(r["decision"]["version"], 2);
    assert!(r["decision"]["finished"].as_u64().unwrap() >= 20);
    assert_eq!(r["routing"], json!([{"version": 1, "weight": 100}]));
    s.wait_metric("weir_rollout_rollbacks_total{tenant=\"default\"}", |v| {
        v == 1.0
    });

    // The event reached the tenant's stream and started the alert.
    let deadline = Instant::now() + LONG;
    let alert = loop {
        let (_, evs) = s.get("/v1/events?name=weir/rollout.rolled_back");
        if let Some(e) = evs["data"].as_array().and_then(|a| a.first()).cloned() {
            if !e["run_ids"].as_array().unwrap().is_empty() {
                break e;
            }
        }
        assert!(Instant::now() < deadline, "no rollback event: {evs}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(alert["data"]["function_id"], "pay");
    assert_eq!(alert["data"]["version"], 2);
    assert_eq!(alert["data"]["failure_rate"], 1.0);
    assert_eq!(alert["data"]["baseline_failure_rate"], 0.0);

    // Later events all go to the baseline, even for users who were on version 2.
    let later = send_many(
        &s,
        (0..200)
            .map(|i| json!({"name": "pay/requested", "user": {"id": format!("p{i}")}}))
            .collect(),
    );
    let mut versions = Vec::new();
    for e in later {
        for run in s.runs_of(&e) {
            versions.push(s.wait_done(&run)["function_version"].as_u64().unwrap());
        }
    }
    assert_eq!(versions.len(), 200);
    assert!(versions.iter().all(|v| *v == 1), "{versions:?}");
}

#[test]
fn a_rollout_its_figures_and_history_survive_sigkill() {
    let s = Server::start();
    two_versions(&s, "ship", "ship/it", "respond", "respond");
    let first = put_rollout(
        &s,
        "ship",
        json!({"versions": [{"version": 1, "weight": 100}, {"version": 2, "weight": 0}]}),
    );
    let r = put_rollout(
        &s,
        "ship",
        json!({"versions": [{"version": 1, "weight": 70}, {"version": 2, "weight": 30}],
               "sticky": "event.data.account"}),
    );
    let ids = send_many(
        &s,
        (0..300)
            .map(|i| json!({"name": "ship/it", "data": {"account": format!("a{}", i % 50)}}))
            .collect(),
    );
    let account_of: HashMap<String, String> = ids
        .into_iter()
        .enumerate()
        .map(|(i, id)| (id, format!("a{}", i % 50)))
        .collect();
    let before = wait_ended(&s, "ship", 300);
    let s = s.kill_and_restart();
    let after = rollout(&s, "ship");
    assert_eq!(after["id"], r["id"]);
    assert_eq!(after["status"], "active");
    assert_eq!(after["sticky"], "event.data.account");
    for v in [1, 2] {
        for k in ["runs", "completed", "failed", "p50_ms", "p95_ms"] {
            assert_eq!(
                figures(&after, v)[k],
                figures(&before, v)[k],
                "version {v} {k}"
            );
        }
    }
    assert_eq!(after["history"][0]["id"], first["id"]);
    // The restarted process routes by it: the same account keeps its version.
    let mut by_account: HashMap<String, u64> = HashMap::new();
    for (run, _, version, rid) in runs(&s, "ship") {
        assert_eq!(rid, r["id"], "run {run}");
        let event = s.get(&format!("/v1/runs/{run}")).1["event_id"].clone();
        let acct = account_of[event.as_str().unwrap()].clone();
        let prev = by_account.insert(acct.clone(), version);
        assert!(
            prev.is_none_or(|p| p == version),
            "account {acct} got two versions"
        );
    }
    assert!(by_account.values().any(|v| *v == 2) && by_account.values().any(|v| *v == 1));
    for (acct, v) in by_account.iter().take(10) {
        let run = s.send_and_finish(json!({"name": "ship/it", "data": {"account": acct}}));
        assert_eq!(
            run["function_version"], *v,
            "account {acct} changed version after restart"
        );
    }
}

#[test]
fn a_run_keeps_its_version_through_a_wait_across_a_promotion() {
    let s = Server::start();
    let def = |name: &str| {
        json!({"id": "onboard", "name": name, "triggers": [{"event": "user/joined"}],
               "steps": {
                 "hello": {"path": "guest:respond"},
                 "after": {"path": "guest:respond", "after": [{"step": "hello",
                    "async": {"event": "user/verified", "match": "event.user.id == async.user.id", "ttl": "1h"}}]}}})
    };
    assert_eq!(s.deploy_ok(def("v1")), 1);
    let id = s.send(json!({"name": "user/joined", "user": {"id": "w1"}}));
    let run = s.runs_of(&id)[0].clone();
    s.wait_run(&run, |r| r["status"] == "waiting");
    assert_eq!(s.deploy_ok(def("v2")), 2);
    let (st, p) = s.post("/v1/functions/onboard/promote", &json!({"version": 2}));
    assert_eq!(st, 200, "{p}");
    s.send(json!({"name": "user/verified", "user": {"id": "w1"}}));
    let done = s.wait_done(&run);
    assert_eq!(done["status"], "completed");
    assert_eq!(done["function_version"], 1);
    let fresh = s.send(json!({"name": "user/joined", "user": {"id": "w2"}}));
    let fresh = s.wait_run(&s.runs_of(&fresh)[0], |r| r["status"] == "waiting");
    assert_eq!(fresh["function_version"], 2);
}

#[test]
fn versions_list_definitions_and_component_digests() {
    let s = Server::start();
    two_versions(&s, "vers", "v/x", "respond", "unavailable");
    let (st, v) = s.get("/v1/functions/vers/versions");
    assert_eq!(st, 200, "{v}");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["version"], 2, "newest first");
    assert_eq!(data[0]["def"]["name"], "the new release");
    let (a, b) = (
        data[0]["components"]["s"].as_str().unwrap(),
        data[1]["components"]["s"].as_str().unwrap(),
    );
    assert!(a.starts_with("sha256:") && b.starts_with("sha256:") && a != b);
    assert!(data[1]["created_at"].as_i64().unwrap() <= data[0]["created_at"].as_i64().unwrap());
    let (st, e) = s.get("/v1/functions/nope/versions");
    assert_eq!((st, e["code"].as_str()), (404, Some("function_not_found")));
}

#[test]
fn bad_rollouts_are_refused_naming_the_field_and_change_nothing() {
    let s = Server::start();
    two_versions(&s, "bad", "b/x", "respond", "respond");
    let good = put_rollout(
        &s,
        "bad",
        json!({"versions": [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]}),
    );
    let cases = [
        (
            json!({"versions": [{"version": 1, "weight": 90}, {"version": 2, "weight": 20}]}),
            "weights sum to 110",
        ),
        (
            json!({"versions": [{"version": 1, "weight": 90}, {"version": 7, "weight": 10}]}),
            "versions[1].version: version 7 does not exist",
        ),
        (
            json!({"versions": [{"version": 2, "weight": 50}, {"version": 2, "weight": 50}]}),
            "versions[1].version: version 2 is listed twice",
        ),
        (
            json!({"versions": [{"version": 1, "weight": 100}], "sticky": "event.user.id =="}),
            "sticky",
        ),
        (
            json!({"versions": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}],
                "analysis": {"min_runs": 0, "max_failure_rate_increase": 0.05}}),
            "analysis.min_runs",
        ),
        (
            json!({"versions": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}],
                "analysis": {"min_runs": 10, "max_failure_rate_increase": 5}}),
            "analysis.max_failure_rate_increase",
        ),
        (
            json!({"versions": [{"version": 1, "weight": "ninety"}]}),
            "versions[0].weight",
        ),
        (
            json!({"versions": [{"version": 1, "weight": 100}], "stikcy": "x"}),
            "stikcy",
        ),
    ];
    for (body, needle) in cases {
        let (st, e) = s.put_raw("/v1/functions/bad/rollout", body.to_string().as_bytes());
        assert_eq!(st, 400, "{body}: {e}");
        assert_eq!(e["code"], "invalid_rollout", "{e}");
        assert!(e["error"].as_str().unwrap().contains(needle), "{body}: {e}");
    }
    let (st, e) = s.post("/v1/functions/bad/promote", &json!({"version": 9}));
    assert_eq!(
        (st, e["code"].as_str()),
        (400, Some("invalid_rollout")),
        "{e}"
    );
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("version: version 9 does not exist"),
        "{e}"
    );
    let (st, e) = s.post("/v1/functions/bad/promote", &json!({"v": 2}));
    assert_eq!(
        (st, e["code"].as_str()),
        (400, Some("invalid_rollout")),
        "{e}"
    );
    let now = rollout(&s, "bad");
    assert_eq!(now["id"], good["id"], "nothing changed");
    assert_eq!(now["history"], json!([]));

    // No rollout yet, and no such function.
    s.deploy_ok(one_step("plain", "p/x", "respond", json!({})));
    let (st, e) = s.get("/v1/functions/plain/rollout");
    assert_eq!(
        (st, e["code"].as_str()),
        (404, Some("rollout_not_found")),
        "{e}"
    );
    assert!(
        e["error"].as_str().unwrap().contains("latest version (1)"),
        "{e}"
    );
    let (st, e) = s.post("/v1/functions/plain/rollback", &json!({}));
    assert_eq!(
        (st, e["code"].as_str()),
        (404, Some("rollout_not_found")),
        "{e}"
    );
    let (st, e) = s.put_raw(
        "/v1/functions/ghost/rollout",
        json!({"versions": [{"version": 1, "weight": 100}]})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(
        (st, e["code"].as_str()),
        (404, Some("function_not_found")),
        "{e}"
    );
}

#[test]
fn weir_dev_reloads_a_changed_file_and_a_rollout_stands() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, funcs) = (tmp.path().join("data"), tmp.path().join("functions"));
    std::fs::create_dir_all(&funcs).unwrap();
    let file = funcs.join("greet.json");
    let guest = common::guest("respond");
    let write = |name: &str| {
        let def = json!({"id": "greet", "name": name, "triggers": [{"event": "g/x"}],
                         "steps": {"s": {"path": format!("file://{}", guest.display())}}});
        std::fs::write(&file, def.to_string()).unwrap();
    };
    write("one");
    let mut s = Server::spawn(&data, &funcs);
    assert!(s.stdout.contains("loaded greet v1"), "{}", s.stdout);
    write("two");
    let line = s.wait_output("reloaded greet v2");
    assert!(line.contains("new runs get v2"), "{line}");
    assert_eq!(
        s.send_and_finish(json!({"name": "g/x"}))["function_version"],
        2
    );

    put_rollout(
        &s,
        "greet",
        json!({"versions": [{"version": 2, "weight": 100}]}),
    );
    write("three");
    let line = s.wait_output("reloaded greet v3");
    assert!(line.contains("stands (v2 100%)"), "{line}");
    assert!(line.contains("weir rollout greet --promote 3"), "{line}");
    assert_eq!(
        s.send_and_finish(json!({"name": "g/x"}))["function_version"],
        2
    );
}

#[test]
fn weir_dev_keeps_the_last_good_version_of_a_broken_file_and_sees_a_changed_component() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, funcs, steps) = (
        tmp.path().join("data"),
        tmp.path().join("functions"),
        tmp.path().join("steps"),
    );
    std::fs::create_dir_all(&funcs).unwrap();
    std::fs::create_dir_all(&steps).unwrap();
    let comp = steps.join("step.wasm");
    std::fs::copy(common::guest("respond"), &comp).unwrap();
    let file = funcs.join("greet.json");
    let def = json!({"id": "greet", "triggers": [{"event": "g/x"}],
                     "steps": {"s": {"path": "file://../steps/step.wasm"}}});
    std::fs::write(&file, def.to_string()).unwrap();
    let mut s = Server::spawn(&data, &funcs);
    assert!(s.stdout.contains("loaded greet v1"), "{}", s.stdout);
    // A broken save names what is wrong and leaves v1 running.
    std::fs::write(
        &file,
        r#"{"id": "greet", "triggers": [{"event": "g/x"}], "stepz": {}}"#,
    )
    .unwrap();
    let line = s.wait_output("not reloaded");
    assert!(
        line.contains("greet.json") && line.contains("stepz"),
        "{line}"
    );
    assert_eq!(
        s.send_and_finish(json!({"name": "g/x"}))["function_version"],
        1
    );
    // Fixed again, unchanged: no new version. Then the component (in another directory)
    // is rebuilt: a new version runs it.
    std::fs::write(&file, def.to_string()).unwrap();
    std::fs::copy(common::guest("hello"), &comp).unwrap();
    let line = s.wait_output("reloaded greet v2");
    assert!(line.contains("new runs get v2"), "{line}");
    let run = s.send_and_finish(json!({"name": "g/x", "data": {"name": "Ada"}}));
    assert_eq!(run["function_version"], 2);
    assert_eq!(
        run["steps"]["s"]["output"]["body"]["message"],
        "Hello, Ada!"
    );
}
