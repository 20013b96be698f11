//! The parsed CEL tree, lowered once at compile time into what the evaluator and the cost
//! estimate walk: operators resolved to enums, functions to [`Func`], literal regexes
//! compiled, and the list-building steps of `map`/`filter` recognised so that they append
//! in place instead of copying the list on every element.

use cel_parser::ast::{operators, EntryExpr, Expr, IdedExpr};
use cel_parser::reference::Val as Lit;

/// Most nesting the lowering accepts; deeper trees are refused at compile time so that
/// the recursive evaluator and estimate cannot exhaust a thread's stack.
pub(crate) const MAX_NESTING: usize = 100;

/// Most brackets (and `?:`) a source may nest before it reaches the parser.
pub(crate) const MAX_SOURCE_NESTING: usize = 64;

/// Stack of the thread the parser runs on.
pub(crate) const PARSE_STACK: usize = 64 << 20;

/// Largest compiled regex program a `matches` pattern may make (the regex crate's
/// `size_limit`); the crate's default is 10 MiB.
pub(crate) const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// One evaluable node.
#[derive(Debug)]
pub(crate) enum Node {
    Lit(Lit),
    Ident(Box<str>),
    /// `operand.field`, or `has(operand.field)` when `test`.
    Select {
        operand: Box<Node>,
        field: Box<str>,
        test: bool,
    },
    List(Vec<Node>),
    Map(Vec<(Node, Node)>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Neg(Box<Node>),
    NotStrictlyFalse(Box<Node>),
    Cond(Box<Node>, Box<Node>, Box<Node>),
    Bin(BinOp, Box<Node>, Box<Node>),
    Call(Box<Call>),
    Comp(Box<Comp>),
    /// Always fails with this message when evaluated (what cel-interpreter cannot
    /// evaluate either: unknown functions, struct literals).
    Fail(Box<str>),
}

/// Binary operators that evaluate both operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Index,
}

/// The functions of cel-interpreter's default context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Size,
    Contains,
    StartsWith,
    EndsWith,
    Matches,
    String,
    Bytes,
    Double,
    Int,
    UInt,
    Max,
    Min,
    Duration,
    Timestamp,
    Time(TimePart),
}

/// `getFullYear()` and friends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimePart {
    FullYear,
    Month,
    DayOfYear,
    DayOfMonth,
    Date,
    DayOfWeek,
    Hours,
    Minutes,
    Seconds,
    Milliseconds,
}

impl Func {
    pub(crate) fn by_name(name: &str) -> Option<Func> {
        use TimePart::*;
        Some(match name {
            "size" => Func::Size,
            "contains" => Func::Contains,
            "startsWith" => Func::StartsWith,
            "endsWith" => Func::EndsWith,
            "matches" => Func::Matches,
            "string" => Func::String,
            "bytes" => Func::Bytes,
            "double" => Func::Double,
            "int" => Func::Int,
            "uint" => Func::UInt,
            "max" => Func::Max,
            "min" => Func::Min,
            "duration" => Func::Duration,
            "timestamp" => Func::Timestamp,
            "getFullYear" => Func::Time(FullYear),
            "getMonth" => Func::Time(Month),
            "getDayOfYear" => Func::Time(DayOfYear),
            "getDayOfMonth" => Func::Time(DayOfMonth),
            "getDate" => Func::Time(Date),
            "getDayOfWeek" => Func::Time(DayOfWeek),
            "getHours" => Func::Time(Hours),
            "getMinutes" => Func::Time(Minutes),
            "getSeconds" => Func::Time(Seconds),
            "getMilliseconds" => Func::Time(Milliseconds),
            _ => return None,
        })
    }

    /// Whether the function reads its receiver ("this": the target, else the first
    /// argument) before its parameters; the others read only their arguments.
    pub(crate) fn has_this(self) -> bool {
        !matches!(
            self,
            Func::Bytes | Func::Duration | Func::Timestamp | Func::Max | Func::Min
        )
    }
}

