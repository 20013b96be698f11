//! CEL expressions: compiled once at deploy, evaluated with JSON values bound as
//! variables, under a cost budget.
//!
//! cel-interpreter (the crate weir used before) has no cost limit or evaluation hook, nor
//! has its successor `cel` or another maintained Rust CEL crate, so weir parses with
//! `cel-parser` (cel-interpreter's parser) and evaluates the tree itself, counting cost
//! units. The semantics are cel-interpreter 0.10's, quirks included, shown by a
//! differential test against it (`src/expr/budget_tests.rs`); where it panics (struct literals,
//! a comprehension over a non-list, `b"…".contains(b"")`, integer overflow in `-`)
//! evaluation fails with an error instead. Bound JSON is read in place, never converted.
//!
//! The parser recurses deeply (about 100 KiB of stack per bracket level in a debug
//! build), so a source nesting brackets or `?:` more than 64 deep is refused before it
//! is parsed, and parsing runs on a thread of its own with a 64 MiB stack; a tree deeper
//! than 100 levels is refused after, which keeps evaluation within an ordinary stack.
//!
//! # Run-time cost
//!
//! Evaluation charges, *before* doing the work:
//! - one unit per node evaluated (a literal, a variable, a field, an operator, a call);
//! - one unit per element or entry a comprehension (`all`, `exists`, `exists_one`, `map`,
//!   `filter`) visits, and per element `in`/`contains` on a list, `max`/`min`, or a
//!   comparison of two lists or maps looks at;
//! - for strings and bytes, one unit per 16 bytes (rounded up) that an operation reads or
//!   builds: `==`/`<` (up to the shorter operand), `+` (the result), `in`/`contains`
//!   (haystack and needle, when the needle fits), `startsWith`/`endsWith` (the prefix),
//!   `string()`, `bytes()`, `int()`/`double()`/`timestamp()`/`duration()` of a string;
//!   `matches` costs `(1 + s/16) × (1 + p/16)` for subject `s` and pattern `p` bytes, plus
//!   `100 + 16 × (1 + p/16)` to compile a pattern that is not a literal (literal patterns
//!   are compiled once, at compile time; every pattern's program is capped at 1 MiB);
//! - one unit per element a list literal, map literal or list `+` builds (a `map`/`filter`
//!   accumulator grows in place, so it pays only for what it appends).
//!
//! `size()` is constant time and costs its node. Everything an expression allocates is
//! paid for as it is built, so the budget also bounds the memory an evaluation uses (a
//! list element is about 32 bytes, a string unit 16 bytes). When a charge does not fit,
//! evaluation stops with [`ExprError::Budget`]; the work it would have paid for is not
//! done. [`Expr::eval_bool`] runs under [`DEFAULT_BUDGET`].
//!
//! # Static bound
//!
//! [`Expr::cost_bound`] bounds what evaluation can charge, as a polynomial in `n`, the
//! *content size* of an input value: 1 per number, bool or null, `1 + bytes/16` per
//! string, 1 per list or map plus its elements' (keys' and values') content. JSON text of
//! `b` bytes has content size at most `b` (every element takes at least one byte, a
//! string its quotes, a list its brackets), so a value from an event has `n ≤ max_body`
//! (3 MiB by default); its lists hold at most `max_body / 2` elements, and its depth is
//! capped by the ingress depth limit (64; serde_json's 128 for step outputs), which
//! bounds the recursion of comparisons. The rules:
//! - a variable's value (`event`, `data`, `steps`, …) and any part of it (`x.f`, `x[i]`)
//!   has length and size at most `n`; a literal has its exact size;
//! - each node adds its unit and its children's bounds, a `?:` the larger branch, and each
//!   operation the charge above with sizes replaced by their bounds, except that an
//!   operand known to be a scalar (a number, bool or null literal, the result of
//!   arithmetic, a comparison or `size()`) makes `==`, `<`, `+` cost nothing extra;
//! - a comprehension over a range of length `L` and content size `S` costs `L` times the
//!   per-element cost, except that where that cost depends on the size `mᵢ` of the element
//!   itself (`items.exists(i, i.tags.exists(…))`), the elements' sizes sum to at most `S`:
//!   a term `c·mᵢᵇ` sums to `c·Sᵇ`, not `L·c·Sᵇ`. So a pass over an element's own parts
//!   stays linear, while a pass over the input inside a pass over the input
//!   (`xs.exists(x, ys.exists(y, …))`, `xs.exists(x, x in ys)`) is quadratic;
//! - literal list ranges have their exact length, so `[1,…,10].all(a, [1,…,10].all(b, …))`
//!   costs `10 × 10 ×` its body.
//!
//! The bound's terms split into [`CostBound::fixed`] (independent of the input),
//! [`CostBound::per_element`] (the coefficient of `n`: one pass over the input) and
//! [`CostBound::nested`] (terms of degree two and more, at `n = max_body`). Deploy refuses
//! an expression whose [`CostBound::deploy_cost`], `fixed + per_element × 100 + nested`,
//! exceeds the server's budget: it must handle an input of content size [`MIN_ELEMENTS`]
//! (a list of 100 numbers, say) within the budget, and it may not nest passes over the
//! input, since at the ingress limits that costs about 10¹³. A single pass over event data
//! (`'a' in event.data.tags`, `event.data.items.exists(i, i.price > 100)`) deploys; on an
//! event too big for the budget the run-time budget stops it. Step outputs (`steps`,
//! `response`) are bounded by the step output limits rather than the ingress limits;
//! since the decision only needs `n` in the nested terms, which no real budget admits at
//! any plausible `n`, it does not depend on that.

