//! `weir rollout FUNCTION 3=90 4=10`, `--promote 4`, `--rollback`, `--status`: a
//! function's rollout on a running server.

use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::client::Remote;

#[derive(clap::Args)]
pub struct Args {
    /// The function id.
    function: String,
    /// Versions and weights, `VERSION=WEIGHT` (summing to 100; the first is the baseline).
    weights: Vec<String>,
    /// CEL over the trigger event giving the sticky key (default: the user id, else
    /// the event id).
    #[arg(long)]
    sticky: Option<String>,
    /// Roll back automatically once another version has this many finished runs and
    /// fails more than the baseline by `--max-failure-rate-increase`.
    #[arg(long, requires = "max_failure_rate_increase")]
    min_runs: Option<u64>,
    /// The failure-rate increase over the baseline tolerated (0.05 = 5 points).
    #[arg(long, requires = "min_runs")]
    max_failure_rate_increase: Option<f64>,
    /// Send every new run to this version.
    #[arg(long, conflicts_with_all = ["weights", "rollback", "status"])]
    promote: Option<u64>,
    /// Set the previous rollout again.
    #[arg(long, conflicts_with_all = ["weights", "status"])]
    rollback: bool,
    /// Show the rollout and its figures (the default without weights).
    #[arg(long, conflicts_with = "weights")]
    status: bool,
    #[command(flatten)]
    remote: Remote,
}

pub fn main(a: Args) -> Result<ExitCode> {
    let base = format!("/v1/functions/{}", a.function);
    let post = |path: &str, body: &Value| {
        a.remote.send(
            "POST",
            &format!("{base}/{path}"),
            "application/json",
            body.to_string().as_bytes(),
            None,
        )
    };
    let shown = if let Some(v) = a.promote {
        post("promote", &json!({"version": v}))?
    } else if a.rollback {
        post("rollback", &json!({}))?
    } else if a.weights.is_empty() {
        a.remote.get(&format!("{base}/rollout"))?
    } else {
        let mut versions = Vec::new();
        for w in &a.weights {
            let (v, p) = w
                .split_once('=')
                .with_context(|| format!("`{w}` is not VERSION=WEIGHT (e.g. 4=10)"))?;
            let version: u64 = v
                .trim()
                .parse()
                .with_context(|| format!("`{v}` in `{w}` is not a version number"))?;
            let weight: u32 = p
                .trim()
                .parse()
                .with_context(|| format!("`{p}` in `{w}` is not a weight (0-100)"))?;
            versions.push(json!({"version": version, "weight": weight}));
        }
        let mut body = json!({"versions": versions});
        if let Some(s) = &a.sticky {
            body["sticky"] = json!(s);
        }
        if let (Some(m), Some(x)) = (a.min_runs, a.max_failure_rate_increase) {
            body["analysis"] = json!({"min_runs": m, "max_failure_rate_increase": x});
        }
        a.remote.send(
            "PUT",
            &format!("{base}/rollout"),
            "application/json",
            body.to_string().as_bytes(),
            None,
        )?
    };
    print!("{}", render(&a.function, &shown));
    Ok(ExitCode::SUCCESS)
}

/// The rollout as a few lines for people.
fn render(function: &str, r: &Value) -> String {
    let mut out = String::new();
    let status = r["status"].as_str().unwrap_or("?");
    out.push_str(&format!(
        "{function}: rollout {} {status}{}\n",
        r["id"].as_str().unwrap_or("?"),
        r["reason"]
            .as_str()
            .map(|why| format!(" ({why})"))
            .unwrap_or_default()
    ));
    out.push_str(
        "  version  weight     runs  completed  failed  cancelled  failure    p50    p95\n",
    );
    for v in r["versions"].as_array().into_iter().flatten() {
        let ms = |k: &str| {
            v[k].as_u64()
                .map(|x| format!("{x}ms"))
                .unwrap_or("-".into())
        };
        out.push_str(&format!(
            "  {:>7}  {:>5}%  {:>7}  {:>9}  {:>6}  {:>9}  {:>7}  {:>5}  {:>5}\n",
            v["version"].to_string(),
            v["weight"].to_string(),
            v["runs"].to_string(),
            v["completed"].to_string(),
            v["failed"].to_string(),
            v["cancelled"].to_string(),
            v["failure_rate"]
                .as_f64()
                .map(|f| format!("{:.1}%", f * 100.0))
                .unwrap_or("-".into()),
            ms("p50_ms"),
            ms("p95_ms"),
        ));
    }
    if status != "active" {
        let routing: Vec<String> = r["routing"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|w| format!("v{} {}%", w["version"], w["weight"]))
            .collect();
        out.push_str(&format!("  new runs go to: {}\n", routing.join(", ")));
    }
    if let Some(s) = r["sticky"].as_str() {
        out.push_str(&format!("  sticky: {s}\n"));
    }
    if let Some(p) = r["replaced"].get("id").and_then(Value::as_str) {
        out.push_str(&format!(
            "  replaced rollout {p} ({})\n",
            r["replaced"]["status"].as_str().unwrap_or("?")
        ));
    }
    out
}
