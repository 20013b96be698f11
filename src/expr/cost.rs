//! The static cost estimate: an upper bound of what [`super::eval`] can charge, as a
//! polynomial in the size of the input. The rules are in the module docs of
//! [`crate::expr`]; this file keeps them in step with the evaluator's charges.

use super::node::{BinOp, Call, Comp, Func, Node, Step};
use super::value::units;
use cel_parser::reference::Val as Lit;

/// Variables: 0 is `n`, the content size of any bound input value; `i ≥ 1` is the
/// content size of one element of the comprehension at nesting depth `i - 1`.
const NV: usize = 8;
const MAX_DEGREE: u32 = 24;
const MAX_TERMS: usize = 512;
/// Estimation steps before giving up (and calling the cost unbounded).
const MAX_WORK: u64 = 200_000;

type Mono = [u8; NV];

/// A polynomial with non-negative coefficients over [`NV`] variables; `inf` when it
/// grew past what is tracked (then it bounds nothing).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Poly {
    terms: Vec<(Mono, u64)>,
    inf: bool,
}

impl Poly {
    pub(crate) fn zero() -> Poly {
        Poly::default()
    }

    pub(crate) fn c(k: u64) -> Poly {
        Poly {
            terms: if k == 0 { vec![] } else { vec![([0; NV], k)] },
            inf: false,
        }
    }

    fn var(i: usize) -> Poly {
        let mut m = [0; NV];
        m[i] = 1;
        Poly {
            terms: vec![(m, 1)],
            inf: false,
        }
    }

    pub(crate) fn inf() -> Poly {
        Poly {
            terms: vec![],
            inf: true,
        }
    }

    pub(crate) fn is_inf(&self) -> bool {
        self.inf
    }

    fn norm(mut self) -> Poly {
        if self.inf {
            return Poly::inf();
        }
        self.terms.retain(|(_, c)| *c != 0);
        self.terms.sort_by_key(|t| t.0);
        let mut out: Vec<(Mono, u64)> = Vec::with_capacity(self.terms.len());
        for (m, c) in self.terms {
            match out.last_mut() {
                Some((lm, lc)) if *lm == m => *lc = lc.saturating_add(c),
                _ => out.push((m, c)),
            }
        }
        if out.len() > MAX_TERMS
            || out
                .iter()
                .any(|(m, _)| m.iter().map(|&e| e as u32).sum::<u32>() > MAX_DEGREE)
        {
            return Poly::inf();
        }
        Poly {
            terms: out,
            inf: false,
        }
    }

    pub(crate) fn add(&self, o: &Poly) -> Poly {
        if self.inf || o.inf {
            return Poly::inf();
        }
        let mut terms = self.terms.clone();
        terms.extend_from_slice(&o.terms);
        Poly { terms, inf: false }.norm()
    }

    fn plus(&self, k: u64) -> Poly {
        self.add(&Poly::c(k))
    }

    pub(crate) fn mul(&self, o: &Poly) -> Poly {
        if self.inf || o.inf {
            return Poly::inf();
        }
        let mut terms = Vec::with_capacity(self.terms.len() * o.terms.len());
        for (a, x) in &self.terms {
            for (b, y) in &o.terms {
                let mut m = [0u8; NV];
                for i in 0..NV {
                    let e = a[i] as u32 + b[i] as u32;
                    if e > MAX_DEGREE {
                        return Poly::inf();
                    }
                    m[i] = e as u8;
                }
                terms.push((m, x.saturating_mul(*y)));
            }
        }
        Poly { terms, inf: false }.norm()
    }

    fn scale(&self, k: u64) -> Poly {
        self.mul(&Poly::c(k))
    }

    fn pow(&self, e: u8) -> Poly {
        let mut out = Poly::c(1);
        for _ in 0..e {
            out = out.mul(self);
        }
        out
    }

    /// Coefficient-wise maximum: bounds both.
    pub(crate) fn max(&self, o: &Poly) -> Poly {
        if self.inf || o.inf {
            return Poly::inf();
        }
        let mut terms = self.terms.clone();
        for (m, c) in &o.terms {
            match terms.iter_mut().find(|(n, _)| n == m) {
                Some((_, d)) => *d = (*d).max(*c),
                None => terms.push((*m, *c)),
            }
        }
        Poly { terms, inf: false }.norm()
    }

