//! The Redis backend: any number of weir processes share one Redis (or a Redis
//! Cluster). Every state transition the embedded stores make in one transaction is one
//! call of one Lua script here ([`weir.lua`](./weir.lua)), run by Redis atomically; every
//! key of a tenant carries the tenant's hash tag (`ns:{tenant}:…`), so each such call
//! stays in one slot and tenants spread across a cluster's shards. The few registries
//! that span tenants (which tenants have pending events, queued steps, functions,
//! replays) are plain sets outside any tenant's slot: a standalone server updates them
//! inside the same script, a cluster client right before and after it (a registry may
//! name a tenant with nothing left; it never misses one with work).
//!
//! Leases live in Redis beside the queue: a claim moves an entry from the tenant's ready
//! set into its lease hash with a fencing token from the tenant's counter, and a write
//! under a lease checks that token in the same script that records the result.
//! Compiled artefacts are derived data and stay in each process (see [`artifacts`]).

mod artifacts;
mod conn;
mod events;
mod feed;
mod functions;
mod replays;
mod runs;
mod users;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use redis::Value as RV;
use serde::Serialize;

use self::conn::Conn;
pub use self::conn::RedisTarget;
use crate::run::{QueueEntry, Run, RunStatus};
use crate::store::{Feed, FeedStore, StoreError, StoreResult};

const SCRIPT: &str = include_str!("weir.lua");

/// A store on a Redis server or cluster.
pub struct RedisStore {
    conn: Conn,
    script: Arc<redis::Script>,
    /// Key namespace (`weir` unless told otherwise): several weir installations, or
    /// tests, can share one server.
    ns: String,
    artifacts: artifacts::Artifacts,
    feed: Arc<feed::RedisFeed>,
}

/// How to open a [`RedisStore`].
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://host:port/db`, or `redis://h1:p1,h2:p2,…` for a cluster.
    pub url: String,
    /// Key namespace.
    pub namespace: String,
    /// Serve even if Redis does not persist every write (`appendonly yes`,
    /// `appendfsync always`).
    pub unsafe_durability: bool,
    /// Where compiled artefacts are cached (in memory if `None`).
    pub artifact_dir: Option<std::path::PathBuf>,
}

impl RedisOptions {
    /// Options for `url` with the default namespace, durability checked.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.into(),
            namespace: "weir".into(),
            unsafe_durability: false,
            artifact_dir: None,
        }
    }
}

pub(crate) fn backend(e: redis::RedisError) -> StoreError {
    if e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
    {
        StoreError::Unavailable(format!("redis: {e}"))
    } else {
        StoreError::Backend(format!("redis: {e}"))
    }
}

/// JSON of a value the store writes.
fn enc<T: Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(format!("cannot encode: {e}")))
}

impl FeedStore for RedisStore {
    fn feed(&self) -> Option<Arc<dyn Feed>> {
        Some(self.feed.clone())
    }
}

fn corrupt(key: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: key.into(),
        reason: reason.into(),
    }
}

impl RedisStore {
    /// Connects, checks persistence, and loads the script.
    pub async fn open(opts: RedisOptions) -> StoreResult<Self> {
        let target = RedisTarget::parse(&opts.url)?;
        let conn = Conn::connect(&target).await?;
        conn.check_durability(opts.unsafe_durability).await?;
        let artifacts = artifacts::Artifacts::new(opts.artifact_dir)?;
        let feed = Arc::new(feed::RedisFeed {
            conn: conn.clone(),
            node: target.nodes().remove(0),
            channel: format!("{}:{{:g}}:feed", opts.namespace),
        });
        Ok(Self {
            conn,
            script: Arc::new(redis::Script::new(SCRIPT)),
            ns: opts.namespace,
            artifacts,
            feed,
        })
    }

    /// The key prefix of `tenant`'s keys.
    fn tp(&self, tenant: &str) -> String {
        format!("{}:{{{tenant}}}:", self.ns)
    }

    /// A key outside any tenant. They share one hash tag, `{:g}`, which no tenant id can
    /// spell (ids are letters, digits, `-` and `_`), so a script over one of them is in
    /// one slot with its prefix.
    fn gk(&self, name: &str) -> String {
        format!("{}:{{:g}}:{name}", self.ns)
    }

    /// Runs `op` of the script for the keys under `prefix`, with `input` as JSON; a
    /// standalone server also adds `tenant` to `registry` in the same call, a cluster
    /// client does it before and after.
    async fn op<T: redis::FromRedisValue>(
        &self,
        prefix: &str,
        op: &str,
        input: &impl Serialize,
        registry: Option<(&str, &str)>,
    ) -> StoreResult<T> {
        let json = serde_json::to_string(input).map_err(|e| StoreError::Backend(e.to_string()))?;
        let reg = registry.map(|(name, _)| self.gk(name));
        let inline = reg.as_deref().filter(|_| !self.conn.is_cluster());
        if let (Some(r), true, Some((_, t))) = (&reg, self.conn.is_cluster(), registry) {
            self.sadd(r, t).await?;
        }
        let mut inv = self.script.key(prefix);
        inv.arg(op).arg(json).arg(inline.unwrap_or(""));
        let mut c = self.conn.clone();
        let out = inv.invoke_async(&mut c).await.map_err(backend)?;
        if let (Some(r), true, Some((_, t))) = (&reg, self.conn.is_cluster(), registry) {
            self.sadd(r, t).await?;
        }
        Ok(out)
    }

