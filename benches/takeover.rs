//! Lease takeover on Redis (design §12): two `weir serve` processes share one
//! `redis-server`; process A claims a long step, is SIGKILLed mid-step, and the bench
//! measures how long until process B starts that step again (the step's `started_at`,
//! a server timestamp, minus the moment of the kill), for several `--lease` values.
//! A killed process's leases are not renewed, so B takes the step once the last
//! renewal's lease runs out and its next poll sees it.
//!
//! `cargo bench --bench takeover`: leases 1s, 5s, 15s (the default), 3 kills each.
//! Knobs: WEIR_TAKEOVER_LEASES (e.g. `2s,10s`), WEIR_TAKEOVER_REPEATS.
//! Under `cargo test` it runs one kill with a 1 s lease so it cannot rot.

mod util;

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::json;

const KEY: &str = "api_takeover";

struct Proc {
    child: Child,
    url: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, n: usize, lease: &str) -> Proc {
    let mut child = util::weir()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--lease",
            lease,
            "--config",
        ])
        .arg(dir.join("weir.toml"))
        .arg("--data-dir")
        .arg(dir.join(format!("data{n}")))
        .spawn()
        .unwrap();
    let url = util::api_url(&mut child);
    Proc { child, url }
}

/// Polls the run on `p` until `f` accepts it.
fn poll(
    p: &Proc,
    run: &str,
    limit: Duration,
    f: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let agent = util::agent();
    let deadline = Instant::now() + limit;
    loop {
        let r = util::call(
            &agent,
            "GET",
            &format!("{}/v1/runs/{run}", p.url),
            KEY,
            None,
        );
        if f(&r) {
            return r;
        }
        assert!(Instant::now() < deadline, "timed out: {r}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One kill: milliseconds from A's SIGKILL to B starting the step.
fn takeover_ms(lease: &str) -> i64 {
    let tmp = tempfile::tempdir().unwrap();
    let redis = util::redis::Redis::start(&tmp.path().join("redis"));
    std::fs::write(
        tmp.path().join("weir.toml"),
        format!(
            "store = {:?}\n{}",
            redis.url(),
            util::tenants(&["takeover"])
        ),
    )
    .unwrap();
    let agent = util::agent();
    let mut a = serve(tmp.path(), 0, lease);
    util::deploy_chain(&agent, &a.url, KEY, "nap", "nap/go", &["nap"]);
    let ev = json!({"name": "nap/go", "data": {"nap_ms": 3_600_000}});
    let sent = util::call(
        &agent,
        "POST",
        &format!("{}/e/evt_takeover", a.url),
        KEY,
        Some(ev.to_string().as_bytes()),
    );
    let event = sent["ids"][0].as_str().unwrap().to_string();
    // A alone runs: it is the one that claims the step.
    let run = loop {
        let r = util::call(
            &agent,
            "GET",
            &format!("{}/v1/events/{event}", a.url),
            KEY,
            None,
        );
        if let Some(id) = r["run_ids"][0].as_str() {
            break id.to_string();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    poll(&a, &run, Duration::from_secs(30), |r| {
        r["steps"]["nap"]["status"] == "running"
    });
    let b = serve(tmp.path(), 1, lease);
    // The kill comes 300 ms after B is up (where that falls in A's renewal cycle
    // varies from kill to kill, hence the spread).
    std::thread::sleep(Duration::from_millis(300));
    let killed = util::now_ms();
    let _ = a.child.kill();
    let _ = a.child.wait();
    let r = poll(&b, &run, Duration::from_secs(120), |r| {
        r["steps"]["nap"]["attempts"].as_u64() >= Some(2)
            && r["steps"]["nap"]["status"] == "running"
    });
    r["steps"]["nap"]["started_at"].as_i64().unwrap() - killed
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let leases = std::env::var("WEIR_TAKEOVER_LEASES")
        .unwrap_or_else(|_| if bench { "1s,5s,15s" } else { "1s" }.into());
    let repeats = util::env_or("WEIR_TAKEOVER_REPEATS", if bench { 3usize } else { 1 });
    println!("lease takeover after SIGKILL on Redis (2 processes)");
    for lease in leases.split(',') {
        let ms: Vec<String> = (0..repeats)
            .map(|_| takeover_ms(lease).to_string())
            .collect();
        println!("  --lease {lease:<4} takeover ms: {}", ms.join(", "));
    }
}
