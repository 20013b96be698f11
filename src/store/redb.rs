//! The embedded backend on redb: one table per record kind (the same byte keys as the sled
//! backend), one write transaction per state transition, and fsynced (`Immediate`) commits
//! for durable acknowledgements.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use redb::{
    backends::InMemoryBackend, Database, ReadTransaction, ReadableDatabase, ReadableTable, Table,
    TableDefinition, WriteTransaction,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::keys::{
    check_name, head_key, key, parse_head_key, parse_queue_key, parse_tenant_queue_key,
    parse_wait_key, prefix, queue_key, tenant_queue_key, wait_key,
};
use super::RunOp;
use super::{
    Durability, EventBatch, FunctionRecord, Ingested, Page, RunChange, RunFilter, RunUpdate, Store,
    StoreError, StoreResult, StoredEvent,
};
use crate::event::Event;
use crate::run::{QueueEntry, Run, RunStatus, WaitKey};

type Bytes = &'static [u8];
type Def = TableDefinition<'static, Bytes, Bytes>;
type Guard<'a> = redb::AccessGuard<'a, Bytes>;

const EVENTS: Def = TableDefinition::new("events");
const IDEM: Def = TableDefinition::new("idem");
const INBOX: Def = TableDefinition::new("inbox");
const DELAYED: Def = TableDefinition::new("delayed");
const FUNCTIONS: Def = TableDefinition::new("functions");
const FN_LATEST: Def = TableDefinition::new("fn_latest");
const COMPONENTS: Def = TableDefinition::new("components");
const ARTIFACTS: Def = TableDefinition::new("artifacts");
const RUNS: Def = TableDefinition::new("runs");
const RUNS_BY_FN: Def = TableDefinition::new("runs_by_fn");
const RUNS_BY_USER: Def = TableDefinition::new("runs_by_user");
const RUNS_BY_STATUS: Def = TableDefinition::new("runs_by_status");
const COUNTS: Def = TableDefinition::new("counts");
/// The queue as it was before per-tenant queues (due first); emptied into `QUEUE_T` on open.
const QUEUE: Def = TableDefinition::new("queue");
/// Queue entries per tenant, in due order (`tenant_queue_key`).
const QUEUE_T: Def = TableDefinition::new("queue_by_tenant");
/// Each tenant with queued entries under its earliest due time (`head_key`).
const QUEUE_HEADS: Def = TableDefinition::new("queue_heads");
/// Each tenant's current head due time (big-endian), to find its `QUEUE_HEADS` key.
const QUEUE_HEAD_OF: Def = TableDefinition::new("queue_head_of");
const WAITS: Def = TableDefinition::new("waits");
const WAIT_PATHS: Def = TableDefinition::new("wait_paths");
const META: Def = TableDefinition::new("meta");

const ALL_TABLES: [Def; 20] = [
    EVENTS,
    IDEM,
    INBOX,
    DELAYED,
    FUNCTIONS,
    FN_LATEST,
    COMPONENTS,
    ARTIFACTS,
    RUNS,
    RUNS_BY_FN,
    RUNS_BY_USER,
    RUNS_BY_STATUS,
    COUNTS,
    QUEUE,
    QUEUE_T,
    QUEUE_HEADS,
    QUEUE_HEAD_OF,
    WAITS,
    WAIT_PATHS,
    META,
];

/// redb's page cache (its default is 1 GiB).
const CACHE_BYTES: usize = 128 << 20;

/// Fsynced before the commit returns.
const DURABLE: redb::Durability = redb::Durability::Immediate;
/// Atomic and visible at once, but only made durable by a later `DURABLE` commit (or a
/// clean close); a crash rolls back to the last durable commit.
const LAZY: redb::Durability = redb::Durability::None;

fn level(d: Durability) -> redb::Durability {
    match d {
        Durability::Durable => DURABLE,
        Durability::Lazy => LAZY,
    }
}

/// A write transaction's queue changes: entries go to the per-tenant queue, and each
/// tenant touched has its head (earliest due) refreshed once, in [`QueueTx::finish`].
struct QueueTx<'tx> {
    queue: Table<'tx, Bytes, Bytes>,
    touched: BTreeSet<String>,
}

impl<'tx> QueueTx<'tx> {
    fn open(tx: &'tx WriteTransaction) -> StoreResult<Self> {
        Ok(Self {
            queue: open(tx, QUEUE_T)?,
            touched: BTreeSet::new(),
        })
    }

    fn put(&mut self, q: &QueueEntry) -> StoreResult<()> {
        put(&mut self.queue, &tenant_queue_key(q), &[])?;
        self.touch(&q.tenant);
        Ok(())
    }

