//! The engine's face of event schemas: versions registered durably (immutable, each
//! checked against the recent stored events first), loaded at start, checked at ingest,
//! and schemas inferred from stored events.
//!
//! Versions are kept in the store's meta values, with compare-and-set: one value per
//! tenant and event name holds its versions in registration order, one per tenant lists
//! its names, and one lists the tenants with schemas (for loading at start). An index
//! entry is written before the record it points to, so a crash in between leaves an
//! entry that points at nothing, which loading skips.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{Engine, EngineError, Resource};
use crate::event::{now_ms, Event};
use crate::schema::{
    self, Compiled, PutSchema, Registry, SchemaError, SchemaMode, SchemaVersion, Verdict,
};
use crate::store::{EventFilter, Page, StoreError, StoredEvent};

/// How many of the most recent events of a name a new version is checked against, and
/// inference samples.
pub const RECENT_EVENTS: usize = 1_000;
/// Most failing events quoted in a registration's report.
pub const MAX_EXAMPLES: usize = 10;

const TENANTS_KEY: &str = "schemas";

fn names_key(tenant: &str) -> String {
    format!("schemas:{}", json!([tenant]))
}

fn versions_key(tenant: &str, name: &str) -> String {
    format!("schema:{}", json!([tenant, name]))
}

/// The engine's schema state: the compiled versions, and a lock that puts one
/// registration at a time (they are rare; ingest never takes it).
#[derive(Debug, Default)]
pub(super) struct Schemas {
    registry: Registry,
    writes: tokio::sync::Mutex<()>,
}

/// What registering a version found and did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SchemaReport {
    /// The event name.
    pub name: String,
    /// The version.
    pub v: String,
    /// Its mode.
    pub mode: SchemaMode,
    /// Whether only a report was asked for.
    pub dry_run: bool,
    /// Whether the version is registered now (false only for a dry run).
    pub registered: bool,
    /// Whether this request added it (false when it was registered already, identical).
    pub created: bool,
    /// How many recent stored events of the name were checked.
    pub checked: usize,
    /// How many of those the version refuses.
    pub would_fail: usize,
    /// Some of those, each with its first error.
    pub examples: Vec<FailingEvent>,
}

/// A stored event a version refuses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailingEvent {
    /// The event's id.
    pub event_id: String,
    /// Its errors, `data.path: rule`, joined with `; `.
    pub error: String,
}

/// One event name's schema in a listing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SchemaSummary {
    /// The event name.
    pub name: String,
    /// Its latest version (what an event without `v` is checked against).
    pub latest: String,
    /// The latest version's mode.
    pub mode: SchemaMode,
    /// How many versions there are.
    pub versions: usize,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StoredVersions {
    versions: Vec<SchemaVersion>,
}

impl Engine {
    /// Loads and compiles every stored schema version. A version that no longer
    /// compiles is logged and left out (the others still apply).
    pub(super) async fn load_schemas(&self) -> Result<(), EngineError> {
        for tenant in self.meta_list(TENANTS_KEY).await? {
            for name in self.meta_list(&names_key(&tenant)).await? {
                let (_, stored) = self.stored_versions(&tenant, &name).await?;
                if stored.versions.is_empty() {
                    continue;
                }
                let (t, n) = (tenant.clone(), name.clone());
                let compiled = blocking(move || {
                    stored
                        .versions
                        .into_iter()
                        .filter_map(|v| {
                            let label = v.v.clone();
                            Compiled::new(v)
                                .inspect_err(|e| {
                                    tracing::error!(
                                        tenant = t,
                                        event = n,
                                        v = label,
                                        "stored schema does not compile, left out: {e}"
                                    )
                                })
                                .ok()
                                .map(Arc::new)
                        })
                        .collect::<Vec<_>>()
                })
                .await?;
                self.schemas.registry.set(&tenant, &name, compiled);
            }
        }
        Ok(())
    }

