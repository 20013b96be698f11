//! Typed, versioned event schemas against the real binary: registering over names with
//! `/`, reject and warn at ingest, versions, the report on stored events, inference,
//! bad input, tenants, restarts and the CLI.

mod common;

use common::cli as weir;
use common::{Server, TWO_TENANTS};
use serde_json::{json, Value};

const ORDER: &str = "order/placed";

fn amount_schema() -> Value {
    json!({
        "type": "object",
        "required": ["amount"],
        "properties": {"amount": {"type": "integer", "minimum": 0}, "currency": {"enum": ["EUR", "USD"]}}
    })
}

fn put(s: &Server, name: &str, body: Value) -> (u16, Value) {
    s.put_raw(
        &format!("/v1/schemas/{name}"),
        &serde_json::to_vec(&body).unwrap(),
    )
}

fn put_ok(s: &Server, name: &str, v: &str, mode: &str, schema: Value) -> Value {
    let (st, body) = put(s, name, json!({"v": v, "mode": mode, "schema": schema}));
    assert_eq!(st, 200, "PUT {name} {v}: {body}");
    body
}

fn ingest(s: &Server, events: Value) -> (u16, Value) {
    s.post(&format!("/e/{}", s.event_key), &events)
}

/// Every stored event of a name (ids), newest first.
fn stored(s: &Server, query: &str) -> Vec<Value> {
    let (st, page) = s.get(&format!("/v1/events?limit=1000&{query}"));
    assert_eq!(st, 200, "{page}");
    page["data"].as_array().unwrap().clone()
}

fn violations(s: &Server, tenant: &str, event: &str, mode: &str) -> Option<f64> {
    s.metric(&format!(
        "weir_schema_violations_total{{tenant=\"{tenant}\",event=\"{event}\",mode=\"{mode}\"}}"
    ))
}

