//! The durable state of a run and its steps, as stored and as shown by the API.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::json::Json;

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Has steps queued or executing.
    Running,
    /// Parked until an event arrives.
    Waiting,
    /// Parked until a time.
    Sleeping,
    /// Every step completed or was skipped.
    Completed,
    /// A step failed for good.
    Failed,
    /// Cancelled by a user or a rule.
    Cancelled,
}

impl RunStatus {
    /// Every status, in display order.
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Running,
        RunStatus::Waiting,
        RunStatus::Sleeping,
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];

    /// The lowercase name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Waiting => "waiting",
            RunStatus::Sleeping => "sleeping",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the run is over.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

/// Where a step is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    /// Not yet runnable, or queued to run.
    Pending,
    /// Executing now.
    Running,
    /// Waiting for a time.
    Sleeping,
    /// Waiting for an event.
    Waiting,
    /// Done; its output is recorded.
    Completed,
    /// Failed for good.
    Failed,
    /// Not run because no incoming edge was taken.
    Skipped,
    /// Not run because the run ended first.
    Cancelled,
}

impl StepStatus {
    /// The status's name, as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Sleeping => "sleeping",
            StepStatus::Waiting => "waiting",
            StepStatus::Completed => "completed",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the step will not change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StepStatus::Completed
                | StepStatus::Failed
                | StepStatus::Skipped
                | StepStatus::Cancelled
        )
    }
}

/// One step's durable state within a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepState {
    /// Step id.
    pub id: String,
    /// Status.
    pub status: StepStatus,
    /// Attempts started so far.
    pub attempts: u32,
    /// The recorded output (of the completed attempt, or the last failed one).
    #[serde(default)]
    pub output: Option<Json>,
    /// Why the last attempt failed, or why the step was skipped.
    #[serde(default)]
    pub error: Option<String>,
    /// stderr of the last attempt.
    #[serde(default)]
    pub log: Option<String>,
    /// When the last attempt started (ms since epoch).
    #[serde(default)]
    pub started_at: Option<i64>,
    /// When the step reached a terminal state.
    #[serde(default)]
    pub ended_at: Option<i64>,
    /// When a queued retry (or sleep) becomes due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_at: Option<i64>,
    /// Resolution of each incoming edge: `None` unresolved, `Some(taken)`.
    #[serde(default)]
    pub edges: Vec<Option<bool>>,
    /// Due time of this step's entry in the ready queue, while it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued: Option<i64>,
    /// The event that resolved an `async` edge into this step (its stdin's `async`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub async_event: Option<Value>,
    /// When every incoming edge was resolved and the step was first queued (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<i64>,
    /// When the first attempt started (ms); with `started_at`, the time spent retrying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_started_at: Option<i64>,
    /// What the sandbox measured in the last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<crate::runtime::SandboxFigures>,
    /// The events its completed attempt sent (`host.send-event`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sent: Vec<SentEvent>,
}

/// An event a step sent: its id (`null` in a dry run, which captures it instead of
/// sending it) and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentEvent {
    /// The stored event's id.
    pub id: Option<String>,
    /// Its name.
    pub name: String,
}

/// What a wait belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum WaitSlot {
    /// Incoming edge `edge` of step `step` (indices in the function version).
    Edge {
        /// The step's index.
        step: usize,
        /// The edge's index among the step's incoming edges.
        edge: usize,
    },
    /// Cancellation rule `rule` of the function.
    Cancel {
        /// The rule's index.
        rule: usize,
    },
}

impl WaitSlot {
    /// A stable string form, used in index keys.
    pub fn key(&self) -> String {
        match self {
            WaitSlot::Edge { step, edge } => format!("e{step}.{edge}"),
            WaitSlot::Cancel { rule } => format!("c{rule}"),
        }
    }
}

/// A run waiting for an event: for an `async` edge or a cancellation rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wait {
    /// What it is for.
    pub slot: WaitSlot,
    /// Awaited event name.
    pub event: String,
    /// Path in the incoming event that must equal `value` (`*`: not indexed).
    pub path: String,
    /// Canonical JSON of the expected value (`*`: not indexed).
    pub value: String,
    /// When the wait gives up (ms since epoch), if ever.
    pub expires_at: Option<i64>,
}

