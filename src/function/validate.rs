//! Turns a [`FunctionDef`] into a [`Function`]: a checked DAG with compiled CEL.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::def::{FunctionDef, LimitsDef, RetriesDef};
use super::units::{parse_duration, parse_size};
use super::FunctionError;
use crate::expr::Expr;

/// The name of the implicit parent of steps with no `after`.
pub const TRIGGER: &str = "$trigger";

/// A validated, immutable function version, ready to run.
#[derive(Debug, Clone)]
pub struct Function {
    /// Function id.
    pub id: String,
    /// Version number, starting at 1.
    pub version: u64,
    /// The definition as deployed (step paths are `sha256:` names).
    pub def: FunctionDef,
    /// Event triggers.
    pub triggers: Vec<Trigger>,
    /// Steps in a topological order (parents before children).
    pub steps: Vec<Step>,
    index: HashMap<String, usize>,
}

/// An event trigger with its compiled condition.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// Event name.
    pub event: String,
    /// Optional CEL condition.
    pub expression: Option<Expr>,
}

/// A validated step.
#[derive(Debug, Clone)]
pub struct Step {
    /// Step id.
    pub id: String,
    /// Human name.
    pub name: Option<String>,
    /// The component's sha256 (hex).
    pub component: String,
    /// Incoming edges.
    pub incoming: Vec<Edge>,
    /// Outgoing edges as (child step index, index into the child's `incoming`).
    pub outgoing: Vec<(usize, usize)>,
    /// Retry policy.
    pub retries: Retries,
    /// Sandbox limits this step asks for (unset fields take the server defaults).
    pub limits: Limits,
}

/// An incoming edge.
#[derive(Debug, Clone)]
pub struct Edge {
    /// Parent step index, or `None` for the trigger.
    pub parent: Option<usize>,
    /// Condition to take the edge.
    pub cond: Option<Expr>,
}

/// Retry policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retries {
    /// Retries after the first attempt.
    pub attempts: u32,
    /// Base backoff delay.
    pub backoff: Duration,
}

impl Default for Retries {
    fn default() -> Self {
        Self {
            attempts: 3,
            backoff: Duration::from_secs(1),
        }
    }
}

/// Sandbox limits as asked for; `None` takes the server default.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// Linear memory cap in bytes.
    pub memory: Option<u64>,
    /// Wall-clock deadline.
    pub timeout: Option<Duration>,
    /// CPU fuel budget.
    pub fuel: Option<u64>,
    /// stdout cap in bytes.
    pub stdout: Option<u64>,
    /// stderr cap in bytes.
    pub stderr: Option<u64>,
}

impl Limits {
    /// Fields of `self`, falling back to `base` where unset.
    pub fn or(self, base: Limits) -> Limits {
        Limits {
            memory: self.memory.or(base.memory),
            timeout: self.timeout.or(base.timeout),
            fuel: self.fuel.or(base.fuel),
            stdout: self.stdout.or(base.stdout),
            stderr: self.stderr.or(base.stderr),
        }
    }
}

const MAX_STEPS: usize = 256;

