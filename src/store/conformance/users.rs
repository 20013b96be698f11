//! Conformance cases of the users part of the seam: the index follows appends, ingests
//! and status changes; listings page by cursor; erasure removes payloads and keeps ids
//! and counts.

use std::path::Path;

use serde_json::json;

use super::{commit_one, run, write, Opener, NOW};
use crate::event::{new_id, parse_batch, Event};
use crate::run::{Run, RunStatus};
use crate::store::{RunChange, Store, TimelineItem, UserCursor};

async fn send(s: &dyn Store, tenant: &str, now: i64, json: &str) -> Vec<Event> {
    let evs = parse_batch(json.as_bytes(), 100).unwrap();
    s.append_events(tenant, evs.clone(), now).await.unwrap();
    evs
}

/// A run of `ev` by its user, created through an ingest; returned as stored.
async fn start(s: &dyn Store, tenant: &str, ev: &Event, function: &str) -> Run {
    let mut r = run(&new_id(), tenant, function, ev.user_id().as_deref(), &ev.id);
    r.event = ev.to_value().into();
    commit_one(s, tenant, &ev.id, vec![(r.clone(), RunChange::default())]).await;
    s.get_run(tenant, &r.id).await.unwrap().unwrap()
}

async fn set_status(s: &dyn Store, r: &Run, status: RunStatus) -> Run {
    let mut next = r.clone();
    next.status = status;
    s.write_run(write(&next, RunChange::default()))
        .await
        .unwrap();
    s.get_run(&r.tenant, &r.id).await.unwrap().unwrap()
}

fn ids(items: &[TimelineItem]) -> Vec<String> {
    items.iter().map(|i| i.id().to_string()).collect()
}

