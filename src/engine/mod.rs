//! The engine: events in, runs out. It matches triggers, keeps the DAG moving, and runs
//! steps on a bounded pool, speaking only to the [`Store`] and [`StepRuntime`] traits.

mod components;
mod cron;
pub mod dag;
mod deploy;
mod error;
mod inflight;
mod ingest;
pub mod metrics;
mod outcome;
mod queries;
mod registry;
mod relay;
pub mod replay;
pub mod rollout;
mod schemas;
pub(crate) mod sends;
mod settings;
pub mod step_input;
pub mod stream;
mod transition;
mod users;
mod waits;
mod worker;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use tokio::sync::Notify;

pub use components::components_of;
pub use error::{EngineError, Resource};
pub use inflight::StepKey;
pub use outcome::classify;
pub use schemas::{FailingEvent, SchemaReport, SchemaSummary};
pub use settings::{EngineConfig, Stats, TenantCounts};
pub use users::{UserErasure, UserView};

use crate::event::{now_ms, Event};
use crate::runtime::StepRuntime;
use crate::store::Store;
use registry::Registry;

/// The running engine; clone the `Arc` to share it.
pub struct Engine {
    store: Arc<dyn Store>,
    runtime: Arc<dyn StepRuntime>,
    registry: Registry,
    /// Event schemas, compiled.
    schemas: schemas::Schemas,
    config: EngineConfig,
    /// Who this process is to the store's leases.
    owner: String,
    /// Wakes the ingest loop.
    ingest_wake: Notify,
    /// The store's configuration number last loaded (see [`Engine::sync_config`]).
    config_seen: tokio::sync::Mutex<Option<u64>>,
    /// Wakes the dispatcher.
    dispatch_wake: Notify,
    /// The steps this process executes now, with their leases.
    inflight: inflight::Inflight,
    /// Events stored but not yet matched to triggers.
    pending: AtomicU64,
    stats: Stats,
    /// Set by [`Engine::shutdown`]: no new step is started.
    stopping: AtomicBool,
    /// Current rollouts and their figures.
    rollouts: rollout::Rollouts,
    /// This engine, for the tasks it spawns from `&self`.
    me: Weak<Engine>,
    /// The worker pool: a permit per step executing. Live steps take every permit they
    /// can; a dry-run replay takes one only while live work leaves half of them free.
    pool: Arc<tokio::sync::Semaphore>,
    /// The replays this process drives now.
    replays: replay::Driving,
    /// The live stream of updates.
    bus: stream::Bus,
    /// Histograms and labelled counters for `/metrics`.
    metrics: metrics::Metrics,
}

impl Engine {
    /// Creates the engine and loads every deployed function from the store.
    pub async fn new(
        store: Arc<dyn Store>,
        runtime: Arc<dyn StepRuntime>,
        config: EngineConfig,
    ) -> Result<Arc<Self>, EngineError> {
        let backlog = store.pending_count().await?;
        let engine = Arc::new_cyclic(|me| Self {
            store,
            runtime,
            registry: Registry::default(),
            schemas: schemas::Schemas::default(),
            owner: format!("weir-{}", ulid::Ulid::new()),
            ingest_wake: Notify::new(),
            config_seen: tokio::sync::Mutex::new(None),
            dispatch_wake: Notify::new(),
            inflight: inflight::Inflight::default(),
            pending: AtomicU64::new(backlog),
            stats: Stats::default(),
            stopping: AtomicBool::new(false),
            rollouts: rollout::Rollouts::default(),
            me: me.clone(),
            pool: Arc::new(tokio::sync::Semaphore::new(config.workers)),
            replays: replay::Driving::default(),
            bus: stream::Bus::default(),
            metrics: metrics::Metrics::default(),
            config,
        });
        engine.load_functions().await?;
        engine.load_rollouts().await?;
        engine.load_schemas().await?;
        Ok(engine)
    }

