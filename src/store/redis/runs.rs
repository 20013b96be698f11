//! Runs on Redis: revisioned records (`<rev> <status>\n<json>` in the tenant's `runs`
//! hash) with lexicographic indexes by function, status, function and status, user and
//! replay, counts in a hash, the ready queue (a sorted set by due time), leases with
//! fencing tokens, and the wait index. Each write is one script call.

use std::collections::BTreeMap;

use async_trait::async_trait;
use redis::Value as RV;
use serde::Serialize;

use super::{decode_run, entry_arg, indexed_user, parse_member, status_name, text, RedisStore};
use crate::run::{QueueEntry, Run, RunStatus, WaitKey};
use crate::store::{
    fair_share, lookup_path, ClaimRequest, Claimed, EventStore as _, Lease, LeaseRef, Page,
    RunChange, RunFilter, RunStore, RunWrite, StoreError, StoreResult, TenantCaps, WaitQuery,
    WriteOutcome,
};

/// Tenants with queued entries or leases.
pub const QUEUED: &str = "queued";

type Entry<'a> = (String, &'a str, &'a str);
type WaitArg<'a> = [&'a str; 5];

fn wait_arg(k: &WaitKey) -> WaitArg<'_> {
    [&k.event, &k.path, &k.value, &k.run_id, &k.slot]
}

fn check_waits(ks: &[WaitKey]) -> StoreResult<()> {
    ks.iter().try_for_each(WaitKey::check)
}

/// A new run as the script takes it.
#[derive(Serialize)]
pub struct NewRun {
    id: String,
    #[serde(rename = "fn")]
    function: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    replay: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<String>,
    json: String,
    enq: Vec<(String, String, String)>,
    wadd: Vec<[String; 5]>,
}

impl NewRun {
    /// `run` with the additions of `change`; `event` names the event whose run list it
    /// joins (replays; ingest knows its event).
    pub fn new(run: &Run, change: &RunChange, event: Option<&str>) -> StoreResult<Self> {
        crate::store::check_key_part("run", &run.id)?;
        crate::store::check_key_part("function", &run.function_id)?;
        check_waits(&change.waits_add)?;
        Ok(Self {
            id: run.id.clone(),
            function: run.function_id.clone(),
            status: status_name(run.status),
            user: indexed_user(run.user_id.clone()),
            replay: run.replay_id.clone(),
            event: event.map(str::to_string),
            json: super::enc(run)?,
            enq: change
                .enqueue
                .iter()
                .map(|e| (e.due.to_string(), e.run_id.clone(), e.step_id.clone()))
                .collect(),
            wadd: change
                .waits_add
                .iter()
                .map(|k| wait_arg(k).map(str::to_string))
                .collect(),
        })
    }
}

#[derive(Serialize)]
struct LeaseArg<'a> {
    e: Entry<'a>,
    token: u64,
}

fn lease_arg(l: &LeaseRef) -> LeaseArg<'_> {
    LeaseArg {
        e: entry_arg(&l.entry),
        token: l.token,
    }
}

fn num(v: &RV) -> Option<i64> {
    text(v).and_then(|s| s.parse().ok())
}