    /// One of the two, whichever grows more slowly with the input (both bound a minimum).
    fn min(&self, o: &Poly) -> Poly {
        if self.rank() <= o.rank() {
            self.clone()
        } else {
            o.clone()
        }
    }

    /// (degree in `n`, total degree), infinite last.
    fn rank(&self) -> (u32, u32) {
        if self.inf {
            return (u32::MAX, u32::MAX);
        }
        self.terms.iter().fold((0, 0), |(dn, dt), (m, _)| {
            (
                dn.max(m[0] as u32),
                dt.max(m.iter().map(|&e| e as u32).sum()),
            )
        })
    }

    /// Whether every coefficient is at most `o`'s.
    fn leq(&self, o: &Poly) -> bool {
        if o.inf {
            return true;
        }
        !self.inf
            && self.terms.iter().all(|(m, c)| {
                o.terms
                    .iter()
                    .find(|(n, _)| n == m)
                    .is_some_and(|(_, d)| c <= d)
            })
    }

    /// Replaces variable `v` by `p` (nothing to replace past the tracked variables).
    fn subst(&self, v: usize, p: &Poly) -> Poly {
        if self.inf {
            return Poly::inf();
        }
        if v >= NV {
            return self.clone();
        }
        let mut out = Poly::zero();
        for (m, c) in &self.terms {
            let mut rest = *m;
            let e = std::mem::replace(&mut rest[v], 0);
            let term = Poly {
                terms: vec![(rest, *c)],
                inf: false,
            };
            out = out.add(&term.mul(&p.pow(e)));
        }
        out
    }

    /// The sum of `self` over the elements of a list or map of at most `len` elements
    /// whose contents total at most `size`, where variable `v` stands for one element's
    /// content size. A term without `v` is the same for each element (times `len`); one
    /// with `v^b` sums to at most `size^b`, as `Σ xᵢ^b ≤ (Σ xᵢ)^b`.
    fn sum_over(&self, v: usize, len: &Poly, size: &Poly) -> Poly {
        if self.inf {
            return Poly::inf();
        }
        if v >= NV {
            return self.mul(len);
        }
        let mut out = Poly::zero();
        for (m, c) in &self.terms {
            let mut rest = *m;
            let e = std::mem::replace(&mut rest[v], 0);
            let term = Poly {
                terms: vec![(rest, *c)],
                inf: false,
            };
            out = out.add(&if e == 0 {
                term.mul(len)
            } else {
                term.mul(&size.pow(e))
            });
        }
        out
    }

    /// The value with every variable set to `n` (saturating).
    pub(crate) fn eval(&self, n: u64) -> u64 {
        if self.inf {
            return u64::MAX;
        }
        self.terms.iter().fold(0u64, |acc, (m, c)| {
            let deg: u32 = m.iter().map(|&e| e as u32).sum();
            acc.saturating_add(c.saturating_mul(n.saturating_pow(deg)))
        })
    }

    /// The coefficient of `n^k`, once no element variable is left.
    pub(crate) fn coeff(&self, k: u32) -> u64 {
        if self.inf {
            return u64::MAX;
        }
        self.terms
            .iter()
            .filter(|(m, _)| m[0] as u32 == k && m[1..].iter().all(|&e| e == 0))
            .map(|(_, c)| *c)
            .fold(0u64, |a, c| a.saturating_add(c))
    }

    /// `Σ c_k · n^k` over the terms of degree two and more.
    pub(crate) fn superlinear(&self, n: u64) -> u64 {
        if self.inf {
            return u64::MAX;
        }
        self.terms
            .iter()
            .filter(|(m, _)| m.iter().map(|&e| e as u32).sum::<u32>() >= 2)
            .fold(0u64, |acc, (m, c)| {
                let deg: u32 = m.iter().map(|&e| e as u32).sum();
                acc.saturating_add(c.saturating_mul(n.saturating_pow(deg)))
            })
    }
}

/// What the estimate knows of a node: what evaluating it can cost, and bounds on the
/// value's length (elements or entries) and content size (see the module docs).
#[derive(Clone, Debug)]
struct Abs {
    cost: Poly,
    len: Poly,
    size: Poly,
    /// A number, bool, null, timestamp or duration: size 1, never a string or a list.
    scalar: bool,
    /// A list whose elements, or a map whose keys and values, are all scalars.
    elems_scalar: bool,
}

