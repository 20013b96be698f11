//! `/v1/functions/{id}/versions` and the rollout of a function: set, show, promote,
//! roll back.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{read_body, ApiError, AppState};
use crate::engine::rollout::{self, RolloutSpec};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/functions/{id}/versions", get(versions))
        .route("/v1/functions/{id}/rollout", get(show).put(set))
        .route("/v1/functions/{id}/promote", post(promote))
        .route("/v1/functions/{id}/rollback", post(rollback))
}

async fn versions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    let data = state.engine.versions(&tenant, &id).await?;
    Ok(Json(json!({"data": data, "next_cursor": null})))
}

async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    Ok(Json(state.engine.rollout(&tenant, &id).await?))
}

async fn set(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    let bytes = read_body(body, 64 << 10).await?;
    let spec = RolloutSpec::from_json(&bytes)
        .map_err(|e| ApiError::bad("invalid_rollout", format!("invalid rollout: {e}")))?;
    Ok(Json(state.engine.set_rollout(&tenant, &id, spec).await?))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Promote {
    version: u64,
}

async fn promote(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    let bytes = read_body(body, 64 << 10).await?;
    let p: Promote = rollout::parse(&bytes).map_err(|e| {
        ApiError::bad(
            "invalid_rollout",
            format!("invalid promote: {e} (send {{\"version\": N}})"),
        )
    })?;
    Ok(Json(state.engine.promote(&tenant, &id, p.version).await?))
}

async fn rollback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    Ok(Json(state.engine.rollback(&tenant, &id).await?))
}
