//! What one step costs in each runtime, through the same `StepRuntime` call the engine
//! makes: wasm (the WAT echo guest on wasmtime), http (POST to a local receiver), docker (a
//! busybox `cat` in a private dockerd: create, attach, start, wait, inspect, remove) and
//! lambda (moto's Invoke endpoint, SigV4-signed). Sequential calls with a small input;
//! p50/p99/mean of the wall time from request to outcome.
//!
//! `cargo bench --bench runtimes`. Without `--bench` (under `cargo test`) a smoke pass
//! of a few calls each, so that it cannot rot. Needs dockerd (docker.io), busybox-static
//! and moto (`scripts/moto.sh`), as the tests do.

#[path = "../tests/common/dockerd.rs"]
#[allow(dead_code)]
mod dockerd;
#[path = "../tests/common/moto.rs"]
#[allow(dead_code)]
mod moto;
#[path = "../tests/common/receiver.rs"]
#[allow(dead_code)]
mod receiver;

use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};
use weir::runtime::docker::{DockerConfig, DockerRuntime};
use weir::runtime::http::{HttpConfig, HttpRuntime};
use weir::runtime::lambda::LambdaRuntime;
use weir::runtime::target::{DockerImage, DockerTarget, HttpTarget, LambdaTarget};
use weir::runtime::wasm::{WasmConfig, WasmRuntime};
use weir::runtime::{Attempt, MemorySource, ResolvedLimits, StepRequest, StepRuntime, Target};

fn request(target: Target) -> StepRequest {
    let stdin = serde_json::json!({"event": {"name": "bench", "data": {"n": 1}}, "steps": {},
        "ctx": {"run_id": "r", "step_id": "s", "attempt": 0}})
    .to_string()
    .into_bytes();
    StepRequest {
        tenant: "t".into(),
        target,
        stdin,
        limits: ResolvedLimits::default(),
        env: vec![],
        attempt: Attempt {
            run_id: "bench".into(),
            step_id: "s".into(),
            attempt: 0,
        },
        cancel: Default::default(),
        sent_ids: Vec::new(),
    }
}

async fn measure(name: &str, rt: &dyn StepRuntime, target: Target, n: usize) {
    rt.prepare("t", &target).await.expect("the target prepares");
    // One call first: connections, caches.
    let warm = rt.run(request(target.clone())).await;
    assert!(warm.result.is_ok(), "{name}: {:?}", warm.result);
    let mut took: Vec<f64> = Vec::with_capacity(n);
    for i in 0..n {
        let mut req = request(target.clone());
        req.attempt.run_id = format!("bench-{i}");
        let began = Instant::now();
        let out = rt.run(req).await;
        took.push(began.elapsed().as_secs_f64() * 1e3);
        assert!(out.result.is_ok(), "{name}: {:?}", out.result);
        assert!(!out.stdout.is_empty(), "{name}: no output");
    }
    took.sort_by(f64::total_cmp);
    let pct = |p: f64| took[((took.len() as f64 - 1.0) * p).round() as usize];
    let mean = took.iter().sum::<f64>() / took.len() as f64;
    println!(
        "| {name:<7} | {n:>5} | {:>9.3} | {:>9.3} | {:>9.3} |",
        pct(0.5),
        pct(0.99),
        mean
    );
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n = |many: usize| if full { many } else { 3 };
    let d = dockerd::Dockerd::start();
    let moto = moto::Moto::start(false);
    let (receiver_url, _seen) = receiver::receiver();
    // moto takes any credentials; set before any thread reads the environment.
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let source = Arc::new(MemorySource::default());
        let module = wat::parse_file(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/guest-examples/wat/echo.wat"
        ))
        .unwrap();
        let sha = hex::encode(Sha256::digest(&module));
        source.insert_component("t", &sha, module);
        let wasm = WasmRuntime::new(source.clone(), WasmConfig::default()).unwrap();
        let http = HttpRuntime::new(HttpConfig {
            signing_keys: [("t".to_string(), receiver::KEY.to_string())].into(),
            allow_private: true,
        })
        .unwrap();
        let docker = DockerRuntime::new(
            source,
            DockerConfig {
                host: d.host.clone(),
            },
        );
        let lambda = LambdaRuntime::new().unwrap();
        println!(
            "per-step wall time (ms), sequential, {} build, {}",
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            if full { "full run" } else { "smoke pass" }
        );
        println!("| runtime | steps |       p50 |       p99 |      mean |");
        println!("|---------|------:|----------:|----------:|----------:|");
        measure("wasm", &wasm, Target::Wasm { component: sha }, n(5_000)).await;
        measure(
            "http",
            &http,
            Target::Http(HttpTarget {
                url: format!("{receiver_url}/text"),
                headers: vec![],
            }),
            n(2_000),
        )
        .await;
        measure(
            "lambda",
            &lambda,
            Target::Lambda(LambdaTarget {
                function: "bench".into(),
                region: "us-east-1".into(),
                qualifier: None,
                endpoint: Some(moto.url.clone()),
            }),
            n(300),
        )
        .await;
        measure(
            "docker",
            &docker,
            Target::Docker(DockerTarget {
                image: DockerImage::Named(dockerd::IMAGE.into()),
                cmd: Some(vec!["cat".into()]),
                network: "none".into(),
            }),
            n(40),
        )
        .await;
    });
}
