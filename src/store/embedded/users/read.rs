//! Reading the per-user index: summaries, users by last activity, the timeline, and a
//! user's runs in given statuses. Each reads index keys, then the records they name.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::super::kv::{prefix_end, scan_below, scan_prefix, KvRead};
use super::super::schema::*;
use super::*;
use crate::store::{Page, StoredEvent, TimelineItem, UserCursor, UserSummary};

/// Below this many users under a prefix, a prefix listing reads them all and sorts; past
/// it, it walks the last-activity index and keeps those that match.
const PREFIX_SORT_MAX: usize = 5_000;

/// One user's summary, with run counts.
pub fn summary(r: &dyn KvRead, tenant: &str, user: &str) -> StoreResult<Option<UserSummary>> {
    let Some(rec) = get_json::<UserRecord>(r, USERS, &user_key(tenant, user))? else {
        return Ok(None);
    };
    Ok(Some(with_counts(r, tenant, user, rec)?))
}

fn with_counts(
    r: &dyn KvRead,
    tenant: &str,
    user: &str,
    rec: UserRecord,
) -> StoreResult<UserSummary> {
    let mut runs = BTreeMap::new();
    for st in RunStatus::ALL {
        runs.insert(
            st,
            get_u64(r, USER_COUNTS, &user_count_key(tenant, user, st))?,
        );
    }
    Ok(UserSummary {
        id: user.to_string(),
        last_seen: rec.last_seen,
        events: rec.events,
        runs,
        user: rec.user,
        erased_at: rec.erased_at,
    })
}

/// Users by last activity, most recent first (ties: the higher id first).
pub fn list(
    r: &dyn KvRead,
    tenant: &str,
    user_prefix: Option<&str>,
    limit: usize,
    cursor: Option<&UserCursor>,
) -> StoreResult<Page<UserSummary>> {
    let limit = limit.max(1);
    let below = |ls: i64, u: &str| {
        cursor.is_none_or(|c| (ls, u.as_bytes()) < (c.last_seen, c.user.as_bytes()))
    };
    let mut found: Vec<(i64, String)> = Vec::new();
    let small = match user_prefix.filter(|p| !p.is_empty()) {
        Some(p) => {
            // Few users under the prefix: read them all from the summaries and sort.
            let mut pfx = prefix(&[tenant.as_bytes()]);
            let plen = pfx.len();
            pfx.extend_from_slice(p.as_bytes());
            let mut all = Vec::new();
            scan_prefix(r, USERS, &pfx, None, &mut |k, v| {
                let rec: UserRecord = dec(k, v)?;
                let u = String::from_utf8_lossy(&k[plen..]).into_owned();
                all.push((rec.last_seen, u));
                Ok(all.len() <= PREFIX_SORT_MAX)
            })?;
            if all.len() <= PREFIX_SORT_MAX {
                all.retain(|(ls, u)| below(*ls, u));
                all.sort_by(|a, b| (b.0, b.1.as_bytes()).cmp(&(a.0, a.1.as_bytes())));
                all.truncate(limit + 1);
                found = all;
                true
            } else {
                false
            }
        }
        None => false,
    };
    if !small {
        let pfx = prefix(&[tenant.as_bytes()]);
        let plen = pfx.len();
        let hi = match cursor {
            Some(c) => Some(seen_key(tenant, c.last_seen, &c.user)),
            None => prefix_end(&pfx),
        };
        let hi_ref = hi.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        r.scan(
            USERS_BY_SEEN,
            Bound::Included(&pfx),
            hi_ref,
            true,
            &mut |k, _| {
                let Some(ls) = k.get(plen..plen + 8).and_then(be_u64) else {
                    return Ok(true);
                };
                let u = String::from_utf8_lossy(&k[plen + 8..]).into_owned();
                if user_prefix.is_none_or(|p| u.starts_with(p)) {
                    found.push((ls as i64, u));
                }
                Ok(found.len() <= limit)
            },
        )?;
    }
    let mut data = Vec::with_capacity(found.len());
    for (_, u) in found {
        if let Some(s) = summary(r, tenant, &u)? {
            data.push(s);
        }
    }
    Ok(Page::from_overfull(data, limit, UserSummary::cursor))
}

/// Up to `n` ids under `pfx` in `table` below `cursor`, newest first.
fn ids_below(
    r: &dyn KvRead,
    table: Table,
    pfx: &[u8],
    cursor: Option<&str>,
    n: usize,
) -> StoreResult<Vec<String>> {
    let mut out = Vec::new();
    scan_below(r, table, pfx, cursor, &mut |k, _| {
        out.push(String::from_utf8_lossy(&k[pfx.len()..]).into_owned());
        Ok(out.len() < n)
    })?;
    Ok(out)
}

/// The user's events and runs, newest first: the two indexes merged by id.
pub fn timeline(
    r: &dyn KvRead,
    tenant: &str,
    user: &str,
    limit: usize,
    cursor: Option<&str>,
) -> StoreResult<Page<TimelineItem>> {
    let limit = limit.max(1);
    let pfx = user_prefix(tenant, user);
    let mut ids: Vec<(String, bool)> = ids_below(r, USER_EVENTS, &pfx, cursor, limit + 1)?
        .into_iter()
        .map(|id| (id, true))
        .chain(
            ids_below(r, RUNS_BY_USER, &pfx, cursor, limit + 1)?
                .into_iter()
                .map(|id| (id, false)),
        )
        .collect();
    ids.sort_by(|a, b| b.0.cmp(&a.0));
    ids.truncate(limit + 1);
    let mut data = Vec::with_capacity(ids.len());
    for (id, is_event) in ids {
        if is_event {
            let ek = key(&[tenant.as_bytes(), id.as_bytes()]);
            if let Some(e) = get_json::<StoredEvent>(r, EVENTS, &ek)? {
                data.push(TimelineItem::Event(e));
            }
        } else if let Some(run) = get_run(r, tenant, &id)? {
            data.push(TimelineItem::Run(run));
        }
    }
    Ok(Page::from_overfull(data, limit, |i| i.id().to_string()))
}

/// The user's runs now in one of `statuses`, newest first, at most `limit`.
pub fn runs_in(
    r: &dyn KvRead,
    tenant: &str,
    user: &str,
    statuses: &[RunStatus],
    limit: usize,
) -> StoreResult<Vec<Run>> {
    let mut ids = Vec::new();
    for st in statuses {
        let pfx = prefix(&[tenant.as_bytes(), user.as_bytes(), st.as_str().as_bytes()]);
        ids.extend(ids_below(r, USER_RUNS, &pfx, None, limit)?);
    }
    ids.sort_by(|a, b| b.cmp(a));
    ids.truncate(limit);
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(run) = get_run(r, tenant, &id)? {
            out.push(run);
        }
    }
    Ok(out)
}
