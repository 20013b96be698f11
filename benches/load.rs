//! End-to-end load bench: the real `weir dev` binary, a two-step function of real C guests,
//! N events over real HTTP (batched and unbatched, closed-loop with C senders or
//! open-loop at a fixed rate), every run awaited. Prints events/s accepted, runs/s
//! completed, event→done latency p50/p90/p99/max (HDR histogram, ms: server timestamps),
//! CPU seconds per 1,000 runs, peak RSS and disk bytes per 1,000 runs.
//!
//! `cargo bench --bench load` runs the standard scenarios (2,000 events, 32 in flight).
//! Knobs: WEIR_LOAD_EVENTS, WEIR_LOAD_CONCURRENCY, WEIR_LOAD_BATCH (1 or more),
//! WEIR_LOAD_RATE (events/s; open loop), WEIR_LOAD_STORE (redb|sled), WEIR_LOAD_WORKERS,
//! WEIR_LOAD_BIN (path of another weir build to drive, for A/B comparisons),
//! WEIR_LOAD_PHASES (also print p50/p99 of each phase of a run: where the time goes),
//! WEIR_LOAD_FIELDS (extra numeric fields in each event's data, for a bigger payload),
//! WEIR_LOAD_ROLLOUT (two versions, new runs routed 50/50 by a rollout),
//! WEIR_LOAD_USERS (each event names one of this many users, round robin),
//! WEIR_LOAD_PROCESSES or `--processes N[,M…]` (the scenarios on N `weir serve`
//! processes sharing one `redis-server` the bench starts, AOF fsynced per write; senders
//! spread over the processes; `0` is one `weir dev` on the embedded store; a list runs
//! each in turn, so `0,1,2,3` sets them side by side in one run). CPU per 1,000 runs
//! counts every weir process; on Redis the redis-server's share is printed beside it.
//! Under `cargo test` it runs one small smoke scenario so it cannot rot.

mod util;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

struct Scenario {
    name: String,
    events: usize,
    concurrency: usize,
    batch: usize,
    rate: Option<f64>,
    store: String,
    /// `weir serve` processes on one Redis; 0: one `weir dev` on `store`.
    processes: usize,
}

/// What a scenario drives: one `weir dev` on an embedded store, or `weir serve` × N on
/// one redis-server. Everything is killed and reaped when dropped.
struct Target {
    urls: Vec<String>,
    weirs: Vec<Child>,
    redis: Option<util::redis::Redis>,
    /// The API key (`weir serve`); `weir dev` needs none.
    key: Option<String>,
    /// Where events are posted.
    events: String,
    /// What is on disk because of the scenario.
    data: Vec<PathBuf>,
}

