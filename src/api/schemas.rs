//! `/v1/schemas`: register, list and read event schemas, and infer one from stored
//! events. Event names hold `/` (`user/signed.up`), so the name is the rest of the path;
//! `GET /v1/schemas/{name}/inferred` asks for inference.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{read_body, ApiError, AppState};
use crate::engine::EngineError;
use crate::schema::parse_put;

/// Largest `PUT /v1/schemas/{name}` body, in bytes.
const MAX_SCHEMA_BODY: usize = 1 << 20;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/schemas", get(list))
        .route("/v1/schemas/{*name}", get(one_or_inferred).put(put))
}

async fn put(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    let bytes = read_body(body, MAX_SCHEMA_BODY).await?;
    let req = parse_put(&bytes).map_err(EngineError::from)?;
    let report = state.engine.put_schema(&tenant, &name, req).await?;
    Ok(Json(json!(report)))
}

async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    Ok(Json(
        json!({"data": state.engine.schemas(&tenant), "next_cursor": null}),
    ))
}

async fn one_or_inferred(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    if let Some(name) = name.strip_suffix("/inferred") {
        let (sampled, schema) = state.engine.infer_schema(&tenant, name).await?;
        return Ok(Json(
            json!({"name": name, "sampled": sampled, "schema": schema}),
        ));
    }
    let versions = state.engine.schema(&tenant, &name)?;
    let latest = versions.last().map(|v| v.v.clone());
    Ok(Json(
        json!({"name": name, "latest": latest, "versions": versions}),
    ))
}
