//! `/health` and Prometheus `/metrics`.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::AppState;
use crate::engine::TenantCounts;

/// A Prometheus label value: backslash, quote and newline escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
}

/// The OpenAPI document of this API (kept in `src/api/openapi.json`).
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

async fn metrics(State(state): State<AppState>) -> String {
    let s = state.engine.stats();
    let mut out = String::new();
    for (name, help, v) in [
        (
            "weir_events_accepted_total",
            "Events accepted over HTTP.",
            &s.events_accepted,
        ),
        (
            "weir_runs_started_total",
            "Runs started by events.",
            &s.runs_started,
        ),
        (
            "weir_steps_executed_total",
            "Step attempts executed.",
            &s.steps_executed,
        ),
        (
            "weir_steps_failed_total",
            "Step attempts that failed.",
            &s.steps_failed,
        ),
        (
            "weir_trigger_errors_total",
            "Trigger expressions that failed to evaluate.",
            &s.trigger_errors,
        ),
        (
            "weir_stale_results_total",
            "Step results refused because their lease had been lost.",
            &s.stale_results,
        ),
        (
            "weir_corrupt_runs_total",
            "Runs whose state could not be advanced (corrupt) and were failed.",
            &s.corrupt_runs,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
            v.load(Ordering::Relaxed)
        );
    }
    let tenants = state.engine.stats().tenant_counts();
    type Pick = fn(&TenantCounts) -> u64;
    let per_tenant: [(&str, &str, Pick); 4] = [
        (
            "weir_tenant_trigger_errors_total",
            "Trigger expressions that failed to evaluate, per tenant.",
            |c| c.trigger_errors,
        ),
        (
            "weir_cel_budget_exceeded_total",
            "Trigger expressions stopped by the CEL cost budget, per tenant.",
            |c| c.cel_budget_exceeded,
        ),
        (
            "weir_rollout_rollbacks_total",
            "Rollouts weir rolled back by itself (a version failed more than its baseline), per tenant.",
            |c| c.rollbacks,
        ),
        (
            "weir_rollout_sticky_errors_total",
            "Rollout sticky-key expressions that failed to evaluate (the default key was used), per tenant.",
            |c| c.sticky_errors,
        ),
    ];
    for (name, help, pick) in per_tenant {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (tenant, c) in &tenants {
            let _ = writeln!(out, "{name}{{tenant=\"{}\"}} {}", label(tenant), pick(c));
        }
    }
    let name = "weir_schema_violations_total";
    let _ = writeln!(
        out,
        "# HELP {name} Events their schema refused (mode=reject) or stored with schema errors (mode=warn), per tenant and event name.\n# TYPE {name} counter"
    );
    for (tenant, event, mode, n) in state.engine.schema_violations() {
        let _ = writeln!(
            out,
            "{name}{{tenant=\"{}\",event=\"{}\",mode=\"{}\"}} {n}",
            label(&tenant),
            label(&event),
            mode.as_str()
        );
    }
    let gauges = [
        (
            "weir_steps_executing",
            "Steps this process is executing now.",
            Ok(state.engine.executing() as u64),
        ),
        (
            "weir_claims_not_durable",
            "Step claims not yet on disk (an attempt cut short before then is not counted).",
            state.engine.claims_not_durable().await,
        ),
    ];
    for (name, help, v) in gauges {
        match v {
            Ok(v) => {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
            }
            Err(e) => tracing::warn!("metric {name}: {e}"),
        }
    }
    out
}