impl RedisStore {
    async fn claim_tenant(
        &self,
        tenant: &str,
        req: &ClaimRequest,
        take: u64,
        limit: usize,
    ) -> StoreResult<Vec<Claimed>> {
        #[derive(Serialize)]
        struct In<'a> {
            owner: &'a str,
            now: i64,
            lease_ms: i64,
            limit: usize,
            take: u64,
            cap: u64,
        }
        let rows: Vec<Vec<RV>> = self
            .op(
                &self.tp(tenant),
                "claim",
                &In {
                    owner: &req.owner,
                    now: req.now,
                    lease_ms: req.lease_ms,
                    limit,
                    take,
                    cap: req.caps.of(tenant),
                },
                None,
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let bad = || StoreError::Backend("redis: a malformed claim reply".into());
            let m = match row.first() {
                Some(RV::BulkString(b)) => b.clone(),
                _ => return Err(bad()),
            };
            let entry = parse_member(tenant, &m)?;
            let token = row.get(1).and_then(num).ok_or_else(bad)? as u64;
            let claimed_at = row.get(2).and_then(num).ok_or_else(bad)?;
            let expires_at = row.get(3).and_then(num).ok_or_else(bad)?;
            let took_over = row.get(4).and_then(num);
            let run = match row.get(5) {
                Some(RV::BulkString(b)) if !b.is_empty() => Some(decode_run(&entry.run_id, b)?),
                _ => None,
            };
            out.push(Claimed {
                lease: Lease {
                    entry,
                    token,
                    owner: req.owner.clone(),
                    claimed_at,
                    expires_at,
                    took_over,
                },
                run,
            });
        }
        Ok(out)
    }

    /// Per tenant: leases held, earliest queued due, earliest lease expiry, entries due
    /// by `now`, leases expired by `now`.
    async fn peek(
        &self,
        tenant: &str,
        now: i64,
    ) -> StoreResult<(u64, Option<i64>, Option<i64>, u64, u64)> {
        #[derive(Serialize)]
        struct In {
            now: i64,
        }
        let v: Vec<RV> = self.op(&self.tp(tenant), "peek", &In { now }, None).await?;
        let n = |i: usize| v.get(i).and_then(num);
        let f = |i: usize| {
            v.get(i)
                .and_then(text)
                .and_then(|s| s.parse::<f64>().ok())
                .map(|x| x as i64)
        };
        Ok((
            n(0).unwrap_or(0) as u64,
            f(1),
            f(2),
            n(3).unwrap_or(0) as u64,
            n(4).unwrap_or(0) as u64,
        ))
    }

    fn by_tenant<T, K: Clone + Ord>(
        items: Vec<T>,
        key: impl Fn(&T) -> &K,
    ) -> BTreeMap<K, Vec<(usize, T)>> {
        let mut m: BTreeMap<K, Vec<(usize, T)>> = BTreeMap::new();
        for (i, it) in items.into_iter().enumerate() {
            m.entry(key(&it).clone()).or_default().push((i, it));
        }
        m
    }
}

#[async_trait]
impl RunStore for RedisStore {
    async fn get_run(&self, tenant: &str, id: &str) -> StoreResult<Option<Run>> {
        let v: Option<Vec<u8>> = self
            .q(redis::cmd("HGET").arg(self.tp(tenant) + "runs").arg(id))
            .await?;
        v.map(|v| decode_run(id, &v)).transpose()
    }

    async fn list_runs(
        &self,
        tenant: &str,
        filter: &RunFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> StoreResult<Page<Run>> {
        let limit = limit.max(1);
        let p = self.tp(tenant);
        let mut data = Vec::new();
        if let Some(ev) = &filter.event {
            let Some(se) = self.get_event(tenant, ev).await? else {
                return Ok(Page {
                    data,
                    next_cursor: None,
                });
            };
            let mut ids = se.run_ids;
            ids.sort();
            ids.reverse();
            ids.retain(|id| cursor.is_none_or(|c| id.as_str() < c));
            for run in self.runs_by_id(tenant, &ids).await? {
                if filter.matches(&run) {
                    data.push(run);
                }
            }
        } else {
            let index = if let Some(r) = &filter.replay {
                format!("{p}rrep:{r}")
            } else if let (Some(f), Some(s)) = (&filter.function, filter.status) {
                format!("{p}rfs:{f}\0{}", s.as_str())
            } else if let Some(f) = &filter.function {
                format!("{p}rfn:{f}")
            } else if let Some(u) = &filter.user {
                format!("{p}ru:{u}")
            } else if let Some(s) = filter.status {
                format!("{p}rst:{}", s.as_str())
            } else {
                p + "r"
            };
            let chunk = (limit + 1).clamp(16, 1000);
            let mut after = cursor.map(str::to_string);
            loop {
                let ids = self.ids_below(&index, after.as_deref(), 0, chunk).await?;
                let Some(last) = ids.last().cloned() else {
                    break;
                };
                for run in self.runs_by_id(tenant, &ids).await? {
                    if filter.matches(&run) {
                        data.push(run);
                    }
                }
                if data.len() > limit || ids.len() < chunk {
                    break;
                }
                after = Some(last);
            }
        }
        data.truncate(limit + 1);
        Ok(Page::from_overfull(data, limit, |r| r.id.clone()))
    }

    async fn run_counts(
        &self,
        tenant: &str,
        function_id: &str,
    ) -> StoreResult<BTreeMap<RunStatus, u64>> {
        let fields: Vec<String> = RunStatus::ALL
            .iter()
            .map(|s| format!("{function_id}\0{}", s.as_str()))
            .collect();
        let v: Vec<Option<i64>> = self
            .q(redis::cmd("HMGET")
                .arg(self.tp(tenant) + "counts")
                .arg(&fields))
            .await?;
        Ok(RunStatus::ALL
            .into_iter()
            .zip(v)
            .map(|(s, n)| (s, n.unwrap_or(0).max(0) as u64))
            .collect())
    }

    async fn write_run(&self, w: RunWrite) -> StoreResult<WriteOutcome> {
        check_waits(&w.change.waits_add)?;
        #[derive(Serialize)]
        struct RunArg {
            json: String,
            status: &'static str,
            #[serde(rename = "fn")]
            function: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            user: Option<String>,
        }
        #[derive(Serialize)]
        struct In<'a> {
            tenant: &'a str,
            id: &'a str,
            rev: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            run: Option<RunArg>,
            deq: Vec<Entry<'a>>,
            enq: Vec<Entry<'a>>,
            wadd: Vec<WaitArg<'a>>,
            wrem: Vec<WaitArg<'a>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            lease: Option<LeaseArg<'a>>,
        }
        let run = match &w.run {
            Some(r) => Some(RunArg {
                json: super::enc(r)?,
                status: status_name(r.status),
                function: r.function_id.clone(),
                user: indexed_user(r.user_id.clone()),
            }),
            None => None,
        };
        let input = In {
            tenant: &w.tenant,
            id: &w.run_id,
            rev: w.rev,
            run,
            deq: w.change.dequeue.iter().map(entry_arg).collect(),
            enq: w.change.enqueue.iter().map(entry_arg).collect(),
            wadd: w.change.waits_add.iter().map(wait_arg).collect(),
            wrem: w.change.waits_remove.iter().map(wait_arg).collect(),
            lease: w.lease.as_ref().map(lease_arg),
        };
        let reg = (!w.change.enqueue.is_empty()).then_some((QUEUED, w.tenant.as_str()));
        let v: Vec<RV> = self.op(&self.tp(&w.tenant), "write", &input, reg).await?;
        Ok(match v.first().and_then(text).as_deref() {
            Some("ok") => WriteOutcome::Written {
                rev: v.get(1).and_then(num).unwrap_or(0) as u64,
            },
            Some("lost") => WriteOutcome::LeaseLost,
            Some("conflict") => WriteOutcome::Conflict,
            _ => WriteOutcome::Missing,
        })
    }