impl Function {
    /// Validates `def` as version `version`. `component` is asked about each step's
    /// `sha256:` name and answers with an error message if it is unknown or unusable.
    pub fn compile(
        def: FunctionDef,
        version: u64,
        mut component: impl FnMut(&str, &str) -> Result<(), String>,
    ) -> Result<Self, FunctionError> {
        let fid = def.id.clone();
        let bad = |field: String, reason: String| FunctionError::Invalid {
            function: fid.clone(),
            field,
            reason,
        };
        if def.id.is_empty()
            || def.id.len() > 128
            || !def
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(bad(
                "id".into(),
                "must be 1-128 characters of letters, digits, `-`, `_` or `.`".into(),
            ));
        }
        if def.concurrency.is_some() {
            return Err(bad("concurrency".into(), "is not supported yet".into()));
        }
        if def.cancel.is_some() {
            return Err(bad("cancel".into(), "is not supported yet".into()));
        }
        let mut triggers = Vec::new();
        for (i, t) in def.triggers.iter().enumerate() {
            let field = format!("triggers[{i}]");
            if t.cron.is_some() {
                return Err(bad(
                    format!("{field}.cron"),
                    "cron triggers are not supported yet".into(),
                ));
            }
            let Some(event) = t.event.as_ref().filter(|e| !e.trim().is_empty()) else {
                return Err(bad(format!("{field}.event"), "is required".into()));
            };
            let expression = match &t.expression {
                Some(src) => Some(
                    Expr::compile(src)
                        .map_err(|e| bad(format!("{field}.expression"), e.to_string()))?,
                ),
                None => None,
            };
            triggers.push(Trigger {
                event: event.clone(),
                expression,
            });
        }
        if triggers.is_empty() {
            return Err(bad("triggers".into(), "needs at least one trigger".into()));
        }
        if def.steps.is_empty() {
            return Err(bad("steps".into(), "needs at least one step".into()));
        }
        if def.steps.len() > MAX_STEPS {
            return Err(bad(
                "steps".into(),
                format!("has more than {MAX_STEPS} steps"),
            ));
        }
        let fn_retries = retries(def.retries.as_ref()).map_err(|r| bad("retries".into(), r))?;
        let fn_limits = limits(def.limits.as_ref()).map_err(|r| bad("limits".into(), r))?;

        // Order the steps topologically (Kahn), reporting unknown parents and cycles.
        let names: Vec<&String> = def.steps.keys().collect();
        let pos: HashMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let mut indegree = vec![0usize; names.len()];
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
        for (i, (sid, s)) in def.steps.iter().enumerate() {
            let field = format!("steps.{sid}");
            if sid.is_empty() || sid == TRIGGER || sid.len() > 128 {
                return Err(bad(
                    field,
                    "step ids must be 1-128 characters and not `$trigger`".into(),
                ));
            }
            if let Some(id) = &s.id {
                if id != sid {
                    return Err(bad(
                        format!("{field}.id"),
                        format!("is `{id}` but the step is declared as `{sid}`"),
                    ));
                }
            }
            for (j, e) in s.after.iter().enumerate() {
                let ef = format!("{field}.after[{j}]");
                if e.wait.is_some() {
                    return Err(bad(
                        format!("{ef}.wait"),
                        "durable sleeps are not supported yet".into(),
                    ));
                }
                if e.wait_for.is_some() {
                    return Err(bad(
                        format!("{ef}.async"),
                        "waiting for events is not supported yet".into(),
                    ));
                }
                if e.step == TRIGGER {
                    continue;
                }
                let Some(&p) = pos.get(e.step.as_str()) else {
                    return Err(bad(
                        format!("{ef}.step"),
                        format!("unknown parent step `{}`", e.step),
                    ));
                };
                if p == i {
                    return Err(bad(
                        format!("{ef}.step"),
                        "a step cannot come after itself".into(),
                    ));
                }
                if s.after[..j].iter().any(|o| o.step == e.step) {
                    return Err(bad(
                        format!("{ef}.step"),
                        format!("parent `{}` is named twice", e.step),
                    ));
                }
                indegree[i] += 1;
                children[p].push(i);
            }
        }
        let mut order = Vec::with_capacity(names.len());
        let mut ready: Vec<usize> = (0..names.len())
            .filter(|&i| indegree[i] == 0)
            .rev()
            .collect();
        while let Some(n) = ready.pop() {
            order.push(n);
            for &c in children[n].iter().rev() {
                indegree[c] -= 1;
                if indegree[c] == 0 {
                    ready.push(c);
                }
            }
        }
        if order.len() != names.len() {
            let mut stuck: Vec<&str> = (0..names.len())
                .filter(|&i| indegree[i] > 0)
                .map(|i| names[i].as_str())
                .collect();
            stuck.sort();
            return Err(bad(
                "steps".into(),
                format!("the steps form a cycle through {}", stuck.join(", ")),
            ));
        }
        let new_index: HashMap<usize, usize> = order
            .iter()
            .enumerate()
            .map(|(new, &old)| (old, new))
            .collect();

