//! A local HTTP receiver for http steps, on its own thread and port: it checks each
//! request's `X-Weir-Signature` the way the README tells receivers to, and answers by
//! path (`/greet`, `/flaky`, `/missing`, `/hang`, `/huge`, `/moved`, `/text`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

pub const KEY: &str = "weir-dev-signing-key";

#[derive(Default)]
pub struct Seen {
    pub hits: Mutex<HashMap<String, u32>>,
    pub bodies: Mutex<Vec<Value>>,
    flaky: AtomicU32,
}

/// A receiver on its own thread and port: checks each request's signature the way
/// the README tells receivers to, and answers by path.
pub fn receiver() -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let state = seen.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = axum::Router::new()
                .route("/{what}", axum::routing::post(answer))
                .with_state(state);
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            axum::serve(l, app).await.unwrap();
        });
    });
    let addr = rx.recv().unwrap();
    (format!("http://{addr}"), seen)
}

async fn answer(
    State(seen): State<Arc<Seen>>,
    Path(what): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    *seen.hits.lock().unwrap().entry(what.clone()).or_default() += 1;
    // The receiver's check: t and v1 from the header, HMAC over "<t>.<body>".
    let sig = headers
        .get("x-weir-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let t: u64 = sig
        .split(',')
        .find_map(|p| p.strip_prefix("t="))
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let valid = weir::runtime::http::signature(KEY.as_bytes(), t, &body) == sig;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let fresh = now.abs_diff(t) < 300;
    let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    seen.bodies.lock().unwrap().push(input.clone());
    match what.as_str() {
        "greet" => axum::Json(json!({
            "status": 200,
            "body": {
                "signed": valid && fresh,
                "attempt": headers.get("x-weir-attempt").and_then(|v| v.to_str().ok()),
                "team": headers.get("x-team").and_then(|v| v.to_str().ok()),
                "saw": input["steps"]["hello"]["body"]["message"],
            }
        }))
        .into_response(),
        "flaky" => {
            if seen.flaky.fetch_add(1, Ordering::SeqCst) < 2 {
                (StatusCode::SERVICE_UNAVAILABLE, "try later").into_response()
            } else {
                axum::Json(json!({"ok": true})).into_response()
            }
        }
        "missing" => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "no such thing"})),
        )
            .into_response(),
        "hang" => std::future::pending::<Response>().await,
        "huge" => vec![b'x'; 10 << 20].into_response(),
        "moved" => (StatusCode::FOUND, [("location", "/greet")], "").into_response(),
        "text" => "plain words".into_response(),
        _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
