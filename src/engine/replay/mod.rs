//! Replays: stored (or given) events run again against a function version — as new
//! runs marked with the replay (`run`), or executed in the sandbox and compared with
//! the original runs without recording anything (`dry_run`). A replay is durable: its
//! selected events and its progress are stored, every batch of runs is created in the
//! same atomic write as the progress that covers it, and a restarted process goes on
//! where the last write left it.

mod dry;
mod select;
mod spec;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use spec::{Difference, DryCounts, Mode, Replay, ReplaySpec, ReplayStatus};

use super::error::Resource;
use super::{dag, Engine, EngineError};
use crate::event::{new_id, now_ms, parse_item, Event};
use crate::run::Run;
use crate::store::{Page, ReplayItem, ReplayState, RunChange};
use dry::Verdict;
use spec::MAX_DIFFERENCES;

/// The replays this process drives (so that each has one driver).
#[derive(Default)]
pub struct Driving(Mutex<HashSet<(String, String)>>);

impl Driving {
    fn claim(&self, tenant: &str, id: &str) -> bool {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.insert((tenant.to_string(), id.to_string()))
    }

    fn release(&self, tenant: &str, id: &str) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.remove(&(tenant.to_string(), id.to_string()));
    }
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> EngineError {
    EngineError::InvalidReplay(super::rollout::spec_error(field, reason))
}

fn state_of(r: &Replay) -> Result<ReplayState, EngineError> {
    Ok(ReplayState {
        id: r.id.clone(),
        running: r.status == ReplayStatus::Running,
        done: r.done,
        record: serde_json::to_value(r)
            .map_err(|e| EngineError::Internal(format!("cannot encode a replay: {e}")))?,
    })
}

fn replay_of(s: ReplayState) -> Result<Replay, EngineError> {
    serde_json::from_value(s.record).map_err(|e| {
        EngineError::Store(crate::store::StoreError::Corrupt {
            key: format!("replay {}", s.id),
            reason: e.to_string(),
        })
    })
}

impl Engine {
    /// Creates a replay and starts driving it: checks the request, selects its events
    /// (or stores the inline ones), and stores it before answering.
    pub async fn create_replay(
        self: &Arc<Self>,
        tenant: &str,
        spec: ReplaySpec,
    ) -> Result<Replay, EngineError> {
        let rate = spec.rate().map_err(EngineError::InvalidReplay)?;
        let now = now_ms();
        let latest = self
            .registry
            .latest(tenant, &spec.function)
            .ok_or_else(|| EngineError::not_found(Resource::Function, &spec.function))?;
        if let Some(v) = spec.version {
            if self.registry.version(tenant, &spec.function, v).is_none()
                && self
                    .store
                    .get_function(tenant, &spec.function, v)
                    .await?
                    .is_none()
            {
                return Err(invalid(
                    "version",
                    format!(
                        "version {v} of function {} does not exist (its latest is {})",
                        spec.function, latest.version
                    ),
                ));
            }
        }
        let id = new_id();
        let (items, inline, selection, source) = match &spec.events {
            Some(events) => {
                if spec.from.is_some() || spec.to.is_some() || spec.status.is_some() {
                    return Err(invalid(
                        "events",
                        "give either `events` or a range (`from`, `to`, `status`), not both",
                    ));
                }
                if events.is_empty() {
                    return Err(invalid("events", "name at least one event"));
                }
                if events.len() > spec::MAX_EVENTS {
                    return Err(invalid(
                        "events",
                        format!("{} events; at most {}", events.len(), spec::MAX_EVENTS),
                    ));
                }
                let mut parsed = Vec::with_capacity(events.len());
                for (i, e) in events.iter().enumerate() {
                    let ev = parse_item(i, e.clone())
                        .map_err(|err| invalid(format!("events[{i}]"), err.to_string()))?;
                    parsed.push(ev);
                }
                let items = parsed
                    .iter()
                    .map(|e| ReplayItem {
                        event_id: e.id.clone(),
                        original_run_id: None,
                    })
                    .collect();
                (items, parsed, None, "inline")
            }
            None => {
                let sel = spec.selection(now).map_err(EngineError::InvalidReplay)?;
                let items = select::select(self, tenant, &latest, &sel).await?;
                (items, Vec::new(), Some(sel), "range")
            }
        };
        let total = items.len() as u64;
        let replay = Replay {
            id: id.clone(),
            function_id: spec.function.clone(),
            version: spec.version,
            mode: spec.mode,
            rate,
            selection,
            source: source.into(),
            status: if total == 0 {
                ReplayStatus::Completed
            } else {
                ReplayStatus::Running
            },
            total,
            done: 0,
            runs_started: 0,
            result: (spec.mode == Mode::DryRun).then(DryCounts::default),
            differences: Vec::new(),
            created_at: now,
            ended_at: (total == 0).then_some(now),
        };
        self.store
            .create_replay(tenant, state_of(&replay)?, items, inline)
            .await?;
        if replay.status == ReplayStatus::Running {
            self.drive(tenant, &id);
        }
        Ok(replay)
    }

