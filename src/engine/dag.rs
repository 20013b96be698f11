//! Pure DAG logic: the state transitions of a run, with no I/O. Every function here
//! takes the run, the function version and the current time, and returns the queue
//! changes the store must apply in the same atomic write.

use serde_json::{Map, Value};

use crate::function::Function;
use crate::run::{QueueEntry, Run, RunStatus, StepState, StepStatus};
use crate::store::RunChange;

/// How one execution of a step ended, as the scheduler sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum StepResult {
    /// Success, with the recorded output.
    Completed(Value),
    /// A failure that may succeed on retry (exit ≠ 0, trap, timeout, status ≥ 500).
    Retryable {
        error: String,
        output: Option<Value>,
    },
    /// A failure that retrying cannot fix (status 4xx).
    Permanent {
        error: String,
        output: Option<Value>,
    },
}

/// Builds a new run for `event` and the queue entries of its first steps.
pub fn new_run(
    f: &Function,
    tenant: &str,
    run_id: String,
    event: &crate::event::Event,
    now: i64,
) -> (Run, Vec<QueueEntry>) {
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
        event: event.to_value(),
        created_at: now,
        ended_at: None,
        steps,
    };
    for (i, s) in f.steps.iter().enumerate() {
        for (e, edge) in s.incoming.iter().enumerate() {
            if edge.parent.is_none() {
                resolve_edge(f, &mut run, i, e, None);
            }
        }
    }
    let mut change = RunChange::default();
    settle(f, &mut run, now, &mut change);
    (run, change.enqueue)
}

/// Marks step `idx` as running for the queue entry due at `due`. Returns `None` if the
/// entry is stale (the step is no longer queued for it) or the run is over.
pub fn claim(run: &mut Run, idx: usize, due: i64, now: i64) -> Option<RunChange> {
    if run.status.is_terminal() {
        return None;
    }
    let st = &mut run.steps[idx];
    if st.queued != Some(due) || !matches!(st.status, StepStatus::Pending | StepStatus::Running) {
        return None;
    }
    st.status = StepStatus::Running;
    st.attempts += 1;
    st.started_at = Some(now);
    st.wake_at = None;
    Some(RunChange::default())
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
    let tenant = run.tenant.clone();
    let run_id = run.id.clone();
    let st = &mut run.steps[idx];
    if let Some(due) = st.queued.take() {
        change.dequeue.push(QueueEntry {
            due,
            tenant: tenant.clone(),
            run_id: run_id.clone(),
            step_id: st.id.clone(),
        });
    }
    st.log = log;
    match result {
        StepResult::Completed(output) => {
            st.status = StepStatus::Completed;
            st.output = Some(output);
            st.error = None;
            st.ended_at = Some(now);
            let outgoing = f.steps[idx].outgoing.clone();
            for (child, e) in outgoing {
                resolve_edge(f, run, child, e, Some(idx));
            }
            settle(f, run, now, &mut change);
        }
        StepResult::Retryable { error, output } if st.attempts <= f.steps[idx].retries.attempts => {
            let delay = backoff_ms(
                f.steps[idx].retries.backoff.as_millis() as i64,
                st.attempts,
                jitter,
            );
            let due = now + delay;
            st.status = StepStatus::Pending;
            st.error = Some(format!("attempt {} failed: {error}; retrying", st.attempts));
            st.output = output;
            st.wake_at = Some(due);
            st.queued = Some(due);
            change.enqueue.push(QueueEntry {
                due,
                tenant,
                run_id,
                step_id: st.id.clone(),
            });
        }
        StepResult::Retryable { error, output } | StepResult::Permanent { error, output } => {
            let attempts = st.attempts;
            st.status = StepStatus::Failed;
            st.error = Some(if attempts > 1 {
                format!("{error} (after {attempts} attempts)")
            } else {
                error
            });
            st.output = output;
            st.ended_at = Some(now);
            end_run(run, RunStatus::Failed, now, &mut change);
        }
    }
    Some(change)
}

