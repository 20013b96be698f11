//! Durable storage behind one trait; the engine never sees a concrete backend.

mod keys;
pub mod redb;
pub mod sled;

#[cfg(test)]
mod conformance;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::Event;
use crate::run::{QueueEntry, Run, RunStatus, WaitKey};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (I/O, corruption…).
    #[error("storage backend error: {0}")]
    Backend(String),
    /// A stored record does not decode.
    #[error("corrupt record under {key}: {reason}")]
    Corrupt { key: String, reason: String },
    /// A name is not usable as part of a key.
    #[error("invalid {what} `{value}`: {reason}")]
    InvalidName {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// Result alias for storage calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// An event as stored, with the runs it started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// The event.
    pub event: Event,
    /// Runs it started (filled in once triggers have been matched).
    #[serde(default)]
    pub run_ids: Vec<String>,
    /// The id of the earlier event with the same idempotency key, if this one repeats it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
    /// Whether triggers have been matched yet.
    #[serde(default)]
    pub ingested: bool,
}

/// One deployed version of a function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionRecord {
    /// Function id.
    pub id: String,
    /// Version, from 1.
    pub version: u64,
    /// The definition as deployed (JSON).
    pub def: Value,
    /// Deploy time (ms since epoch).
    pub created_at: i64,
}

/// Filters for listing runs; unset fields match everything.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only runs of this function.
    pub function: Option<String>,
    /// Only runs in this status.
    pub status: Option<RunStatus>,
    /// Only runs of this user.
    pub user: Option<String>,
    /// Only runs started by this event.
    pub event: Option<String>,
}

impl RunFilter {
    /// Whether `run` passes the filter.
    pub fn matches(&self, run: &Run) -> bool {
        self.function.as_ref().is_none_or(|f| &run.function_id == f)
            && self.status.is_none_or(|s| run.status == s)
            && self
                .user
                .as_ref()
                .is_none_or(|u| run.user_id.as_ref() == Some(u))
            && self.event.as_ref().is_none_or(|e| &run.event_id == e)
    }
}

/// A page of results, newest first, with the cursor to the next page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// Items.
    pub data: Vec<T>,
    /// Pass back as `cursor` to get the next page; `None` at the end.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from up to `limit + 1` items, newest first: the one past `limit` only says
    /// that more follow, and the cursor is the id of the last one kept.
    pub(crate) fn from_overfull(mut data: Vec<T>, limit: usize, id: impl Fn(&T) -> String) -> Self {
        let next_cursor = if data.len() > limit {
            data.truncate(limit);
            data.last().map(id)
        } else {
            None
        };
        Page { data, next_cursor }
    }
}

/// The runs one event started, for [`Store::commit_ingest`].
#[derive(Debug, Clone, PartialEq)]
pub struct Ingested {
    /// Tenant of the event.
    pub tenant: String,
    /// The event's id.
    pub event_id: String,
    /// The runs it started, each with its queue entries and waits.
    pub runs: Vec<(Run, RunChange)>,
}

/// What a run update asks the store to do besides writing the run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunChange {
    /// Queue entries to delete.
    pub dequeue: Vec<QueueEntry>,
    /// Queue entries to add.
    pub enqueue: Vec<QueueEntry>,
    /// Wait index entries to add.
    pub waits_add: Vec<WaitKey>,
    /// Wait index entries to delete.
    pub waits_remove: Vec<WaitKey>,
}

impl RunChange {
    /// Appends another change's operations to this one.
    pub fn extend(&mut self, other: RunChange) {
        self.dequeue.extend(other.dequeue);
        self.enqueue.extend(other.enqueue);
        self.waits_add.extend(other.waits_add);
        self.waits_remove.extend(other.waits_remove);
    }
}

/// How durable a write must be before the call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Flushed to disk (fsync) before returning.
    Durable,
    /// Applied atomically, flushed later (lost on a crash only as a whole).
    Lazy,
}

/// A run's read-modify-write: returns `None` to leave the run untouched.
pub type RunUpdate<'a> = dyn FnMut(&mut Run) -> Option<RunChange> + Send + 'a;

