//! Routing a new run to a version: weighted rendezvous hashing of the sticky key.
//!
//! Each version scores a key by `-ln(u) / weight`, where `u` in (0, 1) is a stable hash
//! of (function, version, key); the lowest score wins. A version then wins a share of
//! keys equal to its share of the weights, and the same key always gets the same version
//! while the weights stand. A key moves from version `a` to `b` only when `b`'s weight
//! grew relative to `a`'s: with two versions (a canary and its baseline), raising one's
//! weight only moves keys onto it, never off it. With three or more, a version whose
//! weight rose can still lose keys to one whose weight rose more in proportion.

use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::event::Event;
use crate::expr::Expr;
use crate::function::Function;

/// A compiled rollout: the versions new runs may get, with their weights.
pub struct Route {
    /// The rollout that set it.
    pub rollout_id: String,
    /// Versions with a weight above 0, in the rollout's order.
    pub arms: Vec<(Arc<Function>, u32)>,
    /// The sticky key's expression (`None`: the user id, else the event id).
    pub sticky: Option<Expr>,
    /// The CEL budget the sticky expression runs under.
    pub budget: u64,
}

impl Route {
    /// The version for this event (its `value` is the event as CEL sees it), and
    /// whether the sticky expression failed (the default key was used instead).
    pub fn pick(&self, event: &Event, value: &Value) -> (&Arc<Function>, bool) {
        if self.arms.len() == 1 {
            return (&self.arms[0].0, false);
        }
        let (key, failed) = self.key(event, value);
        let best = self
            .arms
            .iter()
            .map(|(f, w)| (f, score(&f.id, f.version, &key, *w)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(f, _)| f)
            .unwrap_or(&self.arms[0].0);
        (best, failed)
    }

    /// The names of the events any routed version triggers on.
    pub fn event_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .arms
            .iter()
            .flat_map(|(f, _)| f.event_names())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    fn key(&self, event: &Event, value: &Value) -> (String, bool) {
        let fallback = || event.user_id().unwrap_or_else(|| event.id.clone());
        let Some(expr) = &self.sticky else {
            return (fallback(), false);
        };
        let field = |k: &str| value.get(k).cloned().unwrap_or(Value::Null);
        let (name, data, user) = (field("name"), field("data"), field("user"));
        let vars = [
            ("event", value),
            ("name", &name),
            ("data", &data),
            ("user", &user),
        ];
        match expr.eval_key(&vars, self.budget) {
            Ok(Some(k)) => (k, false),
            Ok(None) | Err(_) => (fallback(), true),
        }
    }
}

/// `-ln(u) / weight` for the stable hash `u` of (function, version, key).
pub fn score(function: &str, version: u64, key: &str, weight: u32) -> f64 {
    if weight == 0 {
        return f64::INFINITY;
    }
    let mut h = Sha256::new();
    h.update(function.as_bytes());
    h.update([0]);
    h.update(version.to_le_bytes());
    h.update(key.as_bytes());
    let d = h.finalize();
    let x = u64::from_le_bytes(d[..8].try_into().unwrap_or([0; 8]));
    // 53 random bits, centred in their interval: strictly inside (0, 1).
    let u = ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    -u.ln() / f64::from(weight)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(weights: &[(u64, u32)], key: &str) -> u64 {
        weights
            .iter()
            .map(|(v, w)| (*v, score("f", *v, key, *w)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(v, _)| v)
            .unwrap()
    }

    #[test]
    fn shares_follow_the_weights() {
        let w = [(1, 70), (2, 20), (3, 10)];
        let mut n = [0usize; 4];
        for i in 0..20_000 {
            n[pick(&w, &format!("user-{i}")) as usize] += 1;
        }
        for (v, want) in [(1, 0.70), (2, 0.20), (3, 0.10)] {
            let got = n[v] as f64 / 20_000.0;
            assert!((got - want).abs() < 0.015, "version {v}: {got} vs {want}");
        }
    }

    /// Between two versions (the canary case) raising one's weight only moves keys onto
    /// it; with more, a key moves from `a` to `b` only when `b`'s weight grew relative to
    /// `a`'s.
    #[test]
    fn raising_a_weight_only_moves_keys_onto_it() {
        let steps: [&[(u64, u32)]; 6] = [
            &[(1, 90), (2, 10)],
            &[(1, 50), (2, 50)],
            &[(1, 0), (2, 100)],
            &[(1, 90), (2, 10), (3, 0)],
            &[(1, 60), (2, 30), (3, 10)],
            &[(1, 20), (2, 50), (3, 30)],
        ];
        for pair in steps.windows(2) {
            let (before, after) = (pair[0], pair[1]);
            if before.len() != after.len() {
                continue;
            }
            let w = |s: &[(u64, u32)], v: u64| u64::from(s.iter().find(|x| x.0 == v).unwrap().1);
            for i in 0..5_000 {
                let key = format!("k{i}");
                let (a, b) = (pick(before, &key), pick(after, &key));
                if a != b {
                    assert!(
                        w(after, b) * w(before, a) > w(before, b) * w(after, a),
                        "key {key} moved from {a} to {b} though {b} did not gain on {a}"
                    );
                }
            }
        }
    }

    #[test]
    fn zero_weight_never_wins() {
        for i in 0..1_000 {
            assert_eq!(pick(&[(1, 0), (2, 100)], &format!("{i}")), 2);
        }
    }
}
