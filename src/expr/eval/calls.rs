//! The built-in functions and methods (`size`, `has`, `matches`, conversions, `max`/`min`,
//! …), each charged as the module docs of [`crate::expr`] say.

use super::*;

impl<'a> Eval<'a> {
    pub(super) fn call(&mut self, c: &'a Call) -> Result<Val<'a>, Fault> {
        // cel-interpreter resolves the first argument of every one- or two-argument call
        // before it looks at the function, so its errors come first.
        let first = match c.args.len() {
            1 | 2 => Some(self.eval(&c.args[0])?),
            _ => None,
        };
        let target = match &c.target {
            Some(t) => Some(self.eval(t)?),
            None => None,
        };
        let mut next = 0;
        let this = if c.func.has_this() {
            match target {
                Some(t) => Some(t),
                None => {
                    next = 1;
                    match self.arg(c, &first, 0) {
                        Ok(v) => Some(v),
                        Err(Fault::Budget) => return Err(Fault::Budget),
                        Err(_) => return err("Missing argument or target"),
                    }
                }
            }
        } else {
            None
        };
        let this = this.unwrap_or(Val::Null);
        match c.func {
            Func::Size => Ok(Val::Int(match &this {
                Val::List(l) => l.len() as i64,
                Val::Map(m) => m.len() as i64,
                Val::Str(s) => s.len() as i64,
                Val::Bytes(b) => b.len() as i64,
                v => {
                    return err(format!(
                        "Error executing function 'size': cannot determine the size of {}",
                        v.describe()
                    ))
                }
            })),
            Func::Contains => {
                let arg = self.arg(c, &first, next)?;
                Ok(Val::Bool(match (&this, &arg) {
                    (Val::List(l), a) => self.list_contains(l, a)?,
                    (Val::Map(m), a) => match Key::of(a) {
                        Some(k) => m.contains_exact(&k),
                        None => {
                            return err(format!("Unable to use value '{}' as a key", a.describe()))
                        }
                    },
                    (Val::Str(s), Val::Str(a)) => self.find(s.as_bytes(), a.as_bytes())?,
                    (Val::Bytes(b), Val::Bytes(a)) => {
                        if a.is_empty() {
                            // cel-interpreter panics here (`windows(0)`).
                            return err("Error executing function 'contains': empty bytes");
                        }
                        self.find(b, a)?
                    }
                    _ => false,
                }))
            }
            Func::StartsWith | Func::EndsWith => {
                let s = want_str(&this)?;
                let p = self.arg(c, &first, next)?;
                let p = want_str(&p)?;
                if p.len() > s.len() {
                    return Ok(Val::Bool(false));
                }
                self.meter.charge(units(p.len()))?;
                Ok(Val::Bool(if c.func == Func::StartsWith {
                    s.starts_with(p)
                } else {
                    s.ends_with(p)
                }))
            }
            Func::Matches => {
                let s = want_str(&this)?;
                let p = self.arg(c, &first, next)?;
                let p = want_str(&p)?;
                let (cs, cp) = (1 + units(s.len()), 1 + units(p.len()));
                let matched = match &c.regex {
                    Some(compiled) => {
                        self.meter.charge(cs.saturating_mul(cp))?;
                        match compiled {
                            Ok(re) => re.is_match(s),
                            Err(e) => {
                                return err(format!("Error executing function 'matches': {e}"))
                            }
                        }
                    }
                    None => {
                        self.meter
                            .charge(cs.saturating_mul(cp).saturating_add(regex_compile_cost(cp)))?;
                        match crate::expr::node::compile_regex(p) {
                            Ok(re) => re.is_match(s),
                            Err(e) => {
                                return err(format!("Error executing function 'matches': {e}"))
                            }
                        }
                    }
                };
                Ok(Val::Bool(matched))
            }
            Func::String => {
                let (charge, out) = match &this {
                    Val::Str(s) => (0, Val::Str(s.clone())),
                    Val::Timestamp(t) => (3, Val::str(t.to_rfc3339())),
                    Val::Duration(d) => (3, Val::str(crate::expr::duration::format(d))),
                    Val::Int(i) => (2, Val::str(i.to_string())),
                    Val::UInt(u) => (2, Val::str(u.to_string())),
                    Val::Float(f) => (2, Val::str(f.to_string())),
                    Val::Bytes(b) => {
                        // Lossy decoding makes at most 3 bytes per input byte.
                        self.meter.charge(units(b.len().saturating_mul(3)))?;
                        (0, Val::str(String::from_utf8_lossy(b).into_owned()))
                    }
                    v => {
                        return err(format!(
                            "Error executing function 'string': cannot convert {} to string",
                            v.describe()
                        ))
                    }
                };
                self.meter.charge(charge)?;
                Ok(out)
            }
            Func::Bytes => {
                let s = self.arg(c, &first, 0)?;
                let s = want_str(&s)?;
                self.meter.charge(units(s.len()))?;
                Ok(Val::Bytes(Sh::Own(Rc::from(s.as_bytes()))))
            }
            Func::Double | Func::Int | Func::UInt => self.convert(c.func, this),
            Func::Duration => {
                let s = self.arg(c, &first, 0)?;
                let s = want_str(&s)?;
                self.meter.charge(units(s.len()))?;
                crate::expr::duration::parse(s)
                    .map(Val::Duration)
                    .map_err(Fault::Error)
            }
            Func::Timestamp => {
                let s = self.arg(c, &first, 0)?;
                let s = want_str(&s)?;
                self.meter.charge(units(s.len()))?;
                chrono::DateTime::parse_from_rfc3339(s)
                    .map(Val::Timestamp)
                    .map_err(|e| Fault::Error(format!("Error executing function 'timestamp': {e}")))
            }
            Func::Max | Func::Min => {
                let mut args = Vec::with_capacity(c.args.len());
                for i in 0..c.args.len() {
                    args.push(self.arg(c, &first, i)?);
                }
                self.extreme(c.func == Func::Max, args)
            }
            Func::Time(part) => {
                let Val::Timestamp(t) = &this else {
                    return err(format!(
                        "Unexpected type: got '{}', want 'timestamp'",
                        this.describe()
                    ));
                };
                Ok(Val::Int(match part {
                    TimePart::FullYear => t.year() as i64,
                    TimePart::Month => t.month0() as i64,
                    TimePart::DayOfYear => t.ordinal0() as i64,
                    TimePart::DayOfMonth => t.day0() as i64,
                    TimePart::Date => t.day() as i64,
                    TimePart::DayOfWeek => t.weekday().num_days_from_sunday() as i64,
                    TimePart::Hours => t.hour() as i64,
                    TimePart::Minutes => t.minute() as i64,
                    TimePart::Seconds => t.second() as i64,
                    TimePart::Milliseconds => t.timestamp_subsec_millis() as i64,
                }))
            }
        }
    }

    /// Argument `i`, reusing the first argument when it was resolved up front.
    fn arg(&mut self, c: &'a Call, first: &Option<Val<'a>>, i: usize) -> Result<Val<'a>, Fault> {
        if i == 0 {
            if let Some(v) = first {
                return Ok(v.clone());
            }
        }
        match c.args.get(i) {
            Some(a) => self.eval(a),
            None => err(format!(
                "Invalid argument count: expected {}, got {}",
                i + 1,
                c.args.len()
            )),
        }
    }

