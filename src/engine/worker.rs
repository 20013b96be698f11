//! The dispatcher and the workers: due queue entries are claimed, executed on the step
//! runtime within a bounded pool, and their results recorded in one atomic write.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::Semaphore;

use super::dag::{self, StepResult};
use super::Engine;
use crate::event::now_ms;
use crate::function::Function;
use crate::run::{QueueEntry, Run};
use crate::runtime::{ResolvedLimits, StepOutcome, StepRequest};
use crate::store::Durability;

/// Longest the dispatcher sleeps without looking at the queue.
const IDLE_POLL: Duration = Duration::from_millis(500);

/// Dispatches due steps forever (after recording the attempts a stop cut short).
pub async fn dispatch_loop(engine: Arc<Engine>) {
    recover_interrupted(&engine).await;
    let pool = Arc::new(Semaphore::new(engine.config.workers));
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
        let e2 = engine.clone();
        let n = permits.len();
        // The due entries and their runs are read in one trip to a blocking thread, so a
        // step needs no read of its own before it runs.
        let due = tokio::task::spawn_blocking(move || {
            let room = |t: &str| e2.room(t);
            let skip = |q: &QueueEntry| e2.is_inflight(q);
            let due = e2.store.due(now, n, &room, &skip)?;
            let next = if due.is_empty() {
                e2.store.next_due(&room, &skip)?
            } else {
                None
            };
            // Each run is read after `due` has checked its entry is not executing: a step
            // that just finished released its entry only after its result was committed,
            // so this read sees that result and the entry is found stale, not re-run.
            let due: Vec<_> = due
                .into_iter()
                .map(|q| {
                    let loaded = load(&e2, &q);
                    (q, loaded)
                })
                .collect();
            Ok::<_, crate::store::StoreError>((due, next))
        })
        .await;
        let (due, next) = match due {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                tracing::error!("cannot read the queue: {e}");
                drop(permits);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => {
                tracing::error!("queue reader panicked: {e}");
                continue;
            }
        };
        if due.is_empty() {
            drop(permits);
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
        for (entry, loaded) in due {
            if engine.is_stopping() {
                return;
            }
            let Some(permit) = permits.pop() else { break };
            if !engine.claim_inflight(&entry) {
                continue;
            }
            let engine = engine.clone();
            tokio::spawn(async move {
                execute(&engine, &entry, loaded).await;
                engine.release_inflight(&entry);
                drop(permit);
                engine.dispatch_wake.notify_one();
            });
        }
    }
}

/// Steps that were executing when the process stopped (their claims were recorded, their
/// results never were): each such attempt is counted and recorded as a retryable failure,
/// so `ctx.attempt` counts it and the step's retry limit applies, as for any failure.
async fn recover_interrupted(engine: &Arc<Engine>) {
    let e2 = engine.clone();
    let found = tokio::task::spawn_blocking(move || {
        e2.store.claimed().map(|claims| {
            claims
                .into_iter()
                .map(|(q, started)| {
                    let loaded = load(&e2, &q);
                    (q, started, loaded)
                })
                .collect::<Vec<_>>()
        })
    })
    .await;
    let found = match found {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => return tracing::error!("cannot read interrupted steps: {e}"),
        Err(e) => return tracing::error!("interrupted-step reader panicked: {e}"),
    };
    let mut n = 0;
    for (q, started, loaded) in found {
        let f = match loaded {
            Ok(Some((_, f))) => f,
            Ok(None) => continue, // the run is gone; its entry was dropped
            Err(e) => {
                tracing::error!(run = q.run_id, step = q.step_id, "cannot recover: {e}");
                continue;
            }
        };
        let Some(idx) = f.step_index(&q.step_id) else {
            continue;
        };
        let result = StepResult::Retryable {
            error: "interrupted: weir stopped while this attempt ran".into(),
            output: None,
        };
        match record(engine, &q, f, idx, started, result, None).await {
            Ok(()) => n += 1,
            Err(e) => tracing::error!(run = q.run_id, step = q.step_id, "{e}"),
        }
    }
    if n > 0 {
        tracing::warn!("{n} step attempts were cut short by the last stop; recorded as failed");
    }
}

