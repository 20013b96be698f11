//! Replay throughput and what a dry run costs live traffic, through `weir serve`.
//!
//! Seeds stored events of a two-step function (`pay`: hello → shout), then measures:
//! a `run`-mode replay of all of them at the highest rate (events/s gone through, and
//! until its runs completed), a `dry_run` of all of them with nothing else running
//! (events/s), and a second function's live traffic (open loop, event → run done
//! p50/p99) alone and while a dry run of `pay` proceeds, in alternating rounds.
//!
//! `cargo bench --bench replay` (full size with `--bench`; env `WEIR_REPLAY_SEED`
//! (20,000), `WEIR_REPLAY_LIVE_RATE` (200 ev/s), `WEIR_REPLAY_LIVE_SECS` (5),
//! `WEIR_REPLAY_ROUNDS` (2), `WEIR_LOAD_BIN`).

#[path = "util/mod.rs"]
mod util;

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

const KEY: &str = "api_shop";

fn post(a: &ureq::Agent, url: &str, path: &str, body: &Value) -> Value {
    let key = if path == "/e" { "evt_shop" } else { KEY };
    util::call(
        a,
        "POST",
        &format!("{url}{path}"),
        key,
        Some(body.to_string().as_bytes()),
    )
}

fn get(a: &ureq::Agent, url: &str, path: &str) -> Value {
    util::call(a, "GET", &format!("{url}{path}"), KEY, None)
}

fn completed(a: &ureq::Agent, url: &str, fid: &str) -> u64 {
    get(a, url, &format!("/v1/functions/{fid}"))["runs"]["completed"]
        .as_u64()
        .unwrap_or(0)
}

fn wait_completed(a: &ureq::Agent, url: &str, fid: &str, n: u64) {
    while completed(a, url, fid) < n {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts a replay and waits until it is no longer running; its record and how long.
fn replay(a: &ureq::Agent, url: &str, body: Value) -> (Value, Duration) {
    let t0 = Instant::now();
    let id = post(a, url, "/v1/replays", &body)["id"]
        .as_str()
        .unwrap()
        .to_string();
    loop {
        let r = get(a, url, &format!("/v1/replays/{id}"));
        if r["status"] != "running" {
            return (r, t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends live events at `rate`/s for `secs`, open loop; returns the window sent in.
fn live(a: &ureq::Agent, url: &str, rate: u32, secs: f64) -> (i64, i64) {
    let start = Instant::now();
    let from = util::now_ms();
    let n = (rate as f64 * secs) as u32;
    for i in 0..n {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        post(a, url, "/e", &json!({"name": "live/go", "data": {"i": i}}));
    }
    (from, util::now_ms())
}

/// Event → run done latency of the `live` runs whose event came in `[from, to]`.
fn latencies(a: &ureq::Agent, url: &str, from: i64, to: i64) -> Histogram<u64> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 3_600_000, 3).unwrap();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = "/v1/runs?function=live&limit=1000".to_string();
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={c}"));
        }
        let page = get(a, url, &q);
        for r in page["data"].as_array().unwrap() {
            let ts = r["event_ts"].as_i64().unwrap();
            // Only ended runs count; the caller polls until all have.
            if let (true, Some(end)) = ((from..=to).contains(&ts), r["ended_at"].as_i64()) {
                hist.record((end - ts).max(1) as u64).unwrap();
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.into()),
            None => return hist,
        }
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let seed: u64 = util::env_or("WEIR_REPLAY_SEED", if bench { 20_000 } else { 40 });
    let live_rate: u32 = util::env_or("WEIR_REPLAY_LIVE_RATE", if bench { 200 } else { 20 });
    let live_secs: f64 = util::env_or("WEIR_REPLAY_LIVE_SECS", if bench { 5.0 } else { 0.5 });
    let rounds: usize = util::env_or("WEIR_REPLAY_ROUNDS", if bench { 2 } else { 1 });
    let tmp = tempfile::tempdir().unwrap();
    let (_server, url) = util::serve(tmp.path(), &util::tenants(&["shop"]));
    let a = util::agent();
    util::deploy_chain(&a, &url, KEY, "pay", "order/paid", &["hello", "shout"]);
    util::deploy_chain(&a, &url, KEY, "live", "live/go", &["hello", "shout"]);
    for i in 0..seed.div_ceil(500) {
        let n = 500.min(seed - i * 500);
        let body: Vec<Value> = (0..n)
            .map(|k| json!({"name": "order/paid", "data": {"name": format!("n{}", i * 500 + k)}}))
            .collect();
        post(&a, &url, "/e", &json!(body));
    }
    wait_completed(&a, &url, "pay", seed);
    println!("weir replay bench (2 cores, {seed} stored events of a two-step function)");

    let t0 = Instant::now();
    let (r, took) = replay(
        &a,
        &url,
        json!({"function": "pay", "version": 1, "rate": 10_000}),
    );
    assert_eq!(r["runs_started"].as_u64(), Some(seed), "{r}");
    wait_completed(&a, &url, "pay", 2 * seed);
    let runs_done = t0.elapsed();
    println!(
        "run mode:     {:>6.0} events/s replayed ({:.2} s), runs all completed after {:.2} s",
        seed as f64 / took.as_secs_f64(),
        took.as_secs_f64(),
        runs_done.as_secs_f64()
    );
    let (r, took) = replay(
        &a,
        &url,
        json!({"function": "pay", "version": 1, "rate": 10_000, "mode": "dry_run"}),
    );
    println!(
        "dry run:      {:>6.0} events/s compared ({:.2} s), {} identical of {}",
        r["done"].as_u64().unwrap() as f64 / took.as_secs_f64(),
        took.as_secs_f64(),
        r["result"]["identical"],
        r["total"]
    );

    for round in 0..rounds {
        for with_dry_run in [round % 2 == 1, round % 2 == 0] {
            let dry = with_dry_run.then(|| {
                post(
                    &a,
                    &url,
                    "/v1/replays",
                    &json!({"function": "pay", "version": 1, "rate": 10_000, "mode": "dry_run"}),
                )["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            });
            let before = dry.as_ref().map(|id| {
                get(&a, &url, &format!("/v1/replays/{id}"))["done"]
                    .as_u64()
                    .unwrap()
            });
            let t0 = Instant::now();
            let (from, to) = live(&a, &url, live_rate, live_secs);
            let mut note = String::new();
            if let (Some(id), Some(before)) = (&dry, before) {
                let r = post(&a, &url, &format!("/v1/replays/{id}/cancel"), &json!({}));
                let done = r["done"].as_u64().unwrap() - before;
                note = format!(
                    " | dry run meanwhile {:.0} events/s{}",
                    done as f64 / t0.elapsed().as_secs_f64(),
                    if r["status"] == "completed" {
                        " (finished early: raise WEIR_REPLAY_SEED)"
                    } else {
                        ""
                    }
                );
            }
            let expected = (live_rate as f64 * live_secs) as u64;
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut h = latencies(&a, &url, from, to);
            while h.len() < expected && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
                h = latencies(&a, &url, from, to);
            }
            println!(
                "round {round}: live {live_rate} ev/s {:<16} event→done p50 {:>4} ms p99 {:>4} ms max {:>4} ms ({} runs){note}",
                if with_dry_run { "+ dry run" } else { "alone" },
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.max(),
                h.len()
            );
        }
    }
}
