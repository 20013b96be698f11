//! One behavioural suite that every store backend must pass. [`store_conformance!`]
//! emits one `#[tokio::test]` per case for a backend, so a failure names its case and
//! its backend; a backend outside this module invokes the macro with its own opener.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use super::{
    ClaimRequest, Durability, EventFilter, Ingested, RunChange, RunFilter, RunWrite, Store,
    TenantCaps, WaitQuery, WriteOutcome,
};
use crate::event::{parse_batch, Event};
use crate::run::{QueueEntry, Run, RunStatus, StepState, StepStatus, WaitKey};

mod users;
pub use users::*;

const NOW: i64 = 4_000_000_000_000;

/// Opens a backend's store at a location (a fresh one per case; the same one again to
/// check that data survives).
pub type Opener = fn(&Path) -> Arc<dyn Store>;

/// Emits one test per conformance case for the backend that `$open` (an [`Opener`])
/// opens.
macro_rules! store_conformance {
    ($open:expr) => {
        $crate::store::conformance::store_conformance!(@cases $open;
            idempotency_keys_dedupe, concurrent_appends_agree_on_the_first, ingest_creates_runs_once,
            write_run_is_atomic_with_the_queue, conflicting_writes_one_wins,
            function_versions_increase, tenants_do_not_see_each_other,
            list_runs_pages_and_filters, future_events_wait_for_their_time,
            one_tenants_backlog_does_not_hold_anothers_events,
            waits_are_found_by_value_and_removed_atomically, meta_values_compare_and_set,
            claims_respect_caps_and_share_fairly, leases_expire_and_are_taken_over,
            a_stale_token_is_refused, inflight_counts_follow_leases,
            renewal_keeps_a_lease_and_release_gives_it_back,
            renewal_tells_a_holder_its_entry_was_removed, survives_reopen,
            events_are_listed_by_name_and_schema_errors,
            replays_advance_atomically_with_their_runs,
            users_follow_events_and_runs, erasing_a_user_removes_payloads);
    };
    (@cases $open:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let dir = tempfile::tempdir().unwrap();
                $crate::store::conformance::$case($open, dir.path()).await;
            }
        )*
    };
}
pub(crate) use store_conformance;

async fn commit_one(s: &dyn Store, tenant: &str, event_id: &str, runs: Vec<(Run, RunChange)>) {
    s.commit_ingest(vec![Ingested {
        tenant: tenant.into(),
        event_id: event_id.into(),
        runs,
    }])
    .await
    .unwrap();
}

async fn events(s: &dyn Store, tenant: &str, json: &str) -> Vec<Event> {
    let evs = parse_batch(json.as_bytes(), 100).unwrap();
    s.append_events(tenant, evs.clone(), NOW).await.unwrap();
    evs
}

/// A run of one pending step (for tests).
pub(crate) fn run(id: &str, tenant: &str, function: &str, user: Option<&str>, event: &str) -> Run {
    Run {
        id: id.into(),
        tenant: tenant.into(),
        function_id: function.into(),
        function_version: 1,
        status: RunStatus::Running,
        event_id: event.into(),
        user_id: user.map(Into::into),
        event: json!({}).into(),
        created_at: 1,
        ended_at: None,
        steps: vec![StepState {
            id: "a".into(),
            status: StepStatus::Pending,
            attempts: 0,
            output: None,
            error: None,
            log: None,
            started_at: None,
            ended_at: None,
            wake_at: None,
            edges: vec![Some(true)],
            queued: Some(10),
            async_event: None,
            ready_at: None,
            first_started_at: None,
            sandbox: None,
            sent: Vec::new(),
        }],
        waits: vec![],
        rollout_id: None,
        replay_id: None,
        rev: 0,
    }
}

fn enq(q: Vec<QueueEntry>) -> RunChange {
    RunChange {
        enqueue: q,
        ..Default::default()
    }
}

fn wkey(run: &str, event: &str, path: &str, value: &str, slot: &str) -> WaitKey {
    WaitKey {
        tenant: "t".into(),
        event: event.into(),
        path: path.into(),
        value: value.into(),
        run_id: run.into(),
        slot: slot.into(),
    }
}

fn entry(tenant: &str, run: &str, due: i64) -> QueueEntry {
    QueueEntry {
        due,
        tenant: tenant.into(),
        run_id: run.into(),
        step_id: "a".into(),
    }
}

fn claim_req(now: i64, limit: usize, cap: u64) -> ClaimRequest {
    ClaimRequest {
        owner: "p1".into(),
        now,
        limit,
        lease_ms: 1_000,
        caps: TenantCaps::uniform(cap),
    }
}

fn write(r: &Run, change: RunChange) -> RunWrite {
    RunWrite {
        tenant: r.tenant.clone(),
        run_id: r.id.clone(),
        rev: r.rev,
        run: Some(r.clone()),
        change,
        lease: None,
        durability: Durability::Durable,
    }
}

