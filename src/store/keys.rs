//! Byte-key layouts shared by the ordered key-value backends. Every tenant-owned key
//! starts with the tenant id and a NUL, so one tenant's data is one key range.

use super::{StoreError, StoreResult};
use crate::run::{QueueEntry, WaitKey};

const SEP: u8 = 0;

/// Checks that `value` can be a key component (no NUL, bounded length).
pub fn check_name(what: &'static str, value: &str) -> StoreResult<()> {
    let reason = if value.is_empty() {
        "must not be empty"
    } else if value.len() > 512 {
        "is longer than 512 bytes"
    } else if value.as_bytes().contains(&SEP) {
        "contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(StoreError::InvalidName {
        what,
        value: value.chars().take(64).collect(),
        reason,
    })
}

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

/// The queue key: big-endian due time first, so a range scan yields entries in due order.
pub fn queue_key(e: &QueueEntry) -> Vec<u8> {
    let due = e.due.max(0) as u64;
    let mut k = due.to_be_bytes().to_vec();
    k.extend_from_slice(&key(&[
        e.tenant.as_bytes(),
        e.run_id.as_bytes(),
        e.step_id.as_bytes(),
    ]));
    k
}

/// The per-tenant queue key: tenant, NUL, big-endian due time, run, NUL, step. One
/// tenant's entries are one key range, in due order.
pub fn tenant_queue_key(e: &QueueEntry) -> Vec<u8> {
    let mut k = prefix(&[e.tenant.as_bytes()]);
    k.extend_from_slice(&(e.due.max(0) as u64).to_be_bytes());
    k.extend_from_slice(&key(&[e.run_id.as_bytes(), e.step_id.as_bytes()]));
    k
}

/// Reads a [`tenant_queue_key`] back.
pub fn parse_tenant_queue_key(k: &[u8]) -> StoreResult<QueueEntry> {
    let corrupt = || StoreError::Corrupt {
        key: String::from_utf8_lossy(k).into_owned(),
        reason: "not a per-tenant queue key".into(),
    };
    let at = k.iter().position(|b| *b == SEP).ok_or_else(corrupt)?;
    let rest = k.get(at + 1..).ok_or_else(corrupt)?;
    if rest.len() < 9 {
        return Err(corrupt());
    }
    let due = u64::from_be_bytes(rest[..8].try_into().map_err(|_| corrupt())?) as i64;
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| corrupt());
    let mut parts = rest[8..].splitn(2, |b| *b == SEP);
    Ok(QueueEntry {
        due,
        tenant: text(&k[..at])?,
        run_id: text(parts.next().ok_or_else(corrupt)?)?,
        step_id: text(parts.next().ok_or_else(corrupt)?)?,
    })
}

/// The queue-head key of a tenant whose earliest entry is due at `due`: due first, so the
/// tenants waiting longest come first.
pub fn head_key(due: i64, tenant: &str) -> Vec<u8> {
    let mut k = (due.max(0) as u64).to_be_bytes().to_vec();
    k.extend_from_slice(tenant.as_bytes());
    k
}

/// Reads a [`head_key`] back.
pub fn parse_head_key(k: &[u8]) -> StoreResult<(i64, String)> {
    let corrupt = || StoreError::Corrupt {
        key: String::from_utf8_lossy(k).into_owned(),
        reason: "not a queue-head key".into(),
    };
    if k.len() < 9 {
        return Err(corrupt());
    }
    let due = u64::from_be_bytes(k[..8].try_into().map_err(|_| corrupt())?) as i64;
    let tenant = String::from_utf8(k[8..].to_vec()).map_err(|_| corrupt())?;
    Ok((due, tenant))
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
    let parts: Vec<&[u8]> = k.split(|b| *b == SEP).collect();
    let s = |i: usize| {
        parts
            .get(i)
            .and_then(|p| String::from_utf8(p.to_vec()).ok())
            .ok_or_else(|| StoreError::Corrupt {
                key: String::from_utf8_lossy(k).into_owned(),
                reason: "not a wait key".into(),
            })
    };
    if parts.len() != 6 {
        return Err(StoreError::Corrupt {
            key: String::from_utf8_lossy(k).into_owned(),
            reason: "not a wait key".into(),
        });
    }
    Ok(WaitKey {
        tenant: s(0)?,
        event: s(1)?,
        path: s(2)?,
        value: s(3)?,
        run_id: s(4)?,
        slot: s(5)?,
    })
}

/// Decodes a queue key.
pub fn parse_queue_key(k: &[u8]) -> StoreResult<QueueEntry> {
    let corrupt = || StoreError::Corrupt {
        key: String::from_utf8_lossy(k).into_owned(),
        reason: "not a queue key".into(),
    };
    if k.len() < 9 {
        return Err(corrupt());
    }
    let due = u64::from_be_bytes(k[..8].try_into().map_err(|_| corrupt())?) as i64;
    let mut parts = k[8..].split(|b| *b == SEP);
    let mut next = || -> StoreResult<String> {
        let p = parts.next().ok_or_else(corrupt)?;
        String::from_utf8(p.to_vec()).map_err(|_| corrupt())
    };
    Ok(QueueEntry {
        due,
        tenant: next()?,
        run_id: next()?,
        step_id: next()?,
    })
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
        assert!(queue_key(&a) < queue_key(&b));
        assert_eq!(parse_queue_key(&queue_key(&b)).unwrap(), b);
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
        assert!(tenant_queue_key(&b) < tenant_queue_key(&a2));
        assert!(tenant_queue_key(&a2) < tenant_queue_key(&c), "tenant first");
        for e in [&a, &b, &c, &a2] {
            assert_eq!(&parse_tenant_queue_key(&tenant_queue_key(e)).unwrap(), e);
        }
        assert!(head_key(5, "z") < head_key(6, "a"));
        assert_eq!(
            parse_head_key(&head_key(7, "acme")).unwrap(),
            (7, "acme".into())
        );
        assert!(check_name("tenant", "a\0b").is_err());
    }
}
