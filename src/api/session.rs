//! Browser sessions: `POST /v1/session` with an API key once sets an HttpOnly,
//! SameSite=Strict cookie for that key's tenant, which then stands for the key on every
//! `/v1` request (so an `EventSource` on `/v1/stream` works from a page); `DELETE
//! /v1/session` ends it. A request authenticated by the cookie that changes something
//! must come from the same origin (its `Origin`, when sent, names this host): with
//! SameSite=Strict, that closes cross-site request forgery.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::shapes::{ErrorReply, LoggedOut, Session};
use super::{read_body, ApiError, AppState};
use crate::event::now_ms;

/// The session cookie's name.
pub const COOKIE: &str = "weir_session";

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/session", post(login).delete(logout))
}

/// The session token a request carries in its cookie, if any.
pub fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Login {
    /// An API key of the tenant.
    api_key: String,
}

fn cookie(value: &str, max_age_s: i64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_s}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Log a browser in with an API key
///
/// Sets an HttpOnly, SameSite=Strict `weir_session` cookie (12 h) that stands for the key
/// on `/v1`; a state-changing request with only the cookie must come from the same origin
/// (else 403 `cross_origin`).
#[utoipa::path(
    post,
    path = "/v1/session",
    operation_id = "login",
    tag = "session",
    request_body = Login,
    responses(
        (status = 200, description = "Logged in", body = Session,
            headers(("Set-Cookie" = String, description = "`weir_session=…; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200`"))),
        (status = 400, description = "Not `{\"api_key\": \"…\"}` (`invalid_login`)", body = ErrorReply),
        (status = 401, description = "Unknown key (`unauthorized`)", body = ErrorReply),
        (status = 403, description = "An event key (`forbidden`)", body = ErrorReply),
        (status = 413, description = "Body over 4 KiB (`payload_too_large`)", body = ErrorReply),
    )
)]
async fn login(State(state): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let bytes = read_body(body, 4 << 10).await?;
    let l: Login = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad(
            "invalid_login",
            format!("send {{\"api_key\": \"…\"}} ({e})"),
        )
    })?;
    let (token, tenant) = state.auth.login(&l.api_key, now_ms())?;
    let mut resp = Json(json!({"tenant": tenant, "expires_in_s": super::auth::SESSION_MS / 1000}))
        .into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        cookie(&token, super::auth::SESSION_MS / 1000),
    );
    Ok(resp)
}

/// End the session of the request's cookie and clear it
#[utoipa::path(
    delete,
    path = "/v1/session",
    operation_id = "logout",
    tag = "session",
    responses(
        (status = 200, description = "Logged out (also without a session)", body = LoggedOut,
            headers(("Set-Cookie" = String, description = "`weir_session=; …; Max-Age=0`"))),
        (status = 403, description = "Only the cookie, from another origin (`cross_origin`)", body = ErrorReply),
    )
)]
async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(t) = session_token(&headers) {
        state.auth.logout(t);
    }
    let mut resp = Json(json!({"logged_out": true})).into_response();
    resp.headers_mut().insert(header::SET_COOKIE, cookie("", 0));
    resp
}

/// Refuses a state-changing request authenticated only by the session cookie whose
/// `Origin` names another site.
pub async fn same_origin(req: Request, next: Next) -> Response {
    let h = req.headers();
    let cookie_only = session_token(h).is_some() && h.get(header::AUTHORIZATION).is_none();
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if cookie_only && !safe {
        let host = h.get(header::HOST).and_then(|v| v.to_str().ok());
        let origin = h.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let same = match (origin, host) {
            (None, _) => true,
            (Some(o), Some(host)) => o.split_once("://").is_some_and(|(_, rest)| rest == host),
            (Some(_), None) => false,
        };
        if !same {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "cross_origin",
                format!(
                    "a request from {} may not act with this site's session cookie",
                    origin.unwrap_or("another origin")
                ),
            )
            .into_response();
        }
    }
    next.run(req).await
}
