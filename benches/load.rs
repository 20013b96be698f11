//! End-to-end load bench: the real `weir dev` binary, a two-step function of real C guests,
//! N events over real HTTP (batched and unbatched, closed-loop with C senders or
//! open-loop at a fixed rate), every run awaited. Prints events/s accepted, runs/s
//! completed, event→done latency p50/p90/p99/max (HDR histogram, ms: server timestamps),
//! CPU seconds per 1,000 runs, peak RSS and disk bytes per 1,000 runs.
//!
//! `cargo bench --bench load` runs the standard scenarios (2,000 events, 32 in flight).
//! Knobs: WEIR_LOAD_EVENTS, WEIR_LOAD_CONCURRENCY, WEIR_LOAD_BATCH (1 or more),
//! WEIR_LOAD_RATE (events/s; open loop), WEIR_LOAD_STORE (redb|sled), WEIR_LOAD_WORKERS,
//! WEIR_LOAD_BIN (path of another weir build to drive, for A/B comparisons),
//! WEIR_LOAD_PHASES (also print p50/p99 of each phase of a run: where the time goes),
//! WEIR_LOAD_FIELDS (extra numeric fields in each event's data, for a bigger payload),
//! WEIR_LOAD_ROLLOUT (two versions, new runs routed 50/50 by a rollout),
//! WEIR_LOAD_USERS (each event names one of this many users, round robin).
//! Under `cargo test` it runs one small smoke scenario so it cannot rot.

mod util;

use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

struct Scenario {
    name: String,
    events: usize,
    concurrency: usize,
    batch: usize,
    rate: Option<f64>,
    store: String,
}

// The child goes back to the caller, which kills and waits for it after the scenario.
#[allow(clippy::zombie_processes)]
fn start(dir: &Path, store: &str) -> (Child, String) {
    let functions = dir.join("functions");
    std::fs::create_dir_all(&functions).unwrap();
    let def = json!({"id": "two-step", "triggers": [{"event": "load/go"}], "steps": {
        "hello": {"path": format!("file://{}", util::guest("hello").display())},
        "shout": {"path": format!("file://{}", util::guest("shout").display()), "after": [{"step": "hello"}]}}});
    std::fs::write(functions.join("two-step.json"), def.to_string()).unwrap();
    let mut child = util::weir()
        .args(["dev", "--port", "0", "--store", store, "--data-dir"])
        .arg(dir.join("data"))
        .arg("--functions")
        .arg(&functions)
        .args(
            std::env::var("WEIR_LOAD_WORKERS")
                .map(|w| vec!["--workers".to_string(), w])
                .unwrap_or_default(),
        )
        .spawn()
        .unwrap();
    let url = util::api_url(&mut child);
    if std::env::var("WEIR_LOAD_ROLLOUT").is_ok() {
        split_by_rollout(&url);
    }
    (child, url)
}

/// WEIR_LOAD_ROLLOUT: deploys a second version of the function and routes new runs
/// 50/50 between the two, sticky by event id (what routing by rollout costs).
fn split_by_rollout(url: &str) {
    let versions = get(&format!("{url}/v1/functions/two-step/versions"));
    let mut def = versions["data"][0]["def"].clone();
    def["name"] = json!("second version");
    let send = |method: &str, path: &str, body: &Value| {
        let u = format!("{url}{path}");
        let req = if method == "PUT" {
            util::agent().put(&u)
        } else {
            util::agent().post(&u)
        };
        let mut r = req
            .content_type("application/json")
            .send(body.to_string().as_bytes())
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "{}",
            r.body_mut().read_to_string().unwrap()
        );
    };
    send("POST", "/v1/functions", &def);
    send(
        "PUT",
        "/v1/functions/two-step/rollout",
        &json!({"versions": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}]}),
    );
}

fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn get(url: &str) -> Value {
    util::agent()
        .get(url)
        .call()
        .unwrap()
        .body_mut()
        .with_config()
        .limit(256 << 20)
        .read_json()
        .unwrap()
}

