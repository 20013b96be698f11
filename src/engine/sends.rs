//! Events a step sent (`host.send-event`): ingested when its attempt completes, before
//! its result is recorded, through the same path as `POST /e/{key}` (schemas, limits).
//! Each carries an idempotency key naming the run, the step and its place among the
//! step's sends, so a step run again after a crash (between this and the record) sends
//! nothing twice; an attempt that fails sends nothing at all.

use super::{Engine, EngineError};
use crate::event::Event;
use crate::run::SentEvent;

/// The idempotency key of the `index`-th event sent by `step` of `run`.
pub fn key(run_id: &str, step_id: &str, index: usize) -> String {
    format!("weir:step:{run_id}:{step_id}:{index}")
}

/// Ingests what the step sent; an event that already names its own idempotency key
/// (`id` on the wire) keeps it.
pub async fn ingest(
    engine: &Engine,
    tenant: &str,
    run_id: &str,
    step_id: &str,
    mut events: Vec<Event>,
) -> Result<Vec<SentEvent>, EngineError> {
    for (i, e) in events.iter_mut().enumerate() {
        e.idempotency_key
            .get_or_insert_with(|| key(run_id, step_id, i));
    }
    let names: Vec<String> = events.iter().map(|e| e.name.clone()).collect();
    let ids = engine.send(tenant, events).await?;
    Ok(ids
        .into_iter()
        .zip(names)
        .map(|(id, name)| SentEvent { id: Some(id), name })
        .collect())
}

/// What a dry run records of the events a step would have sent: their names only.
pub fn captured(events: &[Event]) -> Vec<SentEvent> {
    events
        .iter()
        .map(|e| SentEvent {
            id: None,
            name: e.name.clone(),
        })
        .collect()
}
