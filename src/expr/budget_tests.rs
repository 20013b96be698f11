//! The cost budget, the static bound, and a differential test against cel-interpreter 0.10
//! (the evaluator weir used before): same value, or both an error, on a corpus.

use std::collections::HashMap;
use std::sync::Arc;

use cel_interpreter::objects::{Key as CKey, Map as CMap};
use cel_interpreter::{Context, Program, Value as Cel};
use serde_json::{json, Value};

use super::eval::{Eval, Fault};
use super::value::{Key, List, Map, Val};
use super::*;

/// Seven nested comprehensions over ten elements: 10^7 evaluations of the body.
const TEN_TO_THE_SEVENTH: &str = "[1,2,3,4,5,6,7,8,9,10].all(a, [1,2,3,4,5,6,7,8,9,10].all(b, \
    [1,2,3,4,5,6,7,8,9,10].all(c, [1,2,3,4,5,6,7,8,9,10].all(d, [1,2,3,4,5,6,7,8,9,10].all(e, \
    [1,2,3,4,5,6,7,8,9,10].all(f, [1,2,3,4,5,6,7,8,9,10].all(g, a+b+c+d+e+f+g > 0)))))))";

fn vars_of(event: &Value) -> Vec<(&'static str, Value)> {
    let field = |k: &str| event.get(k).cloned().unwrap_or(Value::Null);
    vec![
        ("event", event.clone()),
        ("name", field("name")),
        ("data", field("data")),
        ("user", field("user")),
        (
            "async",
            json!({"name": "user/verified", "data": {"k": 1}, "user": {"id": "u_42"}}),
        ),
        (
            "steps",
            json!({"wait-verify": {"body": {"ok": true}}, "x": {"body": {"ok": false, "n": 3}}}),
        ),
        ("response", json!({"status": 200, "body": {"ok": true}})),
    ]
}

