//! A replay's request and its durable record: what to select, how to run it, and how far
//! it has got.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::rollout::{parse, SpecError};
use crate::run::RunStatus;

/// Most events one replay selects.
pub const MAX_EVENTS: usize = 100_000;
/// Most events per second a replay may go at.
pub const MAX_RATE: u32 = 10_000;
/// Events per second when the request names no rate.
pub const DEFAULT_RATE: u32 = 100;
/// Most differences a dry run keeps.
pub const MAX_DIFFERENCES: usize = 100;

fn bad(field: impl Into<String>, reason: impl Into<String>) -> SpecError {
    crate::engine::rollout::spec_error(field, reason)
}

/// How a replay goes through its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Each event starts a new run, marked with the replay.
    #[default]
    Run,
    /// Each event's run is executed in the sandbox and compared with the original;
    /// nothing is recorded as a run.
    DryRun,
}

/// The body of `POST /v1/replays`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaySpec {
    /// The function to replay.
    pub function: String,
    /// Start of the range (RFC 3339), inclusive; the beginning if absent.
    #[serde(default)]
    pub from: Option<String>,
    /// End of the range (RFC 3339), exclusive; now if absent.
    #[serde(default)]
    pub to: Option<String>,
    /// Only events whose original run ended so (or `skipped`: that started no run).
    #[serde(default)]
    pub status: Option<Vec<String>>,
    /// The version to run; as the current rollout decides if absent.
    #[serde(default)]
    pub version: Option<u64>,
    /// `run` (the default) or `dry_run`.
    #[serde(default)]
    pub mode: Mode,
    /// Events per second.
    #[serde(default)]
    pub rate: Option<u32>,
    /// Events given inline (instead of a range).
    #[serde(default)]
    pub events: Option<Vec<Value>>,
}

/// What a replay selects by the original runs' outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// Range start (ms since epoch), inclusive.
    pub from: i64,
    /// Range end (ms since epoch), exclusive.
    pub to: i64,
    /// Original run statuses taken (empty: every run).
    pub statuses: Vec<RunStatus>,
    /// Whether events that started no run of the function are taken.
    pub skipped: bool,
}

impl ReplaySpec {
    /// Parses a body, naming the field that does not fit.
    pub fn from_json(bytes: &[u8]) -> Result<Self, SpecError> {
        parse(bytes)
    }

    /// The events per second, checked.
    pub fn rate(&self) -> Result<u32, SpecError> {
        match self.rate {
            None => Ok(DEFAULT_RATE),
            Some(r) if (1..=MAX_RATE).contains(&r) => Ok(r),
            Some(r) => Err(bad(
                "rate",
                format!("{r} events/s is not between 1 and {MAX_RATE}"),
            )),
        }
    }

    /// The range and outcomes selected, checked (`now` ends an open range).
    pub fn selection(&self, now: i64) -> Result<Selection, SpecError> {
        let time = |field: &str, v: &Option<String>, default: i64| -> Result<i64, SpecError> {
            v.as_deref().map_or(Ok(default), |s| {
                crate::event::parse_time(s).map_err(|e| bad(field, e))
            })
        };
        let from = time("from", &self.from, 0)?;
        let to = time("to", &self.to, now + 1)?;
        if from >= to {
            return Err(bad(
                "from",
                format!(
                    "the range is empty: `from` ({}) is not before `to` ({})",
                    self.from.as_deref().unwrap_or("the beginning"),
                    self.to.as_deref().unwrap_or("now")
                ),
            ));
        }
        let mut statuses = Vec::new();
        let mut skipped = false;
        for (i, s) in self.status.iter().flatten().enumerate() {
            match (s.as_str(), RunStatus::parse(s)) {
                ("skipped", _) => skipped = true,
                (_, Some(st)) => statuses.push(st),
                (_, None) => {
                    return Err(bad(
                        format!("status[{i}]"),
                        format!("`{s}` is not one of running, waiting, sleeping, completed, failed, cancelled, skipped"),
                    ))
                }
            }
        }
        Ok(Selection {
            from,
            to,
            statuses,
            skipped,
        })
    }
}

