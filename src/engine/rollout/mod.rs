//! Rollouts: which version of a function new runs get (weights, sticky keys), their
//! figures per version, and automatic rollback when a version fails more than the
//! baseline. A function's rollouts are one durable record (the current one and its
//! history) changed by compare-and-set, so a restart keeps them; the figures are a
//! tally of the stored runs that carry the rollout's id, rebuilt at start.

mod analysis;
mod figures;
mod route;
mod spec;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::{json, Value};

pub use analysis::{judge, Breach};
pub use figures::{Figures, VersionFigures};
pub use route::Route;
pub use spec::{
    bad as spec_error, parse, Analysis, Book, Rollout, RolloutSpec, RolloutStatus, SpecError,
    Weighted,
};

use super::error::Resource;
use super::{Engine, EngineError};
use crate::event::{new_id, now_ms, Event};
use crate::expr::Expr;
use crate::run::{Run, RunStatus};
use crate::store::RunFilter;

/// The event weir sends into a tenant when it rolls a rollout back by itself.
pub const ROLLED_BACK_EVENT: &str = "weir/rollout.rolled_back";

/// Most times a change is retried when another writer changed the record first.
const MAX_RACES: usize = 100;

/// The engine's rollout state: the current rollout of each function, and the figures.
#[derive(Default)]
pub struct Rollouts {
    current: RwLock<HashMap<(String, String), Rollout>>,
    /// Figures of the current rollouts.
    pub figures: Figures,
    /// Serialises this process's changes (the record's compare-and-set guards others).
    change: tokio::sync::Mutex<()>,
    /// Rollouts whose automatic rollback is under way.
    deciding: Mutex<HashSet<String>>,
}

impl Rollouts {
    fn current(&self, tenant: &str, id: &str) -> Option<Rollout> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(tenant.to_string(), id.to_string()))
            .cloned()
    }
}

/// A run under a rollout that has just ended.
pub struct Finished {
    tenant: String,
    function_id: String,
    rollout_id: String,
    version: u64,
    status: RunStatus,
    duration_ms: u64,
}

impl Finished {
    /// If `run` (whose status was `before`) has just ended under a rollout.
    pub fn of(before: RunStatus, run: &Run) -> Option<Self> {
        if before.is_terminal() || !run.status.is_terminal() {
            return None;
        }
        Some(Self {
            tenant: run.tenant.clone(),
            function_id: run.function_id.clone(),
            rollout_id: run.rollout_id.clone()?,
            version: run.function_version,
            status: run.status,
            duration_ms: duration(run),
        })
    }
}

fn duration(run: &Run) -> u64 {
    run.ended_at
        .map(|e| (e - run.created_at).max(0) as u64)
        .unwrap_or(0)
}

fn book_key(tenant: &str, id: &str) -> String {
    json!(["rollout", tenant, id]).to_string()
}

impl Engine {
    /// Every version of a function with its definition and component digests, newest
    /// first.
    pub async fn versions(&self, tenant: &str, id: &str) -> Result<Vec<Value>, EngineError> {
        let versions = self.store.function_versions(tenant, id).await?;
        if versions.is_empty() {
            return Err(EngineError::not_found(Resource::Function, id));
        }
        Ok(versions
            .iter()
            .rev()
            .map(|v| {
                let components: serde_json::Map<String, Value> = v
                    .def
                    .get("steps")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .filter_map(|(step, s)| {
                        let path = s.get("path")?.as_str()?;
                        path.starts_with("sha256:")
                            .then(|| (step.clone(), Value::String(path.to_string())))
                    })
                    .collect();
                json!({"version": v.version, "created_at": v.created_at, "def": v.def,
                       "components": components})
            })
            .collect())
    }

    /// A function's rollout with its figures and its history.
    pub async fn rollout(&self, tenant: &str, id: &str) -> Result<Value, EngineError> {
        let (book, _) = self.read_book(tenant, id).await?;
        let Some(cur) = &book.current else {
            return Err(self.no_rollout(tenant, id));
        };
        let mut v = self.view(cur, true);
        v["history"] = book.history.iter().map(|r| self.view(r, false)).collect();
        Ok(v)
    }

    /// Sets a new rollout (the current one, if any, is replaced); returns it with the
    /// one it replaced.
    pub async fn set_rollout(
        &self,
        tenant: &str,
        id: &str,
        spec: RolloutSpec,
    ) -> Result<Value, EngineError> {
        self.check_spec(tenant, id, &spec).await?;
        self.replace(tenant, id, spec, "put", None).await
    }

