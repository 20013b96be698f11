//! A JSON value kept as its text and parsed only when something reads it as a value.
//! A run carries its event and its steps' outputs through a store round trip per step;
//! as text they are copied, not rebuilt node by node (that decoding and re-encoding was
//! most of the run writer's CPU).

use std::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

/// JSON text with its parsed value built on first use.
#[derive(Clone)]
pub struct Json {
    raw: Box<RawValue>,
    value: OnceLock<Value>,
}

impl Json {
    /// Wraps a value (its text is produced now).
    pub fn from_value(value: Value) -> Self {
        let raw = serde_json::value::to_raw_value(&value)
            .unwrap_or_else(|_| RawValue::from_string("null".into()).expect("null is JSON"));
        Self {
            raw,
            value: OnceLock::from(value),
        }
    }

    /// The value, parsed on first use.
    pub fn get(&self) -> &Value {
        self.value
            .get_or_init(|| serde_json::from_str(self.raw.get()).unwrap_or(Value::Null))
    }

    /// The JSON text.
    pub fn raw(&self) -> &RawValue {
        &self.raw
    }
}

impl From<Value> for Json {
    fn from(v: Value) -> Self {
        Self::from_value(v)
    }
}

impl PartialEq for Json {
    fn eq(&self, other: &Self) -> bool {
        self.raw.get() == other.raw.get() || self.get() == other.get()
    }
}

impl PartialEq<Value> for Json {
    fn eq(&self, other: &Value) -> bool {
        self.get() == other
    }
}

impl fmt::Debug for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.raw.get())
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.raw.get())
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self {
            raw: Box::<RawValue>::deserialize(d)?,
            value: OnceLock::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_as_text_and_reads_as_a_value() {
        let j = Json::from_value(json!({"b": [1, 2], "a": "x"}));
        let text = serde_json::to_string(&json!({"k": j})).unwrap();
        assert_eq!(text, r#"{"k":{"a":"x","b":[1,2]}}"#);
        #[derive(serde::Deserialize)]
        struct K {
            k: Json,
        }
        let back: K = serde_json::from_str(&text).unwrap();
        assert_eq!(back.k.raw().get(), r#"{"a":"x","b":[1,2]}"#);
        assert_eq!(back.k.get()["b"][1], 2);
        assert_eq!(back.k, j);
        assert_eq!(back.k, json!({"a": "x", "b": [1, 2]}));
        // From a parsed value too (the API and tests build runs that way).
        let v: K = serde_json::from_value(json!({"k": {"z": null}})).unwrap();
        assert_eq!(v.k.get()["z"], Value::Null);
    }
}
