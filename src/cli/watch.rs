//! `weir dev` reloads the functions directory: a changed function file (or a component
//! it names) is deployed again, which makes a new version when the definition or a
//! component changed. The new version takes every new run unless the function has a
//! rollout, which then stands (and this says so).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use weir::engine::{Engine, EngineError};

/// How often the directory is looked at when no watcher could be set up.
const EVERY: Duration = Duration::from_millis(500);
/// How often it is looked at anyway with a watcher (an event may be missed).
const SAFETY: Duration = Duration::from_secs(5);
/// How long after a change the stamps are read (a save is several events).
const SETTLE: Duration = Duration::from_millis(50);

/// What a file's reload depends on: its own and its components' sizes and times.
type Stamp = Vec<(PathBuf, Option<(u64, SystemTime)>)>;

fn stamp_of(path: &Path) -> Option<(u64, SystemTime)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

/// The stamp of a function file: itself, then each `file://` component it names (each
/// file of a folder it names).
fn stamp(file: &Path) -> Stamp {
    let mut out = vec![(file.to_path_buf(), stamp_of(file))];
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let def: Option<Value> = std::fs::read(file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let steps = def
        .as_ref()
        .and_then(|d| d.get("steps"))
        .and_then(Value::as_object);
    for s in steps.into_iter().flat_map(|m| m.values()) {
        let Some(p) = s.get("path").and_then(Value::as_str) else {
            continue;
        };
        if p.starts_with("sha256:") {
            continue;
        }
        let rel = p.strip_prefix("file://").unwrap_or(p);
        let c = if Path::new(rel).is_absolute() {
            PathBuf::from(rel)
        } else {
            base.join(rel)
        };
        if c.is_dir() {
            // A docker step's build folder: each file in it (so an edit in place
            // counts, and the folders holding them are watched).
            for f in super::load::folder_files(&c).unwrap_or_default() {
                let st = stamp_of(&f);
                out.push((f, st));
            }
            continue;
        }
        let st = stamp_of(&c);
        out.push((c, st));
    }
    out
}

/// The stamps of every function file in `dir`.
pub fn stamps(dir: &Path) -> BTreeMap<PathBuf, Stamp> {
    super::load::function_files(dir)
        .unwrap_or_default()
        .into_iter()
        .map(|f| {
            let s = stamp(&f);
            (f, s)
        })
        .collect()
}

/// Watches `dir` forever, deploying what changed since `seen`: woken by the file
/// system (notify: inotify on Linux) on any change in `dir` or in a directory holding a
/// component a function names, then after [`SETTLE`] (an editor's save is several
/// events) the stamps say which files to reload. Without a watcher (inotify limits, an
/// unsupported file system) it looks every [`EVERY`]; with one, every [`SAFETY`] too,
/// in case an event was missed.
pub async fn run(
    engine: Arc<Engine>,
    tenant: String,
    dir: PathBuf,
    mut seen: BTreeMap<PathBuf, Stamp>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok() {
            let _ = tx.send(());
        }
    })
    .map_err(|e| {
        println!(
            "  not watching {} ({e}); looking every 500 ms",
            dir.display()
        )
    })
    .ok();
    let mut watched: Vec<PathBuf> = Vec::new();
    loop {
        if let Some(w) = watcher.as_mut() {
            watch_dirs(w, &dir, &seen, &mut watched);
        }
        let every = if watcher.is_some() { SAFETY } else { EVERY };
        if tokio::time::timeout(every, rx.recv()).await.is_ok() {
            tokio::time::sleep(SETTLE).await;
            while rx.try_recv().is_ok() {}
        }
        let d = dir.clone();
        let Ok(now) = tokio::task::spawn_blocking(move || stamps(&d)).await else {
            continue;
        };
        for (file, st) in &now {
            if seen.get(file) == Some(st) {
                continue;
            }
            reload(&engine, &tenant, file).await;
        }
        seen = now;
    }
}

/// Watches `dir` and every directory holding a component a function names (once each).
fn watch_dirs(
    w: &mut notify::RecommendedWatcher,
    dir: &Path,
    seen: &BTreeMap<PathBuf, Stamp>,
    watched: &mut Vec<PathBuf>,
) {
    use notify::Watcher;
    let components = seen
        .values()
        .flat_map(|st| st.iter().skip(1))
        .filter_map(|(p, _)| p.parent().map(Path::to_path_buf));
    for d in std::iter::once(dir.to_path_buf()).chain(components) {
        if watched.contains(&d) || !d.is_dir() {
            continue;
        }
        match w.watch(&d, notify::RecursiveMode::NonRecursive) {
            Ok(()) => watched.push(d),
            Err(e) => tracing::warn!("cannot watch {}: {e}", d.display()),
        }
    }
}

async fn reload(engine: &Engine, tenant: &str, file: &Path) {
    let loaded = match super::load::function_file(file) {
        Ok(l) => l,
        Err(e) => {
            println!("  not reloaded {}: {e:#}", file.display());
            return;
        }
    };
    let id = loaded.def.id.clone();
    let before = engine
        .functions(tenant)
        .into_iter()
        .find(|f| f.id == id)
        .map(|f| f.version);
    match super::load::deploy_local(engine, tenant, loaded).await {
        Err(e) => println!("  not reloaded {}: {e:#}", file.display()),
        Ok((_, v)) if Some(v) == before => {}
        Ok((id, v)) => match engine.rollout(tenant, &id).await {
            Ok(r) => println!(
                "  reloaded {id} v{v} from {}: rollout {} stands ({}); \
                 `weir rollout {id} --promote {v}` sends new runs to v{v}",
                file.display(),
                r["id"].as_str().unwrap_or("?"),
                routing(&r)
            ),
            Err(EngineError::NoRollout { .. }) => println!(
                "  reloaded {id} v{v} from {}: new runs get v{v}",
                file.display()
            ),
            Err(e) => println!("  reloaded {id} v{v} from {} ({e})", file.display()),
        },
    }
}

fn routing(r: &Value) -> String {
    r["routing"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| format!("v{} {}%", w["version"], w["weight"]))
        .collect::<Vec<_>>()
        .join(", ")
}
