//! Typed, versioned event schemas: a version's JSON Schema (draft 2020-12) compiled once
//! and kept in memory per tenant and event name, checked against each event's `data`.
//!
//! This module knows no store and no HTTP: the engine persists [`SchemaVersion`]s and
//! asks the [`Registry`] which version an event is checked against.

mod check;
mod compile;
pub mod infer;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use check::{check_data, data_path, MAX_ERRORS_PER_EVENT};
pub use compile::compile;

/// What ingest does with an event that its schema refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemaMode {
    /// The request is refused (400) and nothing of it is stored.
    Reject,
    /// The event is stored with its `schema_errors` and counted.
    Warn,
}

impl SchemaMode {
    /// The mode as it is written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaMode::Reject => "reject",
            SchemaMode::Warn => "warn",
        }
    }
}

/// One registered version of an event's schema, as stored (versions are immutable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaVersion {
    /// The version, e.g. `2024-01-01.1`.
    pub v: String,
    /// What ingest does with an event this version refuses.
    pub mode: SchemaMode,
    /// The JSON Schema (draft 2020-12) that an event's `data` must satisfy.
    pub schema: Value,
    /// Registration time (ms since epoch).
    pub created_at: i64,
}

/// Why a schema request (or an event checked against a schema) was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchemaError {
    /// The request body is not the expected JSON object.
    #[error("{field}: {reason}")]
    Request {
        /// The field at fault (`body` for the whole body).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The version string is missing or malformed.
    #[error("v: {0}")]
    BadVersion(String),
    /// The mode is neither `reject` nor `warn`.
    #[error("mode: {0}")]
    BadMode(String),
    /// The event name is not one an event could carry.
    #[error("event name `{name}` {reason}")]
    BadName {
        /// The name, cut to 64 characters.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// The schema is not a valid draft 2020-12 JSON Schema.
    #[error("{path}: {reason}")]
    Invalid {
        /// Where in the request (`schema.properties.amount.minimum`).
        path: String,
        /// What the meta-schema or the compiler said.
        reason: String,
    },
    /// The schema refers to a document outside itself; weir fetches nothing.
    #[error("{path}: `{uri}` is not in this schema and weir does not fetch remote references; put it under `$defs` and refer to it as `#/$defs/…`")]
    RemoteRef {
        /// Where the `$ref` is (`schema.properties.address.$ref`).
        path: String,
        /// The reference that would have been fetched.
        uri: String,
    },
    /// This version exists already with another schema or mode.
    #[error("schema `{name}` version `{v}` exists with a different schema or mode; versions are immutable: register a new `v`")]
    VersionExists {
        /// The event name.
        name: String,
        /// The version.
        v: String,
    },
    /// An event names a version its name has no schema for.
    #[error("events[{index}].v: `{v}` is not a schema version of `{name}` (known: {known})")]
    UnknownVersion {
        /// The event's index in the request.
        index: usize,
        /// The event name.
        name: String,
        /// The version it named.
        v: String,
        /// The versions there are, comma-separated.
        known: String,
    },
    /// An event does not satisfy its `reject`-mode schema.
    #[error("{}", violation_message(*.index, .name, .v, .errors))]
    Violation {
        /// The event's index in the request.
        index: usize,
        /// The event name.
        name: String,
        /// The schema version it was checked against.
        v: String,
        /// The errors, each `data.path: rule`.
        errors: Vec<String>,
    },
}

fn violation_message(index: usize, name: &str, v: &str, errors: &[String]) -> String {
    let list: Vec<String> = errors
        .iter()
        .map(|e| format!("events[{index}].{e}"))
        .collect();
    format!(
        "{} (schema `{name}` version `{v}`)",
        if list.is_empty() {
            format!("events[{index}]: refused by its schema")
        } else {
            list.join("; ")
        }
    )
}

impl SchemaError {
    /// A stable machine-readable code, for API bodies.
    pub fn code(&self) -> &'static str {
        match self {
            SchemaError::Request { .. } => "invalid_schema_request",
            SchemaError::BadVersion(_) => "invalid_schema_version",
            SchemaError::BadMode(_) => "invalid_schema_mode",
            SchemaError::BadName { .. } => "invalid_event_name",
            SchemaError::Invalid { .. } => "invalid_schema",
            SchemaError::RemoteRef { .. } => "remote_schema_ref",
            SchemaError::VersionExists { .. } => "schema_version_exists",
            SchemaError::UnknownVersion { .. } => "unknown_schema_version",
            SchemaError::Violation { .. } => "schema_violation",
        }
    }

    /// Whether the request conflicts with what is stored (a 409), rather than being
    /// malformed (a 400).
    pub fn is_conflict(&self) -> bool {
        matches!(self, SchemaError::VersionExists { .. })
    }
}

