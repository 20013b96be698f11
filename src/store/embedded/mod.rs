//! The embedded backends: one process owns a data directory (a file lock says so). The
//! layout — tables, keys, indexes, counts — is written once ([`schema`], [`events`],
//! [`runs`], [`queue`]) over a small ordered-KV interface ([`kv`]) with redb and sled as
//! thin adapters. Writes go through one writer thread that group-commits them
//! ([`writer`]); reads run on tokio's blocking pool; leases live in memory ([`leases`]).

mod events;
mod functions;
pub mod kv;
mod leases;
mod queue;
pub mod redb;
mod replays;
mod runs;
mod schema;
pub mod sled;
mod users;
mod writer;

/// Checks that a name can be part of a key (not empty, at most 512 bytes, no NUL); every
/// backend refuses the same names.
use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::oneshot;

use self::kv::{read_with, Kv, KvRead};
use self::leases::Leases;
use self::runs::PreparedWrite;
use self::schema::*;
use self::writer::{dropped, Job, Writer};
use crate::event::Event;
use crate::run::{QueueEntry, Run, RunStatus, WaitKey};
use crate::store::{
    BlobStore, ClaimRequest, Claimed, EventFilter, EventStore, FunctionRecord, FunctionStore,
    Ingested, Lease, LeaseRef, Page, ReplayItem, ReplayState, ReplayStore, RunChange, RunFilter,
    RunStore, RunWrite, StoreError, StoreResult, StoredEvent, TenantCaps, WaitQuery, WriteOutcome,
};

/// Which embedded engine keeps the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// redb (the default).
    Redb,
    /// sled.
    Sled,
}

/// A store in one process's data directory.
pub struct EmbeddedStore {
    kv: Arc<dyn Kv>,
    writer: Writer,
    leases: Arc<Leases>,
    /// Joined on drop, so that the files are closed when the store is.
    thread: Option<std::thread::JoinHandle<()>>,
    /// Held for as long as the store is open.
    _lock: Option<File>,
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        // The writer ends once its last handle goes; then the database is closed and
        // the directory may be opened again.
        self.writer = Writer::stopped();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn join_err(e: tokio::task::JoinError) -> StoreError {
    if e.is_panic() {
        StoreError::Panicked(format!("a storage read panicked: {e}"))
    } else {
        StoreError::Backend(format!("a storage read was cancelled: {e}"))
    }
}

impl EmbeddedStore {
    /// Opens (or creates) a store in `dir`, refusing if another process has it open.
    pub fn open(engine: Engine, dir: &Path) -> StoreResult<Self> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Backend(e.to_string()))?;
        let lock = File::create(dir.join("weir.lock"))
            .map_err(|e| StoreError::Backend(format!("cannot create the lock file: {e}")))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked(dir.display().to_string()))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::Backend(format!(
                    "cannot lock {}: {e}",
                    dir.display()
                )))
            }
        }
        let kv: Arc<dyn Kv> = match engine {
            Engine::Redb => Arc::new(redb::RedbKv::open(&dir.join("weir.redb"))?),
            Engine::Sled => Arc::new(sled::SledKv::open(&dir.join("sled"))?),
        };
        Self::with_kv(kv, Some(lock))
    }

    /// A throwaway store in memory (for `weir run` and tests).
    pub fn temporary(engine: Engine) -> StoreResult<Self> {
        let kv: Arc<dyn Kv> = match engine {
            Engine::Redb => Arc::new(redb::RedbKv::memory()?),
            Engine::Sled => Arc::new(sled::SledKv::temporary()?),
        };
        Self::with_kv(kv, None)
    }

    fn with_kv(kv: Arc<dyn Kv>, lock: Option<File>) -> StoreResult<Self> {
        kv.write(true, &mut |w| {
            let moved = queue::migrate_legacy(w)?;
            let indexed = users::migrate(w)?;
            Ok(events::migrate_legacy_inbox(w)? || moved || indexed)
        })?;
        // The claims a stopped process left: expired leases, taken over by the first
        // claim, so that the attempts they stood for are counted.
        let markers = read_with(&*kv, |r| queue::claim_markers(r))?;
        let leases = Arc::new(Leases::default());
        leases.adopt_markers(markers);
        let (writer, thread) = Writer::start(kv.clone(), leases.clone())?;
        Ok(Self {
            kv,
            writer,
            leases,
            thread: Some(thread),
            _lock: lock,
        })
    }

    /// The engine underneath (`redb`, `sled`).
    pub fn engine_name(&self) -> &'static str {
        self.kv.name()
    }

    /// Runs `f` on a consistent view, on tokio's blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn KvRead) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let kv = self.kv.clone();
        tokio::task::spawn_blocking(move || read_with(&*kv, f))
            .await
            .map_err(join_err)?
    }

    #[cfg(test)]
    /// Writes raw bytes under a key (for tests that craft corrupt records).
    pub(crate) async fn put_raw(
        &self,
        table: kv::Table,
        k: Vec<u8>,
        v: Vec<u8>,
    ) -> StoreResult<()> {
        self.writer.exec(true, move |w| w.put(table, &k, &v)).await
    }

    #[cfg(test)]
    /// A write that panics inside the writer thread (for the containment test).
    pub(crate) async fn panic_in_writer(&self) -> StoreResult<()> {
        self.writer
            .exec(true, |_| -> StoreResult<()> { panic!("a crafted panic") })
            .await
    }
}

