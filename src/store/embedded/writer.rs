//! Group commit: one thread applies every write of the embedded store — event appends,
//! matched events' runs, run transitions, small writes — in batches, one transaction and
//! at most one fsync per batch. Under load a single commit carries many completions and
//! many acknowledged events; an idle system still commits each job at once. A job that
//! fails or panics fails alone: the batch is retried job by job, and the thread goes on.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Arc;

use tokio::sync::oneshot;

use super::events;
use super::kv::{Kv, KvWrite};
use super::leases::Leases;
use super::queue::{self, QueueTx};
use super::runs::{apply_write, PreparedWrite};
use crate::event::Event;
use crate::run::QueueEntry;
use crate::store::{Ingested, LeaseRef, StoreError, StoreResult, WriteOutcome};

/// Most jobs applied in one batch.
const MAX_BATCH: usize = 256;

/// How long a lease checked by a write is kept from expiring while the write commits.
const COMMIT_GRACE_MS: i64 = 60_000;

/// A write's answer, boxed (for [`Job::Exec`]).
pub type AnyBox = Box<dyn Any + Send>;
/// A generic write: runs in the batch's transaction, may run again if the batch fails.
pub type ExecFn = Box<dyn FnMut(&mut dyn KvWrite) -> StoreResult<AnyBox> + Send>;

// Every reply carries the job's input back, so that it is freed by the thread that
// allocated it: glibc's malloc takes the owning arena's lock for a free from another
// thread, and those lock hand-offs were ~10 % of a loaded server's CPU.
/// How an append is answered: the ids of earlier events with the same keys, and the
/// events back.
pub type AppendReply = oneshot::Sender<(StoreResult<Vec<Option<String>>>, Vec<Event>)>;

/// One write for the writer thread. (Jobs are moved once, through a channel: boxing the
/// large ones would cost an allocation per write for nothing.)
#[allow(clippy::large_enum_variant)]
pub enum Job {
    /// Events of one tenant.
    Append {
        /// Tenant.
        tenant: String,
        /// The events.
        events: Vec<Event>,
        /// The time their `ts` is compared with.
        now: i64,
        /// The answer, with the events back.
        reply: AppendReply,
    },
    /// Matched events' runs.
    Ingest {
        /// The batch.
        batch: Vec<Ingested>,
        /// The answer, with the batch back.
        reply: oneshot::Sender<(StoreResult<()>, Vec<Ingested>)>,
    },
    /// A run transition.
    Run {
        /// The write.
        write: PreparedWrite,
        /// Its lease, checked first and released once written.
        lease: Option<LeaseRef>,
        /// Whether it must be fsynced before the answer.
        durable: bool,
        /// The answer, with the write back.
        reply: oneshot::Sender<(StoreResult<WriteOutcome>, PreparedWrite)>,
    },
    /// Anything else.
    Exec {
        /// Whether it must be fsynced before the answer.
        durable: bool,
        /// The write.
        f: ExecFn,
        /// The answer.
        reply: oneshot::Sender<StoreResult<AnyBox>>,
    },
    /// Claim markers to set or clear (nobody waits for them; they are fsynced with
    /// their batch).
    Mark(Vec<(QueueEntry, Option<i64>)>),
}

impl Job {
    fn durable(&self) -> bool {
        match self {
            // Claim markers are made durable with their batch, though nobody waits for
            // them: an idle system pays one fsync, a loaded one shares the results'.
            Job::Append { .. } | Job::Ingest { .. } | Job::Mark(_) => true,
            Job::Run { durable, .. } | Job::Exec { durable, .. } => *durable,
        }
    }
}

/// What applying a job gave.
enum Out {
    Ids(Vec<Option<String>>),
    Unit,
    Write(WriteOutcome),
    Any(AnyBox),
}

/// Handle to the writer thread; it stops when every handle is dropped.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread over `kv`, checking and releasing leases in `leases`;
    /// it ends once every handle is dropped.
    pub fn start(
        kv: Arc<dyn Kv>,
        leases: Arc<Leases>,
    ) -> StoreResult<(Self, std::thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
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
                    apply_batch(&*kv, &leases, jobs);
                }
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
        Ok((Self { tx }, thread))
    }

    /// A handle to no thread: every job sent fails.
    pub fn stopped() -> Self {
        Self {
            tx: mpsc::channel().0,
        }
    }

    /// Queues a job.
    pub fn send(&self, job: Job) -> StoreResult<()> {
        self.tx
            .send(job)
            .map_err(|_| StoreError::Backend("the writer has stopped".into()))
    }

    /// Runs `f` in the next batch and returns its answer.
    pub async fn exec<T: Send + 'static>(
        &self,
        durable: bool,
        mut f: impl FnMut(&mut dyn KvWrite) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Exec {
            durable,
            f: Box::new(move |w| Ok(Box::new(f(w)?) as AnyBox)),
            reply,
        })?;
        let out = rx.await.map_err(|_| dropped())??;
        out.downcast::<T>()
            .map(|b| *b)
            .map_err(|_| StoreError::Backend("the writer answered with the wrong type".into()))
    }
}

