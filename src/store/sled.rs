//! The embedded backend on sled: one tree per record kind, multi-tree transactions for
//! atomic state transitions, and an explicit flush (fsync) for durable acknowledgements.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::{Transactional, Tree};

use super::keys::{check_name, key, parse_queue_key, parse_wait_key, prefix, queue_key, wait_key};
use super::RunOp;
use super::{
    Durability, EventBatch, FunctionRecord, Ingested, Page, RunChange, RunFilter, RunUpdate, Store,
    StoreError, StoreResult, StoredEvent,
};
use crate::event::Event;
use crate::run::{QueueEntry, Run, RunStatus, WaitKey};

/// The sled-backed store.
pub struct SledStore {
    db: sled::Db,
    events: Tree,
    idem: Tree,
    inbox: Tree,
    functions: Tree,
    fn_latest: Tree,
    components: Tree,
    artifacts: Tree,
    runs: Tree,
    runs_by_fn: Tree,
    runs_by_user: Tree,
    runs_by_status: Tree,
    counts: Tree,
    queue: Tree,
    waits: Tree,
    wait_paths: Tree,
    delayed: Tree,
    meta: Tree,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn tx_err(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => backend(e),
    }
}

fn abort(e: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(e)
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

fn counter_add(
    t: &TransactionalTree,
    k: &[u8],
    delta: i64,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    let cur = t
        .get(k)?
        .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
        .unwrap_or(0);
    let next = (cur as i64 + delta).max(0) as u64;
    t.insert(k, &next.to_be_bytes())?;
    Ok(())
}

fn delayed_key(tenant: &str, ev: &Event) -> Vec<u8> {
    let mut k = (ev.ts.max(0) as u64).to_be_bytes().to_vec();
    k.extend_from_slice(&key(&[tenant.as_bytes(), ev.id.as_bytes()]));
    k
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

/// Adds and removes wait index entries, keeping the per-path counts that let an
/// incoming event find which paths to look up.
fn apply_waits(
    waits: &TransactionalTree,
    paths: &TransactionalTree,
    add: &[WaitKey],
    remove: &[WaitKey],
) -> TxResult<()> {
    for w in remove {
        if waits.remove(wait_key(w))?.is_some() {
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
            check_name(what, v).map_err(abort)?;
        }
        if waits.insert(wait_key(w), &[])?.is_none() {
            counter_add(
                paths,
                &key(&[w.tenant.as_bytes(), w.event.as_bytes(), w.path.as_bytes()]),
                1,
            )?;
        }
    }
    Ok(())
}

/// One run's read-modify-write inside a transaction over `SledStore::run_trees`.
fn update_in(
    t: &[TransactionalTree],
    tenant: &str,
    id: &str,
    update: &mut RunUpdate<'_>,
) -> TxResult<(Option<Run>, bool)> {
    let rk = key(&[tenant.as_bytes(), id.as_bytes()]);
    let Some(raw) = t[0].get(&rk)? else {
        return Ok((None, false));
    };
    let mut run: Run = dec(&rk, &raw).map_err(abort)?;
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
    t[0].insert(rk.as_slice(), enc(&run).map_err(abort)?)?;
    if before != run.status {
        counter_add(&t[1], &count_key(tenant, &run.function_id, before), -1)?;
        counter_add(&t[1], &count_key(tenant, &run.function_id, run.status), 1)?;
        t[5].remove(status_key(tenant, before, id))?;
        t[5].insert(status_key(tenant, run.status, id), &[])?;
    }
    for q in &dequeue {
        t[2].remove(queue_key(q))?;
    }
    for q in &enqueue {
        t[2].insert(queue_key(q), &[])?;
    }
    apply_waits(&t[3], &t[4], &waits_add, &waits_remove)?;
    Ok((Some(run), true))
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

impl SledStore {
    /// Opens (or creates) a store in `dir`.
    pub fn open(dir: &Path) -> StoreResult<Self> {
        std::fs::create_dir_all(dir).map_err(backend)?;
        let config = sled::Config::new()
            .path(dir.join("sled"))
            .mode(sled::Mode::HighThroughput)
            .flush_every_ms(Some(200));
        // sled's flusher thread keeps the file lock for a moment after its store is
        // dropped, so reopening in the same process can find it still held: wait up to
        // a second before reporting the lock as taken.
        let mut tries = 0;
        let db = loop {
            match config.open() {
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock") && tries < 50 =>
                {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                r => break r.map_err(backend)?,
            }
        };
        Self::with_db(db)
    }

    /// A throwaway store that lives in a temporary directory (for `weir run`).
    pub fn temporary() -> StoreResult<Self> {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(backend)?;
        Self::with_db(db)
    }

    fn with_db(db: sled::Db) -> StoreResult<Self> {
        let t = |name: &str| db.open_tree(name).map_err(backend);
        Ok(Self {
            events: t("events")?,
            idem: t("idem")?,
            inbox: t("inbox")?,
            functions: t("functions")?,
            fn_latest: t("fn_latest")?,
            components: t("components")?,
            artifacts: t("artifacts")?,
            runs: t("runs")?,
            runs_by_fn: t("runs_by_fn")?,
            runs_by_user: t("runs_by_user")?,
            runs_by_status: t("runs_by_status")?,
            counts: t("counts")?,
            queue: t("queue")?,
            waits: t("waits")?,
            wait_paths: t("wait_paths")?,
            delayed: t("delayed")?,
            meta: t("meta")?,
            db,
        })
    }

    /// The trees a run update touches, in the order `update_in` expects.
    fn run_trees(&self) -> [&Tree; 6] {
        [
            &self.runs,
            &self.counts,
            &self.queue,
            &self.waits,
            &self.wait_paths,
            &self.runs_by_status,
        ]
    }

    fn get_json<T: DeserializeOwned>(&self, tree: &Tree, k: &[u8]) -> StoreResult<Option<T>> {
        match tree.get(k).map_err(backend)? {
            Some(v) => Ok(Some(dec(k, &v)?)),
            None => Ok(None),
        }
    }

    /// Keys under `pfx` in descending order, starting strictly below `pfx + cursor`.
    fn scan_desc<'a>(
        tree: &'a Tree,
        pfx: Vec<u8>,
        cursor: Option<&str>,
    ) -> impl Iterator<Item = StoreResult<(sled::IVec, sled::IVec)>> + 'a {
        let mut end = pfx.clone();
        match cursor {
            Some(c) => end.extend_from_slice(c.as_bytes()),
            None => end.push(0xff),
        }
        tree.range(pfx.clone()..end)
            .rev()
            .map(|r| r.map_err(backend))
    }
    /// Appends several tenants' events in one transaction (all or nothing), flushing if
    /// `durable`.
    fn append_all(
        &self,
        batches: &[(&str, &[Event], i64)],
        durable: bool,
    ) -> StoreResult<Vec<Vec<Option<String>>>> {
        for (tenant, _, _) in batches {
            check_name("tenant", tenant)?;
        }
        let trees: &[&Tree] = &[&self.events, &self.idem, &self.inbox, &self.delayed];
        let result = trees
            .transaction(|t| {
                let mut all = Vec::with_capacity(batches.len());
                for &(tenant, events, now) in batches {
                    let mut out = Vec::with_capacity(events.len());
                    // Keys repeated inside one batch also count as duplicates.
                    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
                    for ev in events {
                        let mut duplicate_of = None;
                        if let Some(k) = &ev.idempotency_key {
                            let ik = key(&[tenant.as_bytes(), k.as_bytes()]);
                            if let Some(first) = seen.get(k.as_str()) {
                                duplicate_of = Some(first.to_string());
                            } else if let Some(prev) = t[1].get(&ik)? {
                                duplicate_of = Some(String::from_utf8_lossy(&prev).into_owned());
                            } else {
                                t[1].insert(ik, ev.id.as_bytes())?;
                                seen.insert(k, &ev.id);
                            }
                        }
                        let stored = StoredEvent {
                            event: ev.clone(),
                            run_ids: Vec::new(),
                            ingested: duplicate_of.is_some(),
                            duplicate_of: duplicate_of.clone(),
                        };
                        t[0].insert(
                            key(&[tenant.as_bytes(), ev.id.as_bytes()]),
                            enc(&stored).map_err(abort)?,
                        )?;
                        if duplicate_of.is_none() {
                            if ev.ts > now {
                                t[3].insert(delayed_key(tenant, ev), &[])?;
                            } else {
                                t[2].insert(key(&[ev.id.as_bytes(), tenant.as_bytes()]), &[])?;
                            }
                        }
                        out.push(duplicate_of);
                    }
                    all.push(out);
                }
                Ok(all)
            })
            .map_err(tx_err)?;
        if durable {
            self.db.flush().map_err(backend)?;
        }
        Ok(result)
    }
}

impl Store for SledStore {
    fn append_events(
        &self,
        tenant: &str,
        events: &[Event],
        now: i64,
    ) -> StoreResult<Vec<Option<String>>> {
        let mut out = self.append_all(&[(tenant, events, now)], true)?;
        Ok(out.pop().unwrap_or_default())
    }

    fn append_batches(
        &self,
        batches: &[EventBatch],
        durability: Durability,
    ) -> StoreResult<Vec<Vec<Option<String>>>> {
        let all: Vec<(&str, &[Event], i64)> = batches
            .iter()
            .map(|b| (b.tenant.as_str(), b.events.as_slice(), b.now))
            .collect();
        self.append_all(&all, durability == Durability::Durable)
    }

    fn get_event(&self, tenant: &str, id: &str) -> StoreResult<Option<StoredEvent>> {
        self.get_json(&self.events, &key(&[tenant.as_bytes(), id.as_bytes()]))
    }

    fn list_events(
        &self,
        tenant: &str,
        name: Option<&str>,
        limit: usize,
        cursor: Option<&str>,
    ) -> StoreResult<Page<StoredEvent>> {
        let mut data = Vec::new();
        for item in Self::scan_desc(&self.events, prefix(&[tenant.as_bytes()]), cursor) {
            let (k, v) = item?;
            let ev: StoredEvent = dec(&k, &v)?;
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
        let end = ((now.max(0) as u64) + 1).to_be_bytes();
        for item in self.delayed.range(..end.as_slice()).take(limit) {
            let (k, _) = item.map_err(backend)?;
            let mut parts = k[8..].splitn(2, |b| *b == 0);
            let tenant = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
            let id = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
            match self.get_event(&tenant, &id)? {
                Some(se) if !se.ingested => out.push((tenant, se.event)),
                _ => {
                    self.delayed.remove(&k).map_err(backend)?;
                }
            }
        }
        for item in self.inbox.iter().take(limit.saturating_sub(out.len())) {
            let (k, _) = item.map_err(backend)?;
            let mut parts = k.splitn(2, |b| *b == 0);
            let id = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
            let tenant = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
            match self.get_event(&tenant, &id)? {
                Some(se) if !se.ingested => out.push((tenant, se.event)),
                _ => {
                    self.inbox.remove(&k).map_err(backend)?;
                }
            }
        }
        Ok(out)
    }

    fn pending_count(&self) -> StoreResult<u64> {
        Ok((self.inbox.len() + self.delayed.len()) as u64)
    }

    fn next_delayed(&self) -> StoreResult<Option<i64>> {
        match self.delayed.first().map_err(backend)? {
            Some((k, _)) if k.len() >= 8 => Ok(Some(u64::from_be_bytes(
                k[..8].try_into().unwrap_or_default(),
            ) as i64)),
            _ => Ok(None),
        }
    }

    fn commit_ingest(&self, batch: &[Ingested], durability: Durability) -> StoreResult<()> {
        let trees: &[&Tree] = &[
            &self.events,
            &self.inbox,
            &self.runs,
            &self.runs_by_fn,
            &self.runs_by_user,
            &self.counts,
            &self.queue,
            &self.delayed,
            &self.waits,
            &self.wait_paths,
            &self.runs_by_status,
        ];
        trees
            .transaction(|t| {
                for Ingested {
                    tenant,
                    event_id,
                    runs,
                } in batch
                {
                    let ek = key(&[tenant.as_bytes(), event_id.as_bytes()]);
                    let Some(raw) = t[0].get(&ek)? else {
                        continue;
                    };
                    let mut stored: StoredEvent = dec(&ek, &raw).map_err(abort)?;
                    if stored.ingested {
                        continue;
                    }
                    stored.ingested = true;
                    for (run, change) in runs {
                        let t_ = tenant.as_bytes();
                        let rid = run.id.as_bytes();
                        t[2].insert(key(&[t_, rid]), enc(run).map_err(abort)?)?;
                        t[3].insert(key(&[t_, run.function_id.as_bytes(), rid]), &[])?;
                        if let Some(u) = &run.user_id {
                            t[4].insert(key(&[t_, u.as_bytes(), rid]), &[])?;
                        }
                        counter_add(&t[5], &count_key(tenant, &run.function_id, run.status), 1)?;
                        t[10].insert(status_key(tenant, run.status, &run.id), &[])?;
                        for q in &change.enqueue {
                            t[6].insert(queue_key(q), &[])?;
                        }
                        apply_waits(&t[8], &t[9], &change.waits_add, &[])?;
                        stored.run_ids.push(run.id.clone());
                    }
                    t[1].remove(key(&[event_id.as_bytes(), tenant.as_bytes()]))?;
                    t[7].remove(delayed_key(tenant, &stored.event))?;
                    t[0].insert(ek, enc(&stored).map_err(abort)?)?;
                }
                Ok(())
            })
            .map_err(tx_err)?;
        if durability == Durability::Durable {
            self.db.flush().map_err(backend)?;
        }
        Ok(())
    }

    fn find_waits(
        &self,
        tenant: &str,
        event: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> StoreResult<Vec<WaitKey>> {
        let mut out = Vec::new();
        for item in self
            .wait_paths
            .scan_prefix(prefix(&[tenant.as_bytes(), event.as_bytes()]))
        {
            let (k, v) = item.map_err(backend)?;
            if v.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0) == 0 {
                continue;
            }
            let path = String::from_utf8_lossy(k.rsplit(|b| *b == 0).next().unwrap_or_default())
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
            for w in self.waits.scan_prefix(pfx) {
                let (wk, _) = w.map_err(backend)?;
                out.push(parse_wait_key(&wk)?);
            }
        }
        Ok(out)
    }

    fn get_meta(&self, k: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self
            .meta
            .get(k.as_bytes())
            .map_err(backend)?
            .map(|v| v.to_vec()))
    }

    fn put_meta(&self, k: &str, value: &[u8]) -> StoreResult<()> {
        self.meta.insert(k.as_bytes(), value).map_err(backend)?;
        self.db.flush().map_err(backend)?;
        Ok(())
    }

    fn put_function(&self, tenant: &str, id: &str, def: &Value, now: i64) -> StoreResult<u64> {
        check_name("tenant", tenant)?;
        check_name("function id", id)?;
        let trees: &[&Tree] = &[&self.functions, &self.fn_latest];
        let version = trees
            .transaction(|t| {
                let lk = key(&[tenant.as_bytes(), id.as_bytes()]);
                let latest = t[1]
                    .get(&lk)?
                    .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
                    .unwrap_or(0);
                let version = latest + 1;
                let rec = FunctionRecord {
                    id: id.into(),
                    version,
                    def: def.clone(),
                    created_at: now,
                };
                t[0].insert(
                    key(&[tenant.as_bytes(), id.as_bytes(), &version.to_be_bytes()]),
                    enc(&rec).map_err(abort)?,
                )?;
                t[1].insert(lk, &version.to_be_bytes())?;
                Ok(version)
            })
            .map_err(tx_err)?;
        self.db.flush().map_err(backend)?;
        Ok(version)
    }

    fn get_function(
        &self,
        tenant: &str,
        id: &str,
        version: u64,
    ) -> StoreResult<Option<FunctionRecord>> {
        self.get_json(
            &self.functions,
            &key(&[tenant.as_bytes(), id.as_bytes(), &version.to_be_bytes()]),
        )
    }

    fn function_versions(&self, tenant: &str, id: &str) -> StoreResult<Vec<FunctionRecord>> {
        let pfx = prefix(&[tenant.as_bytes(), id.as_bytes()]);
        let mut out = Vec::new();
        for item in self.functions.scan_prefix(&pfx) {
            let (k, v) = item.map_err(backend)?;
            // The version is exactly 8 bytes after the prefix; longer ids sharing the
            // prefix are other functions.
            if k.len() == pfx.len() + 8 {
                out.push(dec(&k, &v)?);
            }
        }
        Ok(out)
    }

    fn latest_functions(&self) -> StoreResult<Vec<(String, FunctionRecord)>> {
        let mut out = Vec::new();
        for item in self.fn_latest.iter() {
            let (k, v) = item.map_err(backend)?;
            let mut parts = k.splitn(2, |b| *b == 0);
            let tenant = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
            let id = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
            let version =
                v.as_ref()
                    .try_into()
                    .map(u64::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt {
                        key: String::from_utf8_lossy(&k).into_owned(),
                        reason: "version is not 8 bytes".into(),
                    })?;
            if let Some(rec) = self.get_function(&tenant, &id, version)? {
                out.push((tenant, rec));
            }
        }
        Ok(out)
    }

    fn run_counts(&self, tenant: &str, function_id: &str) -> StoreResult<BTreeMap<RunStatus, u64>> {
        let mut out = BTreeMap::new();
        for st in RunStatus::ALL {
            let n = self
                .counts
                .get(count_key(tenant, function_id, st))
                .map_err(backend)?
                .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
                .unwrap_or(0);
            out.insert(st, n);
        }
        Ok(out)
    }

    fn put_component(&self, tenant: &str, sha256: &str, bytes: &[u8]) -> StoreResult<()> {
        check_name("tenant", tenant)?;
        self.components
            .insert(key(&[tenant.as_bytes(), sha256.as_bytes()]), bytes)
            .map_err(backend)?;
        self.db.flush().map_err(backend)?;
        Ok(())
    }

    fn get_component(&self, tenant: &str, sha256: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self
            .components
            .get(key(&[tenant.as_bytes(), sha256.as_bytes()]))
            .map_err(backend)?
            .map(|v| v.to_vec()))
    }

    fn put_artifact(&self, k: &str, bytes: &[u8]) -> StoreResult<()> {
        self.artifacts
            .insert(k.as_bytes(), bytes)
            .map_err(backend)?;
        Ok(())
    }

    fn get_artifact(&self, k: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self
            .artifacts
            .get(k.as_bytes())
            .map_err(backend)?
            .map(|v| v.to_vec()))
    }

    fn get_run(&self, tenant: &str, id: &str) -> StoreResult<Option<Run>> {
        self.get_json(&self.runs, &key(&[tenant.as_bytes(), id.as_bytes()]))
    }

    fn list_runs(
        &self,
        tenant: &str,
        filter: &RunFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> StoreResult<Page<Run>> {
        let limit = limit.max(1);
        let mut data: Vec<Run> = Vec::new();
        let mut push = |run: Run| -> bool {
            if filter.matches(&run) {
                data.push(run);
            }
            data.len() > limit
        };
        if let Some(ev) = &filter.event {
            if let Some(se) = self.get_event(tenant, ev)? {
                let mut ids = se.run_ids.clone();
                ids.sort();
                for id in ids
                    .iter()
                    .rev()
                    .filter(|id| cursor.is_none_or(|c| id.as_str() < c))
                {
                    if let Some(run) = self.get_run(tenant, id)? {
                        if push(run) {
                            break;
                        }
                    }
                }
            }
        } else if filter.function.is_some() || filter.user.is_some() || filter.status.is_some() {
            let status = filter
                .status
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            let (tree, mid) = match (&filter.function, &filter.user) {
                (Some(f), _) => (&self.runs_by_fn, f),
                (None, Some(u)) => (&self.runs_by_user, u),
                (None, None) => (&self.runs_by_status, &status),
            };
            let pfx = prefix(&[tenant.as_bytes(), mid.as_bytes()]);
            let plen = pfx.len();
            for item in Self::scan_desc(tree, pfx, cursor) {
                let (k, _) = item?;
                let id = String::from_utf8_lossy(&k[plen..]).into_owned();
                if let Some(run) = self.get_run(tenant, &id)? {
                    if push(run) {
                        break;
                    }
                }
            }
        } else {
            for item in Self::scan_desc(&self.runs, prefix(&[tenant.as_bytes()]), cursor) {
                let (k, v) = item?;
                if push(dec(&k, &v)?) {
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
        let update = std::cell::RefCell::new(update);
        let out = self
            .run_trees()
            .transaction(|t| update_in(t, tenant, id, &mut **update.borrow_mut()))
            .map_err(tx_err)?;
        // Durable even when nothing changed: earlier lazy writes are then on disk too.
        if durability == Durability::Durable {
            self.db.flush().map_err(backend)?;
        }
        Ok(out.0)
    }

    fn update_runs(
        &self,
        ops: &mut [RunOp],
        durability: Durability,
    ) -> StoreResult<Vec<Option<Run>>> {
        let ops = std::cell::RefCell::new(ops);
        let (out, _changed) = self
            .run_trees()
            .transaction(|t| {
                let mut ops = ops.borrow_mut();
                let mut out = Vec::with_capacity(ops.len());
                let mut changed = false;
                for op in ops.iter_mut() {
                    let (run, c) = update_in(t, &op.tenant, &op.id, &mut *op.update)?;
                    changed |= c;
                    out.push(run);
                }
                Ok((out, changed))
            })
            .map_err(tx_err)?;
        // Durable even when nothing changed: earlier lazy writes are then on disk too.
        if durability == Durability::Durable {
            self.db.flush().map_err(backend)?;
        }
        Ok(out)
    }

    fn due(
        &self,
        now: i64,
        limit: usize,
        room: &dyn Fn(&str) -> usize,
        skip: &dyn Fn(&QueueEntry) -> bool,
    ) -> StoreResult<Vec<QueueEntry>> {
        // One due-ordered queue: a tenant without room is passed over entry by entry
        // (redb, the default store, keeps a queue per tenant instead).
        let end = ((now.max(0) as u64) + 1).to_be_bytes();
        let mut out = Vec::new();
        let mut left: HashMap<String, usize> = HashMap::new();
        for item in self.queue.range(..end.as_slice()) {
            let (k, _) = item.map_err(backend)?;
            let e = parse_queue_key(&k)?;
            let n = left
                .entry(e.tenant.clone())
                .or_insert_with(|| room(&e.tenant));
            if *n == 0 || skip(&e) {
                continue;
            }
            *n -= 1;
            out.push(e);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    fn mark_claimed(&self, claims: &[(QueueEntry, i64)]) -> StoreResult<()> {
        // The claim is the queue entry's value (empty while unclaimed), so it goes with it.
        for (q, started) in claims {
            let started = ((*started).max(0) as u64).to_be_bytes();
            let _ = self
                .queue
                .compare_and_swap(queue_key(q), Some(&[] as &[u8]), Some(&started[..]))
                .map_err(backend)?;
        }
        Ok(())
    }

    fn clear_claims(&self, entries: &[QueueEntry]) -> StoreResult<()> {
        for q in entries {
            let k = queue_key(q);
            if let Some(v) = self.queue.get(&k).map_err(backend)? {
                let _ = self
                    .queue
                    .compare_and_swap(&k, Some(v), Some(&[] as &[u8]))
                    .map_err(backend)?;
            }
        }
        Ok(())
    }

    fn claimed(&self) -> StoreResult<Vec<(QueueEntry, i64)>> {
        let mut out = Vec::new();
        for item in self.queue.iter() {
            let (k, v) = item.map_err(backend)?;
            if let Ok(b) = <[u8; 8]>::try_from(v.as_ref()) {
                out.push((parse_queue_key(&k)?, u64::from_be_bytes(b) as i64));
            }
        }
        Ok(out)
    }

    fn dequeue(&self, entry: &QueueEntry) -> StoreResult<()> {
        self.queue.remove(queue_key(entry)).map_err(backend)?;
        Ok(())
    }

    fn next_due(
        &self,
        room: &dyn Fn(&str) -> usize,
        skip: &dyn Fn(&QueueEntry) -> bool,
    ) -> StoreResult<Option<i64>> {
        for item in self.queue.iter() {
            let (k, _) = item.map_err(backend)?;
            let e = parse_queue_key(&k)?;
            if room(&e.tenant) > 0 && !skip(&e) {
                return Ok(Some(e.due));
            }
        }
        Ok(None)
    }

    fn flush(&self) -> StoreResult<()> {
        self.db.flush().map_err(backend)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn conformance() {
        let dir = tempfile::tempdir().unwrap();
        super::super::conformance::run_all(&|| {
            let sub = dir.path().join(ulid::Ulid::new().to_string());
            Box::new(super::SledStore::open(&sub).unwrap())
        });
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        super::super::conformance::survives_reopen(&|| {
            Box::new(super::SledStore::open(dir.path()).unwrap())
        });
    }
}
