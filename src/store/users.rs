//! The users part of the seam: who events and runs belong to (`event.user.id`), kept in
//! the same atomic writes as the events and runs themselves, and the erasure of a
//! user's payloads.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Page, StoreResult, StoredEvent};
use crate::run::{Run, RunStatus};

/// What weir knows about one user of a tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserSummary {
    /// The user id (`event.user.id`).
    pub id: String,
    /// When weir last stored an event of this user (ms since epoch).
    pub last_seen: i64,
    /// How many events of this user are stored.
    pub events: u64,
    /// The user's runs by status (every status, zeros included).
    pub runs: BTreeMap<RunStatus, u64>,
    /// The latest `user` object seen (`None` once erased, until the next event).
    pub user: Option<Map<String, Value>>,
    /// When the user's payloads were last erased.
    pub erased_at: Option<i64>,
}

/// One entry of a user's timeline.
#[derive(Debug, Clone, PartialEq)]
pub enum TimelineItem {
    /// An event of the user.
    Event(StoredEvent),
    /// A run of the user.
    Run(Run),
}

impl TimelineItem {
    /// The entry's id (a ULID: events and runs sort together by time).
    pub fn id(&self) -> &str {
        match self {
            TimelineItem::Event(e) => &e.event.id,
            TimelineItem::Run(r) => &r.id,
        }
    }
}

/// Where a listing of users by last activity goes on: after the user `user` last seen at
/// `last_seen`. Shown to clients as opaque hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCursor {
    /// The last shown user's last activity.
    pub last_seen: i64,
    /// The last shown user's id.
    pub user: String,
}

impl UserSummary {
    /// The cursor of a page of users that ends with this one.
    pub fn cursor(&self) -> String {
        UserCursor {
            last_seen: self.last_seen,
            user: self.id.clone(),
        }
        .encode()
    }
}

impl UserCursor {
    /// The cursor as clients see it: hex of the big-endian time and the user id.
    pub fn encode(&self) -> String {
        let mut b = (self.last_seen.max(0) as u64).to_be_bytes().to_vec();
        b.extend_from_slice(self.user.as_bytes());
        hex::encode(b)
    }

    /// Reads a cursor back; `None` if `s` is not one.
    pub fn parse(s: &str) -> Option<Self> {
        let b = hex::decode(s).ok()?;
        if b.len() < 9 {
            return None;
        }
        let last_seen = u64::from_be_bytes(b[..8].try_into().ok()?);
        let user = String::from_utf8(b[8..].to_vec()).ok()?;
        Some(Self {
            last_seen: i64::try_from(last_seen).ok()?,
            user,
        })
    }
}

/// What an erasure did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Erased {
    /// Events whose payloads were removed.
    pub events: u64,
    /// Runs whose payloads were removed.
    pub runs: u64,
}

/// Users, their timelines, and erasure.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Users by last activity, most recent first, optionally only ids starting with
    /// `prefix`.
    async fn list_users(
        &self,
        tenant: &str,
        prefix: Option<&str>,
        limit: usize,
        cursor: Option<&UserCursor>,
    ) -> StoreResult<Page<UserSummary>>;
    /// One user.
    async fn get_user(&self, tenant: &str, id: &str) -> StoreResult<Option<UserSummary>>;
    /// The user's runs now in one of `statuses`, newest first, at most `limit`.
    async fn user_runs_in(
        &self,
        tenant: &str,
        id: &str,
        statuses: &[RunStatus],
        limit: usize,
    ) -> StoreResult<Vec<Run>>;
    /// The user's events and runs interleaved, newest first; `cursor` is the id of the
    /// last entry shown.
    async fn user_timeline(
        &self,
        tenant: &str,
        id: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> StoreResult<Page<TimelineItem>>;
    /// Removes the payloads of the user's events with ids below `before` and of the runs
    /// those events started (later ones are left as they are), one atomic write per batch: each event keeps its
    /// id, name, time, runs and user id; each run its ids, function, status, timings and
    /// attempts; the summary keeps its counts, drops its `user` object and records
    /// `erased_at = now`. The caller cancels unfinished runs first.
    async fn erase_user(
        &self,
        tenant: &str,
        id: &str,
        before: &str,
        now: i64,
    ) -> StoreResult<Erased>;
}

/// The event with its payload removed: `data` empty, `user` only its id, no idempotency
/// key and no schema errors.
pub fn erase_event(e: &mut crate::event::Event) {
    e.data = Map::new();
    let id = e.user.as_ref().and_then(|u| u.get("id").cloned());
    e.user = Some(
        id.map(|id| Map::from_iter([("id".to_string(), id)]))
            .unwrap_or_default(),
    );
    e.idempotency_key = None;
    e.schema_errors = Vec::new();
}

/// The run with its payload removed: its copy of the trigger event erased like
/// [`erase_event`], and every step's output, error, log and resolving event dropped.
pub fn erase_run(r: &mut Run) {
    let mut ev = r.event.get().clone();
    if let Some(m) = ev.as_object_mut() {
        m.insert("data".into(), Value::Object(Map::new()));
        let id = m.get("user").and_then(|u| u.get("id")).cloned();
        let user = id.map(|id| Map::from_iter([("id".to_string(), id)]));
        m.insert("user".into(), Value::Object(user.unwrap_or_default()));
        m.remove("idempotency_key");
        m.remove("schema_errors");
    }
    r.event = ev.into();
    for s in &mut r.steps {
        s.output = None;
        s.error = None;
        s.log = None;
        s.async_event = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let c = UserCursor {
            last_seen: 1_700_000_000_000,
            user: "u-1 ü".into(),
        };
        assert_eq!(UserCursor::parse(&c.encode()), Some(c));
        for bad in ["", "zz", "00", "0000000000000000", "ffffffffffffffff41"] {
            assert_eq!(UserCursor::parse(bad), None, "{bad}");
        }
    }
}
