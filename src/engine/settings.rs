//! What the engine is told at start (pool size, limits, ceilings, caps) and the counters
//! it keeps for `/metrics`.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::function::CompileOptions;
use crate::runtime::ResolvedLimits;
use crate::store::TenantCaps;

/// Engine settings, all given as values (the config file is read by the CLI).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Steps executing at once in this process (the worker pool size).
    pub workers: usize,
    /// Limits for steps that do not set their own.
    pub default_limits: ResolvedLimits,
    /// The most any step may ask for; deploys above them are refused.
    pub ceilings: ResolvedLimits,
    /// Most steps of one tenant executing at once (fairness), unless set per tenant.
    pub tenant_concurrency: usize,
    /// Per-tenant overrides of `tenant_concurrency`.
    pub tenant_caps: BTreeMap<String, usize>,
    /// Events waiting for trigger matching before `send` refuses more.
    pub max_pending: u64,
    /// How long a claimed step's lease lasts unless renewed (it is renewed while the
    /// step runs; a process that stops renewing loses its steps to another after this).
    pub lease: Duration,
    /// How definitions are checked at deploy, and the CEL budget every evaluation of
    /// their expressions runs under.
    pub compile: CompileOptions,
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
            ceilings: ResolvedLimits::CEILINGS,
            tenant_concurrency: workers,
            tenant_caps: BTreeMap::new(),
            max_pending: 1_000_000,
            lease: Duration::from_secs(15),
            compile: CompileOptions::default(),
        }
    }
}

impl EngineConfig {
    /// The per-tenant caps as the store takes them.
    pub fn caps(&self) -> TenantCaps {
        TenantCaps {
            default: self.tenant_concurrency.max(1) as u64,
            per_tenant: self
                .tenant_caps
                .iter()
                .map(|(t, c)| (t.clone(), (*c).max(1) as u64))
                .collect(),
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
    /// Step results refused because their lease had been lost (taken over or released).
    pub stale_results: AtomicU64,
    /// Runs found corrupt (their transition panicked) and failed.
    pub corrupt_runs: AtomicU64,
    /// Per-tenant counts: trigger expressions that failed to evaluate, and those that ran
    /// out of their CEL budget.
    pub per_tenant: std::sync::Mutex<BTreeMap<String, TenantCounts>>,
}

/// What is counted per tenant.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TenantCounts {
    /// Trigger expressions that failed to evaluate (counted as no match).
    pub trigger_errors: u64,
    /// Trigger expressions stopped by the CEL cost budget (counted as no match).
    pub cel_budget_exceeded: u64,
    /// Rollouts weir rolled back by itself.
    pub rollbacks: u64,
    /// Rollout sticky-key expressions that failed (the default key was used).
    pub sticky_errors: u64,
}

impl Stats {
    /// Adds to one tenant's counts.
    pub fn count(&self, tenant: &str, f: impl FnOnce(&mut TenantCounts)) {
        let mut m = self.per_tenant.lock().unwrap_or_else(|p| p.into_inner());
        f(m.entry(tenant.to_string()).or_default());
    }

    /// Every tenant's counts.
    pub fn tenant_counts(&self) -> BTreeMap<String, TenantCounts> {
        self.per_tenant
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