/// A `PUT /v1/schemas/{name}` body, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct PutSchema {
    /// The version to register.
    pub v: String,
    /// Its mode.
    pub mode: SchemaMode,
    /// The JSON Schema.
    pub schema: Value,
    /// Only report what the schema would find in the stored events; store nothing.
    pub dry_run: bool,
}

/// Parses a `PUT /v1/schemas/{name}` body, naming the field at fault.
pub fn parse_put(body: &[u8]) -> Result<PutSchema, SchemaError> {
    let req = |field, reason: String| SchemaError::Request { field, reason };
    let value: Value =
        serde_json::from_slice(body).map_err(|e| req("body", format!("is not valid JSON: {e}")))?;
    let Value::Object(mut obj) = value else {
        return Err(req(
            "body",
            format!(
                "must be an object {{\"v\", \"schema\", \"mode\"}}, got {}",
                crate::event::json_type(&value)
            ),
        ));
    };
    let v = match obj.remove("v") {
        Some(Value::String(s)) => check_version(&s).map(|()| s)?,
        Some(other) => {
            return Err(SchemaError::BadVersion(format!(
                "must be a string such as \"2024-01-01.1\", got {}",
                crate::event::json_type(&other)
            )))
        }
        None => {
            return Err(SchemaError::BadVersion(
                "is required (a string such as \"2024-01-01.1\")".into(),
            ))
        }
    };
    let mode = match obj.remove("mode") {
        Some(Value::String(s)) if s == "reject" => SchemaMode::Reject,
        Some(Value::String(s)) if s == "warn" => SchemaMode::Warn,
        Some(other) => {
            return Err(SchemaError::BadMode(format!(
                "must be \"reject\" or \"warn\", got {other}"
            )))
        }
        None => {
            return Err(SchemaError::BadMode(
                "is required: \"reject\" or \"warn\"".into(),
            ))
        }
    };
    let schema = match obj.remove("schema") {
        Some(s @ (Value::Object(_) | Value::Bool(_))) => s,
        Some(other) => {
            return Err(SchemaError::Invalid {
                path: "schema".into(),
                reason: format!(
                    "must be a JSON Schema (an object or a boolean), got {}",
                    crate::event::json_type(&other)
                ),
            })
        }
        None => {
            return Err(SchemaError::Invalid {
                path: "schema".into(),
                reason: "is required".into(),
            })
        }
    };
    let dry_run = match obj.remove("dry_run") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(other) => {
            return Err(req(
                "dry_run",
                format!("must be a boolean, got {}", crate::event::json_type(&other)),
            ))
        }
    };
    if let Some(k) = obj.keys().next() {
        return Err(req(
            "body",
            format!("unknown field `{k}` (expected v, schema, mode, dry_run)"),
        ));
    }
    Ok(PutSchema {
        v,
        mode,
        schema,
        dry_run,
    })
}

/// Checks a version string: 1–64 characters of `A-Z a-z 0-9 . _ -`.
pub fn check_version(v: &str) -> Result<(), SchemaError> {
    if v.is_empty() {
        return Err(SchemaError::BadVersion("must not be empty".into()));
    }
    if v.len() > 64 {
        return Err(SchemaError::BadVersion("is longer than 64 bytes".into()));
    }
    if let Some(c) = v
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(SchemaError::BadVersion(format!(
            "`{v}` contains {c:?}; use letters, digits, `.`, `_` and `-` (e.g. 2024-01-01.1)"
        )));
    }
    Ok(())
}

/// Checks an event name the way ingest does (non-empty, ≤ 256 bytes, no control
/// characters, not in weir's own `weir/` namespace).
pub fn check_name(name: &str) -> Result<(), SchemaError> {
    let bad = |reason| SchemaError::BadName {
        name: name.chars().take(64).collect(),
        reason,
    };
    if name.trim().is_empty() {
        return Err(bad("must not be empty"));
    }
    if name.len() > 256 {
        return Err(bad("is longer than 256 bytes"));
    }
    if name.chars().any(char::is_control) {
        return Err(bad("must not contain control characters"));
    }
    if name.starts_with("weir/") {
        return Err(bad(
            "is in the `weir/` namespace reserved for weir's own events",
        ));
    }
    Ok(())
}

