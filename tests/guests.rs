//! Steps in more languages, each built from source by `guest-examples/build.sh` and run
//! by the real binary: Python (componentize-py, an 18 MB component, whose compiled
//! artefact is stored, so after a restart the step loads it instead of compiling again)
//! JavaScript (componentize-js, 13 MB, likewise) and Rust with serde_json (Debian's
//! cargo, offline).

mod common;

use common::Server;
use serde_json::json;

/// Deploys `guest` (a big component: compiled once), runs it, restarts weir and runs it
/// again: the restart loads the stored artefact and compiles nothing.
fn greets_and_loads_from_cache_after_restart(guest: &str, lang: &str) {
    let s = Server::start();
    // Uploading compiles it (tens of seconds in a debug build) and stores the artefact.
    s.deploy_ok(json!({"id": "greet", "triggers": [{"event": "go"}],
        "steps": {"greet": {"path": format!("guest:{guest}")}}}));
    assert_eq!(s.metric("weir_wasm_components_compiled_total"), Some(1.0));
    let run = s.send_and_finish(json!({"name": "go", "data": {"name": "Ada"}}));
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(
        run["steps"]["greet"]["output"],
        json!({"status": 200, "body": {"message": "Hello, Ada!", "lang": lang, "attempt": 0}})
    );
    let lang_name = if lang == "python" {
        "Python"
    } else {
        "JavaScript"
    };
    assert_eq!(
        run["steps"]["greet"]["log"],
        format!("greeting Ada from {lang_name}\n")
    );

    // A restart: the version is loaded, and its component comes from the artefact.
    let s = s.stop_and_restart();
    let run = s.send_and_finish(json!({"name": "go", "data": {"name": "Grace"}}));
    assert_eq!(
        run["steps"]["greet"]["output"]["body"]["message"],
        "Hello, Grace!"
    );
    assert_eq!(s.metric("weir_wasm_components_compiled_total"), Some(0.0));
    assert_eq!(
        s.metric("weir_wasm_components_loaded_from_cache_total"),
        Some(1.0)
    );
}

#[test]
fn a_python_step_runs_and_after_a_restart_its_compiled_artefact_is_loaded() {
    greets_and_loads_from_cache_after_restart("py-greet", "python");
}

#[test]
fn a_javascript_step_runs_and_after_a_restart_its_compiled_artefact_is_loaded() {
    greets_and_loads_from_cache_after_restart("js-greet", "javascript");
}

#[test]
fn a_rust_step_with_serde_parses_its_input_into_types() {
    let s = Server::start();
    s.deploy_ok(
        json!({"id": "rs", "triggers": [{"event": "go"}], "retries": {"attempts": 0},
        "steps": {"greet": {"path": "guest:serde-greet"}}}),
    );
    let run = s.send_and_finish(json!({"name": "go", "data": {"name": "Ada"}}));
    assert_eq!(
        run["steps"]["greet"]["output"],
        json!({"status": 200, "body": {"message": "Hello, Ada!", "lang": "rust", "attempt": 0}})
    );
    // A field of the wrong type is the typed parser's 400, which fails the step at once.
    let run = s.send_and_finish(json!({"name": "go", "data": {"name": 42}}));
    assert_eq!(run["status"], "failed", "{run:#}");
    assert_eq!(run["steps"]["greet"]["error"], "step returned status 400");
    let why = run["steps"]["greet"]["output"]["body"]["error"]
        .as_str()
        .unwrap();
    assert!(
        why.contains("invalid type: integer `42`, expected a string"),
        "{why}"
    );
    let run = s.send_and_finish(json!({"name": "go"}));
    assert_eq!(
        run["steps"]["greet"]["output"]["body"]["message"],
        "Hello, world!"
    );
}