fn run(s: &Scenario) {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, url) = start(tmp.path(), &s.store);
    let pid = child.id();
    let disk0 = util::dir_bytes(&tmp.path().join("data"));
    let cpu0 = util::proc_cpu_secs(pid);
    let requests = s.events.div_ceil(s.batch);
    let next = Arc::new(AtomicUsize::new(0));
    // WEIR_LOAD_FIELDS: extra numeric fields in each event's data (a bigger payload).
    let fields: usize = util::env_or("WEIR_LOAD_FIELDS", 0);
    let extra: Value = (0..fields)
        .map(|f| (format!("field_{f}"), json!(f * 7)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    let started = Instant::now();
    let senders: Vec<_> = (0..s.concurrency)
        .map(|_| {
            let (next, url, extra) = (next.clone(), url.clone(), extra.clone());
            let (batch, events, rate) = (s.batch, s.events, s.rate);
            // Events spread over this many users (`user.id`), none if 0.
            let users: usize = util::env_or("WEIR_LOAD_USERS", 0);
            std::thread::spawn(move || {
                let agent = util::agent();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests {
                        return;
                    }
                    if let Some(r) = rate {
                        // Open loop: request i leaves at its scheduled time, however late
                        // earlier ones came back.
                        let due = started + Duration::from_secs_f64((i * batch) as f64 / r);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                    let n = batch.min(events - i * batch);
                    let body: Vec<Value> = (0..n)
                        .map(|k| {
                            let mut data = extra.clone();
                            let at = i * batch + k;
                            data["name"] = json!(format!("n{at}"));
                            let mut ev = json!({"name": "load/go", "data": data});
                            if users > 0 {
                                ev["user"] =
                                    json!({"id": format!("u{}", at % users), "plan": "pro"});
                            }
                            ev
                        })
                        .collect();
                    let body = if batch == 1 {
                        body[0].clone()
                    } else {
                        json!(body)
                    };
                    let mut r = agent
                        .post(format!("{url}/e/load"))
                        .send_json(&body)
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    // Read the reply to its end so the connection goes back to the pool
                    // (an unread body made every request open a new connection).
                    r.body_mut().read_to_vec().unwrap();
                }
            })
        })
        .collect();
    for t in senders {
        t.join().unwrap();
    }
    let sent = started.elapsed();
    loop {
        let f = get(&format!("{url}/v1/functions/two-step"));
        let done = f["runs"]["completed"].as_u64().unwrap_or(0) as usize;
        assert_eq!(f["runs"]["failed"], 0, "{f}");
        if done >= s.events {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let cpu = util::proc_cpu_secs(pid) - cpu0;
    let rss = peak_rss_mb(pid);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 3_600_000, 3).unwrap();
    // Where the time goes, per phase of a run (server timestamps, ms).
    const PHASES: [&str; 6] = [
        "event→run created",
        "→hello started",
        "hello ran",
        "→shout started",
        "shout ran",
        "→run done",
    ];
    let mut phases: Vec<Histogram<u64>> = PHASES
        .iter()
        .map(|_| Histogram::new_with_bounds(1, 3_600_000, 3).unwrap())
        .collect();
    let (mut first, mut last) = (i64::MAX, 0i64);
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("{url}/v1/runs?function=two-step&limit=1000&cursor={c}"),
            None => format!("{url}/v1/runs?function=two-step&limit=1000"),
        };
        let page = get(&q);
        for r in page["data"].as_array().unwrap() {
            let (ts, end) = (
                r["event_ts"].as_i64().unwrap(),
                r["ended_at"].as_i64().unwrap(),
            );
            hist.record((end - ts).max(1) as u64).unwrap();
            let at = |v: &Value| v.as_i64().unwrap_or(0);
            let (h, sh) = (&r["steps"]["hello"], &r["steps"]["shout"]);
            let marks = [
                ts,
                at(&r["created_at"]),
                at(&h["started_at"]),
                at(&h["ended_at"]),
                at(&sh["started_at"]),
                at(&sh["ended_at"]),
                end,
            ];
            for (i, p) in phases.iter_mut().enumerate() {
                // +1: a phase under a millisecond still counts (the histogram starts at 1).
                p.record((marks[i + 1] - marks[i]).max(0) as u64 + 1)
                    .unwrap();
            }
            first = first.min(ts);
            last = last.max(end);
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.into()),
            None => break,
        }
    }
    let disk = util::dir_bytes(&tmp.path().join("data")).saturating_sub(disk0);
    let _ = child.kill();
    let _ = child.wait();
    let span = ((last - first).max(1)) as f64 / 1000.0;
    println!(
        "{:<34} {:>6} ev/s accepted {:>6} runs/s done | latency ms p50 {:>5} p90 {:>5} p99 {:>5} max {:>5} | {:.2} CPU-s/1k runs | RSS {:.0} MB | {:.0} KB disk/1k runs",
        s.name,
        (s.events as f64 / sent.as_secs_f64()) as u64,
        (s.events as f64 / span) as u64,
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.9),
        hist.value_at_quantile(0.99),
        hist.max(),
        cpu * 1000.0 / s.events as f64,
        rss,
        disk as f64 / s.events as f64
    );
    if std::env::var("WEIR_LOAD_PHASES").is_ok() {
        let parts: Vec<String> = PHASES
            .iter()
            .zip(&phases)
            .map(|(name, h)| {
                format!(
                    "{name} {}/{}",
                    h.value_at_quantile(0.5) - 1,
                    h.value_at_quantile(0.99) - 1
                )
            })
            .collect();
        println!("    phases p50/p99 ms: {}", parts.join(" | "));
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let store: String = util::env_or("WEIR_LOAD_STORE", "redb".to_string());
    let events = util::env_or("WEIR_LOAD_EVENTS", if bench { 2000 } else { 100 });
    let conc = util::env_or("WEIR_LOAD_CONCURRENCY", 32usize);
    let scenarios: Vec<Scenario> = match (
        std::env::var("WEIR_LOAD_BATCH").ok(),
        std::env::var("WEIR_LOAD_RATE").ok(),
    ) {
        (None, None) if bench => vec![
            Scenario {
                name: format!("unbatched, {conc} in flight"),
                events,
                concurrency: conc,
                batch: 1,
                rate: None,
                store: store.clone(),
            },
            Scenario {
                name: "batches of 100, 4 in flight".into(),
                events: events * 10,
                concurrency: 4,
                batch: 100,
                rate: None,
                store: store.clone(),
            },
            Scenario {
                name: "open loop 500 ev/s, unbatched".into(),
                events,
                concurrency: conc,
                batch: 1,
                rate: Some(500.0),
                store: store.clone(),
            },
        ],
        (b, r) => {
            let batch = b.and_then(|v| v.parse().ok()).unwrap_or(1usize).max(1);
            let rate = r.and_then(|v| v.parse().ok());
            vec![Scenario {
                name: format!(
                    "batch {batch}, {conc} in flight{}",
                    rate.map(|r| format!(", {r} ev/s")).unwrap_or_default()
                ),
                events,
                concurrency: conc,
                batch,
                rate,
                store,
            }]
        }
    };
    println!(
        "weir load bench ({} store, {} cores)",
        scenarios[0].store,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    for s in &scenarios {
        run(s);
    }
}