/// A version with its compiled validator.
pub struct Compiled {
    /// The version as stored.
    pub version: SchemaVersion,
    /// Its schema, compiled.
    pub validator: jsonschema::Validator,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Compiled {
    /// Compiles a stored version.
    pub fn new(version: SchemaVersion) -> Result<Self, SchemaError> {
        let validator = compile(&version.schema)?;
        Ok(Self { version, validator })
    }

    /// The errors of an event's `data` against this version (empty: valid).
    pub fn check(&self, data: &Value) -> Vec<String> {
        check_data(&self.validator, data)
    }
}

/// Every version of one event name's schema, in registration order (the last is the
/// latest).
pub type Versions = Arc<Vec<Arc<Compiled>>>;

/// The compiled schemas of every tenant, and the violations counted per tenant, event
/// name and mode.
#[derive(Debug, Default)]
pub struct Registry {
    by_tenant: RwLock<HashMap<String, HashMap<String, Versions>>>,
    violations: Mutex<BTreeMap<(String, String, SchemaMode), u64>>,
}

/// What a schema says about one event at ingest.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// No schema applies (or the event satisfies it).
    Valid,
    /// Stored with these errors (a `warn` version).
    Warn(Vec<String>),
}

impl Registry {
    /// Whether `tenant` has any schema (the whole cost of ingest for a tenant without).
    pub fn tenant_has_schemas(&self, tenant: &str) -> bool {
        self.read().get(tenant).is_some_and(|m| !m.is_empty())
    }

    /// Every version of `name`'s schema for `tenant`.
    pub fn versions(&self, tenant: &str, name: &str) -> Option<Versions> {
        self.read().get(tenant)?.get(name).cloned()
    }