#[async_trait]
impl EventStore for EmbeddedStore {
    async fn append_events(
        &self,
        tenant: &str,
        events: Vec<Event>,
        now: i64,
    ) -> StoreResult<Vec<Option<String>>> {
        let (reply, rx) = oneshot::channel();
        self.writer.send(Job::Append {
            tenant: tenant.into(),
            events,
            now,
            reply,
        })?;
        let (r, _events) = rx.await.map_err(|_| dropped())?;
        r
    }

    async fn get_event(&self, tenant: &str, id: &str) -> StoreResult<Option<StoredEvent>> {
        let k = key(&[tenant.as_bytes(), id.as_bytes()]);
        self.read(move |r| get_json(r, EVENTS, &k)).await
    }

    async fn list_events_where(
        &self,
        tenant: &str,
        filter: &EventFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> StoreResult<Page<StoredEvent>> {
        let (tenant, filter, cursor) = (
            tenant.to_string(),
            filter.clone(),
            cursor.map(str::to_string),
        );
        self.read(move |r| events::list(r, &tenant, &filter, limit, cursor.as_deref()))
            .await
    }

    async fn pending_events(
        &self,
        now: i64,
        limit: usize,
        skip: &[String],
    ) -> StoreResult<Vec<(String, Event)>> {
        let skip = skip.to_vec();
        let (out, stale) = self
            .read(move |r| events::pending(r, now, limit, &skip))
            .await?;
        if !stale.is_empty() {
            // Housekeeping only (an ingested event never becomes pending again).
            self.writer
                .exec(false, move |w| events::drop_stale(w, &stale))
                .await?;
        }
        Ok(out)
    }

    async fn pending_count(&self) -> StoreResult<u64> {
        self.read(|r| Ok(r.count(INBOX)? + r.count(DELAYED)?)).await
    }

    async fn next_delayed(&self) -> StoreResult<Option<i64>> {
        self.read(|r| events::next_delayed(r)).await
    }

    async fn commit_ingest(&self, batch: Vec<Ingested>) -> StoreResult<()> {
        let (reply, rx) = oneshot::channel();
        self.writer.send(Job::Ingest { batch, reply })?;
        let (r, _batch) = rx.await.map_err(|_| dropped())?;
        r
    }
}

#[async_trait]
impl FunctionStore for EmbeddedStore {
    async fn put_function(
        &self,
        tenant: &str,
        id: &str,
        def: &Value,
        now: i64,
    ) -> StoreResult<u64> {
        let (tenant, id, def) = (tenant.to_string(), id.to_string(), def.clone());
        self.writer
            .exec(true, move |w| functions::put(w, &tenant, &id, &def, now))
            .await
    }

    async fn get_function(
        &self,
        tenant: &str,
        id: &str,
        version: u64,
    ) -> StoreResult<Option<FunctionRecord>> {
        let k = function_key(tenant, id, version);
        self.read(move |r| get_json(r, FUNCTIONS, &k)).await
    }

    async fn function_versions(&self, tenant: &str, id: &str) -> StoreResult<Vec<FunctionRecord>> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.read(move |r| functions::versions(r, &tenant, &id))
            .await
    }

    async fn latest_functions(&self) -> StoreResult<Vec<(String, FunctionRecord)>> {
        self.read(|r| functions::latest(r)).await
    }

    async fn get_meta(&self, k: &str) -> StoreResult<Option<Vec<u8>>> {
        let k = k.as_bytes().to_vec();
        self.read(move |r| r.get(META, &k)).await
    }

