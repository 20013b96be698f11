//! The embedded layout: which tables exist, how their keys are built, and how records
//! are encoded. Every tenant-owned key starts with the tenant id and a NUL, so one
//! tenant's data is one key range.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::kv::{KvRead, KvWrite, Table};
use crate::run::{QueueEntry, Run, RunStatus, WaitKey};
use crate::store::{StoreError, StoreResult};

/// Stored events by tenant and id.
pub const EVENTS: Table = "events";
/// Idempotency keys by tenant and key → the first event's id.
pub const IDEM: Table = "idem";
/// Events due for trigger matching as they were kept before per-tenant inboxes (id,
/// tenant); emptied on open.
pub const INBOX_LEGACY: Table = "inbox";
/// Events due for trigger matching, per tenant (tenant, id): one tenant's flood is one
/// key range, which the others' events do not wait behind.
pub const INBOX: Table = "inbox_by_tenant";
/// Future-dated events by `ts`.
pub const DELAYED: Table = "delayed";
/// Function versions by tenant, id and version.
pub const FUNCTIONS: Table = "functions";
/// Each function's latest version.
pub const FN_LATEST: Table = "fn_latest";
/// Component bytes by tenant and sha256.
pub const COMPONENTS: Table = "components";
/// Compiled artefacts (shared, derived).
pub const ARTIFACTS: Table = "artifacts";
/// Runs by tenant and id (a [`RunHeader`] then the JSON).
pub const RUNS: Table = "runs";
/// Index: tenant, function, run id.
pub const RUNS_BY_FN: Table = "runs_by_fn";
/// Index: tenant, user, run id.
pub const RUNS_BY_USER: Table = "runs_by_user";
/// Index: tenant, status, run id.
pub const RUNS_BY_STATUS: Table = "runs_by_status";
/// Run counts by tenant, function and status.
pub const COUNTS: Table = "counts";
/// The queue as it was before per-tenant queues (due first); emptied on open.
pub const QUEUE_LEGACY: Table = "queue";
/// Queue entries per tenant in due order; the value is the claim marker (the start of
/// the attempt that holds it, 8 bytes) or empty.
pub const QUEUE: Table = "queue_by_tenant";
/// Each tenant with queued entries, under its earliest due time.
pub const QUEUE_HEADS: Table = "queue_heads";
/// Each tenant's current head due time, to find its `QUEUE_HEADS` key.
pub const QUEUE_HEAD_OF: Table = "queue_head_of";
/// The wait index (see [`wait_key`]).
pub const WAITS: Table = "waits";
/// Live waits per tenant, event and path (counts).
pub const WAIT_PATHS: Table = "wait_paths";
/// Small engine values (cron ticks).
pub const META: Table = "meta";
/// Replays by tenant and id (a [`crate::store::ReplayState`]).
pub const REPLAYS: Table = "replays";
/// Index: the replays still running (tenant, id).
pub const REPLAYS_RUNNING: Table = "replays_running";
/// A replay's selected events in order (tenant, replay id, index big-endian).
pub const REPLAY_ITEMS: Table = "replay_items";
/// Index: tenant, replay id, run id.
pub const RUNS_BY_REPLAY: Table = "runs_by_replay";

/// Every table, created at open.
pub const ALL_TABLES: [Table; 25] = [
    EVENTS,
    IDEM,
    INBOX_LEGACY,
    INBOX,
    DELAYED,
    FUNCTIONS,
    FN_LATEST,
    COMPONENTS,
    ARTIFACTS,
    RUNS,
    RUNS_BY_FN,
    RUNS_BY_USER,
    RUNS_BY_STATUS,
    COUNTS,
    QUEUE_LEGACY,
    QUEUE,
    QUEUE_HEADS,
    QUEUE_HEAD_OF,
    WAITS,
    WAIT_PATHS,
    META,
    REPLAYS,
    REPLAYS_RUNNING,
    REPLAY_ITEMS,
    RUNS_BY_REPLAY,
];

const SEP: u8 = 0;

/// Checks that `value` can be a key component (no NUL, bounded length).
pub use crate::store::check_key_part as check_name;

