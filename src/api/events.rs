//! `POST /e/{key}` (ingest) and `/v1/events` (read).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{read_body, ApiError, AppState, Query};
use crate::event::{check_depth, parse_batch, EventError};
use crate::store::{EventFilter, StoredEvent};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/e", post(ingest_bearer))
        .route("/e/{key}", post(ingest))
        .route("/v1/events", get(list))
        .route("/v1/events/{id}", get(one))
}

async fn ingest_bearer(
    state: State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let key = super::bearer(&headers).map(str::to_string).ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing event key: use POST /e/{key} or Authorization: Bearer <key>",
        )
    })?;
    ingest(state, Path(key), body).await
}

async fn ingest(
    State(state): State<AppState>,
    Path(key): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.auth.event_tenant(Some(&key))?;
    let bytes = read_body(body, state.config.max_event_body).await?;
    check_depth(&bytes, state.config.max_depth)
        .map_err(|e| ApiError::bad("too_deep", e.to_string()))?;
    let events = parse_batch(&bytes, state.config.max_events).map_err(|e| match e {
        EventError::TooMany { .. } => ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_events",
            e.to_string(),
        ),
        other => ApiError::bad("invalid_event", other.to_string()),
    })?;
    let ids = state.engine.send(&tenant, events).await?;
    Ok(Json(json!({"ids": ids, "status": 200})))
}

/// An event as the API shows it, with the runs it started.
pub(super) fn event_json(se: &StoredEvent) -> Value {
    let mut v = se.event.to_value();
    v["run_ids"] = json!(se.run_ids);
    if let Some(d) = &se.duplicate_of {
        v["duplicate_of"] = json!(d);
    }
    if !se.event.schema_errors.is_empty() {
        v["schema_errors"] = json!(se.event.schema_errors);
    }
    v
}

async fn one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    Ok(Json(event_json(&state.engine.event(&tenant, &id).await?)))
}

#[derive(Deserialize)]
struct ListQuery {
    name: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
    /// Only events stored with schema errors.
    invalid: Option<bool>,
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    let (limit, cursor) = (q.limit.unwrap_or(50), q.cursor.as_deref());
    let page = if q.invalid == Some(true) {
        let filter = EventFilter {
            name: q.name,
            invalid: true,
        };
        state
            .engine
            .events_where(&tenant, &filter, limit, cursor)
            .await?
    } else {
        state
            .engine
            .events(&tenant, q.name.as_deref(), limit, cursor)
            .await?
    };
    Ok(Json(
        json!({"data": page.data.iter().map(event_json).collect::<Vec<_>>(), "next_cursor": page.next_cursor}),
    ))
}
