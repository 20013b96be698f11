//! Trigger matching: stored events become runs. An event leaves the pending set in the
//! same atomic write that creates its runs, so a crash in between only repeats the work.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::registry::Target;
use super::{dag, waits, Engine, EngineError};
use crate::event::{new_id, now_ms, Event};
use crate::expr::ExprError;
use crate::function::Function;
use crate::run::Run;
use crate::store::{Ingested, RunChange, WaitQuery};

const BATCH: usize = 256;

/// Matches pending events forever; wakes on new events and polls as a safety net.
/// Each tenant's events are matched in a task of their own, one batch per tenant at a
/// time (so a tenant's events keep their order), and the loop does not wait for it: a
/// tenant whose triggers are slow to evaluate holds back only its own events.
pub async fn run_loop(engine: Arc<Engine>) {
    let busy: Arc<Mutex<HashSet<String>>> = Arc::default();
    loop {
        let skip: Vec<String> = lock(&busy).iter().cloned().collect();
        let pending = match engine.store.pending_events(now_ms(), BATCH, &skip).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("cannot read pending events: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if pending.is_empty() {
            // Sleep until the next future-dated event is due, a new event arrives, a
            // tenant's batch is done, or 1 s.
            let next = engine.store.next_delayed().await.ok().flatten();
            let wait = next
                .map(|t| Duration::from_millis((t - now_ms()).clamp(1, 1000) as u64))
                .unwrap_or(Duration::from_secs(1));
            let _ = tokio::time::timeout(wait, engine.ingest_wake.notified()).await;
            continue;
        }
        // Deploys made on other processes sharing the store apply to these events.
        if let Err(e) = engine.sync_config().await {
            tracing::warn!("cannot load what other processes deployed: {e}");
        }
        let mut groups: Vec<(String, Vec<Event>)> = Vec::new();
        for (tenant, ev) in pending {
            match groups.iter_mut().find(|(t, _)| *t == tenant) {
                Some((_, evs)) => evs.push(ev),
                None => groups.push((tenant, vec![ev])),
            }
        }
        for (tenant, events) in groups {
            lock(&busy).insert(tenant.clone());
            let (engine, busy) = (engine.clone(), busy.clone());
            tokio::spawn(async move {
                if let Err(e) = ingest_batch(&engine, &tenant, events).await {
                    tracing::error!(tenant, "cannot start runs: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                lock(&busy).remove(&tenant);
                engine.ingest_wake.notify_one();
                engine.dispatch_wake.notify_one();
            });
        }
    }
}

fn lock(busy: &Mutex<HashSet<String>>) -> std::sync::MutexGuard<'_, HashSet<String>> {
    busy.lock().unwrap_or_else(|p| p.into_inner())
}

/// Resumes the waits one tenant's events match, then records all their runs in one
/// durable write.
async fn ingest_batch(
    engine: &Arc<Engine>,
    tenant: &str,
    pending: Vec<Event>,
) -> Result<(), EngineError> {
    let values: Vec<Arc<Value>> = pending.iter().map(|ev| Arc::new(ev.to_value())).collect();
    // Waits first: each resume is its own atomic write and is idempotent, so a crash
    // before the events are marked ingested only repeats work.
    let queries = pending
        .iter()
        .zip(&values)
        .map(|(ev, v)| WaitQuery {
            tenant: tenant.to_string(),
            event: ev.name.clone(),
            incoming: Arc::clone(v),
        })
        .collect();
    let found = engine.store.find_waits(queries).await?;
    for (v, keys) in values.iter().zip(found) {
        if !keys.is_empty() {
            waits::resume_waits(engine, tenant, v, keys).await?;
        }
    }
    // Trigger expressions are CPU work: off the async threads.
    let (e, t) = (engine.clone(), tenant.to_string());
    let batch = tokio::task::spawn_blocking(move || {
        pending
            .iter()
            .zip(&values)
            .map(|(ev, v)| (plan(&e, &t, ev, v), ev.ts))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| EngineError::Internal(format!("trigger matching panicked: {e}")))?;
    let (batch, event_ts): (Vec<Ingested>, Vec<i64>) = batch.into_iter().unzip();
    let started: Vec<(String, i64, i64)> = batch
        .iter()
        .zip(&event_ts)
        .flat_map(|(b, ts)| {
            b.runs
                .iter()
                .map(move |(r, _)| (r.function_id.clone(), *ts, r.created_at))
        })
        .collect();
    let n = batch.len() as u64;
    let runs: u64 = batch.iter().map(|b| b.runs.len() as u64).sum();
    let routed: Vec<(String, u64)> = batch
        .iter()
        .flat_map(|b| &b.runs)
        .filter_map(|(r, _)| Some((r.rollout_id.clone()?, r.function_version)))
        .collect();
    let updates: Vec<(String, super::stream::Update)> = if engine.bus.active() {
        batch
            .iter()
            .flat_map(|b| b.runs.iter().map(move |(r, _)| (b, r)))
            .map(|(b, r)| (b.tenant.clone(), super::stream::Update::of_run(r, &[])))
            .collect()
    } else {
        Vec::new()
    };
    engine.store.commit_ingest(batch).await?;
    for (t, u) in updates {
        engine.bus.publish(&t, u);
    }
    for (rollout, version) in routed {
        engine.rollouts.figures.started(&rollout, version, 1);
    }
    for (function, ts, created) in started {
        engine.metrics.run_started(tenant, &function, ts, created);
    }
    engine.stats.runs_started.fetch_add(runs, Ordering::Relaxed);
    let _ = engine
        .pending
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| {
            Some(p.saturating_sub(n))
        });
    Ok(())
}

/// The runs an event starts: for each function it may trigger, the version its rollout
/// picks (or the latest), if that version's triggers match.
fn plan(engine: &Engine, tenant: &str, event: &Event, value: &Value) -> Ingested {
    let now = now_ms();
    let targets: Vec<Target> = if event.name == super::cron::CRON_EVENT {
        // A cron tick starts the one function it was fired for.
        let fid = event
            .data
            .get("function_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        engine.registry.target(tenant, fid).into_iter().collect()
    } else {
        engine.registry.triggered_by(tenant, &event.name)
    };
    let mut runs: Vec<(Run, RunChange)> = Vec::new();
    for target in &targets {
        let (f, rollout) = match target {
            Target::Latest(f) => (f, None),
            Target::Routed(route) => {
                let (f, sticky_failed) = route.pick(event, value);
                if sticky_failed {
                    engine.stats.count(tenant, |c| c.sticky_errors += 1);
                }
                (f, Some(&route.rollout_id))
            }
        };
        let starts = if event.name == super::cron::CRON_EVENT {
            !f.crons.is_empty()
        } else {
            matches(engine, tenant, f, event, value)
        };
        if starts {
            let (mut run, change) = dag::new_run(f, tenant, new_id(), event, now);
            run.rollout_id = rollout.cloned();
            runs.push((run, change));
        }
    }
    Ingested {
        tenant: tenant.into(),
        event_id: event.id.clone(),
        runs,
    }
}

/// Whether any trigger of `f` for this event's name holds. A trigger whose expression
/// fails to evaluate (a missing field, a type error) does not match; it is logged and
/// counted.
fn matches(engine: &Engine, tenant: &str, f: &Function, event: &Event, value: &Value) -> bool {
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
                match expr.eval_bool_with_budget(&vars, f.cel_budget) {
                    Ok(b) => b,
                    Err(e) => {
                        engine.stats.trigger_errors.fetch_add(1, Ordering::Relaxed);
                        let budget = matches!(e, ExprError::Budget { .. });
                        engine.stats.count(tenant, |c| {
                            c.trigger_errors += 1;
                            c.cel_budget_exceeded += budget as u64;
                        });
                        tracing::warn!(
                            tenant,
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
