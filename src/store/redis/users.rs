//! The per-user index on Redis, kept by the same scripts that store events and runs: a
//! summary hash per user, users by last activity (a sorted set), the user's events and
//! runs (lexicographic sets of ULIDs), and run counts and sets per status. Erasure goes
//! in bounded batches, each one script call; a run that moved on while a batch was
//! computed is read again.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;

use super::{enc, RedisStore};
use crate::run::{Run, RunStatus};
use crate::store::{
    erase_event, erase_run, Erased, Page, StoreResult, TimelineItem, UserCursor, UserStore,
    UserSummary,
};

const ERASE_BATCH: usize = 200;

impl RedisStore {
    async fn summary(&self, tenant: &str, user: &str) -> StoreResult<Option<UserSummary>> {
        let p = self.tp(tenant);
        let fields: Vec<String> = RunStatus::ALL
            .iter()
            .map(|s| format!("{user}\0{}", s.as_str()))
            .collect();
        let (rec, counts): (BTreeMap<String, String>, Vec<Option<i64>>) = self
            .pipe(
                redis::pipe()
                    .cmd("HGETALL")
                    .arg(format!("{p}u:{user}"))
                    .cmd("HMGET")
                    .arg(p + "ucounts")
                    .arg(&fields),
            )
            .await?;
        if rec.is_empty() {
            return Ok(None);
        }
        let n = |k: &str| rec.get(k).and_then(|v| v.parse::<i64>().ok());
        Ok(Some(UserSummary {
            id: user.into(),
            last_seen: n("ls").unwrap_or(0),
            events: n("ev").unwrap_or(0).max(0) as u64,
            runs: RunStatus::ALL
                .into_iter()
                .zip(counts)
                .map(|(s, c)| (s, c.unwrap_or(0).max(0) as u64))
                .collect(),
            user: rec.get("obj").and_then(|o| serde_json::from_str(o).ok()),
            erased_at: n("er"),
        }))
    }
}

#[async_trait]
impl UserStore for RedisStore {
    async fn list_users(
        &self,
        tenant: &str,
        prefix: Option<&str>,
        limit: usize,
        cursor: Option<&UserCursor>,
    ) -> StoreResult<Page<UserSummary>> {
        let limit = limit.max(1);
        let key = self.tp(tenant) + "useen";
        let max = cursor.map_or("+inf".to_string(), |c| c.last_seen.to_string());
        let chunk = 500;
        let mut found: Vec<String> = Vec::new();
        let mut offset = 0;
        loop {
            let v: Vec<(String, f64)> = self
                .q(redis::cmd("ZREVRANGEBYSCORE")
                    .arg(&key)
                    .arg(&max)
                    .arg("-inf")
                    .arg("WITHSCORES")
                    .arg("LIMIT")
                    .arg(offset)
                    .arg(chunk))
                .await?;
            let n = v.len();
            for (u, ls) in v {
                let below = cursor
                    .is_none_or(|c| ((ls as i64), u.as_bytes()) < (c.last_seen, c.user.as_bytes()));
                if below && prefix.is_none_or(|p| u.starts_with(p)) {
                    found.push(u);
                }
            }
            if found.len() > limit || n < chunk {
                break;
            }
            offset += chunk;
        }
        found.truncate(limit + 1);
        let mut data = Vec::with_capacity(found.len());
        for u in found {
            if let Some(s) = self.summary(tenant, &u).await? {
                data.push(s);
            }
        }
        Ok(Page::from_overfull(data, limit, UserSummary::cursor))
    }

    async fn get_user(&self, tenant: &str, id: &str) -> StoreResult<Option<UserSummary>> {
        self.summary(tenant, id).await
    }

    async fn user_runs_in(
        &self,
        tenant: &str,
        id: &str,
        statuses: &[RunStatus],
        limit: usize,
    ) -> StoreResult<Vec<Run>> {
        let p = self.tp(tenant);
        let mut ids = Vec::new();
        for st in statuses {
            let k = format!("{p}urs:{id}\0{}", st.as_str());
            ids.extend(self.ids_below(&k, None, 0, limit).await?);
        }
        ids.sort_by(|a, b| b.cmp(a));
        ids.truncate(limit);
        self.runs_by_id(tenant, &ids).await
    }

