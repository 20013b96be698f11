//! The steps this process is executing now: each under its lease, so that the leases can
//! be renewed together while the steps run and given back at a clean stop, and with its
//! cancellation handle, so that cancelling a run stops its running steps.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::run::QueueEntry;
use crate::runtime::Cancel;
use crate::store::LeaseRef;

/// Names one step of one run.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StepKey {
    /// Tenant.
    pub tenant: String,
    /// Run id.
    pub run_id: String,
    /// Step id.
    pub step_id: String,
}

impl From<&QueueEntry> for StepKey {
    fn from(e: &QueueEntry) -> Self {
        Self {
            tenant: e.tenant.clone(),
            run_id: e.run_id.clone(),
            step_id: e.step_id.clone(),
        }
    }
}

/// Leases held by this process's workers.
#[derive(Default)]
pub struct Inflight {
    held: Mutex<HashMap<StepKey, (LeaseRef, Cancel)>>,
}

impl Inflight {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StepKey, (LeaseRef, Cancel)>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A worker took this lease; the handle is fired if the run is cancelled meanwhile.
    pub fn hold(&self, lease: LeaseRef) -> Cancel {
        let cancel = Cancel::new();
        self.lock()
            .insert(StepKey::from(&lease.entry), (lease, cancel.clone()));
        cancel
    }

    /// Stops the steps of run `run_id` that are executing here.
    pub fn cancel_run(&self, tenant: &str, run_id: &str) {
        for (k, (_, cancel)) in self.lock().iter() {
            if k.run_id == run_id && k.tenant == tenant {
                cancel.fire();
            }
        }
    }

    /// Stops the step of `lease` if this process still executes it under that lease.
    pub fn stop(&self, lease: &LeaseRef) {
        if let Some((held, cancel)) = self.lock().get(&StepKey::from(&lease.entry)) {
            if held.token == lease.token {
                cancel.fire();
            }
        }
    }

    /// The worker is done with the lease of `entry`.
    pub fn drop_lease(&self, entry: &QueueEntry) {
        self.lock().remove(&StepKey::from(entry));
    }

    /// Every lease held now.
    pub fn leases(&self) -> Vec<LeaseRef> {
        self.lock().values().map(|(l, _)| l.clone()).collect()
    }

    /// How many steps are executing.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}
