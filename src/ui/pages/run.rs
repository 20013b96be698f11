//! `/runs/{id}`: one run — its DAG coloured by step status, the waterfall of its steps,
//! and per step the input, output, error, log and sandbox figures (each step has its own
//! permalink, `#step-<id>`); cancel and rerun.

use axum::extract::{Path, Query, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, PreEscaped};
use serde::Deserialize;
use serde_json::{json, Value};

use super::super::layout::{self, Nav};
use super::super::{dag, fmt, timeline, Page, PageError, Tenant, Ui};
use crate::engine::replay::ReplaySpec;
use crate::engine::{step_input, EngineError};
use crate::event::now_ms;
use crate::function::Function;
use crate::run::{Run, StepStatus};

#[derive(Debug, Default, Deserialize)]
pub struct RunQuery {
    /// `body`: only the live part (what the live refresh asks for).
    part: Option<String>,
}

pub async fn page(
    State(ui): State<Ui>,
    t: Tenant,
    Path(id): Path<String>,
    Query(q): Query<RunQuery>,
) -> Page {
    let run = ui.engine.run(&t.id, &id).await?;
    let f = ui
        .engine
        .function_version(&t.id, &run.function_id, run.function_version)
        .await
        .ok();
    let body = body(&run, f.as_deref(), now_ms());
    if q.part.as_deref() == Some("body") {
        return Ok(body);
    }
    let stream = format!("/v1/stream?function={}", fmt::url_encode(&run.function_id));
    let page = html! {
        div hidden data-stream=(stream) {}
        div #run-body data-live="run" data-live-run=(run.id) data-src={"/runs/" (run.id) "?part=body"} {
            (body)
        }
    };
    Ok(layout::shell(
        &format!("Run {}", run.id),
        Nav::Runs,
        Some(&t),
        page,
    ))
}

/// Everything on the page that changes while the run goes on.
fn body(run: &Run, f: Option<&Function>, now: i64) -> Markup {
    html! {
        div.run-head {
            h1 { "Run " span.mono { (run.id) } " " (layout::run_badge(run.status)) }
            div.actions {
                @if !run.status.is_terminal() {
                    button.danger hx-post={"/runs/" (run.id) "/cancel"} hx-target="#run-body" hx-confirm="Cancel this run?" { "Cancel" }
                }
                button hx-post={"/runs/" (run.id) "/rerun"} title="Runs the same event again, as a one-event replay, on the version the rollout picks now" { "Rerun" }
            }
        }
        dl.facts {
            dt { "Function" } dd { a href={"/functions/" (fmt::url_encode(&run.function_id))} { (run.function_id) } " v" (run.function_version) }
            dt { "Event" } dd { a.mono href={"/events/" (run.event_id)} { (run.event_id) } " " span.dim { (run.event.get().get("name").and_then(Value::as_str).unwrap_or("")) } }
            dt { "User" } dd { @if let Some(u) = &run.user_id { a href={"/users/" (fmt::url_encode(u))} { (u) } } @else { span.dim { "—" } } }
            dt { "Started" } dd { time datetime=(fmt::rfc3339(run.created_at)) { (fmt::time(run.created_at)) } }
            dt { "Took" } dd { (fmt::duration_ms(run.ended_at.unwrap_or(now) - run.created_at)) @if run.ended_at.is_none() { " so far" } }
            @if let Some(r) = &run.rollout_id { dt { "Rollout" } dd.mono { (r) } }
            @if let Some(r) = &run.replay_id { dt { "Replay" } dd { a.mono href={"/replays/" (r)} { (r) } } }
        }
        @if !run.waits.is_empty() {
            section.waits {
                h2 { "Waiting for" }
                ul {
                    @for w in &run.waits {
                        li {
                            "event " code { (w.event) }
                            @if !w.path.is_empty() { " with " code { (w.path) " == " (w.value) } }
                            @if let Some(x) = w.expires_at { " until " (fmt::time(x)) }
                        }
                    }
                }
            }
        }
        @match f {
            Some(f) => {
                section { h2 { "Steps" } div.dag-box { (PreEscaped(dag::svg(f, Some(run)))) } }
                section { h2 { "Timeline" } (timeline::waterfall(f, run, now)) }
            }
            None => { p.error { "Version " (run.function_version) " of this function is not loaded, so its graph cannot be drawn." } }
        }
        section.steps {
            @for (i, st) in run.steps.iter().enumerate() {
                details.step id={"step-" (st.id)} data-status=(st.status.as_str()) open[st.status == StepStatus::Failed] {
                    summary {
                        span.sid { (st.id) } " " (layout::step_badge(st.status))
                        @if st.attempts > 1 { span.dim { " " (st.attempts) " attempts" } }
                        @if let (Some(a), Some(b)) = (st.started_at, st.ended_at) { span.dim { " · " (fmt::duration_ms(b - a)) } }
                        a.permalink href={"#step-" (st.id)} title="link to this step" { "#" }
                    }
                    (step_detail(run, i))
                }
            }
        }
    }
}

