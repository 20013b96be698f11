//! Store throughput: N two-step runs through the real engine and wasm runtime on each
//! embedded backend, with durable acks; prints runs/s and disk bytes per 10k runs.
//!
//! `cargo bench --bench store_throughput` (N = 10,000; `WEIR_BENCH_RUNS` overrides).
//! Under `cargo test` it runs a smoke pass with N = 200 so it cannot rot.

mod util;

use std::path::Path;
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

async fn run(name: &str, store: Arc<dyn Store>, dir: &Path, n: usize) {
    let wasm = std::fs::read(GUEST).expect("run guest-examples/build.sh first");
    let sha = hex::encode(Sha256::digest(&wasm));
    let runtime = Arc::new(
        WasmRuntime::new(
            weir::engine::components_of(store.clone()),
            WasmConfig::default(),
        )
        .unwrap(),
    );
    let engine = Engine::new(store.clone(), runtime, EngineConfig::default())
        .await
        .unwrap();
    engine
        .put_component("bench", &sha, wasm.clone())
        .await
        .unwrap();
    let def = FunctionDef::from_value(
        json!({"id": "two", "triggers": [{"event": "go"}], "steps": {
        "a": {"path": format!("sha256:{sha}")},
        "b": {"path": format!("sha256:{sha}"), "after": [{"step": "a"}]}}}),
    )
    .unwrap();
    engine.deploy("bench", def).await.unwrap();
    engine.start();
    let before = util::dir_bytes(dir);
    let started = Instant::now();
    let batch = 100;
    for chunk in 0..n.div_ceil(batch) {
        let k = batch.min(n - chunk * batch);
        let body =
            serde_json::to_vec(&vec![json!({"name": "go", "data": {"chunk": chunk}}); k]).unwrap();
        engine
            .send("bench", parse_batch(&body, batch).unwrap())
            .await
            .unwrap();
    }
    let accepted = started.elapsed();
    loop {
        let counts = engine.run_counts("bench", "two").await.unwrap();
        let done = counts[&RunStatus::Completed] as usize;
        assert_eq!(counts[&RunStatus::Failed], 0);
        if done >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed();
    store.flush().await.unwrap();
    let bytes = util::dir_bytes(dir).saturating_sub(before);
    println!(
        "{name:<5} {n} two-step runs in {:.2} s: {:.0} runs/s completed, {:.0} events/s accepted, {:.1} MB disk per 10k runs",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        n as f64 / accepted.as_secs_f64(),
        bytes as f64 * 10_000.0 / n as f64 / 1e6
    );
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("WEIR_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 10_000 } else { 200 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for name in ["sled", "redb"] {
        let tmp = tempfile::tempdir().unwrap();
        let engine = match name {
            "sled" => weir::EmbeddedEngine::Sled,
            _ => weir::EmbeddedEngine::Redb,
        };
        let store: Arc<dyn Store> =
            Arc::new(weir::EmbeddedStore::open(engine, tmp.path()).unwrap());
        rt.block_on(run(name, store, tmp.path(), n));
    }
}
