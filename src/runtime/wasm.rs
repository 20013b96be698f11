//! The wasm step runtime on wasmtime: WASI p2 command components (preview1 modules are
//! wrapped into components), compiled once and cached, instantiated per step from an
//! `InstancePre` with the pooling allocator, sandboxed by memory, time and output caps.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, UpdateDeadline,
};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxView, WasiView};

use super::typed::{self, HostCalls, SendLimits, TypedStepPre, World};
use super::{
    human_bytes, misrouted, BoxFuture, ComponentKind, ComponentSource, Prepared, RuntimeCounter,
    RuntimeError, RuntimeKind, SandboxFigures, StepFailure, StepOutcome, StepRequest, StepRuntime,
    Target,
};

/// How often the epoch ticks; deadlines are checked (and guests yield) at this pace.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Settings of the wasm runtime.
#[derive(Debug, Clone)]
pub struct WasmConfig {
    /// Use the pooling allocator (falls back to on-demand if it cannot reserve memory).
    pub pooling: bool,
    /// Instances the pool holds at once.
    pub pool_instances: u32,
    /// Largest linear memory any step may ask for.
    pub max_memory: u64,
    /// Catch out-of-bounds memory accesses with guard pages and signals instead of
    /// explicit bounds checks. Guest code runs a little faster, but every step then pays
    /// `mprotect` calls (and TLB-shootdown IPIs on every core) to reset its memory: off
    /// by default, worth turning on only for compute-heavy steps.
    pub guard_pages: bool,
}

impl Default for WasmConfig {
    fn default() -> Self {
        Self {
            pooling: true,
            pool_instances: 256,
            max_memory: 1 << 30,
            guard_pages: false,
        }
    }
}

/// Per-store host state: WASI context, the resource limiter, and what the guest asked
/// of `weir:step/host`.
pub struct Host {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
    pub(super) calls: HostCalls,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps memory growth and records that the cap was hit, so the failure can name it.
struct Limiter {
    memory: usize,
    memory_hit: bool,
    /// The largest size any memory grew to (bytes).
    peak: usize,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory {
            self.memory_hit = true;
            return Err(wasmtime::format_err!(
                "memory limit {} exceeded",
                human_bytes(self.memory as u64)
            ));
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }

    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        16
    }
}

/// A component ready to instantiate, in its world.
enum Ready {
    Command(CommandPre<Host>),
    Typed(TypedStepPre<Host>),
}

impl Ready {
    fn world(&self) -> World {
        match self {
            Ready::Command(_) => World::Step,
            Ready::Typed(_) => World::TypedStep,
        }
    }
}

type Pre = Arc<Ready>;
type Cache = Mutex<HashMap<(String, String), Arc<OnceCell<Pre>>>>;

/// The wasmtime-backed [`StepRuntime`].
pub struct WasmRuntime {
    engine: Engine,
    linker: Linker<Host>,
    source: Arc<dyn ComponentSource>,
    cache: Cache,
    engine_tag: String,
    pooling: bool,
    ticker_stop: Arc<AtomicBool>,
    /// Components compiled from their bytes, and loaded from a stored compiled artefact.
    compiled: std::sync::atomic::AtomicU64,
    loaded: std::sync::atomic::AtomicU64,
}

impl Drop for WasmRuntime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

fn engine_config(cfg: &WasmConfig, pooling: bool) -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true);
    c.epoch_interruption(true);
    // Fuel is metered always (a step without a budget gets u64::MAX) so that one
    // compiled artefact serves steps with and without budgets.
    c.consume_fuel(true);
    c.max_wasm_stack(1 << 20);
    // Small guests initialise faster by copying their data than by mapping a CoW image
    // per instance (fewer mmap/mprotect calls and TLB shootdowns under load: +4% runs/s).
    c.memory_init_cow(false);
    if !cfg.guard_pages {
        // Explicit bounds checks and no guard region: a pooled memory slot then stays
        // read/write between steps, so an instantiation makes no `mprotect` call (each
        // one flushed the TLB of every core). Measured: one step 24.1 → 14.1 µs, loaded
        // server 4.2–5.2k → 7.4–7.8k runs/s.
        c.signals_based_traps(false);
        c.memory_guard_size(0);
    }
    if pooling {
        let mut p = PoolingAllocationConfig::default();
        let n = cfg.pool_instances;
        p.total_component_instances(n);
        p.total_core_instances(n * 8);
        p.total_memories(n * 4);
        p.total_tables(n * 8);
        p.max_memory_size(cfg.max_memory as usize);
        p.max_core_instances_per_component(64);
        p.max_memories_per_component(16);
        p.max_tables_per_component(64);
        // Reset small guests' memory, tables and async stacks with memset rather than
        // madvise: fewer syscalls and TLB-shootdown IPIs per step.
        p.linear_memory_keep_resident(1 << 20);
        p.table_keep_resident(64 << 10);
        p.async_stack_keep_resident(64 << 10);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
    }
    c
}