/// One run update of a batch (see [`Store::update_runs`]).
pub struct RunOp {
    /// Tenant of the run.
    pub tenant: String,
    /// Run id.
    pub id: String,
    /// The read-modify-write, as for [`Store::update_run`].
    pub update: Box<RunUpdate<'static>>,
}

/// How many due entries each of `tenants` tenants gets before any gets more, out of
/// `limit` (see [`Store::due`]).
pub(crate) fn fair_share(limit: usize, tenants: usize) -> usize {
    limit.div_ceil(tenants.max(1)).max(1)
}

/// One tenant's events for [`Store::append_batches`].
#[derive(Debug, Clone, PartialEq)]
pub struct EventBatch {
    /// Tenant of the events.
    pub tenant: String,
    /// The events, as for [`Store::append_events`].
    pub events: Vec<Event>,
    /// The time their `ts` is compared with.
    pub now: i64,
}

/// Durable storage for everything weir keeps. Every method is atomic.
pub trait Store: Send + Sync + 'static {
    /// Stores events durably. Returns, per event, the id of an earlier event with the
    /// same idempotency key (then the new one triggers nothing), or `None` if it is new.
    /// An event whose `ts` is later than `now` stays out of the pending set until then.
    fn append_events(
        &self,
        tenant: &str,
        events: &[Event],
        now: i64,
    ) -> StoreResult<Vec<Option<String>>>;
    /// Several tenants' appends in one atomic write — all of them or none — as
    /// [`Store::append_events`] does each in turn (a key repeated in a later batch is a
    /// duplicate of the earlier one); flushed before returning if `durability` is
    /// `Durable`. Returns each batch's answer.
    fn append_batches(
        &self,
        batches: &[EventBatch],
        durability: Durability,
    ) -> StoreResult<Vec<Vec<Option<String>>>>;
    /// One stored event.
    fn get_event(&self, tenant: &str, id: &str) -> StoreResult<Option<StoredEvent>>;
    /// Events, newest first, optionally of one name.
    fn list_events(
        &self,
        tenant: &str,
        name: Option<&str>,
        limit: usize,
        cursor: Option<&str>,
    ) -> StoreResult<Page<StoredEvent>>;
    /// Events whose triggers have not been matched yet and whose time has come (`ts` ≤
    /// `now`), oldest first, with their tenant.
    fn pending_events(&self, now: i64, limit: usize) -> StoreResult<Vec<(String, Event)>>;
    /// How many events await trigger matching (due now or held back), without reading them.
    fn pending_count(&self) -> StoreResult<u64>;
    /// The earliest `ts` of a future-dated event still held back.
    fn next_delayed(&self) -> StoreResult<Option<i64>>;
    /// Records, for each event of the batch, the runs it started with their queue
    /// entries and waits (only the additions of each `RunChange` apply), atomically (one
    /// fsync for the whole batch if `durability` is `Durable`); the events leave the
    /// pending set. An event already recorded is left as it is.
    fn commit_ingest(&self, batch: &[Ingested], durability: Durability) -> StoreResult<()>;
    /// The waits that an event named `event` may resolve: those indexed under a path for
    /// which `lookup` gives the expected value, and every unindexed one.
    fn find_waits(
        &self,
        tenant: &str,
        event: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> StoreResult<Vec<WaitKey>>;
    /// A small durable value (engine bookkeeping such as cron ticks).
    fn get_meta(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Sets a small durable value.
    fn put_meta(&self, key: &str, value: &[u8]) -> StoreResult<()>;

    /// Stores a new version of function `id` and returns its number (1 for the first).
    fn put_function(&self, tenant: &str, id: &str, def: &Value, now: i64) -> StoreResult<u64>;
    /// One version of a function.
    fn get_function(
        &self,
        tenant: &str,
        id: &str,
        version: u64,
    ) -> StoreResult<Option<FunctionRecord>>;
    /// Every version of a function, oldest first.
    fn function_versions(&self, tenant: &str, id: &str) -> StoreResult<Vec<FunctionRecord>>;
    /// The latest version of every function of every tenant.
    fn latest_functions(&self) -> StoreResult<Vec<(String, FunctionRecord)>>;
    /// Run counts of a function by status.
    fn run_counts(&self, tenant: &str, function_id: &str) -> StoreResult<BTreeMap<RunStatus, u64>>;

    /// Stores a component's bytes under its sha256 (hex).
    fn put_component(&self, tenant: &str, sha256: &str, bytes: &[u8]) -> StoreResult<()>;
    /// A component's bytes.
    fn get_component(&self, tenant: &str, sha256: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Stores a compiled artefact (derived data, shared by tenants).
    fn put_artifact(&self, key: &str, bytes: &[u8]) -> StoreResult<()>;
    /// A compiled artefact.
    fn get_artifact(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;

    /// One run.
    fn get_run(&self, tenant: &str, id: &str) -> StoreResult<Option<Run>>;
    /// Runs, newest first.
    fn list_runs(
        &self,
        tenant: &str,
        filter: &RunFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> StoreResult<Page<Run>>;
    /// Reads run `id`, lets `update` change it, and writes the run with the queue
    /// changes it returns in one atomic batch. `update` may be called more than once
    /// (on a conflicting concurrent write) and must then decide afresh. Returns the
    /// run as written, or as found if `update` returned `None`.
    fn update_run(
        &self,
        tenant: &str,
        id: &str,
        durability: Durability,
        update: &mut RunUpdate<'_>,
    ) -> StoreResult<Option<Run>>;

    /// Applies several run updates, in order, in one atomic write (one fsync if
    /// `durability` is `Durable`); a later op on the same run sees the earlier ones.
    /// A `Durable` call returns with everything written before it on disk, even if these
    /// updates changed nothing.
    /// Returns each run as written or found (`None` if missing).
    fn update_runs(
        &self,
        ops: &mut [RunOp],
        durability: Durability,
    ) -> StoreResult<Vec<Option<Run>>>;
    /// Up to `limit` queue entries due at or before `now`, at most `room(tenant)` of each
    /// tenant, skipping those `skip` names; each tenant's entries earliest first. redb,
    /// the default, keeps a queue per tenant: a tenant without room costs it one key
    /// however deep its backlog, tenants with the most room (running the fewest steps)
    /// come first, oldest queue first among equals, and each gets a fair share of `limit`
    /// before any gets more. sled scans one due-ordered queue and serves it in due order.
    fn due(
        &self,
        now: i64,
        limit: usize,
        room: &dyn Fn(&str) -> usize,
        skip: &dyn Fn(&QueueEntry) -> bool,
    ) -> StoreResult<Vec<QueueEntry>>;
    /// Records that the steps of these queue entries started executing at the given
    /// times (ms), if the entries still exist (not durably: the caller flushes). An
    /// entry's claim goes when the entry does.
    fn mark_claimed(&self, claims: &[(QueueEntry, i64)]) -> StoreResult<()>;
    /// Entries whose claim was recorded and never resolved: steps that were executing
    /// when the process stopped.
    fn claimed(&self) -> StoreResult<Vec<(QueueEntry, i64)>>;
    /// Withdraws the claims of these entries (steps abandoned by a clean shutdown, to be
    /// run again without counting an attempt). Not durable: the caller flushes.
    fn clear_claims(&self, entries: &[QueueEntry]) -> StoreResult<()>;
    /// Removes one queue entry (a stray one whose run is gone).
    fn dequeue(&self, entry: &QueueEntry) -> StoreResult<()>;
    /// The earliest due time in the queue, if any, not counting entries `skip` names nor
    /// tenants without room.
    fn next_due(
        &self,
        room: &dyn Fn(&str) -> usize,
        skip: &dyn Fn(&QueueEntry) -> bool,
    ) -> StoreResult<Option<i64>>;
    /// Flushes everything written so far to disk.
    fn flush(&self) -> StoreResult<()>;
}
