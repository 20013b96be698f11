//! The function definition format as users write it (design §2), deserialised strictly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A function as declared in JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FunctionDef {
    /// Stable id, unique within a tenant.
    pub id: String,
    /// Human name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free-text description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What starts a run.
    pub triggers: Vec<TriggerDef>,
    /// Retry policy for every step (a step may override it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<RetriesDef>,
    /// Sandbox limits for every step (a step may override them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsDef>,
    /// Environment variables every step sees (nothing else of the host's is visible).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Concurrency control (not supported yet; rejected at deploy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Value>,
    /// Events that cancel a run of this function.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cancel: Vec<CancelDef>,
    /// The steps, by id.
    pub steps: BTreeMap<String, StepDef>,
}

/// One trigger: an event name with an optional CEL filter, or a cron schedule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TriggerDef {
    /// Event name that triggers the function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// CEL condition over the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// Cron schedule (5 fields, optional `TZ=Area/City ` prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
}

/// Retry policy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetriesDef {
    /// How many times a failed step is retried after its first attempt.
    pub attempts: u32,
    /// Base delay of the exponential backoff (default `1s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<String>,
}

/// Sandbox limits, each optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitsDef {
    /// Linear memory cap, e.g. `64MiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Wall-clock deadline, e.g. `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// CPU fuel budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// stdout cap, e.g. `1MiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    /// stderr cap, e.g. `1MiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    /// Most events one attempt may send with `host.send-event`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<u32>,
    /// Largest event it may send (JSON), e.g. `64KiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_size: Option<String>,
}

/// A step as declared.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StepDef {
    /// Must equal the key it is declared under, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Human name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where the code is: `file://…` (relative to the file) or `sha256:<hex>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// How the step runs (default wasm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeDef>,
    /// Incoming edges; none means "after the trigger".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<EdgeDef>,
    /// Overrides the function's retry policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<RetriesDef>,
    /// Overrides the function's limits, field by field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsDef>,
    /// Environment variables of this step (added to, and overriding, the function's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

/// The runtime of a step: `{"type": "wasm"}` and friends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RuntimeDef {
    /// `wasm` (default), `docker`, `lambda` or `http`.
    #[serde(rename = "type", default = "wasm")]
    pub kind: String,
    /// Runtime-specific settings.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

fn wasm() -> String {
    "wasm".into()
}

/// An edge from a parent step (or the trigger) to the step that declares it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EdgeDef {
    /// Parent step id, or `$trigger`.
    #[serde(default = "trigger")]
    pub step: String,
    /// CEL condition; the edge is taken only if it holds.
    #[serde(rename = "if", default, skip_serializing_if = "Option::is_none")]
    pub cond: Option<String>,
    /// Durable sleep before the child runs (`10m`, `2h`, `7d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<String>,
    /// Wait for another event before the edge resolves.
    #[serde(rename = "async", default, skip_serializing_if = "Option::is_none")]
    pub wait_for: Option<AsyncDef>,
}

/// Waiting for another event on an edge.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AsyncDef {
    /// Name of the awaited event.
    pub event: String,
    /// CEL over `event` (the run's trigger) and `async` (the incoming event).
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<String>,
    /// How long to wait.
    pub ttl: String,
    /// Take this edge only if no matching event came within `ttl`.
    #[serde(
        rename = "onTimeout",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub on_timeout: bool,
}

/// A rule that cancels runs when a matching event arrives.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CancelDef {
    /// Name of the cancelling event.
    pub event: String,
    /// CEL over `event` (the run's trigger) and `async` (the incoming event).
    #[serde(rename = "if", default, skip_serializing_if = "Option::is_none")]
    pub cond: Option<String>,
    /// How long after the run starts the rule applies (default: the run's whole life).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

fn trigger() -> String {
    super::TRIGGER.into()
}

impl FunctionDef {
    /// Parses a definition, reporting the JSON path of the first problem.
    pub fn from_json(bytes: &[u8]) -> Result<Self, super::FunctionError> {
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        serde_path_to_error::deserialize(de).map_err(|e| super::FunctionError::Format {
            path: e.path().to_string(),
            reason: e.inner().to_string(),
        })
    }

    /// Parses a definition already held as a JSON value.
    pub fn from_value(v: Value) -> Result<Self, super::FunctionError> {
        serde_path_to_error::deserialize(v).map_err(|e| super::FunctionError::Format {
            path: e.path().to_string(),
            reason: e.to_string(),
        })
    }
}
