//! Waits for events: an `async` edge or a cancellation rule resolved by an incoming
//! event, and the wait index's key for a run's wait.

use serde_json::Value;

use super::advance::{end_run, refresh_status, settle};
use super::conditions::{edge_condition, holds};
use super::timers::{clear_timer, rearm_timer};
use crate::function::Function;
use crate::run::{Run, RunStatus, StepStatus, WaitSlot};
use crate::store::{lookup_path, RunChange};

/// An event matched wait `slot` of this run: resolves its edge, or cancels the run.
/// Returns `None` if the wait is gone, expired, or its condition does not hold.
pub fn resume(
    f: &Function,
    run: &mut Run,
    slot: &str,
    incoming: &Value,
    now: i64,
) -> Option<RunChange> {
    if run.status.is_terminal() {
        return None;
    }
    let w = run.waits.iter().find(|w| w.slot.key() == slot)?.clone();
    let mut change = RunChange::default();
    match w.slot {
        WaitSlot::Cancel { rule } => {
            if w.expires_at.is_some_and(|t| t <= now) {
                remove_wait(run, &w.slot, &mut change);
                return Some(change);
            }
            let r = f.cancel.get(rule)?;
            if !holds(
                f,
                r.cond.as_ref(),
                &[("event", run.event.get()), ("async", incoming)],
            ) {
                return None;
            }
            end_run(run, RunStatus::Cancelled, now, &mut change);
            Some(change)
        }
        WaitSlot::Edge { step, edge } => {
            let a = f.steps.get(step)?.incoming.get(edge)?.wait_for.as_ref()?;
            if !holds(
                f,
                a.matches.as_ref(),
                &[("event", run.event.get()), ("async", incoming)],
            ) {
                return None;
            }
            remove_wait(run, &w.slot, &mut change);
            let taken = !a.on_timeout && edge_condition(f, run, step, edge, incoming);
            run.steps[step].edges[edge] = Some(taken);
            if taken {
                run.steps[step].async_event = Some(incoming.clone());
            }
            if !run
                .waits
                .iter()
                .any(|w| matches!(w.slot, WaitSlot::Edge { step: s, .. } if s == step))
            {
                clear_timer(run, step, &mut change);
            }
            after_wait_change(f, run, step, now, &mut change);
            Some(change)
        }
    }
}

pub(super) fn index_of(
    index: Option<&crate::function::MatchIndex>,
    trigger: &Value,
) -> (String, String) {
    match index.and_then(|i| lookup_path(trigger, &i.event_path).map(|v| (i.async_path.clone(), v)))
    {
        Some(pv) => pv,
        None => ("*".into(), "*".into()),
    }
}

pub(super) fn remove_wait(run: &mut Run, slot: &WaitSlot, change: &mut RunChange) {
    if let Some(pos) = run.waits.iter().position(|w| &w.slot == slot) {
        let w = run.waits.remove(pos);
        change.waits_remove.push(run.wait_key(&w));
    }
}

/// After a wait of step `idx` resolved: re-arm its timer if waits remain, else let the
/// step be decided by its edges.
pub(super) fn after_wait_change(
    f: &Function,
    run: &mut Run,
    idx: usize,
    now: i64,
    change: &mut RunChange,
) {
    let next = run
        .waits
        .iter()
        .filter(|w| matches!(w.slot, WaitSlot::Edge { step, .. } if step == idx))
        .filter_map(|w| w.expires_at)
        .min();
    if let Some(due) = next {
        if run.steps[idx].queued != Some(due) {
            rearm_timer(run, idx, due, change);
        }
    } else if run.steps[idx].status == StepStatus::Waiting {
        run.steps[idx].status = StepStatus::Pending;
    }
    settle(f, run, now, change);
    refresh_status(run);
}
