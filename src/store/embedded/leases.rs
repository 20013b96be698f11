//! Leases in the embedded backends. One process owns a data directory (the file lock),
//! so the leases of its live steps are kept in memory, with their per-tenant counts and
//! fencing tokens; what must survive a crash — that an attempt had started — is the
//! durable claim marker on the queue entry. At open, every marker left by the previous
//! process becomes an expired lease, so the first claim takes it over and the engine
//! counts the attempt that was cut short.

use std::collections::HashMap;
use std::sync::Mutex;

use super::kv::KvRead;
use super::queue;
use crate::run::QueueEntry;
use crate::store::{fair_share, ClaimRequest, Lease, LeaseRef, StoreResult, TenantCaps};

#[derive(Debug, Clone)]
struct Held {
    token: u64,
    owner: String,
    claimed_at: i64,
    expires_at: i64,
    /// A write removed the entry while it was held.
    removed: bool,
}

#[derive(Default)]
struct Table {
    /// The last fencing token given.
    seq: u64,
    by_entry: HashMap<QueueEntry, Held>,
    by_tenant: HashMap<String, u64>,
}

impl Table {
    fn give(&mut self, entry: &QueueEntry, req: &ClaimRequest, took_over: Option<i64>) -> Lease {
        self.seq += 1;
        let held = Held {
            token: self.seq,
            owner: req.owner.clone(),
            claimed_at: req.now,
            expires_at: req.now + req.lease_ms,
            removed: false,
        };
        if self.by_entry.insert(entry.clone(), held.clone()).is_none() {
            *self.by_tenant.entry(entry.tenant.clone()).or_default() += 1;
        }
        lease(entry, &held, took_over)
    }

    fn remove(&mut self, entry: &QueueEntry) {
        if self.by_entry.remove(entry).is_some() {
            if let Some(n) = self.by_tenant.get_mut(&entry.tenant) {
                *n = n.saturating_sub(1);
            }
        }
    }

    fn room(&self, tenant: &str, caps: &TenantCaps) -> u64 {
        caps.of(tenant)
            .saturating_sub(self.by_tenant.get(tenant).copied().unwrap_or(0))
    }
}

fn lease(entry: &QueueEntry, h: &Held, took_over: Option<i64>) -> Lease {
    Lease {
        entry: entry.clone(),
        token: h.token,
        owner: h.owner.clone(),
        claimed_at: h.claimed_at,
        expires_at: h.expires_at,
        took_over,
    }
}

/// The live leases of one embedded store.
#[derive(Default)]
pub struct Leases {
    inner: Mutex<Table>,
    /// Claims given whose markers are not on disk yet.
    unflushed: std::sync::atomic::AtomicU64,
}

impl Leases {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Leases left by a stopped process: expired already, to be taken over.
    pub fn adopt_markers(&self, markers: Vec<(QueueEntry, i64)>) {
        let mut t = self.lock();
        for (entry, started) in markers {
            let held = Held {
                token: 0,
                owner: String::new(),
                claimed_at: started,
                expires_at: i64::MIN,
                removed: false,
            };
            if t.by_entry.insert(entry.clone(), held).is_none() {
                *t.by_tenant.entry(entry.tenant).or_default() += 1;
            }
        }
    }

