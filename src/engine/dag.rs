//! Pure DAG logic: the state transitions of a run, with no I/O. Every function here
//! takes the run, the function version and the current time, and returns the queue
//! changes the store must apply in the same atomic write.

use serde_json::{Map, Value};

use crate::function::Function;
use crate::json::Json;
use crate::run::{QueueEntry, Run, RunStatus, StepState, StepStatus, Wait, WaitSlot};
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

/// What a due queue entry means for its step.
#[derive(Debug, Clone, PartialEq)]
pub enum Due {
    /// The step is claimed (now `running`): execute it.
    Execute(RunChange),
    /// A timer was handled (an `async` wait timed out); nothing to execute.
    Handled(RunChange),
    /// The entry is stale (the step moved on): remove it.
    Stale(RunChange),
}

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
fn start_attempt(run: &mut Run, idx: usize, now: i64) {
    let st = &mut run.steps[idx];
    st.status = StepStatus::Running;
    st.attempts += 1;
    st.started_at = Some(now);
    st.wake_at = None;
    run.status = RunStatus::Running;
}

/// Shows step `idx`, claimed at `started` and executing now, as running: claims are
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
        .map(|s| {
            (
                s.id.clone(),
                s.output.as_ref().map_or(Value::Null, |o| o.get().clone()),
            )
        })
        .collect();
    Value::Object(m)
}

/// What step `idx` reads on stdin: `{"async", "ctx", "event", "steps"}` (keys sorted, as
/// JSON objects are everywhere in weir), serialized straight from the run without
/// building an intermediate JSON value (which deep-copied the event and every output).
pub fn stdin(run: &Run, idx: usize) -> Vec<u8> {
    use serde::ser::{SerializeMap, Serializer};
    struct Steps<'a>(Vec<(&'a str, Option<&'a Json>)>);
    impl serde::Serialize for Steps<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut m = s.serialize_map(Some(self.0.len()))?;
            for (k, v) in &self.0 {
                match v {
                    Some(v) => m.serialize_entry(k, v)?,
                    None => m.serialize_entry(k, &Value::Null)?,
                }
            }
            m.end()
        }
    }
    #[derive(serde::Serialize)]
    struct Ctx<'a> {
        attempt: u32,
        function_id: &'a str,
        function_version: u64,
        run_id: &'a str,
        step_id: &'a str,
        tenant: &'a str,
    }
    #[derive(serde::Serialize)]
    struct Stdin<'a> {
        #[serde(rename = "async")]
        async_event: Option<&'a Value>,
        ctx: Ctx<'a>,
        event: &'a Json,
        steps: Steps<'a>,
    }
    let st = &run.steps[idx];
    let mut steps: Vec<(&str, Option<&Json>)> = run
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Completed)
        .map(|s| (s.id.as_str(), s.output.as_ref()))
        .collect();
    steps.sort_unstable_by_key(|(k, _)| *k);
    let input = Stdin {
        async_event: st.async_event.as_ref(),
        ctx: Ctx {
            attempt: st.attempts.saturating_sub(1),
            function_id: &run.function_id,
            function_version: run.function_version,
            run_id: &run.id,
            step_id: &st.id,
            tenant: &run.tenant,
        },
        event: &run.event,
        steps: Steps(steps),
    };
    serde_json::to_vec(&input).unwrap_or_default()
}

/// The value at a dotted path, as canonical JSON (the wait index's key form).
pub fn lookup(v: &Value, path: &str) -> Option<String> {
    let mut cur = v;
    for p in path.split('.') {
        cur = cur.get(p)?;
    }
    (!cur.is_null()).then(|| cur.to_string())
}

fn index_of(index: Option<&crate::function::MatchIndex>, trigger: &Value) -> (String, String) {
    match index.and_then(|i| lookup(trigger, &i.event_path).map(|v| (i.async_path.clone(), v))) {
        Some(pv) => pv,
        None => ("*".into(), "*".into()),
    }
}