/// A store with one run `r1` of tenant `t` and queue entries at `dues`.
async fn one_run(s: &dyn Store, tenant: &str, run_id: &str, dues: &[i64]) -> Run {
    let evs = events(s, tenant, r#"{"name":"a"}"#).await;
    let q = dues.iter().map(|d| entry(tenant, run_id, *d)).collect();
    commit_one(
        s,
        tenant,
        &evs[0].id,
        vec![(run(run_id, tenant, "f", None, &evs[0].id), enq(q))],
    )
    .await;
    s.get_run(tenant, run_id).await.unwrap().unwrap()
}

/// Idempotency keys: a repeat is recorded as a duplicate of the first and not pending.
pub async fn idempotency_keys_dedupe(open: Opener, dir: &Path) {
    let s = open(dir);
    let s = s.as_ref();
    let evs = parse_batch(
        br#"[{"name":"a","id":"k"},{"name":"a","id":"k"},{"name":"b"}]"#,
        10,
    )
    .unwrap();
    let dups = s.append_events("t", evs.clone(), NOW).await.unwrap();
    assert_eq!(dups, vec![None, Some(evs[0].id.clone()), None]);
    let again = parse_batch(br#"{"name":"a","id":"k"}"#, 10).unwrap();
    assert_eq!(
        s.append_events("t", again.clone(), NOW).await.unwrap(),
        vec![Some(evs[0].id.clone())]
    );
    // The same key in another tenant is independent.
    assert_eq!(
        s.append_events("u", again.clone(), NOW).await.unwrap(),
        vec![None]
    );
    let pending: Vec<String> = s
        .pending_events(NOW, 10, &[])
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.id)
        .collect();
    assert_eq!(
        pending,
        vec![evs[0].id.clone(), evs[2].id.clone(), again[0].id.clone()]
    );
    let dup = s.get_event("t", &evs[1].id).await.unwrap().unwrap();
    assert_eq!(dup.duplicate_of.as_deref(), Some(evs[0].id.as_str()));
    assert!(dup.ingested, "a duplicate triggers nothing");
    // A bad tenant name is refused, naming what was wrong.
    let e = s.append_events("bad\0tenant", evs, NOW).await.unwrap_err();
    assert!(e.to_string().contains("tenant"), "{e}");
}

/// Many concurrent appends with one idempotency key: exactly one is the original.
pub async fn concurrent_appends_agree_on_the_first(open: Opener, dir: &Path) {
    let s = open(dir);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let evs = parse_batch(br#"{"name":"a","id":"same"}"#, 1).unwrap();
            let id = evs[0].id.clone();
            (id, s.append_events("t", evs, NOW).await.unwrap().remove(0))
        }));
    }
    let mut originals = Vec::new();
    let mut dups_of = Vec::new();
    for t in tasks {
        let (id, dup) = t.await.unwrap();
        match dup {
            None => originals.push(id),
            Some(first) => dups_of.push(first),
        }
    }
    assert_eq!(originals.len(), 1, "one original: {originals:?}");
    assert!(dups_of.iter().all(|d| d == &originals[0]));
    assert_eq!(s.pending_events(NOW, 100, &[]).await.unwrap().len(), 1);
}

/// Ingesting an event creates its runs, queue entries and indexes once.
pub async fn ingest_creates_runs_once(open: Opener, dir: &Path) {
    let s = open(dir);
    let s = s.as_ref();
    let evs = events(s, "t", r#"{"name":"a","user":{"id":"u1"}}"#).await;
    let r = run("r1", "t", "f", Some("u1"), &evs[0].id);
    let q = enq(vec![entry("t", "r1", 10)]);
    commit_one(s, "t", &evs[0].id, vec![(r.clone(), q.clone())]).await;
    commit_one(s, "t", &evs[0].id, vec![(r.clone(), q)]).await;
    assert!(s.pending_events(NOW, 10, &[]).await.unwrap().is_empty());
    let se = s.get_event("t", &evs[0].id).await.unwrap().unwrap();
    assert_eq!(se.run_ids, vec!["r1".to_string()]);
    let stored = s.get_run("t", "r1").await.unwrap().unwrap();
    assert!(stored.rev > 0, "a stored run has a revision");
    let stored_rev = stored.rev;
    assert_eq!(Run { rev: 0, ..stored }, r);
    assert_eq!(
        s.run_counts("t", "f").await.unwrap()[&RunStatus::Running],
        1
    );
    let got = s.claim(claim_req(100, 10, 10)).await.unwrap();
    assert_eq!(
        got.iter().map(|l| l.entry.clone()).collect::<Vec<_>>(),
        vec![entry("t", "r1", 10)]
    );
    let run = got[0]
        .run
        .as_ref()
        .expect("the claimed entry comes with its run");
    assert_eq!((run.id.as_str(), run.rev), ("r1", stored_rev));
    assert!(
        s.claim(claim_req(100, 10, 10)).await.unwrap().is_empty(),
        "claimed once"
    );
}

/// A run write applies the run, its queue changes, status index and counts together,
/// and bumps the revision.
pub async fn write_run_is_atomic_with_the_queue(open: Opener, dir: &Path) {
    let s = open(dir);
    let s = s.as_ref();
    let mut r = one_run(s, "t", "r1", &[10]).await;
    r.status = RunStatus::Completed;
    r.steps[0].status = StepStatus::Completed;
    r.steps[0].output = Some(json!({"ok": true}).into());
    let change = RunChange {
        dequeue: vec![entry("t", "r1", 10)],
        enqueue: vec![entry("t", "r1", 50)],
        ..Default::default()
    };
    let out = s.write_run(write(&r, change)).await.unwrap();
    let WriteOutcome::Written { rev } = out else {
        panic!("{out:?}")
    };
    assert_eq!(rev, r.rev + 1);
    let stored = s.get_run("t", "r1").await.unwrap().unwrap();
    assert_eq!(
        (stored.rev, stored.steps[0].output.clone()),
        (rev, Some(json!({"ok": true}).into()))
    );
    let got: Vec<_> = s
        .claim(claim_req(100, 10, 10))
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.lease.entry)
        .collect();
    assert_eq!(got, vec![entry("t", "r1", 50)]);
    let counts = s.run_counts("t", "f").await.unwrap();
    assert_eq!(
        (counts[&RunStatus::Running], counts[&RunStatus::Completed]),
        (0, 1)
    );
    let by_status = |st: RunStatus| RunFilter {
        status: Some(st),
        ..Default::default()
    };
    let ids = |p: super::Page<Run>| p.data.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s
            .list_runs("t", &by_status(RunStatus::Completed), 10, None)
            .await
            .unwrap()),
        vec!["r1"]
    );
    assert!(ids(s
        .list_runs("t", &by_status(RunStatus::Running), 10, None)
        .await
        .unwrap())
    .is_empty());
    // A write from the old revision is refused and changes nothing.
    let mut old = r.clone();
    old.status = RunStatus::Failed;
    assert_eq!(
        s.write_run(write(&old, RunChange::default()))
            .await
            .unwrap(),
        WriteOutcome::Conflict
    );
    assert_eq!(
        s.get_run("t", "r1").await.unwrap().unwrap().status,
        RunStatus::Completed
    );
    let mut missing = r.clone();
    missing.id = "nope".into();
    assert_eq!(
        s.write_run(write(&missing, RunChange::default()))
            .await
            .unwrap(),
        WriteOutcome::Missing
    );
}

