//! `/v1/users`: users by last activity, one user (what they wait on, what failed), their
//! timeline, and the erasure of their payloads.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::events::event_json;
use super::{ApiError, AppState, Query};
use crate::run::{Run, StepStatus};
use crate::store::{TimelineItem, UserSummary};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/users", get(list))
        .route("/v1/users/{id}", get(one).delete(erase))
        .route("/v1/users/{id}/timeline", get(timeline))
}

#[derive(Deserialize)]
struct ListQuery {
    prefix: Option<String>,
    limit: Option<usize>,
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

#[derive(Deserialize)]
struct TimelineQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

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
