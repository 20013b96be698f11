//! The live stream: what changes in the engine (events received, runs and their steps
//! moving on, rollouts set or rolled back), broadcast to whoever listens — the SSE
//! endpoint and the UI. Nothing is built or sent while nobody listens, so the hot paths
//! pay one atomic load. A listener that falls behind is told how much it missed. On a
//! store several processes share, the bus is connected to the others' (see `relay`):
//! updates go out while another process has listeners, and theirs come in.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::event::Event;
use crate::run::{Run, RunStatus, StepStatus};

/// How many updates a slow listener may fall behind before it misses some.
const CAPACITY: usize = 4096;

/// One change, as the stream shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Update {
    /// An event was stored.
    #[serde(rename = "event.received")]
    EventReceived {
        /// Its id.
        id: String,
        /// Its name.
        name: String,
        /// Its `user.id`.
        user_id: Option<String>,
    },
    /// A run was created or moved on.
    #[serde(rename = "run.updated")]
    RunUpdated {
        /// The run.
        run_id: String,
        /// Its function.
        function_id: String,
        /// Its user.
        user_id: Option<String>,
        /// Its status now.
        status: RunStatus,
        /// The step whose status changed, if one did.
        #[serde(skip_serializing_if = "Option::is_none")]
        step: Option<String>,
        /// That step's status now.
        #[serde(skip_serializing_if = "Option::is_none")]
        step_status: Option<StepStatus>,
    },
    /// A new version of a function was deployed (by the API, `weir deploy`, or
    /// `weir dev` reloading a changed file).
    #[serde(rename = "function.deployed")]
    FunctionDeployed {
        /// The function.
        function_id: String,
        /// Its new version.
        version: u64,
    },
    /// A function's rollout was set, promoted or rolled back.
    #[serde(rename = "rollout.changed")]
    RolloutChanged {
        /// The function.
        function_id: String,
        /// The rollout now current.
        rollout_id: String,
        /// `active` or `rolled_back`.
        status: String,
    },
}

impl Update {
    /// The SSE event name.
    pub fn kind(&self) -> &'static str {
        match self {
            Update::EventReceived { .. } => "event.received",
            Update::RunUpdated { .. } => "run.updated",
            Update::RolloutChanged { .. } => "rollout.changed",
            Update::FunctionDeployed { .. } => "function.deployed",
        }
    }

    /// The function it concerns, if any.
    pub fn function(&self) -> Option<&str> {
        match self {
            Update::RunUpdated { function_id, .. }
            | Update::RolloutChanged { function_id, .. }
            | Update::FunctionDeployed { function_id, .. } => Some(function_id),
            Update::EventReceived { .. } => None,
        }
    }

    /// The user it concerns, if any.
    pub fn user(&self) -> Option<&str> {
        match self {
            Update::RunUpdated { user_id, .. } | Update::EventReceived { user_id, .. } => {
                user_id.as_deref()
            }
            Update::RolloutChanged { .. } | Update::FunctionDeployed { .. } => None,
        }
    }

    /// A run's update: its status, and the first step whose status differs from
    /// `before` (the steps' statuses before the change; empty for a new run).
    pub fn of_run(run: &Run, before: &[StepStatus]) -> Self {
        let changed = run
            .steps
            .iter()
            .enumerate()
            .find(|(i, s)| before.get(*i) != Some(&s.status) && !before.is_empty());
        Update::RunUpdated {
            run_id: run.id.clone(),
            function_id: run.function_id.clone(),
            user_id: run.user_id.clone(),
            status: run.status,
            step: changed.map(|(_, s)| s.id.clone()),
            step_status: changed.map(|(_, s)| s.status),
        }
    }

    /// An event's update.
    pub fn of_event(e: &Event) -> Self {
        Update::EventReceived {
            id: e.id.clone(),
            name: e.name.clone(),
            user_id: e.user_id(),
        }
    }
}

/// A tenant's update, as broadcast.
pub type Tagged = Arc<(String, Update)>;

/// The broadcast of every tenant's updates.
pub struct Bus {
    tx: broadcast::Sender<Tagged>,
    /// Listeners now (an atomic, so that checking costs no lock).
    listeners: Arc<AtomicUsize>,
    /// The other processes on the same store, if it is shared.
    remote: OnceLock<Arc<super::relay::Remote>>,
}

impl Default for Bus {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
            listeners: Arc::default(),
            remote: OnceLock::new(),
        }
    }
}

impl Bus {
    /// Whether anyone listens, here or in another process (build updates only then).
    pub fn active(&self) -> bool {
        self.listeners() > 0 || self.remote.get().is_some_and(|r| r.wanted())
    }

    /// Listeners in this process.
    pub fn listeners(&self) -> usize {
        self.listeners.load(Ordering::Relaxed)
    }

    /// Sends a tenant's update to every listener, here and in the other processes.
    pub fn publish(&self, tenant: &str, u: Update) {
        let remote = self.remote.get().filter(|r| r.wanted());
        if self.listeners() > 0 {
            if let Some(r) = remote {
                r.send(tenant, u.clone());
            }
            let _ = self.tx.send(Arc::new((tenant.to_string(), u)));
        } else if let Some(r) = remote {
            r.send(tenant, u);
        }
    }

    /// An update from another process, to this one's listeners only.
    pub fn deliver(&self, tenant: &str, u: Update) {
        if self.listeners() > 0 {
            let _ = self.tx.send(Arc::new((tenant.to_string(), u)));
        }
    }

    /// Connects the bus to the other processes (once).
    pub fn connect(&self, remote: Arc<super::relay::Remote>) {
        let _ = self.remote.set(remote);
    }

    /// The other processes, if connected.
    pub fn remote(&self) -> Option<&Arc<super::relay::Remote>> {
        self.remote.get()
    }

    /// A new listener, from now on.
    pub fn subscribe(&self) -> Listener {
        self.listeners.fetch_add(1, Ordering::Relaxed);
        Listener {
            rx: self.tx.subscribe(),
            count: self.listeners.clone(),
        }
    }
}

/// One listener of the bus; counted while it lives.
pub struct Listener {
    rx: broadcast::Receiver<Tagged>,
    count: Arc<AtomicUsize>,
}

impl Listener {
    /// The next update (or how many were missed, or that the bus is gone).
    pub async fn recv(&mut self) -> Result<Tagged, broadcast::error::RecvError> {
        self.rx.recv().await
    }

    /// The next update if one is waiting.
    pub fn try_recv(&mut self) -> Result<Tagged, broadcast::error::TryRecvError> {
        self.rx.try_recv()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_sent_without_listeners_and_each_listener_gets_every_update() {
        let bus = Bus::default();
        assert!(!bus.active());
        bus.publish(
            "t",
            Update::RolloutChanged {
                function_id: "f".into(),
                rollout_id: "r".into(),
                status: "active".into(),
            },
        );
        let mut a = bus.subscribe();
        let mut b = bus.subscribe();
        let u = Update::EventReceived {
            id: "e1".into(),
            name: "n".into(),
            user_id: Some("u".into()),
        };
        bus.publish("t", u.clone());
        for rx in [&mut a, &mut b] {
            let got = rx.try_recv().unwrap();
            assert_eq!(*got, ("t".to_string(), u.clone()));
            assert!(
                rx.try_recv().is_err(),
                "the update sent before listening is not replayed"
            );
        }
        drop((a, b));
        assert!(!bus.active(), "a dropped listener is no longer counted");
        assert_eq!(
            serde_json::to_value(&u).unwrap(),
            serde_json::json!({"type": "event.received", "id": "e1", "name": "n", "user_id": "u"})
        );
    }
}
