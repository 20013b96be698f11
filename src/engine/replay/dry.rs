//! Dry runs: a run of the target version executed in the sandbox for one stored event,
//! following the DAG (conditions, skips, retries) in virtual time and recording nothing;
//! then compared step by step with the original run.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::spec::Difference;
use crate::engine::dag::{self, Due};
use crate::engine::worker::step_request;
use crate::engine::{classify, sends, step_input, Engine};
use crate::event::{now_ms, Event};
use crate::function::Function;
use crate::run::{QueueEntry, Run, RunStatus, WaitSlot};
use crate::runtime::RuntimeKind;
use crate::store::RunChange;

/// Most queue entries one dry run goes through before it is called unfinished.
const MAX_ENTRIES: usize = 10_000;
/// How long a dry run waits for a worker left free by live work before looking again.
const YIELD: Duration = Duration::from_millis(5);

/// Executes `f` for `event` as a run would, with the original run's id (so steps see
/// the same context) and its awaited events; sleeps and backoffs pass at once, a wait
/// whose event the original did not get times out. Returns the run as it ended (or as
/// far as it got: not terminal if it waits for an event that never times out).
pub async fn simulate(
    engine: &Arc<Engine>,
    tenant: &str,
    f: &Function,
    event: &Event,
    original: Option<&Run>,
) -> Run {
    let run_id = original.map_or_else(|| format!("dry-{}", event.id), |r| r.id.clone());
    let mut now = now_ms();
    let (mut run, change) = dag::new_run(f, tenant, run_id, event, now);
    let mut queue: Vec<QueueEntry> = Vec::new();
    apply(f, &mut run, original, change, &mut queue, now);
    for _ in 0..MAX_ENTRIES {
        if run.status.is_terminal() {
            break;
        }
        let Some(pos) = (0..queue.len()).min_by_key(|&i| (queue[i].due, i)) else {
            break;
        };
        let entry = queue.swap_remove(pos);
        now = now.max(entry.due);
        let Some(idx) = f.step_index(&entry.step_id) else {
            continue;
        };
        match dag::on_due(f, &mut run, idx, entry.due, now) {
            Due::Execute(c) => {
                apply(f, &mut run, original, c, &mut queue, now);
                let (result, log, captured) = if f.steps[idx].target.kind() == RuntimeKind::Wasm {
                    let stdin = step_input::stdin(&run, idx);
                    let permit = low_priority_permit(engine).await;
                    // Numbered from 0, like `ctx.attempt` (the claim counted this one already).
                    let attempt = run.steps[idx].attempts.saturating_sub(1);
                    let mut req =
                        step_request(engine, &run.tenant, f, idx, stdin, &run.id, attempt);
                    req.sent_ids = original
                        .and_then(|o| o.step(&f.steps[idx].id))
                        .map(|s| s.sent.iter().filter_map(|e| e.id.clone()).collect())
                        .unwrap_or_default();
                    let outcome = engine.runtime.run(req).await;
                    drop(permit);
                    // What it sends is captured, not sent: a dry run records nothing.
                    let captured = sends::captured(&outcome.sent);
                    let (result, log) = classify(outcome);
                    (result, log, captured)
                } else {
                    let (result, log) = not_called(f, idx, original);
                    let sent = original
                        .and_then(|o| o.step(&f.steps[idx].id))
                        .map(|s| s.sent.clone())
                        .unwrap_or_default();
                    (result, log, sent)
                };
                if matches!(result, dag::StepResult::Completed(_)) {
                    run.steps[idx].sent = captured;
                }
                if let Some(c) = dag::complete(f, &mut run, idx, result, log, now, 0.0) {
                    apply(f, &mut run, original, c, &mut queue, now);
                }
            }
            Due::Handled(c) | Due::Stale(c) => apply(f, &mut run, original, c, &mut queue, now),
        }
    }
    run
}