fn holds(cond: Option<&crate::expr::Expr>, vars: &[(&str, &Value)]) -> bool {
    cond.is_none_or(|c| c.eval_bool(vars).unwrap_or(false))
}

/// The edge's `if`, with `async` bound; a failing condition is not taken.
fn edge_condition(
    f: &Function,
    run: &mut Run,
    child: usize,
    e: usize,
    async_event: &Value,
) -> bool {
    let edge = &f.steps[child].incoming[e];
    let Some(cond) = &edge.cond else { return true };
    let steps = outputs(run);
    let response = edge
        .parent
        .and_then(|p| run.steps[p].output.as_ref().map(|o| o.get().clone()))
        .unwrap_or(Value::Null);
    let vars = [
        ("event", run.event.get()),
        ("steps", &steps),
        ("response", &response),
        ("async", async_event),
    ];
    match cond.eval_bool(&vars) {
        Ok(b) => b,
        Err(err) => {
            let from = edge
                .parent
                .map(|p| f.steps[p].id.as_str())
                .unwrap_or(crate::function::TRIGGER);
            run.steps[child].error = Some(format!("edge from `{from}` not taken: {err}"));
            false
        }
    }
}

fn resolve_edge(
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

/// Moves step `idx`'s single queue entry (its timer) to `due`.
fn rearm_timer(run: &mut Run, idx: usize, due: i64, change: &mut RunChange) {
    let (tenant, run_id) = (run.tenant.clone(), run.id.clone());
    let st = &mut run.steps[idx];
    if let Some(old) = st.queued.take() {
        change.dequeue.push(QueueEntry {
            due: old,
            tenant: tenant.clone(),
            run_id: run_id.clone(),
            step_id: st.id.clone(),
        });
    }
    st.queued = Some(due);
    st.wake_at = Some(due);
    change.enqueue.push(QueueEntry {
        due,
        tenant,
        run_id,
        step_id: st.id.clone(),
    });
}

fn remove_wait(run: &mut Run, slot: &WaitSlot, change: &mut RunChange) {
    if let Some(pos) = run.waits.iter().position(|w| &w.slot == slot) {
        let w = run.waits.remove(pos);
        change.waits_remove.push(run.wait_key(&w));
    }
}

fn clear_timer(run: &mut Run, idx: usize, change: &mut RunChange) {
    let st = &mut run.steps[idx];
    if let Some(due) = st.queued.take() {
        change.dequeue.push(QueueEntry {
            due,
            tenant: run.tenant.clone(),
            run_id: run.id.clone(),
            step_id: st.id.clone(),
        });
        st.wake_at = None;
    }
}

/// After a wait of step `idx` resolved: re-arm its timer if waits remain, else let the
/// step be decided by its edges.
fn after_wait_change(f: &Function, run: &mut Run, idx: usize, now: i64, change: &mut RunChange) {
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

/// Queues every pending step whose edges are all resolved with one taken (after the
/// longest `wait` of its taken edges), skips those with none taken (propagating the
/// skip), and completes the run when nothing is left.
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
fn refresh_status(run: &mut Run) {
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
        let ev = parse_batch(br#"{"name":"e","data":{"n":2},"user":{"id":"u1"}}"#, 1)
            .unwrap()
            .remove(0);
        let (run, change) = new_run(f, "t", "r".into(), &ev, 100);
        (run, change.enqueue)
    }

    fn run_step(f: &Function, run: &mut Run, id: &str, result: StepResult) -> RunChange {
        let i = f.step_index(id).unwrap();
        let due = run.steps[i].queued.expect("step is queued");
        assert!(
            matches!(on_due(f, run, i, due, 100), Due::Execute(_)),
            "claimable"
        );
        complete(f, run, i, result, None, 200, 0.5).expect("running")
    }

    #[test]
    fn an_older_runs_next_step_queues_ahead_of_a_younger_runs_first() {
        let f = function(
            json!({"a": {"path": SHA}, "b": {"path": SHA, "after": [{"step": "a"}]},
            "c": {"path": SHA, "after": [{"step": "a", "wait": "1s"}]}}),
        );
        let ev = parse_batch(br#"{"name":"e"}"#, 1).unwrap().remove(0);
        let (mut old, _) = new_run(&f, "t", "old".into(), &ev, 100);
        let (_, young) = new_run(&f, "t", "young".into(), &ev, 5_000);
        // The old run's first step finishes long after the young run was queued.
        let a = f.step_index("a").unwrap();
        assert!(matches!(
            on_due(&f, &mut old, a, 100, 6_000),
            Due::Execute(_)
        ));
        let c = complete(
            &f,
            &mut old,
            a,
            StepResult::Completed(json!(1)),
            None,
            7_000,
            0.5,
        )
        .unwrap();
        let due = |id: &str| c.enqueue.iter().find(|q| q.step_id == id).unwrap().due;
        assert_eq!(due("b"), 100, "queued as of its run's start");
        assert!(
            due("b") < young.enqueue[0].due,
            "ahead of the younger run's first step"
        );
        // A sleep still counts from now.
        assert_eq!(due("c"), 8_000);
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
        // What a step reads: the event, every completed output (by step id), the async
        // event and its context, exactly as the JSON document a reader would build.
        run.steps[1].async_event = Some(json!({"name": "later", "data": {"k": [1, 2]}}));
        run.steps[1].attempts = 3;
        let got: Value = serde_json::from_slice(&stdin(&run, 1)).unwrap();
        let want = json!({
            "event": run.event,
            "steps": {"a": {"x": 1}, "b": null},
            "async": {"name": "later", "data": {"k": [1, 2]}},
            "ctx": {"function_id": run.function_id, "function_version": run.function_version,
                    "run_id": run.id, "step_id": "b", "attempt": 2, "tenant": run.tenant},
        });
        assert_eq!(got, want);
        assert_eq!(
            stdin(&run, 1),
            serde_json::to_vec(&want).unwrap(),
            "same bytes"
        );
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
        assert_eq!(run.steps[0].output, Some(json!("first").into()));
        assert!(matches!(on_due(&f, &mut run, 0, 100, 300), Due::Stale(_)));
    }

    #[test]
    fn a_wait_edge_sleeps_durably_before_the_child() {
        let f = function(
            json!({"a": {"path": SHA}, "b": {"path": SHA, "after": [{"step": "a", "wait": "10m"}]}}),
        );
        let (mut run, _) = start(&f);
        let c = run_step(&f, &mut run, "a", StepResult::Completed(json!(1)));
        let b = run.step("b").unwrap();
        assert_eq!(b.status, StepStatus::Sleeping);
        assert_eq!(b.wake_at, Some(200 + 600_000));
        assert_eq!(c.enqueue[0].due, 200 + 600_000);
        assert_eq!(run.status, RunStatus::Sleeping);
        run_step(&f, &mut run, "b", StepResult::Completed(json!(2)));
        assert_eq!(run.status, RunStatus::Completed);
    }

    fn waiting_function() -> Function {
        function(json!({
            "send": {"path": SHA},
            "verified": {"path": SHA, "after": [{"step": "send", "async": {"event": "user/verified", "match": "event.user.id == async.user.id", "ttl": "1h"}}]},
            "nudge": {"path": SHA, "after": [{"step": "send", "async": {"event": "user/verified", "match": "event.user.id == async.user.id", "ttl": "1h", "onTimeout": true}}]}
        }))
    }

    #[test]
    fn a_matching_event_takes_the_async_edge_and_skips_the_timeout_edge() {
        let f = waiting_function();
        let (mut run, _) = start(&f);
        let c = run_step(&f, &mut run, "send", StepResult::Completed(json!(1)));
        assert_eq!(run.status, RunStatus::Waiting);
        assert_eq!(c.waits_add.len(), 2);
        assert_eq!(c.waits_add[0].path, "user.id");
        assert_eq!(c.waits_add[0].value, "\"u1\"");
        let slot = c.waits_add[0].slot.clone();
        let other = json!({"name": "user/verified", "user": {"id": "u2"}});
        assert!(
            resume(&f, &mut run, &slot, &other, 300).is_none(),
            "another user's event does not match"
        );
        let mine = json!({"name": "user/verified", "user": {"id": "u1"}});
        for w in c
            .waits_add
            .iter()
            .map(|w| w.slot.clone())
            .collect::<Vec<_>>()
        {
            resume(&f, &mut run, &w, &mine, 300).unwrap();
        }
        assert_eq!(
            run.step("verified").unwrap().async_event,
            Some(mine.clone())
        );
        assert_eq!(run.step("nudge").unwrap().status, StepStatus::Skipped);
        assert!(run.waits.is_empty());
        run_step(&f, &mut run, "verified", StepResult::Completed(json!(2)));
        assert_eq!(run.status, RunStatus::Completed);
        assert!(
            resume(&f, &mut run, &slot, &mine, 400).is_none(),
            "a wait resolves once"
        );
    }

    #[test]
    fn on_timeout_the_timeout_edge_is_taken() {
        let f = waiting_function();
        let (mut run, _) = start(&f);
        run_step(&f, &mut run, "send", StepResult::Completed(json!(1)));
        let v = f.step_index("verified").unwrap();
        let due = run.steps[v].queued.unwrap();
        assert_eq!(due, 200 + 3_600_000);
        assert!(matches!(on_due(&f, &mut run, v, due, due), Due::Handled(_)));
        let n = f.step_index("nudge").unwrap();
        let due = run.steps[n].queued.unwrap();
        let Due::Handled(c) = on_due(&f, &mut run, n, due, due) else {
            panic!("timer")
        };
        assert_eq!(run.step("verified").unwrap().status, StepStatus::Skipped);
        assert_eq!(run.step("nudge").unwrap().status, StepStatus::Pending);
        assert_eq!(c.enqueue.len(), 1, "nudge is queued to run");
        run_step(&f, &mut run, "nudge", StepResult::Completed(json!(3)));
        assert_eq!(run.status, RunStatus::Completed);
    }

    #[test]
    fn cancel_rules_and_explicit_cancel_end_the_run() {
        let def = FunctionDef::from_value(json!({"id": "f", "triggers": [{"event": "e"}],
            "cancel": [{"event": "user/deleted", "if": "event.user.id == async.user.id"}],
            "steps": {"a": {"path": SHA}, "b": {"path": SHA, "after": [{"step": "a", "wait": "1h"}]}}})).unwrap();
        let f = Function::compile(def, 1, |_, _| Ok(())).unwrap();
        let (mut run, _) = start(&f);
        run_step(&f, &mut run, "a", StepResult::Completed(json!(1)));
        let slot = run.waits[0].slot.key();
        assert!(resume(&f, &mut run, &slot, &json!({"user": {"id": "u2"}}), 300).is_none());
        let c = resume(&f, &mut run, &slot, &json!({"user": {"id": "u1"}}), 300).unwrap();
        assert_eq!(run.status, RunStatus::Cancelled);
        assert_eq!(run.step("b").unwrap().status, StepStatus::Cancelled);
        assert_eq!(c.dequeue.len(), 1, "the sleeping step's timer is gone");
        assert_eq!(c.waits_remove.len(), 1);
        assert!(cancel(&mut run, 400).is_none(), "already over");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff_ms(1000, 1, 0.0), 500);
        assert_eq!(backoff_ms(1000, 3, 1.0), 4000);
        assert!(backoff_ms(1000, 40, 1.0) <= 3_600_000);
    }
}
