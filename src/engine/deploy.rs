//! Deploying: components checked and stored, definitions validated against the server's
//! ceilings and stored as immutable versions, and versions loaded back on demand.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::error::Resource;
use super::{Engine, EngineError};
use crate::event::now_ms;
use crate::function::{CompileOptions, Function, FunctionDef, FunctionError};
use crate::runtime::{ComponentKind, RuntimeError};
use crate::store::FunctionRecord;

/// How often a process sharing its store with others looks for their deploys.
const SYNC_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Keeps functions, rollouts and schemas in step with what other processes sharing the
/// store deploy (see [`Engine::sync_config`]); ends at once on a store only this
/// process writes.
pub(super) async fn sync_loop(engine: Arc<Engine>) {
    loop {
        match engine.sync_config().await {
            Ok(false) => return,
            Ok(true) => {}
            Err(e) => tracing::warn!("cannot load what other processes deployed: {e}"),
        }
        tokio::time::sleep(SYNC_EVERY).await;
    }
}

impl Engine {
    /// When the store's configuration number has moved (another process sharing it
    /// deployed a function, or changed a rollout or schema), reads functions, schemas
    /// and rollouts again. Ingest calls it before matching each batch, so an event
    /// stored after a deploy on any process is matched against that deploy. `false`:
    /// the store has no such number (only this process writes).
    pub(super) async fn sync_config(&self) -> Result<bool, EngineError> {
        let mut seen = self.config_seen.lock().await;
        let Some(now) = self.store.config_version().await? else {
            return Ok(false);
        };
        if *seen == Some(now) {
            return Ok(true);
        }
        self.load_functions().await?;
        self.load_schemas().await?;
        self.load_rollouts().await?;
        *seen = Some(now);
        Ok(true)
    }

    /// Loads the latest version of every stored function into the registry.
    pub(super) async fn load_functions(&self) -> Result<(), EngineError> {
        for (tenant, rec) in self.store.latest_functions().await? {
            match compile_record(&rec, &self.config.compile) {
                Ok(f) => self.registry.insert(&tenant, f),
                Err(e) => tracing::error!(
                    tenant,
                    function = rec.id,
                    "cannot load stored function: {e}"
                ),
            }
        }
        Ok(())
    }

    /// A function version, from memory or the store.
    pub async fn function_version(
        &self,
        tenant: &str,
        id: &str,
        version: u64,
    ) -> Result<Arc<Function>, EngineError> {
        if let Some(f) = self.registry.version(tenant, id, version) {
            return Ok(f);
        }
        let rec = self
            .store
            .get_function(tenant, id, version)
            .await?
            .ok_or_else(|| {
                EngineError::not_found(Resource::Function, format!("{id} version {version}"))
            })?;
        let f = compile_record(&rec, &self.config.compile)?;
        self.registry.insert(tenant, f.clone());
        Ok(f)
    }

