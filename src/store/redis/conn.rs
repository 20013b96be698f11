//! Connecting to Redis: one server through a reconnecting multiplexed connection, or a
//! cluster through the cluster client; and the persistence check made at start.

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use super::backend;
use crate::store::{StoreError, StoreResult};

/// Where the data is: one server, or the seed nodes of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// `redis://host:port/db`.
    Server(String),
    /// `redis://h1:p1,h2:p2,…`: a Redis Cluster, found from these nodes.
    Cluster(Vec<String>),
}

impl RedisTarget {
    /// Reads a store URL; several comma-separated hosts name a cluster.
    pub fn parse(url: &str) -> StoreResult<Self> {
        let bad =
            |reason: &str| StoreError::Backend(format!("invalid redis URL `{url}`: {reason}"));
        let rest = url
            .strip_prefix("redis://")
            .ok_or_else(|| bad("it must start with redis://"))?;
        let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
        if hosts.is_empty() {
            return Err(bad("no host"));
        }
        let hosts: Vec<&str> = hosts.split(',').collect();
        if hosts.len() == 1 {
            redis::Client::open(url).map_err(|e| bad(&e.to_string()))?;
            return Ok(RedisTarget::Server(url.into()));
        }
        if !path.is_empty() && path != "0" {
            return Err(bad("a cluster has only database 0"));
        }
        Ok(RedisTarget::Cluster(
            hosts.iter().map(|h| format!("redis://{h}")).collect(),
        ))
    }

    /// Every node named (for the persistence check, and the feed's subscription).
    pub fn nodes(&self) -> Vec<String> {
        match self {
            RedisTarget::Server(u) => vec![u.clone()],
            RedisTarget::Cluster(n) => n.clone(),
        }
    }
}

/// A connection to either kind; cheap to clone, shared by every task.
#[derive(Clone)]
pub enum Conn {
    /// One server.
    Server(ConnectionManager, RedisTarget),
    /// A cluster.
    Cluster(ClusterConnection, RedisTarget),
}

impl Conn {
    /// Connects to `target`.
    pub async fn connect(target: &RedisTarget) -> StoreResult<Self> {
        let unreachable =
            |e: redis::RedisError| StoreError::Unavailable(format!("cannot reach redis: {e}"));
        match target {
            RedisTarget::Server(url) => {
                let client = redis::Client::open(url.as_str()).map_err(backend)?;
                let cfg = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
                    .set_response_timeout(Some(std::time::Duration::from_secs(10)))
                    .set_number_of_retries(2);
                let m = client
                    .get_connection_manager_with_config(cfg)
                    .await
                    .map_err(unreachable)?;
                Ok(Conn::Server(m, target.clone()))
            }
            RedisTarget::Cluster(nodes) => {
                let client = redis::cluster::ClusterClientBuilder::new(nodes.clone())
                    .connection_timeout(std::time::Duration::from_secs(2))
                    .response_timeout(std::time::Duration::from_secs(10))
                    .build()
                    .map_err(backend)?;
                let c = client.get_async_connection().await.map_err(unreachable)?;
                Ok(Conn::Cluster(c, target.clone()))
            }
        }
    }

    /// Whether this is a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Conn::Cluster(..))
    }

    /// Refuses a Redis that would lose acknowledged writes in a crash, unless told to
    /// go on (then says so loudly).
    pub async fn check_durability(&self, unsafe_ok: bool) -> StoreResult<()> {
        let target = match self {
            Conn::Server(_, t) | Conn::Cluster(_, t) => t,
        };
        for node in target.nodes() {
            let client = redis::Client::open(node.as_str()).map_err(backend)?;
            let mut c = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| {
                    StoreError::Unavailable(format!("cannot reach redis at {node}: {e}"))
                })?;
            let setting = |name: &'static str| {
                let mut c = c.clone();
                async move {
                    let v: Vec<String> = redis::cmd("CONFIG")
                        .arg("GET")
                        .arg(name)
                        .query_async(&mut c)
                        .await
                        .map_err(backend)?;
                    Ok::<_, StoreError>(v.get(1).cloned().unwrap_or_default())
                }
            };
            let aof = setting("appendonly").await?;
            let fsync = setting("appendfsync").await?;
            let _ = &mut c;
            if aof != "yes" || fsync != "always" {
                let what = format!(
                    "redis at {node} has appendonly {aof} and appendfsync {fsync}: an acknowledged \
                     event or step result could be lost in a crash (weir needs appendonly yes and \
                     appendfsync always)"
                );
                if !unsafe_ok {
                    return Err(StoreError::Backend(format!(
                        "{what}; set them, or pass --unsafe-redis-durability to serve anyway"
                    )));
                }
                tracing::warn!("UNSAFE: {what}; serving anyway (--unsafe-redis-durability)");
            }
        }
        Ok(())
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Server(c, _) => c.req_packed_command(cmd),
            Conn::Cluster(c, _) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Server(c, _) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c, _) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Server(c, _) => c.get_db(),
            Conn::Cluster(c, _) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_server_or_a_cluster() {
        assert_eq!(
            RedisTarget::parse("redis://127.0.0.1:6379/2").unwrap(),
            RedisTarget::Server("redis://127.0.0.1:6379/2".into())
        );
        assert_eq!(
            RedisTarget::parse("redis://a:1,b:2").unwrap(),
            RedisTarget::Cluster(vec!["redis://a:1".into(), "redis://b:2".into()])
        );
        for bad in ["http://x", "redis://", "redis://a:1,b:2/3"] {
            let e = RedisTarget::parse(bad).unwrap_err().to_string();
            assert!(e.contains("invalid redis URL"), "{bad}: {e}");
        }
    }
}
