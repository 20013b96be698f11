//! Prometheus `/metrics` in the OpenMetrics text format, encoded by `prometheus-client`:
//! the engine's histograms and labelled counters, and a snapshot taken at scrape time of
//! its counters, per-tenant counts and gauges (steps executing, events waiting for
//! matching, runs running, sleeping and waiting per function).

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::AppState;
use crate::run::RunStatus;

/// Labels, in order, with their values.
type Labels = Vec<(&'static str, String)>;

/// One family of values read at scrape time.
#[derive(Debug)]
struct Series {
    name: &'static str,
    help: &'static str,
    counter: bool,
    values: Vec<(Labels, u64)>,
}

/// The values read at scrape time.
#[derive(Debug, Default)]
struct Snapshot(Vec<Series>);

impl Snapshot {
    fn add(
        &mut self,
        name: &'static str,
        help: &'static str,
        counter: bool,
        values: Vec<(Labels, u64)>,
    ) {
        self.0.push(Series {
            name,
            help,
            counter,
            values,
        });
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for s in &self.0 {
            let kind = if s.counter {
                MetricType::Counter
            } else {
                MetricType::Gauge
            };
            let mut family = encoder.encode_descriptor(s.name, s.help, None, kind)?;
            let encode = |m: prometheus_client::encoding::MetricEncoder, v: u64| {
                if s.counter {
                    ConstCounter::new(v).encode(m)
                } else {
                    ConstGauge::new(v as i64).encode(m)
                }
            };
            match s.values.as_slice() {
                // An unlabelled value is written bare (`name 3`, not `name{} 3`).
                [(labels, v)] if labels.is_empty() => encode(family, *v)?,
                values => {
                    for (labels, v) in values {
                        encode(family.encode_family(labels)?, *v)?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn tenant(t: &str) -> Labels {
    vec![("tenant", t.to_string())]
}

/// Prometheus metrics in the OpenMetrics text format
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    responses((status = 200, description = "The exposition", body = String,
        content_type = "application/openmetrics-text"))
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let engine = &state.engine;
    let s = engine.stats();
    let mut snap = Snapshot::default();
    for (name, help, v) in [
        (
            "weir_events_accepted",
            "Events accepted over HTTP",
            &s.events_accepted,
        ),
        (
            "weir_runs_started",
            "Runs started by events",
            &s.runs_started,
        ),
        (
            "weir_steps_executed",
            "Step attempts executed",
            &s.steps_executed,
        ),
        (
            "weir_steps_failed",
            "Step attempts that failed",
            &s.steps_failed,
        ),
        (
            "weir_trigger_errors",
            "Trigger expressions that failed to evaluate",
            &s.trigger_errors,
        ),
        (
            "weir_stale_results",
            "Step results refused because their lease had been lost",
            &s.stale_results,
        ),
        (
            "weir_corrupt_runs",
            "Runs whose state could not be advanced (corrupt) and were failed",
            &s.corrupt_runs,
        ),
    ] {
        snap.add(
            name,
            help,
            true,
            vec![(Vec::new(), v.load(Ordering::Relaxed))],
        );
    }
    for c in engine.runtime_counters() {
        snap.add(c.name, c.help, true, vec![(Vec::new(), c.value)]);
    }
    if let Some(n) = engine.relay_dropped() {
        snap.add(
            "weir_stream_relay_dropped",
            "Live-stream updates not relayed to the other processes (their outbox was full)",
            true,
            vec![(Vec::new(), n)],
        );
    }
    let tenants = s.tenant_counts();
    type Pick = fn(&crate::engine::TenantCounts) -> u64;
    let per_tenant: [(&'static str, &'static str, Pick); 4] = [
        (
            "weir_tenant_trigger_errors",
            "Trigger expressions that failed to evaluate, per tenant",
            |c| c.trigger_errors,
        ),
        (
            "weir_cel_budget_exceeded",
            "Trigger expressions stopped by the CEL cost budget, per tenant",
            |c| c.cel_budget_exceeded,
        ),
        (
            "weir_rollout_rollbacks",
            "Rollouts weir rolled back by itself (a version failed more than its baseline), per tenant",
            |c| c.rollbacks,
        ),
        (
            "weir_rollout_sticky_errors",
            "Rollout sticky-key expressions that failed to evaluate (the default key was used), per tenant",
            |c| c.sticky_errors,
        ),
    ];
    for (name, help, pick) in per_tenant {
        let values = tenants.iter().map(|(t, c)| (tenant(t), pick(c))).collect();
        snap.add(name, help, true, values);
    }
    let violations = engine
        .schema_violations()
        .into_iter()
        .map(|(t, event, mode, n)| {
            (
                vec![
                    ("tenant", t),
                    ("event", event),
                    ("mode", mode.as_str().to_string()),
                ],
                n,
            )
        })
        .collect();
    snap.add(
        "weir_schema_violations",
        "Events their schema refused (mode=reject) or stored with schema errors (mode=warn), per tenant and event name",
        true,
        violations,
    );
    let mut gauges = vec![
        (
            "weir_steps_executing",
            "Steps this process is executing now",
            Some(engine.executing() as u64),
        ),
        (
            "weir_events_pending",
            "Events stored and waiting for trigger matching (the ingest queue)",
            Some(engine.events_pending()),
        ),
    ];
    match engine.claims_not_durable().await {
        Ok(v) => gauges.push((
            "weir_claims_not_durable",
            "Step claims not yet on disk (an attempt cut short before then is not counted)",
            Some(v),
        )),
        Err(e) => tracing::warn!("metric weir_claims_not_durable: {e}"),
    }
    for (name, help, v) in gauges {
        snap.add(
            name,
            help,
            false,
            v.into_iter().map(|v| (Vec::new(), v)).collect(),
        );
    }
    let mut live = Vec::new();
    for (t, f) in engine.deployed() {
        match engine.run_counts(&t, &f).await {
            Ok(counts) => {
                for st in [RunStatus::Running, RunStatus::Sleeping, RunStatus::Waiting] {
                    let n = counts.get(&st).copied().unwrap_or(0);
                    let labels = vec![
                        ("tenant", t.clone()),
                        ("function", f.clone()),
                        ("status", st.as_str().to_string()),
                    ];
                    live.push((labels, n));
                }
            }
            Err(e) => tracing::warn!("metric weir_runs: {e}"),
        }
    }
    snap.add(
        "weir_runs",
        "Runs not ended yet, per tenant, function and status (running: queued or executing; sleeping; waiting for an event)",
        false,
        live,
    );
    let mut registry = Registry::default();
    engine.metrics().register(&mut registry);
    registry.register_collector(Box::new(snap));
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::error!("cannot encode /metrics: {e}");
    }
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
}
