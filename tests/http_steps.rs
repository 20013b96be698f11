//! http steps against a real local HTTP server: the input POSTed and signed, the answer
//! the output; 4xx fails at once, 5xx and hangs retry or time out, big answers are
//! capped, redirects are not followed, a private address is refused under `weir serve`.

mod common;

use common::receiver::receiver;
use common::Server;
use serde_json::{json, Value};

fn http_step(url: &str, extra: Value) -> Value {
    let mut s = json!({"runtime": {"type": "http", "url": url}});
    if let Some(m) = extra.as_object() {
        for (k, v) in m {
            s[k] = v.clone();
        }
    }
    s
}

#[test]
fn an_http_step_gets_the_signed_input_and_its_answer_is_the_output() {
    let (base, seen) = receiver();
    let s = Server::start();
    let mut step = http_step(
        &format!("{base}/greet"),
        json!({"after": [{"step": "hello"}]}),
    );
    step["runtime"]["headers"] = json!({"X-Team": "billing"});
    s.deploy_ok(json!({"id": "hook", "triggers": [{"event": "go"}],
        "steps": {"hello": {"path": "guest:hello"}, "call": step,
                  "after": {"path": "guest:echo", "after": [{"step": "call"}]}}}));
    let run = s.send_and_finish(json!({"name": "go", "data": {"name": "Ada"}}));
    assert_eq!(run["status"], "completed", "{run:#}");
    let out = &run["steps"]["call"]["output"]["body"];
    assert_eq!(out["signed"], true, "{run:#}");
    assert_eq!(out["saw"], "Hello, Ada!");
    assert_eq!(out["attempt"], "0");
    assert_eq!(out["team"], "billing");
    // The wasm step after it sees the http step's output like any other.
    assert_eq!(
        run["steps"]["after"]["output"]["steps"]["call"]["body"]["saw"],
        "Hello, Ada!"
    );
    // The receiver got the §3 input document.
    let bodies = seen.bodies.lock().unwrap();
    assert_eq!(bodies[0]["event"]["data"]["name"], "Ada");
    assert_eq!(bodies[0]["ctx"]["step_id"], "call");
}

#[test]
fn http_failures_end_like_any_steps_failures() {
    let (base, seen) = receiver();
    let s = Server::start();
    let one = |id: &str, path: &str, extra: Value| {
        let mut step = http_step(&format!("{base}/{path}"), json!({}));
        if let Some(m) = extra.as_object() {
            for (k, v) in m {
                step[k] = v.clone();
            }
        }
        s.deploy_ok(json!({"id": id, "triggers": [{"event": id}],
            "retries": {"attempts": 2, "backoff": "10ms"}, "steps": {"s": step}}));
        s.send_and_finish(json!({"name": id}))
    };

    // 5xx is retried: two 503s, then the answer.
    let run = one("flaky", "flaky", json!({}));
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(run["steps"]["s"]["attempts"], 3);
    assert_eq!(run["steps"]["s"]["output"]["ok"], true);

    // 4xx fails at once, its body kept as the output.
    let run = one("missing", "missing", json!({}));
    assert_eq!(run["status"], "failed");
    assert_eq!(run["steps"]["s"]["attempts"], 1);
    assert_eq!(run["steps"]["s"]["error"], "step returned status 404");
    assert_eq!(
        run["steps"]["s"]["output"]["body"]["error"],
        "no such thing"
    );

    // A hang ends at the step's timeout, each attempt.
    let run = one(
        "hang",
        "hang",
        json!({"limits": {"timeout": "300ms"}, "retries": {"attempts": 1, "backoff": "10ms"}}),
    );
    assert_eq!(run["status"], "failed");
    let err = run["steps"]["s"]["error"].as_str().unwrap();
    assert!(err.contains("deadline 300ms exceeded"), "{err}");
    assert_eq!(run["steps"]["s"]["attempts"], 2);

    // A 10 MiB answer goes over the output cap.
    let run = one(
        "huge",
        "huge",
        json!({"limits": {"stdout": "1MiB"}, "retries": {"attempts": 0}}),
    );
    assert_eq!(run["status"], "failed");
    let err = run["steps"]["s"]["error"].as_str().unwrap();
    assert!(err.contains("stdout over 1 MiB"), "{err}");

    // A redirect is not followed, and not retried.
    let before = seen.hits.lock().unwrap().get("greet").copied().unwrap_or(0);
    let run = one("moved", "moved", json!({}));
    assert_eq!(run["status"], "failed");
    assert_eq!(run["steps"]["s"]["attempts"], 1);
    let err = run["steps"]["s"]["error"].as_str().unwrap();
    assert!(
        err.contains("302") && err.contains("does not follow redirects"),
        "{err}"
    );
    assert_eq!(
        seen.hits.lock().unwrap().get("greet").copied().unwrap_or(0),
        before
    );

    // Plain text is the output's body, as for a wasm step.
    let run = one("text", "text", json!({}));
    assert_eq!(run["steps"]["s"]["output"], json!({"body": "plain words"}));

    // Nothing listening: a connection error, retried, then failed naming it.
    let run = s.deploy_ok(json!({"id": "nobody", "triggers": [{"event": "nobody"}],
        "retries": {"attempts": 1, "backoff": "10ms"},
        "steps": {"s": http_step("http://127.0.0.1:9/x", json!({}))}}));
    let _ = run;
    let run = s.send_and_finish(json!({"name": "nobody"}));
    assert_eq!(run["status"], "failed");
    assert_eq!(run["steps"]["s"]["attempts"], 2);
    let err = run["steps"]["s"]["error"].as_str().unwrap();
    assert!(err.contains("request failed"), "{err}");
}

