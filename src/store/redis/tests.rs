//! The conformance suite on a real `redis-server` that this test binary starts on a port
//! of its own (with `appendonly yes`, `appendfsync always`), and what only Redis does.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use super::{RedisOptions, RedisStore};
use crate::store::Store;

/// A `redis-server` for this test process: started once, stopped when the process ends
/// (its wrapper shell kills it once our end of its stdin pipe closes).
pub struct TestRedis {
    /// `redis://127.0.0.1:PORT`.
    pub url: String,
    _guard: std::process::Child,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends one command to the server on `port`; its text answer, if it gave one.
fn ask(port: u16, cmd: &[&str]) -> Option<String> {
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .and_then(|c| c.get_connection())
        .ok()?;
    redis::cmd(cmd[0]).arg(&cmd[1..]).query(&mut c).ok()
}

/// Starts a redis-server with the given extra arguments (for persistence tests).
pub fn start_redis(extra: &str) -> TestRedis {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let script = format!(
        "redis-server --port {port} --bind 127.0.0.1 --dir {} --save '' {extra} >{}/log 2>&1 & \
         pid=$!; read _; kill $pid",
        dir.path().display(),
        dir.path().display()
    );
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("redis-server must be installed (apt install redis-server)");
    let url = format!("redis://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while ask(port, &["PING"]).is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "redis-server did not start: {}",
            std::fs::read_to_string(dir.path().join("log")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    TestRedis {
        url,
        _guard: child,
        _dir: dir,
    }
}

/// The shared durable server of this test binary.
pub fn redis() -> &'static TestRedis {
    static R: OnceLock<TestRedis> = OnceLock::new();
    R.get_or_init(|| start_redis("--appendonly yes --appendfsync always"))
}

/// The namespace of the store at `dir`: one per location, so the same location reopens
/// the same data.
fn namespace(prefix: &str, dir: &Path) -> String {
    format!("{prefix}{}", hex::encode(dir.display().to_string()))
}

/// A store on `url` in namespace `ns`, opened from a synchronous opener.
fn open_at(url: &str, ns: String) -> Arc<dyn Store> {
    let mut opts = RedisOptions::new(url);
    opts.namespace = ns;
    tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current()
            .block_on(RedisStore::open(opts))
            .map(|s| Arc::new(s) as Arc<dyn Store>)
            .unwrap()
    })
}

fn open_redis(dir: &Path) -> Arc<dyn Store> {
    open_at(&redis().url, namespace("t", dir))
}

mod conformance {
    crate::store::conformance::store_conformance!(super::open_redis);
}

/// A 3-node Redis Cluster (3 primaries, no replicas) for this test process, made with
/// `redis-cli --cluster create`; every node persists as the single server does.
pub struct TestCluster {
    /// `redis://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`.
    pub url: String,
    _guard: std::process::Child,
    _dir: tempfile::TempDir,
}

fn start_cluster() -> TestCluster {
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut script = String::new();
    for p in &ports {
        let d = dir.path().join(p.to_string());
        std::fs::create_dir(&d).unwrap();
        script += &format!(
            "redis-server --port {p} --bind 127.0.0.1 --dir {d} --save '' --cluster-enabled yes \
             --appendonly yes --appendfsync always >{d}/log 2>&1 & pids=\"$pids $!\"; ",
            d = d.display()
        );
    }
    script += "read _; kill $pids";
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("redis-server must be installed (apt install redis-server)");
    let logs = || {
        ports
            .iter()
            .map(|p| std::fs::read_to_string(dir.path().join(p.to_string()).join("log")))
            .map(Result::unwrap_or_default)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !ports.iter().all(|p| ask(*p, &["PING"]).is_some()) {
        assert!(
            std::time::Instant::now() < deadline,
            "nodes did not start: {}",
            logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let out = std::process::Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&nodes)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("redis-cli must be installed (apt install redis-tools)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Every node must agree the cluster is up before a client may be handed its map.
    let ok = |p: u16| ask(p, &["CLUSTER", "INFO"]).is_some_and(|i| i.contains("cluster_state:ok"));
    while !ports.iter().all(|p| ok(*p)) {
        assert!(
            std::time::Instant::now() < deadline,
            "cluster not ok: {}",
            logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    TestCluster {
        url: format!("redis://{}", nodes.join(",")),
        _guard: child,
        _dir: dir,
    }
}

/// The shared cluster of this test binary.
pub fn cluster() -> &'static TestCluster {
    static C: OnceLock<TestCluster> = OnceLock::new();
    C.get_or_init(start_cluster)
}

fn open_cluster(dir: &Path) -> Arc<dyn Store> {
    open_at(&cluster().url, namespace("c", dir))
}

mod on_a_cluster {
    crate::store::conformance::store_conformance!(super::open_cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_lives_on_one_node_and_tenants_spread_over_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_cluster(dir.path());
    let ns = namespace("c", dir.path());
    let tenants = ["acme", "globex", "initech", "umbrella", "hooli", "tyrell"];
    for t in tenants {
        let evs = crate::event::parse_batch(br#"[{"name":"a"},{"name":"b"}]"#, 10).unwrap();
        store.append_events(t, evs, 1_000).await.unwrap();
    }
    // Which node holds each key of this namespace.
    let mut home: std::collections::BTreeMap<String, std::collections::BTreeSet<usize>> =
        Default::default();
    for (n, node) in cluster()
        .url
        .trim_start_matches("redis://")
        .split(',')
        .enumerate()
    {
        let mut c = redis::Client::open(format!("redis://{node}"))
            .unwrap()
            .get_connection()
            .unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{ns}:{{*"))
            .query(&mut c)
            .unwrap();
        for k in keys {
            let tag = k[k.find('{').unwrap() + 1..k.find('}').unwrap()].to_string();
            home.entry(tag).or_default().insert(n);
        }
    }
    for t in tenants {
        assert_eq!(home.get(t).map(|h| h.len()), Some(1), "{t}: {home:?}");
    }
    let nodes: std::collections::BTreeSet<usize> =
        tenants.iter().flat_map(|t| home[*t].clone()).collect();
    assert!(nodes.len() > 1, "all tenants on one node: {home:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_does_not_persist_every_write_is_refused() {
    let lax = start_redis("--appendonly no");
    let e = RedisStore::open(RedisOptions::new(&lax.url))
        .await
        .err()
        .expect("refused");
    let msg = e.to_string();
    assert!(msg.contains("appendonly no"), "{msg}");
    assert!(msg.contains("--unsafe-redis-durability"), "{msg}");
    let mut opts = RedisOptions::new(&lax.url);
    opts.unsafe_durability = true;
    assert!(RedisStore::open(opts).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_is_a_clear_unavailable_error() {
    let url = format!("redis://127.0.0.1:{}", free_port());
    let e = RedisStore::open(RedisOptions::new(&url))
        .await
        .err()
        .expect("refused");
    assert_eq!(e.code(), "store_unavailable", "{e}");
    assert!(e.to_string().contains("cannot reach redis"), "{e}");
}