fn bind<'a>(vars: &'a [(&'static str, Value)]) -> Vec<(&'static str, &'a Value)> {
    vars.iter().map(|(n, v)| (*n, v)).collect()
}

#[test]
fn the_seven_level_comprehension_is_refused_statically_and_stopped_at_run_time() {
    let e = Expr::compile(TEN_TO_THE_SEVENTH).unwrap();
    let b = e.cost_bound(&InputLimits::default());
    assert!(b.fixed >= 10_000_000, "{b:?}");
    assert_eq!(
        (b.per_element, b.nested),
        (0, 0),
        "it reads no input: {b:?}"
    );
    let why = e
        .over_budget(DEFAULT_BUDGET, &InputLimits::default())
        .unwrap();
    assert!(
        why.contains(TEN_TO_THE_SEVENTH) && why.contains("10000"),
        "{why}"
    );
    // Run anyway, it stops at the budget instead of running for seconds.
    let ev = json!({});
    let (r, used) = e.eval_bool_counted(&[("event", &ev)], DEFAULT_BUDGET);
    assert_eq!(
        r,
        Err(ExprError::Budget {
            expr: TEN_TO_THE_SEVENTH.into(),
            budget: DEFAULT_BUDGET
        })
    );
    assert_eq!(used, DEFAULT_BUDGET + 1);
    assert_eq!(
        r.unwrap_err().to_string(),
        format!("`{TEN_TO_THE_SEVENTH}` ran past its CEL cost budget of 10000")
    );
}

#[test]
fn single_passes_over_event_data_fit_the_default_budget() {
    let limits = InputLimits::default();
    for src in [
        "'a' in event.data.tags",
        "size(event.data.tags) == 1",
        "event.data.items.exists(i, i.price > 100)",
        "event.data.items.all(i, i.tags.exists(t, t == 'sale'))",
        "event.data.items.exists(i, i.owner == event.user.id && i.price > event.data.min)",
        "event.data.items.filter(i, i.price > 100).map(i, i.sku).size() > 2",
        "event.data.plan == 'pro' && event.user.id.startsWith('u_')",
        "event.user.id == async.user.id",
        "steps['wait-verify'].body.ok == true",
        "has(event.data.plan) && event.data.email.matches('^[a-z]+@example\\\\.com$')",
        "timestamp(event.data.at) > timestamp('2020-01-01T00:00:00Z')",
        "!has(event.data.quiet) || event.data.quiet == false",
        "[1, 2, 3].exists(x, x == event.data.n)",
    ] {
        let e = Expr::compile(src).unwrap();
        let b = e.cost_bound(&limits);
        assert_eq!(e.over_budget(DEFAULT_BUDGET, &limits), None, "{src}: {b:?}");
        assert_eq!(b.nested, 0, "{src}: {b:?}");
    }
}

#[test]
fn nested_passes_over_event_data_are_refused() {
    let limits = InputLimits::default();
    for src in [
        "event.data.xs.exists(x, event.data.ys.exists(y, x == y))",
        "event.data.items.exists(i, i.sku in event.data.allowed)",
        "event.data.xs.all(x, event.data.xs.all(y, x <= y || y <= x))",
        "event.data.xs.map(x, event.data.ys).exists(l, 'a' in l)",
        "event.data.s.matches(event.data.pattern)",
    ] {
        let e = Expr::compile(src).unwrap();
        let b = e.cost_bound(&limits);
        assert!(b.nested > DEFAULT_BUDGET, "{src}: {b:?}");
        let why = e.over_budget(DEFAULT_BUDGET, &limits).unwrap();
        assert!(why.contains("nests passes"), "{why}");
    }
    // A pass whose body alone is over budget is refused even though it is linear.
    let heavy = format!(
        "event.data.xs.exists(x, {})",
        (0..300)
            .map(|i| format!("x == {i}"))
            .collect::<Vec<_>>()
            .join(" || ")
    );
    let why = Expr::compile(&heavy)
        .unwrap()
        .over_budget(DEFAULT_BUDGET, &limits)
        .unwrap();
    assert!(why.contains("per element"), "{why}");
}

#[test]
fn a_deployable_pass_on_a_crafted_big_event_is_stopped_by_the_budget() {
    let src = "event.data.items.exists(i, i.price > 100)";
    let e = Expr::compile(src).unwrap();
    let limits = InputLimits::default();
    assert_eq!(e.over_budget(DEFAULT_BUDGET, &limits), None);
    let small = json!({"data": {"items": [{"price": 10}, {"price": 500}]}});
    assert_eq!(e.eval_bool(&[("event", &small)]), Ok(true));
    // 200,000 items that all fail the test: one pass is ~2 million units.
    let items: Vec<Value> = (0..200_000).map(|_| json!({"price": 1})).collect();
    let big = json!({"data": {"items": items}});
    let (r, used) = e.eval_bool_counted(&[("event", &big)], DEFAULT_BUDGET);
    assert!(
        matches!(
            r,
            Err(ExprError::Budget {
                budget: DEFAULT_BUDGET,
                ..
            })
        ),
        "{r:?}"
    );
    // Bounded work: it stopped at the budget (a refused charge counts one unit).
    assert_eq!(used, DEFAULT_BUDGET + 1);
    // With a budget just at its static deploy cost, it handles an event of that size.
    let at = e.cost_bound(&limits).deploy_cost();
    let items: Vec<Value> = (0..MIN_ELEMENTS / 4).map(|_| json!({"price": 1})).collect();
    let fits = json!({"data": {"items": items}});
    assert_eq!(e.eval_bool_with_budget(&[("event", &fits)], at), Ok(false));
}

#[test]
fn memory_an_expression_builds_is_paid_for() {
    // Doubling a string is paid per 16 bytes built: 1 MiB is 65,536 units.
    let s = "x".repeat(1 << 20);
    let ev = json!({"data": {"s": s}});
    let e = Expr::compile("size(event.data.s + event.data.s) > 0").unwrap();
    assert!(matches!(
        e.eval_bool(&[("event", &ev)]),
        Err(ExprError::Budget { .. })
    ));
    assert_eq!(
        e.eval_bool_with_budget(&[("event", &ev)], 200_000),
        Ok(true)
    );
    // A list built by `map` pays per element it appends (in place, not copied each time).
    let xs: Vec<i64> = (0..3_000).collect();
    let ev = json!({"data": {"xs": xs}});
    let e = Expr::compile("event.data.xs.map(x, x * 2).size() == 3000").unwrap();
    let (r, used) = e.eval_bool_counted(&[("event", &ev)], 1_000_000);
    assert_eq!(r, Ok(true));
    assert!(
        used < 3_000 * 12,
        "linear in the list, not quadratic: {used}"
    );
}

/// Expressions and events of the differential test; also the corpus of the budget tests.
fn corpus() -> (Vec<&'static str>, Vec<Value>) {
    let exprs = vec![
        // What weir's users write.
        "event.data.plan == 'pro' && event.user.id.startsWith('u_')",
        "data.plan == 'pro'",
        "user.id.startsWith('u_')",
        "name == 'user/signed.up'",
        "!has(event.data.quiet) || event.data.quiet == false",
        "event.user.id == async.user.id",
        "async.data.k == event.data.n - 1",
        "steps['wait-verify'].body.ok == true",
        "steps.x.body.n + 1 == 4",
        "steps['nope'].body.ok",
        "response.status == 200",
        "response.event.data.paid == true",
        "user.created_at > '2020-01-01'",
        "event.data.n + 1 == 3",
        "event.data.n > 1 && event.data.plan == 'pro'",
        "'a' in event.data.tags",
        "has(event.data.plan) && size(event.data.tags) == 1",
        "event.data.missing == 1",
        "event.data",
        "event.data.items.exists(i, i.price > 100)",
        "event.data.email.matches('^[a-z]+@example\\\\.com$')",
        "timestamp(event.data.t) > timestamp('2020-01-01T00:00:00Z')",
        // Arithmetic and numbers.
        "event.data.n * 2.0",
        "event.data.f * 2.0 == 3.0",
        "7 / 2 == 3 && 7 % 3 == 1",
        "7 / 0",
        "7 % 0",
        "7u / 0u",
        "-event.data.n",
        "-event.data.s",
        "9223372036854775807 + 1",
        "event.data.big + 1u",
        "1u - 2u",
        "1.0 / 0.0",
        "event.data.big > 1",
        "event.data.big == 18446744073709551615u",
        "event.data.neg < 0u",
        "1 == 1.0 && 1u == 1 && 1 < 1.5 && 2u > -1",
        "double('NaN') < 1.0",
        "double('NaN') == double('NaN')",
        "1u + 2u",
        "2.5 - 1",
        "3 * 4 - 2",
        // Truthiness quirks of `||`, `&&`, `!`, `?:`.
        "1 || false",
        "0 || 'x'",
        "'' && true",
        "null || 5",
        "!0",
        "!'a'",
        "true ? 1 : 'a'",
        "0 ? 1 : 2",
        "event.data.missing || true",
        "true || event.data.missing",
        "false && event.data.missing",
        "true ? 1 : event.data.missing",
        // Strings.
        "event.data.s.contains('lo w')",
        "'lo' in event.data.s",
        "event.data.s.startsWith('he') && event.data.s.endsWith('ld')",
        "event.data.s.matches('^h.*d$')",
        "event.data.s.matches('(')",
        "event.data.s.matches(event.data.plan)",
        "size(event.data.s) == 11 && event.data.s.size() == 11",
        "event.data.s + '!' == 'hello world!'",
        "event.data.s < 'world'",
        "'a' < 1",
        "event.data.s == 1",
        "startsWith(event.data.s, 'he')",
        "'abc'.startsWith('a', 'b')",
        "event.data.s.startsWith(1)",
        "event.data.n.startsWith('a')",
        "'abc'.size(1 / 0)",
        "'abc'.size(1, 1 / 0)",
        "'abc'.size(1 / 0, 1, 2)",
        "event.data.s[0] == 'h'",
        "'héllo'[2]",
        "event.data.s[100]",
        "'a' + 1",
        "event.data.empty == '' && !event.data.empty",
        "event.data.tags.exists(t, t.startsWith(event.data.plan))",
        // Lists.
        "'z' in event.data.tags",
        "size(event.data.tags) == 3",
        "event.data.tags[0] == 'a'",
        "event.data.tags + ['d']",
        "[1, 2] + [3] == [1, 2, 3]",
        "[1, 2] == [1.0, 2u]",
        "[1] == [1, 2]",
        "[1] + 1",
        "event.data.nums.exists(x, x > 2)",
        "event.data.nums.all(x, x > 0)",
        "event.data.nums.exists_one(x, x > 2)",
        "event.data.nums.map(x, x * 2)",
        "event.data.nums.filter(x, x > 1)",
        "event.data.nums.map(x, x > 1, x * 10)",
        "event.data.nums.exists(x, x)",
        "event.data.nums.filter(x, x > 1).map(x, x * x)",
        "event.data.nums.map(x, [x])",
        "event.data.items.map(i, i.sku)",
        "event.data.items.filter(i, i.tags.exists(t, t == 't1')).size()",
        "event.data.items.all(i, has(i.sku))",
        "event.data.items.exists(i, i.sku in ['x', 'z'])",
        "event.data.items[0] == {'price': 50, 'sku': 'x', 'tags': ['t1']}",
        "event.data.items[0].price + event.data.items[1]['price']",
        "[1, 'a'].all(x, x > 0)",
        "[].all(x, x)",
        "[[1, 2], [3]].exists(l, 3 in l)",
        "[1, 2].all(x, [3, 4].exists(y, y > x))",
        "[1, 2].all(x, [3].all(x, x == 3))",
        "[1].all(x, x == 1) && x == 1",
        "event.data.tags.map(t, t + '!')",
        "event.data.n in event.data.nums",
        "2.0 in event.data.nums",
        "event.data.tags.contains('b')",
        "[1, 2, 3][5] == null && [1, 2, 3][-1] == null",
        "event.data.tags[1u]",
        "event.data.nums.max()",
        "max(event.data.nums) == 3 && min(event.data.nums) == 1",
        "min(1, 2.0)",
        "max(1, 1.0)",
        "min(1.0, 1)",
        "max(1, 'a')",
        "max()",
        "max([])",
        "max(7)",
        // Maps.
        "event.data.m.k",
        "has(event.data.m.k) && !has(event.data.m.zz)",
        "has(event.data.s.x)",
        "has(event.data.missing.x)",
        "event.data.m == {'k': true, 'j': 1}",
        "{'a': 1} == {'a': 1.0}",
        "{'a': 1, 'a': 2}['a']",
        "'k' in event.data.m",
        "1 in {1: 'a'} && !(1u in {1: 'a'})",
        "size(event.data.m) == 2 && event.data.m.size() == 2",
        "{'a': [1, 2]}.a[1] == 2",
        "{1: 'x'}[1u]",
        "{true: 1}[true]",
        "{[1]: 1}",
        "{'k': 1}.size",
        "{'k': 1}.size == 1",
        "event.data.size",
        "event.data.size == event.data.size",
        "event.data.m['zz'] == null && event.data.m[1] == null",
        "event.data.m[1.5]",
        "event.data.m.contains('k')",
        "event.data.m.contains(1.5)",
        "event.data.n.contains(1)",
        "event.data.m.all(k, k.size() == 1)",
        "{'a': 1, 'b': 2}.exists(k, k == 'b')",
        "event.data.m.map(k, k).size()",
        "has({'a': 1}.a)",
        "{'a': {'b': 1}}.a.b == 1",
        "event.data.nil == null && null == null",
        "event.data.nil < null",
        // Time.
        "timestamp(event.data.t).getFullYear() == 2024 && timestamp(event.data.t).getMonth() == 4",
        "timestamp(event.data.t).getDayOfYear()",
        "timestamp(event.data.t).getDayOfMonth() + timestamp(event.data.t).getDate()",
        "timestamp(event.data.t).getDayOfWeek()",
        "timestamp(event.data.t).getHours() * 60 + timestamp(event.data.t).getMinutes()",
        "timestamp(event.data.t).getSeconds() + timestamp(event.data.t).getMilliseconds()",
        "timestamp(event.data.t) + duration('1h') > timestamp(event.data.t)",
        "string(timestamp(event.data.t))",
        "timestamp(event.data.t) - timestamp('2024-05-01T00:00:00Z') == duration('12h30m45.123s')",
        "string(duration('1h30m'))",
        "string(duration('-1h'))",
        "string(duration('1.5ms')) + string(duration('3us')) + string(duration('4ns'))",
        "duration(event.data.d) == duration('90m')",
        "duration('1hxyz') == duration('1h')",
        "duration('')",
        "duration('1e3s')",
        "timestamp('bad')",
        "timestamp(1)",
        "event.data.t.timestamp()",
        "timestamp(event.data.t).getFullYear(1)",
        "event.data.n.getFullYear()",
        "duration('1h') + duration('1m') - duration('30s')",
        "duration('1h') < duration('2h')",
        // Conversions.
        "int('12') == 12 && int(2.7) == 2 && uint(3) == 3u",
        "uint(-1)",
        "double('1.5') == 1.5",
        "string(12) + string(1.5) + string(3u)",
        "string(b'abc')",
        "bytes('abc') == b'abc'",
        "int(event.data.big)",
        "double(event.data.big)",
        "string(event.data.tags)",
        "int(true)",
        "double(event.data.s)",
        "int('+5')",
        "'x'.bytes()",
        // Bytes.
        "b'abc'.contains(b'b')",
        "b'abc'.contains(b'')",
        "size(b'abc')",
        "b'a' + b'b'",
        "b'abc' == b'abc'",
        "b'a' < b'b'",
        // Unsupported.
        "foo(1)",
        "event.data.s.foo()",
        "size(1)",
        "size()",
        "event.data.tags.all(t, t)",
        "5.all(x, x)",
        "'abc'.exists(c, c)",
    ];
    let events = vec![
        json!({"name": "user/signed.up", "id": "01H", "ts": 1_700_000_000_000i64,
            "data": {"plan": "pro", "n": 2, "f": 1.5, "neg": -3, "big": 18446744073709551615u64,
                "s": "hello world", "empty": "", "tags": ["a", "b", "c"], "nums": [3, 1, 2],
                "items": [{"price": 50, "sku": "x", "tags": ["t1"]}, {"price": 150, "sku": "y", "tags": []}],
                "m": {"k": true, "j": 1}, "nil": null, "t": "2024-05-01T12:30:45.123Z",
                "d": "1h30m", "email": "ada@example.com"},
            "user": {"id": "u_42", "created_at": "2020-01-02"}}),
        json!({"name": "x", "data": {}, "user": {}}),
        json!({"name": 5, "data": {"plan": 1, "n": "2", "s": ["not", "a", "string"],
            "tags": "abc", "nums": {"a": 1}, "items": {"i": {"price": 500}}, "m": [1],
            "t": "2024-02-29T23:59:59+02:00", "d": "-5m", "email": null}, "user": {"id": 42}}),
    ];
    (exprs, events)
}

/// Our value as cel-interpreter's, to compare them.
fn to_reference(v: &Val) -> Cel {
    match v {
        Val::Null => Cel::Null,
        Val::Bool(b) => Cel::Bool(*b),
        Val::Int(i) => Cel::Int(*i),
        Val::UInt(u) => Cel::UInt(*u),
        Val::Float(f) => Cel::Float(*f),
        Val::Str(s) => Cel::String(Arc::new(s.to_string())),
        Val::Bytes(b) => Cel::Bytes(Arc::new(b.to_vec())),
        Val::List(l) => Cel::List(Arc::new(
            (0..l.len())
                .map(|i| to_reference(&l.get(i).unwrap()))
                .collect(),
        )),
        Val::Map(m) => {
            let map: HashMap<CKey, Cel> = m
                .entries()
                .map(|(k, v)| {
                    let k = match k {
                        Key::Int(i) => CKey::Int(i),
                        Key::UInt(u) => CKey::Uint(u),
                        Key::Bool(b) => CKey::Bool(b),
                        Key::Str(s) => CKey::String(Arc::new(s.to_string())),
                    };
                    (k, to_reference(&v))
                })
                .collect();
            Cel::Map(CMap { map: Arc::new(map) })
        }
        Val::Timestamp(t) => Cel::Timestamp(*t),
        Val::Duration(d) => Cel::Duration(*d),
        Val::Function(name, target) => Cel::Function(
            Arc::new(name.to_string()),
            target.as_ref().map(|t| Box::new(to_reference(t))),
        ),
    }
}

/// Equal and of the same types all the way down (cel-interpreter's `==` says `1 == 1.0`).
fn same(a: &Cel, b: &Cel) -> bool {
    match (a, b) {
        (Cel::Float(x), Cel::Float(y)) => x == y || (x.is_nan() && y.is_nan()),
        (Cel::List(x), Cel::List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| same(p, q))
        }
        (Cel::Map(x), Cel::Map(y)) => {
            x.map.len() == y.map.len()
                && x.map
                    .iter()
                    .all(|(k, v)| y.map.get(k).is_some_and(|w| same(v, w)))
        }
        (Cel::Function(n, t), Cel::Function(m, u)) => {
            n == m
                && match (t, u) {
                    (Some(t), Some(u)) => same(t, u),
                    (None, None) => true,
                    _ => false,
                }
        }
        _ => std::mem::discriminant(a) == std::mem::discriminant(b) && a == b,
    }
}