/// A function call.
#[derive(Debug)]
pub(crate) struct Call {
    pub func: Func,
    pub target: Option<Node>,
    pub args: Vec<Node>,
    /// For `matches` with a literal pattern: the pattern compiled at compile time (or
    /// why it does not compile, reported when evaluated, as cel-interpreter does).
    pub regex: Option<Result<regex::Regex, String>>,
}

/// A comprehension (what `all`, `exists`, `exists_one`, `map` and `filter` expand to).
#[derive(Debug)]
pub(crate) struct Comp {
    pub range: Node,
    pub iter_var: Box<str>,
    pub accu_var: Box<str>,
    pub init: Node,
    pub cond: Node,
    pub step: Step,
    pub result: Node,
}

/// How a comprehension's accumulator is updated per element.
#[derive(Debug)]
pub(crate) enum Step {
    /// `accu + x`, where the accumulator starts as a list literal: appends in place.
    Append(Node),
    /// `c ? accu + x : accu`, likewise.
    CondAppend(Node, Node),
    /// Anything else, evaluated as written.
    Any(Node),
}

/// Why `source` nests too deeply for the parser, if it does: the depth of `(`, `[`, `{`
/// outside string literals, plus the number of `?` (a chain of `?:` nests like brackets).
pub(crate) fn too_deep(source: &str) -> Option<String> {
    let b = source.as_bytes();
    let (mut depth, mut max, mut questions, mut i) = (0usize, 0usize, 0usize, 0usize);
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                let raw = i > 0 && matches!(b[i - 1], b'r' | b'R');
                let triple = b[i..].starts_with(&[q, q, q]);
                i += if triple { 3 } else { 1 };
                while i < b.len() {
                    if !raw && b[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if triple && b[i..].starts_with(&[q, q, q]) {
                        i += 3;
                        break;
                    }
                    if !triple && b[i] == q {
                        i += 1;
                        break;
                    }
                    i += 1;
                }
                continue;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b'?' => questions += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    (max + questions > MAX_SOURCE_NESTING).then(|| {
        format!("the expression nests brackets or `?:` more than {MAX_SOURCE_NESTING} levels deep")
    })
}

/// Lowers a parsed expression; fails if it nests deeper than [`MAX_NESTING`].
pub(crate) fn lower(e: &IdedExpr) -> Result<Node, String> {
    lower_at(e, 0)
}

fn lower_at(e: &IdedExpr, depth: usize) -> Result<Node, String> {
    if depth > MAX_NESTING {
        return Err(format!(
            "the expression nests more than {MAX_NESTING} levels deep"
        ));
    }
    let l = |e: &IdedExpr| lower_at(e, depth + 1).map(Box::new);
    Ok(match &e.expr {
        Expr::Literal(v) => Node::Lit(v.clone()),
        Expr::Ident(name) => Node::Ident(name.as_str().into()),
        Expr::Select(s) => Node::Select {
            operand: l(&s.operand)?,
            field: s.field.as_str().into(),
            test: s.test,
        },
        Expr::List(list) => Node::List(
            list.elements
                .iter()
                .map(|e| lower_at(e, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Expr::Map(map) => {
            let mut entries = Vec::with_capacity(map.entries.len());
            for entry in &map.entries {
                match &entry.expr {
                    EntryExpr::MapEntry(m) => {
                        entries.push((lower_at(&m.key, depth + 1)?, lower_at(&m.value, depth + 1)?))
                    }
                    EntryExpr::StructField(_) => {
                        return Ok(Node::Fail("a map literal cannot hold struct fields".into()))
                    }
                }
            }
            Node::Map(entries)
        }
        Expr::Struct(s) => {
            Node::Fail(format!("struct literals (`{}{{…}}`) are not supported", s.type_name).into())
        }
        Expr::Unspecified => Node::Fail("the expression is empty".into()),
        Expr::Comprehension(c) => {
            let accu: &str = &c.accu_var;
            let step = lower_at(&c.loop_step, depth + 1)?;
            let appends = matches!(&c.accu_init.expr, Expr::List(_));
            let step = if appends {
                shape_step(step, accu)
            } else {
                Step::Any(step)
            };
            Node::Comp(Box::new(Comp {
                range: lower_at(&c.iter_range, depth + 1)?,
                iter_var: c.iter_var.as_str().into(),
                accu_var: accu.into(),
                init: lower_at(&c.accu_init, depth + 1)?,
                cond: lower_at(&c.loop_cond, depth + 1)?,
                step,
                result: lower_at(&c.result, depth + 1)?,
            }))
        }
        Expr::Call(call) => {
            let name = call.func_name.as_str();
            let args = &call.args;
            // The operators, recognised by name and arity before any function, as
            // cel-interpreter does (a target, which the parser never gives them, is ignored).
            if args.len() == 3 && name == operators::CONDITIONAL {
                return Ok(Node::Cond(l(&args[0])?, l(&args[1])?, l(&args[2])?));
            }
            if args.len() == 2 {
                let op = match name {
                    operators::ADD => Some(BinOp::Add),
                    operators::SUBSTRACT => Some(BinOp::Sub),
                    operators::MULTIPLY => Some(BinOp::Mul),
                    operators::DIVIDE => Some(BinOp::Div),
                    operators::MODULO => Some(BinOp::Rem),
                    operators::EQUALS => Some(BinOp::Eq),
                    operators::NOT_EQUALS => Some(BinOp::Ne),
                    operators::LESS => Some(BinOp::Lt),
                    operators::LESS_EQUALS => Some(BinOp::Le),
                    operators::GREATER => Some(BinOp::Gt),
                    operators::GREATER_EQUALS => Some(BinOp::Ge),
                    operators::IN => Some(BinOp::In),
                    operators::INDEX => Some(BinOp::Index),
                    _ => None,
                };
                if let Some(op) = op {
                    return Ok(Node::Bin(op, l(&args[0])?, l(&args[1])?));
                }
                if name == operators::LOGICAL_AND {
                    return Ok(Node::And(l(&args[0])?, l(&args[1])?));
                }
                if name == operators::LOGICAL_OR {
                    return Ok(Node::Or(l(&args[0])?, l(&args[1])?));
                }
            }
            if args.len() == 1 {
                match name {
                    operators::LOGICAL_NOT => return Ok(Node::Not(l(&args[0])?)),
                    operators::NEGATE => return Ok(Node::Neg(l(&args[0])?)),
                    operators::NOT_STRICTLY_FALSE => {
                        return Ok(Node::NotStrictlyFalse(l(&args[0])?))
                    }
                    _ => {}
                }
            }
            let Some(func) = Func::by_name(name) else {
                return Ok(Node::Fail(
                    format!("Undeclared reference to '{name}'").into(),
                ));
            };
            let target = match &call.target {
                Some(t) => Some(lower_at(t, depth + 1)?),
                None => None,
            };
            let args: Vec<Node> = args
                .iter()
                .map(|a| lower_at(a, depth + 1))
                .collect::<Result<_, _>>()?;
            // The pattern is the first parameter after the receiver.
            let pattern = if target.is_some() { 0 } else { 1 };
            let regex = match (func, args.get(pattern)) {
                (Func::Matches, Some(Node::Lit(Lit::String(p)))) => Some(compile_regex(p)),
                _ => None,
            };
            Node::Call(Box::new(Call {
                func,
                target,
                args,
                regex,
            }))
        }
    })
}

/// Compiles a `matches` pattern, with a size limit so that a pattern cannot make a huge
/// automaton (matching stays linear in the subject's length).
pub(crate) fn compile_regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("'{pattern}' not a valid regex:\n{e}"))
}

/// Recognises the `map`/`filter` steps: `accu + x` and `c ? accu + x : accu`.
fn shape_step(step: Node, accu: &str) -> Step {
    let is_accu = |n: &Node| matches!(n, Node::Ident(name) if &**name == accu);
    match step {
        Node::Bin(BinOp::Add, l, r) if is_accu(&l) => Step::Append(*r),
        Node::Cond(c, t, f) if is_accu(&f) => match *t {
            Node::Bin(BinOp::Add, l, r) if is_accu(&l) => Step::CondAppend(*c, *r),
            t => Step::Any(Node::Cond(c, Box::new(t), f)),
        },
        other => Step::Any(other),
    }
}
