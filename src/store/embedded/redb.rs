//! The redb adapter of the ordered-KV interface: a table per [`Table`], one write
//! transaction per [`Kv::write`], `Immediate` (fsynced) commits for durable writes and
//! non-durable commits made durable by the next durable one.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Bound;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use redb::{
    backends::InMemoryBackend, Database, ReadOnlyTable, ReadTransaction, ReadableDatabase,
    ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};

use super::kv::{Kv, KvRead, KvWrite, Table, Visit};
use super::schema::ALL_TABLES;
use super::users::USER_TABLES;
use crate::store::{StoreError, StoreResult};

type Bytes = &'static [u8];

/// redb's page cache (its default is 1 GiB).
const CACHE_BYTES: usize = 128 << 20;

fn def(t: Table) -> TableDefinition<'static, Bytes, Bytes> {
    TableDefinition::new(t)
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// A redb database as an ordered KV store.
pub struct RedbKv {
    db: Database,
    /// Commits made so far.
    commits: AtomicU64,
    /// The commit count covered by the last `Immediate` commit.
    flushed: Mutex<u64>,
}

impl RedbKv {
    /// Opens (or creates) the database file `path`.
    pub fn open(path: &Path) -> StoreResult<Self> {
        // A bounded page cache keeps memory flat however many runs are parked on disk.
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(backend)?;
        Self::with_db(db)
    }

    /// A database that lives in memory.
    pub fn memory() -> StoreResult<Self> {
        let db = Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .map_err(backend)?;
        Self::with_db(db)
    }

    fn with_db(db: Database) -> StoreResult<Self> {
        // Every table up front, so that read transactions never meet a missing one.
        let tx = db.begin_write().map_err(backend)?;
        for t in ALL_TABLES.into_iter().chain(USER_TABLES) {
            tx.open_table(def(t)).map_err(backend)?;
        }
        tx.commit().map_err(backend)?;
        Ok(Self {
            db,
            commits: AtomicU64::new(0),
            flushed: Mutex::new(0),
        })
    }

    /// Returns once commit number `seq` is durable, fsyncing unless another durable
    /// commit already covered it.
    fn barrier(&self, seq: u64) -> StoreResult<()> {
        let mut flushed = self.flushed.lock().unwrap_or_else(|p| p.into_inner());
        if *flushed >= seq {
            return Ok(());
        }
        // Every commit numbered so far ends before this transaction can begin (redb's
        // write lock), so this durable commit covers them all.
        let target = self.commits.load(Ordering::SeqCst);
        let mut tx = self.db.begin_write().map_err(backend)?;
        tx.set_durability(redb::Durability::Immediate)
            .map_err(backend)?;
        tx.commit().map_err(backend)?;
        *flushed = (*flushed).max(target);
        Ok(())
    }
}

fn visit<'a>(
    range: impl DoubleEndedIterator<
        Item = Result<
            (redb::AccessGuard<'a, Bytes>, redb::AccessGuard<'a, Bytes>),
            redb::StorageError,
        >,
    >,
    rev: bool,
    f: Visit<'_>,
) -> StoreResult<()> {
    let mut go = |item: Result<
        (redb::AccessGuard<'a, Bytes>, redb::AccessGuard<'a, Bytes>),
        redb::StorageError,
    >| {
        let (k, v) = item.map_err(backend)?;
        f(k.value(), v.value())
    };
    if rev {
        for item in range.rev() {
            if !go(item)? {
                break;
            }
        }
    } else {
        for item in range {
            if !go(item)? {
                break;
            }
        }
    }
    Ok(())
}

struct Read {
    tx: ReadTransaction,
    tables: RefCell<HashMap<Table, Rc<ReadOnlyTable<Bytes, Bytes>>>>,
}

impl Read {
    fn table(&self, t: Table) -> StoreResult<Rc<ReadOnlyTable<Bytes, Bytes>>> {
        if let Some(tb) = self.tables.borrow().get(t) {
            return Ok(tb.clone());
        }
        let tb = Rc::new(self.tx.open_table(def(t)).map_err(backend)?);
        self.tables.borrow_mut().insert(t, tb.clone());
        Ok(tb)
    }
}

impl KvRead for Read {
    fn get(&self, t: Table, k: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        Ok(self
            .table(t)?
            .get(k)
            .map_err(backend)?
            .map(|v| v.value().to_vec()))
    }

    fn scan(
        &self,
        t: Table,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        rev: bool,
        f: Visit<'_>,
    ) -> StoreResult<()> {
        let tb = self.table(t)?;
        visit(tb.range::<&[u8]>((lo, hi)).map_err(backend)?, rev, f)
    }

