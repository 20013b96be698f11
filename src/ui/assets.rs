//! The UI's static files, embedded in the binary: its stylesheet, its script, and htmx
//! (vendored, 0BSD), served with an ETag so a browser keeps them until they change.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// Every asset: (file name, content type, bytes).
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "weir.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/weir.css"),
    ),
    (
        "weir.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/weir.js"),
    ),
    (
        "htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/htmx-2.0.11.min.js"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_bytes!("assets/icon.svg"),
    ),
];

/// The ETag of each asset, computed once.
fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        FILES
            .iter()
            .map(|(_, _, b)| format!("\"{}\"", &hex::encode(Sha256::digest(b))[..16]))
            .collect()
    })
}

/// `GET /ui/{file}`.
pub async fn serve(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some(i) = FILES.iter().position(|(n, _, _)| *n == file) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let (_, kind, bytes) = FILES[i];
    let tag = &etags()[i];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == tag);
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, kind)], bytes).into_response()
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}
