//! Advancing a run: the transitions of its steps from creation to the end (queueing what
//! is ready, skipping what cannot run, retrying, finishing), with no I/O. Each returns the
//! queue and wait changes the store must apply in the same atomic write.

use serde_json::Value;

use super::conditions::edge_condition;
use super::timers::{backoff_ms, clear_timer, rearm_timer};
use super::waits::{after_wait_change, index_of, remove_wait};
use super::{Due, StepResult};
use crate::function::Function;
use crate::json::Json;
use crate::run::{QueueEntry, Run, RunStatus, StepState, StepStatus, Wait, WaitSlot};
use crate::store::RunChange;

/// Builds a new run for `event`: its first steps queued, its waits registered.
pub fn new_run(
    f: &Function,
    tenant: &str,
    run_id: String,
    event: &crate::event::Event,
    now: i64,
) -> (Run, RunChange) {
    let steps = f
        .steps
        .iter()
        .map(|s| StepState {
            id: s.id.clone(),
            status: StepStatus::Pending,
            attempts: 0,
            output: None,
            error: None,
            log: None,
            started_at: None,
            ended_at: None,
            wake_at: None,
            edges: vec![None; s.incoming.len()],
            queued: None,
            async_event: None,
            ready_at: None,
            first_started_at: None,
            sandbox: None,
            sent: Vec::new(),
        })
        .collect();
    let mut run = Run {
        id: run_id,
        tenant: tenant.into(),
        function_id: f.id.clone(),
        function_version: f.version,
        status: RunStatus::Running,
        event_id: event.id.clone(),
        user_id: event.user_id(),
        event: event.to_value().into(),
        created_at: now,
        ended_at: None,
        steps,
        waits: Vec::new(),
        rollout_id: None,
        replay_id: None,
        rev: 0,
    };
    let mut change = RunChange::default();
    for (i, rule) in f.cancel.iter().enumerate() {
        let (path, value) = index_of(rule.index.as_ref(), run.event.get());
        let w = Wait {
            slot: WaitSlot::Cancel { rule: i },
            event: rule.event.clone(),
            path,
            value,
            expires_at: rule.timeout.map(|t| now + t.as_millis() as i64),
        };
        change.waits_add.push(run.wait_key(&w));
        run.waits.push(w);
    }
    for (i, s) in f.steps.iter().enumerate() {
        for (e, edge) in s.incoming.iter().enumerate() {
            if edge.parent.is_none() {
                resolve_edge(f, &mut run, i, e, None, now, &mut change);
            }
        }
    }
    settle(f, &mut run, now, &mut change);
    (run, change)
}

/// Decides what a due queue entry of step `idx` means, and applies it.
pub fn on_due(f: &Function, run: &mut Run, idx: usize, due: i64, now: i64) -> Due {
    let stale = || {
        Due::Stale(RunChange {
            dequeue: vec![QueueEntry {
                due,
                tenant: run.tenant.clone(),
                run_id: run.id.clone(),
                step_id: run.steps[idx].id.clone(),
            }],
            ..Default::default()
        })
    };
    if run.status.is_terminal() || run.steps[idx].queued != Some(due) {
        return stale();
    }
    match run.steps[idx].status {
        StepStatus::Waiting => {
            let mut change = RunChange::default();
            clear_timer(run, idx, &mut change);
            let expired: Vec<Wait> = run
                .waits
                .iter()
                .filter(|w| {
                    matches!(w.slot, WaitSlot::Edge { step, .. } if step == idx)
                        && w.expires_at.is_some_and(|t| t <= now)
                })
                .cloned()
                .collect();
            for w in expired {
                let WaitSlot::Edge { step, edge } = w.slot else {
                    continue;
                };
                remove_wait(run, &w.slot, &mut change);
                let a = f.steps[step].incoming[edge].wait_for.as_ref();
                let taken = a.is_some_and(|a| a.on_timeout)
                    && edge_condition(f, run, step, edge, &Value::Null);
                run.steps[step].edges[edge] = Some(taken);
            }
            after_wait_change(f, run, idx, now, &mut change);
            Due::Handled(change)
        }
        StepStatus::Pending | StepStatus::Running | StepStatus::Sleeping => {
            start_attempt(run, idx, now);
            Due::Execute(RunChange::default())
        }
        _ => stale(),
    }
}

