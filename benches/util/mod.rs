//! Helpers shared by the bench targets.

#[allow(dead_code)] // only the load bench runs on Redis
pub mod redis;

use std::path::{Path, PathBuf};
use std::process::Child;

/// Bytes of every file under `p`.
#[allow(dead_code)] // not every bench target measures disk
pub fn dir_bytes(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) the process `pid` has used so far.
#[allow(dead_code)] // not every bench target measures CPU
pub fn proc_cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    ticks / 100.0
}

/// An environment knob, or `d` if unset or unparsable.
#[allow(dead_code)]
pub fn env_or<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

/// A guest built by `guest-examples/build.sh`.
#[allow(dead_code)]
pub fn guest(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("guest-examples/out")
        .join(format!("{name}.wasm"));
    assert!(
        p.exists(),
        "{} missing: run guest-examples/build.sh",
        p.display()
    );
    p
}

/// An HTTP client that reports statuses instead of failing on them.
#[allow(dead_code)]
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
}

/// Waits for a started `weir dev`/`serve` (stdout piped) to print its API address and
/// returns it; the rest of its output is drained in the background.
#[allow(dead_code)]
pub fn api_url(child: &mut Child) -> String {
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout is piped"));
    let mut line = String::new();
    loop {
        line.clear();
        if std::io::BufRead::read_line(&mut out, &mut line).unwrap_or(0) == 0 {
            panic!("weir exited before it was ready: {:?}", child.wait());
        }
        if let Some(rest) = line.split("API http://").nth(1) {
            let url = format!("http://{}", rest.split('/').next().unwrap());
            std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
            return url;
        }
    }
}

/// `weir` (or the build `WEIR_LOAD_BIN` names, for A/B comparisons on a noisy machine),
/// logging warnings only, its stdout piped for [`api_url`].
#[allow(dead_code)]
pub fn weir() -> std::process::Command {
    let bin = std::env::var("WEIR_LOAD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_weir").into());
    let mut c = std::process::Command::new(bin);
    c.env("WEIR_LOG", "warn")
        .stdout(std::process::Stdio::piped());
    c
}

/// A `weir serve` child, killed and reaped however the bench ends (a failed run leaves
/// no server behind).
#[allow(dead_code)]
pub struct Served(pub Child);

impl Served {
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The TOML of tenants `ids`, each with the event key `evt_<id>` and the API key
/// `api_<id>`.
#[allow(dead_code)]
pub fn tenants(ids: &[&str]) -> String {
    ids.iter()
        .map(|id| {
            format!("[[tenants]]\nid = \"{id}\"\nevent_keys = [\"evt_{id}\"]\napi_keys = [\"api_{id}\"]\n")
        })
        .collect()
}

/// `weir serve` on a free port with a config of `data_dir` in `dir` and `tenants` (TOML);
/// returns the server (killed when dropped) and the API's base URL.
#[allow(dead_code)]
pub fn serve(dir: &Path, tenants: &str) -> (Served, String) {
    let config = dir.join("weir.toml");
    let data = dir.join("data");
    std::fs::write(
        &config,
        format!("data_dir = {:?}\n{tenants}", data.display().to_string()),
    )
    .unwrap();
    let mut child = weir()
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .spawn()
        .unwrap();
    let url = api_url(&mut child);
    (Served(child), url)
}

/// An API call with a bearer key; panics unless it succeeds; the JSON answer.
#[allow(dead_code)]
pub fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    key: &str,
    body: Option<&[u8]>,
) -> serde_json::Value {
    let auth = format!("Bearer {key}");
    let mut r = match (method, body) {
        ("PUT", Some(b)) => agent.put(url).header("Authorization", &auth).send(b),
        ("POST", Some(b)) => agent
            .post(url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send(b),
        _ => agent.get(url).header("Authorization", &auth).call(),
    }
    .unwrap();
    let status = r.status();
    let v: serde_json::Value = r
        .body_mut()
        .with_config()
        .limit(256 << 20)
        .read_json()
        .unwrap_or(serde_json::Value::Null);
    assert!(status.is_success(), "{method} {url}: {status} {v}");
    v
}

/// Uploads the guests `steps` names and deploys function `id`, triggered by `event`, as
/// a chain of those steps (each after the one before), named after their guests.
#[allow(dead_code)]
pub fn deploy_chain(
    agent: &ureq::Agent,
    url: &str,
    api_key: &str,
    id: &str,
    event: &str,
    steps: &[&str],
) {
    use sha2::Digest;
    let mut def_steps = serde_json::Map::new();
    for (i, name) in steps.iter().enumerate() {
        let bytes = std::fs::read(guest(name)).unwrap();
        let sha = hex::encode(sha2::Sha256::digest(&bytes));
        call(
            agent,
            "PUT",
            &format!("{url}/v1/components/{sha}"),
            api_key,
            Some(&bytes),
        );
        let mut step = serde_json::json!({"path": format!("sha256:{sha}")});
        if i > 0 {
            step["after"] = serde_json::json!([{"step": steps[i - 1]}]);
        }
        def_steps.insert(name.to_string(), step);
    }
    let def = serde_json::json!({"id": id, "triggers": [{"event": event}], "steps": def_steps});
    call(
        agent,
        "POST",
        &format!("{url}/v1/functions"),
        api_key,
        Some(def.to_string().as_bytes()),
    );
}

/// Milliseconds since the Unix epoch, now.
#[allow(dead_code)]
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
