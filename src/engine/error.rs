//! Why an engine call failed: typed, each with a stable code that reaches the API body.

use crate::function::FunctionError;
use crate::schema::SchemaError;
use crate::store::StoreError;

/// The kind of thing a lookup did not find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// A run.
    Run,
    /// An event.
    Event,
    /// A function (or one version of it).
    Function,
    /// A step of a function version.
    Step,
    /// An event name's schema (or one version of it).
    Schema,
    /// A replay.
    Replay,
    /// A user (`event.user.id`) of whom nothing is stored.
    User,
}

impl Resource {
    fn name(self) -> &'static str {
        match self {
            Resource::Run => "run",
            Resource::Event => "event",
            Resource::Function => "function",
            Resource::Step => "step",
            Resource::Schema => "schema",
            Resource::Replay => "replay",
            Resource::User => "user",
        }
    }
}

/// Why an engine call failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A function definition was refused.
    #[error(transparent)]
    Function(#[from] FunctionError),
    /// A schema was refused, or an event does not satisfy its schema.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// A path segment that should be a sha256 digest is not one.
    #[error("`{0}` is not a sha256 hex digest")]
    BadDigest(String),
    /// An upload's bytes do not hash to the digest it was sent under.
    #[error("body hashes to sha256:{actual}, not sha256:{claimed}")]
    HashMismatch {
        /// The digest in the request.
        claimed: String,
        /// The digest of the body.
        actual: String,
    },
    /// A component is not a usable step.
    #[error("component sha256:{sha} {reason}")]
    Component {
        /// Its digest.
        sha: String,
        /// Why (it does not compile, imports what weir does not provide…).
        reason: String,
    },
    /// The thing asked for does not exist (for this tenant).
    #[error("{} {id} not found", what.name())]
    NotFound {
        /// What kind of thing.
        what: Resource,
        /// Its id (with a version, for a function version).
        id: String,
    },
    /// A rollout was refused.
    #[error("invalid rollout: {0}")]
    InvalidRollout(super::rollout::SpecError),
    /// A replay was refused.
    #[error("invalid replay: {0}")]
    InvalidReplay(super::rollout::SpecError),
    /// The function has no rollout (its new runs get the latest version).
    #[error("function {function} has no rollout: new runs get its latest version ({latest})")]
    NoRollout {
        /// The function.
        function: String,
        /// Its latest version.
        latest: u64,
    },
    /// Too much is waiting already; retry later.
    #[error("{pending} events are waiting to be processed (limit {limit}); retry later")]
    Busy {
        /// Events waiting.
        pending: u64,
        /// The most allowed.
        limit: u64,
    },
    /// A query parameter is malformed (a cursor this listing did not give…).
    #[error("{0}")]
    InvalidQuery(String),
    /// Something inside weir failed (a task panicked); nothing the caller can mend.
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    /// A stable machine-readable code, for API bodies.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Store(e) => e.code(),
            EngineError::Function(FunctionError::Format { .. }) => "invalid_definition",
            EngineError::Function(FunctionError::Invalid { .. }) => "invalid_function",
            EngineError::Schema(e) => e.code(),
            EngineError::BadDigest(_) => "invalid_digest",
            EngineError::HashMismatch { .. } => "hash_mismatch",
            EngineError::Component { .. } => "invalid_component",
            EngineError::NotFound { what, .. } => match what {
                Resource::Run => "run_not_found",
                Resource::Event => "event_not_found",
                Resource::Function => "function_not_found",
                Resource::Step => "step_not_found",
                Resource::Schema => "schema_not_found",
                Resource::Replay => "replay_not_found",
                Resource::User => "user_not_found",
            },
            EngineError::InvalidRollout(_) => "invalid_rollout",
            EngineError::NoRollout { .. } => "rollout_not_found",
            EngineError::InvalidReplay(_) => "invalid_replay",
            EngineError::Busy { .. } => "busy",
            EngineError::InvalidQuery(_) => "invalid_query",
            EngineError::Internal(_) => "internal",
        }
    }

    /// Whether what was asked for does not exist (a 404 on every face).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            EngineError::NotFound { .. } | EngineError::NoRollout { .. }
        )
    }

    /// Whether the caller's request is at fault (a 4xx), as opposed to weir (a 5xx).
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self,
            EngineError::Store(StoreError::Backend(_))
                | EngineError::Store(StoreError::Corrupt { .. })
                | EngineError::Store(StoreError::Locked(_))
                | EngineError::Store(StoreError::Unavailable(_))
                | EngineError::Store(StoreError::Panicked(_))
                | EngineError::Internal(_)
                | EngineError::Busy { .. }
        )
    }

    pub(crate) fn not_found(what: Resource, id: impl Into<String>) -> Self {
        EngineError::NotFound {
            what,
            id: id.into(),
        }
    }
}
