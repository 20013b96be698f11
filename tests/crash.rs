//! The crash suite: a mixed workload against the real binary, SIGKILLed at random
//! moments and restarted, then checked against the guarantees of design §4.
//!
//! Seeded: set `WEIR_CRASH_SEED` to replay a failure; the seed is printed at start and
//! in every assertion message.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Server;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const EVENTS: usize = 320;
const KILLS: usize = 20;

fn functions() -> Vec<Value> {
    vec![
        // fan-out: "mix/a" starts both `chain` and `fan`.
        json!({"id": "chain", "triggers": [{"event": "mix/a"}], "steps": {
            "a": {"path": "guest:echo"}, "b": {"path": "guest:echo", "after": [{"step": "a"}]}}}),
        json!({"id": "fan", "triggers": [{"event": "mix/a"}], "steps": {"only": {"path": "guest:hello"}}}),
        json!({"id": "sleepy", "triggers": [{"event": "mix/s"}], "steps": {
            "a": {"path": "guest:echo"}, "b": {"path": "guest:echo", "after": [{"step": "a", "wait": "1s"}]}}}),
        json!({"id": "retry", "triggers": [{"event": "mix/r"}], "retries": {"attempts": 3, "backoff": "100ms"},
            "steps": {"f": {"path": "guest:flaky"}, "g": {"path": "guest:echo", "after": [{"step": "f"}]}}}),
        // Both outcomes of a wait: `yes` always gets its event, `no` never does.
        json!({"id": "wait-yes", "triggers": [{"event": "mix/wy"}], "steps": {
            "send": {"path": "guest:echo"},
            "got": {"path": "guest:echo", "after": [{"step": "send", "async": {"event": "mix/verified", "match": "event.user.id == async.user.id", "ttl": "10m"}}]},
            "timeout": {"path": "guest:echo", "after": [{"step": "send", "async": {"event": "mix/verified", "match": "event.user.id == async.user.id", "ttl": "10m", "onTimeout": true}}]}}}),
        json!({"id": "wait-no", "triggers": [{"event": "mix/wn"}], "steps": {
            "send": {"path": "guest:echo"},
            "got": {"path": "guest:echo", "after": [{"step": "send", "async": {"event": "mix/never", "match": "event.user.id == async.user.id", "ttl": "1500ms"}}]},
            "timeout": {"path": "guest:echo", "after": [{"step": "send", "async": {"event": "mix/never", "match": "event.user.id == async.user.id", "ttl": "1500ms", "onTimeout": true}}]}}}),
    ]
}

fn kinds() -> [&'static str; 5] {
    ["mix/a", "mix/s", "mix/r", "mix/wy", "mix/wn"]
}

fn event(i: usize) -> Value {
    let name = kinds()[i % 5];
    let mut e = json!({"name": name, "id": format!("ev-{i}"), "user": {"id": format!("u{i}")}, "data": {"i": i, "name": format!("n{i}"), "succeed_on": 1}});
    if name == "mix/a" {
        e["data"]["fan"] = json!(true);
    }
    e
}

