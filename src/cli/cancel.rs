//! `weir cancel RUN`: cancels one run on a running server.

use std::process::ExitCode;

use anyhow::Result;

use super::client::Remote;

#[derive(clap::Args)]
pub struct Args {
    /// The run id.
    run: String,
    #[command(flatten)]
    remote: Remote,
}

pub fn main(a: Args) -> Result<ExitCode> {
    let r = a.remote.send(
        "POST",
        &format!("/v1/runs/{}/cancel", a.run),
        "application/json",
        b"{}",
        None,
    )?;
    println!("run {} {}", a.run, r["status"].as_str().unwrap_or("?"));
    Ok(ExitCode::SUCCESS)
}