fn pre_json(v: &Value) -> Markup {
    html! { pre.json { (fmt::json(v)) } }
}

fn step_detail(run: &Run, i: usize) -> Markup {
    let st = &run.steps[i];
    let started = st.attempts > 0;
    let input: Option<Value> = started
        .then(|| serde_json::from_slice(&step_input::stdin(run, i)).ok())
        .flatten();
    html! {
        div.step-body {
            @if let Some(e) = &st.error { h3 { "Error" } pre.error { (e) } }
            @if let Some(s) = &st.sandbox {
                h3 { "Sandbox" }
                table.figures {
                    tr { th { "instantiate" } td { (fmt::duration_us(s.instantiate_us)) } th { "run" } td { (fmt::duration_us(s.run_us)) } }
                    tr { th { "fuel" } td { (fmt::count(s.fuel)) } th { "peak memory" } td { (fmt::bytes(s.memory_peak)) } }
                }
            }
            h3 { "Output" }
            @match &st.output { Some(o) => { (pre_json(o.get())) } None => { p.dim { "none yet" } } }
            @if !st.sent.is_empty() {
                h3 { "Events sent" }
                ul.sent {
                    @for e in &st.sent {
                        li {
                            @match &e.id {
                                Some(id) => { a.mono href={"/events/" (id)} { (id) } " " (e.name) }
                                None => { (e.name) }
                            }
                        }
                    }
                }
            }
            h3 { "Input" }
            @match &input { Some(v) => { (pre_json(v)) } None => { p.dim { "not started yet" } } }
            @if let Some(l) = &st.log { h3 { "Log (stderr)" } pre.log { (l) } }
            @if let Some(w) = st.wake_at { p.dim { "due at " (fmt::time(w)) } }
        }
    }
}

/// `POST /runs/{id}/cancel`: cancels, then shows the run as it is now.
pub async fn cancel(State(ui): State<Ui>, t: Tenant, Path(id): Path<String>) -> Page {
    let run = ui.engine.cancel_run(&t.id, &id).await?;
    let f = ui
        .engine
        .function_version(&t.id, &run.function_id, run.function_version)
        .await
        .ok();
    Ok(body(&run, f.as_deref(), now_ms()))
}

/// `POST /runs/{id}/rerun`: the run's event again, as a one-event replay; the browser
/// goes to the replay.
pub async fn rerun(
    State(ui): State<Ui>,
    t: Tenant,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let run = ui.engine.run(&t.id, &id).await?;
    let mut ev = serde_json::Map::new();
    for k in ["name", "data", "user", "v"] {
        if let Some(v) = run.event.get().get(k) {
            ev.insert(k.into(), v.clone());
        }
    }
    let spec: ReplaySpec =
        serde_json::from_value(json!({"function": run.function_id, "events": [ev]}))
            .map_err(|e| EngineError::Internal(format!("rerun request: {e}")))?;
    let replay = ui.engine.create_replay(&t.id, spec).await?;
    let mut resp = html! { p { "Rerun started: replay " (replay.id) } }.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/replays/{}", replay.id)) {
        resp.headers_mut().insert("hx-redirect", v);
    }
    Ok(resp)
}
