//! The example function that mixes all four runtimes (`functions/mixed-runtimes.json`),
//! run end to end by `weir dev` against a real local receiver, a private dockerd and
//! moto: each step sees the earlier outputs; a SIGKILL while the docker step runs re-runs
//! that step after the restart; without a Docker engine `weir dev` skips the function,
//! saying why.

mod common;

use std::path::{Path, PathBuf};

use common::dockerd::Dockerd;
use common::moto::Moto;
use common::receiver::receiver;
use common::Server;
use serde_json::{json, Value};

const CREDS: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
];

/// A functions dir holding the example, pointed at this test's services; `pack.sh`
/// gets `prefix` first.
fn example(dir: &Path, receiver: &str, moto: &str, prefix: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let functions = dir.join("functions");
    std::fs::create_dir_all(functions.join("steps/pack")).unwrap();
    let text = std::fs::read_to_string(root.join("functions/mixed-runtimes.json")).unwrap();
    let mut def: Value = serde_json::from_str(&text).unwrap();
    def["steps"]["hello"]["path"] = json!(format!("file://{}", common::guest("hello").display()));
    def["steps"]["notify"]["runtime"]["url"] = json!(format!("{receiver}/greet"));
    def["steps"]["archive"]["runtime"]["endpoint"] = json!(moto);
    std::fs::write(functions.join("mixed-runtimes.json"), def.to_string()).unwrap();
    for f in ["Dockerfile", "pack.sh"] {
        let mut body = std::fs::read_to_string(root.join("functions/steps/pack").join(f)).unwrap();
        if f == "pack.sh" {
            body = format!("{prefix}{body}");
        }
        std::fs::write(functions.join("steps/pack").join(f), body).unwrap();
    }
    functions
}

#[test]
fn the_mixed_function_runs_wasm_then_http_then_docker_then_lambda() {
    let (url, seen) = receiver();
    let d = Dockerd::start();
    let moto = Moto::start(false);
    let tmp = tempfile::tempdir().unwrap();
    let functions = example(tmp.path(), &url, &moto.url, "");
    let mut s = Server::start_env(&["--docker-host", &d.host], &CREDS, Some(&functions));
    assert!(s.stdout.contains("loaded mixed-runtimes"), "{}", s.stdout);
    let run = s.send_and_finish(json!({"name": "demo/mixed", "data": {"name": "Ada"}}));
    assert_eq!(run["status"], "completed", "{run:#}");
    let steps = &run["steps"];
    // http: signed, and saw the wasm step's greeting.
    assert_eq!(steps["notify"]["output"]["body"]["signed"], true, "{run:#}");
    assert_eq!(steps["notify"]["output"]["body"]["saw"], "Hello, Ada!");
    // docker: built from the folder, saw the http step's answer.
    let packed = &steps["pack"]["output"]["body"];
    assert_eq!(packed["packed_by"], "docker");
    assert_eq!(
        packed["input"]["steps"]["notify"]["body"]["saw"],
        "Hello, Ada!"
    );
    // lambda: moto answers with the payload it was given, so it saw the docker output.
    assert_eq!(
        steps["archive"]["output"]["steps"]["pack"]["body"]["packed_by"],
        "docker"
    );
    assert_eq!(seen.bodies.lock().unwrap().len(), 1);
    d.wait_no_containers();
    s.stop();
}

#[test]
fn a_sigkill_while_the_docker_step_runs_re_runs_that_step_after_the_restart() {
    let (url, _seen) = receiver();
    let d = Dockerd::start();
    let moto = Moto::start(false);
    let tmp = tempfile::tempdir().unwrap();
    // The docker step takes a while, so that weir can be killed while it runs.
    let functions = example(tmp.path(), &url, &moto.url, "sleep 3\n");
    let s = Server::start_env(&["--docker-host", &d.host], &CREDS, Some(&functions));
    let ev = s.send(json!({"name": "demo/mixed", "data": {"name": "Ada"}}));
    let run_id = s.runs_of(&ev)[0].clone();
    s.wait_run(&run_id, |r| r["steps"]["pack"]["status"] == "running");
    d.wait_a_container();
    let s = s.kill_and_restart();
    let run = s.wait_done(&run_id);
    assert_eq!(run["status"], "completed", "{run:#}");
    // The interrupted attempt counts; the next one ran and its output is the one kept.
    assert_eq!(run["steps"]["pack"]["attempts"], 2, "{run:#}");
    assert_eq!(
        run["steps"]["pack"]["output"]["body"]["packed_by"],
        "docker"
    );
    // Steps that had finished before the kill were not run again.
    assert_eq!(run["steps"]["notify"]["attempts"], 1);
    assert_eq!(run["steps"]["hello"]["attempts"], 1);
    // The killed attempt's container was cleaned up too.
    d.wait_no_containers();
}

#[test]
fn without_a_docker_engine_weir_dev_skips_the_function_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let functions = example(tmp.path(), "http://127.0.0.1:9", "http://127.0.0.1:9", "");
    let s = Server::start_env(
        &["--docker-host", "unix:///nonexistent/docker.sock"],
        &CREDS,
        Some(&functions),
    );
    let line = s
        .stdout
        .lines()
        .find(|l| l.contains("skipped"))
        .unwrap_or_else(|| panic!("no skip message:\n{}", s.stdout));
    assert!(
        line.contains("steps.pack")
            && line.contains("cannot reach the Docker engine at unix:///nonexistent/docker.sock"),
        "{line}"
    );
    let (st, _) = s.get("/v1/functions/mixed-runtimes");
    assert_eq!(st, 404);
}

#[test]
fn cancelling_a_run_stops_its_running_wasm_step_and_frees_the_worker() {
    // One worker: while the endless step holds it, nothing else can run.
    let s = Server::start_with(&["--workers", "1"]);
    s.deploy_ok(json!({"id": "endless", "triggers": [{"event": "spin"}],
        "steps": {"s": {"path": "guest:spin", "limits": {"timeout": "15m"}}}}));
    s.deploy_ok(json!({"id": "quick", "triggers": [{"event": "quick"}],
        "steps": {"s": {"path": "guest:hello"}}}));
    let ev = s.send(json!({"name": "spin"}));
    let run_id = s.runs_of(&ev)[0].clone();
    s.wait_run(&run_id, |r| r["steps"]["s"]["status"] == "running");
    let (st, body) = s.post(&format!("/v1/runs/{run_id}/cancel"), &json!({}));
    assert_eq!(st, 200, "{body}");
    // Within the test's deadline, far inside the endless step's 15 minutes: it was
    // interrupted and gave the only worker back.
    let run = s.send_and_finish(json!({"name": "quick", "data": {"name": "Ada"}}));
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(s.wait_done(&run_id)["status"], "cancelled");
}