    async fn sadd(&self, key: &str, member: &str) -> StoreResult<()> {
        self.q::<i64>(redis::cmd("SADD").arg(key).arg(member))
            .await
            .map(drop)
    }

    /// One command.
    async fn q<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> StoreResult<T> {
        let mut c = self.conn.clone();
        cmd.query_async(&mut c).await.map_err(backend)
    }

    /// Commands on one tenant's keys (one slot), in one round trip.
    async fn pipe<T: redis::FromRedisValue>(&self, p: &redis::Pipeline) -> StoreResult<T> {
        let mut c = self.conn.clone();
        p.query_async(&mut c).await.map_err(backend)
    }

    /// The members of a registry.
    async fn registry(&self, name: &str) -> StoreResult<Vec<String>> {
        let mut v: Vec<String> = self.q(redis::cmd("SMEMBERS").arg(self.gk(name))).await?;
        v.sort();
        Ok(v)
    }

    /// Drops `tenant` from a registry if `empty` says it has nothing left there, then
    /// looks again and puts it back if something came in meanwhile.
    async fn prune(&self, name: &str, tenant: &str, keys: &[String]) -> StoreResult<()> {
        let reg = self.gk(name);
        let _: i64 = self.q(redis::cmd("SREM").arg(&reg).arg(tenant)).await?;
        let mut p = redis::pipe();
        for k in keys {
            p.cmd("EXISTS").arg(k);
        }
        let there: Vec<i64> = self.pipe(&p).await?;
        if there.iter().any(|n| *n > 0) {
            self.sadd(&reg, tenant).await?;
        }
        Ok(())
    }

    /// Ids from a lexicographic index, newest (greatest) first, below `cursor`.
    async fn ids_below(
        &self,
        key: &str,
        cursor: Option<&str>,
        offset: usize,
        n: usize,
    ) -> StoreResult<Vec<String>> {
        let max = cursor.map_or("+".to_string(), |c| format!("({c}"));
        self.q(redis::cmd("ZREVRANGEBYLEX")
            .arg(key)
            .arg(max)
            .arg("-")
            .arg("LIMIT")
            .arg(offset)
            .arg(n))
            .await
    }

    /// Runs by id, decoded (missing ones left out).
    async fn runs_by_id(&self, tenant: &str, ids: &[String]) -> StoreResult<Vec<Run>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let raw: Vec<Option<Vec<u8>>> = self
            .q(redis::cmd("HMGET").arg(self.tp(tenant) + "runs").arg(ids))
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        for (id, v) in ids.iter().zip(raw) {
            if let Some(v) = v {
                out.push(decode_run(id, &v)?);
            }
        }
        Ok(out)
    }
}

/// A run record: `<rev> <status>\n<json>`.
fn decode_run(id: &str, v: &[u8]) -> StoreResult<Run> {
    let nl = v
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| corrupt(id, "not a run record"))?;
    let head = std::str::from_utf8(&v[..nl]).map_err(|_| corrupt(id, "not a run header"))?;
    let rev = head
        .split(' ')
        .next()
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| corrupt(id, "no revision"))?;
    let mut run: Run =
        serde_json::from_slice(&v[nl + 1..]).map_err(|e| corrupt(id, e.to_string()))?;
    run.rev = rev;
    Ok(run)
}

/// A queue entry as the script takes it: `[due, run, step]`.
fn entry_arg(e: &QueueEntry) -> (String, &str, &str) {
    (e.due.to_string(), &e.run_id, &e.step_id)
}

/// A queue member (`due\0run\0step`) read back.
fn parse_member(tenant: &str, m: &[u8]) -> StoreResult<QueueEntry> {
    let s = std::str::from_utf8(m).map_err(|_| corrupt(tenant, "queue member not UTF-8"))?;
    let mut it = s.split('\0');
    let bad = || corrupt(tenant, format!("not a queue member: {s:?}"));
    let due = it.next().and_then(|d| d.parse().ok()).ok_or_else(bad)?;
    let run_id = it.next().ok_or_else(bad)?.to_string();
    let step_id = it.next().ok_or_else(bad)?.to_string();
    Ok(QueueEntry {
        due,
        tenant: tenant.into(),
        run_id,
        step_id,
    })
}

/// A user id usable as a key part, if the run or event has one.
fn indexed_user(u: Option<String>) -> Option<String> {
    u.filter(|u| crate::store::check_key_part("user", u).is_ok())
}

fn status_name(s: RunStatus) -> &'static str {
    s.as_str()
}

fn text(v: &RV) -> Option<String> {
    match v {
        RV::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        RV::SimpleString(s) => Some(s.clone()),
        RV::Int(i) => Some(i.to_string()),
        _ => None,
    }
}