/// Concurrent writes computed from the same revision: exactly one is applied.
pub async fn conflicting_writes_one_wins(open: Opener, dir: &Path) {
    let s = open(dir);
    let r = one_run(s.as_ref(), "t", "r1", &[]).await;
    let mut tasks = Vec::new();
    for i in 0..8u32 {
        let (s, mut r) = (s.clone(), r.clone());
        tasks.push(tokio::spawn(async move {
            r.steps[0].attempts = i + 1;
            let q = enq(vec![entry("t", "r1", 100 + i as i64)]);
            s.write_run(write(&r, q)).await.unwrap()
        }));
    }
    let mut won = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap() {
            WriteOutcome::Written { .. } => won.push(i as u32),
            WriteOutcome::Conflict => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(won.len(), 1, "one writer wins: {won:?}");
    let stored = s.get_run("t", "r1").await.unwrap().unwrap();
    assert_eq!(
        stored.steps[0].attempts,
        won[0] + 1,
        "the winner's state is what is stored"
    );
    let queued: Vec<_> = s
        .claim(claim_req(1_000, 10, 10))
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.entry.due)
        .collect();
    assert_eq!(
        queued,
        vec![100 + won[0] as i64],
        "only the winner's queue change applied"
    );
}

/// Versions count up per function; components and artefacts round-trip.
pub async fn function_versions_increase(open: Opener, dir: &Path) {
    let s = open(dir);
    assert_eq!(
        s.put_function("t", "f", &json!({"v": 1}), 1).await.unwrap(),
        1
    );
    assert_eq!(
        s.put_function("t", "f", &json!({"v": 2}), 2).await.unwrap(),
        2
    );
    assert_eq!(
        s.put_function("t", "f-2", &json!({"v": 1}), 2)
            .await
            .unwrap(),
        1
    );
    let versions = s.function_versions("t", "f").await.unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(
        s.get_function("t", "f", 1).await.unwrap().unwrap().def,
        json!({"v": 1})
    );
    let mut latest: Vec<(String, String, u64)> = s
        .latest_functions()
        .await
        .unwrap()
        .into_iter()
        .map(|(t, r)| (t, r.id, r.version))
        .collect();
    latest.sort();
    assert_eq!(
        latest,
        vec![("t".into(), "f".into(), 2), ("t".into(), "f-2".into(), 1)]
    );
    s.put_component("t", "abc", b"bytes".to_vec())
        .await
        .unwrap();
    assert_eq!(
        s.get_component("t", "abc").await.unwrap().as_deref(),
        Some(&b"bytes"[..])
    );
    s.put_artifact("k", b"compiled".to_vec()).await.unwrap();
    assert_eq!(
        s.get_artifact("k").await.unwrap().as_deref(),
        Some(&b"compiled"[..])
    );
    assert!(
        s.put_function("t", "", &json!({}), 1).await.is_err(),
        "an empty id is refused"
    );
}

