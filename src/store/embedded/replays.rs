//! Replays in the embedded layout: the record, the running index, the selected events
//! in order, and the atomic advance that starts a batch of runs with the progress.

use super::events::put_new_run;
use super::kv::{scan_below, scan_prefix, KvRead, KvWrite};
use super::queue::QueueTx;
use super::schema::*;
use crate::event::Event;
use crate::run::Run;
use crate::store::{Page, ReplayItem, ReplayState, RunChange, StoreResult, StoredEvent};

fn replay_key(tenant: &str, id: &str) -> Vec<u8> {
    key(&[tenant.as_bytes(), id.as_bytes()])
}

fn item_key(tenant: &str, id: &str, index: u64) -> Vec<u8> {
    key(&[tenant.as_bytes(), id.as_bytes(), &index.to_be_bytes()])
}

fn put_state(w: &mut dyn KvWrite, tenant: &str, state: &ReplayState) -> StoreResult<()> {
    let k = replay_key(tenant, &state.id);
    w.put(REPLAYS, &k, &enc(state)?)?;
    if state.running {
        w.put(REPLAYS_RUNNING, &k, &[])?;
    } else {
        w.del(REPLAYS_RUNNING, &k)?;
    }
    Ok(())
}

/// Stores a new replay, its items and its inline events (as already matched).
pub fn create(
    w: &mut dyn KvWrite,
    tenant: &str,
    state: &ReplayState,
    items: &[ReplayItem],
    events: &[Event],
) -> StoreResult<()> {
    check_name("tenant", tenant)?;
    check_name("replay", &state.id)?;
    for ev in events {
        let stored = StoredEvent {
            event: ev.clone(),
            run_ids: Vec::new(),
            duplicate_of: None,
            ingested: true,
        };
        w.put(
            EVENTS,
            &key(&[tenant.as_bytes(), ev.id.as_bytes()]),
            &enc(&stored)?,
        )?;
    }
    for (i, item) in items.iter().enumerate() {
        w.put(
            REPLAY_ITEMS,
            &item_key(tenant, &state.id, i as u64),
            &enc(item)?,
        )?;
    }
    put_state(w, tenant, state)
}

/// One replay.
pub fn get(r: &(impl KvRead + ?Sized), tenant: &str, id: &str) -> StoreResult<Option<ReplayState>> {
    get_json(r, REPLAYS, &replay_key(tenant, id))
}

/// A tenant's replays, newest first.
pub fn list(
    r: &dyn KvRead,
    tenant: &str,
    limit: usize,
    cursor: Option<&str>,
) -> StoreResult<Page<ReplayState>> {
    let limit = limit.max(1);
    let mut data = Vec::new();
    scan_below(
        r,
        REPLAYS,
        &prefix(&[tenant.as_bytes()]),
        cursor,
        &mut |k, v| {
            data.push(dec::<ReplayState>(k, v)?);
            Ok(data.len() <= limit)
        },
    )?;
    Ok(Page::from_overfull(data, limit, |s| s.id.clone()))
}

/// Every running replay, with its tenant.
pub fn running(r: &dyn KvRead) -> StoreResult<Vec<(String, ReplayState)>> {
    let mut keys = Vec::new();
    scan_prefix(r, REPLAYS_RUNNING, &[], None, &mut |k, _| {
        keys.push(k.to_vec());
        Ok(true)
    })?;
    let mut out = Vec::new();
    for k in keys {
        if let Some(s) = get_json::<ReplayState>(r, REPLAYS, &k)? {
            let (tenant, _) = split2(&k);
            out.push((tenant, s));
        }
    }
    Ok(out)
}

/// Up to `limit` items from position `from`.
pub fn items(
    r: &dyn KvRead,
    tenant: &str,
    id: &str,
    from: u64,
    limit: usize,
) -> StoreResult<Vec<ReplayItem>> {
    let pfx = prefix(&[tenant.as_bytes(), id.as_bytes()]);
    let start = item_key(tenant, id, from);
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    r.scan(
        REPLAY_ITEMS,
        std::ops::Bound::Included(&start),
        match super::kv::prefix_end(&pfx) {
            Some(ref e) => std::ops::Bound::Excluded(&e[..]),
            None => std::ops::Bound::Unbounded,
        },
        false,
        &mut |k, v| {
            out.push(dec::<ReplayItem>(k, v)?);
            Ok(out.len() < limit)
        },
    )?;
    Ok(out)
}

/// Sets the replay to `state` and creates `runs`, if it is still running at
/// `expected_done`; whether it did.
pub fn advance(
    w: &mut dyn KvWrite,
    tenant: &str,
    expected_done: u64,
    state: &ReplayState,
    runs: &[(Run, RunChange)],
) -> StoreResult<bool> {
    match get(w, tenant, &state.id)? {
        Some(cur) if cur.running && cur.done == expected_done => {}
        _ => return Ok(false),
    }
    let mut queue = QueueTx::default();
    for (run, change) in runs {
        put_new_run(w, &mut queue, tenant, run, change)?;
        w.put(
            RUNS_BY_REPLAY,
            &key(&[tenant.as_bytes(), state.id.as_bytes(), run.id.as_bytes()]),
            &[],
        )?;
        let ek = key(&[tenant.as_bytes(), run.event_id.as_bytes()]);
        if let Some(mut se) = get_json::<StoredEvent>(w, EVENTS, &ek)? {
            se.run_ids.push(run.id.clone());
            w.put(EVENTS, &ek, &enc(&se)?)?;
        }
    }
    queue.finish(w)?;
    put_state(w, tenant, state)?;
    Ok(true)
}