/// Starts an attempt of step `idx` at `now`.
pub(super) fn start_attempt(run: &mut Run, idx: usize, now: i64) {
    let st = &mut run.steps[idx];
    st.status = StepStatus::Running;
    st.attempts += 1;
    st.started_at = Some(now);
    st.first_started_at.get_or_insert(now);
    st.wake_at = None;
    run.status = RunStatus::Running;
}

/// Shows step `idx`, claimed at `started` and executing now, as running: a claim is
/// recorded with the step's result, so the stored run still shows the step as queued.
pub fn show_running(run: &mut Run, idx: usize, started: i64) {
    let queued = matches!(
        run.steps[idx].status,
        StepStatus::Pending | StepStatus::Running | StepStatus::Sleeping
    );
    if queued && !run.status.is_terminal() {
        start_attempt(run, idx, started);
    }
}

/// Cancels a run that is not over yet.
pub fn cancel(run: &mut Run, now: i64) -> Option<RunChange> {
    if run.status.is_terminal() {
        return None;
    }
    let mut change = RunChange::default();
    end_run(run, RunStatus::Cancelled, now, &mut change);
    Some(change)
}

/// Records the result of the running attempt of step `idx` and advances the run.
/// `jitter` in [0, 1) spreads retries. Returns `None` if the step is not running (a
/// late or duplicate result), so a recorded output is never overwritten.
pub fn complete(
    f: &Function,
    run: &mut Run,
    idx: usize,
    result: StepResult,
    log: Option<String>,
    now: i64,
    jitter: f64,
) -> Option<RunChange> {
    if run.status.is_terminal() || run.steps[idx].status != StepStatus::Running {
        return None;
    }
    let mut change = RunChange::default();
    clear_timer(run, idx, &mut change);
    let st = &mut run.steps[idx];
    st.log = log;
    match result {
        StepResult::Completed(output) => {
            st.status = StepStatus::Completed;
            st.output = Some(output.into());
            st.error = None;
            st.ended_at = Some(now);
            let outgoing = f.steps[idx].outgoing.clone();
            for (child, e) in outgoing {
                resolve_edge(f, run, child, e, Some(idx), now, &mut change);
            }
            settle(f, run, now, &mut change);
        }
        StepResult::Retryable { error, output } if st.attempts <= f.steps[idx].retries.attempts => {
            let delay = backoff_ms(
                f.steps[idx].retries.backoff.as_millis() as i64,
                st.attempts,
                jitter,
            );
            st.status = StepStatus::Pending;
            st.error = Some(format!("attempt {} failed: {error}; retrying", st.attempts));
            st.output = output.map(Json::from);
            rearm_timer(run, idx, now + delay, &mut change);
        }
        StepResult::Retryable { error, output } | StepResult::Permanent { error, output } => {
            let attempts = st.attempts;
            st.status = StepStatus::Failed;
            st.error = Some(if attempts > 1 {
                format!("{error} (after {attempts} attempts)")
            } else {
                error
            });
            st.output = output.map(Json::from);
            st.ended_at = Some(now);
            end_run(run, RunStatus::Failed, now, &mut change);
        }
    }
    refresh_status(run);
    Some(change)
}

/// Ends the run: every unfinished step is cancelled, and its queue entries and waits go.
pub fn end_run(run: &mut Run, status: RunStatus, now: i64, change: &mut RunChange) {
    run.status = status;
    run.ended_at = Some(now);
    for i in 0..run.steps.len() {
        clear_timer(run, i, change);
        let st = &mut run.steps[i];
        if !st.status.is_terminal() {
            st.status = StepStatus::Cancelled;
            st.ended_at = Some(now);
            st.wake_at = None;
        }
    }
    for w in std::mem::take(&mut run.waits) {
        change.waits_remove.push(run.wait_key(&w));
    }
}