#[cfg(test)]
mod budget_tests;
mod cost;
mod duration;
mod eval;
mod node;
mod value;

use std::sync::Arc;

use serde_json::Value;

use cost::Poly;
use eval::{Eval, Fault};
use node::Node;

/// The cost budget of an evaluation unless the server sets `[limits] cel_cost`: about
/// the cost of 10,000 simple operations (about 0.25 ms of CPU, release build, measured
/// with `cargo bench --bench cel` on the 2-core development machine).
pub const DEFAULT_BUDGET: u64 = 10_000;

/// The input content size (about as many list elements) an expression must be able to
/// handle within its budget to be deployed (see the module docs).
pub const MIN_ELEMENTS: u64 = 100;

/// Why an expression could not be compiled or evaluated.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ExprError {
    /// The source does not parse as CEL.
    #[error("invalid CEL `{expr}`: {reason}")]
    Parse {
        /// The source.
        expr: String,
        /// The parser's message.
        reason: String,
    },
    /// Evaluation failed (a missing key, a type mismatch…).
    #[error("`{expr}` failed: {reason}")]
    Eval {
        /// The source.
        expr: String,
        /// Why it failed.
        reason: String,
    },
    /// Evaluation produced something other than a boolean.
    #[error("`{expr}` must evaluate to a boolean, got {got}")]
    NotBool {
        /// The source.
        expr: String,
        /// What it gave.
        got: String,
    },
    /// Evaluation ran out of its cost budget and was stopped.
    #[error("`{expr}` ran past its CEL cost budget of {budget}")]
    Budget {
        /// The source.
        expr: String,
        /// The budget it ran past.
        budget: u64,
    },
}

/// The sizes of what expressions read, from the server's ingress limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputLimits {
    /// Largest event body in bytes: bounds the content size of any bound value.
    pub max_body: u64,
}

impl Default for InputLimits {
    fn default() -> Self {
        Self { max_body: 3 << 20 }
    }
}

/// An upper bound of an expression's evaluation cost, split by how it grows with the
/// input (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CostBound {
    /// Cost that does not depend on the input.
    pub fixed: u64,
    /// Cost per unit of input content, for what reads the input once.
    pub per_element: u64,
    /// The terms that grow faster than the input (nested passes), at the ingress limits.
    pub nested: u64,
    /// The most any input within the ingress limits can cost.
    pub worst_case: u64,
}

impl CostBound {
    /// What deploy compares with the budget: `fixed + per_element × MIN_ELEMENTS + nested`.
    pub fn deploy_cost(&self) -> u64 {
        self.fixed
            .saturating_add(self.per_element.saturating_mul(MIN_ELEMENTS))
            .saturating_add(self.nested)
    }
}

/// A compiled CEL expression; cheap to clone and share between threads.
#[derive(Clone)]
pub struct Expr {
    source: Arc<str>,
    node: Arc<Node>,
    cost: Arc<Poly>,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expr({})", self.source)
    }
}

