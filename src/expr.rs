//! CEL expressions: compiled once at deploy, evaluated with JSON values bound as variables.

use std::collections::HashMap;
use std::sync::Arc;

use cel_interpreter::objects::{Key, Map as CelMap};
use cel_interpreter::{Context, Program, Value as Cel};
use serde_json::Value;

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
}

/// A compiled CEL expression; cheap to clone and share between threads.
#[derive(Clone)]
pub struct Expr {
    source: Arc<str>,
    program: Arc<Program>,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expr({})", self.source)
    }
}

impl Expr {
    /// Compiles `source`, failing with the parser's message.
    pub fn compile(source: &str) -> Result<Self, ExprError> {
        if source.trim().is_empty() {
            return Err(ExprError::Parse {
                expr: source.into(),
                reason: "expression is empty".into(),
            });
        }
        // The parser has panicked on some hostile inputs in the past; a panic must not
        // take a deploy (or the server) down.
        let parsed = std::panic::catch_unwind(|| Program::compile(source)).map_err(|_| {
            ExprError::Parse {
                expr: source.into(),
                reason: "the CEL parser rejected it".into(),
            }
        })?;
        let program = parsed.map_err(|e| ExprError::Parse {
            expr: source.into(),
            reason: e.to_string().trim().to_string(),
        })?;
        Ok(Self {
            source: source.into(),
            program: Arc::new(program),
        })
    }

    /// The expression's source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates to a boolean with each `(name, value)` bound as a variable.
    pub fn eval_bool(&self, vars: &[(&str, &Value)]) -> Result<bool, ExprError> {
        let mut ctx = Context::default();
        for (name, value) in vars {
            ctx.add_variable_from_value(*name, to_cel(value));
        }
        let program = &self.program;
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| program.execute(&ctx)))
                .map_err(|_| ExprError::Eval {
                    expr: self.source.to_string(),
                    reason: "the CEL interpreter panicked".into(),
                })?;
        match result {
            Ok(Cel::Bool(b)) => Ok(b),
            Ok(other) => Err(ExprError::NotBool {
                expr: self.source.to_string(),
                got: format!("{other:?}"),
            }),
            Err(e) => Err(ExprError::Eval {
                expr: self.source.to_string(),
                reason: e.to_string(),
            }),
        }
    }
}

/// Converts JSON to a CEL value, binding every integer as a signed `Int` so that
/// arithmetic with literals (`event.data.n + 1`) type-checks.
pub fn to_cel(v: &Value) -> Cel {
    match v {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Cel::Int(i)
            } else if let Some(u) = n.as_u64() {
                Cel::UInt(u)
            } else {
                Cel::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(items) => Cel::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(m) => {
            let map: HashMap<Key, Cel> = m
                .iter()
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v)))
                .collect();
            Cel::Map(CelMap { map: Arc::new(map) })
        }
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
