//! A run's state transition, engine side: read the run, decide with the pure DAG
//! functions, write the result under the run's revision (and the step's lease); on a
//! conflicting write, read again and decide afresh. The store only ever sees values.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;

use super::rollout::Finished;
use super::{dag, Engine, EngineError};
use crate::event::now_ms;
use crate::run::{Run, RunStatus};
use crate::store::{Durability, LeaseRef, RunChange, RunWrite, WriteOutcome};

/// Most times a transition is decided again after conflicting writes.
const MAX_CONFLICTS: usize = 1_000;

/// What a transition did.
#[derive(Debug)]
pub enum Applied {
    /// Written.
    Written,
    /// Nothing to change (the lease, if any, was given back); the run as read.
    Unchanged(Box<Run>),
    /// The lease was lost: another holder owns the step now, and nothing was written.
    LeaseLost,
    /// No such run.
    Missing,
}

/// Applies `decide` to run `run_id`, starting from `current` (a copy already read, with
/// its revision) if given: `decide` changes the run and returns the queue and wait
/// changes, or `None` to leave it. Under `lease`, the write is refused if the lease was
/// lost, and releases it otherwise. A transition that panics (a corrupt run) fails the
/// run instead of the process.
pub async fn apply(
    engine: &Engine,
    tenant: &str,
    run_id: &str,
    mut current: Option<Run>,
    lease: Option<LeaseRef>,
    durability: Durability,
    mut decide: impl FnMut(&mut Run) -> Option<RunChange>,
) -> Result<Applied, EngineError> {
    for _ in 0..MAX_CONFLICTS {
        let mut run = match current.take() {
            Some(r) => r,
            None => match engine.store.get_run(tenant, run_id).await? {
                Some(r) => r,
                None => return Ok(Applied::Missing),
            },
        };
        let rev = run.rev;
        let before = run.status;
        let steps_before: Vec<crate::run::StepStatus> = if engine.bus.active() {
            run.steps.iter().map(|s| s.status).collect()
        } else {
            Vec::new()
        };
        let decided = catch_unwind(AssertUnwindSafe(|| decide(&mut run)));
        let (new_run, change) = match decided {
            Ok(Some(change)) => (Some(run), change),
            Ok(None) if lease.is_none() => return Ok(Applied::Unchanged(Box::new(run))),
            Ok(None) => (None, RunChange::default()),
            Err(p) => return fail_corrupt(engine, tenant, run_id, lease, &panic_text(&*p)).await,
        };
        let finished = new_run.as_ref().and_then(|r| Finished::of(before, r));
        let cancelled = new_run
            .as_ref()
            .is_some_and(|r| r.status == RunStatus::Cancelled && before != RunStatus::Cancelled);
        let update = new_run
            .as_ref()
            .filter(|_| engine.bus.active())
            .map(|r| super::stream::Update::of_run(r, &steps_before));
        let write = RunWrite {
            tenant: tenant.into(),
            run_id: run_id.into(),
            rev,
            run: new_run,
            change,
            lease: lease.clone(),
            durability,
        };
        match engine.store.write_run(write).await? {
            WriteOutcome::Written { .. } => {
                if let Some(f) = finished {
                    engine.run_finished(f);
                }
                if cancelled {
                    // Its steps still executing here stop; their results would be dropped.
                    engine.inflight.cancel_run(tenant, run_id);
                }
                if let Some(u) = update {
                    engine.bus.publish(tenant, u);
                }
                return Ok(Applied::Written);
            }
            WriteOutcome::Conflict => continue,
            WriteOutcome::LeaseLost => {
                engine.stats.stale_results.fetch_add(1, Ordering::Relaxed);
                return Ok(Applied::LeaseLost);
            }
            WriteOutcome::Missing => return Ok(Applied::Missing),
        }
    }
    Err(EngineError::Internal(format!(
        "run {run_id} kept changing under {MAX_CONFLICTS} attempts to update it"
    )))
}

/// What a panic says.
pub fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

/// Fails a run whose state the DAG cannot advance (deciding on it panicked: a corrupt
/// record), under `lease` if given, so that it is not picked up again and again; its
/// unfinished steps say why.
pub async fn fail_corrupt(
    engine: &Engine,
    tenant: &str,
    run_id: &str,
    lease: Option<LeaseRef>,
    why: &str,
) -> Result<Applied, EngineError> {
    tracing::error!(tenant, run = run_id, "run is corrupt ({why}); failing it");
    engine.stats.corrupt_runs.fetch_add(1, Ordering::Relaxed);
    for _ in 0..MAX_CONFLICTS {
        let Some(mut failed) = engine.store.get_run(tenant, run_id).await? else {
            return Ok(Applied::Missing);
        };
        let rev = failed.rev;
        let before = failed.status;
        let mut change = RunChange::default();
        let now = now_ms();
        dag::end_run(&mut failed, RunStatus::Failed, now, &mut change);
        // The entry being handled goes too, even if no step state names it.
        if let Some(l) = &lease {
            if !change.dequeue.contains(&l.entry) {
                change.dequeue.push(l.entry.clone());
            }
        }
        for s in failed.steps.iter_mut().filter(|s| s.ended_at == Some(now)) {
            s.error = Some(format!(
                "internal error: this run's state is corrupt ({why})"
            ));
        }
        let finished = Finished::of(before, &failed);
        let write = RunWrite {
            tenant: tenant.into(),
            run_id: run_id.into(),
            rev,
            run: Some(failed),
            change,
            lease: lease.clone(),
            durability: Durability::Durable,
        };
        match engine.store.write_run(write).await? {
            WriteOutcome::Written { .. } => {
                if let Some(f) = finished {
                    engine.run_finished(f);
                }
                return Ok(Applied::Written);
            }
            WriteOutcome::Conflict => continue,
            WriteOutcome::LeaseLost => return Ok(Applied::LeaseLost),
            WriteOutcome::Missing => return Ok(Applied::Missing),
        }
    }
    Err(EngineError::Internal(format!(
        "cannot fail corrupt run {run_id}"
    )))
}
