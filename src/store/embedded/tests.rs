//! The conformance suite on both embedded engines, and what only the embedded
//! backends promise: the directory lock, old layouts opened, claims of a stopped
//! process taken over, and a writer that outlives a panicking or failing write.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use super::schema::*;
use super::{EmbeddedStore, Engine};
use crate::event::parse_batch;
use crate::run::QueueEntry;
use crate::store::{
    ClaimRequest, EventStore, Ingested, RunChange, RunStore, Store, StoreError, TenantCaps,
};

fn open_redb(dir: &Path) -> Arc<dyn Store> {
    Arc::new(EmbeddedStore::open(Engine::Redb, dir).unwrap())
}

fn open_sled(dir: &Path) -> Arc<dyn Store> {
    Arc::new(EmbeddedStore::open(Engine::Sled, dir).unwrap())
}

mod redb_conformance {
    crate::store::conformance::store_conformance!(super::open_redb);
}

mod sled_conformance {
    crate::store::conformance::store_conformance!(super::open_sled);
}

fn entry(tenant: &str, run: &str, due: i64) -> QueueEntry {
    QueueEntry {
        due,
        tenant: tenant.into(),
        run_id: run.into(),
        step_id: "s".into(),
    }
}

fn claim(now: i64, limit: usize, caps: TenantCaps) -> ClaimRequest {
    ClaimRequest {
        owner: "me".into(),
        now,
        limit,
        lease_ms: 10_000,
        caps,
    }
}