    fn del(&mut self, q: &QueueEntry) -> StoreResult<bool> {
        let removed = del(&mut self.queue, &tenant_queue_key(q))?;
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
    fn finish(self, tx: &WriteTransaction) -> StoreResult<()> {
        if self.touched.is_empty() {
            return Ok(());
        }
        let mut heads = open(tx, QUEUE_HEADS)?;
        let mut head_of = open(tx, QUEUE_HEAD_OF)?;
        for t in &self.touched {
            let first = match scan_prefix(&self.queue, &prefix(&[t.as_bytes()]))?.next() {
                Some(e) => Some(parse_tenant_queue_key(item(e)?.0.value())?.due),
                None => None,
            };
            let old = get_bytes(&head_of, t.as_bytes())?
                .and_then(|v| v.try_into().ok().map(|b| u64::from_be_bytes(b) as i64));
            if old == first {
                continue;
            }
            if let Some(o) = old {
                del(&mut heads, &head_key(o, t))?;
            }
            match first {
                Some(d) => {
                    put(&mut heads, &head_key(d, t), &[])?;
                    put(&mut head_of, t.as_bytes(), &(d.max(0) as u64).to_be_bytes())?;
                }
                None => {
                    del(&mut head_of, t.as_bytes())?;
                }
            }
        }
        Ok(())
    }
}

/// Moves a queue kept in the old due-first layout into the per-tenant one.
fn migrate_queue(tx: &WriteTransaction) -> StoreResult<bool> {
    let mut old = open(tx, QUEUE)?;
    let entries = old
        .iter()
        .map_err(backend)?
        .map(|e| parse_queue_key(item(e)?.0.value()))
        .collect::<StoreResult<Vec<_>>>()?;
    if entries.is_empty() {
        return Ok(false);
    }
    let mut q = QueueTx::open(tx)?;
    for e in &entries {
        q.put(e)?;
        del(&mut old, &queue_key(e))?;
    }
    q.finish(tx)?;
    Ok(true)
}

/// One run's read-modify-write inside a write transaction; the bool says if it changed.
fn update_in(
    tx: &WriteTransaction,
    queue: &mut QueueTx<'_>,
    tenant: &str,
    id: &str,
    update: &mut RunUpdate<'_>,
) -> StoreResult<(Option<Run>, bool)> {
    let mut runs = open(tx, RUNS)?;
    let rk = key(&[tenant.as_bytes(), id.as_bytes()]);
    let Some(mut run) = get_json::<Run>(&runs, &rk)? else {
        return Ok((None, false));
    };
    let before = run.status;
    let Some(RunChange {
        dequeue,
        enqueue,
        waits_add,
        waits_remove,
    }) = update(&mut run)
    else {
        return Ok((Some(run), false));
    };
    put(&mut runs, &rk, &enc(&run)?)?;
    if before != run.status {
        let mut counts = open(tx, COUNTS)?;
        counter_add(
            &mut counts,
            &count_key(tenant, &run.function_id, before),
            -1,
        )?;
        counter_add(
            &mut counts,
            &count_key(tenant, &run.function_id, run.status),
            1,
        )?;
        let mut by_status = open(tx, RUNS_BY_STATUS)?;
        del(&mut by_status, &status_key(tenant, before, id))?;
        put(&mut by_status, &status_key(tenant, run.status, id), &[])?;
    }
    for q in &dequeue {
        queue.del(q)?;
    }
    for q in &enqueue {
        queue.put(q)?;
    }
    let mut waits = open(tx, WAITS)?;
    let mut paths = open(tx, WAIT_PATHS)?;
    apply_waits(&mut waits, &mut paths, &waits_add, &waits_remove)?;
    Ok((Some(run), true))
}

/// Appends one tenant's events inside `tx` (see [`Store::append_events`]).
fn append_in(
    tx: &WriteTransaction,
    tenant: &str,
    events: &[Event],
    now: i64,
) -> StoreResult<Vec<Option<String>>> {
    check_name("tenant", tenant)?;
    let mut evt = open(tx, EVENTS)?;
    let mut idem = open(tx, IDEM)?;
    let mut inbox = open(tx, INBOX)?;
    let mut delayed = open(tx, DELAYED)?;
    let mut out = Vec::with_capacity(events.len());
    // Keys repeated inside one batch also count as duplicates.
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for ev in events {
        let mut duplicate_of = None;
        if let Some(k) = &ev.idempotency_key {
            let ik = key(&[tenant.as_bytes(), k.as_bytes()]);
            if let Some(first) = seen.get(k.as_str()) {
                duplicate_of = Some(first.to_string());
            } else if let Some(prev) = get_bytes(&idem, &ik)? {
                duplicate_of = Some(String::from_utf8_lossy(&prev).into_owned());
            } else {
                put(&mut idem, &ik, ev.id.as_bytes())?;
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
        put(
            &mut evt,
            &key(&[tenant.as_bytes(), ev.id.as_bytes()]),
            &enc(&stored)?,
        )?;
        if duplicate_of.is_none() {
            if ev.ts > now {
                put(&mut delayed, &delayed_key(tenant, ev), &[])?;
            } else {
                put(
                    &mut inbox,
                    &key(&[ev.id.as_bytes(), tenant.as_bytes()]),
                    &[],
                )?;
            }
        }
        out.push(duplicate_of);
    }
    Ok(out)
}

/// The redb-backed store.
pub struct RedbStore {
    db: Database,
    /// Commits made so far (all non-durable at first).
    commits: AtomicU64,
    /// The commit count covered by the last `Immediate` commit.
    flushed: Mutex<u64>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn enc<T: Serialize>(v: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(v).map_err(backend)
}

fn dec<T: DeserializeOwned>(k: &[u8], bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(k).into_owned(),
        reason: e.to_string(),
    })
}

fn get_json<T: DeserializeOwned>(
    t: &impl ReadableTable<Bytes, Bytes>,
    k: &[u8],
) -> StoreResult<Option<T>> {
    match t.get(k).map_err(backend)? {
        Some(v) => Ok(Some(dec(k, v.value())?)),
        None => Ok(None),
    }
}

fn get_bytes(t: &impl ReadableTable<Bytes, Bytes>, k: &[u8]) -> StoreResult<Option<Vec<u8>>> {
    Ok(t.get(k).map_err(backend)?.map(|v| v.value().to_vec()))
}

/// A big-endian counter; missing or malformed reads as 0 (as in the sled backend).
fn get_u64(t: &impl ReadableTable<Bytes, Bytes>, k: &[u8]) -> StoreResult<u64> {
    Ok(t.get(k)
        .map_err(backend)?
        .and_then(|v| v.value().try_into().ok().map(u64::from_be_bytes))
        .unwrap_or(0))
}

fn put(t: &mut Table<'_, Bytes, Bytes>, k: &[u8], v: &[u8]) -> StoreResult<()> {
    t.insert(k, v).map_err(backend)?;
    Ok(())
}

/// Removes `k`; returns whether it was there.
fn del(t: &mut Table<'_, Bytes, Bytes>, k: &[u8]) -> StoreResult<bool> {
    Ok(t.remove(k).map_err(backend)?.is_some())
}

fn counter_add(t: &mut Table<'_, Bytes, Bytes>, k: &[u8], delta: i64) -> StoreResult<()> {
    let cur = get_u64(t, k)?;
    let next = (cur as i64 + delta).max(0) as u64;
    put(t, k, &next.to_be_bytes())
}

fn delayed_key(tenant: &str, ev: &Event) -> Vec<u8> {
    let mut k = (ev.ts.max(0) as u64).to_be_bytes().to_vec();
    k.extend_from_slice(&key(&[tenant.as_bytes(), ev.id.as_bytes()]));
    k
}

/// Splits `a NUL b` into its two halves (lossily decoded), as the sled backend does.
fn split2(k: &[u8]) -> (String, String) {
    let mut parts = k.splitn(2, |b| *b == 0);
    let a = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let b = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    (a, b)
}

/// The smallest key above every key with this prefix: drop trailing 0xff bytes, then
/// increment the last one. `None` means the range is open-ended.
fn prefix_end(pfx: &[u8]) -> Option<Vec<u8>> {
    let mut end = pfx.to_vec();
    while end.last() == Some(&0xff) {
        end.pop();
    }
    let last = end.last_mut()?;
    *last += 1;
    Some(end)
}

/// Keys under `pfx`, ascending.
fn scan_prefix<'t>(
    t: &'t impl ReadableTable<Bytes, Bytes>,
    pfx: &[u8],
) -> StoreResult<redb::Range<'t, Bytes, Bytes>> {
    scan_prefix_after(t, pfx, None)
}

