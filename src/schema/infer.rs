//! A draft 2020-12 schema inferred from sample `data` objects: each value's types (a
//! union when they differ; `integer` unless a fraction was seen), the properties seen
//! in every object as `required`, objects and arrays recursively, and an `enum` for a
//! string field with a small set of values that repeat.
//!
//! The result accepts every sample it was inferred from (tested below): properties stay
//! open (no `additionalProperties: false`), and an `enum` is only inferred for a value
//! that was never anything but a string (or null).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

/// An `enum` is inferred for a string field with at most this many distinct values...
pub const ENUM_MAX_VALUES: usize = 10;
/// ...and at least this many distinct values (one value seen is not yet a set)...
pub const ENUM_MIN_VALUES: usize = 2;
/// ...each seen this many times on average.
pub const ENUM_MIN_REPEATS: usize = 2;

/// What was seen at one place in the samples.
#[derive(Debug, Default)]
struct Shape {
    null: bool,
    boolean: bool,
    integer: bool,
    number: bool,
    strings: usize,
    /// Distinct strings, up to one more than an enum may have (then: too many).
    distinct: BTreeSet<String>,
    object: Option<Box<ObjectShape>>,
    array: Option<Box<Shape>>,
    /// Arrays seen (some may have been empty, leaving `array` unset).
    arrays: usize,
}

#[derive(Debug, Default)]
struct ObjectShape {
    seen: usize,
    props: BTreeMap<String, (usize, Shape)>,
}

impl ObjectShape {
    fn add(&mut self, m: &Map<String, Value>) {
        self.seen += 1;
        for (k, v) in m {
            let (n, shape) = self.props.entry(k.clone()).or_default();
            *n += 1;
            shape.add(v);
        }
    }

    fn schema(&self) -> Map<String, Value> {
        let mut s = Map::new();
        s.insert("type".into(), json!("object"));
        if !self.props.is_empty() {
            let props: Map<String, Value> = self
                .props
                .iter()
                .map(|(k, (_, shape))| (k.clone(), shape.schema()))
                .collect();
            s.insert("properties".into(), Value::Object(props));
        }
        let required: Vec<&String> = self
            .props
            .iter()
            .filter(|(_, (n, _))| *n == self.seen)
            .map(|(k, _)| k)
            .collect();
        if !required.is_empty() {
            s.insert("required".into(), json!(required));
        }
        s
    }
}

impl Shape {
    fn add(&mut self, v: &Value) {
        match v {
            Value::Null => self.null = true,
            Value::Bool(_) => self.boolean = true,
            Value::Number(n) => {
                let integral =
                    n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0);
                if integral {
                    self.integer = true;
                } else {
                    self.number = true;
                }
            }
            Value::String(s) => {
                self.strings += 1;
                if self.distinct.len() <= ENUM_MAX_VALUES {
                    self.distinct.insert(s.clone());
                }
            }
            Value::Array(items) => {
                self.arrays += 1;
                for item in items {
                    self.array.get_or_insert_with(Box::default).add(item);
                }
            }
            Value::Object(m) => self.object.get_or_insert_with(Box::default).add(m),
        }
    }

    fn types(&self) -> Vec<&'static str> {
        let mut t = Vec::new();
        if self.object.is_some() {
            t.push("object");
        }
        if self.arrays > 0 {
            t.push("array");
        }
        if self.strings > 0 {
            t.push("string");
        }
        if self.number {
            t.push("number");
        } else if self.integer {
            t.push("integer");
        }
        if self.boolean {
            t.push("boolean");
        }
        if self.null {
            t.push("null");
        }
        t
    }

    fn schema(&self) -> Value {
        let types = self.types();
        let mut s = match &self.object {
            Some(o) => o.schema(),
            None => Map::new(),
        };
        match types.as_slice() {
            [] => {}
            [one] => {
                s.insert("type".into(), json!(one));
            }
            many => {
                s.insert("type".into(), json!(many));
            }
        }
        if let Some(items) = &self.array {
            s.insert("items".into(), items.schema());
        }
        let only_strings = types.iter().all(|t| matches!(*t, "string" | "null"));
        let n = self.distinct.len();
        if only_strings
            && (ENUM_MIN_VALUES..=ENUM_MAX_VALUES).contains(&n)
            && self.strings >= n * ENUM_MIN_REPEATS
        {
            let mut values: Vec<Value> = self.distinct.iter().map(|s| json!(s)).collect();
            if self.null {
                values.push(Value::Null);
            }
            s.insert("enum".into(), Value::Array(values));
        }
        Value::Object(s)
    }
}

