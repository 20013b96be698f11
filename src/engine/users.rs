//! The per-user view (design §11): users by last activity, one user with what they wait
//! on and what failed, their timeline, and the erasure of their payloads.

use super::error::Resource;
use super::{Engine, EngineError};
use crate::event::now_ms;
use crate::run::{Run, RunStatus};
use crate::store::{Page, TimelineItem, UserCursor, UserSummary};

/// How many of a user's waiting and failed runs one user shows.
const SHOWN_RUNS: usize = 20;
/// Unfinished runs cancelled per pass before an erasure.
const CANCEL_PAGE: usize = 500;
/// Passes over the user's unfinished runs (a pass can meet runs its own cancels did not
/// cover yet: ones started meanwhile by the user's earlier events).
const CANCEL_PASSES: usize = 3;

/// One user: the summary, the runs parked now (sleeping or waiting), and recent failures.
#[derive(Debug, Clone)]
pub struct UserView {
    /// Counts, last activity and the latest `user` object.
    pub summary: UserSummary,
    /// Runs sleeping or waiting now, newest first.
    pub waiting: Vec<Run>,
    /// Failed runs, newest first.
    pub failed: Vec<Run>,
}

/// What erasing a user did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserErasure {
    /// Unfinished runs cancelled first.
    pub cancelled: u64,
    /// Events whose payloads were removed.
    pub events: u64,
    /// Runs whose payloads were removed.
    pub runs: u64,
    /// When.
    pub erased_at: i64,
}

fn bad_cursor(c: &str) -> EngineError {
    EngineError::InvalidQuery(format!(
        "cursor `{}` is not one this listing gave (pass back `next_cursor`)",
        c.chars().take(64).collect::<String>()
    ))
}

impl Engine {
    /// Users by last activity, most recent first.
    pub async fn users(
        &self,
        tenant: &str,
        prefix: Option<&str>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<UserSummary>, EngineError> {
        let cursor = match cursor.filter(|c| !c.is_empty()) {
            Some(c) => Some(UserCursor::parse(c).ok_or_else(|| bad_cursor(c))?),
            None => None,
        };
        Ok(self
            .store
            .list_users(tenant, prefix, limit.clamp(1, 1000), cursor.as_ref())
            .await?)
    }

    async fn user_summary(&self, tenant: &str, id: &str) -> Result<UserSummary, EngineError> {
        self.store
            .get_user(tenant, id)
            .await?
            .ok_or_else(|| EngineError::not_found(Resource::User, id))
    }

    /// One user, with the runs parked now and recent failures.
    pub async fn user(&self, tenant: &str, id: &str) -> Result<UserView, EngineError> {
        let summary = self.user_summary(tenant, id).await?;
        let parked = [RunStatus::Sleeping, RunStatus::Waiting];
        let waiting = self
            .store
            .user_runs_in(tenant, id, &parked, SHOWN_RUNS)
            .await?;
        let failed = self
            .store
            .user_runs_in(tenant, id, &[RunStatus::Failed], SHOWN_RUNS)
            .await?;
        Ok(UserView {
            summary,
            waiting,
            failed,
        })
    }

    /// The user's events and runs, newest first; `cursor` is the last id shown.
    pub async fn user_timeline(
        &self,
        tenant: &str,
        id: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<TimelineItem>, EngineError> {
        let cursor = cursor.filter(|c| !c.is_empty());
        if let Some(c) = cursor {
            ulid::Ulid::from_string(c).map_err(|_| bad_cursor(c))?;
        }
        self.user_summary(tenant, id).await?;
        Ok(self
            .store
            .user_timeline(tenant, id, limit.clamp(1, 1000), cursor)
            .await?)
    }

    /// Erases the user's payloads: cancels their unfinished runs (as a cancel call
    /// would), then removes the payloads of every event and run stored so far. Events
    /// sent afterwards are stored as ever.
    pub async fn erase_user(&self, tenant: &str, id: &str) -> Result<UserErasure, EngineError> {
        self.user_summary(tenant, id).await?;
        // Every id handed out from now on sorts after this one.
        let before = crate::event::new_id();
        let open = [RunStatus::Running, RunStatus::Waiting, RunStatus::Sleeping];
        let mut cancelled = 0;
        for _ in 0..CANCEL_PASSES {
            let runs = self
                .store
                .user_runs_in(tenant, id, &open, CANCEL_PAGE)
                .await?;
            let runs: Vec<Run> = runs
                .into_iter()
                .filter(|r| r.event_id.as_str() < before.as_str())
                .collect();
            if runs.is_empty() {
                break;
            }
            for r in runs {
                match self.cancel_run(tenant, &r.id).await {
                    Ok(_) => cancelled += 1,
                    // Gone meanwhile: nothing to cancel.
                    Err(EngineError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let now = now_ms();
        let erased = self.store.erase_user(tenant, id, &before, now).await?;
        Ok(UserErasure {
            cancelled,
            events: erased.events,
            runs: erased.runs,
            erased_at: now,
        })
    }
}
