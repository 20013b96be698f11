//! `weir users [ID]`: users by last activity, or one user (summary, what they wait on,
//! failed runs and the latest of their timeline), on a running server.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::Value;

use super::client::Remote;
use super::runs::urlencode;

#[derive(clap::Args)]
pub struct Args {
    /// One user's id: their summary, waiting and failed runs, and latest timeline.
    id: Option<String>,
    /// Only users whose id starts with this.
    #[arg(long)]
    prefix: Option<String>,
    /// How many users (or, with ID, timeline entries).
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Go on from a listing's `next_cursor`.
    #[arg(long)]
    cursor: Option<String>,
    /// Print the raw JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: Remote,
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// `completed 3, failed 1` from a `{status: n}` object, zeros left out.
fn counts(runs: &Value) -> String {
    let parts: Vec<String> = runs
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, n)| n.as_u64().unwrap_or(0) > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

fn more(page: &Value) {
    if let Some(c) = page["next_cursor"].as_str() {
        println!("more: --cursor {c}");
    }
}

pub fn main(a: Args) -> Result<ExitCode> {
    match &a.id {
        None => list(&a),
        Some(id) => one(&a, id),
    }
}

fn list(a: &Args) -> Result<ExitCode> {
    let mut q = format!("/v1/users?limit={}", a.limit);
    for (k, v) in [("prefix", &a.prefix), ("cursor", &a.cursor)] {
        if let Some(v) = v {
            q.push_str(&format!("&{k}={}", urlencode(v)));
        }
    }
    let page = a.remote.get(&q)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&page)?);
        return Ok(ExitCode::SUCCESS);
    }
    let users = page["data"].as_array().cloned().unwrap_or_default();
    println!("{:<32} {:<24} {:>7}  RUNS", "USER", "LAST SEEN", "EVENTS");
    for u in &users {
        println!(
            "{:<32} {:<24} {:>7}  {}",
            s(&u["id"]),
            time(&u["last_seen"]),
            u["events"].as_u64().unwrap_or(0),
            counts(&u["runs"])
        );
    }
    if users.is_empty() {
        println!("(no users)");
    }
    more(&page);
    Ok(ExitCode::SUCCESS)
}

fn one(a: &Args, id: &str) -> Result<ExitCode> {
    let uid = urlencode(id);
    let user = a.remote.get(&format!("/v1/users/{uid}"))?;
    let mut q = format!("/v1/users/{uid}/timeline?limit={}", a.limit);
    if let Some(c) = &a.cursor {
        q.push_str(&format!("&cursor={}", urlencode(c)));
    }
    let timeline = a.remote.get(&q)?;
    if a.json {
        let both = serde_json::json!({"user": user, "timeline": timeline});
        println!("{}", serde_json::to_string_pretty(&both)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("user       {}", s(&user["id"]));
    println!("last seen  {}", time(&user["last_seen"]));
    println!("events     {}", user["events"]);
    println!("runs       {}", counts(&user["runs"]));
    if !user["user"].is_null() {
        println!("profile    {}", user["user"]);
    }
    if !user["erased_at"].is_null() {
        println!("erased at  {}", time(&user["erased_at"]));
    }
    let waiting = user["waiting"].as_array().cloned().unwrap_or_default();
    println!("\nwaiting ({})", waiting.len());
    for r in &waiting {
        let on: Vec<String> = r["steps"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(step, st)| match (st.get("wake_at"), st.get("awaiting")) {
                (Some(w), _) => format!("{step} wakes {}", time(w)),
                (_, Some(aw)) => format!("{step} awaits {}", s(&aw[0]["event"])),
                _ => step.clone(),
            })
            .collect();
        println!(
            "  {:<28} {:<24} {:<9} {}",
            s(&r["id"]),
            s(&r["function_id"]),
            s(&r["status"]),
            on.join("; ")
        );
    }
    let failed = user["failed"].as_array().cloned().unwrap_or_default();
    println!("\nfailed ({})", failed.len());
    for r in &failed {
        println!(
            "  {:<28} {:<24} {}: {}",
            s(&r["id"]),
            s(&r["function_id"]),
            s(&r["step"]),
            s(&r["error"])
        );
    }
    println!("\ntimeline");
    for e in timeline["data"].as_array().into_iter().flatten() {
        if e["kind"] == "event" {
            println!(
                "  {:<28} event {:<28} {}",
                s(&e["id"]),
                s(&e["name"]),
                time(&e["ts"])
            );
        } else {
            println!(
                "  {:<28} run   {:<28} {}",
                s(&e["id"]),
                s(&e["function_id"]),
                s(&e["status"])
            );
        }
    }
    more(&timeline);
    Ok(ExitCode::SUCCESS)
}

/// A ms timestamp as RFC 3339 (UTC), or `-`.
fn time(v: &Value) -> String {
    v.as_i64()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| "-".into())
}
