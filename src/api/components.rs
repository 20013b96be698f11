//! `PUT /v1/components/{sha256}`: upload a step's wasm, checked against its hash.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::put;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{read_body, ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/components/{sha}", put(upload))
}

async fn upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(sha): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    let bytes = read_body(body, state.config.max_component).await?;
    let kind = state
        .engine
        .put_component(&tenant, &sha, bytes.to_vec())
        .await?;
    Ok(Json(
        json!({"sha256": sha.to_ascii_lowercase(), "kind": kind}),
    ))
}
