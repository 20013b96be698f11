//! The step runtimes a command serves: wasm always; docker, lambda and http beside it.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Result;

use weir::runtime::docker::{DockerConfig, DockerRuntime};
use weir::runtime::http::{HttpConfig, HttpRuntime};
use weir::runtime::lambda::LambdaRuntime;
use weir::runtime::wasm::{WasmConfig, WasmRuntime};
use weir::runtime::{RuntimeKind, Runtimes};
use weir::store::Store;

/// What differs between the commands.
pub struct Setup {
    /// The wasm runtime's settings.
    pub wasm: WasmConfig,
    /// The Docker engine's socket, if not the default.
    pub docker_host: Option<String>,
    /// Each tenant's signing key for http steps.
    pub signing_keys: HashMap<String, String>,
    /// Whether http steps may call private addresses.
    pub allow_private: bool,
}

/// Every runtime, over `store`'s components.
pub fn build(store: &Arc<dyn Store>, setup: Setup) -> Result<Arc<Runtimes>> {
    let source = weir::engine::components_of(store.clone());
    let wasm = Arc::new(WasmRuntime::new(source.clone(), setup.wasm)?);
    let mut docker = DockerConfig::default();
    if let Some(h) = setup.docker_host {
        docker.host = h;
    }
    let http = HttpRuntime::new(HttpConfig {
        signing_keys: setup.signing_keys,
        allow_private: setup.allow_private,
    })?;
    Ok(Arc::new(
        Runtimes::new()
            .with(RuntimeKind::Wasm, wasm)
            .with(
                RuntimeKind::Docker,
                Arc::new(DockerRuntime::new(source, docker)),
            )
            .with(RuntimeKind::Lambda, Arc::new(LambdaRuntime::new()?))
            .with(RuntimeKind::Http, Arc::new(http)),
    ))
}
