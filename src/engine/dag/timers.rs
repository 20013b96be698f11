//! Timers and backoff: each step has at most one queue entry (its timer), moved or
//! cleared as the step sleeps, waits, retries or ends.

use crate::run::{QueueEntry, Run};
use crate::store::RunChange;

/// Exponential backoff with "equal jitter": half fixed, half random; capped at one hour.
pub fn backoff_ms(base_ms: i64, attempt: u32, jitter: f64) -> i64 {
    let exp = base_ms.saturating_mul(1i64 << attempt.saturating_sub(1).min(20));
    let capped = exp.clamp(1, 3_600_000);
    capped / 2 + ((capped / 2) as f64 * jitter.clamp(0.0, 1.0)) as i64
}

/// Moves step `idx`'s single queue entry (its timer) to `due`.
pub(super) fn rearm_timer(run: &mut Run, idx: usize, due: i64, change: &mut RunChange) {
    let (tenant, run_id) = (run.tenant.clone(), run.id.clone());
    let st = &mut run.steps[idx];
    if let Some(old) = st.queued.take() {
        change.dequeue.push(QueueEntry {
            due: old,
            tenant: tenant.clone(),
            run_id: run_id.clone(),
            step_id: st.id.clone(),
        });
    }
    st.queued = Some(due);
    st.wake_at = Some(due);
    change.enqueue.push(QueueEntry {
        due,
        tenant,
        run_id,
        step_id: st.id.clone(),
    });
}

pub(super) fn clear_timer(run: &mut Run, idx: usize, change: &mut RunChange) {
    let st = &mut run.steps[idx];
    if let Some(due) = st.queued.take() {
        change.dequeue.push(QueueEntry {
            due,
            tenant: run.tenant.clone(),
            run_id: run.id.clone(),
            step_id: st.id.clone(),
        });
        st.wake_at = None;
    }
}
