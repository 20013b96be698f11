//! `POST /e/{key}`: the Inngest wire format, durable acks, clear errors, idempotency.

mod common;

use common::Server;
use serde_json::{json, Value};

#[test]
fn one_event_or_an_array_each_gets_an_id_and_is_stored() {
    let s = Server::start();
    let (st, one) = s.post(
        "/e/k",
        &json!({"name": "a/b", "data": {"x": 1}, "user": {"id": "u"}, "v": "1"}),
    );
    assert_eq!(st, 200);
    assert_eq!(one["status"], 200);
    assert!(one.get("error").is_none());
    let id = one["ids"][0].as_str().unwrap();
    let (st, ev) = s.get(&format!("/v1/events/{id}"));
    assert_eq!(st, 200);
    assert_eq!(
        (
            ev["name"].clone(),
            ev["data"]["x"].clone(),
            ev["user"]["id"].clone()
        ),
        (json!("a/b"), json!(1), json!("u"))
    );
    let batch: Vec<Value> = (0..3)
        .map(|i| json!({"name": "n", "data": {"i": i}}))
        .collect();
    let (st, many) = s.post("/e/k", &json!(batch));
    assert_eq!(st, 200);
    let ids: Vec<&str> = many["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "ids are sortable in arrival order");
    let (_, listed) = s.get("/v1/events?name=n");
    assert_eq!(listed["data"].as_array().unwrap().len(), 3);
}

#[test]
fn the_key_may_come_as_a_bearer_token() {
    let s = Server::start();
    let r = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
        .post(format!("{}/e", s.url))
        .header("Authorization", "Bearer evt_key")
        .send(br#"[{"name":"x"}]"#.as_slice())
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
        .post(format!("{}/e", s.url))
        .send(br#"[{"name":"x"}]"#.as_slice())
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[test]
fn bad_input_gets_a_clear_error_naming_index_and_field() {
    let s = Server::start();
    let cases: &[(&[u8], u16, &str)] = &[
        (b"{\"name\": ", 400, "not valid JSON"),
        (
            b"[{\"name\":\"ok\"},{\"data\":{}}]",
            400,
            "event[1].name: is required",
        ),
        (
            b"{\"name\":\"x\",\"data\":[1,2]}",
            400,
            "event[0].data: must be an object, got array",
        ),
        (
            b"{\"name\":\"x\",\"user\":\"bob\"}",
            400,
            "event[0].user: must be an object",
        ),
        (
            b"{\"name\":\"x\",\"ts\":\"noon\"}",
            400,
            "event[0].ts: must be a number",
        ),
        (b"{\"name\":\"\"}", 400, "event[0].name: must not be empty"),
        (b"[]", 400, "empty array"),
        (b"\"hello\"", 400, "got string"),
    ];
    for (body, status, needle) in cases {
        let (st, reply) = s.post_raw("/e/k", body);
        assert_eq!(st, *status, "{}: {reply}", String::from_utf8_lossy(body));
        assert_eq!(reply["status"], *status);
        let msg = reply["error"].as_str().unwrap();
        assert!(msg.contains(needle), "{msg:?} should contain {needle:?}");
    }
    // Nothing from the rejected batches was stored.
    let (_, listed) = s.get("/v1/events");
    assert!(listed["data"].as_array().unwrap().is_empty(), "{listed}");
}

#[test]
fn oversized_bodies_and_batches_get_413() {
    let s = Server::start();
    let big = json!({"name": "big", "data": {"blob": "x".repeat(3 << 20)}});
    let (st, reply) = s.post("/e/k", &big);
    assert_eq!(st, 413, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("larger than"));
    let many: Vec<Value> = (0..5001).map(|_| json!({"name": "n"})).collect();
    let (st, reply) = s.post("/e/k", &json!(many));
    assert_eq!(st, 413, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("5001 events"));
    // The server is still fine.
    assert_eq!(s.post("/e/k", &json!({"name": "small"})).0, 200);
}

#[test]
fn a_repeated_idempotency_id_is_accepted_but_triggers_nothing() {
    let s = Server::start();
    s.deploy_ok(json!({"id": "once", "triggers": [{"event": "pay"}], "steps": {"s": {"path": "guest:echo"}}}));
    let first = s.send(json!({"name": "pay", "id": "invoice-7"}));
    let second = s.send(json!({"name": "pay", "id": "invoice-7"}));
    assert_ne!(first, second);
    assert_eq!(s.runs_of(&first).len(), 1);
    let (_, ev) = s.get(&format!("/v1/events/{second}"));
    assert_eq!(ev["duplicate_of"], first);
    assert_eq!(ev["run_ids"], json!([]));
    let (_, f) = s.get("/v1/functions/once");
    let total: u64 = f["runs"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 1);
}

/// Every operation weir serves, as `(path, method)`: the document must list exactly these.
const ROUTES: &[(&str, &str)] = &[
    ("/e/{key}", "post"),
    ("/e", "post"),
    ("/v1/components/{sha256}", "put"),
    ("/v1/functions", "get"),
    ("/v1/functions", "post"),
    ("/v1/functions/{id}", "get"),
    ("/v1/functions/{id}/versions", "get"),
    ("/v1/functions/{id}/rollout", "get"),
    ("/v1/functions/{id}/rollout", "put"),
    ("/v1/functions/{id}/promote", "post"),
    ("/v1/functions/{id}/rollback", "post"),
    ("/v1/events", "get"),
    ("/v1/events/{id}", "get"),
    ("/v1/runs", "get"),
    ("/v1/runs/{id}", "get"),
    ("/v1/runs/{id}/cancel", "post"),
    ("/v1/schemas", "get"),
    ("/v1/schemas/{name}", "get"),
    ("/v1/schemas/{name}", "put"),
    ("/v1/schemas/{name}/inferred", "get"),
    ("/v1/replays", "get"),
    ("/v1/replays", "post"),
    ("/v1/replays/{id}", "get"),
    ("/v1/replays/{id}/cancel", "post"),
    ("/v1/stream", "get"),
    ("/v1/session", "post"),
    ("/v1/session", "delete"),
    ("/v1/users", "get"),
    ("/v1/users/{id}", "get"),
    ("/v1/users/{id}", "delete"),
    ("/v1/users/{id}/timeline", "get"),
    ("/health", "get"),
    ("/metrics", "get"),
    ("/openapi.json", "get"),
];

/// The `(path, method)` pairs the router declares, read from the `.route(...)` calls in
/// `src/api/*.rs` (axum cannot list a router's routes), with `{*rest}` written `{rest}`.
fn declared_routes() -> std::collections::BTreeSet<(String, String)> {
    let route = regex::Regex::new(r#"\.route\(\s*"([^"]+)""#).unwrap();
    let method = regex::Regex::new(r"\b(get|post|put|delete|patch)\(").unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    let mut found = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let src = std::fs::read_to_string(&path).unwrap();
        for m in route.captures_iter(&src) {
            let whole = m.get(0).unwrap();
            // The route's arguments: up to the parenthesis that closes `.route(`.
            let mut depth = 1;
            let rest = &src[whole.end()..];
            let end = rest
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map(|(i, _)| i)
                .unwrap();
            let p = m[1].replace("{*", "{");
            for mm in method.captures_iter(&rest[..end]) {
                found.insert((p.clone(), mm[1].to_string()));
            }
        }
    }
    found
}

#[test]
fn the_openapi_document_describes_every_endpoint() {
    let s = Server::start();
    let (st, doc) = s.get("/openapi.json");
    assert_eq!(st, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "weir");
    let paths = doc["paths"].as_object().unwrap();
    let documented: std::collections::BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(p, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|m| ["get", "post", "put", "delete", "patch"].contains(&m.as_str()))
                .map(move |m| (p.clone(), m.clone()))
        })
        .collect();
    let listed: std::collections::BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(p, m)| (p.to_string(), m.to_string()))
        .collect();
    assert_eq!(
        documented, listed,
        "the document's operations are not the list above"
    );

    // Every route the router declares is documented.
    let declared = declared_routes();
    assert!(declared.len() >= 30, "found only {declared:?} in src/api");
    let missing: Vec<_> = declared.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes not in the document: {missing:?}"
    );

    // Every documented operation is served: it answers something other than the router's
    // own "no such endpoint" and "method not allowed" (bodies are empty, ids unknown).
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    for (path, method) in &documented {
        let url = format!("{}{}", s.url, path)
            .replace("{sha256}", &"0".repeat(64))
            .replace("{key}", "k")
            .replace("{id}", "nope")
            .replace("{name}", "no.such");
        let r = match method.as_str() {
            "get" => agent.get(&url).call(),
            "delete" => agent.delete(&url).call(),
            "post" => agent.post(&url).send_empty(),
            "put" => agent.put(&url).send_empty(),
            other => panic!("unexpected method {other}"),
        };
        // Headers only: `/v1/stream` never ends.
        let r = r.unwrap();
        let status = r.status().as_u16();
        let json = r
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        let code = if json && status >= 400 {
            let mut r = r;
            r.body_mut().read_json::<Value>().unwrap()["code"].clone()
        } else {
            Value::Null
        };
        assert!(
            status != 405 && code != json!("no_such_endpoint"),
            "{method} {path} is documented but not served: {status} {code}"
        );
    }

    // Each operation has a unique id, JSON bodies have schemas, errors are the error
    // shape, /v1 and /e say which key they take, and every reference resolves.
    let components = &doc["components"];
    let resolve = |v: &Value| -> Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.rsplit('/').next().unwrap();
                let kind = if r.contains("/responses/") {
                    "responses"
                } else {
                    "schemas"
                };
                let target = components[kind][name].clone();
                assert!(!target.is_null(), "{r} does not resolve");
                target
            }
            None => v.clone(),
        }
    };
    let mut ids = std::collections::BTreeSet::new();
    for (path, method) in &documented {
        let op = &paths[path][method];
        let id = op["operationId"].as_str().unwrap_or_default();
        assert!(
            ids.insert(id.to_string()),
            "{method} {path}: operationId {id:?} is not unique"
        );
        let security: Vec<&str> = op["security"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r.as_object().unwrap().keys().map(String::as_str))
            .collect();
        if path.starts_with("/e") {
            assert_eq!(security, ["eventKey"], "{method} {path}");
        } else if path.starts_with("/v1/") && path != "/v1/session" {
            assert_eq!(security, ["apiKey"], "{method} {path}");
        }
        if let Some(body) = op.get("requestBody") {
            let content = body["content"].as_object().unwrap();
            assert!(
                !content.is_empty(),
                "{method} {path}: a request body without content"
            );
            for (mime, c) in content {
                assert!(
                    c["schema"].is_object(),
                    "{method} {path}: no schema for {mime}"
                );
                resolve(&c["schema"]);
            }
        }
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|c| c.starts_with('2')),
            "{method} {path}: no success response"
        );
        for (code, r) in responses {
            let r = resolve(r);
            assert!(
                r["description"].is_string(),
                "{method} {path} {code}: no description"
            );
            let content = r["content"].as_object();
            assert!(content.is_some(), "{method} {path} {code}: no content");
            for (mime, c) in content.unwrap() {
                assert!(
                    c["schema"].is_object(),
                    "{method} {path} {code}: no schema for {mime}"
                );
                let schema = resolve(&c["schema"]);
                if code.starts_with('4') {
                    assert_eq!(
                        c["schema"]["$ref"], "#/components/schemas/Error",
                        "{method} {path} {code}: not the error shape"
                    );
                    assert_eq!(schema["required"], json!(["error", "code", "status"]));
                }
            }
        }
    }
    for scheme in ["apiKey", "eventKey"] {
        assert_eq!(
            components["securitySchemes"][scheme],
            json!({"type": "http", "scheme": "bearer"}),
            "{scheme}"
        );
    }
    // Every reference anywhere in the document resolves.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 50, "{all:?}");
    for r in all {
        resolve(&json!({"$ref": r}));
    }
}

#[test]
fn unknown_events_and_runs_are_404_with_json_errors() {
    let s = Server::start();
    let (st, e) = s.get("/v1/events/nope");
    assert_eq!((st, e["status"].clone()), (404, json!(404)));
    let (st, _) = s.get("/v1/runs/nope");
    assert_eq!(st, 404);
    let (st, e) = s.get("/v1/nothing-here");
    assert_eq!(st, 404);
    assert!(e["error"].is_string());
    let (st, h) = s.get("/health");
    assert_eq!((st, h["status"].clone()), (200, json!("ok")));
}
