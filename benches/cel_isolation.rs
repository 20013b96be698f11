//! CEL isolation: `weir serve` with two tenants. "hostile" deploys the most expensive
//! trigger the default budget lets through (two nested comprehensions over 28-element
//! literal lists: ~9,700 cost units, about 0.2 ms, on every event) and sends small events
//! back to back, 100 per request, from two threads; "quiet" sends small events one at a
//! time. Prints quiet's event→run-created latency (server timestamps) without the hostile
//! tenant and while it floods, and how many hostile events were matched meanwhile.
//!
//! `cargo bench --bench cel_isolation` (WEIR_CEL_QUIET, default 500 events per phase;
//! WEIR_LOAD_BIN drives another build). Under `cargo test` it runs small.

mod util;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn deploy(agent: &ureq::Agent, url: &str, api_key: &str, event: &str, expression: Option<&str>) {
    let bytes = std::fs::read(util::guest("echo")).unwrap();
    let sha = hex::encode(Sha256::digest(&bytes));
    util::call(
        agent,
        "PUT",
        &format!("{url}/v1/components/{sha}"),
        api_key,
        Some(&bytes),
    );
    let mut trigger = json!({"event": event});
    if let Some(e) = expression {
        trigger["expression"] = json!(e);
    }
    let def = json!({"id": "f", "triggers": [trigger],
        "steps": {"a": {"path": format!("sha256:{sha}")}}});
    util::call(
        agent,
        "POST",
        &format!("{url}/v1/functions"),
        api_key,
        Some(def.to_string().as_bytes()),
    );
}

/// Sends `n` quiet events one at a time; returns their ids.
fn quiet_phase(agent: &ureq::Agent, url: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let body = json!({"name": "ping", "data": {"i": i}}).to_string();
            let r = util::call(
                agent,
                "POST",
                &format!("{url}/e"),
                "evt_quiet",
                Some(body.as_bytes()),
            );
            r["ids"][0].as_str().unwrap().to_string()
        })
        .collect()
}

/// Event → run created (ms, server clock) of each of these events' runs.
fn latencies(agent: &ureq::Agent, url: &str, ids: &[String]) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new(3).unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    for id in ids {
        loop {
            let ev = util::call(
                agent,
                "GET",
                &format!("{url}/v1/events/{id}"),
                "api_quiet",
                None,
            );
            if let Some(run) = ev["run_ids"].get(0).and_then(Value::as_str) {
                let r = util::call(
                    agent,
                    "GET",
                    &format!("{url}/v1/runs/{run}"),
                    "api_quiet",
                    None,
                );
                let lat = r["created_at"].as_i64().unwrap() - ev["ts"].as_i64().unwrap();
                h.record(lat.max(0) as u64).unwrap();
                break;
            }
            assert!(
                Instant::now() < deadline,
                "event {id} never started its run"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    h
}

fn show(name: &str, h: &Histogram<u64>) {
    println!(
        "{name:<44} event→run p50 {:>4} ms  p90 {:>4} ms  p99 {:>4} ms  max {:>5} ms",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.max()
    );
}

/// Runs the hostile tenant's trigger has started so far.
fn hostile_runs(agent: &ureq::Agent, url: &str) -> u64 {
    let f = util::call(
        agent,
        "GET",
        &format!("{url}/v1/functions/f"),
        "api_hostile",
        None,
    );
    f["runs"]
        .as_object()
        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let n: usize = util::env_or("WEIR_CEL_QUIET", if bench { 500 } else { 20 });
    let tmp = tempfile::tempdir().unwrap();
    let (_server, url) = util::serve(tmp.path(), &util::tenants(&["hostile", "quiet"]));
    let a = util::agent();
    let list = format!(
        "[{}]",
        (1..=28)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let costly = format!("{list}.all(a, {list}.all(b, a + b > 0))");
    deploy(&a, &url, "api_hostile", "order/placed", Some(&costly));
    deploy(&a, &url, "api_quiet", "ping", None);
    println!("weir CEL isolation bench (2 cores, {n} quiet events per phase)");

    let alone = latencies(&a, &url, &quiet_phase(&a, &url, n));
    show("quiet alone", &alone);

    // The hostile tenant: every event costs its trigger nearly the whole budget.
    let batch: Vec<Value> = (0..100)
        .map(|i| json!({"name": "order/placed", "data": {"i": i}}))
        .collect();
    let big = json!(batch).to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let floods: Vec<_> = (0..2)
        .map(|_| {
            let (stop, sent, url, big) = (stop.clone(), sent.clone(), url.clone(), big.clone());
            std::thread::spawn(move || {
                let a = util::agent();
                while !stop.load(Ordering::Relaxed) {
                    util::call(
                        &a,
                        "POST",
                        &format!("{url}/e"),
                        "evt_hostile",
                        Some(big.as_bytes()),
                    );
                    sent.fetch_add(100, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Let the flood build before measuring.
    while sent.load(Ordering::Relaxed) < 2_000 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let matched0 = hostile_runs(&a, &url);
    let t0 = Instant::now();
    let ids = quiet_phase(&a, &url, n);
    let during = latencies(&a, &url, &ids);
    let matched = hostile_runs(&a, &url) - matched0;
    let secs = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for f in floods {
        f.join().unwrap();
    }
    show("quiet while hostile floods", &during);
    println!(
        "hostile: {} events sent, {matched} matched while quiet was measured ({:.0}/s, each ~0.2 ms of CEL)",
        sent.load(Ordering::Relaxed),
        matched as f64 / secs
    );
}
