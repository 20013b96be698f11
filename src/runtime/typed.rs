//! The typed world `typed-step` (`wit/step.wit`): a component that exports
//! `weir:step/handler.run(input) -> result<string, step-error>` instead of being a WASI
//! command, and may import `weir:step/host` — `log` into the step's log, `send-event`
//! into the tenant's ingest. Which world a component is in is decided when it is
//! compiled (at upload), from what it exports.

use std::fmt::Write as _;

use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{Component, Type};
use wasmtime::Engine;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::p2::OutputStream;

use super::wit::{CORE_RUN, HANDLER, HOST};
use super::{human_bytes, RuntimeError};
use crate::event::Event;

/// The bindings wasmtime generates from `wit/step.wit`'s world `typed-step`.
#[allow(missing_docs)]
mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "typed-step",
        exports: { default: async },
    });
}

pub use bindings::exports::weir::step::handler::StepError;
pub use bindings::weir::step::host::{add_to_linker as add_host_to_linker, Level};
pub use bindings::TypedStepPre;

/// Which of weir's two worlds a component is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    /// `step`: a WASI command reading stdin, writing stdout.
    Step,
    /// `typed-step`: exports `handler.run`.
    TypedStep,
}

impl World {
    /// The world's name in `wit/step.wit`.
    pub fn name(self) -> &'static str {
        match self {
            World::Step => "step",
            World::TypedStep => "typed-step",
        }
    }
}

/// Whether a `weir:step` interface name is one this weir provides (same interface, a
/// semver-compatible 0.1.x version).
fn same_interface(name: &str, ours: &str) -> bool {
    let (base, _) = ours.split_once('@').unwrap_or((ours, ""));
    name.strip_prefix(base)
        .and_then(|v| v.strip_prefix("@0.1."))
        .is_some_and(|patch| !patch.is_empty() && patch.chars().all(|c| c.is_ascii_digit()))
}

/// Checks that what a component imports from `weir:step` is what this weir provides
/// (before the linker looks, so that the error names the version).
pub fn check_imports(component: &Component, engine: &Engine) -> Result<(), RuntimeError> {
    for (name, _) in component.component_type().imports(engine) {
        if name.starts_with("weir:step/") && !same_interface(name, HOST) {
            return Err(RuntimeError::Invalid(format!(
                "imports `{name}`, but this weir provides `{HOST}` (package weir:step@{})",
                super::wit::PACKAGE_VERSION
            )));
        }
    }
    Ok(())
}

/// Decides a component's world from its exports, and checks the signature of a typed
/// step's `run`: the errors name what is wrong.
pub fn world_of(component: &Component, engine: &Engine) -> Result<World, RuntimeError> {
    let ty = component.component_type();
    let exports: Vec<(String, ComponentItem)> = ty
        .exports(engine)
        .map(|(n, e)| (n.to_string(), e.ty))
        .collect();
    if let Some((name, item)) = exports.iter().find(|(n, _)| n.starts_with("weir:step/")) {
        if !same_interface(name, HANDLER) {
            return Err(RuntimeError::Invalid(format!(
                "exports `{name}`, but this weir runs `{HANDLER}` (world typed-step)"
            )));
        }
        check_run(name, item, engine)?;
        return Ok(World::TypedStep);
    }
    if exports
        .iter()
        .any(|(n, _)| n.starts_with("wasi:cli/run@0.2"))
    {
        return Ok(World::Step);
    }
    let names: Vec<&str> = exports.iter().map(|(n, _)| n.as_str()).collect();
    Err(RuntimeError::Invalid(format!(
        "exports neither `wasi:cli/run@0.2` (world step: a WASI command) nor `{HANDLER}` \
         (world typed-step); it exports [{}]",
        names.join(", ")
    )))
}

const RUN_SIGNATURE: &str =
    "func(input: string) -> result<string, step-error { status: u16, message: string }>";

/// Checks that the handler instance's `run` has weir's signature.
fn check_run(name: &str, item: &ComponentItem, engine: &Engine) -> Result<(), RuntimeError> {
    let wrong = |found: String| {
        RuntimeError::Invalid(format!(
            "`{name}` must export `run: {RUN_SIGNATURE}`; {found}"
        ))
    };
    let ComponentItem::ComponentInstance(inst) = item else {
        return Err(wrong("it is not an instance".into()));
    };
    let Some(run) = inst.get_export(engine, "run") else {
        return Err(wrong("it has no `run`".into()));
    };
    let ComponentItem::ComponentFunc(f) = run.ty else {
        return Err(wrong("its `run` is not a function".into()));
    };
    if signature_matches(&f) {
        Ok(())
    } else {
        Err(wrong(format!("its `run` is `{}`", signature(&f))))
    }
}