    /// Starts the ingest loop, the dispatcher, lease renewal and cron on the current
    /// tokio runtime.
    pub fn start(self: &Arc<Self>) {
        tokio::spawn(ingest::run_loop(self.clone()));
        tokio::spawn(worker::dispatch_loop(self.clone()));
        tokio::spawn(worker::renew_loop(self.clone()));
        tokio::spawn(cron::run_loop(self.clone()));
        tokio::spawn(deploy::sync_loop(self.clone()));
        tokio::spawn(replay::resume_all(self.clone()));
        if let Some(feed) = self.store.feed() {
            tokio::spawn(relay::start(self.clone(), feed));
        }
    }

    /// A listener to every tenant's live updates, from now on (each tagged with its
    /// tenant; the caller filters). On a store several processes share, the others are
    /// told first, so that their updates reach it too.
    pub async fn subscribe(&self) -> stream::Listener {
        let l = self.bus.subscribe();
        if let Some(r) = self.bus.remote() {
            r.announce().await;
        }
        l
    }

    /// Live-stream updates not relayed to the other processes, on a shared store.
    pub fn relay_dropped(&self) -> Option<u64> {
        self.bus.remote().map(|r| r.dropped())
    }

    /// The engine's histograms and labelled counters.
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.metrics
    }

    /// The engine's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// What the step runtimes have counted (compiled components, cache hits…).
    pub fn runtime_counters(&self) -> Vec<crate::runtime::RuntimeCounter> {
        self.runtime.counters()
    }

    /// How many step claims the store has not made durable yet.
    pub async fn claims_not_durable(&self) -> Result<u64, EngineError> {
        Ok(self.store.claims_not_durable().await?)
    }

    /// How many steps this process is executing now.
    pub fn executing(&self) -> usize {
        self.inflight.len()
    }

    /// Stores events durably and schedules trigger matching; returns their ids.
    /// Refuses with [`EngineError::Busy`] when too many events wait for matching, and
    /// with [`EngineError::Schema`] (storing none of them) when an event does not
    /// satisfy its `reject`-mode schema or names an unknown schema version.
    pub async fn send(
        &self,
        tenant: &str,
        mut events: Vec<Event>,
    ) -> Result<Vec<String>, EngineError> {
        self.check_schemas(tenant, &mut events)?;
        let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        let n = events.len() as u64;
        let pending = self.pending.load(Ordering::Relaxed);
        if pending + n > self.config.max_pending {
            return Err(EngineError::Busy {
                pending,
                limit: self.config.max_pending,
            });
        }
        self.pending.fetch_add(n, Ordering::Relaxed);
        let updates: Vec<stream::Update> = if self.bus.active() {
            events.iter().map(stream::Update::of_event).collect()
        } else {
            Vec::new()
        };
        self.store
            .append_events(tenant, events, now_ms())
            .await
            .map_err(EngineError::from)
            .inspect_err(|_| {
                self.pending.fetch_sub(n, Ordering::Relaxed);
            })?;
        self.stats.events_accepted.fetch_add(n, Ordering::Relaxed);
        // Before matching is woken, so a listener usually sees an event before its runs
        // (not always: matching may already be reading the inbox).
        for u in updates {
            self.bus.publish(tenant, u);
        }
        self.ingest_wake.notify_one();
        Ok(ids)
    }

    /// Stops starting steps, waits up to `grace` for those executing to finish, and gives
    /// back the leases of any still running: they run again on the next start without
    /// counting an attempt (a clean stop is not the step's failure). Then flushes.
    pub async fn shutdown(&self, grace: std::time::Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        self.dispatch_wake.notify_one();
        let deadline = std::time::Instant::now() + grace;
        while !self.inflight.is_empty() && std::time::Instant::now() < deadline {
            // Polls this process's own in-memory count; nothing to be notified by.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let running = self.inflight.leases();
        if !running.is_empty() {
            let n = running.len();
            if let Err(e) = self.store.release(running, false).await {
                tracing::warn!("cannot give back the leases of {n} running steps: {e}");
            }
            tracing::warn!("{n} steps were still running at shutdown; they run again on start");
        }
        if let Err(e) = self.store.flush().await {
            tracing::warn!("final flush failed: {e}");
        }
    }

    /// Whether [`Engine::shutdown`] has begun.
    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}
#[cfg(test)]
mod tests;
