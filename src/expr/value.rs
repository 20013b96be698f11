//! Runtime values. Values read from the bound JSON borrow it (no conversion of the event
//! per evaluation); values the expression builds are reference-counted.

use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::rc::Rc;

use chrono::{DateTime, FixedOffset, TimeDelta};
use indexmap::IndexMap;
use serde_json::Value as Json;

/// Borrowed from the expression or the bound JSON, or built during evaluation.
#[derive(Debug)]
pub(crate) enum Sh<'a, T: ?Sized> {
    Ref(&'a T),
    Own(Rc<T>),
}

impl<T: ?Sized> Clone for Sh<'_, T> {
    fn clone(&self) -> Self {
        match self {
            Sh::Ref(r) => Sh::Ref(r),
            Sh::Own(r) => Sh::Own(r.clone()),
        }
    }
}

impl<T: ?Sized> Deref for Sh<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        match self {
            Sh::Ref(r) => r,
            Sh::Own(r) => r,
        }
    }
}

/// A CEL value.
#[derive(Debug, Clone)]
pub(crate) enum Val<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Sh<'a, str>),
    Bytes(Sh<'a, [u8]>),
    List(List<'a>),
    Map(Map<'a>),
    Timestamp(DateTime<FixedOffset>),
    Duration(TimeDelta),
    /// What `x.f` gives when `x` has no key `f` but `f` names a function (a quirk of
    /// cel-interpreter kept for compatibility).
    Function(&'a str, Option<Rc<Val<'a>>>),
}

/// A list.
#[derive(Debug, Clone)]
pub(crate) enum List<'a> {
    Json(&'a [Json]),
    Own(Rc<Vec<Val<'a>>>),
}

/// A map.
#[derive(Debug, Clone)]
pub(crate) enum Map<'a> {
    Json(&'a serde_json::Map<String, Json>),
    Own(Rc<IndexMap<Key<'a>, Val<'a>>>),
}

/// A map key.
#[derive(Debug, Clone)]
pub(crate) enum Key<'a> {
    Int(i64),
    UInt(u64),
    Bool(bool),
    Str(Sh<'a, str>),
}

impl PartialEq for Key<'_> {
    fn eq(&self, o: &Self) -> bool {
        match (self, o) {
            (Key::Int(a), Key::Int(b)) => a == b,
            (Key::UInt(a), Key::UInt(b)) => a == b,
            (Key::Bool(a), Key::Bool(b)) => a == b,
            (Key::Str(a), Key::Str(b)) => **a == **b,
            _ => false,
        }
    }
}

impl Eq for Key<'_> {}

impl Hash for Key<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        match self {
            Key::Int(i) => (0u8, i).hash(h),
            Key::UInt(u) => (1u8, u).hash(h),
            Key::Bool(b) => (2u8, b).hash(h),
            Key::Str(s) => (3u8, &**s).hash(h),
        }
    }
}

impl<'a> Key<'a> {
    /// The key form of a value, if it can be one.
    pub(crate) fn of(v: &Val<'a>) -> Option<Key<'a>> {
        Some(match v {
            Val::Int(i) => Key::Int(*i),
            Val::UInt(u) => Key::UInt(*u),
            Val::Bool(b) => Key::Bool(*b),
            Val::Str(s) => Key::Str(s.clone()),
            _ => return None,
        })
    }

    pub(crate) fn to_val(&self) -> Val<'a> {
        match self {
            Key::Int(i) => Val::Int(*i),
            Key::UInt(u) => Val::UInt(*u),
            Key::Bool(b) => Val::Bool(*b),
            Key::Str(s) => Val::Str(s.clone()),
        }
    }
}

impl<'a> Val<'a> {
    /// Binds JSON as CEL: integers as `int` (as `uint` only above `i64::MAX`), other
    /// numbers as `double`; nothing is copied.
    #[inline]
    pub(crate) fn from_json(v: &'a Json) -> Val<'a> {
        match v {
            Json::Null => Val::Null,
            Json::Bool(b) => Val::Bool(*b),
            Json::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Val::Int(i)
                } else if let Some(u) = n.as_u64() {
                    Val::UInt(u)
                } else {
                    Val::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Json::String(s) => Val::Str(Sh::Ref(s)),
            Json::Array(a) => Val::List(List::Json(a)),
            Json::Object(m) => Val::Map(Map::Json(m)),
        }
    }

    pub(crate) fn str(s: String) -> Val<'a> {
        Val::Str(Sh::Own(Rc::from(s)))
    }

    /// cel-interpreter's truthiness, used by `!`, `&&`, `||` and `?:`.
    pub(crate) fn truthy(&self) -> bool {
        match self {
            Val::List(l) => l.len() != 0,
            Val::Map(m) => m.len() != 0,
            Val::Int(v) => *v != 0,
            Val::UInt(v) => *v != 0,
            Val::Float(v) => *v != 0.0,
            Val::Str(s) => !s.is_empty(),
            Val::Bytes(b) => !b.is_empty(),
            Val::Bool(b) => *b,
            Val::Null => false,
            Val::Duration(d) => d.num_nanoseconds().map(|n| n != 0).unwrap_or(false),
            Val::Timestamp(t) => t.timestamp_nanos_opt().unwrap_or_default() > 0,
            Val::Function(..) => false,
        }
    }

