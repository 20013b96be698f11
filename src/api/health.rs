//! `/health`, the routes of Prometheus `/metrics` ([`super::metrics`]) and `/openapi.json`
//! ([`super::openapi`]).

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::shapes::Health;
use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(super::metrics::metrics))
        .route("/openapi.json", get(super::openapi::serve))
}

/// Liveness
#[utoipa::path(
    get,
    path = "/health",
    operation_id = "health",
    tag = "operations",
    responses((status = 200, description = "weir is up", body = Health))
)]
async fn health() -> Json<Value> {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}
