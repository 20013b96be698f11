//! The in-memory index of deployed functions: versions by id, the latest version of
//! each, the rollouts that route new runs between versions, and what each event name
//! may trigger.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::rollout::Route;
use crate::function::Function;

type Key = (String, String);

/// What an event may start: the latest version of a function, or one of the versions
/// of its rollout.
#[derive(Clone)]
pub enum Target {
    /// The latest version (no rollout is set).
    Latest(Arc<Function>),
    /// A rollout picks the version.
    Routed(Arc<Route>),
}

/// Deployed functions of all tenants.
#[derive(Default)]
pub struct Registry {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    versions: HashMap<(String, String, u64), Arc<Function>>,
    latest: HashMap<Key, Arc<Function>>,
    routes: HashMap<Key, Arc<Route>>,
    by_event: HashMap<Key, Vec<(String, Target)>>,
    /// The event names each function is indexed under in `by_event`.
    indexed: HashMap<Key, Vec<String>>,
}

impl Inner {
    /// Indexes a function under the event names of what starts its runs now: its
    /// rollout's versions if it has one, else its latest version.
    fn reindex(&mut self, tenant: &str, id: &str) {
        let key = (tenant.to_string(), id.to_string());
        for name in self.indexed.remove(&key).unwrap_or_default() {
            if let Some(list) = self.by_event.get_mut(&(tenant.to_string(), name)) {
                list.retain(|(fid, _)| fid != id);
            }
        }
        let (target, names) = match (self.routes.get(&key), self.latest.get(&key)) {
            (Some(r), _) => (Target::Routed(r.clone()), r.event_names()),
            (None, Some(f)) => (Target::Latest(f.clone()), f.event_names()),
            (None, None) => return,
        };
        for name in &names {
            self.by_event
                .entry((tenant.to_string(), name.clone()))
                .or_default()
                .push((id.to_string(), target.clone()));
        }
        self.indexed.insert(key, names);
    }
}

impl Registry {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a version; if it is the newest of its function, it takes over its triggers
    /// (unless a rollout routes the function's runs).
    pub fn insert(&self, tenant: &str, f: Arc<Function>) {
        let mut g = self.write();
        g.versions
            .insert((tenant.into(), f.id.clone(), f.version), f.clone());
        let key = (tenant.to_string(), f.id.clone());
        if g.latest
            .get(&key)
            .is_some_and(|cur| cur.version >= f.version)
        {
            return;
        }
        g.latest.insert(key, f.clone());
        g.reindex(tenant, &f.id);
    }

    /// Sets (or with `None` clears) the rollout routing a function's new runs.
    pub fn set_route(&self, tenant: &str, id: &str, route: Option<Arc<Route>>) {
        let mut g = self.write();
        let key = (tenant.to_string(), id.to_string());
        match route {
            Some(r) => g.routes.insert(key, r),
            None => g.routes.remove(&key),
        };
        g.reindex(tenant, id);
    }

    /// A specific version, if loaded.
    pub fn version(&self, tenant: &str, id: &str, version: u64) -> Option<Arc<Function>> {
        self.read()
            .versions
            .get(&(tenant.to_string(), id.to_string(), version))
            .cloned()
    }

    /// The latest version of a function.
    pub fn latest(&self, tenant: &str, id: &str) -> Option<Arc<Function>> {
        self.read()
            .latest
            .get(&(tenant.to_string(), id.to_string()))
            .cloned()
    }

    /// What starts a function's runs now.
    pub fn target(&self, tenant: &str, id: &str) -> Option<Target> {
        let g = self.read();
        let key = (tenant.to_string(), id.to_string());
        match g.routes.get(&key) {
            Some(r) => Some(Target::Routed(r.clone())),
            None => g.latest.get(&key).cloned().map(Target::Latest),
        }
    }

    /// What an event name may start.
    pub fn triggered_by(&self, tenant: &str, event: &str) -> Vec<Target> {
        self.read()
            .by_event
            .get(&(tenant.to_string(), event.to_string()))
            .map(|l| l.iter().map(|(_, t)| t.clone()).collect())
            .unwrap_or_default()
    }

    /// The latest version of every function of every tenant.
    pub fn all(&self) -> Vec<(String, Arc<Function>)> {
        self.read()
            .latest
            .iter()
            .map(|((t, _), f)| (t.clone(), f.clone()))
            .collect()
    }

    /// The latest version of every function of a tenant, sorted by id.
    pub fn list(&self, tenant: &str) -> Vec<Arc<Function>> {
        let g = self.read();
        let mut v: Vec<_> = g
            .latest
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .map(|(_, f)| f.clone())
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }
}
