//! The per-user view against the real binary: users by last activity, one user with what
//! they wait on and what failed, their timeline, and erasure — tenant-scoped, with every
//! bad input answered by a stable code.

mod common;

use std::time::Instant;

use common::{one_step, Server, DEADLINE, TWO_TENANTS};
use serde_json::{json, Value};

fn signup_flow() -> Value {
    json!({"id": "signup", "triggers": [{"event": "user/signed.up"}],
    "steps": {
        "send": {"path": "guest:echo"},
        "verified": {"path": "guest:echo", "after": [{"step": "send",
            "async": {"event": "user/verified", "match": "event.user.id == async.user.id", "ttl": "1h"}}]}
    }})
}

/// Polls a user until `pred` holds; returns it.
fn wait_user(s: &Server, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (st, u) = s.get(&format!("/v1/users/{id}"));
        if st == 200 && pred(&u) {
            return u;
        }
        assert!(Instant::now() < deadline, "user {id} never got there: {u}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Every timeline entry of a user, page by page (`limit` each).
fn whole_timeline(s: &Server, id: &str, limit: usize) -> (Vec<Value>, usize) {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/users/{id}/timeline?limit={limit}&cursor={c}"),
            None => format!("/v1/users/{id}/timeline?limit={limit}"),
        };
        let (st, page) = s.get(&path);
        assert_eq!(st, 200, "{page}");
        pages += 1;
        all.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return (all, pages),
        }
    }
}

#[test]
fn the_timeline_interleaves_events_and_runs_newest_first_across_pages() {
    let s = Server::start();
    s.deploy_ok(one_step("greet", "user/login", "echo", json!({})));
    let mut events = Vec::new();
    let mut runs = Vec::new();
    for i in 0..3 {
        let ev = s.send(json!({"name": "user/login", "user": {"id": "ann"}, "data": {"n": i}}));
        let run = s.runs_of(&ev);
        assert_eq!(run.len(), 1);
        s.wait_done(&run[0]);
        events.push(ev);
        runs.push(run[0].clone());
    }
    // An event that starts nothing, and another user's.
    events.push(s.send(json!({"name": "user/noted", "user": {"id": "ann"}})));
    s.send(json!({"name": "user/noted", "user": {"id": "bob"}}));

    let (all, pages) = whole_timeline(&s, "ann", 3);
    assert_eq!(pages, 3, "7 entries, 3 a page");
    let ids: Vec<&str> = all.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let mut want: Vec<&str> = events.iter().chain(&runs).map(String::as_str).collect();
    want.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, want, "newest first, each once");
    // Each run comes right after (newer than) the event that started it.
    for (ev, run) in events.iter().zip(&runs) {
        let at = |id: &str| ids.iter().position(|x| *x == id).unwrap();
        assert_eq!(at(run) + 1, at(ev));
    }
    let kinds: Vec<&str> = all.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "run").count(), 3);
    let newest_login = all.iter().find(|e| e["name"] == "user/login").unwrap();
    assert_eq!(newest_login["data"]["n"], 2);
    assert_eq!(newest_login["run_ids"][0], runs[2].as_str());
    let a_run = all.iter().find(|e| e["kind"] == "run").unwrap();
    assert_eq!(
        (a_run["function_id"].as_str(), a_run["status"].as_str()),
        (Some("greet"), Some("completed"))
    );

    // Users by last activity: bob was seen last.
    let (st, users) = s.get("/v1/users?limit=1");
    assert_eq!(st, 200);
    assert_eq!(users["data"][0]["id"], "bob");
    let c = users["next_cursor"].as_str().unwrap();
    let (_, next) = s.get(&format!("/v1/users?limit=1&cursor={c}"));
    assert_eq!(next["data"][0]["id"], "ann");
    assert_eq!(next["data"][0]["events"], 4);
    assert!(next["next_cursor"].is_null());
    let (_, pre) = s.get("/v1/users?prefix=an");
    assert_eq!(pre["data"].as_array().unwrap().len(), 1);
    assert_eq!(pre["data"][0]["id"], "ann");
}

