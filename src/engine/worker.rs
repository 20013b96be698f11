//! The dispatcher and the workers: due queue entries are claimed with leases, executed
//! on the step runtime within a bounded pool, and their results recorded under their
//! lease (refused if the lease was lost meanwhile). Leases are renewed while steps run.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use super::dag::{self, Due, StepResult};
use super::error::Resource;
use super::outcome::classify;
use super::step_input;
use super::transition::{self, Applied};
use super::{Engine, EngineError};
use crate::event::now_ms;
use crate::function::Function;
use crate::run::Run;
use crate::runtime::{Attempt, Cancel, ResolvedLimits, StepRequest};
use crate::store::{ClaimRequest, Claimed, Durability, Lease};

/// Longest the dispatcher sleeps without looking at the queue.
const IDLE_POLL: Duration = Duration::from_millis(500);

/// Dispatches due steps until shutdown.
pub async fn dispatch_loop(engine: Arc<Engine>) {
    let pool = engine.pool.clone();
    let caps = engine.config.caps();
    let lease_ms = engine.config.lease.as_millis() as i64;
    loop {
        let Ok(first) = pool.clone().acquire_owned().await else {
            return;
        };
        if engine.is_stopping() {
            return;
        }
        let mut permits = vec![first];
        while let Ok(p) = pool.clone().try_acquire_owned() {
            permits.push(p);
        }
        let now = now_ms();
        let req = ClaimRequest {
            owner: engine.owner.clone(),
            now,
            limit: permits.len(),
            lease_ms,
            caps: caps.clone(),
        };
        let claimed = match engine.store.claim(req).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("cannot claim due steps: {e}");
                drop(permits);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if claimed.is_empty() {
            drop(permits);
            let next = engine.store.next_due(now, &caps).await.ok().flatten();
            let wait = next
                .map(|t| {
                    Duration::from_millis(
                        (t - now_ms()).clamp(1, IDLE_POLL.as_millis() as i64) as u64
                    )
                })
                .unwrap_or(IDLE_POLL);
            let _ = tokio::time::timeout(wait, engine.dispatch_wake.notified()).await;
            continue;
        }
        // Each comes with its run, read after the claim: a step that just finished gave
        // its lease back only once its result was committed, so that read sees the result
        // and the entry is found stale, not run again.
        for Claimed { lease, run } in claimed {
            let Some(permit) = permits.pop() else { break };
            let cancel = engine.inflight.hold(lease.lease_ref());
            let engine = engine.clone();
            // Context for every line logged while the step is handled; at ERROR level so
            // that it is enabled whatever level the filter lets through.
            let span = tracing::error_span!(
                "step",
                tenant = lease.entry.tenant,
                run = lease.entry.run_id,
                step = lease.entry.step_id
            );
            tokio::spawn(tracing::Instrument::instrument(
                async move {
                    let entry = lease.entry.clone();
                    // A panic while handling one step must not leak its permit; its lease
                    // then lapses and the step is taken over as an interrupted attempt.
                    let done = AssertUnwindSafe(execute(&engine, lease, run, cancel))
                        .catch_unwind()
                        .await;
                    if done.is_err() {
                        tracing::error!(
                            run = entry.run_id,
                            step = entry.step_id,
                            "step handling panicked"
                        );
                    }
                    engine.inflight.drop_lease(&entry);
                    drop(permit);
                    engine.dispatch_wake.notify_one();
                },
                span,
            ));
        }
    }
}

/// Renews the leases of the steps this process is executing, at a third of the lease.
pub async fn renew_loop(engine: Arc<Engine>) {
    let every = engine.config.lease / 3;
    let lease_ms = engine.config.lease.as_millis() as i64;
    loop {
        tokio::time::sleep(every).await;
        let held = engine.inflight.leases();
        if held.is_empty() {
            continue;
        }
        match engine.store.renew(held.clone(), now_ms() + lease_ms).await {
            Ok(kept) => {
                // A step whose lease was lost, or whose entry was removed (its run was
                // cancelled, maybe by another process), is stopped: its result would be
                // refused or dropped. (A step that has just recorded its result has given
                // its lease back; stopping it then does nothing.)
                for (lease, _) in held.iter().zip(&kept).filter(|(_, k)| !**k) {
                    tracing::debug!(
                        run = lease.entry.run_id,
                        step = lease.entry.step_id,
                        "the step's lease is no longer held or its entry is gone: stopping it"
                    );
                    engine.inflight.stop(lease);
                }
            }
            Err(e) => tracing::error!("cannot renew leases: {e}"),
        }
    }
}

async fn execute(engine: &Arc<Engine>, lease: Lease, run: Option<Run>, cancel: Cancel) {
    let entry = lease.entry.clone();
    if let Err(e) = try_execute(engine, lease, run, cancel).await {
        tracing::error!(
            run = entry.run_id,
            step = entry.step_id,
            "step execution failed: {e}"
        );
    }
}