/// Ends the run: every unfinished step is cancelled and leaves the queue.
pub fn end_run(run: &mut Run, status: RunStatus, now: i64, change: &mut RunChange) {
    run.status = status;
    run.ended_at = Some(now);
    for st in run.steps.iter_mut() {
        if let Some(due) = st.queued.take() {
            change.dequeue.push(QueueEntry {
                due,
                tenant: run.tenant.clone(),
                run_id: run.id.clone(),
                step_id: st.id.clone(),
            });
        }
        if !st.status.is_terminal() {
            st.status = StepStatus::Cancelled;
            st.ended_at = Some(now);
            st.wake_at = None;
        }
    }
}

/// Exponential backoff with "equal jitter": half fixed, half random; capped at one hour.
pub fn backoff_ms(base_ms: i64, attempt: u32, jitter: f64) -> i64 {
    let exp = base_ms.saturating_mul(1i64 << attempt.saturating_sub(1).min(20));
    let capped = exp.clamp(1, 3_600_000);
    capped / 2 + ((capped / 2) as f64 * jitter.clamp(0.0, 1.0)) as i64
}

/// The outputs of every completed step, by id.
pub fn outputs(run: &Run) -> Value {
    let m: Map<String, Value> = run
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Completed)
        .map(|s| (s.id.clone(), s.output.clone().unwrap_or(Value::Null)))
        .collect();
    Value::Object(m)
}

fn resolve_edge(f: &Function, run: &mut Run, child: usize, e: usize, parent: Option<usize>) {
    let edge = &f.steps[child].incoming[e];
    let parent_done = parent.is_none_or(|p| run.steps[p].status == StepStatus::Completed);
    let taken = match (&edge.cond, parent_done) {
        (_, false) => false,
        (None, true) => true,
        (Some(cond), true) => {
            let steps = outputs(run);
            let response = parent
                .and_then(|p| run.steps[p].output.clone())
                .unwrap_or(Value::Null);
            let vars = [
                ("event", &run.event),
                ("steps", &steps),
                ("response", &response),
                ("async", &Value::Null),
            ];
            match cond.eval_bool(&vars) {
                Ok(b) => b,
                Err(err) => {
                    let from = parent
                        .map(|p| f.steps[p].id.as_str())
                        .unwrap_or(crate::function::TRIGGER);
                    run.steps[child].error = Some(format!("edge from `{from}` not taken: {err}"));
                    false
                }
            }
        }
    };
    run.steps[child].edges[e] = Some(taken);
}

