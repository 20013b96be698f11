//! The `weir` command line against real files, a real server and real guests.

mod common;

use std::path::Path;
use std::process::Command;

use common::{guest, weir_bin, Server};
use serde_json::json;

fn repo(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn weir(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(weir_bin())
        .args(args)
        .env("WEIR_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, v: &serde_json::Value) -> String {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    p.to_string_lossy().into_owned()
}

/// A one-step function `fails` (respond, no retries) and an event of `status` for it.
fn failing(dir: &Path, status: u16) -> (String, String) {
    let func = write(
        dir,
        "f.json",
        &json!({"id": "fails", "triggers": [{"event": "go"}], "retries": {"attempts": 0},
        "steps": {"r": {"path": format!("file://{}", guest("respond").display())}}}),
    );
    let event = write(
        dir,
        "bad.json",
        &json!({"name": "go", "data": {"status": status}}),
    );
    (func, event)
}

#[test]
fn weir_run_runs_the_example_locally_and_exits_0() {
    guest("hello");
    let f = repo("functions/hello-chain.json");
    let e = repo("examples/hello-event.json");
    let (code, out, err) = weir(&["run", f.to_str().unwrap(), "--event", e.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\"shout\":\"HELLO, ADA!\""), "{out}");
    assert!(out.contains("step hello — Completed"), "{out}");
    assert!(out.trim_end().ends_with("completed"), "{out}");
    let (code, out, _) = weir(&[
        "run",
        f.to_str().unwrap(),
        "--event",
        e.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0);
    let run: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        run["steps"]["hello"]["output"]["body"]["message"],
        "Hello, Ada!"
    );
}

#[test]
fn weir_run_exits_non_zero_when_the_run_fails_or_nothing_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (func, bad) = failing(dir.path(), 404);
    let (code, out, _) = weir(&["run", &func, "--event", &bad]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("step returned status 404") && out.contains("failed"),
        "{out}"
    );
    let other = write(dir.path(), "other.json", &json!({"name": "something/else"}));
    let (code, _, err) = weir(&["run", &func, "--event", &other]);
    assert_eq!(code, 1);
    assert!(err.contains("does not trigger `fails`"), "{err}");
    let broken = write(
        dir.path(),
        "broken.json",
        &json!({"id": "broken", "triggers": [{"event": "go"}],
        "steps": {"r": {"path": "file://./missing.wasm"}}}),
    );
    let (code, _, err) = weir(&["run", &broken, "--event", &bad]);
    assert_eq!(code, 1);
    assert!(err.contains("steps.r.path: cannot read"), "{err}");
    let bad_step = write(
        dir.path(),
        "badstep.json",
        &json!({"id": "bad-step", "triggers": [{"event": "go"}],
        "steps": {"r": {"path": format!("file://{}", guest("imports-unknown").display())}}}),
    );
    let (code, _, err) = weir(&["run", &bad_step, "--event", &bad]);
    assert_eq!(code, 1);
    assert!(
        err.contains("steps.r") && err.contains("acme:secret/keys"),
        "{err}"
    );
}

#[test]
fn deploy_send_and_runs_talk_to_a_server() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("steps")).unwrap();
    std::fs::copy(guest("hello"), dir.path().join("steps/hello.wasm")).unwrap();
    let func = write(
        dir.path(),
        "greet.json",
        &json!({"id": "greet", "triggers": [{"event": "hi"}],
        "steps": {"hello": {"path": "file://./steps/hello.wasm"}}}),
    );
    let (code, out, err) = weir(&["deploy", &func, "--url", &s.url]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("deployed greet v1"), "{out}");
    assert!(err.contains("uploaded sha256:"), "{err}");
    let (code, out, err) = weir(&[
        "send",
        "hi",
        "--data",
        r#"{"name":"Bo"}"#,
        "--user",
        r#"{"id":"u9"}"#,
        "--url",
        &s.url,
    ]);
    assert_eq!(code, 0, "{err}");
    let reply: serde_json::Value = serde_json::from_str(&out).unwrap();
    let runs = s.runs_of(reply["ids"][0].as_str().unwrap());
    let run = s.wait_done(&runs[0]);
    assert_eq!(
        run["steps"]["hello"]["output"]["body"]["message"],
        "Hello, Bo!"
    );
    let (code, out, _) = weir(&["runs", "--url", &s.url, "--user", "u9"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(runs[0].as_str()) && out.contains("greet") && out.contains("completed"),
        "{out}"
    );
    let (code, out, err) = weir(&["cancel", runs[0].as_str(), "--url", &s.url]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("completed"),
        "a finished run stays as it was: {out}"
    );
    let (code, _, err) = weir(&["cancel", "no-such-run", "--url", &s.url]);
    assert_eq!(code, 1);
    assert!(err.contains("404"), "{err}");
    let (code, _, err) = weir(&["send", "hi", "--data", "{oops", "--url", &s.url]);
    assert_eq!(code, 1);
    assert!(err.contains("--data is not JSON"), "{err}");
    let (code, _, err) = weir(&["runs", "--url", "http://127.0.0.1:9"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach weir"), "{err}");
}

#[test]
fn weir_dev_loads_the_example_functions_and_runs_them() {
    guest("hello");
    let data = tempfile::tempdir().unwrap();
    let s = Server::spawn(data.path(), &repo("functions"));
    assert!(
        s.stdout.contains("loaded hello-chain v1 (3 steps)"),
        "{}",
        s.stdout
    );
    assert!(s.stdout.contains("one open tenant"), "{}", s.stdout);
    let run = s.send_and_finish(
        json!({"name": "demo/hello", "data": {"name": "Ada"}, "user": {"id": "u_42"}}),
    );
    assert_eq!(run["status"], "completed");
    assert_eq!(
        run["steps"]["shout"]["output"]["body"]["shout"],
        "HELLO, ADA!"
    );
    // The trigger's expression filters: a quiet event starts nothing.
    let id = s.send(json!({"name": "demo/hello", "data": {"quiet": true}}));
    let (_, ev) = s.get(&format!("/v1/events/{id}"));
    assert!(ev["run_ids"].as_array().unwrap().is_empty());
    // Restarting on the same store does not make a new version of an unchanged file.
    let s = s.kill_and_restart();
    assert!(
        s.stdout.contains("loaded hello-chain v1 (3 steps)"),
        "{}",
        s.stdout
    );
}

#[test]
fn componentize_wraps_a_wat_module() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("echo.wasm");
    let src = repo("guest-examples/wat/echo.wat");
    let (code, _, err) = weir(&[
        "componentize",
        src.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[..4], b"\0asm");
    assert_eq!(&bytes[6..8], &[1, 0], "a component, not a core module");
    let junk = dir.path().join("junk.wat");
    std::fs::write(&junk, "(module (func $oops").unwrap();
    let (code, _, err) = weir(&[
        "componentize",
        junk.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("neither wasm nor valid WAT"), "{err}");
}

#[test]
fn json_logs_carry_the_run_and_step_of_a_failing_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let (func, bad) = failing(dir.path(), 500);
    let (code, out, err) = weir(&[
        "--log-format",
        "json",
        "run",
        &func,
        "--event",
        &bad,
        "--json",
    ]);
    assert_eq!(code, 1, "{out}{err}");
    let run: serde_json::Value = serde_json::from_str(&out).unwrap();
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let failed = lines
        .iter()
        .find(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("step attempt failed"))
        })
        .unwrap_or_else(|| panic!("no failed-attempt line in {err}"));
    assert_eq!(failed["level"], "WARN");
    assert_eq!(failed["fields"]["attempt"], 1);
    assert_eq!(failed["span"]["run"], run["id"], "{failed}");
    assert_eq!(failed["span"]["step"], "r");
    assert_eq!(failed["span"]["tenant"], "default");
    // Text stays the default.
    let (_, _, err) = weir(&["run", &func, "--event", &bad]);
    assert!(
        err.contains("step attempt failed") && !err.trim_start().starts_with('{'),
        "{err}"
    );
    let (code, _, err) = weir(&["--log-format", "yaml", "run", &func, "--event", &bad]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid value 'yaml'"), "{err}");
}
