//! The user index of a store written before it existed is built once, at open.

use crate::event::{new_id, parse_batch};
use crate::run::RunStatus;
use crate::store::embedded::{EmbeddedStore, Engine};
use crate::store::{EventStore, Ingested, RunChange, RunStore, UserStore};

async fn old_store(engine: Engine, dir: &std::path::Path) -> (String, String) {
    let s = EmbeddedStore::open(engine, dir).unwrap();
    let evs = parse_batch(
        br#"[{"name":"a","user":{"id":"ann","name":"Ann"},"ts":1000},{"name":"b","user":{"id":"bob"},"ts":2000},{"name":"c"}]"#,
        10,
    )
    .unwrap();
    s.append_events("t", evs.clone(), 3000).await.unwrap();
    let mut run = crate::store::conformance::run(&new_id(), "t", "f", Some("ann"), &evs[0].id);
    run.status = RunStatus::Failed;
    s.commit_ingest(vec![Ingested {
        tenant: "t".into(),
        event_id: evs[0].id.clone(),
        runs: vec![(run.clone(), RunChange::default())],
    }])
    .await
    .unwrap();
    // As a store from before the index: none of it, and no marker.
    s.drop_user_index().await.unwrap();
    assert!(s.get_user("t", "ann").await.unwrap().is_none());
    (evs[0].id.clone(), run.id)
}

async fn builds_at_open(engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    let (ev, run) = old_store(engine, dir.path()).await;
    let s = EmbeddedStore::open(engine, dir.path()).unwrap();
    let ann = s.get_user("t", "ann").await.unwrap().unwrap();
    assert_eq!((ann.events, ann.last_seen), (1, 1000));
    assert_eq!(ann.user.unwrap()["name"], "Ann");
    assert_eq!(ann.runs[&RunStatus::Failed], 1);
    let tl = s.user_timeline("t", "ann", 10, None).await.unwrap();
    let ids: Vec<&str> = tl.data.iter().map(|i| i.id()).collect();
    assert_eq!(ids, [run.as_str(), ev.as_str()]);
    let failed = s.user_runs_in("t", "ann", &[RunStatus::Failed], 5).await;
    assert_eq!(failed.unwrap().len(), 1);
    let users = s.list_users("t", None, 10, None).await.unwrap();
    let order: Vec<&str> = users.data.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(order, ["bob", "ann"]);
    drop(s);
    // Built once: a second open does not count again.
    let s = EmbeddedStore::open(engine, dir.path()).unwrap();
    assert_eq!(s.get_user("t", "ann").await.unwrap().unwrap().events, 1);
    assert_eq!(s.get_event("t", &ev).await.unwrap().unwrap().run_ids, [run]);
    let _ = s.get_run("t", "x").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_redb_store_gets_its_user_index_at_open() {
    builds_at_open(Engine::Redb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_sled_store_gets_its_user_index_at_open() {
    builds_at_open(Engine::Sled).await;
}