/// The index entry of a wait: found by event name, path and value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WaitKey {
    /// Tenant.
    pub tenant: String,
    /// Awaited event name.
    pub event: String,
    /// Path in the incoming event, or `*`.
    pub path: String,
    /// Expected value, or `*`.
    pub value: String,
    /// Run id.
    pub run_id: String,
    /// `WaitSlot::key()`.
    pub slot: String,
}

/// A run of one function version for one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Run id (ULID).
    pub id: String,
    /// Tenant that owns it.
    pub tenant: String,
    /// Function id.
    pub function_id: String,
    /// The function version it runs (fixed for its life).
    pub function_version: u64,
    /// Status.
    pub status: RunStatus,
    /// The triggering event's id.
    pub event_id: String,
    /// The triggering event's `user.id`.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The triggering event, as steps see it.
    pub event: Json,
    /// Creation time (ms since epoch).
    pub created_at: i64,
    /// When it reached a terminal status.
    #[serde(default)]
    pub ended_at: Option<i64>,
    /// Steps, in the function's topological order.
    pub steps: Vec<StepState>,
    /// Live waits for events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waits: Vec<Wait>,
    /// The rollout that chose its version, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_id: Option<String>,
    /// The replay that started it, if one did (`mode: "run"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_id: Option<String>,
    /// The stored record's revision when this copy was read (0 for a run not stored
    /// yet); a write computed from this copy is refused once the run has moved on.
    #[serde(skip)]
    pub rev: u64,
}

/// An entry of the ready queue: a step of a run that may execute at `due`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueEntry {
    /// When it becomes runnable (ms since epoch).
    pub due: i64,
    /// Tenant.
    pub tenant: String,
    /// Run id.
    pub run_id: String,
    /// Step id.
    pub step_id: String,
}

impl Run {
    /// The run as the API shows it: steps keyed by id.
    pub fn to_api(&self) -> Value {
        let steps: serde_json::Map<String, Value> = self
            .steps
            .iter()
            .map(|s| {
                let mut v = serde_json::json!({
                    "status": s.status,
                    "attempts": s.attempts,
                    "output": s.output,
                    "error": s.error,
                    "log": s.log,
                    "started_at": s.started_at,
                    "ended_at": s.ended_at,
                });
                if let Some(w) = s.wake_at {
                    v["wake_at"] = w.into();
                }
                let awaiting: Vec<Value> = self
                    .waits
                    .iter()
                    .filter(|w| matches!(w.slot, WaitSlot::Edge { step, .. } if self.steps.get(step).is_some_and(|st| st.id == s.id)))
                    .map(|w| serde_json::json!({"event": w.event, "expires_at": w.expires_at}))
                    .collect();
                if !awaiting.is_empty() {
                    v["awaiting"] = awaiting.into();
                }
                if let Some(a) = &s.async_event {
                    v["async"] = a.clone();
                }
                if let Some(t) = s.ready_at {
                    v["ready_at"] = t.into();
                }
                if let Some(t) = s.first_started_at {
                    v["first_started_at"] = t.into();
                }
                if let Some(f) = &s.sandbox {
                    v["sandbox"] = serde_json::json!({"instantiate_us": f.instantiate_us,
                        "run_us": f.run_us, "fuel": f.fuel, "memory_peak": f.memory_peak});
                }
                if !s.sent.is_empty() {
                    v["sent"] = serde_json::json!(s.sent);
                }
                (s.id.clone(), v)
            })
            .collect();
        serde_json::json!({
            "id": self.id,
            "function_id": self.function_id,
            "function_version": self.function_version,
            "status": self.status,
            "event_id": self.event_id,
            "event_ts": self.event.get().get("ts"),
            "user_id": self.user_id,
            "rollout_id": self.rollout_id,
            "replay_id": self.replay_id,
            "created_at": self.created_at,
            "ended_at": self.ended_at,
            "steps": steps,
        })
    }

    /// The index key of one of this run's waits.
    pub fn wait_key(&self, w: &Wait) -> WaitKey {
        WaitKey {
            tenant: self.tenant.clone(),
            event: w.event.clone(),
            path: w.path.clone(),
            value: w.value.clone(),
            run_id: self.id.clone(),
            slot: w.slot.key(),
        }
    }

    /// The step named `id`.
    pub fn step(&self, id: &str) -> Option<&StepState> {
        self.steps.iter().find(|s| s.id == id)
    }
}
