//! The server configuration file of `weir serve` (TOML), parsed strictly at the edge.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::expr::InputLimits;
use crate::function::{parse_duration, parse_size, CompileOptions};
use crate::runtime::ResolvedLimits;

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The TOML does not parse or does not match the format.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: String,
        /// What does not parse.
        reason: String,
    },
    /// A value is invalid.
    #[error("{path}: {field}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// The setting.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    store: Option<String>,
    workers: Option<usize>,
    #[serde(default)]
    guard_pages: bool,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    ceilings: RawLimits,
    #[serde(default)]
    ingress: RawIngress,
    #[serde(default)]
    tenants: Vec<RawTenant>,
    #[serde(default)]
    docker: RawDocker,
    #[serde(default)]
    http: RawHttp,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDocker {
    host: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(default)]
    allow_private_networks: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    fuel: Option<u64>,
    memory: Option<String>,
    timeout: Option<String>,
    stdout: Option<String>,
    stderr: Option<String>,
    /// Most events a step may send with `host.send-event`.
    events: Option<u32>,
    /// Largest event a step may send, e.g. `256KiB`.
    event_size: Option<String>,
    /// Only in `[limits]`: the cost budget of every CEL evaluation.
    cel_cost: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIngress {
    max_body: Option<String>,
    max_events: Option<usize>,
    max_depth: Option<usize>,
    max_pending: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    id: String,
    #[serde(default)]
    event_keys: Vec<String>,
    #[serde(default)]
    api_keys: Vec<String>,
    max_concurrent_steps: Option<usize>,
    signing_key: Option<String>,
}

/// A tenant and its keys (each key as given: plain, or `sha256:<hex>` of the key).
#[derive(Debug, Clone, PartialEq)]
pub struct TenantConfig {
    /// Tenant id.
    pub id: String,
    /// Keys that may only send events.
    pub event_keys: Vec<String>,
    /// Keys for the `/v1` API.
    pub api_keys: Vec<String>,
    /// Most steps of this tenant executing at once.
    pub max_concurrent_steps: Option<usize>,
    /// The key its http steps' requests are signed with (`X-Weir-Signature`).
    pub signing_key: Option<String>,
}

/// Limits on what clients may send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IngressConfig {
    /// Largest `POST /e` body in bytes.
    pub max_body: usize,
    /// Most events in one request.
    pub max_events: usize,
    /// Deepest JSON nesting accepted.
    pub max_depth: usize,
    /// Events waiting for trigger matching before new ones get 429.
    pub max_pending: u64,
}

impl IngressConfig {
    /// What these limits let an expression read, for its static cost bound.
    pub fn input_limits(&self) -> InputLimits {
        InputLimits {
            max_body: self.max_body as u64,
        }
    }
}

impl Default for IngressConfig {
    fn default() -> Self {
        Self {
            max_body: 3 << 20,
            max_events: crate::event::MAX_EVENTS_PER_REQUEST,
            max_depth: 64,
            max_pending: 1_000_000,
        }
    }
}

/// A validated server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// Where the store lives.
    pub data_dir: PathBuf,
    /// `redb` or `sled`.
    pub store: String,
    /// Worker pool size, if set.
    pub workers: Option<usize>,
    /// Guard pages instead of explicit bounds checks (see `WasmConfig::guard_pages`).
    pub guard_pages: bool,
    /// Limits for steps that set none.
    pub limits: ResolvedLimits,
    /// The most any step may ask for.
    pub ceilings: ResolvedLimits,
    /// Ingress limits.
    pub ingress: IngressConfig,
    /// Cost budget of one CEL evaluation (`[limits] cel_cost`); deploy refuses
    /// expressions whose static bound exceeds it.
    pub cel_cost: u64,
    /// Tenants.
    pub tenants: Vec<TenantConfig>,
    /// The Docker engine's socket for docker steps (`[docker] host`), if set; else
    /// `DOCKER_HOST`, else `/var/run/docker.sock`.
    pub docker_host: Option<String>,
    /// Whether http steps may call loopback and private addresses
    /// (`[http] allow_private_networks`, off by default).
    pub http_allow_private: bool,
}

/// The most a step may ask for unless the configuration says otherwise.
pub fn default_ceilings() -> ResolvedLimits {
    ResolvedLimits::CEILINGS
}

