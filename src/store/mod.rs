//! Durable storage behind traits split by concern; the engine never sees a concrete
//! backend. The seam is made for more than one process: a step is claimed with a lease
//! and a fencing token, its result is recorded only while that token holds, expired
//! leases are taken over, per-tenant in-flight counts live in the store, and no Rust
//! callback crosses the seam (each call is one operation a network backend can run
//! server-side). Every call is `async`: a backend never blocks tokio's threads.

mod blobs;
#[cfg(test)]
pub(crate) mod conformance;
pub mod embedded;
mod events;
mod feed;
mod functions;
pub mod redis;
mod replays;
mod runs;
mod types;
mod users;

pub use blobs::BlobStore;
pub use events::EventStore;
pub use feed::{Feed, FeedStore};
pub use functions::FunctionStore;
pub use replays::ReplayStore;
pub use runs::RunStore;
pub use types::*;
pub use users::{erase_event, erase_run, Erased, TimelineItem, UserCursor, UserStore, UserSummary};

/// A storage failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (I/O, a lock held by another process…).
    #[error("storage backend error: {0}")]
    Backend(String),
    /// A stored record does not decode.
    #[error("corrupt record under {key}: {reason}")]
    Corrupt {
        /// The record's key (lossily decoded).
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A name is not usable as part of a key.
    #[error("invalid {what} `{value}`: {reason}")]
    InvalidName {
        /// What the name is (tenant, function id…).
        what: &'static str,
        /// The name, cut to 64 characters.
        value: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The backend cannot be reached now (a network store that is down); the call may
    /// succeed later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The store is locked by another process.
    #[error("the data directory is in use by another process: {0}")]
    Locked(String),
    /// A write panicked inside the backend; it was not applied, and the backend goes on.
    #[error("a storage write panicked and was not applied: {0}")]
    Panicked(String),
}

impl StoreError {
    /// A stable machine-readable code for API bodies.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Backend(_) => "store_backend",
            StoreError::Corrupt { .. } => "store_corrupt",
            StoreError::InvalidName { .. } => "invalid_name",
            StoreError::Locked(_) => "store_locked",
            StoreError::Unavailable(_) => "store_unavailable",
            StoreError::Panicked(_) => "store_panicked",
        }
    }
}

/// Result alias for storage calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// Everything weir keeps: events, functions and components, runs with their queue and
/// leases, replays, blobs, and the per-user index. A backend implements each part; this
/// trait ties them together.
pub trait Store:
    EventStore
    + FunctionStore
    + RunStore
    + ReplayStore
    + BlobStore
    + UserStore
    + FeedStore
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: EventStore
        + FunctionStore
        + RunStore
        + ReplayStore
        + BlobStore
        + UserStore
        + FeedStore
        + Send
        + Sync
        + 'static
{
}
