//! The HTTP face: thin axum handlers over the engine, JSON errors everywhere.

pub mod auth;
mod components;
mod events;
mod functions;
mod health;
mod metrics;
mod openapi;
mod replays;
mod rollouts;
mod runs;
mod schemas;
mod session;
mod shapes;
mod stream;
mod users;

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::engine::{Engine, EngineError};

/// Server settings the handlers need.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest `POST /e` body, in bytes.
    pub max_event_body: usize,
    /// Most events in one `POST /e`.
    pub max_events: usize,
    /// Largest component upload, in bytes.
    pub max_component: usize,
    /// Deepest JSON nesting accepted in events.
    pub max_depth: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_event_body: 3 << 20,
            max_events: crate::event::MAX_EVENTS_PER_REQUEST,
            max_component: 64 << 20,
            max_depth: 64,
        }
    }
}

/// Shared handler state.
#[derive(Clone)]
pub struct AppState {
    /// The engine.
    pub engine: Arc<Engine>,
    /// Limits.
    pub config: ApiConfig,
    /// Keys and tenants.
    pub auth: Arc<auth::Auth>,
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

impl AppState {
    /// The tenant an API request acts for (from its API key).
    /// The tenant an API request acts for: by its bearer key, else by its session
    /// cookie ([`session`]).
    fn tenant(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        if bearer(headers).is_none() {
            if let Some(token) = session::session_token(headers) {
                return self
                    .auth
                    .session_tenant(token, crate::event::now_ms())
                    .map_err(ApiError::from);
            }
        }
        self.auth
            .api_tenant(bearer(headers))
            .map_err(ApiError::from)
    }
}

impl From<auth::AuthError> for ApiError {
    fn from(e: auth::AuthError) -> Self {
        match e {
            auth::AuthError::Forbidden(_) => {
                Self::new(StatusCode::FORBIDDEN, "forbidden", e.to_string())
            }
            _ => Self::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string()),
        }
    }
}

/// Tells the UI who is looking: the open tenant of `weir dev`, else the session's.
async fn viewer(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let h = req.headers();
    let viewer = if state.auth.is_open() {
        crate::ui::Viewer {
            tenant: state.auth.api_tenant(None).ok(),
            session: false,
        }
    } else {
        crate::ui::Viewer {
            tenant: session::session_token(h)
                .and_then(|t| state.auth.session_tenant(t, crate::event::now_ms()).ok()),
            session: true,
        }
    };
    req.extensions_mut().insert(viewer);
    next.run(req).await
}

/// The whole router.
pub fn router(state: AppState) -> axum::Router {
    let ui = crate::ui::routes(state.engine.clone())
        .layer(axum::middleware::from_fn_with_state(state.clone(), viewer));
    axum::Router::new()
        .merge(ui)
        .merge(health::routes())
        .merge(events::routes())
        .merge(functions::routes())
        .merge(rollouts::routes())
        .merge(replays::routes())
        .merge(components::routes())
        .merge(runs::routes())
        .merge(schemas::routes())
        .merge(stream::routes())
        .merge(session::routes())
        .merge(users::routes())
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_such_endpoint",
                "no such endpoint",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .layer(axum::middleware::from_fn(session::same_origin))
        .with_state(state)
}

/// An error reply: `{"error": "...", "code": "...", "status": N}`; `code` is stable
/// (the README lists every one), `error` is for people.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status, a stable code and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A 400 with this code.
    fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            Json(json!({"error": self.message, "code": self.code, "status": self.status.as_u16()}));
        match self.retry_after {
            Some(s) => (
                self.status,
                [(axum::http::header::RETRY_AFTER, s.to_string())],
                body,
            )
                .into_response(),
            None => (self.status, body).into_response(),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let status = match &e {
            e if e.is_not_found() => StatusCode::NOT_FOUND,
            EngineError::Schema(s) if s.is_conflict() => StatusCode::CONFLICT,
            EngineError::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
            EngineError::Store(crate::store::StoreError::Unavailable(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            e if e.is_client_error() => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!("{e}");
        }
        let mut err = Self::new(status, e.code(), e.to_string());
        if matches!(
            e,
            EngineError::Busy { .. } | EngineError::Store(crate::store::StoreError::Unavailable(_))
        ) {
            err.retry_after = Some(1);
        }
        err
    }
}

/// Query parameters, with a malformed query answered as a JSON error (axum's own
/// rejection is plain text).
pub struct Query<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S>
    for Query<T>
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::bad("invalid_query", e.body_text()))
    }
}

/// How much of a too-large body is read and thrown away before the 413 is sent, so the
/// client (still sending) reads the answer instead of a connection reset: a socket
/// closed with unread bytes resets the connection, losing the response in flight.
const DRAIN_LIMIT: usize = 64 << 20;
/// How long that draining may take.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads a whole body, answering 413 past `limit` bytes.
async fn read_body(body: axum::body::Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    use http_body_util::BodyExt;
    let mut body = body;
    let hint = axum::body::HttpBody::size_hint(&body).lower();
    let mut buf: Vec<u8> = Vec::with_capacity(hint.min(limit as u64) as usize);
    let too_big = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("body is larger than the limit of {limit} bytes"),
        )
    };
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| ApiError::bad("unreadable_body", format!("cannot read the body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buf.len() + data.len() > limit {
            drain(body, DRAIN_LIMIT.saturating_sub(buf.len() + data.len())).await;
            return Err(too_big());
        }
        buf.extend_from_slice(&data);
    }
    Ok(axum::body::Bytes::from(buf))
}

/// Reads and drops up to `budget` more bytes of `body`, for at most [`DRAIN_TIME`].
async fn drain(mut body: axum::body::Body, budget: usize) {
    use http_body_util::BodyExt;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut left = budget;
        while let Some(Ok(frame)) = body.frame().await {
            let n = frame.data_ref().map_or(0, |d| d.len());
            if n >= left {
                break;
            }
            left -= n;
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Resource;
    use crate::store::StoreError;

    #[test]
    fn engine_errors_map_to_statuses_and_codes() {
        let cases = [
            (
                EngineError::Internal("a task panicked".into()),
                500,
                "internal",
            ),
            (
                EngineError::Store(StoreError::Panicked("x".into())),
                500,
                "store_panicked",
            ),
            (
                EngineError::Store(StoreError::Backend("io".into())),
                500,
                "store_backend",
            ),
            (
                EngineError::Store(StoreError::Unavailable("redis down".into())),
                503,
                "store_unavailable",
            ),
            (
                EngineError::Store(StoreError::InvalidName {
                    what: "tenant",
                    value: "".into(),
                    reason: "must not be empty",
                }),
                400,
                "invalid_name",
            ),
            (EngineError::BadDigest("x".into()), 400, "invalid_digest"),
            (
                EngineError::NotFound {
                    what: Resource::Run,
                    id: "r".into(),
                },
                404,
                "run_not_found",
            ),
            (
                EngineError::Busy {
                    pending: 2,
                    limit: 1,
                },
                429,
                "busy",
            ),
        ];
        for (e, status, code) in cases {
            let a = ApiError::from(e);
            assert_eq!((a.status.as_u16(), a.code), (status, code));
        }
    }
}