/// The old path: JSON converted to cel-interpreter values, `Program::execute`.
fn reference(src: &str, vars: &[(&'static str, Value)]) -> Result<Cel, String> {
    let program = Program::compile(src).map_err(|e| e.to_string())?;
    let mut ctx = Context::default();
    for (name, value) in vars {
        ctx.add_variable_from_value(*name, reference_value(value));
    }
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| program.execute(&ctx))) {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("panicked".into()),
    }
}

fn reference_value(v: &Value) -> Cel {
    match v {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Cel::Int(i),
            (None, Some(u)) => Cel::UInt(u),
            _ => Cel::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(a) => Cel::List(Arc::new(a.iter().map(reference_value).collect())),
        Value::Object(m) => Cel::Map(CMap {
            map: Arc::new(
                m.iter()
                    .map(|(k, v)| (CKey::String(Arc::new(k.clone())), reference_value(v)))
                    .collect(),
            ),
        }),
    }
}

#[test]
fn agrees_with_cel_interpreter_on_value_or_error() {
    let (exprs, events) = corpus();
    let mut disagree = Vec::new();
    let (mut compared, mut values) = (0, 0);
    // cel-interpreter panics on some of these on purpose; keep the output readable —
    // of this thread only: tests running beside it keep their panic messages.
    let hook: std::sync::Arc<dyn Fn(&std::panic::PanicHookInfo<'_>) + Send + Sync> =
        std::sync::Arc::from(std::panic::take_hook());
    let me = std::thread::current().id();
    let others = hook.clone();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() != me {
            others(info)
        }
    }));
    for event in &events {
        let vars = vars_of(event);
        for src in &exprs {
            let theirs = reference(src, &vars);
            let ours = match Expr::compile(src) {
                Err(e) => Err(e.to_string()),
                Ok(e) => {
                    let bound = bind(&vars);
                    let mut ev = Eval::new(&bound, u64::MAX);
                    match ev.eval(&e.node) {
                        Ok(v) => Ok(to_reference(&v)),
                        Err(Fault::Error(m)) => Err(m),
                        Err(Fault::Budget) => Err("budget".into()),
                    }
                }
            };
            compared += 1;
            let agree = match (&theirs, &ours) {
                (Ok(a), Ok(b)) => {
                    values += 1;
                    same(a, b)
                }
                (Err(_), Err(_)) => true,
                _ => false,
            };
            if !agree {
                disagree.push(format!(
                    "{src}\n    on {event}\n    cel-interpreter: {theirs:?}\n    weir: {ours:?}"
                ));
            }
        }
    }
    std::panic::set_hook(Box::new(move |info| hook(info)));
    eprintln!("compared {compared}, {values} with a value on both sides");
    assert!(compared > 500 && values > 250, "{compared} {values}");
    assert!(
        disagree.is_empty(),
        "{} of {compared} disagree:\n{}",
        disagree.len(),
        disagree.join("\n")
    );
}

