//! The sled adapter of the ordered-KV interface: a tree per [`Table`]. Reads go to the
//! trees; a write transaction collects its writes in an overlay (which its own reads and
//! scans see) and applies them at commit in one multi-tree sled transaction, so it is
//! all or nothing; a durable commit then flushes (fsync). Only the writer thread writes,
//! so the transaction never conflicts.

use std::collections::{BTreeMap, HashMap};
use std::iter::Peekable;
use std::ops::Bound;
use std::path::Path;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Transactional, Tree};

use super::kv::{Kv, KvRead, KvWrite, Table, Visit};
use super::schema::ALL_TABLES;
use super::users::USER_TABLES;
use crate::store::{StoreError, StoreResult};

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// A sled database as an ordered KV store.
pub struct SledKv {
    db: sled::Db,
    trees: HashMap<Table, Tree>,
}

impl SledKv {
    /// Opens (or creates) the database in `dir`. The caller holds the data directory's
    /// lock, so a lock sled itself cannot take yet is the flusher thread of a store this
    /// process just closed: it is waited for, up to a second.
    pub fn open(dir: &Path) -> StoreResult<Self> {
        let config = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .flush_every_ms(Some(200));
        let mut tries = 0;
        let db = loop {
            match config.open() {
                Err(sled::Error::Io(e)) if e.kind() == std::io::ErrorKind::Other && tries < 50 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                r => break r.map_err(backend)?,
            }
        };
        Self::with_db(db)
    }

    /// A database in a temporary directory, removed when dropped.
    pub fn temporary() -> StoreResult<Self> {
        Self::with_db(
            sled::Config::new()
                .temporary(true)
                .open()
                .map_err(backend)?,
        )
    }

    fn with_db(db: sled::Db) -> StoreResult<Self> {
        let mut trees = HashMap::new();
        for t in ALL_TABLES.into_iter().chain(USER_TABLES) {
            trees.insert(t, db.open_tree(t).map_err(backend)?);
        }
        Ok(Self { db, trees })
    }

    fn tree(&self, t: Table) -> StoreResult<&Tree> {
        self.trees
            .get(t)
            .ok_or_else(|| StoreError::Backend(format!("no table `{t}`")))
    }
}

fn owned(b: Bound<&[u8]>) -> Bound<Vec<u8>> {
    match b {
        Bound::Included(k) => Bound::Included(k.to_vec()),
        Bound::Excluded(k) => Bound::Excluded(k.to_vec()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

type TreeIter = Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>>;

fn tree_range(tree: &Tree, lo: Bound<&[u8]>, hi: Bound<&[u8]>, rev: bool) -> TreeIter {
    let r = tree.range::<Vec<u8>, _>((owned(lo), owned(hi)));
    if rev {
        Box::new(r.rev())
    } else {
        Box::new(r)
    }
}

struct Read<'a>(&'a SledKv);

impl KvRead for Read<'_> {
    fn get(&self, t: Table, k: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.0.tree(t)?.get(k).map_err(backend)?.map(|v| v.to_vec()))
    }

    fn scan(
        &self,
        t: Table,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        rev: bool,
        f: Visit<'_>,
    ) -> StoreResult<()> {
        for item in tree_range(self.0.tree(t)?, lo, hi, rev) {
            let (k, v) = item.map_err(backend)?;
            if !f(&k, &v)? {
                break;
            }
        }
        Ok(())
    }

    fn count(&self, t: Table) -> StoreResult<u64> {
        Ok(self.0.tree(t)?.len() as u64)
    }
}

/// Writes not yet applied, per table: `None` is a removal.
type Pending = HashMap<Table, BTreeMap<Vec<u8>, Option<Vec<u8>>>>;

struct Write<'a> {
    kv: &'a SledKv,
    pending: Pending,
}

