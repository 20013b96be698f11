//! Events on Redis: each tenant's events in a hash (the event as sent) with their
//! matching state beside it (`ingested|duplicate_of|run,run`), lexicographic indexes of
//! ULIDs for listing newest first, the inbox and the delayed set that trigger matching
//! drains, and the registry of tenants with pending events.

use async_trait::async_trait;
use serde::Serialize;

use super::runs::NewRun;
use super::{corrupt, enc, indexed_user, RedisStore};
use crate::event::Event;
use crate::store::{fair_share, EventFilter, EventStore, Ingested, Page, StoreResult, StoredEvent};

/// Values of HMGET, by field.
type Fields = Vec<Option<Vec<u8>>>;

/// Tenants with events in their inbox or delayed set.
pub const PENDING: &str = "pending";

#[derive(Serialize)]
struct NewEvent {
    id: String,
    ts: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    idem: Option<String>,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uobj: Option<String>,
    json: String,
}

/// A stored event from its two parts.
pub fn decode_event(id: &str, json: &[u8], meta: Option<&[u8]>) -> StoreResult<StoredEvent> {
    let event: Event = serde_json::from_slice(json).map_err(|e| corrupt(id, e.to_string()))?;
    let meta = meta.map(String::from_utf8_lossy).unwrap_or_default();
    let mut parts = meta.splitn(3, '|');
    let ingested = parts.next() == Some("1");
    let duplicate_of = parts.next().filter(|d| !d.is_empty()).map(str::to_string);
    let run_ids = parts
        .next()
        .filter(|r| !r.is_empty())
        .map(|r| r.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    Ok(StoredEvent {
        event,
        run_ids,
        duplicate_of,
        ingested,
    })
}

impl RedisStore {
    /// Stored events by id, in order (missing ones left out).
    pub(super) async fn events_by_id(
        &self,
        tenant: &str,
        ids: &[String],
    ) -> StoreResult<Vec<StoredEvent>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let p = self.tp(tenant);
        let (evs, metas): (Fields, Fields) = self
            .pipe(
                redis::pipe()
                    .cmd("HMGET")
                    .arg(p.clone() + "ev")
                    .arg(ids)
                    .cmd("HMGET")
                    .arg(p + "evm")
                    .arg(ids),
            )
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        for ((id, ev), meta) in ids.iter().zip(evs).zip(metas) {
            if let Some(ev) = ev {
                out.push(decode_event(id, &ev, meta.as_deref())?);
            }
        }
        Ok(out)
    }

    async fn pending_of(
        &self,
        tenant: &str,
        now: i64,
        delayed: usize,
        from: usize,
        inbox: usize,
    ) -> StoreResult<(Vec<String>, Vec<String>)> {
        let p = self.tp(tenant);
        if inbox == 0 && delayed == 0 {
            return Ok((Vec::new(), Vec::new()));
        }
        self.pipe(
            redis::pipe()
                .cmd("ZRANGEBYSCORE")
                .arg(p.clone() + "delayed")
                .arg("-inf")
                .arg(now)
                .arg("LIMIT")
                .arg(0)
                .arg(delayed)
                .cmd("ZRANGE")
                .arg(p + "inbox")
                .arg(from)
                .arg((from + inbox) as i64 - 1),
        )
        .await
    }
}