#[test]
fn a_schema_registers_under_a_name_with_slashes_and_is_listed() {
    let s = Server::start();
    let r = put_ok(
        &s,
        "user/signed.up",
        "2024-01-01.1",
        "warn",
        json!({"type": "object"}),
    );
    assert_eq!(
        (
            r["name"].clone(),
            r["v"].clone(),
            r["registered"].clone(),
            r["created"].clone()
        ),
        (
            json!("user/signed.up"),
            json!("2024-01-01.1"),
            json!(true),
            json!(true)
        )
    );
    // The name percent-encoded is the same name.
    put_ok(
        &s,
        "user%2Fsigned.up",
        "2024-02-01.1",
        "reject",
        amount_schema(),
    );
    let (st, list) = s.get("/v1/schemas");
    assert_eq!(st, 200);
    assert_eq!(
        list["data"],
        json!([{"name": "user/signed.up", "latest": "2024-02-01.1", "mode": "reject", "versions": 2}])
    );
    let (st, one) = s.get("/v1/schemas/user/signed.up");
    assert_eq!(st, 200, "{one}");
    assert_eq!(one["latest"], "2024-02-01.1");
    let versions = one["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["v"], "2024-01-01.1");
    assert_eq!(versions[0]["mode"], "warn");
    assert_eq!(versions[1]["schema"], amount_schema());
    assert!(versions[1]["created_at"].as_i64().unwrap() > 0);
    let (st, e) = s.get("/v1/schemas/user/nobody");
    assert_eq!(
        (st, e["code"].clone()),
        (404, json!("schema_not_found")),
        "{e}"
    );
}

#[test]
fn reject_mode_refuses_the_whole_batch_naming_the_index_path_and_rule() {
    let s = Server::start();
    put_ok(&s, ORDER, "1", "reject", amount_schema());
    let batch = json!([
        {"name": "other/thing", "data": {"amount": -1}},
        {"name": ORDER, "data": {"amount": 3}},
        {"name": ORDER, "data": {"amount": -5}},
    ]);
    let (st, e) = ingest(&s, batch);
    assert_eq!(st, 400, "{e}");
    assert_eq!(e["code"], "schema_violation");
    let msg = e["error"].as_str().unwrap();
    assert!(
        msg.starts_with("events[2].data.amount: -5 is less than the minimum of 0"),
        "{msg}"
    );
    assert!(msg.contains("`order/placed` version `1`"), "{msg}");
    // Nothing of that request is stored, not even the valid events or other names.
    assert!(stored(&s, "").is_empty());
    let (st, e) = ingest(&s, json!({"name": ORDER, "data": {"currency": "GBP"}}));
    assert_eq!(st, 400);
    let msg = e["error"].as_str().unwrap();
    assert!(
        msg.contains("events[0].data: \"amount\" is a required property"),
        "{msg}"
    );
    assert!(msg.contains("events[0].data.currency: "), "{msg}");
    assert!(stored(&s, "").is_empty());
    assert_eq!(violations(&s, "default", ORDER, "reject"), Some(2.0));
    // Valid events are stored, unmarked; names without a schema are not checked.
    let (st, r) = ingest(
        &s,
        json!([{"name": ORDER, "data": {"amount": 0, "currency": "EUR"}}, {"name": "other/thing", "data": {"amount": -1}}]),
    );
    assert_eq!(st, 200, "{r}");
    let evs = stored(&s, "");
    assert_eq!(evs.len(), 2);
    assert!(
        evs.iter().all(|e| e.get("schema_errors").is_none()),
        "{evs:?}"
    );
}

#[test]
fn warn_mode_stores_the_errors_counts_them_and_lists_invalid_events() {
    let s = Server::start();
    put_ok(&s, ORDER, "1", "warn", amount_schema());
    put_ok(
        &s,
        "cart/updated",
        "1",
        "warn",
        json!({"required": ["cart"]}),
    );
    let (st, r) = ingest(
        &s,
        json!([
            {"name": ORDER, "data": {"amount": 5}},
            {"name": ORDER, "data": {"amount": -5}},
            {"name": "cart/updated", "data": {}},
            {"name": "untyped", "data": {}},
        ]),
    );
    assert_eq!(st, 200, "{r}");
    let ids: Vec<&str> = r["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let (st, bad) = s.get(&format!("/v1/events/{}", ids[1]));
    assert_eq!(st, 200);
    assert_eq!(
        bad["schema_errors"],
        json!(["data.amount: -5 is less than the minimum of 0"])
    );
    let (_, good) = s.get(&format!("/v1/events/{}", ids[0]));
    assert!(good.get("schema_errors").is_none(), "{good}");
    let invalid: Vec<Value> = stored(&s, "invalid=true");
    let invalid_ids: Vec<&str> = invalid.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(
        invalid_ids,
        vec![ids[2], ids[1]],
        "newest first, only the invalid"
    );
    let of_order: Vec<Value> = stored(&s, "invalid=true&name=order%2Fplaced");
    assert_eq!(of_order.len(), 1);
    assert_eq!(of_order[0]["id"], ids[1]);
    assert_eq!(stored(&s, "invalid=false").len(), 4);
    assert_eq!(violations(&s, "default", ORDER, "warn"), Some(1.0));
    assert_eq!(violations(&s, "default", "cart/updated", "warn"), Some(1.0));
}

#[test]
fn an_event_is_checked_against_its_v_or_else_the_latest_version() {
    let s = Server::start();
    put_ok(
        &s,
        ORDER,
        "2024-01-01.1",
        "reject",
        json!({"required": ["a"]}),
    );
    put_ok(
        &s,
        ORDER,
        "2024-06-01.1",
        "reject",
        json!({"required": ["b"]}),
    );
    // No v: the latest.
    assert_eq!(ingest(&s, json!({"name": ORDER, "data": {"b": 1}})).0, 200);
    let (st, e) = ingest(&s, json!({"name": ORDER, "data": {"a": 1}}));
    assert_eq!(st, 400);
    assert!(
        e["error"].as_str().unwrap().contains("`2024-06-01.1`"),
        "{e}"
    );
    // An older v: that one.
    assert_eq!(
        ingest(
            &s,
            json!({"name": ORDER, "v": "2024-01-01.1", "data": {"a": 1}})
        )
        .0,
        200
    );
    // An unknown v is refused naming the field, and nothing of the batch is stored.
    let before = stored(&s, "").len();
    let (st, e) = ingest(
        &s,
        json!([{"name": ORDER, "data": {"b": 1}}, {"name": ORDER, "v": "2025-01-01.1", "data": {"b": 1}}]),
    );
    assert_eq!(
        (st, e["code"].clone()),
        (400, json!("unknown_schema_version")),
        "{e}"
    );
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .starts_with("events[1].v: `2025-01-01.1`"),
        "{e}"
    );
    assert_eq!(stored(&s, "").len(), before);
    // A v on a name without schemas is just carried.
    assert_eq!(
        ingest(&s, json!({"name": "free", "v": "x", "data": {}})).0,
        200
    );
}

#[test]
fn registering_reports_the_stored_events_that_would_fail_and_a_dry_run_stores_nothing() {
    let s = Server::start();
    let mut batch: Vec<Value> = (0..30)
        .map(|i| json!({"name": ORDER, "data": {"amount": if i % 3 == 0 { -i } else { i }}}))
        .collect();
    batch.push(json!({"name": "other", "data": {"amount": -1}}));
    let (st, r) = ingest(&s, Value::Array(batch));
    assert_eq!(st, 200, "{r}");
    let (st, report) = put(
        &s,
        ORDER,
        json!({"v": "1", "mode": "reject", "schema": amount_schema(), "dry_run": true}),
    );
    assert_eq!(st, 200, "{report}");
    assert_eq!(report["checked"], 30);
    // i = 0 gives amount 0, which is allowed: 9 of 30 fail.
    assert_eq!(report["would_fail"], 9);
    assert_eq!(
        (report["registered"].clone(), report["dry_run"].clone()),
        (json!(false), json!(true))
    );
    let examples = report["examples"].as_array().unwrap();
    assert_eq!(examples.len(), 9);
    assert!(
        examples[0]["error"]
            .as_str()
            .unwrap()
            .contains("is less than the minimum of 0"),
        "{report}"
    );
    let ids: Vec<&str> = r["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(examples
        .iter()
        .all(|x| ids.contains(&x["event_id"].as_str().unwrap())));
    // The dry run registered nothing: the same events are still accepted.
    assert_eq!(s.get(&format!("/v1/schemas/{ORDER}")).0, 404);
    assert_eq!(
        ingest(&s, json!({"name": ORDER, "data": {"amount": -7}})).0,
        200
    );
    // A real registration with failing events still registers, and says so.
    let report = put_ok(&s, ORDER, "1", "reject", amount_schema());
    assert_eq!(
        (
            report["registered"].clone(),
            report["checked"].clone(),
            report["would_fail"].clone()
        ),
        (json!(true), json!(31), json!(10))
    );
    assert_eq!(
        ingest(&s, json!({"name": ORDER, "data": {"amount": -7}})).0,
        400
    );
}

#[test]
fn versions_are_immutable_and_an_identical_put_changes_nothing() {
    let s = Server::start();
    put_ok(&s, ORDER, "1", "reject", amount_schema());
    let again = put_ok(&s, ORDER, "1", "reject", amount_schema());
    assert_eq!(
        (again["registered"].clone(), again["created"].clone()),
        (json!(true), json!(false))
    );
    for changed in [
        json!({"v": "1", "mode": "reject", "schema": {"type": "object"}}),
        json!({"v": "1", "mode": "warn", "schema": amount_schema()}),
    ] {
        let (st, e) = put(&s, ORDER, changed);
        assert_eq!(
            (st, e["code"].clone()),
            (409, json!("schema_version_exists")),
            "{e}"
        );
    }
    let (_, one) = s.get(&format!("/v1/schemas/{ORDER}"));
    assert_eq!(one["versions"].as_array().unwrap().len(), 1);
    assert_eq!(one["versions"][0]["schema"], amount_schema());
    assert_eq!(one["versions"][0]["mode"], "reject");
}

#[test]
fn bad_schema_requests_are_400s_naming_the_field_and_change_nothing() {
    let s = Server::start();
    put_ok(&s, ORDER, "1", "warn", amount_schema());
    // A server that would notice a fetch.
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let remote = format!("http://{}/address.json", trap.local_addr().unwrap());
    let ok_schema = json!({"type": "object"});
    let cases: Vec<(Value, &str, String)> = vec![
        (
            json!({"v": "2", "mode": "warn", "schema": {"properties": {"amount": {"minimum": "zero"}}}}),
            "invalid_schema",
            "schema.properties.amount.minimum: ".into(),
        ),
        (
            json!({"v": "2", "mode": "warn", "schema": {"type": "objekt"}}),
            "invalid_schema",
            "schema.type: ".into(),
        ),
        (
            json!({"v": "2", "mode": "warn", "schema": {"properties": {"address": {"$ref": remote}}}}),
            "remote_schema_ref",
            format!("schema.properties.address.$ref: `{remote}`"),
        ),
        (
            json!({"mode": "warn", "schema": ok_schema}),
            "invalid_schema_version",
            "v: is required".into(),
        ),
        (
            json!({"v": "two words", "mode": "warn", "schema": ok_schema}),
            "invalid_schema_version",
            "v: `two words` contains".into(),
        ),
        (
            json!({"v": "2", "mode": "loud", "schema": ok_schema}),
            "invalid_schema_mode",
            "mode: ".into(),
        ),
        (
            json!({"v": "2", "schema": ok_schema}),
            "invalid_schema_mode",
            "mode: is required".into(),
        ),
        (
            json!({"v": "2", "mode": "warn"}),
            "invalid_schema",
            "schema: is required".into(),
        ),
        (
            json!({"v": "2", "mode": "warn", "schema": "a string"}),
            "invalid_schema",
            "schema: must be a JSON Schema".into(),
        ),
    ];
    for (body, code, start) in cases {
        let (st, e) = put(&s, ORDER, body.clone());
        assert_eq!(
            (st, e["code"].as_str().unwrap()),
            (400, code),
            "{body} → {e}"
        );
        assert!(
            e["error"].as_str().unwrap().starts_with(&start),
            "{body} → {e}"
        );
    }
    let (st, e) = s.put_raw(&format!("/v1/schemas/{ORDER}"), b"{not json");
    assert_eq!(
        (st, e["code"].clone()),
        (400, json!("invalid_schema_request"))
    );
    let (st, e) = put(
        &s,
        "weir/cron",
        json!({"v": "1", "mode": "warn", "schema": ok_schema}),
    );
    assert_eq!(
        (st, e["code"].clone()),
        (400, json!("invalid_event_name")),
        "{e}"
    );
    assert!(
        matches!(trap.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the remote $ref was fetched"
    );
    let (_, one) = s.get(&format!("/v1/schemas/{ORDER}"));
    assert_eq!(one["versions"].as_array().unwrap().len(), 1, "{one}");
    let (_, list) = s.get("/v1/schemas");
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
}

#[test]
fn schemas_survive_a_sigkill_and_still_apply() {
    let s = Server::start();
    put_ok(&s, ORDER, "1", "warn", json!({"type": "object"}));
    put_ok(&s, ORDER, "2", "reject", amount_schema());
    put_ok(
        &s,
        "user/signed.up",
        "1",
        "warn",
        json!({"required": ["plan"]}),
    );
    let s = s.kill_and_restart();
    let (st, list) = s.get("/v1/schemas");
    assert_eq!(st, 200);
    assert_eq!(
        list["data"],
        json!([
            {"name": ORDER, "latest": "2", "mode": "reject", "versions": 2},
            {"name": "user/signed.up", "latest": "1", "mode": "warn", "versions": 1}
        ])
    );
    let (st, e) = ingest(&s, json!({"name": ORDER, "data": {"amount": -5}}));
    assert_eq!((st, e["code"].clone()), (400, json!("schema_violation")));
    assert_eq!(
        ingest(&s, json!({"name": ORDER, "v": "1", "data": {"amount": -5}})).0,
        200
    );
    // Versions stay immutable across the restart.
    let (st, _) = put(
        &s,
        ORDER,
        json!({"v": "2", "mode": "warn", "schema": amount_schema()}),
    );
    assert_eq!(st, 409);
}

#[test]
fn an_inferred_schema_compiles_and_accepts_the_events_it_came_from() {
    let s = Server::start();
    let plans = ["free", "pro", "team"];
    let batch: Vec<Value> = (0..40)
        .map(|i| {
            let mut data = json!({
                "plan": plans[i % 3],
                "seats": i,
                "price": i as f64 * 1.5,
                "user": {"id": format!("u_{i}"), "admin": i % 7 == 0},
                "tags": ["a", "b"],
            });
            if i % 2 == 0 {
                data["referrer"] = json!(format!("r{i}"));
            }
            json!({"name": "user/signed.up", "data": data})
        })
        .collect();
    assert_eq!(ingest(&s, Value::Array(batch)).0, 200);
    let (st, e) = s.get("/v1/schemas/nothing/inferred");
    assert_eq!(
        (st, e["code"].clone()),
        (404, json!("event_not_found")),
        "{e}"
    );
    let (st, r) = s.get("/v1/schemas/user/signed.up/inferred");
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["sampled"], 40);
    let schema = &r["schema"];
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let p = &schema["properties"];
    assert_eq!(p["plan"]["enum"], json!(["free", "pro", "team"]));
    assert_eq!(p["seats"]["type"], "integer");
    assert_eq!(p["price"]["type"], "number");
    assert_eq!(p["user"]["properties"]["admin"]["type"], "boolean");
    assert_eq!(p["user"]["required"], json!(["admin", "id"]));
    let required = schema["required"].as_array().unwrap();
    assert!(
        required.contains(&json!("plan")) && !required.contains(&json!("referrer")),
        "{schema}"
    );
    // The server compiles it and finds every event it came from valid.
    let (st, report) = put(
        &s,
        "user/signed.up",
        json!({"v": "inferred", "mode": "reject", "schema": schema, "dry_run": true}),
    );
    assert_eq!(st, 200, "{report}");
    assert_eq!(
        (report["checked"].clone(), report["would_fail"].clone()),
        (json!(40), json!(0))
    );
}

#[test]
fn each_tenant_has_its_own_schemas() {
    let a = Server::serve(TWO_TENANTS, "api_acme_0001", "evt_acme_0001");
    let g = Server::serve_view(&a, "api_globex_01", "evt_globex_01");
    put_ok(&a, ORDER, "1", "reject", amount_schema());
    let (st, _, _) = a.request("PUT", &format!("/v1/schemas/{ORDER}"), Some(b"{}"), None);
    assert_eq!(st, 401, "a schema needs an API key");
    let (st, _, _) = a.request("GET", "/v1/schemas", None, Some("evt_acme_0001"));
    assert_eq!(st, 403, "an event key cannot read schemas");
    assert_eq!(g.get(&format!("/v1/schemas/{ORDER}")).0, 404);
    assert_eq!(g.get("/v1/schemas").1["data"], json!([]));
    // acme's schema does not check globex's events.
    assert_eq!(
        ingest(&g, json!({"name": ORDER, "data": {"amount": -5}})).0,
        200
    );
    assert_eq!(
        ingest(&a, json!({"name": ORDER, "data": {"amount": -5}})).0,
        400
    );
    // globex registers the same name and version with another schema: no conflict.
    put_ok(&g, ORDER, "1", "warn", json!({"required": ["sku"]}));
    let (_, one) = a.get(&format!("/v1/schemas/{ORDER}"));
    assert_eq!(one["versions"][0]["schema"], amount_schema());
    assert_eq!(violations(&a, "acme", ORDER, "reject"), Some(1.0));
    assert_eq!(violations(&a, "globex", ORDER, "reject"), None);
}

#[test]
fn the_cli_puts_lists_gets_and_infers_schemas_and_lists_invalid_events() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("order.json");
    std::fs::write(&file, serde_json::to_vec(&amount_schema()).unwrap()).unwrap();
    let file = file.to_str().unwrap();
    assert_eq!(
        ingest(
            &s,
            json!([{"name": ORDER, "data": {"amount": -1}}, {"name": ORDER, "data": {"amount": 2}}])
        )
        .0,
        200
    );
    let (code, out, err) = weir(
        &[
            "schema",
            "put",
            ORDER,
            file,
            "--v",
            "1",
            "--mode",
            "warn",
            "--dry-run",
        ],
        &s.url,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("dry run: nothing registered; 1 of the 2"),
        "{err}"
    );
    let (code, out, err) = weir(
        &["schema", "put", ORDER, file, "--v", "1", "--mode", "warn"],
        &s.url,
    );
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["created"], true);
    let (code, out, _) = weir(
        &["schema", "put", ORDER, file, "--v", "1", "--mode", "bogus"],
        &s.url,
    );
    assert_ne!(code, 0, "{out}");
    let (code, out, err) = weir(&["schema", "list"], &s.url);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with(ORDER) && l.contains("warn")),
        "{out}"
    );
    let (code, out, _) = weir(&["schema", "get", ORDER], &s.url);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["versions"][0]["v"],
        "1"
    );
    let (code, out, err) = weir(&["schema", "get", "no/such"], &s.url);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("404"), "{err}");
    let (code, out, err) = weir(&["schema", "infer", ORDER], &s.url);
    assert_eq!(code, 0, "{err}");
    let inferred: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(inferred["properties"]["amount"]["type"], "integer");
    // The inferred file goes straight back in.
    let inferred_file = dir.path().join("inferred.json");
    std::fs::write(&inferred_file, &out).unwrap();
    let (code, out, err) = weir(
        &[
            "schema",
            "put",
            ORDER,
            inferred_file.to_str().unwrap(),
            "--v",
            "2",
            "--mode",
            "warn",
        ],
        &s.url,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        ingest(&s, json!({"name": ORDER, "v": "1", "data": {"amount": -3}})).0,
        200
    );
    let (code, out, err) = weir(&["events", "--invalid", "--name", ORDER], &s.url);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{out}");
    assert!(
        rows[0].contains("data.amount: -3 is less than the minimum of 0"),
        "{out}"
    );
    let (code, out, _) = weir(&["events", "--limit", "10", "--json"], &s.url);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["data"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}
