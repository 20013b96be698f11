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
    let client = redis::Client::open(url.as_str()).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Ok(mut c) = client.get_connection() {
            if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                break;
            }
        }
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

/// A store in a namespace of its own per location (the same location reopens the same
/// data).
fn open_redis(dir: &Path) -> Arc<dyn Store> {
    let mut opts = RedisOptions::new(&redis().url);
    opts.namespace = format!("t{}", hex::encode(dir.display().to_string()));
    tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current()
            .block_on(RedisStore::open(opts))
            .map(|s| Arc::new(s) as Arc<dyn Store>)
            .unwrap()
    })
}

mod conformance {
    crate::store::conformance::store_conformance!(super::open_redis);
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
