//! Which stored events a replay goes through: those received in the range that started
//! runs of the function (by the original runs' outcome), or that started none.

use std::collections::{BTreeMap, BTreeSet};

use super::spec::{Selection, MAX_EVENTS};
use crate::engine::{Engine, EngineError};
use crate::event::id_time;
use crate::function::Function;
use crate::run::Run;
use crate::store::{ReplayItem, RunFilter};

const PAGE: usize = 1_000;

fn too_many() -> EngineError {
    EngineError::InvalidReplay(crate::engine::rollout::spec_error(
        "from",
        format!("the range selects more than {MAX_EVENTS} events; narrow it"),
    ))
}

/// The selected events, oldest first, each with its original run.
pub async fn select(
    engine: &Engine,
    tenant: &str,
    f: &Function,
    sel: &Selection,
) -> Result<Vec<ReplayItem>, EngineError> {
    // The function's runs, newest first, down to the range's start: a run is created
    // when (or after) its event is received.
    let filter = RunFilter {
        function: Some(f.id.clone()),
        ..RunFilter::default()
    };
    let mut by_event: BTreeMap<String, Run> = BTreeMap::new();
    let mut seen_runs: BTreeSet<String> = BTreeSet::new();
    let mut cursor: Option<String> = None;
    'pages: loop {
        let page = engine
            .store
            .list_runs(tenant, &filter, PAGE, cursor.as_deref())
            .await?;
        for run in page.data {
            if id_time(&run.id).is_some_and(|t| t < sel.from) {
                break 'pages;
            }
            if run.replay_id.is_some() {
                continue;
            }
            seen_runs.insert(run.event_id.clone());
            let received = id_time(&run.event_id).unwrap_or(run.created_at);
            let taken = (sel.from..sel.to).contains(&received)
                && (sel.statuses.is_empty() || sel.statuses.contains(&run.status));
            if taken && (!sel.statuses.is_empty() || !sel.skipped) {
                // The earliest run of an event is its original (they are newest first).
                by_event.insert(run.event_id.clone(), run);
                if by_event.len() > MAX_EVENTS {
                    return Err(too_many());
                }
            }
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let mut items: Vec<(String, ReplayItem)> = by_event
        .into_iter()
        .map(|(event_id, run)| {
            (
                event_id.clone(),
                ReplayItem {
                    event_id,
                    original_run_id: Some(run.id),
                },
            )
        })
        .collect();
    if sel.skipped {
        let names: BTreeSet<&str> = f.triggers.iter().map(|t| t.event.as_str()).collect();
        for name in names {
            let mut cursor: Option<String> = None;
            'events: loop {
                let page = engine
                    .store
                    .list_events(tenant, Some(name), PAGE, cursor.as_deref())
                    .await?;
                for se in page.data {
                    let received = id_time(&se.event.id).unwrap_or(se.event.ts);
                    if received < sel.from {
                        break 'events;
                    }
                    let started = seen_runs.contains(&se.event.id);
                    if received < sel.to && se.ingested && se.duplicate_of.is_none() && !started {
                        items.push((
                            se.event.id.clone(),
                            ReplayItem {
                                event_id: se.event.id,
                                original_run_id: None,
                            },
                        ));
                        if items.len() > MAX_EVENTS {
                            return Err(too_many());
                        }
                    }
                }
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
        }
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    items.dedup_by(|a, b| a.0 == b.0);
    Ok(items.into_iter().map(|(_, i)| i).collect())
}
