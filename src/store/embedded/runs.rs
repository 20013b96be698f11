//! Runs in the embedded layout: revisioned records with their status and user indexes
//! and counts, state transitions, listings, and the wait index.

use std::collections::BTreeMap;

use super::kv::{scan_below, scan_prefix, KvRead, KvWrite};
use super::queue::{self, QueueTx};
use super::schema::*;
use super::users;
use crate::run::{QueueEntry, Run, RunStatus, WaitKey};
use crate::store::{
    lookup_path, Page, RunChange, RunFilter, StoreResult, StoredEvent, WaitQuery, WriteOutcome,
};

/// A [`crate::store::RunWrite`] with its run already encoded (by the caller's thread, not
/// the writer's).
#[derive(Debug, Clone)]
pub struct PreparedWrite {
    /// Tenant of the run.
    pub tenant: String,
    /// Run id.
    pub run_id: String,
    /// The revision the write was computed from.
    pub rev: u64,
    /// The new run: its JSON, status and function.
    pub run: Option<(Vec<u8>, RunStatus, String)>,
    /// The run's user, whose index follows its status.
    pub user: Option<String>,
    /// Queue and wait changes.
    pub change: RunChange,
    /// The leased entry whose claim marker goes with the write, if any.
    pub leased: Option<QueueEntry>,
}

/// Applies a prepared write inside a transaction, if the stored run is at its revision.
pub fn apply_write(
    w: &mut dyn KvWrite,
    queue: &mut QueueTx,
    p: &PreparedWrite,
) -> StoreResult<WriteOutcome> {
    let rk = run_key(&p.tenant, &p.run_id);
    let Some(head) = run_header(w, &rk)? else {
        return Ok(WriteOutcome::Missing);
    };
    if head.rev != p.rev {
        return Ok(WriteOutcome::Conflict);
    }
    let mut rev = head.rev;
    if let Some((json, status, function)) = &p.run {
        rev += 1;
        w.put(RUNS, &rk, &enc_run(rev, *status, json))?;
        if head.status != *status {
            counter_add(w, COUNTS, &count_key(&p.tenant, function, head.status), -1)?;
            counter_add(w, COUNTS, &count_key(&p.tenant, function, *status), 1)?;
            w.del(
                RUNS_BY_STATUS,
                &status_key(&p.tenant, head.status, &p.run_id),
            )?;
            w.put(
                RUNS_BY_STATUS,
                &status_key(&p.tenant, *status, &p.run_id),
                function.as_bytes(),
            )?;
            let user = p.user.as_deref();
            users::on_status_change(w, &p.tenant, user, &p.run_id, head.status, *status)?;
        }
    }
    for q in &p.change.dequeue {
        queue.del(w, q)?;
    }
    for q in &p.change.enqueue {
        queue.put(w, q)?;
    }
    remove_waits(w, &p.change.waits_remove)?;
    add_waits(w, &p.change.waits_add)?;
    if let Some(e) = &p.leased {
        // The lease ends with this write: an entry it leaves queued is no longer claimed.
        queue::set_markers(w, &[(e.clone(), None)])?;
    }
    Ok(WriteOutcome::Written { rev })
}

/// Adds wait index entries, keeping the per-path counts that let an incoming event find
/// which paths to look up.
pub fn add_waits(w: &mut (impl KvWrite + ?Sized), add: &[WaitKey]) -> StoreResult<()> {
    for k in add {
        k.check()?;
        let wk = wait_key(k);
        if w.get(WAITS, &wk)?.is_none() {
            w.put(WAITS, &wk, &[])?;
            counter_add(w, WAIT_PATHS, &wait_path_key(k), 1)?;
        }
    }
    Ok(())
}

fn remove_waits(w: &mut dyn KvWrite, remove: &[WaitKey]) -> StoreResult<()> {
    for k in remove {
        if w.del(WAITS, &wait_key(k))? {
            counter_add(w, WAIT_PATHS, &wait_path_key(k), -1)?;
        }
    }
    Ok(())
}

