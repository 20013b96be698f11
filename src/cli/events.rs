//! `weir events`: lists stored events on a running server, optionally only those a
//! `warn`-mode schema found errors in.

use std::process::ExitCode;

use anyhow::Result;

use super::client::Remote;
use super::schema::urlencode;

#[derive(clap::Args)]
pub struct Args {
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

pub fn main(a: Args) -> Result<ExitCode> {
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
