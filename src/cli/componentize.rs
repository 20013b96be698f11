//! `weir componentize IN -o OUT`: wraps a WASI preview1 command module (binary or WAT)
//! into a component, the same way weir does on upload.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use weir::runtime::wasm::{componentize, kind_of};
use weir::runtime::ComponentKind;

#[derive(clap::Args)]
pub struct Args {
    /// A core module (.wasm) or its text form (.wat).
    input: PathBuf,
    /// Where to write the component.
    #[arg(short, long)]
    output: PathBuf,
}

pub fn main(a: Args) -> Result<ExitCode> {
    let raw =
        std::fs::read(&a.input).with_context(|| format!("cannot read {}", a.input.display()))?;
    let bytes = if raw.starts_with(b"\0asm") {
        raw
    } else {
        wat::parse_bytes(&raw)
            .with_context(|| format!("{} is neither wasm nor valid WAT", a.input.display()))?
            .into_owned()
    };
    let out = match kind_of(&bytes)? {
        ComponentKind::Component => bytes,
        ComponentKind::Module => componentize(&bytes)?,
        ComponentKind::DockerContext => anyhow::bail!("{} is not wasm", a.input.display()),
    };
    std::fs::write(&a.output, &out)
        .with_context(|| format!("cannot write {}", a.output.display()))?;
    eprintln!("wrote {} ({} bytes)", a.output.display(), out.len());
    Ok(ExitCode::SUCCESS)
}