    async fn put_meta_if(
        &self,
        k: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> StoreResult<bool> {
        let (k, expected, value) = (k.to_string(), expected.map(<[u8]>::to_vec), value.to_vec());
        self.writer
            .exec(true, move |w| {
                functions::put_meta_if(w, &k, expected.as_deref(), &value)
            })
            .await
    }
}

#[async_trait]
impl ReplayStore for EmbeddedStore {
    async fn create_replay(
        &self,
        tenant: &str,
        state: ReplayState,
        items: Vec<ReplayItem>,
        events: Vec<Event>,
    ) -> StoreResult<()> {
        let tenant = tenant.to_string();
        self.writer
            .exec(true, move |w| {
                replays::create(w, &tenant, &state, &items, &events)
            })
            .await
    }

    async fn get_replay(&self, tenant: &str, id: &str) -> StoreResult<Option<ReplayState>> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.read(move |r| replays::get(r, &tenant, &id)).await
    }

    async fn list_replays(
        &self,
        tenant: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> StoreResult<Page<ReplayState>> {
        let (tenant, cursor) = (tenant.to_string(), cursor.map(str::to_string));
        self.read(move |r| replays::list(r, &tenant, limit, cursor.as_deref()))
            .await
    }

    async fn running_replays(&self) -> StoreResult<Vec<(String, ReplayState)>> {
        self.read(replays::running).await
    }

    async fn replay_items(
        &self,
        tenant: &str,
        id: &str,
        from: u64,
        limit: usize,
    ) -> StoreResult<Vec<ReplayItem>> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.read(move |r| replays::items(r, &tenant, &id, from, limit))
            .await
    }

    async fn advance_replay(
        &self,
        tenant: &str,
        expected_done: u64,
        state: ReplayState,
        runs: Vec<(Run, RunChange)>,
    ) -> StoreResult<bool> {
        let tenant = tenant.to_string();
        self.writer
            .exec(true, move |w| {
                replays::advance(w, &tenant, expected_done, &state, &runs)
            })
            .await
    }
}

/// One process owns an embedded store: no feed.
impl crate::store::FeedStore for EmbeddedStore {}

#[async_trait]
impl BlobStore for EmbeddedStore {
    async fn put_component(&self, tenant: &str, sha256: &str, bytes: Vec<u8>) -> StoreResult<()> {
        let (tenant, sha) = (tenant.to_string(), sha256.to_string());
        self.writer
            .exec(true, move |w| {
                functions::put_component(w, &tenant, &sha, &bytes)
            })
            .await
    }

    async fn get_component(&self, tenant: &str, sha256: &str) -> StoreResult<Option<Vec<u8>>> {
        let k = key(&[tenant.as_bytes(), sha256.as_bytes()]);
        self.read(move |r| r.get(COMPONENTS, &k)).await
    }

    async fn put_artifact(&self, k: &str, bytes: Vec<u8>) -> StoreResult<()> {
        // Derived data: losing it in a crash only costs a recompile.
        let k = k.as_bytes().to_vec();
        self.writer
            .exec(false, move |w| w.put(ARTIFACTS, &k, &bytes))
            .await
    }

    async fn get_artifact(&self, k: &str) -> StoreResult<Option<Vec<u8>>> {
        let k = k.as_bytes().to_vec();
        self.read(move |r| r.get(ARTIFACTS, &k)).await
    }
}