/// Sends batches forever (until `stop`), retrying each until acknowledged; the same
/// idempotency ids make a retried batch start nothing twice.
fn sender(
    url: Arc<Mutex<String>>,
    batches: Vec<Vec<Value>>,
    acked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .new_agent();
    for batch in batches {
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let u = url.lock().unwrap().clone();
            let reply = agent.post(format!("{u}/e/k")).send_json(&batch);
            if let Ok(mut r) = reply {
                if r.status() == 200 {
                    let v: Value = r.body_mut().read_json().unwrap();
                    let ids = v["ids"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_str().unwrap().to_string());
                    acked.lock().unwrap().extend(ids);
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        std::thread::sleep(Duration::from_millis(60));
    }
}

fn all_runs(s: &Server, function: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/v1/runs?function={function}&limit=500&cursor={c}"),
            None => format!("/v1/runs?function={function}&limit=500"),
        };
        let (st, page) = s.get(&q);
        assert_eq!(st, 200, "{page}");
        out.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

fn crash_suite(store_args: &[&str]) {
    let seed: u64 = std::env::var("WEIR_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("crash suite {store_args:?}: WEIR_CRASH_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let ctx = format!("(WEIR_CRASH_SEED={seed}, {store_args:?})");

    let mut s = Server::start_with(store_args);
    for f in functions() {
        s.deploy_ok(f);
    }
    let events: Vec<Value> = (0..EVENTS).map(event).collect();
    let mut batches: Vec<Vec<Value>> = Vec::new();
    let mut i = 0;
    while i < events.len() {
        let n = rng.random_range(1..=12).min(events.len() - i);
        batches.push(events[i..i + n].to_vec());
        i += n;
    }
    let url = Arc::new(Mutex::new(s.url.clone()));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let t = {
        let (url, acked, stop) = (url.clone(), acked.clone(), stop.clone());
        std::thread::spawn(move || sender(url, batches, acked, stop))
    };

    // Phase 1: kill at random moments while events stream in and runs progress.
    for _ in 0..KILLS {
        std::thread::sleep(Duration::from_millis(rng.random_range(50..600)));
        s = s.kill_and_restart();
        *url.lock().unwrap() = s.url.clone();
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while !t.is_finished() {
        assert!(Instant::now() < deadline, "sender did not finish {ctx}");
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    t.join().unwrap();

    // Phase 2: the `wait-yes` runs get their events once they are waiting; keep killing.
    let wy_users: Vec<String> = (0..EVENTS)
        .filter(|i| i % 5 == 3)
        .map(|i| format!("u{i}"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let waiting = all_runs(&s, "wait-yes")
            .iter()
            .filter(|r| r["status"] == "waiting")
            .count();
        if waiting == wy_users.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {waiting}/{} wait-yes runs are waiting {ctx}",
            wy_users.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for chunk in wy_users.chunks(16) {
        let batch: Vec<Value> = chunk
            .iter()
            .map(|u| json!({"name": "mix/verified", "user": {"id": u}}))
            .collect();
        let (st, body) = s.post("/e/k", &json!(batch));
        assert_eq!(st, 200, "{body} {ctx}");
        if rng.random_bool(0.5) {
            std::thread::sleep(Duration::from_millis(rng.random_range(0..100)));
            s = s.kill_and_restart();
        }
    }

    // Let everything finish without further kills.
    let expected_runs: BTreeMap<&str, usize> = [
        ("chain", 64),
        ("fan", 64),
        ("sleepy", 64),
        ("retry", 64),
        ("wait-yes", 64),
        ("wait-no", 64),
    ]
    .into();
    let deadline = Instant::now() + Duration::from_secs(180);
    let runs: BTreeMap<&str, Vec<Value>> = loop {
        let runs: BTreeMap<&str, Vec<Value>> = expected_runs
            .keys()
            .map(|f| (*f, all_runs(&s, f)))
            .collect();
        let unfinished: usize = runs
            .values()
            .flatten()
            .filter(|r| {
                !matches!(
                    r["status"].as_str(),
                    Some("completed" | "failed" | "cancelled")
                )
            })
            .count();
        if unfinished == 0 {
            break runs;
        }
        assert!(
            Instant::now() < deadline,
            "{unfinished} runs never finished {ctx}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };

    let acked = acked.lock().unwrap().clone();
    let attempts: u64 = runs
        .values()
        .flatten()
        .flat_map(|r| {
            r["steps"]
                .as_object()
                .unwrap()
                .values()
                .map(|s| s["attempts"].as_u64().unwrap_or(0))
        })
        .sum();
    eprintln!(
        "crash suite {store_args:?}: {KILLS}+ kills survived, {} acks for {EVENTS} events, {} runs, {attempts} step attempts",
        acked.len(),
        runs.values().map(Vec::len).sum::<usize>()
    );
    // Every acknowledged event is stored.
    assert!(acked.len() >= EVENTS, "{} acks {ctx}", acked.len());
    for id in &acked {
        let (st, e) = s.get(&format!("/v1/events/{id}"));
        assert_eq!(st, 200, "acknowledged event {id} lost {ctx}: {e}");
    }
    // Exactly one run per distinct event and function: no loss, no duplicate.
    for (f, n) in &expected_runs {
        let got = &runs[f];
        assert_eq!(got.len(), *n, "{f}: {} runs, expected {n} {ctx}", got.len());
        let users: BTreeSet<&str> = got.iter().map(|r| r["user_id"].as_str().unwrap()).collect();
        assert_eq!(users.len(), *n, "{f}: a user has two runs {ctx}");
    }
    for (f, list) in &runs {
        for r in list {
            let steps = r["steps"].as_object().unwrap();
            let st = |id: &str| steps[id]["status"].as_str().unwrap().to_string();
            assert_eq!(r["status"], "completed", "{f} run {} {ctx}: {r:#}", r["id"]);
            // Every step of a completed run is completed or skipped, none missing.
            for (id, step) in steps {
                assert!(
                    matches!(step["status"].as_str(), Some("completed" | "skipped")),
                    "{f}.{id} {ctx}: {r:#}"
                );
                if step["status"] == "completed" {
                    assert!(step["output"].is_object(), "{f}.{id} has no output {ctx}");
                }
            }
            // Each step's recorded output is the one its successors saw.
            for (id, step) in steps {
                if let Some(seen) = step["output"]["steps"].as_object() {
                    for (parent, out) in seen {
                        assert_eq!(
                            out, &steps[parent]["output"],
                            "{f}: {id} saw another {parent} output {ctx}"
                        );
                    }
                }
            }
            match *f {
                "wait-yes" => {
                    assert_eq!(
                        (st("got"), st("timeout")),
                        ("completed".into(), "skipped".into()),
                        "{ctx} {r:#}"
                    );
                    assert_eq!(
                        steps["got"]["output"]["async"]["user"]["id"], r["user_id"],
                        "{ctx}"
                    );
                }
                "wait-no" => assert_eq!(
                    (st("got"), st("timeout")),
                    ("skipped".into(), "completed".into()),
                    "{ctx} {r:#}"
                ),
                "sleepy" => {
                    let slept = steps["b"]["started_at"].as_i64().unwrap()
                        - steps["a"]["ended_at"].as_i64().unwrap();
                    assert!(slept >= 1000, "sleepy woke after {slept} ms {ctx}");
                }
                "retry" => assert!(steps["f"]["attempts"].as_u64().unwrap() >= 2, "{ctx} {r:#}"),
                "fan" => assert!(
                    steps["only"]["output"]["body"]["message"]
                        .as_str()
                        .unwrap()
                        .starts_with("Hello, n"),
                    "{ctx}"
                ),
                _ => {}
            }
        }
    }
}

#[test]
fn crash_suite_sled() {
    crash_suite(&["--store", "sled"]);
}

#[test]
fn crash_suite_redb() {
    crash_suite(&["--store", "redb"]);
}
