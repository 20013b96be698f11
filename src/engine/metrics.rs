//! What the engine measures as it goes, in Prometheus types (the `prometheus-client`
//! crate): histograms of event → run start and of step duration, and counters of runs
//! started and steps finished, by tenant and function. `/metrics` encodes these with a
//! scrape-time snapshot of the engine's counters and gauges.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A tenant label.
pub type TenantLabel = [(&'static str, String); 1];
/// Tenant and function labels.
pub type FunctionLabels = [(&'static str, String); 2];
/// Tenant, function and outcome labels.
pub type OutcomeLabels = [(&'static str, String); 3];

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Seconds from 1 ms to about 9 minutes, doubling.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 20))
}

/// The engine's own measurements.
pub struct Metrics {
    /// Event `ts` → run created, seconds, per tenant.
    pub run_start: Histograms<TenantLabel>,
    /// One step attempt's execution, seconds, per tenant and function.
    pub step_duration: Histograms<FunctionLabels>,
    /// Runs started, per tenant and function.
    pub runs_started: Family<FunctionLabels, Counter>,
    /// Step attempts finished, per tenant, function and outcome (`completed`, `failed`).
    pub steps_finished: Family<OutcomeLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            run_start: Family::new_with_constructor(seconds),
            step_duration: Family::new_with_constructor(seconds),
            runs_started: Family::default(),
            steps_finished: Family::default(),
        }
    }
}

/// Tenant and function labels.
pub fn function_labels(tenant: &str, function: &str) -> FunctionLabels {
    [
        ("tenant", tenant.to_string()),
        ("function", function.to_string()),
    ]
}

impl Metrics {
    /// A run was started for an event of time `event_ts`, at `created_at`.
    pub fn run_started(&self, tenant: &str, function: &str, event_ts: i64, created_at: i64) {
        let delay = (created_at - event_ts).max(0) as f64 / 1000.0;
        self.run_start
            .get_or_create(&[("tenant", tenant.to_string())])
            .observe(delay);
        self.runs_started
            .get_or_create(&function_labels(tenant, function))
            .inc();
    }

    /// A step attempt took `secs` and ended so.
    pub fn step_finished(&self, tenant: &str, function: &str, secs: f64, completed: bool) {
        let labels = function_labels(tenant, function);
        self.step_duration.get_or_create(&labels).observe(secs);
        let [t, f] = labels;
        let outcome = if completed { "completed" } else { "failed" };
        self.steps_finished
            .get_or_create(&[t, f, ("outcome", outcome.to_string())])
            .inc();
    }

    /// Adds these metrics (shared, not copied) to a registry being encoded.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "weir_run_start_delay_seconds",
            "From an event's ts to the start of a run it triggered, per tenant",
            self.run_start.clone(),
        );
        r.register(
            "weir_step_duration_seconds",
            "One step attempt's execution (instantiate and run), per tenant and function",
            self.step_duration.clone(),
        );
        r.register(
            "weir_function_runs_started",
            "Runs started, per tenant and function",
            self.runs_started.clone(),
        );
        r.register(
            "weir_function_steps_finished",
            "Step attempts finished, per tenant, function and outcome",
            self.steps_finished.clone(),
        );
    }
}