    fn convert(&mut self, to: Func, v: Val<'a>) -> Result<Val<'a>, Fault> {
        let name = match to {
            Func::Double => "double",
            Func::Int => "int",
            _ => "uint",
        };
        let fail = |m: String| Fault::Error(format!("Error executing function '{name}': {m}"));
        if let Val::Str(s) = &v {
            self.meter.charge(units(s.len()))?;
        }
        Ok(match (to, v) {
            (Func::Double, Val::Str(s)) => Val::Float(
                s.parse::<f64>()
                    .map_err(|e| fail(format!("string parse error: {e}")))?,
            ),
            (Func::Double, Val::Float(f)) => Val::Float(f),
            (Func::Double, Val::Int(i)) => Val::Float(i as f64),
            (Func::Double, Val::UInt(u)) => Val::Float(u as f64),
            (Func::Int, Val::Str(s)) => Val::Int(
                s.parse::<i64>()
                    .map_err(|e| fail(format!("string parse error: {e}")))?,
            ),
            (Func::Int, Val::Float(f)) => {
                if f > i64::MAX as f64 || f < i64::MIN as f64 {
                    return Err(fail("integer overflow".into()));
                }
                Val::Int(f as i64)
            }
            (Func::Int, Val::Int(i)) => Val::Int(i),
            (Func::Int, Val::UInt(u)) => {
                Val::Int(i64::try_from(u).map_err(|_| fail("integer overflow".into()))?)
            }
            (Func::UInt, Val::Str(s)) => Val::UInt(
                s.parse::<u64>()
                    .map_err(|e| fail(format!("string parse error: {e}")))?,
            ),
            (Func::UInt, Val::Float(f)) => {
                if f > u64::MAX as f64 || f < 0.0 {
                    return Err(fail("unsigned integer overflow".into()));
                }
                Val::UInt(f as u64)
            }
            (Func::UInt, Val::Int(i)) => {
                Val::UInt(u64::try_from(i).map_err(|_| fail("unsigned integer overflow".into()))?)
            }
            (Func::UInt, Val::UInt(u)) => Val::UInt(u),
            (_, v) => return Err(fail(format!("cannot convert {} to {name}", v.describe()))),
        })
    }

    /// `max`/`min` over the arguments, or over the elements of a single list argument.
    fn extreme(&mut self, max: bool, args: Vec<Val<'a>>) -> Result<Val<'a>, Fault> {
        let items: Vec<Val<'a>> = match args.as_slice() {
            [Val::List(l)] => {
                self.meter.charge(l.len() as u64)?;
                (0..l.len()).filter_map(|i| l.get(i)).collect()
            }
            [one] => return Ok(one.clone()),
            _ => args,
        };
        let mut best = match items.first() {
            Some(v) => v.clone(),
            None => return Ok(Val::Null),
        };
        for x in items.iter().skip(1) {
            self.meter.charge(1)?;
            match self.compare(&best, x)? {
                // As cel-interpreter: the later of two equal values wins.
                Some(Ordering::Greater) if max => {}
                Some(Ordering::Less) if !max => {}
                Some(_) => best = x.clone(),
                None => {
                    return err(format!(
                        "{} can not be compared to {}",
                        best.describe(),
                        x.describe()
                    ))
                }
            }
        }
        Ok(best)
    }
}
