//! The web UI: pages rendered on the server (maud) straight from the engine, assets
//! embedded in the binary, and live parts refreshed by the stream (`/v1/stream`).
//!
//! The host face (the HTTP router) tells the UI who is looking by putting a [`Viewer`]
//! in each request; without a tenant, pages send the browser to `/login`. Every form
//! that changes something is sent by htmx, whose `HX-Request` header a cross-site form
//! cannot set: with the SameSite=Strict cookie, that closes cross-site request forgery
//! even under `weir dev`, which has no login.

mod assets;
mod dag;
mod fmt;
mod layout;
mod pages;
mod timeline;

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::Markup;

use crate::engine::{Engine, EngineError};

/// Who is looking at the UI: the tenant the request acts for, if it is logged in.
#[derive(Debug, Clone, Default)]
pub struct Viewer {
    /// The tenant, when known (always under `weir dev`).
    pub tenant: Option<String>,
    /// Whether there is a login to leave (a session, not an open server).
    pub session: bool,
}

/// What the UI's handlers share.
#[derive(Clone)]
struct Ui {
    engine: Arc<Engine>,
}

/// The UI's routes, for any host router state.
pub fn routes<S: Clone + Send + Sync + 'static>(engine: Arc<Engine>) -> Router<S> {
    Router::new()
        .route("/", get(pages::overview::page))
        .route("/runs", get(pages::runs::page))
        .route("/runs/{id}", get(pages::run::page))
        .route("/runs/{id}/cancel", post(pages::run::cancel))
        .route("/runs/{id}/rerun", post(pages::run::rerun))
        .route("/events", get(pages::events::page))
        .route("/events/send", post(pages::events::send))
        .route("/events/{id}", get(pages::events::one))
        .route("/functions", get(pages::functions::page))
        .route("/functions/{id}", get(pages::functions::one))
        .route("/users", get(pages::users::page))
        .route("/users/{id}", get(pages::users::one))
        .route("/replays", get(pages::replays::page))
        .route("/replays/{id}", get(pages::replays::one))
        .route("/login", get(pages::login::page))
        .route("/ui/{file}", get(assets::serve))
        .layer(axum::middleware::from_fn(htmx_only))
        .with_state(Ui { engine })
}

/// Refuses a state-changing request that htmx did not send (see the module docs).
async fn htmx_only(req: Request, next: Next) -> Response {
    let changes = !matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    if changes && req.headers().get("hx-request").is_none() {
        return (
            StatusCode::FORBIDDEN,
            "the UI's forms are sent by its own script (HX-Request); this request was not",
        )
            .into_response();
    }
    next.run(req).await
}

/// The tenant a page shows (and whether it came by a session), or a redirect to the
/// login page.
struct Tenant {
    id: String,
    session: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let viewer = parts
            .extensions
            .get::<Viewer>()
            .cloned()
            .unwrap_or_default();
        match viewer.tenant {
            Some(id) => Ok(Tenant {
                id,
                session: viewer.session,
            }),
            None => {
                let here = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/");
                let to = format!("/login?next={}", fmt::url_encode(here));
                Err(if is_htmx(&parts.headers) {
                    // A fragment request cannot follow a redirect to a whole page.
                    let mut r = StatusCode::UNAUTHORIZED.into_response();
                    if let Ok(v) = to.parse() {
                        r.headers_mut().insert("hx-redirect", v);
                    }
                    r
                } else {
                    Redirect::to(&to).into_response()
                })
            }
        }
    }
}

fn is_htmx(h: &HeaderMap) -> bool {
    h.get("hx-request").is_some()
}

/// A page or fragment, or an error page.
type Page = Result<Markup, PageError>;

/// An engine error shown as a page (404 for what does not exist).
struct PageError(EngineError);

impl From<EngineError> for PageError {
    fn from(e: EngineError) -> Self {
        Self(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            e if e.is_not_found() => StatusCode::NOT_FOUND,
            e if e.is_client_error() => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!("{}", self.0);
        }
        let title = status.canonical_reason().unwrap_or("error");
        let body = layout::shell(
            title,
            layout::Nav::None,
            None,
            maud::html! {
                h1 { (title) }
                p.error { (self.0.to_string()) " " code { "(" (self.0.code()) ")" } }
                p { a href="/" { "Back to the overview" } }
            },
        );
        (status, body).into_response()
    }
}
