//! The metered tree-walking evaluator. Semantics follow cel-interpreter 0.10, which weir
//! used before (its quirks included: `||` yields its left operand when truthy, a missing
//! key through `[]` is `null` but through `.` an error, …); the cost rules are in the
//! module docs of [`crate::expr`].

use std::cmp::Ordering;
use std::rc::Rc;

use chrono::{Datelike, Timelike};
use serde_json::Value as Json;

mod calls;

use crate::expr::node::{BinOp, Call, Comp, Func, Node, Step, TimePart};
use crate::expr::value::{units, Key, List, Map, Sh, Val};

/// Why evaluation stopped.
#[derive(Debug)]
pub(crate) enum Fault {
    /// The budget is spent.
    Budget,
    /// Any other error, with cel-interpreter's wording where it has one.
    Error(String),
}

fn err<T>(msg: impl Into<String>) -> Result<T, Fault> {
    Err(Fault::Error(msg.into()))
}

/// Counts cost units against a limit. A charge that does not fit is refused before the
/// work it pays for is done, and leaves `used` at `limit + 1`; any charge after that
/// (which would mean an evaluation went on after running out) adds one more, so the
/// fuzz target can tell.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meter {
    pub used: u64,
    pub limit: u64,
}

impl Meter {
    #[inline(always)]
    pub(crate) fn charge(&mut self, units: u64) -> Result<(), Fault> {
        if self.used <= self.limit && units <= self.limit - self.used {
            self.used += units;
            Ok(())
        } else {
            self.used = if self.used > self.limit {
                self.used.saturating_add(1)
            } else {
                self.limit.saturating_add(1)
            };
            Err(Fault::Budget)
        }
    }
}

/// One evaluation: the bound variables, the comprehension variables in scope, the meter.
pub(crate) struct Eval<'a> {
    vars: &'a [(&'a str, &'a Json)],
    locals: Vec<(&'a str, Val<'a>)>,
    pub meter: Meter,
}

impl<'a> Eval<'a> {
    pub(crate) fn new(vars: &'a [(&'a str, &'a Json)], budget: u64) -> Self {
        Eval {
            vars,
            locals: Vec::new(),
            meter: Meter {
                used: 0,
                limit: budget,
            },
        }
    }

