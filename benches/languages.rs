//! The example step of each language through weir's wasm runtime: component size, the
//! time to compile it (first deploy), the time to load its stored compiled artefact
//! instead (a restart: a second runtime over the same store), and one step's run time
//! (instantiate, feed the input, collect the output). The typed-world guests get the input
//! as `run`'s argument (the Rust one is a core module: its compile includes wrapping it);
//! the typed Python one also sends an event through `host.send-event` each run.
//!
//! `cargo bench --bench languages` (release). Without `--bench` (under `cargo test`) a
//! smoke pass over the small guests (C, Rust, WAT), so that it cannot rot; the big ones
//! (Python, JavaScript) take tens of seconds to compile in a debug build.

use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};
use weir::runtime::wasm::{WasmConfig, WasmRuntime};
use weir::runtime::{MemorySource, ResolvedLimits, StepRequest, StepRuntime, Target};

fn request(sha: &str) -> StepRequest {
    let stdin =
        serde_json::json!({"event": {"name": "bench", "data": {"name": "Ada"}}, "steps": {},
        "ctx": {"function_id": "bench", "function_version": 1, "run_id": "r", "step_id": "s",
                "attempt": 0, "tenant": "t"}})
        .to_string()
        .into_bytes();
    StepRequest {
        tenant: "t".into(),
        target: Target::Wasm {
            component: sha.into(),
        },
        stdin,
        limits: ResolvedLimits::default(),
        env: vec![],
        attempt: Default::default(),
        cancel: Default::default(),
        sent_ids: Vec::new(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let out = concat!(env!("CARGO_MANIFEST_DIR"), "/guest-examples/out");
    let mut guests = vec![
        ("C", "hello"),
        ("Rust", "serde-greet"),
        ("Rust, typed world", "typed-fanout"),
        ("WAT", "echo"),
    ];
    if full {
        guests.extend([
            ("Python", "py-greet"),
            ("Python, typed world", "py-typed_greet"),
            ("JavaScript", "js-greet"),
        ]);
    }
    let runs = if full { 2_000 } else { 5 };
    println!(
        "{} build, {}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        if full { "full run" } else { "smoke pass" }
    );
    println!("| language | guest | component | compile | cached start | run p50 | run p99 |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (lang, name) in guests {
        let bytes = std::fs::read(format!("{out}/{name}.wasm"))
            .unwrap_or_else(|e| panic!("{name}.wasm ({e}): run guest-examples/build.sh"));
        let size = bytes.len();
        let sha = hex::encode(Sha256::digest(&bytes));
        let source = Arc::new(MemorySource::default());
        source.insert_component("t", &sha, bytes);
        let target = Target::Wasm {
            component: sha.clone(),
        };
        let first = WasmRuntime::new(source.clone(), WasmConfig::default()).unwrap();
        let began = Instant::now();
        first.prepare("t", &target).await.expect("compiles");
        let compile = began.elapsed();
        drop(first);
        // A restart: a new runtime over the same store finds the artefact.
        let rt = WasmRuntime::new(source.clone(), WasmConfig::default()).unwrap();
        let began = Instant::now();
        rt.prepare("t", &target).await.expect("loads");
        let cached = began.elapsed();
        let mut took: Vec<f64> = Vec::with_capacity(runs);
        for _ in 0..runs {
            let began = Instant::now();
            let o = rt.run(request(&sha)).await;
            took.push(began.elapsed().as_secs_f64() * 1e3);
            assert!(
                o.result.is_ok() && !o.stdout.is_empty(),
                "{name}: {:?}",
                o.result
            );
        }
        took.sort_by(f64::total_cmp);
        let pct = |p: f64| took[((took.len() as f64 - 1.0) * p).round() as usize];
        println!(
            "| {lang} | `{name}` | {} | {:.2} s | {:.1} ms | {:.3} ms | {:.3} ms |",
            if size >= 1 << 20 {
                format!("{:.1} MiB", size as f64 / 1048576.0)
            } else {
                format!("{} KiB", size.div_ceil(1024))
            },
            compile.as_secs_f64(),
            cached.as_secs_f64() * 1e3,
            pct(0.5),
            pct(0.99)
        );
    }
}
