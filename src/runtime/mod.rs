//! Step runtimes: how a step's code is executed. The engine only sees [`StepRuntime`];
//! [`Runtimes`] dispatches each step to the adapter its [`Target`] names.

mod cancel;
mod dispatch;
pub mod docker;
pub mod http;
pub mod lambda;
mod reply;
pub mod target;
pub mod typed;
pub mod wasm;
pub mod wit;

pub use cancel::Cancel;
pub use dispatch::Runtimes;
pub use target::{RuntimeKind, Target};

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A boxed, sendable future (keeps the trait object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Limits applied to one step execution, fully resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResolvedLimits {
    /// Linear memory cap in bytes (all memories together).
    pub memory: u64,
    /// Wall-clock deadline.
    pub timeout: Duration,
    /// stdout cap in bytes.
    pub stdout: u64,
    /// stderr cap in bytes.
    pub stderr: u64,
    /// CPU fuel budget (roughly one unit per wasm instruction), if any.
    pub fuel: Option<u64>,
    /// Most events one attempt may send with `host.send-event`.
    pub events: u32,
    /// Largest event it may send (JSON bytes).
    pub event_size: u64,
}

impl ResolvedLimits {
    /// The most a function may ask for unless the server says otherwise.
    pub const CEILINGS: ResolvedLimits = ResolvedLimits {
        memory: 1 << 30,
        timeout: Duration::from_secs(15 * 60),
        stdout: 64 << 20,
        stderr: 16 << 20,
        fuel: None,
        events: 1_000,
        event_size: 3 << 20,
    };
}

impl Default for ResolvedLimits {
    fn default() -> Self {
        Self {
            memory: 128 << 20,
            timeout: Duration::from_secs(30),
            stdout: 4 << 20,
            stderr: 1 << 20,
            fuel: None,
            events: 100,
            event_size: 256 << 10,
        }
    }
}

/// One execution request.
#[derive(Debug, Clone)]
pub struct StepRequest {
    /// Tenant that owns the step.
    pub tenant: String,
    /// What to run.
    pub target: Target,
    /// The JSON document to feed on stdin.
    pub stdin: Vec<u8>,
    /// Limits to enforce.
    pub limits: ResolvedLimits,
    /// Environment variables (the only ones the guest sees).
    pub env: Vec<(String, String)>,
    /// Which attempt of which step this is (names containers, signs requests).
    pub attempt: Attempt,
    /// Fired when the run is cancelled: the step is stopped.
    pub cancel: Cancel,
    /// The ids `host.send-event` answers with, in order, before it makes new ones: a dry
    /// run gives the original attempt's, so that a step reporting them compares equal.
    pub sent_ids: Vec<String>,
}

/// Names one attempt of one step of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attempt {
    /// Run id.
    pub run_id: String,
    /// Step id.
    pub step_id: String,
    /// Attempt number, from 0.
    pub attempt: u32,
}

impl Attempt {
    /// `<run>/<step>/<attempt>`: unique per attempt.
    pub fn id(&self) -> String {
        format!("{}/{}/{}", self.run_id, self.step_id, self.attempt)
    }
}

impl StepOutcome {
    /// An outcome without sandbox figures, timed from `started`.
    pub fn ended(
        started: std::time::Instant,
        result: Result<(), StepFailure>,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    ) -> Self {
        Self {
            result,
            stdout,
            stderr,
            elapsed: started.elapsed(),
            figures: None,
            sent: Vec::new(),
        }
    }

    /// An outcome that failed before anything ran.
    pub fn failed(started: std::time::Instant, failure: StepFailure) -> Self {
        Self::ended(started, Err(failure), Vec::new(), Vec::new())
    }
}

/// What an adapter says of a target that is not its runtime's (a routing mistake).
pub fn misrouted(target: &Target, runtime: RuntimeKind) -> String {
    format!("{} is not a {} step", target.describe(), runtime.name())
}

