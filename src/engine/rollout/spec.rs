//! What a rollout is: the body of `PUT /v1/functions/{id}/rollout`, checked, and the
//! record kept of it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::figures::VersionFigures;

/// A version and its share of new runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weighted {
    /// The function version.
    pub version: u64,
    /// Its weight: an integer percentage; a rollout's weights sum to 100.
    pub weight: u32,
}

/// When weir rolls back by itself.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Analysis {
    /// Finished runs a version needs under the rollout before it is judged.
    pub min_runs: u64,
    /// How far (0–1, absolute) its failure rate may exceed the baseline's.
    pub max_failure_rate_increase: f64,
}

/// A requested rollout, as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutSpec {
    /// Versions and weights; the first is the baseline.
    pub versions: Vec<Weighted>,
    /// CEL over the trigger event giving the sticky key (default: the user id, else the
    /// event id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<String>,
    /// Automatic rollback, if wanted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Analysis>,
}

/// Why a rollout was refused: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SpecError {
    /// The field, as a path in the body (`versions[1].weight`).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A refusal naming `field`.
pub fn bad(field: impl Into<String>, reason: impl Into<String>) -> SpecError {
    SpecError {
        field: field.into(),
        reason: reason.into(),
    }
}

impl RolloutSpec {
    /// Parses a body, naming the field that does not fit.
    pub fn from_json(bytes: &[u8]) -> Result<Self, SpecError> {
        parse(bytes)
    }

    /// Checks the shape against the function's existing versions (the sticky expression
    /// is compiled by the caller).
    pub fn check(&self, existing: &[u64]) -> Result<(), SpecError> {
        if self.versions.is_empty() {
            return Err(bad("versions", "name at least one version"));
        }
        let mut seen = Vec::new();
        for (i, w) in self.versions.iter().enumerate() {
            if !existing.contains(&w.version) {
                return Err(bad(
                    format!("versions[{i}].version"),
                    format!(
                        "version {} does not exist (this function has versions {})",
                        w.version,
                        list(existing)
                    ),
                ));
            }
            if seen.contains(&w.version) {
                return Err(bad(
                    format!("versions[{i}].version"),
                    format!("version {} is listed twice", w.version),
                ));
            }
            seen.push(w.version);
            if w.weight > 100 {
                return Err(bad(
                    format!("versions[{i}].weight"),
                    format!("{} is above 100", w.weight),
                ));
            }
        }
        let sum: u32 = self.versions.iter().map(|w| w.weight).sum();
        if sum != 100 {
            return Err(bad(
                "versions",
                format!("weights sum to {sum}; they must sum to 100"),
            ));
        }
        if let Some(a) = &self.analysis {
            if a.min_runs == 0 {
                return Err(bad("analysis.min_runs", "must be at least 1"));
            }
            let x = a.max_failure_rate_increase;
            if !(x.is_finite() && (0.0..1.0).contains(&x)) {
                return Err(bad(
                    "analysis.max_failure_rate_increase",
                    format!("{x} is not a rate increase between 0 and 1 (0.05 = 5 points)"),
                ));
            }
            if self.versions.len() < 2 {
                return Err(bad(
                    "analysis",
                    "needs a baseline and at least one other version to compare",
                ));
            }
        }
        if self.sticky.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return Err(bad("sticky", "is empty; leave it out for the default key"));
        }
        Ok(())
    }

    /// `(version, weight)` pairs.
    pub fn weights(&self) -> Vec<(u64, u32)> {
        pairs(&self.versions)
    }
}

/// Parses a JSON body of the rollout API, naming the field that does not fit
/// (`versions[1].weight`; `body` for the whole).
pub fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, SpecError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "body".into() } else { path };
        bad(field, e.into_inner().to_string())
    })
}

fn pairs(versions: &[Weighted]) -> Vec<(u64, u32)> {
    versions.iter().map(|w| (w.version, w.weight)).collect()
}

fn list(v: &[u64]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
}

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutStatus {
    /// Routing new runs by its weights.
    Active,
    /// Rolled back (by weir or by hand): while it is the current one, new runs go to its
    /// baseline.
    RolledBack,
    /// Replaced by a newer rollout.
    Replaced,
}

