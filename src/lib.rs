//! weir: an event-driven, durable function queue whose steps run as sandboxed
//! WebAssembly components.

pub mod api;
pub mod config;
pub mod engine;
pub mod event;
pub mod expr;
pub mod function;
pub mod fuzzing;
pub mod json;
pub mod run;
pub mod runtime;
pub mod store;

/// The tenant `weir dev` uses for everything.
pub const DEV_TENANT: &str = "default";