#[async_trait]
impl EventStore for RedisStore {
    async fn append_events(
        &self,
        tenant: &str,
        events: Vec<Event>,
        now: i64,
    ) -> StoreResult<Vec<Option<String>>> {
        crate::store::check_key_part("tenant", tenant)?;
        let mut list = Vec::with_capacity(events.len());
        for ev in &events {
            let user = indexed_user(ev.user_id());
            list.push(NewEvent {
                id: ev.id.clone(),
                ts: ev.ts,
                idem: ev.idempotency_key.clone(),
                name: ev.name.clone(),
                uobj: match (&user, &ev.user) {
                    (Some(_), Some(u)) => Some(enc(u)?),
                    _ => None,
                },
                user,
                json: enc(ev)?,
            });
        }
        #[derive(Serialize)]
        struct In<'a> {
            tenant: &'a str,
            now: i64,
            events: Vec<NewEvent>,
        }
        let input = In {
            tenant,
            now,
            events: list,
        };
        let dups: Vec<String> = self
            .op(&self.tp(tenant), "append", &input, Some((PENDING, tenant)))
            .await?;
        Ok(dups
            .into_iter()
            .map(|d| (!d.is_empty()).then_some(d))
            .collect())
    }

    async fn get_event(&self, tenant: &str, id: &str) -> StoreResult<Option<StoredEvent>> {
        Ok(self.events_by_id(tenant, &[id.to_string()]).await?.pop())
    }

    async fn list_events_where(
        &self,
        tenant: &str,
        filter: &EventFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> StoreResult<Page<StoredEvent>> {
        let p = self.tp(tenant);
        let index = match &filter.name {
            Some(n) => format!("{p}evn:{n}"),
            None => p + "evs",
        };
        let mut data = Vec::new();
        let mut after = cursor.map(str::to_string);
        let chunk = (limit + 1).clamp(16, 1000);
        loop {
            let ids = self.ids_below(&index, after.as_deref(), 0, chunk).await?;
            let Some(last) = ids.last().cloned() else {
                break;
            };
            for ev in self.events_by_id(tenant, &ids).await? {
                if filter.matches(&ev.event) {
                    data.push(ev);
                }
            }
            if data.len() > limit || ids.len() < chunk {
                break;
            }
            after = Some(last);
        }
        data.truncate(limit + 1);
        Ok(Page::from_overfull(data, limit, |e| e.event.id.clone()))
    }

    async fn pending_events(
        &self,
        now: i64,
        limit: usize,
        skip: &[String],
    ) -> StoreResult<Vec<(String, Event)>> {
        let tenants: Vec<String> = self
            .registry(PENDING)
            .await?
            .into_iter()
            .filter(|t| !skip.contains(t))
            .collect();
        let mut out = Vec::new();
        let share = fair_share(limit, tenants.len());
        // A fair share each first, then what is left of `limit` to whoever has more.
        let mut offsets = vec![0usize; tenants.len()];
        let mut full = vec![false; tenants.len()];
        for first_pass in [true, false] {
            for (i, tenant) in tenants.iter().enumerate() {
                if out.len() >= limit {
                    break;
                }
                if !first_pass && !full[i] {
                    continue;
                }
                let left = limit - out.len();
                let want = if first_pass { share.min(left) } else { left };
                let (delayed, inbox) = self
                    .pending_of(
                        tenant,
                        now,
                        if first_pass { left } else { 0 },
                        offsets[i],
                        want,
                    )
                    .await?;
                if first_pass && delayed.is_empty() && inbox.is_empty() {
                    let p = self.tp(tenant);
                    self.prune(PENDING, tenant, &[p.clone() + "inbox", p + "delayed"])
                        .await?;
                    continue;
                }
                offsets[i] += inbox.len();
                full[i] = inbox.len() >= want;
                let mut ids = delayed;
                ids.extend(inbox);
                ids.truncate(left);
                let mut stale = Vec::new();
                for se in self.events_by_id(tenant, &ids).await? {
                    if se.ingested {
                        stale.push(se.event.id.clone());
                    } else {
                        out.push((tenant.clone(), se.event));
                    }
                }
                if !stale.is_empty() {
                    let p = self.tp(tenant);
                    let _: () = self
                        .pipe(
                            redis::pipe()
                                .cmd("ZREM")
                                .arg(p.clone() + "inbox")
                                .arg(&stale)
                                .ignore()
                                .cmd("ZREM")
                                .arg(p + "delayed")
                                .arg(&stale)
                                .ignore(),
                        )
                        .await?;
                }
            }
        }
        Ok(out)
    }

    async fn pending_count(&self) -> StoreResult<u64> {
        let mut n = 0;
        for tenant in self.registry(PENDING).await? {
            let p = self.tp(&tenant);
            let (a, b): (u64, u64) = self
                .pipe(
                    redis::pipe()
                        .cmd("ZCARD")
                        .arg(p.clone() + "inbox")
                        .cmd("ZCARD")
                        .arg(p + "delayed"),
                )
                .await?;
            n += a + b;
        }
        Ok(n)
    }

    async fn next_delayed(&self) -> StoreResult<Option<i64>> {
        let mut best: Option<i64> = None;
        for tenant in self.registry(PENDING).await? {
            let first: Vec<(String, f64)> = self
                .q(redis::cmd("ZRANGE")
                    .arg(self.tp(&tenant) + "delayed")
                    .arg(0)
                    .arg(0)
                    .arg("WITHSCORES"))
                .await?;
            if let Some((_, ts)) = first.first() {
                let ts = *ts as i64;
                best = Some(best.map_or(ts, |b| b.min(ts)));
            }
        }
        Ok(best)
    }

    async fn commit_ingest(&self, batch: Vec<Ingested>) -> StoreResult<()> {
        use std::collections::BTreeMap;
        #[derive(Serialize)]
        struct Ev {
            id: String,
            runs: Vec<NewRun>,
        }
        let mut by_tenant: BTreeMap<String, Vec<Ev>> = BTreeMap::new();
        for Ingested {
            tenant,
            event_id,
            runs,
        } in batch
        {
            let runs = runs
                .iter()
                .map(|(r, c)| NewRun::new(r, c, None))
                .collect::<StoreResult<Vec<_>>>()?;
            by_tenant
                .entry(tenant)
                .or_default()
                .push(Ev { id: event_id, runs });
        }
        for (tenant, events) in by_tenant {
            #[derive(Serialize)]
            struct In<'a> {
                tenant: &'a str,
                events: Vec<Ev>,
            }
            let _: i64 = self
                .op(
                    &self.tp(&tenant),
                    "ingest",
                    &In {
                        tenant: &tenant,
                        events,
                    },
                    Some((super::runs::QUEUED, &tenant)),
                )
                .await?;
        }
        Ok(())
    }
}
