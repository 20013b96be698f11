//! The validated form of a function version, ready to run: its steps in topological
//! order with compiled conditions, triggers, cancellation rules, retries and limits.

use std::collections::HashMap;
use std::time::Duration;

use super::def::FunctionDef;
use crate::expr::Expr;

/// The name of the implicit parent of steps with no `after`.
pub const TRIGGER: &str = "$trigger";

/// A validated, immutable function version, ready to run.
#[derive(Debug, Clone)]
pub struct Function {
    /// Function id.
    pub id: String,
    /// Version number, starting at 1.
    pub version: u64,
    /// The definition as deployed (step paths are `sha256:` names).
    pub def: FunctionDef,
    /// Event triggers.
    pub triggers: Vec<Trigger>,
    /// Cron triggers.
    pub crons: Vec<CronTrigger>,
    /// Cancellation rules.
    pub cancel: Vec<CancelRule>,
    /// Steps in a topological order (parents before children).
    pub steps: Vec<Step>,
    /// The cost budget each evaluation of its expressions runs under.
    pub cel_budget: u64,
    pub(super) index: HashMap<String, usize>,
}

/// An event trigger with its compiled condition.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// Event name.
    pub event: String,
    /// Optional CEL condition.
    pub expression: Option<Expr>,
}

/// A validated step.
#[derive(Debug, Clone)]
pub struct Step {
    /// Step id.
    pub id: String,
    /// Human name.
    pub name: Option<String>,
    /// What the step runs.
    pub target: crate::runtime::Target,
    /// Incoming edges.
    pub incoming: Vec<Edge>,
    /// Outgoing edges as (child step index, index into the child's `incoming`).
    pub outgoing: Vec<(usize, usize)>,
    /// Retry policy.
    pub retries: Retries,
    /// Sandbox limits this step asks for (unset fields take the server defaults).
    pub limits: Limits,
    /// Environment variables the step sees.
    pub env: Vec<(String, String)>,
}

/// An incoming edge.
#[derive(Debug, Clone)]
pub struct Edge {
    /// Parent step index, or `None` for the trigger.
    pub parent: Option<usize>,
    /// Condition to take the edge.
    pub cond: Option<Expr>,
    /// Durable sleep between the edge being taken and the child running.
    pub wait: Option<Duration>,
    /// Wait for another event before the edge resolves.
    pub wait_for: Option<AsyncWait>,
}

/// An edge's wait for another event.
#[derive(Debug, Clone)]
pub struct AsyncWait {
    /// Awaited event name.
    pub event: String,
    /// Match condition over `event` and `async`.
    pub matches: Option<Expr>,
    /// How long to wait.
    pub ttl: Duration,
    /// Taken only on timeout.
    pub on_timeout: bool,
    /// An equality usable as an index key, if the match has that shape.
    pub index: Option<MatchIndex>,
}

/// `event.<event_path> == async.<async_path>`: lets incoming events find their waits
/// by value instead of scanning every wait for the event name.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchIndex {
    /// Path in the run's trigger event, e.g. `user.id`.
    pub event_path: String,
    /// Path in the incoming event, e.g. `user.id`.
    pub async_path: String,
}

impl MatchIndex {
    /// Recognises `event.a.b == async.c.d` (either order) in a match expression.
    pub fn from_source(src: &str) -> Option<Self> {
        let (l, r) = src.split_once("==")?;
        let (l, r) = (l.trim(), r.trim());
        let path = |s: &str| {
            !s.is_empty()
                && s.split('.').all(|p| {
                    !p.is_empty()
                        && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !p.starts_with(|c: char| c.is_ascii_digit())
                })
        };
        if !path(l) || !path(r) {
            return None;
        }
        let (e, a) = match (l.strip_prefix("event."), r.strip_prefix("async.")) {
            (Some(e), Some(a)) => (e, a),
            _ => (r.strip_prefix("event.")?, l.strip_prefix("async.")?),
        };
        Some(MatchIndex {
            event_path: e.into(),
            async_path: a.into(),
        })
    }
}

