//! The ordered key-value interface the embedded schema is written against: tables of
//! byte keys in byte order, consistent reads, and atomic write transactions. redb and
//! sled are adapters of it; everything else about the layout lives once, above it.

use std::ops::Bound;

use crate::store::StoreResult;

/// A table's name (the adapters map it to a redb table or a sled tree).
pub type Table = &'static str;

/// A scan's visitor: gets each key and value, returns whether to go on.
pub type Visit<'a> = &'a mut dyn FnMut(&[u8], &[u8]) -> StoreResult<bool>;

/// Reads, from a consistent view (or, inside a write, including its own writes).
pub trait KvRead {
    /// The value under `k`.
    fn get(&self, t: Table, k: &[u8]) -> StoreResult<Option<Vec<u8>>>;
    /// Visits the keys in `(lo, hi)` in ascending order (descending if `rev`) until `f`
    /// returns `false`.
    fn scan(
        &self,
        t: Table,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        rev: bool,
        f: Visit<'_>,
    ) -> StoreResult<()>;
    /// How many keys the table holds.
    fn count(&self, t: Table) -> StoreResult<u64>;
    /// The first `n` bytes of the value under `k` (all of it if shorter), without
    /// copying the rest.
    fn get_prefix(&self, t: Table, k: &[u8], n: usize) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.get(t, k)?.map(|mut v| {
            v.truncate(n);
            v
        }))
    }
}

/// Writes inside one atomic transaction.
pub trait KvWrite: KvRead {
    /// Sets `k` to `v`.
    fn put(&mut self, t: Table, k: &[u8], v: &[u8]) -> StoreResult<()>;
    /// Removes `k`; returns whether it was there.
    fn del(&mut self, t: Table, k: &[u8]) -> StoreResult<bool>;
}

/// An ordered key-value store with atomic, optionally fsynced, write transactions.
pub trait Kv: Send + Sync + 'static {
    /// The backend's name (`redb`, `sled`).
    fn name(&self) -> &'static str;
    /// Runs `f` against one consistent view.
    fn read(&self, f: &mut dyn FnMut(&dyn KvRead) -> StoreResult<()>) -> StoreResult<()>;
    /// Runs `f` in one write transaction, committed if it returns `Ok(true)` (fsynced
    /// before returning if `durable`; a durable call with nothing to write still makes
    /// every earlier commit durable) and aborted otherwise.
    fn write(
        &self,
        durable: bool,
        f: &mut dyn FnMut(&mut dyn KvWrite) -> StoreResult<bool>,
    ) -> StoreResult<()>;
    /// Makes every commit so far durable.
    fn flush(&self) -> StoreResult<()>;
}

/// Reads a value out of one consistent view.
pub fn read_with<T>(kv: &dyn Kv, f: impl FnOnce(&dyn KvRead) -> StoreResult<T>) -> StoreResult<T> {
    let mut f = Some(f);
    let mut out = None;
    kv.read(&mut |r| {
        if let Some(f) = f.take() {
            out = Some(f(r)?);
        }
        Ok(())
    })?;
    out.ok_or_else(|| crate::store::StoreError::Backend("the read did not run".into()))
}

/// The smallest key above every key with this prefix; `None` if there is none.
pub fn prefix_end(pfx: &[u8]) -> Option<Vec<u8>> {
    let mut end = pfx.to_vec();
    while end.last() == Some(&0xff) {
        end.pop();
    }
    let last = end.last_mut()?;
    *last += 1;
    Some(end)
}

/// Visits the keys under `pfx` above `after` (all of them if `None`), ascending.
pub fn scan_prefix(
    r: &(impl KvRead + ?Sized),
    t: Table,
    pfx: &[u8],
    after: Option<&[u8]>,
    f: Visit<'_>,
) -> StoreResult<()> {
    let end = prefix_end(pfx);
    let lo = match after {
        Some(a) => Bound::Excluded(a),
        None => Bound::Included(pfx),
    };
    let hi = match &end {
        Some(e) => Bound::Excluded(e.as_slice()),
        None => Bound::Unbounded,
    };
    r.scan(t, lo, hi, false, f)
}

/// Visits the keys under `pfx` strictly below `pfx + cursor`, newest (highest) first.
pub fn scan_below(
    r: &(impl KvRead + ?Sized),
    t: Table,
    pfx: &[u8],
    cursor: Option<&str>,
    f: Visit<'_>,
) -> StoreResult<()> {
    let mut end = pfx.to_vec();
    match cursor {
        Some(c) => end.extend_from_slice(c.as_bytes()),
        None => end.push(0xff),
    }
    r.scan(t, Bound::Included(pfx), Bound::Excluded(&end), true, f)
}

/// The first key under `pfx`, if any.
pub fn first_under(
    r: &(impl KvRead + ?Sized),
    t: Table,
    pfx: &[u8],
) -> StoreResult<Option<Vec<u8>>> {
    let mut first = None;
    scan_prefix(r, t, pfx, None, &mut |k, _| {
        first = Some(k.to_vec());
        Ok(false)
    })?;
    Ok(first)
}
