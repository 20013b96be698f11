//! Events in the embedded layout: appends with idempotency keys, the inbox and the
//! delayed set that trigger matching drains, and ingestion into runs.

use std::collections::BTreeMap;
use std::ops::Bound;

use serde::Serialize;

use super::kv::{prefix_end, scan_below, scan_prefix, KvRead, KvWrite};
use super::queue::QueueTx;
use super::runs::add_waits;
use super::schema::*;
use super::users;
use crate::event::Event;
use crate::store::{fair_share, EventFilter, Ingested, Page, StoreResult, StoredEvent};

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
                w.put(INBOX, &key(&[tenant.as_bytes(), ev.id.as_bytes()]), &[])?;
            }
        }
        out.push(duplicate_of);
    }
    users::on_append(w, tenant, events, now)?;
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
            put_new_run(w, &mut queue, tenant, run, change)?;
            stored.run_ids.push(run.id.clone());
        }
        w.del(INBOX, &key(&[tenant.as_bytes(), event_id.as_bytes()]))?;
        w.del(DELAYED, &delayed_key(tenant, event_id, stored.event.ts))?;
        w.put(EVENTS, &ek, &enc(&stored)?)?;
    }
    queue.finish(w)?;
    Ok(changed)
}

/// Writes a new run with its indexes and counts, its queue entries (through `queue`,
/// finished by the caller) and its waits (only the additions of `change` apply).
pub fn put_new_run(
    w: &mut dyn KvWrite,
    queue: &mut QueueTx,
    tenant: &str,
    run: &crate::run::Run,
    change: &crate::store::RunChange,
) -> StoreResult<()> {
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
    // The value is the run's function: listing a function's runs in one status then
    // needs no run decoded that is not shown.
    w.put(
        RUNS_BY_STATUS,
        &status_key(tenant, run.status, &run.id),
        run.function_id.as_bytes(),
    )?;
    for q in &change.enqueue {
        queue.put(w, q)?;
    }
    add_waits(w, &change.waits_add)?;
    users::on_run_created(w, tenant, run)
}

/// Pending events, and the index keys found stale (the event gone or already
/// ingested), as `(table is delayed, key)`.
pub type Pending = (Vec<(String, Event)>, Vec<(bool, Vec<u8>)>);

/// Events due for matching and the stale index keys met on the way: future-dated
/// events whose time has come first, then each tenant's inbox in turn, a fair share of
/// `limit` each (oldest first within a tenant), skipping the tenants in `skip`.
pub fn pending(r: &dyn KvRead, now: i64, limit: usize, skip: &[String]) -> StoreResult<Pending> {
    let mut out = Vec::new();
    let mut stale = Vec::new();
    let mut visit = |delayed: bool, k: &[u8], tenant: String, id: String| -> StoreResult<bool> {
        let ek = key(&[tenant.as_bytes(), id.as_bytes()]);
        match get_json::<StoredEvent>(r, EVENTS, &ek)? {
            Some(se) if !se.ingested => {
                out.push((tenant, se.event));
                Ok(true)
            }
            _ => {
                stale.push((delayed, k.to_vec()));
                Ok(false)
            }
        }
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
            if !skip.contains(&tenant) && visit(true, k, tenant, id)? {
                n += 1;
            }
            Ok(n < limit)
        },
    )?;
    // A fair share each first, then what is left of `limit` to whoever has more.
    let tenants = inbox_tenants(r, skip)?;
    let share = fair_share(limit.saturating_sub(n), tenants.len());
    let mut after: Vec<Option<Vec<u8>>> = vec![None; tenants.len()];
    for first_pass in [true, false] {
        for (i, tenant) in tenants.iter().enumerate() {
            if n >= limit {
                break;
            }
            let mut taken = 0;
            let pfx = prefix(&[tenant.as_bytes()]);
            let from = after[i].take();
            let mut last = None;
            scan_prefix(r, INBOX, &pfx, from.as_deref(), &mut |k, _| {
                last = Some(k.to_vec());
                let (t, id) = split2(k);
                if visit(false, k, t, id)? {
                    taken += 1;
                    n += 1;
                }
                Ok((!first_pass || taken < share) && n < limit)
            })?;
            after[i] = last.or(from);
        }
    }
    Ok((out, stale))
}

/// The tenants with events in their inbox, but those in `skip`: one seek per tenant.
fn inbox_tenants(r: &dyn KvRead, skip: &[String]) -> StoreResult<Vec<String>> {
    let mut out = Vec::new();
    let mut from: Option<Vec<u8>> = None;
    loop {
        let lo = match &from {
            Some(f) => Bound::Included(f.as_slice()),
            None => Bound::Unbounded,
        };
        let mut next = None;
        r.scan(INBOX, lo, Bound::Unbounded, false, &mut |k, _| {
            next = Some(split2(k).0);
            Ok(false)
        })?;
        let Some(tenant) = next else {
            return Ok(out);
        };
        let pfx = prefix(&[tenant.as_bytes()]);
        match prefix_end(&pfx) {
            Some(e) => from = Some(e),
            None => {
                if !skip.contains(&tenant) {
                    out.push(tenant);
                }
                return Ok(out);
            }
        }
        if !skip.contains(&tenant) {
            out.push(tenant);
        }
    }
}

/// Moves an inbox kept in the old (id, tenant) layout into the per-tenant one; whether
/// there was anything to move.
pub fn migrate_legacy_inbox(w: &mut dyn KvWrite) -> StoreResult<bool> {
    let mut keys = Vec::new();
    w.scan(
        INBOX_LEGACY,
        Bound::Unbounded,
        Bound::Unbounded,
        false,
        &mut |k, _| {
            keys.push(k.to_vec());
            Ok(true)
        },
    )?;
    for k in &keys {
        let (id, tenant) = split2(k);
        w.put(INBOX, &key(&[tenant.as_bytes(), id.as_bytes()]), &[])?;
        w.del(INBOX_LEGACY, k)?;
    }
    Ok(!keys.is_empty())
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

/// Events of a tenant that pass `filter`, newest first.
pub fn list(
    r: &dyn KvRead,
    tenant: &str,
    filter: &EventFilter,
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
            if filter.matches(&ev.event) {
                data.push(ev);
            }
            Ok(data.len() <= limit)
        },
    )?;
    Ok(Page::from_overfull(data, limit, |e| e.event.id.clone()))
}
