//! Trigger matching: stored events become runs. An event leaves the pending set in the
//! same atomic write that creates its runs, so a crash in between only repeats the work.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{dag, Engine, EngineError};
use crate::event::{new_id, now_ms, Event};
use crate::function::Function;
use crate::run::Run;
use crate::store::{Durability, Ingested, RunChange};

const BATCH: usize = 256;

/// Matches pending events forever; wakes on new events and polls as a safety net.
pub async fn run_loop(engine: Arc<Engine>) {
    loop {
        let store = engine.store.clone();
        let now = now_ms();
        let pending = tokio::task::spawn_blocking(move || store.pending_events(now, BATCH)).await;
        let pending = match pending {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                tracing::error!("cannot read pending events: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => {
                tracing::error!("pending-event reader panicked: {e}");
                continue;
            }
        };
        if pending.is_empty() {
            // Sleep until the next future-dated event is due, a new event arrives, or 1 s.
            let next = engine.store.next_delayed().ok().flatten();
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

/// Matches a batch of events and records all their runs in one durable write. All of
/// it is store work, so it runs off the async threads.
async fn ingest_batch(
    engine: &Arc<Engine>,
    pending: Vec<(String, Event)>,
) -> Result<(), EngineError> {
    let e = engine.clone();
    let batch = tokio::task::spawn_blocking(move || {
        pending
            .iter()
            .map(|(t, ev)| plan(&e, t, ev))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| EngineError::BadRequest(e.to_string()))??;
    let n = batch.len() as u64;
    let runs: u64 = batch.iter().map(|b| b.runs.len() as u64).sum();
    // Through the writer: the runs share its commit and fsync with the steps' results
    // and the events being acknowledged, instead of contending for the write lock.
    engine.writer.ingest(batch).await?;
    engine.stats.runs_started.fetch_add(runs, Ordering::Relaxed);
    let _ = engine
        .pending
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| {
            Some(p.saturating_sub(n))
        });
    Ok(())
}

/// Resumes the waits an event matches and decides which runs it starts.
fn plan(engine: &Engine, tenant: &str, event: &Event) -> Result<Ingested, EngineError> {
    // Resume the waits this event matches first: each resume is its own atomic write and
    // is idempotent, so a crash before the event is marked ingested only repeats work.
    let value = event.to_value();
    resume_waits(engine, tenant, &event.name, &value)?;
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
            .filter(|f| matches(engine, f, event, &value))
            .collect()
    };
    let runs: Vec<(Run, RunChange)> = candidates
        .iter()
        .map(|f| dag::new_run(f, tenant, new_id(), event, now))
        .collect();
    Ok(Ingested {
        tenant: tenant.into(),
        event_id: event.id.clone(),
        runs,
    })
}

/// Resolves the `async` edges and cancellation rules that `incoming` matches. Waits are
/// found through the index (by event name, and by value where the match is an equality).
pub fn resume_waits(
    engine: &Engine,
    tenant: &str,
    name: &str,
    incoming: &Value,
) -> Result<usize, EngineError> {
    let keys = engine
        .store
        .find_waits(tenant, name, &|path| dag::lookup(incoming, path))?;
    let mut by_run: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for k in keys {
        by_run.entry(k.run_id).or_default().push(k.slot);
    }
    let mut resumed = 0;
    for (run_id, slots) in by_run {
        let Some(run) = engine.store.get_run(tenant, &run_id)? else {
            continue;
        };
        let f = engine.function_version(tenant, &run.function_id, run.function_version)?;
        let now = now_ms();
        let mut hit = false;
        engine
            .store
            .update_run(tenant, &run_id, Durability::Lazy, &mut |r| {
                let mut change = RunChange::default();
                hit = false;
                for slot in &slots {
                    if let Some(c) = dag::resume(&f, r, slot, incoming, now) {
                        hit = true;
                        change.extend(c);
                    }
                }
                hit.then_some(change)
            })?;
        if hit {
            resumed += 1;
        }
    }
    if resumed > 0 {
        engine.dispatch_wake.notify_one();
    }
    Ok(resumed)
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