    /// Registers a version of `name`'s schema (unless `dry_run`), after checking the most
    /// recent stored events of that name against it. Re-registering a version with the
    /// same schema and mode changes nothing; with another is refused.
    pub async fn put_schema(
        &self,
        tenant: &str,
        name: &str,
        req: PutSchema,
    ) -> Result<SchemaReport, EngineError> {
        schema::check_name(name)?;
        let PutSchema {
            v,
            mode,
            schema,
            dry_run,
        } = req;
        let version = SchemaVersion {
            v: v.clone(),
            mode,
            schema,
            created_at: now_ms(),
        };
        let compiled = Arc::new(blocking(move || Compiled::new(version)).await??);
        let _one_at_a_time = self.schemas.writes.lock().await;
        let (raw, stored) = self.stored_versions(tenant, name).await?;
        let existing = stored.versions.iter().find(|x| x.v == v);
        if let Some(x) = existing {
            if x.schema != compiled.version.schema || x.mode != mode {
                return Err(SchemaError::VersionExists {
                    name: name.into(),
                    v,
                }
                .into());
            }
        }
        let created = existing.is_none() && !dry_run;
        let recent = self
            .store
            .list_events(tenant, Some(name), RECENT_EVENTS, None)
            .await?
            .data;
        let c = compiled.clone();
        let (checked, failing) = blocking(move || {
            let checked = recent.len();
            let failing: Vec<FailingEvent> = recent
                .into_iter()
                .filter_map(|se| {
                    let errors = c.check(&Value::Object(se.event.data));
                    (!errors.is_empty()).then(|| FailingEvent {
                        event_id: se.event.id,
                        error: errors.join("; "),
                    })
                })
                .collect();
            (checked, failing)
        })
        .await?;
        if created {
            self.meta_add(TENANTS_KEY, tenant).await?;
            self.meta_add(&names_key(tenant), name).await?;
            let mut versions = stored.versions.clone();
            versions.push(compiled.version.clone());
            let value = serde_json::to_vec(&StoredVersions { versions })
                .map_err(|e| EngineError::Internal(format!("cannot encode a schema: {e}")))?;
            let key = versions_key(tenant, name);
            if !self.store.put_meta_if(&key, raw.as_deref(), &value).await? {
                // Another process registered a version in between: this one's view of
                // the versions is stale, so refuse rather than guess.
                return Err(EngineError::Internal(format!(
                    "schema `{name}` changed while it was being registered; retry"
                )));
            }
            let mut all: Vec<Arc<Compiled>> = self
                .schemas
                .registry
                .versions(tenant, name)
                .map(|vs| vs.iter().cloned().collect())
                .unwrap_or_default();
            all.push(compiled.clone());
            self.schemas.registry.set(tenant, name, all);
        }
        let would_fail = failing.len();
        Ok(SchemaReport {
            name: name.into(),
            v,
            mode,
            dry_run,
            registered: !dry_run || existing.is_some(),
            created,
            checked,
            would_fail,
            examples: failing.into_iter().take(MAX_EXAMPLES).collect(),
        })
    }

    /// The tenant's schemas: each name with its latest version, sorted by name.
    pub fn schemas(&self, tenant: &str) -> Vec<SchemaSummary> {
        self.schemas
            .registry
            .list(tenant)
            .into_iter()
            .filter_map(|(name, versions)| {
                let latest = versions.last()?;
                Some(SchemaSummary {
                    name,
                    latest: latest.version.v.clone(),
                    mode: latest.version.mode,
                    versions: versions.len(),
                })
            })
            .collect()
    }

    /// Every version of `name`'s schema, in registration order.
    pub fn schema(&self, tenant: &str, name: &str) -> Result<Vec<SchemaVersion>, EngineError> {
        self.schemas
            .registry
            .versions(tenant, name)
            .filter(|v| !v.is_empty())
            .map(|vs| vs.iter().map(|c| c.version.clone()).collect())
            .ok_or_else(|| EngineError::not_found(Resource::Schema, name))
    }

