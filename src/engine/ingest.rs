//! Trigger matching: stored events become runs. An event leaves the pending set in the
//! same atomic write that creates its runs, so a crash in between only repeats the work.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{dag, Engine, EngineError};
use crate::event::{new_id, now_ms, Event};
use crate::function::Function;
use crate::run::{QueueEntry, Run};

const BATCH: usize = 256;

/// Matches pending events forever; wakes on new events and polls as a safety net.
pub async fn run_loop(engine: Arc<Engine>) {
    loop {
        let store = engine.store.clone();
        let pending = tokio::task::spawn_blocking(move || store.pending_events(BATCH)).await;
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
            let _ =
                tokio::time::timeout(Duration::from_secs(1), engine.ingest_wake.notified()).await;
            continue;
        }
        for (tenant, event) in pending {
            if let Err(e) = ingest_one(&engine, &tenant, &event).await {
                tracing::error!(tenant, event = event.id, "cannot start runs: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        engine.dispatch_wake.notify_one();
    }
}

async fn ingest_one(engine: &Arc<Engine>, tenant: &str, event: &Event) -> Result<(), EngineError> {
    let now = now_ms();
    let runs: Vec<(Run, Vec<QueueEntry>)> = engine
        .registry
        .triggered_by(tenant, &event.name)
        .into_iter()
        .filter(|f| matches(engine, f, event))
        .map(|f| dag::new_run(&f, tenant, new_id(), event, now))
        .collect();
    let n = runs.len() as u64;
    let store = engine.store.clone();
    let (t, id) = (tenant.to_string(), event.id.clone());
    tokio::task::spawn_blocking(move || store.commit_ingest(&t, &id, &runs))
        .await
        .map_err(|e| EngineError::BadRequest(e.to_string()))??;
    engine.stats.runs_started.fetch_add(n, Ordering::Relaxed);
    Ok(())
}

/// Whether any trigger of `f` for this event's name holds. A trigger whose expression
/// fails to evaluate (a missing field, a type error) does not match; it is logged and
/// counted.
fn matches(engine: &Engine, f: &Function, event: &Event) -> bool {
    let value = event.to_value();
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
                    ("event", &value),
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
