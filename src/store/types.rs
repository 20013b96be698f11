//! The values that cross the store seam: plain data, no callbacks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::Event;
use crate::run::{QueueEntry, Run, RunStatus, WaitKey};
use crate::store::{StoreError, StoreResult};

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

/// Filters for listing events; unset fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only events of this name.
    pub name: Option<String>,
    /// Only events stored with schema errors (accepted by a `warn`-mode schema).
    pub invalid: bool,
}

impl EventFilter {
    /// Whether `event` passes the filter.
    pub fn matches(&self, event: &Event) -> bool {
        self.name.as_ref().is_none_or(|n| &event.name == n)
            && (!self.invalid || !event.schema_errors.is_empty())
    }
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
    /// Only runs started by this replay.
    pub replay: Option<String>,
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
            && self
                .replay
                .as_ref()
                .is_none_or(|r| run.replay_id.as_ref() == Some(r))
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
    pub fn from_overfull(mut data: Vec<T>, limit: usize, id: impl Fn(&T) -> String) -> Self {
        let next_cursor = if data.len() > limit {
            data.truncate(limit);
            data.last().map(id)
        } else {
            None
        };
        Page { data, next_cursor }
    }
}

/// The runs one event started, for [`super::EventStore::commit_ingest`].
#[derive(Debug, Clone, PartialEq)]
pub struct Ingested {
    /// Tenant of the event.
    pub tenant: String,
    /// The event's id.
    pub event_id: String,
    /// The runs it started, each with its queue entries and waits.
    pub runs: Vec<(Run, RunChange)>,
}

/// What a run write asks the store to do besides writing the run.
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

    /// Whether the change does nothing.
    pub fn is_empty(&self) -> bool {
        self.dequeue.is_empty()
            && self.enqueue.is_empty()
            && self.waits_add.is_empty()
            && self.waits_remove.is_empty()
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

/// The most steps each tenant may execute at once, across every process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantCaps {
    /// The cap of a tenant not listed in `per_tenant`.
    pub default: u64,
    /// Per-tenant caps.
    pub per_tenant: BTreeMap<String, u64>,
}

impl TenantCaps {
    /// The same cap for every tenant.
    pub fn uniform(cap: u64) -> Self {
        Self {
            default: cap,
            per_tenant: BTreeMap::new(),
        }
    }

    /// The cap of `tenant` (at least 1).
    pub fn of(&self, tenant: &str) -> u64 {
        self.per_tenant
            .get(tenant)
            .copied()
            .unwrap_or(self.default)
            .max(1)
    }
}

/// What [`super::RunStore::claim`] is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    /// Who claims (one id per process start).
    pub owner: String,
    /// The current time (ms since epoch): entries due by then are claimable, and leases
    /// expired by then are taken over.
    pub now: i64,
    /// Most entries to claim.
    pub limit: usize,
    /// How long the leases last unless renewed (ms).
    pub lease_ms: i64,
    /// Per-tenant caps on leases held at once.
    pub caps: TenantCaps,
}

/// A claimed queue entry: its step may execute under this lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The entry.
    pub entry: QueueEntry,
    /// The fencing token: writes under this lease name it, and are refused once another
    /// claim has taken the entry.
    pub token: u64,
    /// Who holds it.
    pub owner: String,
    /// When the step was claimed (its attempt's start).
    pub claimed_at: i64,
    /// When the lease lapses unless renewed.
    pub expires_at: i64,
    /// When this lease took over an expired one: when that earlier attempt began (it was
    /// cut short, and counts as a failed attempt).
    pub took_over: Option<i64>,
}

impl Lease {
    /// The reference that writes under this lease carry.
    pub fn lease_ref(&self) -> LeaseRef {
        LeaseRef {
            entry: self.entry.clone(),
            token: self.token,
        }
    }
}

/// A claimed entry with its run, read after the claim (so that a step that has just
/// finished is seen finished, not run again); `None` if the run is gone.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The lease.
    pub lease: Lease,
    /// The entry's run, with its revision.
    pub run: Option<Run>,
}

