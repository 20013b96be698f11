//! `/metrics` against the real binary: OpenMetrics text from prometheus-client with the
//! histograms, labelled counters and gauges a dashboard needs.

mod common;

use common::{one_step, Server};
use serde_json::json;

fn scrape(s: &Server) -> String {
    let (st, body, _) = s.request("GET", "/metrics", None, None);
    assert_eq!(st, 200);
    body.as_str().unwrap().to_string()
}

#[test]
fn metrics_show_step_durations_run_start_delays_and_live_runs_by_status() {
    let s = Server::start();
    s.deploy_ok(
        json!({"id": "sleepy", "triggers": [{"event": "go"}], "steps": {
        "a": {"path": "guest:hello"},
        "b": {"path": "guest:echo", "after": [{"step": "a", "wait": "1h"}]}}}),
    );
    s.deploy_ok(one_step("fails", "boom", "respond", json!({})));
    let e = s.send(json!({"name": "go"}));
    let run = s.runs_of(&e)[0].clone();
    s.wait_run(&run, |r| r["status"] == "sleeping");
    let failed = s.send_and_finish(json!({"name": "boom", "data": {"status": 404}}));
    assert_eq!(failed["status"], "failed");
    let text = scrape(&s);
    for line in [
        "weir_runs{tenant=\"default\",function=\"sleepy\",status=\"sleeping\"} 1",
        "weir_runs{tenant=\"default\",function=\"sleepy\",status=\"running\"} 0",
        "weir_function_runs_started_total{tenant=\"default\",function=\"sleepy\"} 1",
        "weir_function_steps_finished_total{tenant=\"default\",function=\"sleepy\",outcome=\"completed\"} 1",
        "weir_function_steps_finished_total{tenant=\"default\",function=\"fails\",outcome=\"failed\"} 1",
        "weir_step_duration_seconds_count{tenant=\"default\",function=\"sleepy\"} 1",
        "weir_run_start_delay_seconds_count{tenant=\"default\"} 2",
        "# TYPE weir_step_duration_seconds histogram",
        "# TYPE weir_runs gauge",
        "# TYPE weir_events_accepted counter",
        "weir_events_accepted_total 2",
        "weir_steps_failed_total 1",
        "weir_events_pending 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("weir_step_duration_seconds_bucket{le=\"")
                && l.contains("function=\"sleepy\"")),
        "{text}"
    );
    assert_eq!(
        text.lines().last(),
        Some("# EOF"),
        "OpenMetrics ends with EOF"
    );
}