/// One tenant's data is invisible to another.
pub async fn tenants_do_not_see_each_other(open: Opener, dir: &Path) {
    let s = open(dir);
    let s = s.as_ref();
    let r = one_run(s, "t", "r1", &[5]).await;
    s.put_component("t", "abc", b"bytes".to_vec())
        .await
        .unwrap();
    s.put_function("t", "f", &json!({}), 1).await.unwrap();
    assert!(s.get_event("u", &r.event_id).await.unwrap().is_none());
    assert!(s.get_run("u", "r1").await.unwrap().is_none());
    assert!(s.get_component("u", "abc").await.unwrap().is_none());
    assert!(s.function_versions("u", "f").await.unwrap().is_empty());
    assert!(s
        .list_runs("u", &RunFilter::default(), 10, None)
        .await
        .unwrap()
        .data
        .is_empty());
    assert!(s
        .list_events("u", None, 10, None)
        .await
        .unwrap()
        .data
        .is_empty());
    let mut theirs = r.clone();
    theirs.tenant = "u".into();
    assert_eq!(
        s.write_run(write(&theirs, RunChange::default()))
            .await
            .unwrap(),
        WriteOutcome::Missing
    );
    assert_eq!(s.inflight("u").await.unwrap(), 0);
}

/// Listing pages newest first and filters by function, user, event and status.
pub async fn list_runs_pages_and_filters(open: Opener, dir: &Path) {
    let s = open(dir);
    let s = s.as_ref();
    let evs = events(s, "t", r#"{"name":"a"}"#).await;
    let runs: Vec<_> = (0..5)
        .map(|i| {
            let f = if i % 2 == 0 { "even" } else { "odd" };
            let user = Some(if i < 2 { "u1" } else { "u2" });
            (
                run(&format!("r{i}"), "t", f, user, &evs[0].id),
                RunChange::default(),
            )
        })
        .collect();
    commit_one(s, "t", &evs[0].id, runs).await;
    let ids = |p: &super::Page<Run>| p.data.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    let all = RunFilter::default();
    let p1 = s.list_runs("t", &all, 2, None).await.unwrap();
    assert_eq!(ids(&p1), vec!["r4", "r3"]);
    let p2 = s
        .list_runs("t", &all, 2, p1.next_cursor.as_deref())
        .await
        .unwrap();
    assert_eq!(ids(&p2), vec!["r2", "r1"]);
    let p3 = s
        .list_runs("t", &all, 2, p2.next_cursor.as_deref())
        .await
        .unwrap();
    assert_eq!((ids(&p3), p3.next_cursor), (vec!["r0".to_string()], None));
    let f = |function: Option<&str>, user: Option<&str>, event: Option<&str>| RunFilter {
        function: function.map(Into::into),
        user: user.map(Into::into),
        event: event.map(Into::into),
        status: None,
        replay: None,
    };
    assert_eq!(
        ids(&s
            .list_runs("t", &f(Some("even"), None, None), 10, None)
            .await
            .unwrap()),
        vec!["r4", "r2", "r0"]
    );
    assert_eq!(
        ids(&s
            .list_runs("t", &f(None, Some("u1"), None), 10, None)
            .await
            .unwrap()),
        vec!["r1", "r0"]
    );
    let by_event = f(Some("odd"), None, Some(&evs[0].id));
    assert_eq!(
        ids(&s.list_runs("t", &by_event, 10, None).await.unwrap()),
        vec!["r3", "r1"]
    );
    let failed = RunFilter {
        status: Some(RunStatus::Failed),
        ..Default::default()
    };
    assert!(s
        .list_runs("t", &failed, 10, None)
        .await
        .unwrap()
        .data
        .is_empty());
    // A function's runs in one status, a page at a time (the UI's most used filter).
    let status = s.get_run("t", "r0").await.unwrap().unwrap().status;
    let even_in = RunFilter {
        function: Some("even".into()),
        status: Some(status),
        ..Default::default()
    };
    let q1 = s.list_runs("t", &even_in, 2, None).await.unwrap();
    assert_eq!(ids(&q1), vec!["r4", "r2"]);
    let q2 = s
        .list_runs("t", &even_in, 2, q1.next_cursor.as_deref())
        .await
        .unwrap();
    assert_eq!((ids(&q2), q2.next_cursor), (vec!["r0".to_string()], None));
    let odd_failed = RunFilter {
        function: Some("odd".into()),
        status: Some(RunStatus::Failed),
        ..Default::default()
    };
    assert!(s
        .list_runs("t", &odd_failed, 10, None)
        .await
        .unwrap()
        .data
        .is_empty());
}

/// A future-dated event stays out of the pending set until its time.
pub async fn future_events_wait_for_their_time(open: Opener, dir: &Path) {
    let s = open(dir);
    let s = s.as_ref();
    let later = events(
        s,
        "t",
        &format!(r#"{{"name":"later","ts":{}}}"#, NOW + 5_000),
    )
    .await;
    events(s, "t", r#"{"name":"now"}"#).await;
    let names = |v: Vec<(String, Event)>| v.into_iter().map(|(_, e)| e.name).collect::<Vec<_>>();
    assert_eq!(
        names(s.pending_events(NOW, 10, &[]).await.unwrap()),
        vec!["now"]
    );
    assert_eq!(s.next_delayed().await.unwrap(), Some(NOW + 5_000));
    assert_eq!(s.pending_count().await.unwrap(), 2);
    assert_eq!(
        names(s.pending_events(NOW + 5_000, 10, &[]).await.unwrap()),
        vec!["later", "now"]
    );
    commit_one(s, "t", &later[0].id, vec![]).await;
    assert_eq!(s.next_delayed().await.unwrap(), None);
    assert_eq!(
        names(s.pending_events(NOW + 9_000, 10, &[]).await.unwrap()),
        vec!["now"]
    );
}

/// Pending events come a fair share per tenant, so a flood of one tenant does not hold
/// another's events back; busy tenants can be left out.
pub async fn one_tenants_backlog_does_not_hold_anothers_events(open: Opener, dir: &Path) {
    let s = open(dir);
    let s = s.as_ref();
    let flood: Vec<_> = (0..50)
        .map(|i| json!({"name": "flood", "data": {"i": i}}))
        .collect();
    events(s, "a", &serde_json::to_string(&flood).unwrap()).await;
    let quiet = events(s, "b", r#"{"name":"quiet"}"#).await;
    let got = s.pending_events(NOW, 10, &[]).await.unwrap();
    assert_eq!(got.len(), 10);
    assert!(
        got.iter().any(|(t, e)| t == "b" && e.id == quiet[0].id),
        "b's event is not held back"
    );
    let a: Vec<i64> = got
        .iter()
        .filter(|(t, _)| t == "a")
        .map(|(_, e)| e.data["i"].as_i64().unwrap())
        .collect();
    assert_eq!(a, (0..9).collect::<Vec<_>>(), "a's oldest first");
    let only_b = s.pending_events(NOW, 10, &["a".to_string()]).await.unwrap();
    assert_eq!(
        only_b.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(),
        vec!["b"]
    );
    assert_eq!(s.pending_count().await.unwrap(), 51);
}

/// Waits are found by the indexed value (or unindexed), and go with the run's writes.
pub async fn waits_are_found_by_value_and_removed_atomically(open: Opener, dir: &Path) {
    let s = open(dir);
    let s = s.as_ref();
    let evs = events(s, "t", r#"{"name":"a"}"#).await;
    let w1 = wkey("r1", "user/verified", "user.id", "\"u1\"", "e1.0");
    let w2 = wkey("r2", "user/verified", "user.id", "\"u2\"", "e1.0");
    let any = wkey("r2", "user/verified", "*", "*", "c0");
    let add = |w: Vec<WaitKey>| RunChange {
        waits_add: w,
        ..Default::default()
    };
    commit_one(
        s,
        "t",
        &evs[0].id,
        vec![
            (run("r1", "t", "f", None, &evs[0].id), add(vec![w1.clone()])),
            (
                run("r2", "t", "f", None, &evs[0].id),
                add(vec![w2.clone(), any.clone()]),
            ),
        ],
    )
    .await;
    let q = |tenant: &str, event: &str, user: &str| WaitQuery {
        tenant: tenant.into(),
        event: event.into(),
        incoming: Arc::new(json!({"name": event, "user": {"id": user}})),
    };
    let found = s
        .find_waits(vec![
            q("t", "user/verified", "u1"),
            q("t", "other", "u1"),
            q("u", "user/verified", "u1"),
        ])
        .await
        .unwrap();
    assert_eq!(found[0].len(), 2, "{found:?}");
    assert!(found[0].contains(&w1) && found[0].contains(&any));
    assert!(found[1].is_empty() && found[2].is_empty());
    let r1 = s.get_run("t", "r1").await.unwrap().unwrap();
    let remove = |w: Vec<WaitKey>| RunChange {
        waits_remove: w,
        ..Default::default()
    };
    s.write_run(write(&r1, remove(vec![w1.clone()])))
        .await
        .unwrap();
    let found = s
        .find_waits(vec![q("t", "user/verified", "u1")])
        .await
        .unwrap();
    assert_eq!(found[0], vec![any.clone()]);
    let r2 = s.get_run("t", "r2").await.unwrap().unwrap();
    s.write_run(write(&r2, remove(vec![any.clone(), w2.clone()])))
        .await
        .unwrap();
    assert!(s
        .find_waits(vec![q("t", "user/verified", "u2")])
        .await
        .unwrap()[0]
        .is_empty());
}

/// Meta values are set only from the expected value (so one process fires a tick).
pub async fn meta_values_compare_and_set(open: Opener, dir: &Path) {
    let s = open(dir);
    assert!(s.get_meta("cron/x").await.unwrap().is_none());
    assert!(s.put_meta_if("cron/x", None, b"41").await.unwrap());
    assert!(
        !s.put_meta_if("cron/x", None, b"40").await.unwrap(),
        "already set"
    );
    assert!(
        !s.put_meta_if("cron/x", Some(b"1"), b"42").await.unwrap(),
        "not the expected value"
    );
    assert!(s.put_meta_if("cron/x", Some(b"41"), b"42").await.unwrap());
    assert_eq!(
        s.get_meta("cron/x").await.unwrap().as_deref(),
        Some(&b"42"[..])
    );
}

/// Claims give each tenant at most its cap minus the leases it holds, the least busy
/// first, and a fair share of the limit before any tenant gets more.
pub async fn claims_respect_caps_and_share_fairly(open: Opener, dir: &Path) {
    let s = open(dir);
    let s = s.as_ref();
    // "busy" has a deep backlog (due 1..=50); "calm" two entries; "late" one in the future.
    one_run(s, "busy", "r-busy", &(1..=50).collect::<Vec<_>>()).await;
    one_run(s, "calm", "r-calm", &[30, 60]).await;
    one_run(s, "late", "r-late", &[500]).await;
    let of = |v: &[super::Claimed], t: &str| -> Vec<i64> {
        v.iter()
            .filter(|l| l.entry.tenant == t)
            .map(|l| l.entry.due)
            .collect()
    };
    let mut caps = TenantCaps::uniform(10);
    caps.per_tenant.insert("busy".into(), 3);
    let req = |limit: usize, caps: &TenantCaps| ClaimRequest {
        caps: caps.clone(),
        ..claim_req(100, limit, 0)
    };
    // A fair share of 4 each: busy 2 of its 3, calm its two; the future entry waits.
    let got = s.claim(req(4, &caps)).await.unwrap();
    assert_eq!(
        (of(&got, "busy"), of(&got, "calm")),
        (vec![1, 2], vec![30, 60])
    );
    assert!(of(&got, "late").is_empty());
    // busy holds 2 of its cap of 3: one more, whatever the limit.
    let more = s.claim(req(10, &caps)).await.unwrap();
    assert_eq!(of(&more, "busy"), vec![3]);
    assert!(
        s.claim(req(10, &caps)).await.unwrap().is_empty(),
        "busy is at its cap"
    );
    assert_eq!(s.inflight("busy").await.unwrap(), 3);
    // Its next entry is due but blocked by the cap; the next due time skips it.
    assert_eq!(
        s.next_due(100, &caps).await.unwrap().map(|t| t <= 500),
        Some(true)
    );
    let fewest = TenantCaps::uniform(10);
    let got = s
        .claim(ClaimRequest {
            caps: fewest,
            ..claim_req(1_000, 1, 0)
        })
        .await
        .unwrap();
    assert_eq!(
        of(&got, "late"),
        vec![500],
        "the tenant holding the fewest goes first"
    );
}

/// A lease not renewed expires; the next claim takes it over with a greater token and
/// says when the cut-short attempt began.
pub async fn leases_expire_and_are_taken_over(open: Opener, dir: &Path) {
    let s = open(dir);
    let s = s.as_ref();
    one_run(s, "t", "r1", &[5]).await;
    let first = s.claim(claim_req(100, 10, 10)).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].took_over, None);
    assert!(
        s.claim(claim_req(900, 10, 10)).await.unwrap().is_empty(),
        "still held"
    );
    let mut later = claim_req(100 + 1_000, 10, 10);
    later.owner = "p2".into();
    let taken = s.claim(later).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].entry, first[0].entry);
    assert_eq!(taken[0].owner, "p2");
    assert_eq!(taken[0].took_over, Some(100));
    assert!(taken[0].token > first[0].token);
    assert_eq!(
        s.inflight("t").await.unwrap(),
        1,
        "a takeover moves the count, not adds to it"
    );
}

/// A write under a token that no longer holds is refused and changes nothing.
pub async fn a_stale_token_is_refused(open: Opener, dir: &Path) {
    let s = open(dir);
    let s = s.as_ref();
    let r = one_run(s, "t", "r1", &[5]).await;
    let old = s.claim(claim_req(100, 10, 10)).await.unwrap().remove(0);
    let new = s
        .claim(claim_req(100 + 1_000, 10, 10))
        .await
        .unwrap()
        .remove(0);
    let mut stale = r.clone();
    stale.steps[0].status = StepStatus::Completed;
    stale.status = RunStatus::Completed;
    let done = RunChange {
        dequeue: vec![old.entry.clone()],
        ..Default::default()
    };
    let mut w = write(&stale, done.clone());
    w.lease = Some(old.lease_ref());
    assert_eq!(s.write_run(w).await.unwrap(), WriteOutcome::LeaseLost);
    let stored = s.get_run("t", "r1").await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.rev),
        (RunStatus::Running, r.rev),
        "nothing written"
    );
    // The holder's write goes through and ends the lease.
    let mut w = write(&stale, done);
    w.lease = Some(new.lease_ref());
    assert!(matches!(
        s.write_run(w).await.unwrap(),
        WriteOutcome::Written { .. }
    ));
    assert_eq!(s.inflight("t").await.unwrap(), 0);
    assert!(s.leases_of(vec![new.entry.clone()]).await.unwrap()[0].is_none());
}

