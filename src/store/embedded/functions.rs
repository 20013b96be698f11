//! Functions, engine values and blobs in the embedded layout.

use std::ops::Bound;

use serde_json::Value;

use super::kv::{scan_prefix, KvRead, KvWrite};
use super::schema::*;
use crate::store::{FunctionRecord, StoreError, StoreResult};

/// Stores a new version of a function; its number.
pub fn put(w: &mut dyn KvWrite, tenant: &str, id: &str, def: &Value, now: i64) -> StoreResult<u64> {
    check_name("tenant", tenant)?;
    check_name("function id", id)?;
    let lk = key(&[tenant.as_bytes(), id.as_bytes()]);
    let version = get_u64(w, FN_LATEST, &lk)? + 1;
    let rec = FunctionRecord {
        id: id.into(),
        version,
        def: def.clone(),
        created_at: now,
    };
    w.put(FUNCTIONS, &function_key(tenant, id, version), &enc(&rec)?)?;
    w.put(FN_LATEST, &lk, &version.to_be_bytes())?;
    Ok(version)
}

/// Every version of a function, oldest first.
pub fn versions(r: &dyn KvRead, tenant: &str, id: &str) -> StoreResult<Vec<FunctionRecord>> {
    let pfx = prefix(&[tenant.as_bytes(), id.as_bytes()]);
    let mut out = Vec::new();
    scan_prefix(r, FUNCTIONS, &pfx, None, &mut |k, v| {
        // The version is exactly 8 bytes after the prefix; longer ids sharing the prefix
        // are other functions.
        if k.len() == pfx.len() + 8 {
            out.push(dec(k, v)?);
        }
        Ok(true)
    })?;
    Ok(out)
}

/// The latest version of every function of every tenant.
pub fn latest(r: &dyn KvRead) -> StoreResult<Vec<(String, FunctionRecord)>> {
    let mut found = Vec::new();
    r.scan(
        FN_LATEST,
        Bound::Unbounded,
        Bound::Unbounded,
        false,
        &mut |k, v| {
            let version = be_u64(v).ok_or_else(|| StoreError::Corrupt {
                key: String::from_utf8_lossy(k).into_owned(),
                reason: "version is not 8 bytes".into(),
            })?;
            let (tenant, id) = split2(k);
            found.push((tenant, id, version));
            Ok(true)
        },
    )?;
    let mut out = Vec::new();
    for (tenant, id, version) in found {
        if let Some(rec) = get_json(r, FUNCTIONS, &function_key(&tenant, &id, version))? {
            out.push((tenant, rec));
        }
    }
    Ok(out)
}

/// Sets a meta value if it is `expected` now; whether it was set.
pub fn put_meta_if(
    w: &mut dyn KvWrite,
    k: &str,
    expected: Option<&[u8]>,
    value: &[u8],
) -> StoreResult<bool> {
    if w.get(META, k.as_bytes())?.as_deref() != expected {
        return Ok(false);
    }
    w.put(META, k.as_bytes(), value)?;
    Ok(true)
}

/// Stores a component's bytes.
pub fn put_component(
    w: &mut dyn KvWrite,
    tenant: &str,
    sha256: &str,
    bytes: &[u8],
) -> StoreResult<()> {
    check_name("tenant", tenant)?;
    w.put(
        COMPONENTS,
        &key(&[tenant.as_bytes(), sha256.as_bytes()]),
        bytes,
    )
}
