//! The per-user index in the embedded layout. Every write that stores an event or
//! creates a run or moves a run to another status updates it in the same transaction,
//! so reading a user never scans:
//!
//! - [`USERS`] (tenant, user) → the summary record (last activity, event count, the
//!   latest `user` object, when it was erased);
//! - [`USER_EVENTS`] (tenant, user, event id) and the runs' own `RUNS_BY_USER`
//!   (tenant, user, run id): the timeline, two indexes of ULIDs merged newest first;
//! - [`USERS_BY_SEEN`] (tenant, big-endian last activity, user): users by last activity;
//! - [`USER_RUNS`] (tenant, user, status, run id) and [`USER_COUNTS`] (tenant, user,
//!   status): the user's runs in a status, and how many.
//!
//! A user id that cannot be a key component (empty, longer than 512 bytes, or with a
//! NUL) is not indexed; its events and runs are stored as ever.

mod erase;
mod migrate;
mod read;
mod store;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::kv::{KvWrite, Table};
use super::schema::*;
use crate::event::Event;
use crate::run::{Run, RunStatus};
use crate::store::StoreResult;

pub use migrate::migrate;

/// Per-user summaries by tenant and user.
pub const USERS: Table = "users";
/// Index: tenant, user, event id.
pub const USER_EVENTS: Table = "user_events";
/// Index: tenant, NUL, big-endian last activity, user.
pub const USERS_BY_SEEN: Table = "users_by_seen";
/// Index: tenant, user, status, run id.
pub const USER_RUNS: Table = "user_runs";
/// Run counts by tenant, user and status.
pub const USER_COUNTS: Table = "user_counts";

/// The user tables, created at open beside [`ALL_TABLES`].
pub const USER_TABLES: [Table; 5] = [USERS, USER_EVENTS, USERS_BY_SEEN, USER_RUNS, USER_COUNTS];

/// The summary record under [`USERS`] (the run counts live in [`USER_COUNTS`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    /// When weir last stored an event of the user.
    pub last_seen: i64,
    /// Events stored.
    pub events: u64,
    /// The latest `user` object seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Map<String, Value>>,
    /// When the user's payloads were last erased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased_at: Option<i64>,
}

/// Whether `user` can be indexed (it is a usable key component).
pub fn indexable(user: &str) -> bool {
    check_name("user", user).is_ok()
}

/// The summary key.
pub fn user_key(tenant: &str, user: &str) -> Vec<u8> {
    key(&[tenant.as_bytes(), user.as_bytes()])
}

/// The prefix of everything a user's index holds under `(tenant, user)`.
pub fn user_prefix(tenant: &str, user: &str) -> Vec<u8> {
    prefix(&[tenant.as_bytes(), user.as_bytes()])
}

/// The last-activity key.
pub fn seen_key(tenant: &str, last_seen: i64, user: &str) -> Vec<u8> {
    let mut k = prefix(&[tenant.as_bytes()]);
    k.extend_from_slice(&(last_seen.max(0) as u64).to_be_bytes());
    k.extend_from_slice(user.as_bytes());
    k
}

/// The key of a run in the user's status index.
pub fn user_run_key(tenant: &str, user: &str, status: RunStatus, run: &str) -> Vec<u8> {
    key(&[
        tenant.as_bytes(),
        user.as_bytes(),
        status.as_str().as_bytes(),
        run.as_bytes(),
    ])
}

/// The key of the user's count of runs in `status`.
pub fn user_count_key(tenant: &str, user: &str, status: RunStatus) -> Vec<u8> {
    key(&[
        tenant.as_bytes(),
        user.as_bytes(),
        status.as_str().as_bytes(),
    ])
}

/// Writes a user's summary, moving its last-activity key if the time changed
/// (`old_seen` is the stored record's, `None` if there was none).
pub fn put_record(
    w: &mut (impl KvWrite + ?Sized),
    tenant: &str,
    user: &str,
    old_seen: Option<i64>,
    rec: &UserRecord,
) -> StoreResult<()> {
    if old_seen != Some(rec.last_seen) {
        if let Some(o) = old_seen {
            w.del(USERS_BY_SEEN, &seen_key(tenant, o, user))?;
        }
        w.put(USERS_BY_SEEN, &seen_key(tenant, rec.last_seen, user), &[])?;
    }
    w.put(USERS, &user_key(tenant, user), &enc(rec)?)
}

/// Indexes appended events under their users (in the append's transaction): each event
/// in the user's event index, and per user one summary update for the whole batch.
pub fn on_append(
    w: &mut (impl KvWrite + ?Sized),
    tenant: &str,
    events: &[Event],
    now: i64,
) -> StoreResult<()> {
    let mut per_user: BTreeMap<String, (u64, &Map<String, Value>)> = BTreeMap::new();
    for ev in events {
        let (Some(u), Some(obj)) = (ev.user_id(), ev.user.as_ref()) else {
            continue;
        };
        if !indexable(&u) {
            continue;
        }
        w.put(
            USER_EVENTS,
            &key(&[tenant.as_bytes(), u.as_bytes(), ev.id.as_bytes()]),
            &[],
        )?;
        let e = per_user.entry(u).or_insert((0, obj));
        e.0 += 1;
        e.1 = obj;
    }
    for (u, (n, obj)) in per_user {
        let uk = user_key(tenant, &u);
        let old: Option<UserRecord> = get_json(w, USERS, &uk)?;
        let old_seen = old.as_ref().map(|r| r.last_seen);
        let mut rec = old.unwrap_or_default();
        rec.events += n;
        rec.user = Some(obj.clone());
        rec.last_seen = rec.last_seen.max(now);
        put_record(w, tenant, &u, old_seen, &rec)?;
    }
    Ok(())
}

/// Indexes a new run under its user (in the ingest's transaction).
pub fn on_run_created(w: &mut (impl KvWrite + ?Sized), tenant: &str, run: &Run) -> StoreResult<()> {
    let Some(u) = run.user_id.as_deref().filter(|u| indexable(u)) else {
        return Ok(());
    };
    w.put(
        USER_RUNS,
        &user_run_key(tenant, u, run.status, &run.id),
        &[],
    )?;
    counter_add(w, USER_COUNTS, &user_count_key(tenant, u, run.status), 1)
}

/// Moves a run from `old` to `new` in its user's status index and counts (in the run
/// write's transaction).
pub fn on_status_change(
    w: &mut (impl KvWrite + ?Sized),
    tenant: &str,
    user: Option<&str>,
    run: &str,
    old: RunStatus,
    new: RunStatus,
) -> StoreResult<()> {
    let Some(u) = user.filter(|u| indexable(u)) else {
        return Ok(());
    };
    if old == new {
        return Ok(());
    }
    w.del(USER_RUNS, &user_run_key(tenant, u, old, run))?;
    w.put(USER_RUNS, &user_run_key(tenant, u, new, run), &[])?;
    counter_add(w, USER_COUNTS, &user_count_key(tenant, u, old), -1)?;
    counter_add(w, USER_COUNTS, &user_count_key(tenant, u, new), 1)
}

#[cfg(test)]
mod tests;