/// Per-tenant counts rise with claims and fall with writes and releases.
pub async fn inflight_counts_follow_leases(open: Opener, dir: &Path) {
    let s = open(dir);
    let s = s.as_ref();
    let r = one_run(s, "t", "r1", &[1, 2, 3]).await;
    one_run(s, "u", "r9", &[1]).await;
    let got = s.claim(claim_req(100, 10, 10)).await.unwrap();
    assert_eq!(got.len(), 4);
    assert_eq!(
        (
            s.inflight("t").await.unwrap(),
            s.inflight("u").await.unwrap()
        ),
        (3, 1)
    );
    let shown = s
        .leases_of(vec![entry("t", "r1", 1), entry("t", "r1", 99)])
        .await
        .unwrap();
    assert!(shown[0].as_ref().is_some_and(|l| l.claimed_at == 100) && shown[1].is_none());
    let lease = got.iter().find(|l| l.entry == entry("t", "r1", 1)).unwrap();
    let mut w = write(
        &r,
        RunChange {
            dequeue: vec![lease.entry.clone()],
            ..Default::default()
        },
    );
    w.lease = Some(lease.lease_ref());
    w.run = None;
    assert!(matches!(
        s.write_run(w).await.unwrap(),
        WriteOutcome::Written { .. }
    ));
    assert_eq!(s.inflight("t").await.unwrap(), 2);
    let rest: Vec<_> = got
        .iter()
        .filter(|l| l.entry.tenant == "t" && l.entry.due != 1)
        .map(|l| l.lease_ref())
        .collect();
    s.release(rest, false).await.unwrap();
    assert_eq!(s.inflight("t").await.unwrap(), 0);
    assert_eq!(s.inflight("u").await.unwrap(), 1);
}

