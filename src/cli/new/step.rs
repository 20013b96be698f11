//! A weir step in Rust (std only): reads the step's input document (JSON) on stdin and
//! writes its output on stdout; stderr is the step's log. No SDK: any WASI program is a
//! step. (For typed parsing, a Cargo project with serde_json works the same way.)
use std::io::{Read, Write};

fn main() {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).expect("stdin");
    eprintln!("got {} bytes of input", input.len());
    // The input is JSON, so it can be embedded as it is.
    let out = format!("{{\"status\": 200, \"body\": {{\"lang\": \"rust\", \"input\": {}}}}}", input);
    std::io::stdout().write_all(out.as_bytes()).expect("stdout");
}
