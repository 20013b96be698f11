//! The functions part of the seam: immutable versions of definitions, and small durable
//! values the engine keeps (cron ticks).

use async_trait::async_trait;
use serde_json::Value;

use super::{FunctionRecord, StoreResult};

/// Function versions and engine bookkeeping.
#[async_trait]
pub trait FunctionStore: Send + Sync {
    /// Stores a new version of function `id` durably and returns its number (1 first).
    async fn put_function(&self, tenant: &str, id: &str, def: &Value, now: i64)
        -> StoreResult<u64>;
    /// One version of a function.
    async fn get_function(
        &self,
        tenant: &str,
        id: &str,
        version: u64,
    ) -> StoreResult<Option<FunctionRecord>>;
    /// Every version of a function, oldest first.
    async fn function_versions(&self, tenant: &str, id: &str) -> StoreResult<Vec<FunctionRecord>>;
    /// The latest version of every function of every tenant.
    async fn latest_functions(&self) -> StoreResult<Vec<(String, FunctionRecord)>>;
    /// A number that changes whenever any process sharing the store deploys a function
    /// or changes a rollout or schema (`None`: only this process writes, nothing to
    /// watch).
    async fn config_version(&self) -> StoreResult<Option<u64>> {
        Ok(None)
    }
    /// A small durable value.
    async fn get_meta(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Sets a small durable value to `value` only if it is `expected` now (`None`: only if
    /// unset); returns whether it was set. Several processes can thus agree on who
    /// fires a cron tick.
    async fn put_meta_if(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> StoreResult<bool>;
}