    /// Sends every new run to `version`.
    pub async fn promote(
        &self,
        tenant: &str,
        id: &str,
        version: u64,
    ) -> Result<Value, EngineError> {
        let spec = RolloutSpec {
            versions: vec![Weighted {
                version,
                weight: 100,
            }],
            sticky: None,
            analysis: None,
        };
        self.check_spec(tenant, id, &spec)
            .await
            .map_err(|e| match e {
                EngineError::InvalidRollout(mut s) => {
                    s.field = "version".into();
                    EngineError::InvalidRollout(s)
                }
                other => other,
            })?;
        self.replace(tenant, id, spec, "promote", None).await
    }

    /// Sets the rollout the current one replaced again (all to the current one's
    /// baseline if it replaced none); the current one is recorded as rolled back.
    pub async fn rollback(&self, tenant: &str, id: &str) -> Result<Value, EngineError> {
        let (book, _) = self.read_book(tenant, id).await?;
        let Some(cur) = book.current else {
            return Err(self.no_rollout(tenant, id));
        };
        let previous = cur
            .replaced_id
            .as_ref()
            .and_then(|p| book.history.iter().find(|r| &r.id == p));
        let spec = match previous {
            Some(p) => p.spec(),
            None => RolloutSpec {
                versions: vec![Weighted {
                    version: cur.baseline(),
                    weight: 100,
                }],
                sticky: None,
                analysis: None,
            },
        };
        self.replace(tenant, id, spec, "rollback", Some(&cur.id))
            .await
    }

    /// Loads every function's current rollout and rebuilds its figures from the runs.
    pub(super) async fn load_rollouts(&self) -> Result<(), EngineError> {
        for (tenant, f) in self.registry.all() {
            let (book, _) = self.read_book(&tenant, &f.id).await?;
            let Some(cur) = book.current.clone() else {
                if self.rollouts.current(&tenant, &f.id).is_some() {
                    // Ended by another process sharing the store.
                    if let Err(e) = self.install(&tenant, &f.id, &book).await {
                        tracing::error!(tenant, function = f.id, "cannot unload rollout: {e}");
                    }
                }
                continue;
            };
            // Loaded again when another process changed something: a rollout already
            // tallied here keeps its figures.
            if !self.rollouts.figures.has(&cur.id) {
                self.rollouts.figures.open(&cur.id);
                self.rebuild_figures(&tenant, &cur).await?;
            }
            if let Err(e) = self.install(&tenant, &f.id, &book).await {
                tracing::error!(tenant, function = f.id, "cannot load rollout: {e}");
            }
        }
        Ok(())
    }

