//! Building the per-user index of a store written before it existed: once, at open, from
//! the stored events and runs, in the open's transaction. A marker in `META` says it is
//! built, so a store whose events name no user is not read again at every open.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::super::kv::KvWrite;
use super::super::schema::*;
use super::*;
use crate::store::StoredEvent;

/// The `META` key that says the user index is built.
pub const BUILT: &[u8] = b"layout/user_index";

/// Events counted, the latest `ts`, and the user object of the latest event.
type Seen = (u64, i64, Option<Map<String, Value>>);

/// Builds the user index if it has not been built; whether it was.
pub fn migrate(w: &mut (impl KvWrite + ?Sized)) -> StoreResult<bool> {
    if w.get(META, BUILT)?.is_some() {
        return Ok(false);
    }
    // (tenant, user) → (events, latest ts, the user object of the latest event).
    let mut users: BTreeMap<(String, String), Seen> = BTreeMap::new();
    let mut event_keys = Vec::new();
    w.scan(
        EVENTS,
        Bound::Unbounded,
        Bound::Unbounded,
        false,
        &mut |k, v| {
            let se: StoredEvent = dec(k, v)?;
            let (tenant, _) = split2(k);
            if let Some(u) = se.event.user_id().filter(|u| indexable(u)) {
                event_keys.push(key(&[
                    tenant.as_bytes(),
                    u.as_bytes(),
                    se.event.id.as_bytes(),
                ]));
                // Keys ascend by id, so the last event seen is the latest.
                let e = users.entry((tenant, u)).or_default();
                e.0 += 1;
                e.1 = e.1.max(se.event.ts);
                e.2 = se.event.user;
            }
            Ok(true)
        },
    )?;
    let mut runs = Vec::new();
    w.scan(
        RUNS,
        Bound::Unbounded,
        Bound::Unbounded,
        false,
        &mut |k, v| {
            let run = dec_run(k, v)?;
            if let Some(u) = run.user_id.filter(|u| indexable(u)) {
                runs.push((run.tenant, u, run.status, run.id));
            }
            Ok(true)
        },
    )?;
    let built = !event_keys.is_empty() || !runs.is_empty();
    for k in &event_keys {
        w.put(USER_EVENTS, k, &[])?;
    }
    for (tenant, u, status, id) in &runs {
        w.put(
            RUNS_BY_USER,
            &key(&[tenant.as_bytes(), u.as_bytes(), id.as_bytes()]),
            &[],
        )?;
        w.put(USER_RUNS, &user_run_key(tenant, u, *status, id), &[])?;
        counter_add(w, USER_COUNTS, &user_count_key(tenant, u, *status), 1)?;
    }
    for ((tenant, u), (events, ts, user)) in users {
        let rec = UserRecord {
            last_seen: ts,
            events,
            user,
            erased_at: None,
        };
        put_record(w, &tenant, &u, None, &rec)?;
    }
    w.put(META, BUILT, b"1")?;
    Ok(built)
}
