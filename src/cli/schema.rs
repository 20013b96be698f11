//! `weir schema put|list|get|infer`: event schemas on a running server.

use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::client::Remote;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Register a version of an event's schema (a JSON Schema 2020-12 file for `data`).
    Put {
        /// Event name, e.g. `user/signed.up`.
        name: String,
        /// The schema file (`-` for stdin).
        file: String,
        /// The version, e.g. `2024-01-01.1` (versions are immutable).
        #[arg(long = "v", value_name = "V")]
        v: String,
        /// What ingest does with an event the schema refuses.
        #[arg(long, value_parser = ["reject", "warn"], default_value = "reject")]
        mode: String,
        /// Only report how many recent events would fail; register nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// List the schemas: each event name with its latest version.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Show every version of an event's schema.
    Get {
        /// Event name.
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Print a schema inferred from the stored events of that name (ready for `put`).
    Infer {
        /// Event name.
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
}

pub fn main(a: Args) -> Result<ExitCode> {
    match a.command {
        Command::Put {
            name,
            file,
            v,
            mode,
            dry_run,
            remote,
        } => {
            let text = if file == "-" {
                std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("cannot read {file}"))?
            };
            let schema: Value =
                serde_json::from_str(&text).with_context(|| format!("{file} is not JSON"))?;
            let body = serde_json::to_vec(&json!({
                "v": v, "mode": mode, "schema": schema, "dry_run": dry_run
            }))?;
            let report =
                remote.send("PUT", &schema_path(&name), "application/json", &body, None)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            let (checked, failing) = (&report["checked"], &report["would_fail"]);
            let what = if dry_run {
                "dry run: nothing registered"
            } else if report["created"] == true {
                "registered"
            } else {
                "already registered, unchanged"
            };
            eprintln!(
                "{name} v {v}: {what}; {failing} of the {checked} most recent events would fail"
            );
        }
        Command::List { remote } => {
            let page = remote.get("/v1/schemas")?;
            let rows = page["data"].as_array().cloned().unwrap_or_default();
            println!(
                "{:<32} {:<20} {:<7} {:>8}",
                "EVENT", "LATEST", "MODE", "VERSIONS"
            );
            for r in &rows {
                println!(
                    "{:<32} {:<20} {:<7} {:>8}",
                    r["name"].as_str().unwrap_or(""),
                    r["latest"].as_str().unwrap_or(""),
                    r["mode"].as_str().unwrap_or(""),
                    r["versions"]
                );
            }
            if rows.is_empty() {
                println!("(no schemas)");
            }
        }
        Command::Get { name, remote } => {
            let s = remote.get(&schema_path(&name))?;
            println!("{}", serde_json::to_string_pretty(&s)?);
        }
        Command::Infer { name, remote } => {
            let r = remote.get(&format!("{}/inferred", schema_path(&name)))?;
            eprintln!("inferred from {} stored `{name}` event(s)", r["sampled"]);
            println!("{}", serde_json::to_string_pretty(&r["schema"])?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `/v1/schemas/{name}` with each `/`-separated part of the name percent-encoded.
fn schema_path(name: &str) -> String {
    let parts: Vec<String> = name.split('/').map(urlencode).collect();
    format!("/v1/schemas/{}", parts.join("/"))
}

/// Percent-encodes everything but unreserved characters.
pub(crate) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