impl KvRead for Write<'_> {
    fn get(&self, t: Table, k: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        if let Some(v) = self.pending.get(t).and_then(|p| p.get(k)) {
            return Ok(v.clone());
        }
        Read(self.kv).get(t, k)
    }

    fn scan(
        &self,
        t: Table,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        rev: bool,
        f: Visit<'_>,
    ) -> StoreResult<()> {
        // The tree's keys and the overlay's, merged in order; the overlay wins a tie.
        let empty = BTreeMap::new();
        let over = self.pending.get(t).unwrap_or(&empty);
        type Over<'b> = Box<dyn Iterator<Item = (&'b Vec<u8>, &'b Option<Vec<u8>>)> + 'b>;
        let ov = over.range::<[u8], _>((lo, hi));
        let ov: Over<'_> = if rev {
            Box::new(ov.rev())
        } else {
            Box::new(ov)
        };
        let mut ov: Peekable<Over<'_>> = ov.peekable();
        let mut tr = tree_range(self.kv.tree(t)?, lo, hi, rev).peekable();
        loop {
            let take_overlay = match (ov.peek(), tr.peek()) {
                (None, None) => return Ok(()),
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((ok, _)), Some(Ok((tk, _)))) => {
                    let (a, b) = (ok.as_slice(), tk.as_ref());
                    if a == b {
                        tr.next();
                        true
                    } else {
                        (a < b) != rev
                    }
                }
                (Some(_), Some(Err(_))) => false,
            };
            if take_overlay {
                if let Some((k, Some(v))) = ov.next() {
                    if !f(k, v)? {
                        return Ok(());
                    }
                }
            } else if let Some(item) = tr.next() {
                let (k, v) = item.map_err(backend)?;
                if !f(&k, &v)? {
                    return Ok(());
                }
            }
        }
    }

    fn count(&self, t: Table) -> StoreResult<u64> {
        let mut n = Read(self.kv).count(t)? as i64;
        if let Some(p) = self.pending.get(t) {
            for (k, v) in p {
                let there = self.kv.tree(t)?.contains_key(k).map_err(backend)?;
                n += match (there, v.is_some()) {
                    (false, true) => 1,
                    (true, false) => -1,
                    _ => 0,
                };
            }
        }
        Ok(n.max(0) as u64)
    }
}

impl KvWrite for Write<'_> {
    fn put(&mut self, t: Table, k: &[u8], v: &[u8]) -> StoreResult<()> {
        self.pending
            .entry(t)
            .or_default()
            .insert(k.to_vec(), Some(v.to_vec()));
        Ok(())
    }

    fn del(&mut self, t: Table, k: &[u8]) -> StoreResult<bool> {
        let there = self.get(t, k)?.is_some();
        self.pending.entry(t).or_default().insert(k.to_vec(), None);
        Ok(there)
    }
}

impl Kv for SledKv {
    fn name(&self) -> &'static str {
        "sled"
    }

    fn read(&self, f: &mut dyn FnMut(&dyn KvRead) -> StoreResult<()>) -> StoreResult<()> {
        f(&Read(self))
    }

    fn write(
        &self,
        durable: bool,
        f: &mut dyn FnMut(&mut dyn KvWrite) -> StoreResult<bool>,
    ) -> StoreResult<()> {
        let mut w = Write {
            kv: self,
            pending: HashMap::new(),
        };
        let commit = f(&mut w)?;
        if commit && !w.pending.is_empty() {
            let tables: Vec<Table> = w.pending.keys().copied().collect();
            let trees: Vec<&Tree> = tables
                .iter()
                .map(|t| self.tree(t))
                .collect::<StoreResult<_>>()?;
            trees
                .as_slice()
                .transaction(|tx| {
                    for (i, t) in tables.iter().enumerate() {
                        for (k, v) in &w.pending[t] {
                            match v {
                                Some(v) => {
                                    tx[i].insert(k.as_slice(), v.as_slice())?;
                                }
                                None => {
                                    tx[i].remove(k.as_slice())?;
                                }
                            }
                        }
                    }
                    Ok::<(), ConflictableTransactionError<StoreError>>(())
                })
                .map_err(|e: TransactionError<StoreError>| match e {
                    TransactionError::Abort(e) => e,
                    TransactionError::Storage(e) => backend(e),
                })?;
        }
        if durable {
            self.db.flush().map_err(backend)?;
        }
        Ok(())
    }

    fn flush(&self) -> StoreResult<()> {
        self.db.flush().map_err(backend)?;
        Ok(())
    }
}
