//! Messages between the processes that share a store: what one process's live stream
//! shows, sent to the others (design §12). A store that one process owns has no feed;
//! a shared one (Redis) carries it on pub/sub. Delivery is best effort — a process
//! that is disconnected for a while misses what was sent meanwhile — so nothing durable
//! rides on it.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::StoreResult;

/// The channel between processes.
#[async_trait]
pub trait Feed: Send + Sync {
    /// Sends `msg` to every process subscribed, this one included.
    async fn publish(&self, msg: Vec<u8>) -> StoreResult<()>;
    /// What any process publishes from now on, until the receiver is dropped; it
    /// reconnects by itself when the connection drops.
    async fn subscribe(&self) -> StoreResult<mpsc::Receiver<Vec<u8>>>;
}

/// Whether a store is shared by several processes, and their feed if so.
pub trait FeedStore {
    /// The feed between the processes sharing this store; `None` when one process owns it.
    fn feed(&self) -> Option<Arc<dyn Feed>> {
        None
    }
}
