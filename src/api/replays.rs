//! `/v1/replays`: replay stored or given events against a function version, as runs or
//! as a dry run compared with the original runs; progress, listing, cancel.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::shapes::{
    ErrorReply, Forbidden, Replay as ReplayShape, ReplayCreated, ReplayPage, Unauthorized,
};
use super::{read_body, ApiError, AppState, Query};
use crate::engine::replay::{Replay, ReplaySpec};

/// Most bytes of a replay request (inline events included).
const MAX_BODY: usize = 64 << 20;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/replays", get(list).post(create))
        .route("/v1/replays/{id}", get(one))
        .route("/v1/replays/{id}/cancel", post(cancel))
}

fn replay_json(r: &Replay) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

/// Replay stored events of a range (or events given inline) against a function version
///
/// `mode: run` starts a new run per event, marked with the replay and paced at `rate`;
/// `mode: dry_run` runs the version's steps in the sandbox without recording runs or
/// letting effects out, and compares each step's output with the original run's.
#[utoipa::path(
    post,
    path = "/v1/replays",
    operation_id = "create_replay",
    tag = "replays",
    security(("apiKey" = [])),
    request_body = super::shapes::ReplaySpec,
    responses(
        (status = 202, description = "Started", body = ReplayCreated),
        (status = 400, description = "Refused, naming the field (`invalid_replay`): `from`, `to`, `rate`, `version`, `status[i]`, `events[i]`, `mode`", body = ErrorReply),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such function for this tenant (`function_not_found`)", body = ErrorReply),
        (status = 413, description = "Body over 64 MiB (`payload_too_large`)", body = ErrorReply),
    )
)]
async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = state.tenant(&headers)?;
    let bytes = read_body(body, MAX_BODY).await?;
    let spec = ReplaySpec::from_json(&bytes)
        .map_err(|e| ApiError::bad("invalid_replay", format!("invalid replay: {e}")))?;
    let r = state.engine.create_replay(&tenant, spec).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": r.id, "total": r.total, "status": r.status})),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// At most this many (1–1000, default 50).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The tenant's replays, newest first
#[utoipa::path(
    get,
    path = "/v1/replays",
    operation_id = "list_replays",
    tag = "replays",
    security(("apiKey" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of replays", body = ReplayPage),
        (status = 400, description = "A malformed query (`invalid_query`)", body = ErrorReply),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
    )
)]
async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    let page = state
        .engine
        .replays(&tenant, q.limit.unwrap_or(50), q.cursor.as_deref())
        .await?;
    Ok(Json(json!({
        "data": page.data.iter().map(replay_json).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    })))
}

/// A replay: status, progress, runs started; for a dry run the comparison
///
/// A dry run counts `identical`, `changed`, `new_failures` and `fixed` runs, with the first
/// 100 differences.
#[utoipa::path(
    get,
    path = "/v1/replays/{id}",
    operation_id = "get_replay",
    tag = "replays",
    security(("apiKey" = [])),
    params(("id" = String, Path, description = "The replay's id")),
    responses(
        (status = 200, description = "The replay", body = ReplayShape),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such replay (`replay_not_found`)", body = ErrorReply),
    )
)]
async fn one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    Ok(Json(replay_json(&state.engine.replay(&tenant, &id).await?)))
}

/// Stop a replay where it is (the runs it started go on); a finished one is returned unchanged
#[utoipa::path(
    post,
    path = "/v1/replays/{id}/cancel",
    operation_id = "cancel_replay",
    tag = "replays",
    security(("apiKey" = [])),
    params(("id" = String, Path, description = "The replay's id")),
    responses(
        (status = 200, description = "The replay", body = ReplayShape),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such replay (`replay_not_found`)", body = ErrorReply),
    )
)]
async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    Ok(Json(replay_json(
        &state.engine.cancel_replay(&tenant, &id).await?,
    )))
}
