//! One [`StepRuntime`] over all adapters: each step goes to the adapter its target's
//! runtime names; a runtime this server does not offer is refused at deploy, naming why.

use std::sync::Arc;

use super::{
    BoxFuture, RuntimeError, RuntimeKind, StepFailure, StepOutcome, StepRequest, StepRuntime,
    Target,
};

/// The adapters of this server, by runtime.
#[derive(Default)]
pub struct Runtimes {
    adapters: [Option<Arc<dyn StepRuntime>>; 4],
    absent: [Option<String>; 4],
}

fn slot(kind: RuntimeKind) -> usize {
    kind as usize
}

impl Runtimes {
    /// No adapter yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `kind`'s steps on `adapter`.
    pub fn with(mut self, kind: RuntimeKind, adapter: Arc<dyn StepRuntime>) -> Self {
        self.adapters[slot(kind)] = Some(adapter);
        self.absent[slot(kind)] = None;
        self
    }

    /// Offers no `kind` steps, for the reason given (shown when a step asks for one).
    pub fn without(mut self, kind: RuntimeKind, why: impl Into<String>) -> Self {
        self.adapters[slot(kind)] = None;
        self.absent[slot(kind)] = Some(why.into());
        self
    }

    fn adapter(&self, kind: RuntimeKind) -> Result<&Arc<dyn StepRuntime>, String> {
        self.adapters[slot(kind)].as_ref().ok_or_else(|| {
            let why = self.absent[slot(kind)]
                .as_deref()
                .unwrap_or("this server is not set up for them");
            format!("{} steps cannot run here: {why}", kind.name())
        })
    }
}

impl StepRuntime for Runtimes {
    fn prepare<'a>(
        &'a self,
        tenant: &'a str,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<super::Prepared, RuntimeError>> {
        match self.adapter(target.kind()) {
            Ok(a) => a.prepare(tenant, target),
            Err(why) => Box::pin(async move { Err(RuntimeError::Unavailable(why)) }),
        }
    }

    fn run(&self, req: StepRequest) -> BoxFuture<'_, StepOutcome> {
        match self.adapter(req.target.kind()) {
            Ok(a) => a.run(req),
            Err(why) => Box::pin(async move {
                StepOutcome::failed(std::time::Instant::now(), StepFailure::Unavailable(why))
            }),
        }
    }

    fn counters(&self) -> Vec<super::RuntimeCounter> {
        self.adapters
            .iter()
            .flatten()
            .flat_map(|a| a.counters())
            .collect()
    }
}