    /// Claims for `req` (see [`crate::store::RunStore::claim`]), reading the queue in `r`.
    pub fn claim(&self, r: &dyn KvRead, req: &ClaimRequest) -> StoreResult<Vec<Lease>> {
        let mut t = self.lock();
        let mut out = Vec::new();
        let mut expired: Vec<(QueueEntry, i64)> = t
            .by_entry
            .iter()
            .filter(|(_, h)| h.expires_at <= req.now)
            .map(|(e, h)| (e.clone(), h.claimed_at))
            .collect();
        expired.sort();
        for (entry, started) in expired.into_iter().take(req.limit) {
            out.push(t.give(&entry, req, Some(started)));
        }

        // The tenants with work due and room to run it; a tenant with no room costs one
        // key, however deep its backlog. The tenants holding the fewest leases (the most
        // room) first, oldest head among equals; then a fair share each before any gets
        // more, so that a tenant whose old runs are resuming cannot crowd out the others.
        let mut tenants: Vec<(String, u64)> = queue::due_tenants(r, req.now)?
            .into_iter()
            .map(|tenant| {
                let room = t.room(&tenant, &req.caps);
                (tenant, room)
            })
            .filter(|(_, room)| *room > 0)
            .collect();
        tenants.sort_by_key(|x| std::cmp::Reverse(x.1));
        let share = fair_share(req.limit.saturating_sub(out.len()), tenants.len()) as u64;
        let mut taken = vec![0u64; tenants.len()];
        let mut after: Vec<Option<Vec<u8>>> = vec![None; tenants.len()];
        for first_pass in [true, false] {
            for (i, (tenant, room)) in tenants.iter().enumerate() {
                let cap = if first_pass { share.min(*room) } else { *room };
                if out.len() >= req.limit || taken[i] >= cap {
                    continue;
                }
                let mut picked = Vec::new();
                let limit_left = req.limit - out.len();
                let last = queue::scan_due(r, tenant, req.now, after[i].as_deref(), &mut |e| {
                    if !t.by_entry.contains_key(&e) {
                        picked.push(e);
                    }
                    (taken[i] + picked.len() as u64) < cap && picked.len() < limit_left
                })?;
                if last.is_some() {
                    after[i] = last;
                }
                for e in picked {
                    taken[i] += 1;
                    out.push(t.give(&e, req, None));
                }
            }
        }
        // Counted before the lock is released, so that whoever sees a claim sees it
        // counted until its marker is durable.
        self.unflushed
            .fetch_add(out.len() as u64, std::sync::atomic::Ordering::SeqCst);
        Ok(out)
    }

    /// `n` claim markers are on disk now.
    pub fn flushed(&self, n: u64) {
        let _ = self.unflushed.fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |u| Some(u.saturating_sub(n)),
        );
    }

    /// Claims whose markers are not on disk yet.
    pub fn unflushed(&self) -> u64 {
        self.unflushed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether `l` is still held; if so it is kept from expiring for `lease_ms` more.
    pub fn check(&self, l: &LeaseRef, now: i64, lease_ms: i64) -> bool {
        let mut t = self.lock();
        match t.by_entry.get_mut(&l.entry) {
            Some(h) if h.token == l.token => {
                h.expires_at = h.expires_at.max(now + lease_ms);
                true
            }
            _ => false,
        }
    }

    /// Drops `l` if it is still held; whether it was.
    pub fn release(&self, l: &LeaseRef) -> bool {
        let mut t = self.lock();
        if t.by_entry.get(&l.entry).is_some_and(|h| h.token == l.token) {
            t.remove(&l.entry);
            return true;
        }
        false
    }

    /// Extends the leases still held to `until`; whether each one's step should go on
    /// (held, and its entry not removed meanwhile).
    pub fn renew(&self, leases: &[LeaseRef], until: i64) -> Vec<bool> {
        let mut t = self.lock();
        leases
            .iter()
            .map(|l| match t.by_entry.get_mut(&l.entry) {
                Some(h) if h.token == l.token => {
                    h.expires_at = h.expires_at.max(until);
                    !h.removed
                }
                _ => false,
            })
            .collect()
    }

    /// Notes that a write removed these entries; those held stay held until their holder
    /// writes or releases them.
    pub fn removed(&self, entries: &[QueueEntry]) {
        let mut t = self.lock();
        for e in entries {
            if let Some(h) = t.by_entry.get_mut(e) {
                h.removed = true;
            }
        }
    }

    /// The live leases on `entries`.
    pub fn of(&self, entries: &[QueueEntry]) -> Vec<Option<Lease>> {
        let t = self.lock();
        entries
            .iter()
            .map(|e| t.by_entry.get(e).map(|h| lease(e, h, None)))
            .collect()
    }

    /// How many leases `tenant` holds.
    pub fn count(&self, tenant: &str) -> u64 {
        self.lock().by_tenant.get(tenant).copied().unwrap_or(0)
    }

    /// The earliest expiry of a lease, if any.
    pub fn next_expiry(&self) -> Option<i64> {
        self.lock().by_entry.values().map(|h| h.expires_at).min()
    }

    /// The room of `tenant` under `caps`.
    pub fn room(&self, tenant: &str, caps: &TenantCaps) -> u64 {
        self.lock().room(tenant, caps)
    }

    /// Whether `e` is leased now.
    pub fn is_leased(&self, e: &QueueEntry) -> bool {
        self.lock().by_entry.contains_key(e)
    }
}
