//! A weir step in Rust (std only, built by Debian's rustc for wasm32-wasi): reads the
//! stdin document, reverses `event.data.name`, and reports what it saw.
//! Output: {"status":200,"body":{"reversed":"…","input_bytes":N}}

use std::io::{Read, Write};

/// The string value of the first `"key":"…"` after `"data":` (enough for the example).
fn data_string(doc: &str, key: &str) -> Option<String> {
    let data = doc.find("\"data\"")?;
    let rest = &doc[data..];
    let at = rest.find(&format!("\"{key}\""))?;
    let rest = &rest[at + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => out.push(chars.next()?),
            c => out.push(c),
        }
    }
    None
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn main() {
    let mut input = String::new();
    if std::io::stdin().read_to_string(&mut input).is_err() {
        std::process::exit(1);
    }
    let name = data_string(&input, "name").unwrap_or_else(|| "world".to_string());
    let reversed: String = name.chars().rev().collect();
    eprintln!("reversing {name}");
    let out = format!(
        "{{\"status\":200,\"body\":{{\"reversed\":{},\"input_bytes\":{}}}}}\n",
        json_string(&reversed),
        input.len()
    );
    std::io::stdout().write_all(out.as_bytes()).unwrap_or_else(|_| std::process::exit(1));
}
