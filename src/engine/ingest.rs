//! Trigger matching: stored events become runs. An event leaves the pending set in the
//! same atomic write that creates its runs, so a crash in between only repeats the work.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{dag, waits, Engine, EngineError};
use crate::event::{new_id, now_ms, Event};
use crate::function::Function;
use crate::run::Run;
use crate::store::{Ingested, RunChange, WaitQuery};

const BATCH: usize = 256;

/// Matches pending events forever; wakes on new events and polls as a safety net.
pub async fn run_loop(engine: Arc<Engine>) {
    loop {
        let pending = match engine.store.pending_events(now_ms(), BATCH).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("cannot read pending events: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if pending.is_empty() {
            // Sleep until the next future-dated event is due, a new event arrives, or 1 s.
            let next = engine.store.next_delayed().await.ok().flatten();
            let wait = next
                .map(|t| Duration::from_millis((t - now_ms()).clamp(1, 1000) as u64))
                .unwrap_or(Duration::from_secs(1));
            let _ = tokio::time::timeout(wait, engine.ingest_wake.notified()).await;
            continue;
        }
        if let Err(e) = ingest_batch(&engine, pending).await {
            tracing::error!("cannot start runs: {e}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        engine.dispatch_wake.notify_one();
    }
}

/// Resumes the waits a batch of events matches, then records all their runs in one
/// durable write.
async fn ingest_batch(
    engine: &Arc<Engine>,
    pending: Vec<(String, Event)>,
) -> Result<(), EngineError> {
    let values: Vec<Arc<Value>> = pending
        .iter()
        .map(|(_, ev)| Arc::new(ev.to_value()))
        .collect();
    // Waits first: each resume is its own atomic write and is idempotent, so a crash
    // before the events are marked ingested only repeats work.
    let queries = pending
        .iter()
        .zip(&values)
        .map(|((tenant, ev), v)| WaitQuery {
            tenant: tenant.clone(),
            event: ev.name.clone(),
            incoming: Arc::clone(v),
        })
        .collect();
    let found = engine.store.find_waits(queries).await?;
    for (((tenant, _), v), keys) in pending.iter().zip(&values).zip(found) {
        if !keys.is_empty() {
            waits::resume_waits(engine, tenant, v, keys).await?;
        }
    }
    // Trigger expressions are CPU work: off the async threads.
    let e = engine.clone();
    let batch = tokio::task::spawn_blocking(move || {
        pending
            .iter()
            .zip(&values)
            .map(|((t, ev), v)| plan(&e, t, ev, v))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| EngineError::Internal(format!("trigger matching panicked: {e}")))?;
    let n = batch.len() as u64;
    let runs: u64 = batch.iter().map(|b| b.runs.len() as u64).sum();
    engine.store.commit_ingest(batch).await?;
    engine.stats.runs_started.fetch_add(runs, Ordering::Relaxed);
    let _ = engine
        .pending
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| {
            Some(p.saturating_sub(n))
        });
    Ok(())
}

/// The runs an event starts.
fn plan(engine: &Engine, tenant: &str, event: &Event, value: &Value) -> Ingested {
    let now = now_ms();
    let candidates: Vec<Arc<Function>> = if event.name == super::cron::CRON_EVENT {
        // A cron tick starts the one function it was fired for.
        let fid = event
            .data
            .get("function_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        engine
            .registry
            .latest(tenant, fid)
            .filter(|f| !f.crons.is_empty())
            .into_iter()
            .collect()
    } else {
        engine
            .registry
            .triggered_by(tenant, &event.name)
            .into_iter()
            .filter(|f| matches(engine, f, event, value))
            .collect()
    };
    let runs: Vec<(Run, RunChange)> = candidates
        .iter()
        .map(|f| dag::new_run(f, tenant, new_id(), event, now))
        .collect();
    Ingested {
        tenant: tenant.into(),
        event_id: event.id.clone(),
        runs,
    }
}

/// Whether any trigger of `f` for this event's name holds. A trigger whose expression
/// fails to evaluate (a missing field, a type error) does not match; it is logged and
/// counted.
fn matches(engine: &Engine, f: &Function, event: &Event, value: &Value) -> bool {
    let field = |k: &str| value.get(k).cloned().unwrap_or(Value::Null);
    let (name, data, user, id, ts) = (
        field("name"),
        field("data"),
        field("user"),
        field("id"),
        field("ts"),
    );
    f.triggers
        .iter()
        .filter(|t| t.event == event.name)
        .any(|t| match &t.expression {
            None => true,
            Some(expr) => {
                let vars = [
                    ("event", value),
                    ("name", &name),
                    ("data", &data),
                    ("user", &user),
                    ("id", &id),
                    ("ts", &ts),
                ];
                match expr.eval_bool(&vars) {
                    Ok(b) => b,
                    Err(e) => {
                        engine.stats.trigger_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            function = f.id,
                            event = event.id,
                            "trigger does not match: {e}"
                        );
                        false
                    }
                }
            }
        })
}