/// The waits each query's event may resolve.
pub fn find_waits(r: &dyn KvRead, queries: &[WaitQuery]) -> StoreResult<Vec<Vec<WaitKey>>> {
    let mut all = Vec::with_capacity(queries.len());
    for q in queries {
        let mut paths = Vec::new();
        scan_prefix(
            r,
            WAIT_PATHS,
            &prefix(&[q.tenant.as_bytes(), q.event.as_bytes()]),
            None,
            &mut |k, v| {
                if be_u64(v).unwrap_or(0) > 0 {
                    let path = k.rsplit(|b| *b == 0).next().unwrap_or_default();
                    paths.push(String::from_utf8_lossy(path).into_owned());
                }
                Ok(true)
            },
        )?;
        let mut out = Vec::new();
        for path in paths {
            let value = if path == "*" {
                "*".to_string()
            } else {
                match lookup_path(&q.incoming, &path) {
                    Some(v) => v,
                    None => continue,
                }
            };
            let pfx = prefix(&[
                q.tenant.as_bytes(),
                q.event.as_bytes(),
                path.as_bytes(),
                value.as_bytes(),
            ]);
            scan_prefix(r, WAITS, &pfx, None, &mut |k, _| {
                out.push(parse_wait_key(k)?);
                Ok(true)
            })?;
        }
        all.push(out);
    }
    Ok(all)
}

/// Runs of a tenant, newest first, through the narrowest index the filter allows.
pub fn list(
    r: &dyn KvRead,
    tenant: &str,
    filter: &RunFilter,
    limit: usize,
    cursor: Option<&str>,
) -> StoreResult<Page<Run>> {
    let limit = limit.max(1);
    let mut data: Vec<Run> = Vec::new();
    let mut push = |run: Run| -> bool {
        if filter.matches(&run) {
            data.push(run);
        }
        data.len() <= limit
    };
    let status_name = filter.status.map(|s| s.as_str().to_string());
    if let Some(ev) = &filter.event {
        let ek = key(&[tenant.as_bytes(), ev.as_bytes()]);
        if let Some(se) = get_json::<StoredEvent>(r, EVENTS, &ek)? {
            let mut ids = se.run_ids;
            ids.sort();
            for id in ids
                .iter()
                .rev()
                .filter(|id| cursor.is_none_or(|c| id.as_str() < c))
            {
                if let Some(run) = get_run(r, tenant, id)? {
                    if !push(run) {
                        break;
                    }
                }
            }
        }
    } else if let (Some(f), Some(st), None, None) = (
        &filter.function,
        filter.status,
        &filter.replay,
        &filter.user,
    ) {
        // A function's runs in one status: none to look for when its count is zero, else
        // the status index, whose values name each run's function (entries written
        // before they did have empty values: those runs are decoded and checked).
        if counts(r, tenant, f)?.get(&st).copied().unwrap_or(0) > 0 {
            let pfx = prefix(&[tenant.as_bytes(), st.as_str().as_bytes()]);
            let plen = pfx.len();
            scan_below(r, RUNS_BY_STATUS, &pfx, cursor, &mut |k, v| {
                if !v.is_empty() && v != f.as_bytes() {
                    return Ok(true);
                }
                let id = String::from_utf8_lossy(k.get(plen..).unwrap_or_default()).into_owned();
                Ok(match get_run(r, tenant, &id)? {
                    Some(run) => push(run),
                    None => true,
                })
            })?;
        }
    } else if let Some((index, mid)) = filter
        .replay
        .as_ref()
        .map(|r| (RUNS_BY_REPLAY, r))
        .or_else(|| filter.function.as_ref().map(|f| (RUNS_BY_FN, f)))
        .or_else(|| filter.user.as_ref().map(|u| (RUNS_BY_USER, u)))
        .or_else(|| status_name.as_ref().map(|s| (RUNS_BY_STATUS, s)))
    {
        let pfx = prefix(&[tenant.as_bytes(), mid.as_bytes()]);
        let plen = pfx.len();
        scan_below(r, index, &pfx, cursor, &mut |k, _| {
            let id = String::from_utf8_lossy(k.get(plen..).unwrap_or_default()).into_owned();
            Ok(match get_run(r, tenant, &id)? {
                Some(run) => push(run),
                None => true,
            })
        })?;
    } else {
        scan_below(
            r,
            RUNS,
            &prefix(&[tenant.as_bytes()]),
            cursor,
            &mut |k, v| Ok(push(dec_run(k, v)?)),
        )?;
    }
    Ok(Page::from_overfull(data, limit, |r| r.id.clone()))
}

/// Run counts of a function by status.
pub fn counts(
    r: &dyn KvRead,
    tenant: &str,
    function: &str,
) -> StoreResult<BTreeMap<RunStatus, u64>> {
    let mut out = BTreeMap::new();
    for st in RunStatus::ALL {
        out.insert(st, get_u64(r, COUNTS, &count_key(tenant, function, st))?);
    }
    Ok(out)
}
