//! One behavioural suite that every `Store` backend must pass.

use serde_json::json;

use super::{Durability, RunChange, RunFilter, Store};
use crate::event::parse_batch;
use crate::run::{QueueEntry, Run, RunStatus, StepState, StepStatus, WaitKey};

const NOW: i64 = 4_000_000_000_000;

type Open<'a> = &'a dyn Fn() -> Box<dyn Store>;

/// One event's ingest, the way most checks need it.
trait CommitOne {
    fn commit_one(
        &self,
        tenant: &str,
        event_id: &str,
        runs: &[(Run, RunChange)],
    ) -> super::StoreResult<()>;
}

impl<S: Store + ?Sized> CommitOne for S {
    fn commit_one(
        &self,
        tenant: &str,
        event_id: &str,
        runs: &[(Run, RunChange)],
    ) -> super::StoreResult<()> {
        self.commit_ingest(
            &[super::Ingested {
                tenant: tenant.into(),
                event_id: event_id.into(),
                runs: runs.to_vec(),
            }],
            super::Durability::Durable,
        )
    }
}

/// Runs every conformance check against fresh stores from `open`.
pub fn run_all(open: Open<'_>) {
    idempotency_keys_dedupe(open());
    ingest_creates_runs_once(open());
    update_run_is_atomic_with_the_queue(open());
    function_versions_increase(open());
    tenants_do_not_see_each_other(open());
    list_runs_pages_and_filters(open());
    future_events_wait_for_their_time(open());
    waits_are_found_by_value_and_removed_atomically(open());
    meta_values_persist(open());
    batched_updates_apply_in_order(open());
    batched_appends_match_single_ones(open());
    tenants_get_at_most_their_room(open());
    claims_live_and_die_with_their_entries(open());
}

