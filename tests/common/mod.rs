//! Shared helpers for integration tests: the real `weir` binary on a free port, a real
//! store in a temp dir, real guests from `guest-examples/out`, and HTTP over loopback.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub mod dockerd;
pub mod moto;
pub mod receiver;

/// A config of two tenants, `acme` and `globex`, with small ingress limits (4 workers,
/// 16 queued requests, 100 pending events) so the limits can be reached in a test.
pub const TWO_TENANTS: &str = r#"
workers = 4
[ingress]
max_depth = 16
max_pending = 100
[ceilings]
memory = "256MiB"
[[tenants]]
id = "acme"
event_keys = ["evt_acme_0001"]
api_keys = ["api_acme_0001"]
[[tenants]]
id = "globex"
event_keys = ["evt_globex_01"]
api_keys = ["api_globex_01"]
"#;

/// Generous deadline for anything a test waits for (debug builds on 2 cores).
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Path of a compiled example guest; fails loudly if the guests were not built.
pub fn guest(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("guest-examples/out")
        .join(format!("{name}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: run ./guest-examples/build.sh (or ./scripts/test.sh)",
        p.display()
    );
    p
}

/// The `weir` binary under test.
pub fn weir_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weir"))
}

/// A running `weir dev` process.
pub struct Server {
    pub url: String,
    pub args: Vec<String>,
    /// Extra environment of the process (kept for restarts).
    pub env: Vec<(String, String)>,
    /// Sent as `Authorization: Bearer` on API calls, when set.
    pub api_key: Option<String>,
    /// Used by `send` in `POST /e/{key}`.
    pub event_key: String,
    /// `dev` or `serve`.
    pub mode: &'static str,
    pub data_dir: PathBuf,
    pub functions: PathBuf,
    pub stdout: String,
    /// Lines the process printed after it became ready.
    lines: Option<mpsc::Receiver<String>>,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts `weir dev` with an empty functions dir and a fresh store.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts `weir dev` with extra arguments (kept for restarts).
    pub fn start_with(args: &[&str]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let functions = tmp.path().join("functions");
        std::fs::create_dir_all(&functions).unwrap();
        let mut s = Self::spawn_with(
            &data,
            &functions,
            args.iter().map(|a| a.to_string()).collect(),
        );
        s._tmp = Some(tmp);
        s
    }

    /// Starts `weir dev` on an existing data dir and functions dir.
    pub fn spawn(data_dir: &Path, functions: &Path) -> Self {
        Self::spawn_with(data_dir, functions, Vec::new())
    }

    /// Starts `weir serve` with a config (its `data_dir` is set to a temp dir) and acts
    /// with the given API and event keys.
    pub fn serve(config: &str, api_key: &str, event_key: &str) -> Self {
        Self::serve_with(config, api_key, event_key, &[])
    }

    /// [`Server::serve`] with extra arguments.
    pub fn serve_with(config: &str, api_key: &str, event_key: &str, extra: &[&str]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let path = tmp.path().join("weir.toml");
        std::fs::write(
            &path,
            format!("data_dir = {:?}\n{config}", data.display().to_string()),
        )
        .unwrap();
        let mut args = vec![
            "--config".to_string(),
            path.display().to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut s = Self::launch("serve", &data, tmp.path(), args, Vec::new());
        s._tmp = Some(tmp);
        s.api_key = Some(api_key.into());
        s.event_key = event_key.into();
        s
    }

    /// Another view of the same server acting with other keys (does not own the process).
    pub fn serve_view(of: &Server, api_key: &str, event_key: &str) -> Server {
        Server {
            url: of.url.clone(),
            args: Vec::new(),
            env: Vec::new(),
            api_key: Some(api_key.into()),
            event_key: event_key.into(),
            mode: of.mode,
            data_dir: of.data_dir.clone(),
            functions: of.functions.clone(),
            stdout: String::new(),
            lines: None,
            child: None,
            _tmp: None,
        }
    }

    /// Starts `weir dev` on existing dirs with extra arguments.
    pub fn spawn_with(data_dir: &Path, functions: &Path, args: Vec<String>) -> Self {
        let mut full = vec![
            "--port".to_string(),
            "0".into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
        ];
        full.extend(["--functions".to_string(), functions.display().to_string()]);
        full.extend(args);
        Self::launch("dev", data_dir, functions, full, Vec::new())
    }

    /// Starts `weir dev` with extra arguments and environment, on a fresh store and the
    /// given functions dir (or an empty one).
    pub fn start_env(args: &[&str], env: &[(&str, &str)], functions: Option<&Path>) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let empty = tmp.path().join("functions");
        std::fs::create_dir_all(&empty).unwrap();
        let mut full = vec![
            "--port".to_string(),
            "0".into(),
            "--data-dir".into(),
            data.display().to_string(),
            "--functions".into(),
            functions.unwrap_or(&empty).display().to_string(),
        ];
        full.extend(args.iter().map(|a| a.to_string()));
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut s = Self::launch("dev", &data, functions.unwrap_or(&empty), full, env);
        s._tmp = Some(tmp);
        s
    }

