//! Noisy neighbour: `weir serve` with two tenants. "noisy" may run 2 steps at once and
//! has a deep backlog (N events of a two-step function, sent in batches of 100); "quiet"
//! then sends M events one per request, 8 in flight. Prints how quiet fares while noisy's
//! backlog sits in the queue: events/s, runs/s, event→done p50/p99, and the server's CPU
//! per 1,000 quiet runs (the cost of passing over noisy's backlog shows up here).
//!
//! `cargo bench --bench noisy` (WEIR_NOISY_BACKLOG, default 20,000; WEIR_NOISY_QUIET,
//! default 2,000; WEIR_LOAD_BIN drives another build). Under `cargo test` it runs small.

mod util;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

const TENANTS: &str = r#"
[[tenants]]
id = "noisy"
event_keys = ["evt_noisy"]
api_keys = ["api_noisy"]
max_concurrent_steps = 2

[[tenants]]
id = "quiet"
event_keys = ["evt_quiet"]
api_keys = ["api_quiet"]
"#;

fn completed(agent: &ureq::Agent, url: &str, api_key: &str) -> u64 {
    let f = util::call(
        agent,
        "GET",
        &format!("{url}/v1/functions/two-step"),
        api_key,
        None,
    );
    f["runs"]["completed"].as_u64().unwrap_or(0)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let backlog: usize = util::env_or("WEIR_NOISY_BACKLOG", if bench { 20_000 } else { 400 });
    let quiet: usize = util::env_or("WEIR_NOISY_QUIET", if bench { 2_000 } else { 50 });
    let tmp = tempfile::tempdir().unwrap();
    let (server, url) = util::serve(tmp.path(), TENANTS);
    let pid = server.pid();
    let a = util::agent();
    util::deploy_chain(
        &a,
        &url,
        "api_noisy",
        "two-step",
        "load/go",
        &["hello", "shout"],
    );
    util::deploy_chain(
        &a,
        &url,
        "api_quiet",
        "two-step",
        "load/go",
        &["hello", "shout"],
    );

    // The noisy tenant's backlog: far more than its 2 steps at a time can drain soon.
    for i in 0..backlog.div_ceil(100) {
        let n = 100.min(backlog - i * 100);
        let body: Vec<Value> = (0..n)
            .map(|k| json!({"name": "load/go", "data": {"n": i * 100 + k}}))
            .collect();
        util::call(
            &a,
            "POST",
            &format!("{url}/e"),
            "evt_noisy",
            Some(json!(body).to_string().as_bytes()),
        );
    }

    let cpu0 = util::proc_cpu_secs(pid);
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..8)
        .map(|_| {
            let (next, url) = (next.clone(), url.clone());
            std::thread::spawn(move || {
                let a = util::agent();
                while next.fetch_add(1, Ordering::Relaxed) < quiet {
                    let ev = json!({"name": "load/go", "data": {"q": 1}}).to_string();
                    util::call(
                        &a,
                        "POST",
                        &format!("{url}/e"),
                        "evt_quiet",
                        Some(ev.as_bytes()),
                    );
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let sent = started.elapsed();
    while completed(&a, &url, "api_quiet") < quiet as u64 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let done = started.elapsed();
    let cpu = util::proc_cpu_secs(pid) - cpu0;
    let noisy_done = completed(&a, &url, "api_noisy");

    let mut hist = Histogram::<u64>::new_with_bounds(1, 3_600_000, 3).unwrap();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = format!("{url}/v1/runs?function=two-step&limit=1000");
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={c}"));
        }
        let page = util::call(&a, "GET", &q, "api_quiet", None);
        for r in page["data"].as_array().unwrap() {
            let (ts, end) = (
                r["event_ts"].as_i64().unwrap(),
                r["ended_at"].as_i64().unwrap(),
            );
            hist.record((end - ts).max(1) as u64).unwrap();
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.into()),
            None => break,
        }
    }
    drop(server);
    println!(
        "noisy backlog {backlog} (cap 2), quiet {quiet} unbatched: {:>5} ev/s accepted {:>5} runs/s done | quiet event→done p50 {} p99 {} max {} ms | {:.2} CPU-s/1k quiet runs | noisy runs done meanwhile {noisy_done}",
        (quiet as f64 / sent.as_secs_f64()) as u64,
        (quiet as f64 / done.as_secs_f64()) as u64,
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.99),
        hist.max(),
        cpu * 1000.0 / quiet as f64,
    );
}