pub(super) fn resolve_edge(
    f: &Function,
    run: &mut Run,
    child: usize,
    e: usize,
    parent: Option<usize>,
    now: i64,
    change: &mut RunChange,
) {
    let edge = &f.steps[child].incoming[e];
    let parent_done = parent.is_none_or(|p| run.steps[p].status == StepStatus::Completed);
    if !parent_done {
        run.steps[child].edges[e] = Some(false);
        return;
    }
    if let Some(a) = &edge.wait_for {
        let (path, value) = index_of(a.index.as_ref(), run.event.get());
        let expires = now + a.ttl.as_millis() as i64;
        let w = Wait {
            slot: WaitSlot::Edge {
                step: child,
                edge: e,
            },
            event: a.event.clone(),
            path,
            value,
            expires_at: Some(expires),
        };
        change.waits_add.push(run.wait_key(&w));
        run.waits.push(w);
        let st = &mut run.steps[child];
        st.status = StepStatus::Waiting;
        // One timer per step: the earliest expiry among its waits.
        if st.queued.is_none_or(|q| q > expires) {
            rearm_timer(run, child, expires, change);
        }
        return;
    }
    let taken = edge_condition(f, run, child, e, &Value::Null);
    run.steps[child].edges[e] = Some(taken);
}

/// Queues every pending step whose edges are all resolved with one taken (after the
/// longest `wait` of its taken edges), skips those with none taken (propagating the
/// skip), and completes the run when nothing is left.
pub(super) fn settle(f: &Function, run: &mut Run, now: i64, change: &mut RunChange) {
    if run.status.is_terminal() {
        return;
    }
    // A step failed by its edge (an `if` out of CEL budget) fails the run.
    if run.steps.iter().any(|s| s.status == StepStatus::Failed) {
        for s in run
            .steps
            .iter_mut()
            .filter(|s| s.status == StepStatus::Failed)
        {
            s.ended_at.get_or_insert(now);
        }
        end_run(run, RunStatus::Failed, now, change);
        return;
    }
    for i in 0..f.steps.len() {
        let st = &run.steps[i];
        if st.status != StepStatus::Pending
            || st.queued.is_some()
            || st.edges.iter().any(Option::is_none)
        {
            continue;
        }
        if st.edges.contains(&Some(true)) {
            let sleep = f.steps[i]
                .incoming
                .iter()
                .zip(&st.edges)
                .filter(|(_, taken)| **taken == Some(true))
                .filter_map(|(e, _)| e.wait)
                .max()
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            // A step ready now is queued as of its run's start: within a tenant the
            // oldest runs' steps go first, so under a backlog runs finish depth-first
            // instead of every run's first step going before any run's second.
            let due = if sleep > 0 {
                now + sleep
            } else {
                now.min(run.created_at)
            };
            let st = &mut run.steps[i];
            st.queued = Some(due);
            st.ready_at = Some(now);
            if sleep > 0 {
                st.status = StepStatus::Sleeping;
                st.wake_at = Some(due);
            }
            change.enqueue.push(QueueEntry {
                due,
                tenant: run.tenant.clone(),
                run_id: run.id.clone(),
                step_id: st.id.clone(),
            });
        } else {
            let st = &mut run.steps[i];
            st.status = StepStatus::Skipped;
            st.ended_at = Some(now);
            for &(child, e) in &f.steps[i].outgoing {
                run.steps[child].edges[e] = Some(false);
            }
        }
    }
    if run.steps.iter().all(|s| s.status.is_terminal()) {
        run.status = RunStatus::Completed;
        run.ended_at = Some(now);
        for w in std::mem::take(&mut run.waits) {
            change.waits_remove.push(run.wait_key(&w));
        }
    } else {
        refresh_status(run);
    }
}

/// running if anything is executing or queued to; else waiting or sleeping.
pub(super) fn refresh_status(run: &mut Run) {
    if run.status.is_terminal() {
        return;
    }
    let any = |f: &dyn Fn(&StepState) -> bool| run.steps.iter().any(f);
    run.status = if any(&|s| {
        s.status == StepStatus::Running || (s.status == StepStatus::Pending && s.queued.is_some())
    }) {
        RunStatus::Running
    } else if any(&|s| s.status == StepStatus::Waiting) {
        RunStatus::Waiting
    } else if any(&|s| s.status == StepStatus::Sleeping) {
        RunStatus::Sleeping
    } else {
        RunStatus::Running
    };
}
