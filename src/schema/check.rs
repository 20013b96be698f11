//! Checking an event's `data` against a compiled version, with errors that say where
//! and which rule: `data.amount: -5 is less than the minimum of 0`.

use jsonschema::paths::{Location, LocationSegment};
use serde_json::Value;

/// Most errors kept per event (stored with it, or quoted in a refusal).
pub const MAX_ERRORS_PER_EVENT: usize = 10;

/// Longest single error message kept, in bytes (a message may quote the instance).
const MAX_MESSAGE: usize = 300;

/// The errors of `data` against `validator`, each `data.path: rule`; empty if valid.
pub fn check_data(validator: &jsonschema::Validator, data: &Value) -> Vec<String> {
    if validator.is_valid(data) {
        return Vec::new();
    }
    validator
        .iter_errors(data)
        .take(MAX_ERRORS_PER_EVENT)
        .map(|e| {
            let mut msg = e.to_string();
            if msg.len() > MAX_MESSAGE {
                let mut cut = MAX_MESSAGE;
                while !msg.is_char_boundary(cut) {
                    cut -= 1;
                }
                msg.truncate(cut);
                msg.push('…');
            }
            format!("{}: {msg}", data_path(e.instance_path()))
        })
        .collect()
}

/// A location inside an event's `data`, written the way a user reads it:
/// `data.items[2].sku`.
pub fn data_path(at: &Location) -> String {
    dotted("data", at)
}

/// `root` followed by the location's segments: `.name` for plain names, `["a b"]` for
/// others, `[i]` for array indexes.
pub fn dotted(root: &str, at: &Location) -> String {
    let mut out = root.to_string();
    for seg in at.segments() {
        match seg {
            LocationSegment::Index(i) => out.push_str(&format!("[{i}]")),
            LocationSegment::Property(p) => {
                let plain = !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '$'));
                if plain {
                    out.push('.');
                    out.push_str(&p);
                } else {
                    out.push_str(&format!("[{}]", Value::String(p.into_owned())));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_name_the_path_and_the_rule() {
        let v = super::super::compile(&json!({
            "type": "object",
            "required": ["plan"],
            "properties": {
                "amount": {"type": "integer", "minimum": 0},
                "items": {"type": "array", "items": {"properties": {"sku": {"type": "string"}}}},
                "first name": {"type": "string"}
            }
        }))
        .unwrap();
        assert!(check_data(&v, &json!({"plan": "pro", "amount": 3})).is_empty());
        let mut errs = check_data(
            &v,
            &json!({"amount": -5, "items": [{"sku": "a"}, {"sku": 7}], "first name": 1}),
        );
        errs.sort();
        assert_eq!(
            errs,
            vec![
                "data.amount: -5 is less than the minimum of 0",
                "data.items[1].sku: 7 is not of type \"string\"",
                "data: \"plan\" is a required property",
                "data[\"first name\"]: 1 is not of type \"string\"",
            ]
        );
    }

    #[test]
    fn errors_are_bounded() {
        let v = super::super::compile(&json!({"items": {"type": "string"}})).unwrap();
        let errs = check_data(&v, &json!((0..50).collect::<Vec<_>>()));
        assert_eq!(errs.len(), MAX_ERRORS_PER_EVENT);
        let v = super::super::compile(&json!({"properties": {"a": {"type": "string"}}})).unwrap();
        let long: Vec<u32> = (0..1000).collect();
        let errs = check_data(&v, &json!({"a": long}));
        assert!(errs[0].len() < MAX_MESSAGE + 20, "{}", errs[0]);
    }
}
