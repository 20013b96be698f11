//! A step attempt's outcome as the scheduler sees it: JSON output, and whether a failure
//! is worth retrying.

use serde_json::{json, Value};

use super::dag::StepResult;
use crate::runtime::StepOutcome;

/// Turns a raw execution outcome into a scheduler result: JSON output (non-JSON stdout
/// becomes `{"body": text}`), with `status` ≥ 500 retryable and 400–499 permanent.
pub fn classify(o: StepOutcome) -> (StepResult, Option<String>) {
    let log = if o.stderr.is_empty() {
        None
    } else {
        Some(String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let output = parse_output(&o.stdout);
    let result = match o.result {
        Err(f) if f.is_retryable() => StepResult::Retryable {
            error: f.to_string(),
            output,
        },
        Err(f) => StepResult::Permanent {
            error: f.to_string(),
            output,
        },
        Ok(()) => {
            let status = output
                .as_ref()
                .and_then(|v| v.get("status"))
                .and_then(Value::as_u64);
            match status {
                Some(s) if s >= 500 => StepResult::Retryable {
                    error: format!("step returned status {s}"),
                    output,
                },
                Some(s) if (400..500).contains(&s) => StepResult::Permanent {
                    error: format!("step returned status {s}"),
                    output,
                },
                _ => StepResult::Completed(output.unwrap_or(Value::Null)),
            }
        }
    };
    (result, log)
}

fn parse_output(stdout: &[u8]) -> Option<Value> {
    if stdout.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    match serde_json::from_slice::<Value>(stdout) {
        Ok(v) => Some(v),
        Err(_) => Some(json!({"body": String::from_utf8_lossy(stdout)})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::StepFailure;
    use std::time::Duration;

    fn outcome(result: Result<(), StepFailure>, stdout: &str) -> StepOutcome {
        StepOutcome {
            result,
            stdout: stdout.into(),
            stderr: b"note".to_vec(),
            elapsed: Duration::ZERO,
            figures: None,
            sent: Vec::new(),
        }
    }

    #[test]
    fn statuses_and_exit_codes_decide_retries() {
        let (r, log) = classify(outcome(Ok(()), r#"{"status":200,"body":{"ok":true}}"#));
        assert_eq!(
            r,
            StepResult::Completed(json!({"status": 200, "body": {"ok": true}}))
        );
        assert_eq!(log.as_deref(), Some("note"));
        assert!(matches!(
            classify(outcome(Ok(()), r#"{"status":503}"#)).0,
            StepResult::Retryable { .. }
        ));
        assert!(matches!(
            classify(outcome(Ok(()), r#"{"status":404}"#)).0,
            StepResult::Permanent { .. }
        ));
        assert!(matches!(
            classify(outcome(Err(StepFailure::Exit(2)), "")).0,
            StepResult::Retryable { .. }
        ));
        assert!(matches!(
            classify(outcome(Err(StepFailure::Rejected("HTTP 404".into())), "")).0,
            StepResult::Permanent { .. }
        ));
        assert_eq!(
            classify(outcome(Ok(()), "hello")).0,
            StepResult::Completed(json!({"body": "hello"}))
        );
        assert_eq!(
            classify(outcome(Ok(()), "")).0,
            StepResult::Completed(Value::Null)
        );
    }
}