#[test]
fn bad_http_targets_are_refused_at_deploy_naming_the_field() {
    let s = Server::start();
    let cases = [
        (
            json!({"runtime": {"type": "http"}}),
            "steps.s.runtime.url",
            "is required",
        ),
        (
            json!({"runtime": {"type": "http", "url": "ftp://x/y"}}),
            "steps.s.runtime.url",
            "http://",
        ),
        (
            json!({"runtime": {"type": "http", "url": "http://x", "headers": {"X-Weir-Signature": "forged"}}}),
            "steps.s.runtime.headers.X-Weir-Signature",
            "set by weir",
        ),
        (
            json!({"runtime": {"type": "http", "url": "http://x", "method": "GET"}}),
            "steps.s.runtime.method",
            "not a setting",
        ),
        (
            json!({"path": "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "runtime": {"type": "http", "url": "http://x"}}),
            "steps.s.path",
            "no `path`",
        ),
        (
            json!({"runtime": {"type": "lua"}}),
            "steps.s.runtime.type",
            "not a runtime",
        ),
    ];
    for (step, field, says) in cases {
        let (st, body) =
            s.deploy(json!({"id": "bad", "triggers": [{"event": "e"}], "steps": {"s": step}}));
        assert_eq!(st, 400, "{body}");
        assert_eq!(body["code"], "invalid_function", "{body}");
        let e = body["error"].as_str().unwrap();
        assert!(e.contains(field) && e.contains(says), "{field}: {e}");
    }
}

#[test]
fn under_serve_http_steps_need_a_signing_key_and_a_public_address() {
    let config = format!(
        "{}signing_key = \"globex-signing-key-01\"\n",
        common::TWO_TENANTS
    );
    // acme has no key (the key above is globex's, the last tenant declared).
    let acme = Server::serve(&config, "api_acme_0001", "evt_acme_0001");
    let globex = Server::serve_view(&acme, "api_globex_01", "evt_globex_01");
    let step = |url: &str| json!({"id": "hook", "triggers": [{"event": "e"}], "steps": {"s": {"runtime": {"type": "http", "url": url}}}});
    let (st, body) = acme.deploy(step("https://example.com/hook"));
    assert_eq!(st, 400, "{body}");
    let e = body["error"].as_str().unwrap();
    assert!(
        e.contains("steps.s.runtime") && e.contains("signing_key"),
        "{e}"
    );
    for private in [
        "http://127.0.0.1:8080/x",
        "http://10.0.0.7/x",
        "http://[::1]/x",
        "http://169.254.169.254/latest/meta-data",
    ] {
        let (st, body) = globex.deploy(step(private));
        assert_eq!(st, 400, "{private}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("private address"),
            "{body}"
        );
    }
    assert_eq!(globex.deploy(step("https://example.com/hook")).0, 200);
}