/// The error of a job whose answer never came.
pub fn dropped() -> StoreError {
    StoreError::Backend("the writer dropped a job".into())
}

fn apply_one(w: &mut dyn KvWrite, q: &mut QueueTx, job: &mut Job) -> StoreResult<Out> {
    match job {
        Job::Append {
            tenant,
            events,
            now,
            ..
        } => Ok(Out::Ids(events::append(w, tenant, events, *now)?)),
        Job::Ingest { batch, .. } => {
            events::ingest(w, batch)?;
            Ok(Out::Unit)
        }
        Job::Run { write, .. } => Ok(Out::Write(apply_write(w, q, write)?)),
        Job::Exec { f, .. } => Ok(Out::Any(f(w)?)),
        Job::Mark(marks) => {
            queue::set_markers(w, marks)?;
            Ok(Out::Unit)
        }
    }
}

fn panic_text(p: Box<dyn Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Applies `jobs` in one transaction; on any failure, aborts it and gives back why.
fn try_together(kv: &dyn Kv, jobs: &mut [Job]) -> Result<Vec<Out>, StoreError> {
    let durable = jobs.iter().any(Job::durable);
    let mut outs = Vec::new();
    let r = catch_unwind(AssertUnwindSafe(|| {
        kv.write(durable, &mut |w| {
            outs.clear();
            let mut q = QueueTx::default();
            for job in jobs.iter_mut() {
                outs.push(apply_one(w, &mut q, job)?);
            }
            q.finish(w)?;
            Ok(true)
        })
    }));
    match r {
        Ok(Ok(())) => Ok(outs),
        Ok(Err(e)) => Err(e),
        Err(p) => Err(StoreError::Panicked(panic_text(p))),
    }
}

fn apply_batch(kv: &dyn Kv, leases: &Leases, jobs: Vec<Job>) {
    let now = crate::event::now_ms();
    // A write under a lease no longer held is refused before it touches anything.
    let mut live = Vec::with_capacity(jobs.len());
    for job in jobs {
        match job {
            Job::Run {
                write,
                lease: Some(l),
                reply,
                ..
            } if !leases.check(&l, now, COMMIT_GRACE_MS) => {
                let _ = reply.send((Ok(WriteOutcome::LeaseLost), write));
            }
            j => live.push(j),
        }
    }
    let mut jobs = live;
    if jobs.is_empty() {
        return;
    }
    let results: Vec<StoreResult<Out>> = match try_together(kv, &mut jobs) {
        Ok(outs) => outs.into_iter().map(Ok).collect(),
        Err(e) => {
            if jobs.len() > 1 {
                tracing::warn!(
                    "a batch of {} writes failed ({e}); applying them one by one",
                    jobs.len()
                );
            }
            // One bad job must not fail the others.
            jobs.iter_mut()
                .map(|j| try_together(kv, std::slice::from_mut(j)).map(|mut o| o.remove(0)))
                .collect()
        }
    };
    for (job, result) in jobs.into_iter().zip(results) {
        reply(leases, job, result);
    }
}

fn reply(leases: &Leases, job: Job, result: StoreResult<Out>) {
    if let Err(e) = &result {
        tracing::error!("a storage write failed: {e}");
    }
    match job {
        Job::Append { events, reply, .. } => {
            let r = result.map(|o| match o {
                Out::Ids(ids) => ids,
                _ => Vec::new(),
            });
            let _ = reply.send((r, events));
        }
        Job::Ingest { batch, reply } => {
            let _ = reply.send((result.map(drop), batch));
        }
        Job::Run {
            write,
            lease,
            reply,
            ..
        } => {
            let r = result.map(|o| match o {
                Out::Write(w) => w,
                _ => WriteOutcome::Missing,
            });
            if let (Ok(WriteOutcome::Written { .. }), Some(l)) = (&r, &lease) {
                leases.release(l);
            }
            if let Ok(WriteOutcome::Written { .. }) = &r {
                // Entries removed under another's lease: renewal tells their holders.
                leases.removed(&write.change.dequeue);
            }
            let _ = reply.send((r, write));
        }
        Job::Exec { reply, .. } => {
            let _ = reply.send(result.map(|o| match o {
                Out::Any(a) => a,
                _ => Box::new(()) as AnyBox,
            }));
        }
        Job::Mark(marks) => {
            leases.flushed(marks.iter().filter(|(_, s)| s.is_some()).count() as u64);
        }
    }
}
