//! Reads a function file from disk: its definition, and the `file://` components it
//! names (paths relative to the file), rewritten to `sha256:` names.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use weir::function::FunctionDef;

/// A function file with its components loaded.
pub struct Loaded {
    /// The definition, step paths rewritten to `sha256:<hex>`.
    pub def: FunctionDef,
    /// Component bytes by sha256.
    pub components: Vec<(String, Vec<u8>)>,
}

/// Loads `path`.
pub fn function_file(path: &Path) -> Result<Loaded> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut def =
        FunctionDef::from_json(&bytes).with_context(|| format!("in {}", path.display()))?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut components: Vec<(String, Vec<u8>)> = Vec::new();
    for (sid, step) in def.steps.iter_mut() {
        let Some(p) = step.path.clone() else { continue };
        if p.starts_with("sha256:") {
            continue;
        }
        let rel = p.strip_prefix("file://").unwrap_or(&p);
        let file: PathBuf = if Path::new(rel).is_absolute() {
            rel.into()
        } else {
            base.join(rel)
        };
        if file.is_dir() {
            // The seed's docker steps: a folder with a Dockerfile, packed as the build
            // context that weir builds at deploy.
            let is_docker = step.runtime.as_ref().is_some_and(|r| r.kind == "docker");
            if !is_docker {
                bail!(
                    "{}: steps.{sid}.path: {} is a folder; only docker steps take a folder (with a Dockerfile)",
                    path.display(),
                    file.display()
                );
            }
            let tar = build_context(&file).with_context(|| {
                format!("{}: steps.{sid}.path: {}", path.display(), file.display())
            })?;
            let sha = hex::encode(Sha256::digest(&tar));
            step.path = Some(format!("sha256:{sha}"));
            if !components.iter().any(|(s, _)| s == &sha) {
                components.push((sha, tar));
            }
            continue;
        }
        let wasm = match std::fs::read(&file) {
            Ok(b) => b,
            Err(e) => bail!(
                "{}: steps.{sid}.path: cannot read {}: {e}",
                path.display(),
                file.display()
            ),
        };
        let wasm = if file.extension().is_some_and(|e| e == "wat") {
            wat::parse_bytes(&wasm)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "{}: steps.{sid}.path: {} is not valid WAT: {e}",
                        path.display(),
                        file.display()
                    )
                })?
                .into_owned()
        } else {
            wasm
        };
        let sha = hex::encode(Sha256::digest(&wasm));
        step.path = Some(format!("sha256:{sha}"));
        if !components.iter().any(|(s, _)| s == &sha) {
            components.push((sha, wasm));
        }
    }
    Ok(Loaded { def, components })
}

/// A docker build context: the folder's files in a tar that depends only on their
/// paths, contents and executable bits (sorted, no times or owners), so that its hash
/// changes exactly when the folder does.
pub fn build_context(dir: &Path) -> Result<Vec<u8>> {
    if !dir.join("Dockerfile").is_file() {
        bail!("has no Dockerfile");
    }
    let files = folder_files(dir)?;
    let mut b = tar::Builder::new(Vec::new());
    for f in files {
        let rel = f.strip_prefix(dir).unwrap_or(&f);
        let bytes = std::fs::read(&f).with_context(|| format!("cannot read {}", f.display()))?;
        let exec = {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(&f)?.permissions().mode() & 0o111 != 0
        };
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(if exec { 0o755 } else { 0o644 });
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, rel, bytes.as_slice())?;
    }
    Ok(b.into_inner()?)
}

/// Every file under `dir`, at any depth, sorted.
pub fn folder_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.is_file() {
                files.push(p);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Every `*.json` file directly in `dir`, sorted.
pub fn function_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the functions directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    Ok(files)
}

/// Deploys a loaded file into a local engine.
pub async fn deploy_local(
    engine: &weir::engine::Engine,
    tenant: &str,
    loaded: Loaded,
) -> Result<(String, u64)> {
    for (sha, bytes) in &loaded.components {
        if let Err(e) = engine.put_component(tenant, sha, bytes.clone()).await {
            let steps: Vec<String> = loaded
                .def
                .steps
                .iter()
                .filter(|(_, s)| s.path.as_deref() == Some(&format!("sha256:{sha}")))
                .map(|(id, _)| format!("steps.{id}"))
                .collect();
            bail!("function `{}`: {}: {e}", loaded.def.id, steps.join(", "));
        }
    }
    Ok(engine.deploy(tenant, loaded.def).await?)
}
