//! The events part of the seam: durable appends with idempotency keys, the pending set
//! that trigger matching drains, and the listing the API reads.

use async_trait::async_trait;

use super::{EventFilter, Ingested, Page, StoreResult, StoredEvent};
use crate::event::Event;

/// Stored events and their ingestion.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Stores events durably (fsynced before returning). Returns, per event, the id of an
    /// earlier event with the same idempotency key (then the new one triggers nothing),
    /// or `None` if it is new. An event whose `ts` is later than `now` stays out of the
    /// pending set until then.
    async fn append_events(
        &self,
        tenant: &str,
        events: Vec<Event>,
        now: i64,
    ) -> StoreResult<Vec<Option<String>>>;
    /// One stored event.
    async fn get_event(&self, tenant: &str, id: &str) -> StoreResult<Option<StoredEvent>>;
    /// Events, newest first, optionally of one name.
    async fn list_events(
        &self,
        tenant: &str,
        name: Option<&str>,
        limit: usize,
        cursor: Option<&str>,
    ) -> StoreResult<Page<StoredEvent>> {
        let filter = EventFilter {
            name: name.map(str::to_string),
            invalid: false,
        };
        self.list_events_where(tenant, &filter, limit, cursor).await
    }
    /// Events that pass `filter`, newest first.
    async fn list_events_where(
        &self,
        tenant: &str,
        filter: &EventFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> StoreResult<Page<StoredEvent>>;
    /// Events whose triggers have not been matched yet and whose time has come (`ts` ≤
    /// `now`), with their tenant: future-dated ones first, then each tenant's, a fair
    /// share of `limit` each (oldest first within a tenant, so one tenant's backlog does
    /// not hold another's events back), leaving out the tenants in `skip`.
    async fn pending_events(
        &self,
        now: i64,
        limit: usize,
        skip: &[String],
    ) -> StoreResult<Vec<(String, Event)>>;
    /// How many events await trigger matching (due now or held back).
    async fn pending_count(&self) -> StoreResult<u64>;
    /// The earliest `ts` of a future-dated event still held back.
    async fn next_delayed(&self) -> StoreResult<Option<i64>>;
    /// Records durably, for each event of the batch, the runs it started with their queue
    /// entries and waits (only the additions of each `RunChange` apply); the events leave
    /// the pending set. An event already recorded is left as it is.
    async fn commit_ingest(&self, batch: Vec<Ingested>) -> StoreResult<()>;
}
