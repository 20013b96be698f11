//! Compiling a version's JSON Schema: draft 2020-12 whatever `$schema` says elsewhere,
//! formats checked, patterns in the linear-time `regex` engine, and no reference
//! fetched from anywhere.

use std::sync::{Arc, Mutex};

use jsonschema::{PatternOptions, Retrieve, Uri};
use serde_json::Value;

use super::check::dotted;
use super::SchemaError;

/// The `$schema` of draft 2020-12, the only draft weir compiles.
pub const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// Refuses every retrieval and remembers what was asked for, so that the error can
/// name the `$ref`. The crate's own meta-schemas are built in and never retrieved.
#[derive(Default, Clone)]
struct Refuse(Arc<Mutex<Vec<String>>>);

impl Retrieve for Refuse {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(uri.as_str().to_string());
        Err(format!("weir does not fetch remote references ({uri})").into())
    }
}

/// Compiles a schema, or says what is wrong with it and where (`schema.…`).
pub fn compile(schema: &Value) -> Result<jsonschema::Validator, SchemaError> {
    if let Some(s) = schema.get("$schema") {
        let known = s
            .as_str()
            .is_some_and(|s| s.trim_end_matches('#') == DRAFT_2020_12);
        if !known {
            return Err(SchemaError::Invalid {
                path: "schema.$schema".into(),
                reason: format!(
                    "{s} is not draft 2020-12; use \"{DRAFT_2020_12}\" or leave it out"
                ),
            });
        }
    }
    let refused = Refuse::default();
    let built = jsonschema::draft202012::options()
        .with_retriever(refused.clone())
        .should_validate_formats(true)
        .with_pattern_options(PatternOptions::regex())
        .build(schema);
    match built {
        Ok(v) => Ok(v),
        Err(e) => {
            let asked = refused
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .first()
                .cloned();
            if let Some(uri) = asked {
                return Err(SchemaError::RemoteRef {
                    path: find_ref(schema, &uri, "schema").unwrap_or_else(|| "schema".into()),
                    uri,
                });
            }
            if matches!(
                e.kind(),
                jsonschema::error::ValidationErrorKind::Referencing(_)
            ) {
                // An unresolvable reference inside the document (`#/$defs/missing`).
                let reason = e.to_string();
                let path = find_unresolved(schema, &reason, "schema");
                return Err(SchemaError::Invalid {
                    path: path.unwrap_or_else(|| "schema".into()),
                    reason,
                });
            }
            Err(SchemaError::Invalid {
                path: dotted("schema", e.instance_path()),
                reason: e.to_string(),
            })
        }
    }
}

/// The dotted path of the first `$ref` / `$dynamicRef` whose target is `uri` (the
/// reference itself may be relative to an `$id`).
fn find_ref(v: &Value, uri: &str, at: &str) -> Option<String> {
    let uri = uri.split('#').next().unwrap_or(uri);
    walk_refs(v, at, &mut |r| {
        let doc = r.split('#').next().unwrap_or(r);
        !doc.is_empty() && (uri == doc || uri.ends_with(doc))
    })
}

/// The dotted path of a `$ref` named in a resolution error.
fn find_unresolved(v: &Value, reason: &str, at: &str) -> Option<String> {
    walk_refs(v, at, &mut |r| reason.contains(r))
}

fn walk_refs(v: &Value, at: &str, hit: &mut dyn FnMut(&str) -> bool) -> Option<String> {
    match v {
        Value::Object(m) => {
            for k in ["$ref", "$dynamicRef"] {
                if let Some(Value::String(r)) = m.get(k) {
                    if hit(r) {
                        return Some(format!("{at}.{k}"));
                    }
                }
            }
            m.iter()
                .find_map(|(k, child)| walk_refs(child, &format!("{at}.{k}"), hit))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, child)| walk_refs(child, &format!("{at}[{i}]"), hit)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_remote_ref_is_refused_naming_where_it_is_and_nothing_is_fetched() {
        for (schema, path) in [
            (
                json!({"type": "object", "properties": {"address": {"$ref": "https://example.com/address.json"}}}),
                "schema.properties.address.$ref",
            ),
            (
                json!({"$ref": "http://127.0.0.1:9/x.json#/a"}),
                "schema.$ref",
            ),
            (
                json!({"$id": "https://example.com/root.json", "items": {"$ref": "other.json"}}),
                "schema.items.$ref",
            ),
            (
                json!({"allOf": [{"$ref": "file:///etc/passwd"}]}),
                "schema.allOf[0].$ref",
            ),
        ] {
            let e = compile(&schema).unwrap_err();
            assert_eq!(e.code(), "remote_schema_ref", "{e}");
            assert!(e.to_string().starts_with(&format!("{path}: `")), "{e}");
        }
    }

    #[test]
    fn local_refs_and_the_draft_meta_schema_need_no_fetch() {
        let v = compile(&json!({
            "$schema": DRAFT_2020_12,
            "$id": "https://example.com/order.json",
            "$defs": {"money": {"type": "integer", "minimum": 0}},
            "properties": {
                "amount": {"$ref": "#/$defs/money"},
                "refund": {"$ref": "https://example.com/order.json#/$defs/money"}
            }
        }))
        .unwrap();
        assert!(v.is_valid(&json!({"amount": 5, "refund": 1})));
        assert!(!v.is_valid(&json!({"amount": -5})));
    }

    #[test]
    fn invalid_schemas_name_the_keyword() {
        let e = compile(&json!({"properties": {"amount": {"minimum": "zero"}}})).unwrap_err();
        assert_eq!(e.code(), "invalid_schema");
        assert!(
            e.to_string()
                .starts_with("schema.properties.amount.minimum: "),
            "{e}"
        );
        let e = compile(&json!({"type": "objekt"})).unwrap_err();
        assert!(e.to_string().starts_with("schema.type: "), "{e}");
        let e =
            compile(&json!({"$schema": "http://json-schema.org/draft-07/schema#"})).unwrap_err();
        assert!(e.to_string().starts_with("schema.$schema: "), "{e}");
        let e = compile(&json!({"properties": {"a": {"$ref": "#/$defs/missing"}}})).unwrap_err();
        assert_eq!(e.code(), "invalid_schema", "{e}");
        // Lookaround needs backtracking, which the linear-time engine refuses.
        let e = compile(&json!({"pattern": "^(?=a)"})).unwrap_err();
        assert!(e.to_string().starts_with("schema.pattern: "), "{e}");
    }

    #[test]
    fn formats_are_checked() {
        let v = compile(&json!({"properties": {"email": {"format": "email"}}})).unwrap();
        assert!(v.is_valid(&json!({"email": "a@b.c"})));
        assert!(!v.is_valid(&json!({"email": "not an address"})));
    }
}