/// A run `id` of `tenant` with these queue entries, through a real ingest.
async fn seed(s: &EmbeddedStore, tenant: &str, id: &str, dues: &[i64]) {
    let ev = parse_batch(br#"{"name":"a"}"#, 1).unwrap();
    s.append_events(tenant, ev.clone(), 0).await.unwrap();
    let def = crate::function::FunctionDef::from_value(json!({"id": "f", "triggers": [{"event": "a"}],
        "steps": {"s": {"path": "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}}))
    .unwrap();
    let f = crate::function::Function::compile(def, 1, |_, _| Ok(())).unwrap();
    let (mut run, _) = crate::engine::dag::new_run(&f, tenant, id.into(), &ev[0], 0);
    run.steps[0].queued = dues.first().copied();
    let change = RunChange {
        enqueue: dues.iter().map(|d| entry(tenant, id, *d)).collect(),
        ..Default::default()
    };
    s.commit_ingest(vec![Ingested {
        tenant: tenant.into(),
        event_id: ev[0].id.clone(),
        runs: vec![(run, change)],
    }])
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_with_work_due_each_get_a_fair_share_first() {
    let s = EmbeddedStore::temporary(Engine::Redb).unwrap();
    // "old" has 50 steps of long-started runs queued (due 1..=50); "new" two (90, 95).
    seed(&s, "old", "r-old", &(1..=50).collect::<Vec<_>>()).await;
    seed(&s, "new", "r-new", &[90, 95]).await;
    let of = |v: &[crate::store::Claimed], t: &str| -> Vec<i64> {
        v.iter()
            .filter(|l| l.entry.tenant == t)
            .map(|l| l.entry.due)
            .collect()
    };
    let got = s
        .claim(claim(100, 4, TenantCaps::uniform(10)))
        .await
        .unwrap();
    assert_eq!(
        (of(&got, "old"), of(&got, "new")),
        (vec![1, 2], vec![90, 95])
    );
    // What a tenant leaves of its share goes to the others.
    let got = s
        .claim(claim(100, 6, TenantCaps::uniform(10)))
        .await
        .unwrap();
    assert_eq!(of(&got, "old"), vec![3, 4, 5, 6, 7, 8]);
    // One free worker: the tenant holding fewer leases gets it, however old the
    // other's queue is ("old" holds 8 of 10, "new" 2 of 10 — both below their caps).
    seed(&s, "new", "r-new2", &[96]).await;
    let got = s
        .claim(claim(100, 1, TenantCaps::uniform(10)))
        .await
        .unwrap();
    assert_eq!(of(&got, "new"), vec![96]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_in_the_old_layout_is_moved_to_per_tenant_queues_on_open() {
    let dir = tempfile::tempdir().unwrap();
    for engine in [Engine::Redb, Engine::Sled] {
        let dir = dir.path().join(format!("{engine:?}"));
        let entries: Vec<QueueEntry> = [("b", 7), ("a", 9), ("b", 3)]
            .iter()
            .map(|(t, due)| entry(t, &format!("r{due}"), *due))
            .collect();
        {
            // A data directory written before per-tenant queues: due-first keys only,
            // one of them claimed by the process that stopped.
            let s = EmbeddedStore::open(engine, &dir).unwrap();
            for (i, e) in entries.iter().enumerate() {
                let marker = if i == 0 {
                    55u64.to_be_bytes().to_vec()
                } else {
                    vec![]
                };
                s.put_raw(QUEUE_LEGACY, legacy_queue_key(e), marker)
                    .await
                    .unwrap();
            }
        }
        let s = EmbeddedStore::open(engine, &dir).unwrap();
        let got = s
            .claim(claim(100, 10, TenantCaps::uniform(10)))
            .await
            .unwrap();
        let mut want = entries.clone();
        want.sort_by_key(|e| (e.tenant != "b", e.due));
        // The claimed one is taken over first, then tenant b (earliest head), each in
        // due order.
        assert_eq!(got[0].entry, entries[0], "{engine:?}");
        assert_eq!(got[0].took_over, Some(55));
        let mut rest: Vec<_> = got[1..].iter().map(|l| l.entry.clone()).collect();
        rest.insert(0, entries[0].clone());
        rest.sort_by_key(|e| (e.tenant != "b", e.due));
        assert_eq!(rest, want, "{engine:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_of_a_stopped_process_are_taken_over_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = EmbeddedStore::open(Engine::Redb, dir.path()).unwrap();
        seed(&s, "t", "r1", &[5, 6]).await;
        let got = s
            .claim(claim(100, 1, TenantCaps::uniform(10)))
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        s.flush().await.unwrap();
        // Dropped with its lease held: as if the process stopped mid-step.
    }
    let s = EmbeddedStore::open(Engine::Redb, dir.path()).unwrap();
    assert_eq!(
        s.inflight("t").await.unwrap(),
        1,
        "the stopped attempt still counts"
    );
    let got = s
        .claim(claim(200, 10, TenantCaps::uniform(10)))
        .await
        .unwrap();
    let taken: Vec<_> = got.iter().filter(|l| l.took_over.is_some()).collect();
    assert_eq!(taken.len(), 1);
    assert_eq!((taken[0].entry.due, taken[0].took_over), (5, Some(100)));
    assert_eq!(got.len(), 2, "and the unclaimed entry as usual");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_cannot_open_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let _first = EmbeddedStore::open(Engine::Redb, dir.path()).unwrap();
    match EmbeddedStore::open(Engine::Sled, dir.path()) {
        Err(StoreError::Locked(d)) => assert!(d.contains(&dir.path().display().to_string())),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened twice"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_write_fails_alone_and_the_writer_goes_on() {
    for engine in [Engine::Redb, Engine::Sled] {
        let s = Arc::new(EmbeddedStore::temporary(engine).unwrap());
        // The panicking write and good ones in flight together: only it fails.
        let bad = {
            let s = s.clone();
            tokio::spawn(async move { s.panic_in_writer().await })
        };
        let mut good = Vec::new();
        for i in 0..8 {
            let s = s.clone();
            good.push(tokio::spawn(async move {
                let ev = parse_batch(format!(r#"{{"name":"ok{i}"}}"#).as_bytes(), 1).unwrap();
                s.append_events("t", ev, 0).await
            }));
        }
        match bad.await.unwrap() {
            Err(StoreError::Panicked(m)) => assert!(m.contains("crafted"), "{m}"),
            other => panic!("{engine:?}: {other:?}"),
        }
        for g in good {
            assert!(g.await.unwrap().is_ok(), "{engine:?}");
        }
        let ev = parse_batch(br#"{"name":"after"}"#, 1).unwrap();
        assert!(
            s.append_events("t", ev, 0).await.is_ok(),
            "{engine:?}: the writer goes on"
        );
        assert_eq!(s.pending_count().await.unwrap(), 9);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_run_record_is_an_error_naming_it_and_harms_no_other_run() {
    let s = EmbeddedStore::temporary(Engine::Redb).unwrap();
    seed(&s, "t", "good", &[5]).await;
    s.put_raw(RUNS, run_key("t", "bad"), b"\x01garbage".to_vec())
        .await
        .unwrap();
    match s.get_run("t", "bad").await {
        Err(StoreError::Corrupt { key, .. }) => assert!(key.contains("bad"), "{key}"),
        other => panic!("{other:?}"),
    }
    let good = s.get_run("t", "good").await.unwrap().unwrap();
    let w = crate::store::RunWrite {
        tenant: "t".into(),
        run_id: "good".into(),
        rev: good.rev,
        run: Some(good.clone()),
        change: RunChange::default(),
        lease: None,
        durability: crate::store::Durability::Durable,
    };
    assert!(matches!(
        s.write_run(w).await.unwrap(),
        crate::store::WriteOutcome::Written { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stored_before_revisions_reads_as_revision_zero_and_can_be_written() {
    let s = EmbeddedStore::temporary(Engine::Sled).unwrap();
    seed(&s, "t", "r1", &[5]).await;
    let mut run = s.get_run("t", "r1").await.unwrap().unwrap();
    run.rev = 0;
    s.put_raw(RUNS, run_key("t", "r1"), serde_json::to_vec(&run).unwrap())
        .await
        .unwrap();
    let old = s.get_run("t", "r1").await.unwrap().unwrap();
    assert_eq!((old.rev, old.id.as_str()), (0, "r1"));
    let w = crate::store::RunWrite {
        tenant: "t".into(),
        run_id: "r1".into(),
        rev: 0,
        run: Some(old),
        change: RunChange::default(),
        lease: None,
        durability: crate::store::Durability::Lazy,
    };
    assert_eq!(
        s.write_run(w).await.unwrap(),
        crate::store::WriteOutcome::Written { rev: 1 }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbox_in_the_old_layout_is_moved_to_per_tenant_inboxes_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let ev = parse_batch(br#"{"name":"waiting"}"#, 1).unwrap().remove(0);
    {
        let s = EmbeddedStore::open(Engine::Redb, dir.path()).unwrap();
        let stored = crate::store::StoredEvent {
            event: ev.clone(),
            run_ids: vec![],
            duplicate_of: None,
            ingested: false,
        };
        s.put_raw(
            EVENTS,
            key(&[b"t", ev.id.as_bytes()]),
            serde_json::to_vec(&stored).unwrap(),
        )
        .await
        .unwrap();
        // Before per-tenant inboxes: (id, tenant).
        s.put_raw(INBOX_LEGACY, key(&[ev.id.as_bytes(), b"t"]), vec![])
            .await
            .unwrap();
    }
    let s = EmbeddedStore::open(Engine::Redb, dir.path()).unwrap();
    let got = s.pending_events(i64::MAX, 10, &[]).await.unwrap();
    assert_eq!(got, vec![("t".to_string(), ev)]);
    assert_eq!(s.pending_count().await.unwrap(), 1);
}