impl Abs {
    fn scalar(cost: Poly) -> Abs {
        Abs {
            cost,
            len: Poly::zero(),
            size: Poly::c(1),
            scalar: true,
            elems_scalar: false,
        }
    }

    fn value(cost: Poly, len: Poly, size: Poly) -> Abs {
        Abs {
            cost,
            len,
            size,
            scalar: false,
            elems_scalar: false,
        }
    }

    /// Bounds either of two values (with `cost` as given).
    fn join(&self, o: &Abs, cost: Poly) -> Abs {
        if self.scalar && o.scalar {
            return Abs::scalar(cost);
        }
        Abs {
            cost,
            len: self.len.max(&o.len),
            size: self.size.max(&o.size),
            scalar: false,
            elems_scalar: (self.scalar || self.elems_scalar) && (o.scalar || o.elems_scalar),
        }
    }

    fn with_cost(&self, cost: Poly) -> Abs {
        Abs {
            cost,
            ..self.clone()
        }
    }

    fn subst(&self, v: usize, p: &Poly) -> Abs {
        Abs {
            cost: self.cost.subst(v, p),
            len: self.len.subst(v, p),
            size: self.size.subst(v, p),
            ..self.clone()
        }
    }

    /// Whether `o` bounds every value `self` bounds.
    fn bounded_by(&self, o: &Abs) -> bool {
        if self.scalar {
            return o.scalar || Poly::c(1).leq(&o.size);
        }
        !o.scalar
            && self.len.leq(&o.len)
            && self.size.leq(&o.size)
            && (self.elems_scalar || !o.elems_scalar)
    }
}

/// The cost polynomial of `node`, in `n` only.
pub(crate) fn estimate(node: &Node) -> Poly {
    let mut e = Est {
        scope: Vec::new(),
        depth: 0,
        work: 0,
    };
    let a = e.node(node);
    if e.work > MAX_WORK {
        return Poly::inf();
    }
    let mut cost = a.cost;
    // Every element variable is summed away when its comprehension closes.
    for v in 1..NV {
        cost = cost.subst(v, &Poly::var(0));
    }
    cost
}

struct Est<'n> {
    scope: Vec<(&'n str, Abs)>,
    depth: usize,
    work: u64,
}

impl<'n> Est<'n> {
    fn node(&mut self, n: &'n Node) -> Abs {
        self.work += 1;
        if self.work > MAX_WORK {
            return Abs::value(Poly::inf(), Poly::inf(), Poly::inf());
        }
        let one = Poly::c(1);
        match n {
            Node::Lit(Lit::String(s)) => {
                let c = Poly::c(1 + units(s.len()));
                Abs::value(one, c.clone(), c)
            }
            Node::Lit(Lit::Bytes(b)) => {
                let c = Poly::c(1 + units(b.len()));
                Abs::value(one, c.clone(), c)
            }
            Node::Lit(_) => Abs::scalar(one),
            Node::Ident(name) => match self.scope.iter().rev().find(|(s, _)| *s == &**name) {
                Some((_, a)) => a.with_cost(one),
                // A bound input: its content size is at most `n`.
                None => Abs::value(one, Poly::var(0), Poly::var(0)),
            },
            Node::Select { operand, test, .. } => {
                let o = self.node(operand);
                let cost = o.cost.plus(1);
                if *test {
                    Abs::scalar(cost)
                } else {
                    // A part of the operand (or a function value holding it).
                    Abs::value(cost, o.size.clone(), o.size.plus(1))
                }
            }
            Node::List(items) => {
                let k = items.len() as u64;
                let mut cost = Poly::c(1 + k);
                let mut size = Poly::c(1);
                let mut elems_scalar = true;
                for i in items {
                    let a = self.node(i);
                    cost = cost.add(&a.cost);
                    size = size.add(&a.size);
                    elems_scalar &= a.scalar;
                }
                Abs {
                    elems_scalar,
                    ..Abs::value(cost, Poly::c(k), size)
                }
            }
            Node::Map(entries) => {
                let k = entries.len() as u64;
                let mut cost = Poly::c(1 + k);
                let mut size = Poly::c(1);
                let mut elems_scalar = true;
                for (key, v) in entries {
                    let (a, b) = (self.node(key), self.node(v));
                    cost = cost.add(&a.cost).add(&b.cost);
                    size = size.add(&a.size).add(&b.size);
                    // A comprehension visits the keys, `[]` gives values.
                    elems_scalar &= a.scalar && b.scalar;
                }
                Abs {
                    elems_scalar,
                    ..Abs::value(cost, Poly::c(k), size)
                }
            }
            Node::And(a, b) => {
                let (a, b) = (self.node(a), self.node(b));
                Abs::scalar(a.cost.add(&b.cost).plus(1))
            }
            Node::Or(a, b) => {
                let (a, b) = (self.node(a), self.node(b));
                let cost = a.cost.add(&b.cost).plus(1);
                a.join(&b, cost)
            }
            Node::Not(a) | Node::Neg(a) | Node::NotStrictlyFalse(a) => {
                Abs::scalar(self.node(a).cost.plus(1))
            }
            Node::Cond(c, t, f) => {
                let (c, t, f) = (self.node(c), self.node(t), self.node(f));
                let cost = c.cost.add(&t.cost.max(&f.cost)).plus(1);
                t.join(&f, cost)
            }
            Node::Bin(op, a, b) => {
                let (a, b) = (self.node(a), self.node(b));
                self.binary(*op, a, b)
            }
            Node::Call(c) => self.call(c),
            Node::Comp(c) => self.comprehension(c),
            Node::Fail(_) => Abs::scalar(one),
        }
    }

