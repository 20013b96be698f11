//! `/v1/schemas`: register, list and read event schemas, and infer one from stored
//! events. Event names hold `/` (`user/signed.up`), so the name is the rest of the path;
//! `GET /v1/schemas/{name}/inferred` asks for inference.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::shapes::{
    ErrorReply, Forbidden, InferredSchema, PutSchema, SchemaList, SchemaReport, SchemaVersions,
    Unauthorized,
};
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

/// Register a schema version
///
/// First checks the most recent stored events of the name (up to 1,000) and reports
/// those the version would refuse; with `dry_run` it only reports.
#[utoipa::path(
    put,
    path = "/v1/schemas/{name}",
    operation_id = "put_schema",
    tag = "schemas",
    security(("apiKey" = [])),
    params(("name" = String, Path, description = "The event name; it may hold `/` (`user/signed.up`), as is or percent-encoded")),
    request_body = PutSchema,
    responses(
        (status = 200, description = "What the check found, and whether the version is registered", body = SchemaReport),
        (status = 400, description = "Refused, naming the field (`invalid_schema`, `remote_schema_ref`, `invalid_schema_version`, `invalid_schema_mode`, `invalid_schema_request`, `invalid_event_name`)", body = ErrorReply),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, description = "That version exists with another schema or mode (`schema_version_exists`)", body = ErrorReply),
        (status = 413, description = "Body over 1 MiB (`payload_too_large`)", body = ErrorReply),
    )
)]
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

/// The tenant's event schemas: each name with its latest version, mode and version count
#[utoipa::path(
    get,
    path = "/v1/schemas",
    operation_id = "list_schemas",
    tag = "schemas",
    security(("apiKey" = [])),
    responses(
        (status = 200, description = "Every schema, by name", body = SchemaList),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
    )
)]
async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    Ok(Json(
        json!({"data": state.engine.schemas(&tenant), "next_cursor": null}),
    ))
}

/// `GET /v1/schemas/{*name}`: a name ending in `/inferred` asks for inference.
async fn one_or_inferred(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    match name.strip_suffix("/inferred") {
        Some(name) => inferred(&state, &tenant, name).await,
        None => one(&state, &tenant, &name),
    }
}

/// Every version of an event name's schema
#[utoipa::path(
    get,
    path = "/v1/schemas/{name}",
    operation_id = "get_schema",
    tag = "schemas",
    security(("apiKey" = [])),
    params(("name" = String, Path, description = "The event name; it may hold `/` (`user/signed.up`), as is or percent-encoded")),
    responses(
        (status = 200, description = "The versions, in registration order", body = SchemaVersions),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No schema for that name (`schema_not_found`)", body = ErrorReply),
    )
)]
fn one(state: &AppState, tenant: &str, name: &str) -> Result<Json<Value>, ApiError> {
    let versions = state.engine.schema(tenant, name)?;
    let latest = versions.last().map(|v| v.v.clone());
    Ok(Json(
        json!({"name": name, "latest": latest, "versions": versions}),
    ))
}

/// A draft 2020-12 schema inferred from the most recent stored events of the name (up to 1,000)
#[utoipa::path(
    get,
    path = "/v1/schemas/{name}/inferred",
    operation_id = "infer_schema",
    tag = "schemas",
    security(("apiKey" = [])),
    params(("name" = String, Path, description = "The event name; it may hold `/` (`user/signed.up`), as is or percent-encoded")),
    responses(
        (status = 200, description = "The inferred schema", body = InferredSchema),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No stored events of that name (`event_not_found`)", body = ErrorReply),
    )
)]
async fn inferred(state: &AppState, tenant: &str, name: &str) -> Result<Json<Value>, ApiError> {
    let (sampled, schema) = state.engine.infer_schema(tenant, name).await?;
    Ok(Json(
        json!({"name": name, "sampled": sampled, "schema": schema}),
    ))
}