/// Keys under `pfx` above `after` (all of them if `None`), ascending.
fn scan_prefix_after<'t>(
    t: &'t impl ReadableTable<Bytes, Bytes>,
    pfx: &[u8],
    after: Option<&[u8]>,
) -> StoreResult<redb::Range<'t, Bytes, Bytes>> {
    let end = prefix_end(pfx);
    let lower = match after {
        Some(a) => Bound::Excluded(a),
        None => Bound::Included(pfx),
    };
    let upper = match &end {
        Some(e) => Bound::Excluded(e.as_slice()),
        None => Bound::Unbounded,
    };
    t.range::<&[u8]>((lower, upper)).map_err(backend)
}

/// Keys under `pfx`, ascending, ending strictly below `pfx + cursor` (iterate with `.rev()`
/// for newest first).
fn scan_below<'t>(
    t: &'t impl ReadableTable<Bytes, Bytes>,
    pfx: &[u8],
    cursor: Option<&str>,
) -> StoreResult<redb::Range<'t, Bytes, Bytes>> {
    let mut end = pfx.to_vec();
    match cursor {
        Some(c) => end.extend_from_slice(c.as_bytes()),
        None => end.push(0xff),
    }
    t.range::<&[u8]>(pfx..end.as_slice()).map_err(backend)
}

type Entry<'t> = (Guard<'t>, Guard<'t>);

fn item<'t>(r: Result<Entry<'t>, redb::StorageError>) -> StoreResult<Entry<'t>> {
    r.map_err(backend)
}

/// Adds and removes wait index entries, keeping the per-path counts that let an
/// incoming event find which paths to look up.
fn apply_waits(
    waits: &mut Table<'_, Bytes, Bytes>,
    paths: &mut Table<'_, Bytes, Bytes>,
    add: &[WaitKey],
    remove: &[WaitKey],
) -> StoreResult<()> {
    for w in remove {
        if del(waits, &wait_key(w))? {
            counter_add(
                paths,
                &key(&[w.tenant.as_bytes(), w.event.as_bytes(), w.path.as_bytes()]),
                -1,
            )?;
        }
    }
    for w in add {
        for (what, v) in [
            ("tenant", &w.tenant),
            ("event name", &w.event),
            ("path", &w.path),
        ] {
            check_name(what, v)?;
        }
        if waits
            .insert(wait_key(w).as_slice(), [].as_slice())
            .map_err(backend)?
            .is_none()
        {
            counter_add(
                paths,
                &key(&[w.tenant.as_bytes(), w.event.as_bytes(), w.path.as_bytes()]),
                1,
            )?;
        }
    }
    Ok(())
}

fn status_key(tenant: &str, status: RunStatus, run_id: &str) -> Vec<u8> {
    key(&[
        tenant.as_bytes(),
        status.as_str().as_bytes(),
        run_id.as_bytes(),
    ])
}

fn count_key(tenant: &str, function: &str, status: RunStatus) -> Vec<u8> {
    key(&[
        tenant.as_bytes(),
        function.as_bytes(),
        status.as_str().as_bytes(),
    ])
}

fn open<'tx>(tx: &'tx WriteTransaction, def: Def) -> StoreResult<Table<'tx, Bytes, Bytes>> {
    tx.open_table(def).map_err(backend)
}

fn open_ro(tx: &ReadTransaction, def: Def) -> StoreResult<redb::ReadOnlyTable<Bytes, Bytes>> {
    tx.open_table(def).map_err(backend)
}

impl RedbStore {
    /// Opens (or creates) a store in `dir` (the file `dir/weir.redb`).
    pub fn open(dir: &Path) -> StoreResult<Self> {
        std::fs::create_dir_all(dir).map_err(backend)?;
        // A bounded page cache keeps memory flat however many runs are parked on disk.
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(dir.join("weir.redb"))
            .map_err(backend)?;
        Self::with_db(db)
    }

    /// A throwaway store that lives in memory (for `weir run`).
    pub fn temporary() -> StoreResult<Self> {
        let db = Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .map_err(backend)?;
        Self::with_db(db)
    }

