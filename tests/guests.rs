//! Steps in more languages, each built from source by `guest-examples/build.sh` and run
//! by the real binary: Python (componentize-py, an 18 MB component). Its compiled
//! artefact is stored, so after a restart the step loads it instead of compiling again.

mod common;

use common::Server;
use serde_json::json;

#[test]
fn a_python_step_runs_and_after_a_restart_its_compiled_artefact_is_loaded() {
    let s = Server::start();
    // Uploading compiles it (tens of seconds in a debug build) and stores the artefact.
    s.deploy_ok(json!({"id": "py", "triggers": [{"event": "go"}],
        "steps": {"greet": {"path": "guest:py-greet"}}}));
    assert_eq!(s.metric("weir_wasm_components_compiled_total"), Some(1.0));
    let run = s.send_and_finish(json!({"name": "go", "data": {"name": "Ada"}}));
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(
        run["steps"]["greet"]["output"],
        json!({"status": 200, "body": {"message": "Hello, Ada!", "lang": "python", "attempt": 0}})
    );
    assert_eq!(run["steps"]["greet"]["log"], "greeting Ada from Python\n");

    // A restart: the version is loaded, and its component comes from the artefact.
    let s = s.stop_and_restart();
    let run = s.send_and_finish(json!({"name": "go", "data": {"name": "Grace"}}));
    assert_eq!(run["steps"]["greet"]["output"]["body"]["message"], "Hello, Grace!");
    assert_eq!(s.metric("weir_wasm_components_compiled_total"), Some(0.0));
    assert_eq!(s.metric("weir_wasm_components_loaded_from_cache_total"), Some(1.0));
}