    fn binary(&mut self, op: BinOp, a: Abs, b: Abs) -> Abs {
        let base = a.cost.add(&b.cost).plus(1);
        let either_scalar = a.scalar || b.scalar;
        match op {
            BinOp::Add => {
                if either_scalar {
                    Abs::scalar(base)
                } else {
                    // A string or list concatenation pays for what it builds.
                    let cost = base.add(&a.size).add(&b.size);
                    Abs {
                        elems_scalar: a.elems_scalar && b.elems_scalar,
                        ..Abs::value(cost, a.len.add(&b.len), a.size.add(&b.size))
                    }
                }
            }
            BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => Abs::scalar(base),
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                if either_scalar {
                    Abs::scalar(base)
                } else {
                    // Comparing stops at the shorter operand.
                    Abs::scalar(base.add(&a.size.min(&b.size)))
                }
            }
            BinOp::In => {
                if b.scalar {
                    Abs::scalar(base)
                } else {
                    Abs::scalar(base.add(&b.size.scale(2)))
                }
            }
            BinOp::Index => {
                if a.elems_scalar {
                    Abs::scalar(base)
                } else {
                    Abs::value(base, a.size.clone(), a.size.clone())
                }
            }
        }
    }

    fn call(&mut self, c: &'n Call) -> Abs {
        let target = c.target.as_ref().map(|t| self.node(t));
        let args: Vec<Abs> = c.args.iter().map(|a| self.node(a)).collect();
        let mut cost = Poly::c(1);
        if let Some(t) = &target {
            cost = cost.add(&t.cost);
        }
        for a in &args {
            cost = cost.add(&a.cost);
        }
        let unknown = Abs::value(Poly::zero(), Poly::var(0), Poly::var(0));
        let (this, params): (&Abs, &[Abs]) = match (&target, c.func.has_this()) {
            (Some(t), true) => (t, &args[..]),
            (None, true) => match args.split_first() {
                Some((first, rest)) => (first, rest),
                None => (&unknown, &[][..]),
            },
            (_, false) => (&unknown, &args[..]),
        };
        let p0 = params.first().unwrap_or(&unknown);
        let size_of = |a: &Abs| if a.scalar { Poly::c(1) } else { a.size.clone() };
        match c.func {
            Func::Size | Func::Time(_) => Abs::scalar(cost),
            Func::Contains => Abs::scalar(cost.add(&size_of(this).scale(2))),
            Func::StartsWith | Func::EndsWith => {
                Abs::scalar(cost.add(&size_of(this).min(&size_of(p0))))
            }
            Func::Matches => {
                let mut extra = size_of(this).mul(&size_of(p0));
                if c.regex.is_none() {
                    extra = extra.add(&size_of(p0).scale(16)).plus(100);
                }
                Abs::scalar(cost.add(&extra))
            }
            Func::String => {
                let s = size_of(this);
                let out = s.scale(3).plus(4);
                Abs::value(cost.add(&s.scale(3)).plus(3), out.clone(), out)
            }
            Func::Double | Func::Int | Func::UInt => Abs::scalar(cost.add(&size_of(this))),
            Func::Bytes => {
                let a0 = args.first().unwrap_or(&unknown);
                let s = size_of(a0);
                Abs::value(cost.add(&s), s.clone(), s.plus(1))
            }
            Func::Duration | Func::Timestamp => {
                let a0 = args.first().unwrap_or(&unknown);
                Abs::scalar(cost.add(&size_of(a0)))
            }
            Func::Max | Func::Min => {
                let mut total = Poly::zero();
                for a in &args {
                    total = total.add(&size_of(a));
                }
                let cost = cost.add(&total.scale(2));
                let all_scalar =
                    args.iter().all(|a| a.scalar) || (args.len() == 1 && args[0].elems_scalar);
                if all_scalar {
                    Abs::scalar(cost)
                } else {
                    Abs::value(cost, total.clone(), total)
                }
            }
        }
    }

    fn comprehension(&mut self, c: &'n Comp) -> Abs {
        let init = self.node(&c.init);
        let range = self.node(&c.range);
        let v = self.depth + 1;
        self.depth += 1;
        let whole = Abs::value(Poly::zero(), range.size.clone(), range.size.clone());
        let elem = if range.elems_scalar {
            Abs::scalar(Poly::zero())
        } else if v < NV {
            Abs::value(Poly::zero(), Poly::var(v), Poly::var(v))
        } else {
            // Too deep to track one element's share: any element is at most the whole.
            whole.clone()
        };
        let accu0 = init.with_cost(Poly::zero());
        self.scope.push((&c.accu_var, accu0.clone()));
        self.scope.push((&c.iter_var, elem));
        let accu_slot = self.scope.len() - 2;
        let (per, accu) = match &c.step {
            Step::Append(x) | Step::CondAppend(_, x) => {
                let cond = self.node(&c.cond);
                let pred = match &c.step {
                    Step::CondAppend(p, _) => Some(self.node(p)),
                    _ => None,
                };
                let x = self.node(x);
                // `+` and the accumulator identifier, the appended element, the append.
                let append = x.cost.add(&x.len).plus(2);
                let step = match pred {
                    Some(p) => p.cost.add(&append.max(&Poly::c(1))).plus(1),
                    None => append,
                };
                let per = cond.cost.add(&step).plus(1);
                let grown = Abs {
                    elems_scalar: (init.elems_scalar || init.len.leq(&Poly::zero()))
                        && x.elems_scalar,
                    ..Abs::value(
                        Poly::zero(),
                        init.len.add(&self.total(&x.len, v, &range)),
                        init.size.add(&self.total(&x.size, v, &range)),
                    )
                };
                (per, grown)
            }
            Step::Any(step) => {
                let cond = self.node(&c.cond);
                let s = self.node(step);
                let mut per = cond.cost.add(&s.cost).plus(1);
                // The accumulator after any number of steps: widen once, then it must hold.
                let mut accu = accu0.join(&s.subst(v, &whole.size), Poly::zero());
                if !accu.bounded_by(&accu0) {
                    self.scope[accu_slot].1 = accu.clone();
                    let cond = self.node(&c.cond);
                    let s = self.node(step);
                    per = cond.cost.add(&s.cost).plus(1);
                    if !s.subst(v, &whole.size).bounded_by(&accu) {
                        per = Poly::inf();
                        accu = Abs::value(Poly::inf(), Poly::inf(), Poly::inf());
                    }
                }
                (per, accu)
            }
        };
        let total = self.total(&per, v, &range);
        // The result sees the final accumulator (and, in scope, the last element).
        self.scope[accu_slot].1 = accu;
        self.scope.last_mut().expect("pushed above").1 = whole.clone();
        let result = self.node(&c.result);
        self.scope.truncate(accu_slot);
        self.depth -= 1;
        let result = result.subst(v, &whole.size);
        let cost = init
            .cost
            .add(&range.cost)
            .add(&total)
            .add(&result.cost)
            .plus(1);
        result.with_cost(cost)
    }

    /// The sum of a per-element polynomial over the comprehension's range.
    fn total(&self, per: &Poly, v: usize, range: &Abs) -> Poly {
        if range.scalar {
            // Not a list or a map: the comprehension fails before its first element.
            return Poly::zero();
        }
        per.sum_over(v, &range.len, &range.size)
    }
}