/// A rollout as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    /// Its id (a ULID).
    pub id: String,
    /// The function.
    pub function_id: String,
    /// Where it stands.
    pub status: RolloutStatus,
    /// Versions and weights as set.
    pub versions: Vec<Weighted>,
    /// The sticky key's expression, if not the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<String>,
    /// Automatic rollback settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Analysis>,
    /// How it was made: `put`, `promote` or `rollback`.
    pub origin: String,
    /// When it was set (ms since epoch).
    pub created_at: i64,
    /// When it stopped routing by its weights.
    #[serde(default)]
    pub ended_at: Option<i64>,
    /// The rollout it replaced.
    #[serde(default)]
    pub replaced_id: Option<String>,
    /// Why it was rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The figures when it stopped routing by its weights (kept for its history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub figures: Option<Vec<VersionFigures>>,
    /// What an automatic rollback decided on (versions, rates, thresholds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Value>,
}

impl Rollout {
    /// `(version, weight)` pairs.
    pub fn weights(&self) -> Vec<(u64, u32)> {
        pairs(&self.versions)
    }

    /// The spec it was made from.
    pub fn spec(&self) -> RolloutSpec {
        RolloutSpec {
            versions: self.versions.clone(),
            sticky: self.sticky.clone(),
            analysis: self.analysis,
        }
    }

    /// The first listed version: the one compared against, and rolled back to.
    pub fn baseline(&self) -> u64 {
        self.versions.first().map(|w| w.version).unwrap_or(0)
    }

    /// The weights new runs are routed by now: its own while active, else all to its
    /// baseline.
    pub fn routing(&self) -> Vec<(u64, u32)> {
        match self.status {
            RolloutStatus::Active => self
                .versions
                .iter()
                .map(|w| (w.version, w.weight))
                .collect(),
            _ => vec![(self.baseline(), 100)],
        }
    }
}

/// A function's rollouts: the current one and those before it (newest first).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Book {
    /// The one in force.
    pub current: Option<Rollout>,
    /// Earlier ones, newest first (at most [`HISTORY`]).
    pub history: Vec<Rollout>,
}

/// Most earlier rollouts kept per function.
pub const HISTORY: usize = 100;

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(body: &str) -> Result<RolloutSpec, SpecError> {
        let s = RolloutSpec::from_json(body.as_bytes())?;
        s.check(&[1, 2, 3])?;
        Ok(s)
    }

    #[test]
    fn bad_rollouts_name_the_field() {
        for (body, field) in [
            (
                r#"{"versions":[{"version":1,"weight":90},{"version":2,"weight":5}]}"#,
                "versions",
            ),
            (
                r#"{"versions":[{"version":1,"weight":90},{"version":9,"weight":10}]}"#,
                "versions[1].version",
            ),
            (
                r#"{"versions":[{"version":1,"weight":50},{"version":1,"weight":50}]}"#,
                "versions[1].version",
            ),
            (
                r#"{"versions":[{"version":1,"weight":-5}]}"#,
                "versions[0].weight",
            ),
            (
                r#"{"versions":[{"version":1,"weight":10.5}]}"#,
                "versions[0].weight",
            ),
            (r#"{"versions":[]}"#, "versions"),
            (
                r#"{"versions":[{"version":1,"weight":100}],"colour":"red"}"#,
                "colour",
            ),
            (
                r#"{"versions":[{"version":1,"weight":50},{"version":2,"weight":50}],"analysis":{"min_runs":0,"max_failure_rate_increase":0.1}}"#,
                "analysis.min_runs",
            ),
            (
                r#"{"versions":[{"version":1,"weight":50},{"version":2,"weight":50}],"analysis":{"min_runs":10,"max_failure_rate_increase":1.5}}"#,
                "analysis.max_failure_rate_increase",
            ),
            (
                r#"{"versions":[{"version":1,"weight":50},{"version":2,"weight":50}],"analysis":{"min_runs":10,"max_failure_rate_increase":-0.1}}"#,
                "analysis.max_failure_rate_increase",
            ),
            (
                r#"{"versions":[{"version":1,"weight":100}],"analysis":{"min_runs":10,"max_failure_rate_increase":0.1}}"#,
                "analysis",
            ),
        ] {
            let e = spec(body).expect_err(body);
            assert_eq!(e.field, field, "{body}: {e}");
        }
    }

    #[test]
    fn a_good_rollout_passes() {
        let s = spec(r#"{"versions":[{"version":3,"weight":90},{"version":1,"weight":10}],"sticky":"event.data.account","analysis":{"min_runs":100,"max_failure_rate_increase":0.05}}"#).unwrap();
        assert_eq!(s.weights(), vec![(3, 90), (1, 10)]);
    }
}
