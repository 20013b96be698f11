//! `/runs`: runs newest first, filtered by what the URL says (function, status, user,
//! event, replay, started before), a page at a time; the first page stays live.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::super::fmt::{self, set};
use super::super::layout::{self, Nav};
use super::super::{PageError, Tenant, Ui};
use crate::engine::EngineError;
use crate::event::now_ms;
use crate::run::{Run, RunStatus};
use crate::store::RunFilter;

/// The query string of `/runs`.
#[derive(Debug, Default, Deserialize)]
pub struct RunsQuery {
    function: Option<String>,
    status: Option<String>,
    user: Option<String>,
    event: Option<String>,
    replay: Option<String>,
    /// Only runs started before this time (RFC 3339, or a browser's `2026-12-01T16:00`).
    before: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
    /// `rows`: only the table's rows (what the live refresh asks for).
    part: Option<String>,
}

/// A time from the filter form (UTC): RFC 3339, or `YYYY-MM-DDTHH:MM[:SS]`.
fn parse_before(s: &str) -> Result<i64, EngineError> {
    crate::event::parse_time(s)
        .or_else(|_| crate::event::parse_time(&format!("{s}:00Z")))
        .or_else(|_| crate::event::parse_time(&format!("{s}Z")))
        .map_err(|_| {
            EngineError::InvalidQuery(format!(
                "before `{s}` is not a time like 2026-12-01T16:00 (UTC) or RFC 3339"
            ))
        })
}

/// Rows of runs.
pub fn rows(runs: &[Run], now: i64) -> Markup {
    html! {
        @for r in runs { (layout::run_row(r, now)) }
        @if runs.is_empty() { tr { td colspan="7" { (layout::empty("No runs match.")) } } }
    }
}

pub async fn page(
    State(ui): State<Ui>,
    t: Tenant,
    axum::extract::Query(q): axum::extract::Query<RunsQuery>,
) -> Result<Response, PageError> {
    let status = match set(&q.status) {
        None => None,
        Some(s) => Some(RunStatus::parse(s).ok_or_else(|| {
            EngineError::InvalidQuery(format!(
                "status `{s}` is not one of running, waiting, sleeping, completed, failed, cancelled"
            ))
        })?),
    };
    let filter = RunFilter {
        function: set(&q.function).map(Into::into),
        status,
        user: set(&q.user).map(Into::into),
        event: set(&q.event).map(Into::into),
        replay: set(&q.replay).map(Into::into),
    };
    // Run ids are ULIDs, ordered by time: "before T" is the cursor of time T.
    let cursor = match (set(&q.cursor), set(&q.before)) {
        (Some(c), _) => Some(c.to_string()),
        (None, Some(b)) => {
            Some(ulid::Ulid::from_parts(parse_before(b)?.max(0) as u64, 0).to_string())
        }
        (None, None) => None,
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let page = ui
        .engine
        .runs(&t.id, &filter, limit, cursor.as_deref())
        .await?;
    let now = now_ms();
    if q.part.as_deref() == Some("rows") {
        return Ok(rows(&page.data, now).into_response());
    }
    let base = fmt::query(&[
        ("function", set(&q.function)),
        ("status", set(&q.status)),
        ("user", set(&q.user)),
        ("event", set(&q.event)),
        ("replay", set(&q.replay)),
        ("before", set(&q.before)),
    ]);
    let live = cursor.is_none();
    let rows_src = fmt::and_query(&format!("/runs{base}"), &format!("part=rows&limit={limit}"));
    let stream = format!(
        "/v1/stream{}",
        fmt::query(&[("function", set(&q.function)), ("user", set(&q.user))])
    );
    let functions = ui.engine.functions(&t.id);
    let body = html! {
        @if live { div hidden data-stream=(stream) {} }
        h1 { "Runs" }
        form.filters method="get" action="/runs" {
            label { "Function "
                select name="function" {
                    option value="" { "any" }
                    @for f in &functions {
                        option value=(f.id) selected[set(&q.function) == Some(f.id.as_str())] { (f.id) }
                    }
                }
            }
            label { "Status "
                select name="status" {
                    option value="" { "any" }
                    @for s in RunStatus::ALL {
                        option value=(s.as_str()) selected[status == Some(s)] { (s.as_str()) }
                    }
                }
            }
            label { "User " input name="user" value=[set(&q.user)] placeholder="user id" size="14"; }
            label { "Event " input name="event" value=[set(&q.event)] placeholder="event id" size="14"; }
            @if let Some(r) = set(&q.replay) { input type="hidden" name="replay" value=(r); }
            label { "Started before " input type="datetime-local" name="before" value=[set(&q.before)] step="1"; " UTC" }
            button type="submit" { "Filter" }
            @if !base.is_empty() { a href="/runs" { "clear" } }
        }
        table.runs {
            thead { (layout::run_head()) }
            @if live {
                tbody #runs-rows data-live="run" data-src=(rows_src) { (rows(&page.data, now)) }
            } @else {
                tbody #runs-rows { (rows(&page.data, now)) }
            }
        }
        (layout::pager(&format!("/runs{base}"), page.next_cursor.as_deref()))
    };
    Ok(layout::shell("Runs", Nav::Runs, Some(&t), body).into_response())
}
