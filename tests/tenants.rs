//! `weir serve` with two tenants: every endpoint checks its key and sees only its tenant;
//! one tenant cannot starve another; ingress limits answer clearly.

mod common;

use common::{one_step, Server, TWO_TENANTS};
use serde_json::json;

#[test]
fn every_endpoint_checks_keys_and_hides_other_tenants() {
    let a = Server::serve(TWO_TENANTS, "api_acme_0001", "evt_acme_0001");
    assert!(
        a.stdout.contains("2 tenant(s): acme, globex"),
        "{}",
        a.stdout
    );
    a.deploy_ok(one_step("secret-fn", "e", "echo", json!({})));
    let run = a.send_and_finish(json!({"name": "e", "user": {"id": "u1"}}));
    let run_id = run["id"].as_str().unwrap().to_string();
    let event_id = run["event_id"].as_str().unwrap().to_string();
    let echo = std::fs::read(common::guest("echo")).unwrap();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&echo));
    let def = serde_json::to_vec(&json!({"id": "x", "triggers": [{"event": "e"}], "steps": {"s": {"path": format!("sha256:{sha}")}}})).unwrap();

    // (method, path, body) of every /v1 endpoint.
    let endpoints: Vec<(&str, String, Option<Vec<u8>>)> = vec![
        ("GET", "/v1/functions".into(), None),
        ("POST", "/v1/functions".into(), Some(def.clone())),
        ("GET", "/v1/functions/secret-fn".into(), None),
        ("GET", "/v1/functions/secret-fn/versions".into(), None),
        ("GET", "/v1/functions/secret-fn/rollout".into(), None),
        (
            "PUT",
            "/v1/functions/secret-fn/rollout".into(),
            Some(br#"{"versions":[{"version":1,"weight":100}]}"#.to_vec()),
        ),
        (
            "POST",
            "/v1/functions/secret-fn/promote".into(),
            Some(br#"{"version":1}"#.to_vec()),
        ),
        ("POST", "/v1/functions/secret-fn/rollback".into(), None),
        ("PUT", format!("/v1/components/{sha}"), Some(echo.clone())),
        ("GET", "/v1/events".into(), None),
        ("GET", format!("/v1/events/{event_id}"), None),
        ("GET", "/v1/runs".into(), None),
        ("GET", format!("/v1/runs/{run_id}"), None),
        ("GET", "/v1/runs?user=u1".into(), None),
        ("POST", format!("/v1/runs/{run_id}/cancel"), None),
    ];
    for (m, path, body) in &endpoints {
        let b = body.as_deref();
        let (st, e, _) = a.request(m, path, b, None);
        assert_eq!(st, 401, "{m} {path} without a key: {e}");
        assert!(e["error"].as_str().unwrap().contains("missing key"), "{e}");
        let (st, _, _) = a.request(m, path, b, Some("api_wrong_key"));
        assert_eq!(st, 401, "{m} {path} with a wrong key");
        let (st, e, _) = a.request(m, path, b, Some("evt_acme_0001"));
        assert_eq!(st, 403, "{m} {path} with an event key: {e}");
        // Another tenant's key: acme's things do not exist for globex.
        let (st, body, _) = a.request(m, path, b, Some("api_globex_01"));
        // A 404 may repeat the id that was asked for; anything else must not show acme's data.
        let leaked = body.to_string();
        if st != 404 {
            assert!(
                !leaked.contains(&run_id)
                    && !leaked.contains(&event_id)
                    && !leaked.contains("secret-fn"),
                "{m} {path} leaked: {leaked}"
            );
        }
        match (*m, path.as_str()) {
            ("GET", "/v1/functions")
            | ("GET", "/v1/events")
            | ("GET", "/v1/runs")
            | ("GET", "/v1/runs?user=u1") => {
                assert_eq!(st, 200);
                assert!(
                    body["data"].as_array().unwrap().is_empty(),
                    "{m} {path}: {body}"
                );
            }
            // globex never uploaded the component: its deploy fails naming the step.
            ("POST", "/v1/functions") => assert_eq!(st, 400, "{body}"),
            ("PUT", p) if p.starts_with("/v1/components/") => {
                assert_eq!(st, 200, "globex may upload its own copy")
            }
            _ => {
                assert_eq!(st, 404, "{m} {path}: {body}");
                // Exactly what a thing that never existed gets: no existence leak.
                let ghost = path
                    .replace(&run_id, "01ZZZZZZZZZZZZZZZZZZZZZZZZ")
                    .replace(&event_id, "01ZZZZZZZZZZZZZZZZZZZZZZZZ")
                    .replace("secret-fn", "ghost-fn");
                let (gst, gbody, _) = a.request(m, &ghost, b, Some("api_acme_0001"));
                assert_eq!(gst, 404, "{ghost}");
                let norm = |v: &serde_json::Value| {
                    v["error"]
                        .as_str()
                        .unwrap()
                        .replace(&run_id, "X")
                        .replace(&event_id, "X")
                        .replace("secret-fn", "X")
                        .replace("01ZZZZZZZZZZZZZZZZZZZZZZZZ", "X")
                        .replace("ghost-fn", "X")
                };
                assert_eq!(norm(&body), norm(&gbody), "{m} {path}");
            }
        }
    }
    // acme's run was not cancelled by globex.
    let (_, r) = a.get(&format!("/v1/runs/{run_id}"));
    assert_eq!(r["status"], "completed");

    // Events: only event keys send, each to its own tenant.
    for (key, status) in [
        ("evt_acme_0001", 200),
        ("evt_globex_01", 200),
        ("api_acme_0001", 401),
        ("nope_nope_nope", 401),
    ] {
        let (st, body, _) = a.request("POST", &format!("/e/{key}"), Some(br#"{"name":"e"}"#), None);
        assert_eq!(st, status, "POST /e/{key}: {body}");
    }
    let (st, _, _) = a.request(
        "POST",
        "/e",
        Some(br#"{"name":"e"}"#),
        Some("evt_globex_01"),
    );
    assert_eq!(st, 200);
    let (st, _, _) = a.request("POST", "/e", Some(br#"{"name":"e"}"#), None);
    assert_eq!(st, 401);
    // globex's events never started acme's function.
    let (_, f) = a.get("/v1/functions/secret-fn");
    let total: u64 = f["runs"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(
        total, 2,
        "one run from the first event, one from evt_acme_0001: {f}"
    );
    // /health stays open.
    assert_eq!(a.request("GET", "/health", None, None).0, 200);
}

#[test]
fn one_tenant_flooding_cannot_starve_another() {
    let config = TWO_TENANTS.replace(
        "api_keys = [\"api_acme_0001\"]",
        "api_keys = [\"api_acme_0001\"]\nmax_concurrent_steps = 1",
    );
    let a = Server::serve(&config, "api_acme_0001", "evt_acme_0001");
    a.deploy_ok(one_step(
        "slow",
        "flood",
        "spin",
        json!({"limits": {"timeout": "1s"}}),
    ));
    let flood: Vec<serde_json::Value> = (0..12).map(|_| json!({"name": "flood"})).collect();
    let (st, _) = a.post("/e/evt_acme_0001", &json!(flood));
    assert_eq!(st, 200);
    let b = Server::serve_view(&a, "api_globex_01", "evt_globex_01");
    b.deploy_ok(one_step("quick", "ping", "echo", json!({})));
    let run = b.send_and_finish(json!({"name": "ping"}));
    assert_eq!(run["status"], "completed");
    // acme is still working through its flood: globex did not wait for it.
    let (_, f) = a.get("/v1/functions/slow");
    let finished = f["runs"]["failed"].as_u64().unwrap();
    assert!(
        finished < 12,
        "globex finished only after acme's whole flood ({finished} done)"
    );
}

#[test]
fn ingress_limits_answer_413_400_and_429() {
    let a = Server::serve(TWO_TENANTS, "api_acme_0001", "evt_acme_0001");
    let deep = format!(
        "{{\"name\":\"e\",\"data\":{}1{}}}",
        "{\"a\":".repeat(20),
        "}".repeat(20)
    );
    let (st, e) = a.post_raw("/e/evt_acme_0001", deep.as_bytes());
    assert_eq!(st, 400, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("deeper than 16"),
        "{e}"
    );
    let many: Vec<serde_json::Value> = (0..101).map(|_| json!({"name": "e"})).collect();
    let (st, e, retry) = a.request(
        "POST",
        "/e/evt_acme_0001",
        Some(&serde_json::to_vec(&many).unwrap()),
        None,
    );
    assert_eq!(st, 429, "{e}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert!(e["error"].as_str().unwrap().contains("retry later"), "{e}");
    // A smaller batch still fits.
    assert_eq!(a.post("/e/evt_acme_0001", &json!({"name": "e"})).0, 200);
}

#[test]
fn limits_above_the_server_ceiling_are_refused_at_deploy() {
    let a = Server::serve(TWO_TENANTS, "api_acme_0001", "evt_acme_0001");
    let (st, e) = a.deploy(one_step(
        "greedy",
        "e",
        "echo",
        json!({"limits": {"memory": "1GiB"}}),
    ));
    assert_eq!(st, 400);
    let msg = e["error"].as_str().unwrap();
    assert!(
        msg.contains("steps.s.limits.memory: 1 GiB is above this server's ceiling of 256 MiB"),
        "{msg}"
    );
}

#[test]
fn a_bad_config_fails_at_start_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weir.toml");
    std::fs::write(&path, "[[tenants]]\nid = \"a b\"\n").unwrap();
    let out = std::process::Command::new(common::weir_bin())
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tenants[0].id"), "{err}");
}