/// A write that removes an entry another holds (a cancel, made by any process) leaves
/// the lease held, and renewal tells its holder to stop; the holder's own write then ends
/// the lease without queueing the entry again.
pub async fn renewal_tells_a_holder_its_entry_was_removed(open: Opener, dir: &Path) {
    let s = open(dir);
    let s = s.as_ref();
    let r = one_run(s, "t", "r1", &[5, 6]).await;
    let got = s.claim(claim_req(100, 10, 10)).await.unwrap();
    let (a, b) = (got[0].lease_ref(), got[1].lease_ref());
    let mut cancelled = r.clone();
    cancelled.status = RunStatus::Cancelled;
    let gone = RunChange {
        dequeue: vec![a.entry.clone()],
        ..Default::default()
    };
    assert!(matches!(
        s.write_run(write(&cancelled, gone)).await.unwrap(),
        WriteOutcome::Written { .. }
    ));
    assert_eq!(
        s.renew(vec![a.clone(), b.clone()], 100 + 5_000)
            .await
            .unwrap(),
        vec![false, true],
        "the removed one's holder is told to stop; the other goes on"
    );
    assert_eq!(s.inflight("t").await.unwrap(), 2, "both still held");
    let now = s.get_run("t", "r1").await.unwrap().unwrap();
    let mut w = write(&now, RunChange::default());
    w.run = None;
    w.lease = Some(a.clone());
    assert!(matches!(
        s.write_run(w).await.unwrap(),
        WriteOutcome::Written { .. }
    ));
    assert_eq!(s.inflight("t").await.unwrap(), 1);
    let later = s.claim(claim_req(100 + 9_000, 10, 10)).await.unwrap();
    assert_eq!(
        later.iter().map(|l| l.entry.clone()).collect::<Vec<_>>(),
        vec![b.entry.clone()],
        "the removed entry is not queued again; the other's expired lease is taken over"
    );
}

