//! `weir deploy FILE`: uploads the file's components, then deploys the definition.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::client::Remote;

#[derive(clap::Args)]
pub struct Args {
    /// The function file (JSON).
    file: PathBuf,
    #[command(flatten)]
    remote: Remote,
}

pub fn main(a: Args) -> Result<ExitCode> {
    let loaded = super::load::function_file(&a.file)?;
    for (sha, bytes) in &loaded.components {
        let r = a.remote.send(
            "PUT",
            &format!("/v1/components/{sha}"),
            "application/wasm",
            bytes,
            None,
        )?;
        eprintln!(
            "uploaded sha256:{sha} ({} bytes, {})",
            bytes.len(),
            r["kind"].as_str().unwrap_or("?")
        );
    }
    let body = serde_json::to_vec(&loaded.def)?;
    let r = a
        .remote
        .send("POST", "/v1/functions", "application/json", &body, None)?;
    println!(
        "deployed {} v{}",
        r["id"].as_str().unwrap_or("?"),
        r["version"]
    );
    Ok(ExitCode::SUCCESS)
}
