//! The `weir` command line: one file per subcommand.

mod cancel;
mod client;
mod componentize;
mod deploy;
mod dev;
mod events;
mod load;
mod new;
mod replay;
mod rollout;
mod run;
mod runs;
mod runtimes;
mod schema;
mod send;
mod serve;
mod users;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// weir: durable functions whose steps are sandboxed WebAssembly components.
#[derive(Parser)]
#[command(name = "weir", version, about)]
struct Cli {
    /// How logs (on stderr) are written: `text` for people, `json` (one object per
    /// line, with the span fields: tenant, run, step) for log collectors.
    #[arg(long, global = true, value_enum, env = "WEIR_LOG_FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run a local server: embedded store, loads ./functions, open default tenant.
    Dev(dev::Args),
    /// Run the production server: config file, tenants and keys enforced.
    Serve(serve::Args),
    /// Send an event to a running server.
    Send(send::Args),
    /// Upload a function file's components and deploy it to a running server.
    Deploy(deploy::Args),
    /// Run one function against one event locally, without a server.
    Run(run::Args),
    /// List runs on a running server.
    Runs(runs::Args),
    /// Cancel a run on a running server.
    Cancel(cancel::Args),
    /// Show or change a function's rollout: `weir rollout FN 3=90 4=10`, `--promote 4`,
    /// `--rollback`, `--status`.
    Rollout(rollout::Args),
    /// Turn a WASI preview1 module (.wasm or .wat) into a component.
    Componentize(componentize::Args),
    /// Scaffold a step: `weir new --lang c|rust|js|python|wat NAME`.
    New(new::Args),
    /// Register, list, show and infer event schemas on a running server.
    Schema(schema::Args),
    /// List stored events on a running server (`--invalid`: those with schema errors);
    /// `weir events export` writes them as JSON lines.
    Events(events::Args),
    /// Replay stored events (or a JSON-lines file) against a function version, as runs
    /// or as a dry run compared with the original runs.
    Replay(replay::Args),
    /// Users by last activity, or one user: summary, waiting and failed runs, timeline.
    Users(users::Args),
}

/// The embedded storage engines `weir dev` can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// redb 4 (the default: maintained, crash-consistent by design, smaller on disk).
    Redb,
    /// sled 0.34 (faster here today, but unmaintained since 2021).
    Sled,
}

impl StoreKind {
    /// The name shown to users.
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Sled => "sled",
            StoreKind::Redb => "redb",
        }
    }
}

/// Opens the embedded store of `kind` in `dir`.
pub fn open_store(
    kind: StoreKind,
    dir: &std::path::Path,
) -> anyhow::Result<std::sync::Arc<dyn weir::store::Store>> {
    use anyhow::Context;
    let ctx = || format!("cannot open the {} store in {}", kind.name(), dir.display());
    let engine = match kind {
        StoreKind::Sled => weir::EmbeddedEngine::Sled,
        StoreKind::Redb => weir::EmbeddedEngine::Redb,
    };
    Ok(std::sync::Arc::new(
        weir::EmbeddedStore::open(engine, dir).with_context(ctx)?,
    ))
}

/// Parses arguments and runs the subcommand; errors go to stderr with exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("weir=info,warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
    quiet_parser_panics();
    let result = match cli.command {
        Command::Dev(a) => dev::main(a),
        Command::Serve(a) => serve::main(a),
        Command::Send(a) => send::main(a),
        Command::Deploy(a) => deploy::main(a),
        Command::Run(a) => run::main(a),
        Command::Runs(a) => runs::main(a),
        Command::Cancel(a) => cancel::main(a),
        Command::Rollout(a) => rollout::main(a),
        Command::Componentize(a) => componentize::main(a),
        Command::New(a) => new::main(a),
        Command::Schema(a) => schema::main(a),
        Command::Events(a) => events::main(a),
        Command::Replay(a) => replay::main(a),
        Command::Users(a) => users::main(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The CEL parser (antlr4rust) panics on some malformed input; weir catches those panics
/// and reports a parse error, so the default hook's backtrace noise is dropped for them.
fn quiet_parser_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info
            .location()
            .is_some_and(|l| l.file().contains("antlr4rust"))
        {
            tracing::debug!("CEL parser panicked (reported as a parse error): {info}");
            return;
        }
        default(info);
    }));
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM (what service managers and containers send).
pub(crate) async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// How long a stop waits for executing steps before leaving them to the next start.
pub(crate) const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs an async command on a multi-threaded tokio runtime.
pub(crate) fn block_on(
    f: impl std::future::Future<Output = anyhow::Result<std::process::ExitCode>>,
) -> anyhow::Result<std::process::ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(f)
}