/// Queues every pending step whose edges are all resolved with one taken, skips those
/// with none taken (propagating the skip), and completes the run when nothing is left.
fn settle(f: &Function, run: &mut Run, now: i64, change: &mut RunChange) {
    for i in 0..f.steps.len() {
        let st = &run.steps[i];
        if st.status != StepStatus::Pending
            || st.queued.is_some()
            || st.edges.iter().any(Option::is_none)
        {
            continue;
        }
        if st.edges.contains(&Some(true)) {
            let st = &mut run.steps[i];
            st.queued = Some(now);
            change.enqueue.push(QueueEntry {
                due: now,
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse_batch;
    use crate::function::FunctionDef;
    use serde_json::json;

    const SHA: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn function(steps: Value) -> Function {
        let def = FunctionDef::from_value(json!({"id": "f", "triggers": [{"event": "e"}],
            "retries": {"attempts": 1, "backoff": "1s"}, "steps": steps}))
        .unwrap();
        Function::compile(def, 1, |_, _| Ok(())).unwrap()
    }

    fn start(f: &Function) -> (Run, Vec<QueueEntry>) {
        let ev = parse_batch(br#"{"name":"e","data":{"n":2}}"#, 1)
            .unwrap()
            .remove(0);
        new_run(f, "t", "r".into(), &ev, 100)
    }

    fn run_step(f: &Function, run: &mut Run, id: &str, result: StepResult) -> RunChange {
        let i = f.step_index(id).unwrap();
        let due = run.steps[i].queued.expect("step is queued");
        claim(run, i, due, 100).expect("claimable");
        complete(f, run, i, result, None, 200, 0.5).expect("running")
    }

    #[test]
    fn a_chain_runs_in_order_and_completes() {
        let f = function(json!({"a": {"path": SHA}, "b": {"path": SHA, "after": [{"step": "a"}]}}));
        let (mut run, q) = start(&f);
        assert_eq!(
            q.iter().map(|e| e.step_id.as_str()).collect::<Vec<_>>(),
            vec!["a"]
        );
        let c = run_step(&f, &mut run, "a", StepResult::Completed(json!({"x": 1})));
        assert_eq!(c.enqueue.len(), 1);
        assert_eq!(c.enqueue[0].step_id, "b");
        assert_eq!(run.status, RunStatus::Running);
        run_step(&f, &mut run, "b", StepResult::Completed(json!(null)));
        assert_eq!(run.status, RunStatus::Completed);
        assert_eq!(outputs(&run)["a"], json!({"x": 1}));
    }

    #[test]
    fn a_false_if_skips_the_subtree_but_not_a_join_with_a_taken_edge() {
        let f = function(json!({
            "a": {"path": SHA},
            "yes": {"path": SHA, "after": [{"step": "a", "if": "response.ok == true"}]},
            "no": {"path": SHA, "after": [{"step": "a", "if": "response.ok == false"}]},
            "no-child": {"path": SHA, "after": [{"step": "no"}]},
            "join": {"path": SHA, "after": [{"step": "yes"}, {"step": "no-child"}]}
        }));
        let (mut run, _) = start(&f);
        run_step(
            &f,
            &mut run,
            "a",
            StepResult::Completed(json!({"ok": true})),
        );
        assert_eq!(run.step("no").unwrap().status, StepStatus::Skipped);
        assert_eq!(run.step("no-child").unwrap().status, StepStatus::Skipped);
        run_step(&f, &mut run, "yes", StepResult::Completed(json!(1)));
        run_step(&f, &mut run, "join", StepResult::Completed(json!(2)));
        assert_eq!(run.status, RunStatus::Completed);
    }

    #[test]
    fn a_failing_condition_counts_as_not_taken_and_says_why() {
        let f = function(
            json!({"a": {"path": SHA, "after": [{"step": "$trigger", "if": "event.data.missing == 1"}]}}),
        );
        let (run, q) = start(&f);
        assert!(q.is_empty());
        assert_eq!(run.status, RunStatus::Completed);
        let a = run.step("a").unwrap();
        assert_eq!(a.status, StepStatus::Skipped);
        assert!(
            a.error.as_deref().unwrap().contains("missing"),
            "{:?}",
            a.error
        );
    }

    #[test]
    fn retries_then_fails_and_4xx_fails_at_once() {
        let f = function(json!({"a": {"path": SHA}, "b": {"path": SHA, "after": [{"step": "a"}]}}));
        let (mut run, _) = start(&f);
        let c = run_step(
            &f,
            &mut run,
            "a",
            StepResult::Retryable {
                error: "exit 1".into(),
                output: None,
            },
        );
        let a = run.step("a").unwrap();
        assert_eq!((a.status, a.attempts), (StepStatus::Pending, 1));
        assert_eq!(
            c.enqueue[0].due,
            200 + 750,
            "1s base, attempt 1, jitter .5 → 750ms"
        );
        run_step(
            &f,
            &mut run,
            "a",
            StepResult::Retryable {
                error: "exit 1".into(),
                output: None,
            },
        );
        assert_eq!(run.status, RunStatus::Failed);
        assert_eq!(
            run.step("a").unwrap().error.as_deref(),
            Some("exit 1 (after 2 attempts)")
        );
        assert_eq!(run.step("b").unwrap().status, StepStatus::Cancelled);

        let (mut run, _) = start(&f);
        run_step(
            &f,
            &mut run,
            "a",
            StepResult::Permanent {
                error: "status 404".into(),
                output: None,
            },
        );
        assert_eq!(run.status, RunStatus::Failed);
        assert_eq!(run.step("a").unwrap().attempts, 1);
    }

    #[test]
    fn a_late_result_never_overwrites_a_recorded_output() {
        let f = function(json!({"a": {"path": SHA}}));
        let (mut run, _) = start(&f);
        run_step(&f, &mut run, "a", StepResult::Completed(json!("first")));
        assert!(complete(
            &f,
            &mut run,
            0,
            StepResult::Completed(json!("second")),
            None,
            300,
            0.0
        )
        .is_none());
        assert_eq!(run.steps[0].output, Some(json!("first")));
        assert!(claim(&mut run, 0, 100, 300).is_none());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff_ms(1000, 1, 0.0), 500);
        assert_eq!(backoff_ms(1000, 3, 1.0), 4000);
        assert!(backoff_ms(1000, 40, 1.0) <= 3_600_000);
    }
}
