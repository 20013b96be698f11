//! The engine: events in, runs out. It matches triggers, keeps the DAG moving, and runs
//! steps on a bounded pool, speaking only to the [`Store`] and [`StepRuntime`] traits.

mod cron;
pub mod dag;
mod ingest;
mod registry;
mod worker;
mod writer;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::event::{now_ms, Event};
use crate::function::{Function, FunctionDef, FunctionError};
use crate::run::{QueueEntry, Run, RunStatus};
use crate::runtime::{ComponentKind, ResolvedLimits, RuntimeError, StepRuntime};
use crate::store::{FunctionRecord, Page, RunFilter, Store, StoreError, StoredEvent};
use registry::Registry;

/// Why an engine call failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A function definition was refused.
    #[error(transparent)]
    Function(#[from] FunctionError),
    /// A component was refused.
    #[error("{0}")]
    Component(String),
    /// The thing asked for does not exist (for this tenant).
    #[error("{0} not found")]
    NotFound(String),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// Too much is waiting already; retry later.
    #[error("{pending} events are waiting to be processed (limit {limit}); retry later")]
    Busy { pending: u64, limit: u64 },
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Steps executing at once (the worker pool size).
    pub workers: usize,
    /// Limits for steps that do not set their own.
    pub default_limits: ResolvedLimits,
    /// The most any step may ask for; deploys above them are refused.
    pub ceilings: ResolvedLimits,
    /// Most steps of one tenant executing at once (fairness), unless set per tenant.
    pub tenant_concurrency: usize,
    /// Per-tenant overrides of `tenant_concurrency`.
    pub tenant_caps: HashMap<String, usize>,
    /// Events waiting for trigger matching before `send` refuses more.
    pub max_pending: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let workers = (cores * 32).clamp(8, 128);
        Self {
            workers,
            default_limits: ResolvedLimits::default(),
            ceilings: crate::config::default_ceilings(),
            tenant_concurrency: workers,
            tenant_caps: HashMap::new(),
            max_pending: 1_000_000,
        }
    }
}

/// Counters exported on `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Events accepted.
    pub events_accepted: AtomicU64,
    /// Runs started.
    pub runs_started: AtomicU64,
    /// Step attempts executed.
    pub steps_executed: AtomicU64,
    /// Step attempts that failed.
    pub steps_failed: AtomicU64,
    /// Trigger expressions that failed to evaluate (counted as no match).
    pub trigger_errors: AtomicU64,
}

/// The running engine; clone the `Arc` to share it.
pub struct Engine {
    store: Arc<dyn Store>,
    runtime: Arc<dyn StepRuntime>,
    registry: Registry,
    config: EngineConfig,
    /// Wakes the ingest loop.
    ingest_wake: Notify,
    /// Wakes the dispatcher.
    dispatch_wake: Notify,
    inflight: Mutex<Inflight>,
    /// Events stored but not yet matched to triggers.
    pending: AtomicU64,
    /// Batches run updates of all workers into shared writes.
    writer: writer::Writer,
    stats: Stats,
    /// Set by [`Engine::shutdown`]: no new step is started.
    stopping: std::sync::atomic::AtomicBool,
}

/// Steps executing now, and how many per tenant.
#[derive(Default)]
struct Inflight {
    /// Each step, with the time it was claimed and its queue entry's due time once it
    /// has been.
    steps: HashMap<(String, String, String), Option<(i64, i64)>>,
    by_tenant: HashMap<String, usize>,
}

impl Engine {
    /// Creates the engine and loads every deployed function from the store.
    pub fn new(
        store: Arc<dyn Store>,
        runtime: Arc<dyn StepRuntime>,
        config: EngineConfig,
    ) -> Result<Arc<Self>, EngineError> {
        let writer = writer::Writer::start(store.clone());
        let engine = Arc::new(Self {
            store,
            runtime,
            registry: Registry::default(),
            config,
            ingest_wake: Notify::new(),
            dispatch_wake: Notify::new(),
            inflight: Mutex::new(Inflight::default()),
            pending: AtomicU64::new(0),
            writer,
            stats: Stats::default(),
            stopping: std::sync::atomic::AtomicBool::new(false),
        });
        let backlog = engine.store.pending_count()?;
        engine.pending.store(backlog, Ordering::Relaxed);
        for (tenant, rec) in engine.store.latest_functions()? {
            match engine.compile_record(&rec) {
                Ok(f) => engine.registry.insert(&tenant, f),
                Err(e) => tracing::error!(
                    tenant,
                    function = rec.id,
                    "cannot load stored function: {e}"
                ),
            }
        }
        Ok(engine)
    }