        let defs: Vec<(&String, &super::StepDef)> = def.steps.iter().collect();
        let mut steps: Vec<Step> = Vec::with_capacity(order.len());
        for &old in &order {
            let (sid, s) = defs[old];
            let field = format!("steps.{sid}");
            let kind = s
                .runtime
                .as_ref()
                .map(|r| r.kind.as_str())
                .unwrap_or("wasm");
            if kind != "wasm" {
                return Err(bad(
                    format!("{field}.runtime.type"),
                    format!("`{kind}` steps are not supported yet (only `wasm`)"),
                ));
            }
            let Some(path) = &s.path else {
                return Err(bad(format!("{field}.path"), "is required".into()));
            };
            let sha = path.strip_prefix("sha256:").ok_or_else(|| {
                bad(
                    format!("{field}.path"),
                    format!("`{path}` must name an uploaded component as sha256:<hex> (upload with PUT /v1/components/<sha256>, or use `weir deploy`, which uploads file:// paths)"),
                )
            })?;
            if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad(
                    format!("{field}.path"),
                    format!("`{path}` is not a sha256 hex digest"),
                ));
            }
            let sha = sha.to_ascii_lowercase();
            component(sid, &sha).map_err(|r| bad(format!("{field}.path"), r))?;
            let mut incoming = Vec::new();
            let after: Vec<super::EdgeDef> = if s.after.is_empty() {
                vec![super::EdgeDef {
                    step: TRIGGER.into(),
                    cond: None,
                    wait: None,
                    wait_for: None,
                }]
            } else {
                s.after.clone()
            };
            for (j, e) in after.iter().enumerate() {
                let parent = if e.step == TRIGGER {
                    None
                } else {
                    Some(new_index[&pos[e.step.as_str()]])
                };
                let cond = match &e.cond {
                    Some(src) => Some(
                        Expr::compile(src)
                            .map_err(|r| bad(format!("{field}.after[{j}].if"), r.to_string()))?,
                    ),
                    None => None,
                };
                incoming.push(Edge { parent, cond });
            }
            let step_retries = match &s.retries {
                Some(r) => retries(Some(r)).map_err(|r| bad(format!("{field}.retries"), r))?,
                None => fn_retries,
            };
            let step_limits = limits(s.limits.as_ref())
                .map_err(|r| bad(format!("{field}.limits"), r))?
                .or(fn_limits);
            steps.push(Step {
                id: sid.clone(),
                name: s.name.clone(),
                component: sha,
                incoming,
                outgoing: Vec::new(),
                retries: step_retries,
                limits: step_limits,
            });
        }
        for c in 0..steps.len() {
            for e in 0..steps[c].incoming.len() {
                if let Some(p) = steps[c].incoming[e].parent {
                    steps[p].outgoing.push((c, e));
                }
            }
        }
        let index = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .collect();
        Ok(Function {
            id: def.id.clone(),
            version,
            def,
            triggers,
            steps,
            index,
        })
    }

    /// The index of step `id`.
    pub fn step_index(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// The distinct event names this function listens to.
    pub fn event_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.triggers.iter().map(|t| t.event.clone()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// Component hashes used by the steps.
    pub fn components(&self) -> BTreeMap<String, Vec<String>> {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for s in &self.steps {
            m.entry(s.component.clone()).or_default().push(s.id.clone());
        }
        m
    }
}

fn retries(r: Option<&RetriesDef>) -> Result<Retries, String> {
    let Some(r) = r else {
        return Ok(Retries::default());
    };
    if r.attempts > 20 {
        return Err(format!(
            "attempts is {}; at most 20 retries are allowed",
            r.attempts
        ));
    }
    let backoff = match &r.backoff {
        Some(b) => parse_duration(b).map_err(|e| format!("backoff: {e}"))?,
        None => Retries::default().backoff,
    };
    Ok(Retries {
        attempts: r.attempts,
        backoff,
    })
}

fn limits(l: Option<&LimitsDef>) -> Result<Limits, String> {
    let Some(l) = l else {
        return Ok(Limits::default());
    };
    let size = |name: &str, v: &Option<String>| -> Result<Option<u64>, String> {
        v.as_deref()
            .map(parse_size)
            .transpose()
            .map_err(|e| format!("{name}: {e}"))
    };
    Ok(Limits {
        memory: size("memory", &l.memory)?,
        timeout: l
            .timeout
            .as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(|e| format!("timeout: {e}"))?,
        fuel: l.fuel,
        stdout: size("stdout", &l.stdout)?,
        stderr: size("stderr", &l.stderr)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SHA: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn compile(v: serde_json::Value) -> Result<Function, FunctionError> {
        Function::compile(FunctionDef::from_value(v)?, 1, |_, _| Ok(()))
    }

    fn msg(v: serde_json::Value) -> String {
        compile(v).unwrap_err().to_string()
    }

    #[test]
    fn orders_a_diamond_topologically() {
        let f = compile(json!({"id": "f", "triggers": [{"event": "e"}], "steps": {
            "d": {"path": SHA, "after": [{"step": "b"}, {"step": "c"}]},
            "b": {"path": SHA, "after": [{"step": "a", "if": "response.ok == true"}]},
            "c": {"path": SHA, "after": [{"step": "a"}]},
            "a": {"path": SHA}
        }}))
        .unwrap();
        let order: Vec<&str> = f.steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(order[0], "a");
        assert_eq!(order[3], "d");
        let a = &f.steps[0];
        assert_eq!(a.outgoing.len(), 2);
        assert!(f.steps[f.step_index("b").unwrap()].incoming[0]
            .cond
            .is_some());
        assert_eq!(a.retries, Retries::default());
    }

    #[test]
    fn rejects_with_messages_naming_the_step() {
        let cyc = msg(json!({"id": "f", "triggers": [{"event": "e"}], "steps": {
            "a": {"path": SHA, "after": [{"step": "b"}]}, "b": {"path": SHA, "after": [{"step": "a"}]}}}));
        assert!(cyc.contains("cycle through a, b"), "{cyc}");
        let unknown = msg(json!({"id": "f", "triggers": [{"event": "e"}], "steps": {
            "a": {"path": SHA, "after": [{"step": "ghost"}]}}}));
        assert!(
            unknown.contains("steps.a.after[0].step: unknown parent step `ghost`"),
            "{unknown}"
        );
        let cel = msg(json!({"id": "f", "triggers": [{"event": "e"}], "steps": {
            "a": {"path": SHA, "after": [{"step": "$trigger", "if": "event.data.x >"}]}}}));
        assert!(cel.contains("steps.a.after[0].if: invalid CEL"), "{cel}");
        let trig = msg(
            json!({"id": "f", "triggers": [{"event": "e", "expression": "(("}], "steps": {"a": {"path": SHA}}}),
        );
        assert!(trig.contains("triggers[0].expression"), "{trig}");
        let path = msg(
            json!({"id": "f", "triggers": [{"event": "e"}], "steps": {"a": {"path": "file://x.wasm"}}}),
        );
        assert!(path.contains("steps.a.path"), "{path}");
        let typo = msg(
            json!({"id": "f", "triggers": [{"event": "e"}], "steps": {"a": {"path": SHA, "afterr": []}}}),
        );
        assert!(
            typo.contains("steps.a") && typo.contains("unknown field `afterr`"),
            "{typo}"
        );
        let dur = msg(
            json!({"id": "f", "triggers": [{"event": "e"}], "retries": {"attempts": 1, "backoff": "1 fortnight"}, "steps": {"a": {"path": SHA}}}),
        );
        assert!(dur.contains("retries: backoff"), "{dur}");
        let none = msg(json!({"id": "f", "triggers": [], "steps": {"a": {"path": SHA}}}));
        assert!(none.contains("at least one trigger"), "{none}");
        let id = msg(
            json!({"id": "f", "triggers": [{"event": "e"}], "steps": {"a": {"id": "b", "path": SHA}}}),
        );
        assert!(id.contains("steps.a.id"), "{id}");
    }

    #[test]
    fn component_check_names_the_step() {
        let def = FunctionDef::from_value(
            json!({"id": "f", "triggers": [{"event": "e"}], "steps": {"s1": {"path": SHA}}}),
        )
        .unwrap();
        let e = Function::compile(def, 1, |step, _| Err(format!("{step} is broken"))).unwrap_err();
        assert_eq!(e.to_string(), "function `f`: steps.s1.path: s1 is broken");
    }
}