/// Renewal keeps a lease from expiring; a released entry can be claimed again at once.
pub async fn renewal_keeps_a_lease_and_release_gives_it_back(open: Opener, dir: &Path) {
    let s = open(dir);
    let s = s.as_ref();
    one_run(s, "t", "r1", &[5, 6]).await;
    let got = s.claim(claim_req(100, 10, 10)).await.unwrap();
    let (a, b) = (got[0].lease_ref(), got[1].lease_ref());
    assert_eq!(
        s.renew(vec![a.clone()], 100 + 5_000).await.unwrap(),
        vec![true]
    );
    let taken = s.claim(claim_req(100 + 2_000, 10, 10)).await.unwrap();
    assert_eq!(
        taken.iter().map(|l| l.entry.clone()).collect::<Vec<_>>(),
        vec![b.entry.clone()],
        "only the unrenewed one"
    );
    assert_eq!(
        s.renew(vec![b.clone()], 100 + 9_000).await.unwrap(),
        vec![false],
        "a lost lease is not renewed"
    );
    s.release(vec![a.clone()], false).await.unwrap();
    let again = s.claim(claim_req(100 + 2_000, 10, 10)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].entry.clone(), again[0].took_over),
        (a.entry.clone(), None),
        "released: no attempt was cut short"
    );
    s.release(vec![again[0].lease_ref()], true).await.unwrap();
    assert!(
        s.claim(claim_req(100 + 9_000, 10, 10))
            .await
            .unwrap()
            .iter()
            .all(|l| l.entry != a.entry),
        "removed"
    );
}

/// Data written by one instance is there after reopening the same location.
pub async fn survives_reopen(open: Opener, dir: &Path) {
    {
        let s = open(dir);
        one_run(s.as_ref(), "t", "r1", &[3]).await;
        s.put_function("t", "f", &json!({"v": 1}), 1).await.unwrap();
        s.flush().await.unwrap();
    }
    let s = open(dir);
    assert_eq!(s.get_run("t", "r1").await.unwrap().unwrap().id, "r1");
    assert_eq!(s.latest_functions().await.unwrap().len(), 1);
    assert_eq!(s.claim(claim_req(10, 10, 10)).await.unwrap().len(), 1);
}