/// Runs one claimed step and records its result; or records what its entry means when
/// it is not a step to run (a timer, a stale entry, an attempt cut short).
async fn try_execute(
    engine: &Arc<Engine>,
    lease: Lease,
    run: Option<Run>,
    cancel: Cancel,
) -> Result<(), EngineError> {
    let entry = &lease.entry;
    let Some(mut run) = run else {
        tracing::warn!(
            run = entry.run_id,
            "queue entry for a missing run; dropping it"
        );
        engine.store.release(vec![lease.lease_ref()], true).await?;
        return Ok(());
    };
    let f = engine
        .function_version(&entry.tenant, &run.function_id, run.function_version)
        .await;
    let f = match f {
        Ok(f) => f,
        Err(e) => {
            // Held a moment before it is given back, so that a version that cannot be
            // loaded is not claimed again at once, over and over.
            tokio::time::sleep(Duration::from_secs(1)).await;
            engine.store.release(vec![lease.lease_ref()], false).await?;
            return Err(e);
        }
    };
    let Some(idx) = f.step_index(&entry.step_id) else {
        engine.store.release(vec![lease.lease_ref()], true).await?;
        return Err(EngineError::not_found(
            Resource::Step,
            format!("{} in {} v{}", entry.step_id, f.id, f.version),
        ));
    };
    if let Some(started) = lease.took_over {
        // The attempt that held this entry before was cut short (its process stopped, or
        // stopped renewing): it counts as a failed attempt, so that `ctx.attempt` counts
        // it and a step that keeps taking its process down runs out of retries.
        let result = StepResult::Retryable {
            error: "interrupted: weir stopped while this attempt ran".into(),
            output: None,
        };
        let extras = Extras {
            log: None,
            sandbox: None,
            sent: Vec::new(),
        };
        return record(engine, &lease, None, f, idx, started, result, extras).await;
    }
    let now = now_ms();
    // A corrupt run (its state does not fit its function) must fail, not take the worker
    // down and come back on every dispatch.
    let decided = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let due = dag::on_due(&f, &mut run, idx, entry.due, now);
        let stdin = matches!(due, Due::Execute(_)).then(|| step_input::stdin(&run, idx));
        (due, stdin)
    }));
    let (due, stdin) = match decided {
        Ok(d) => d,
        Err(p) => {
            let why = transition::panic_text(&*p);
            let lease = Some(lease.lease_ref());
            transition::fail_corrupt(engine, &entry.tenant, &entry.run_id, lease, &why).await?;
            return Ok(());
        }
    };
    match due {
        Due::Execute(_) => {}
        Due::Handled(c) | Due::Stale(c) => {
            // Not a step to run (a timer fired, or the entry is stale): record what that
            // means, durably. `run` already carries it; after a conflict it is decided
            // again on the current run.
            let (f2, due) = (f.clone(), entry.due);
            let mut first = Some(c);
            transition::apply(
                engine,
                &entry.tenant,
                &entry.run_id,
                Some(run),
                Some(lease.lease_ref()),
                Durability::Durable,
                move |r| match first.take() {
                    Some(c) => Some(c),
                    None => match dag::on_due(&f2, r, idx, due, now) {
                        // It became runnable meanwhile: leave it to the next dispatch.
                        Due::Execute(_) => None,
                        Due::Handled(c) | Due::Stale(c) => Some(c),
                    },
                },
            )
            .await?;
            return Ok(());
        }
    }
    let stdin = stdin.unwrap_or_default();
    let began = std::time::Instant::now();
    // Numbered from 0, like `ctx.attempt` (the claim counted this one already).
    let attempt = run.steps[idx].attempts.saturating_sub(1);
    let mut req = step_request(engine, &entry.tenant, &f, idx, stdin, &run.id, attempt);
    req.cancel = cancel.clone();
    let mut outcome = engine.runtime.run(req).await;
    let took = began.elapsed().as_secs_f64();
    engine.stats.steps_executed.fetch_add(1, Ordering::Relaxed);
    let sandbox = outcome.figures;
    let mut events = std::mem::take(&mut outcome.sent);
    let (result, log) = classify(outcome);
    let log = if cancel.is_fired() && !events.is_empty() {
        // The run was cancelled while the step ran: what it sent starts nothing.
        let note = format!(
            "{} events sent by this attempt were dropped: the run was cancelled",
            events.len()
        );
        events.clear();
        Some(append_line(log, &note))
    } else {
        log
    };
    let (result, log, sent) = send_events(
        engine,
        &entry.tenant,
        &run.id,
        &entry.step_id,
        events,
        result,
        log,
    )
    .await;
    engine.metrics.step_finished(
        &entry.tenant,
        &run.function_id,
        took,
        matches!(result, StepResult::Completed(_)),
    );
    match &result {
        StepResult::Completed(_) => {}
        StepResult::Retryable { error, .. } | StepResult::Permanent { error, .. } => {
            engine.stats.steps_failed.fetch_add(1, Ordering::Relaxed);
            let attempt = run.steps[idx].attempts;
            tracing::warn!(attempt, "step attempt failed: {error}");
        }
    }
    let extras = Extras { log, sandbox, sent };
    record(engine, &lease, Some(run), f, idx, now, result, extras).await
}

