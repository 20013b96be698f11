//! A private moto server (PyPI `moto[server]`, installed by `scripts/moto.sh`) as the
//! Lambda Invoke endpoint: on its own port, stopped when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A running moto_server.
pub struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

fn moto_server() -> String {
    if let Ok(p) = std::env::var("WEIR_MOTO_SERVER") {
        return p;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(format!("{root}/scripts/moto.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("scripts/moto.sh runs");
    assert!(out.status.success(), "scripts/moto.sh failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .expect("scripts/moto.sh prints moto_server's path")
        .to_string()
}

impl Moto {
    /// Starts one; with `docker_mode` false its Lambda answers without Docker (an
    /// invoke echoes its payload, or returns the next queued result); left in its
    /// default (docker) mode it checks that a function exists before anything else.
    pub fn start(docker_mode: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(moto_server())
            .args(["-H", "127.0.0.1", "-p", "0"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("moto_server starts");
        let err = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Read on, so that moto never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Some(u) = line.split("Running on ").nth(1) {
                    let _ = tx.send(u.trim().to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("moto_server says where it listens");
        let m = Moto {
            url,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while m.call("GET", "/moto-api/config", None).0 != 201 {
            assert!(Instant::now() < deadline, "moto_server does not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
        if !docker_mode {
            let (st, _) = m.call(
                "POST",
                "/moto-api/config",
                Some(json!({"lambda": {"use_docker": false}})),
            );
            assert_eq!(st, 201);
        }
        m
    }

    /// An unsigned call of moto's own API.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let url = format!("{}{path}", self.url);
        let r = match (method, body) {
            ("GET", _) => agent.get(&url).call(),
            (_, Some(b)) => agent
                .post(&url)
                .header("content-type", "application/json")
                .send(b.to_string().as_bytes()),
            (_, None) => agent.post(&url).send_empty(),
        };
        match r {
            Ok(mut resp) => (
                resp.status().as_u16(),
                resp.body_mut().read_to_string().unwrap_or_default(),
            ),
            Err(_) => (0, String::new()),
        }
    }

    /// Queues what the next invokes in `us-east-1` return, in order (each a JSON text).
    pub fn queue_results(&self, results: &[String]) {
        let (st, body) = self.call(
            "POST",
            "/moto-api/static/lambda-simple/response",
            Some(json!({"results": results, "region": "us-east-1"})),
        );
        assert_eq!(st, 201, "{body}");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
