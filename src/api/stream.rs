//! `GET /v1/stream`: the tenant's live updates as Server-Sent Events (`event.received`,
//! `run.updated`, `rollout.changed`, `function.deployed`), optionally only those of one function or user.
//! The first event, `ready`, says the subscription is live; `lagged` says how many
//! updates a slow reader missed.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use axum::Router;
use futures::Stream;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use super::shapes::ErrorReply;
use super::shapes::{Forbidden, Unauthorized};
use super::{ApiError, AppState, Query};
use crate::engine::stream::Update;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/stream", get(stream))
}

#[derive(Deserialize, Clone, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct StreamQuery {
    /// Only updates of this function's runs and rollouts.
    function: Option<String>,
    /// Only updates of this user's events and runs.
    user: Option<String>,
}

impl StreamQuery {
    fn wants(&self, u: &Update) -> bool {
        self.function
            .as_deref()
            .is_none_or(|f| u.function() == Some(f))
            && self.user.as_deref().is_none_or(|x| u.user() == Some(x))
    }
}

/// The tenant's live updates as Server-Sent Events
///
/// `ready` first, then `event.received` `{id, name, user_id}`, `run.updated` `{run_id,
/// function_id, user_id, status, step?, step_status?}`, `rollout.changed` `{function_id,
/// rollout_id, status}`, `function.deployed` `{function_id, version}`; `lagged` `{missed}`
/// when a slow reader missed updates. Kept alive
/// with comments; it never ends by itself.
#[utoipa::path(
    get,
    path = "/v1/stream",
    operation_id = "stream",
    tag = "stream",
    security(("apiKey" = [])),
    params(StreamQuery),
    responses(
        (status = 200, description = "An event stream", body = String, content_type = "text/event-stream"),
        (status = 400, description = "A malformed query (`invalid_query`)", body = ErrorReply),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
    )
)]
async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let tenant = state.tenant(&headers)?;
    let rx = state.engine.subscribe().await;
    let ready = futures::stream::once(async { Ok(SseEvent::default().event("ready").data("{}")) });
    let updates = futures::stream::unfold((rx, tenant, q), |(mut rx, tenant, q)| async move {
        loop {
            let ev = match rx.recv().await {
                Ok(u) => {
                    let (t, u) = &*u;
                    if t != &tenant || !q.wants(u) {
                        continue;
                    }
                    SseEvent::default()
                        .event(u.kind())
                        .json_data(u)
                        .unwrap_or_default()
                }
                Err(RecvError::Lagged(n)) => SseEvent::default()
                    .event("lagged")
                    .data(format!("{{\"missed\":{n}}}")),
                Err(RecvError::Closed) => return None,
            };
            return Some((Ok(ev), (rx, tenant, q)));
        }
    });
    Ok(Sse::new(futures::StreamExt::chain(ready, updates)).keep_alive(KeepAlive::default()))
}
