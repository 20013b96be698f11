//! Automatic rollback's decision: does a version fail more than the baseline by more
//! than the rollout allows, over enough finished runs?

use serde_json::{json, Value};

use super::figures::VersionFigures;
use super::spec::Analysis;

/// A version judged worse than the baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Breach {
    /// The failing version.
    pub version: u64,
    /// Its failure rate.
    pub rate: f64,
    /// Its finished runs.
    pub finished: u64,
    /// The baseline version.
    pub baseline: u64,
    /// The baseline's failure rate (0 before any of its runs finished).
    pub baseline_rate: f64,
    /// The baseline's finished runs.
    pub baseline_finished: u64,
    /// The increase allowed.
    pub allowed: f64,
}

impl Breach {
    /// One line for people.
    pub fn reason(&self) -> String {
        format!(
            "version {} failed {:.1}% of {} finished runs against {:.1}% of {} for baseline \
             version {}: more than the {:.1} points allowed",
            self.version,
            self.rate * 100.0,
            self.finished,
            self.baseline_rate * 100.0,
            self.baseline_finished,
            self.baseline,
            self.allowed * 100.0
        )
    }

    /// The figures it was decided on.
    pub fn to_json(&self) -> Value {
        json!({
            "version": self.version,
            "failure_rate": self.rate,
            "finished": self.finished,
            "baseline": self.baseline,
            "baseline_failure_rate": self.baseline_rate,
            "baseline_finished": self.baseline_finished,
            "max_failure_rate_increase": self.allowed,
        })
    }
}

/// The first version (after the baseline, `figures[0]`) that breaches `analysis`.
pub fn judge(analysis: &Analysis, figures: &[VersionFigures]) -> Option<Breach> {
    let base = figures.first()?;
    let baseline_rate = base.failure_rate.unwrap_or(0.0);
    figures[1..].iter().find_map(|v| {
        let rate = v.failure_rate?;
        (v.finished() >= analysis.min_runs
            && rate - baseline_rate > analysis.max_failure_rate_increase + 1e-12)
            .then(|| Breach {
                version: v.version,
                rate,
                finished: v.finished(),
                baseline: base.version,
                baseline_rate,
                baseline_finished: base.finished(),
                allowed: analysis.max_failure_rate_increase,
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(version: u64, completed: u64, failed: u64) -> VersionFigures {
        let n = completed + failed;
        VersionFigures {
            version,
            completed,
            failed,
            runs: n,
            failure_rate: (n > 0).then(|| failed as f64 / n as f64),
            ..Default::default()
        }
    }

    const A: Analysis = Analysis {
        min_runs: 100,
        max_failure_rate_increase: 0.05,
    };

    #[test]
    fn waits_for_min_runs() {
        assert_eq!(judge(&A, &[fig(1, 500, 5), fig(2, 0, 99)]), None);
        let b = judge(&A, &[fig(1, 500, 5), fig(2, 0, 100)]).unwrap();
        assert_eq!((b.version, b.finished, b.baseline), (2, 100, 1));
        assert!(b.reason().contains("version 2 failed 100.0% of 100"));
    }

    #[test]
    fn within_the_margin_is_kept() {
        // 1% vs 5.9%: 4.9 points, under 5.
        assert_eq!(judge(&A, &[fig(1, 990, 10), fig(2, 941, 59)]), None);
        assert!(judge(&A, &[fig(1, 990, 10), fig(2, 930, 70)]).is_some());
    }
}