    fn var(&self, name: &str) -> Result<Val<'a>, Fault> {
        if let Some((_, v)) = self.locals.iter().rev().find(|(n, _)| *n == name) {
            return Ok(v.clone());
        }
        match self.vars.iter().rev().find(|(n, _)| *n == name) {
            Some((_, v)) => Ok(Val::from_json(v)),
            None => err(format!("Undeclared reference to '{name}'")),
        }
    }

    /// Evaluates `node`, one unit for the node itself plus what its operations cost.
    pub(crate) fn eval(&mut self, node: &'a Node) -> Result<Val<'a>, Fault> {
        self.meter.charge(1)?;
        match node {
            Node::Lit(l) => Ok(literal(l)),
            Node::Ident(name) => self.var(name),
            Node::Select {
                operand,
                field,
                test,
            } => {
                let v = self.eval(operand)?;
                if *test {
                    return Ok(Val::Bool(match &v {
                        Val::Map(m) => m.has_field(field),
                        _ => false,
                    }));
                }
                if let Val::Map(m) = &v {
                    if let Some(child) = m.field(field) {
                        return Ok(child);
                    }
                }
                if Func::by_name(field).is_some() {
                    Ok(Val::Function(field, Some(Rc::new(v))))
                } else {
                    err(format!("No such key: {field}"))
                }
            }
            Node::List(items) => {
                self.meter.charge(items.len() as u64)?;
                let mut out = Vec::with_capacity(items.len());
                for i in items {
                    out.push(self.eval(i)?);
                }
                Ok(Val::List(List::Own(Rc::new(out))))
            }
            Node::Map(entries) => {
                self.meter.charge(entries.len() as u64)?;
                let mut out = indexmap::IndexMap::with_capacity(entries.len());
                for (k, v) in entries {
                    let key = self.eval(k)?;
                    let Some(key) = Key::of(&key) else {
                        return err(format!("Unable to use value '{}' as a key", key.describe()));
                    };
                    let value = self.eval(v)?;
                    out.insert(key, value);
                }
                Ok(Val::Map(Map::Own(Rc::new(out))))
            }
            Node::And(a, b) => {
                if !self.eval(a)?.truthy() {
                    Ok(Val::Bool(false))
                } else {
                    Ok(Val::Bool(self.eval(b)?.truthy()))
                }
            }
            Node::Or(a, b) => {
                let left = self.eval(a)?;
                if left.truthy() {
                    Ok(left)
                } else {
                    self.eval(b)
                }
            }
            Node::Not(a) => Ok(Val::Bool(!self.eval(a)?.truthy())),
            Node::Neg(a) => match self.eval(a)? {
                Val::Int(i) => match i.checked_neg() {
                    Some(n) => Ok(Val::Int(n)),
                    None => err(format!("Overflow from unary operator 'minus': int {i}")),
                },
                Val::Float(f) => Ok(Val::Float(-f)),
                v => err(format!(
                    "Unsupported unary operator 'minus': {}",
                    v.describe()
                )),
            },
            Node::NotStrictlyFalse(a) => Ok(match self.eval(a)? {
                Val::Bool(b) => Val::Bool(b),
                _ => Val::Bool(true),
            }),
            Node::Cond(c, t, f) => {
                if self.eval(c)?.truthy() {
                    self.eval(t)
                } else {
                    self.eval(f)
                }
            }
            Node::Bin(op, a, b) => {
                let l = self.eval(a)?;
                let r = self.eval(b)?;
                self.binary(*op, l, r)
            }
            Node::Call(c) => self.call(c),
            Node::Comp(c) => self.comprehension(c),
            Node::Fail(msg) => err(&**msg),
        }
    }

    fn binary(&mut self, op: BinOp, l: Val<'a>, r: Val<'a>) -> Result<Val<'a>, Fault> {
        use Val::*;
        let cmp = |s: &mut Self, want: fn(Ordering) -> bool, l: Val<'a>, r: Val<'a>| match s
            .compare(&l, &r)?
        {
            Some(o) => Ok(Bool(want(o))),
            None => err(format!(
                "{} can not be compared to {}",
                l.describe(),
                r.describe()
            )),
        };
        match op {
            BinOp::Add => self.add(l, r),
            BinOp::Sub => arith("sub", l, r),
            BinOp::Mul => arith("mul", l, r),
            BinOp::Div => arith("div", l, r),
            BinOp::Rem => arith("rem", l, r),
            BinOp::Eq => Ok(Bool(self.equal(&l, &r)?)),
            BinOp::Ne => Ok(Bool(!self.equal(&l, &r)?)),
            BinOp::Lt => cmp(self, |o| o == Ordering::Less, l, r),
            BinOp::Le => cmp(self, |o| o != Ordering::Greater, l, r),
            BinOp::Gt => cmp(self, |o| o == Ordering::Greater, l, r),
            BinOp::Ge => cmp(self, |o| o != Ordering::Less, l, r),
            BinOp::In => match (&l, &r) {
                (Str(needle), Str(hay)) => Ok(Bool(self.find(hay.as_bytes(), needle.as_bytes())?)),
                (_, List(list)) => Ok(Bool(self.list_contains(list, &l)?)),
                (_, Map(m)) => Ok(Bool(match Key::of(&l) {
                    Some(k) => m.contains_exact(&k),
                    None => false,
                })),
                _ => err(format!(
                    "{} can not be compared to {}",
                    l.describe(),
                    r.describe()
                )),
            },
            BinOp::Index => match (l, r) {
                (List(items), Int(i)) => Ok(usize::try_from(i)
                    .ok()
                    .and_then(|i| items.get(i))
                    .unwrap_or(Null)),
                (Str(s), Int(i)) => {
                    let Some(end) = i.checked_add(1) else {
                        return err("string index overflows");
                    };
                    Ok(match s.get(i as usize..end as usize) {
                        Some(c) => Val::str(c.to_string()),
                        None => Null,
                    })
                }
                (Map(m), k @ (Str(_) | Bool(_) | Int(_) | UInt(_))) => {
                    Ok(Key::of(&k).and_then(|k| m.get(&k)).unwrap_or(Null))
                }
                (Map(_), k) => err(format!("Cannot use value as map index: {}", k.describe())),
                (List(_), k) => err(format!("Cannot use value as list index: {}", k.describe())),
                (v, k) => err(format!(
                    "Cannot use value {} to index {}",
                    k.describe(),
                    v.describe()
                )),
            },
        }
    }

    fn add(&mut self, l: Val<'a>, r: Val<'a>) -> Result<Val<'a>, Fault> {
        use Val::*;
        match (l, r) {
            (Int(a), Int(b)) => checked(a.checked_add(b).map(Int), "add"),
            (UInt(a), UInt(b)) => checked(a.checked_add(b).map(UInt), "add"),
            (Float(a), Float(b)) => Ok(Float(a + b)),
            (Str(a), Str(b)) => {
                self.meter.charge(units(a.len() + b.len()))?;
                let mut s = String::with_capacity(a.len() + b.len());
                s.push_str(&a);
                s.push_str(&b);
                Ok(Val::str(s))
            }
            (List(a), List(b)) => self.concat(a, b),
            (Duration(a), Duration(b)) => checked(a.checked_add(&b).map(Duration), "add"),
            (Timestamp(t), Duration(d)) | (Duration(d), Timestamp(t)) => {
                checked(t.checked_add_signed(d).map(Timestamp), "add")
            }
            (a, b) => err(format!(
                "Unsupported binary operator 'add': {}, {}",
                a.describe(),
                b.describe()
            )),
        }
    }

    /// `a + b` for lists: appends in place when `a` is not shared (the `map`/`filter`
    /// accumulators), paying for the elements it adds; copies it otherwise, paying for both.
    fn concat(&mut self, a: List<'a>, b: List<'a>) -> Result<Val<'a>, Fault> {
        let mut a = match a {
            List::Own(rc) => rc,
            List::Json(items) => {
                self.meter.charge((items.len() + b.len()) as u64)?;
                Rc::new(items.iter().map(Val::from_json).collect())
            }
        };
        if let Some(v) = Rc::get_mut(&mut a) {
            self.meter.charge(b.len() as u64)?;
            extend(v, &b);
            return Ok(Val::List(List::Own(a)));
        }
        self.meter.charge((a.len() + b.len()) as u64)?;
        let mut v: Vec<Val<'a>> = Vec::with_capacity(a.len() + b.len());
        v.extend(a.iter().cloned());
        extend(&mut v, &b);
        Ok(Val::List(List::Own(Rc::new(v))))
    }

    /// Equality as cel-interpreter's `PartialEq`: numbers across types, lists and maps
    /// deeply; one unit per element or entry compared, strings by length.
    pub(crate) fn equal(&mut self, a: &Val<'a>, b: &Val<'a>) -> Result<bool, Fault> {
        use Val::*;
        Ok(match (a, b) {
            (Null, Null) => true,
            (Bool(x), Bool(y)) => x == y,
            (Int(x), Int(y)) => x == y,
            (UInt(x), UInt(y)) => x == y,
            (Float(x), Float(y)) => x == y,
            (Int(x), UInt(y)) | (UInt(y), Int(x)) => u64::try_from(*x).is_ok_and(|x| x == *y),
            (Int(x), Float(y)) | (Float(y), Int(x)) => *x as f64 == *y,
            (UInt(x), Float(y)) | (Float(y), UInt(x)) => *x as f64 == *y,
            (Str(x), Str(y)) => self.bytes_equal(x.as_bytes(), y.as_bytes())?,
            (Bytes(x), Bytes(y)) => self.bytes_equal(x, y)?,
            (Timestamp(x), Timestamp(y)) => x == y,
            (Duration(x), Duration(y)) => x == y,
            (List(x), List(y)) => {
                if x.len() != y.len() {
                    return Ok(false);
                }
                for i in 0..x.len() {
                    self.meter.charge(1)?;
                    let (Some(p), Some(q)) = (x.get(i), y.get(i)) else {
                        return Ok(false);
                    };
                    if !self.equal(&p, &q)? {
                        return Ok(false);
                    }
                }
                true
            }
            (Map(x), Map(y)) => {
                if x.len() != y.len() {
                    return Ok(false);
                }
                for (k, v) in x.entries() {
                    self.meter.charge(1)?;
                    match y.get_exact(&k) {
                        Some(w) if self.equal(&v, &w)? => {}
                        _ => return Ok(false),
                    }
                }
                true
            }
            (Function(n, t), Function(m, u)) => {
                n == m
                    && match (t, u) {
                        (Some(t), Some(u)) => self.equal(t, u)?,
                        (None, None) => true,
                        _ => false,
                    }
            }
            _ => false,
        })
    }

    fn bytes_equal(&mut self, x: &[u8], y: &[u8]) -> Result<bool, Fault> {
        if x.len() != y.len() {
            return Ok(false);
        }
        self.meter.charge(units(x.len()))?;
        Ok(x == y)
    }

    /// Ordering as cel-interpreter's `PartialOrd`; `None` when not comparable.
    fn compare(&mut self, a: &Val<'a>, b: &Val<'a>) -> Result<Option<Ordering>, Fault> {
        use Val::*;
        Ok(match (a, b) {
            (Int(x), Int(y)) => Some(x.cmp(y)),
            (UInt(x), UInt(y)) => Some(x.cmp(y)),
            (Float(x), Float(y)) => x.partial_cmp(y),
            (Str(x), Str(y)) => {
                self.meter.charge(units(x.len().min(y.len())))?;
                Some(x.cmp(y))
            }
            (Bool(x), Bool(y)) => Some(x.cmp(y)),
            (Null, Null) => Some(Ordering::Equal),
            (Duration(x), Duration(y)) => Some(x.cmp(y)),
            (Timestamp(x), Timestamp(y)) => Some(x.cmp(y)),
            (Int(x), UInt(y)) => Some(
                u64::try_from(*x)
                    .map(|x| x.cmp(y))
                    .unwrap_or(Ordering::Less),
            ),
            (UInt(x), Int(y)) => Some(
                i64::try_from(*x)
                    .map(|x| x.cmp(y))
                    .unwrap_or(Ordering::Greater),
            ),
            (Int(x), Float(y)) => (*x as f64).partial_cmp(y),
            (UInt(x), Float(y)) => (*x as f64).partial_cmp(y),
            (Float(x), Int(y)) => x.partial_cmp(&(*y as f64)),
            (Float(x), UInt(y)) => x.partial_cmp(&(*y as f64)),
            _ => None,
        })
    }

    /// Substring search, linear in the haystack: paid for only when the needle fits.
    fn find(&mut self, hay: &[u8], needle: &[u8]) -> Result<bool, Fault> {
        if needle.len() > hay.len() {
            return Ok(false);
        }
        self.meter.charge(units(hay.len()) + units(needle.len()))?;
        Ok(memchr::memmem::find(hay, needle).is_some())
    }

    fn list_contains(&mut self, list: &List<'a>, v: &Val<'a>) -> Result<bool, Fault> {
        for i in 0..list.len() {
            self.meter.charge(1)?;
            if let Some(e) = list.get(i) {
                if self.equal(&e, v)? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    fn comprehension(&mut self, c: &'a Comp) -> Result<Val<'a>, Fault> {
        let init = self.eval(&c.init)?;
        let range = self.eval(&c.range)?;
        let base = self.locals.len();
        self.locals.push((&c.accu_var, init));
        match range {
            Val::List(items) => {
                for i in 0..items.len() {
                    let Some(item) = items.get(i) else { break };
                    if !self.iterate(c, base, item)? {
                        break;
                    }
                }
            }
            Val::Map(m) => {
                for (k, _) in m.keys() {
                    if !self.iterate(c, base, k.to_val())? {
                        break;
                    }
                }
            }
            v => {
                return err(format!(
                    "a comprehension needs a list or a map, got {}",
                    v.describe()
                ))
            }
        }
        let out = self.eval(&c.result)?;
        self.locals.truncate(base);
        Ok(out)
    }

    /// One element of a comprehension; `false` once its condition stops it.
    fn iterate(&mut self, c: &'a Comp, base: usize, item: Val<'a>) -> Result<bool, Fault> {
        self.meter.charge(1)?;
        if !self.eval(&c.cond)?.truthy() {
            return Ok(false);
        }
        match self.locals.get_mut(base + 1) {
            Some(slot) => slot.1 = item,
            None => self.locals.push((&c.iter_var, item)),
        }
        match &c.step {
            Step::Append(x) => self.append(base, x)?,
            Step::CondAppend(p, x) => {
                // The `?:` node, then `accu + x` or the `accu` identifier.
                self.meter.charge(1)?;
                if self.eval(p)?.truthy() {
                    self.append(base, x)?;
                } else {
                    self.meter.charge(1)?;
                }
            }
            Step::Any(step) => {
                let accu = self.eval(step)?;
                self.locals[base].1 = accu;
            }
        }
        Ok(true)
    }

    /// `accu + x` with the accumulator taken out of scope, so that the list is not shared
    /// and grows in place; charged as the `+` and the identifier nodes plus the append.
    fn append(&mut self, base: usize, x: &'a Node) -> Result<(), Fault> {
        self.meter.charge(2)?;
        let add = self.eval(x)?;
        let accu = std::mem::replace(&mut self.locals[base].1, Val::Null);
        self.locals[base].1 = self.add(accu, add)?;
        Ok(())
    }
}

/// Compiling a pattern at run time: a fixed part, plus 16 units per 16 bytes of pattern.
pub(crate) fn regex_compile_cost(pattern_units: u64) -> u64 {
    100 + 16 * pattern_units
}

fn literal<'a>(l: &'a cel_parser::reference::Val) -> Val<'a> {
    use cel_parser::reference::Val as L;
    match l {
        L::String(s) => Val::Str(Sh::Ref(s)),
        L::Boolean(b) => Val::Bool(*b),
        L::Int(i) => Val::Int(*i),
        L::UInt(u) => Val::UInt(*u),
        L::Double(d) => Val::Float(*d),
        L::Bytes(b) => Val::Bytes(Sh::Ref(b)),
        L::Null => Val::Null,
    }
}

fn want_str<'v>(v: &'v Val<'_>) -> Result<&'v str, Fault> {
    match v {
        Val::Str(s) => Ok(s),
        v => err(format!(
            "Unexpected type: got '{}', want 'string'",
            v.describe()
        )),
    }
}

fn extend<'a>(v: &mut Vec<Val<'a>>, b: &List<'a>) {
    v.reserve(b.len());
    v.extend((0..b.len()).filter_map(|i| b.get(i)));
}

