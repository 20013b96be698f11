//! The http step runtime: the step's input POSTed as JSON to its URL, signed with the
//! tenant's key (`X-Weir-Signature`), within `limits.timeout`; a 2xx body is the output
//! (capped like stdout), a 4xx fails the step, a 5xx or a connection error is retried,
//! and redirects are not followed.
//!
//! The signature: `X-Weir-Signature: t=<unix seconds>,v1=<hex>` where `<hex>` is
//! HMAC-SHA256, keyed with the tenant's signing key, of `<t>.<body>`. A receiver
//! recomputes it over the raw body and refuses a stale `t`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::target::HttpTarget;
use super::{
    misrouted, reply, BoxFuture, RuntimeError, RuntimeKind, StepFailure, StepOutcome, StepRequest,
    StepRuntime, Target,
};

/// Settings of the http runtime.
#[derive(Debug, Clone, Default)]
pub struct HttpConfig {
    /// Each tenant's signing key.
    pub signing_keys: HashMap<String, String>,
    /// Whether steps may call loopback, private and link-local addresses (on for
    /// `weir dev`; off for `weir serve` unless configured, so that a tenant's step cannot
    /// reach the server's own network).
    pub allow_private: bool,
}

/// The http-backed [`StepRuntime`].
pub struct HttpRuntime {
    client: reqwest::Client,
    keys: HashMap<String, Vec<u8>>,
    allow_private: bool,
}

/// The value of `X-Weir-Signature` for `body` sent at `t` (unix seconds) under `key`.
pub fn signature(key: &[u8], t: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

impl HttpRuntime {
    /// A runtime with its own connection pool.
    pub fn new(cfg: HttpConfig) -> Result<Self, RuntimeError> {
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("weir/", env!("CARGO_PKG_VERSION")));
        if !cfg.allow_private {
            b = b.dns_resolver(Arc::new(PublicOnly));
        }
        let client = b
            .build()
            .map_err(|e| RuntimeError::Invalid(format!("cannot set up the http client: {e}")))?;
        Ok(Self {
            client,
            keys: cfg
                .signing_keys
                .into_iter()
                .map(|(t, k)| (t, k.into_bytes()))
                .collect(),
            allow_private: cfg.allow_private,
        })
    }

    fn check(&self, tenant: &str, t: &HttpTarget) -> Result<(), RuntimeError> {
        if !self.keys.contains_key(tenant) {
            return Err(RuntimeError::Unavailable(format!(
                "tenant `{tenant}` has no signing_key in the server's config, and http steps are signed with it"
            )));
        }
        let url = reqwest::Url::parse(&t.url)
            .map_err(|e| RuntimeError::Invalid(format!("`{}` is not a URL: {e}", t.url)))?;
        if !self.allow_private {
            if let Some(ip) = literal_ip(&url) {
                if !is_public(ip) {
                    return Err(RuntimeError::Invalid(format!(
                        "`{}` is a private address, and this server lets steps call only public ones",
                        t.url
                    )));
                }
            }
        }
        Ok(())
    }

    async fn execute(&self, req: StepRequest) -> StepOutcome {
        let started = Instant::now();
        let Target::Http(t) = &req.target else {
            let why = misrouted(&req.target, RuntimeKind::Http);
            return StepOutcome::failed(started, StepFailure::Load(why));
        };
        if let Err(e) = self.check(&req.tenant, t) {
            return StepOutcome::failed(started, StepFailure::Rejected(e.to_string()));
        }
        let Some(key) = self.keys.get(&req.tenant) else {
            return StepOutcome::failed(started, StepFailure::Rejected("no signing key".into()));
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut r = self
            .client
            .post(&t.url)
            .timeout(req.limits.timeout)
            .header("content-type", "application/json")
            .header("x-weir-signature", signature(key, now, &req.stdin))
            .header("x-weir-run", &req.attempt.run_id)
            .header("x-weir-step", &req.attempt.step_id)
            .header("x-weir-attempt", req.attempt.attempt.to_string())
            .header("idempotency-key", req.attempt.id());
        for (k, v) in &t.headers {
            r = r.header(k, v);
        }
        let call = call(
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

/// Sends the request and reads its answer: what the step's stdout would be, and how it
/// ended.
async fn call(
    r: reqwest::RequestBuilder,
    cap: u64,
    timeout: Duration,
) -> (Result<(), StepFailure>, Vec<u8>) {
    let resp = match r.send().await {
        Ok(r) => r,
        Err(e) => {
            return (
                Err(reply::failed(&e, timeout, "the request failed")),
                vec![],
            )
        }
    };
    let status = resp.status();
    if status.is_redirection() {
        let to = resp
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or("?")
            .to_string();
        return (
            Err(StepFailure::Rejected(format!(
                "answered {status} (to {to}); weir does not follow redirects: give the final URL"
            ))),
            vec![],
        );
    }
    let body = match reply::body(resp, cap, timeout, "the request failed").await {
        Ok(b) => b,
        Err((f, partial)) => return (Err(f), partial),
    };
    if status.is_success() {
        return (Ok(()), body);
    }
    // A failing answer becomes `{"status", "body"}`: 4xx then fails the step, 5xx
    // retries it, by the same rule as any step's output.
    let shown = serde_json::from_slice::<Value>(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    let out = json!({"status": status.as_u16(), "body": shown});
    (Ok(()), serde_json::to_vec(&out).unwrap_or_default())
}

fn literal_ip(url: &reqwest::Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Whether an address is on the public internet (not loopback, private, link-local,
/// shared, unspecified, multicast or documentation space).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            !(a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_multicast()
                || a.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64))
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = a.segments();
            !(a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// Resolves names as usual, then keeps only public addresses.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!(
                    "{host} resolves to no public address, and this server lets steps call only public ones"
                )
                .into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl StepRuntime for HttpRuntime {
    fn prepare<'a>(
        &'a self,
        tenant: &'a str,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<super::Prepared, RuntimeError>> {
        Box::pin(async move {
            match target {
                Target::Http(t) => self.check(tenant, t).map(|_| super::Prepared::default()),
                other => Err(RuntimeError::Invalid(misrouted(other, RuntimeKind::Http))),
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
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac k
        assert_eq!(
            signature(b"k", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=1b6ad1bc9bf48c52ce01939866d5877c6cc4e87ddad27e16673cb8c4964394a3"
        );
    }

    #[test]
    fn only_public_addresses_are_public() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ] {
            assert!(!is_public(a.parse().unwrap()), "{a}");
        }
        for a in ["93.184.216.34", "2606:4700::1111", "1.1.1.1"] {
            assert!(is_public(a.parse().unwrap()), "{a}");
        }
    }
}
