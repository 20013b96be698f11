//! Hostile guests end with an error naming what they hit, the host keeps serving, and
//! a guest sees no files, no sockets and only the environment its function declares.

mod common;

use common::{one_step, Server};
use serde_json::json;

fn failure(s: &Server, id: &str, guest: &str, limits: serde_json::Value) -> String {
    s.deploy_ok(one_step(id, id, guest, json!({"limits": limits})));
    let run = s.send_and_finish(json!({"name": id}));
    assert_eq!(run["status"], "failed", "{run:#}");
    run["steps"]["s"]["error"].as_str().unwrap().to_string()
}

#[test]
fn hostile_guests_fail_with_the_limit_they_hit() {
    let s = Server::start();
    let e = failure(&s, "trap", "trap", json!({}));
    assert!(e.contains("trapped") && e.contains("unreachable"), "{e}");
    let e = failure(&s, "spin", "spin", json!({"timeout": "300ms"}));
    assert!(e.contains("deadline 300ms exceeded"), "{e}");
    // A guest asleep in a host call (a ten-minute nanosleep) is stopped at its deadline too.
    s.deploy_ok(one_step(
        "nap",
        "nap",
        "nap",
        json!({"limits": {"timeout": "300ms"}}),
    ));
    let run = s.send_and_finish(json!({"name": "nap", "data": {"nap_ms": 600_000}}));
    assert_eq!(run["status"], "failed", "{run:#}");
    let e = run["steps"]["s"]["error"].as_str().unwrap();
    assert!(e.contains("deadline 300ms exceeded"), "{e}");
    let e = failure(
        &s,
        "spin-fuel",
        "spin",
        json!({"fuel": 1_000_000, "timeout": "30s"}),
    );
    assert!(e.contains("fuel budget 1000000 exhausted"), "{e}");
    let e = failure(&s, "membomb", "membomb", json!({"memory": "16MiB"}));
    assert!(e.contains("memory limit 16 MiB exceeded"), "{e}");
    let e = failure(
        &s,
        "flood",
        "flood",
        json!({"stdout": "64KiB", "timeout": "1s"}),
    );
    assert!(e.contains("stdout over 64 KiB"), "{e}");
    let e = failure(
        &s,
        "stderr-flood",
        "stderr-flood",
        json!({"stderr": "32KiB", "timeout": "1s"}),
    );
    assert!(e.contains("stderr over 32 KiB"), "{e}");
    let e = failure(&s, "recurse", "recurse", json!({}));
    assert!(
        e.contains("call stack exhausted") || e.contains("stack overflow"),
        "{e}"
    );
    // A giant JSON answer hits the default output cap (4 MiB) and is not stored whole.
    let e = failure(&s, "giant", "giant", json!({}));
    assert!(e.contains("stdout over 4 MiB"), "{e}");
    // The host is healthy and still runs good steps.
    s.deploy_ok(one_step("fine", "fine", "echo", json!({})));
    let run = s.send_and_finish(json!({"name": "fine"}));
    assert_eq!(run["status"], "completed");
    assert_eq!(s.get("/health").0, 200);
}

#[test]
fn a_guest_sees_no_files_no_sockets_and_only_declared_env() {
    let s = Server::start();
    let mut def = one_step(
        "probe",
        "probe",
        "probe",
        json!({"env": {"GREETING": "hi"}}),
    );
    def["env"] = json!({"REGION": "eu"});
    s.deploy_ok(def);
    let run = s.send_and_finish(json!({"name": "probe"}));
    assert_eq!(run["status"], "completed", "{run:#}");
    let b = &run["steps"]["s"]["output"]["body"];
    assert_eq!(b["file_opened"], false, "{b}");
    assert_ne!(b["file_errno"], 0);
    assert_eq!(b["dir_opened"], false, "{b}");
    assert_eq!(b["greeting"], "hi");
    assert_eq!(
        b["env_count"], 2,
        "only GREETING and REGION, nothing of the host: {b}"
    );
    // The network is out of reach: accepting on a socket ends the step with an error.
    s.deploy_ok(one_step("net", "net", "socket", json!({})));
    let run = s.send_and_finish(json!({"name": "net"}));
    assert_eq!(run["status"], "failed");
    assert!(
        run["steps"]["s"]["error"]
            .as_str()
            .unwrap()
            .contains("sock_accept"),
        "{run:#}"
    );
}

