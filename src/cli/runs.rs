//! `weir runs`: lists runs on a running server.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::Value;

use super::client::Remote;

#[derive(clap::Args)]
pub struct Args {
    /// Only runs of this function.
    #[arg(long)]
    function: Option<String>,
    /// Only runs in this status.
    #[arg(long)]
    status: Option<String>,
    /// Only runs of this user id.
    #[arg(long)]
    user: Option<String>,
    /// Only runs started by this replay.
    #[arg(long)]
    replay: Option<String>,
    /// How many.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Print the raw JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: Remote,
}

pub fn main(a: Args) -> Result<ExitCode> {
    let mut q = format!("/v1/runs?limit={}", a.limit);
    for (k, v) in [
        ("function", &a.function),
        ("status", &a.status),
        ("user", &a.user),
        ("replay", &a.replay),
    ] {
        if let Some(v) = v {
            q.push_str(&format!("&{k}={}", urlencode(v)));
        }
    }
    let page = a.remote.get(&q)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&page)?);
        return Ok(ExitCode::SUCCESS);
    }
    let runs = page["data"].as_array().cloned().unwrap_or_default();
    println!(
        "{:<28} {:<24} {:>3} {:<10} {:>9}",
        "RUN", "FUNCTION", "V", "STATUS", "STEPS"
    );
    for r in &runs {
        let steps = r["steps"].as_object().cloned().unwrap_or_default();
        let done = steps
            .values()
            .filter(|s| s["status"] == "completed")
            .count();
        println!(
            "{:<28} {:<24} {:>3} {:<10} {:>9}",
            r["id"].as_str().unwrap_or(""),
            r["function_id"].as_str().unwrap_or(""),
            r["function_version"],
            r["status"].as_str().unwrap_or(""),
            format!("{done}/{}", steps.len())
        );
    }
    if runs.is_empty() {
        println!("(no runs)");
    }
    if let Some(c) = page["next_cursor"]
        .as_str()
        .filter(|_| page["next_cursor"] != Value::Null)
    {
        println!("more: --cursor {c}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Percent-encodes a query value.
pub(super) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
