//! Scale-out on Redis (design §12): several real `weir serve` processes on one real
//! `redis-server` that this test starts on a port of its own (AOF on, fsync always),
//! sharing work through leases; a process killed mid-load loses nothing; Redis down
//! answers 503 and weir recovers by itself.

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Server;
use serde_json::{json, Value};

const API: &str = "api_scale_0001";
const EVK: &str = "evt_scale_0001";

/// A redis-server on its own port and directory, stopped when dropped.
struct Redis {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Redis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = Redis {
            port,
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        r.launch();
        r
    }

    fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--dir", &self.dir.path().display().to_string()])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL (what `Child::kill` sends), so nothing is saved at shutdown.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn config(redis: &Redis) -> String {
    format!(
        "store = {:?}\n[[tenants]]\nid = \"acme\"\nevent_keys = [{EVK:?}]\napi_keys = [{API:?}]\n",
        redis.url()
    )
}

fn process(redis: &Redis) -> Server {
    Server::serve_with(&config(redis), API, EVK, &["--lease", "1s"])
}

/// Polls `f` until it gives `Some`, or fails naming `what`.
fn until<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn functions() -> Vec<Value> {
    vec![
        json!({"id": "chain", "triggers": [{"event": "mix/a"}], "steps": {
            "a": {"path": "guest:echo"}, "b": {"path": "guest:echo", "after": [{"step": "a"}]},
            "c": {"path": "guest:hello", "after": [{"step": "a"}]}}}),
        json!({"id": "sleepy", "triggers": [{"event": "mix/s"}], "steps": {
            "a": {"path": "guest:echo"}, "b": {"path": "guest:echo", "after": [{"step": "a", "wait": "1s"}]}}}),
        json!({"id": "retry", "triggers": [{"event": "mix/r"}], "retries": {"attempts": 3, "backoff": "50ms"},
            "steps": {"f": {"path": "guest:flaky"}}}),
        json!({"id": "wait", "triggers": [{"event": "mix/w"}], "steps": {
            "send": {"path": "guest:echo"},
            "got": {"path": "guest:echo", "after": [{"step": "send", "async": {"event": "mix/answer", "match": "event.user.id == async.user.id", "ttl": "10m"}}]}}}),
    ]
}

fn event(i: usize) -> Value {
    let name = ["mix/a", "mix/s", "mix/r", "mix/w"][i % 4];
    json!({"name": name, "id": format!("ev-{i}"), "user": {"id": format!("u{i}")}, "data": {"i": i}})
}

/// Posts a batch; its status and the stored events' ids.
fn post(s: &Server, batch: &[Value]) -> (u16, Vec<String>) {
    let body = serde_json::to_vec(&Value::Array(batch.to_vec())).unwrap();
    let (st, v) = s.post_raw(&format!("/e/{EVK}"), &body);
    let ids = v["ids"]
        .as_array()
        .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    (st, ids)
}

fn post_batch(s: &Server, batch: &[Value]) -> u16 {
    post(s, batch).0
}

