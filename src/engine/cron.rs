//! Cron triggers: each tick of a schedule starts one run, exactly once, across restarts.
//!
//! A tick becomes a stored `weir/cron` event whose idempotency key names the function,
//! the trigger and the tick, so firing it twice (a crash between firing and recording
//! it) starts one run. The last fired tick is kept in the store; a tick missed while
//! weir was down fires once on start (older missed ticks are not replayed).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::Engine;
use crate::event::{new_id, now_ms, Event};

/// The event name of cron ticks.
pub const CRON_EVENT: &str = "weir/cron";

/// Fires due ticks forever.
pub async fn run_loop(engine: Arc<Engine>) {
    loop {
        let next = match fire_due(&engine).await {
            Ok(next) => next,
            Err(e) => {
                tracing::error!("cron: {e}");
                None
            }
        };
        let wait = next
            .map(|t| (t - now_ms()).clamp(10, 1000) as u64)
            .unwrap_or(1000);
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
}

/// Fires every tick that is due; returns the earliest next tick.
async fn fire_due(engine: &Arc<Engine>) -> Result<Option<i64>, super::EngineError> {
    let now = now_ms();
    let mut earliest: Option<i64> = None;
    for (tenant, f) in engine.registry.all() {
        for (i, c) in f.crons.iter().enumerate() {
            let key = format!("cron/{tenant}/{}/{i}/{}", f.id, c.source);
            let stored = engine.store.get_meta(&key).await?;
            let last = match &stored {
                Some(v) => String::from_utf8_lossy(v).parse::<i64>().unwrap_or(now),
                None => {
                    // A new schedule starts from now: no ticks from before it existed.
                    let start = now.to_string();
                    engine
                        .store
                        .put_meta_if(&key, None, start.as_bytes())
                        .await?;
                    now
                }
            };
            let last_bytes = stored.unwrap_or_else(|| now.to_string().into_bytes());
            let Some(mut tick) = c.next_after(last) else {
                continue;
            };
            if tick <= now {
                // Fire only the most recent due tick (a missed one fires once).
                while let Some(n) = c.next_after(tick).filter(|n| *n <= now) {
                    tick = n;
                }
                let event = Event {
                    id: new_id(),
                    name: CRON_EVENT.into(),
                    data: json!({"function_id": f.id, "cron": c.source, "tick": tick})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                    user: None,
                    idempotency_key: Some(format!("cron:{}:{i}:{tick}", f.id)),
                    ts: tick,
                    v: None,
                    schema_errors: Vec::new(),
                };
                // Sent before the tick is recorded, so a crash in between fires it again;
                // the idempotency key makes that (and another process firing it too)
                // start one run. Of several processes, one records the tick.
                engine.send(&tenant, vec![event]).await?;
                let fired = engine
                    .store
                    .put_meta_if(&key, Some(&last_bytes), tick.to_string().as_bytes())
                    .await?;
                if fired {
                    tracing::info!(tenant, function = f.id, tick, "cron tick fired");
                }
                match c.next_after(tick) {
                    Some(n) => tick = n,
                    None => continue,
                }
            }
            earliest = Some(earliest.map_or(tick, |e| e.min(tick)));
        }
    }
    Ok(earliest)
}