#[test]
fn another_tenant_keeps_running_while_one_spins_and_bombs() {
    let config = r#"
workers = 4
[[tenants]]
id = "evil"
event_keys = ["evt_evil_0001"]
api_keys = ["api_evil_0001"]
[[tenants]]
id = "good"
event_keys = ["evt_good_0001"]
api_keys = ["api_good_0001"]
"#;
    let evil = Server::serve(config, "api_evil_0001", "evt_evil_0001");
    let mut spin = one_step(
        "spin",
        "attack",
        "spin",
        json!({"limits": {"timeout": "3s"}}),
    );
    spin["retries"] = json!({"attempts": 2, "backoff": "10ms"});
    evil.deploy_ok(spin);
    evil.deploy_ok(one_step(
        "bomb",
        "attack",
        "membomb",
        json!({"limits": {"memory": "64MiB"}}),
    ));
    let attack = evil.send(json!({"name": "attack"}));
    let attack_runs = evil.runs_of(&attack);
    assert_eq!(attack_runs.len(), 2);
    let good = Server::serve_view(&evil, "api_good_0001", "evt_good_0001");
    good.deploy_ok(one_step("work", "work", "hello", json!({})));
    for i in 0..5 {
        let run = good.send_and_finish(json!({"name": "work", "data": {"name": format!("n{i}")}}));
        assert_eq!(run["status"], "completed");
        assert_eq!(
            run["steps"]["s"]["output"]["body"]["message"],
            format!("Hello, n{i}!")
        );
    }
    // The spinning run was still going while the good tenant's five runs completed.
    let spinning = attack_runs
        .iter()
        .map(|r| evil.get(&format!("/v1/runs/{r}")).1)
        .find(|r| r["function_id"] == "spin")
        .unwrap();
    assert_eq!(spinning["status"], "running", "{spinning:#}");
    let done = evil.wait_done(spinning["id"].as_str().unwrap());
    assert_eq!(done["status"], "failed");
    assert_eq!(done["steps"]["s"]["attempts"], 3);
}

#[test]
fn each_step_records_what_the_sandbox_measured() {
    let s = Server::start();
    s.deploy_ok(one_step("fig", "fig/go", "hello", json!({})));
    let run = s.send_and_finish(json!({"name": "fig/go", "data": {"name": "Ada"}}));
    let step = &run["steps"]["s"];
    assert_eq!(step["status"], "completed", "{run}");
    let f = &step["sandbox"];
    // A C guest runs thousands of instructions and has at least one 64 KiB wasm page.
    assert!(f["fuel"].as_u64().unwrap() > 1_000, "{f}");
    assert!(f["memory_peak"].as_u64().unwrap() >= 65_536, "{f}");
    assert!(
        f["instantiate_us"].as_u64().is_some() && f["run_us"].as_u64().is_some(),
        "{f}"
    );
    // The timeline's marks: ready, then started, then ended.
    let (ready, first, ended) = (
        step["ready_at"].as_i64().unwrap(),
        step["first_started_at"].as_i64().unwrap(),
        step["ended_at"].as_i64().unwrap(),
    );
    assert!(ready <= first && first <= ended, "{step}");
    // A step that dies at its memory limit still shows how far it got.
    s.deploy_ok(one_step(
        "bomb",
        "bomb/go",
        "membomb",
        json!({"limits": {"memory": "8MiB"}}),
    ));
    let run = s.send_and_finish(json!({"name": "bomb/go", "data": {}}));
    let peak = run["steps"]["s"]["sandbox"]["memory_peak"]
        .as_u64()
        .unwrap();
    assert!(peak > 65_536 && peak <= 8 << 20, "{run}");
}
