//! `weir events`: lists stored events on a running server, optionally only those a
//! `warn`-mode schema found errors in.

use std::process::ExitCode;

use anyhow::Result;

use super::client::Remote;
use super::schema::urlencode;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    /// Only events of this name.
    #[arg(long)]
    name: Option<String>,
    /// Only events stored with schema errors.
    #[arg(long)]
    invalid: bool,
    /// How many.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Start after this cursor (from a previous page).
    #[arg(long)]
    cursor: Option<String>,
    /// Print the raw JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: Remote,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Write stored events as JSON lines (oldest first), as `POST /e` takes them, for
    /// `weir replay --file`.
    Export(ExportArgs),
}

#[derive(clap::Args)]
struct ExportArgs {
    /// Only events of this name.
    #[arg(long)]
    name: Option<String>,
    /// Events received at or after this time (RFC 3339).
    #[arg(long)]
    from: Option<String>,
    /// Events received before this time (RFC 3339).
    #[arg(long)]
    to: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

fn time(flag: &str, v: &Option<String>, default: i64) -> Result<i64> {
    v.as_deref().map_or(Ok(default), |s| {
        weir::event::parse_time(s).map_err(|e| anyhow::anyhow!("--{flag} {e}"))
    })
}

/// The stored events of the range, oldest first, one JSON line each: the fields
/// `POST /e` takes (the sender's idempotency key as `id`) and weir's id as `weir_id`.
fn export(a: ExportArgs) -> Result<ExitCode> {
    let from = time("from", &a.from, 0)?;
    let to = time("to", &a.to, i64::MAX)?;
    if from >= to {
        anyhow::bail!("--from must be before --to");
    }
    let received = |id: &str| weir::event::id_time(id).unwrap_or(0);
    let mut lines = Vec::new();
    let mut cursor: Option<String> = None;
    'pages: loop {
        let mut q = "/v1/events?limit=1000".to_string();
        if let Some(n) = &a.name {
            q.push_str(&format!("&name={}", urlencode(n)));
        }
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={}", urlencode(c)));
        }
        let page = a.remote.get(&q)?;
        for e in page["data"].as_array().into_iter().flatten() {
            let id = e["id"].as_str().unwrap_or_default();
            let t = received(id);
            if t < from {
                break 'pages;
            }
            if t >= to || e.get("duplicate_of").is_some() {
                continue;
            }
            let mut line = serde_json::json!({"weir_id": id, "name": e["name"], "data": e["data"], "ts": e["ts"]});
            if e["user"].as_object().is_some_and(|u| !u.is_empty()) {
                line["user"] = e["user"].clone();
            }
            for (from_key, to_key) in [("idempotency_key", "id"), ("v", "v")] {
                if let Some(v) = e.get(from_key) {
                    line[to_key] = v.clone();
                }
            }
            lines.push(line.to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for l in lines.iter().rev() {
        writeln!(out, "{l}")?;
    }
    out.flush()?;
    eprintln!("{} events", lines.len());
    Ok(ExitCode::SUCCESS)
}

pub fn main(a: Args) -> Result<ExitCode> {
    if let Some(Action::Export(e)) = a.action {
        return export(e);
    }
    let mut q = format!("/v1/events?limit={}", a.limit);
    if let Some(n) = &a.name {
        q.push_str(&format!("&name={}", urlencode(n)));
    }
    if a.invalid {
        q.push_str("&invalid=true");
    }
    if let Some(c) = &a.cursor {
        q.push_str(&format!("&cursor={}", urlencode(c)));
    }
    let page = a.remote.get(&q)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&page)?);
        return Ok(ExitCode::SUCCESS);
    }
    let events = page["data"].as_array().cloned().unwrap_or_default();
    println!(
        "{:<28} {:<28} {:>4}  SCHEMA ERRORS",
        "EVENT", "NAME", "RUNS"
    );
    for e in &events {
        let errors: Vec<&str> = e["schema_errors"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
            .unwrap_or_default();
        println!(
            "{:<28} {:<28} {:>4}  {}",
            e["id"].as_str().unwrap_or(""),
            e["name"].as_str().unwrap_or(""),
            e["run_ids"].as_array().map_or(0, Vec::len),
            errors.join("; ")
        );
    }
    if events.is_empty() {
        println!("(no events)");
    }
    if let Some(c) = page["next_cursor"].as_str() {
        println!("more: --cursor {c}");
    }
    Ok(ExitCode::SUCCESS)
}
