//! Compiled artefacts on the Redis backend stay in each process: they are derived data
//! (a recompile rebuilds one), specific to the process's engine build, and large. Kept in
//! a directory (each file written whole, then renamed into place) or, without one, in
//! memory.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::store::{StoreError, StoreResult};

/// A process-local artefact cache.
pub enum Artifacts {
    /// Files in a directory.
    Dir(PathBuf),
    /// In memory.
    Memory(Mutex<HashMap<String, Vec<u8>>>),
}

impl Artifacts {
    /// A cache in `dir` (created), or in memory.
    pub fn new(dir: Option<PathBuf>) -> StoreResult<Self> {
        match dir {
            Some(d) => {
                std::fs::create_dir_all(&d).map_err(|e| {
                    StoreError::Backend(format!("cannot create {}: {e}", d.display()))
                })?;
                Ok(Artifacts::Dir(d))
            }
            None => Ok(Artifacts::Memory(Mutex::default())),
        }
    }

    fn file(dir: &std::path::Path, key: &str) -> PathBuf {
        dir.join(hex::encode(key.as_bytes()))
    }

    /// Stores an artefact.
    pub fn put(&self, key: &str, bytes: Vec<u8>) -> StoreResult<()> {
        match self {
            Artifacts::Dir(d) => {
                let f = Self::file(d, key);
                let tmp = f.with_extension(format!("tmp{}", std::process::id()));
                std::fs::write(&tmp, &bytes)
                    .and_then(|_| std::fs::rename(&tmp, &f))
                    .map_err(|e| StoreError::Backend(format!("cannot cache an artefact: {e}")))
            }
            Artifacts::Memory(m) => {
                m.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key.into(), bytes);
                Ok(())
            }
        }
    }

    /// An artefact, if cached.
    pub fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        match self {
            Artifacts::Dir(d) => match std::fs::read(Self::file(d, key)) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(StoreError::Backend(format!("cannot read an artefact: {e}"))),
            },
            Artifacts::Memory(m) => Ok(m
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(key)
                .cloned()),
        }
    }
}
