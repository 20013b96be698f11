//! Pure DAG logic: the state transitions of a run, with no I/O. Every function here
//! takes the run, the function version and the current time, and returns the queue
//! changes the store must apply in the same atomic write.

mod advance;
mod conditions;
#[cfg(test)]
mod tests;
mod timers;
mod waits;

use serde_json::Value;

use crate::store::RunChange;

pub use advance::{cancel, complete, end_run, new_run, on_due, show_running};
pub use conditions::outputs;
pub use timers::backoff_ms;
pub use waits::resume;

/// How one execution of a step ended, as the scheduler sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum StepResult {
    /// Success, with the recorded output.
    Completed(Value),
    /// A failure that may succeed on retry (exit ≠ 0, trap, timeout, status ≥ 500).
    Retryable {
        /// What went wrong.
        error: String,
        /// What the attempt wrote, if anything.
        output: Option<Value>,
    },
    /// A failure that retrying cannot fix (status 4xx).
    Permanent {
        /// What went wrong.
        error: String,
        /// What the attempt wrote, if anything.
        output: Option<Value>,
    },
}

/// What a due queue entry means for its step.
#[derive(Debug, Clone, PartialEq)]
pub enum Due {
    /// The step is claimed (now `running`): execute it.
    Execute(RunChange),
    /// A timer was handled (an `async` wait timed out); nothing to execute.
    Handled(RunChange),
    /// The entry is stale (the step moved on): remove it.
    Stale(RunChange),
}
