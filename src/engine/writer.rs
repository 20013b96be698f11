//! The writer: one thread applies run updates and event appends from all workers and
//! HTTP requests in batches, with at most one fsync per batch. Nobody queues one by one
//! behind the store's write lock (or behind another's fsync); under load a single commit
//! carries many completions and many acknowledged events (group commit), and an idle
//! system still commits each job at once.

use std::sync::mpsc;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::event::Event;
use crate::run::{QueueEntry, Run};
use crate::store::{
    Durability, EventBatch, Ingested, RunChange, RunOp, Store, StoreError, StoreResult,
};

/// Most jobs applied in one batch.
const MAX_BATCH: usize = 256;

// Every reply carries the job's input back, so that it is freed by the thread that
// allocated it: glibc's malloc takes the owning arena's lock for a free from another
// thread, and those lock hand-offs were ~10 % of a loaded server's CPU. Runs the writer
// decodes are freed by the writer.
enum Job {
    Run {
        op: RunOp,
        durability: Durability,
        reply: oneshot::Sender<(StoreResult<()>, RunOp)>,
    },
    Append {
        batch: EventBatch,
        reply: oneshot::Sender<(StoreResult<Vec<Option<String>>>, EventBatch)>,
    },
    Ingest {
        batch: Vec<Ingested>,
        reply: oneshot::Sender<(StoreResult<()>, Vec<Ingested>)>,
    },
    /// A step started executing (no reply: see [`Writer::mark_claimed`]).
    Claim { entry: QueueEntry, started: i64 },
}

/// Handle to the writer thread.
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread on `store`; it stops when the handle is dropped.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("weir-writer".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut jobs = vec![first];
                    while jobs.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(j) => jobs.push(j),
                            Err(_) => break,
                        }
                    }
                    apply(&*store, jobs);
                }
            })
            .expect("the writer thread starts");
        Self { tx }
    }

    /// Applies `update` to run `id` (as [`Store::update_run`]) in the next batch.
    pub async fn update(
        &self,
        tenant: &str,
        id: &str,
        durability: Durability,
        update: impl FnMut(&mut Run) -> Option<RunChange> + Send + 'static,
    ) -> StoreResult<()> {
        let (reply, rx) = oneshot::channel();
        let op = RunOp {
            tenant: tenant.into(),
            id: id.into(),
            update: Box::new(update),
        };
        self.send(Job::Run {
            op,
            durability,
            reply,
        })?;
        let (result, _op) = rx
            .await
            .map_err(|_| StoreError::Backend("the writer dropped an update".into()))?;
        result
    }

    /// Stores events durably (as [`Store::append_events`]) in the next batch.
    pub async fn append(
        &self,
        tenant: &str,
        events: Vec<Event>,
        now: i64,
    ) -> StoreResult<Vec<Option<String>>> {
        let (reply, rx) = oneshot::channel();
        let batch = EventBatch {
            tenant: tenant.into(),
            events,
            now,
        };
        self.send(Job::Append { batch, reply })?;
        let (result, _events) = rx
            .await
            .map_err(|_| StoreError::Backend("the writer dropped an append".into()))?;
        result
    }

    /// Records matched events' runs durably (as [`Store::commit_ingest`]) in the next batch.
    pub async fn ingest(&self, batch: Vec<Ingested>) -> StoreResult<()> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Ingest { batch, reply })?;
        let (result, _batch) = rx
            .await
            .map_err(|_| StoreError::Backend("the writer dropped an ingest".into()))?;
        result
    }

    /// Records, in the next batch and without waiting, that the step of `entry` started
    /// executing at `started`. Should the process stop before the step's result is
    /// recorded, the next start finds the claim and counts the attempt (so a step that
    /// keeps taking the process down runs out of retries instead of looping).
    pub fn mark_claimed(&self, entry: QueueEntry, started: i64) {
        let _ = self.send(Job::Claim { entry, started });
    }

    fn send(&self, job: Job) -> StoreResult<()> {
        self.tx
            .send(job)
            .map_err(|_| StoreError::Backend("the writer has stopped".into()))
    }
}