fn limits(
    path: &str,
    section: &str,
    raw: &RawLimits,
    base: ResolvedLimits,
) -> Result<ResolvedLimits, ConfigError> {
    let bad = |field: &str, reason: String| ConfigError::Invalid {
        path: path.into(),
        field: format!("{section}.{field}"),
        reason,
    };
    let size = |field: &str, v: &Option<String>, d: u64| -> Result<u64, ConfigError> {
        match v {
            Some(s) => parse_size(s).map_err(|e| bad(field, e)),
            None => Ok(d),
        }
    };
    Ok(ResolvedLimits {
        memory: size("memory", &raw.memory, base.memory)?,
        timeout: match &raw.timeout {
            Some(t) => parse_duration(t).map_err(|e| bad("timeout", e))?,
            None => base.timeout,
        },
        stdout: size("stdout", &raw.stdout, base.stdout)?,
        stderr: size("stderr", &raw.stderr, base.stderr)?,
        fuel: raw.fuel.or(base.fuel),
        events: raw.events.unwrap_or(base.events),
        event_size: size("event_size", &raw.event_size, base.event_size)?,
    })
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: p.clone(),
            reason: e.to_string(),
        })?;
        Self::parse(&p, &text)
    }

    /// Parses configuration text; `path` names it in errors.
    pub fn parse(path: &str, text: &str) -> Result<Self, ConfigError> {
        let raw: Raw = toml::from_str(text).map_err(|e| ConfigError::Format {
            path: path.into(),
            reason: e.to_string().trim().to_string(),
        })?;
        let bad = |field: String, reason: String| ConfigError::Invalid {
            path: path.into(),
            field,
            reason,
        };
        let ceilings = limits(path, "ceilings", &raw.ceilings, default_ceilings())?;
        let defaults = limits(path, "limits", &raw.limits, ResolvedLimits::default())?;
        for (name, d, c) in [
            ("memory", defaults.memory, ceilings.memory),
            ("stdout", defaults.stdout, ceilings.stdout),
            ("stderr", defaults.stderr, ceilings.stderr),
            ("event_size", defaults.event_size, ceilings.event_size),
        ] {
            if d > c {
                return Err(bad(
                    format!("limits.{name}"),
                    format!("{d} bytes is above ceilings.{name} ({c} bytes)"),
                ));
            }
        }
        if defaults.events > ceilings.events {
            return Err(bad(
                "limits.events".into(),
                format!(
                    "{} is above ceilings.events ({})",
                    defaults.events, ceilings.events
                ),
            ));
        }
        if defaults.timeout > ceilings.timeout {
            return Err(bad(
                "limits.timeout".into(),
                "is above ceilings.timeout".into(),
            ));
        }
        if raw.ceilings.cel_cost.is_some() {
            return Err(bad(
                "ceilings.cel_cost".into(),
                "the CEL cost budget is one server-wide value: set it as [limits] cel_cost".into(),
            ));
        }
        let cel_cost = raw.limits.cel_cost.unwrap_or(crate::expr::DEFAULT_BUDGET);
        if cel_cost == 0 {
            return Err(bad(
                "limits.cel_cost".into(),
                "must be at least 1 (every expression costs at least one unit)".into(),
            ));
        }
        let mut ingress = IngressConfig::default();
        if let Some(b) = &raw.ingress.max_body {
            ingress.max_body =
                parse_size(b).map_err(|e| bad("ingress.max_body".into(), e))? as usize;
        }
        if let Some(n) = raw.ingress.max_events {
            ingress.max_events = n.max(1);
        }
        if let Some(n) = raw.ingress.max_depth {
            ingress.max_depth = n.max(2);
        }
        if let Some(n) = raw.ingress.max_pending {
            ingress.max_pending = n;
        }
        let mut tenants: Vec<TenantConfig> = Vec::new();
        let mut seen_keys = std::collections::HashSet::new();
        for (i, t) in raw.tenants.into_iter().enumerate() {
            let field = format!("tenants[{i}]");
            if t.id.is_empty()
                || t.id.len() > 64
                || !t
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
            {
                return Err(bad(
                    format!("{field}.id"),
                    "must be 1-64 letters, digits, `-` or `_`".into(),
                ));
            }
            if tenants.iter().any(|o| o.id == t.id) {
                return Err(bad(
                    format!("{field}.id"),
                    format!("tenant `{}` is declared twice", t.id),
                ));
            }
            for k in t.event_keys.iter().chain(&t.api_keys) {
                if k.len() < 8 {
                    return Err(bad(
                        field.clone(),
                        "keys must be at least 8 characters".into(),
                    ));
                }
                if !seen_keys.insert(k.clone()) {
                    return Err(bad(
                        field.clone(),
                        "a key is used twice (keys must be unique across tenants and kinds)".into(),
                    ));
                }
            }
            if t.signing_key.as_ref().is_some_and(|k| k.len() < 16) {
                return Err(bad(
                    format!("{field}.signing_key"),
                    "must be at least 16 characters".into(),
                ));
            }
            tenants.push(TenantConfig {
                id: t.id,
                event_keys: t.event_keys,
                api_keys: t.api_keys,
                max_concurrent_steps: t.max_concurrent_steps,
                signing_key: t.signing_key,
            });
        }
        if tenants.is_empty() {
            return Err(bad(
                "tenants".into(),
                "declare at least one [[tenants]] with keys".into(),
            ));
        }
        let store = raw.store.unwrap_or_else(|| "redb".into());
        if store != "redb" && store != "sled" {
            if store.starts_with("redis://") {
                crate::store::redis::RedisTarget::parse(&store)
                    .map_err(|e| bad("store".into(), e.to_string()))?;
            } else {
                return Err(bad(
                    "store".into(),
                    format!("`{store}` is not one of redb, sled, redis://host:port/db"),
                ));
            }
        }
        if let Some(h) = &raw.docker.host {
            if !h.starts_with("unix://") {
                return Err(bad(
                    "docker.host".into(),
                    format!("`{h}` must be a unix:// socket path"),
                ));
            }
        }
        Ok(Config {
            docker_host: raw.docker.host,
            http_allow_private: raw.http.allow_private_networks,
            listen: raw.listen.unwrap_or_else(|| "127.0.0.1:8288".into()),
            data_dir: raw.data_dir.unwrap_or_else(|| PathBuf::from("./.weir")),
            store,
            workers: raw.workers,
            guard_pages: raw.guard_pages,
            limits: defaults,
            ceilings,
            ingress,
            cel_cost,
            tenants,
        })
    }

    /// What function validation checks against on this server: the CEL budget and the
    /// ingress limits that bound what expressions read.
    pub fn compile_options(&self) -> CompileOptions {
        CompileOptions {
            cel_budget: self.cel_cost,
            check_cost: true,
            input: self.ingress.input_limits(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
listen = "127.0.0.1:9000"
data_dir = "/tmp/w"
[limits]
memory = "64MiB"
timeout = "5s"
[ceilings]
memory = "256MiB"
[ingress]
max_body = "1MiB"
max_pending = 10
[[tenants]]
id = "acme"
event_keys = ["evt_acme_1"]
api_keys = ["api_acme_1"]
max_concurrent_steps = 4
"#;

    #[test]
    fn parses_a_full_file() {
        let c = Config::parse("weir.toml", GOOD).unwrap();
        assert_eq!(c.listen, "127.0.0.1:9000");
        assert_eq!(c.limits.memory, 64 << 20);
        assert_eq!(c.limits.timeout, std::time::Duration::from_secs(5));
        assert_eq!(c.ceilings.memory, 256 << 20);
        assert_eq!(c.ingress.max_body, 1 << 20);
        assert_eq!(c.ingress.max_pending, 10);
        assert_eq!(c.tenants[0].max_concurrent_steps, Some(4));
        assert_eq!(c.store, "redb");
        assert!(!c.guard_pages, "explicit bounds checks by default");
        assert_eq!(c.cel_cost, crate::expr::DEFAULT_BUDGET);
        assert_eq!(c.compile_options().input.max_body, 1 << 20);
        let c = Config::parse("weir.toml", &format!("guard_pages = true\n{GOOD}")).unwrap();
        assert!(c.guard_pages);
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let e = Config::parse("weir.toml", "listen = 3")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("weir.toml:") && e.contains("listen"), "{e}");
        let e = Config::parse("weir.toml", "lisen = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field"), "{e}");
        let e = Config::parse("weir.toml", &GOOD.replace("64MiB", "1GiB"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("limits.memory") && e.contains("ceilings.memory"),
            "{e}"
        );
        let e = Config::parse(
            "weir.toml",
            &GOOD.replace("[ceilings]", "events = 2000\n[ceilings]"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("limits.events: 2000 is above ceilings.events (1000)"),
            "{e}"
        );
        let c = Config::parse(
            "weir.toml",
            &GOOD.replace(
                "[ceilings]",
                "events = 7\nevent_size = \"1KiB\"\n[ceilings]",
            ),
        )
        .unwrap();
        assert_eq!((c.limits.events, c.limits.event_size), (7, 1024));
        let e = Config::parse("weir.toml", &GOOD.replace("api_acme_1", "evt_acme_1"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("used twice"), "{e}");
        let c = Config::parse(
            "weir.toml",
            &GOOD.replace("[ceilings]", "cel_cost = 500\n[ceilings]"),
        )
        .unwrap();
        assert_eq!(c.cel_cost, 500);
        assert_eq!(c.compile_options().cel_budget, 500);
        let e = Config::parse(
            "weir.toml",
            &GOOD.replace("[ingress]", "cel_cost = 5\n[ingress]"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("ceilings.cel_cost") && e.contains("[limits]"),
            "{e}"
        );
        let e = Config::parse(
            "weir.toml",
            &GOOD.replace("[ceilings]", "cel_cost = 0\n[ceilings]"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("limits.cel_cost"), "{e}");
        let e = Config::parse("weir.toml", "").unwrap_err().to_string();
        assert!(e.contains("at least one [[tenants]]"), "{e}");
        let e = Config::parse("weir.toml", &GOOD.replace("\"acme\"", "\"a b\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("tenants[0].id"), "{e}");
    }
}