/// The schema inferred from `samples` (each an event's `data`), with a description
/// naming `name` and how many events it was inferred from.
pub fn infer<'a>(name: &str, samples: impl IntoIterator<Item = &'a Map<String, Value>>) -> Value {
    let mut root = ObjectShape::default();
    for m in samples {
        root.add(m);
    }
    let mut s = Map::new();
    s.insert("$schema".into(), json!(super::compile::DRAFT_2020_12));
    s.insert(
        "description".into(),
        json!(format!(
            "Inferred by weir from {} stored `{name}` event(s); review before registering.",
            root.seen
        )),
    );
    s.extend(root.schema());
    Value::Object(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Map<String, Value>> {
        let plans = ["free", "pro", "team"];
        (0..30)
            .map(|i| {
                let mut d = json!({
                    "plan": plans[i % 3],
                    "amount": if i % 2 == 0 { json!(i) } else { json!(i as f64 + 0.5) },
                    "count": i,
                    "user": {"id": format!("u_{i}"), "tags": ["a", "b"], "admin": i % 5 == 0},
                    "lines": [{"sku": format!("s{i}"), "qty": 1}],
                    "coupon": if i % 4 == 0 { Value::Null } else { json!(format!("C{i}")) },
                    "mixed": if i % 2 == 0 { json!("x") } else { json!(1) },
                    "empty": [],
                });
                if i % 3 == 0 {
                    d["note"] = json!("sometimes");
                }
                d.as_object().cloned().unwrap()
            })
            .collect()
    }

    #[test]
    fn types_required_nesting_and_enums() {
        let s = samples();
        let schema = infer("order/placed", &s);
        assert_eq!(schema["type"], "object");
        let p = &schema["properties"];
        assert_eq!(
            p["plan"],
            json!({"type": "string", "enum": ["free", "pro", "team"]})
        );
        assert_eq!(p["amount"]["type"], "number");
        assert_eq!(p["count"]["type"], "integer");
        assert_eq!(p["user"]["properties"]["admin"]["type"], "boolean");
        assert_eq!(
            p["user"]["properties"]["tags"]["items"],
            json!({"type": "string", "enum": ["a", "b"]})
        );
        assert!(
            p["user"]["properties"]["id"].get("enum").is_none(),
            "30 distinct ids are no enum"
        );
        assert_eq!(p["lines"]["items"]["required"], json!(["qty", "sku"]));
        assert_eq!(p["coupon"]["type"], json!(["string", "null"]));
        assert!(p["coupon"].get("enum").is_none(), "22 distinct coupons");
        assert_eq!(p["mixed"]["type"], json!(["string", "integer"]));
        assert!(
            p["mixed"].get("enum").is_none(),
            "an enum would refuse the integers"
        );
        assert_eq!(p["empty"], json!({"type": "array"}));
        let required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(
            required.contains(&"plan") && !required.contains(&"note"),
            "{required:?}"
        );
        // It compiles, and accepts what it was inferred from.
        let v = super::super::compile(&schema).unwrap();
        for d in &s {
            let errs = super::super::check_data(&v, &Value::Object(d.clone()));
            assert!(errs.is_empty(), "{errs:?} for {d:?}");
        }
        assert!(!v.is_valid(&json!({"plan": "enterprise"})));
    }

    #[test]
    fn few_samples_give_no_enum_and_none_give_an_open_object() {
        let one = json!({"plan": "pro"}).as_object().cloned().unwrap();
        let s = infer("a", [&one, &one, &one]);
        assert_eq!(
            s["properties"]["plan"],
            json!({"type": "string"}),
            "one value is not a set"
        );
        let (a, b) = (
            json!({"k": "x"}).as_object().cloned().unwrap(),
            json!({"k": "y"}).as_object().cloned().unwrap(),
        );
        let s = infer("a", [&a, &b]);
        assert!(
            s["properties"]["k"].get("enum").is_none(),
            "each value seen once"
        );
        let s = infer("a", []);
        assert_eq!(s["type"], "object");
        super::super::compile(&s).unwrap();
    }
}