/// Whether `bytes` are a core module or a component; errors if not wasm at all.
pub fn kind_of(bytes: &[u8]) -> Result<ComponentKind, RuntimeError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(RuntimeError::NotWasm("missing the \\0asm header".into()));
    }
    match bytes[4..8] {
        [1, 0, 0, 0] => Ok(ComponentKind::Module),
        [_, _, 1, 0] => Ok(ComponentKind::Component),
        _ => Err(RuntimeError::NotWasm("unknown wasm version/layer".into())),
    }
}

/// Wraps a WASI preview1 module into a component with the standard adapter: a command
/// (`_start`) into world `step`; a module exporting `weir:step/handler@0.1.0#run` (the
/// typed entry point, in the canonical ABI) into world `typed-step`, with weir's WIT
/// embedded and the reactor adapter.
pub fn componentize(module: &[u8]) -> Result<Vec<u8>, RuntimeError> {
    use wasi_preview1_component_adapter_provider as adapters;
    let typed = typed::is_typed_module(module);
    let mut module = module.to_vec();
    let adapter = if typed {
        let (resolve, world) = super::wit::world("typed-step").map_err(RuntimeError::Invalid)?;
        wit_component::embed_component_metadata(
            &mut module,
            &resolve,
            world,
            wit_component::StringEncoding::UTF8,
        )
        .map_err(|e| RuntimeError::Invalid(format!("cannot embed weir's WIT: {e:#}")))?;
        adapters::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER
    } else {
        adapters::WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER
    };
    let encoder = wit_component::ComponentEncoder::default()
        .module(&module)
        .map_err(|e| RuntimeError::Invalid(format!("cannot read the core module: {e:#}")))?
        .adapter(adapters::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, adapter)
        .map_err(|e| RuntimeError::Invalid(format!("cannot load the WASI adapter: {e:#}")))?
        .validate(true);
    let mut encoder = encoder;
    encoder.encode().map_err(|e| {
        let what = if typed {
            "a typed step exporting weir:step/handler@0.1.0#run"
        } else {
            "a WASI preview1 command"
        };
        RuntimeError::Invalid(format!(
            "cannot wrap the module into a component (is it {what}?): {e:#}"
        ))
    })
}

