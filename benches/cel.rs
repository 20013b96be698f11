//! CEL evaluation: weir's metered evaluator against the path it replaced (JSON converted
//! to cel-interpreter 0.10 values, then `Program::execute`), on the README's trigger and a
//! few expressions users write; and the 10^7 expression, which the budget cuts off.
//!
//! `cargo bench --bench cel`

use std::collections::HashMap;
use std::sync::Arc;

use cel_interpreter::objects::{Key, Map};
use cel_interpreter::{Context, Program, Value as Cel};
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};

use weir::expr::{Expr, DEFAULT_BUDGET};

/// The old `Expr::eval_bool`: bind every variable as a converted CEL value, execute.
fn old_eval_bool(program: &Program, vars: &[(&str, &Value)]) -> bool {
    let mut ctx = Context::default();
    for (name, value) in vars {
        ctx.add_variable_from_value(*name, to_cel(value));
    }
    matches!(
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| program.execute(&ctx))),
        Ok(Ok(Cel::Bool(true)))
    )
}

fn to_cel(v: &Value) -> Cel {
    match v {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Cel::Int(i),
            (None, Some(u)) => Cel::UInt(u),
            _ => Cel::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(items) => Cel::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(m) => {
            let map: HashMap<Key, Cel> = m
                .iter()
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v)))
                .collect();
            Cel::Map(Map { map: Arc::new(map) })
        }
    }
}

fn compare(c: &mut Criterion) {
    let event = json!({"name": "user/signed.up", "data": {"plan": "pro", "n": 3,
        "tags": ["a", "b", "c"], "items": [{"price": 50}, {"price": 150}, {"price": 20}]},
        "user": {"id": "u_42"}});
    // What ingest binds: the event, and its fields bare.
    let (name, data, user) = (&event["name"], &event["data"], &event["user"]);
    let vars = [
        ("event", &event),
        ("name", name),
        ("data", data),
        ("user", user),
    ];
    let readme = "event.data.plan == 'pro' && event.user.id.startsWith('u_')";
    // As `benches/step.rs` measured it for the README: only `event` bound.
    {
        let small = json!({"name": "user/signed.up", "data": {"plan": "pro", "n": 3}, "user": {"id": "u_42"}});
        let vars = [("event", &small)];
        let new = Expr::compile(readme).unwrap();
        let old = Program::compile(readme).unwrap();
        assert!(new.eval_bool(&vars).unwrap() && old_eval_bool(&old, &vars));
        let mut g = c.benchmark_group("CEL README trigger, event bound");
        g.bench_function("weir (metered)", |b| {
            b.iter(|| new.eval_bool(&vars).unwrap())
        });
        g.bench_function("cel-interpreter 0.10", |b| {
            b.iter(|| old_eval_bool(&old, &vars))
        });
        g.finish();
    }
    for (label, src) in [
        ("README trigger, as ingest binds it", readme),
        ("list membership", "'b' in event.data.tags"),
        (
            "exists over items",
            "event.data.items.exists(i, i.price > 100)",
        ),
    ] {
        let new = Expr::compile(src).unwrap();
        let old = Program::compile(src).unwrap();
        assert!(new.eval_bool(&vars).unwrap());
        assert!(old_eval_bool(&old, &vars));
        let mut g = c.benchmark_group(format!("CEL {label}"));
        g.bench_function("weir (metered)", |b| {
            b.iter(|| new.eval_bool(&vars).unwrap())
        });
        g.bench_function("cel-interpreter 0.10", |b| {
            b.iter(|| old_eval_bool(&old, &vars))
        });
        g.finish();
    }
    let hostile = "[1,2,3,4,5,6,7,8,9,10].all(a, [1,2,3,4,5,6,7,8,9,10].all(b, \
        [1,2,3,4,5,6,7,8,9,10].all(c, [1,2,3,4,5,6,7,8,9,10].all(d, [1,2,3,4,5,6,7,8,9,10].all(e, \
        [1,2,3,4,5,6,7,8,9,10].all(f, [1,2,3,4,5,6,7,8,9,10].all(g, a+b+c+d+e+f+g > 0)))))))";
    let e = Expr::compile(hostile).unwrap();
    c.bench_function(
        "CEL 10^7 comprehension, cut off at the default budget",
        |b| b.iter(|| e.eval_bool_with_budget(&vars, DEFAULT_BUDGET).unwrap_err()),
    );
}

criterion_group!(benches, compare);
criterion_main!(benches);
