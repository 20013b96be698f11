//! Events: the Inngest-compatible wire format, parsed and validated at the edge.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Most events one `POST /e/{key}` may carry.
pub const MAX_EVENTS_PER_REQUEST: usize = 5_000;

/// Why an incoming event (or batch) was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EventError {
    /// The body is not JSON at all.
    #[error("body is not valid JSON: {0}")]
    Json(String),
    /// The body is JSON but neither an object nor an array.
    #[error("body must be an event object or an array of events, got {0}")]
    Shape(&'static str),
    /// The array is empty.
    #[error("body is an empty array: send at least one event")]
    Empty,
    /// The array holds more events than allowed.
    #[error("{count} events in one request; the limit is {limit}")]
    TooMany {
        /// Events sent.
        count: usize,
        /// The most accepted.
        limit: usize,
    },
    /// The JSON nests deeper than allowed.
    #[error("body nests deeper than {0} levels")]
    TooDeep(usize),
    /// One event in the batch is invalid.
    #[error("event[{index}].{field}: {reason}")]
    Field {
        /// The event's index in the batch.
        index: usize,
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// A validated event as weir stores it and hands it to steps.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// weir's own id (a ULID), returned by `POST /e/{key}`.
    pub id: String,
    /// The event name, e.g. `user/signed.up`.
    pub name: String,
    /// The payload; always an object.
    pub data: Map<String, Value>,
    /// Who the event is about, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Map<String, Value>>,
    /// The sender's idempotency key (the wire `id`), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub ts: i64,
    /// Schema version, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<String>,
    /// What its `warn`-mode schema found wrong with it at ingest (empty: nothing, or no
    /// schema). Not part of the wire format, nor of what steps and CEL see.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schema_errors: Vec<String>,
}

impl Event {
    /// The user id (`user.id`) as a string, if the event names one.
    pub fn user_id(&self) -> Option<String> {
        match self.user.as_ref()?.get("id")? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// The event as the JSON value bound to `event` in CEL and in a step's stdin.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), Value::String(self.id.clone()));
        m.insert("name".into(), Value::String(self.name.clone()));
        m.insert("data".into(), Value::Object(self.data.clone()));
        m.insert(
            "user".into(),
            Value::Object(self.user.clone().unwrap_or_default()),
        );
        m.insert("ts".into(), Value::from(self.ts));
        if let Some(k) = &self.idempotency_key {
            m.insert("idempotency_key".into(), Value::String(k.clone()));
        }
        if let Some(v) = &self.v {
            m.insert("v".into(), Value::String(v.clone()));
        }
        Value::Object(m)
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A fresh, time-sortable id.
/// Ids are monotonic across the whole process, so they sort in the order they were
/// handed out even within one millisecond.
pub fn new_id() -> String {
    static GEN: std::sync::Mutex<Option<ulid::Generator>> = std::sync::Mutex::new(None);
    let mut g = GEN.lock().unwrap_or_else(|p| p.into_inner());
    g.get_or_insert_with(ulid::Generator::new)
        .generate()
        .unwrap_or_else(|_| ulid::Ulid::new())
        .to_string()
}

/// When an id from [`new_id`] was made (ms since epoch): for a stored event, when weir
/// received it.
pub fn id_time(id: &str) -> Option<i64> {
    ulid::Ulid::from_string(id)
        .ok()
        .map(|u| u.timestamp_ms() as i64)
}

/// An RFC 3339 time as ms since epoch, or why it is not one.
pub fn parse_time(s: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("`{s}` is not an RFC 3339 time like 2026-11-01T00:00:00Z ({e})"))
}

/// Rejects JSON nested deeper than `max` arrays/objects, without parsing it.
pub fn check_depth(body: &[u8], max: usize) -> Result<(), EventError> {
    let (mut depth, mut in_str, mut esc) = (0usize, false, false);
    for &b in body {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return Err(EventError::TooDeep(max));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Parses a request body holding one event or an array of them, assigning ids.
pub fn parse_batch(body: &[u8], max_events: usize) -> Result<Vec<Event>, EventError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| EventError::Json(e.to_string()))?;
    let items = match value {
        Value::Array(items) => items,
        Value::Object(_) => vec![value],
        other => return Err(EventError::Shape(json_type(&other))),
    };
    if items.is_empty() {
        return Err(EventError::Empty);
    }
    if items.len() > max_events {
        return Err(EventError::TooMany {
            count: items.len(),
            limit: max_events,
        });
    }
    let now = now_ms();
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| parse_one(index, item, new_id(), now))
        .collect()
}

/// Validates one event given as JSON (the `index`-th of a list), with a new id.
pub fn parse_item(index: usize, item: Value) -> Result<Event, EventError> {
    parse_one(index, item, new_id(), now_ms())
}

fn parse_one(index: usize, item: Value, id: String, now: i64) -> Result<Event, EventError> {
    let err = |field: &'static str, reason: String| EventError::Field {
        index,
        field,
        reason,
    };
    let Value::Object(mut obj) = item else {
        return Err(err(
            "",
            format!("must be an object, got {}", json_type(&item)),
        ));
    };
    let name = match obj.remove("name") {
        Some(Value::String(s)) if !s.trim().is_empty() => s,
        Some(Value::String(_)) => return Err(err("name", "must not be empty".into())),
        Some(other) => {
            return Err(err(
                "name",
                format!("must be a string, got {}", json_type(&other)),
            ))
        }
        None => return Err(err("name", "is required".into())),
    };
    if name.len() > 256 {
        return Err(err("name", "is longer than 256 bytes".into()));
    }
    if name.chars().any(char::is_control) {
        return Err(err("name", "must not contain control characters".into()));
    }
    if name.starts_with("weir/") {
        return Err(err(
            "name",
            "the `weir/` prefix is reserved for weir's own events".into(),
        ));
    }
    let data = match obj.remove("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(err(
                "data",
                format!("must be an object, got {}", json_type(&other)),
            ))
        }
    };
    let user = match obj.remove("user") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(other) => {
            return Err(err(
                "user",
                format!("must be an object, got {}", json_type(&other)),
            ))
        }
    };
    let idempotency_key = match obj.remove("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) if s.len() > 256 => {
            return Err(err("id", "is longer than 256 bytes".into()))
        }
        Some(Value::String(s)) => Some(s),
        Some(other) => {
            return Err(err(
                "id",
                format!("must be a string, got {}", json_type(&other)),
            ))
        }
    };
    let ts = match obj.remove("ts") {
        None | Some(Value::Null) => now,
        Some(Value::Number(n)) => match n.as_f64() {
            Some(t) if (0.0..1e15).contains(&t) => t as i64,
            _ => {
                return Err(err(
                    "ts",
                    format!(
                        "must be milliseconds since the epoch (a non-negative number), got {n}"
                    ),
                ))
            }
        },
        Some(other) => {
            return Err(err(
                "ts",
                format!("must be a number, got {}", json_type(&other)),
            ))
        }
    };
    let ts = if ts == 0 { now } else { ts };
    let v = match obj.remove("v") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => {
            return Err(err(
                "v",
                format!("must be a string, got {}", json_type(&other)),
            ))
        }
    };
    Ok(Event {
        id,
        name,
        data,
        user,
        idempotency_key,
        ts,
        v,
        schema_errors: Vec::new(),
    })
}