/// Joins components with NUL separators.
pub fn key(parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            k.push(SEP);
        }
        k.extend_from_slice(p);
    }
    k
}

/// `parts` joined, followed by a trailing separator: the prefix of everything beneath.
pub fn prefix(parts: &[&[u8]]) -> Vec<u8> {
    let mut k = key(parts);
    k.push(SEP);
    k
}

fn be(t: i64) -> [u8; 8] {
    (t.max(0) as u64).to_be_bytes()
}

/// An 8-byte big-endian number, if `b` is one.
pub fn be_u64(b: &[u8]) -> Option<u64> {
    b.try_into().ok().map(u64::from_be_bytes)
}

fn corrupt(k: &[u8], what: &str) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(k).into_owned(),
        reason: format!("not a {what}"),
    }
}

fn text(k: &[u8], b: &[u8], what: &str) -> StoreResult<String> {
    String::from_utf8(b.to_vec()).map_err(|_| corrupt(k, what))
}

/// The legacy queue key: big-endian due time first, then tenant, run, step.
pub fn legacy_queue_key(e: &QueueEntry) -> Vec<u8> {
    let mut k = be(e.due).to_vec();
    k.extend_from_slice(&key(&[
        e.tenant.as_bytes(),
        e.run_id.as_bytes(),
        e.step_id.as_bytes(),
    ]));
    k
}

/// Reads a [`legacy_queue_key`] back.
pub fn parse_legacy_queue_key(k: &[u8]) -> StoreResult<QueueEntry> {
    const WHAT: &str = "queue key";
    let due = k
        .get(..8)
        .and_then(be_u64)
        .ok_or_else(|| corrupt(k, WHAT))? as i64;
    let mut parts = k[8..].split(|b| *b == SEP);
    let mut next =
        || -> StoreResult<String> { text(k, parts.next().ok_or_else(|| corrupt(k, WHAT))?, WHAT) };
    Ok(QueueEntry {
        due,
        tenant: next()?,
        run_id: next()?,
        step_id: next()?,
    })
}

/// The queue key: tenant, NUL, big-endian due time, run, NUL, step. One tenant's
/// entries are one key range, in due order.
pub fn queue_key(e: &QueueEntry) -> Vec<u8> {
    let mut k = prefix(&[e.tenant.as_bytes()]);
    k.extend_from_slice(&be(e.due));
    k.extend_from_slice(&key(&[e.run_id.as_bytes(), e.step_id.as_bytes()]));
    k
}

/// Reads a [`queue_key`] back.
pub fn parse_queue_key(k: &[u8]) -> StoreResult<QueueEntry> {
    const WHAT: &str = "per-tenant queue key";
    let at = k
        .iter()
        .position(|b| *b == SEP)
        .ok_or_else(|| corrupt(k, WHAT))?;
    let rest = &k[at + 1..];
    if rest.len() < 9 {
        return Err(corrupt(k, WHAT));
    }
    let due = be_u64(&rest[..8]).ok_or_else(|| corrupt(k, WHAT))? as i64;
    let mut parts = rest[8..].splitn(2, |b| *b == SEP);
    Ok(QueueEntry {
        due,
        tenant: text(k, &k[..at], WHAT)?,
        run_id: text(k, parts.next().ok_or_else(|| corrupt(k, WHAT))?, WHAT)?,
        step_id: text(k, parts.next().ok_or_else(|| corrupt(k, WHAT))?, WHAT)?,
    })
}

/// The queue-head key of a tenant whose earliest entry is due at `due`.
pub fn head_key(due: i64, tenant: &str) -> Vec<u8> {
    let mut k = be(due).to_vec();
    k.extend_from_slice(tenant.as_bytes());
    k
}

/// Reads a [`head_key`] back.
pub fn parse_head_key(k: &[u8]) -> StoreResult<(i64, String)> {
    const WHAT: &str = "queue-head key";
    let due = k
        .get(..8)
        .and_then(be_u64)
        .ok_or_else(|| corrupt(k, WHAT))? as i64;
    Ok((due, text(k, &k[8..], WHAT)?))
}

