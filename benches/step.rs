//! Micro-benchmarks: one step through weir's wasm runtime against raw wasmtime
//! instantiate+call of the same component; CEL trigger evaluation; event parsing.
//!
//! `cargo bench --bench step` (needs `guest-examples/build.sh` first).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use weir::expr::Expr;
use weir::runtime::wasm::{componentize, WasmConfig, WasmRuntime};
use weir::runtime::MemorySource;
use weir::runtime::{ResolvedLimits, StepRequest, StepRuntime, Target};

const GUEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/guest-examples/out/hello.wasm");

fn stdin() -> Vec<u8> {
    serde_json::to_vec(&json!({"event": {"name": "demo/hello", "data": {"name": "Ada"}}, "steps": {},
        "ctx": {"function_id": "bench", "function_version": 1, "run_id": "r", "step_id": "s", "attempt": 0, "tenant": "t"}}))
    .unwrap()
}

struct Raw {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Raw {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn step_vs_raw(c: &mut Criterion) {
    let module = std::fs::read(GUEST).expect("run guest-examples/build.sh first");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // weir: the runtime the engine uses, with its limits, deadline and output caps.
    let store = Arc::new(MemorySource::default());
    let sha = hex::encode(Sha256::digest(&module));
    store.insert_component("t", &sha, module.clone());
    let runtime = WasmRuntime::new(store, WasmConfig::default()).unwrap();
    let target = Target::Wasm { component: sha };
    rt.block_on(runtime.prepare("t", &target)).unwrap();
    let req = StepRequest {
        tenant: "t".into(),
        target,
        stdin: stdin(),
        limits: ResolvedLimits::default(),
        env: vec![],
        attempt: Default::default(),
        cancel: Default::default(),
        sent_ids: Vec::new(),
    };
    let check = rt.block_on(runtime.run(req.clone()));
    assert!(
        check.result.is_ok() && !check.stdout.is_empty(),
        "{:?}",
        check.result
    );

    // raw wasmtime: the same component, instantiate + call, nothing else.
    let mut config = Config::new();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(
        PoolingAllocationConfig::default(),
    ));
    let engine = Engine::new(&config).unwrap();
    let component = Component::new(&engine, componentize(&module).unwrap()).unwrap();
    let mut linker = Linker::<Raw>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    let pre = CommandPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
    let input = stdin();

    let mut g = c.benchmark_group("one step (C guest, stdin JSON -> stdout JSON)");
    g.bench_function("weir runtime", |b| {
        b.iter(|| {
            let out = rt.block_on(runtime.run(req.clone()));
            assert!(out.result.is_ok());
        })
    });
    g.bench_function("raw wasmtime instantiate+call", |b| {
        b.iter(|| {
            rt.block_on(async {
                let stdout = MemoryOutputPipe::new(1 << 20);
                let mut wb = WasiCtx::builder();
                wb.stdin(MemoryInputPipe::new(input.clone()))
                    .stdout(stdout.clone());
                let mut store = wasmtime::Store::new(
                    &engine,
                    Raw {
                        wasi: wb.build(),
                        table: ResourceTable::new(),
                    },
                );
                let cmd = pre.instantiate_async(&mut store).await.unwrap();
                cmd.wasi_cli_run()
                    .call_run(&mut store)
                    .await
                    .unwrap()
                    .unwrap();
                assert!(!stdout.contents().is_empty());
            })
        })
    });
    g.finish();
}

fn cel_and_parse(c: &mut Criterion) {
    let expr = Expr::compile("event.data.plan == 'pro' && event.user.id.startsWith('u_')").unwrap();
    let event =
        json!({"name": "user/signed.up", "data": {"plan": "pro", "n": 3}, "user": {"id": "u_42"}});
    assert!(expr.eval_bool(&[("event", &event)]).unwrap());
    c.bench_function("CEL trigger evaluation", |b| {
        b.iter(|| expr.eval_bool(&[("event", &event)]).unwrap())
    });
    let body =
        br#"{"name":"user/signed.up","data":{"plan":"pro","n":3},"user":{"id":"u_42"},"id":"k1"}"#;
    c.bench_function("event parse+validate", |b| {
        b.iter(|| weir::event::parse_batch(body, 10).unwrap())
    });
}

/// One step completion as the engine writes it: the run with its output, under its
/// revision, one atomic fsynced write through the store's writer, on each backend.
fn store_commit(c: &mut Criterion) {
    use weir::store::{Durability, Ingested, RunChange, RunWrite, Store};
    let def = weir::function::FunctionDef::from_value(
        json!({"id": "f", "triggers": [{"event": "e"}], "steps": {
        "a": {"path": format!("sha256:{}", "a".repeat(64))},
        "b": {"path": format!("sha256:{}", "a".repeat(64)), "after": [{"step": "a"}]}}}),
    )
    .unwrap();
    let f = weir::function::Function::compile(def, 1, |_, _| Ok(())).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for (name, engine) in [
        ("redb", weir::EmbeddedEngine::Redb),
        ("sled", weir::EmbeddedEngine::Sled),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(weir::EmbeddedStore::open(engine, dir.path()).unwrap());
        let ev = weir::event::parse_batch(br#"{"name":"e","data":{"x":1}}"#, 1)
            .unwrap()
            .remove(0);
        let (run, change) = weir::engine::dag::new_run(&f, "t", "r1".into(), &ev, 0);
        rt.block_on(async {
            store.append_events("t", vec![ev.clone()], 0).await.unwrap();
            store
                .commit_ingest(vec![Ingested {
                    tenant: "t".into(),
                    event_id: ev.id.clone(),
                    runs: vec![(run, change)],
                }])
                .await
                .unwrap();
        });
        let output = json!({"status": 200, "body": {"message": "Hello, Ada!", "length": 11}});
        c.bench_function(
            &format!("store commit of a step completion ({name}, fsynced)"),
            |b| {
                b.iter(|| {
                    rt.block_on(async {
                        let mut r = store.get_run("t", "r1").await.unwrap().unwrap();
                        r.steps[0].output = Some(output.clone().into());
                        r.steps[0].attempts += 1;
                        store
                            .write_run(RunWrite {
                                tenant: "t".into(),
                                run_id: "r1".into(),
                                rev: r.rev,
                                run: Some(r),
                                change: RunChange::default(),
                                lease: None,
                                durability: Durability::Durable,
                            })
                            .await
                            .unwrap()
                    })
                })
            },
        );
    }
}

criterion_group!(benches, step_vs_raw, cel_and_parse, store_commit);
criterion_main!(benches);
