//! `/functions`: every function with its run counts; `/functions/{id}`: its graph,
//! definition, versions, rollout with per-version figures, and latest runs.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use maud::{html, Markup, PreEscaped};
use serde_json::Value;

use super::super::layout::{self, Nav};
use super::super::{dag, fmt, Page, Tenant, Ui};
use crate::engine::EngineError;
use crate::event::now_ms;
use crate::function::Function;
use crate::run::RunStatus;
use crate::store::RunFilter;

fn triggers(f: &Function) -> Markup {
    html! {
        @for t in &f.triggers { code { (t.event) } " " }
        @for c in &f.crons { code { "cron " (c.source) } " " }
    }
}

/// Functions with their run counts, as a table.
pub fn table(fns: &[(Arc<Function>, BTreeMap<RunStatus, u64>)]) -> Markup {
    html! {
        table.functions {
            thead { tr { th { "Function" } th { "Version" } th { "Triggers" } th.num { "Steps" } th { "Runs" } } }
            tbody {
                @for (f, c) in fns {
                    tr {
                        td { a href={"/functions/" (fmt::url_encode(&f.id))} { (f.id) } }
                        td { "v" (f.version) }
                        td { (triggers(f)) }
                        td.num { (f.steps.len()) }
                        td.counts-inline {
                            @for (s, n) in c.iter().filter(|(_, n)| **n > 0) {
                                a href={"/runs?function=" (fmt::url_encode(&f.id)) "&status=" (s.as_str())} { (layout::run_badge(*s)) " " (fmt::count(*n)) } " "
                            }
                        }
                    }
                }
            }
        }
    }
}

pub async fn page(State(ui): State<Ui>, t: Tenant) -> Page {
    let mut fns = Vec::new();
    for f in ui.engine.functions(&t.id) {
        let c = ui.engine.run_counts(&t.id, &f.id).await?;
        fns.push((f, c));
    }
    let body = html! {
        h1 { "Functions" }
        @if fns.is_empty() {
            (layout::empty("No functions deployed yet: put one in ./functions (weir dev) or POST /v1/functions."))
        } @else { (table(&fns)) }
    };
    Ok(layout::shell("Functions", Nav::Functions, Some(&t), body))
}

fn rollout(v: &Value) -> Markup {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let n = |x: &Value, k: &str| x.get(k).map(|v| v.to_string()).unwrap_or_default();
    html! {
        p { "Rollout " span.mono { (s("id")) } " " (layout::badge(&s("status")))
            @if let Some(st) = v.get("sticky").and_then(Value::as_str) { " · sticky by " code { (st) } } }
        @if let Some(r) = v.get("reason").and_then(Value::as_str) { p.error { (r) } }
        table.figures-wide {
            thead { tr { th { "Version" } th.num { "Weight" } th.num { "Runs" } th.num { "Running" } th.num { "Completed" } th.num { "Failed" } th.num { "Cancelled" } th.num { "Failure rate" } th.num { "p50" } th.num { "p95" } } }
            tbody {
                @for x in v.get("versions").and_then(Value::as_array).into_iter().flatten() {
                    tr {
                        td { "v" (n(x, "version")) }
                        td.num { (n(x, "weight")) " %" }
                        td.num { (n(x, "runs")) }
                        td.num { (n(x, "running")) }
                        td.num { (n(x, "completed")) }
                        td.num { (n(x, "failed")) }
                        td.num { (n(x, "cancelled")) }
                        td.num { @match x.get("failure_rate").and_then(Value::as_f64) { Some(r) => { (format!("{:.1} %", r * 100.0)) } None => { "—" } } }
                        td.num { @match x.get("p50_ms").and_then(Value::as_i64) { Some(ms) => { (fmt::duration_ms(ms)) } None => { "—" } } }
                        td.num { @match x.get("p95_ms").and_then(Value::as_i64) { Some(ms) => { (fmt::duration_ms(ms)) } None => { "—" } } }
                    }
                }
            }
        }
    }
}

pub async fn one(State(ui): State<Ui>, t: Tenant, Path(id): Path<String>) -> Page {
    let e = &ui.engine;
    let versions = e.versions(&t.id, &id).await?;
    let counts = e.run_counts(&t.id, &id).await?;
    let rollout_v = match e.rollout(&t.id, &id).await {
        Ok(v) => Some(v),
        Err(EngineError::NoRollout { .. }) => None,
        Err(err) => return Err(err.into()),
    };
    let latest = match versions
        .first()
        .and_then(|v| v.get("version"))
        .and_then(Value::as_u64)
    {
        Some(v) => e.function_version(&t.id, &id, v).await.ok(),
        None => None,
    };
    let runs = e
        .runs(
            &t.id,
            &RunFilter {
                function: Some(id.clone()),
                ..RunFilter::default()
            },
            20,
            None,
        )
        .await?;
    let now = now_ms();
    let stream = format!("/v1/stream?function={}", fmt::url_encode(&id));
    let body = html! {
        div hidden data-stream=(stream) {}
        h1 { "Function " (id) }
        @if let Some(f) = &latest {
            p { "Triggered by " (triggers(f)) " · " (f.steps.len()) " steps · latest v" (f.version) }
            div.dag-box { (PreEscaped(dag::svg(f, None))) }
        }
        (layout::counts(&counts))
        section {
            h2 { "Rollout" }
            @match &rollout_v {
                Some(v) => { (rollout(v)) }
                None => { p.dim { "No rollout: every run takes the latest version. Set one with " code { "weir rollout " (id) " 1=90 2=10" } "." } }
            }
        }
        section {
            h2 { "Latest runs " a.more href={"/runs?function=" (fmt::url_encode(&id))} { "all →" } }
            table.runs {
                thead { (layout::run_head()) }
                tbody #function-runs data-live="run" data-src={"/runs?part=rows&limit=20&function=" (fmt::url_encode(&id))} { (super::runs::rows(&runs.data, now)) }
            }
        }
        section {
            h2 { "Versions" }
            @for v in &versions {
                details.version open[v.get("version") == versions.first().and_then(|f| f.get("version"))] {
                    summary {
                        "v" (v.get("version").map(|x| x.to_string()).unwrap_or_default())
                        @if let Some(at) = v.get("created_at").and_then(Value::as_i64) { span.dim { " deployed " (fmt::time(at)) } }
                    }
                    pre.json { (fmt::json(v.get("def").unwrap_or(&Value::Null))) }
                }
            }
        }
    };
    Ok(layout::shell(
        &format!("Function {id}"),
        Nav::Functions,
        Some(&t),
        body,
    ))
}