    /// A schema inferred from the most recent stored events of `name`, and how many
    /// events it was inferred from.
    pub async fn infer_schema(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<(usize, Value), EngineError> {
        let recent = self
            .store
            .list_events(tenant, Some(name), RECENT_EVENTS, None)
            .await?
            .data;
        if recent.is_empty() {
            return Err(EngineError::not_found(
                Resource::Event,
                format!("named `{name}`"),
            ));
        }
        let n = recent.len();
        let name = name.to_string();
        let schema =
            blocking(move || schema::infer::infer(&name, recent.iter().map(|se| &se.event.data)))
                .await?;
        Ok((n, schema))
    }

    /// Events that pass `filter` (by name, and whether a `warn` schema found errors),
    /// newest first.
    pub async fn events_where(
        &self,
        tenant: &str,
        filter: &EventFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<StoredEvent>, EngineError> {
        Ok(self
            .store
            .list_events_where(tenant, filter, limit.clamp(1, 1000), cursor)
            .await?)
    }

    /// Events refused (`reject`) or stored with errors (`warn`) since start, per tenant,
    /// event name and mode.
    pub fn schema_violations(&self) -> Vec<(String, String, SchemaMode, u64)> {
        self.schemas.registry.violations()
    }

    /// Checks a request's events against their schemas before any is stored: refuses
    /// the request at the first event a `reject` version refuses or that names an
    /// unknown `v`; records a `warn` version's errors on the event. A tenant without
    /// schemas costs one hash lookup.
    pub(super) fn check_schemas(
        &self,
        tenant: &str,
        events: &mut [Event],
    ) -> Result<(), EngineError> {
        if !self.schemas.registry.tenant_has_schemas(tenant) {
            return Ok(());
        }
        // `data` is lent to the validator as a JSON value and given back, uncopied.
        let datas: Vec<Value> = events
            .iter_mut()
            .map(|e| Value::Object(std::mem::take(&mut e.data)))
            .collect();
        let verdicts = self.schemas.registry.check_batch(
            tenant,
            events
                .iter()
                .zip(&datas)
                .map(|(e, d)| (e.name.as_str(), e.v.as_deref(), d)),
        );
        for (e, d) in events.iter_mut().zip(datas) {
            if let Value::Object(m) = d {
                e.data = m;
            }
        }
        for (e, verdict) in events.iter_mut().zip(verdicts?) {
            if let Verdict::Warn(errors) = verdict {
                e.schema_errors = errors;
            }
        }
        Ok(())
    }

    async fn stored_versions(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<(Option<Vec<u8>>, StoredVersions), EngineError> {
        let key = versions_key(tenant, name);
        let raw = self.store.get_meta(&key).await?;
        let stored = match &raw {
            None => StoredVersions::default(),
            Some(b) => serde_json::from_slice(b).map_err(|e| corrupt(&key, e))?,
        };
        Ok((raw, stored))
    }

    async fn meta_list(&self, key: &str) -> Result<Vec<String>, EngineError> {
        match self.store.get_meta(key).await? {
            None => Ok(Vec::new()),
            Some(b) => Ok(serde_json::from_slice(&b).map_err(|e| corrupt(key, e))?),
        }
    }

    /// Adds `item` to the list under `key` unless it is there (compare-and-set, retried).
    async fn meta_add(&self, key: &str, item: &str) -> Result<(), EngineError> {
        for _ in 0..16 {
            let raw = self.store.get_meta(key).await?;
            let mut list: Vec<String> = match &raw {
                None => Vec::new(),
                Some(b) => serde_json::from_slice(b).map_err(|e| corrupt(key, e))?,
            };
            if list.iter().any(|x| x == item) {
                return Ok(());
            }
            list.push(item.to_string());
            let value = serde_json::to_vec(&list)
                .map_err(|e| EngineError::Internal(format!("cannot encode {key}: {e}")))?;
            if self.store.put_meta_if(key, raw.as_deref(), &value).await? {
                return Ok(());
            }
        }
        Err(EngineError::Internal(format!(
            "{key} kept changing while it was being updated; retry"
        )))
    }
}

fn corrupt(key: &str, e: serde_json::Error) -> EngineError {
    EngineError::Store(StoreError::Corrupt {
        key: key.into(),
        reason: e.to_string(),
    })
}

/// Runs CPU work (compiling, checking many events) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EngineError::Internal(format!("a schema task panicked: {e}")))
}
