//! A run's waterfall: per step, when it waited for an event, slept, sat in the queue,
//! retried and ran, on one time axis from the run's start.

use maud::{html, Markup};

use super::fmt;
use crate::function::Function;
use crate::run::{Run, StepStatus};

/// One stretch of a step's life.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// `wait`, `sleep`, `queue`, `retry` or `run`.
    pub kind: &'static str,
    /// Start, ms since epoch.
    pub from: i64,
    /// End, ms since epoch.
    pub to: i64,
}

/// The segments of step `idx` of `run`, as far as they have happened by `now`.
pub fn segments(f: &Function, run: &Run, idx: usize, now: i64) -> Vec<Segment> {
    let st = &run.steps[idx];
    let mut out = Vec::new();
    let mut push = |kind, from: i64, to: i64| {
        if to > from {
            out.push(Segment { kind, from, to });
        }
    };
    let Some(ready) = st.ready_at else {
        // Not queued yet: it may be waiting for an event on one of its edges.
        let waits = f.steps[idx].incoming.iter().any(|e| e.wait_for.is_some());
        if waits && !st.status.is_terminal() {
            push("wait", parents_end(f, run, idx), now);
        }
        return out;
    };
    let edges = &f.steps[idx].incoming;
    let taken = |k: usize| st.edges.get(k).copied().flatten() == Some(true);
    if edges
        .iter()
        .enumerate()
        .any(|(k, e)| e.wait_for.is_some() && taken(k))
    {
        push("wait", parents_end(f, run, idx), ready);
    }
    let sleep = edges
        .iter()
        .enumerate()
        .filter(|(k, _)| taken(*k))
        .filter_map(|(_, e)| e.wait)
        .max()
        .map_or(0, |d| d.as_millis() as i64);
    let end = st.ended_at.unwrap_or(now);
    let first = st.first_started_at.or(st.started_at);
    let woke = (ready + sleep).min(first.unwrap_or(end));
    push("sleep", ready, woke);
    match (first, st.started_at) {
        (Some(first), Some(last)) => {
            push("queue", woke, first);
            push("retry", first, last);
            let ran_to = match st.status {
                StepStatus::Running => now,
                _ => st.ended_at.unwrap_or(last),
            };
            push("run", last, ran_to.max(last));
        }
        _ if !st.status.is_terminal() => push("queue", woke, now),
        _ => {}
    }
    out
}

/// When the step's parents (or the trigger) were done.
fn parents_end(f: &Function, run: &Run, idx: usize) -> i64 {
    f.steps[idx]
        .incoming
        .iter()
        .filter_map(|e| match e.parent {
            Some(p) => run.steps.get(p).and_then(|s| s.ended_at),
            None => Some(run.created_at),
        })
        .max()
        .unwrap_or(run.created_at)
}

/// The waterfall of `run`.
pub fn waterfall(f: &Function, run: &Run, now: i64) -> Markup {
    let start = run.created_at;
    let rows: Vec<(usize, Vec<Segment>)> = (0..run.steps.len().min(f.steps.len()))
        .map(|i| (i, segments(f, run, i, now)))
        .collect();
    let end = rows
        .iter()
        .flat_map(|(_, s)| s.iter().map(|s| s.to))
        .chain(run.ended_at)
        .max()
        .unwrap_or(now)
        .max(start + 1);
    let span = (end - start) as f64;
    let pct = |t: i64| ((t - start) as f64 / span * 100.0).clamp(0.0, 100.0);
    html! {
        div.waterfall {
            div.axis { span { "0" } span { (fmt::duration_ms(end - start)) } }
            @for (i, segs) in &rows {
                @let st = &run.steps[*i];
                div.wf-row data-step=(st.id) {
                    a.wf-label href={"#step-" (st.id)} { (st.id) }
                    div.wf-track {
                        @for s in segs {
                            span class={"seg " (s.kind)}
                                style={"left:" (format!("{:.2}", pct(s.from))) "%;width:" (format!("{:.2}", (pct(s.to) - pct(s.from)).max(0.4))) "%"}
                                title={(s.kind) " " (fmt::duration_ms(s.to - s.from))} {}
                        }
                    }
                    span.wf-fig {
                        @if st.attempts > 1 { (st.attempts) " attempts · " }
                        @if let Some(run_seg) = segs.iter().find(|s| s.kind == "run") {
                            (fmt::duration_ms(run_seg.to - run_seg.from))
                        } @else {
                            (st.status.as_str())
                        }
                    }
                }
            }
            div.legend {
                @for k in ["wait", "sleep", "queue", "retry", "run"] {
                    span { span class={"seg " (k)} {} (legend(k)) }
                }
            }
        }
    }
}

fn legend(kind: &str) -> &'static str {
    match kind {
        "wait" => "waiting for an event",
        "sleep" => "durable sleep",
        "queue" => "queued",
        "retry" => "earlier attempts and backoff",
        _ => "last attempt",
    }
}
