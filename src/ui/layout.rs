//! The frame every page shares (head, navigation, who is logged in) and the small
//! pieces pages repeat: status badges, run rows, counts, pagers.

use std::collections::BTreeMap;

use maud::{html, Markup, DOCTYPE};

use super::{fmt, Tenant};
use crate::run::{Run, RunStatus, StepStatus};

/// Which section a page belongs to (its navigation entry is marked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Runs,
    Events,
    Functions,
    Users,
    Replays,
    None,
}

const SECTIONS: &[(Nav, &str, &str)] = &[
    (Nav::Overview, "/", "Overview"),
    (Nav::Runs, "/runs", "Runs"),
    (Nav::Events, "/events", "Events"),
    (Nav::Functions, "/functions", "Functions"),
    (Nav::Users, "/users", "Users"),
    (Nav::Replays, "/replays", "Replays"),
];

/// A whole page around `body`.
pub fn shell(title: &str, nav: Nav, tenant: Option<&Tenant>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · weir" }
                link rel="icon" href="/ui/icon.svg" type="image/svg+xml";
                link rel="stylesheet" href="/ui/weir.css";
                script src="/ui/htmx.min.js" defer {}
                script src="/ui/weir.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/" { img src="/ui/icon.svg" alt="" width="20" height="20"; "weir" }
                    nav {
                        @for (n, href, label) in SECTIONS {
                            a href=(href) aria-current=[(*n == nav).then_some("page")] { (label) }
                        }
                    }
                    @if let Some(t) = tenant {
                        span.who {
                            span.live title="live updates" {}
                            "tenant " b { (t.id) }
                            @if t.session {
                                button.link type="button" data-logout { "log out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A run's (or step's) status as a coloured badge.
pub fn badge(status: &str) -> Markup {
    html! { span class={"badge s-" (status)} { (status) } }
}

/// A run status badge.
pub fn run_badge(s: RunStatus) -> Markup {
    badge(s.as_str())
}

/// A step status badge.
pub fn step_badge(s: StepStatus) -> Markup {
    badge(s.as_str())
}

/// The columns of a runs table.
pub fn run_head() -> Markup {
    html! {
        tr { th { "Run" } th { "Function" } th { "Status" } th { "User" } th { "Started" } th.num { "Took" } th.num { "Steps" } }
    }
}

/// One run as a table row.
pub fn run_row(r: &Run, now: i64) -> Markup {
    let done = r
        .steps
        .iter()
        .filter(|s| matches!(s.status, StepStatus::Completed | StepStatus::Skipped))
        .count();
    html! {
        tr id={"run-" (r.id)} {
            td.mono { a href={"/runs/" (r.id)} { (r.id) } }
            td { a href={"/functions/" (fmt::url_encode(&r.function_id))} { (r.function_id) } " " span.dim { "v" (r.function_version) } }
            td { (run_badge(r.status)) }
            td { @if let Some(u) = &r.user_id { a href={"/users/" (fmt::url_encode(u))} { (u) } } @else { span.dim { "—" } } }
            td { time datetime=(fmt::rfc3339(r.created_at)) { (fmt::time(r.created_at)) } }
            td.num { (fmt::duration_ms(r.ended_at.unwrap_or(now) - r.created_at)) }
            td.num { (done) "/" (r.steps.len()) }
        }
    }
}

/// Run counts by status as a row of figures.
pub fn counts(c: &BTreeMap<RunStatus, u64>) -> Markup {
    html! {
        div.counts {
            @for (s, n) in c {
                a.count href={"/runs?status=" (s.as_str())} { span.n { (fmt::count(*n)) } " " (run_badge(*s)) }
            }
        }
    }
}

/// A "next page" link, when there is one.
pub fn pager(base: &str, next: Option<&str>) -> Markup {
    html! {
        @if let Some(c) = next {
            p.pager {
                a href=(fmt::and_query(base, &format!("cursor={}", fmt::url_encode(c)))) { "Older →" }
            }
        }
    }
}

/// An empty-state line.
pub fn empty(what: &str) -> Markup {
    html! { p.empty { (what) } }
}