/// A cancellation rule.
#[derive(Debug, Clone)]
pub struct CancelRule {
    /// Cancelling event name.
    pub event: String,
    /// Condition over `event` (trigger) and `async` (incoming).
    pub cond: Option<Expr>,
    /// For how long after the run starts the rule applies.
    pub timeout: Option<Duration>,
    /// Index shape of `cond`, if any.
    pub index: Option<MatchIndex>,
}

/// A cron trigger.
#[derive(Debug, Clone)]
pub struct CronTrigger {
    /// The schedule as written (with any `TZ=` prefix).
    pub source: String,
    /// Parsed pattern.
    pub cron: croner::Cron,
    /// Time zone of the schedule.
    pub tz: chrono_tz::Tz,
}

impl CronTrigger {
    /// Parses `0 9 * * MON` or `TZ=Europe/Paris 0 9 * * MON`.
    pub fn parse(src: &str) -> Result<Self, String> {
        let s = src.trim();
        let (tz, pattern) = match s.strip_prefix("TZ=").or_else(|| s.strip_prefix("CRON_TZ=")) {
            Some(rest) => {
                let (tz, pat) = rest
                    .split_once(' ')
                    .ok_or_else(|| format!("`{src}`: nothing after the time zone"))?;
                let tz: chrono_tz::Tz = tz
                    .parse()
                    .map_err(|_| format!("`{tz}` is not a known time zone"))?;
                (tz, pat.trim())
            }
            None => (chrono_tz::UTC, s),
        };
        let fields = pattern.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(format!(
                "`{pattern}` must have 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first"
            ));
        }
        let seconds = if fields == 6 {
            croner::parser::Seconds::Required
        } else {
            croner::parser::Seconds::Disallowed
        };
        let cron = croner::parser::CronParser::builder()
            .seconds(seconds)
            .build()
            .parse(pattern)
            .map_err(|e| format!("`{pattern}` is not a cron schedule: {e}"))?;
        Ok(Self {
            source: src.into(),
            cron,
            tz,
        })
    }

    /// The first tick strictly after `after_ms` (ms since epoch).
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        use chrono::TimeZone;
        let t = self.tz.timestamp_millis_opt(after_ms).single()?;
        self.cron
            .find_next_occurrence(&t, false)
            .ok()
            .map(|d| d.timestamp_millis())
    }
}

/// Retry policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retries {
    /// Retries after the first attempt.
    pub attempts: u32,
    /// Base backoff delay.
    pub backoff: Duration,
}

impl Default for Retries {
    fn default() -> Self {
        Self {
            attempts: 3,
            backoff: Duration::from_secs(1),
        }
    }
}

/// Sandbox limits as asked for; `None` takes the server default.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// Linear memory cap in bytes.
    pub memory: Option<u64>,
    /// Wall-clock deadline.
    pub timeout: Option<Duration>,
    /// CPU fuel budget.
    pub fuel: Option<u64>,
    /// stdout cap in bytes.
    pub stdout: Option<u64>,
    /// stderr cap in bytes.
    pub stderr: Option<u64>,
    /// Most events one attempt may send.
    pub events: Option<u32>,
    /// Largest event it may send, in bytes.
    pub event_size: Option<u64>,
}

impl Limits {
    /// Fields of `self`, falling back to `base` where unset.
    pub fn or(self, base: Limits) -> Limits {
        Limits {
            memory: self.memory.or(base.memory),
            timeout: self.timeout.or(base.timeout),
            fuel: self.fuel.or(base.fuel),
            stdout: self.stdout.or(base.stdout),
            stderr: self.stderr.or(base.stderr),
            events: self.events.or(base.events),
            event_size: self.event_size.or(base.event_size),
        }
    }
}

impl Function {
    /// The index of step `id`.
    pub fn step_index(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// The distinct event names that trigger this function.
    pub fn event_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.triggers.iter().map(|t| t.event.clone()).collect();
        v.sort();
        v.dedup();
        v
    }
}
