//! The lambda step runtime: AWS Lambda's Invoke API (`RequestResponse`), signed with
//! SigV4 by AWS's own `aws-sigv4`, the step's input as the payload and the function's
//! answer as the output (capped like stdout). A `FunctionError` or a throttle is retried
//! like a 500; a 4xx from the API (no such function, bad credentials) fails the step.
//!
//! Credentials: `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (/ `AWS_SESSION_TOKEN`), else
//! the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default
//! `~/.aws/credentials`) under `AWS_PROFILE` (default `default`) — read at each call, so
//! rotated keys are picked up.

use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

use super::target::LambdaTarget;
use super::{
    misrouted, reply, BoxFuture, RuntimeError, RuntimeKind, StepFailure, StepOutcome, StepRequest,
    StepRuntime, Target,
};

/// The Lambda-backed [`StepRuntime`].
pub struct LambdaRuntime {
    client: reqwest::Client,
}

impl LambdaRuntime {
    /// A runtime with its own connection pool.
    pub fn new() -> Result<Self, RuntimeError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("weir/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RuntimeError::Invalid(format!("cannot set up the http client: {e}")))?;
        Ok(Self { client })
    }

    async fn execute(&self, req: StepRequest) -> StepOutcome {
        let started = Instant::now();
        let Target::Lambda(t) = &req.target else {
            let why = misrouted(&req.target, RuntimeKind::Lambda);
            return StepOutcome::failed(started, StepFailure::Load(why));
        };
        let creds = match credentials() {
            Ok(c) => c,
            Err(why) => return StepOutcome::failed(started, StepFailure::Unavailable(why)),
        };
        let url = match invoke_url(t) {
            Ok(u) => u,
            Err(why) => return StepOutcome::failed(started, StepFailure::Rejected(why)),
        };
        let signed = match signed_headers(&creds, &t.region, &url, &req.stdin) {
            Ok(h) => h,
            Err(why) => return StepOutcome::failed(started, StepFailure::Rejected(why)),
        };
        let mut r = self
            .client
            .post(&url)
            .timeout(req.limits.timeout)
            .header("content-type", "application/json")
            .header("x-amz-invocation-type", "RequestResponse");
        for (k, v) in signed {
            r = r.header(k, v);
        }
        let call = invoke(
            r.body(req.stdin.clone()),
            req.limits.stdout,
            req.limits.timeout,
        );
        let (result, stdout) = tokio::select! {
            out = call => out,
            _ = req.cancel.fired() => (Err(StepFailure::Cancelled), vec![]),
        };
        StepOutcome::ended(started, result, stdout, Vec::new())
    }
}

/// `{endpoint}/2015-03-31/functions/{function}/invocations[?Qualifier=…]`.
fn invoke_url(t: &LambdaTarget) -> Result<String, String> {
    let base = t
        .endpoint
        .clone()
        .unwrap_or_else(|| format!("https://lambda.{}.amazonaws.com", t.region));
    let mut url =
        reqwest::Url::parse(&base).map_err(|e| format!("endpoint `{base}` is not a URL: {e}"))?;
    url.path_segments_mut()
        .map_err(|_| format!("endpoint `{base}` cannot take a path"))?
        .pop_if_empty()
        .extend(["2015-03-31", "functions", &t.function, "invocations"]);
    if let Some(q) = &t.qualifier {
        url.query_pairs_mut().append_pair("Qualifier", q);
    }
    Ok(url.to_string())
}

/// The SigV4 headers (`authorization`, `x-amz-date`, …) for POSTing `body` to `url`.
fn signed_headers(
    creds: &Credentials,
    region: &str,
    url: &str,
    body: &[u8],
) -> Result<Vec<(String, String)>, String> {
    let identity = creds.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("lambda")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("cannot sign the request: {e}"))?
        .into();
    let headers = [
        ("content-type", "application/json"),
        ("x-amz-invocation-type", "RequestResponse"),
    ];
    let signable =
        SignableRequest::new("POST", url, headers.into_iter(), SignableBody::Bytes(body))
            .map_err(|e| format!("cannot sign the request: {e}"))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| format!("cannot sign the request: {e}"))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

