//! A small blocking HTTP client for the subcommands that talk to a server.

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Where the server is and how to authenticate.
#[derive(clap::Args, Clone)]
pub struct Remote {
    /// Base URL of the weir server.
    #[arg(long, env = "WEIR_URL", default_value = "http://127.0.0.1:8288")]
    pub url: String,
    /// API key (sent as `Authorization: Bearer`).
    #[arg(long, env = "WEIR_API_KEY")]
    pub api_key: Option<String>,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
}

impl Remote {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.url.trim_end_matches('/'), path)
    }

    fn finish(
        &self,
        what: &str,
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value> {
        let mut resp =
            resp.with_context(|| format!("cannot reach weir at {} ({what})", self.url))?;
        let status = resp.status();
        let text = resp
            .body_mut()
            .read_to_string()
            .context("cannot read the reply")?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let msg = body
                .get("error")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| body.to_string());
            bail!("{what} failed ({status}): {msg}");
        }
        Ok(body)
    }

    /// GET a JSON document.
    pub fn get(&self, path: &str) -> Result<Value> {
        let mut req = agent().get(self.url(path));
        if let Some(k) = &self.api_key {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        self.finish(&format!("GET {path}"), req.call())
    }

    /// POST or PUT a body with a content type.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
        key: Option<&str>,
    ) -> Result<Value> {
        let url = self.url(path);
        let mut req = match method {
            "PUT" => agent().put(url),
            _ => agent().post(url),
        };
        if let Some(k) = key.or(self.api_key.as_deref()) {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        self.finish(
            &format!("{method} {path}"),
            req.content_type(content_type).send(body),
        )
    }
}