fn checked<'a>(v: Option<Val<'a>>, op: &str) -> Result<Val<'a>, Fault> {
    v.ok_or_else(|| Fault::Error(format!("Overflow from binary operator '{op}'")))
}

fn arith<'a>(op: &'static str, l: Val<'a>, r: Val<'a>) -> Result<Val<'a>, Fault> {
    use Val::*;
    let zero = |l: &Val| {
        Fault::Error(if op == "div" {
            format!("Division by zero of {}", l.describe())
        } else {
            format!("Remainder by zero of {}", l.describe())
        })
    };
    match (op, &l, &r) {
        ("sub", Int(a), Int(b)) => checked(a.checked_sub(*b).map(Int), op),
        ("sub", UInt(a), UInt(b)) => checked(a.checked_sub(*b).map(UInt), op),
        ("sub", Float(a), Float(b)) => Ok(Float(a - b)),
        ("sub", Duration(a), Duration(b)) => checked(a.checked_sub(b).map(Duration), op),
        ("sub", Timestamp(t), Duration(d)) => checked(t.checked_sub_signed(*d).map(Timestamp), op),
        ("sub", Timestamp(a), Timestamp(b)) => Ok(Duration(a.signed_duration_since(*b))),
        ("mul", Int(a), Int(b)) => checked(a.checked_mul(*b).map(Int), op),
        ("mul", UInt(a), UInt(b)) => checked(a.checked_mul(*b).map(UInt), op),
        ("mul", Float(a), Float(b)) => Ok(Float(a * b)),
        ("div", Int(_), Int(0)) | ("rem", Int(_), Int(0)) => Err(zero(&l)),
        ("div", UInt(_), UInt(0)) | ("rem", UInt(_), UInt(0)) => Err(zero(&l)),
        ("div", Int(a), Int(b)) => checked(a.checked_div(*b).map(Int), op),
        ("div", UInt(a), UInt(b)) => checked(a.checked_div(*b).map(UInt), op),
        ("div", Float(a), Float(b)) => Ok(Float(a / b)),
        ("rem", Int(a), Int(b)) => checked(a.checked_rem(*b).map(Int), op),
        ("rem", UInt(a), UInt(b)) => checked(a.checked_rem(*b).map(UInt), op),
        _ => err(format!(
            "Unsupported binary operator '{op}': {}, {}",
            l.describe(),
            r.describe()
        )),
    }
}