fn claims_live_and_die_with_their_entries(s: Box<dyn Store>) {
    let evs = parse_batch(br#"{"name":"a"}"#, 10).unwrap();
    s.append_events("t", &evs, NOW).unwrap();
    let (a, b) = (entry("t", "r1", 5), entry("t", "r1", 7));
    s.commit_one(
        "t",
        &evs[0].id,
        &[(
            run("r1", "t", "f", None, &evs[0].id),
            enq(vec![a.clone(), b.clone()]),
        )],
    )
    .unwrap();
    assert!(s.claimed().unwrap().is_empty());
    // A claim on an entry that is gone is dropped.
    s.mark_claimed(&[(a.clone(), 100), (entry("t", "gone", 1), 100)])
        .unwrap();
    assert_eq!(s.claimed().unwrap(), vec![(a.clone(), 100)]);
    // A claimed entry is still queued (and found due) as before.
    assert_eq!(s.due(10, 10, &|_| 10, &|_| false).unwrap().len(), 2);
    // Withdrawn, it is no longer claimed; claimed again, the newest time counts.
    s.clear_claims(std::slice::from_ref(&a)).unwrap();
    assert!(s.claimed().unwrap().is_empty());
    s.mark_claimed(&[(a.clone(), 200), (b.clone(), 300)])
        .unwrap();
    s.flush().unwrap();
    assert_eq!(
        s.claimed().unwrap(),
        vec![(a.clone(), 200), (b.clone(), 300)]
    );
    // The claim goes with its entry.
    s.update_run("t", "r1", Durability::Durable, &mut |_| {
        Some(RunChange {
            dequeue: vec![a.clone()],
            ..Default::default()
        })
    })
    .unwrap();
    assert_eq!(s.claimed().unwrap(), vec![(b.clone(), 300)]);
}

fn tenants_get_at_most_their_room(s: Box<dyn Store>) {
    // "busy" has a deep backlog (due 1..=50); "calm" two entries; "late" one in the future.
    for (tenant, dues) in [
        ("busy", (1..=50).collect::<Vec<i64>>()),
        ("calm", vec![30, 60]),
        ("late", vec![500]),
    ] {
        let evs = parse_batch(br#"{"name":"a"}"#, 10).unwrap();
        s.append_events(tenant, &evs, NOW).unwrap();
        let run_id = format!("r-{tenant}");
        let q = dues.iter().map(|d| entry(tenant, &run_id, *d)).collect();
        s.commit_one(
            tenant,
            &evs[0].id,
            &[(run(&run_id, tenant, "f", None, &evs[0].id), enq(q))],
        )
        .unwrap();
    }
    let room = |busy: usize, calm: usize| {
        move |t: &str| match t {
            "busy" => busy,
            "calm" => calm,
            _ => 10,
        }
    };
    let none = |_: &QueueEntry| false;
    let of = |v: &[QueueEntry], t: &str| -> Vec<i64> {
        v.iter().filter(|e| e.tenant == t).map(|e| e.due).collect()
    };
    // A tenant without room gives nothing; the others are not held behind its backlog.
    let got = s.due(100, 10, &room(0, 5), &none).unwrap();
    assert_eq!((of(&got, "busy"), of(&got, "calm")), (vec![], vec![30, 60]));
    assert_eq!(got.len(), 2, "{got:?}");
    // Each tenant gives at most its room, earliest first.
    let got = s.due(100, 10, &room(3, 5), &none).unwrap();
    assert_eq!(
        (of(&got, "busy"), of(&got, "calm")),
        (vec![1, 2, 3], vec![30, 60])
    );
    // The limit holds, and the entry due first is among those given.
    let got = s.due(100, 4, &room(10, 10), &none).unwrap();
    assert_eq!(got.len(), 4);
    assert_eq!(of(&got, "busy")[..2], [1, 2]);
    // Skipped entries (executing now) do not count against the room.
    let executing = |e: &QueueEntry| e.tenant == "busy" && e.due <= 2;
    let got = s.due(100, 10, &room(2, 0), &executing).unwrap();
    assert_eq!(of(&got, "busy"), vec![3, 4]);
    assert!(of(&got, "calm").is_empty());
    // The next due time ignores tenants without room and skipped entries.
    let all = |_: &str| 10;
    assert_eq!(s.next_due(&all, &none).unwrap(), Some(1));
    assert_eq!(s.next_due(&all, &executing).unwrap(), Some(3));
    assert_eq!(s.next_due(&room(0, 5), &none).unwrap(), Some(30));
    assert_eq!(s.next_due(&room(0, 0), &none).unwrap(), Some(500));
    assert_eq!(s.next_due(&|_| 0, &none).unwrap(), None);
    // Removing entries moves a tenant's place in line.
    s.dequeue(&entry("calm", "r-calm", 30)).unwrap();
    assert_eq!(s.next_due(&room(0, 5), &none).unwrap(), Some(60));
    s.update_run("calm", "r-calm", Durability::Lazy, &mut |_| {
        Some(RunChange {
            dequeue: vec![entry("calm", "r-calm", 60)],
            ..Default::default()
        })
    })
    .unwrap();
    assert_eq!(s.next_due(&room(0, 5), &none).unwrap(), Some(500));
    assert!(of(&s.due(1000, 100, &all, &none).unwrap(), "calm").is_empty());
}

fn batched_appends_match_single_ones(s: Box<dyn Store>) {
    use super::{Durability, EventBatch};
    let a = parse_batch(br#"[{"name":"a","id":"k"},{"name":"b"}]"#, 10).unwrap();
    let b = parse_batch(br#"{"name":"c","id":"k"}"#, 10).unwrap();
    let later = parse_batch(
        format!(r#"{{"name":"later","ts":{}}}"#, NOW + 5_000).as_bytes(),
        1,
    )
    .unwrap();
    let batch = |tenant: &str, events: &Vec<crate::event::Event>| EventBatch {
        tenant: tenant.into(),
        events: events.clone(),
        now: NOW,
    };
    let answers = s
        .append_batches(
            &[
                batch("t", &a),
                batch("t", &b),
                batch("u", &b),
                batch("u", &later),
            ],
            Durability::Durable,
        )
        .unwrap();
    // A key repeated in a later batch of the same tenant is a duplicate; not in another.
    assert_eq!(
        answers,
        vec![
            vec![None, None],
            vec![Some(a[0].id.clone())],
            vec![None],
            vec![None]
        ]
    );
    let stored = s.get_event("t", &a[1].id).unwrap().unwrap();
    assert_eq!(stored.event, a[1]);
    assert!(!stored.ingested && stored.run_ids.is_empty() && stored.duplicate_of.is_none());
    let dup = s.get_event("t", &b[0].id).unwrap().unwrap();
    assert_eq!(dup.duplicate_of.as_deref(), Some(a[0].id.as_str()));
    assert!(dup.ingested, "a duplicate triggers nothing");
    let pending: Vec<String> = s
        .pending_events(NOW, 10)
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.id)
        .collect();
    assert_eq!(
        pending,
        vec![a[0].id.clone(), a[1].id.clone(), b[0].id.clone()]
    );
    assert_eq!(s.next_delayed().unwrap(), Some(NOW + 5_000));
    // A bad tenant name is refused, naming it, and the batches with it are not stored
    // either: all or nothing.
    let fresh = parse_batch(br#"{"name":"fresh"}"#, 1).unwrap();
    let e = s
        .append_batches(&[batch("t", &fresh), batch("", &later)], Durability::Lazy)
        .unwrap_err();
    assert!(e.to_string().contains("tenant"), "{e}");
    assert!(s.get_event("t", &fresh[0].id).unwrap().is_none());
}

fn batched_updates_apply_in_order(s: Box<dyn Store>) {
    let evs = parse_batch(br#"{"name":"a"}"#, 10).unwrap();
    s.append_events("t", &evs, NOW).unwrap();
    s.commit_one(
        "t",
        &evs[0].id,
        &[
            (run("r1", "t", "f", None, &evs[0].id), RunChange::default()),
            (run("r2", "t", "f", None, &evs[0].id), RunChange::default()),
        ],
    )
    .unwrap();
    let op = |id: &str, f: fn(&mut Run) -> Option<RunChange>| super::RunOp {
        tenant: "t".into(),
        id: id.into(),
        update: Box::new(f),
    };
    let mut ops = vec![
        op("r1", |r| {
            r.steps[0].attempts += 1;
            Some(RunChange {
                enqueue: vec![entry("t", "r1", 77)],
                ..Default::default()
            })
        }),
        op("r1", |r| {
            r.steps[0].attempts += 1;
            r.status = RunStatus::Completed;
            Some(RunChange::default())
        }),
        op("missing", |_| Some(RunChange::default())),
        op("r2", |_| None),
    ];
    let out = s.update_runs(&mut ops, Durability::Durable).unwrap();
    assert_eq!(out.len(), 4);
    assert_eq!(
        out[1].as_ref().unwrap().steps[0].attempts,
        2,
        "the second op saw the first"
    );
    assert!(out[2].is_none());
    assert_eq!(out[3].as_ref().unwrap().status, RunStatus::Running);
    assert_eq!(s.get_run("t", "r1").unwrap().unwrap().steps[0].attempts, 2);
    assert!(s
        .due(100, 10, &|_| usize::MAX, &|_| false)
        .unwrap()
        .contains(&entry("t", "r1", 77)));
    let counts = s.run_counts("t", "f").unwrap();
    assert_eq!(
        (counts[&RunStatus::Completed], counts[&RunStatus::Running]),
        (1, 1)
    );
}

fn future_events_wait_for_their_time(s: Box<dyn Store>) {
    let later = parse_batch(
        format!(r#"{{"name":"later","ts":{}}}"#, NOW + 5_000).as_bytes(),
        1,
    )
    .unwrap();
    let now = parse_batch(br#"{"name":"now"}"#, 1).unwrap();
    s.append_events("t", &later, NOW).unwrap();
    s.append_events("t", &now, NOW).unwrap();
    let names = |v: Vec<(String, crate::event::Event)>| {
        v.into_iter().map(|(_, e)| e.name).collect::<Vec<_>>()
    };
    assert_eq!(names(s.pending_events(NOW, 10).unwrap()), vec!["now"]);
    assert_eq!(s.next_delayed().unwrap(), Some(NOW + 5_000));
    assert_eq!(s.pending_count().unwrap(), 2);
    assert_eq!(
        names(s.pending_events(NOW + 5_000, 10).unwrap()),
        vec!["later", "now"]
    );
    s.commit_one("t", &later[0].id, &[]).unwrap();
    assert_eq!(s.next_delayed().unwrap(), None);
    assert_eq!(
        names(s.pending_events(NOW + 9_000, 10).unwrap()),
        vec!["now"]
    );
}

fn waits_are_found_by_value_and_removed_atomically(s: Box<dyn Store>) {
    let evs = parse_batch(br#"{"name":"a"}"#, 10).unwrap();
    s.append_events("t", &evs, NOW).unwrap();
    let w1 = wkey("r1", "user/verified", "user.id", "\"u1\"", "e1.0");
    let w2 = wkey("r2", "user/verified", "user.id", "\"u2\"", "e1.0");
    let any = wkey("r2", "user/verified", "*", "*", "c0");
    let change = RunChange {
        waits_add: vec![w1.clone()],
        ..Default::default()
    };
    let change2 = RunChange {
        waits_add: vec![w2.clone(), any.clone()],
        ..Default::default()
    };
    s.commit_one(
        "t",
        &evs[0].id,
        &[
            (run("r1", "t", "f", None, &evs[0].id), change),
            (run("r2", "t", "f", None, &evs[0].id), change2),
        ],
    )
    .unwrap();
    let found = s
        .find_waits("t", "user/verified", &|p| {
            (p == "user.id").then(|| "\"u1\"".to_string())
        })
        .unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found.contains(&w1) && found.contains(&any));
    assert!(s
        .find_waits("t", "other", &|_| Some("x".into()))
        .unwrap()
        .is_empty());
    assert!(s
        .find_waits("u", "user/verified", &|_| Some("\"u1\"".into()))
        .unwrap()
        .is_empty());
    s.update_run("t", "r1", Durability::Lazy, &mut |_| {
        Some(RunChange {
            waits_remove: vec![w1.clone()],
            ..Default::default()
        })
    })
    .unwrap();
    let found = s
        .find_waits("t", "user/verified", &|_| Some("\"u1\"".to_string()))
        .unwrap();
    assert_eq!(found, vec![any.clone()]);
    s.update_run("t", "r2", Durability::Lazy, &mut |_| {
        Some(RunChange {
            waits_remove: vec![any.clone(), w2.clone()],
            ..Default::default()
        })
    })
    .unwrap();
    assert!(s
        .find_waits("t", "user/verified", &|_| Some("\"u2\"".to_string()))
        .unwrap()
        .is_empty());
}

fn meta_values_persist(s: Box<dyn Store>) {
    assert!(s.get_meta("cron/x").unwrap().is_none());
    s.put_meta("cron/x", b"42").unwrap();
    assert_eq!(s.get_meta("cron/x").unwrap().as_deref(), Some(&b"42"[..]));
}

fn run(id: &str, tenant: &str, function: &str, user: Option<&str>, event: &str) -> Run {
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
        }],
        waits: vec![],
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

fn idempotency_keys_dedupe(s: Box<dyn Store>) {
    let evs = parse_batch(
        br#"[{"name":"a","id":"k"},{"name":"a","id":"k"},{"name":"b"}]"#,
        10,
    )
    .unwrap();
    let dups = s.append_events("t", &evs, NOW).unwrap();
    assert_eq!(dups, vec![None, Some(evs[0].id.clone()), None]);
    let again = parse_batch(br#"{"name":"a","id":"k"}"#, 10).unwrap();
    assert_eq!(
        s.append_events("t", &again, NOW).unwrap(),
        vec![Some(evs[0].id.clone())]
    );
    // The same key in another tenant is independent.
    assert_eq!(s.append_events("u", &again, NOW).unwrap(), vec![None]);
    let pending: Vec<String> = s
        .pending_events(NOW, 10)
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.id)
        .collect();
    assert_eq!(
        pending,
        vec![evs[0].id.clone(), evs[2].id.clone(), again[0].id.clone()]
    );
    assert!(s
        .get_event("t", &evs[1].id)
        .unwrap()
        .unwrap()
        .duplicate_of
        .is_some());
}

fn ingest_creates_runs_once(s: Box<dyn Store>) {
    let evs = parse_batch(br#"{"name":"a","user":{"id":"u1"}}"#, 10).unwrap();
    s.append_events("t", &evs, NOW).unwrap();
    let r = run("r1", "t", "f", Some("u1"), &evs[0].id);
    let q = enq(vec![entry("t", "r1", 10)]);
    s.commit_one("t", &evs[0].id, &[(r.clone(), q.clone())])
        .unwrap();
    s.commit_one("t", &evs[0].id, &[(r.clone(), q)]).unwrap();
    assert!(s.pending_events(NOW, 10).unwrap().is_empty());
    let se = s.get_event("t", &evs[0].id).unwrap().unwrap();
    assert_eq!(se.run_ids, vec!["r1".to_string()]);
    assert_eq!(s.get_run("t", "r1").unwrap().unwrap(), r);
    assert_eq!(s.run_counts("t", "f").unwrap()[&RunStatus::Running], 1);
    assert_eq!(
        s.due(100, 10, &|_| usize::MAX, &|_| false).unwrap(),
        vec![entry("t", "r1", 10)]
    );
    assert!(s
        .due(9, 10, &|_| usize::MAX, &|_| false)
        .unwrap()
        .is_empty());
    assert_eq!(s.next_due(&|_| usize::MAX, &|_| false).unwrap(), Some(10));
}

fn update_run_is_atomic_with_the_queue(s: Box<dyn Store>) {
    let evs = parse_batch(br#"{"name":"a"}"#, 10).unwrap();
    s.append_events("t", &evs, NOW).unwrap();
    s.commit_one(
        "t",
        &evs[0].id,
        &[(
            run("r1", "t", "f", None, &evs[0].id),
            enq(vec![entry("t", "r1", 10)]),
        )],
    )
    .unwrap();
    let out = s
        .update_run("t", "r1", Durability::Durable, &mut |r| {
            r.status = RunStatus::Completed;
            r.steps[0].status = StepStatus::Completed;
            r.steps[0].output = Some(json!({"ok": true}).into());
            Some(RunChange {
                dequeue: vec![entry("t", "r1", 10)],
                enqueue: vec![entry("t", "r1", 50)],
                ..Default::default()
            })
        })
        .unwrap()
        .unwrap();
    assert_eq!(out.status, RunStatus::Completed);
    assert_eq!(
        s.get_run("t", "r1").unwrap().unwrap().steps[0].output,
        Some(json!({"ok": true}).into())
    );
    assert_eq!(
        s.due(100, 10, &|_| usize::MAX, &|_| false).unwrap(),
        vec![entry("t", "r1", 50)]
    );
    let counts = s.run_counts("t", "f").unwrap();
    assert_eq!(
        (counts[&RunStatus::Running], counts[&RunStatus::Completed]),
        (0, 1)
    );
    // The status index follows the run.
    let by_status = |st: RunStatus| {
        let f = RunFilter {
            status: Some(st),
            ..Default::default()
        };
        s.list_runs("t", &f, 10, None)
            .unwrap()
            .data
            .into_iter()
            .map(|r| r.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(by_status(RunStatus::Completed), vec!["r1".to_string()]);
    assert!(by_status(RunStatus::Running).is_empty());
    // Declining to change leaves everything as it was.
    let same = s
        .update_run("t", "r1", Durability::Lazy, &mut |_| None)
        .unwrap()
        .unwrap();
    assert_eq!(same, out);
    assert!(s
        .update_run("t", "nope", Durability::Lazy, &mut |_| None)
        .unwrap()
        .is_none());
}

fn function_versions_increase(s: Box<dyn Store>) {
    assert_eq!(s.put_function("t", "f", &json!({"v": 1}), 1).unwrap(), 1);
    assert_eq!(s.put_function("t", "f", &json!({"v": 2}), 2).unwrap(), 2);
    assert_eq!(s.put_function("t", "f-2", &json!({"v": 1}), 2).unwrap(), 1);
    let versions = s.function_versions("t", "f").unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(
        s.get_function("t", "f", 1).unwrap().unwrap().def,
        json!({"v": 1})
    );
    let mut latest: Vec<(String, String, u64)> = s
        .latest_functions()
        .unwrap()
        .into_iter()
        .map(|(t, r)| (t, r.id, r.version))
        .collect();
    latest.sort();
    assert_eq!(
        latest,
        vec![("t".into(), "f".into(), 2), ("t".into(), "f-2".into(), 1)]
    );
    s.put_component("t", "abc", b"bytes").unwrap();
    assert_eq!(
        s.get_component("t", "abc").unwrap().as_deref(),
        Some(&b"bytes"[..])
    );
    s.put_artifact("k", b"compiled").unwrap();
    assert_eq!(
        s.get_artifact("k").unwrap().as_deref(),
        Some(&b"compiled"[..])
    );
}

fn tenants_do_not_see_each_other(s: Box<dyn Store>) {
    let evs = parse_batch(br#"{"name":"a"}"#, 10).unwrap();
    s.append_events("t", &evs, NOW).unwrap();
    s.commit_one(
        "t",
        &evs[0].id,
        &[(run("r1", "t", "f", None, &evs[0].id), RunChange::default())],
    )
    .unwrap();
    s.put_component("t", "abc", b"bytes").unwrap();
    s.put_function("t", "f", &json!({}), 1).unwrap();
    assert!(s.get_event("u", &evs[0].id).unwrap().is_none());
    assert!(s.get_run("u", "r1").unwrap().is_none());
    assert!(s.get_component("u", "abc").unwrap().is_none());
    assert!(s.function_versions("u", "f").unwrap().is_empty());
    assert!(s
        .list_runs("u", &RunFilter::default(), 10, None)
        .unwrap()
        .data
        .is_empty());
    assert!(s.list_events("u", None, 10, None).unwrap().data.is_empty());
    assert!(s
        .update_run("u", "r1", Durability::Lazy, &mut |_| Some(
            RunChange::default()
        ))
        .unwrap()
        .is_none());
    assert!(s.append_events("bad\0tenant", &evs, NOW).is_err());
}

fn list_runs_pages_and_filters(s: Box<dyn Store>) {
    let evs = parse_batch(br#"{"name":"a"}"#, 10).unwrap();
    s.append_events("t", &evs, NOW).unwrap();
    let runs: Vec<_> = (0..5)
        .map(|i| {
            let f = if i % 2 == 0 { "even" } else { "odd" };
            (
                run(
                    &format!("r{i}"),
                    "t",
                    f,
                    Some(if i < 2 { "u1" } else { "u2" }),
                    &evs[0].id,
                ),
                RunChange::default(),
            )
        })
        .collect();
    s.commit_one("t", &evs[0].id, &runs).unwrap();
    let ids = |p: &super::Page<Run>| p.data.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    let p1 = s.list_runs("t", &RunFilter::default(), 2, None).unwrap();
    assert_eq!(ids(&p1), vec!["r4", "r3"]);
    let p2 = s
        .list_runs("t", &RunFilter::default(), 2, p1.next_cursor.as_deref())
        .unwrap();
    assert_eq!(ids(&p2), vec!["r2", "r1"]);
    let p3 = s
        .list_runs("t", &RunFilter::default(), 2, p2.next_cursor.as_deref())
        .unwrap();
    assert_eq!((ids(&p3), p3.next_cursor), (vec!["r0".to_string()], None));
    let even = RunFilter {
        function: Some("even".into()),
        ..Default::default()
    };
    assert_eq!(
        ids(&s.list_runs("t", &even, 10, None).unwrap()),
        vec!["r4", "r2", "r0"]
    );
    let u1 = RunFilter {
        user: Some("u1".into()),
        ..Default::default()
    };
    assert_eq!(
        ids(&s.list_runs("t", &u1, 10, None).unwrap()),
        vec!["r1", "r0"]
    );
    let by_event = RunFilter {
        event: Some(evs[0].id.clone()),
        function: Some("odd".into()),
        ..Default::default()
    };
    assert_eq!(
        ids(&s.list_runs("t", &by_event, 10, None).unwrap()),
        vec!["r3", "r1"]
    );
    let failed = RunFilter {
        status: Some(RunStatus::Failed),
        ..Default::default()
    };
    assert!(s.list_runs("t", &failed, 10, None).unwrap().data.is_empty());
}

/// Data written by one instance is there after reopening the same directory.
pub fn survives_reopen(open: Open<'_>) {
    let evs = parse_batch(br#"{"name":"a"}"#, 10).unwrap();
    {
        let s = open();
        s.append_events("t", &evs, NOW).unwrap();
        s.commit_one(
            "t",
            &evs[0].id,
            &[(
                run("r1", "t", "f", None, &evs[0].id),
                enq(vec![entry("t", "r1", 3)]),
            )],
        )
        .unwrap();
    }
    let s = open();
    assert_eq!(s.get_run("t", "r1").unwrap().unwrap().id, "r1");
    assert_eq!(s.due(10, 10, &|_| usize::MAX, &|_| false).unwrap().len(), 1);
}
