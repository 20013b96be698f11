//! Events resolving waits: the `async` edges and cancellation rules an incoming event
//! matches, found through the wait index and applied run by run.

use std::collections::BTreeMap;

use serde_json::Value;

use super::transition::{self, Applied};
use super::{dag, Engine, EngineError};
use crate::event::now_ms;
use crate::run::WaitKey;
use crate::store::{Durability, RunChange};

/// Resolves the waits `keys` (found for `incoming`) that its match conditions accept;
/// returns how many runs it resumed.
pub async fn resume_waits(
    engine: &Engine,
    tenant: &str,
    incoming: &Value,
    keys: Vec<WaitKey>,
) -> Result<usize, EngineError> {
    let mut by_run: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for k in keys {
        by_run.entry(k.run_id).or_default().push(k.slot);
    }
    let mut resumed = 0;
    for (run_id, slots) in by_run {
        let Some(run) = engine.store.get_run(tenant, &run_id).await? else {
            continue;
        };
        let f = engine
            .function_version(tenant, &run.function_id, run.function_version)
            .await?;
        let now = now_ms();
        let applied = transition::apply(
            engine,
            tenant,
            &run_id,
            Some(run),
            None,
            Durability::Lazy,
            |r| {
                let mut change = RunChange::default();
                let mut hit = false;
                for slot in &slots {
                    if let Some(c) = dag::resume(&f, r, slot, incoming, now) {
                        hit = true;
                        change.extend(c);
                    }
                }
                hit.then_some(change)
            },
        )
        .await?;
        if matches!(applied, Applied::Written) {
            resumed += 1;
        }
    }
    if resumed > 0 {
        engine.dispatch_wake.notify_one();
    }
    Ok(resumed)
}
