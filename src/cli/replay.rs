//! `weir replay`: replays stored events of a range (or a JSON-lines file of events) on
//! a running server, as runs or as a dry run, with a progress bar and a summary.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::client::Remote;

#[derive(clap::Args)]
pub struct Args {
    /// The function to replay.
    #[arg(long)]
    function: String,
    /// Events received at or after this time (RFC 3339).
    #[arg(long)]
    from: Option<String>,
    /// Events received before this time (RFC 3339).
    #[arg(long)]
    to: Option<String>,
    /// Only events whose original run ended so (repeatable or comma-separated:
    /// completed, failed, cancelled, …; `skipped`: events that started no run).
    #[arg(long, value_delimiter = ',')]
    status: Vec<String>,
    /// The version to run (default: as the current rollout decides).
    #[arg(long)]
    version: Option<u64>,
    /// Execute and compare with the original runs instead of starting runs.
    #[arg(long)]
    dry_run: bool,
    /// Events per second.
    #[arg(long)]
    rate: Option<u32>,
    /// Replay the events of this JSON-lines file (one event per line, as `POST /e`
    /// takes them; `weir events export` writes them) instead of stored ones.
    #[arg(long, conflicts_with_all = ["from", "to", "status"])]
    file: Option<PathBuf>,
    /// Print the replay's id and return at once, without following it.
    #[arg(long)]
    detach: bool,
    /// Print the final replay as JSON instead of the summary.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: Remote,
}

/// The events of a JSON-lines file, each checked as `POST /e` checks it; an error
/// names the line. Blank lines are skipped.
pub fn read_lines(path: &PathBuf) -> Result<Vec<Value>> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let n = i + 1;
        let line = line.with_context(|| format!("{}:{n}: cannot read", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line)
            .with_context(|| format!("{}:{n}: not a JSON event", path.display()))?;
        if let Err(e) = weir::event::parse_item(0, v.clone()) {
            let why = e.to_string();
            let why = why.strip_prefix("event[0].").unwrap_or(&why);
            bail!("{}:{n}: {why}", path.display());
        }
        out.push(v);
    }
    if out.is_empty() {
        bail!("{}: no events in the file", path.display());
    }
    Ok(out)
}

pub fn main(a: Args) -> Result<ExitCode> {
    let mut body =
        json!({"function": a.function, "mode": if a.dry_run { "dry_run" } else { "run" }});
    if let Some(v) = a.version {
        body["version"] = json!(v);
    }
    if let Some(r) = a.rate {
        body["rate"] = json!(r);
    }
    match &a.file {
        Some(path) => body["events"] = Value::Array(read_lines(path)?),
        None => {
            if let Some(f) = &a.from {
                body["from"] = json!(f);
            }
            if let Some(t) = &a.to {
                body["to"] = json!(t);
            }
            if !a.status.is_empty() {
                body["status"] = json!(a.status);
            }
        }
    }
    let started = a.remote.send(
        "POST",
        "/v1/replays",
        "application/json",
        &serde_json::to_vec(&body)?,
        None,
    )?;
    let id = started["id"].as_str().unwrap_or_default().to_string();
    let total = started["total"].as_u64().unwrap_or(0);
    if a.detach {
        println!("{id}");
        return Ok(ExitCode::SUCCESS);
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} replay {msg} [{bar:40}] {pos}/{len} events, {per_sec}, eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(id.clone());
    let r = loop {
        let r = a.remote.get(&format!("/v1/replays/{id}"))?;
        bar.set_position(r["done"].as_u64().unwrap_or(0));
        if r["status"] != "running" {
            break r;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    bar.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", summary(&r));
    }
    Ok(ExitCode::SUCCESS)
}

/// The summary table of a finished replay.
pub fn summary(r: &Value) -> String {
    let n = |k: &str| r[k].as_u64().unwrap_or(0);
    let mut out = format!(
        "replay {} of {} ({}): {}, {}/{} events\n",
        r["id"].as_str().unwrap_or(""),
        r["function_id"].as_str().unwrap_or(""),
        r["mode"].as_str().unwrap_or(""),
        r["status"].as_str().unwrap_or(""),
        n("done"),
        n("total"),
    );
    if r["mode"] == "run" {
        out.push_str(&format!("  runs started  {:>8}\n", n("runs_started")));
        out.push_str(&format!(
            "  see them:     weir runs --replay {}\n",
            r["id"].as_str().unwrap_or("")
        ));
        return out;
    }
    let c = &r["result"];
    for k in [
        "identical",
        "changed",
        "new_failures",
        "fixed",
        "without_original",
        "unfinished",
    ] {
        out.push_str(&format!("  {k:<16} {:>8}\n", c[k].as_u64().unwrap_or(0)));
    }
    let diffs = r["differences"].as_array().cloned().unwrap_or_default();
    if !diffs.is_empty() {
        out.push_str(&format!(
            "\n{:<28} {:<16} {:<10} BEFORE → AFTER\n",
            "EVENT", "STEP", "STATUS"
        ));
        for d in &diffs {
            let cut = |v: &Value| {
                let s = v["output"].to_string();
                if s.chars().count() > 60 {
                    format!("{}…", s.chars().take(60).collect::<String>())
                } else {
                    s
                }
            };
            out.push_str(&format!(
                "{:<28} {:<16} {:<10} {} → {}\n",
                d["event_id"].as_str().unwrap_or(""),
                d["step"].as_str().unwrap_or(""),
                format!(
                    "{}→{}",
                    d["before"]["status"].as_str().unwrap_or("-"),
                    d["after"]["status"].as_str().unwrap_or("-")
                ),
                cut(&d["before"]),
                cut(&d["after"]),
            ));
        }
    }
    out
}
