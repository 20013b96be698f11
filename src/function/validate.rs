//! Turns a [`FunctionDef`] into a [`Function`]: a checked DAG with compiled CEL, its
//! expressions' cost bounds within the server's budget.

use std::collections::HashMap;

use super::compiled::*;
use super::def::{FunctionDef, LimitsDef, RetriesDef};
use super::units::{parse_duration, parse_size};
use super::FunctionError;
use crate::expr::{Expr, InputLimits, DEFAULT_BUDGET};
use crate::runtime::{RuntimeKind, Target};

const MAX_STEPS: usize = 256;

/// The server's limits that validation checks a definition against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileOptions {
    /// CEL cost budget: every evaluation runs under it, and (with `check_cost`) an
    /// expression whose static bound exceeds it is refused.
    pub cel_budget: u64,
    /// Whether expressions' static cost bounds are checked against the budget.
    pub check_cost: bool,
    /// What expressions can read, which bounds their cost.
    pub input: InputLimits,
}

impl Default for CompileOptions {
    fn default() -> Self {
        Self {
            cel_budget: DEFAULT_BUDGET,
            check_cost: true,
            input: InputLimits::default(),
        }
    }
}

impl CompileOptions {
    /// No static cost check: for reloading versions that were checked when deployed (a
    /// lowered budget then applies at run time, not by dropping deployed functions).
    pub fn deployed(self) -> Self {
        Self {
            check_cost: false,
            ..self
        }
    }
}

impl Function {
    /// Validates `def` as version `version` under the default [`CompileOptions`].
    /// `check` is asked about each step's target (by step id) and answers with an error
    /// message if it cannot run.
    pub fn compile(
        def: FunctionDef,
        version: u64,
        check: impl FnMut(&str, &Target) -> Result<(), String>,
    ) -> Result<Self, FunctionError> {
        Self::compile_with(def, version, &CompileOptions::default(), check)
    }