    /// Counts a run under a rollout that has just ended, and rolls the rollout back if
    /// its analysis says so.
    pub(super) fn run_finished(&self, fin: Finished) {
        if !self
            .rollouts
            .figures
            .ended(&fin.rollout_id, fin.version, fin.status, fin.duration_ms)
        {
            return;
        }
        let Some(cur) = self.rollouts.current(&fin.tenant, &fin.function_id) else {
            return;
        };
        let (Some(analysis), RolloutStatus::Active) = (cur.analysis, cur.status) else {
            return;
        };
        if cur.id != fin.rollout_id {
            return;
        }
        let figures = self.rollouts.figures.snapshot(&cur.id, &cur.weights());
        let Some(breach) = judge(&analysis, &figures) else {
            return;
        };
        let fresh = self
            .rollouts
            .deciding
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(cur.id.clone());
        let Some(me) = self.me.upgrade() else {
            return;
        };
        if fresh {
            tokio::spawn(async move {
                let (tenant, id, rid) = (fin.tenant, fin.function_id, cur.id);
                if let Err(e) = me.auto_rollback(&tenant, &id, &rid, breach).await {
                    tracing::error!(tenant, function = id, "automatic rollback failed: {e}");
                }
                me.rollouts
                    .deciding
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&rid);
            });
        }
    }

    async fn auto_rollback(
        &self,
        tenant: &str,
        id: &str,
        rollout_id: &str,
        breach: Breach,
    ) -> Result<(), EngineError> {
        let done = self
            .change_book(tenant, id, |book, now| {
                let Some(cur) = book.current.as_mut() else {
                    return Ok(false);
                };
                if cur.id != rollout_id || cur.status != RolloutStatus::Active {
                    return Ok(false);
                }
                cur.status = RolloutStatus::RolledBack;
                cur.ended_at = Some(now);
                cur.reason = Some(breach.reason());
                cur.decision = Some(breach.to_json());
                cur.figures = Some(self.rollouts.figures.snapshot(&cur.id, &cur.weights()));
                Ok(true)
            })
            .await?;
        let Some(book) = done else {
            return Ok(());
        };
        self.stats.count(tenant, |c| c.rollbacks += 1);
        tracing::warn!(
            tenant,
            function = id,
            rollout = rollout_id,
            "rolled back: {}",
            breach.reason()
        );
        let cur = book.current.as_ref();
        let data = json!({
            "function_id": id,
            "rollout_id": rollout_id,
            "reason": breach.reason(),
            "baseline": breach.baseline,
            "version": breach.version,
            "failure_rate": breach.rate,
            "baseline_failure_rate": breach.baseline_rate,
            "versions": cur.and_then(|c| c.figures.clone()),
        });
        let event = Event {
            id: new_id(),
            name: ROLLED_BACK_EVENT.into(),
            data: data.as_object().cloned().unwrap_or_default(),
            user: None,
            idempotency_key: Some(format!("rollout:{rollout_id}:rolled_back")),
            ts: now_ms(),
            v: None,
            schema_errors: Vec::new(),
        };
        self.send(tenant, vec![event]).await?;
        Ok(())
    }

    /// Replaces the current rollout by a new one made from `spec`; the replaced one is
    /// marked rolled back if `rolled_back` names it, else replaced.
    async fn replace(
        &self,
        tenant: &str,
        id: &str,
        spec: RolloutSpec,
        origin: &str,
        rolled_back: Option<&str>,
    ) -> Result<Value, EngineError> {
        let new_id = new_id();
        let book = self
            .change_book(tenant, id, |book, now| {
                let mut old = book.current.take();
                if let Some(o) = old.as_mut() {
                    if o.status == RolloutStatus::Active {
                        o.figures = Some(self.rollouts.figures.snapshot(&o.id, &o.weights()));
                        o.ended_at = Some(now);
                    }
                    if rolled_back == Some(o.id.as_str()) {
                        if o.status == RolloutStatus::Active {
                            o.reason = Some("rolled back by hand".into());
                        }
                        o.status = RolloutStatus::RolledBack;
                    } else if o.status == RolloutStatus::Active {
                        o.status = RolloutStatus::Replaced;
                    }
                }
                book.current = Some(Rollout {
                    id: new_id.clone(),
                    function_id: id.to_string(),
                    status: RolloutStatus::Active,
                    versions: spec.versions.clone(),
                    sticky: spec.sticky.clone(),
                    analysis: spec.analysis,
                    origin: origin.to_string(),
                    created_at: now,
                    ended_at: None,
                    replaced_id: old.as_ref().map(|o| o.id.clone()),
                    reason: None,
                    figures: None,
                    decision: None,
                });
                if let Some(o) = old {
                    book.history.insert(0, o);
                    book.history.truncate(spec::HISTORY);
                }
                Ok(true)
            })
            .await?
            .ok_or_else(|| EngineError::Internal("the rollout change was dropped".into()))?;
        let cur = book
            .current
            .as_ref()
            .ok_or_else(|| EngineError::Internal("no current rollout after setting one".into()))?;
        let mut v = self.view(cur, true);
        v["replaced"] = book
            .history
            .first()
            .filter(|r| cur.replaced_id.as_ref() == Some(&r.id))
            .map(|r| self.view(r, false))
            .unwrap_or(Value::Null);
        Ok(v)
    }

    /// Reads the record, lets `f` change it (`Ok(false)`: leave it), and writes it back
    /// if nobody changed it meanwhile (else again); then routes by it. Returns the
    /// record written, if it was.
    async fn change_book(
        &self,
        tenant: &str,
        id: &str,
        mut f: impl FnMut(&mut Book, i64) -> Result<bool, EngineError>,
    ) -> Result<Option<Book>, EngineError> {
        let _one = self.rollouts.change.lock().await;
        for _ in 0..MAX_RACES {
            let (mut book, raw) = self.read_book(tenant, id).await?;
            if !f(&mut book, now_ms())? {
                return Ok(None);
            }
            let bytes = serde_json::to_vec(&book)
                .map_err(|e| EngineError::Internal(format!("cannot encode a rollout: {e}")))?;
            if self
                .store
                .put_meta_if(&book_key(tenant, id), raw.as_deref(), &bytes)
                .await?
            {
                if let Some(cur) = &book.current {
                    self.rollouts.figures.open(&cur.id);
                    let status = serde_json::to_value(cur.status)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    self.bus.publish(
                        tenant,
                        super::stream::Update::RolloutChanged {
                            function_id: id.to_string(),
                            rollout_id: cur.id.clone(),
                            status,
                        },
                    );
                }
                self.install(tenant, id, &book).await?;
                return Ok(Some(book));
            }
        }
        Err(EngineError::Internal(format!(
            "the rollout of {id} kept changing under {MAX_RACES} attempts"
        )))
    }

    async fn read_book(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<(Book, Option<Vec<u8>>), EngineError> {
        let raw = self.store.get_meta(&book_key(tenant, id)).await?;
        let book = match &raw {
            Some(b) => serde_json::from_slice(b).map_err(|e| {
                EngineError::Internal(format!("the rollout record of {id} is unreadable: {e}"))
            })?,
            None => Book::default(),
        };
        Ok((book, raw))
    }

    /// Routes new runs by the book's current rollout.
    async fn install(&self, tenant: &str, id: &str, book: &Book) -> Result<(), EngineError> {
        let key = (tenant.to_string(), id.to_string());
        let Some(cur) = &book.current else {
            self.registry.set_route(tenant, id, None);
            self.rollouts
                .current
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            return Ok(());
        };
        let mut arms = Vec::new();
        for (v, w) in cur.routing() {
            if w > 0 {
                arms.push((self.function_version(tenant, id, v).await?, w));
            }
        }
        let sticky = match &cur.sticky {
            Some(s) => Some(
                Expr::compile(s)
                    .map_err(|e| EngineError::Internal(format!("stored sticky expression: {e}")))?,
            ),
            None => None,
        };
        let route = Route {
            rollout_id: cur.id.clone(),
            arms,
            sticky,
            budget: self.config.compile.cel_budget,
        };
        let old = self
            .rollouts
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, cur.clone());
        self.registry.set_route(tenant, id, Some(Arc::new(route)));
        if let Some(o) = old.filter(|o| o.id != cur.id) {
            self.rollouts.figures.close(&o.id);
        }
        Ok(())
    }

    async fn check_spec(
        &self,
        tenant: &str,
        id: &str,
        spec: &RolloutSpec,
    ) -> Result<(), EngineError> {
        let versions: Vec<u64> = self
            .store
            .function_versions(tenant, id)
            .await?
            .iter()
            .map(|v| v.version)
            .collect();
        if versions.is_empty() {
            return Err(EngineError::not_found(Resource::Function, id));
        }
        spec.check(&versions).map_err(EngineError::InvalidRollout)?;
        if let Some(s) = &spec.sticky {
            let bad = |reason: String| {
                EngineError::InvalidRollout(SpecError {
                    field: "sticky".into(),
                    reason,
                })
            };
            let e = Expr::compile(s).map_err(|e| bad(e.to_string()))?;
            let o = &self.config.compile;
            if o.check_cost {
                if let Some(why) = e.over_budget(o.cel_budget, &o.input) {
                    return Err(bad(why));
                }
            }
        }
        Ok(())
    }

    fn no_rollout(&self, tenant: &str, id: &str) -> EngineError {
        match self.registry.latest(tenant, id) {
            Some(f) => EngineError::NoRollout {
                function: id.into(),
                latest: f.version,
            },
            None => EngineError::not_found(Resource::Function, id),
        }
    }

    async fn rebuild_figures(&self, tenant: &str, cur: &Rollout) -> Result<(), EngineError> {
        let filter = RunFilter {
            function: Some(cur.function_id.clone()),
            ..RunFilter::default()
        };
        // Runs are listed newest first; those of this rollout are not older than it
        // (a minute of slack for clocks).
        let oldest = cur.created_at - 60_000;
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .store
                .list_runs(tenant, &filter, 1_000, cursor.as_deref())
                .await?;
            let mut done = false;
            for r in &page.data {
                if r.created_at < oldest {
                    done = true;
                    break;
                }
                if r.rollout_id.as_deref() == Some(cur.id.as_str()) {
                    self.rollouts.figures.replay(
                        &cur.id,
                        r.function_version,
                        r.status,
                        duration(r),
                    );
                }
            }
            match page.next_cursor {
                Some(c) if !done => cursor = Some(c),
                _ => return Ok(()),
            }
        }
    }

    /// A rollout as the API shows it: `live` adds the figures counted now, else the
    /// figures recorded when it ended.
    fn view(&self, r: &Rollout, live: bool) -> Value {
        let figures = if live {
            self.rollouts.figures.snapshot(&r.id, &r.weights())
        } else {
            r.figures.clone().unwrap_or_default()
        };
        let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
        if let Some(m) = v.as_object_mut() {
            m.remove("figures");
            m.insert("versions".into(), json!(figures));
            m.insert("sticky".into(), json!(r.sticky));
            m.insert(
                "routing".into(),
                json!(r
                    .routing()
                    .iter()
                    .map(|(v, w)| json!({"version": v, "weight": w}))
                    .collect::<Vec<_>>()),
            );
        }
        v
    }
}