impl Drop for Target {
    fn drop(&mut self) {
        for c in &mut self.weirs {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Target {
    fn pids(&self) -> Vec<u32> {
        self.weirs.iter().map(Child::id).collect()
    }

    fn get(&self, path: &str) -> Value {
        get(&format!("{}{path}", self.urls[0]), self.key.as_deref())
    }
}

/// `--workers N` when WEIR_LOAD_WORKERS says N.
fn workers() -> Vec<String> {
    std::env::var("WEIR_LOAD_WORKERS")
        .map(|w| vec!["--workers".to_string(), w])
        .unwrap_or_default()
}

fn function_def() -> Value {
    json!({"id": "two-step", "triggers": [{"event": "load/go"}], "steps": {
        "hello": {"path": format!("file://{}", util::guest("hello").display())},
        "shout": {"path": format!("file://{}", util::guest("shout").display()), "after": [{"step": "hello"}]}}})
}

fn start_target(dir: &Path, s: &Scenario) -> Target {
    if s.processes == 0 {
        let (child, url) = start(dir, &s.store);
        return Target {
            urls: vec![url],
            weirs: vec![child],
            redis: None,
            key: None,
            events: "/e/load".into(),
            data: vec![dir.join("data")],
        };
    }
    let redis = util::redis::Redis::start(&dir.join("redis"));
    let config = dir.join("weir.toml");
    std::fs::write(
        &config,
        format!("store = {:?}\n{}", redis.url(), util::tenants(&["load"])),
    )
    .unwrap();
    let mut t = Target {
        urls: vec![],
        weirs: vec![],
        key: Some("api_load".into()),
        events: "/e/evt_load".into(),
        data: vec![dir.join("redis")],
        redis: Some(redis),
    };
    for n in 0..s.processes {
        // Each process has its own data_dir (its compiled-artefact cache).
        let data = dir.join(format!("data{n}"));
        let mut child = util::weir()
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .args(workers())
            .spawn()
            .unwrap();
        t.urls.push(util::api_url(&mut child));
        t.weirs.push(child);
        t.data.push(data);
    }
    let agent = util::agent();
    util::deploy_chain(
        &agent,
        &t.urls[0],
        "api_load",
        "two-step",
        "load/go",
        &["hello", "shout"],
    );
    // Every process matches events against the deploy before the load starts.
    for url in &t.urls {
        let deadline = Instant::now() + Duration::from_secs(20);
        while agent
            .get(format!("{url}/v1/functions/two-step"))
            .header("Authorization", "Bearer api_load")
            .call()
            .map(|r| r.status() != 200)
            .unwrap_or(true)
        {
            assert!(Instant::now() < deadline, "{url} did not see the deploy");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    if std::env::var("WEIR_LOAD_ROLLOUT").is_ok() {
        split_by_rollout(&t.urls[0], t.key.as_deref());
    }
    t
}

// The child goes back to the caller, which kills and waits for it after the scenario.
#[allow(clippy::zombie_processes)]
fn start(dir: &Path, store: &str) -> (Child, String) {
    let functions = dir.join("functions");
    std::fs::create_dir_all(&functions).unwrap();
    std::fs::write(functions.join("two-step.json"), function_def().to_string()).unwrap();
    let mut child = util::weir()
        .args(["dev", "--port", "0", "--store", store, "--data-dir"])
        .arg(dir.join("data"))
        .arg("--functions")
        .arg(&functions)
        .args(workers())
        .spawn()
        .unwrap();
    let url = util::api_url(&mut child);
    if std::env::var("WEIR_LOAD_ROLLOUT").is_ok() {
        split_by_rollout(&url, None);
    }
    (child, url)
}

/// WEIR_LOAD_ROLLOUT: deploys a second version of the function and routes new runs
/// 50/50 between the two, sticky by event id (what routing by rollout costs).
fn split_by_rollout(url: &str, key: Option<&str>) {
    let versions = get(&format!("{url}/v1/functions/two-step/versions"), key);
    let mut def = versions["data"][0]["def"].clone();
    def["name"] = json!("second version");
    let send = |method: &str, path: &str, body: &Value| {
        let u = format!("{url}{path}");
        let mut req = if method == "PUT" {
            util::agent().put(&u)
        } else {
            util::agent().post(&u)
        };
        if let Some(k) = key {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        let mut r = req
            .content_type("application/json")
            .send(body.to_string().as_bytes())
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "{}",
            r.body_mut().read_to_string().unwrap()
        );
    };
    send("POST", "/v1/functions", &def);
    send(
        "PUT",
        "/v1/functions/two-step/rollout",
        &json!({"versions": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}]}),
    );
}

fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn get(url: &str, key: Option<&str>) -> Value {
    let mut req = util::agent().get(url);
    if let Some(k) = key {
        req = req.header("Authorization", format!("Bearer {k}"));
    }
    req.call()
        .unwrap()
        .body_mut()
        .with_config()
        .limit(256 << 20)
        .read_json()
        .unwrap()
}

fn run(s: &Scenario) {
    let tmp = tempfile::tempdir().unwrap();
    let target = start_target(tmp.path(), s);
    let disk = || -> u64 { target.data.iter().map(|d| util::dir_bytes(d)).sum() };
    let cpu = || -> f64 { target.pids().into_iter().map(util::proc_cpu_secs).sum() };
    let redis_cpu = || {
        target
            .redis
            .as_ref()
            .map(|r| util::proc_cpu_secs(r.child.id()))
    };
    let (disk0, cpu0, redis_cpu0) = (disk(), cpu(), redis_cpu());
    let requests = s.events.div_ceil(s.batch);
    let next = Arc::new(AtomicUsize::new(0));
    // WEIR_LOAD_FIELDS: extra numeric fields in each event's data (a bigger payload).
    let fields: usize = util::env_or("WEIR_LOAD_FIELDS", 0);
    let extra: Value = (0..fields)
        .map(|f| (format!("field_{f}"), json!(f * 7)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    let started = Instant::now();
    let senders: Vec<_> = (0..s.concurrency)
        .map(|k| {
            // Senders spread over the processes.
            let url = target.urls[k % target.urls.len()].clone() + &target.events;
            let (next, extra) = (next.clone(), extra.clone());
            let (batch, events, rate) = (s.batch, s.events, s.rate);
            // Events spread over this many users (`user.id`), none if 0.
            let users: usize = util::env_or("WEIR_LOAD_USERS", 0);
            std::thread::spawn(move || {
                let agent = util::agent();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests {
                        return;
                    }
                    if let Some(r) = rate {
                        // Open loop: request i leaves at its scheduled time, however late
                        // earlier ones came back.
                        let due = started + Duration::from_secs_f64((i * batch) as f64 / r);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                    let n = batch.min(events - i * batch);
                    let body: Vec<Value> = (0..n)
                        .map(|k| {
                            let mut data = extra.clone();
                            let at = i * batch + k;
                            data["name"] = json!(format!("n{at}"));
                            let mut ev = json!({"name": "load/go", "data": data});
                            if users > 0 {
                                ev["user"] =
                                    json!({"id": format!("u{}", at % users), "plan": "pro"});
                            }
                            ev
                        })
                        .collect();
                    let body = if batch == 1 {
                        body[0].clone()
                    } else {
                        json!(body)
                    };
                    let mut r = agent.post(&url).send_json(&body).unwrap();
                    assert_eq!(r.status(), 200);
                    // Read the reply to its end so the connection goes back to the pool
                    // (an unread body made every request open a new connection).
                    r.body_mut().read_to_vec().unwrap();
                }
            })
        })
        .collect();
    for t in senders {
        t.join().unwrap();
    }
    let sent = started.elapsed();
    loop {
        let f = target.get("/v1/functions/two-step");
        let done = f["runs"]["completed"].as_u64().unwrap_or(0) as usize;
        assert_eq!(f["runs"]["failed"], 0, "{f}");
        if done >= s.events {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let cpu = cpu() - cpu0;
    let redis_cpu = redis_cpu().zip(redis_cpu0).map(|(a, b)| a - b);
    let rss: f64 = target.pids().into_iter().map(peak_rss_mb).sum();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 3_600_000, 3).unwrap();
    // Where the time goes, per phase of a run (server timestamps, ms).
    const PHASES: [&str; 6] = [
        "event→run created",
        "→hello started",
        "hello ran",
        "→shout started",
        "shout ran",
        "→run done",
    ];
    let mut phases: Vec<Histogram<u64>> = PHASES
        .iter()
        .map(|_| Histogram::new_with_bounds(1, 3_600_000, 3).unwrap())
        .collect();
    let (mut first, mut last) = (i64::MAX, 0i64);
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/v1/runs?function=two-step&limit=1000&cursor={c}"),
            None => "/v1/runs?function=two-step&limit=1000".to_string(),
        };
        let page = target.get(&q);
        for r in page["data"].as_array().unwrap() {
            let (ts, end) = (
                r["event_ts"].as_i64().unwrap(),
                r["ended_at"].as_i64().unwrap(),
            );
            hist.record((end - ts).max(1) as u64).unwrap();
            let at = |v: &Value| v.as_i64().unwrap_or(0);
            let (h, sh) = (&r["steps"]["hello"], &r["steps"]["shout"]);
            let marks = [
                ts,
                at(&r["created_at"]),
                at(&h["started_at"]),
                at(&h["ended_at"]),
                at(&sh["started_at"]),
                at(&sh["ended_at"]),
                end,
            ];
            for (i, p) in phases.iter_mut().enumerate() {
                // +1: a phase under a millisecond still counts (the histogram starts at 1).
                p.record((marks[i + 1] - marks[i]).max(0) as u64 + 1)
                    .unwrap();
            }
            first = first.min(ts);
            last = last.max(end);
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.into()),
            None => break,
        }
    }
    let disk = disk().saturating_sub(disk0);
    drop(target);
    let span = ((last - first).max(1)) as f64 / 1000.0;
    println!(
        "{:<34} {:>6} ev/s accepted {:>6} runs/s done | latency ms p50 {:>5} p90 {:>5} p99 {:>5} max {:>5} | {:.2} CPU-s/1k runs{} | RSS {:.0} MB | {:.0} KB disk/1k runs",
        s.name,
        (s.events as f64 / sent.as_secs_f64()) as u64,
        (s.events as f64 / span) as u64,
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.9),
        hist.value_at_quantile(0.99),
        hist.max(),
        cpu * 1000.0 / s.events as f64,
        redis_cpu
            .map(|r| format!(" (+{:.2} redis-server)", r * 1000.0 / s.events as f64))
            .unwrap_or_default(),
        rss,
        disk as f64 / s.events as f64
    );
    if std::env::var("WEIR_LOAD_PHASES").is_ok() {
        let parts: Vec<String> = PHASES
            .iter()
            .zip(&phases)
            .map(|(name, h)| {
                format!(
                    "{name} {}/{}",
                    h.value_at_quantile(0.5) - 1,
                    h.value_at_quantile(0.99) - 1
                )
            })
            .collect();
        println!("    phases p50/p99 ms: {}", parts.join(" | "));
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let store: String = util::env_or("WEIR_LOAD_STORE", "redb".to_string());
    let events = util::env_or("WEIR_LOAD_EVENTS", if bench { 2000 } else { 100 });
    let conc = util::env_or("WEIR_LOAD_CONCURRENCY", 32usize);
    let scenarios: Vec<Scenario> = match (
        std::env::var("WEIR_LOAD_BATCH").ok(),
        std::env::var("WEIR_LOAD_RATE").ok(),
    ) {
        (None, None) if bench => vec![
            Scenario {
                name: format!("unbatched, {conc} in flight"),
                events,
                concurrency: conc,
                batch: 1,
                rate: None,
                store: store.clone(),
                processes: 0,
            },
            Scenario {
                name: "batches of 100, 4 in flight".into(),
                events: events * 10,
                concurrency: 4,
                batch: 100,
                rate: None,
                store: store.clone(),
                processes: 0,
            },
            Scenario {
                name: "open loop 500 ev/s, unbatched".into(),
                events,
                concurrency: conc,
                batch: 1,
                rate: Some(500.0),
                store: store.clone(),
                processes: 0,
            },
        ],
        (b, r) => {
            let batch = b.and_then(|v| v.parse().ok()).unwrap_or(1usize).max(1);
            let rate = r.and_then(|v| v.parse().ok());
            vec![Scenario {
                name: format!(
                    "batch {batch}, {conc} in flight{}",
                    rate.map(|r| format!(", {r} ev/s")).unwrap_or_default()
                ),
                events,
                concurrency: conc,
                batch,
                rate,
                store,
                processes: 0,
            }]
        }
    };
    // `--processes 1,2` or WEIR_LOAD_PROCESSES: on Redis with that many processes (0 is
    // the embedded store). Under `cargo test` the smoke pass covers both.
    let args: Vec<String> = std::env::args().collect();
    let list = args
        .iter()
        .position(|a| a == "--processes")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| std::env::var("WEIR_LOAD_PROCESSES").ok())
        .unwrap_or_else(|| if bench { "0" } else { "0,2" }.into());
    let processes: Vec<usize> = list
        .split(',')
        .map(|p| {
            p.trim()
                .parse()
                .unwrap_or_else(|_| panic!("--processes takes numbers, e.g. 0,1,2,3: {p:?}"))
        })
        .collect();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    for &n in &processes {
        match n {
            0 => println!(
                "weir load bench ({} store, {cores} cores)",
                scenarios[0].store
            ),
            n => {
                println!("weir load bench (redis store, {n} weir serve process(es), {cores} cores)")
            }
        }
        for s in &scenarios {
            run(&Scenario {
                name: s.name.clone(),
                store: s.store.clone(),
                processes: n,
                ..*s
            });
        }
    }
}
