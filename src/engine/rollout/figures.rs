//! The figures of runs started under a rollout, per version: counted as runs start and
//! end, and rebuilt from the stored runs at start (the runs are the record; these are a
//! tally of them).
//!
//! A run counts as *failed* when it ended `failed` (a step failed for good, or a
//! condition could not be evaluated); *completed* when it ended `completed`. A cancelled
//! run is neither: it is counted apart and leaves the failure rate alone, which is
//! `failed / (completed + failed)`. Durations (`p50_ms`, `p95_ms`) are those of
//! completed and failed runs, from creation to end.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::run::RunStatus;

/// Most durations kept per version; past it, a uniform sample of them is kept.
const MAX_SAMPLES: usize = 50_000;

/// One version's figures under a rollout, as the API shows them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct VersionFigures {
    /// The version.
    pub version: u64,
    /// Its weight in the rollout.
    pub weight: u32,
    /// Runs started on it under the rollout.
    pub runs: u64,
    /// Of those, not ended yet.
    pub running: u64,
    /// Ended `completed`.
    pub completed: u64,
    /// Ended `failed`.
    pub failed: u64,
    /// Ended `cancelled` (not failures).
    pub cancelled: u64,
    /// `failed / (completed + failed)`; `null` before any ended.
    pub failure_rate: Option<f64>,
    /// Median duration of ended runs (ms).
    pub p50_ms: Option<u64>,
    /// 95th percentile duration of ended runs (ms).
    pub p95_ms: Option<u64>,
}

impl VersionFigures {
    /// Completed and failed runs.
    pub fn finished(&self) -> u64 {
        self.completed + self.failed
    }
}

#[derive(Default)]
struct Tally {
    runs: u64,
    completed: u64,
    failed: u64,
    cancelled: u64,
    durations: Vec<u64>,
    seen: u64,
    rng: u64,
}

impl Tally {
    fn ended(&mut self, status: RunStatus, duration_ms: u64) {
        match status {
            RunStatus::Completed => self.completed += 1,
            RunStatus::Failed => self.failed += 1,
            RunStatus::Cancelled => {
                self.cancelled += 1;
                return;
            }
            _ => return,
        }
        self.seen += 1;
        if self.durations.len() < MAX_SAMPLES {
            self.durations.push(duration_ms);
        } else {
            // Reservoir sampling with a small xorshift: every ended run equally likely kept.
            self.rng ^= self.rng << 13 | 1;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let j = self.rng % self.seen;
            if (j as usize) < MAX_SAMPLES {
                self.durations[j as usize] = duration_ms;
            }
        }
    }

    fn figures(&self, version: u64, weight: u32) -> VersionFigures {
        let finished = self.completed + self.failed;
        let mut d = self.durations.clone();
        d.sort_unstable();
        let pct = |p: f64| -> Option<u64> {
            if d.is_empty() {
                return None;
            }
            let i = ((d.len() as f64 * p).ceil() as usize).clamp(1, d.len()) - 1;
            Some(d[i])
        };
        VersionFigures {
            version,
            weight,
            runs: self.runs,
            running: self
                .runs
                .saturating_sub(finished)
                .saturating_sub(self.cancelled),
            completed: self.completed,
            failed: self.failed,
            cancelled: self.cancelled,
            failure_rate: (finished > 0).then(|| self.failed as f64 / finished as f64),
            p50_ms: pct(0.50),
            p95_ms: pct(0.95),
        }
    }
}

/// The tallies of every live rollout, by rollout id and version.
#[derive(Default)]
pub struct Figures {
    inner: Mutex<HashMap<String, HashMap<u64, Tally>>>,
}

impl Figures {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, HashMap<u64, Tally>>) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Whether this process tallies `rollout`.
    pub fn has(&self, rollout: &str) -> bool {
        self.with(|m| m.contains_key(rollout))
    }

    /// Starts tallying a rollout (from nothing).
    pub fn open(&self, rollout: &str) {
        self.with(|m| {
            m.entry(rollout.to_string()).or_default();
        });
    }

    /// Stops tallying a rollout.
    pub fn close(&self, rollout: &str) {
        self.with(|m| {
            m.remove(rollout);
        });
    }

    /// Runs started on `version` under `rollout`.
    pub fn started(&self, rollout: &str, version: u64, n: u64) {
        self.with(|m| {
            if let Some(t) = m.get_mut(rollout) {
                t.entry(version).or_default().runs += n;
            }
        });
    }

    /// A run under `rollout` ended; whether the rollout is tallied here.
    pub fn ended(&self, rollout: &str, version: u64, status: RunStatus, duration_ms: u64) -> bool {
        self.with(|m| match m.get_mut(rollout) {
            Some(t) => {
                t.entry(version).or_default().ended(status, duration_ms);
                true
            }
            None => false,
        })
    }

    /// Adds a stored run (when rebuilding at start): started, and ended if it has.
    pub fn replay(&self, rollout: &str, version: u64, status: RunStatus, duration_ms: u64) {
        self.started(rollout, version, 1);
        if status.is_terminal() {
            self.ended(rollout, version, status, duration_ms);
        }
    }

    /// The figures of `versions` (with their weights) under `rollout`, in that order.
    pub fn snapshot(&self, rollout: &str, versions: &[(u64, u32)]) -> Vec<VersionFigures> {
        self.with(|m| {
            let t = m.get(rollout);
            versions
                .iter()
                .map(|(v, w)| match t.and_then(|t| t.get(v)) {
                    Some(tally) => tally.figures(*v, *w),
                    None => Tally::default().figures(*v, *w),
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancelled_runs_are_not_failures() {
        let f = Figures::default();
        f.open("r");
        for (s, d) in [
            (RunStatus::Completed, 10),
            (RunStatus::Failed, 20),
            (RunStatus::Cancelled, 5),
            (RunStatus::Completed, 30),
            (RunStatus::Completed, 40),
        ] {
            f.replay("r", 2, s, d);
        }
        f.started("r", 2, 1);
        let v = &f.snapshot("r", &[(2, 100)])[0];
        assert_eq!(
            (v.runs, v.running, v.completed, v.failed, v.cancelled),
            (6, 1, 3, 1, 1)
        );
        assert_eq!(v.failure_rate, Some(0.25));
        assert_eq!((v.p50_ms, v.p95_ms), (Some(20), Some(40)));
    }

    #[test]
    fn an_unknown_rollout_is_not_tallied() {
        let f = Figures::default();
        assert!(!f.ended("nope", 1, RunStatus::Failed, 1));
        let v = &f.snapshot("nope", &[(1, 100)])[0];
        assert_eq!((v.runs, v.failure_rate), (0, None));
    }
}