    /// Starts the ingest loop and the dispatcher on the current tokio runtime.
    pub fn start(self: &Arc<Self>) {
        tokio::spawn(ingest::run_loop(self.clone()));
        tokio::spawn(worker::dispatch_loop(self.clone()));
        tokio::spawn(cron::run_loop(self.clone()));
    }

    /// The engine's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    fn compile_record(&self, rec: &FunctionRecord) -> Result<Arc<Function>, EngineError> {
        let def = FunctionDef::from_value(rec.def.clone())?;
        // Components were checked when this version was deployed.
        Ok(Arc::new(Function::compile(
            def,
            rec.version,
            |_, _| Ok(()),
        )?))
    }

    /// A function version, from memory or the store.
    pub fn function_version(
        &self,
        tenant: &str,
        id: &str,
        version: u64,
    ) -> Result<Arc<Function>, EngineError> {
        if let Some(f) = self.registry.version(tenant, id, version) {
            return Ok(f);
        }
        let rec = self
            .store
            .get_function(tenant, id, version)?
            .ok_or_else(|| EngineError::NotFound(format!("function {id} version {version}")))?;
        let f = self.compile_record(&rec)?;
        self.registry.insert(tenant, f.clone());
        Ok(f)
    }

    /// Stores a component after checking its hash and that it is a usable step.
    pub async fn put_component(
        &self,
        tenant: &str,
        sha256: &str,
        bytes: &[u8],
    ) -> Result<ComponentKind, EngineError> {
        let sha = sha256.to_ascii_lowercase();
        if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(EngineError::BadRequest(format!(
                "`{sha256}` is not a sha256 hex digest"
            )));
        }
        let actual = hex::encode(Sha256::digest(bytes));
        if actual != sha {
            return Err(EngineError::BadRequest(format!(
                "body hashes to sha256:{actual}, not sha256:{sha}"
            )));
        }
        let kind = crate::runtime::wasm::kind_of(bytes)
            .map_err(|e| EngineError::Component(e.to_string()))?;
        self.store.put_component(tenant, &sha, bytes)?;
        self.runtime.prepare(tenant, &sha).await.map_err(|e| {
            EngineError::Component(format!("component sha256:{sha} {}", describe(&e)))
        })?;
        Ok(kind)
    }

    /// Validates and stores a new version of a function; returns `(id, version)`.
    /// Deploying a definition identical to the latest version returns that version.
    pub async fn deploy(
        &self,
        tenant: &str,
        def: FunctionDef,
    ) -> Result<(String, u64), EngineError> {
        // Check every component once, then validate the whole definition with the answers.
        let mut checked: BTreeMap<String, Result<(), String>> = BTreeMap::new();
        for s in def.steps.values() {
            if let Some(sha) = s.path.as_deref().and_then(|p| p.strip_prefix("sha256:")) {
                let sha = sha.to_ascii_lowercase();
                if sha.len() == 64 && !checked.contains_key(&sha) {
                    let r = self
                        .runtime
                        .prepare(tenant, &sha)
                        .await
                        .map_err(|e| describe(&e));
                    checked.insert(sha, r);
                }
            }
        }
        let compiled = Function::compile(def.clone(), 0, |_, sha| {
            checked.get(sha).cloned().unwrap_or(Ok(()))
        })?;
        self.check_ceilings(&compiled)?;
        let json =
            serde_json::to_value(&def).map_err(|e| EngineError::BadRequest(e.to_string()))?;
        if let Some(cur) = self.registry.latest(tenant, &def.id) {
            if serde_json::to_value(&cur.def).ok().as_ref() == Some(&json) {
                return Ok((def.id, cur.version));
            }
        }
        let version = self.store.put_function(tenant, &def.id, &json, now_ms())?;
        let f = Function::compile(def.clone(), version, |_, _| Ok(()))?;
        self.registry.insert(tenant, Arc::new(f));
        tracing::info!(tenant, function = def.id, version, "deployed");
        Ok((def.id, version))
    }

    fn check_ceilings(&self, f: &Function) -> Result<(), EngineError> {
        let c = self.config.ceilings;
        for s in &f.steps {
            let over = |what: &str, asked: String, max: String| {
                EngineError::Function(FunctionError::Invalid {
                    function: f.id.clone(),
                    field: format!("steps.{}.limits.{what}", s.id),
                    reason: format!("{asked} is above this server's ceiling of {max}"),
                })
            };
            let hb = crate::runtime::human_bytes;
            for (what, asked, max) in [
                ("memory", s.limits.memory, c.memory),
                ("stdout", s.limits.stdout, c.stdout),
                ("stderr", s.limits.stderr, c.stderr),
            ] {
                if let Some(a) = asked.filter(|a| *a > max) {
                    return Err(over(what, hb(a), hb(max)));
                }
            }
            if let Some(t) = s.limits.timeout.filter(|t| *t > c.timeout) {
                return Err(over(
                    "timeout",
                    format!("{t:?}"),
                    format!("{:?}", c.timeout),
                ));
            }
        }
        Ok(())
    }

    /// Stores events durably and schedules trigger matching; returns their ids.
    /// Refuses with [`EngineError::Busy`] when too many events wait for matching.
    pub async fn send(&self, tenant: &str, events: Vec<Event>) -> Result<Vec<String>, EngineError> {
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
        self.writer
            .append(tenant, events, now_ms())
            .await
            .map_err(EngineError::from)
            .inspect_err(|_| {
                self.pending.fetch_sub(n, Ordering::Relaxed);
            })?;
        self.stats.events_accepted.fetch_add(n, Ordering::Relaxed);
        self.ingest_wake.notify_one();
        Ok(ids)
    }

    /// Cancels a run; returns it as cancelled (or unchanged if it had already ended).
    pub fn cancel_run(&self, tenant: &str, id: &str) -> Result<Run, EngineError> {
        let now = now_ms();
        let run = self
            .store
            .update_run(tenant, id, crate::store::Durability::Durable, &mut |r| {
                dag::cancel(r, now)
            })?
            .ok_or_else(|| EngineError::NotFound(format!("run {id}")))?;
        Ok(run)
    }

    /// One run.
    pub fn run(&self, tenant: &str, id: &str) -> Result<Run, EngineError> {
        let run = self
            .store
            .get_run(tenant, id)?
            .ok_or_else(|| EngineError::NotFound(format!("run {id}")))?;
        Ok(self.overlay_running(run))
    }

    /// Runs matching `filter`, newest first.
    pub fn runs(
        &self,
        tenant: &str,
        filter: &RunFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Run>, EngineError> {
        let mut page = self
            .store
            .list_runs(tenant, filter, limit.clamp(1, 1000), cursor)?;
        page.data = page
            .data
            .into_iter()
            .map(|r| self.overlay_running(r))
            .collect();
        Ok(page)
    }

    /// One event with the runs it started.
    pub fn event(&self, tenant: &str, id: &str) -> Result<StoredEvent, EngineError> {
        self.store
            .get_event(tenant, id)?
            .ok_or_else(|| EngineError::NotFound(format!("event {id}")))
    }

    /// Events, newest first.
    pub fn events(
        &self,
        tenant: &str,
        name: Option<&str>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<StoredEvent>, EngineError> {
        Ok(self
            .store
            .list_events(tenant, name, limit.clamp(1, 1000), cursor)?)
    }

    /// The latest version of every function, with its definition.
    pub fn functions(&self, tenant: &str) -> Vec<Arc<Function>> {
        self.registry.list(tenant)
    }

    /// A function: its latest definition, every version, and run counts by status.
    pub fn function(&self, tenant: &str, id: &str) -> Result<Value, EngineError> {
        let versions = self.store.function_versions(tenant, id)?;
        let Some(latest) = versions.last() else {
            return Err(EngineError::NotFound(format!("function {id}")));
        };
        let counts: serde_json::Map<String, Value> = self
            .store
            .run_counts(tenant, id)?
            .into_iter()
            .map(|(k, v)| (k.as_str().to_string(), v.into()))
            .collect();
        Ok(serde_json::json!({
            "id": id,
            "version": latest.version,
            "definition": latest.def,
            "versions": versions.iter().map(|v| serde_json::json!({"version": v.version, "created_at": v.created_at})).collect::<Vec<_>>(),
            "runs": counts,
        }))
    }

    /// Run counts of a function by status.
    pub fn run_counts(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<BTreeMap<RunStatus, u64>, EngineError> {
        Ok(self.store.run_counts(tenant, id)?)
    }

    /// The most steps of `tenant` that may execute at once.
    fn tenant_cap(&self, tenant: &str) -> usize {
        self.config
            .tenant_caps
            .get(tenant)
            .copied()
            .unwrap_or(self.config.tenant_concurrency)
            .max(1)
    }

    /// Marks a step as executing; false if it already is or its tenant is at its cap.
    fn claim_inflight(&self, e: &QueueEntry) -> bool {
        let cap = self.tenant_cap(&e.tenant);
        let mut g = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        let n = g.by_tenant.get(&e.tenant).copied().unwrap_or(0);
        let k = (e.tenant.clone(), e.run_id.clone(), e.step_id.clone());
        if n >= cap || g.steps.contains_key(&k) {
            return false;
        }
        g.steps.insert(k, None);
        *g.by_tenant.entry(e.tenant.clone()).or_default() += 1;
        true
    }

    fn release_inflight(&self, e: &QueueEntry) {
        let mut g = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if g.steps
            .remove(&(e.tenant.clone(), e.run_id.clone(), e.step_id.clone()))
            .is_some()
        {
            if let Some(n) = g.by_tenant.get_mut(&e.tenant) {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// How many more steps `tenant` may start now.
    fn room(&self, tenant: &str) -> usize {
        let cap = self.tenant_cap(tenant);
        let g = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        cap.saturating_sub(g.by_tenant.get(tenant).copied().unwrap_or(0))
    }

    /// Whether this entry's step is executing now.
    fn is_inflight(&self, e: &QueueEntry) -> bool {
        let g = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        g.steps
            .contains_key(&(e.tenant.clone(), e.run_id.clone(), e.step_id.clone()))
    }

    /// Stops starting steps, waits up to `grace` for those executing to finish, and
    /// withdraws the claims of any still running: they run again on the next start
    /// without counting an attempt (a clean stop is not the step's failure).
    pub async fn shutdown(&self, grace: std::time::Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        self.dispatch_wake.notify_one();
        let deadline = std::time::Instant::now() + grace;
        loop {
            let running: Vec<QueueEntry> = {
                let g = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
                g.steps
                    .iter()
                    .map(|((tenant, run_id, step_id), claim)| QueueEntry {
                        due: claim.map(|(_, due)| due).unwrap_or_default(),
                        tenant: tenant.clone(),
                        run_id: run_id.clone(),
                        step_id: step_id.clone(),
                    })
                    .collect()
            };
            if running.is_empty() {
                return;
            }
            if std::time::Instant::now() >= deadline {
                let n = running.len();
                let store = self.store.clone();
                let cleared =
                    tokio::task::spawn_blocking(move || store.clear_claims(&running)).await;
                if !matches!(cleared, Ok(Ok(()))) {
                    tracing::warn!("cannot withdraw the claims of {n} running steps");
                }
                tracing::warn!("{n} steps were still running at shutdown; they run again on start");
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Whether [`Engine::shutdown`] has begun.
    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Notes that a claimed step started executing at `started`.
    fn mark_running(&self, e: &QueueEntry, started: i64) {
        let mut g = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = g
            .steps
            .get_mut(&(e.tenant.clone(), e.run_id.clone(), e.step_id.clone()))
        {
            *s = Some((started, e.due));
        }
    }

    /// Shows the steps of `run` executing right now as running (see [`dag::show_running`]).
    fn overlay_running(&self, mut run: Run) -> Run {
        let g = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if g.steps.is_empty() {
            return run;
        }
        for idx in 0..run.steps.len() {
            let k = (
                run.tenant.clone(),
                run.id.clone(),
                run.steps[idx].id.clone(),
            );
            // Only while the stored step is still the claimed entry's: once its result is
            // recorded (done, or queued again for a retry) the stored run is the truth.
            if let Some(Some((started, due))) = g.steps.get(&k) {
                if run.steps[idx].queued == Some(*due) {
                    dag::show_running(&mut run, idx, *started);
                }
            }
        }
        run
    }
}

fn describe(e: &RuntimeError) -> String {
    match e {
        RuntimeError::Missing(_) => "is not uploaded (PUT /v1/components/<sha256> first)".into(),
        other => other.to_string(),
    }
}
