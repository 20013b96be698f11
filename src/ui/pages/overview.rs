//! `/`: what is happening now — run counts, the functions, the latest runs and events.

use std::collections::BTreeMap;

use axum::extract::State;
use maud::html;

use super::super::layout::{self, Nav};
use super::super::{fmt, Page, Tenant, Ui};
use crate::event::now_ms;
use crate::run::RunStatus;
use crate::store::RunFilter;

pub async fn page(State(ui): State<Ui>, t: Tenant) -> Page {
    let e = &ui.engine;
    let functions = e.functions(&t.id);
    let mut total: BTreeMap<RunStatus, u64> = RunStatus::ALL.iter().map(|s| (*s, 0)).collect();
    let mut per_fn = Vec::with_capacity(functions.len());
    for f in &functions {
        let c = e.run_counts(&t.id, &f.id).await?;
        for (s, n) in &c {
            *total.entry(*s).or_default() += n;
        }
        per_fn.push((f.clone(), c));
    }
    let runs = e.runs(&t.id, &RunFilter::default(), 10, None).await?;
    let events = e.events(&t.id, None, 10, None).await?;
    let now = now_ms();
    let body = html! {
        div hidden data-stream="/v1/stream" {}
        h1 { "Overview" }
        (layout::counts(&total))
        p.dim {
            (fmt::count(e.events_pending())) " events waiting to be matched · "
            (e.executing()) " steps executing now"
        }
        div.grid2 {
            section {
                h2 { "Latest runs " a.more href="/runs" { "all →" } }
                table.runs {
                    thead { (layout::run_head()) }
                    tbody #recent-runs data-live="run" data-src="/runs?part=rows&limit=10" {
                        (super::runs::rows(&runs.data, now))
                    }
                }
            }
            section {
                h2 { "Latest events " a.more href="/events" { "all →" } }
                table.events {
                    thead { (super::events::head()) }
                    tbody #recent-events data-live="event" data-src="/events?part=rows&limit=10" {
                        (super::events::rows(&events.data))
                    }
                }
            }
        }
        section {
            h2 { "Functions " a.more href="/functions" { "all →" } }
            @if per_fn.is_empty() {
                (layout::empty("No functions deployed yet: put one in ./functions (weir dev) or POST /v1/functions."))
            } @else {
                (super::functions::table(&per_fn))
            }
        }
    };
    Ok(layout::shell("Overview", Nav::Overview, Some(&t), body))
}