/// Where a replay stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayStatus {
    /// Going through its events.
    Running,
    /// Every event gone through.
    Completed,
    /// Stopped by a user before the end.
    Cancelled,
}

/// One step whose output differs between the original run and the dry run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    /// The replayed event.
    pub event_id: String,
    /// The original run.
    pub run_id: String,
    /// The step.
    pub step: String,
    /// The original step: `{"status", "output"}` (null if it had no such step).
    pub before: Value,
    /// The dry run's step: `{"status", "output", "error"}` (null if none).
    pub after: Value,
}

/// How a dry run's runs compare with the originals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DryCounts {
    /// Every step's status and output as before.
    pub identical: u64,
    /// Some step's status or output differs (and neither of the cases below).
    pub changed: u64,
    /// The original run did not fail; the dry run did.
    pub new_failures: u64,
    /// The original run failed; the dry run completed.
    pub fixed: u64,
    /// Events without an original run to compare with (given inline, or `skipped`).
    pub without_original: u64,
    /// Dry runs that did not finish: waiting for an event with no timeout, or over the
    /// step budget.
    pub unfinished: u64,
}

/// A replay as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replay {
    /// Replay id (ULID).
    pub id: String,
    /// The replayed function.
    pub function_id: String,
    /// The version asked for (`null`: as the rollout decides at each event).
    pub version: Option<u64>,
    /// `run` or `dry_run`.
    pub mode: Mode,
    /// Events per second.
    pub rate: u32,
    /// What was selected (absent for inline events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<Selection>,
    /// `range` or `inline`.
    pub source: String,
    /// Where it stands.
    pub status: ReplayStatus,
    /// Events selected.
    pub total: u64,
    /// Events gone through.
    pub done: u64,
    /// Runs started (`run` mode).
    pub runs_started: u64,
    /// Dry-run comparisons (`dry_run` mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<DryCounts>,
    /// The first differences found (dry run), at most [`MAX_DIFFERENCES`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<Difference>,
    /// Creation time (ms since epoch).
    pub created_at: i64,
    /// When it completed or was cancelled.
    pub ended_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(body: &str) -> Result<ReplaySpec, SpecError> {
        ReplaySpec::from_json(body.as_bytes())
    }

    #[test]
    fn bad_requests_name_the_field() {
        let field = |body: &str| -> String {
            let s = match spec(body) {
                Ok(s) => s,
                Err(e) => return e.field,
            };
            s.rate()
                .and_then(|_| s.selection(1_800_000_000_000))
                .expect_err(body)
                .field
        };
        assert_eq!(field(r#"{"function":"f","rate":0}"#), "rate");
        assert_eq!(field(r#"{"function":"f","rate":1000000}"#), "rate");
        assert_eq!(field(r#"{"function":"f","rate":-1}"#), "rate");
        assert_eq!(field(r#"{"function":"f","from":"yesterday"}"#), "from");
        assert_eq!(
            field(r#"{"function":"f","to":"2026-13-01T00:00:00Z"}"#),
            "to"
        );
        assert_eq!(
            field(r#"{"function":"f","from":"2026-11-02T00:00:00Z","to":"2026-11-01T00:00:00Z"}"#),
            "from"
        );
        assert_eq!(field(r#"{"function":"f","status":["done"]}"#), "status[0]");
        assert_eq!(field(r#"{"function":"f","mode":"fast"}"#), "mode");
        assert_eq!(field(r#"{"function":"f","colour":1}"#), "colour");
        assert_eq!(field(r#"{"rate":3}"#), "body");
    }

    #[test]
    fn a_range_and_outcomes_are_read() {
        let s = spec(
            r#"{"function":"f","from":"2026-11-01T00:00:00Z","to":"2026-11-02T00:00:00+01:00","status":["failed","skipped"],"mode":"dry_run"}"#,
        )
        .unwrap();
        let sel = s.selection(0).unwrap();
        assert_eq!(sel.from, 1_793_491_200_000);
        assert_eq!(sel.to, 1_793_574_000_000);
        assert_eq!(sel.statuses, vec![RunStatus::Failed]);
        assert!(sel.skipped);
        assert_eq!(s.mode, Mode::DryRun);
        assert_eq!(s.rate().unwrap(), DEFAULT_RATE);
    }
}