/// A due entry's run and function, read by the dispatcher; `None` if the run is gone.
type Loaded = Result<Option<(Run, Arc<Function>)>, super::EngineError>;

/// Reads the run of a due entry and its function (on a blocking thread). A stray entry
/// whose run is gone is dropped.
fn load(engine: &Engine, q: &QueueEntry) -> Loaded {
    let Some(run) = engine.store.get_run(&q.tenant, &q.run_id)? else {
        tracing::warn!(run = q.run_id, "queue entry for a missing run; dropping it");
        engine.store.dequeue(q)?;
        return Ok(None);
    };
    let f = engine.function_version(&q.tenant, &run.function_id, run.function_version)?;
    Ok(Some((run, f)))
}

/// Claims, runs and records one step attempt.
async fn execute(engine: &Arc<Engine>, entry: &QueueEntry, loaded: Loaded) {
    if let Err(e) = try_execute(engine, entry, loaded).await {
        tracing::error!(
            run = entry.run_id,
            step = entry.step_id,
            "step execution failed: {e}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Claims the step: decides, on the copy of its run the dispatcher read, whether it is
/// to run now. The run is not rewritten for the claim: the step's completion records
/// claim and result in one write (see [`record`]), so a step costs the run writer one run
/// update, not two; the claim itself is only marked on the step's queue entry, without
/// waiting (see [`super::writer::Writer::mark_claimed`]). Returns the claimed run, its function, the step's index and the claim time.
async fn claim(
    engine: &Arc<Engine>,
    entry: &QueueEntry,
    loaded: Loaded,
) -> Result<Option<(Run, Arc<Function>, usize, i64)>, super::EngineError> {
    let Some((mut run, f)) = loaded? else {
        return Ok(None);
    };
    let Some(idx) = f.step_index(&entry.step_id) else {
        return Err(super::EngineError::NotFound(format!(
            "step {} in {} v{}",
            entry.step_id, f.id, f.version
        )));
    };
    let now = now_ms();
    if let dag::Due::Execute(_) = dag::on_due(&f, &mut run, idx, entry.due, now) {
        engine.mark_running(entry, now);
        engine.writer.mark_claimed(entry.clone(), now);
        return Ok(Some((run, f, idx, now)));
    }
    // Not a step to run (a timer fired, or the entry is stale): let the writer decide
    // on the current run and record what that means, durably.
    let (f2, due) = (f.clone(), entry.due);
    engine
        .writer
        .update(
            &entry.tenant,
            &entry.run_id,
            Durability::Durable,
            move |r| match dag::on_due(&f2, r, idx, due, now) {
                // It became runnable meanwhile: leave it to the next dispatch.
                dag::Due::Execute(_) => None,
                dag::Due::Handled(c) | dag::Due::Stale(c) => Some(c),
            },
        )
        .await?;
    Ok(None)
}

/// Records a step's claim and result in one durable write. If the run moved on while the
/// step ran (cancelled, or the entry went stale), the result is dropped.
async fn record(
    engine: &Arc<Engine>,
    entry: &QueueEntry,
    f: Arc<Function>,
    idx: usize,
    started: i64,
    result: StepResult,
    log: Option<String>,
) -> Result<(), super::EngineError> {
    let jitter: f64 = rand::random();
    let done = now_ms();
    let due = entry.due;
    engine
        .writer
        .update(
            &entry.tenant,
            &entry.run_id,
            Durability::Durable,
            move |r| match dag::on_due(&f, r, idx, due, started) {
                dag::Due::Execute(mut c) => {
                    let rest =
                        dag::complete(&f, r, idx, result.clone(), log.clone(), done, jitter)?;
                    c.extend(rest);
                    Some(c)
                }
                dag::Due::Handled(c) | dag::Due::Stale(c) => Some(c),
            },
        )
        .await?;
    Ok(())
}

async fn try_execute(
    engine: &Arc<Engine>,
    entry: &QueueEntry,
    loaded: Loaded,
) -> Result<(), super::EngineError> {
    let Some((run, f, idx, started)) = claim(engine, entry, loaded).await? else {
        return Ok(());
    };
    let stdin = dag::stdin(&run, idx);
    let step = &f.steps[idx];
    let d = engine.config.default_limits;
    let limits = ResolvedLimits {
        memory: step.limits.memory.unwrap_or(d.memory),
        timeout: step.limits.timeout.unwrap_or(d.timeout),
        stdout: step.limits.stdout.unwrap_or(d.stdout),
        stderr: step.limits.stderr.unwrap_or(d.stderr),
        fuel: step.limits.fuel.or(d.fuel),
    };
    let outcome = engine
        .runtime
        .run(StepRequest {
            tenant: entry.tenant.clone(),
            component: step.component.clone(),
            stdin,
            limits,
            env: step.env.clone(),
        })
        .await;
    engine.stats.steps_executed.fetch_add(1, Ordering::Relaxed);
    let (result, log) = classify(outcome);
    if !matches!(result, StepResult::Completed(_)) {
        engine.stats.steps_failed.fetch_add(1, Ordering::Relaxed);
    }
    record(engine, entry, f, idx, started, result, log).await
}

/// Turns a raw execution outcome into a scheduler result: JSON output (non-JSON stdout
/// becomes `{"body": text}`), with `status` ≥ 500 retryable and 400–499 permanent.
pub fn classify(o: StepOutcome) -> (StepResult, Option<String>) {
    let log = if o.stderr.is_empty() {
        None
    } else {
        Some(String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let output = parse_output(&o.stdout);
    let result = match o.result {
        Err(f) => StepResult::Retryable {
            error: f.to_string(),
            output,
        },
        Ok(()) => {
            let status = output
                .as_ref()
                .and_then(|v| v.get("status"))
                .and_then(Value::as_u64);
            match status {
                Some(s) if s >= 500 => StepResult::Retryable {
                    error: format!("step returned status {s}"),
                    output,
                },
                Some(s) if (400..500).contains(&s) => StepResult::Permanent {
                    error: format!("step returned status {s}"),
                    output,
                },
                _ => StepResult::Completed(output.unwrap_or(Value::Null)),
            }
        }
    };
    (result, log)
}

fn parse_output(stdout: &[u8]) -> Option<Value> {
    if stdout.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    match serde_json::from_slice::<Value>(stdout) {
        Ok(v) => Some(v),
        Err(_) => Some(json!({"body": String::from_utf8_lossy(stdout)})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::StepFailure;

    fn outcome(result: Result<(), StepFailure>, stdout: &str) -> StepOutcome {
        StepOutcome {
            result,
            stdout: stdout.into(),
            stderr: b"note".to_vec(),
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn statuses_and_exit_codes_decide_retries() {
        let (r, log) = classify(outcome(Ok(()), r#"{"status":200,"body":{"ok":true}}"#));
        assert_eq!(
            r,
            StepResult::Completed(json!({"status": 200, "body": {"ok": true}}))
        );
        assert_eq!(log.as_deref(), Some("note"));
        assert!(matches!(
            classify(outcome(Ok(()), r#"{"status":503}"#)).0,
            StepResult::Retryable { .. }
        ));
        assert!(matches!(
            classify(outcome(Ok(()), r#"{"status":404}"#)).0,
            StepResult::Permanent { .. }
        ));
        assert!(matches!(
            classify(outcome(Err(StepFailure::Exit(2)), "")).0,
            StepResult::Retryable { .. }
        ));
        assert_eq!(
            classify(outcome(Ok(()), "hello")).0,
            StepResult::Completed(json!({"body": "hello"}))
        );
        assert_eq!(
            classify(outcome(Ok(()), "")).0,
            StepResult::Completed(Value::Null)
        );
    }
}
