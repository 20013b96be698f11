//! A step in Rust with serde: the input document parsed into typed structs, the output
//! serialized from one. Built offline by Debian's cargo and rustc against the crate sources
//! Debian packages (librust-serde-json-dev), since rustup has no wasm32 target here.

use serde::{Deserialize, Serialize};
use std::io::Read;

#[derive(Deserialize)]
struct Input { event: Event, ctx: Ctx }
#[derive(Deserialize)]
struct Event { #[serde(default)] data: Data }
#[derive(Deserialize, Default)]
struct Data { name: Option<String> }
#[derive(Deserialize)]
struct Ctx { attempt: u32 }
#[derive(Serialize)]
struct Body { message: String, lang: &'static str, attempt: u32 }
#[derive(Serialize)]
struct Output { status: u16, body: Body }

fn main() {
    let mut raw = String::new();
    std::io::stdin().read_to_string(&mut raw).expect("stdin");
    let input: Input = match serde_json::from_str(&raw) {
        Ok(i) => i,
        Err(e) => {
            println!("{}", serde_json::json!({"status": 400, "body": {"error": e.to_string()}}));
            return;
        }
    };
    let name = input.event.data.name.unwrap_or_else(|| "world".into());
    let out = Output { status: 200, body: Body { message: format!("Hello, {name}!"), lang: "rust", attempt: input.ctx.attempt } };
    println!("{}", serde_json::to_string(&out).unwrap());
}
