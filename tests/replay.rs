//! Replays against the real binary: stored events run again as marked runs of another
//! version, dry runs compared with the original runs, durability across SIGKILL, and
//! the requests refused with the field named.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Server, DEADLINE};
use serde_json::{json, Value};

/// A two-step function: `a` answers with `event.data.status` (4xx fails for good, 5xx
/// is retried — no retries here), `b` is `second` and runs after `a` when `if` holds.
fn two_steps(second: &str, cond: Option<&str>) -> Value {
    let mut edge = json!({"step": "a"});
    if let Some(c) = cond {
        edge["if"] = json!(c);
    }
    json!({
        "id": "pay",
        "triggers": [{"event": "order/paid"}],
        "retries": {"attempts": 0},
        "steps": {
            "a": {"path": "guest:respond"},
            "b": {"path": format!("guest:{second}"), "after": [edge]}
        }
    })
}

/// Sends events with these `data.status` values and waits for each run to end;
/// returns (event id, run) pairs in order.
fn send_all(s: &Server, statuses: &[u16]) -> Vec<(String, Value)> {
    statuses
        .iter()
        .enumerate()
        .map(|(i, st)| {
            let id = s.send(json!({"name": "order/paid", "data": {"status": st, "n": i, "name": format!("n{i}")},
                "user": {"id": format!("u{i}")}}));
            let runs = s.runs_of(&id);
            assert_eq!(runs.len(), 1);
            (id, s.wait_done(&runs[0]))
        })
        .collect()
}

/// Polls a replay until it is no longer running; returns it.
fn wait_replay(s: &Server, id: &str) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (st, r) = s.get(&format!("/v1/replays/{id}"));
        assert_eq!(st, 200, "{r}");
        if r["status"] != "running" {
            return r;
        }
        assert!(Instant::now() < deadline, "replay never ended: {r:#}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start_replay(s: &Server, body: Value) -> (String, u64) {
    let (st, r) = s.post("/v1/replays", &body);
    assert_eq!(st, 202, "{r}");
    (
        r["id"].as_str().unwrap().to_string(),
        r["total"].as_u64().unwrap(),
    )
}

/// Every run of a replay (all pages).
fn replay_runs(s: &Server, id: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let (st, page) = s.get(&format!("/v1/runs?replay={id}&limit=100{cursor}"));
        assert_eq!(st, 200, "{page}");
        out.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return out,
        }
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn failed_runs_of_a_range_are_replayed_onto_a_new_version_exactly_once_and_marked() {
    let s = Server::start();
    assert_eq!(s.deploy_ok(two_steps("echo", None)), 1);
    // Before the range: a failed run that must not be replayed.
    send_all(&s, &[500]);
    let from = now_ms();
    std::thread::sleep(Duration::from_millis(5));
    let sent = send_all(&s, &[200, 500, 200, 404, 500, 200]);
    let to = now_ms() + 1;
    let failed: Vec<&String> = sent
        .iter()
        .filter(|(_, r)| r["status"] == "failed")
        .map(|(e, _)| e)
        .collect();
    assert_eq!(failed.len(), 3);
    // Version 2 answers 200 whatever the event says: it fixes them.
    let mut v2 = two_steps("echo", None);
    v2["steps"]["a"]["path"] = json!("guest:hello");
    assert_eq!(s.deploy_ok(v2), 2);

    let (id, total) = start_replay(
        &s,
        json!({"function": "pay", "from": rfc3339(from), "to": rfc3339(to),
               "status": ["failed"], "version": 2, "rate": 1000}),
    );
    assert_eq!(total, 3);
    let r = wait_replay(&s, &id);
    assert_eq!(
        (&r["status"], &r["done"], &r["runs_started"]),
        (&json!("completed"), &json!(3), &json!(3)),
        "{r:#}"
    );
    let runs = replay_runs(&s, &id);
    let mut events: Vec<&str> = runs
        .iter()
        .map(|r| r["event_id"].as_str().unwrap())
        .collect();
    events.sort();
    let mut want: Vec<&str> = failed.iter().map(|s| s.as_str()).collect();
    want.sort();
    assert_eq!(
        events, want,
        "exactly the failed events of the range, once each"
    );
    for run in &runs {
        let done = s.wait_done(run["id"].as_str().unwrap());
        assert_eq!(done["status"], "completed", "{done:#}");
        assert_eq!(done["function_version"], 2);
        assert_eq!(done["replay_id"], json!(id));
        // The step saw the replay in its context (echo prints its stdin).
        assert_eq!(done["steps"]["b"]["output"]["ctx"]["replay_id"], json!(id));
    }
    // The stored events list their new runs too.
    let (_, ev) = s.get(&format!("/v1/events/{}", failed[0]));
    assert_eq!(ev["run_ids"].as_array().unwrap().len(), 2, "{ev}");
    // A live run (no replay) is not marked.
    let (_, live) = s.get(&format!("/v1/runs/{}", sent[0].1["id"].as_str().unwrap()));
    assert_eq!(live["replay_id"], Value::Null);
}