    /// Stores a component after checking its hash and that it is a usable step; returns
    /// its kind and, for wasm, its world.
    pub async fn put_component(
        &self,
        tenant: &str,
        sha256: &str,
        bytes: Vec<u8>,
    ) -> Result<(ComponentKind, Option<crate::runtime::typed::World>), EngineError> {
        let sha = sha256.to_ascii_lowercase();
        if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(EngineError::BadDigest(sha256.into()));
        }
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != sha {
            return Err(EngineError::HashMismatch {
                claimed: sha,
                actual,
            });
        }
        let kind = crate::runtime::upload_kind(&bytes).map_err(|e| EngineError::Component {
            sha: sha.clone(),
            reason: e.to_string(),
        })?;
        self.store.put_component(tenant, &sha, bytes).await?;
        let mut world = None;
        if kind != ComponentKind::DockerContext {
            // A component is compiled now, so a broken one is refused at upload. A build
            // context is built when a step names it.
            let target = crate::runtime::Target::Wasm {
                component: sha.clone(),
            };
            let prepared = self.runtime.prepare(tenant, &target).await.map_err(|e| {
                EngineError::Component {
                    sha: sha.clone(),
                    reason: describe(&e),
                }
            })?;
            world = prepared.world;
        }
        Ok((kind, world))
    }

    /// Validates and stores a new version of a function; returns `(id, version)`.
    /// Deploying a definition identical to the latest version returns that version.
    pub async fn deploy(
        &self,
        tenant: &str,
        def: FunctionDef,
    ) -> Result<(String, u64), EngineError> {
        // Validate the definition, then ask each target's runtime once whether it can run
        // it (a component compiles, an image exists or is built…).
        let compiled = Function::compile(def.clone(), 0, |_, _| Ok(()))?;
        let mut checked: Vec<&crate::runtime::Target> = Vec::new();
        for s in &compiled.steps {
            if checked.contains(&&s.target) {
                continue;
            }
            checked.push(&s.target);
            if let Err(e) = self.runtime.prepare(tenant, &s.target).await {
                let at = match s.target.kind() {
                    crate::runtime::RuntimeKind::Wasm => "path",
                    _ => "runtime",
                };
                return Err(EngineError::Function(FunctionError::Invalid {
                    function: def.id.clone(),
                    field: format!("steps.{}.{at}", s.id),
                    reason: describe(&e),
                }));
            }
        }
        self.check_ceilings(&compiled)?;
        let json = serde_json::to_value(&def)
            .map_err(|e| EngineError::Internal(format!("cannot serialize a definition: {e}")))?;
        if let Some(cur) = self.registry.latest(tenant, &def.id) {
            if serde_json::to_value(&cur.def).ok().as_ref() == Some(&json) {
                return Ok((def.id, cur.version));
            }
        }
        let version = self
            .store
            .put_function(tenant, &def.id, &json, now_ms())
            .await?;
        let f = Function::compile(def.clone(), version, |_, _| Ok(()))?;
        self.registry.insert(tenant, Arc::new(f));
        tracing::info!(tenant, function = def.id, version, "deployed");
        if self.bus.active() {
            let u = super::stream::Update::FunctionDeployed {
                function_id: def.id.clone(),
                version,
            };
            self.bus.publish(tenant, u);
        }
        Ok((def.id, version))
    }

    fn check_ceilings(&self, f: &Function) -> Result<(), EngineError> {
        let c = self.config.ceilings;
        for s in &f.steps {
            let over = |what: &str, asked: String, max: String| {
                EngineError::Function(FunctionError::Invalid {
                    function: f.id.clone(),
                    field: format!("steps.{}.limits.{what}", s.id),
                    reason: format!("{asked} is above this server's ceiling of {max}"),
                })
            };
            let hb = crate::runtime::human_bytes;
            for (what, asked, max) in [
                ("memory", s.limits.memory, c.memory),
                ("stdout", s.limits.stdout, c.stdout),
                ("stderr", s.limits.stderr, c.stderr),
                ("event_size", s.limits.event_size, c.event_size),
            ] {
                if let Some(a) = asked.filter(|a| *a > max) {
                    return Err(over(what, hb(a), hb(max)));
                }
            }
            if let Some(n) = s.limits.events.filter(|n| *n > c.events) {
                return Err(over("events", n.to_string(), c.events.to_string()));
            }
            if let Some(t) = s.limits.timeout.filter(|t| *t > c.timeout) {
                return Err(over(
                    "timeout",
                    format!("{t:?}"),
                    format!("{:?}", c.timeout),
                ));
            }
        }
        Ok(())
    }
}

/// A stored version, compiled (its components and expressions' cost bounds were checked
/// when it was deployed; its expressions run under this server's budget).
fn compile_record(
    rec: &FunctionRecord,
    options: &CompileOptions,
) -> Result<Arc<Function>, EngineError> {
    let def = FunctionDef::from_value(rec.def.clone())?;
    let f = Function::compile_with(def, rec.version, &options.deployed(), |_, _| Ok(()))?;
    Ok(Arc::new(f))
}

fn describe(e: &RuntimeError) -> String {
    match e {
        RuntimeError::Missing(_) => "is not uploaded (PUT /v1/components/<sha256> first)".into(),
        other => other.to_string(),
    }
}
