//! Replays on Redis: the record and its progress (`running done`, which the advance
//! script checks), the selected events as a list, and the runs each advance starts.

use async_trait::async_trait;
use serde::Serialize;

use super::runs::NewRun;
use super::{corrupt, enc, RedisStore};
use crate::event::Event;
use crate::run::Run;
use crate::store::{Page, ReplayItem, ReplayState, ReplayStore, RunChange, StoreResult};

/// Tenants with replays.
pub const REPLAYS: &str = "replays";

fn state(id: &str, v: &[u8]) -> StoreResult<ReplayState> {
    serde_json::from_slice(v).map_err(|e| corrupt(id, e.to_string()))
}

impl RedisStore {
    async fn replays_by_id(&self, tenant: &str, ids: &[String]) -> StoreResult<Vec<ReplayState>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let v: Vec<Option<Vec<u8>>> = self
            .q(redis::cmd("HMGET")
                .arg(self.tp(tenant) + "replays")
                .arg(ids))
            .await?;
        ids.iter()
            .zip(v)
            .filter_map(|(id, v)| v.map(|v| state(id, &v)))
            .collect()
    }
}

#[async_trait]
impl ReplayStore for RedisStore {
    async fn create_replay(
        &self,
        tenant: &str,
        st: ReplayState,
        items: Vec<ReplayItem>,
        events: Vec<Event>,
    ) -> StoreResult<()> {
        crate::store::check_key_part("tenant", tenant)?;
        crate::store::check_key_part("replay", &st.id)?;
        #[derive(Serialize)]
        struct Ev {
            id: String,
            name: String,
            json: String,
        }
        #[derive(Serialize)]
        struct In<'a> {
            tenant: &'a str,
            id: &'a str,
            state: String,
            running: bool,
            done: u64,
            items: Vec<String>,
            events: Vec<Ev>,
        }
        let input = In {
            tenant,
            id: &st.id,
            state: enc(&st)?,
            running: st.running,
            done: st.done,
            items: items.iter().map(enc).collect::<StoreResult<_>>()?,
            events: events
                .iter()
                .map(|e| {
                    Ok(Ev {
                        id: e.id.clone(),
                        name: e.name.clone(),
                        json: enc(e)?,
                    })
                })
                .collect::<StoreResult<_>>()?,
        };
        let _: i64 = self
            .op(
                &self.tp(tenant),
                "create_replay",
                &input,
                Some((REPLAYS, tenant)),
            )
            .await?;
        Ok(())
    }

    async fn get_replay(&self, tenant: &str, id: &str) -> StoreResult<Option<ReplayState>> {
        Ok(self.replays_by_id(tenant, &[id.to_string()]).await?.pop())
    }

    async fn list_replays(
        &self,
        tenant: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> StoreResult<Page<ReplayState>> {
        let limit = limit.max(1);
        let ids = self
            .ids_below(&(self.tp(tenant) + "rps"), cursor, 0, limit + 1)
            .await?;
        let data = self.replays_by_id(tenant, &ids).await?;
        Ok(Page::from_overfull(data, limit, |s| s.id.clone()))
    }

    async fn running_replays(&self) -> StoreResult<Vec<(String, ReplayState)>> {
        let mut out = Vec::new();
        for tenant in self.registry(REPLAYS).await? {
            let mut ids: Vec<String> = self
                .q(redis::cmd("SMEMBERS").arg(self.tp(&tenant) + "rprun"))
                .await?;
            ids.sort();
            for s in self.replays_by_id(&tenant, &ids).await? {
                out.push((tenant.clone(), s));
            }
        }
        Ok(out)
    }

    async fn replay_items(
        &self,
        tenant: &str,
        id: &str,
        from: u64,
        limit: usize,
    ) -> StoreResult<Vec<ReplayItem>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let v: Vec<Vec<u8>> = self
            .q(redis::cmd("LRANGE")
                .arg(format!("{}ritems:{id}", self.tp(tenant)))
                .arg(from)
                .arg(from + limit as u64 - 1))
            .await?;
        v.iter()
            .map(|b| serde_json::from_slice(b).map_err(|e| corrupt(id, e.to_string())))
            .collect()
    }

    async fn advance_replay(
        &self,
        tenant: &str,
        expected_done: u64,
        st: ReplayState,
        runs: Vec<(Run, RunChange)>,
    ) -> StoreResult<bool> {
        #[derive(Serialize)]
        struct In<'a> {
            tenant: &'a str,
            id: &'a str,
            expected: u64,
            state: String,
            running: bool,
            done: u64,
            runs: Vec<NewRun>,
        }
        let input = In {
            tenant,
            id: &st.id,
            expected: expected_done,
            state: enc(&st)?,
            running: st.running,
            done: st.done,
            runs: runs
                .iter()
                .map(|(r, c)| NewRun::new(r, c, Some(&r.event_id)))
                .collect::<StoreResult<_>>()?,
        };
        let n: i64 = self
            .op(
                &self.tp(tenant),
                "advance_replay",
                &input,
                Some((super::runs::QUEUED, tenant)),
            )
            .await?;
        Ok(n == 1)
    }
}
