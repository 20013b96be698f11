//! `/v1/functions/{id}/versions` and the rollout of a function: set, show, promote,
//! roll back.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::shapes::{
    self, ErrorReply, Forbidden, RolloutChange, RolloutShow, Unauthorized, VersionPage,
};
use super::{read_body, ApiError, AppState};
use crate::engine::rollout::{self, RolloutSpec};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/functions/{id}/versions", get(versions))
        .route("/v1/functions/{id}/rollout", get(show).put(set))
        .route("/v1/functions/{id}/promote", post(promote))
        .route("/v1/functions/{id}/rollback", post(rollback))
}

/// Every immutable version of a function, newest first: definition and component digests
#[utoipa::path(
    get,
    path = "/v1/functions/{id}/versions",
    operation_id = "list_function_versions",
    tag = "functions",
    security(("apiKey" = [])),
    params(("id" = String, Path, description = "The function's id")),
    responses(
        (status = 200, description = "The versions", body = VersionPage),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such function for this tenant (`function_not_found`)", body = ErrorReply),
    )
)]
async fn versions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    let data = state.engine.versions(&tenant, &id).await?;
    Ok(Json(json!({"data": data, "next_cursor": null})))
}

/// The function's rollout: weights, per-version figures and history
///
/// Figures per version: `runs`, `completed`, `failed`, `failure_rate`, `p50_ms`, `p95_ms` of
/// runs started under this rollout.
#[utoipa::path(
    get,
    path = "/v1/functions/{id}/rollout",
    operation_id = "get_rollout",
    tag = "rollouts",
    security(("apiKey" = [])),
    params(("id" = String, Path, description = "The function's id")),
    responses(
        (status = 200, description = "The rollout", body = RolloutShow),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such function for this tenant (`function_not_found`), or it has no rollout (`rollout_not_found`)", body = ErrorReply),
    )
)]
async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    Ok(Json(state.engine.rollout(&tenant, &id).await?))
}

/// Set a rollout (weights, sticky key, automatic rollback), replacing the current one
///
/// Weights are integers summing to 100; the first version is the baseline. Raising a
/// version's weight only moves sticky keys onto it, never off it.
#[utoipa::path(
    put,
    path = "/v1/functions/{id}/rollout",
    operation_id = "set_rollout",
    tag = "rollouts",
    security(("apiKey" = [])),
    params(("id" = String, Path, description = "The function's id")),
    request_body = shapes::RolloutSpec,
    responses(
        (status = 200, description = "The new rollout, with the one it replaced", body = RolloutChange),
        (status = 400, description = "Invalid rollout, naming the field (`invalid_rollout`)", body = ErrorReply),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such function for this tenant (`function_not_found`)", body = ErrorReply),
        (status = 413, description = "Body over 64 KiB (`payload_too_large`)", body = ErrorReply),
    )
)]
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

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Promote {
    /// The version that gets every new run.
    #[schema(minimum = 1)]
    version: u64,
}

/// Send 100 % of new runs to a version
#[utoipa::path(
    post,
    path = "/v1/functions/{id}/promote",
    operation_id = "promote_version",
    tag = "rollouts",
    security(("apiKey" = [])),
    params(("id" = String, Path, description = "The function's id")),
    request_body = Promote,
    responses(
        (status = 200, description = "The new rollout, with the one it replaced", body = RolloutChange),
        (status = 400, description = "Not `{\"version\": N}`, or no such version (`invalid_rollout`)", body = ErrorReply),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such function for this tenant (`function_not_found`)", body = ErrorReply),
        (status = 413, description = "Body over 64 KiB (`payload_too_large`)", body = ErrorReply),
    )
)]
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

/// Set the previous rollout again (or 100 % to the baseline)
///
/// The current rollout is recorded as rolled back.
#[utoipa::path(
    post,
    path = "/v1/functions/{id}/rollback",
    operation_id = "rollback",
    tag = "rollouts",
    security(("apiKey" = [])),
    params(("id" = String, Path, description = "The function's id")),
    responses(
        (status = 200, description = "The new rollout, with the one it replaced", body = RolloutChange),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such function for this tenant (`function_not_found`), or it has no rollout (`rollout_not_found`)", body = ErrorReply),
    )
)]
async fn rollback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    Ok(Json(state.engine.rollback(&tenant, &id).await?))
}