    async fn find_waits(&self, queries: Vec<WaitQuery>) -> StoreResult<Vec<Vec<WaitKey>>> {
        let mut all = Vec::with_capacity(queries.len());
        for q in queries {
            let p = self.tp(&q.tenant);
            let paths: BTreeMap<String, i64> = self
                .q(redis::cmd("HGETALL").arg(format!("{p}wp:{}", q.event)))
                .await?;
            let mut sets = Vec::new();
            for (path, n) in paths {
                if n <= 0 {
                    continue;
                }
                let value = if path == "*" {
                    "*".to_string()
                } else {
                    match lookup_path(&q.incoming, &path) {
                        Some(v) => v,
                        None => continue,
                    }
                };
                sets.push((path, value));
            }
            let mut out = Vec::new();
            if !sets.is_empty() {
                let mut pipe = redis::pipe();
                for (path, value) in &sets {
                    pipe.cmd("SMEMBERS")
                        .arg(format!("{p}w:{}\0{path}\0{value}", q.event));
                }
                let members: Vec<Vec<String>> = self.pipe(&pipe).await?;
                for ((path, value), ms) in sets.iter().zip(members) {
                    let mut ms = ms;
                    ms.sort();
                    for m in ms {
                        let (run_id, slot) = m.split_once('\0').unwrap_or((&m, ""));
                        out.push(WaitKey {
                            tenant: q.tenant.clone(),
                            event: q.event.clone(),
                            path: path.clone(),
                            value: value.clone(),
                            run_id: run_id.into(),
                            slot: slot.into(),
                        });
                    }
                }
            }
            all.push(out);
        }
        Ok(all)
    }

