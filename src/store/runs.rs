//! The runs part of the seam: runs with revisions, the ready queue with leases and
//! fencing tokens, per-tenant in-flight counts, and the wait index.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::{
    ClaimRequest, Claimed, Lease, LeaseRef, Page, RunFilter, RunWrite, StoreResult, TenantCaps,
    WaitQuery, WriteOutcome,
};
use crate::run::{QueueEntry, Run, RunStatus, WaitKey};

/// Runs, their queue and its leases.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// One run, with its current revision in `rev`.
    async fn get_run(&self, tenant: &str, id: &str) -> StoreResult<Option<Run>>;
    /// Runs, newest first.
    async fn list_runs(
        &self,
        tenant: &str,
        filter: &RunFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> StoreResult<Page<Run>>;
    /// Run counts of a function by status.
    async fn run_counts(
        &self,
        tenant: &str,
        function_id: &str,
    ) -> StoreResult<BTreeMap<RunStatus, u64>>;
    /// Applies one state transition atomically: the run (if given) with its queue and wait
    /// changes, its status index and counts, and the release of its lease — only if the
    /// stored revision is still `rev` and the lease's token still holds.
    async fn write_run(&self, write: RunWrite) -> StoreResult<WriteOutcome>;
    /// For each incoming event, the waits it may resolve: those indexed under a path whose
    /// value in the event is the expected one, and every unindexed one.
    async fn find_waits(&self, queries: Vec<WaitQuery>) -> StoreResult<Vec<Vec<WaitKey>>>;

    /// Claims up to `limit` entries for `owner`: first entries whose lease has expired
    /// (taken over, with a new token; the tenant's count is unchanged), then unleased
    /// entries due by `now`, at most each tenant's cap minus the leases it holds, the
    /// tenants holding the fewest first and each getting a fair share before any gets
    /// more; each tenant's entries earliest first. Every claimed entry gets a fresh
    /// fencing token, greater than any given before. Each comes with its run, read after
    /// the claim (one trip for a network backend).
    async fn claim(&self, req: ClaimRequest) -> StoreResult<Vec<Claimed>>;
    /// Extends leases to `until`; per lease, whether its step should go on: `false` if
    /// it was lost (a lost one is not renewed) or if a write removed its entry meanwhile
    /// (the run moved on without it, as a cancel made in any process does; such a lease
    /// stays held until its holder writes or releases it).
    async fn renew(&self, leases: Vec<LeaseRef>, until: i64) -> StoreResult<Vec<bool>>;
    /// Gives leases back without a result: their entries stay queued (or are removed, if
    /// `remove_entries`), and no attempt is counted. A lease no longer held is ignored.
    async fn release(&self, leases: Vec<LeaseRef>, remove_entries: bool) -> StoreResult<()>;
    /// The live leases on these entries (for showing executing steps), in order.
    async fn leases_of(&self, entries: Vec<QueueEntry>) -> StoreResult<Vec<Option<Lease>>>;
    /// How many leases `tenant` holds now, across every process.
    async fn inflight(&self, tenant: &str) -> StoreResult<u64>;
    /// When to look at the queue next: the earliest due time of an unleased entry of a
    /// tenant under its cap, or of a lease's expiry, if any.
    async fn next_due(&self, now: i64, caps: &TenantCaps) -> StoreResult<Option<i64>>;
    /// How many claims are not durable yet (a store that records them lazily, with its
    /// next batch, counts them until then; one whose claims are durable when made has 0).
    async fn claims_not_durable(&self) -> StoreResult<u64> {
        Ok(0)
    }
    /// Makes everything written so far durable.
    async fn flush(&self) -> StoreResult<()>;
}