    /// Validates `def` as version `version` against this server's `options`.
    pub fn compile_with(
        def: FunctionDef,
        version: u64,
        options: &CompileOptions,
        mut check: impl FnMut(&str, &Target) -> Result<(), String>,
    ) -> Result<Self, FunctionError> {
        let fid = def.id.clone();
        let bad = |field: String, reason: String| FunctionError::Invalid {
            function: fid.clone(),
            field,
            reason,
        };
        // Every expression: compiled, then its static cost bound checked against the budget.
        let cel = |field: String, src: &str| -> Result<Expr, FunctionError> {
            let e = Expr::compile(src).map_err(|e| bad(field.clone(), e.to_string()))?;
            let over = options
                .check_cost
                .then(|| e.over_budget(options.cel_budget, &options.input));
            match over.flatten() {
                Some(reason) => Err(bad(field, reason)),
                None => Ok(e),
            }
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
        let mut cancel = Vec::new();
        for (i, c) in def.cancel.iter().enumerate() {
            let field = format!("cancel[{i}]");
            if c.event.trim().is_empty() {
                return Err(bad(format!("{field}.event"), "is required".into()));
            }
            let cond = match &c.cond {
                Some(src) => Some(cel(format!("{field}.if"), src)?),
                None => None,
            };
            let timeout = match &c.timeout {
                Some(t) => Some(parse_duration(t).map_err(|e| bad(format!("{field}.timeout"), e))?),
                None => None,
            };
            let index = c.cond.as_deref().and_then(MatchIndex::from_source);
            cancel.push(CancelRule {
                event: c.event.clone(),
                cond,
                timeout,
                index,
            });
        }
        let mut crons = Vec::new();
        let mut triggers = Vec::new();
        for (i, t) in def.triggers.iter().enumerate() {
            let field = format!("triggers[{i}]");
            if let Some(c) = &t.cron {
                if t.event.is_some() || t.expression.is_some() {
                    return Err(bad(
                        field,
                        "a trigger has either `event` (with an optional `expression`) or `cron`"
                            .into(),
                    ));
                }
                crons.push(CronTrigger::parse(c).map_err(|e| bad(format!("{field}.cron"), e))?);
                continue;
            }
            let Some(event) = t.event.as_ref().filter(|e| !e.trim().is_empty()) else {
                return Err(bad(format!("{field}.event"), "is required".into()));
            };
            let expression = match &t.expression {
                Some(src) => Some(cel(format!("{field}.expression"), src)?),
                None => None,
            };
            triggers.push(Trigger {
                event: event.clone(),
                expression,
            });
        }
        if triggers.is_empty() && crons.is_empty() {
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
                if let Some(w) = &e.wait {
                    parse_duration(w).map_err(|r| bad(format!("{ef}.wait"), r))?;
                }
                if let Some(a) = &e.wait_for {
                    if a.event.trim().is_empty() {
                        return Err(bad(format!("{ef}.async.event"), "is required".into()));
                    }
                    parse_duration(&a.ttl).map_err(|r| bad(format!("{ef}.async.ttl"), r))?;
                    if let Some(m) = &a.matches {
                        cel(format!("{ef}.async.match"), m)?;
                    }
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
            let empty = std::collections::BTreeMap::new();
            let (kind, settings) = match &s.runtime {
                Some(r) => (Some(r.kind.as_str()), &r.extra),
                None => (None, &empty),
            };
            let target = Target::parse(s.path.as_deref(), kind, settings)
                .map_err(|(f, r)| bad(format!("{field}.{f}"), r))?;
            let at = match target.kind() {
                RuntimeKind::Wasm => "path",
                _ => "runtime",
            };
            check(sid, &target).map_err(|r| bad(format!("{field}.{at}"), r))?;
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
                    Some(src) => Some(cel(format!("{field}.after[{j}].if"), src)?),
                    None => None,
                };
                let wait = e
                    .wait
                    .as_deref()
                    .map(parse_duration)
                    .transpose()
                    .map_err(|r| bad(format!("{field}.after[{j}].wait"), r))?;
                let wait_for = match &e.wait_for {
                    Some(a) => Some(AsyncWait {
                        event: a.event.clone(),
                        matches: a
                            .matches
                            .as_deref()
                            .map(|m| cel(format!("{field}.after[{j}].async.match"), m))
                            .transpose()?,
                        ttl: parse_duration(&a.ttl)
                            .map_err(|r| bad(format!("{field}.after[{j}].async.ttl"), r))?,
                        on_timeout: a.on_timeout,
                        index: a.matches.as_deref().and_then(MatchIndex::from_source),
                    }),
                    None => None,
                };
                incoming.push(Edge {
                    parent,
                    cond,
                    wait,
                    wait_for,
                });
            }
            let step_retries = match &s.retries {
                Some(r) => retries(Some(r)).map_err(|r| bad(format!("{field}.retries"), r))?,
                None => fn_retries,
            };
            let step_limits = limits(s.limits.as_ref())
                .map_err(|r| bad(format!("{field}.limits"), r))?
                .or(fn_limits);
            let mut env = def.env.clone();
            env.extend(s.env.clone());
            for (k, v) in &env {
                if k.is_empty()
                    || k.contains('=')
                    || k.contains('\0')
                    || v.contains('\0')
                    || k.len() > 256
                    || v.len() > 32 << 10
                {
                    return Err(bad(
                        format!("{field}.env.{k}"),
                        "names must be non-empty without `=` or NUL; values without NUL, at most 32 KiB".into(),
                    ));
                }
            }
            steps.push(Step {
                id: sid.clone(),
                name: s.name.clone(),
                target,
                incoming,
                outgoing: Vec::new(),
                retries: step_retries,
                limits: step_limits,
                env: env.into_iter().collect(),
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
            crons,
            cancel,
            steps,
            cel_budget: options.cel_budget,
            index,
        })
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
        fuel: match l.fuel {
            Some(0) => return Err("fuel: must be at least 1".into()),
            f => f,
        },
        stdout: size("stdout", &l.stdout)?,
        stderr: size("stderr", &l.stderr)?,
        events: l.events,
        event_size: size("event_size", &l.event_size)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

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
    fn sleeps_waits_cancel_and_cron_are_parsed() {
        let f = compile(json!({"id": "f", "triggers": [{"event": "e"}, {"cron": "TZ=Europe/Paris 0 9 * * MON"}],
            "cancel": [{"event": "user/deleted", "if": "event.user.id == async.user.id", "timeout": "7d"}],
            "steps": {
                "a": {"path": SHA},
                "b": {"path": SHA, "after": [{"step": "a", "wait": "10m"}]},
                "c": {"path": SHA, "after": [{"step": "a", "async": {"event": "v", "match": "async.data.k == event.data.k", "ttl": "1h", "onTimeout": true}}]}
            }}))
        .unwrap();
        assert_eq!(f.crons.len(), 1);
        let b = &f.steps[f.step_index("b").unwrap()];
        assert_eq!(b.incoming[0].wait, Some(Duration::from_secs(600)));
        let w = f.steps[f.step_index("c").unwrap()].incoming[0]
            .wait_for
            .clone()
            .unwrap();
        assert!(w.on_timeout);
        assert_eq!(
            w.index,
            Some(MatchIndex {
                event_path: "data.k".into(),
                async_path: "data.k".into()
            })
        );
        assert_eq!(
            f.cancel[0].index,
            Some(MatchIndex {
                event_path: "user.id".into(),
                async_path: "user.id".into()
            })
        );
        // Monday 2026-11-30 08:00 UTC is 09:00 in Paris.
        let sat = 1_795_852_800_000; // Saturday 2026-11-28T08:00:00Z
        assert_eq!(f.crons[0].next_after(sat), Some(1_796_025_600_000));
        assert!(MatchIndex::from_source("event.a == 1").is_none());
        assert!(MatchIndex::from_source("event.a == async.b && true").is_none());
        let bad = msg(
            json!({"id": "f", "triggers": [{"cron": "every day"}], "steps": {"a": {"path": SHA}}}),
        );
        assert!(bad.contains("triggers[0].cron"), "{bad}");
        let bad = msg(
            json!({"id": "f", "triggers": [{"cron": "TZ=Mars/Olympus 0 9 * * *"}], "steps": {"a": {"path": SHA}}}),
        );
        assert!(bad.contains("not a known time zone"), "{bad}");
        let bad = msg(
            json!({"id": "f", "triggers": [{"event": "e"}], "steps": {"a": {"path": SHA, "after": [{"step": "$trigger", "async": {"event": "x", "ttl": "soon"}}]}}}),
        );
        assert!(bad.contains("steps.a.after[0].async.ttl"), "{bad}");
        let bad = msg(
            json!({"id": "f", "triggers": [{"event": "e"}], "steps": {"a": {"path": SHA, "limits": {"fuel": 0}}}}),
        );
        assert!(
            bad.contains("steps.a.limits: fuel: must be at least 1"),
            "{bad}"
        );
    }

    #[test]
    fn expressions_over_the_cel_budget_are_refused_naming_function_and_field() {
        let nested = "event.data.xs.exists(x, event.data.ys.exists(y, x == y))";
        let wide = "[1,2,3,4,5,6,7,8,9,10].all(a, [1,2,3,4,5,6,7,8,9,10].all(b, \
            [1,2,3,4,5,6,7,8,9,10].all(c, [1,2,3,4,5,6,7,8,9,10].all(d, a + b + c + d > 0))))";
        let trig = msg(
            json!({"id": "f", "triggers": [{"event": "e", "expression": wide}], "steps": {"a": {"path": SHA}}}),
        );
        assert!(
            trig.starts_with(&format!(
                "function `f`: triggers[0].expression: `{wide}` may cost up to"
            )),
            "{trig}"
        );
        assert!(trig.contains("budget of 10000"), "{trig}");
        for (def, field) in [
            (
                json!({"id": "f", "triggers": [{"event": "e"}], "steps": {"a": {"path": SHA, "after": [{"step": "$trigger", "if": nested}]}}}),
                "steps.a.after[0].if",
            ),
            (
                json!({"id": "f", "triggers": [{"event": "e"}], "steps": {"a": {"path": SHA, "after": [{"step": "$trigger", "async": {"event": "v", "match": nested, "ttl": "1h"}}]}}}),
                "steps.a.after[0].async.match",
            ),
            (
                json!({"id": "f", "triggers": [{"event": "e"}], "cancel": [{"event": "x", "if": nested}], "steps": {"a": {"path": SHA}}}),
                "cancel[0].if",
            ),
        ] {
            let m = msg(def);
            assert!(
                m.contains(&format!("{field}: `{nested}` may cost")) && m.contains("nests passes"),
                "{m}"
            );
        }
        // A single pass over event data deploys under the default budget...
        let single = json!({"id": "f", "triggers": [{"event": "e", "expression": "event.data.items.exists(i, i.price > 100)"}],
            "steps": {"a": {"path": SHA}}});
        assert!(compile(single.clone()).is_ok());
        // ...not under a budget too small for a hundred elements.
        let small = CompileOptions {
            cel_budget: 500,
            ..CompileOptions::default()
        };
        let e = Function::compile_with(
            FunctionDef::from_value(single.clone()).unwrap(),
            1,
            &small,
            |_, _| Ok(()),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("budget of 500") && e.contains("per element"),
            "{e}"
        );
        // Versions loaded from the store were checked when deployed.
        let def = FunctionDef::from_value(
            json!({"id": "f", "triggers": [{"event": "e", "expression": wide}], "steps": {"a": {"path": SHA}}}),
        )
        .unwrap();
        assert!(
            Function::compile_with(def, 1, &CompileOptions::default().deployed(), |_, _| Ok(()))
                .is_ok()
        );
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