    /// The schema names of a tenant with their versions, sorted by name.
    pub fn list(&self, tenant: &str) -> Vec<(String, Versions)> {
        let mut out: Vec<(String, Versions)> = self
            .read()
            .get(tenant)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Replaces the versions kept for `name` (after they were stored).
    pub fn set(&self, tenant: &str, name: &str, versions: Vec<Arc<Compiled>>) {
        let mut m = self.by_tenant.write().unwrap_or_else(|p| p.into_inner());
        m.entry(tenant.to_string())
            .or_default()
            .insert(name.to_string(), Arc::new(versions));
    }

    /// Checks a request's events against their schemas, all before any is stored: the
    /// first event a `reject` version refuses (or that names an unknown `v`) fails the
    /// whole request; otherwise each event's verdict, in order (none at all when the
    /// tenant has no schemas). Violations are counted.
    pub fn check_batch<'a>(
        &self,
        tenant: &str,
        events: impl Iterator<Item = (&'a str, Option<&'a str>, &'a Value)>,
    ) -> Result<Vec<Verdict>, SchemaError> {
        let names = match self.read().get(tenant) {
            Some(m) if !m.is_empty() => m.clone(),
            _ => return Ok(Vec::new()),
        };
        let mut verdicts = Vec::new();
        let mut counted: BTreeMap<(String, SchemaMode), u64> = BTreeMap::new();
        for (index, (name, v, data)) in events.enumerate() {
            let Some(versions) = names.get(name) else {
                verdicts.push(Verdict::Valid);
                continue;
            };
            let compiled = match v {
                None => versions.last(),
                Some(v) => versions.iter().rev().find(|c| c.version.v == v),
            };
            let Some(compiled) = compiled else {
                return Err(SchemaError::UnknownVersion {
                    index,
                    name: name.to_string(),
                    v: v.unwrap_or_default().to_string(),
                    known: versions
                        .iter()
                        .map(|c| c.version.v.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            };
            let errors = compiled.check(data);
            if errors.is_empty() {
                verdicts.push(Verdict::Valid);
                continue;
            }
            let mode = compiled.version.mode;
            *counted.entry((name.to_string(), mode)).or_default() += 1;
            match mode {
                SchemaMode::Warn => verdicts.push(Verdict::Warn(errors)),
                SchemaMode::Reject => {
                    self.count(tenant, counted);
                    return Err(SchemaError::Violation {
                        index,
                        name: name.to_string(),
                        v: compiled.version.v.clone(),
                        errors,
                    });
                }
            }
        }
        self.count(tenant, counted);
        Ok(verdicts)
    }

    fn count(&self, tenant: &str, counted: BTreeMap<(String, SchemaMode), u64>) {
        if counted.is_empty() {
            return;
        }
        let mut m = self.violations.lock().unwrap_or_else(|p| p.into_inner());
        for ((name, mode), n) in counted {
            *m.entry((tenant.to_string(), name, mode)).or_default() += n;
        }
    }

    /// Events refused (`reject`) or stored with errors (`warn`), per tenant, event name
    /// and mode.
    pub fn violations(&self) -> Vec<(String, String, SchemaMode, u64)> {
        self.violations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|((t, n, m), c)| (t.clone(), n.clone(), *m, *c))
            .collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, HashMap<String, Versions>>> {
        self.by_tenant.read().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn version(v: &str, mode: SchemaMode, schema: Value) -> Arc<Compiled> {
        Arc::new(
            Compiled::new(SchemaVersion {
                v: v.into(),
                mode,
                schema,
                created_at: 0,
            })
            .unwrap(),
        )
    }

    #[test]
    fn put_bodies_name_the_field_at_fault() {
        let ok =
            parse_put(br#"{"v":"2024-01-01.1","mode":"warn","schema":{"type":"object"}}"#).unwrap();
        assert_eq!(
            (ok.v.as_str(), ok.mode, ok.dry_run),
            ("2024-01-01.1", SchemaMode::Warn, false)
        );
        let cases: [(&[u8], &str, &str); 8] = [
            (
                b"{nope",
                "invalid_schema_request",
                "body: is not valid JSON",
            ),
            (
                br#"{"mode":"warn","schema":{}}"#,
                "invalid_schema_version",
                "v: is required",
            ),
            (
                br#"{"v":"a b","mode":"warn","schema":{}}"#,
                "invalid_schema_version",
                "v: `a b` contains ' '",
            ),
            (
                br#"{"v":7,"mode":"warn","schema":{}}"#,
                "invalid_schema_version",
                "v: must be a string",
            ),
            (
                br#"{"v":"1","mode":"loud","schema":{}}"#,
                "invalid_schema_mode",
                "mode: must be \"reject\" or \"warn\", got \"loud\"",
            ),
            (
                br#"{"v":"1","mode":"warn"}"#,
                "invalid_schema",
                "schema: is required",
            ),
            (
                br#"{"v":"1","mode":"warn","schema":{},"dry_run":"yes"}"#,
                "invalid_schema_request",
                "dry_run: must be a boolean",
            ),
            (
                br#"{"v":"1","mode":"warn","schema":{},"extra":1}"#,
                "invalid_schema_request",
                "unknown field `extra`",
            ),
        ];
        for (body, code, msg) in cases {
            let e = parse_put(body).unwrap_err();
            assert_eq!(e.code(), code, "{e}");
            assert!(e.to_string().contains(msg), "{e} should contain {msg}");
        }
    }

    #[test]
    fn a_batch_is_checked_against_the_named_or_latest_version() {
        let r = Registry::default();
        assert!(!r.tenant_has_schemas("t"));
        r.set(
            "t",
            "order",
            vec![
                version("1", SchemaMode::Reject, json!({"required": ["a"]})),
                version("2", SchemaMode::Warn, json!({"required": ["b"]})),
            ],
        );
        assert!(r.tenant_has_schemas("t") && !r.tenant_has_schemas("u"));
        let (a, b) = (json!({"a": 1}), json!({"b": 1}));
        // Without v: the latest (2, warn).
        let verdicts = r
            .check_batch(
                "t",
                [
                    ("order", None, &a),
                    ("order", None, &b),
                    ("other", None, &a),
                ]
                .into_iter(),
            )
            .unwrap();
        assert_eq!(
            verdicts,
            vec![
                Verdict::Warn(vec!["data: \"b\" is a required property".into()]),
                Verdict::Valid,
                Verdict::Valid
            ]
        );
        // v = 1 is reject: the whole batch fails at the event's index.
        let e = r
            .check_batch(
                "t",
                [("order", Some("2"), &b), ("order", Some("1"), &b)].into_iter(),
            )
            .unwrap_err();
        assert_eq!(e.code(), "schema_violation");
        assert!(
            e.to_string()
                .starts_with("events[1].data: \"a\" is a required property"),
            "{e}"
        );
        let e = r
            .check_batch("t", [("order", Some("9"), &a)].into_iter())
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "events[0].v: `9` is not a schema version of `order` (known: 1, 2)"
        );
        // Another tenant's events are not checked.
        assert!(r
            .check_batch("u", [("order", Some("9"), &a)].into_iter())
            .unwrap()
            .is_empty());
        assert_eq!(
            r.violations(),
            vec![
                ("t".into(), "order".into(), SchemaMode::Reject, 1),
                ("t".into(), "order".into(), SchemaMode::Warn, 1)
            ]
        );
    }
}
