//! What the two HTTP-client adapters (http, lambda) share: how a failed request is told
//! apart (timeout or not), and reading an answer under the output cap as it streams.

use std::time::Duration;

use futures::StreamExt;

use super::{human_bytes, StepFailure};

/// A request that got no answer: past the deadline, or anything else (with its causes,
/// which say what went wrong: refused, reset…), worth retrying either way.
pub(super) fn failed(e: &reqwest::Error, timeout: Duration, what: &str) -> StepFailure {
    if e.is_timeout() {
        return StepFailure::Timeout(timeout);
    }
    let mut s = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    StepFailure::Unavailable(format!("{what}: {s}"))
}

/// The answer's body, read until it ends or passes `cap` bytes (then what was read,
/// cut at the cap, with the stdout failure, as a guest's capped stdout would be).
pub(super) async fn body(
    resp: reqwest::Response,
    cap: u64,
    timeout: Duration,
    what: &str,
) -> Result<Vec<u8>, (StepFailure, Vec<u8>)> {
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => {
                body.extend_from_slice(&c);
                if body.len() as u64 > cap {
                    body.truncate(cap as usize);
                    return Err((StepFailure::Stdout(human_bytes(cap)), body));
                }
            }
            Err(e) => return Err((failed(&e, timeout, what), body)),
        }
    }
    Ok(body)
}