type RunReply = (oneshot::Sender<(StoreResult<()>, RunOp)>, Durability);
type AppendReply = oneshot::Sender<(StoreResult<Vec<Option<String>>>, EventBatch)>;

fn apply(store: &dyn Store, jobs: Vec<Job>) {
    let (mut ops, mut run_replies) = (Vec::new(), Vec::<RunReply>::new());
    let (mut batches, mut append_replies) = (Vec::new(), Vec::<AppendReply>::new());
    let mut ingests = Vec::new();
    let mut claims = Vec::new();
    for j in jobs {
        match j {
            Job::Run {
                op,
                durability,
                reply,
            } => {
                ops.push(op);
                run_replies.push((reply, durability));
            }
            Job::Append { batch, reply } => {
                batches.push(batch);
                append_replies.push(reply);
            }
            Job::Ingest { batch, reply } => ingests.push((batch, reply)),
            Job::Claim { entry, started } => claims.push((entry, started)),
        }
    }
    // Claims first: a step's result (later in the channel) removes its claim.
    if !claims.is_empty() {
        if let Err(e) = store.mark_claimed(&claims) {
            tracing::warn!("cannot record {} step claims: {e}", claims.len());
        }
    }
    // Appends and matched events' runs commit first without a flush of their own: the
    // run updates' durable commit (or an explicit flush) below makes all of it durable
    // with one fsync. Each ingest is its own commit, so one bad batch fails alone.
    let appended = if batches.is_empty() {
        None
    } else {
        Some(store.append_batches(&batches, Durability::Lazy))
    };
    let ingested: Vec<_> = ingests
        .into_iter()
        .map(|(b, reply)| (store.commit_ingest(&b, Durability::Lazy), b, reply))
        .collect();
    // Claims are made durable with the batch too (no one waits for them; an idle system
    // pays one fsync, a loaded one shares the results' fsync).
    let unflushed = appended.is_some() || !ingested.is_empty() || !claims.is_empty();
    let durable = run_replies.iter().any(|(_, d)| *d == Durability::Durable);
    let mut flushed = false;
    if !ops.is_empty() {
        let durability = if durable || unflushed {
            Durability::Durable
        } else {
            Durability::Lazy
        };
        match store.update_runs(&mut ops, durability) {
            Ok(runs) => {
                flushed = durability == Durability::Durable;
                drop(runs);
                for (op, (reply, _)) in ops.into_iter().zip(run_replies) {
                    let _ = reply.send((Ok(()), op));
                }
            }
            // One bad update must not fail the others: retry each on its own.
            Err(_) => {
                for (mut op, (reply, d)) in ops.into_iter().zip(run_replies) {
                    let r = store
                        .update_runs(std::slice::from_mut(&mut op), d)
                        .map(drop);
                    let _ = reply.send((r, op));
                }
            }
        }
    }
    let sync = if flushed || !unflushed {
        Ok(())
    } else {
        store
            .flush()
            .map_err(|e| StoreError::Backend(format!("cannot flush: {e}")))
    };
    let synced = || match &sync {
        Ok(()) => Ok(()),
        Err(e) => Err(StoreError::Backend(e.to_string())),
    };
    for (r, batch, reply) in ingested {
        let _ = reply.send((r.and_then(|()| synced()), batch));
    }
    match appended {
        None => {}
        Some(Ok(answers)) => {
            for ((reply, a), b) in append_replies.into_iter().zip(answers).zip(batches) {
                let _ = reply.send((synced().map(|()| a), b));
            }
        }
        // One bad batch (a bad tenant name…) must not fail the others.
        Some(Err(_)) => {
            for (b, reply) in batches.into_iter().zip(append_replies) {
                let r = store.append_events(&b.tenant, &b.events, b.now);
                let _ = reply.send((r, b));
            }
        }
    }
}
