//! The live stream across processes (design §12): on a store several processes share,
//! each process's updates go to the others through the store's [`Feed`], and a process
//! whose stream has listeners says so every second, so that the others build and send
//! updates only while someone, somewhere, listens (the hot paths still pay one atomic
//! load and a clock read when nobody does). Best effort, as the feed is: a listener
//! connected while its process was cut off from the store misses what was sent then.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::stream::Update;
use super::Engine;
use crate::event::now_ms;
use crate::store::Feed;

/// How long a process's "listening" holds once heard.
const HEARD_FOR_MS: i64 = 3_000;
/// How often a process with listeners says so.
const ANNOUNCE_EVERY: Duration = Duration::from_secs(1);
/// Updates waiting to be sent; beyond this they are dropped (and counted).
const OUTBOX: usize = 8_192;
/// Updates sent in one message at most.
const BATCH: usize = 256;

/// What processes tell each other.
#[derive(Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
enum Msg {
    /// Process `o` has listeners now.
    Listening { o: String },
    /// Updates made by process `o`, each with its tenant.
    Updates { o: String, u: Vec<(String, Update)> },
}

/// This process's end of the relay, held by the bus.
pub struct Remote {
    me: String,
    feed: Arc<dyn Feed>,
    /// Until when (ms since the epoch) another process is known to have listeners.
    others_until: AtomicI64,
    outbox: mpsc::Sender<(String, Update)>,
    /// Updates dropped because the outbox was full.
    dropped: AtomicU64,
}

impl Remote {
    /// Whether another process has listeners.
    pub fn wanted(&self) -> bool {
        self.others_until.load(Ordering::Relaxed) > now_ms()
    }

    /// Updates not relayed because the outbox was full (Redis slower than the updates).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queues an update for the others.
    pub fn send(&self, tenant: &str, u: Update) {
        if self.outbox.try_send((tenant.to_string(), u)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Tells the others this process has listeners (before a new listener is told it is
    /// live, so the others' updates reach it from then on).
    pub async fn announce(&self) {
        let msg = Msg::Listening { o: self.me.clone() };
        if let Err(e) = self.feed.publish(encode(&msg)).await {
            tracing::warn!("cannot tell the other processes this one has listeners: {e}");
        }
    }
}

fn encode(m: &Msg) -> Vec<u8> {
    serde_json::to_vec(m).expect("updates serialise")
}

/// Connects the engine's bus to `feed`: subscribes, then relays both ways.
pub async fn start(engine: Arc<Engine>, feed: Arc<dyn Feed>) {
    let mut inbox = loop {
        match feed.subscribe().await {
            Ok(rx) => break rx,
            Err(e) => {
                tracing::warn!("cannot subscribe to the other processes' updates: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let (tx, mut outbox) = mpsc::channel(OUTBOX);
    let remote = Arc::new(Remote {
        me: engine.owner.clone(),
        feed: feed.clone(),
        others_until: AtomicI64::new(0),
        outbox: tx,
        dropped: AtomicU64::new(0),
    });
    engine.bus.connect(remote.clone());
    // Out: this process's updates, in batches.
    let out = feed.clone();
    let me = engine.owner.clone();
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(BATCH);
        while outbox.recv_many(&mut batch, BATCH).await > 0 {
            let u = std::mem::take(&mut batch);
            let msg = Msg::Updates { o: me.clone(), u };
            if let Err(e) = out.publish(encode(&msg)).await {
                tracing::debug!("updates not sent to the other processes: {e}");
            }
        }
    });
    // Announce while this process has listeners.
    let (bus_engine, announcer) = (engine.clone(), remote.clone());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(ANNOUNCE_EVERY).await;
            if bus_engine.bus.listeners() > 0 {
                announcer.announce().await;
            }
        }
    });
    // In: the others' updates to this process's listeners.
    while let Some(bytes) = inbox.recv().await {
        match serde_json::from_slice::<Msg>(&bytes) {
            Ok(Msg::Listening { o }) if o != remote.me => {
                remote
                    .others_until
                    .fetch_max(now_ms() + HEARD_FOR_MS, Ordering::Relaxed);
            }
            Ok(Msg::Updates { o, u }) if o != remote.me => {
                for (tenant, update) in u {
                    engine.bus.deliver(&tenant, update);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::debug!("an unreadable message from another process: {e}"),
        }
    }
}
