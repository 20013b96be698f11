//! How fast the UI's pages answer with many runs stored: real `weir serve`, a session
//! logged in over HTTP, and each page fetched again and again (p50/p99/max).
//!
//! The data: a three-step function run for real a few times (so the stored runs have
//! real steps, outputs and sandbox figures), then copies of such a run written straight
//! into the embedded store with fresh ids — 100,000 runs (5 % failed) across 10,000
//! users — and the server started again on it.
//!
//! `cargo bench --bench ui` (`WEIR_BENCH_RUNS` overrides the count). Without `--bench`
//! (under `cargo test`) a smoke pass over 2,000 runs, so that it cannot rot.

mod util;

use std::time::{Duration, Instant};

use serde_json::json;

use weir::event::{new_id, parse_batch};
use weir::run::RunStatus;
use weir::store::{EventStore, Ingested, RunChange, RunFilter, RunStore};
use weir::{EmbeddedEngine, EmbeddedStore};

const BATCH: usize = 1_000;
const TRIES: usize = 40;

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let runs: usize = util::env_or("WEIR_BENCH_RUNS", if full { 100_000 } else { 2_000 });
    let users = (runs / 10).max(1);
    let tmp = tempfile::tempdir().unwrap();
    let tenants = util::tenants(&["bench"]);
    let agent = util::agent();

    // A few real runs, for a realistic stored run to copy.
    {
        let (_server, url) = util::serve(tmp.path(), &tenants);
        util::deploy_chain(
            &agent,
            &url,
            "api_bench",
            "chain",
            "demo/hello",
            &["hello", "shout", "echo"],
        );
        let body = json!({"name": "demo/hello", "data": {"name": "Ada"}, "user": {"id": "user-0"}});
        let sent = util::call(
            &agent,
            "POST",
            &format!("{url}/e/evt_bench"),
            "evt_bench",
            Some(body.to_string().as_bytes()),
        );
        let event = sent["ids"][0].as_str().unwrap().to_string();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = util::call(
                &agent,
                "GET",
                &format!("{url}/v1/runs?event={event}"),
                "api_bench",
                None,
            );
            if r["data"][0]["status"] == "completed" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the sample run did not complete: {r}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let data = tmp.path().join("data");
    let store = EmbeddedStore::open(EmbeddedEngine::Redb, &data).unwrap();
    let template = store
        .list_runs("bench", &RunFilter::default(), 1, None)
        .await
        .unwrap()
        .data
        .remove(0);
    let started = Instant::now();
    let mut some_run = String::new();
    for b in 0..runs.div_ceil(BATCH) {
        let n = BATCH.min(runs - b * BATCH);
        let body: Vec<_> = (0..n)
            .map(|i| {
                let u = (b * BATCH + i) % users;
                json!({"name": "demo/hello", "user": {"id": format!("user-{u:05}"), "plan": "pro"},
                       "data": {"name": format!("n{}", b * BATCH + i)}})
            })
            .collect();
        let evs = parse_batch(&serde_json::to_vec(&body).unwrap(), BATCH).unwrap();
        store
            .append_events("bench", evs.clone(), weir::event::now_ms())
            .await
            .unwrap();
        let batch = evs
            .iter()
            .enumerate()
            .map(|(i, ev)| {
                let mut run = template.clone();
                run.id = new_id();
                run.event_id = ev.id.clone();
                run.user_id = ev.user_id();
                run.event = ev.to_value().into();
                run.created_at = ev.ts;
                run.ended_at = Some(ev.ts + 12);
                if (b * BATCH + i).is_multiple_of(20) {
                    run.status = RunStatus::Failed;
                }
                some_run = run.id.clone();
                Ingested {
                    tenant: "bench".into(),
                    event_id: ev.id.clone(),
                    runs: vec![(run, RunChange::default())],
                }
            })
            .collect();
        store.commit_ingest(batch).await.unwrap();
    }
    drop(store);
    println!(
        "stored {runs} runs across {users} users in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let (_server, url) = util::serve(tmp.path(), &tenants);
    let mut login = agent
        .post(format!("{url}/v1/session"))
        .header("Content-Type", "application/json")
        .send(json!({"api_key": "api_bench"}).to_string())
        .unwrap();
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("the login sets a cookie")
        .to_string();
    let _ = login.body_mut().read_to_string();
    let pages = [
        "/".to_string(),
        "/runs".into(),
        "/runs?status=failed".into(),
        "/runs?function=chain&status=failed".into(),
        "/runs?user=user-00042".into(),
        format!("/runs/{some_run}"),
        "/events".into(),
        "/functions".into(),
        "/functions/chain".into(),
        "/users".into(),
        "/users/user-00042".into(),
    ];
    println!("page answers with {runs} runs stored ({TRIES} requests each, after 3 warm-ups):");
    for p in &pages {
        let mut took = Vec::with_capacity(TRIES);
        let mut bytes = 0;
        for i in 0..TRIES + 3 {
            let t = Instant::now();
            let mut r = agent
                .get(format!("{url}{p}"))
                .header("Cookie", &cookie)
                .call()
                .unwrap();
            let body = r
                .body_mut()
                .with_config()
                .limit(64 << 20)
                .read_to_string()
                .unwrap();
            let ms = t.elapsed().as_secs_f64() * 1e3;
            assert_eq!(r.status().as_u16(), 200, "{p}: {body}");
            if i >= 3 {
                took.push(ms);
                bytes = body.len();
            }
        }
        took.sort_by(|a, b| a.total_cmp(b));
        println!(
            "  {p:<40} p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms  ({} KiB)",
            pct(&took, 0.5),
            pct(&took, 0.99),
            took[took.len() - 1],
            bytes / 1024
        );
    }
}
