//! The ready queue in the embedded layout: one key range per tenant in due order, a
//! heads index so that a tenant without room costs one key, and the durable claim
//! markers that let a restart count the attempts a stop cut short.

use std::collections::BTreeSet;
use std::ops::Bound;

use super::kv::{first_under, scan_prefix, KvRead, KvWrite};
use super::schema::*;
use crate::run::QueueEntry;
use crate::store::StoreResult;

/// A write transaction's queue changes: each tenant touched has its head (earliest due)
/// refreshed once, in [`QueueTx::finish`].
#[derive(Default)]
pub struct QueueTx {
    touched: BTreeSet<String>,
}

impl QueueTx {
    /// Queues `q`.
    pub fn put(&mut self, w: &mut (impl KvWrite + ?Sized), q: &QueueEntry) -> StoreResult<()> {
        w.put(QUEUE, &queue_key(q), &[])?;
        self.touch(&q.tenant);
        Ok(())
    }

    /// Removes `q`; whether it was queued.
    pub fn del(&mut self, w: &mut (impl KvWrite + ?Sized), q: &QueueEntry) -> StoreResult<bool> {
        let removed = w.del(QUEUE, &queue_key(q))?;
        if removed {
            self.touch(&q.tenant);
        }
        Ok(removed)
    }

    fn touch(&mut self, tenant: &str) {
        if !self.touched.contains(tenant) {
            self.touched.insert(tenant.to_string());
        }
    }

    /// Moves each touched tenant's entry in the heads index to its earliest due time
    /// (or removes it if the tenant has nothing queued any more).
    pub fn finish(self, w: &mut (impl KvWrite + ?Sized)) -> StoreResult<()> {
        for t in &self.touched {
            let first = match first_under(w, QUEUE, &prefix(&[t.as_bytes()]))? {
                Some(k) => Some(parse_queue_key(&k)?.due),
                None => None,
            };
            let old = w
                .get(QUEUE_HEAD_OF, t.as_bytes())?
                .and_then(|v| be_u64(&v))
                .map(|d| d as i64);
            if old == first {
                continue;
            }
            if let Some(o) = old {
                w.del(QUEUE_HEADS, &head_key(o, t))?;
            }
            match first {
                Some(d) => {
                    w.put(QUEUE_HEADS, &head_key(d, t), &[])?;
                    w.put(
                        QUEUE_HEAD_OF,
                        t.as_bytes(),
                        &(d.max(0) as u64).to_be_bytes(),
                    )?;
                }
                None => {
                    w.del(QUEUE_HEAD_OF, t.as_bytes())?;
                }
            }
        }
        Ok(())
    }
}

/// Moves a queue kept in the old due-first layout into the per-tenant one (claim
/// markers with it); whether there was anything to move.
pub fn migrate_legacy(w: &mut dyn KvWrite) -> StoreResult<bool> {
    let mut entries = Vec::new();
    w.scan(
        QUEUE_LEGACY,
        Bound::Unbounded,
        Bound::Unbounded,
        false,
        &mut |k, v| {
            entries.push((parse_legacy_queue_key(k)?, v.to_vec()));
            Ok(true)
        },
    )?;
    if entries.is_empty() {
        return Ok(false);
    }
    let mut q = QueueTx::default();
    for (e, marker) in &entries {
        q.put(w, e)?;
        if !marker.is_empty() {
            w.put(QUEUE, &queue_key(e), marker)?;
        }
        w.del(QUEUE_LEGACY, &legacy_queue_key(e))?;
    }
    q.finish(w)?;
    Ok(true)
}

/// Every entry with a claim marker: `(entry, start of the attempt)`.
pub fn claim_markers(r: &dyn KvRead) -> StoreResult<Vec<(QueueEntry, i64)>> {
    let mut out = Vec::new();
    r.scan(
        QUEUE,
        Bound::Unbounded,
        Bound::Unbounded,
        false,
        &mut |k, v| {
            if let Some(t) = be_u64(v) {
                out.push((parse_queue_key(k)?, t as i64));
            }
            Ok(true)
        },
    )?;
    Ok(out)
}

/// Sets (`Some(start)`) or clears (`None`) the claim markers of entries still queued.
pub fn set_markers(w: &mut dyn KvWrite, marks: &[(QueueEntry, Option<i64>)]) -> StoreResult<bool> {
    let mut changed = false;
    for (q, started) in marks {
        let k = queue_key(q);
        if let Some(cur) = w.get(QUEUE, &k)? {
            let want: Vec<u8> = started
                .map(|s| (s.max(0) as u64).to_be_bytes().to_vec())
                .unwrap_or_default();
            if cur != want {
                w.put(QUEUE, &k, &want)?;
                changed = true;
            }
        }
    }
    Ok(changed)
}

/// The tenants with entries due by `now`, oldest head first.
pub fn due_tenants(r: &dyn KvRead, now: i64) -> StoreResult<Vec<String>> {
    let end = ((now.max(0) as u64) + 1).to_be_bytes();
    let mut out = Vec::new();
    r.scan(
        QUEUE_HEADS,
        Bound::Unbounded,
        Bound::Excluded(&end),
        false,
        &mut |k, _| {
            out.push(parse_head_key(k)?.1);
            Ok(true)
        },
    )?;
    Ok(out)
}

/// Visits `tenant`'s entries due by `now` above `after`, earliest first, until `f`
/// returns false; returns the key of the last one visited.
pub fn scan_due(
    r: &dyn KvRead,
    tenant: &str,
    now: i64,
    after: Option<&[u8]>,
    f: &mut dyn FnMut(QueueEntry) -> bool,
) -> StoreResult<Option<Vec<u8>>> {
    let mut last = None;
    scan_prefix(
        r,
        QUEUE,
        &prefix(&[tenant.as_bytes()]),
        after,
        &mut |k, _| {
            let e = parse_queue_key(k)?;
            if e.due > now {
                return Ok(false);
            }
            last = Some(k.to_vec());
            Ok(f(e))
        },
    )?;
    Ok(last)
}

/// Every tenant with queued entries, with its head's due time, earliest first.
pub fn heads(r: &dyn KvRead) -> StoreResult<Vec<(i64, String)>> {
    let mut out = Vec::new();
    r.scan(
        QUEUE_HEADS,
        Bound::Unbounded,
        Bound::Unbounded,
        false,
        &mut |k, _| {
            out.push(parse_head_key(k)?);
            Ok(true)
        },
    )?;
    Ok(out)
}