    fn with_db(db: Database) -> StoreResult<Self> {
        // Create every table up front, so that read transactions never meet a missing one.
        let tx = db.begin_write().map_err(backend)?;
        for def in ALL_TABLES {
            open(&tx, def)?;
        }
        migrate_queue(&tx)?;
        tx.commit().map_err(backend)?;
        Ok(Self {
            db,
            commits: AtomicU64::new(0),
            flushed: Mutex::new(0),
        })
    }

    fn read(&self) -> StoreResult<ReadTransaction> {
        self.db.begin_read().map_err(backend)
    }

    /// Runs `f` in one write transaction and commits it with `durability` if `f` reports a
    /// change (the bool); otherwise, or on an error, the transaction is aborted.
    fn write<T>(
        &self,
        durability: redb::Durability,
        f: impl FnOnce(&WriteTransaction) -> StoreResult<(T, bool)>,
    ) -> StoreResult<T> {
        // A durable change commits durably at once, which also makes every earlier
        // non-durable commit durable; the others commit non-durably and are made durable
        // by the next durable commit or `flush` (`barrier`). Commits are numbered inside
        // their transaction, which holds redb's write lock, so numbers follow commit order.
        let durable = matches!(durability, redb::Durability::Immediate);
        let mut tx = self.db.begin_write().map_err(backend)?;
        tx.set_durability(if durable { DURABLE } else { LAZY })
            .map_err(backend)?;
        // An early return drops `tx`, which aborts it.
        let (out, changed) = f(&tx)?;
        if changed {
            let seq = self.commits.fetch_add(1, Ordering::SeqCst) + 1;
            tx.commit().map_err(backend)?;
            if durable {
                let mut flushed = self.flushed.lock().unwrap_or_else(|p| p.into_inner());
                *flushed = (*flushed).max(seq);
            }
        } else {
            tx.abort().map_err(backend)?;
            // Nothing to write, but a durable call still promises that everything
            // committed before it is on disk (the writer acknowledges events on that).
            if durable {
                self.barrier(self.commits.load(Ordering::SeqCst))?;
            }
        }
        Ok(out)
    }

    /// Returns once commit number `seq` is durable, fsyncing unless another caller's
    /// `Immediate` commit already covered it.
    fn barrier(&self, seq: u64) -> StoreResult<()> {
        let mut flushed = self.flushed.lock().unwrap_or_else(|p| p.into_inner());
        if *flushed >= seq {
            return Ok(());
        }
        // Every commit numbered so far ends before this transaction can begin (redb's
        // write lock), so this durable commit covers them all.
        let target = self.commits.load(Ordering::SeqCst);
        let mut tx = self.db.begin_write().map_err(backend)?;
        tx.set_durability(DURABLE).map_err(backend)?;
        tx.commit().map_err(backend)?;
        *flushed = (*flushed).max(target);
        Ok(())
    }

    /// One value, in its own read transaction.
    fn get_one<T: DeserializeOwned>(&self, def: Def, k: &[u8]) -> StoreResult<Option<T>> {
        get_json(&open_ro(&self.read()?, def)?, k)
    }
}

impl Store for RedbStore {
    fn append_events(
        &self,
        tenant: &str,
        events: &[Event],
        now: i64,
    ) -> StoreResult<Vec<Option<String>>> {
        self.write(DURABLE, |tx| {
            Ok((append_in(tx, tenant, events, now)?, true))
        })
    }

    fn append_batches(
        &self,
        batches: &[EventBatch],
        durability: Durability,
    ) -> StoreResult<Vec<Vec<Option<String>>>> {
        self.write(level(durability), |tx| {
            let out = batches
                .iter()
                .map(|b| append_in(tx, &b.tenant, &b.events, b.now))
                .collect::<StoreResult<Vec<_>>>()?;
            Ok((out, true))
        })
    }

    fn get_event(&self, tenant: &str, id: &str) -> StoreResult<Option<StoredEvent>> {
        self.get_one(EVENTS, &key(&[tenant.as_bytes(), id.as_bytes()]))
    }

    fn list_events(
        &self,
        tenant: &str,
        name: Option<&str>,
        limit: usize,
        cursor: Option<&str>,
    ) -> StoreResult<Page<StoredEvent>> {
        let tx = self.read()?;
        let events = open_ro(&tx, EVENTS)?;
        let mut data = Vec::new();
        for entry in scan_below(&events, &prefix(&[tenant.as_bytes()]), cursor)?.rev() {
            let (k, v) = item(entry)?;
            let ev: StoredEvent = dec(k.value(), v.value())?;
            if name.is_some_and(|n| n != ev.event.name) {
                continue;
            }
            data.push(ev);
            if data.len() > limit {
                break;
            }
        }
        Ok(Page::from_overfull(data, limit, |e| e.event.id.clone()))
    }

    fn pending_events(&self, now: i64, limit: usize) -> StoreResult<Vec<(String, Event)>> {
        let mut out = Vec::new();
        // Index entries whose event is gone or already ingested; dropped afterwards.
        let mut stale_delayed = Vec::new();
        let mut stale_inbox = Vec::new();
        {
            let tx = self.read()?;
            let events = open_ro(&tx, EVENTS)?;
            let delayed = open_ro(&tx, DELAYED)?;
            let inbox = open_ro(&tx, INBOX)?;
            let end = ((now.max(0) as u64) + 1).to_be_bytes();
            for entry in delayed
                .range::<&[u8]>(..end.as_slice())
                .map_err(backend)?
                .take(limit)
            {
                let (k, _) = item(entry)?;
                let k = k.value();
                let (tenant, id) = split2(k.get(8..).unwrap_or_default());
                let ek = key(&[tenant.as_bytes(), id.as_bytes()]);
                match get_json::<StoredEvent>(&events, &ek)? {
                    Some(se) if !se.ingested => out.push((tenant, se.event)),
                    _ => stale_delayed.push(k.to_vec()),
                }
            }
            let rest = limit.saturating_sub(out.len());
            for entry in inbox.iter().map_err(backend)?.take(rest) {
                let (k, _) = item(entry)?;
                let k = k.value();
                let (id, tenant) = split2(k);
                let ek = key(&[tenant.as_bytes(), id.as_bytes()]);
                match get_json::<StoredEvent>(&events, &ek)? {
                    Some(se) if !se.ingested => out.push((tenant, se.event)),
                    _ => stale_inbox.push(k.to_vec()),
                }
            }
        }
        if !stale_delayed.is_empty() || !stale_inbox.is_empty() {
            // Housekeeping only (an ingested event never becomes pending again), so it
            // need not be durable at once.
            self.write(LAZY, |tx| {
                let mut delayed = open(tx, DELAYED)?;
                for k in &stale_delayed {
                    del(&mut delayed, k)?;
                }
                let mut inbox = open(tx, INBOX)?;
                for k in &stale_inbox {
                    del(&mut inbox, k)?;
                }
                Ok(((), true))
            })?;
        }
        Ok(out)
    }