/// What is recorded with a step's result besides it.
struct Extras {
    log: Option<String>,
    sandbox: Option<crate::runtime::SandboxFigures>,
    sent: Vec<crate::run::SentEvent>,
}

/// A step's log with a line of weir's own after it.
fn append_line(log: Option<String>, line: &str) -> String {
    match log {
        Some(l) if !l.is_empty() => format!("{}\n{line}", l.trim_end_matches('\n')),
        _ => line.to_string(),
    }
}

/// Ingests the events a completed attempt sent, before its result is recorded; a
/// refusal fails the step (at once if the events were wrong, else to be retried). A
/// failed attempt's events are dropped, and its log says so.
async fn send_events(
    engine: &Engine,
    tenant: &str,
    run_id: &str,
    step_id: &str,
    events: Vec<crate::event::Event>,
    result: StepResult,
    log: Option<String>,
) -> (StepResult, Option<String>, Vec<crate::run::SentEvent>) {
    if events.is_empty() {
        return (result, log, Vec::new());
    }
    let StepResult::Completed(output) = result else {
        let note = format!(
            "{} events sent by this attempt were dropped: it did not complete",
            events.len()
        );
        return (result, Some(append_line(log, &note)), Vec::new());
    };
    match super::sends::ingest(engine, tenant, run_id, step_id, events).await {
        Ok(sent) => (StepResult::Completed(output), log, sent),
        Err(e) => {
            let error = format!("the events it sent were refused: {e}");
            let output = Some(output);
            let result = if e.is_client_error() {
                StepResult::Permanent { error, output }
            } else {
                StepResult::Retryable { error, output }
            };
            (result, log, Vec::new())
        }
    }
}

/// What the runtime is asked to execute for step `idx` of `f` in run `run_id`: its
/// target, its limits (the step's, else the defaults), its environment.
pub(super) fn step_request(
    engine: &Engine,
    tenant: &str,
    f: &Function,
    idx: usize,
    stdin: Vec<u8>,
    run_id: &str,
    attempt: u32,
) -> StepRequest {
    let step = &f.steps[idx];
    let d = engine.config.default_limits;
    StepRequest {
        tenant: tenant.to_string(),
        target: step.target.clone(),
        attempt: Attempt {
            run_id: run_id.to_string(),
            step_id: step.id.clone(),
            attempt,
        },
        cancel: Cancel::default(),
        sent_ids: Vec::new(),
        stdin,
        limits: ResolvedLimits {
            memory: step.limits.memory.unwrap_or(d.memory),
            timeout: step.limits.timeout.unwrap_or(d.timeout),
            stdout: step.limits.stdout.unwrap_or(d.stdout),
            stderr: step.limits.stderr.unwrap_or(d.stderr),
            fuel: step.limits.fuel.or(d.fuel),
            events: step.limits.events.unwrap_or(d.events),
            event_size: step.limits.event_size.unwrap_or(d.event_size),
        },
        env: step.env.clone(),
    }
}

/// Records a step's claim and result in one durable write under its lease. `claimed` is
/// the run as claimed (the attempt started on it), if at hand; after a conflict the claim
/// is applied again to the current run. If the run moved on while the step ran
/// (cancelled, or the entry went stale), the result is dropped; if the lease was lost,
/// the write is refused.
#[allow(clippy::too_many_arguments)]
async fn record(
    engine: &Arc<Engine>,
    lease: &Lease,
    claimed: Option<Run>,
    f: Arc<Function>,
    idx: usize,
    started: i64,
    result: StepResult,
    extras: Extras,
) -> Result<(), EngineError> {
    let Extras { log, sandbox, sent } = extras;
    let jitter: f64 = rand::random();
    let done = now_ms();
    let due = lease.entry.due;
    let mut on_claimed = claimed.is_some();
    let applied = transition::apply(
        engine,
        &lease.entry.tenant,
        &lease.entry.run_id,
        claimed,
        Some(lease.lease_ref()),
        Durability::Durable,
        move |r| {
            if std::mem::take(&mut on_claimed) {
                let c = dag::complete(&f, r, idx, result.clone(), log.clone(), done, jitter)?;
                r.steps[idx].sandbox = sandbox;
                r.steps[idx].sent = sent.clone();
                return Some(c);
            }
            match dag::on_due(&f, r, idx, due, started) {
                Due::Execute(mut c) => {
                    let rest =
                        dag::complete(&f, r, idx, result.clone(), log.clone(), done, jitter)?;
                    r.steps[idx].sandbox = sandbox;
                    r.steps[idx].sent = sent.clone();
                    c.extend(rest);
                    Some(c)
                }
                Due::Handled(c) | Due::Stale(c) => Some(c),
            }
        },
    )
    .await?;
    if let Applied::LeaseLost = applied {
        tracing::warn!(
            run = lease.entry.run_id,
            step = lease.entry.step_id,
            "the step's lease was lost while it ran; its result is dropped"
        );
    }
    Ok(())
}