/// Events keep the schema errors they were stored with, and list by name and by
/// whether they have any, newest first, in pages.
pub async fn events_are_listed_by_name_and_schema_errors(open: Opener, dir: &Path) {
    let s = open(dir);
    let s = s.as_ref();
    let mut evs = parse_batch(
        br#"[{"name":"a"},{"name":"b"},{"name":"a"},{"name":"a"},{"name":"b"}]"#,
        10,
    )
    .unwrap();
    for i in [1, 2, 3] {
        evs[i].schema_errors = vec![format!("data: error {i}")];
    }
    s.append_events("t", evs.clone(), NOW).await.unwrap();
    let ids = |p: &super::Page<super::StoredEvent>| -> Vec<String> {
        p.data.iter().map(|e| e.event.id.clone()).collect()
    };
    let filter = |name: Option<&str>, invalid| EventFilter {
        name: name.map(Into::into),
        invalid,
    };
    let all = s
        .list_events_where("t", &filter(None, false), 10, None)
        .await
        .unwrap();
    assert_eq!(all.data.len(), 5);
    let invalid = s
        .list_events_where("t", &filter(None, true), 10, None)
        .await
        .unwrap();
    assert_eq!(
        ids(&invalid),
        vec![evs[3].id.clone(), evs[2].id.clone(), evs[1].id.clone()]
    );
    assert_eq!(
        invalid.data[0].event.schema_errors,
        vec!["data: error 3".to_string()]
    );
    let first = s
        .list_events_where("t", &filter(Some("a"), true), 1, None)
        .await
        .unwrap();
    assert_eq!(ids(&first), vec![evs[3].id.clone()]);
    let next = s
        .list_events_where(
            "t",
            &filter(Some("a"), true),
            1,
            first.next_cursor.as_deref(),
        )
        .await
        .unwrap();
    assert_eq!(ids(&next), vec![evs[2].id.clone()]);
    assert_eq!(next.next_cursor, None);
    let got = s.get_event("t", &evs[0].id).await.unwrap().unwrap();
    assert!(got.event.schema_errors.is_empty());
    assert!(s
        .list_events_where("u", &filter(None, true), 10, None)
        .await
        .unwrap()
        .data
        .is_empty());
}

/// A replay is stored with its items and inline events; it advances only from the
/// progress it was read at and while running, creating its batch's runs (indexed under
/// the replay and added to their events) in the same write; it survives a reopen.
pub async fn replays_advance_atomically_with_their_runs(open: Opener, dir: &Path) {
    use super::{ReplayItem, ReplayState};
    let state = |done: u64, running: bool| ReplayState {
        id: "rp1".into(),
        running,
        done,
        record: json!({"done": done}),
    };
    let evs;
    {
        let s = open(dir);
        let s = s.as_ref();
        evs = parse_batch(br#"[{"name":"a"},{"name":"a"},{"name":"a"}]"#, 10).unwrap();
        let items: Vec<ReplayItem> = evs
            .iter()
            .map(|e| ReplayItem {
                event_id: e.id.clone(),
                original_run_id: None,
            })
            .collect();
        s.create_replay("t", state(0, true), items.clone(), evs.clone())
            .await
            .unwrap();
        // Inline events are stored as already matched: trigger matching never sees them.
        assert!(s.pending_events(NOW, 10, &[]).await.unwrap().is_empty());
        assert!(
            s.get_event("t", &evs[0].id)
                .await
                .unwrap()
                .unwrap()
                .ingested
        );
        assert_eq!(s.replay_items("t", "rp1", 1, 10).await.unwrap(), items[1..]);
        assert_eq!(s.replay_items("t", "rp1", 0, 1).await.unwrap(), items[..1]);
        assert!(s.replay_items("t", "rp1", 3, 10).await.unwrap().is_empty());
        assert!(s.replay_items("u", "rp1", 0, 10).await.unwrap().is_empty());

        let mut r1 = run("r1", "t", "f", None, &evs[0].id);
        r1.replay_id = Some("rp1".into());
        let q = enq(vec![entry("t", "r1", 10)]);
        assert!(s
            .advance_replay("t", 0, state(1, true), vec![(r1.clone(), q.clone())])
            .await
            .unwrap());
        // A second driver that read the same progress is refused, and creates nothing.
        let mut r1b = run("r1b", "t", "f", None, &evs[0].id);
        r1b.replay_id = Some("rp1".into());
        assert!(!s
            .advance_replay("t", 0, state(1, true), vec![(r1b, q)])
            .await
            .unwrap());
        assert!(s.get_run("t", "r1b").await.unwrap().is_none());
        assert_eq!(
            s.get_event("t", &evs[0].id).await.unwrap().unwrap().run_ids,
            vec!["r1".to_string()]
        );
        let by_replay = RunFilter {
            replay: Some("rp1".into()),
            ..Default::default()
        };
        let listed = s.list_runs("t", &by_replay, 10, None).await.unwrap();
        assert_eq!(
            listed
                .data
                .iter()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>(),
            ["r1"]
        );
        assert_eq!(s.claim(claim_req(100, 10, 10)).await.unwrap().len(), 1);
        assert_eq!(
            s.running_replays().await.unwrap(),
            vec![("t".into(), state(1, true))]
        );
        s.flush().await.unwrap();
    }
    let s = open(dir);
    let s = s.as_ref();
    assert_eq!(
        s.get_replay("t", "rp1").await.unwrap(),
        Some(state(1, true))
    );
    assert_eq!(s.get_replay("u", "rp1").await.unwrap(), None);
    // Stopped (cancelled or completed): no longer running, and no further advance.
    assert!(s
        .advance_replay("t", 1, state(1, false), Vec::new())
        .await
        .unwrap());
    assert!(s.running_replays().await.unwrap().is_empty());
    assert!(!s
        .advance_replay("t", 1, state(2, true), Vec::new())
        .await
        .unwrap());
    let page = s.list_replays("t", 10, None).await.unwrap();
    assert_eq!(page.data, vec![state(1, false)]);
    assert!(s.list_replays("u", 10, None).await.unwrap().data.is_empty());
}