    fn pending_count(&self) -> StoreResult<u64> {
        use redb::ReadableTableMetadata;
        let tx = self.read()?;
        let inbox = open_ro(&tx, INBOX)?.len().map_err(backend)?;
        let delayed = open_ro(&tx, DELAYED)?.len().map_err(backend)?;
        Ok(inbox + delayed)
    }

    fn next_delayed(&self) -> StoreResult<Option<i64>> {
        let tx = self.read()?;
        let delayed = open_ro(&tx, DELAYED)?;
        let first = delayed.first().map_err(backend)?;
        Ok(first.and_then(|(k, _)| {
            let k = k.value();
            k.get(..8)
                .and_then(|b| b.try_into().ok())
                .map(|b| u64::from_be_bytes(b) as i64)
        }))
    }

    fn commit_ingest(&self, batch: &[Ingested], durability: Durability) -> StoreResult<()> {
        self.write(level(durability), |tx| {
            let mut events = open(tx, EVENTS)?;
            let mut inbox = open(tx, INBOX)?;
            let mut run_t = open(tx, RUNS)?;
            let mut by_fn = open(tx, RUNS_BY_FN)?;
            let mut by_user = open(tx, RUNS_BY_USER)?;
            let mut by_status = open(tx, RUNS_BY_STATUS)?;
            let mut counts = open(tx, COUNTS)?;
            let mut queue = QueueTx::open(tx)?;
            let mut delayed = open(tx, DELAYED)?;
            let mut waits = open(tx, WAITS)?;
            let mut paths = open(tx, WAIT_PATHS)?;
            let mut changed = false;
            for Ingested {
                tenant,
                event_id,
                runs,
            } in batch
            {
                let ek = key(&[tenant.as_bytes(), event_id.as_bytes()]);
                let Some(mut stored) = get_json::<StoredEvent>(&events, &ek)? else {
                    continue;
                };
                if stored.ingested {
                    continue;
                }
                stored.ingested = true;
                changed = true;
                for (run, change) in runs {
                    let t_ = tenant.as_bytes();
                    let rid = run.id.as_bytes();
                    put(&mut run_t, &key(&[t_, rid]), &enc(run)?)?;
                    put(
                        &mut by_fn,
                        &key(&[t_, run.function_id.as_bytes(), rid]),
                        &[],
                    )?;
                    if let Some(u) = &run.user_id {
                        put(&mut by_user, &key(&[t_, u.as_bytes(), rid]), &[])?;
                    }
                    counter_add(
                        &mut counts,
                        &count_key(tenant, &run.function_id, run.status),
                        1,
                    )?;
                    put(
                        &mut by_status,
                        &status_key(tenant, run.status, &run.id),
                        &[],
                    )?;
                    for q in &change.enqueue {
                        queue.put(q)?;
                    }
                    apply_waits(&mut waits, &mut paths, &change.waits_add, &[])?;
                    stored.run_ids.push(run.id.clone());
                }
                del(&mut inbox, &key(&[event_id.as_bytes(), tenant.as_bytes()]))?;
                del(&mut delayed, &delayed_key(tenant, &stored.event))?;
                put(&mut events, &ek, &enc(&stored)?)?;
            }
            queue.finish(tx)?;
            Ok(((), changed))
        })
    }

