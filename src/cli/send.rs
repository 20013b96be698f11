//! `weir send NAME --data '{…}'`: sends one event to a running server.

use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::client::Remote;

#[derive(clap::Args)]
pub struct Args {
    /// Event name, e.g. `user/signed.up`.
    name: String,
    /// Event data (a JSON object).
    #[arg(long, default_value = "{}")]
    data: String,
    /// The user the event is about (a JSON object, e.g. '{"id":"u_1"}').
    #[arg(long)]
    user: Option<String>,
    /// Idempotency key.
    #[arg(long)]
    id: Option<String>,
    /// Event key.
    #[arg(long, env = "WEIR_EVENT_KEY", default_value = "dev")]
    key: String,
    #[command(flatten)]
    remote: Remote,
}

pub fn main(a: Args) -> Result<ExitCode> {
    let data: Value = serde_json::from_str(&a.data).context("--data is not JSON")?;
    let mut ev = json!({"name": a.name, "data": data});
    if let Some(u) = &a.user {
        ev["user"] = serde_json::from_str(u).context("--user is not JSON")?;
    }
    if let Some(id) = &a.id {
        ev["id"] = json!(id);
    }
    let body = serde_json::to_vec(&ev)?;
    let reply = a.remote.send(
        "POST",
        &format!("/e/{}", a.key),
        "application/json",
        &body,
        None,
    )?;
    println!("{}", serde_json::to_string_pretty(&reply)?);
    Ok(ExitCode::SUCCESS)
}