    async fn user_timeline(
        &self,
        tenant: &str,
        id: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> StoreResult<Page<TimelineItem>> {
        let limit = limit.max(1);
        let p = self.tp(tenant);
        let evs = self
            .ids_below(&format!("{p}uev:{id}"), cursor, 0, limit + 1)
            .await?;
        let runs = self
            .ids_below(&format!("{p}ru:{id}"), cursor, 0, limit + 1)
            .await?;
        let mut ids: Vec<(String, bool)> = evs
            .into_iter()
            .map(|i| (i, true))
            .chain(runs.into_iter().map(|i| (i, false)))
            .collect();
        ids.sort_by(|a, b| b.0.cmp(&a.0));
        ids.truncate(limit + 1);
        let ev_ids: Vec<String> = ids.iter().filter(|x| x.1).map(|x| x.0.clone()).collect();
        let run_ids: Vec<String> = ids.iter().filter(|x| !x.1).map(|x| x.0.clone()).collect();
        let mut items: Vec<TimelineItem> = self
            .events_by_id(tenant, &ev_ids)
            .await?
            .into_iter()
            .map(TimelineItem::Event)
            .chain(
                self.runs_by_id(tenant, &run_ids)
                    .await?
                    .into_iter()
                    .map(TimelineItem::Run),
            )
            .collect();
        items.sort_by(|a, b| b.id().cmp(a.id()));
        Ok(Page::from_overfull(items, limit, |i| i.id().to_string()))
    }

    async fn erase_user(
        &self,
        tenant: &str,
        id: &str,
        before: &str,
        now: i64,
    ) -> StoreResult<Erased> {
        #[derive(Serialize)]
        struct Ev {
            id: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            idem: Option<String>,
            json: String,
        }
        #[derive(Serialize)]
        struct RunArg {
            id: String,
            rev: u64,
            json: String,
        }
        #[derive(Serialize)]
        struct In<'a> {
            user: &'a str,
            now: i64,
            finish: bool,
            events: Vec<Ev>,
            runs: Vec<RunArg>,
        }
        let p = self.tp(tenant);
        let mut done = Erased::default();
        // Events below `before`, oldest first, in batches.
        let ev_key = format!("{p}uev:{id}");
        let mut from = "-".to_string();
        loop {
            let ids: Vec<String> = self
                .q(redis::cmd("ZRANGEBYLEX")
                    .arg(&ev_key)
                    .arg(&from)
                    .arg(format!("({before}"))
                    .arg("LIMIT")
                    .arg(0)
                    .arg(ERASE_BATCH))
                .await?;
            let Some(last) = ids.last().cloned() else {
                break;
            };
            let mut events = Vec::new();
            for se in self.events_by_id(tenant, &ids).await? {
                let mut e = se.event;
                let idem = e.idempotency_key.clone();
                erase_event(&mut e);
                events.push(Ev {
                    id: e.id.clone(),
                    idem,
                    json: enc(&e)?,
                });
            }
            done.events += events.len() as u64;
            let input = In {
                user: id,
                now,
                finish: false,
                events,
                runs: Vec::new(),
            };
            let _: Vec<String> = self.op(&p, "erase", &input, None).await?;
            if ids.len() < ERASE_BATCH {
                break;
            }
            from = format!("({last}");
        }
        // The user's runs of those events, in batches; a run that moved on meanwhile is
        // read again.
        let run_key = format!("{p}ru:{id}");
        let mut from = "-".to_string();
        loop {
            let ids: Vec<String> = self
                .q(redis::cmd("ZRANGEBYLEX")
                    .arg(&run_key)
                    .arg(&from)
                    .arg("+")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(ERASE_BATCH))
                .await?;
            let last = ids.last().cloned();
            let mut todo = ids.clone();
            for _attempt in 0..20 {
                let mut runs = Vec::new();
                for mut r in self.runs_by_id(tenant, &todo).await? {
                    if r.event_id.as_str() >= before {
                        continue;
                    }
                    erase_run(&mut r);
                    runs.push(RunArg {
                        id: r.id.clone(),
                        rev: r.rev,
                        json: enc(&r)?,
                    });
                }
                let n = runs.len() as u64;
                let input = In {
                    user: id,
                    now,
                    finish: false,
                    events: Vec::new(),
                    runs,
                };
                let conflicts: Vec<String> = self.op(&p, "erase", &input, None).await?;
                done.runs += n - conflicts.len() as u64;
                if conflicts.is_empty() {
                    break;
                }
                todo = conflicts;
            }
            match last {
                Some(l) if ids.len() == ERASE_BATCH => from = format!("({l}"),
                _ => break,
            }
        }
        let input = In {
            user: id,
            now,
            finish: true,
            events: Vec::new(),
            runs: Vec::new(),
        };
        let _: Vec<String> = self.op(&p, "erase", &input, None).await?;
        Ok(done)
    }
}
