//! `weir serve --config weir.toml`: the production server. Tenants and their keys come
//! from the config; every `/v1` call needs an API key and sees only its tenant.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};

use weir::api::auth::Auth;
use weir::api::{self, ApiConfig, AppState};
use weir::config::Config;
use weir::engine::{Engine, EngineConfig};
use weir::runtime::wasm::WasmConfig;

#[derive(clap::Args)]
pub struct Args {
    /// The configuration file (TOML).
    #[arg(long, default_value = "weir.toml")]
    config: PathBuf,
    /// Overrides `listen` from the config.
    #[arg(long)]
    listen: Option<String>,
    /// Overrides `data_dir` from the config.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Overrides `store` from the config: `redb`, `sled`, or `redis://host:port/db`
    /// (`redis://h1:p1,h2:p2` for a Redis Cluster), which many processes can share.
    #[arg(long)]
    store: Option<String>,
    /// Serve on a Redis that does not persist every write before acknowledging it
    /// (`appendonly yes`, `appendfsync always`): a crash of Redis can then lose
    /// accepted events and recorded step results.
    #[arg(long)]
    unsafe_redis_durability: bool,
    /// How long a claimed step's lease lasts unless renewed (`15s` by default): a
    /// process that stops renewing (killed, stalled) loses its steps to the others
    /// after this long.
    #[arg(long, value_parser = weir::function::units::parse_duration)]
    lease: Option<std::time::Duration>,
}

pub fn main(args: Args) -> Result<ExitCode> {
    super::block_on(serve(args))
}

async fn serve(args: Args) -> Result<ExitCode> {
    let started = Instant::now();
    let cfg = Config::load(&args.config)?;
    let data_dir = args.data_dir.unwrap_or_else(|| cfg.data_dir.clone());
    let store_name = args.store.clone().unwrap_or_else(|| cfg.store.clone());
    let (store, where_) = if store_name.starts_with("redis://") {
        let mut opts = weir::store::redis::RedisOptions::new(&store_name);
        opts.unsafe_durability = args.unsafe_redis_durability;
        // Compiled artefacts stay on this machine.
        opts.artifact_dir = Some(data_dir.join("artifacts"));
        let s = weir::store::redis::RedisStore::open(opts)
            .await
            .with_context(|| format!("cannot open the store {store_name}"))?;
        let s: Arc<dyn weir::store::Store> = Arc::new(s);
        (s, format!("on {store_name} (redis)"))
    } else {
        let kind = match store_name.as_str() {
            "sled" => super::StoreKind::Sled,
            "redb" => super::StoreKind::Redb,
            other => anyhow::bail!("--store `{other}` is not one of redb, sled, redis://…"),
        };
        let s = super::open_store(kind, &data_dir)?;
        (s, format!("in {} ({})", data_dir.display(), kind.name()))
    };
    let wasm = WasmConfig {
        max_memory: cfg.ceilings.memory,
        guard_pages: cfg.guard_pages,
        ..WasmConfig::default()
    };
    let runtime = super::runtimes::build(
        &store,
        super::runtimes::Setup {
            wasm,
            docker_host: cfg.docker_host.clone(),
            signing_keys: cfg
                .tenants
                .iter()
                .filter_map(|t| t.signing_key.clone().map(|k| (t.id.clone(), k)))
                .collect(),
            allow_private: cfg.http_allow_private,
        },
    )?;
    let mut ec = EngineConfig {
        default_limits: cfg.limits,
        ceilings: cfg.ceilings,
        max_pending: cfg.ingress.max_pending,
        compile: cfg.compile_options(),
        ..EngineConfig::default()
    };
    if let Some(l) = args.lease {
        ec.lease = l.max(std::time::Duration::from_millis(100));
    }
    if let Some(w) = cfg.workers {
        ec.workers = w.max(1);
    }
    // Fairness: with several tenants, one may fill at most half the worker pool by
    // default; a lone tenant may use all of it.
    ec.tenant_concurrency = if cfg.tenants.len() > 1 {
        (ec.workers / 2).max(1)
    } else {
        ec.workers
    };
    ec.tenant_caps = cfg
        .tenants
        .iter()
        .filter_map(|t| t.max_concurrent_steps.map(|n| (t.id.clone(), n)))
        .collect();
    let engine = Engine::new(store.clone(), runtime, ec).await?;
    let listen = args.listen.unwrap_or_else(|| cfg.listen.clone());
    let addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("`{listen}` is not an address"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    engine.start();
    let local = listener.local_addr()?;
    println!(
        "weir serve: store {where_}; {} tenant(s): {}",
        cfg.tenants.len(),
        cfg.tenants
            .iter()
            .map(|t| t.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("weir serve ready in {} ms: UI http://{local}/  API http://{local}/v1  events POST http://{local}/e/<event-key>", started.elapsed().as_millis());
    let api_config = ApiConfig {
        max_event_body: cfg.ingress.max_body,
        max_events: cfg.ingress.max_events,
        max_depth: cfg.ingress.max_depth,
        ..ApiConfig::default()
    };
    let stopper = engine.clone();
    let app = api::router(AppState {
        engine,
        config: api_config,
        auth: Arc::new(Auth::from_tenants(&cfg.tenants)),
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(super::stop_signal())
        .await?;
    // Steps still executing get a grace period; those that outlast it run again on the
    // next start without counting an attempt.
    stopper.shutdown(super::STOP_GRACE).await;
    Ok(ExitCode::SUCCESS)
}