#[test]
fn processes_share_the_work_and_a_killed_one_loses_nothing() {
    const RUNS: usize = 5_000;
    let redis = Redis::start();
    let mut procs = [process(&redis), process(&redis), process(&redis)];
    for f in functions() {
        procs[0].deploy_ok(f);
    }
    // A deploy on one process is seen by the others.
    for p in &procs[1..] {
        until(
            "the others to see the deploy",
            Duration::from_secs(20),
            || {
                let (st, body) = p.get("/v1/functions/wait");
                (st == 200).then_some(body)
            },
        );
    }
    let events: Vec<Value> = (0..RUNS).map(event).collect();
    let mut ids = Vec::new();
    for (n, chunk) in events.chunks(50).enumerate() {
        // Spread over the processes; one is killed a third of the way in.
        let alive: Vec<&Server> = procs.iter().filter(|p| p.url != "killed").collect();
        let to = alive[n % alive.len()];
        let (st, got) = post(to, chunk);
        assert_eq!(st, 200);
        ids.extend(got);
        if n == RUNS / 150 {
            procs[2].kill();
            procs[2].url = "killed".into();
        }
    }
    let (a, b) = (&procs[0], &procs[1]);
    // Every waiting run gets its answer, sent to the process that did not start it
    // (any process's event resolves any run's wait).
    let waiting: Vec<usize> = (0..RUNS).filter(|i| i % 4 == 3).collect();
    for (k, i) in waiting.iter().enumerate() {
        let what = format!("a run of the wait function for ev-{i} ({})", ids[*i]);
        let run = until(&what, Duration::from_secs(120), || {
            a.runs_of(&ids[*i]).first().cloned()
        });
        until("the run to wait", Duration::from_secs(120), || {
            let (_, r) = a.get(&format!("/v1/runs/{run}"));
            (r["status"] == "waiting").then_some(())
        });
        let answer =
            json!({"name": "mix/answer", "user": {"id": format!("u{i}")}, "data": {"k": k}});
        let to = if k % 2 == 0 { b } else { a };
        assert_eq!(post_batch(to, &[answer]), 200);
    }
    let mut seen_runs = BTreeSet::new();
    for (i, id) in ids.iter().enumerate() {
        let runs = a.runs_of(id);
        assert_eq!(runs.len(), 1, "ev-{i} started {runs:?}");
        let run = a.wait_done(&runs[0]);
        assert_eq!(run["status"], "completed", "ev-{i}: {run}");
        assert!(seen_runs.insert(runs[0].clone()));
        for (id, step) in run["steps"].as_object().unwrap() {
            assert_eq!(step["status"], "completed", "ev-{i} step {id}: {run}");
            assert!(
                step["output"].is_object(),
                "ev-{i} step {id} has its output: {run}"
            );
        }
        if i % 4 == 0 {
            assert_eq!(
                run["steps"]["b"]["output"]["event"]["data"]["i"], i,
                "{run}"
            );
        }
        if i % 4 == 2 {
            // One failure at least; an attempt the killed process had begun counts too.
            let f = &run["steps"]["f"];
            assert!(f["attempts"].as_u64().unwrap() >= 2, "{run}");
            assert!(
                f["output"]["body"]["succeeded_on_attempt"]
                    .as_u64()
                    .unwrap()
                    >= 2,
                "{run}"
            );
        }
    }
    // The leases of the killed process were taken over: none is left.
    let (_, runs) = a.get("/v1/runs?status=running&limit=10");
    assert_eq!(runs["data"].as_array().unwrap().len(), 0, "{runs}");
}

#[test]
fn redis_unreachable_answers_503_and_weir_recovers_by_itself() {
    let mut redis = Redis::start();
    let p = process(&redis);
    p.deploy_ok(functions().remove(0));
    redis.stop();
    let batch = [json!({"name": "mix/a", "id": "while-down"})];
    let status = post_batch(&p, &batch);
    assert_eq!(
        status, 503,
        "an event weir could not store is not acknowledged"
    );
    let (st, body) = p.post_raw(&format!("/e/{EVK}"), b"{\"name\":\"mix/a\"}");
    assert_eq!(
        (st, body["code"].as_str()),
        (503, Some("store_unavailable")),
        "{body}"
    );
    redis.launch();
    // The same event, sent again once Redis is back, is stored and runs.
    let id = until("ingest to recover", Duration::from_secs(30), || {
        let (st, ids) = post(&p, &batch);
        (st == 200).then(|| ids[0].clone())
    });
    let runs = p.runs_of(&id);
    assert_eq!(p.wait_done(&runs[0])["status"], "completed");
}

#[test]
fn weir_refuses_a_redis_that_does_not_fsync_every_write() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let rdir = tempfile::tempdir().unwrap();
    let mut lax = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            &rdir.path().display().to_string(),
        ])
        .args(["--appendonly", "yes", "--appendfsync", "everysec"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("weir.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {:?}\nstore = \"redis://127.0.0.1:{port}\"\n[[tenants]]\nid = \"acme\"\nevent_keys = [{EVK:?}]\napi_keys = [{API:?}]\n",
            dir.path().join("d").display().to_string()
        ),
    )
    .unwrap();
    let out = Command::new(common::weir_bin())
        .args([
            "serve",
            "--config",
            &cfg.display().to_string(),
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    let _ = lax.kill();
    let _ = lax.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("appendfsync everysec"), "{err}");
    assert!(err.contains("--unsafe-redis-durability"), "{err}");
}

/// A counter from a process's `/metrics`.
fn metric(s: &Server, name: &str) -> u64 {
    let (_, m) = s.get("/metrics");
    m.as_str()
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} is not in /metrics"))
        .parse()
        .unwrap()
}

