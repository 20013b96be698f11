//! `/v1/runs`: list with filters and a cursor, and one run with its steps.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, AppState, Query};
use crate::run::RunStatus;
use crate::store::RunFilter;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/runs", get(list))
        .route("/v1/runs/{id}", get(one))
        .route("/v1/runs/{id}/cancel", axum::routing::post(cancel))
}

#[derive(Deserialize)]
struct ListQuery {
    function: Option<String>,
    status: Option<String>,
    user: Option<String>,
    event: Option<String>,
    replay: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(RunStatus::parse(s).ok_or_else(|| {
            ApiError::bad("invalid_query", format!("status `{s}` is not one of running, waiting, sleeping, completed, failed, cancelled"))
        })?),
    };
    let filter = RunFilter {
        function: q.function,
        status,
        user: q.user,
        event: q.event,
        replay: q.replay,
    };
    let page = state
        .engine
        .runs(&tenant, &filter, q.limit.unwrap_or(50), q.cursor.as_deref())
        .await?;
    Ok(Json(json!({
        "data": page.data.iter().map(|r| r.to_api()).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    })))
}

async fn one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    Ok(Json(state.engine.run(&tenant, &id).await?.to_api()))
}

async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    Ok(Json(state.engine.cancel_run(&tenant, &id).await?.to_api()))
}
