//! weir: an event-driven, durable function queue whose steps run as sandboxed
//! WebAssembly components.
//!
//! The library's face: an [`Engine`] over a [`Store`] (the embedded one:
//! [`EmbeddedStore`]) and a [`StepRuntime`] (the wasm one: [`WasmRuntime`]), served over
//! HTTP by [`api::router`]. The `weir` binary is a thin CLI over these.
#![warn(missing_docs)]

pub mod api;
pub mod config;
pub mod engine;
pub mod event;
pub mod expr;
pub mod function;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod json;
pub mod run;
pub mod runtime;
pub mod schema;
pub mod store;
pub mod ui;

pub use engine::{Engine, EngineConfig, EngineError};
pub use event::Event;
pub use function::{Function, FunctionDef};
pub use run::{Run, RunStatus};
pub use runtime::wasm::{WasmConfig, WasmRuntime};
pub use runtime::StepRuntime;
pub use store::embedded::{EmbeddedStore, Engine as EmbeddedEngine};
pub use store::Store;

/// The tenant `weir dev` uses for everything.
pub const DEV_TENANT: &str = "default";
