//! Function definitions: the JSON users write, and the validated form the engine runs.

mod compiled;
mod def;
pub mod units;
mod validate;

pub use compiled::{
    AsyncWait, CancelRule, CronTrigger, Edge, Function, Limits, MatchIndex, Retries, Step, Trigger,
    TRIGGER,
};
pub use def::{
    AsyncDef, CancelDef, EdgeDef, FunctionDef, LimitsDef, RetriesDef, RuntimeDef, StepDef,
    TriggerDef,
};
pub use units::{parse_duration, parse_size};
pub use validate::CompileOptions;

/// Why a function definition was refused; the message names the function, step and field.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FunctionError {
    /// The JSON does not match the format.
    #[error("invalid function definition at `{path}`: {reason}")]
    Format {
        /// Where in the JSON.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A field holds an invalid value.
    #[error("function `{function}`: {field}: {reason}")]
    Invalid {
        /// The function's id.
        function: String,
        /// The field (`steps.send.after[0].if`…).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}
