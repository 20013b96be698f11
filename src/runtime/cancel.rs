//! A step's cancellation handle: cheap to clone and to check, awaitable by adapters
//! that block on a service (a container, a request).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Fired once when the step's run is cancelled; every clone sees it.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    fired: AtomicBool,
    notify: Notify,
}

impl Cancel {
    /// A handle that has not fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires it: every waiter wakes, every later check sees it.
    pub fn fire(&self) {
        self.0.fired.store(true, Ordering::Release);
        self.0.notify.notify_waiters();
    }

    /// Whether it has fired.
    pub fn is_fired(&self) -> bool {
        self.0.fired.load(Ordering::Acquire)
    }

    /// Waits until it fires.
    pub async fn fired(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            // Registered before the check, so a fire between the two is not missed.
            notified.as_mut().enable();
            if self.is_fired() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiter_wakes_when_it_fires_and_later_waits_return_at_once() {
        let c = Cancel::new();
        let waiter = tokio::spawn({
            let c = c.clone();
            async move { c.fired().await }
        });
        assert!(!c.is_fired());
        c.fire();
        waiter.await.unwrap();
        c.fired().await;
        assert!(c.clone().is_fired());
    }
}
