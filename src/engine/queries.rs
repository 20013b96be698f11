//! What the API reads: runs (with the steps executing now shown running), events,
//! functions and their counts, and cancelling a run.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::error::Resource;
use super::transition::{self, Applied};
use super::{dag, Engine, EngineError};
use crate::event::now_ms;
use crate::function::Function;
use crate::run::{QueueEntry, Run, RunStatus};
use crate::store::{Durability, Page, RunFilter, StoredEvent};

impl Engine {
    /// Cancels a run; returns it as cancelled (or unchanged if it had already ended).
    pub async fn cancel_run(&self, tenant: &str, id: &str) -> Result<Run, EngineError> {
        let now = now_ms();
        let applied = transition::apply(self, tenant, id, None, None, Durability::Durable, |r| {
            dag::cancel(r, now)
        })
        .await?;
        match applied {
            Applied::Missing | Applied::LeaseLost => Err(EngineError::not_found(Resource::Run, id)),
            Applied::Unchanged(run) => Ok(*run),
            Applied::Written => self.run(tenant, id).await,
        }
    }

    /// One run.
    pub async fn run(&self, tenant: &str, id: &str) -> Result<Run, EngineError> {
        let run = self
            .store
            .get_run(tenant, id)
            .await?
            .ok_or_else(|| EngineError::not_found(Resource::Run, id))?;
        Ok(self.overlay_running(vec![run]).await?.remove(0))
    }

    /// Runs matching `filter`, newest first.
    pub async fn runs(
        &self,
        tenant: &str,
        filter: &RunFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Run>, EngineError> {
        let mut page = self
            .store
            .list_runs(tenant, filter, limit.clamp(1, 1000), cursor)
            .await?;
        page.data = self.overlay_running(page.data).await?;
        Ok(page)
    }

    /// One event with the runs it started.
    pub async fn event(&self, tenant: &str, id: &str) -> Result<StoredEvent, EngineError> {
        self.store
            .get_event(tenant, id)
            .await?
            .ok_or_else(|| EngineError::not_found(Resource::Event, id))
    }

    /// Events, newest first.
    pub async fn events(
        &self,
        tenant: &str,
        name: Option<&str>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<StoredEvent>, EngineError> {
        Ok(self
            .store
            .list_events(tenant, name, limit.clamp(1, 1000), cursor)
            .await?)
    }

    /// The latest version of every function, with its definition.
    pub fn functions(&self, tenant: &str) -> Vec<Arc<Function>> {
        self.registry.list(tenant)
    }

    /// A function: its latest definition, every version, and run counts by status.
    pub async fn function(&self, tenant: &str, id: &str) -> Result<Value, EngineError> {
        let versions = self.store.function_versions(tenant, id).await?;
        let Some(latest) = versions.last() else {
            return Err(EngineError::not_found(Resource::Function, id));
        };
        let counts: serde_json::Map<String, Value> = self
            .store
            .run_counts(tenant, id)
            .await?
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

    /// Every deployed function, as (tenant, id).
    pub fn deployed(&self) -> Vec<(String, String)> {
        self.registry
            .all()
            .into_iter()
            .map(|(t, f)| (t, f.id.clone()))
            .collect()
    }

    /// Events stored but not yet matched to triggers (the ingest queue's depth).
    pub fn events_pending(&self) -> u64 {
        self.pending.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Run counts of a function by status.
    pub async fn run_counts(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<BTreeMap<RunStatus, u64>, EngineError> {
        Ok(self.store.run_counts(tenant, id).await?)
    }

    /// Shows the steps executing now (under a live lease, in any process) as running: a
    /// claim is recorded with the step's result, so the stored run still shows it queued.
    async fn overlay_running(&self, mut runs: Vec<Run>) -> Result<Vec<Run>, EngineError> {
        let mut at = Vec::new();
        let mut entries = Vec::new();
        for (i, run) in runs.iter().enumerate() {
            if run.status.is_terminal() {
                continue;
            }
            for (idx, st) in run.steps.iter().enumerate() {
                if let Some(due) = st.queued {
                    at.push((i, idx));
                    entries.push(QueueEntry {
                        due,
                        tenant: run.tenant.clone(),
                        run_id: run.id.clone(),
                        step_id: st.id.clone(),
                    });
                }
            }
        }
        if entries.is_empty() {
            return Ok(runs);
        }
        let leases = self.store.leases_of(entries).await?;
        for ((i, idx), lease) in at.into_iter().zip(leases) {
            if let Some(l) = lease {
                dag::show_running(&mut runs[i], idx, l.claimed_at);
            }
        }
        Ok(runs)
    }
}
