//! The run writer: one thread applies run updates from all workers in batches, one
//! atomic write (and at most one fsync) per batch. Workers no longer queue one by one
//! behind the store's write lock; under load a single commit carries many completions
//! (group commit), and an idle system still commits each update at once.

use std::sync::mpsc;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::run::Run;
use crate::store::{Durability, RunChange, RunOp, Store, StoreError, StoreResult};

/// Most updates applied in one write.
const MAX_BATCH: usize = 256;

struct Job {
    op: RunOp,
    durability: Durability,
    reply: oneshot::Sender<StoreResult<Option<Run>>>,
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
    ) -> StoreResult<Option<Run>> {
        let (reply, rx) = oneshot::channel();
        let op = RunOp {
            tenant: tenant.into(),
            id: id.into(),
            update: Box::new(update),
        };
        self.tx
            .send(Job {
                op,
                durability,
                reply,
            })
            .map_err(|_| StoreError::Backend("the run writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Backend("the run writer dropped an update".into()))?
    }
}

fn apply(store: &dyn Store, jobs: Vec<Job>) {
    let durability = if jobs.iter().any(|j| j.durability == Durability::Durable) {
        Durability::Durable
    } else {
        Durability::Lazy
    };
    let (mut ops, replies): (Vec<RunOp>, Vec<_>) = jobs
        .into_iter()
        .map(|j| (j.op, (j.reply, j.durability)))
        .unzip();
    match store.update_runs(&mut ops, durability) {
        Ok(runs) => {
            for ((reply, _), run) in replies.into_iter().zip(runs) {
                let _ = reply.send(Ok(run));
            }
        }
        // One bad update must not fail the others: retry each on its own.
        Err(_) => {
            for (mut op, (reply, d)) in ops.into_iter().zip(replies) {
                let r = store
                    .update_runs(std::slice::from_mut(&mut op), d)
                    .map(|mut v| v.pop().flatten());
                let _ = reply.send(r);
            }
        }
    }
}
