//! `/v1/replays`: replay stored or given events against a function version, as runs or
//! as a dry run compared with the original runs; progress, listing, cancel.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

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

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

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

async fn one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    Ok(Json(replay_json(&state.engine.replay(&tenant, &id).await?)))
}

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