impl WasmRuntime {
    /// Builds the engine, the WASI linker and the epoch ticker; components and compiled
    /// artefacts come from `source`.
    pub fn new(source: Arc<dyn ComponentSource>, cfg: WasmConfig) -> Result<Self, RuntimeError> {
        let (engine, pooling) = match cfg.pooling {
            true => match Engine::new(&engine_config(&cfg, true)) {
                Ok(e) => (e, true),
                Err(e) => {
                    tracing::warn!(
                        "pooling allocator unavailable ({e}); using on-demand allocation"
                    );
                    (Self::on_demand(&cfg)?, false)
                }
            },
            false => (Self::on_demand(&cfg)?, false),
        };
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| RuntimeError::Invalid(format!("cannot set up WASI: {e}")))?;
        typed::add_host_to_linker::<Host, wasmtime::component::HasSelf<Host>>(&mut linker, |h| h)
            .map_err(|e| RuntimeError::Invalid(format!("cannot set up weir:step/host: {e}")))?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let engine_tag = format!("wasmtime-{}-{:016x}", env!("CARGO_PKG_VERSION"), h.finish());
        let ticker_stop = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = ticker_stop.clone();
            std::thread::Builder::new()
                .name("weir-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| {
                    RuntimeError::Invalid(format!("cannot start the epoch ticker: {e}"))
                })?;
        }
        Ok(Self {
            engine,
            linker,
            source,
            cache: Mutex::new(HashMap::new()),
            engine_tag,
            pooling,
            ticker_stop,
            compiled: Default::default(),
            loaded: Default::default(),
        })
    }

    fn on_demand(cfg: &WasmConfig) -> Result<Engine, RuntimeError> {
        Engine::new(&engine_config(cfg, false))
            .map_err(|e| RuntimeError::Invalid(format!("cannot create the wasm engine: {e}")))
    }

    /// Whether the pooling allocator is in use.
    pub fn is_pooling(&self) -> bool {
        self.pooling
    }

    /// The wasmtime engine (for benchmarks that compare against raw wasmtime).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    async fn load(&self, tenant: &str, sha: &str) -> Result<Pre, RuntimeError> {
        let cell = {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache
                .entry((tenant.to_string(), sha.to_string()))
                .or_insert_with(|| Arc::new(OnceCell::new()))
                .clone()
        };
        cell.get_or_try_init(|| self.compile(tenant, sha))
            .await
            .cloned()
    }

    async fn compile(&self, tenant: &str, sha: &str) -> Result<Pre, RuntimeError> {
        let bytes = self
            .source
            .component(tenant, sha)
            .await
            .map_err(RuntimeError::Store)?
            .ok_or_else(|| RuntimeError::Missing(sha.into()))?;
        let artifact_key = format!("{sha}-{}", self.engine_tag);
        let cached = self
            .source
            .artifact(&artifact_key)
            .await
            .map_err(RuntimeError::Store)?;
        let engine = self.engine.clone();
        let (component, fresh) = tokio::task::spawn_blocking(
            move || -> Result<(Component, Option<Vec<u8>>), RuntimeError> {
                if let Some(art) = cached {
                    // SAFETY: artefacts are written only by this function, from
                    // `Component::serialize` of an engine with the same compatibility hash
                    // (part of the key); wasmtime also checks the header before loading.
                    if let Ok(c) = unsafe { Component::deserialize(&engine, &art) } {
                        return Ok((c, None));
                    }
                }
                let comp_bytes = match kind_of(&bytes)? {
                    ComponentKind::Component => bytes,
                    ComponentKind::Module => componentize(&bytes)?,
                    ComponentKind::DockerContext => {
                        return Err(RuntimeError::Invalid(
                            "is a docker build context, not wasm".into(),
                        ))
                    }
                };
                let c = Component::new(&engine, &comp_bytes)
                    .map_err(|e| RuntimeError::Invalid(format!("does not compile: {e:#}")))?;
                let ser = c.serialize().ok();
                Ok((c, ser))
            },
        )
        .await
        .map_err(|e| RuntimeError::Invalid(format!("compilation panicked: {e}")))??;
        let counter = if fresh.is_some() {
            &self.compiled
        } else {
            &self.loaded
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(ser) = fresh {
            self.source
                .put_artifact(&artifact_key, ser)
                .await
                .map_err(RuntimeError::Store)?;
        }
        typed::check_imports(&component, &self.engine)?;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            RuntimeError::Invalid(format!("imports something weir does not provide: {e:#}"))
        })?;
        let world = typed::world_of(&component, &self.engine)?;
        let ready = match world {
            World::Step => Ready::Command(CommandPre::new(pre).map_err(|e| {
                RuntimeError::Invalid(format!(
                    "is not a WASI command (it must export wasi:cli/run): {e:#}"
                ))
            })?),
            World::TypedStep => Ready::Typed(TypedStepPre::new(pre).map_err(|e| {
                RuntimeError::Invalid(format!("does not fit world typed-step: {e:#}"))
            })?),
        };
        Ok(Arc::new(ready))
    }

    async fn execute(&self, mut req: StepRequest) -> StepOutcome {
        let started = Instant::now();
        let loaded = match &req.target {
            Target::Wasm { component } => self.load(&req.tenant, component).await,
            _ => Err(RuntimeError::Invalid(misrouted(
                &req.target,
                RuntimeKind::Wasm,
            ))),
        };
        let pre = match loaded {
            Ok(p) => p,
            Err(e) => return StepOutcome::failed(started, StepFailure::Load(e.to_string())),
        };
        // Instantiation is timed from here: finding (or compiling) the component is not
        // part of it.
        let loaded = Instant::now();
        let limits = req.limits;
        let stdout = MemoryOutputPipe::new(limits.stdout as usize);
        let stderr = MemoryOutputPipe::new(limits.stderr as usize);
        // A typed step's input is `run`'s argument and its output `run`'s result: what it
        // prints goes to its log, with what it writes to stderr and `host.log`.
        let (stdin, input, printed) = match &*pre {
            Ready::Command(_) => (std::mem::take(&mut req.stdin), Vec::new(), stdout.clone()),
            Ready::Typed(_) => (Vec::new(), std::mem::take(&mut req.stdin), stderr.clone()),
        };
        let mut b = WasiCtx::builder();
        b.stdin(MemoryInputPipe::new(stdin))
            .stdout(printed)
            .stderr(stderr.clone())
            .args(&["step"])
            .envs(&req.env)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let host = Host {
            wasi: b.build(),
            table: ResourceTable::new(),
            limiter: Limiter {
                memory: limits.memory.min(usize::MAX as u64) as usize,
                memory_hit: false,
                peak: 0,
            },
            calls: HostCalls::new(
                stderr.clone(),
                SendLimits {
                    events: limits.events,
                    event_size: limits.event_size,
                },
                std::mem::take(&mut req.sent_ids),
            ),
        };
        let mut store = wasmtime::Store::new(&self.engine, host);
        store.limiter(|h| &mut h.limiter);
        if let Err(e) = store.set_fuel(limits.fuel.unwrap_or(u64::MAX)) {
            return StepOutcome::failed(
                started,
                StepFailure::Load(format!("cannot set fuel: {e}")),
            );
        }
        let deadline = started + limits.timeout;
        store.set_epoch_deadline(1);
        let cancel = req.cancel.clone();
        store.epoch_deadline_callback(move |_| {
            if cancel.is_fired() || Instant::now() >= deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        let fuel_start = limits.fuel.unwrap_or(u64::MAX);
        let mut instantiated = None;
        // A command's exit status, or a typed step's result (its output or step-error).
        let mut returned: Option<Result<String, typed::StepError>> = None;
        let work = async {
            match &*pre {
                Ready::Command(p) => {
                    let cmd = p.instantiate_async(&mut store).await?;
                    instantiated = Some(Instant::now());
                    cmd.wasi_cli_run().call_run(&mut store).await
                }
                Ready::Typed(p) => {
                    let step = p.instantiate_async(&mut store).await?;
                    instantiated = Some(Instant::now());
                    let input = String::from_utf8_lossy(&input);
                    let r = step
                        .weir_step_handler()
                        .call_run(&mut store, &input)
                        .await?;
                    returned = Some(r);
                    Ok(Ok(()))
                }
            }
        };
        // The epoch callback stops a guest running wasm; one blocked in a host call (a
        // sleep, a read) is stopped here instead: its call is dropped at the deadline or
        // when the run is cancelled.
        let run = tokio::select! {
            r = work => r,
            _ = req.cancel.fired() => Err(wasmtime::Error::msg("cancelled in a host call")),
            _ = tokio::time::sleep_until(deadline.into()) => {
                Err(wasmtime::Error::msg("deadline reached in a host call"))
            }
        };
        let ended = Instant::now();
        let memory_hit = store.data().limiter.memory_hit;
        let figures = instantiated.map(|at| SandboxFigures {
            instantiate_us: at.duration_since(loaded).as_micros() as u64,
            run_us: ended.duration_since(at).as_micros() as u64,
            fuel: fuel_start.saturating_sub(store.get_fuel().unwrap_or(fuel_start)),
            memory_peak: store.data().limiter.peak as u64,
        });
        let calls = std::mem::replace(
            &mut store.data_mut().calls,
            HostCalls::new(
                MemoryOutputPipe::new(0),
                SendLimits {
                    events: 0,
                    event_size: 0,
                },
                Vec::new(),
            ),
        );
        drop(store);
        let mut out = stdout.contents().to_vec();
        let err = stderr.contents().to_vec();
        let result = match run {
            Ok(Ok(())) => Ok(()),
            Ok(Err(())) => Err(StepFailure::Exit(1)),
            Err(e) => {
                if let Some(exit) = e.downcast_ref::<I32Exit>() {
                    if exit.0 == 0 {
                        Ok(())
                    } else {
                        Err(StepFailure::Exit(exit.0))
                    }
                } else if matches!(
                    e.downcast_ref::<wasmtime::Trap>(),
                    Some(wasmtime::Trap::OutOfFuel)
                ) {
                    Err(StepFailure::Fuel(limits.fuel.unwrap_or(u64::MAX)))
                } else if memory_hit {
                    Err(StepFailure::Memory(human_bytes(limits.memory)))
                } else if req.cancel.is_fired() {
                    Err(StepFailure::Cancelled)
                } else if Instant::now() >= deadline {
                    Err(StepFailure::Timeout(limits.timeout))
                } else {
                    Err(StepFailure::Trap(trap_message(&e)))
                }
            }
        };
        let result = match (result, returned) {
            (Ok(()), Some(Ok(output))) => {
                out = output.into_bytes();
                Ok(())
            }
            (Ok(()), Some(Err(e))) => {
                out = serde_json::to_vec(&serde_json::json!({
                    "status": e.status, "error": e.message,
                }))
                .unwrap_or_default();
                Err(StepFailure::Returned {
                    // A step-error below 400 is still an error: retried like a 500.
                    status: if e.status < 400 { 500 } else { e.status },
                    message: e.message,
                })
            }
            (r, _) => r,
        };
        // A refused `host.send-event` fails the step whatever the guest did with the
        // refusal: sending would not succeed on another attempt either.
        let result = match (result, calls.refused) {
            (Err(StepFailure::Cancelled), _) => Err(StepFailure::Cancelled),
            (_, Some(why)) => Err(StepFailure::Rejected(format!(
                "host.send-event refused an event: {why}"
            ))),
            (r, None) => r,
        };
        // A full pipe refuses further writes; a guest may ignore that and exit 0, so the
        // cap is judged by what was captured.
        let result = match result {
            _ if out.len() as u64 >= limits.stdout => {
                Err(StepFailure::Stdout(human_bytes(limits.stdout)))
            }
            _ if err.len() as u64 >= limits.stderr => {
                Err(StepFailure::Stderr(human_bytes(limits.stderr)))
            }
            r => r,
        };
        StepOutcome {
            result,
            stdout: out,
            stderr: err,
            elapsed: started.elapsed(),
            figures,
            sent: calls.sent,
        }
    }
}

fn trap_message(e: &wasmtime::Error) -> String {
    let mut msg = format!("{e:#}");
    if let Some(t) = e.downcast_ref::<wasmtime::Trap>() {
        msg = format!("{t}: {msg}");
    }
    msg.lines().take(12).collect::<Vec<_>>().join("\n")
}

impl StepRuntime for WasmRuntime {
    fn prepare<'a>(
        &'a self,
        tenant: &'a str,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<Prepared, RuntimeError>> {
        Box::pin(async move {
            match target {
                Target::Wasm { component } => {
                    self.load(tenant, component).await.map(|r| Prepared {
                        world: Some(r.world()),
                    })
                }
                other => Err(RuntimeError::Invalid(misrouted(other, RuntimeKind::Wasm))),
            }
        })
    }

    fn run(&self, req: StepRequest) -> BoxFuture<'_, StepOutcome> {
        Box::pin(self.execute(req))
    }

    fn counters(&self) -> Vec<RuntimeCounter> {
        vec![
            RuntimeCounter {
                name: "weir_wasm_components_compiled",
                help: "Components compiled from their bytes (then stored as artefacts)",
                value: self.compiled.load(Ordering::Relaxed),
            },
            RuntimeCounter {
                name: "weir_wasm_components_loaded_from_cache",
                help: "Components loaded from a stored compiled artefact instead of compiled",
                value: self.loaded.load(Ordering::Relaxed),
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::MemorySource;
    use sha2::{Digest, Sha256};

    const ECHO: &str = r#"(module
      (import "wasi_snapshot_preview1" "fd_read" (func $r (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 64)) (i32.store (i32.const 4) (i32.const 1000))
        (drop (call $r (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16)))
        (i32.store (i32.const 32) (i32.const 64)) (i32.store (i32.const 36) (i32.load (i32.const 16)))
        (drop (call $w (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 20)))))"#;

    fn setup() -> (Arc<MemorySource>, String) {
        let store = Arc::new(MemorySource::default());
        let module = wat::parse_str(ECHO).unwrap();
        let sha = hex::encode(Sha256::digest(&module));
        store.insert_component("t", &sha, module);
        (store, sha)
    }

    fn request(sha: &str) -> StepRequest {
        StepRequest {
            tenant: "t".into(),
            target: Target::Wasm {
                component: sha.into(),
            },
            stdin: b"{\"hi\":1}".to_vec(),
            limits: super::super::ResolvedLimits::default(),
            env: vec![],
            attempt: Default::default(),
            cancel: Default::default(),
            sent_ids: Vec::new(),
        }
    }

    #[tokio::test]
    async fn compiled_artefacts_are_cached_in_the_store_and_reused() {
        let (store, sha) = setup();
        let rt = WasmRuntime::new(store.clone(), WasmConfig::default()).unwrap();
        let out = rt.run(request(&sha)).await;
        assert_eq!(out.result, Ok(()));
        assert_eq!(out.stdout, b"{\"hi\":1}");
        let key = format!("{sha}-{}", rt.engine_tag);
        let artefact = store
            .artifact(&key)
            .await
            .unwrap()
            .expect("artefact stored");
        // A new runtime (a restart) loads the artefact instead of compiling.
        let rt2 = WasmRuntime::new(store.clone(), WasmConfig::default()).unwrap();
        assert_eq!(rt2.run(request(&sha)).await.result, Ok(()));
        // A corrupt artefact is not trusted: the component is compiled again.
        store.put_artifact(&key, b"garbage".to_vec()).await.unwrap();
        let rt3 = WasmRuntime::new(store.clone(), WasmConfig::default()).unwrap();
        assert_eq!(rt3.run(request(&sha)).await.stdout, b"{\"hi\":1}");
        assert_ne!(store.artifact(&key).await.unwrap().unwrap(), b"garbage");
        assert!(!artefact.is_empty());
    }

    /// With `w` on stdin, writes a secret at 70,000 and (after growing) at 2 MiB; with
    /// `r`, grows the same way and prints those 12 bytes; with `o`, loads out of bounds.
    const SNOOP: &str = r#"(module
      (import "wasi_snapshot_preview1" "fd_read" (func $r (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 2)
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 64)) (i32.store (i32.const 4) (i32.const 1))
        (drop (call $r (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16)))
        (drop (memory.grow (i32.const 40)))
        (if (i32.eq (i32.load8_u (i32.const 64)) (i32.const 111))
          (then (drop (i32.load (i32.const 0x7fff0000)))))
        (if (i32.eq (i32.load8_u (i32.const 64)) (i32.const 119))
          (then
            (i64.store (i32.const 70000) (i64.const 0x5445524345535f41))
            (i32.store (i32.const 70008) (i32.const 0x21212121))
            (i64.store (i32.const 0x200000) (i64.const 0x5445524345535f42))
            (i32.store (i32.const 0x200008) (i32.const 0x21212121)))
          (else
            (i64.store (i32.const 96) (i64.load (i32.const 70000)))
            (i32.store (i32.const 104) (i32.load (i32.const 70008)))
            (i64.store (i32.const 108) (i64.load (i32.const 0x200000)))
            (i32.store (i32.const 116) (i32.load (i32.const 0x200008)))
            (i32.store (i32.const 32) (i32.const 96)) (i32.store (i32.const 36) (i32.const 24))
            (drop (call $w (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 20)))))))"#;

    #[tokio::test]
    async fn memory_is_bounded_and_never_leaks_between_steps_in_either_mode() {
        for guard_pages in [false, true] {
            let store = Arc::new(MemorySource::default());
            let module = wat::parse_str(SNOOP).unwrap();
            let sha = hex::encode(Sha256::digest(&module));
            store.insert_component("t", &sha, module);
            let cfg = WasmConfig {
                guard_pages,
                ..WasmConfig::default()
            };
            let rt = WasmRuntime::new(store.clone(), cfg).unwrap();
            let with = |input: &[u8]| StepRequest {
                stdin: input.to_vec(),
                ..request(&sha)
            };
            // Many writers then many readers: pooled slots are reused, and a reader must
            // see only zeroes where an earlier step left its secret.
            for _ in 0..8 {
                assert_eq!(rt.run(with(b"w")).await.result, Ok(()));
            }
            for _ in 0..8 {
                let out = rt.run(with(b"r")).await;
                assert_eq!(out.result, Ok(()), "guard_pages={guard_pages}");
                assert_eq!(out.stdout, vec![0u8; 24], "guard_pages={guard_pages}");
            }
            let out = rt.run(with(b"o")).await;
            assert!(
                matches!(out.result, Err(StepFailure::Trap(ref m)) if m.contains("out of bounds")),
                "guard_pages={guard_pages}: {:?}",
                out.result
            );
        }
    }

    #[tokio::test]
    async fn unknown_components_and_non_wasm_are_load_errors() {
        let (store, _) = setup();
        let rt = WasmRuntime::new(store.clone(), WasmConfig::default()).unwrap();
        let out = rt.run(request(&"0".repeat(64))).await;
        assert!(
            matches!(out.result, Err(StepFailure::Load(ref m)) if m.contains("not uploaded")),
            "{:?}",
            out.result
        );
        assert!(matches!(
            kind_of(b"hello world"),
            Err(RuntimeError::NotWasm(_))
        ));
    }
}