    async fn claim(&self, req: ClaimRequest) -> StoreResult<Vec<Claimed>> {
        let tenants = self.registry(QUEUED).await?;
        let mut out = Vec::new();
        if tenants.len() == 1 {
            return self
                .claim_tenant(&tenants[0], &req, req.limit as u64, req.limit)
                .await;
        }
        // Tenants with work due and room, those holding the fewest leases first; a fair
        // share each, then what is left to whoever has more.
        let mut live = Vec::new();
        for t in tenants {
            let (held, qhead, lhead, due, expired) = self.peek(&t, req.now).await?;
            if due == 0 && expired == 0 {
                if qhead.is_none() && lhead.is_none() {
                    let p = self.tp(&t);
                    self.prune(QUEUED, &t, &[p.clone() + "q", p + "lease"])
                        .await?;
                }
                continue;
            }
            let room = req.caps.of(&t).saturating_sub(held);
            if room == 0 && expired == 0 {
                continue;
            }
            live.push((t, room, expired));
        }
        live.sort_by_key(|x| std::cmp::Reverse(x.1));
        let share = fair_share(req.limit, live.len()) as u64;
        let mut full = Vec::new();
        for (t, _, _) in &live {
            if out.len() >= req.limit {
                break;
            }
            let got = self
                .claim_tenant(t, &req, share, req.limit - out.len())
                .await?;
            if got.len() as u64 >= share {
                full.push(t.clone());
            }
            out.extend(got);
        }
        for t in full {
            if out.len() >= req.limit {
                break;
            }
            let left = req.limit - out.len();
            out.extend(self.claim_tenant(&t, &req, left as u64, left).await?);
        }
        Ok(out)
    }

    async fn renew(&self, leases: Vec<LeaseRef>, until: i64) -> StoreResult<Vec<bool>> {
        let n = leases.len();
        let mut out = vec![false; n];
        for (tenant, items) in Self::by_tenant(leases, |l| &l.entry.tenant) {
            #[derive(Serialize)]
            struct In<'a> {
                leases: Vec<LeaseArg<'a>>,
                #[serde(rename = "until")]
                until: i64,
            }
            let input = In {
                leases: items.iter().map(|(_, l)| lease_arg(l)).collect(),
                until,
            };
            let v: Vec<i64> = self.op(&self.tp(&tenant), "renew", &input, None).await?;
            for ((i, _), held) in items.iter().zip(v) {
                out[*i] = held == 1;
            }
        }
        Ok(out)
    }

    async fn release(&self, leases: Vec<LeaseRef>, remove_entries: bool) -> StoreResult<()> {
        for (tenant, items) in Self::by_tenant(leases, |l| &l.entry.tenant) {
            #[derive(Serialize)]
            struct In<'a> {
                leases: Vec<LeaseArg<'a>>,
                remove: bool,
            }
            let input = In {
                leases: items.iter().map(|(_, l)| lease_arg(l)).collect(),
                remove: remove_entries,
            };
            let _: i64 = self.op(&self.tp(&tenant), "release", &input, None).await?;
        }
        Ok(())
    }

    async fn leases_of(&self, entries: Vec<QueueEntry>) -> StoreResult<Vec<Option<Lease>>> {
        let mut out = vec![None; entries.len()];
        for (tenant, items) in Self::by_tenant(entries, |e| &e.tenant) {
            let members: Vec<String> = items
                .iter()
                .map(|(_, e)| format!("{}\0{}\0{}", e.due, e.run_id, e.step_id))
                .collect();
            let v: Vec<Option<String>> = self
                .q(redis::cmd("HMGET")
                    .arg(self.tp(&tenant) + "lease")
                    .arg(&members))
                .await?;
            for ((i, e), l) in items.into_iter().zip(v) {
                let Some(l) = l else { continue };
                let mut parts = l.splitn(6, '|');
                let mut n = || parts.next().unwrap_or_default().to_string();
                let (token, claimed, expires, took, _gone, owner) = (n(), n(), n(), n(), n(), n());
                out[i] = Some(Lease {
                    entry: e,
                    token: token.parse().unwrap_or(0),
                    owner,
                    claimed_at: claimed.parse().unwrap_or(0),
                    expires_at: expires.parse().unwrap_or(0),
                    took_over: took.parse().ok(),
                });
            }
        }
        Ok(out)
    }

    async fn inflight(&self, tenant: &str) -> StoreResult<u64> {
        self.q(redis::cmd("HLEN").arg(self.tp(tenant) + "lease"))
            .await
    }

    async fn next_due(&self, now: i64, caps: &TenantCaps) -> StoreResult<Option<i64>> {
        let mut best: Option<i64> = None;
        let mut keep = |t: Option<i64>| {
            if let Some(t) = t {
                best = Some(best.map_or(t, |b: i64| b.min(t)));
            }
        };
        for t in self.registry(QUEUED).await? {
            let (held, qhead, lhead, _, _) = self.peek(&t, now).await?;
            if held < caps.of(&t) {
                keep(qhead);
            }
            keep(lhead);
        }
        Ok(best)
    }

    async fn flush(&self) -> StoreResult<()> {
        // Every write is on Redis's append-only file before it is acknowledged.
        Ok(())
    }
}
