//! `/replays`: replays newest first; `/replays/{id}`: one replay's progress, its runs,
//! and for a dry run the differences it found.

use axum::extract::{Path, State};
use maud::html;

use super::super::layout::{self, Nav};
use super::super::{fmt, Page, Tenant, Ui};
use crate::engine::replay::{Mode, Replay};
use crate::event::now_ms;
use crate::store::RunFilter;

fn mode(r: &Replay) -> &'static str {
    match r.mode {
        Mode::Run => "run",
        Mode::DryRun => "dry run",
    }
}

fn status(r: &Replay) -> String {
    serde_json::to_value(r.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

pub async fn page(State(ui): State<Ui>, t: Tenant) -> Page {
    let page = ui.engine.replays(&t.id, 50, None).await?;
    let body = html! {
        h1 { "Replays" }
        p.dim { "Start one with " code { "weir replay FUNCTION --from … --to …" } ", " code { "POST /v1/replays" } ", or a run's Rerun button." }
        table.replays {
            thead { tr { th { "Replay" } th { "Function" } th { "Mode" } th { "Status" } th.num { "Done" } th { "Created" } } }
            tbody {
                @for r in &page.data {
                    tr {
                        td.mono { a href={"/replays/" (r.id)} { (r.id) } }
                        td { a href={"/functions/" (fmt::url_encode(&r.function_id))} { (r.function_id) } }
                        td { (mode(r)) }
                        td { (layout::badge(&status(r))) }
                        td.num { (fmt::count(r.done)) " / " (fmt::count(r.total)) }
                        td { (fmt::time(r.created_at)) }
                    }
                }
                @if page.data.is_empty() { tr { td colspan="6" { (layout::empty("No replays yet.")) } } }
            }
        }
    };
    Ok(layout::shell("Replays", Nav::Replays, Some(&t), body))
}

pub async fn one(State(ui): State<Ui>, t: Tenant, Path(id): Path<String>) -> Page {
    let r = ui.engine.replay(&t.id, &id).await?;
    let runs = ui
        .engine
        .runs(
            &t.id,
            &RunFilter {
                replay: Some(id.clone()),
                ..RunFilter::default()
            },
            50,
            None,
        )
        .await?;
    let now = now_ms();
    let pct = (r.done * 100).checked_div(r.total).unwrap_or(100);
    let stream = format!("/v1/stream?function={}", fmt::url_encode(&r.function_id));
    let body = html! {
        div hidden data-stream=(stream) {}
        h1 { "Replay " span.mono { (r.id) } " " (layout::badge(&status(&r))) }
        dl.facts {
            dt { "Function" } dd { a href={"/functions/" (fmt::url_encode(&r.function_id))} { (r.function_id) }
                @match r.version { Some(v) => { " v" (v) } None => { span.dim { " (version as the rollout decides)" } } } }
            dt { "Mode" } dd { (mode(&r)) " · " (r.rate) " events/s · " (r.source) }
            dt { "Progress" } dd { progress max="100" value=(pct) {} " " (fmt::count(r.done)) " / " (fmt::count(r.total)) " events" }
            dt { "Runs started" } dd { (fmt::count(r.runs_started)) }
            dt { "Created" } dd { (fmt::time(r.created_at)) }
        }
        @if let Some(c) = &r.result {
            section { h2 { "Dry-run result" } pre.json { (fmt::json(&serde_json::to_value(c).unwrap_or_default())) } }
        }
        @if !r.differences.is_empty() {
            section {
                h2 { "Differences" }
                @for d in &r.differences {
                    pre.json { (fmt::json(&serde_json::to_value(d).unwrap_or_default())) }
                }
            }
        }
        @if r.mode == Mode::Run {
            section {
                h2 { "Runs" }
                table.runs {
                    thead { (layout::run_head()) }
                    tbody #replay-runs data-live="run" data-src={"/runs?part=rows&replay=" (r.id)} { (super::runs::rows(&runs.data, now)) }
                }
            }
        }
    };
    Ok(layout::shell(
        &format!("Replay {}", r.id),
        Nav::Replays,
        Some(&t),
        body,
    ))
}
