//! Events in the embedded layout: appends with idempotency keys, the inbox and the
//! delayed set that trigger matching drains, and ingestion into runs.

use std::collections::BTreeMap;
use std::ops::Bound;

use serde::Serialize;

use super::kv::{scan_below, KvRead, KvWrite};
use super::queue::QueueTx;
use super::runs::add_waits;
use super::schema::*;
use crate::event::Event;
use crate::store::{Ingested, Page, StoreResult, StoredEvent};

/// Appends one tenant's events (see [`crate::store::EventStore::append_events`]).
pub fn append(
    w: &mut dyn KvWrite,
    tenant: &str,
    events: &[Event],
    now: i64,
) -> StoreResult<Vec<Option<String>>> {
    check_name("tenant", tenant)?;
    let mut out = Vec::with_capacity(events.len());
    // Keys repeated inside one batch also count as duplicates.
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for ev in events {
        let mut duplicate_of = None;
        if let Some(k) = &ev.idempotency_key {
            let ik = key(&[tenant.as_bytes(), k.as_bytes()]);
            if let Some(first) = seen.get(k.as_str()) {
                duplicate_of = Some(first.to_string());
            } else if let Some(prev) = w.get(IDEM, &ik)? {
                duplicate_of = Some(String::from_utf8_lossy(&prev).into_owned());
            } else {
                w.put(IDEM, &ik, ev.id.as_bytes())?;
                seen.insert(k, &ev.id);
            }
        }
        // A `StoredEvent`, serialized without copying the event.
        #[derive(Serialize)]
        struct NewEvent<'a> {
            event: &'a Event,
            run_ids: [(); 0],
            #[serde(skip_serializing_if = "Option::is_none")]
            duplicate_of: Option<&'a str>,
            ingested: bool,
        }
        let stored = NewEvent {
            event: ev,
            run_ids: [],
            duplicate_of: duplicate_of.as_deref(),
            ingested: duplicate_of.is_some(),
        };
        w.put(
            EVENTS,
            &key(&[tenant.as_bytes(), ev.id.as_bytes()]),
            &enc(&stored)?,
        )?;
        if duplicate_of.is_none() {
            if ev.ts > now {
                w.put(DELAYED, &delayed_key(tenant, &ev.id, ev.ts), &[])?;
            } else {
                w.put(INBOX, &key(&[ev.id.as_bytes(), tenant.as_bytes()]), &[])?;
            }
        }
        out.push(duplicate_of);
    }
    Ok(out)
}

/// Records the runs matched events started (see
/// [`crate::store::EventStore::commit_ingest`]); whether anything changed.
pub fn ingest(w: &mut dyn KvWrite, batch: &[Ingested]) -> StoreResult<bool> {
    let mut queue = QueueTx::default();
    let mut changed = false;
    for Ingested {
        tenant,
        event_id,
        runs,
    } in batch
    {
        let ek = key(&[tenant.as_bytes(), event_id.as_bytes()]);
        let Some(mut stored) = get_json::<StoredEvent>(w, EVENTS, &ek)? else {
            continue;
        };
        if stored.ingested {
            continue;
        }
        stored.ingested = true;
        changed = true;
        for (run, change) in runs {
            let t = tenant.as_bytes();
            let rid = run.id.as_bytes();
            w.put(
                RUNS,
                &run_key(tenant, &run.id),
                &enc_run(1, run.status, &enc(run)?),
            )?;
            w.put(RUNS_BY_FN, &key(&[t, run.function_id.as_bytes(), rid]), &[])?;
            if let Some(u) = &run.user_id {
                w.put(RUNS_BY_USER, &key(&[t, u.as_bytes(), rid]), &[])?;
            }
            counter_add(
                w,
                COUNTS,
                &count_key(tenant, &run.function_id, run.status),
                1,
            )?;
            w.put(
                RUNS_BY_STATUS,
                &status_key(tenant, run.status, &run.id),
                &[],
            )?;
            for q in &change.enqueue {
                queue.put(w, q)?;
            }
            add_waits(w, &change.waits_add)?;
            stored.run_ids.push(run.id.clone());
        }
        w.del(INBOX, &key(&[event_id.as_bytes(), tenant.as_bytes()]))?;
        w.del(DELAYED, &delayed_key(tenant, event_id, stored.event.ts))?;
        w.put(EVENTS, &ek, &enc(&stored)?)?;
    }
    queue.finish(w)?;
    Ok(changed)
}

/// Pending events, and the index keys found stale (the event gone or already
/// ingested), as `(table is delayed, key)`.
pub type Pending = (Vec<(String, Event)>, Vec<(bool, Vec<u8>)>);

/// Events due for matching, oldest first, and the stale index keys met on the way.
pub fn pending(r: &dyn KvRead, now: i64, limit: usize) -> StoreResult<Pending> {
    let mut out = Vec::new();
    let mut stale = Vec::new();
    let mut visit = |delayed: bool, k: &[u8], tenant: String, id: String| -> StoreResult<()> {
        let ek = key(&[tenant.as_bytes(), id.as_bytes()]);
        match get_json::<StoredEvent>(r, EVENTS, &ek)? {
            Some(se) if !se.ingested => out.push((tenant, se.event)),
            _ => stale.push((delayed, k.to_vec())),
        }
        Ok(())
    };
    let end = ((now.max(0) as u64) + 1).to_be_bytes();
    let mut n = 0;
    r.scan(
        DELAYED,
        Bound::Unbounded,
        Bound::Excluded(&end),
        false,
        &mut |k, _| {
            let (tenant, id) = split2(k.get(8..).unwrap_or_default());
            visit(true, k, tenant, id)?;
            n += 1;
            Ok(n < limit)
        },
    )?;
    let rest = limit.saturating_sub(n);
    let mut m = 0;
    if rest > 0 {
        r.scan(
            INBOX,
            Bound::Unbounded,
            Bound::Unbounded,
            false,
            &mut |k, _| {
                let (id, tenant) = split2(k);
                visit(false, k, tenant, id)?;
                m += 1;
                Ok(m < rest)
            },
        )?;
    }
    Ok((out, stale))
}

/// Drops stale inbox and delayed keys (housekeeping).
pub fn drop_stale(w: &mut dyn KvWrite, stale: &[(bool, Vec<u8>)]) -> StoreResult<bool> {
    for (delayed, k) in stale {
        w.del(if *delayed { DELAYED } else { INBOX }, k)?;
    }
    Ok(!stale.is_empty())
}

/// The earliest `ts` among held-back events.
pub fn next_delayed(r: &dyn KvRead) -> StoreResult<Option<i64>> {
    let mut first = None;
    r.scan(
        DELAYED,
        Bound::Unbounded,
        Bound::Unbounded,
        false,
        &mut |k, _| {
            first = k.get(..8).and_then(be_u64).map(|t| t as i64);
            Ok(false)
        },
    )?;
    Ok(first)
}

/// Events of a tenant, newest first, optionally of one name.
pub fn list(
    r: &dyn KvRead,
    tenant: &str,
    name: Option<&str>,
    limit: usize,
    cursor: Option<&str>,
) -> StoreResult<Page<StoredEvent>> {
    let mut data = Vec::new();
    scan_below(
        r,
        EVENTS,
        &prefix(&[tenant.as_bytes()]),
        cursor,
        &mut |k, v| {
            let ev: StoredEvent = dec(k, v)?;
            if name.is_none_or(|n| n == ev.event.name) {
                data.push(ev);
            }
            Ok(data.len() <= limit)
        },
    )?;
    Ok(Page::from_overfull(data, limit, |e| e.event.id.clone()))
}