#[test]
fn a_dry_run_of_the_same_version_finds_every_run_identical_and_records_nothing() {
    let s = Server::start();
    s.deploy_ok(two_steps("echo", None));
    let sent = send_all(&s, &[200, 200, 404, 200]);
    let (_, before) = s.get("/v1/runs?limit=100");
    let (id, total) = start_replay(
        &s,
        json!({"function": "pay", "version": 1, "mode": "dry_run", "rate": 1000}),
    );
    assert_eq!(total, sent.len() as u64);
    let r = wait_replay(&s, &id);
    assert_eq!(r["status"], "completed", "{r:#}");
    assert_eq!(
        r["result"],
        json!({"identical": 4, "changed": 0, "new_failures": 0, "fixed": 0,
               "without_original": 0, "unfinished": 0}),
        "{r:#}"
    );
    assert_eq!(r["differences"], Value::Null, "no differences: {r:#}");
    let (_, after) = s.get("/v1/runs?limit=100");
    assert_eq!(before["data"], after["data"], "a dry run records no run");
    assert!(replay_runs(&s, &id).is_empty());
}

#[test]
fn a_dry_run_reports_changed_steps_with_before_and_after() {
    let s = Server::start();
    // `b` = hello: its output does not depend on the version (echo would show
    // ctx.function_version).
    s.deploy_ok(two_steps("hello", None));
    let sent = send_all(&s, &[200, 200, 200, 200, 200]);
    // Version 2 skips `b` for events with n < 2: exactly those runs change.
    s.deploy_ok(two_steps("hello", Some("event.data.n >= 2")));
    let (id, _) = start_replay(
        &s,
        json!({"function": "pay", "version": 2, "mode": "dry_run", "rate": 1000}),
    );
    let r = wait_replay(&s, &id);
    assert_eq!(r["result"]["changed"], 2, "{r:#}");
    assert_eq!(r["result"]["identical"], 3, "{r:#}");
    let diffs = r["differences"].as_array().unwrap();
    let mut changed: Vec<&str> = diffs
        .iter()
        .map(|d| d["event_id"].as_str().unwrap())
        .collect();
    changed.sort();
    let mut want = vec![sent[0].0.as_str(), sent[1].0.as_str()];
    want.sort();
    assert_eq!(changed, want);
    for d in diffs {
        assert_eq!(d["step"], "b");
        assert_eq!(d["before"]["status"], "completed");
        let original = sent.iter().find(|(e, _)| e == &d["event_id"]).unwrap();
        assert_eq!(d["run_id"], original.1["id"]);
        assert_eq!(d["before"]["output"], original.1["steps"]["b"]["output"]);
        assert_eq!(d["after"]["status"], "skipped");
        assert_eq!(d["after"]["output"], Value::Null);
    }
}

#[test]
fn a_dry_run_counts_new_failures_and_fixes() {
    let s = Server::start();
    // Version 1: `a` fails for 4xx; version 2 (`a` = hello) never fails.
    s.deploy_ok(two_steps("echo", None));
    let mut v2 = two_steps("echo", None);
    v2["steps"]["a"]["path"] = json!("guest:hello");
    s.deploy_ok(v2);
    // Runs on version 2, then a dry run of version 1 over them: the 404s fail anew.
    send_all(&s, &[404, 200, 404]);
    let (id, _) = start_replay(
        &s,
        json!({"function": "pay", "version": 1, "mode": "dry_run", "rate": 1000}),
    );
    let r = wait_replay(&s, &id);
    assert_eq!(r["result"]["new_failures"], 2, "{r:#}");
    assert_eq!(r["result"]["changed"], 1, "{r:#}");
    // Runs on version 1 fail for the 404s: a dry run of version 2 fixes them.
    let (st, _) = s.post("/v1/functions/pay/promote", &json!({"version": 1}));
    assert_eq!(st, 200);
    let from = now_ms();
    std::thread::sleep(Duration::from_millis(5));
    let sent = send_all(&s, &[404, 200]);
    assert_eq!(sent[0].1["status"], "failed");
    let (id, _) = start_replay(
        &s,
        json!({"function": "pay", "version": 2, "mode": "dry_run", "rate": 1000,
               "from": rfc3339(from)}),
    );
    let r = wait_replay(&s, &id);
    assert_eq!(r["result"]["fixed"], 1, "{r:#}");
    assert_eq!(r["result"]["new_failures"], 0, "{r:#}");
}

