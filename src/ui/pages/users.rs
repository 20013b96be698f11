//! `/users`: users by last activity; `/users/{id}`: who they are, what they are waiting
//! on now, their failed runs, and their events and runs interleaved (live).

use axum::extract::{Path, Query, State};
use maud::html;
use serde::Deserialize;
use serde_json::Value;

use super::super::layout::{self, Nav};
use super::super::{fmt, Page, Tenant, Ui};
use crate::event::now_ms;
use crate::store::TimelineItem;

#[derive(Debug, Default, Deserialize)]
pub struct UsersQuery {
    prefix: Option<String>,
    cursor: Option<String>,
}

pub async fn page(State(ui): State<Ui>, t: Tenant, Query(q): Query<UsersQuery>) -> Page {
    let prefix = q.prefix.as_deref().filter(|p| !p.is_empty());
    let page = ui
        .engine
        .users(
            &t.id,
            prefix,
            50,
            q.cursor.as_deref().filter(|c| !c.is_empty()),
        )
        .await?;
    let body = html! {
        h1 { "Users" }
        form.filters method="get" action="/users" {
            label { "Id starts with " input name="prefix" value=[prefix] size="16"; }
            button type="submit" { "Filter" }
        }
        table.users {
            thead { tr { th { "User" } th { "Last seen" } th.num { "Events" } th { "Runs" } } }
            tbody {
                @for u in &page.data {
                    tr {
                        td { a href={"/users/" (fmt::url_encode(&u.id))} { (u.id) } }
                        td { (fmt::time(u.last_seen)) }
                        td.num { (fmt::count(u.events)) }
                        td.counts-inline {
                            @for (s, n) in u.runs.iter().filter(|(_, n)| **n > 0) {
                                (layout::run_badge(*s)) " " (fmt::count(*n)) " "
                            }
                        }
                    }
                }
                @if page.data.is_empty() { tr { td colspan="4" { (layout::empty("No users yet: events with a user.id make one.")) } } }
            }
        }
        (layout::pager(&format!("/users{}", fmt::query(&[("prefix", prefix)])), page.next_cursor.as_deref()))
    };
    Ok(layout::shell("Users", Nav::Users, Some(&t), body))
}

#[derive(Debug, Default, Deserialize)]
pub struct UserQuery {
    /// `timeline`: only the timeline's items (what the live refresh asks for).
    part: Option<String>,
}

pub async fn one(
    State(ui): State<Ui>,
    t: Tenant,
    Path(id): Path<String>,
    Query(q): Query<UserQuery>,
) -> Page {
    let timeline = ui.engine.user_timeline(&t.id, &id, 50, None).await?;
    let now = now_ms();
    if q.part.as_deref() == Some("timeline") {
        return Ok(items(&timeline.data, now));
    }
    let view = ui.engine.user(&t.id, &id).await?;
    let s = &view.summary;
    let stream = format!("/v1/stream?user={}", fmt::url_encode(&id));
    let body = html! {
        div hidden data-stream=(stream) {}
        h1 { "User " (s.id) }
        dl.facts {
            dt { "Last seen" } dd { (fmt::time(s.last_seen)) }
            dt { "Events" } dd { (fmt::count(s.events)) }
            @if let Some(at) = s.erased_at { dt { "Erased" } dd { (fmt::time(at)) } }
            @if let Some(u) = &s.user {
                @for (k, v) in u.iter().filter(|(k, _)| k.as_str() != "id") {
                    dt { (k) } dd { @match v { Value::String(x) => { (x) } other => { code { (other.to_string()) } } } }
                }
            }
        }
        (layout::counts(&s.runs))
        section {
            h2 { "Waiting on now" }
            @if view.waiting.is_empty() { (layout::empty("Nothing: no run of this user is sleeping or waiting.")) } @else {
                table.runs { thead { (layout::run_head()) } tbody { @for r in &view.waiting { (layout::run_row(r, now)) } } }
            }
        }
        @if !view.failed.is_empty() {
            section {
                h2 { "Failed runs" }
                table.runs { thead { (layout::run_head()) } tbody { @for r in &view.failed { (layout::run_row(r, now)) } } }
            }
        }
        section {
            h2 { "Timeline" }
            ol.timeline #user-timeline data-live="run event" data-src={"/users/" (fmt::url_encode(&id)) "?part=timeline"} {
                (items(&timeline.data, now))
            }
        }
    };
    Ok(layout::shell(
        &format!("User {}", s.id),
        Nav::Users,
        Some(&t),
        body,
    ))
}

fn items(data: &[TimelineItem], now: i64) -> maud::Markup {
    html! {
        @for item in data {
            @match item {
                TimelineItem::Event(se) => {
                    li.t-event { span.when { (fmt::time(se.event.ts)) } " event " a href={"/events/" (se.event.id)} { code { (se.event.name) } } }
                }
                TimelineItem::Run(r) => {
                    li.t-run { span.when { (fmt::time(r.created_at)) } " run " a.mono href={"/runs/" (r.id)} { (r.id) } " of " (r.function_id) " " (layout::run_badge(r.status))
                        " " span.dim { (fmt::duration_ms(r.ended_at.unwrap_or(now) - r.created_at)) } }
                }
            }
        }
        @if data.is_empty() { li { (layout::empty("Nothing yet.")) } }
    }
}