async fn invoke(
    r: reqwest::RequestBuilder,
    cap: u64,
    timeout: Duration,
) -> (Result<(), StepFailure>, Vec<u8>) {
    let resp = match r.send().await {
        Ok(r) => r,
        Err(e) => {
            return (
                Err(reply::failed(&e, timeout, "cannot call Lambda")),
                vec![],
            )
        }
    };
    let status = resp.status();
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let function_error = header("x-amz-function-error");
    let error_type = header("x-amzn-errortype");
    let body = match reply::body(resp, cap, timeout, "cannot call Lambda").await {
        Ok(b) => b,
        Err((f, partial)) => return (Err(f), partial),
    };
    let said = || {
        serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("errorMessage")
                    .or_else(|| v.get("message"))
                    .or_else(|| v.get("Message"))
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(300).collect())
    };
    if status.is_success() {
        if let Some(kind) = function_error {
            let why = format!("the Lambda function failed ({kind}): {}", said());
            return (Err(StepFailure::Errored(why)), body);
        }
        return (Ok(()), body);
    }
    let kind = error_type.unwrap_or_else(|| status.to_string());
    let why = format!("Lambda answered {status} {kind}: {}", said());
    if status.as_u16() == 429 || status.is_server_error() {
        (Err(StepFailure::Unavailable(why)), vec![])
    } else {
        (Err(StepFailure::Rejected(why)), vec![])
    }
}

/// The credentials of the standard chain's first two links: the environment, then the
/// shared credentials file.
fn credentials() -> Result<Credentials, String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        return Ok(Credentials::new(
            id,
            secret,
            env("AWS_SESSION_TOKEN"),
            None,
            "environment",
        ));
    }
    let file = env("AWS_SHARED_CREDENTIALS_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| env("HOME").map(|h| std::path::Path::new(&h).join(".aws/credentials")));
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    if let Some(path) = file {
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Some(c) = profile_credentials(&text, &profile) {
                return Ok(c);
            }
        }
    }
    Err(format!(
        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give profile `{profile}` in ~/.aws/credentials"
    ))
}

/// A profile's keys in an AWS credentials file (INI).
fn profile_credentials(text: &str, profile: &str) -> Option<Credentials> {
    let mut in_profile = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = name.trim() == profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = Some(v.trim().to_string());
            match k.trim() {
                "aws_access_key_id" => id = v,
                "aws_secret_access_key" => secret = v,
                "aws_session_token" => token = v,
                _ => {}
            }
        }
    }
    Some(Credentials::new(id?, secret?, token, None, "profile"))
}

impl StepRuntime for LambdaRuntime {
    fn prepare<'a>(
        &'a self,
        _tenant: &'a str,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<super::Prepared, RuntimeError>> {
        Box::pin(async move {
            match target {
                Target::Lambda(_) => credentials()
                    .map(|_| super::Prepared::default())
                    .map_err(RuntimeError::Unavailable),
                other => Err(RuntimeError::Invalid(misrouted(other, RuntimeKind::Lambda))),
            }
        })
    }

    fn run(&self, req: StepRequest) -> BoxFuture<'_, StepOutcome> {
        Box::pin(self.execute(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_is_read_from_the_credentials_file() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key = B\n\n[ci]\naws_access_key_id=C\naws_secret_access_key=D\naws_session_token=E\n";
        let c = profile_credentials(text, "ci").unwrap();
        assert_eq!(
            (c.access_key_id(), c.secret_access_key(), c.session_token()),
            ("C", "D", Some("E"))
        );
        assert_eq!(
            profile_credentials(text, "default")
                .unwrap()
                .access_key_id(),
            "A"
        );
        assert!(profile_credentials(text, "prod").is_none());
    }

    #[test]
    fn the_invoke_url_escapes_the_function_and_names_the_region() {
        let t = LambdaTarget {
            function: "arn:aws:lambda:eu-west-1:1:function:f".into(),
            region: "eu-west-1".into(),
            qualifier: Some("live".into()),
            endpoint: None,
        };
        assert_eq!(
            invoke_url(&t).unwrap(),
            "https://lambda.eu-west-1.amazonaws.com/2015-03-31/functions/arn:aws:lambda:eu-west-1:1:function:f/invocations?Qualifier=live"
        );
        let odd = LambdaTarget {
            function: "a b/c".into(),
            endpoint: Some("http://127.0.0.1:5000/".into()),
            qualifier: None,
            ..t
        };
        assert_eq!(
            invoke_url(&odd).unwrap(),
            "http://127.0.0.1:5000/2015-03-31/functions/a%20b%2Fc/invocations"
        );
    }
}
