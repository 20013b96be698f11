//! The replays part of the seam: a replay's record and its selected events, and the
//! atomic step that starts a batch of its runs together with its progress, so a replay
//! interrupted at any moment goes on without starting any event's run twice.

use async_trait::async_trait;

use super::{Page, ReplayItem, ReplayState, RunChange, StoreResult};
use crate::event::Event;
use crate::run::Run;

/// Replays and their progress.
#[async_trait]
pub trait ReplayStore: Send + Sync {
    /// Stores a new replay durably with its selected events, in order; `events` are
    /// events given inline, stored as already matched (they start no run by trigger).
    async fn create_replay(
        &self,
        tenant: &str,
        state: ReplayState,
        items: Vec<ReplayItem>,
        events: Vec<Event>,
    ) -> StoreResult<()>;
    /// One replay.
    async fn get_replay(&self, tenant: &str, id: &str) -> StoreResult<Option<ReplayState>>;
    /// A tenant's replays, newest first.
    async fn list_replays(
        &self,
        tenant: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> StoreResult<Page<ReplayState>>;
    /// Every tenant's running replays, with their tenant.
    async fn running_replays(&self) -> StoreResult<Vec<(String, ReplayState)>>;
    /// Up to `limit` of a replay's events from position `from`.
    async fn replay_items(
        &self,
        tenant: &str,
        id: &str,
        from: u64,
        limit: usize,
    ) -> StoreResult<Vec<ReplayItem>>;
    /// Durably, in one atomic write: sets the replay to `state` and creates `runs` (each
    /// indexed under the replay and added to its event's runs, its queue entries and
    /// waits added) — only if the stored replay is still running and has done exactly
    /// `expected_done` events; returns whether it did.
    async fn advance_replay(
        &self,
        tenant: &str,
        expected_done: u64,
        state: ReplayState,
        runs: Vec<(Run, RunChange)>,
    ) -> StoreResult<bool>;
}
