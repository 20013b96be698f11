//! Erasing a user's payloads, one bounded batch per transaction: each batch goes on
//! where the last one stopped (its position in the user's event and run indexes), so a
//! user with a million events never makes one huge write.

use super::super::kv::{scan_prefix, KvWrite};
use super::super::schema::*;
use super::*;
use crate::store::{erase_event, erase_run, Erased, StoredEvent};

/// Where an erasure has got to: the last index keys done.
#[derive(Debug, Clone, Default)]
pub struct EraseAt {
    events: Option<Vec<u8>>,
    runs: Option<Vec<u8>>,
    events_done: bool,
}

/// What one batch did, and where the next goes on (`None`: finished).
pub type Batch = (Erased, Option<EraseAt>);

/// Index keys under `pfx` after `after` (and whose id is below `before`, if given), at
/// most `n`.
fn next_keys(
    w: &mut (impl KvWrite + ?Sized),
    table: Table,
    pfx: &[u8],
    after: Option<&[u8]>,
    before: Option<&str>,
    n: usize,
) -> StoreResult<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    scan_prefix(w, table, pfx, after, &mut |k, _| {
        if before.is_some_and(|b| &k[pfx.len()..] >= b.as_bytes()) {
            return Ok(false);
        }
        out.push(k.to_vec());
        Ok(out.len() < n)
    })?;
    Ok(out)
}

/// Erases up to `n` more of the user's events with ids below `before` and runs of such
/// events; the last batch also marks the summary erased.
pub fn batch(
    w: &mut (impl KvWrite + ?Sized),
    tenant: &str,
    user: &str,
    before: &str,
    at: &EraseAt,
    n: usize,
    now: i64,
) -> StoreResult<Batch> {
    let pfx = user_prefix(tenant, user);
    let mut done = Erased::default();
    let mut next = at.clone();
    if !at.events_done {
        let keys = next_keys(w, USER_EVENTS, &pfx, at.events.as_deref(), Some(before), n)?;
        for k in &keys {
            let id = &k[pfx.len()..];
            let ek = key(&[tenant.as_bytes(), id]);
            let Some(mut se) = get_json::<StoredEvent>(w, EVENTS, &ek)? else {
                continue;
            };
            if let Some(ik) = &se.event.idempotency_key {
                // The key may itself be personal (an order or e-mail address): it goes
                // too, with the dedupe it gave.
                let idem = key(&[tenant.as_bytes(), ik.as_bytes()]);
                if w.get(IDEM, &idem)?.as_deref() == Some(id) {
                    w.del(IDEM, &idem)?;
                }
            }
            erase_event(&mut se.event);
            w.put(EVENTS, &ek, &enc(&se)?)?;
            done.events += 1;
        }
        next.events = keys.last().cloned().or(next.events);
        if keys.len() == n {
            return Ok((done, Some(next)));
        }
        next.events_done = true;
    }
    // Runs by their event: a run of an event stored before the erasure is erased even
    // if trigger matching created it later.
    let left = (n - done.events as usize).max(1);
    let keys = next_keys(w, RUNS_BY_USER, &pfx, at.runs.as_deref(), None, left)?;
    for k in &keys {
        let id = String::from_utf8_lossy(&k[pfx.len()..]).into_owned();
        let rk = run_key(tenant, &id);
        let Some(raw) = w.get(RUNS, &rk)? else {
            continue;
        };
        let (head, _) = split_run(&rk, &raw)?;
        let mut run = dec_run(&rk, &raw)?;
        if run.event_id.as_str() >= before {
            continue;
        }
        erase_run(&mut run);
        // A new revision: a write computed from the run as it was is refused.
        w.put(RUNS, &rk, &enc_run(head.rev + 1, head.status, &enc(&run)?))?;
        done.runs += 1;
    }
    next.runs = keys.last().cloned().or(next.runs);
    if keys.len() == left {
        return Ok((done, Some(next)));
    }
    let uk = user_key(tenant, user);
    if let Some(mut rec) = get_json::<UserRecord>(w, USERS, &uk)? {
        rec.user = None;
        rec.erased_at = Some(now);
        w.put(USERS, &uk, &enc(&rec)?)?;
    }
    Ok((done, None))
}
