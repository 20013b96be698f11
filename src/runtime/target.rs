//! What a step runs: a typed target per runtime, parsed from the step's `path` and
//! `runtime` settings. The engine carries it to the runtime without looking inside.

use std::collections::BTreeMap;

use serde_json::Value;

/// The runtimes a step can name in `runtime.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuntimeKind {
    /// A WebAssembly component on wasmtime (the default).
    Wasm,
    /// A container through the Docker Engine API.
    Docker,
    /// An AWS Lambda function through the Invoke API.
    Lambda,
    /// An HTTP endpoint, POSTed the input.
    Http,
}

impl RuntimeKind {
    /// Its name in `runtime.type`.
    pub fn name(self) -> &'static str {
        match self {
            RuntimeKind::Wasm => "wasm",
            RuntimeKind::Docker => "docker",
            RuntimeKind::Lambda => "lambda",
            RuntimeKind::Http => "http",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "wasm" => RuntimeKind::Wasm,
            "docker" => RuntimeKind::Docker,
            "lambda" => RuntimeKind::Lambda,
            "http" => RuntimeKind::Http,
            _ => return None,
        })
    }
}

/// A step's target, checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// An uploaded component, by sha256 (hex).
    Wasm {
        /// The component's sha256 (hex, lower case).
        component: String,
    },
    /// A container.
    Docker(DockerTarget),
    /// A Lambda function.
    Lambda(LambdaTarget),
    /// An HTTP endpoint.
    Http(HttpTarget),
}

/// Where a docker step's image comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DockerImage {
    /// An image already on the engine (never pulled).
    Named(String),
    /// Built at deploy from an uploaded build context (a tar with a Dockerfile), by sha256.
    Built(String),
}

/// A docker step.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DockerTarget {
    /// The image.
    pub image: DockerImage,
    /// Overrides the image's command, if given.
    pub cmd: Option<Vec<String>>,
    /// The network mode (`none` unless the step asks).
    pub network: String,
}

impl DockerImage {
    /// The image reference the container is created from.
    pub fn reference(&self) -> String {
        match self {
            DockerImage::Named(n) => n.clone(),
            DockerImage::Built(sha) => built_tag(sha),
        }
    }
}

/// The tag an uploaded build context is built under: named by its content hash, so a
/// changed folder gets a new image and an unchanged one is not built again.
pub fn built_tag(sha: &str) -> String {
    format!("weir-build:{}", &sha[..sha.len().min(24)])
}

/// A Lambda step.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LambdaTarget {
    /// The function's name or ARN.
    pub function: String,
    /// The AWS region.
    pub region: String,
    /// A version or alias, if given.
    pub qualifier: Option<String>,
    /// Another endpoint than AWS's (a local stand-in), if given.
    pub endpoint: Option<String>,
}

/// An http step.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpTarget {
    /// The URL POSTed to.
    pub url: String,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
}

impl Target {
    /// Its runtime.
    pub fn kind(&self) -> RuntimeKind {
        match self {
            Target::Wasm { .. } => RuntimeKind::Wasm,
            Target::Docker(_) => RuntimeKind::Docker,
            Target::Lambda(_) => RuntimeKind::Lambda,
            Target::Http(_) => RuntimeKind::Http,
        }
    }

    /// A short description for logs and pages (`wasm sha256:ab12…`, `docker busybox:local`).
    pub fn describe(&self) -> String {
        match self {
            Target::Wasm { component } => format!("wasm sha256:{}", &component[..12]),
            Target::Docker(d) => format!("docker {}", d.image.reference()),
            Target::Lambda(l) => format!("lambda {} ({})", l.function, l.region),
            Target::Http(h) => format!("http {}", h.url),
        }
    }