/// The JSON type name of a value, for error messages.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_or_an_array() {
        let one = parse_batch(br#"{"name":"a/b","data":{"x":1}}"#, 10).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].name, "a/b");
        assert_eq!(one[0].data["x"], 1);
        let many = parse_batch(br#"[{"name":"a"},{"name":"b","id":"k1","ts":5}]"#, 10).unwrap();
        assert_eq!(many.len(), 2);
        assert_eq!(many[1].idempotency_key.as_deref(), Some("k1"));
        assert_eq!(many[1].ts, 5);
        assert!(many[0].id < many[1].id, "ids sort in arrival order");
    }

    #[test]
    fn errors_name_the_index_and_field() {
        let e = parse_batch(br#"[{"name":"a"},{"data":{}}]"#, 10).unwrap_err();
        assert_eq!(e.to_string(), "event[1].name: is required");
        let e = parse_batch(br#"[{"name":"a","data":[1]}]"#, 10).unwrap_err();
        assert_eq!(e.to_string(), "event[0].data: must be an object, got array");
        let e = parse_batch(br#"{"name":"","data":{}}"#, 10).unwrap_err();
        assert_eq!(e.to_string(), "event[0].name: must not be empty");
        let e = parse_batch(br#"{"name":"x","ts":"yesterday"}"#, 10).unwrap_err();
        assert_eq!(e.to_string(), "event[0].ts: must be a number, got string");
        assert!(matches!(
            parse_batch(b"{nope", 10),
            Err(EventError::Json(_))
        ));
        assert_eq!(parse_batch(b"[]", 10), Err(EventError::Empty));
        let e = parse_batch(br#"{"name":"weir/cron"}"#, 10).unwrap_err();
        assert!(e.to_string().contains("reserved"), "{e}");
        assert_eq!(parse_batch(b"3", 10), Err(EventError::Shape("number")));
        assert!(matches!(
            parse_batch(br#"[{"name":"a"},{"name":"a"}]"#, 1),
            Err(EventError::TooMany { count: 2, limit: 1 })
        ));
    }

    #[test]
    fn depth_is_limited_outside_strings_only() {
        assert!(check_depth(br#"{"a":{"b":[1]}}"#, 3).is_ok());
        assert_eq!(
            check_depth(br#"{"a":{"b":[1]}}"#, 2),
            Err(EventError::TooDeep(2))
        );
        assert!(check_depth(br#"{"a":"[[[[[[\"{{{{"}"#, 1).is_ok());
    }

    #[test]
    fn user_id_and_value() {
        let e = &parse_batch(br#"{"name":"a","user":{"id":"u1"}}"#, 1).unwrap()[0];
        assert_eq!(e.user_id().as_deref(), Some("u1"));
        let v = e.to_value();
        assert_eq!(v["user"]["id"], "u1");
        assert_eq!(v["data"], serde_json::json!({}));
    }
}
