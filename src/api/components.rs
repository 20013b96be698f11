//! `PUT /v1/components/{sha256}`: upload a step's wasm, checked against its hash.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::put;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::shapes::{Component, ErrorReply, Forbidden, Unauthorized, WasmBytes};
use super::{read_body, ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/components/{sha256}", put(upload))
}

/// Upload a step's wasm (component or WASI preview1 module) or a docker build context (a tar with a Dockerfile); the hash is checked
#[utoipa::path(
    put,
    path = "/v1/components/{sha256}",
    operation_id = "put_component",
    tag = "functions",
    security(("apiKey" = [])),
    params(("sha256" = String, Path, description = "The SHA-256 of the body, in hex", pattern = "^[0-9a-fA-F]{64}$")),
    request_body(
        description = "The component's bytes (up to 64 MiB), under any content type",
        content((inline(WasmBytes) = "application/wasm"), (inline(WasmBytes) = "application/octet-stream")),
    ),
    responses(
        (status = 200, description = "Stored and validated", body = Component),
        (status = 400, description = "Not a digest (`invalid_digest`), the body hashes otherwise (`hash_mismatch`), or not a usable step (`invalid_component`)", body = ErrorReply),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 413, description = "Body too large (`payload_too_large`)", body = ErrorReply),
    )
)]
async fn upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(sha): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    let bytes = read_body(body, state.config.max_component).await?;
    let (kind, world) = state
        .engine
        .put_component(&tenant, &sha, bytes.to_vec())
        .await?;
    let mut reply = json!({"sha256": sha.to_ascii_lowercase(), "kind": kind});
    if let Some(w) = world {
        reply["world"] = json!(w);
    }
    Ok(Json(reply))
}