fn signal(s: &Server, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &s.pid().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

/// Sends `a` a `nap/go` event of `nap_ms` and waits until `a` runs step `n` of its run;
/// the run's id.
fn nap_running(a: &Server, nap_ms: u64) -> String {
    let (st, ids) = post(a, &[json!({"name": "nap/go", "data": {"nap_ms": nap_ms}})]);
    assert_eq!(st, 200);
    let run = until("the run", Duration::from_secs(20), || {
        a.runs_of(&ids[0]).first().cloned()
    });
    until("A to start the nap", Duration::from_secs(20), || {
        let (_, r) = a.get(&format!("/v1/runs/{run}"));
        (r["steps"]["n"]["status"] == "running").then_some(())
    });
    run
}

#[test]
fn a_process_stopped_past_its_lease_has_its_late_result_refused() {
    let redis = Redis::start();
    let a = process(&redis);
    a.deploy_ok(json!({"id": "nap", "triggers": [{"event": "nap/go"}],
        "steps": {"n": {"path": "guest:nap"}, "next": {"path": "guest:echo", "after": [{"step": "n"}]}}}));
    let run = nap_running(&a, 3000);
    // A stops mid-step: it neither renews its 1 s lease nor records anything.
    signal(&a, "-STOP");
    let b = process(&redis);
    let done = b.wait_done(&run);
    assert_eq!(done["status"], "completed", "{done}");
    let n = done["steps"]["n"].clone();
    let nonce = n["output"]["body"]["nonce"].as_str().unwrap().to_string();
    assert!(
        n["attempts"].as_u64().unwrap() >= 2,
        "B's attempt is another: {n}"
    );
    assert_eq!(metric(&b, "weir_stale_results_total"), 0);
    // A wakes, finishes its nap and tries to record its result under its old token.
    signal(&a, "-CONT");
    until(
        "A's late result to be refused",
        Duration::from_secs(30),
        || (metric(&a, "weir_stale_results_total") >= 1).then_some(()),
    );
    let (_, after) = b.get(&format!("/v1/runs/{run}"));
    assert_eq!(
        after["steps"]["n"]["output"]["body"]["nonce"], nonce,
        "the output B recorded stands: {after}"
    );
    assert_eq!(after["steps"]["n"]["attempts"], n["attempts"], "{after}");
    assert_eq!(after["steps"]["next"], done["steps"]["next"], "{after}");
    assert_eq!(after["status"], "completed");
    // Nothing was enqueued twice: neither process has anything left to run.
    let (_, running) = a.get("/v1/runs?status=running&limit=10");
    assert_eq!(running["data"].as_array().unwrap().len(), 0, "{running}");
}

#[test]
fn redis_restarted_mid_load_keeps_every_acknowledged_event_and_output() {
    const RUNS: usize = 1_000;
    let mut redis = Redis::start();
    let procs = [process(&redis), process(&redis)];
    procs[0].deploy_ok(functions().remove(0));
    until("B to see the deploy", Duration::from_secs(20), || {
        (procs[1].get("/v1/functions/chain").0 == 200).then_some(())
    });
    let events: Vec<Value> = (0..RUNS)
        .map(|i| json!({"name": "mix/a", "id": format!("rr-{i}"), "data": {"i": i}}))
        .collect();
    let mut ids = vec![String::new(); RUNS];
    for (n, chunk) in events.chunks(50).enumerate() {
        if n == 8 {
            // SIGKILL: no shutdown save, only the AOF (fsynced per write) is left.
            redis.stop();
            // While Redis is down nothing is acknowledged.
            assert_eq!(post(&procs[0], chunk).0, 503);
            assert_eq!(post(&procs[1], chunk).0, 503);
            redis.launch();
        }
        // Sent again until acknowledged (the ids make a repeat a duplicate, not a second event).
        let got = until("the chunk to be stored", Duration::from_secs(60), || {
            let (st, got) = post(&procs[n % 2], chunk);
            assert!(
                st == 200 || st == 503,
                "only the store being away refuses: {st}"
            );
            (st == 200).then_some(got)
        });
        ids[n * 50..n * 50 + chunk.len()].clone_from_slice(&got);
    }
    let a = &procs[0];
    for (i, id) in ids.iter().enumerate() {
        let runs = a.runs_of(id);
        assert_eq!(runs.len(), 1, "rr-{i} ({id}) started {runs:?}");
        let run = a.wait_done(&runs[0]);
        assert_eq!(run["status"], "completed", "rr-{i}: {run}");
        assert_eq!(
            run["steps"]["b"]["output"]["event"]["data"]["i"], i,
            "{run}"
        );
        for (sid, step) in run["steps"].as_object().unwrap() {
            assert!(step["output"].is_object(), "rr-{i} step {sid}: {run}");
        }
    }
    // The first event, acknowledged long before the crash, is still stored whole.
    let (_, first) = a.get(&format!("/v1/events/{}", ids[0]));
    assert_eq!(first["data"]["i"], 0, "{first}");
}

#[test]
fn a_cancel_sent_to_one_process_stops_the_step_running_in_another() {
    let redis = Redis::start();
    let a = process(&redis);
    a.deploy_ok(json!({"id": "nap", "triggers": [{"event": "nap/go"}],
        "steps": {"n": {"path": "guest:nap"}}}));
    // A ten-minute nap, claimed by A (it runs alone until then).
    let run = nap_running(&a, 600_000);
    let b = process(&redis);
    let (st, cancelled) = b.post(&format!("/v1/runs/{run}/cancel"), &json!({}));
    assert_eq!(
        (st, cancelled["status"].as_str()),
        (200, Some("cancelled")),
        "{cancelled}"
    );
    assert_eq!(metric(&a, "weir_steps_executing"), 1, "A naps on");
    // A learns at its next lease renewal that the step's entry is gone, and stops it
    // long before the nap would end.
    until(
        "A to stop the cancelled step",
        Duration::from_secs(30),
        || (metric(&a, "weir_steps_executing") == 0).then_some(()),
    );
    let (_, r) = b.get(&format!("/v1/runs/{run}"));
    assert_eq!(r["status"], "cancelled", "{r}");
    assert!(r["steps"]["n"]["output"].is_null(), "nothing recorded: {r}");
    let (_, running) = a.get("/v1/runs?status=running&limit=10");
    assert_eq!(running["data"].as_array().unwrap().len(), 0, "{running}");
}

#[test]
fn a_listener_on_one_process_sees_the_updates_another_makes() {
    let redis = Redis::start();
    let a = process(&redis);
    a.deploy_ok(json!({"id": "nap", "triggers": [{"event": "nap/go"}],
        "steps": {"n": {"path": "guest:nap"}}}));
    // A claims the step before B exists, so only A can record its end.
    let run = nap_running(&a, 4_000);
    let b = process(&redis);
    let updates = common::listen(&b, "/v1/stream?function=nap", Some(API));
    let (n, v) = loop {
        let (n, v) = updates
            .recv_timeout(common::DEADLINE)
            .expect("B's stream shows A's updates");
        if n == "run.updated" && v["run_id"] == run.as_str() && v["status"] == "completed" {
            break (n, v);
        }
    };
    assert_eq!(
        (n.as_str(), &v["step"], &v["step_status"]),
        ("run.updated", &json!("n"), &json!("completed")),
        "{v}"
    );
    // An event sent to A shows on B's stream too, whichever process matches it.
    let all = common::listen(&b, "/v1/stream", Some(API));
    let (_, sent) = post(&a, &[json!({"name": "other/thing", "user": {"id": "u-a"}})]);
    let seen = loop {
        let (n, v) = all
            .recv_timeout(common::DEADLINE)
            .expect("the event sent to A");
        if n == "event.received" && v["id"] == sent[0].as_str() {
            break v;
        }
    };
    assert_eq!(seen["user_id"], "u-a");
    assert_eq!(
        metric(&a, "weir_stream_relay_dropped_total"),
        0,
        "nothing was dropped"
    );
}

#[test]
fn cron_fires_each_tick_once_across_processes() {
    let redis = Redis::start();
    let procs = [process(&redis), process(&redis), process(&redis)];
    procs[0].deploy_ok(
        json!({"id": "ticker", "triggers": [{"cron": "*/1 * * * * *"}],
        "steps": {"s": {"path": "guest:echo"}}}),
    );
    // Every process fires due ticks; each tick must start one run.
    let runs = until("five ticks", Duration::from_secs(60), || {
        let (_, r) = procs[1].get("/v1/runs?function=ticker&limit=100");
        let r = r["data"].as_array().unwrap().clone();
        (r.len() >= 5).then_some(r)
    });
    let mut ticks: Vec<i64> = runs
        .iter()
        .map(|r| {
            procs[2].wait_done(r["id"].as_str().unwrap())["steps"]["s"]["output"]["event"]["data"]
                ["tick"]
                .as_i64()
                .unwrap()
        })
        .collect();
    ticks.sort();
    let n = ticks.len();
    ticks.dedup();
    assert_eq!(ticks.len(), n, "a tick fired twice: {ticks:?}");
    // And none was skipped between the first and the last.
    assert_eq!(
        (ticks[n - 1] - ticks[0]) / 1000 + 1,
        n as i64,
        "consecutive ticks: {ticks:?}"
    );
}

#[test]
fn a_tenants_step_cap_holds_across_processes() {
    let redis = Redis::start();
    let cfg = config(&redis) + "max_concurrent_steps = 2\n";
    let procs: Vec<Server> = (0..3)
        .map(|_| Server::serve_with(&cfg, API, EVK, &["--lease", "1s"]))
        .collect();
    procs[0].deploy_ok(json!({"id": "nap", "triggers": [{"event": "nap/go"}],
        "steps": {"n": {"path": "guest:nap"}}}));
    for p in &procs[1..] {
        until("the deploy everywhere", Duration::from_secs(20), || {
            (p.get("/v1/functions/nap").0 == 200).then_some(())
        });
    }
    let mut ids = Vec::new();
    for (i, p) in procs.iter().enumerate().cycle().take(8) {
        let (st, got) = post(
            p,
            &[json!({"name": "nap/go", "data": {"nap_ms": 700, "i": i}})],
        );
        assert_eq!(st, 200);
        ids.extend(got);
    }
    // When each nap ran, from the runs as recorded.
    let mut edges = Vec::new();
    for id in &ids {
        let run = procs[0].wait_done(&procs[0].runs_of(id)[0]);
        assert_eq!(run["status"], "completed", "{run}");
        let n = &run["steps"]["n"];
        edges.push((n["started_at"].as_i64().unwrap(), 1));
        edges.push((n["ended_at"].as_i64().unwrap(), -1));
    }
    // Ends before starts at the same millisecond: a step that ends as another starts
    // does not overlap it.
    edges.sort();
    let (mut now, mut most) = (0, 0);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    assert_eq!(
        most, 2,
        "at most 2 of the tenant's steps at once, over 3 processes"
    );
}

#[test]
fn a_rollout_set_on_one_process_routes_the_runs_the_others_start() {
    let redis = Redis::start();
    let procs = [process(&redis), process(&redis), process(&redis)];
    let def = |guest: &str| json!({"id": "blue", "triggers": [{"event": "bg/go"}], "steps": {"s": {"path": format!("guest:{guest}")}}});
    procs[0].deploy_ok(def("echo"));
    procs[0].deploy_ok(def("hello"));
    // Blue-green back to version 1, set on A; B and C start the runs at once.
    let body = json!({"versions": [{"version": 1, "weight": 100}, {"version": 2, "weight": 0}]});
    let (st, r) = procs[0].put_raw("/v1/functions/blue/rollout", body.to_string().as_bytes());
    assert_eq!(st, 200, "{r}");
    for (n, p) in procs[1..].iter().enumerate() {
        let (st, ids) = post(p, &[json!({"name": "bg/go", "data": {"n": n}})]);
        assert_eq!(st, 200);
        let run = p.wait_done(&p.runs_of(&ids[0])[0]);
        assert_eq!(
            (run["status"].as_str(), run["function_version"].as_u64()),
            (Some("completed"), Some(1)),
            "{run}"
        );
    }
}