    /// Parses a step's target from its `path` and its `runtime` (`type` and the other
    /// settings). Errors name the field (relative to the step) and what is wrong.
    pub fn parse(
        path: Option<&str>,
        kind: Option<&str>,
        settings: &BTreeMap<String, Value>,
    ) -> Result<Target, (String, String)> {
        let kind_name = kind.unwrap_or("wasm");
        let Some(kind) = RuntimeKind::parse(kind_name) else {
            return Err((
                "runtime.type".into(),
                format!("`{kind_name}` is not a runtime (wasm, docker, lambda or http)"),
            ));
        };
        let mut s = Settings {
            map: settings,
            used: Vec::new(),
        };
        let target = match kind {
            RuntimeKind::Wasm => Target::Wasm {
                component: digest(path.ok_or_else(|| ("path".into(), "is required".into()))?)?,
            },
            RuntimeKind::Docker => {
                let image = match (s.string("image")?, path) {
                    (Some(_), Some(_)) => {
                        return Err((
                            "path".into(),
                            "a docker step names an `image` or a `path` (a folder with a Dockerfile), not both".into(),
                        ))
                    }
                    (Some(i), None) => {
                        if i.is_empty() || i.chars().any(char::is_whitespace) {
                            return Err((
                                "runtime.image".into(),
                                format!("`{i}` is not an image reference"),
                            ));
                        }
                        DockerImage::Named(i)
                    }
                    (None, Some(p)) => DockerImage::Built(digest(p)?),
                    (None, None) => {
                        return Err((
                            "runtime.image".into(),
                            "a docker step needs an `image` (or a `path` to a folder with a Dockerfile)".into(),
                        ))
                    }
                };
                let cmd = s.strings("cmd")?;
                if cmd.as_ref().is_some_and(Vec::is_empty) {
                    return Err(("runtime.cmd".into(), "must not be empty".into()));
                }
                let network = s.string("network")?.unwrap_or_else(|| "none".into());
                Target::Docker(DockerTarget {
                    image,
                    cmd,
                    network,
                })
            }
            RuntimeKind::Lambda => {
                no_path(path, kind)?;
                let function =
                    s.string("function")?
                        .filter(|f| !f.is_empty())
                        .ok_or_else(|| {
                            (
                                "runtime.function".into(),
                                "is required (a Lambda function's name or ARN)".into(),
                            )
                        })?;
                let from_arn = function
                    .strip_prefix("arn:")
                    .and_then(|a| a.split(':').nth(2))
                    .map(str::to_string);
                let region = s.string("region")?.or(from_arn).ok_or_else(|| {
                    (
                        "runtime.region".into(),
                        "is required (e.g. us-east-1)".into(),
                    )
                })?;
                if region.is_empty()
                    || !region
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-')
                {
                    return Err((
                        "runtime.region".into(),
                        format!("`{region}` is not an AWS region"),
                    ));
                }
                let qualifier = s.string("qualifier")?;
                let endpoint = s.string("endpoint")?;
                if let Some(e) = &endpoint {
                    url(e).map_err(|r| ("runtime.endpoint".to_string(), r))?;
                }
                Target::Lambda(LambdaTarget {
                    function,
                    region,
                    qualifier,
                    endpoint,
                })
            }
            RuntimeKind::Http => {
                no_path(path, kind)?;
                let u = s
                    .string("url")?
                    .ok_or_else(|| ("runtime.url".into(), "is required".into()))?;
                url(&u).map_err(|r| ("runtime.url".to_string(), r))?;
                let headers = s.headers()?;
                Target::Http(HttpTarget { url: u, headers })
            }
        };
        if let Some(k) = settings.keys().find(|k| !s.used.contains(&k.as_str())) {
            return Err((
                format!("runtime.{k}"),
                format!("is not a setting of {} steps", kind.name()),
            ));
        }
        Ok(target)
    }
}

/// The settings of `runtime`, read once each (the rest are unknown).
struct Settings<'a> {
    map: &'a BTreeMap<String, Value>,
    used: Vec<&'static str>,
}

impl Settings<'_> {
    fn string(&mut self, key: &'static str) -> Result<Option<String>, (String, String)> {
        self.used.push(key);
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err((format!("runtime.{key}"), "must be a string".into())),
        }
    }

    fn strings(&mut self, key: &'static str) -> Result<Option<Vec<String>>, (String, String)> {
        self.used.push(key);
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| {
                    (
                        format!("runtime.{key}"),
                        "must be an array of strings".into(),
                    )
                }),
            Some(_) => Err((
                format!("runtime.{key}"),
                "must be an array of strings".into(),
            )),
        }
    }

    fn headers(&mut self) -> Result<Vec<(String, String)>, (String, String)> {
        self.used.push("headers");
        let Some(v) = self.map.get("headers") else {
            return Ok(Vec::new());
        };
        let Some(m) = v.as_object() else {
            return Err((
                "runtime.headers".into(),
                "must be an object of strings".into(),
            ));
        };
        let mut out = Vec::new();
        for (k, v) in m {
            let field = format!("runtime.headers.{k}");
            let Some(v) = v.as_str() else {
                return Err((field, "must be a string".into()));
            };
            let lower = k.to_ascii_lowercase();
            if k.is_empty()
                || !k
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
            {
                return Err((field, "is not a header name".into()));
            }
            if lower.starts_with("x-weir-")
                || [
                    "host",
                    "content-length",
                    "content-type",
                    "transfer-encoding",
                    "connection",
                ]
                .contains(&lower.as_str())
            {
                return Err((field, "is set by weir and cannot be overridden".into()));
            }
            if v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err((field, "must not contain line breaks".into()));
            }
            out.push((k.clone(), v.to_string()));
        }
        Ok(out)
    }
}

fn no_path(path: Option<&str>, kind: RuntimeKind) -> Result<(), (String, String)> {
    match path {
        Some(_) => Err((
            "path".into(),
            format!(
                "{} steps take no `path` (their target is in `runtime`)",
                kind.name()
            ),
        )),
        None => Ok(()),
    }
}

