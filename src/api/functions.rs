//! `/v1/functions`: deploy a version, list, and show one with its versions and run counts.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{read_body, ApiError, AppState};
use crate::function::FunctionDef;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/functions", get(list).post(deploy))
        .route("/v1/functions/{id}", get(one))
}

async fn deploy(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    let bytes = read_body(body, 1 << 20).await?;
    let def = FunctionDef::from_json(&bytes)
        .map_err(|e| ApiError::bad("invalid_definition", e.to_string()))?;
    let (id, version) = state.engine.deploy(&tenant, def).await?;
    Ok(Json(json!({"id": id, "version": version})))
}

async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    let mut data = Vec::new();
    for f in state.engine.functions(&tenant) {
        let counts: serde_json::Map<String, Value> = state
            .engine
            .run_counts(&tenant, &f.id)
            .await?
            .into_iter()
            .map(|(k, v)| (k.as_str().to_string(), v.into()))
            .collect();
        data.push(json!({
            "id": f.id,
            "name": f.def.name,
            "version": f.version,
            "triggers": f.def.triggers,
            "steps": f.steps.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
            "runs": counts,
        }));
    }
    Ok(Json(json!({"data": data})))
}

async fn one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    Ok(Json(state.engine.function(&tenant, &id).await?))
}