/// Summaries count events and runs by status as runs move; users list by last activity
/// with a prefix and a cursor; the timeline interleaves events and runs newest first.
pub async fn users_follow_events_and_runs(open: Opener, dir: &Path) {
    let s = open(dir);
    let s = s.as_ref();
    let a = send(
        s,
        "t",
        NOW,
        r#"{"name":"signup","user":{"id":"ann","plan":"free"}}"#,
    )
    .await;
    let b = send(s, "t", NOW + 1, r#"{"name":"signup","user":{"id":"bob"}}"#).await;
    let r1 = start(s, "t", &a[0], "f").await;
    let a2 = send(
        s,
        "t",
        NOW + 2,
        r#"{"name":"upgrade","user":{"id":"ann","plan":"pro"}}"#,
    )
    .await;
    let r2 = start(s, "t", &a2[0], "g").await;
    send(s, "other", NOW + 3, r#"{"name":"x","user":{"id":"ann"}}"#).await;
    send(s, "t", NOW + 3, r#"{"name":"anon"}"#).await;

    let ann = s.get_user("t", "ann").await.unwrap().unwrap();
    assert_eq!((ann.events, ann.last_seen), (2, NOW + 2));
    assert_eq!(
        ann.user.as_ref().unwrap()["plan"],
        "pro",
        "the latest user object"
    );
    assert_eq!(ann.runs[&RunStatus::Running], 2);
    set_status(s, &r1, RunStatus::Failed).await;
    let r2 = set_status(s, &r2, RunStatus::Waiting).await;
    let ann = s.get_user("t", "ann").await.unwrap().unwrap();
    assert_eq!(ann.runs[&RunStatus::Running], 0);
    assert_eq!(ann.runs[&RunStatus::Failed], 1);
    assert_eq!(ann.runs[&RunStatus::Waiting], 1);
    let parked = [RunStatus::Waiting, RunStatus::Sleeping];
    let waiting = s.user_runs_in("t", "ann", &parked, 10).await.unwrap();
    assert_eq!(waiting.iter().map(|r| &r.id).collect::<Vec<_>>(), [&r2.id]);
    set_status(s, &r2, RunStatus::Completed).await;
    assert!(s
        .user_runs_in("t", "ann", &parked, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.get_user("other", "ann").await.unwrap().unwrap().events, 1);
    assert!(s.get_user("t", "nobody").await.unwrap().is_none());

    // By last activity: ann (NOW+2) before bob (NOW+1); one per page.
    let p1 = s.list_users("t", None, 1, None).await.unwrap();
    assert_eq!(p1.data[0].id, "ann");
    let c = UserCursor::parse(p1.next_cursor.as_deref().unwrap()).unwrap();
    let p2 = s.list_users("t", None, 1, Some(&c)).await.unwrap();
    assert_eq!(p2.data[0].id, "bob");
    assert_eq!(p2.next_cursor, None);
    let b_only = s.list_users("t", Some("b"), 10, None).await.unwrap();
    assert_eq!(b_only.data.len(), 1);
    assert_eq!(b_only.data[0].events, 1);
    // bob's new event moves him first (his old last-activity key is gone).
    send(s, "t", NOW + 5, r#"{"name":"login","user":{"id":"bob"}}"#).await;
    let all = s.list_users("t", None, 10, None).await.unwrap();
    let order: Vec<&str> = all.data.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(order, ["bob", "ann"]);

    // ann's timeline: a2's run, a2, a's run, a — newest first, across pages.
    let want = [
        r2.id.clone(),
        a2[0].id.clone(),
        r1.id.clone(),
        a[0].id.clone(),
    ];
    let t1 = s.user_timeline("t", "ann", 3, None).await.unwrap();
    assert_eq!(ids(&t1.data), want[..3]);
    assert!(matches!(t1.data[0], TimelineItem::Run(_)));
    assert!(matches!(t1.data[1], TimelineItem::Event(_)));
    let t2 = s
        .user_timeline("t", "ann", 3, t1.next_cursor.as_deref())
        .await
        .unwrap();
    assert_eq!(ids(&t2.data), want[3..]);
    assert_eq!(t2.next_cursor, None);
    assert_eq!(b[0].user_id().as_deref(), Some("bob"));
}

/// Erasure empties the payloads of the user's events and runs (and no one else's),
/// keeps ids, names, statuses and counts, and leaves events stored later alone.
pub async fn erasing_a_user_removes_payloads(open: Opener, dir: &Path) {
    let s = open(dir);
    let s = s.as_ref();
    let evs = send(
        s,
        "t",
        NOW,
        r#"[{"name":"signup","id":"k-ann-1","user":{"id":"ann","email":"ann@example.com"},"data":{"card":"4242"}},
            {"name":"signup","user":{"id":"cat"},"data":{"card":"5555"}}]"#,
    )
    .await;
    let mut r = start(s, "t", &evs[0], "f").await;
    r.steps[0].output = Some(json!({"secret": "4242"}).into());
    r.steps[0].log = Some("card 4242".into());
    r.steps[0].error = Some("declined 4242".into());
    r.steps[0].async_event = Some(json!({"data": {"card": "4242"}}));
    let r = set_status(s, &r, RunStatus::Completed).await;
    let before = new_id();
    let later = send(
        s,
        "t",
        NOW + 1,
        r#"{"name":"login","user":{"id":"ann"},"data":{"ip":"1.2.3.4"}}"#,
    )
    .await;

    let erased = s.erase_user("t", "ann", &before, NOW + 2).await.unwrap();
    assert_eq!((erased.events, erased.runs), (1, 1));
    let e = s.get_event("t", &evs[0].id).await.unwrap().unwrap();
    assert!(e.event.data.is_empty());
    assert_eq!(json!(e.event.user), json!({"id": "ann"}));
    assert_eq!(e.event.idempotency_key, None);
    assert_eq!((e.event.name.as_str(), e.event.ts), ("signup", evs[0].ts));
    assert_eq!(e.run_ids, vec![r.id.clone()]);
    let got = s.get_run("t", &r.id).await.unwrap().unwrap();
    assert_eq!(got.status, RunStatus::Completed);
    assert_eq!(got.event.get()["data"], json!({}));
    assert_eq!(got.event.get()["user"], json!({"id": "ann"}));
    let st = &got.steps[0];
    assert!(st.output.is_none() && st.log.is_none() && st.error.is_none());
    assert!(st.async_event.is_none());
    assert!(got.rev > r.rev, "a write from the old copy is refused");
    // The idempotency key went with the event: the same key is new again.
    let again = send(
        s,
        "t",
        NOW + 3,
        r#"{"name":"signup","id":"k-ann-1","user":{"id":"ann"}}"#,
    )
    .await;
    assert_eq!(
        s.get_event("t", &again[0].id)
            .await
            .unwrap()
            .unwrap()
            .duplicate_of,
        None
    );
    // Later events and other users are untouched; counts are kept.
    let l = s.get_event("t", &later[0].id).await.unwrap().unwrap();
    assert_eq!(l.event.data["ip"], "1.2.3.4");
    let c = s.get_event("t", &evs[1].id).await.unwrap().unwrap();
    assert_eq!(c.event.data["card"], "5555");
    let ann = s.get_user("t", "ann").await.unwrap().unwrap();
    assert_eq!(ann.erased_at, Some(NOW + 2));
    assert_eq!(ann.runs[&RunStatus::Completed], 1);
    assert_eq!(ann.events, 3);
}