#[test]
fn the_meter_never_runs_past_the_budget() {
    let (mut exprs, events) = corpus();
    exprs.push(TEN_TO_THE_SEVENTH);
    for event in &events {
        let vars = vars_of(event);
        let bound = bind(&vars);
        for src in &exprs {
            let e = Expr::compile(src).unwrap();
            for budget in (0..40).chain([100, 1_000, DEFAULT_BUDGET]) {
                let (r, used) = e.eval_bool_counted(&bound, budget);
                match r {
                    Err(ExprError::Budget { .. }) => assert_eq!(used, budget + 1, "{src}"),
                    _ => assert!(used <= budget, "{src}: {used} > {budget}"),
                }
            }
        }
    }
}

#[test]
fn the_static_bound_holds_at_run_time() {
    let (exprs, mut events) = corpus();
    // Bigger inputs, where the size-dependent charges show.
    events.push(json!({"data": {"s": "y".repeat(5_000), "plan": "y".repeat(300),
        "tags": (0..500).map(|i| format!("tag-{i}")).collect::<Vec<_>>(),
        "nums": (0..500).collect::<Vec<_>>(), "email": "z".repeat(2_000),
        "items": (0..200).map(|i| json!({"price": i, "sku": format!("s{i}"), "tags": ["t1", "t2"]})).collect::<Vec<_>>()},
        "user": {"id": "u_".repeat(100)}}));
    for event in &events {
        let vars = vars_of(event);
        let n = vars.iter().map(|(_, v)| content_size(v)).max().unwrap();
        let bound = bind(&vars);
        for src in &exprs {
            let e = Expr::compile(src).unwrap();
            let (_, used) = e.eval_bool_counted(&bound, u64::MAX - 1);
            let limit = e.bound_at(n);
            assert!(
                used <= limit,
                "{src}: used {used} > bound {limit} at n = {n}"
            );
        }
    }
}

