//! `weir dev`: a local server with the embedded store, an open default tenant, and the
//! functions of a directory deployed at start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};

use weir::api::{self, ApiConfig, AppState};
use weir::engine::{Engine, EngineConfig};
use weir::runtime::wasm::WasmConfig;
use weir::DEV_TENANT;

#[derive(clap::Args)]
pub struct Args {
    /// Port to listen on.
    #[arg(long, default_value_t = 8288)]
    port: u16,
    /// Address to bind (loopback unless told otherwise).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Where the embedded store lives.
    #[arg(long, default_value = "./.weir")]
    data_dir: PathBuf,
    /// Directory of function files (*.json) to deploy at start.
    #[arg(long, default_value = "./functions")]
    functions: PathBuf,
    /// Steps executing at once (default: 32 per core, at most 128).
    #[arg(long)]
    workers: Option<usize>,
    /// Embedded storage engine.
    #[arg(long, value_enum, default_value_t = super::StoreKind::Redb)]
    store: super::StoreKind,
    /// The key http steps' requests are signed with (`X-Weir-Signature`).
    #[arg(long, env = "WEIR_SIGNING_KEY", default_value = DEV_SIGNING_KEY)]
    signing_key: String,
    /// The Docker engine's socket for docker steps (else `DOCKER_HOST`, else
    /// /var/run/docker.sock).
    #[arg(long)]
    docker_host: Option<String>,
}

/// The signing key of `weir dev`'s http steps unless told otherwise: a local server's
/// receivers check signatures with it.
pub const DEV_SIGNING_KEY: &str = "weir-dev-signing-key";

pub fn main(args: Args) -> Result<ExitCode> {
    super::block_on(serve(args))
}

async fn serve(args: Args) -> Result<ExitCode> {
    let started = Instant::now();
    let store = super::open_store(args.store, &args.data_dir)?;
    let runtime = super::runtimes::build(
        &store,
        super::runtimes::Setup {
            wasm: WasmConfig::default(),
            docker_host: args.docker_host.clone(),
            signing_keys: [(DEV_TENANT.to_string(), args.signing_key.clone())].into(),
            // A local server calls local services.
            allow_private: true,
        },
    )?;
    let mut config = EngineConfig::default();
    if let Some(w) = args.workers {
        config.workers = w.max(1);
        // One open tenant may use the whole pool.
        config.tenant_concurrency = config.workers;
    }
    let engine = Engine::new(store.clone(), runtime, config).await?;
    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .with_context(|| format!("`{}:{}` is not an address", args.host, args.port))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;

    println!(
        "weir dev: store in {} ({}); one open tenant `{DEV_TENANT}` (no keys needed)",
        args.data_dir.display(),
        args.store.name()
    );
    let watched = args
        .functions
        .is_dir()
        .then(|| super::watch::stamps(&args.functions));
    if args.functions.is_dir() {
        for file in super::load::function_files(&args.functions)? {
            let loaded = super::load::function_file(&file);
            let result = match loaded {
                Ok(l) => {
                    let steps = l.def.steps.len();
                    super::load::deploy_local(&engine, DEV_TENANT, l)
                        .await
                        .map(|r| (r, steps))
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(((id, version), steps)) => println!(
                    "  loaded {id} v{version} ({steps} steps) from {}",
                    file.display()
                ),
                Err(e) => println!("  skipped {}: {e:#}", file.display()),
            }
        }
    } else {
        println!(
            "  no functions directory at {} (deploy with `weir deploy FILE`)",
            args.functions.display()
        );
    }
    engine.start();
    if let Some(seen) = watched {
        tokio::spawn(super::watch::run(
            engine.clone(),
            DEV_TENANT.to_string(),
            args.functions.clone(),
            seen,
        ));
        println!(
            "  watching {} (a changed file is deployed as a new version)",
            args.functions.display()
        );
    }
    let local = listener.local_addr()?;
    println!(
        "weir dev ready in {} ms: UI http://{local}/  API http://{local}/v1  events POST http://{local}/e/<any-key>",
        started.elapsed().as_millis()
    );
    let stopper = engine.clone();
    let app = api::router(AppState {
        engine,
        config: ApiConfig::default(),
        auth: std::sync::Arc::new(weir::api::auth::Auth::open(DEV_TENANT)),
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(super::stop_signal())
        .await?;
    // Steps still executing get a grace period; those that outlast it run again on the
    // next start without counting an attempt.
    stopper.shutdown(super::STOP_GRACE).await;
    Ok(ExitCode::SUCCESS)
}
