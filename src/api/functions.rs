//! `/v1/functions`: deploy a version, list, and show one with its versions and run counts.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::shapes::{Deployed, ErrorReply, Forbidden, FunctionDetail, FunctionList, Unauthorized};
use super::{read_body, ApiError, AppState};
use crate::function::FunctionDef;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/functions", get(list).post(deploy))
        .route("/v1/functions/{id}", get(one))
}

/// Deploy a new version
///
/// A changed definition becomes a new immutable version; an unchanged one keeps its
/// version. Over HTTP each wasm step names a component uploaded before
/// (`PUT /v1/components/{sha256}`) as `sha256:<hex>`.
#[utoipa::path(
    post,
    path = "/v1/functions",
    operation_id = "deploy_function",
    tag = "functions",
    security(("apiKey" = [])),
    request_body = super::shapes::FunctionDef,
    responses(
        (status = 200, description = "Deployed", body = Deployed),
        (status = 400, description = "Refused, naming the step and field (`invalid_definition`, `invalid_function`, …)", body = ErrorReply),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 413, description = "Body over 1 MiB (`payload_too_large`)", body = ErrorReply),
    )
)]
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

/// Latest version of every function, with run counts
#[utoipa::path(
    get,
    path = "/v1/functions",
    operation_id = "list_functions",
    tag = "functions",
    security(("apiKey" = [])),
    responses(
        (status = 200, description = "Every function", body = FunctionList),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
    )
)]
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

/// A function: definition, versions, run counts by status
#[utoipa::path(
    get,
    path = "/v1/functions/{id}",
    operation_id = "get_function",
    tag = "functions",
    security(("apiKey" = [])),
    params(("id" = String, Path, description = "The function's id")),
    responses(
        (status = 200, description = "The function", body = FunctionDetail),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such function for this tenant (`function_not_found`)", body = ErrorReply),
    )
)]
async fn one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    Ok(Json(state.engine.function(&tenant, &id).await?))
}