/// Why an execution did not succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StepFailure {
    /// The program exited with a non-zero code.
    #[error("exited with code {0}")]
    Exit(i32),
    /// The guest trapped.
    #[error("trapped: {0}")]
    Trap(String),
    /// The wall-clock deadline passed.
    #[error("deadline {0:?} exceeded")]
    Timeout(Duration),
    /// The guest tried to grow memory beyond its cap.
    #[error("memory limit {0} exceeded")]
    Memory(String),
    /// stdout grew beyond its cap.
    #[error("stdout over {0}")]
    Stdout(String),
    /// The CPU fuel budget ran out.
    #[error("fuel budget {0} exhausted")]
    Fuel(u64),
    /// stderr grew beyond its cap.
    #[error("stderr over {0}")]
    Stderr(String),
    /// The component could not be loaded or instantiated.
    #[error("cannot load component: {0}")]
    Load(String),
    /// The run was cancelled while the step ran.
    #[error("cancelled while running")]
    Cancelled,
    /// The runtime's service failed or could not be reached (worth retrying).
    #[error("{0}")]
    Unavailable(String),
    /// The target ran and reported that it failed (a Lambda `FunctionError`): retried.
    #[error("{0}")]
    Errored(String),
    /// The target refused the request as wrong, not as a passing failure (not retried).
    #[error("{0}")]
    Rejected(String),
    /// A typed step returned a `step-error`: retried if `status` is 500 or more.
    #[error("step error {status}: {message}")]
    Returned {
        /// Its status (the stdout convention's).
        status: u16,
        /// Its message.
        message: String,
    },
}

impl StepFailure {
    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            StepFailure::Rejected(_) | StepFailure::Cancelled => false,
            StepFailure::Returned { status, .. } => *status >= 500,
            _ => true,
        }
    }
}

/// What came out of one execution.
#[derive(Debug, Clone)]
pub struct StepOutcome {
    /// `Ok` if the program ran to completion with exit code 0.
    pub result: Result<(), StepFailure>,
    /// Captured stdout.
    pub stdout: Vec<u8>,
    /// Captured stderr.
    pub stderr: Vec<u8>,
    /// Wall time spent (instantiate + run).
    pub elapsed: Duration,
    /// What the sandbox measured, when the step got as far as being instantiated.
    pub figures: Option<SandboxFigures>,
    /// The events it sent through `host.send-event` (validated, not yet ingested).
    pub sent: Vec<crate::event::Event>,
}

/// What one execution cost inside the sandbox: shown per step in the run's record.
/// Stored as `[instantiate_us, run_us, fuel, memory_peak]`: every write of a run
/// re-encodes it, so it is kept short; the API shows it as an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(from = "[u64; 4]", into = "[u64; 4]")]
pub struct SandboxFigures {
    /// Time to instantiate the component (µs).
    pub instantiate_us: u64,
    /// Time spent running it (µs).
    pub run_us: u64,
    /// CPU fuel consumed (roughly one unit per wasm instruction).
    pub fuel: u64,
    /// The most linear memory it had at once (bytes).
    pub memory_peak: u64,
}

impl From<[u64; 4]> for SandboxFigures {
    fn from(a: [u64; 4]) -> Self {
        Self {
            instantiate_us: a[0],
            run_us: a[1],
            fuel: a[2],
            memory_peak: a[3],
        }
    }
}

impl From<SandboxFigures> for [u64; 4] {
    fn from(f: SandboxFigures) -> Self {
        [f.instantiate_us, f.run_us, f.fuel, f.memory_peak]
    }
}

/// What kind of upload a component was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentKind {
    /// A WebAssembly component.
    Component,
    /// A WASI preview1 core module (weir wraps it into a component).
    Module,
    /// A tar archive with a Dockerfile: a docker step's build context.
    DockerContext,
}