#[test]
fn a_killed_replay_goes_on_after_restart_and_replays_no_event_twice() {
    let s = Server::start();
    s.deploy_ok(two_steps("echo", None));
    let sent = send_all(&s, &[200; 30]);
    let (id, total) = start_replay(&s, json!({"function": "pay", "version": 1, "rate": 10}));
    assert_eq!(total, 30);
    // Kill it part way.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (_, r) = s.get(&format!("/v1/replays/{id}"));
        if r["done"].as_u64().unwrap() >= 3 {
            assert!(
                r["done"].as_u64().unwrap() < 30,
                "too fast to interrupt: {r}"
            );
            break;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = s.kill_and_restart();
    let r = wait_replay(&s, &id);
    assert_eq!(
        (&r["status"], &r["done"]),
        (&json!("completed"), &json!(30))
    );
    let runs = replay_runs(&s, &id);
    let mut per_event: BTreeMap<String, usize> = BTreeMap::new();
    for run in &runs {
        *per_event
            .entry(run["event_id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(per_event.len(), 30, "every event replayed");
    assert!(
        per_event.values().all(|n| *n == 1),
        "none twice: {per_event:?}"
    );
    assert_eq!(r["runs_started"], 30);
    for (e, _) in &sent {
        assert!(per_event.contains_key(e));
    }
}

#[test]
fn a_cancelled_replay_stops_where_it_is() {
    let s = Server::start();
    s.deploy_ok(two_steps("echo", None));
    send_all(&s, &[200; 10]);
    let (id, _) = start_replay(&s, json!({"function": "pay", "rate": 1}));
    let (st, r) = s.post(&format!("/v1/replays/{id}/cancel"), &json!({}));
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["status"], "cancelled");
    let done = r["done"].as_u64().unwrap();
    assert!(done < 10, "{r}");
    // Cancelling again changes nothing; the runs it started are the ones it counted.
    let (_, again) = s.post(&format!("/v1/replays/{id}/cancel"), &json!({}));
    assert_eq!(again, r);
    assert_eq!(replay_runs(&s, &id).len() as u64, done);
    let (_, list) = s.get("/v1/replays");
    assert_eq!(list["data"][0]["id"], json!(id));
}

#[test]
fn inline_events_are_stored_and_replayed() {
    let s = Server::start();
    s.deploy_ok(two_steps("echo", None));
    let (id, total) = start_replay(
        &s,
        json!({"function": "pay", "rate": 1000, "events": [
            {"name": "order/paid", "data": {"status": 200, "n": 1}, "user": {"id": "u9"}},
            {"name": "order/paid", "data": {"status": 404, "n": 2}}
        ]}),
    );
    assert_eq!(total, 2);
    let r = wait_replay(&s, &id);
    assert_eq!(r["runs_started"], 2, "{r:#}");
    let runs = replay_runs(&s, &id);
    let mut statuses: Vec<String> = runs
        .iter()
        .map(|r| {
            s.wait_done(r["id"].as_str().unwrap())["status"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    statuses.sort();
    assert_eq!(statuses, ["completed", "failed"]);
    // Stored as events of the tenant, but no trigger started another run for them.
    for run in &runs {
        let (st, ev) = s.get(&format!("/v1/events/{}", run["event_id"].as_str().unwrap()));
        assert_eq!(st, 200);
        assert_eq!(ev["run_ids"], json!([run["id"]]), "{ev}");
    }
}

#[test]
fn bad_replays_name_what_is_wrong_and_start_nothing() {
    let s = Server::start();
    s.deploy_ok(two_steps("echo", None));
    let bad = |body: Value, status: u16, code: &str, needle: &str| {
        let (st, r) = s.post("/v1/replays", &body);
        assert_eq!(
            (st, r["code"].as_str().unwrap_or("")),
            (status, code),
            "{body}: {r}"
        );
        assert!(
            r["error"].as_str().unwrap().contains(needle),
            "{body}: {r} should name {needle}"
        );
    };
    bad(
        json!({"function": "pay", "from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}),
        400,
        "invalid_replay",
        "from",
    );
    bad(
        json!({"function": "pay", "from": "last tuesday"}),
        400,
        "invalid_replay",
        "from",
    );
    bad(
        json!({"function": "pay", "to": "2026-02-30T00:00:00Z"}),
        400,
        "invalid_replay",
        "to",
    );
    bad(
        json!({"function": "nope"}),
        404,
        "function_not_found",
        "nope",
    );
    bad(
        json!({"function": "pay", "version": 7}),
        400,
        "invalid_replay",
        "version",
    );
    bad(
        json!({"function": "pay", "rate": 0}),
        400,
        "invalid_replay",
        "rate",
    );
    bad(
        json!({"function": "pay", "rate": 5000000}),
        400,
        "invalid_replay",
        "rate",
    );
    bad(
        json!({"function": "pay", "mode": "fast"}),
        400,
        "invalid_replay",
        "mode",
    );
    bad(
        json!({"function": "pay", "status": ["done"]}),
        400,
        "invalid_replay",
        "status[0]",
    );
    bad(
        json!({"function": "pay", "events": [{"data": {}}]}),
        400,
        "invalid_replay",
        "events[0]",
    );
    bad(
        json!({"function": "pay", "events": [{"name": "order/paid"}], "from": "2026-11-01T00:00:00Z"}),
        400,
        "invalid_replay",
        "events",
    );
    bad(
        json!({"function": "pay", "speed": 3}),
        400,
        "invalid_replay",
        "speed",
    );
    let (st, r) = s.get("/v1/replays/01JZZZZZZZZZZZZZZZZZZZZZZZ");
    assert_eq!((st, r["code"].as_str()), (404, Some("replay_not_found")));
    let (_, list) = s.get("/v1/replays");
    assert_eq!(list["data"], json!([]), "nothing was started");
}

#[test]
fn replays_are_per_tenant() {
    let a = Server::serve(common::TWO_TENANTS, "api_acme_0001", "evt_acme_0001");
    let g = Server::serve_view(&a, "api_globex_01", "evt_globex_01");
    a.deploy_ok(two_steps("echo", None));
    send_all(&a, &[200]);
    let (id, total) = start_replay(&a, json!({"function": "pay", "rate": 1000}));
    assert_eq!(total, 1);
    wait_replay(&a, &id);
    // globex sees neither acme's function nor its replay.
    let (st, r) = g.post("/v1/replays", &json!({"function": "pay"}));
    assert_eq!(
        (st, r["code"].as_str()),
        (404, Some("function_not_found")),
        "{r}"
    );
    let (st, r) = g.get(&format!("/v1/replays/{id}"));
    assert_eq!(
        (st, r["code"].as_str()),
        (404, Some("replay_not_found")),
        "{r}"
    );
    let (st, _) = g.post(&format!("/v1/replays/{id}/cancel"), &json!({}));
    assert_eq!(st, 404);
    let (_, list) = g.get("/v1/replays");
    assert_eq!(list["data"], json!([]));
    let (_, runs) = g.get(&format!("/v1/runs?replay={id}"));
    assert_eq!(runs["data"], json!([]));
    // An event key is not an API key.
    let (st, _, _) = a.request("GET", "/v1/replays", None, Some("evt_acme_0001"));
    assert_eq!(st, 403);
}

#[test]
fn events_exported_as_json_lines_replay_into_another_server() {
    let prod = Server::start();
    prod.deploy_ok(two_steps("echo", None));
    let from = now_ms();
    std::thread::sleep(Duration::from_millis(5));
    send_all(&prod, &[200, 404, 200]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let (code, out, err) = common::cli(
        &[
            "events",
            "export",
            "--name",
            "order/paid",
            "--from",
            &rfc3339(from),
        ],
        &prod.url,
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[1]["data"]["status"], 404, "oldest first: {out}");
    std::fs::write(&file, &out).unwrap();
    // An empty range writes nothing and succeeds.
    let (code, out, _) = common::cli(
        &[
            "events",
            "export",
            "--from",
            "2020-01-01T00:00:00Z",
            "--to",
            "2020-01-02T00:00:00Z",
        ],
        &prod.url,
    );
    assert_eq!((code, out.as_str()), (0, ""));

    let dev = Server::start();
    dev.deploy_ok(two_steps("echo", None));
    let (code, out, err) = common::cli(
        &[
            "replay",
            "--function",
            "pay",
            "--file",
            file.to_str().unwrap(),
            "--rate",
            "1000",
        ],
        &dev.url,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("runs started         3"), "{out}");
    let (_, list) = dev.get("/v1/replays");
    let id = list["data"][0]["id"].as_str().unwrap();
    let runs = replay_runs(&dev, id);
    let mut statuses: Vec<String> = runs
        .iter()
        .map(|r| {
            dev.wait_done(r["id"].as_str().unwrap())["status"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    statuses.sort();
    assert_eq!(statuses, ["completed", "completed", "failed"]);

    // A dry run from the CLI prints the comparison.
    let (code, out, err) = common::cli(
        &[
            "replay",
            "--function",
            "pay",
            "--dry-run",
            "--version",
            "1",
            "--rate",
            "1000",
        ],
        &prod.url,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("identical               3"), "{out}");
}

#[test]
fn a_malformed_events_file_names_the_line_and_replays_nothing() {
    let s = Server::start();
    s.deploy_ok(two_steps("echo", None));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    for (text, needle) in [
        (
            "{\"name\":\"order/paid\"}\n\n{\"name\":\"order/paid\",\"data\":3}\n",
            "events.jsonl:3: data: must be an object",
        ),
        (
            "{\"name\":\"order/paid\"}\n{not json\n",
            "events.jsonl:2: not a JSON event",
        ),
        ("\n\n", "no events in the file"),
    ] {
        std::fs::write(&file, text).unwrap();
        let (code, _, err) = common::cli(
            &[
                "replay",
                "--function",
                "pay",
                "--file",
                file.to_str().unwrap(),
            ],
            &s.url,
        );
        assert_eq!(code, 1, "{err}");
        assert!(err.contains(needle), "{err} should say {needle}");
    }
    let (_, list) = s.get("/v1/replays");
    assert_eq!(list["data"], json!([]), "nothing replayed");
}

#[test]
fn a_dry_run_captures_the_events_a_typed_step_sends_instead_of_sending_them() {
    let s = Server::start();
    let fanout = |limits: Value| {
        json!({"id": "fanout", "triggers": [{"event": "order/placed"}],
            "retries": {"attempts": 0},
            "steps": {"split": {"path": "guest:typed-fanout", "limits": limits}}})
    };
    s.deploy_ok(fanout(json!({})));
    s.deploy_ok(json!({"id": "item", "triggers": [{"event": "order/item"}],
        "steps": {"echo": {"path": "guest:echo"}}}));
    let run = s.send_and_finish(json!({"name": "order/placed",
        "data": {"order": "o-1", "items": ["a", "b"]}}));
    assert_eq!(run["steps"]["split"]["sent"].as_array().unwrap().len(), 2);
    let items = || {
        let (_, page) = s.get("/v1/events?name=order/item&limit=100");
        page["data"].as_array().unwrap().len()
    };
    assert_eq!(items(), 2);
    // Both item runs have ended before anything is counted.
    let (_, page) = s.get("/v1/events?name=order/item&limit=100");
    for ev in page["data"].as_array().unwrap() {
        for r in s.runs_of(ev["id"].as_str().unwrap()) {
            s.wait_done(&r);
        }
    }
    let (_, before) = s.get("/v1/runs?limit=100");

    // The same version: the step sends the same events, captured, so nothing differs.
    let (id, _) = start_replay(
        &s,
        json!({"function": "fanout", "version": 1, "mode": "dry_run", "rate": 1000}),
    );
    let r = wait_replay(&s, &id);
    assert_eq!(r["result"]["identical"], 1, "{r:#}");
    // A version allowing one event per step: the dry run shows the step would now fail.
    s.deploy_ok(fanout(json!({"events": 1})));
    let (id, _) = start_replay(
        &s,
        json!({"function": "fanout", "version": 2, "mode": "dry_run", "rate": 1000}),
    );
    let r = wait_replay(&s, &id);
    assert_eq!(r["result"]["new_failures"], 1, "{r:#}");
    let diff = &r["differences"][0];
    assert_eq!(diff["before"]["sent"], json!(["order/item", "order/item"]));
    assert_eq!(diff["after"]["status"], "failed");
    assert_eq!(
        diff["after"]["error"],
        "host.send-event refused an event: more than 1 events sent by one step (limits.events)"
    );
    // Neither dry run sent anything, nor started a run.
    assert_eq!(items(), 2);
    let (_, after) = s.get("/v1/runs?limit=100");
    assert_eq!(before["data"], after["data"]);
}