fn signature_matches(f: &ComponentFunc) -> bool {
    let params: Vec<Type> = f.params().map(|(_, t)| t).collect();
    let results: Vec<Type> = f.results().collect();
    let [Type::String] = params.as_slice() else {
        return false;
    };
    let [Type::Result(r)] = results.as_slice() else {
        return false;
    };
    if !matches!(r.ok(), Some(Type::String)) {
        return false;
    }
    let Some(Type::Record(rec)) = r.err() else {
        return false;
    };
    let fields: Vec<(String, Type)> = rec.fields().map(|f| (f.name.into(), f.ty)).collect();
    matches!(fields.as_slice(),
        [(s, Type::U16), (m, Type::String)] if s == "status" && m == "message")
}

/// A function type the way WIT writes it (for error messages).
fn signature(f: &ComponentFunc) -> String {
    let params: Vec<String> = f
        .params()
        .map(|(n, t)| format!("{n}: {}", type_name(&t)))
        .collect();
    let results: Vec<String> = f.results().map(|t| type_name(&t)).collect();
    let mut s = format!("func({})", params.join(", "));
    if !results.is_empty() {
        let _ = write!(s, " -> {}", results.join(", "));
    }
    s
}

fn type_name(t: &Type) -> String {
    match t {
        Type::Bool => "bool".into(),
        Type::S8 => "s8".into(),
        Type::U8 => "u8".into(),
        Type::S16 => "s16".into(),
        Type::U16 => "u16".into(),
        Type::S32 => "s32".into(),
        Type::U32 => "u32".into(),
        Type::S64 => "s64".into(),
        Type::U64 => "u64".into(),
        Type::Float32 => "f32".into(),
        Type::Float64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::List(l) => format!("list<{}>", type_name(&l.ty())),
        Type::Option(o) => format!("option<{}>", type_name(&o.ty())),
        Type::Result(r) => {
            let part = |t: Option<Type>| t.map_or("_".to_string(), |t| type_name(&t));
            format!("result<{}, {}>", part(r.ok()), part(r.err()))
        }
        Type::Record(r) => {
            let fields: Vec<String> = r
                .fields()
                .map(|f| format!("{}: {}", f.name, type_name(&f.ty)))
                .collect();
            format!("record {{ {} }}", fields.join(", "))
        }
        Type::Tuple(t) => {
            let items: Vec<String> = t.types().map(|t| type_name(&t)).collect();
            format!("tuple<{}>", items.join(", "))
        }
        _ => "a non-scalar type".into(),
    }
}

/// Whether a core module exports the typed entry point (it then becomes a `typed-step`
/// component when wrapped, with the reactor adapter instead of the command one).
pub fn is_typed_module(module: &[u8]) -> bool {
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        if let Ok(wasmparser::Payload::ExportSection(exports)) = payload {
            return exports.into_iter().flatten().any(|e| e.name == CORE_RUN);
        }
    }
    false
}

/// How deep a sent event may nest (as ingest's default).
const MAX_DEPTH: usize = 64;

/// What a typed step may send: the limits of `host.send-event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendLimits {
    /// Most events one attempt may send.
    pub events: u32,
    /// Largest event, as JSON bytes.
    pub event_size: u64,
}

/// What a step does through `weir:step/host` while it runs: its log lines (into the same
/// capped pipe as stderr) and the events it asked to send, kept until the step ends.
pub struct HostCalls {
    log: MemoryOutputPipe,
    limits: SendLimits,
    /// Ids to give the first events, in order (a dry run's: the original's).
    ids: std::vec::IntoIter<String>,
    /// The events accepted, in order.
    pub sent: Vec<Event>,
    /// Why an event was refused (the first refusal): it fails the step.
    pub refused: Option<String>,
}

impl HostCalls {
    /// Host calls writing their log into `log` (the step's stderr pipe), giving the first
    /// events sent the `ids` given (then new ones).
    pub fn new(log: MemoryOutputPipe, limits: SendLimits, ids: Vec<String>) -> Self {
        Self {
            log,
            limits,
            ids: ids.into_iter(),
            sent: Vec::new(),
            refused: None,
        }
    }