    fn find_waits(
        &self,
        tenant: &str,
        event: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> StoreResult<Vec<WaitKey>> {
        let tx = self.read()?;
        let paths = open_ro(&tx, WAIT_PATHS)?;
        let waits = open_ro(&tx, WAITS)?;
        let mut out = Vec::new();
        for entry in scan_prefix(&paths, &prefix(&[tenant.as_bytes(), event.as_bytes()]))? {
            let (k, v) = item(entry)?;
            if v.value().try_into().map(u64::from_be_bytes).unwrap_or(0) == 0 {
                continue;
            }
            let path =
                String::from_utf8_lossy(k.value().rsplit(|b| *b == 0).next().unwrap_or_default())
                    .into_owned();
            let value = if path == "*" {
                "*".to_string()
            } else {
                match lookup(&path) {
                    Some(v) => v,
                    None => continue,
                }
            };
            let pfx = prefix(&[
                tenant.as_bytes(),
                event.as_bytes(),
                path.as_bytes(),
                value.as_bytes(),
            ]);
            for w in scan_prefix(&waits, &pfx)? {
                let (wk, _) = item(w)?;
                out.push(parse_wait_key(wk.value())?);
            }
        }
        Ok(out)
    }

    fn get_meta(&self, k: &str) -> StoreResult<Option<Vec<u8>>> {
        get_bytes(&open_ro(&self.read()?, META)?, k.as_bytes())
    }

    fn put_meta(&self, k: &str, value: &[u8]) -> StoreResult<()> {
        self.write(DURABLE, |tx| {
            put(&mut open(tx, META)?, k.as_bytes(), value)?;
            Ok(((), true))
        })
    }

    fn put_function(&self, tenant: &str, id: &str, def: &Value, now: i64) -> StoreResult<u64> {
        check_name("tenant", tenant)?;
        check_name("function id", id)?;
        self.write(DURABLE, |tx| {
            let mut functions = open(tx, FUNCTIONS)?;
            let mut latest_t = open(tx, FN_LATEST)?;
            let lk = key(&[tenant.as_bytes(), id.as_bytes()]);
            let version = get_u64(&latest_t, &lk)? + 1;
            let rec = FunctionRecord {
                id: id.into(),
                version,
                def: def.clone(),
                created_at: now,
            };
            put(
                &mut functions,
                &key(&[tenant.as_bytes(), id.as_bytes(), &version.to_be_bytes()]),
                &enc(&rec)?,
            )?;
            put(&mut latest_t, &lk, &version.to_be_bytes())?;
            Ok((version, true))
        })
    }

    fn get_function(
        &self,
        tenant: &str,
        id: &str,
        version: u64,
    ) -> StoreResult<Option<FunctionRecord>> {
        self.get_one(
            FUNCTIONS,
            &key(&[tenant.as_bytes(), id.as_bytes(), &version.to_be_bytes()]),
        )
    }

    fn function_versions(&self, tenant: &str, id: &str) -> StoreResult<Vec<FunctionRecord>> {
        let tx = self.read()?;
        let functions = open_ro(&tx, FUNCTIONS)?;
        let pfx = prefix(&[tenant.as_bytes(), id.as_bytes()]);
        let mut out = Vec::new();
        for entry in scan_prefix(&functions, &pfx)? {
            let (k, v) = item(entry)?;
            // The version is exactly 8 bytes after the prefix; longer ids sharing the
            // prefix are other functions.
            if k.value().len() == pfx.len() + 8 {
                out.push(dec(k.value(), v.value())?);
            }
        }
        Ok(out)
    }

    fn latest_functions(&self) -> StoreResult<Vec<(String, FunctionRecord)>> {
        let tx = self.read()?;
        let latest = open_ro(&tx, FN_LATEST)?;
        let functions = open_ro(&tx, FUNCTIONS)?;
        let mut out = Vec::new();
        for entry in latest.iter().map_err(backend)? {
            let (k, v) = item(entry)?;
            let k = k.value();
            let (tenant, id) = split2(k);
            let version =
                v.value()
                    .try_into()
                    .map(u64::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt {
                        key: String::from_utf8_lossy(k).into_owned(),
                        reason: "version is not 8 bytes".into(),
                    })?;
            let fk = key(&[tenant.as_bytes(), id.as_bytes(), &version.to_be_bytes()]);
            if let Some(rec) = get_json(&functions, &fk)? {
                out.push((tenant, rec));
            }
        }
        Ok(out)
    }

    fn run_counts(&self, tenant: &str, function_id: &str) -> StoreResult<BTreeMap<RunStatus, u64>> {
        let tx = self.read()?;
        let counts = open_ro(&tx, COUNTS)?;
        let mut out = BTreeMap::new();
        for st in RunStatus::ALL {
            out.insert(st, get_u64(&counts, &count_key(tenant, function_id, st))?);
        }
        Ok(out)
    }

    fn put_component(&self, tenant: &str, sha256: &str, bytes: &[u8]) -> StoreResult<()> {
        check_name("tenant", tenant)?;
        self.write(DURABLE, |tx| {
            let k = key(&[tenant.as_bytes(), sha256.as_bytes()]);
            put(&mut open(tx, COMPONENTS)?, &k, bytes)?;
            Ok(((), true))
        })
    }

    fn get_component(&self, tenant: &str, sha256: &str) -> StoreResult<Option<Vec<u8>>> {
        let k = key(&[tenant.as_bytes(), sha256.as_bytes()]);
        get_bytes(&open_ro(&self.read()?, COMPONENTS)?, &k)
    }

    fn put_artifact(&self, k: &str, bytes: &[u8]) -> StoreResult<()> {
        // Derived data: losing it in a crash only costs a recompile.
        self.write(LAZY, |tx| {
            put(&mut open(tx, ARTIFACTS)?, k.as_bytes(), bytes)?;
            Ok(((), true))
        })
    }

    fn get_artifact(&self, k: &str) -> StoreResult<Option<Vec<u8>>> {
        get_bytes(&open_ro(&self.read()?, ARTIFACTS)?, k.as_bytes())
    }

    fn get_run(&self, tenant: &str, id: &str) -> StoreResult<Option<Run>> {
        self.get_one(RUNS, &key(&[tenant.as_bytes(), id.as_bytes()]))
    }

    fn list_runs(
        &self,
        tenant: &str,
        filter: &RunFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> StoreResult<Page<Run>> {
        let limit = limit.max(1);
        let tx = self.read()?;
        let runs = open_ro(&tx, RUNS)?;
        let status_name = filter.status.map(|s| s.as_str().to_string());
        let get_run = |id: &str| -> StoreResult<Option<Run>> {
            get_json(&runs, &key(&[tenant.as_bytes(), id.as_bytes()]))
        };
        let mut data: Vec<Run> = Vec::new();
        let mut push = |run: Run| -> bool {
            if filter.matches(&run) {
                data.push(run);
            }
            data.len() > limit
        };
        if let Some(ev) = &filter.event {
            let events = open_ro(&tx, EVENTS)?;
            let ek = key(&[tenant.as_bytes(), ev.as_bytes()]);
            if let Some(se) = get_json::<StoredEvent>(&events, &ek)? {
                let mut ids = se.run_ids;
                ids.sort();
                for id in ids
                    .iter()
                    .rev()
                    .filter(|id| cursor.is_none_or(|c| id.as_str() < c))
                {
                    if let Some(run) = get_run(id)? {
                        if push(run) {
                            break;
                        }
                    }
                }
            }
        } else if let Some((def, mid)) = filter
            .function
            .as_ref()
            .map(|f| (RUNS_BY_FN, f))
            .or_else(|| filter.user.as_ref().map(|u| (RUNS_BY_USER, u)))
            .or_else(|| status_name.as_ref().map(|s| (RUNS_BY_STATUS, s)))
        {
            let index = open_ro(&tx, def)?;
            let pfx = prefix(&[tenant.as_bytes(), mid.as_bytes()]);
            let plen = pfx.len();
            for entry in scan_below(&index, &pfx, cursor)?.rev() {
                let (k, _) = item(entry)?;
                let id =
                    String::from_utf8_lossy(k.value().get(plen..).unwrap_or_default()).into_owned();
                if let Some(run) = get_run(&id)? {
                    if push(run) {
                        break;
                    }
                }
            }
        } else {
            for entry in scan_below(&runs, &prefix(&[tenant.as_bytes()]), cursor)?.rev() {
                let (k, v) = item(entry)?;
                if push(dec(k.value(), v.value())?) {
                    break;
                }
            }
        }
        Ok(Page::from_overfull(data, limit, |r| r.id.clone()))
    }

    fn update_run(
        &self,
        tenant: &str,
        id: &str,
        durability: Durability,
        update: &mut RunUpdate<'_>,
    ) -> StoreResult<Option<Run>> {
        // redb has a single writer, so the read-modify-write cannot conflict and `update`
        // runs exactly once.
        self.write(level(durability), |tx| {
            let mut queue = QueueTx::open(tx)?;
            let out = update_in(tx, &mut queue, tenant, id, update)?;
            queue.finish(tx)?;
            Ok(out)
        })
    }

    fn update_runs(
        &self,
        ops: &mut [RunOp],
        durability: Durability,
    ) -> StoreResult<Vec<Option<Run>>> {
        self.write(level(durability), |tx| {
            let mut queue = QueueTx::open(tx)?;
            let mut out = Vec::with_capacity(ops.len());
            let mut changed = false;
            for op in ops.iter_mut() {
                let (run, c) = update_in(tx, &mut queue, &op.tenant, &op.id, &mut *op.update)?;
                changed |= c;
                out.push(run);
            }
            queue.finish(tx)?;
            Ok((out, changed))
        })
    }

    fn due(
        &self,
        now: i64,
        limit: usize,
        room: &dyn Fn(&str) -> usize,
        skip: &dyn Fn(&QueueEntry) -> bool,
    ) -> StoreResult<Vec<QueueEntry>> {
        // The tenants with work due and room to run it, oldest head first; a tenant with
        // no room costs one key, however deep its backlog.
        let tx = self.read()?;
        let heads = open_ro(&tx, QUEUE_HEADS)?;
        let queue = open_ro(&tx, QUEUE_T)?;
        let end = ((now.max(0) as u64) + 1).to_be_bytes();
        let mut tenants = Vec::new();
        for head in heads.range::<&[u8]>(..end.as_slice()).map_err(backend)? {
            let (_, tenant) = parse_head_key(item(head)?.0.value())?;
            let r = room(&tenant);
            if r > 0 {
                tenants.push((tenant, r));
            }
        }
        // The tenants running the fewest steps (the most room) first, oldest head among
        // equals; then a fair share each before any gets more, so that a tenant whose old
        // runs are resuming cannot crowd out the others even when one worker frees up at
        // a time.
        tenants.sort_by_key(|t| std::cmp::Reverse(t.1));
        let share = super::fair_share(limit, tenants.len());
        // Per tenant: how many were taken, and the key after which to go on.
        let mut taken = vec![0usize; tenants.len()];
        let mut after: Vec<Option<Vec<u8>>> = vec![None; tenants.len()];
        let mut out = Vec::new();
        for first_pass in [true, false] {
            for (i, (tenant, r)) in tenants.iter().enumerate() {
                let cap = if first_pass { share.min(*r) } else { *r };
                if out.len() >= limit || taken[i] >= cap {
                    continue;
                }
                let pfx = prefix(&[tenant.as_bytes()]);
                for entry in scan_prefix_after(&queue, &pfx, after[i].as_deref())? {
                    let (k, _) = item(entry)?;
                    let e = parse_tenant_queue_key(k.value())?;
                    if e.due > now {
                        break;
                    }
                    after[i] = Some(k.value().to_vec());
                    if skip(&e) {
                        continue;
                    }
                    out.push(e);
                    taken[i] += 1;
                    if taken[i] >= cap || out.len() >= limit {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }

    fn mark_claimed(&self, claims: &[(QueueEntry, i64)]) -> StoreResult<()> {
        // The claim is the queue entry's value (empty while unclaimed), so it goes with it.
        self.write(LAZY, |tx| {
            let mut queue = open(tx, QUEUE_T)?;
            let mut changed = false;
            for (q, started) in claims {
                let k = tenant_queue_key(q);
                if get_bytes(&queue, &k)?.is_some() {
                    put(&mut queue, &k, &((*started).max(0) as u64).to_be_bytes())?;
                    changed = true;
                }
            }
            Ok(((), changed))
        })
    }

    fn clear_claims(&self, entries: &[QueueEntry]) -> StoreResult<()> {
        self.write(LAZY, |tx| {
            let mut queue = open(tx, QUEUE_T)?;
            let mut changed = false;
            for q in entries {
                let k = tenant_queue_key(q);
                if get_bytes(&queue, &k)?.is_some() {
                    put(&mut queue, &k, &[])?;
                    changed = true;
                }
            }
            Ok(((), changed))
        })
    }

    fn claimed(&self) -> StoreResult<Vec<(QueueEntry, i64)>> {
        let tx = self.read()?;
        let queue = open_ro(&tx, QUEUE_T)?;
        let mut out = Vec::new();
        for entry in queue.iter().map_err(backend)? {
            let (k, v) = item(entry)?;
            if let Ok(b) = <[u8; 8]>::try_from(v.value()) {
                out.push((
                    parse_tenant_queue_key(k.value())?,
                    u64::from_be_bytes(b) as i64,
                ));
            }
        }
        Ok(out)
    }

    fn dequeue(&self, entry: &QueueEntry) -> StoreResult<()> {
        // Drops a stray entry; if the removal is lost in a crash, it is dropped again.
        self.write(LAZY, |tx| {
            let mut queue = QueueTx::open(tx)?;
            let removed = queue.del(entry)?;
            queue.finish(tx)?;
            Ok(((), removed))
        })
    }

    fn next_due(
        &self,
        room: &dyn Fn(&str) -> usize,
        skip: &dyn Fn(&QueueEntry) -> bool,
    ) -> StoreResult<Option<i64>> {
        let tx = self.read()?;
        let heads = open_ro(&tx, QUEUE_HEADS)?;
        let queue = open_ro(&tx, QUEUE_T)?;
        let mut best: Option<i64> = None;
        for head in heads.iter().map_err(backend)? {
            let (due, tenant) = parse_head_key(item(head)?.0.value())?;
            // Heads are in due order: no later tenant can beat what was found.
            if best.is_some_and(|b| due >= b) {
                break;
            }
            if room(&tenant) == 0 {
                continue;
            }
            for entry in scan_prefix(&queue, &prefix(&[tenant.as_bytes()]))? {
                let e = parse_tenant_queue_key(item(entry)?.0.value())?;
                if best.is_some_and(|b| e.due >= b) {
                    break;
                }
                if !skip(&e) {
                    best = Some(e.due);
                    break;
                }
            }
        }
        Ok(best)
    }

    fn flush(&self) -> StoreResult<()> {
        // An empty `Immediate` commit makes every earlier non-durable commit durable; none
        // is needed if every commit so far is durable already.
        self.barrier(self.commits.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn conformance() {
        let dir = tempfile::tempdir().unwrap();
        super::super::conformance::run_all(&|| {
            let sub = dir.path().join(ulid::Ulid::new().to_string());
            Box::new(super::RedbStore::open(&sub).unwrap())
        });
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        super::super::conformance::survives_reopen(&|| {
            Box::new(super::RedbStore::open(dir.path()).unwrap())
        });
    }

    #[test]
    fn tenants_with_work_due_each_get_a_fair_share_first() {
        use super::*;
        let s = RedbStore::temporary().unwrap();
        // "old" has 50 steps of long-started runs queued (due 1..=50); "new" two (90, 95).
        s.write(DURABLE, |tx| {
            let mut q = QueueTx::open(tx)?;
            for (tenant, due) in (1..=50)
                .map(|d| ("old", d))
                .chain([("new", 90), ("new", 95)])
            {
                q.put(&QueueEntry {
                    due,
                    tenant: tenant.into(),
                    run_id: format!("r{due}"),
                    step_id: "s".into(),
                })?;
            }
            q.finish(tx)?;
            Ok(((), true))
        })
        .unwrap();
        let of = |v: &[QueueEntry], t: &str| -> Vec<i64> {
            v.iter().filter(|e| e.tenant == t).map(|e| e.due).collect()
        };
        let got = s.due(100, 4, &|_| 10, &|_| false).unwrap();
        assert_eq!(
            (of(&got, "old"), of(&got, "new")),
            (vec![1, 2], vec![90, 95])
        );
        // What a tenant leaves of its share goes to the others, oldest head first.
        let got = s.due(100, 6, &|_| 10, &|_| false).unwrap();
        assert_eq!(
            (of(&got, "old"), of(&got, "new")),
            (vec![1, 2, 3, 4], vec![90, 95])
        );
        let got = s
            .due(100, 4, &|t| (t == "old") as usize * 10, &|_| false)
            .unwrap();
        assert_eq!(
            of(&got, "old"),
            vec![1, 2, 3, 4],
            "a tenant without room gives way"
        );
        // One free worker: the tenant running fewer steps gets it, however old the
        // other's queue is.
        let busy_old = |t: &str| if t == "old" { 5 } else { 10 };
        let got = s.due(100, 1, &busy_old, &|_| false).unwrap();
        assert_eq!(of(&got, "new"), vec![90]);
    }

    #[test]
    fn a_queue_in_the_old_layout_is_moved_to_per_tenant_queues_on_open() {
        use super::*;
        use redb::ReadableTableMetadata;
        let dir = tempfile::tempdir().unwrap();
        let entries: Vec<QueueEntry> = [("b", 7), ("a", 9), ("b", 3)]
            .iter()
            .map(|(t, due)| QueueEntry {
                due: *due,
                tenant: t.to_string(),
                run_id: format!("r{due}"),
                step_id: "s".into(),
            })
            .collect();
        {
            // A data directory written before per-tenant queues: due-first keys only.
            let s = RedbStore::open(dir.path()).unwrap();
            let tx = s.db.begin_write().unwrap();
            {
                let mut old = open(&tx, QUEUE).unwrap();
                for e in &entries {
                    put(&mut old, &queue_key(e), &[]).unwrap();
                }
            }
            tx.commit().unwrap();
        }
        let s = RedbStore::open(dir.path()).unwrap();
        let all = |_: &str| 10;
        let got = s.due(100, 10, &all, &|_| false).unwrap();
        let mut want = entries.clone();
        want.sort_by_key(|e| (e.tenant != "b", e.due));
        assert_eq!(
            got, want,
            "tenant b (earliest head) first, each in due order"
        );
        assert_eq!(
            s.next_due(&|t| (t == "a") as usize, &|_| false).unwrap(),
            Some(9)
        );
        let tx = s.read().unwrap();
        assert_eq!(
            open_ro(&tx, QUEUE).unwrap().len().unwrap(),
            0,
            "old table emptied"
        );
    }
}
