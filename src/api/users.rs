//! `/v1/users`: users by last activity, one user (what they wait on, what failed), their
//! timeline, and the erasure of their payloads.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::events::event_json;
use super::shapes::{
    ErrorReply, Forbidden, TimelinePage, Unauthorized, UserDetail, UserErasure, UserPage,
};
use super::{ApiError, AppState, Query};
use crate::run::{Run, StepStatus};
use crate::store::{TimelineItem, UserSummary};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/users", get(list))
        .route("/v1/users/{id}", get(one).delete(erase))
        .route("/v1/users/{id}/timeline", get(timeline))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only user ids starting with this.
    prefix: Option<String>,
    /// At most this many (1–1000, default 50).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

fn summary_json(s: &UserSummary) -> Value {
    let runs: Map<String, Value> = s
        .runs
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), (*v).into()))
        .collect();
    json!({"id": s.id, "last_seen": s.last_seen, "events": s.events, "runs": runs})
}

/// A parked run with, per parked step, its `wake_at` or `awaiting` as the run shows them.
fn waiting_json(r: &Run) -> Value {
    let api = r.to_api();
    let steps: Map<String, Value> = api["steps"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, s)| s.get("wake_at").is_some() || s.get("awaiting").is_some())
        .map(|(id, s)| {
            let mut v = json!({"status": s["status"]});
            for k in ["wake_at", "awaiting"] {
                if let Some(x) = s.get(k) {
                    v[k] = x.clone();
                }
            }
            (id.clone(), v)
        })
        .collect();
    json!({"id": r.id, "function_id": r.function_id, "status": r.status, "steps": steps})
}

fn failed_json(r: &Run) -> Value {
    let step = r.steps.iter().find(|s| s.status == StepStatus::Failed);
    json!({
        "id": r.id,
        "function_id": r.function_id,
        "ended_at": r.ended_at,
        "step": step.map(|s| s.id.clone()),
        "error": step.and_then(|s| s.error.clone()),
    })
}

fn run_summary(r: &Run) -> Value {
    json!({
        "kind": "run",
        "id": r.id,
        "function_id": r.function_id,
        "function_version": r.function_version,
        "status": r.status,
        "event_id": r.event_id,
        "created_at": r.created_at,
        "ended_at": r.ended_at,
    })
}

/// Users by last activity, most recent first
#[utoipa::path(
    get,
    path = "/v1/users",
    operation_id = "list_users",
    tag = "users",
    security(("apiKey" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of users", body = UserPage),
        (status = 400, description = "A malformed `limit` or `cursor` (`invalid_query`)", body = ErrorReply),
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
    let prefix = q.prefix.as_deref().filter(|p| !p.is_empty());
    let page = state
        .engine
        .users(&tenant, prefix, q.limit.unwrap_or(50), q.cursor.as_deref())
        .await?;
    Ok(Json(json!({
        "data": page.data.iter().map(summary_json).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    })))
}

/// One user: counts, the latest `user` object, runs sleeping or waiting now, recent failed runs
#[utoipa::path(
    get,
    path = "/v1/users/{id}",
    operation_id = "get_user",
    tag = "users",
    security(("apiKey" = [])),
    params(("id" = String, Path, description = "The user id (`event.user.id`)")),
    responses(
        (status = 200, description = "The user", body = UserDetail),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such user for this tenant (`user_not_found`)", body = ErrorReply),
    )
)]
async fn one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    let view = state.engine.user(&tenant, &id).await?;
    let mut v = summary_json(&view.summary);
    v["user"] = json!(view.summary.user);
    v["erased_at"] = json!(view.summary.erased_at);
    v["waiting"] = view.waiting.iter().map(waiting_json).collect();
    v["failed"] = view.failed.iter().map(failed_json).collect();
    Ok(Json(v))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct TimelineQuery {
    /// At most this many (1–1000, default 50).
    limit: Option<usize>,
    /// The id of the last entry shown (`next_cursor`).
    cursor: Option<String>,
}

/// The user's events and runs interleaved, newest first
#[utoipa::path(
    get,
    path = "/v1/users/{id}/timeline",
    operation_id = "get_user_timeline",
    tag = "users",
    security(("apiKey" = [])),
    params(("id" = String, Path, description = "The user id (`event.user.id`)"), TimelineQuery),
    responses(
        (status = 200, description = "A page of timeline entries", body = TimelinePage),
        (status = 400, description = "A malformed `limit` or `cursor` (`invalid_query`)", body = ErrorReply),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such user for this tenant (`user_not_found`)", body = ErrorReply),
    )
)]
async fn timeline(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<TimelineQuery>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    let page = state
        .engine
        .user_timeline(&tenant, &id, q.limit.unwrap_or(50), q.cursor.as_deref())
        .await?;
    let data: Vec<Value> = page
        .data
        .iter()
        .map(|item| match item {
            TimelineItem::Event(e) => {
                let mut v = json!({"kind": "event"});
                if let (Some(m), Value::Object(ev)) = (v.as_object_mut(), event_json(e)) {
                    m.extend(ev);
                }
                v
            }
            TimelineItem::Run(r) => run_summary(r),
        })
        .collect();
    Ok(Json(json!({"data": data, "next_cursor": page.next_cursor})))
}

/// Erase the user's payloads
///
/// Cancels their unfinished runs, then removes the data of every event and run stored so
/// far (ids, names, times, statuses and counts are kept). Events sent later are stored as
/// ever.
#[utoipa::path(
    delete,
    path = "/v1/users/{id}",
    operation_id = "erase_user",
    tag = "users",
    security(("apiKey" = [])),
    params(("id" = String, Path, description = "The user id (`event.user.id`)")),
    responses(
        (status = 200, description = "What was erased", body = UserErasure),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such user for this tenant (`user_not_found`)", body = ErrorReply),
    )
)]
async fn erase(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    let e = state.engine.erase_user(&tenant, &id).await?;
    Ok(Json(json!({
        "id": id,
        "events": e.events,
        "runs": e.runs,
        "cancelled": e.cancelled,
        "erased_at": e.erased_at,
    })))
}