#[test]
fn run_counts_by_status_follow_runs_to_completion_and_failure() {
    let s = Server::start();
    s.deploy_ok(one_step("answer", "go", "respond", json!({})));
    for status in [200, 404, 200] {
        s.send(json!({"name": "go", "user": {"id": "cid", "email": "c@example.com"}, "data": {"status": status}}));
    }
    let u = wait_user(&s, "cid", |u| {
        u["runs"]["completed"] == 2 && u["runs"]["failed"] == 1
    });
    assert_eq!(u["runs"]["running"], 0);
    assert_eq!(u["events"], 3);
    assert_eq!(u["user"]["email"], "c@example.com");
    let failed = u["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["function_id"], "answer");
    assert_eq!(failed[0]["step"], "s");
    assert_eq!(failed[0]["error"], "step returned status 404");
    assert!(failed[0]["ended_at"].is_i64());
    let (_, run) = s.get(&format!("/v1/runs/{}", failed[0]["id"].as_str().unwrap()));
    assert_eq!(run["status"], "failed");
    let (_, list) = s.get("/v1/users");
    assert_eq!(list["data"][0]["runs"], u["runs"]);
}

#[test]
fn the_waiting_list_shows_a_run_parked_on_an_async_wait_until_it_resumes() {
    let s = Server::start();
    s.deploy_ok(signup_flow());
    let ev = s.send(json!({"name": "user/signed.up", "user": {"id": "dee"}}));
    let run = s.runs_of(&ev)[0].clone();
    let u = wait_user(&s, "dee", |u| !u["waiting"].as_array().unwrap().is_empty());
    let w = &u["waiting"][0];
    assert_eq!(w["id"], run.as_str());
    assert_eq!(
        (w["function_id"].as_str(), w["status"].as_str()),
        (Some("signup"), Some("waiting"))
    );
    assert_eq!(
        w["steps"]["verified"]["awaiting"][0]["event"],
        "user/verified"
    );
    let (_, full) = s.get(&format!("/v1/runs/{run}"));
    assert_eq!(
        w["steps"]["verified"]["awaiting"],
        full["steps"]["verified"]["awaiting"]
    );
    assert_eq!(u["runs"]["waiting"], 1);

    s.send(json!({"name": "user/verified", "user": {"id": "dee"}}));
    assert_eq!(s.wait_done(&run)["status"], "completed");
    let u = wait_user(&s, "dee", |u| u["runs"]["completed"] == 1);
    assert!(u["waiting"].as_array().unwrap().is_empty(), "{u}");
    assert_eq!(u["runs"]["waiting"], 0);
}

const SECRET: &str = "card-4242-acme-secret";

#[test]
fn erasure_removes_the_payloads_from_the_store_and_is_tenant_scoped() {
    let mut acme = Server::serve(TWO_TENANTS, "api_acme_0001", "evt_acme_0001");
    let globex = Server::serve_view(&acme, "api_globex_01", "evt_globex_01");
    acme.deploy_ok(one_step("answer", "go", "respond", json!({})));
    acme.deploy_ok(signup_flow());
    let paid = acme.send(json!({"name": "go", "id": format!("idem-{SECRET}"),
        "user": {"id": "eve", "email": format!("{SECRET}@example.com")}, "data": {"card": SECRET}}));
    let done = acme.wait_done(&acme.runs_of(&paid)[0]);
    assert_eq!(done["steps"]["s"]["output"]["body"]["card"], SECRET);
    let parked_ev = acme
        .send(json!({"name": "user/signed.up", "user": {"id": "eve"}, "data": {"card": SECRET}}));
    let parked = acme.runs_of(&parked_ev)[0].clone();
    acme.wait_run(&parked, |r| r["status"] == "waiting");
    globex
        .send(json!({"name": "go", "user": {"id": "eve"}, "data": {"card": "globex-keeps-this"}}));

    // Another tenant's user is not found, and erasing there touches nothing here.
    let (st, body) = globex.delete("/v1/users/only-in-acme");
    assert_eq!((st, body["code"].as_str()), (404, Some("user_not_found")));
    acme.send(json!({"name": "noted", "user": {"id": "only-in-acme"}}));
    let (st, body) = globex.get("/v1/users/only-in-acme");
    assert_eq!((st, body["code"].as_str()), (404, Some("user_not_found")));

    let (st, erased) = acme.delete("/v1/users/eve");
    assert_eq!(st, 200, "{erased}");
    assert_eq!(
        (erased["events"].as_u64(), erased["runs"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(erased["cancelled"], 1, "the parked run is cancelled first");
    let (_, run) = acme.get(&format!("/v1/runs/{parked}"));
    assert_eq!(run["status"], "cancelled");
    let (_, ev) = acme.get(&format!("/v1/events/{paid}"));
    assert_eq!(
        (ev["data"].clone(), ev["user"].clone()),
        (json!({}), json!({"id": "eve"}))
    );
    assert_eq!(ev["name"], "go");
    assert!(ev.get("idempotency_key").is_none());
    let (_, u) = acme.get("/v1/users/eve");
    assert!(u["user"].is_null());
    assert!(u["erased_at"].is_i64());
    assert_eq!(
        (u["events"].as_u64(), u["runs"]["completed"].as_u64()),
        (Some(2), Some(1))
    );
    // The other tenant's user of the same id keeps everything.
    let (_, g) = globex.get("/v1/users/eve/timeline");
    let g_ev = g["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "event")
        .unwrap();
    assert_eq!(g_ev["data"]["card"], "globex-keeps-this");
    // An event sent afterwards is stored as ever.
    let after = acme.send(json!({"name": "noted", "user": {"id": "eve"}, "data": {"kept": true}}));
    let (_, ev) = acme.get(&format!("/v1/events/{after}"));
    assert_eq!(ev["data"]["kept"], true);

    // The records themselves, read from the data dir with the server stopped.
    acme.stop();
    // (Not the file's bytes: redb frees the old pages without zeroing them, so they can
    // hold the old payload until reused; the README says so.)
    let store =
        weir::EmbeddedStore::open(weir::EmbeddedEngine::Redb, &acme.data_dir).expect("store opens");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (events, runs) = rt.block_on(async {
        use weir::store::{EventStore, RunFilter, RunStore};
        let ev = store.list_events("acme", None, 1000, None).await.unwrap();
        let filter = RunFilter::default();
        let runs = store.list_runs("acme", &filter, 1000, None).await.unwrap();
        (ev.data, runs.data)
    });
    assert_eq!(events.len(), 4);
    assert_eq!(runs.len(), 2);
    for e in &events {
        let text = serde_json::to_string(e).unwrap();
        assert!(
            !text.contains(SECRET),
            "a stored event still holds the secret: {text}"
        );
    }
    for r in &runs {
        let text = serde_json::to_string(r).unwrap();
        assert!(
            !text.contains(SECRET),
            "a stored run still holds the secret: {text}"
        );
        assert!(r
            .steps
            .iter()
            .all(|s| s.output.is_none() && s.log.is_none()));
    }
}

#[test]
fn bad_input_and_unknown_users_get_stable_codes() {
    let s = Server::start();
    s.send(json!({"name": "x", "user": {"id": "u1"}}));
    wait_user(&s, "u1", |_| true);
    for (path, status, code) in [
        ("/v1/users?limit=lots", 400, "invalid_query"),
        ("/v1/users?limit=-1", 400, "invalid_query"),
        ("/v1/users?cursor=not-a-cursor", 400, "invalid_query"),
        ("/v1/users/u1/timeline?limit=x", 400, "invalid_query"),
        ("/v1/users/u1/timeline?cursor=zzz", 400, "invalid_query"),
        ("/v1/users/nobody", 404, "user_not_found"),
        ("/v1/users/nobody/timeline", 404, "user_not_found"),
    ] {
        let (st, body) = s.get(path);
        assert_eq!(
            (st, body["code"].as_str()),
            (status, Some(code)),
            "{path}: {body}"
        );
        assert_eq!(body["status"], status);
    }
    let (st, body) = s.delete("/v1/users/nobody");
    assert_eq!((st, body["code"].as_str()), (404, Some("user_not_found")));
}
