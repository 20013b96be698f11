//! Parked runs: N runs waiting for an event (an `async` edge straight from the trigger,
//! indexed by `event.data.k == async.data.k`), then the cost of matching one incoming
//! event to its run. Prints RSS, disk, the index lookup time and the time until the
//! woken run has completed its step.
//!
//! `cargo bench --bench parked` parks 1,000,000 runs (`WEIR_PARKED_RUNS` overrides);
//! under `cargo test` it parks 1,000.

mod util;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest, Sha256};

use weir::engine::{Engine, EngineConfig};
use weir::event::parse_batch;
use weir::function::FunctionDef;
use weir::run::RunStatus;
use weir::runtime::wasm::{WasmConfig, WasmRuntime};
use weir::store::Store;

const GUEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/guest-examples/out/echo.wasm");

fn rss_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

async fn run(n: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(weir::EmbeddedStore::open(weir::EmbeddedEngine::Redb, tmp.path()).unwrap());
    let wasm = std::fs::read(GUEST).expect("run guest-examples/build.sh first");
    let sha = hex::encode(Sha256::digest(&wasm));
    let runtime = Arc::new(
        WasmRuntime::new(
            weir::engine::components_of(store.clone()),
            WasmConfig::default(),
        )
        .unwrap(),
    );
    let engine = Engine::new(
        store.clone(),
        runtime,
        EngineConfig {
            max_pending: u64::MAX,
            ..EngineConfig::default()
        },
    )
    .await
    .unwrap();
    engine.put_component("t", &sha, wasm.clone()).await.unwrap();
    let def = FunctionDef::from_value(
        json!({"id": "parked", "triggers": [{"event": "park"}], "steps": {
        "woken": {"path": format!("sha256:{sha}"), "after": [{"step": "$trigger",
            "async": {"event": "wake", "match": "event.data.k == async.data.k", "ttl": "7d"}}]}}}),
    )
    .unwrap();
    engine.deploy("t", def).await.unwrap();
    engine.start();
    let started = Instant::now();
    let batch = 1000;
    for c in 0..n.div_ceil(batch) {
        let k = batch.min(n - c * batch);
        let body: Vec<_> = (0..k)
            .map(|i| json!({"name": "park", "data": {"k": c * batch + i}}))
            .collect();
        engine
            .send(
                "t",
                parse_batch(&serde_json::to_vec(&body).unwrap(), batch).unwrap(),
            )
            .await
            .unwrap();
    }
    loop {
        let waiting = engine.run_counts("t", "parked").await.unwrap()[&RunStatus::Waiting] as usize;
        if waiting >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let parked_in = started.elapsed();
    store.flush().await.unwrap();
    let disk = util::dir_bytes(tmp.path());
    let rss = rss_mb("VmRSS:");
    let hwm = rss_mb("VmHWM:");
    // The index lookup an incoming event does to find its waiting run.
    let target = n / 2;
    let wake = json!({"name": "wake", "data": {"k": target}});
    let t0 = Instant::now();
    let mut found = Vec::new();
    for _ in 0..100 {
        let q = weir::store::WaitQuery {
            tenant: "t".into(),
            event: "wake".into(),
            incoming: std::sync::Arc::new(wake.clone()),
        };
        found = store.find_waits(vec![q]).await.unwrap().remove(0);
    }
    let lookup = t0.elapsed() / 100;
    assert_eq!(found.len(), 1, "exactly one run waits for k = {target}");
    // End to end: the event is stored, matched, the run resumed and its step completed.
    let t1 = Instant::now();
    let ids = engine
        .send("t", parse_batch(wake.to_string().as_bytes(), 1).unwrap())
        .await
        .unwrap();
    loop {
        if engine.run_counts("t", "parked").await.unwrap()[&RunStatus::Completed] >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let woke = t1.elapsed();
    assert!(engine.event("t", &ids[0]).await.unwrap().ingested);
    let woken = engine.run("t", &found[0].run_id).await.unwrap();
    assert_eq!(woken.status, RunStatus::Completed);
    assert_eq!(
        woken.steps[0].async_event.as_ref().unwrap()["data"]["k"],
        target
    );
    println!(
        "{n} parked runs in {:.1} s ({:.0} runs/s): RSS {:.0} MB (peak {:.0} MB), disk {:.0} MB ({:.0} B/run) | wait-index lookup {:.1} µs | event → woken run completed {:.2} ms",
        parked_in.as_secs_f64(),
        n as f64 / parked_in.as_secs_f64(),
        rss,
        hwm,
        disk as f64 / 1e6,
        disk as f64 / n as f64,
        lookup.as_secs_f64() * 1e6,
        woke.as_secs_f64() * 1e3
    );
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let n = std::env::var("WEIR_PARKED_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 1_000_000 } else { 1_000 });
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(n));
}
