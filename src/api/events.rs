//! `POST /e/{key}` (ingest) and `/v1/events` (read).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::shapes::{self, ErrorReply, EventBatch, EventPage, Forbidden, Ids, Unauthorized};
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

/// Send events with the event key as a bearer token
///
/// As `POST /e/{key}`, with the key in `Authorization: Bearer <key>`.
#[utoipa::path(
    post,
    path = "/e",
    operation_id = "send_events_bearer",
    tag = "events",
    security(("eventKey" = [])),
    request_body = EventBatch,
    responses(
        (status = 200, description = "Stored (durable before the reply)", body = Ids),
        (status = 400, description = "Bad JSON or a bad event, naming its index and field (`invalid_event`, `too_deep`), or refused by its schema (`schema_violation`, `unknown_schema_version`): nothing of the request is stored", body = ErrorReply),
        (status = 401, description = "Missing or unknown event key (`unauthorized`)", body = ErrorReply),
        (status = 413, description = "Body or batch too large (`payload_too_large`, `too_many_events`)", body = ErrorReply),
        (status = 429, description = "Too many events waiting (`busy`); see Retry-After", body = ErrorReply),
    )
)]
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

/// Send one event or an array (durable before the reply)
///
/// Each event gets an id, in order. A `ts` in the future delays the event until then; a
/// repeated idempotency `id` is accepted but triggers nothing.
#[utoipa::path(
    post,
    path = "/e/{key}",
    operation_id = "send_events",
    tag = "events",
    security(("eventKey" = [])),
    params(("key" = String, Path, description = "An event key (any key under `weir dev`)")),
    request_body = EventBatch,
    responses(
        (status = 200, description = "Stored (durable before the reply)", body = Ids),
        (status = 400, description = "Bad JSON or a bad event, naming its index and field (`invalid_event`, `too_deep`), or refused by its schema (`schema_violation`, `unknown_schema_version`): nothing of the request is stored", body = ErrorReply),
        (status = 401, description = "Unknown event key (`unauthorized`)", body = ErrorReply),
        (status = 413, description = "Body or batch too large (`payload_too_large`, `too_many_events`)", body = ErrorReply),
        (status = 429, description = "Too many events waiting (`busy`); see Retry-After", body = ErrorReply),
    )
)]
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

/// An event and the runs it started
#[utoipa::path(
    get,
    path = "/v1/events/{id}",
    operation_id = "get_event",
    tag = "events",
    security(("apiKey" = [])),
    params(("id" = String, Path, description = "The event's id")),
    responses(
        (status = 200, description = "The event", body = shapes::StoredEvent),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "Not found for this tenant (`event_not_found`)", body = ErrorReply),
    )
)]
async fn one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    Ok(Json(event_json(&state.engine.event(&tenant, &id).await?)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only events of this name.
    name: Option<String>,
    /// At most this many (1–1000, default 50).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// `true`: only events stored with `schema_errors` (accepted by a `warn`-mode schema).
    invalid: Option<bool>,
}

/// Events, newest first
#[utoipa::path(
    get,
    path = "/v1/events",
    operation_id = "list_events",
    tag = "events",
    security(("apiKey" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of events", body = EventPage),
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
