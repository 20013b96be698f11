//! The document a step reads on stdin (see the step contract: event, the outputs of the
//! steps before it, the awaited event, and its context).

use serde_json::Value;

use crate::json::Json;
use crate::run::{Run, StepStatus};

/// What step `idx` reads on stdin: `{"async", "ctx", "event", "steps"}` (keys sorted, as
/// JSON objects are everywhere in weir), serialized straight from the run without
/// building an intermediate JSON value (which deep-copied the event and every output).
pub fn stdin(run: &Run, idx: usize) -> Vec<u8> {
    use serde::ser::{SerializeMap, Serializer};
    struct Steps<'a>(Vec<(&'a str, Option<&'a Json>)>);
    impl serde::Serialize for Steps<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut m = s.serialize_map(Some(self.0.len()))?;
            for (k, v) in &self.0 {
                match v {
                    Some(v) => m.serialize_entry(k, v)?,
                    None => m.serialize_entry(k, &Value::Null)?,
                }
            }
            m.end()
        }
    }
    #[derive(serde::Serialize)]
    struct Ctx<'a> {
        attempt: u32,
        function_id: &'a str,
        function_version: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        replay_id: Option<&'a str>,
        run_id: &'a str,
        step_id: &'a str,
        tenant: &'a str,
    }
    #[derive(serde::Serialize)]
    struct Stdin<'a> {
        #[serde(rename = "async")]
        async_event: Option<&'a Value>,
        ctx: Ctx<'a>,
        event: &'a Json,
        steps: Steps<'a>,
    }
    let st = &run.steps[idx];
    let mut steps: Vec<(&str, Option<&Json>)> = run
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Completed)
        .map(|s| (s.id.as_str(), s.output.as_ref()))
        .collect();
    steps.sort_unstable_by_key(|(k, _)| *k);
    let input = Stdin {
        async_event: st.async_event.as_ref(),
        ctx: Ctx {
            attempt: st.attempts.saturating_sub(1),
            function_id: &run.function_id,
            function_version: run.function_version,
            replay_id: run.replay_id.as_deref(),
            run_id: &run.id,
            step_id: &st.id,
            tenant: &run.tenant,
        },
        event: &run.event,
        steps: Steps(steps),
    };
    serde_json::to_vec(&input).unwrap_or_default()
}