/// What a dry run records for a step it does not call (docker, lambda, http: their
/// effects would leave the sandbox): the original run's output, so later steps see what
/// they saw then.
fn not_called(
    f: &Function,
    idx: usize,
    original: Option<&Run>,
) -> (dag::StepResult, Option<String>) {
    let step = &f.steps[idx];
    let note = format!(
        "{} was not called in this dry run (only wasm steps are)",
        step.target.describe()
    );
    let before = original.and_then(|o| o.step(&step.id)).and_then(|s| {
        (s.status == crate::run::StepStatus::Completed)
            .then(|| s.output.as_ref().map(|o| o.get().clone()))
    });
    match before {
        Some(out) => (
            dag::StepResult::Completed(out.unwrap_or(Value::Null)),
            Some(format!("{note}; the original run's output is used")),
        ),
        None => (
            dag::StepResult::Permanent {
                error: format!("{note}, and the original run has no output of it to use"),
                output: None,
            },
            None,
        ),
    }
}

/// A worker permit taken only while live work leaves half the pool free.
async fn low_priority_permit(engine: &Engine) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let reserve = engine.config.workers / 2;
    loop {
        if engine.is_stopping() {
            return None;
        }
        if engine.pool.available_permits() > reserve {
            if let Ok(p) = engine.pool.clone().try_acquire_owned() {
                return Some(p);
            }
        }
        tokio::time::sleep(YIELD).await;
    }
}

/// Applies a change to the local queue, and resolves new waits for events with the
/// event the original run got for that step, if it got one.
fn apply(
    f: &Function,
    run: &mut Run,
    original: Option<&Run>,
    change: RunChange,
    queue: &mut Vec<QueueEntry>,
    now: i64,
) {
    let mut pending = vec![change];
    while let Some(c) = pending.pop() {
        queue.retain(|q| !c.dequeue.contains(q));
        queue.extend(c.enqueue);
        for key in c.waits_add {
            let Some(w) = run.waits.iter().find(|w| w.slot.key() == key.slot).cloned() else {
                continue;
            };
            let WaitSlot::Edge { step, .. } = w.slot else {
                continue;
            };
            let got = original
                .and_then(|o| o.step(&run.steps[step].id))
                .and_then(|s| s.async_event.clone());
            if let Some(ev) = got {
                if let Some(next) = dag::resume(f, run, &key.slot, &ev, now) {
                    pending.push(next);
                }
            }
        }
    }
}

/// How a step looks for comparing: its status, its output, and the names of the events
/// it sent (when it sent any).
fn view(run: &Run, step: &str) -> Value {
    match run.step(step) {
        None => Value::Null,
        Some(s) => {
            let mut v = json!({
                "status": s.status,
                "output": s.output.as_ref().map(|o| o.get().clone()),
            });
            if !s.sent.is_empty() {
                let names: Vec<&str> = s.sent.iter().map(|e| e.name.as_str()).collect();
                v["sent"] = json!(names);
            }
            v
        }
    }
}

/// How a dry run compares with its original.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every step's status and output as before.
    Identical,
    /// Something differs.
    Changed,
    /// The original did not fail; the dry run did.
    NewFailure,
    /// The original failed; the dry run completed.
    Fixed,
}

/// Compares a dry run with the original run of the same event: the verdict and each
/// step whose status or output differs.
pub fn compare(original: &Run, dry: &Run) -> (Verdict, Vec<Difference>) {
    let mut steps: Vec<&str> = original.steps.iter().map(|s| s.id.as_str()).collect();
    for s in &dry.steps {
        if !steps.contains(&s.id.as_str()) {
            steps.push(&s.id);
        }
    }
    let mut diffs = Vec::new();
    for step in steps {
        let (before, mut after) = (view(original, step), view(dry, step));
        if before != after {
            if let Some(err) = dry.step(step).and_then(|s| s.error.clone()) {
                after["error"] = err.into();
            }
            diffs.push(Difference {
                event_id: original.event_id.clone(),
                run_id: original.id.clone(),
                step: step.to_string(),
                before,
                after,
            });
        }
    }
    let failed = |r: &Run| r.status == RunStatus::Failed;
    let verdict = if failed(dry) && !failed(original) {
        Verdict::NewFailure
    } else if failed(original) && dry.status == RunStatus::Completed {
        Verdict::Fixed
    } else if !diffs.is_empty() {
        Verdict::Changed
    } else {
        Verdict::Identical
    };
    (verdict, diffs)
}