impl Expr {
    /// Compiles `source`, failing with the parser's message.
    pub fn compile(source: &str) -> Result<Self, ExprError> {
        let parse_error = |reason: String| ExprError::Parse {
            expr: source.into(),
            reason,
        };
        if source.trim().is_empty() {
            return Err(parse_error("expression is empty".into()));
        }
        if let Some(reason) = node::too_deep(source) {
            return Err(parse_error(reason));
        }
        // The parser is deeply recursive (about 100 KiB of stack per bracket level in a
        // debug build) and has panicked on some hostile inputs: it runs on a thread of
        // its own with a large stack, and a panic there is a parse error.
        let compiled = std::thread::scope(|s| {
            let parse = move || {
                std::panic::catch_unwind(|| {
                    let parsed = cel_parser::Parser::default()
                        .parse(source)
                        .map_err(|e| e.to_string().trim().to_string())?;
                    let node = node::lower(&parsed)?;
                    let cost = cost::estimate(&node);
                    Ok::<_, String>((node, cost))
                })
            };
            match std::thread::Builder::new()
                .name("cel-parse".into())
                .stack_size(node::PARSE_STACK)
                .spawn_scoped(s, parse)
            {
                Ok(handle) => handle.join().unwrap_or(Err(Box::new(()))),
                Err(e) => Ok(Err(format!("cannot start the CEL parser: {e}"))),
            }
        });
        let (node, cost) = compiled
            .map_err(|_| parse_error("the CEL parser rejected it".into()))?
            .map_err(parse_error)?;
        Ok(Self {
            source: source.into(),
            node: Arc::new(node),
            cost: Arc::new(cost),
        })
    }

    /// The expression's source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates to a boolean with each `(name, value)` bound as a variable, under
    /// [`DEFAULT_BUDGET`].
    pub fn eval_bool(&self, vars: &[(&str, &Value)]) -> Result<bool, ExprError> {
        self.eval_bool_counted(vars, DEFAULT_BUDGET).0
    }

    /// Evaluates to a boolean under a cost budget; [`ExprError::Budget`] once it is spent.
    pub fn eval_bool_with_budget(
        &self,
        vars: &[(&str, &Value)],
        budget: u64,
    ) -> Result<bool, ExprError> {
        self.eval_bool_counted(vars, budget).0
    }

