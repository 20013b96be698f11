//! The web UI in a real headless Chromium (Debian's `chromium`, driven over the DevTools
//! protocol) against the real binary: an event sent from the form, its run appearing and
//! completing live without a reload, the run's DAG with every step's status, a step's
//! output and permalink, the user's page; under `weir serve`, a login as one tenant that
//! shows nothing of the other. With `WEIR_SCREENSHOTS=<dir>` the same test saves the
//! README's screenshots there.
//!
//! Plain-HTTP cases (no browser) check the UI's refusals: forms not sent by its script,
//! a bad filter, a run that does not exist, a page without a session.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::emulation::MediaFeature;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::Page;
use common::{Server, DEADLINE, TWO_TENANTS};
use futures::StreamExt;
use serde_json::{json, Value};

/// Where Debian puts Chromium (`apt-get install chromium`; `.ci/run` and the test
/// command install it).
fn chromium() -> PathBuf {
    let p = std::env::var_os("WEIR_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        p.exists(),
        "{} is missing: apt-get install chromium (./scripts/test.sh installs it)",
        p.display()
    );
    p
}

/// A headless Chromium with its own profile, closed on drop of the test.
struct Chrome {
    browser: Browser,
    handler: tokio::task::JoinHandle<()>,
    _profile: tempfile::TempDir,
}

impl Chrome {
    async fn launch() -> Self {
        let profile = tempfile::tempdir().unwrap();
        let config = BrowserConfig::builder()
            .chrome_executable(chromium())
            .no_sandbox()
            .new_headless_mode()
            .user_data_dir(profile.path())
            .window_size(1400, 1000)
            .viewport(None)
            .arg("--disable-gpu")
            .arg("--disable-dev-shm-usage")
            .launch_timeout(Duration::from_secs(60))
            .request_timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let (browser, mut handler) = Browser::launch(config).await.unwrap();
        let handler = tokio::spawn(async move { while handler.next().await.is_some() {} });
        Chrome {
            browser,
            handler,
            _profile: profile,
        }
    }

    async fn open(&self, url: &str) -> Page {
        let page = self.browser.new_page(url).await.unwrap();
        page.wait_for_navigation().await.unwrap();
        page
    }

    async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
    }
}

/// Evaluates `js` in the page.
async fn js(page: &Page, js: &str) -> Value {
    page.evaluate(js)
        .await
        .unwrap_or_else(|e| panic!("evaluating {js}: {e}"))
        .into_value::<Value>()
        .unwrap_or(Value::Null)
}

