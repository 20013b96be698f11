//! The in-memory index of deployed functions: versions by id, and the latest versions
//! by the event names that trigger them.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::function::Function;

type Key = (String, String);

/// Deployed functions of all tenants.
#[derive(Default)]
pub struct Registry {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    versions: HashMap<(String, String, u64), Arc<Function>>,
    latest: HashMap<Key, Arc<Function>>,
    by_event: HashMap<Key, Vec<Arc<Function>>>,
}

impl Registry {
    /// Adds a version; if it is the newest of its function, it takes over its triggers.
    pub fn insert(&self, tenant: &str, f: Arc<Function>) {
        let mut g = self.inner.write().unwrap_or_else(|p| p.into_inner());
        g.versions
            .insert((tenant.into(), f.id.clone(), f.version), f.clone());
        let key = (tenant.to_string(), f.id.clone());
        if g.latest
            .get(&key)
            .is_some_and(|cur| cur.version >= f.version)
        {
            return;
        }
        if let Some(old) = g.latest.insert(key, f.clone()) {
            for name in old.event_names() {
                if let Some(list) = g.by_event.get_mut(&(tenant.to_string(), name)) {
                    list.retain(|x| x.id != old.id);
                }
            }
        }
        for name in f.event_names() {
            g.by_event
                .entry((tenant.to_string(), name))
                .or_default()
                .push(f.clone());
        }
    }

    /// A specific version, if loaded.
    pub fn version(&self, tenant: &str, id: &str, version: u64) -> Option<Arc<Function>> {
        let g = self.inner.read().unwrap_or_else(|p| p.into_inner());
        g.versions
            .get(&(tenant.to_string(), id.to_string(), version))
            .cloned()
    }

    /// The latest version of a function.
    pub fn latest(&self, tenant: &str, id: &str) -> Option<Arc<Function>> {
        let g = self.inner.read().unwrap_or_else(|p| p.into_inner());
        g.latest.get(&(tenant.to_string(), id.to_string())).cloned()
    }

    /// The latest versions of the functions an event name may trigger.
    pub fn triggered_by(&self, tenant: &str, event: &str) -> Vec<Arc<Function>> {
        let g = self.inner.read().unwrap_or_else(|p| p.into_inner());
        g.by_event
            .get(&(tenant.to_string(), event.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    /// The latest version of every function of every tenant.
    pub fn all(&self) -> Vec<(String, Arc<Function>)> {
        let g = self.inner.read().unwrap_or_else(|p| p.into_inner());
        g.latest
            .iter()
            .map(|((t, _), f)| (t.clone(), f.clone()))
            .collect()
    }

    /// The latest version of every function of a tenant, sorted by id.
    pub fn list(&self, tenant: &str) -> Vec<Arc<Function>> {
        let g = self.inner.read().unwrap_or_else(|p| p.into_inner());
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