#[async_trait]
impl RunStore for EmbeddedStore {
    async fn get_run(&self, tenant: &str, id: &str) -> StoreResult<Option<Run>> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.read(move |r| get_run(r, &tenant, &id)).await
    }

    async fn list_runs(
        &self,
        tenant: &str,
        filter: &RunFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> StoreResult<Page<Run>> {
        let (tenant, filter, cursor) = (
            tenant.to_string(),
            filter.clone(),
            cursor.map(str::to_string),
        );
        self.read(move |r| runs::list(r, &tenant, &filter, limit, cursor.as_deref()))
            .await
    }

    async fn run_counts(
        &self,
        tenant: &str,
        function_id: &str,
    ) -> StoreResult<BTreeMap<RunStatus, u64>> {
        let (tenant, f) = (tenant.to_string(), function_id.to_string());
        self.read(move |r| runs::counts(r, &tenant, &f)).await
    }

    async fn write_run(&self, w: RunWrite) -> StoreResult<WriteOutcome> {
        // The run is encoded here, on the caller's thread: the writer thread is what
        // every commit waits on, so it only copies bytes.
        let run = match &w.run {
            Some(run) => Some((enc(run)?, run.status, run.function_id.clone())),
            None => None,
        };
        let write = PreparedWrite {
            tenant: w.tenant,
            run_id: w.run_id,
            rev: w.rev,
            run,
            user: w.run.as_ref().and_then(|r| r.user_id.clone()),
            change: w.change,
            leased: w.lease.as_ref().map(|l| l.entry.clone()),
        };
        let (reply, rx) = oneshot::channel();
        self.writer.send(Job::Run {
            write,
            lease: w.lease,
            durable: w.durability == crate::store::Durability::Durable,
            reply,
        })?;
        let (r, _write) = rx.await.map_err(|_| dropped())?;
        r
    }

    async fn find_waits(&self, queries: Vec<WaitQuery>) -> StoreResult<Vec<Vec<WaitKey>>> {
        self.read(move |r| runs::find_waits(r, &queries)).await
    }

    async fn claim(&self, req: ClaimRequest) -> StoreResult<Vec<Claimed>> {
        let (leases, kv) = (self.leases.clone(), self.kv.clone());
        let got = tokio::task::spawn_blocking(move || -> StoreResult<Vec<Claimed>> {
            let got = read_with(&*kv, |r| leases.claim(r, &req))?;
            if got.is_empty() {
                return Ok(Vec::new());
            }
            // A fresh view, opened after the claim: a step that finished gave its lease
            // back only once its result was committed, so this read sees that result.
            read_with(&*kv, |r| {
                got.into_iter()
                    .map(|lease| {
                        let run = get_run(r, &lease.entry.tenant, &lease.entry.run_id)?;
                        Ok(Claimed { lease, run })
                    })
                    .collect()
            })
        })
        .await
        .map_err(join_err)??;
        if !got.is_empty() {
            // The durable trace of each claim, for counting an attempt a crash cuts
            // short; nobody waits for it (it shares the next batch's commit).
            let marks = got
                .iter()
                .map(|l| (l.entry.clone(), Some(l.claimed_at)))
                .collect();
            self.writer.send(Job::Mark(marks))?;
        }
        Ok(got)
    }

    async fn renew(&self, leases: Vec<LeaseRef>, until: i64) -> StoreResult<Vec<bool>> {
        Ok(self.leases.renew(&leases, until))
    }

    async fn release(&self, leases: Vec<LeaseRef>, remove_entries: bool) -> StoreResult<()> {
        let held: Vec<QueueEntry> = leases
            .into_iter()
            .filter(|l| self.leases.release(l))
            .map(|l| l.entry)
            .collect();
        if held.is_empty() {
            return Ok(());
        }
        if remove_entries {
            self.writer
                .exec(false, move |w| {
                    let mut q = queue::QueueTx::default();
                    for e in &held {
                        q.del(w, e)?;
                    }
                    q.finish(w)
                })
                .await
        } else {
            self.writer
                .send(Job::Mark(held.into_iter().map(|e| (e, None)).collect()))
        }
    }

    async fn leases_of(&self, entries: Vec<QueueEntry>) -> StoreResult<Vec<Option<Lease>>> {
        Ok(self.leases.of(&entries))
    }

    async fn inflight(&self, tenant: &str) -> StoreResult<u64> {
        Ok(self.leases.count(tenant))
    }

    async fn next_due(&self, now: i64, caps: &TenantCaps) -> StoreResult<Option<i64>> {
        let leases = self.leases.clone();
        let caps = caps.clone();
        let due = self
            .read(move |r| {
                let mut best: Option<i64> = None;
                for (head, tenant) in queue::heads(r)? {
                    // Heads are in due order: no later tenant can beat what was found.
                    if best.is_some_and(|b| head >= b) {
                        break;
                    }
                    if leases.room(&tenant, &caps) == 0 {
                        continue;
                    }
                    queue::scan_due(r, &tenant, i64::MAX, None, &mut |e| {
                        if best.is_some_and(|b| e.due >= b) {
                            return false;
                        }
                        if !leases.is_leased(&e) {
                            best = Some(e.due);
                            return false;
                        }
                        true
                    })?;
                }
                Ok(best)
            })
            .await?;
        let _ = now;
        Ok(match (due, self.leases.next_expiry()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    async fn claims_not_durable(&self) -> StoreResult<u64> {
        Ok(self.leases.unflushed())
    }

    async fn flush(&self) -> StoreResult<()> {
        // Through the writer, so that everything queued before is covered.
        self.writer.exec(true, |_| Ok(())).await
    }
}

#[cfg(test)]
mod tests;
