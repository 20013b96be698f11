//! A function's steps drawn as an SVG graph, laid out here on the server: one column per
//! depth (the longest path from the trigger), edges as curves labelled with their sleep,
//! wait or condition, and each step coloured by its status in a run.

use std::fmt::Write;

use crate::function::Function;
use crate::run::Run;

const W: i64 = 150;
const H: i64 = 40;
const GAP_X: i64 = 70;
const GAP_Y: i64 = 22;
const PAD: i64 = 10;

/// Escapes text for SVG/XML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let t: String = s.chars().take(n.saturating_sub(1)).collect();
        format!("{t}…")
    }
}

/// Column of each step (the trigger is column 0, so steps start at 1).
fn columns(f: &Function) -> Vec<usize> {
    let mut col = vec![1usize; f.steps.len()];
    // Steps are in topological order: parents are settled before their children.
    for (i, s) in f.steps.iter().enumerate() {
        col[i] = s
            .incoming
            .iter()
            .map(|e| e.parent.map_or(1, |p| col[p] + 1))
            .max()
            .unwrap_or(1);
    }
    col
}

/// The graph of `f`, with each step's status taken from `run` when given.
pub fn svg(f: &Function, run: Option<&Run>) -> String {
    let col = columns(f);
    let ncols = col.iter().copied().max().unwrap_or(0) + 1;
    let mut rows = vec![0usize; ncols];
    let mut pos = Vec::with_capacity(f.steps.len());
    for &c in &col {
        pos.push((c, rows[c]));
        rows[c] += 1;
    }
    let tallest = rows.iter().copied().max().unwrap_or(1).max(1) as i64;
    let height = PAD * 2 + tallest * H + (tallest - 1) * GAP_Y;
    let width = PAD * 2 + ncols as i64 * W + (ncols as i64 - 1) * GAP_X;
    // Each column is centred vertically.
    let xy = |c: usize, r: usize| -> (i64, i64) {
        let n = if c == 0 { 1 } else { rows[c] as i64 };
        let top = (height - (n * H + (n - 1) * GAP_Y)) / 2;
        (PAD + c as i64 * (W + GAP_X), top + r as i64 * (H + GAP_Y))
    };
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="dag" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="steps of {}">"#,
        esc(&f.id)
    );
    out.push_str(r#"<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" class="arrowhead"/></marker></defs>"#);
    // Edges first, so nodes are drawn over them.
    for (i, s) in f.steps.iter().enumerate() {
        let (cx, cy) = xy(pos[i].0, pos[i].1);
        for (k, e) in s.incoming.iter().enumerate() {
            let (px, py) = match e.parent {
                Some(p) => xy(pos[p].0, pos[p].1),
                None => xy(0, 0),
            };
            let (x1, y1, x2, y2) = (px + W, py + H / 2, cx, cy + H / 2);
            let mid = (x1 + x2) / 2;
            let taken = run
                .and_then(|r| r.steps.get(i))
                .and_then(|st| st.edges.get(k).copied().flatten());
            let class = match taken {
                Some(true) => "edge taken",
                Some(false) => "edge not-taken",
                None => "edge",
            };
            let _ = write!(
                out,
                r#"<path class="{class}" d="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}" marker-end="url(#arrow)"/>"#
            );
            let mut label = Vec::new();
            if let Some(w) = e.wait {
                label.push(format!("sleep {}", humantime(w)));
            }
            if let Some(a) = &e.wait_for {
                label.push(format!("wait {}", a.event));
            }
            if e.cond.is_some() {
                label.push("if …".to_string());
            }
            if !label.is_empty() {
                let title = e
                    .cond
                    .as_ref()
                    .map(|c| format!("<title>{}</title>", esc(c.source())))
                    .unwrap_or_default();
                let _ = write!(
                    out,
                    r#"<text class="edge-label" x="{mid}" y="{}" text-anchor="middle">{title}{}</text>"#,
                    (y1 + y2) / 2 - 5,
                    esc(&shorten(&label.join(" · "), 26))
                );
            }
        }
    }
    let (tx, ty) = xy(0, 0);
    let trigger = f
        .triggers
        .iter()
        .map(|t| t.event.as_str())
        .chain(f.crons.iter().map(|_| "cron"))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = write!(
        out,
        r#"<g class="node trigger"><rect x="{tx}" y="{ty}" width="{W}" height="{H}" rx="20"/><text x="{}" y="{}" text-anchor="middle"><title>{}</title>{}</text></g>"#,
        tx + W / 2,
        ty + H / 2 + 4,
        esc(&trigger),
        esc(&shorten(&trigger, 20))
    );
    for (i, s) in f.steps.iter().enumerate() {
        let (x, y) = xy(pos[i].0, pos[i].1);
        let status = run
            .and_then(|r| r.steps.get(i))
            .map(|st| st.status.as_str())
            .unwrap_or("none");
        let id = esc(&s.id);
        let _ = write!(
            out,
            r##"<a href="#step-{id}" class="node-link"><g class="node st-{status}" data-step="{id}" data-status="{status}"><rect x="{x}" y="{y}" width="{W}" height="{H}" rx="6"/><text x="{}" y="{}" text-anchor="middle"><title>{id}: {status}</title>{}</text></g></a>"##,
            x + W / 2,
            y + H / 2 + 4,
            esc(&shorten(&s.id, 19))
        );
    }
    out.push_str("</svg>");
    out
}

/// `10m`, `2h`, `90s` — how a function file writes a duration.
fn humantime(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        _ if s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
        _ if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        _ if s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_shortened() {
        assert_eq!(esc("<a&\"b\">"), "&lt;a&amp;&quot;b&quot;&gt;");
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abc", 4), "abc");
        assert_eq!(humantime(std::time::Duration::from_secs(600)), "10m");
        assert_eq!(humantime(std::time::Duration::from_secs(7200)), "2h");
        assert_eq!(humantime(std::time::Duration::from_millis(250)), "250ms");
    }
}
