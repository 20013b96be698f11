//! [`UserStore`] for the embedded store: reads on the blocking pool, erasure through the
//! writer, one batch per transaction.

use async_trait::async_trait;

use super::super::EmbeddedStore;
use super::erase::{self, EraseAt};
use super::read;
use crate::run::{Run, RunStatus};
use crate::store::{Erased, Page, StoreResult, TimelineItem, UserCursor, UserStore, UserSummary};

/// Events plus runs erased per transaction.
const ERASE_BATCH: usize = 500;

#[async_trait]
impl UserStore for EmbeddedStore {
    async fn list_users(
        &self,
        tenant: &str,
        prefix: Option<&str>,
        limit: usize,
        cursor: Option<&UserCursor>,
    ) -> StoreResult<Page<UserSummary>> {
        let (tenant, prefix, cursor) = (
            tenant.to_string(),
            prefix.map(str::to_string),
            cursor.cloned(),
        );
        self.read(move |r| read::list(r, &tenant, prefix.as_deref(), limit, cursor.as_ref()))
            .await
    }

    async fn get_user(&self, tenant: &str, id: &str) -> StoreResult<Option<UserSummary>> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.read(move |r| read::summary(r, &tenant, &id)).await
    }

    async fn user_runs_in(
        &self,
        tenant: &str,
        id: &str,
        statuses: &[RunStatus],
        limit: usize,
    ) -> StoreResult<Vec<Run>> {
        let (tenant, id, statuses) = (tenant.to_string(), id.to_string(), statuses.to_vec());
        self.read(move |r| read::runs_in(r, &tenant, &id, &statuses, limit))
            .await
    }

    async fn user_timeline(
        &self,
        tenant: &str,
        id: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> StoreResult<Page<TimelineItem>> {
        let (tenant, id, cursor) = (
            tenant.to_string(),
            id.to_string(),
            cursor.map(str::to_string),
        );
        self.read(move |r| read::timeline(r, &tenant, &id, limit, cursor.as_deref()))
            .await
    }

    async fn erase_user(
        &self,
        tenant: &str,
        id: &str,
        before: &str,
        now: i64,
    ) -> StoreResult<Erased> {
        let mut total = Erased::default();
        let mut at = EraseAt::default();
        loop {
            let (t, u, b, a) = (tenant.to_string(), id.to_string(), before.to_string(), at);
            let (done, next) = self
                .writer
                .exec(true, move |w| {
                    erase::batch(w, &t, &u, &b, &a, ERASE_BATCH, now)
                })
                .await?;
            total.events += done.events;
            total.runs += done.runs;
            match next {
                Some(n) => at = n,
                None => return Ok(total),
            }
        }
    }
}

#[cfg(test)]
impl EmbeddedStore {
    /// Empties the user index and its marker, as in a store written before it existed.
    pub(crate) async fn drop_user_index(&self) -> StoreResult<()> {
        use super::super::kv::KvWrite;
        use super::super::schema::{META, RUNS_BY_USER};
        use std::ops::Bound;
        self.writer
            .exec(true, |w: &mut dyn KvWrite| {
                for t in super::USER_TABLES.iter().copied().chain([RUNS_BY_USER]) {
                    let mut keys = Vec::new();
                    w.scan(t, Bound::Unbounded, Bound::Unbounded, false, &mut |k, _| {
                        keys.push(k.to_vec());
                        Ok(true)
                    })?;
                    for k in keys {
                        w.del(t, &k)?;
                    }
                }
                w.del(META, super::migrate::BUILT)?;
                Ok(())
            })
            .await
    }
}
