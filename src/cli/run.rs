//! `weir run FILE --event EVENT.json`: runs a function once against one event, locally,
//! with a throwaway store; prints each step's outcome. Exit 0 only if the run completed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use weir::engine::{Engine, EngineConfig};
use weir::event::parse_batch;
use weir::run::RunStatus;
use weir::runtime::wasm::WasmConfig;
use weir::DEV_TENANT;

#[derive(clap::Args)]
pub struct Args {
    /// The function file (JSON).
    file: PathBuf,
    /// The event (a JSON file holding one event).
    #[arg(long)]
    event: PathBuf,
    /// Print the whole run as JSON instead of a summary.
    #[arg(long)]
    json: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

pub fn main(a: Args) -> Result<ExitCode> {
    super::block_on(run(a))
}

async fn run(a: Args) -> Result<ExitCode> {
    let store: Arc<dyn weir::Store> =
        Arc::new(weir::EmbeddedStore::temporary(weir::EmbeddedEngine::Redb)?);
    let runtime = super::runtimes::build(
        &store,
        super::runtimes::Setup {
            wasm: WasmConfig {
                pool_instances: 16,
                ..WasmConfig::default()
            },
            docker_host: None,
            signing_keys: [(
                DEV_TENANT.to_string(),
                super::dev::DEV_SIGNING_KEY.to_string(),
            )]
            .into(),
            allow_private: true,
        },
    )?;
    let engine = Engine::new(store, runtime, EngineConfig::default()).await?;
    let loaded = super::load::function_file(&a.file)?;
    let (fid, _) = super::load::deploy_local(&engine, DEV_TENANT, loaded).await?;
    let raw =
        std::fs::read(&a.event).with_context(|| format!("cannot read {}", a.event.display()))?;
    let events = parse_batch(&raw, 1).with_context(|| format!("in {}", a.event.display()))?;
    let ids = engine.send(DEV_TENANT, events).await?;
    engine.start();
    let deadline = Instant::now() + Duration::from_secs(a.timeout);
    let run = loop {
        let ev = engine.event(DEV_TENANT, &ids[0]).await?;
        if ev.ingested {
            let Some(rid) = ev.run_ids.first() else {
                bail!("the event does not trigger `{fid}` (check the trigger's event name and expression)");
            };
            let run = engine.run(DEV_TENANT, rid).await?;
            if run.status.is_terminal() {
                break run;
            }
        }
        if Instant::now() > deadline {
            bail!("the run did not finish within {} s", a.timeout);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&run.to_api())?);
    } else {
        for s in &run.steps {
            println!("step {} — {:?}, {} attempt(s)", s.id, s.status, s.attempts);
            if let Some(o) = &s.output {
                println!("  output: {o}");
            }
            if let Some(e) = &s.error {
                println!("  error: {e}");
            }
            if let Some(l) = &s.log {
                for line in l.lines().take(20) {
                    println!("  log: {line}");
                }
            }
        }
        println!("run {} {}", run.id, run.status.as_str());
    }
    Ok(if run.status == RunStatus::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
