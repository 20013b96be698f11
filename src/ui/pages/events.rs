//! `/events`: events newest first (live), by name, with a form that sends one (its JSON
//! checked in the browser before it goes, and again here); `/events/{id}`: one event,
//! its schema errors and the runs it started.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

use super::super::fmt::{self, set};
use super::super::layout::{self, Nav};
use super::super::{Page, PageError, Tenant, Ui};
use crate::event::now_ms;
use crate::store::{RunFilter, StoredEvent};

#[derive(Debug, Default, Deserialize)]
pub struct EventsQuery {
    name: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
    part: Option<String>,
}

/// The columns of an events table.
pub fn head() -> Markup {
    html! { tr { th { "Event" } th { "Name" } th { "User" } th { "Received" } th.num { "Runs" } } }
}

/// Rows of events.
pub fn rows(events: &[StoredEvent]) -> Markup {
    html! {
        @for se in events {
            @let e = &se.event;
            tr id={"event-" (e.id)} {
                td.mono { a href={"/events/" (e.id)} { (e.id) } }
                td { code { (e.name) } @if !e.schema_errors.is_empty() { " " span.badge.s-failed title="stored with schema errors" { "schema" } } }
                td { @if let Some(u) = e.user_id() { a href={"/users/" (fmt::url_encode(&u))} { (u) } } @else { span.dim { "—" } } }
                td { time datetime=(fmt::rfc3339(e.ts)) { (fmt::time(e.ts)) } }
                td.num { @if se.ingested { (se.run_ids.len()) } @else { span.dim { "…" } } }
            }
        }
        @if events.is_empty() { tr { td colspan="5" { (layout::empty("No events yet.")) } } }
    }
}

pub async fn page(
    State(ui): State<Ui>,
    t: Tenant,
    Query(q): Query<EventsQuery>,
) -> Result<Response, PageError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let name = set(&q.name);
    let page = ui.engine.events(&t.id, name, limit, set(&q.cursor)).await?;
    if q.part.as_deref() == Some("rows") {
        return Ok(rows(&page.data).into_response());
    }
    let functions = ui.engine.functions(&t.id);
    let example_name = functions
        .iter()
        .flat_map(|f| f.triggers.iter().map(|t| t.event.clone()))
        .next()
        .unwrap_or_else(|| "app/hello".into());
    let example = format!(
        "{{\n  \"name\": \"{example_name}\",\n  \"data\": {{}},\n  \"user\": {{\"id\": \"user-1\"}}\n}}"
    );
    let base = fmt::query(&[("name", name)]);
    let live = set(&q.cursor).is_none();
    let src = fmt::and_query(
        &format!("/events{base}"),
        &format!("part=rows&limit={limit}"),
    );
    let body = html! {
        @if live { div hidden data-stream="/v1/stream" {} }
        h1 { "Events" }
        div.grid2 {
            section {
                form.filters method="get" action="/events" {
                    label { "Name " input name="name" value=[name] placeholder="e.g. user/signed.up" list="event-names"; }
                    datalist #event-names {
                        @for f in &functions { @for tr in &f.triggers { option value=(tr.event) {} } }
                    }
                    button type="submit" { "Filter" }
                    @if name.is_some() { a href="/events" { "clear" } }
                }
                table.events {
                    thead { (head()) }
                    @if live {
                        tbody #events-rows data-live="event" data-src=(src) { (rows(&page.data)) }
                    } @else {
                        tbody #events-rows { (rows(&page.data)) }
                    }
                }
                (layout::pager(&format!("/events{base}"), page.next_cursor.as_deref()))
            }
            section.send {
                h2 { "Send an event" }
                form #send-form hx-post="/events/send" hx-target="#send-result" data-json-check="event" {
                    textarea name="event" rows="9" spellcheck="false" aria-label="event JSON" { (example) }
                    p.dim { "One event, or an array of them, as " code { "POST /e" } " takes." }
                    button type="submit" { "Send" }
                    div #send-result role="status" {}
                }
            }
        }
    };
    Ok(layout::shell("Events", Nav::Events, Some(&t), body).into_response())
}

#[derive(Debug, Deserialize)]
pub struct SendForm {
    event: String,
}

/// `POST /events/send`: what `POST /e` does, from the form; answers with the ids or the
/// error, to show under the form.
pub async fn send(State(ui): State<Ui>, t: Tenant, Form(form): Form<SendForm>) -> Markup {
    let events = match crate::event::parse_batch(
        form.event.as_bytes(),
        crate::event::MAX_EVENTS_PER_REQUEST,
    ) {
        Ok(e) => e,
        Err(e) => {
            return html! { p.error { "Not sent: " (e.to_string()) " " code { "(invalid_event)" } } }
        }
    };
    match ui.engine.send(&t.id, events).await {
        Ok(ids) => html! {
            p.ok { "Sent: "
                @for (i, id) in ids.iter().enumerate() {
                    @if i > 0 { ", " }
                    a.mono href={"/events/" (id)} { (id) }
                }
            }
            @if let Some(first) = ids.first() {
                h3 { "Its runs" }
                table.runs {
                    thead { (layout::run_head()) }
                    tbody #sent-runs data-live="run" data-src={"/runs?part=rows&event=" (first)} {
                        tr { td colspan="7" { span.dim { "matching its triggers…" } } }
                    }
                }
            }
        },
        Err(e) => {
            html! { p.error { "Not sent: " (e.to_string()) " " code { "(" (e.code()) ")" } } }
        }
    }
}

pub async fn one(State(ui): State<Ui>, t: Tenant, Path(id): Path<String>) -> Page {
    let se = ui.engine.event(&t.id, &id).await?;
    let runs = ui
        .engine
        .runs(
            &t.id,
            &RunFilter {
                event: Some(id.clone()),
                ..RunFilter::default()
            },
            100,
            None,
        )
        .await?;
    let e = &se.event;
    let now = now_ms();
    let body = html! {
        div hidden data-stream="/v1/stream" {}
        h1 { "Event " span.mono { (e.id) } }
        dl.facts {
            dt { "Name" } dd { code { (e.name) } }
            dt { "Received" } dd { (fmt::time(e.ts)) }
            dt { "User" } dd { @if let Some(u) = e.user_id() { a href={"/users/" (fmt::url_encode(&u))} { (u) } } @else { span.dim { "—" } } }
            @if let Some(k) = &e.idempotency_key { dt { "Idempotency key" } dd.mono { (k) } }
            @if let Some(v) = &e.v { dt { "Schema version" } dd { (v) } }
            @if let Some(d) = &se.duplicate_of { dt { "Duplicate of" } dd { a.mono href={"/events/" (d)} { (d) } } }
        }
        @if !e.schema_errors.is_empty() {
            section { h2 { "Schema errors" } ul.error { @for s in &e.schema_errors { li { (s) } } } }
        }
        section { h2 { "Payload" } pre.json { (fmt::json(&e.to_value())) } }
        section {
            h2 { "Runs it started" }
            table.runs {
                thead { (layout::run_head()) }
                tbody #event-runs data-live="run" data-src={"/runs?part=rows&event=" (e.id)} { (super::runs::rows(&runs.data, now)) }
            }
        }
    };
    Ok(layout::shell(
        &format!("Event {}", e.id),
        Nav::Events,
        Some(&t),
        body,
    ))
}
