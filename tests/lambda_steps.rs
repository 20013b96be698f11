//! lambda steps against moto's real Lambda Invoke endpoint: the input is the payload
//! (SigV4-signed with the standard credentials), the answer the output; a FunctionError
//! and a 5xx are retried, a 4xx (no such function) fails at once, a hang times out, and
//! missing credentials are named at deploy.

mod common;

use common::moto::Moto;
use common::Server;
use serde_json::{json, Value};

const CREDS: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_SESSION_TOKEN", ""),
];

fn lambda_step(endpoint: &str, function: &str, extra: Value) -> Value {
    let mut s = json!({"runtime": {"type": "lambda", "function": function, "region": "us-east-1", "endpoint": endpoint}});
    if let Some(m) = extra.as_object() {
        for (k, v) in m {
            s[k] = v.clone();
        }
    }
    s
}

#[test]
fn a_lambda_step_gets_the_input_as_payload_and_its_answer_is_the_output() {
    let moto = Moto::start(false);
    let s = Server::start_env(&[], &CREDS, None);
    moto.call("POST", "/moto-api/recorder/start-recording", None);
    s.deploy_ok(json!({"id": "lam", "triggers": [{"event": "go"}],
        "steps": {"hello": {"path": "guest:hello"},
                  "greet": lambda_step(&moto.url, "greet", json!({"after": [{"step": "hello"}]})),
                  "after": {"path": "guest:echo", "after": [{"step": "greet"}]}}}));
    let run = s.send_and_finish(json!({"name": "go", "data": {"name": "Ada"}}));
    assert_eq!(run["status"], "completed", "{run:#}");
    // With nothing queued moto's Lambda answers with the payload: the §3 input, with the
    // wasm step's output in it.
    let out = &run["steps"]["greet"]["output"];
    assert_eq!(out["steps"]["hello"]["body"]["message"], "Hello, Ada!");
    assert_eq!(out["ctx"]["step_id"], "greet");
    assert_eq!(
        run["steps"]["after"]["output"]["steps"]["greet"]["ctx"]["step_id"],
        "greet"
    );
    // It was a SigV4-signed Invoke of that function in that region.
    let (_, rec) = moto.call("GET", "/moto-api/recorder/download-recording", None);
    let invoke: Value = rec
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|r| {
            r["url"]
                .as_str()
                .unwrap_or("")
                .ends_with("/2015-03-31/functions/greet/invocations")
        })
        .unwrap_or_else(|| panic!("no invoke recorded: {rec}"));
    let auth = invoke["headers"]["Authorization"].as_str().unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=testing/")
            && auth.contains("/us-east-1/lambda/aws4_request"),
        "{auth}"
    );
}

