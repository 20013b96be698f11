//! The blobs part of the seam: uploaded components and their compiled artefacts.

use async_trait::async_trait;

use super::StoreResult;

/// Component bytes (per tenant) and compiled artefacts (derived data, shared).
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores a component's bytes durably under its sha256 (hex).
    async fn put_component(&self, tenant: &str, sha256: &str, bytes: Vec<u8>) -> StoreResult<()>;
    /// A component's bytes.
    async fn get_component(&self, tenant: &str, sha256: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Stores a compiled artefact (losing it in a crash only costs a recompile).
    async fn put_artifact(&self, key: &str, bytes: Vec<u8>) -> StoreResult<()>;
    /// A compiled artefact.
    async fn get_artifact(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;
}
