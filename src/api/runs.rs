//! `/v1/runs`: list with filters and a cursor, and one run with its steps.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::shapes::{ErrorReply, Forbidden, Run, RunPage, Unauthorized};
use super::{ApiError, AppState, Query};
use crate::run::RunStatus;
use crate::store::RunFilter;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/runs", get(list))
        .route("/v1/runs/{id}", get(one))
        .route("/v1/runs/{id}/cancel", axum::routing::post(cancel))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only runs of this function.
    function: Option<String>,
    /// Only runs in this status.
    #[param(value_type = Option<super::shapes::RunStatus>)]
    status: Option<String>,
    /// Only runs of this user (`event.user.id`).
    user: Option<String>,
    /// Only runs started by this event.
    event: Option<String>,
    /// Only runs started by this replay.
    replay: Option<String>,
    /// At most this many (1–1000, default 50).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Runs, newest first
#[utoipa::path(
    get,
    path = "/v1/runs",
    operation_id = "list_runs",
    tag = "runs",
    security(("apiKey" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of runs", body = RunPage),
        (status = 400, description = "A malformed query, e.g. an unknown status (`invalid_query`)", body = ErrorReply),
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

/// A run with each step's state
#[utoipa::path(
    get,
    path = "/v1/runs/{id}",
    operation_id = "get_run",
    tag = "runs",
    security(("apiKey" = [])),
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run", body = Run),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "Not found for this tenant (`run_not_found`)", body = ErrorReply),
    )
)]
async fn one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    Ok(Json(state.engine.run(&tenant, &id).await?.to_api()))
}

/// Cancel a run (a finished run is returned unchanged)
#[utoipa::path(
    post,
    path = "/v1/runs/{id}/cancel",
    operation_id = "cancel_run",
    tag = "runs",
    security(("apiKey" = [])),
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run", body = Run),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "Not found for this tenant (`run_not_found`)", body = ErrorReply),
    )
)]
async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    Ok(Json(state.engine.cancel_run(&tenant, &id).await?.to_api()))
}