    fn write_log(&mut self, level: Level, message: &str) {
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        let line = format!("[{level}] {message}\n");
        // Whatever does not fit is cut: the step then fails as over its stderr cap, as a
        // guest writing to stderr would.
        let room = self.log.check_write().unwrap_or(0);
        let n = line.len().min(room);
        if n > 0 {
            let _ = self
                .log
                .write(bytes::Bytes::copy_from_slice(&line.as_bytes()[..n]));
        }
    }

    /// Validates one event as ingest would, within the limits; returns its id.
    fn accept(&mut self, json: &str) -> Result<String, String> {
        let n = self.sent.len();
        if n as u64 >= self.limits.events as u64 {
            return Err(format!(
                "more than {} events sent by one step (limits.events)",
                self.limits.events
            ));
        }
        if json.len() as u64 > self.limits.event_size {
            return Err(format!(
                "event {n} is {} bytes, over limits.event_size ({})",
                json.len(),
                human_bytes(self.limits.event_size)
            ));
        }
        crate::event::check_depth(json.as_bytes(), MAX_DEPTH)
            .map_err(|e| format!("event {n}: {e}"))?;
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("event {n} is not valid JSON: {e}"))?;
        if !value.is_object() {
            return Err(format!(
                "event {n} must be one event object, got {}",
                crate::event::json_type(&value)
            ));
        }
        let mut event = crate::event::parse_item(n, value).map_err(|e| e.to_string())?;
        if let Some(id) = self.ids.next() {
            event.id = id;
        }
        let id = event.id.clone();
        self.sent.push(event);
        Ok(id)
    }
}

impl bindings::weir::step::host::Host for super::wasm::Host {
    fn log(&mut self, level: Level, message: String) {
        self.calls.write_log(level, &message);
    }

    fn send_event(&mut self, event: String) -> Result<String, String> {
        let calls = &mut self.calls;
        calls.accept(&event).inspect_err(|why| {
            calls.refused.get_or_insert_with(|| why.clone());
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_versions_are_matched_by_semver() {
        assert!(same_interface("weir:step/host@0.1.0", HOST));
        assert!(same_interface("weir:step/host@0.1.7", HOST));
        assert!(!same_interface("weir:step/host@0.2.0", HOST));
        assert!(!same_interface("weir:step/host@0.1.0-rc", HOST));
        assert!(!same_interface("weir:step/hosts@0.1.0", HOST));
        assert!(!same_interface("weir:step/handler@0.1.0", HOST));
    }

    fn calls(events: u32, event_size: u64) -> HostCalls {
        HostCalls::new(
            MemoryOutputPipe::new(64),
            SendLimits { events, event_size },
            vec!["given".into()],
        )
    }

    #[test]
    fn sent_events_are_validated_like_ingest_within_the_limits() {
        let mut c = calls(2, 100);
        let id = c.accept(r#"{"name": "a/b", "data": {"n": 1}}"#).unwrap();
        assert_eq!((c.sent[0].id.as_str(), id.as_str()), ("given", "given"));
        assert_eq!(c.sent[0].name, "a/b");
        let e = c.accept("{nope").unwrap_err();
        assert!(e.starts_with("event 1 is not valid JSON"), "{e}");
        let e = c.accept(r#"{"data": {}}"#).unwrap_err();
        assert_eq!(e, "event[1].name: is required");
        let e = c.accept(r#"[{"name": "x"}]"#).unwrap_err();
        assert_eq!(e, "event 1 must be one event object, got array");
        let big = format!(r#"{{"name": "x", "data": {{"s": "{}"}}}}"#, "a".repeat(100));
        let e = c.accept(&big).unwrap_err();
        assert!(e.contains("over limits.event_size (100 bytes)"), "{e}");
        let id = c.accept(r#"{"name": "c"}"#).unwrap();
        assert_eq!(id.len(), 26, "a new ULID once the given ids are used: {id}");
        let e = c.accept(r#"{"name": "d"}"#).unwrap_err();
        assert_eq!(e, "more than 2 events sent by one step (limits.events)");
        assert_eq!(c.sent.len(), 2);
    }

    #[test]
    fn log_lines_are_cut_at_the_cap() {
        let pipe = MemoryOutputPipe::new(20);
        let limits = SendLimits {
            events: 1,
            event_size: 1,
        };
        let mut c = HostCalls::new(pipe.clone(), limits, Vec::new());
        c.write_log(Level::Info, "hello");
        c.write_log(Level::Warn, "this line does not fit");
        assert_eq!(&pipe.contents()[..], b"[info] hello\n[warn] ");
    }
}