    fn count(&self, t: Table) -> StoreResult<u64> {
        self.table(t)?.len().map_err(backend)
    }
}

/// A write transaction's open tables, each shared by the calls that use it.
type OpenTables<'tx> = RefCell<HashMap<Table, Rc<RefCell<redb::Table<'tx, Bytes, Bytes>>>>>;

struct Write<'tx> {
    tx: &'tx WriteTransaction,
    tables: OpenTables<'tx>,
}

impl<'tx> Write<'tx> {
    fn table(&self, t: Table) -> StoreResult<Rc<RefCell<redb::Table<'tx, Bytes, Bytes>>>> {
        if let Some(tb) = self.tables.borrow().get(t) {
            return Ok(tb.clone());
        }
        let tb = Rc::new(RefCell::new(self.tx.open_table(def(t)).map_err(backend)?));
        self.tables.borrow_mut().insert(t, tb.clone());
        Ok(tb)
    }
}

impl KvRead for Write<'_> {
    fn get(&self, t: Table, k: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        let tb = self.table(t)?;
        let found = tb
            .borrow()
            .get(k)
            .map_err(backend)?
            .map(|v| v.value().to_vec());
        Ok(found)
    }

    fn get_prefix(&self, t: Table, k: &[u8], n: usize) -> StoreResult<Option<Vec<u8>>> {
        let tb = self.table(t)?;
        let found = tb.borrow().get(k).map_err(backend)?.map(|v| {
            let v = v.value();
            v[..n.min(v.len())].to_vec()
        });
        Ok(found)
    }

    fn scan(
        &self,
        t: Table,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        rev: bool,
        f: Visit<'_>,
    ) -> StoreResult<()> {
        let tb = self.table(t)?;
        let tb = tb.borrow();
        visit(tb.range::<&[u8]>((lo, hi)).map_err(backend)?, rev, f)
    }

    fn count(&self, t: Table) -> StoreResult<u64> {
        let tb = self.table(t)?;
        let n = tb.borrow().len().map_err(backend)?;
        Ok(n)
    }
}

impl KvWrite for Write<'_> {
    fn put(&mut self, t: Table, k: &[u8], v: &[u8]) -> StoreResult<()> {
        let tb = self.table(t)?;
        tb.borrow_mut().insert(k, v).map_err(backend)?;
        Ok(())
    }

    fn del(&mut self, t: Table, k: &[u8]) -> StoreResult<bool> {
        let tb = self.table(t)?;
        let removed = tb.borrow_mut().remove(k).map_err(backend)?.is_some();
        Ok(removed)
    }
}

impl Kv for RedbKv {
    fn name(&self) -> &'static str {
        "redb"
    }

    fn read(&self, f: &mut dyn FnMut(&dyn KvRead) -> StoreResult<()>) -> StoreResult<()> {
        let r = Read {
            tx: self.db.begin_read().map_err(backend)?,
            tables: RefCell::new(HashMap::new()),
        };
        f(&r)
    }

    fn write(
        &self,
        durable: bool,
        f: &mut dyn FnMut(&mut dyn KvWrite) -> StoreResult<bool>,
    ) -> StoreResult<()> {
        // A durable change commits durably at once, which also makes every earlier
        // non-durable commit durable; the others commit non-durably and are made durable
        // by the next durable commit or `flush`. Commits are numbered inside their
        // transaction, which holds redb's write lock, so numbers follow commit order.
        let mut tx = self.db.begin_write().map_err(backend)?;
        tx.set_durability(if durable {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        })
        .map_err(backend)?;
        let commit = {
            let mut w = Write {
                tx: &tx,
                tables: RefCell::new(HashMap::new()),
            };
            // An early return drops `tx`, which aborts it.
            f(&mut w)?
        };
        if commit {
            let seq = self.commits.fetch_add(1, Ordering::SeqCst) + 1;
            tx.commit().map_err(backend)?;
            if durable {
                let mut flushed = self.flushed.lock().unwrap_or_else(|p| p.into_inner());
                *flushed = (*flushed).max(seq);
            }
        } else {
            tx.abort().map_err(backend)?;
            // Nothing to write, but a durable call still promises that everything
            // committed before it is on disk.
            if durable {
                self.barrier(self.commits.load(Ordering::SeqCst))?;
            }
        }
        Ok(())
    }

    fn flush(&self) -> StoreResult<()> {
        self.barrier(self.commits.load(Ordering::SeqCst))
    }
}