    fn launch(
        mode: &'static str,
        data_dir: &Path,
        functions: &Path,
        args: Vec<String>,
        env: Vec<(String, String)>,
    ) -> Self {
        let mut child = Command::new(weir_bin())
            .arg(mode)
            .args(&args)
            .envs(env.iter().cloned())
            .env("WEIR_LOG", "weir=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("weir starts");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stdout = String::new();
        let deadline = Instant::now() + DEADLINE;
        let url = loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| {
                    let _ = child.kill();
                    panic!("weir dev did not become ready; output so far:\n{stdout}")
                });
            stdout.push_str(&line);
            stdout.push('\n');
            if let Some(rest) = line.split("API http://").nth(1) {
                let addr = rest.split('/').next().unwrap();
                break format!("http://{addr}");
            }
        };
        Server {
            url,
            args,
            env,
            api_key: None,
            event_key: "test".into(),
            mode,
            data_dir: data_dir.into(),
            functions: functions.into(),
            stdout,
            lines: Some(rx),
            child: Some(child),
            _tmp: None,
        }
    }

    /// Waits for a line of the process's output (after it became ready) containing
    /// `needle`; returns it.
    pub fn wait_output(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        let rx = self.lines.as_ref().expect("output is captured");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    self.stdout.push_str(&line);
                    self.stdout.push('\n');
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("weir never printed {needle:?}; output:\n{}", self.stdout),
            }
        }
    }

    /// Stops the process the way a service manager does (SIGTERM) and waits for it to
    /// exit; the data dir stays for the test to read.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("this view owns the process");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        assert!(child.wait().unwrap().success(), "a clean stop exits 0");
    }

    /// SIGKILLs the process (it stays down).
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("this view owns the process");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .expect("this view owns the process")
            .id()
    }

    /// SIGKILLs the process and starts a new one on the same data.
    pub fn kill_and_restart(self) -> Self {
        self.kill_pause_restart(Duration::ZERO)
    }

    /// Stops the process the way a service manager does (SIGTERM), waits for it to exit,
    /// and starts again on the same data.
    #[allow(dead_code)]
    pub fn stop_and_restart(mut self) -> Self {
        let mut child = self.child.take().expect("this view owns the process");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = child.wait().unwrap();
        assert!(exit.success(), "a clean stop exits 0: {exit:?}");
        self.relaunch()
    }

    /// SIGKILLs the process, stays down for `pause`, and starts again on the same data.
    pub fn kill_pause_restart(mut self, pause: Duration) -> Self {
        let mut child = self.child.take().expect("this view owns the process");
        child.kill().unwrap();
        child.wait().unwrap();
        std::thread::sleep(pause);
        self.relaunch()
    }

    fn relaunch(mut self) -> Self {
        let tmp = self._tmp.take();
        let mut s = Self::launch(
            self.mode,
            &self.data_dir,
            &self.functions,
            std::mem::take(&mut self.args),
            std::mem::take(&mut self.env),
        );
        s._tmp = tmp;
        s.api_key = self.api_key.take();
        s.event_key = std::mem::take(&mut self.event_key);
        s
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent()
    }

    /// Any request with an optional bearer key; returns status, JSON body and Retry-After.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        key: Option<&str>,
    ) -> (u16, Value, Option<String>) {
        let url = format!("{}{path}", self.url);
        let agent = Self::agent();
        let auth = key.map(|k| format!("Bearer {k}"));
        let r = if method == "GET" || method == "DELETE" {
            let mut rq = if method == "GET" {
                agent.get(url)
            } else {
                agent.delete(url)
            };
            if let Some(a) = &auth {
                rq = rq.header("Authorization", a);
            }
            rq.call()
        } else {
            let mut rq = if method == "PUT" {
                agent.put(url)
            } else {
                agent.post(url)
            };
            if let Some(a) = &auth {
                rq = rq.header("Authorization", a);
            }
            rq.content_type("application/json")
                .send(body.unwrap_or(b"{}"))
        };
        let mut r = r.expect("request reaches weir");
        let retry = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let status = r.status().as_u16();
        let text = r
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
            retry,
        )
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let (s, v, _) = self.request("GET", path, None, self.api_key.as_deref());
        (s, v)
    }

    pub fn delete(&self, path: &str) -> (u16, Value) {
        let (s, v, _) = self.request("DELETE", path, None, self.api_key.as_deref());
        (s, v)
    }

    pub fn post_raw(&self, path: &str, body: &[u8]) -> (u16, Value) {
        let (s, v, _) = self.request("POST", path, Some(body), self.api_key.as_deref());
        (s, v)
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, &serde_json::to_vec(body).unwrap())
    }

    pub fn put_raw(&self, path: &str, body: &[u8]) -> (u16, Value) {
        let (s, v, _) = self.request("PUT", path, Some(body), self.api_key.as_deref());
        (s, v)
    }

    /// Uploads a wasm file; returns its `sha256:` name.
    pub fn upload(&self, wasm: &Path) -> String {
        let bytes = std::fs::read(wasm).unwrap();
        let sha = hex::encode(Sha256::digest(&bytes));
        let (st, body) = self.put_raw(&format!("/v1/components/{sha}"), &bytes);
        assert_eq!(st, 200, "upload of {}: {body}", wasm.display());
        format!("sha256:{sha}")
    }

    /// Deploys a definition, uploading any step `path` that names a guest (`guest:NAME`).
    pub fn deploy(&self, mut def: Value) -> (u16, Value) {
        if let Some(steps) = def["steps"].as_object_mut() {
            for step in steps.values_mut() {
                if let Some(name) = step["path"].as_str().and_then(|p| p.strip_prefix("guest:")) {
                    step["path"] = json!(self.upload(&guest(name)));
                }
            }
        }
        self.post("/v1/functions", &def)
    }

    /// Deploys and asserts success.
    pub fn deploy_ok(&self, def: Value) -> u64 {
        let (st, body) = self.deploy(def);
        assert_eq!(st, 200, "deploy: {body}");
        body["version"].as_u64().unwrap()
    }

    /// Sends one event; returns its id.
    pub fn send(&self, event: Value) -> String {
        let (st, body) = self.post(&format!("/e/{}", self.event_key), &event);
        assert_eq!(st, 200, "send: {body}");
        body["ids"][0].as_str().unwrap().to_string()
    }

    /// Polls until the event's triggers have been matched; returns its run ids.
    pub fn runs_of(&self, event_id: &str) -> Vec<String> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let (st, ev) = self.get(&format!("/v1/events/{event_id}"));
            assert_eq!(st, 200, "{ev}");
            let ids: Vec<String> = ev["run_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            if !ids.is_empty() || Instant::now() > deadline {
                return ids;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The value of a metric on `/metrics`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (_, m) = self.get("/metrics");
        m.as_str()?
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// Polls `/metrics` until metric `name` satisfies `pred`; returns its value.
    pub fn wait_metric(&self, name: &str, pred: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(v) = self.metric(name).filter(|v| pred(*v)) {
                return v;
            }
            assert!(Instant::now() < deadline, "metric {name} never got there");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Polls a run until `pred` holds; returns it.
    pub fn wait_run(&self, run_id: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let (st, run) = self.get(&format!("/v1/runs/{run_id}"));
            assert_eq!(st, 200, "{run}");
            if pred(&run) {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "run never reached the expected state: {run:#}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls a run until it is completed, failed or cancelled.
    pub fn wait_done(&self, run_id: &str) -> Value {
        self.wait_run(run_id, |r| {
            matches!(
                r["status"].as_str(),
                Some("completed" | "failed" | "cancelled")
            )
        })
    }

    /// Sends an event that triggers exactly one run, and waits for that run to end.
    pub fn send_and_finish(&self, event: Value) -> Value {
        let id = self.send(event);
        let runs = self.runs_of(&id);
        assert_eq!(runs.len(), 1, "expected one run, got {runs:?}");
        self.wait_done(&runs[0])
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs the `weir` CLI against the server at `url`: (exit code, stdout, stderr).
pub fn cli(args: &[&str], url: &str) -> (i32, String, String) {
    let out = Command::new(weir_bin())
        .args(args)
        .env("WEIR_LOG", "warn")
        .env("WEIR_URL", url)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A one-step function definition around a guest, triggered by `event`.
pub fn one_step(id: &str, event: &str, guest: &str, extra: Value) -> Value {
    let mut step = json!({"path": format!("guest:{guest}")});
    if let Some(m) = extra.as_object() {
        for (k, v) in m {
            step[k] = v.clone();
        }
    }
    json!({"id": id, "triggers": [{"event": event}], "retries": {"attempts": 0}, "steps": {"s": step}})
}

/// Opens the stream at `path` with `key`; returns a receiver of (event name, data), once
/// the server has said the subscription is live.
pub fn listen(s: &Server, path: &str, key: Option<&str>) -> mpsc::Receiver<(String, Value)> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut req = agent.get(format!("{}{path}", s.url));
    if let Some(k) = key {
        req = req.header("Authorization", format!("Bearer {k}"));
    }
    let resp = req.call().expect("the stream opens");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut name = String::new();
        for line in BufReader::new(resp.into_body().into_reader()).lines() {
            let Ok(line) = line else { return };
            if let Some(n) = line.strip_prefix("event: ") {
                name = n.to_string();
            } else if let Some(d) = line.strip_prefix("data: ") {
                let v = serde_json::from_str(d).unwrap_or(Value::Null);
                if tx.send((std::mem::take(&mut name), v)).is_err() {
                    return;
                }
            }
        }
    });
    let (first, _) = rx.recv_timeout(DEADLINE).expect("a ready event");
    assert_eq!(first, "ready");
    rx
}