    /// A short description for error messages (never the whole of a big value).
    pub(crate) fn describe(&self) -> String {
        match self {
            Val::Null => "null".into(),
            Val::Bool(b) => format!("bool {b}"),
            Val::Int(i) => format!("int {i}"),
            Val::UInt(u) => format!("uint {u}"),
            Val::Float(f) => format!("double {f}"),
            Val::Str(s) => {
                let cut: String = s.chars().take(40).collect();
                if cut.len() < s.len() {
                    format!("string {cut:?}…")
                } else {
                    format!("string {cut:?}")
                }
            }
            Val::Bytes(b) => format!("bytes of length {}", b.len()),
            Val::List(l) => format!("list of {} elements", l.len()),
            Val::Map(m) => format!("map of {} entries", m.len()),
            Val::Timestamp(t) => format!("timestamp {}", t.to_rfc3339()),
            Val::Duration(d) => format!("duration {}", super::duration::format(d)),
            Val::Function(name, _) => format!("function {name}"),
        }
    }
}

impl<'a> List<'a> {
    #[inline]
    pub(crate) fn len(&self) -> usize {
        match self {
            List::Json(a) => a.len(),
            List::Own(v) => v.len(),
        }
    }

    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<Val<'a>> {
        match self {
            List::Json(a) => a.get(i).map(Val::from_json),
            List::Own(v) => v.get(i).cloned(),
        }
    }
}

impl<'a> Map<'a> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Map::Json(m) => m.len(),
            Map::Own(m) => m.len(),
        }
    }

    /// The value under exactly this key.
    pub(crate) fn get_exact(&self, k: &Key<'a>) -> Option<Val<'a>> {
        match self {
            Map::Json(m) => match k {
                Key::Str(s) => m.get(&**s).map(Val::from_json),
                _ => None,
            },
            Map::Own(m) => m.get(k).cloned(),
        }
    }

    /// The value under `k`, an `int` key also finding the equal `uint` key and back.
    pub(crate) fn get(&self, k: &Key<'a>) -> Option<Val<'a>> {
        self.get_exact(k).or_else(|| {
            let other = match k {
                Key::Int(i) => Key::UInt(u64::try_from(*i).ok()?),
                Key::UInt(u) => Key::Int(i64::try_from(*u).ok()?),
                _ => return None,
            };
            self.get_exact(&other)
        })
    }

    pub(crate) fn contains_exact(&self, k: &Key<'a>) -> bool {
        match self {
            Map::Json(m) => matches!(k, Key::Str(s) if m.contains_key(&**s)),
            Map::Own(m) => m.contains_key(k),
        }
    }

    /// `x.field`: the value under the string key `field`.
    #[inline]
    pub(crate) fn field(&self, field: &str) -> Option<Val<'a>> {
        match self {
            Map::Json(m) => m.get(field).map(Val::from_json),
            Map::Own(m) => m.get(&Key::Str(Sh::Ref(field))).cloned(),
        }
    }

    /// `has(x.field)`: whether some key prints as `field` (cel-interpreter compares
    /// the keys' text; a field name can only equal a string key or `true`/`false`).
    pub(crate) fn has_field(&self, field: &str) -> bool {
        match self {
            Map::Json(m) => m.contains_key(field),
            Map::Own(m) => {
                m.contains_key(&Key::Str(Sh::Ref(field)))
                    || match field {
                        "true" => m.contains_key(&Key::Bool(true)),
                        "false" => m.contains_key(&Key::Bool(false)),
                        _ => false,
                    }
            }
        }
    }

    /// The keys, in the JSON's order or a literal's insertion order.
    pub(crate) fn keys(&self) -> Entries<'a> {
        self.entries()
    }

    /// The `(key, value)` pairs, lazily.
    pub(crate) fn entries(&self) -> Entries<'a> {
        match self {
            Map::Json(m) => Entries::Json(m.iter()),
            Map::Own(m) => Entries::Own(m.clone(), 0),
        }
    }
}

/// A map's entries, borrowed or shared, walked without copying the map.
pub(crate) enum Entries<'a> {
    Json(serde_json::map::Iter<'a>),
    Own(Rc<IndexMap<Key<'a>, Val<'a>>>, usize),
}

impl<'a> Iterator for Entries<'a> {
    type Item = (Key<'a>, Val<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Entries::Json(it) => it
                .next()
                .map(|(k, v)| (Key::Str(Sh::Ref(k.as_str())), Val::from_json(v))),
            Entries::Own(m, i) => {
                let (k, v) = m.get_index(*i)?;
                *i += 1;
                Some((k.clone(), v.clone()))
            }
        }
    }
}

/// Cost units for `bytes` bytes of string or bytes: one per 16, rounded up.
#[inline]
pub(crate) fn units(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(16)
}
