//! Function versions, small engine values and component bytes on Redis. A deploy also
//! bumps a global counter, so that other processes notice it without reading every
//! function.

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use super::{corrupt, RedisStore};
use crate::store::{BlobStore, FunctionRecord, FunctionStore, StoreError, StoreResult};

/// Tenants with functions.
pub const FUNCTIONS: &str = "functions";

fn record(key: &str, v: &[u8]) -> StoreResult<FunctionRecord> {
    serde_json::from_slice(v).map_err(|e| corrupt(key, e.to_string()))
}

/// Meta keys whose changes are not configuration (cron ticks change every tick).
fn is_config(key: &str) -> bool {
    !key.starts_with("cron/")
}

#[async_trait]
impl FunctionStore for RedisStore {
    async fn put_function(
        &self,
        tenant: &str,
        id: &str,
        def: &Value,
        now: i64,
    ) -> StoreResult<u64> {
        crate::store::check_key_part("tenant", tenant)?;
        crate::store::check_key_part("function id", id)?;
        #[derive(Serialize)]
        struct In<'a> {
            tenant: &'a str,
            id: &'a str,
            def: String,
            now: i64,
        }
        let input = In {
            tenant,
            id,
            def: def.to_string(),
            now,
        };
        let v: u64 = self
            .op(
                &self.tp(tenant),
                "put_function",
                &input,
                Some((FUNCTIONS, tenant)),
            )
            .await?;
        let _: i64 = self.q(redis::cmd("INCR").arg(self.gk("deploys"))).await?;
        Ok(v)
    }

    async fn get_function(
        &self,
        tenant: &str,
        id: &str,
        version: u64,
    ) -> StoreResult<Option<FunctionRecord>> {
        let f = format!("{id}\0{version}");
        let v: Option<Vec<u8>> = self
            .q(redis::cmd("HGET").arg(self.tp(tenant) + "fn").arg(&f))
            .await?;
        v.map(|v| record(id, &v)).transpose()
    }

    async fn function_versions(&self, tenant: &str, id: &str) -> StoreResult<Vec<FunctionRecord>> {
        let p = self.tp(tenant);
        let n: Option<u64> = self
            .q(redis::cmd("HGET").arg(p.clone() + "fnver").arg(id))
            .await?;
        let n = n.unwrap_or(0);
        if n == 0 {
            return Ok(Vec::new());
        }
        let fields: Vec<String> = (1..=n).map(|v| format!("{id}\0{v}")).collect();
        let v: Vec<Option<Vec<u8>>> = self
            .q(redis::cmd("HMGET").arg(p + "fn").arg(&fields))
            .await?;
        v.into_iter().flatten().map(|v| record(id, &v)).collect()
    }

    async fn latest_functions(&self) -> StoreResult<Vec<(String, FunctionRecord)>> {
        let mut out = Vec::new();
        for tenant in self.registry(FUNCTIONS).await? {
            let p = self.tp(&tenant);
            let mut latest: Vec<(String, u64)> = self
                .q(redis::cmd("HGETALL").arg(p.clone() + "fnlatest"))
                .await?;
            latest.sort();
            if latest.is_empty() {
                continue;
            }
            let fields: Vec<String> = latest.iter().map(|(id, v)| format!("{id}\0{v}")).collect();
            let v: Vec<Option<Vec<u8>>> = self
                .q(redis::cmd("HMGET").arg(p + "fn").arg(&fields))
                .await?;
            for r in v.into_iter().flatten() {
                out.push((tenant.clone(), record(&tenant, &r)?));
            }
        }
        Ok(out)
    }

    async fn config_version(&self) -> StoreResult<Option<u64>> {
        let v: Option<u64> = self.q(redis::cmd("GET").arg(self.gk("deploys"))).await?;
        Ok(Some(v.unwrap_or(0)))
    }

    async fn get_meta(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.q(redis::cmd("HGET").arg(self.gk("meta")).arg(key))
            .await
    }

    async fn put_meta_if(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> StoreResult<bool> {
        #[derive(Serialize)]
        struct In<'a> {
            key: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            expected: Option<String>,
            value: String,
        }
        let utf8 = |b: &[u8]| {
            String::from_utf8(b.to_vec())
                .map_err(|_| StoreError::Backend("redis: meta values must be UTF-8".into()))
        };
        let input = In {
            key,
            expected: expected.map(utf8).transpose()?,
            value: utf8(value)?,
        };
        // The meta hash is one key: the script's prefix is its name less `meta`.
        let n: i64 = self.op(&self.gk(""), "meta_if", &input, None).await?;
        if n == 1 && is_config(key) {
            let _: i64 = self.q(redis::cmd("INCR").arg(self.gk("deploys"))).await?;
        }
        Ok(n == 1)
    }
}

#[async_trait]
impl BlobStore for RedisStore {
    async fn put_component(&self, tenant: &str, sha256: &str, bytes: Vec<u8>) -> StoreResult<()> {
        crate::store::check_key_part("tenant", tenant)?;
        self.q(redis::cmd("HSET")
            .arg(self.tp(tenant) + "comp")
            .arg(sha256)
            .arg(bytes))
            .await
            .map(|_: i64| ())
    }

    async fn get_component(&self, tenant: &str, sha256: &str) -> StoreResult<Option<Vec<u8>>> {
        self.q(redis::cmd("HGET").arg(self.tp(tenant) + "comp").arg(sha256))
            .await
    }

    async fn put_artifact(&self, key: &str, bytes: Vec<u8>) -> StoreResult<()> {
        self.artifacts.put(key, bytes)
    }

    async fn get_artifact(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.artifacts.get(key)
    }
}
