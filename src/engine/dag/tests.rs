//! Transitions of small functions, step by step.

use super::*;
use crate::engine::step_input::stdin;
use crate::event::parse_batch;
use crate::function::Function;
use crate::function::FunctionDef;
use crate::run::{QueueEntry, Run, RunStatus, StepStatus};
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
        "steps": {"a": {"path": SHA}, "b": {"path": SHA, "after": [{"step": "a", "wait": "1h"}]}}}))
    .unwrap();
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