/// The wait index key; entries for one (tenant, event, path, value) share a prefix.
pub fn wait_key(w: &WaitKey) -> Vec<u8> {
    key(&[
        w.tenant.as_bytes(),
        w.event.as_bytes(),
        w.path.as_bytes(),
        w.value.as_bytes(),
        w.run_id.as_bytes(),
        w.slot.as_bytes(),
    ])
}

/// Decodes a wait index key.
pub fn parse_wait_key(k: &[u8]) -> StoreResult<WaitKey> {
    const WHAT: &str = "wait key";
    let parts: Vec<&[u8]> = k.split(|b| *b == SEP).collect();
    if parts.len() != 6 {
        return Err(corrupt(k, WHAT));
    }
    let s = |i: usize| text(k, parts[i], WHAT);
    Ok(WaitKey {
        tenant: s(0)?,
        event: s(1)?,
        path: s(2)?,
        value: s(3)?,
        run_id: s(4)?,
        slot: s(5)?,
    })
}

/// The key of a wait path's live-wait count.
pub fn wait_path_key(w: &WaitKey) -> Vec<u8> {
    key(&[w.tenant.as_bytes(), w.event.as_bytes(), w.path.as_bytes()])
}

/// The status index key.
pub fn status_key(tenant: &str, status: RunStatus, run_id: &str) -> Vec<u8> {
    key(&[
        tenant.as_bytes(),
        status.as_str().as_bytes(),
        run_id.as_bytes(),
    ])
}

/// The run-count key.
pub fn count_key(tenant: &str, function: &str, status: RunStatus) -> Vec<u8> {
    key(&[
        tenant.as_bytes(),
        function.as_bytes(),
        status.as_str().as_bytes(),
    ])
}

/// The key of a future-dated event: its `ts` first.
pub fn delayed_key(tenant: &str, id: &str, ts: i64) -> Vec<u8> {
    let mut k = be(ts).to_vec();
    k.extend_from_slice(&key(&[tenant.as_bytes(), id.as_bytes()]));
    k
}

/// Splits `a NUL b` into its two halves (lossily decoded).
pub fn split2(k: &[u8]) -> (String, String) {
    let mut parts = k.splitn(2, |b| *b == SEP);
    let a = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let b = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    (a, b)
}

/// The function-version key.
pub fn function_key(tenant: &str, id: &str, version: u64) -> Vec<u8> {
    key(&[tenant.as_bytes(), id.as_bytes(), &version.to_be_bytes()])
}

/// JSON-encodes a record.
pub fn enc<T: Serialize + ?Sized>(v: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| StoreError::Backend(e.to_string()))
}

/// JSON-decodes a record, naming its key if it is corrupt.
pub fn dec<T: DeserializeOwned>(k: &[u8], bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(k).into_owned(),
        reason: e.to_string(),
    })
}

/// A JSON record under `k`.
pub fn get_json<T: DeserializeOwned>(
    r: &(impl KvRead + ?Sized),
    t: Table,
    k: &[u8],
) -> StoreResult<Option<T>> {
    match r.get(t, k)? {
        Some(v) => Ok(Some(dec(k, &v)?)),
        None => Ok(None),
    }
}

/// A big-endian counter; missing or malformed reads as 0.
pub fn get_u64(r: &(impl KvRead + ?Sized), t: Table, k: &[u8]) -> StoreResult<u64> {
    Ok(r.get(t, k)?.and_then(|v| be_u64(&v)).unwrap_or(0))
}

/// Adds `delta` to a counter (never below 0).
pub fn counter_add(
    w: &mut (impl KvWrite + ?Sized),
    t: Table,
    k: &[u8],
    delta: i64,
) -> StoreResult<()> {
    let cur = get_u64(w, t, k)?;
    let next = (cur as i64 + delta).max(0) as u64;
    w.put(t, k, &next.to_be_bytes())
}

/// The first byte of a run record in this layout (older records are bare JSON, `{`).
const RUN_RECORD: u8 = 1;
/// Marker, revision, status.
const RUN_HEADER_LEN: usize = 10;

/// What a run record says about itself without decoding the JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunHeader {
    /// The record's revision (1 when created; +1 per write).
    pub rev: u64,
    /// The run's status.
    pub status: RunStatus,
}

