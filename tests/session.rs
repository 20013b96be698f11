//! Browser sessions in `weir serve`: an API key once → an HttpOnly, SameSite=Strict
//! cookie for that tenant, which sees only its tenant's data, cannot be used from
//! another origin to change anything, and ends on logout.

mod common;

use common::{one_step, Server, TWO_TENANTS};
use serde_json::{json, Value};

/// A request with only a cookie (and optionally an Origin): (status, body, Set-Cookie).
fn with_cookie(
    s: &Server,
    method: &str,
    path: &str,
    cookie: &str,
    origin: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value, Option<String>) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let url = format!("{}{path}", s.url);
    let mut r = match method {
        "GET" => {
            let mut rq = agent.get(&url).header("Cookie", cookie);
            if let Some(o) = origin {
                rq = rq.header("Origin", o);
            }
            rq.call()
        }
        _ => {
            let mut rq = if method == "DELETE" {
                agent.delete(&url).force_send_body()
            } else {
                agent.post(&url)
            }
            .header("Cookie", cookie)
            .header("Content-Type", "application/json");
            if let Some(o) = origin {
                rq = rq.header("Origin", o);
            }
            rq.send(serde_json::to_vec(body.unwrap_or(&json!({}))).unwrap())
        }
    }
    .unwrap();
    let set = r
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string());
    let st = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap();
    (
        st,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        set,
    )
}

#[test]
fn an_api_key_once_gives_a_cookie_for_that_tenant_only() {
    let a = Server::serve(TWO_TENANTS, "api_acme_0001", "evt_acme_0001");
    let g = Server::serve_view(&a, "api_globex_01", "evt_globex_01");
    a.deploy_ok(one_step("acme-fn", "go", "echo", json!({})));
    g.deploy_ok(one_step("globex-fn", "go", "echo", json!({})));
    a.send_and_finish(json!({"name": "go"}));

    let (st, body, set) = with_cookie(
        &a,
        "POST",
        "/v1/session",
        "",
        None,
        Some(&json!({"api_key": "api_acme_0001"})),
    );
    assert_eq!((st, &body["tenant"]), (200, &json!("acme")), "{body}");
    let set = set.expect("a Set-Cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set.contains(attr), "{set}");
    }
    let cookie = set.split(';').next().unwrap().to_string();
    assert!(
        cookie.starts_with("weir_session=") && cookie.len() > 60,
        "{cookie}"
    );

    // The cookie stands for the key: acme's data only.
    let (st, fns, _) = with_cookie(&a, "GET", "/v1/functions", &cookie, None, None);
    assert_eq!(st, 200, "{fns}");
    let ids: Vec<&str> = fns["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme-fn"]);
    let (st, _, _) = with_cookie(&a, "GET", "/v1/functions/globex-fn", &cookie, None, None);
    assert_eq!(st, 404, "another tenant's function is not there");

    // Changing things with the cookie: from this origin yes, from another no.
    let same = format!("http://{}", a.url.trim_start_matches("http://"));
    let run = a.send(json!({"name": "go"}));
    let rid = a.runs_of(&run)[0].clone();
    let (st, r, _) = with_cookie(
        &a,
        "POST",
        &format!("/v1/runs/{rid}/cancel"),
        &cookie,
        Some("https://evil.example"),
        None,
    );
    assert_eq!((st, r["code"].as_str()), (403, Some("cross_origin")), "{r}");
    let (st, r, _) = with_cookie(
        &a,
        "POST",
        &format!("/v1/runs/{rid}/cancel"),
        &cookie,
        Some(&same),
        None,
    );
    assert_eq!(st, 200, "{r}");

    // Bad logins, each with its code; nothing is set.
    for (body, status, code) in [
        (json!({"api_key": "evt_acme_0001"}), 403, "forbidden"),
        (json!({"api_key": "nope"}), 401, "unauthorized"),
        (json!({"key": "api_acme_0001"}), 400, "invalid_login"),
    ] {
        let (st, r, set) = with_cookie(&a, "POST", "/v1/session", "", None, Some(&body));
        assert_eq!(
            (st, r["code"].as_str()),
            (status, Some(code)),
            "{body}: {r}"
        );
        assert!(set.is_none());
    }
    let (st, r, _) = with_cookie(&a, "GET", "/v1/runs", "weir_session=forged", None, None);
    assert_eq!((st, r["code"].as_str()), (401, Some("unauthorized")));

    // Logout ends the session and clears the cookie.
    let (st, _, set) = with_cookie(&a, "DELETE", "/v1/session", &cookie, None, None);
    assert_eq!(st, 200);
    assert!(set.unwrap().contains("Max-Age=0"));
    let (st, _, _) = with_cookie(&a, "GET", "/v1/functions", &cookie, None, None);
    assert_eq!(st, 401, "the session is over");
}