/// Polls `js` until it is truthy (a deadline, never a fixed sleep); returns its value.
async fn wait_for(page: &Page, expr: &str, what: &str) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        // While the page navigates its old context is gone: that is "not yet".
        let v = match page.evaluate(expr).await {
            Ok(r) => r.into_value::<Value>().unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        let truthy = match &v {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::String(s) => !s.is_empty(),
            Value::Number(n) => n.as_f64() != Some(0.0),
            _ => true,
        };
        if truthy {
            return v;
        }
        if Instant::now() > deadline {
            let body = js(page, "document.body ? document.body.innerText : ''").await;
            panic!("timed out waiting for {what} ({expr}); the page shows:\n{body}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Clicks the element `selector` finds, as a user would (mouse events over CDP). A live
/// part may re-render the element between finding and clicking it: then it is found
/// again, until a deadline.
async fn click(page: &Page, selector: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let err = match page.find_element(selector).await {
            Ok(el) => match el.click().await {
                Ok(_) => return,
                Err(e) => e,
            },
            Err(e) => e,
        };
        assert!(Instant::now() < deadline, "cannot click {selector}: {err}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Goes to `url` in `page` and waits for the load.
async fn goto(page: &Page, url: &str) {
    page.goto(url).await.unwrap();
    wait_for(
        page,
        "document.readyState === 'complete'",
        "the page to load",
    )
    .await;
}

/// Saves a screenshot when `WEIR_SCREENSHOTS` names a folder.
async fn shot(page: &Page, name: &str) {
    let Some(dir) = std::env::var_os("WEIR_SCREENSHOTS") else {
        return;
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let png = page
        .screenshot(ScreenshotParams::builder().full_page(false).build())
        .await
        .unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// The three-step example function (C, C, WAT), as in `functions/hello-chain.json`.
fn hello_chain() -> Value {
    json!({"id": "hello-chain", "triggers": [{"event": "demo/hello"}],
    "retries": {"attempts": 2, "backoff": "500ms"},
    "steps": {
        "hello": {"path": "guest:hello"},
        "shout": {"path": "guest:shout", "after": [{"step": "hello", "if": "response.status == 200"}]},
        "echo": {"path": "guest:echo", "after": [{"step": "shout"}]}
    }})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_sent_from_the_form_runs_live_and_its_run_user_and_steps_can_be_followed() {
    let s = Server::start();
    s.deploy_ok(hello_chain());
    // Something on the other pages before the browser looks (for the screenshots).
    for name in ["Grace", "Linus"] {
        let id = s.send(json!({"name": "demo/hello", "data": {"name": name},
            "user": {"id": name.to_lowercase(), "email": format!("{}@example.com", name.to_lowercase())}}));
        for r in s.runs_of(&id) {
            s.wait_done(&r);
        }
    }
    let chrome = Chrome::launch().await;
    let page = chrome.open(&format!("{}/events", s.url)).await;
    wait_for(
        &page,
        "document.body.dataset.live === 'on'",
        "the live stream",
    )
    .await;
    js(&page, "window.__sameDocument = 42").await;

    // Invalid JSON is stopped in the browser: nothing is sent.
    js(
        &page,
        "(t => { t.value = '{\"name\": \"demo/hello\",'; t.dispatchEvent(new Event('input')) })(document.querySelector('#send-form textarea'))",
    )
    .await;
    click(&page, "#send-form button[type=submit]").await;
    let err = wait_for(
        &page,
        "document.querySelector('#send-result .error')?.innerText",
        "the JSON error",
    )
    .await;
    assert!(
        err.as_str().unwrap().contains("not valid"),
        "the form says why: {err}"
    );
    let (_, listed) = s.get("/v1/events?name=demo/hello");
    assert_eq!(
        listed["data"].as_array().unwrap().len(),
        2,
        "nothing was sent"
    );

    // A valid event: its run appears under the form and completes, live.
    js(
        &page,
        r#"(t => { t.value = JSON.stringify({name: "demo/hello", data: {name: "Ada"},
            user: {id: "ada", email: "ada@example.com"}}, null, 2); t.dispatchEvent(new Event('input')) })(document.querySelector('#send-form textarea'))"#,
    )
    .await;
    click(&page, "#send-form button[type=submit]").await;
    wait_for(
        &page,
        "document.querySelector('#send-result .ok')?.innerText",
        "the sent confirmation",
    )
    .await;
    let run_id = wait_for(
        &page,
        "(() => { const r = document.querySelector('#sent-runs tr[id^=run-]'); \
           return r && r.querySelector('.badge').innerText === 'completed' ? r.id.slice(4) : null })()",
        "the sent event's run to appear and complete",
    )
    .await;
    let run_id = run_id.as_str().unwrap().to_string();
    assert_eq!(
        js(&page, "window.__sameDocument").await,
        json!(42),
        "the page was not reloaded"
    );
    // The events list above the form got the new event by itself too.
    wait_for(
        &page,
        "document.querySelectorAll('#events-rows tr[id^=event-]').length === 3",
        "the new event in the live list",
    )
    .await;
    shot(&page, "events").await;

    // The run page: its DAG with every step's status.
    click(&page, &format!("#sent-runs a[href='/runs/{run_id}']")).await;
    wait_for(
        &page,
        &format!("location.pathname === '/runs/{run_id}' && !!document.querySelector('svg.dag')"),
        "the run page",
    )
    .await;
    let nodes = js(
        &page,
        "[...document.querySelectorAll('svg.dag g.node[data-step]')].map(n => [n.dataset.step, n.dataset.status])",
    )
    .await;
    assert_eq!(
        nodes,
        json!([
            ["hello", "completed"],
            ["shout", "completed"],
            ["echo", "completed"]
        ])
    );
    let segs = js(
        &page,
        "document.querySelectorAll('.waterfall .wf-row .seg.run').length",
    )
    .await;
    assert_eq!(segs, json!(3), "each step's run time is on the waterfall");
    // A step's output (and its sandbox figures) when it is opened.
    click(&page, "#step-shout > summary").await;
    let out = wait_for(
        &page,
        "document.querySelector('#step-shout[open] .step-body')?.innerText",
        "the step's output",
    )
    .await;
    let out = out.as_str().unwrap();
    assert!(out.contains("HELLO, ADA!"), "the output is shown: {out}");
    assert!(
        out.contains("fuel") && out.contains("peak memory"),
        "sandbox figures: {out}"
    );
    shot(&page, "run").await;
    // The user's page lists the run.
    goto(&page, &format!("{}/users/ada", s.url)).await;
    let timeline = wait_for(
        &page,
        "document.querySelector('#user-timeline')?.innerText",
        "the user's timeline",
    )
    .await;
    assert!(
        timeline.as_str().unwrap().contains(&run_id),
        "the user's timeline has the run: {timeline}"
    );
    shot(&page, "user").await;
    // A step's permalink opens that step.
    goto(&page, &format!("{}/runs/{run_id}#step-echo", s.url)).await;
    wait_for(
        &page,
        "document.querySelector('#step-echo')?.open",
        "the permalinked step to be open",
    )
    .await;

    // The overview and the function, for the README.
    goto(&page, &format!("{}/", s.url)).await;
    shot(&page, "overview").await;
    goto(&page, &format!("{}/functions/hello-chain", s.url)).await;
    shot(&page, "function").await;
    // A new version deployed meanwhile (as `weir dev` does for a saved file) is announced.
    wait_for(
        &page,
        "document.body.dataset.live === 'on'",
        "the live stream",
    )
    .await;
    let mut v2 = hello_chain();
    v2["retries"]["attempts"] = json!(3);
    assert_eq!(s.deploy_ok(v2), 2);
    let notice = wait_for(
        &page,
        "document.querySelector('#notice')?.innerText",
        "the deploy notice",
    )
    .await;
    assert!(
        notice.as_str().unwrap().contains("hello-chain v2 deployed"),
        "{notice}"
    );
    if std::env::var_os("WEIR_SCREENSHOTS").is_some() {
        let dark = chrome.open(&format!("{}/runs/{run_id}", s.url)).await;
        dark.emulate_media_features(vec![MediaFeature {
            name: "prefers-color-scheme".into(),
            value: "dark".into(),
        }])
        .await
        .unwrap();
        wait_for(
            &dark,
            "matchMedia('(prefers-color-scheme: dark)').matches",
            "dark mode",
        )
        .await;
        shot(&dark, "run-dark").await;
    }
    chrome.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_logged_in_through_the_ui_sees_nothing_of_the_other() {
    let acme = Server::serve(TWO_TENANTS, "api_acme_0001", "evt_acme_0001");
    let globex = Server::serve_view(&acme, "api_globex_01", "evt_globex_01");
    acme.deploy_ok(common::one_step("greet", "demo/hello", "hello", json!({})));
    globex.deploy_ok(common::one_step(
        "secret-fn",
        "demo/hello",
        "hello",
        json!({}),
    ));
    let mine =
        acme.send(json!({"name": "demo/hello", "data": {"name": "A"}, "user": {"id": "a-user"}}));
    let theirs =
        globex.send(json!({"name": "demo/hello", "data": {"name": "G"}, "user": {"id": "g-user"}}));
    let my_run = acme.runs_of(&mine)[0].clone();
    let their_run = globex.runs_of(&theirs)[0].clone();
    acme.wait_done(&my_run);
    globex.wait_done(&their_run);

    let chrome = Chrome::launch().await;
    let page = chrome.open(&format!("{}/runs", acme.url)).await;
    // Without a session the UI asks for a key, and then goes where it was headed.
    wait_for(
        &page,
        "location.pathname === '/login' && !!document.querySelector('#login-form')",
        "the login page",
    )
    .await;
    js(
        &page,
        "document.querySelector('#login-form input').value = 'wrong-key'",
    )
    .await;
    click(&page, "#login-form button").await;
    let err = wait_for(
        &page,
        "document.querySelector('#login-error').innerText",
        "the refusal",
    )
    .await;
    assert!(err.as_str().unwrap().contains("unauthorized"), "{err}");
    shot(&page, "login").await;
    js(
        &page,
        "document.querySelector('#login-form input').value = 'api_acme_0001'",
    )
    .await;
    click(&page, "#login-form button").await;
    wait_for(
        &page,
        "location.pathname === '/runs' && !!document.querySelector('#runs-rows')",
        "the runs page after login",
    )
    .await;
    let text = js(&page, "document.body.innerText").await;
    let text = text.as_str().unwrap();
    assert!(text.contains(&my_run), "{text}");
    assert_eq!(
        js(&page, "document.querySelector('.who b').innerText").await,
        json!("acme")
    );
    assert!(
        !text.contains(&their_run) && !text.contains("secret-fn"),
        "nothing of globex: {text}"
    );
    // The cookie cannot be read by the page's scripts.
    assert_eq!(js(&page, "document.cookie").await, json!(""));
    for path in ["/", "/functions", "/users", "/events"] {
        goto(&page, &format!("{}{path}", acme.url)).await;
        let t = js(&page, "document.body.innerText").await;
        let t = t.as_str().unwrap();
        assert!(
            !t.contains("secret-fn") && !t.contains("g-user") && !t.contains(&theirs),
            "{path} shows globex's data: {t}"
        );
    }
    // The other tenant's run is not found, not shown.
    goto(&page, &format!("{}/runs/{their_run}", acme.url)).await;
    let t = js(&page, "document.body.innerText").await;
    assert!(t.as_str().unwrap().contains("run_not_found"), "{t}");
    // Logging out ends the session.
    goto(&page, &format!("{}/", acme.url)).await;
    click(&page, "[data-logout]").await;
    wait_for(
        &page,
        "location.pathname === '/login'",
        "the login page after logout",
    )
    .await;
    goto(&page, &format!("{}/runs", acme.url)).await;
    wait_for(&page, "location.pathname === '/login'", "login asked again").await;
    chrome.close().await;
}

/// A plain HTTP request: (status, body text, headers).
fn raw(
    s: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, ureq::http::HeaderMap) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .new_agent();
    let url = format!("{}{path}", s.url);
    let mut resp = if method == "GET" {
        let mut rq = agent.get(&url);
        for (k, v) in headers {
            rq = rq.header(*k, *v);
        }
        rq.call()
    } else {
        let mut rq = agent.post(&url);
        for (k, v) in headers {
            rq = rq.header(*k, *v);
        }
        rq.send(body)
    }
    .unwrap();
    let h = resp.headers().clone();
    (
        resp.status().as_u16(),
        resp.body_mut().read_to_string().unwrap_or_default(),
        h,
    )
}

#[test]
fn the_ui_refuses_forms_its_script_did_not_send_and_says_what_is_wrong() {
    let s = Server::start();
    s.deploy_ok(hello_chain());
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let event = "event=%7B%22name%22%3A%22demo%2Fhello%22%7D";
    // A cross-site form cannot set HX-Request: refused, nothing stored.
    let (st, body, _) = raw(&s, "POST", "/events/send", &form, event);
    assert_eq!(st, 403, "{body}");
    let (_, listed) = s.get("/v1/events");
    assert_eq!(listed["data"].as_array().unwrap().len(), 0);
    // From the UI's script it is sent.
    let ui = [form[0], ("HX-Request", "true")];
    let (st, body, _) = raw(&s, "POST", "/events/send", &ui, event);
    assert_eq!(st, 200);
    assert!(body.contains("Sent:"), "{body}");
    // Bad JSON that slipped past the browser is refused here, naming the problem.
    let (st, body, _) = raw(
        &s,
        "POST",
        "/events/send",
        &ui,
        "event=%7B%22name%22%3A1%7D",
    );
    assert_eq!(st, 200);
    assert!(
        body.contains("Not sent") && body.contains("invalid_event"),
        "{body}"
    );
    // A filter that is not a status, a time that is not a time: 400 naming it.
    let (st, body, _) = raw(&s, "GET", "/runs?status=bogus", &[], "");
    assert_eq!(st, 400);
    assert!(body.contains("status `bogus`"), "{body}");
    let (st, body, _) = raw(&s, "GET", "/runs?before=yesterday", &[], "");
    assert_eq!(st, 400);
    assert!(body.contains("before `yesterday`"), "{body}");
    // What does not exist is a 404 page.
    let (st, body, _) = raw(&s, "GET", "/runs/01JNOPE0000000000000000000", &[], "");
    assert_eq!(st, 404);
    assert!(body.contains("run_not_found"), "{body}");
    // Cancel of an unknown run from the script: 404, and the page says so.
    let (st, _, _) = raw(
        &s,
        "POST",
        "/runs/nope/cancel",
        &[("HX-Request", "true")],
        "",
    );
    assert_eq!(st, 404);
}

#[test]
fn pages_without_a_session_go_to_the_login_and_assets_are_cached_by_etag() {
    let s = Server::serve(TWO_TENANTS, "api_acme_0001", "evt_acme_0001");
    let (st, _, h) = raw(&s, "GET", "/runs?status=failed", &[], "");
    assert_eq!(st, 303);
    assert_eq!(
        h.get("location").unwrap().to_str().unwrap(),
        "/login?next=%2Fruns%3Fstatus%3Dfailed"
    );
    // A fragment request is told where to go instead of being redirected.
    let (st, _, h) = raw(&s, "GET", "/runs?part=rows", &[("HX-Request", "true")], "");
    assert_eq!(st, 401);
    assert!(h.get("hx-redirect").is_some());
    let (st, body, _) = raw(&s, "GET", "/login", &[], "");
    assert_eq!(st, 200);
    assert!(body.contains("login-form"));
    // The script and htmx come from the binary, with an ETag.
    let (st, js, h) = raw(&s, "GET", "/ui/weir.js", &[], "");
    assert_eq!(st, 200);
    assert!(js.contains("EventSource"));
    let tag = h.get("etag").unwrap().to_str().unwrap().to_string();
    let (st, _, _) = raw(&s, "GET", "/ui/weir.js", &[("If-None-Match", &tag)], "");
    assert_eq!(st, 304);
    let (st, htmx, _) = raw(&s, "GET", "/ui/htmx.min.js", &[], "");
    assert_eq!(st, 200);
    assert!(htmx.contains("htmx"));
    let (st, _, _) = raw(&s, "GET", "/ui/nope.js", &[], "");
    assert_eq!(st, 404);
}
