//! The runtime's view of storage: components and compiled artefacts, nothing else.

use std::sync::Arc;

use async_trait::async_trait;

use crate::runtime::ComponentSource;
use crate::store::Store;

struct StoreComponents(Arc<dyn Store>);

#[async_trait]
impl ComponentSource for StoreComponents {
    async fn component(&self, tenant: &str, sha256: &str) -> Result<Option<Vec<u8>>, String> {
        self.0
            .get_component(tenant, sha256)
            .await
            .map_err(|e| e.to_string())
    }

    async fn artifact(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.0.get_artifact(key).await.map_err(|e| e.to_string())
    }

    async fn put_artifact(&self, key: &str, bytes: Vec<u8>) -> Result<(), String> {
        self.0
            .put_artifact(key, bytes)
            .await
            .map_err(|e| e.to_string())
    }
}

/// The components and artefacts of `store`, as a step runtime reads them.
pub fn components_of(store: Arc<dyn Store>) -> Arc<dyn ComponentSource> {
    Arc::new(StoreComponents(store))
}