#[test]
fn deep_nesting_is_refused_at_compile_time() {
    // The parser itself recurses deeply per bracket: such sources never reach it.
    for deep in [
        format!("{}1{}", "[".repeat(300), "]".repeat(300)),
        format!("{}1{}", "(".repeat(65), ")".repeat(65)),
        format!("{}1", "true ? 1 : ".repeat(70)),
    ] {
        match Expr::compile(&deep) {
            Err(ExprError::Parse { reason, .. }) => assert!(reason.contains("nests"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
    // Brackets inside strings do not count.
    let s = format!("'{}' != ''", "(".repeat(500));
    assert_eq!(Expr::compile(&s).unwrap().eval_bool(&[]), Ok(true));
    // Just under the limits it compiles and evaluates on an ordinary (2 MiB) stack.
    let ok = format!("{}1{} != null", "[".repeat(60), "]".repeat(60));
    assert_eq!(Expr::compile(&ok).unwrap().eval_bool(&[]), Ok(true));
    let sum = format!("1{} > 0", " + 1".repeat(99));
    assert_eq!(Expr::compile(&sum).unwrap().eval_bool(&[]), Ok(true));
    let long = format!("1{} > 0", " + 1".repeat(150));
    assert!(matches!(Expr::compile(&long), Err(ExprError::Parse { .. })));
}

#[test]
fn values_from_json_are_read_in_place() {
    let ev = json!({"data": {"xs": [1, 2]}});
    let e = Expr::compile("event.data.xs").unwrap();
    let bound = [("event", &ev)];
    let mut ev = Eval::new(&bound, 100);
    assert!(matches!(ev.eval(&e.node), Ok(Val::List(List::Json(_)))));
    let e = Expr::compile("event.data").unwrap();
    let mut ev2 = Eval::new(&bound, 100);
    assert!(matches!(ev2.eval(&e.node), Ok(Val::Map(Map::Json(_)))));
}

#[test]
fn a_value_is_small() {
    // The module docs count a list element as about 32 bytes of memory.
    assert!(
        std::mem::size_of::<Val>() <= 32,
        "{}",
        std::mem::size_of::<Val>()
    );
}

#[test]
fn comprehensions_nested_deeper_than_the_tracked_variables_are_bounded() {
    // Nine levels: more than the estimate tracks element sizes for.
    let mut src = String::from("x9 == x9");
    for i in (1..=9).rev() {
        src = format!("event.data.l.exists(x{i}, {src} || x{i})");
    }
    let e = Expr::compile(&src).unwrap();
    assert!(e.cost_bound(&InputLimits::default()).nested > 0);
    let ev = json!({"data": {"l": [1, 2]}});
    let bound = [("event", &ev)];
    let n = content_size(&ev);
    let (r, used) = e.eval_bool_counted(&bound, u64::MAX - 1);
    assert!(
        r.is_ok() || matches!(r, Err(ExprError::NotBool { .. })),
        "{r:?}"
    );
    assert!(used <= e.bound_at(n), "{used} > {}", e.bound_at(n));
}
