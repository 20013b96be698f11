//! The engine over a real embedded store, with a stand-in runtime (what the steps do is
//! not the point here): a corrupt run is failed and counted, and the others go on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{Engine, EngineConfig};
use crate::event::parse_batch;
use crate::function::FunctionDef;
use crate::run::{QueueEntry, RunStatus};
use crate::runtime::{BoxFuture, RuntimeError, StepOutcome, StepRequest, StepRuntime};
use crate::store::embedded::{EmbeddedStore, Engine as Kv};
use crate::store::{EventStore, Ingested, RunChange, RunStore, Store};

/// Answers every step with `{"status": 200}`.
struct Ok200;

impl StepRuntime for Ok200 {
    fn prepare<'a>(
        &'a self,
        _: &'a str,
        _: &'a crate::runtime::Target,
    ) -> BoxFuture<'a, Result<crate::runtime::Prepared, RuntimeError>> {
        Box::pin(async { Ok(Default::default()) })
    }

    fn run(&self, _: StepRequest) -> BoxFuture<'_, StepOutcome> {
        Box::pin(async {
            StepOutcome {
                result: Ok(()),
                stdout: br#"{"status":200}"#.to_vec(),
                stderr: vec![],
                elapsed: Duration::ZERO,
                figures: None,
                sent: Vec::new(),
            }
        })
    }
}

async fn wait_status(engine: &Engine, run: &str, want: RunStatus) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = engine.run("t", run).await.unwrap();
        if r.status == want {
            return;
        }
        assert!(Instant::now() < deadline, "run {run} is {:?}", r.status);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

const SHA: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// An engine on a temporary store whose steps all answer 200, with `def` deployed (for
/// tenant `t`), started.
async fn started(def: serde_json::Value) -> (Arc<EmbeddedStore>, Arc<Engine>) {
    let store = Arc::new(EmbeddedStore::temporary(Kv::Redb).unwrap());
    let engine = Engine::new(
        store.clone() as Arc<dyn Store>,
        Arc::new(Ok200),
        EngineConfig::default(),
    )
    .await
    .unwrap();
    engine
        .deploy("t", FunctionDef::from_value(def).unwrap())
        .await
        .unwrap();
    engine.start();
    (store, engine)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_run_is_failed_and_counted_and_the_others_go_on() {
    let (store, engine) = started(json!({"id": "f", "triggers": [{"event": "go"}],
        "steps": {"a": {"path": SHA}, "b": {"path": SHA, "after": [{"step": "a"}]}}}))
    .await;
    // A run whose stored state does not fit its function: no step states at all, but a
    // queue entry for step `a` (as a bug or a bad disk could leave it).
    // Dated far ahead, so that the ingest loop leaves it alone (it would otherwise
    // record it as matching nothing before this test records its run).
    let ev = parse_batch(br#"{"name":"elsewhere","ts":9000000000000}"#, 1).unwrap();
    store.append_events("t", ev.clone(), 0).await.unwrap();
    let f = engine.function_version("t", "f", 1).await.unwrap();
    let (mut bad, _) = super::dag::new_run(&f, "t", "bad".into(), &ev[0], 0);
    bad.steps.clear();
    let entry = QueueEntry {
        due: 0,
        tenant: "t".into(),
        run_id: "bad".into(),
        step_id: "a".into(),
    };
    store
        .commit_ingest(vec![Ingested {
            tenant: "t".into(),
            event_id: ev[0].id.clone(),
            runs: vec![(
                bad,
                RunChange {
                    enqueue: vec![entry],
                    ..Default::default()
                },
            )],
        }])
        .await
        .unwrap();
    wait_status(&engine, "bad", RunStatus::Failed).await;
    assert_eq!(
        engine
            .stats()
            .corrupt_runs
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // The worker pool and the writer go on: a good run completes, both steps.
    let ids = engine
        .send("t", parse_batch(br#"{"name":"go"}"#, 1).unwrap())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let run_id = loop {
        if let Some(r) = engine.event("t", &ids[0]).await.unwrap().run_ids.first() {
            break r.clone();
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    wait_status(&engine, &run_id, RunStatus::Completed).await;
    assert_eq!(
        engine
            .stats()
            .corrupt_runs
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // Its last lease is given back as its worker finishes, just after the run's write.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let held = store.inflight("t").await.unwrap();
        if held == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "a lease leaked: {held} held");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A step whose events were ingested but whose result was not recorded (weir stopped in
/// between) runs again and sends the same events again: their idempotency keys make the
/// second sending trigger nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_sending_its_events_again_triggers_nothing_twice() {
    let (_store, engine) = started(json!({"id": "f", "triggers": [{"event": "item"}],
        "steps": {"a": {"path": SHA}}}))
    .await;
    let events = || parse_batch(br#"[{"name":"item"},{"name":"item"}]"#, 2).unwrap();
    let first = super::sends::ingest(&engine, "t", "run-1", "split", events())
        .await
        .unwrap();
    let again = super::sends::ingest(&engine, "t", "run-1", "split", events())
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    let deadline = Instant::now() + Duration::from_secs(30);
    for (a, b) in first.iter().zip(&again) {
        let (a, b) = (a.id.clone().unwrap(), b.id.clone().unwrap());
        assert_ne!(a, b, "each sending is stored");
        loop {
            let (ea, eb) = (
                engine.event("t", &a).await.unwrap(),
                engine.event("t", &b).await.unwrap(),
            );
            if ea.run_ids.len() == 1 && eb.duplicate_of.is_some() {
                assert_eq!(eb.duplicate_of.as_deref(), Some(a.as_str()));
                assert!(eb.run_ids.is_empty(), "the repeat started {:?}", eb.run_ids);
                break;
            }
            assert!(Instant::now() < deadline, "{ea:?} / {eb:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    // Another step (or run) sending the same events is not a repeat.
    let other = super::sends::ingest(&engine, "t", "run-2", "split", events())
        .await
        .unwrap();
    let id = other[0].id.clone().unwrap();
    loop {
        let e = engine.event("t", &id).await.unwrap();
        if !e.run_ids.is_empty() {
            assert_eq!(e.duplicate_of, None);
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