impl std::ops::Deref for Claimed {
    type Target = Lease;

    fn deref(&self) -> &Lease {
        &self.lease
    }
}

/// Names a lease in a write: the entry and the fencing token it was claimed with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseRef {
    /// The leased entry.
    pub entry: QueueEntry,
    /// Its fencing token.
    pub token: u64,
}

/// A run's state transition, applied atomically if its preconditions hold.
#[derive(Debug, Clone, PartialEq)]
pub struct RunWrite {
    /// Tenant of the run.
    pub tenant: String,
    /// Run id.
    pub run_id: String,
    /// The revision the new state was computed from: the write is refused
    /// ([`WriteOutcome::Conflict`]) if the stored run has moved on since.
    pub rev: u64,
    /// The new state; `None` leaves the run as it is (only `change` and the lease apply).
    pub run: Option<Run>,
    /// Queue and wait-index changes that go with it.
    pub change: RunChange,
    /// The lease this write is made under: refused ([`WriteOutcome::LeaseLost`]) unless
    /// its token still holds; released (its tenant's count with it) by the write.
    pub lease: Option<LeaseRef>,
    /// How durable the write must be before the call returns.
    pub durability: Durability,
}

/// What became of a [`RunWrite`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Applied; the run's new revision.
    Written {
        /// The revision now stored.
        rev: u64,
    },
    /// The run moved on since `rev`: read it again and decide afresh.
    Conflict,
    /// The lease is no longer held (expired and taken over, or released): the write was
    /// refused so that it cannot overwrite the new holder's.
    LeaseLost,
    /// No such run.
    Missing,
}

/// One incoming event to look up in the wait index.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitQuery {
    /// Tenant of the event.
    pub tenant: String,
    /// Its name.
    pub event: String,
    /// The event as JSON (the indexed paths are looked up in it); shared, not copied.
    pub incoming: std::sync::Arc<Value>,
}

/// The value at a dotted path, as canonical JSON (the wait index's key form).
pub fn lookup_path(v: &Value, path: &str) -> Option<String> {
    let mut cur = v;
    for p in path.split('.') {
        cur = cur.get(p)?;
    }
    (!cur.is_null()).then(|| cur.to_string())
}

/// How many entries each of `tenants` tenants gets before any gets more, out of `limit`.
pub fn fair_share(limit: usize, tenants: usize) -> usize {
    limit.div_ceil(tenants.max(1)).max(1)
}

/// A replay as stored: what the store needs to know of it (whether it is still
/// running, how many of its events are done) and the engine's record, opaque here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayState {
    /// Replay id (ULID).
    pub id: String,
    /// Whether it still has events to go through (not completed or cancelled).
    pub running: bool,
    /// How many of its events have been gone through.
    pub done: u64,
    /// The engine's record (spec, status, counts, differences).
    pub record: Value,
}

/// One event a replay goes through, in its order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayItem {
    /// The stored event's id.
    pub event_id: String,
    /// The run of the replayed function this event started originally, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_run_id: Option<String>,
}

/// Checks that `value` can be a part of a store's key: not empty, at most 512 bytes, no
/// NUL byte (the embedded stores' separator); every backend refuses the same names.
pub fn check_key_part(what: &'static str, value: &str) -> StoreResult<()> {
    let reason = if value.is_empty() {
        "must not be empty"
    } else if value.len() > 512 {
        "is longer than 512 bytes"
    } else if value.as_bytes().contains(&0) {
        "contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(StoreError::InvalidName {
        what,
        value: value.chars().take(64).collect(),
        reason,
    })
}

impl WaitKey {
    /// Refuses a wait whose tenant, event name or path cannot be a key part.
    pub fn check(&self) -> StoreResult<()> {
        check_key_part("tenant", &self.tenant)?;
        check_key_part("event name", &self.event)?;
        check_key_part("path", &self.path)
    }
}