#[test]
fn function_errors_and_5xx_retry_4xx_fails_at_once_and_a_hang_times_out() {
    let moto = Moto::start(false);
    let s = Server::start_env(&[], &CREDS, None);
    let deploy = |id: &str, endpoint: &str, extra: Value| {
        s.deploy_ok(json!({"id": id, "triggers": [{"event": id}], "retries": {"attempts": 2, "backoff": "10ms"},
            "steps": {"s": lambda_step(endpoint, id, extra)}}));
    };

    // A result over Lambda's 6 MB limit makes moto answer as Lambda does: 200 with
    // X-Amz-Function-Error: Unhandled. Retried; the next attempt gets the echo.
    moto.queue_results(&[format!("\"{}\"", "x".repeat(6_000_001))]);
    deploy("unhandled", &moto.url, json!({}));
    let run = s.send_and_finish(json!({"name": "unhandled", "data": {"n": 1}}));
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(run["steps"]["s"]["attempts"], 2);
    assert_eq!(run["steps"]["s"]["output"]["event"]["data"]["n"], 1);

    // A 500 from the API: retried.
    let (st, body) = moto.call(
        "POST",
        "/moto-api/static/lambda-simple/response",
        Some(json!({"results": [{}], "region": "us-east-1"})),
    );
    assert_eq!(st, 201, "{body}");
    deploy("five", &moto.url, json!({}));
    let run = s.send_and_finish(json!({"name": "five"}));
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(run["steps"]["s"]["attempts"], 2);

    // A function that does not exist (moto checks in its docker mode): 404, not retried.
    let strict = Moto::start(true);
    deploy("nosuch", &strict.url, json!({}));
    let run = s.send_and_finish(json!({"name": "nosuch"}));
    assert_eq!(run["status"], "failed", "{run:#}");
    assert_eq!(run["steps"]["s"]["attempts"], 1);
    let err = run["steps"]["s"]["error"].as_str().unwrap();
    assert!(
        err.contains("404") && err.contains("ResourceNotFoundException"),
        "{err}"
    );

    // An endpoint that accepts and never answers: each attempt ends at the timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let held = std::thread::spawn(move || {
        let mut kept = Vec::new();
        for c in silent.incoming().take(2) {
            kept.push(c);
        }
        std::thread::sleep(std::time::Duration::from_secs(5));
    });
    deploy(
        "hang",
        &format!("http://{addr}"),
        json!({"limits": {"timeout": "300ms"}, "retries": {"attempts": 1, "backoff": "10ms"}}),
    );
    let run = s.send_and_finish(json!({"name": "hang"}));
    assert_eq!(run["status"], "failed", "{run:#}");
    assert_eq!(run["steps"]["s"]["attempts"], 2);
    let err = run["steps"]["s"]["error"].as_str().unwrap();
    assert!(err.contains("deadline 300ms exceeded"), "{err}");
    drop(held);
}

#[test]
fn without_credentials_a_lambda_step_is_refused_at_deploy() {
    let s = Server::start_env(
        &[],
        &[
            ("AWS_ACCESS_KEY_ID", ""),
            ("AWS_SECRET_ACCESS_KEY", ""),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials"),
        ],
        None,
    );
    let (st, body) = s.deploy(json!({"id": "lam", "triggers": [{"event": "e"}],
        "steps": {"s": lambda_step("http://127.0.0.1:9", "f", json!({}))}}));
    assert_eq!(st, 400, "{body}");
    let e = body["error"].as_str().unwrap();
    assert!(
        e.contains("steps.s.runtime") && e.contains("no AWS credentials"),
        "{e}"
    );
    let (st, body) = s.deploy(json!({"id": "lam", "triggers": [{"event": "e"}],
        "steps": {"s": {"runtime": {"type": "lambda", "function": "f"}}}}));
    assert_eq!(st, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("steps.s.runtime.region"),
        "{body}"
    );
}

/// A stand-in Lambda endpoint that throttles: `429 TooManyRequestsException` for the
/// first `throttled` calls, then an answer.
fn throttling_endpoint(throttled: usize) -> String {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for (i, c) in l.incoming().enumerate() {
            let Ok(mut c) = c else { continue };
            // Read the request head and its body before answering.
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = c.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len: usize = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break;
                    }
                }
            }
            let reply = if i < throttled {
                let body = r#"{"message":"Rate Exceeded.","Type":"User"}"#;
                format!("HTTP/1.1 429 Too Many Requests\r\nx-amzn-ErrorType: TooManyRequestsException\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len())
            } else {
                let body = r#"{"status":200,"body":{"ok":true}}"#;
                format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len())
            };
            let _ = c.write_all(reply.as_bytes());
        }
    });
    format!("http://{addr}")
}

#[test]
fn a_throttled_invoke_is_retried() {
    // moto cannot throttle, so a stand-in endpoint answers 429 twice.
    let endpoint = throttling_endpoint(2);
    let s = Server::start_env(&[], &CREDS, None);
    s.deploy_ok(json!({"id": "busy", "triggers": [{"event": "busy"}], "retries": {"attempts": 3, "backoff": "10ms"},
        "steps": {"s": lambda_step(&endpoint, "busy", json!({}))}}));
    let run = s.send_and_finish(json!({"name": "busy"}));
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(run["steps"]["s"]["attempts"], 3);
    assert_eq!(run["steps"]["s"]["output"]["body"]["ok"], true);
}
