//! The feed between the processes on one Redis: one pub/sub channel per namespace.
//! Published through the shared connection; heard on a connection of its own to the
//! first node named (a Redis Cluster forwards every PUBLISH to all its nodes, so one
//! node hears them all), which reconnects by itself when it drops.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::backend;
use super::conn::Conn;
use crate::store::{Feed, StoreResult};

/// Messages waiting to be read; beyond this the newest are dropped (a reader that far
/// behind is the live stream's slow listener, told it lagged).
const INBOX: usize = 8_192;

pub struct RedisFeed {
    pub(super) conn: Conn,
    /// The node subscribed to.
    pub(super) node: String,
    pub(super) channel: String,
}

async fn listen(node: &str, channel: &str) -> StoreResult<redis::aio::PubSub> {
    let client = redis::Client::open(node).map_err(backend)?;
    let mut ps = client.get_async_pubsub().await.map_err(backend)?;
    ps.subscribe(channel).await.map_err(backend)?;
    Ok(ps)
}

#[async_trait]
impl Feed for RedisFeed {
    async fn publish(&self, msg: Vec<u8>) -> StoreResult<()> {
        let mut c = self.conn.clone();
        redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(msg)
            .query_async::<i64>(&mut c)
            .await
            .map(drop)
            .map_err(backend)
    }

    async fn subscribe(&self) -> StoreResult<mpsc::Receiver<Vec<u8>>> {
        let (tx, rx) = mpsc::channel(INBOX);
        let mut ps = listen(&self.node, &self.channel).await?;
        let (node, channel) = (self.node.clone(), self.channel.clone());
        tokio::spawn(async move {
            loop {
                let mut messages = ps.into_on_message();
                while let Some(m) = messages.next().await {
                    match tx.try_send(m.get_payload_bytes().to_vec()) {
                        Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                    }
                }
                // The connection dropped: what is published until it is back is missed.
                ps = loop {
                    if tx.is_closed() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    match listen(&node, &channel).await {
                        Ok(ps) => break ps,
                        Err(e) => tracing::debug!("the feed cannot reconnect yet: {e}"),
                    }
                };
            }
        });
        Ok(rx)
    }
}