    /// Like [`Expr::eval_bool_with_budget`], also returning the cost units spent (at most
    /// `budget + 1`: a refused charge counts as one unit).
    pub fn eval_bool_counted(
        &self,
        vars: &[(&str, &Value)],
        budget: u64,
    ) -> (Result<bool, ExprError>, u64) {
        let node: &Node = &self.node;
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut ev = Eval::new(vars, budget);
            let out = match ev.eval(node) {
                Ok(value::Val::Bool(b)) => Ok(b),
                Ok(other) => Err(Ok(other.describe())),
                Err(e) => Err(Err(e)),
            };
            (out, ev.meter.used)
        }));
        let expr = || self.source.to_string();
        match run {
            Ok((Ok(b), used)) => (Ok(b), used),
            Ok((Err(Ok(got)), used)) => (Err(ExprError::NotBool { expr: expr(), got }), used),
            Ok((Err(Err(Fault::Budget)), used)) => (
                Err(ExprError::Budget {
                    expr: expr(),
                    budget,
                }),
                used,
            ),
            Ok((Err(Err(Fault::Error(reason))), used)) => (
                Err(ExprError::Eval {
                    expr: expr(),
                    reason,
                }),
                used,
            ),
            Err(_) => (
                Err(ExprError::Eval {
                    expr: expr(),
                    reason: "the CEL evaluator panicked".into(),
                }),
                0,
            ),
        }
    }

    /// Evaluates to a scalar used as a key (a rollout's sticky key): a string as it is,
    /// a number or boolean as its text, `null` as `None`. A list, map or other value is
    /// an error, as is running past `budget`.
    pub fn eval_key(
        &self,
        vars: &[(&str, &Value)],
        budget: u64,
    ) -> Result<Option<String>, ExprError> {
        let node: &Node = &self.node;
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut ev = Eval::new(vars, budget);
            match ev.eval(node) {
                Ok(value::Val::Null) => Ok(Ok(None)),
                Ok(value::Val::Str(s)) => Ok(Ok(Some(String::from(&*s)))),
                Ok(value::Val::Int(i)) => Ok(Ok(Some(i.to_string()))),
                Ok(value::Val::UInt(u)) => Ok(Ok(Some(u.to_string()))),
                Ok(value::Val::Float(f)) => Ok(Ok(Some(f.to_string()))),
                Ok(value::Val::Bool(b)) => Ok(Ok(Some(b.to_string()))),
                Ok(other) => Ok(Err(other.describe())),
                Err(e) => Err(e),
            }
        }));
        let expr = || self.source.to_string();
        match run {
            Ok(Ok(Ok(key))) => Ok(key),
            Ok(Ok(Err(got))) => Err(ExprError::Eval {
                expr: expr(),
                reason: format!("a key must be a string or a number, got {got}"),
            }),
            Ok(Err(Fault::Budget)) => Err(ExprError::Budget {
                expr: expr(),
                budget,
            }),
            Ok(Err(Fault::Error(reason))) => Err(ExprError::Eval {
                expr: expr(),
                reason,
            }),
            Err(_) => Err(ExprError::Eval {
                expr: expr(),
                reason: "the CEL evaluator panicked".into(),
            }),
        }
    }

    /// An upper bound of the evaluation cost on inputs within `limits`.
    pub fn cost_bound(&self, limits: &InputLimits) -> CostBound {
        let n = limits.max_body.max(1);
        let (fixed, per_element) = (self.cost.coeff(0), self.cost.coeff(1));
        CostBound {
            fixed,
            per_element,
            nested: self.cost.superlinear(n),
            worst_case: self.cost.eval(n),
        }
    }

    /// Why deploy must refuse this expression under `budget`, if it must.
    pub fn over_budget(&self, budget: u64, limits: &InputLimits) -> Option<String> {
        let b = self.cost_bound(limits);
        let cost = b.deploy_cost();
        if cost <= budget {
            return None;
        }
        let why = if self.cost.is_inf() {
            "its cost cannot be bounded".to_string()
        } else if b.nested > 0 {
            "it nests passes over event data or step outputs, so its cost grows with the \
             square of their size or faster"
                .to_string()
        } else if b.per_element.saturating_mul(MIN_ELEMENTS) > budget / 2 {
            format!(
                "it spends up to {} units per element of the input it reads, so it \
                 cannot read {MIN_ELEMENTS} elements within the budget",
                b.per_element
            )
        } else {
            format!("it costs up to {} units on any input", b.fixed)
        };
        Some(format!(
            "`{}` may cost up to {} CEL cost units, above this server's budget of {budget} \
             ([limits] cel_cost): {why}",
            self.source,
            if cost == u64::MAX {
                "unbounded".to_string()
            } else {
                cost.to_string()
            }
        ))
    }

    /// The static bound with every input's content size set to `n`.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn bound_at(&self, n: u64) -> u64 {
        self.cost.eval(n)
    }
}

/// The content size of a JSON value, as the static bound counts it (see the module docs).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn content_size(v: &Value) -> u64 {
    match v {
        Value::String(s) => 1 + value::units(s.len()),
        Value::Array(a) => a
            .iter()
            .fold(1, |acc, x| acc.saturating_add(content_size(x))),
        Value::Object(m) => m.iter().fold(1, |acc, (k, x)| {
            acc.saturating_add(1 + value::units(k.len()))
                .saturating_add(content_size(x))
        }),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(src: &str, event: Value) -> Result<bool, ExprError> {
        Expr::compile(src).unwrap().eval_bool(&[("event", &event)])
    }

    #[test]
    fn comparisons_and_arithmetic() {
        let ev = json!({"data": {"n": 2, "plan": "pro", "tags": ["a"]}, "user": {"id": "u1"}});
        assert!(eval("event.data.n + 1 == 3", ev.clone()).unwrap());
        assert!(eval("event.data.n > 1 && event.data.plan == 'pro'", ev.clone()).unwrap());
        assert!(!eval("event.data.plan == 'free'", ev.clone()).unwrap());
        assert!(eval("'a' in event.data.tags", ev.clone()).unwrap());
        assert!(eval(
            "has(event.data.plan) && size(event.data.tags) == 1",
            ev.clone()
        )
        .unwrap());
        assert!(eval("event.user.id.startsWith('u')", ev).unwrap());
    }

    #[test]
    fn errors_are_reported_not_panics() {
        assert!(matches!(
            Expr::compile("event.data.n >"),
            Err(ExprError::Parse { .. })
        ));
        assert!(matches!(Expr::compile("  "), Err(ExprError::Parse { .. })));
        let ev = json!({"data": {}});
        assert!(matches!(
            eval("event.data.missing == 1", ev.clone()),
            Err(ExprError::Eval { .. })
        ));
        assert!(matches!(
            eval("event.data", ev),
            Err(ExprError::NotBool { .. })
        ));
    }
}
