//! The per-user index at scale: stores events across many users (with a run for every
//! fourth) straight through the embedded store on redb, then times user timeline
//! lookups (p50/p99 over random users) and weighs the user tables on disk.
//!
//! `cargo bench --bench users` (1,000,000 events across 100,000 users; `WEIR_BENCH_EVENTS`
//! and `WEIR_BENCH_USERS` override). Without `--bench` (under `cargo test`) a smoke pass
//! of 2,000 events across 200 users, so that it cannot rot.

mod util;

use std::path::Path;
use std::time::Instant;

use redb::{ReadableDatabase, ReadableTableMetadata, TableDefinition};
use serde_json::json;

use weir::event::{new_id, parse_batch};
use weir::run::{Run, RunStatus};
use weir::store::{EventStore, Ingested, RunChange, UserStore};
use weir::{EmbeddedEngine, EmbeddedStore};

/// The tables of the per-user index (the runs' `runs_by_user` predates it).
const USER_TABLES: [&str; 5] = [
    "users",
    "user_events",
    "users_by_seen",
    "user_runs",
    "user_counts",
];
const BATCH: usize = 1_000;
const LOOKUPS: usize = 10_000;

/// A small deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn run_of(tenant: &str, ev: &weir::Event) -> Run {
    Run {
        id: new_id(),
        tenant: tenant.into(),
        function_id: "f".into(),
        function_version: 1,
        status: RunStatus::Completed,
        event_id: ev.id.clone(),
        user_id: ev.user_id(),
        event: ev.to_value().into(),
        created_at: ev.ts,
        ended_at: Some(ev.ts),
        steps: vec![],
        waits: vec![],
        rollout_id: None,
        replay_id: None,
        rev: 0,
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Bytes redb keeps for each table (stored, metadata and fragmented), by name.
fn table_bytes(file: &Path, tables: &[&str]) -> Vec<(String, u64)> {
    let db = redb::Database::open(file).expect("the store's redb file opens");
    let tx = db.begin_read().unwrap();
    tables
        .iter()
        .map(|t| {
            let def: TableDefinition<&[u8], &[u8]> = TableDefinition::new(t);
            let st = tx.open_table(def).unwrap().stats().unwrap();
            let b = st.stored_bytes() + st.metadata_bytes() + st.fragmented_bytes();
            (t.to_string(), b)
        })
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let events: usize = util::env_or("WEIR_BENCH_EVENTS", if full { 1_000_000 } else { 2_000 });
    let users: usize = util::env_or("WEIR_BENCH_USERS", if full { 100_000 } else { 200 });
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = EmbeddedStore::open(EmbeddedEngine::Redb, &dir).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let started = Instant::now();
    let mut runs = 0;
    for b in 0..events.div_ceil(BATCH) {
        let n = BATCH.min(events - b * BATCH);
        let body: Vec<_> = (0..n)
            .map(|i| {
                let u = rng.below(users);
                json!({"name": "page/viewed", "user": {"id": format!("user-{u:06}"), "plan": "pro"},
                       "data": {"path": format!("/p/{}", b * BATCH + i), "ms": i}})
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
            .map(|(i, ev)| Ingested {
                tenant: "bench".into(),
                event_id: ev.id.clone(),
                runs: if i % 4 == 0 {
                    runs += 1;
                    vec![(run_of("bench", ev), RunChange::default())]
                } else {
                    vec![]
                },
            })
            .collect();
        store.commit_ingest(batch).await.unwrap();
    }
    let load_s = started.elapsed().as_secs_f64();
    println!(
        "stored {events} events across {users} users (+{runs} runs) in {load_s:.1} s ({:.0} events/s, append + ingest)",
        events as f64 / load_s
    );

    let mut took = Vec::with_capacity(LOOKUPS);
    let mut entries = 0;
    for _ in 0..LOOKUPS {
        let u = format!("user-{:06}", rng.below(users));
        let t = Instant::now();
        let page = store.user_timeline("bench", &u, 20, None).await.unwrap();
        took.push(t.elapsed().as_secs_f64() * 1e3);
        entries += page.data.len();
    }
    took.sort_by(|a, b| a.total_cmp(b));
    println!(
        "timeline (limit 20) over {LOOKUPS} random users: p50 {:.3} ms, p99 {:.3} ms ({:.1} entries each)",
        pct(&took, 0.5),
        pct(&took, 0.99),
        entries as f64 / LOOKUPS as f64
    );
    let mut took = Vec::with_capacity(LOOKUPS);
    for _ in 0..LOOKUPS {
        let u = format!("user-{:06}", rng.below(users));
        let t = Instant::now();
        store.get_user("bench", &u).await.unwrap();
        took.push(t.elapsed().as_secs_f64() * 1e3);
    }
    took.sort_by(|a, b| a.total_cmp(b));
    println!(
        "summary over {LOOKUPS} random users: p50 {:.3} ms, p99 {:.3} ms",
        pct(&took, 0.5),
        pct(&took, 0.99)
    );
    drop(store);

    let total = util::dir_bytes(&dir);
    let per = table_bytes(&dir.join("weir.redb"), &USER_TABLES);
    let index: u64 = per.iter().map(|(_, b)| b).sum();
    let all = table_bytes(&dir.join("weir.redb"), &["events", "runs", "runs_by_user"]);
    println!(
        "data dir {:.1} MiB; user tables {:.1} MiB ({:.1} %, {:.0} bytes per event): {}; for scale: {}",
        total as f64 / (1 << 20) as f64,
        index as f64 / (1 << 20) as f64,
        100.0 * index as f64 / total.max(1) as f64,
        index as f64 / events as f64,
        per.iter()
            .map(|(t, b)| format!("{t} {:.1} MiB", *b as f64 / (1 << 20) as f64))
            .collect::<Vec<_>>()
            .join(", "),
        all.iter()
            .map(|(t, b)| format!("{t} {:.1} MiB", *b as f64 / (1 << 20) as f64))
            .collect::<Vec<_>>()
            .join(", "),
    );
}