/// What an upload is: a wasm module or component, or a docker build context (a tar).
pub fn upload_kind(bytes: &[u8]) -> Result<ComponentKind, RuntimeError> {
    if bytes.len() >= 512 && &bytes[257..262] == b"ustar" {
        return Ok(ComponentKind::DockerContext);
    }
    wasm::kind_of(bytes)
}

/// Why a component cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuntimeError {
    /// No component with that hash is stored for the tenant.
    #[error("component sha256:{0} is not uploaded")]
    Missing(String),
    /// The bytes are not WebAssembly.
    #[error("not a WebAssembly module or component: {0}")]
    NotWasm(String),
    /// It does not compile, or it does not fit the step contract.
    #[error("{0}")]
    Invalid(String),
    /// Storage failed underneath.
    #[error("{0}")]
    Store(String),
    /// The runtime this target needs is not set up or not reachable.
    #[error("{0}")]
    Unavailable(String),
}

/// Where a runtime finds components and keeps their compiled artefacts: the narrow view
/// of storage it needs (errors are the storage's message).
#[async_trait::async_trait]
pub trait ComponentSource: Send + Sync + 'static {
    /// The bytes of component `sha256` of `tenant`.
    async fn component(&self, tenant: &str, sha256: &str) -> Result<Option<Vec<u8>>, String>;
    /// A compiled artefact.
    async fn artifact(&self, key: &str) -> Result<Option<Vec<u8>>, String>;
    /// Keeps a compiled artefact.
    async fn put_artifact(&self, key: &str, bytes: Vec<u8>) -> Result<(), String>;
}

/// A [`ComponentSource`] in memory (for `weir componentize`, tests and benchmarks).
#[derive(Default)]
pub struct MemorySource {
    components: std::sync::Mutex<std::collections::HashMap<(String, String), Vec<u8>>>,
    artifacts: std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>,
}

impl MemorySource {
    /// Adds a component.
    pub fn insert_component(&self, tenant: &str, sha256: &str, bytes: Vec<u8>) {
        self.components
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((tenant.into(), sha256.into()), bytes);
    }
}

#[async_trait::async_trait]
impl ComponentSource for MemorySource {
    async fn component(&self, tenant: &str, sha256: &str) -> Result<Option<Vec<u8>>, String> {
        let m = self.components.lock().unwrap_or_else(|p| p.into_inner());
        Ok(m.get(&(tenant.to_string(), sha256.to_string())).cloned())
    }

    async fn artifact(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        let m = self.artifacts.lock().unwrap_or_else(|p| p.into_inner());
        Ok(m.get(key).cloned())
    }

    async fn put_artifact(&self, key: &str, bytes: Vec<u8>) -> Result<(), String> {
        let mut m = self.artifacts.lock().unwrap_or_else(|p| p.into_inner());
        m.insert(key.to_string(), bytes);
        Ok(())
    }
}

/// Executes steps. Implementations must be cheap to call concurrently.
pub trait StepRuntime: Send + Sync + 'static {
    /// Checks at deploy that `target` can run (its component compiles, its image exists,
    /// its image is built…) and warms caches.
    fn prepare<'a>(
        &'a self,
        tenant: &'a str,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<Prepared, RuntimeError>>;
    /// Runs one step to completion (or failure).
    fn run(&self, req: StepRequest) -> BoxFuture<'_, StepOutcome>;

    /// What the runtime has counted (for `/metrics`), if anything.
    fn counters(&self) -> Vec<RuntimeCounter> {
        Vec::new()
    }
}

/// What [`StepRuntime::prepare`] found out about a target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prepared {
    /// The WIT world of a wasm component.
    pub world: Option<typed::World>,
}

/// One counter a runtime keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeCounter {
    /// Its metric name.
    pub name: &'static str,
    /// What it counts.
    pub help: &'static str,
    /// Its value.
    pub value: u64,
}

/// Formats a byte count the way users write limits (`64 MiB`).
pub fn human_bytes(n: u64) -> String {
    if n >= 1 << 30 && n.is_multiple_of(1 << 30) {
        format!("{} GiB", n >> 30)
    } else if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}