    /// One replay.
    pub async fn replay(&self, tenant: &str, id: &str) -> Result<Replay, EngineError> {
        let s = self
            .store
            .get_replay(tenant, id)
            .await?
            .ok_or_else(|| EngineError::not_found(Resource::Replay, id))?;
        replay_of(s)
    }

    /// A tenant's replays, newest first.
    pub async fn replays(
        &self,
        tenant: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Replay>, EngineError> {
        let page = self.store.list_replays(tenant, limit, cursor).await?;
        Ok(Page {
            data: page
                .data
                .into_iter()
                .map(replay_of)
                .collect::<Result<_, _>>()?,
            next_cursor: page.next_cursor,
        })
    }

    /// Stops a replay where it is (the runs it started go on); a finished one is
    /// returned unchanged.
    pub async fn cancel_replay(&self, tenant: &str, id: &str) -> Result<Replay, EngineError> {
        loop {
            let mut r = self.replay(tenant, id).await?;
            if r.status != ReplayStatus::Running {
                return Ok(r);
            }
            let done = r.done;
            r.status = ReplayStatus::Cancelled;
            r.ended_at = Some(now_ms());
            if self
                .store
                .advance_replay(tenant, done, state_of(&r)?, Vec::new())
                .await?
            {
                return Ok(r);
            }
        }
    }

    /// Spawns the driver of a replay unless this process drives it already.
    fn drive(&self, tenant: &str, id: &str) {
        let Some(engine) = self.me.upgrade() else {
            return;
        };
        if !self.replays.claim(tenant, id) {
            return;
        }
        let (tenant, id) = (tenant.to_string(), id.to_string());
        tokio::spawn(async move {
            if let Err(e) = drive_loop(&engine, &tenant, &id).await {
                tracing::error!(tenant, replay = id, "replay stopped: {e}");
            }
            engine.replays.release(&tenant, &id);
        });
    }
}

/// Goes on with every replay left running (after a restart).
pub async fn resume_all(engine: Arc<Engine>) {
    match engine.store.running_replays().await {
        Ok(list) => {
            for (tenant, s) in list {
                tracing::info!(tenant, replay = s.id, done = s.done, "resuming replay");
                engine.drive(&tenant, &s.id);
            }
        }
        Err(e) => tracing::error!("cannot list running replays: {e}"),
    }
}

/// Events per batch: about ten batches a second, at most 100 events each.
fn batch_size(rate: u32) -> usize {
    (rate as usize / 10).clamp(1, 100)
}

async fn drive_loop(engine: &Arc<Engine>, tenant: &str, id: &str) -> Result<(), EngineError> {
    let started = Instant::now();
    let mut gone = 0u64;
    loop {
        if engine.is_stopping() {
            return Ok(());
        }
        let Some(state) = engine.store.get_replay(tenant, id).await? else {
            return Ok(());
        };
        if !state.running {
            return Ok(());
        }
        let expected = state.done;
        let mut r = replay_of(state)?;
        let items = engine
            .store
            .replay_items(tenant, id, expected, batch_size(r.rate))
            .await?;
        let mut runs = Vec::new();
        match r.mode {
            Mode::Run => {
                for item in &items {
                    if let Some(run) = new_run(engine, tenant, &r, item).await? {
                        runs.push(run);
                    }
                }
                r.runs_started += runs.len() as u64;
            }
            Mode::DryRun => {
                for item in &items {
                    dry_run_one(engine, tenant, &mut r, item).await?;
                }
            }
        }
        r.done = expected + items.len() as u64;
        if items.is_empty() || r.done >= r.total {
            r.status = ReplayStatus::Completed;
            r.ended_at = Some(now_ms());
        }
        let n = runs.len() as u64;
        let updates: Vec<super::stream::Update> = if engine.bus.active() {
            runs.iter()
                .map(|(run, _)| super::stream::Update::of_run(run, &[]))
                .collect()
        } else {
            Vec::new()
        };
        if !engine
            .store
            .advance_replay(tenant, expected, state_of(&r)?, runs)
            .await?
        {
            // Cancelled meanwhile (or advanced by another driver): look again.
            continue;
        }
        for u in updates {
            engine.bus.publish(tenant, u);
        }
        if n > 0 {
            engine
                .stats
                .runs_started
                .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            engine.dispatch_wake.notify_one();
        }
        if r.status != ReplayStatus::Running {
            return Ok(());
        }
        gone += items.len() as u64;
        let due = started + Duration::from_secs_f64(gone as f64 / r.rate as f64);
        tokio::time::sleep_until(due.into()).await;
    }
}

/// The version a replayed event runs: the one asked for, else the rollout's pick.
async fn version_for(
    engine: &Engine,
    tenant: &str,
    r: &Replay,
    event: &Event,
) -> Result<Option<Arc<crate::function::Function>>, EngineError> {
    match r.version {
        Some(v) => Ok(Some(
            engine.function_version(tenant, &r.function_id, v).await?,
        )),
        None => Ok(pick_for(engine, tenant, &r.function_id, event)),
    }
}

/// The version new runs of `fid` get for `event`: the rollout's pick, else the latest.
fn pick_for(
    engine: &Engine,
    tenant: &str,
    fid: &str,
    event: &Event,
) -> Option<Arc<crate::function::Function>> {
    match engine.registry.target(tenant, fid)? {
        super::registry::Target::Latest(f) => Some(f),
        super::registry::Target::Routed(route) => {
            Some(route.pick(event, &event.to_value()).0.clone())
        }
    }
}

/// The run a replayed event starts, if its event and function are still there.
async fn new_run(
    engine: &Engine,
    tenant: &str,
    r: &Replay,
    item: &ReplayItem,
) -> Result<Option<(Run, RunChange)>, EngineError> {
    let Some(se) = engine.store.get_event(tenant, &item.event_id).await? else {
        return Ok(None);
    };
    let Some(f) = version_for(engine, tenant, r, &se.event).await? else {
        return Ok(None);
    };
    let (mut run, change) = dag::new_run(&f, tenant, new_id(), &se.event, now_ms());
    run.replay_id = Some(r.id.clone());
    Ok(Some((run, change)))
}

/// Executes one event's dry run and counts how it compares.
async fn dry_run_one(
    engine: &Arc<Engine>,
    tenant: &str,
    r: &mut Replay,
    item: &ReplayItem,
) -> Result<(), EngineError> {
    let (verdict, diffs, unfinished) = dry_run_verdict(engine, tenant, r, item).await?;
    let counts = r.result.get_or_insert_with(DryCounts::default);
    counts.unfinished += unfinished as u64;
    match verdict {
        None => counts.without_original += 1,
        Some(Verdict::Identical) => counts.identical += 1,
        Some(Verdict::Changed) => counts.changed += 1,
        Some(Verdict::NewFailure) => counts.new_failures += 1,
        Some(Verdict::Fixed) => counts.fixed += 1,
    }
    let room = MAX_DIFFERENCES.saturating_sub(r.differences.len());
    r.differences.extend(diffs.into_iter().take(room));
    Ok(())
}

/// The verdict of one event's dry run (`None`: no original to compare with), its
/// differences, and whether it did not finish.
async fn dry_run_verdict(
    engine: &Arc<Engine>,
    tenant: &str,
    r: &Replay,
    item: &ReplayItem,
) -> Result<(Option<Verdict>, Vec<Difference>, bool), EngineError> {
    let Some(se) = engine.store.get_event(tenant, &item.event_id).await? else {
        return Ok((None, Vec::new(), false));
    };
    let original = match &item.original_run_id {
        Some(rid) => engine.store.get_run(tenant, rid).await?,
        None => None,
    };
    let Some(f) = version_for(engine, tenant, r, &se.event).await? else {
        return Ok((None, Vec::new(), false));
    };
    let dry = dry::simulate(engine, tenant, &f, &se.event, original.as_ref()).await;
    let unfinished = !dry.status.is_terminal();
    let Some(original) = original else {
        return Ok((None, Vec::new(), unfinished));
    };
    let (verdict, diffs) = dry::compare(&original, &dry);
    Ok((Some(verdict), diffs, unfinished))
}
