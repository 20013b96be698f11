//! A typed step in Rust (world `typed-step` of weir's `wit/step.wit`): it exports
//! `weir:step/handler.run` and calls `host.log` and `host.send-event`, with no SDK — the
//! few lines of canonical ABI are in `abi` below. Built as a core module (a cdylib) by
//! Debian's cargo and rustc, offline; weir wraps it into a `typed-step` component when it
//! is uploaded (it sees the export `weir:step/handler@0.1.0#run`).
//!
//! It fans an order out: one `order/item` event per item of `event.data.items`, then
//! answers with the ids. `event.data.raw` (strings) are sent as they are, and
//! `event.data.fail_first` (a status) fails the first attempt after sending — the cases
//! weir's tests try.

use serde_json::{json, Value};

mod abi;

use abi::Level;

fn run(input: &str) -> Result<String, (u16, String)> {
    let doc: Value = serde_json::from_str(input).map_err(|e| (400, format!("bad input: {e}")))?;
    let data = &doc["event"]["data"];
    let attempt = doc["ctx"]["attempt"].as_u64().unwrap_or(0);
    let items = data["items"].as_array().cloned().unwrap_or_default();
    abi::log(
        Level::Info,
        &format!("fanning out {} items (attempt {attempt})", items.len()),
    );
    let mut ids = Vec::new();
    for item in &items {
        let event = json!({
            "name": "order/item",
            "data": {"order": data["order"], "item": item},
            "user": doc["event"]["user"],
        });
        match abi::send_event(&event.to_string()) {
            Ok(id) => ids.push(Value::String(id)),
            Err(e) => return Err((500, format!("cannot send: {e}"))),
        }
    }
    for raw in data["raw"].as_array().into_iter().flatten() {
        if let Some(text) = raw.as_str() {
            if let Err(e) = abi::send_event(text) {
                abi::log(Level::Error, &format!("refused: {e}"));
            }
        }
    }
    if let Some(status) = data["fail_first"].as_u64() {
        if attempt == 0 {
            abi::log(Level::Warn, "failing the first attempt, as asked");
            return Err((status as u16, "first attempt fails, as asked".into()));
        }
    }
    if let Some(status) = data["fail"].as_u64() {
        return Err((status as u16, "failing, as asked".into()));
    }
    Ok(json!({"status": 200, "body": {"sent": ids, "count": items.len(), "lang": "rust-typed"}})
        .to_string())
}