/// A `sha256:<hex>` name, lower-cased.
fn digest(path: &str) -> Result<String, (String, String)> {
    let sha = path.strip_prefix("sha256:").ok_or_else(|| {
        (
            "path".to_string(),
            format!("`{path}` must name an upload as sha256:<hex> (upload with PUT /v1/components/<sha256>, or use `weir deploy`, which uploads file:// paths)"),
        )
    })?;
    if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err((
            "path".into(),
            format!("`{path}` is not a sha256 hex digest"),
        ));
    }
    Ok(sha.to_ascii_lowercase())
}

/// An absolute http(s) URL with a host.
fn url(u: &str) -> Result<(), String> {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .ok_or_else(|| format!("`{u}` must be an http:// or https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty()
        || host.contains('@')
        || u.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!("`{u}` is not a URL with a host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(path: Option<&str>, runtime: Value) -> Result<Target, (String, String)> {
        let mut m: BTreeMap<String, Value> = serde_json::from_value(runtime).unwrap();
        let kind = m.remove("type").map(|v| v.as_str().unwrap().to_string());
        Target::parse(path, kind.as_deref(), &m)
    }

    const SHA: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn each_runtime_parses_its_settings() {
        assert_eq!(
            parse(Some(SHA), json!({})).unwrap().kind(),
            RuntimeKind::Wasm
        );
        let d = parse(
            None,
            json!({"type": "docker", "image": "busybox:local", "cmd": ["cat"]}),
        )
        .unwrap();
        assert_eq!(
            d,
            Target::Docker(DockerTarget {
                image: DockerImage::Named("busybox:local".into()),
                cmd: Some(vec!["cat".into()]),
                network: "none".into()
            })
        );
        let b = parse(Some(SHA), json!({"type": "docker"})).unwrap();
        assert!(matches!(
            b,
            Target::Docker(DockerTarget {
                image: DockerImage::Built(_),
                ..
            })
        ));
        let l = parse(
            None,
            json!({"type": "lambda", "function": "arn:aws:lambda:eu-west-1:1:function:f"}),
        )
        .unwrap();
        assert!(
            matches!(l, Target::Lambda(LambdaTarget { ref region, .. }) if region == "eu-west-1")
        );
        let h = parse(
            None,
            json!({"type": "http", "url": "https://x.test/hook", "headers": {"X-Team": "a"}}),
        )
        .unwrap();
        assert_eq!(h.describe(), "http https://x.test/hook");
    }

    #[test]
    fn bad_settings_name_their_field() {
        let cases = [
            (
                None,
                json!({"type": "lua"}),
                "runtime.type",
                "not a runtime",
            ),
            (None, json!({}), "path", "required"),
            (
                None,
                json!({"type": "docker"}),
                "runtime.image",
                "needs an `image`",
            ),
            (
                Some(SHA),
                json!({"type": "docker", "image": "x"}),
                "path",
                "not both",
            ),
            (
                None,
                json!({"type": "docker", "image": "x", "cmd": []}),
                "runtime.cmd",
                "empty",
            ),
            (
                None,
                json!({"type": "docker", "image": "x", "cmd": "ls"}),
                "runtime.cmd",
                "array",
            ),
            (
                None,
                json!({"type": "docker", "image": "x", "memory": 1}),
                "runtime.memory",
                "not a setting",
            ),
            (
                None,
                json!({"type": "lambda"}),
                "runtime.function",
                "required",
            ),
            (
                None,
                json!({"type": "lambda", "function": "f"}),
                "runtime.region",
                "required",
            ),
            (
                None,
                json!({"type": "lambda", "function": "f", "region": "us-east-1", "endpoint": "ftp://x"}),
                "runtime.endpoint",
                "http",
            ),
            (
                Some(SHA),
                json!({"type": "http", "url": "http://x"}),
                "path",
                "no `path`",
            ),
            (
                None,
                json!({"type": "http", "url": "x.test"}),
                "runtime.url",
                "http://",
            ),
            (
                None,
                json!({"type": "http", "url": "http://"}),
                "runtime.url",
                "host",
            ),
            (
                None,
                json!({"type": "http", "url": "http://x", "headers": {"X-Weir-Signature": "s"}}),
                "runtime.headers.X-Weir-Signature",
                "set by weir",
            ),
            (
                None,
                json!({"type": "http", "url": "http://x", "headers": {"A": "b\r\nC: d"}}),
                "runtime.headers.A",
                "line breaks",
            ),
        ];
        for (path, rt, field, says) in cases {
            let (f, why) = parse(path, rt.clone()).expect_err(&rt.to_string());
            assert_eq!(f, field, "{rt}");
            assert!(why.contains(says), "{rt}: {why}");
        }
    }
}