/// Encodes a run record: header, then the run as JSON.
pub fn enc_run(rev: u64, status: RunStatus, json: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(RUN_HEADER_LEN + json.len());
    v.push(RUN_RECORD);
    v.extend_from_slice(&rev.to_be_bytes());
    v.push(
        RunStatus::ALL
            .iter()
            .position(|s| *s == status)
            .unwrap_or(0) as u8,
    );
    v.extend_from_slice(json);
    v
}

/// Splits a run record into its header and JSON. A record written before revisions is
/// bare JSON: revision 0, status read from the JSON.
pub fn split_run<'a>(k: &[u8], v: &'a [u8]) -> StoreResult<(RunHeader, &'a [u8])> {
    if v.first() == Some(&RUN_RECORD) && v.len() >= RUN_HEADER_LEN {
        let rev = be_u64(&v[1..9]).unwrap_or(0);
        let status = *RunStatus::ALL
            .get(v[9] as usize)
            .ok_or_else(|| corrupt(k, "run record (status)"))?;
        return Ok((RunHeader { rev, status }, &v[RUN_HEADER_LEN..]));
    }
    #[derive(serde::Deserialize)]
    struct StatusOnly {
        status: RunStatus,
    }
    let s: StatusOnly = dec(k, v)?;
    Ok((
        RunHeader {
            rev: 0,
            status: s.status,
        },
        v,
    ))
}

/// The header of the run record under `k`, read without copying the run (a record from
/// before revisions is read whole).
pub fn run_header(r: &(impl KvRead + ?Sized), k: &[u8]) -> StoreResult<Option<RunHeader>> {
    let Some(head) = r.get_prefix(RUNS, k, RUN_HEADER_LEN)? else {
        return Ok(None);
    };
    if head.first() == Some(&RUN_RECORD) {
        return Ok(Some(split_run(k, &head)?.0));
    }
    match r.get(RUNS, k)? {
        Some(v) => Ok(Some(split_run(k, &v)?.0)),
        None => Ok(None),
    }
}

/// Decodes a run record, with its revision.
pub fn dec_run(k: &[u8], v: &[u8]) -> StoreResult<Run> {
    let (h, json) = split_run(k, v)?;
    let mut run: Run = dec(k, json)?;
    run.rev = h.rev;
    Ok(run)
}

/// The run key.
pub fn run_key(tenant: &str, id: &str) -> Vec<u8> {
    key(&[tenant.as_bytes(), id.as_bytes()])
}

/// A run with its revision.
pub fn get_run(r: &(impl KvRead + ?Sized), tenant: &str, id: &str) -> StoreResult<Option<Run>> {
    let k = run_key(tenant, id);
    match r.get(RUNS, &k)? {
        Some(v) => Ok(Some(dec_run(&k, &v)?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keys_sort_by_due_and_round_trip() {
        let a = QueueEntry {
            due: 5,
            tenant: "t".into(),
            run_id: "r".into(),
            step_id: "s".into(),
        };
        let b = QueueEntry {
            due: 300,
            tenant: "a".into(),
            run_id: "r".into(),
            step_id: "s".into(),
        };
        assert!(legacy_queue_key(&a) < legacy_queue_key(&b));
        assert_eq!(parse_legacy_queue_key(&legacy_queue_key(&b)).unwrap(), b);
        // Per tenant: one tenant's entries are contiguous and in due order.
        let c = QueueEntry {
            due: 1,
            tenant: "ab".into(),
            run_id: "r".into(),
            step_id: "s".into(),
        };
        let a2 = QueueEntry {
            due: 900,
            ..b.clone()
        };
        assert!(queue_key(&b) < queue_key(&a2));
        assert!(queue_key(&a2) < queue_key(&c), "tenant first");
        for e in [&a, &b, &c, &a2] {
            assert_eq!(&parse_queue_key(&queue_key(e)).unwrap(), e);
        }
        assert!(head_key(5, "z") < head_key(6, "a"));
        assert_eq!(
            parse_head_key(&head_key(7, "acme")).unwrap(),
            (7, "acme".into())
        );
        assert!(check_name("tenant", "a\0b").is_err());
    }
}
