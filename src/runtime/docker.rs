//! The docker step runtime, through the Docker Engine API on its socket (bollard): one
//! container per attempt, the input on stdin, stdout the output and stderr the log (both
//! capped), `limits.memory` the container's memory, killed at the deadline or when the
//! run is cancelled, and removed afterwards whatever happened. Images are never pulled: a
//! step names one already on the engine, or a build context that weir builds at deploy.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, BuildImageOptionsBuilder, CreateContainerOptionsBuilder,
    KillContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::target::{DockerImage, DockerTarget};
use super::{
    human_bytes, misrouted, BoxFuture, ComponentSource, RuntimeError, RuntimeKind, StepFailure,
    StepOutcome, StepRequest, StepRuntime, Target,
};

/// Docker's own smallest memory limit.
const MIN_MEMORY: u64 = 6 << 20;
/// How long one Engine API request may take (a step's wait is bounded by its deadline).
const CLIENT_TIMEOUT_S: u64 = 3600;
/// Processes a step's container may run at once (a fork bomb stays in its box).
const PIDS: i64 = 512;

/// Settings of the docker runtime.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// The engine's socket, `unix:///var/run/docker.sock` by default (or `DOCKER_HOST`).
    pub host: String,
}

impl Default for DockerConfig {
    fn default() -> Self {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| h.starts_with("unix://"))
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
        Self { host }
    }
}

/// The Docker-backed [`StepRuntime`].
pub struct DockerRuntime {
    host: String,
    client: tokio::sync::Mutex<Option<Docker>>,
    source: Arc<dyn ComponentSource>,
    /// One build at a time per context.
    builds: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl DockerRuntime {
    /// A runtime for the engine at `cfg.host`; it connects when first needed, so a server
    /// starts whether or not the engine is up, and a step asking for it then says why not.
    pub fn new(source: Arc<dyn ComponentSource>, cfg: DockerConfig) -> Self {
        Self {
            host: cfg.host,
            client: tokio::sync::Mutex::new(None),
            source,
            builds: Default::default(),
        }
    }

    /// A client of the engine, connected and version-negotiated once.
    pub async fn client(&self) -> Result<Docker, String> {
        let mut c = self.client.lock().await;
        if let Some(d) = c.as_ref() {
            return Ok(d.clone());
        }
        let unreachable = |e: DockerError| {
            format!(
                "cannot reach the Docker engine at {} ({e}); start it, or point `[docker] host` / DOCKER_HOST at it",
                self.host
            )
        };
        let d =
            Docker::connect_with_socket(&self.host, CLIENT_TIMEOUT_S, bollard::API_DEFAULT_VERSION)
                .map_err(unreachable)?;
        let d = d.negotiate_version().await.map_err(unreachable)?;
        d.ping().await.map_err(unreachable)?;
        *c = Some(d.clone());
        Ok(d)
    }

    async fn check(&self, tenant: &str, t: &DockerTarget) -> Result<(), RuntimeError> {
        if t.network == "host" || t.network.starts_with("container:") {
            return Err(RuntimeError::Invalid(format!(
                "network `{}` would share another network namespace; a step may ask for `none` (the default) or a named network",
                t.network
            )));
        }
        let docker = self.client().await.map_err(RuntimeError::Unavailable)?;
        match &t.image {
            DockerImage::Named(name) => match docker.inspect_image(name).await {
                Ok(_) => Ok(()),
                Err(DockerError::DockerResponseServerError {
                    status_code: 404, ..
                }) => Err(RuntimeError::Invalid(format!(
                    "image `{name}` is not on the Docker engine at {}; weir never pulls images: pull, import or build it there first",
                    self.host
                ))),
                Err(e) => Err(RuntimeError::Unavailable(format!(
                    "cannot inspect image `{name}`: {e}"
                ))),
            },
            DockerImage::Built(sha) => self.build(&docker, tenant, sha).await,
        }
    }

    /// Builds build context `sha` into its image, unless that image exists already.
    async fn build(&self, docker: &Docker, tenant: &str, sha: &str) -> Result<(), RuntimeError> {
        let tag = super::target::built_tag(sha);
        let lock = {
            let mut b = self.builds.lock().unwrap_or_else(|p| p.into_inner());
            b.entry(sha.to_string()).or_default().clone()
        };
        let _one = lock.lock().await;
        if docker.inspect_image(&tag).await.is_ok() {
            return Ok(());
        }
        let context = self
            .source
            .component(tenant, sha)
            .await
            .map_err(RuntimeError::Store)?
            .ok_or_else(|| RuntimeError::Missing(sha.into()))?;
        let options = BuildImageOptionsBuilder::new()
            .t(&tag)
            .rm(true)
            .forcerm(true)
            .build();
        let mut stream =
            docker.build_image(options, None, Some(bollard::body_full(context.into())));
        let mut said: Vec<String> = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(s) = info.stream {
                        said.push(s);
                    }
                    if let Some(d) = info.error_detail {
                        return Err(build_failed(d.message.unwrap_or_default(), &said));
                    }
                }
                Err(DockerError::DockerStreamError { error }) => {
                    return Err(build_failed(error, &said))
                }
                Err(e) => {
                    return Err(RuntimeError::Unavailable(format!(
                        "cannot build the image: {e}"
                    )))
                }
            }
        }
        tracing::info!(tenant, image = tag, "built a docker step's image");
        Ok(())
    }

    async fn execute(&self, req: StepRequest) -> StepOutcome {
        let started = Instant::now();
        let Target::Docker(t) = &req.target else {
            let why = misrouted(&req.target, RuntimeKind::Docker);
            return StepOutcome::failed(started, StepFailure::Load(why));
        };
        if req.limits.memory < MIN_MEMORY {
            let why = format!(
                "limits.memory {} is below Docker's smallest ({})",
                human_bytes(req.limits.memory),
                human_bytes(MIN_MEMORY)
            );
            return StepOutcome::failed(started, StepFailure::Rejected(why));
        }
        let docker = match self.client().await {
            Ok(d) => d,
            Err(why) => return StepOutcome::failed(started, StepFailure::Unavailable(why)),
        };
        if req.attempt.attempt > 0 {
            // An earlier attempt's container may outlive the process that started it.
            remove_leftovers(&docker, &req).await;
        }
        let id = match create(&docker, &req, t).await {
            Ok(id) => id,
            Err(Created::NameTaken) => {
                // This very attempt was started before (weir stopped while it ran and
                // runs it again): its old container goes, then a fresh one.
                remove_leftovers(&docker, &req).await;
                match create(&docker, &req, t).await {
                    Ok(id) => id,
                    Err(Created::NameTaken) => {
                        let why = format!("container {} exists already", container_name(&req));
                        return StepOutcome::failed(started, StepFailure::Unavailable(why));
                    }
                    Err(Created::Failed(f)) => return StepOutcome::failed(started, f),
                }
            }
            Err(Created::Failed(f)) => return StepOutcome::failed(started, f),
        };
        let container = Container {
            docker: docker.clone(),
            id: id.clone(),
            removed: false,
        };
        let (result, stdout, stderr) = supervise(&docker, &id, &req).await;
        container.remove().await;
        StepOutcome::ended(started, result, stdout, stderr)
    }
}

fn build_failed(message: String, said: &[String]) -> RuntimeError {
    let tail: String = said.concat();
    let tail: Vec<&str> = tail.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = tail[tail.len().saturating_sub(6)..].join("\n");
    RuntimeError::Invalid(format!(
        "docker build failed: {}{}",
        message.trim(),
        if tail.is_empty() {
            String::new()
        } else {
            format!("\n{tail}")
        }
    ))
}

/// Labels that name a step's containers, so a later attempt can find what an earlier
/// one left behind.
fn labels(req: &StepRequest) -> HashMap<String, String> {
    HashMap::from([
        ("weir.tenant".to_string(), req.tenant.clone()),
        ("weir.run".to_string(), req.attempt.run_id.clone()),
        ("weir.step".to_string(), req.attempt.step_id.clone()),
        ("weir.attempt".to_string(), req.attempt.attempt.to_string()),
    ])
}

async fn remove_leftovers(docker: &Docker, req: &StepRequest) {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![
            format!("weir.run={}", req.attempt.run_id),
            format!("weir.step={}", req.attempt.step_id),
        ],
    )]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    if let Ok(list) = docker.list_containers(Some(options)).await {
        for c in list {
            if let Some(id) = c.id {
                tracing::info!(container = id, "removing an earlier attempt's container");
                let _ = docker
                    .remove_container(
                        &id,
                        Some(RemoveContainerOptionsBuilder::new().force(true).build()),
                    )
                    .await;
            }
        }
    }
}

/// Why no container was created.
enum Created {
    /// A container of that name exists (the same attempt started before).
    NameTaken,
    /// Anything else, as the step's failure.
    Failed(StepFailure),
}

async fn create(docker: &Docker, req: &StepRequest, t: &DockerTarget) -> Result<String, Created> {
    let memory = req.limits.memory.min(i64::MAX as u64) as i64;
    let body = ContainerCreateBody {
        image: Some(t.image.reference()),
        cmd: t.cmd.clone(),
        env: Some(req.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        open_stdin: Some(true),
        stdin_once: Some(true),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        network_disabled: Some(t.network == "none"),
        labels: Some(labels(req)),
        host_config: Some(HostConfig {
            memory: Some(memory),
            // No swap beyond the memory limit: the limit is the limit.
            memory_swap: Some(memory),
            network_mode: Some(t.network.clone()),
            pids_limit: Some(PIDS),
            ..Default::default()
        }),
        ..Default::default()
    };
    let name = container_name(req);
    let options = CreateContainerOptionsBuilder::new().name(&name).build();
    let failed = |f| Err(Created::Failed(f));
    match docker.create_container(Some(options), body).await {
        Ok(r) => Ok(r.id),
        Err(DockerError::DockerResponseServerError {
            status_code: 409, ..
        }) => Err(Created::NameTaken),
        Err(DockerError::DockerResponseServerError {
            status_code: 404,
            message,
        }) => failed(StepFailure::Rejected(format!(
            "image `{}` is not on the Docker engine ({message}); weir never pulls images",
            t.image.reference()
        ))),
        Err(DockerError::DockerResponseServerError {
            status_code: 400,
            message,
        }) => failed(StepFailure::Rejected(format!(
            "the Docker engine refused the container: {message}"
        ))),
        Err(e) => failed(StepFailure::Unavailable(format!(
            "cannot create the container: {e}"
        ))),
    }
}

/// `weir-<run>-<step>-<attempt>`, in the characters Docker allows in names.
fn container_name(req: &StepRequest) -> String {
    let raw = format!(
        "weir-{}-{}-{}",
        req.attempt.run_id, req.attempt.step_id, req.attempt.attempt
    );
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Removes the container when dropped, if [`Container::remove`] did not (a step whose
/// handling was abandoned midway must not leave its container behind).
struct Container {
    docker: Docker,
    id: String,
    removed: bool,
}

impl Container {
    async fn remove(mut self) {
        self.removed = true;
        remove(&self.docker, &self.id).await;
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if !self.removed {
            let (docker, id) = (self.docker.clone(), self.id.clone());
            if let Ok(h) = tokio::runtime::Handle::try_current() {
                h.spawn(async move { remove(&docker, &id).await });
            }
        }
    }
}

async fn remove(docker: &Docker, id: &str) {
    let options = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    if let Err(e) = docker.remove_container(id, Some(options)).await {
        tracing::warn!(container = id, "cannot remove a step's container: {e}");
    }
}

/// How the container's run ended, before its exit code is read.
enum Ended {
    /// Its output streams closed: it exited.
    Exited,
    /// The deadline passed.
    Timeout,
    /// The run was cancelled.
    Cancelled,
    /// stdout or stderr went over its cap.
    Over(StepFailure),
    /// The attach stream failed.
    Broken(String),
}

/// Attaches, starts, feeds stdin and collects capped output until the container exits,
/// the deadline passes or the run is cancelled; then reads how it ended.
async fn supervise(
    docker: &Docker,
    id: &str,
    req: &StepRequest,
) -> (Result<(), StepFailure>, Vec<u8>, Vec<u8>) {
    let limits = req.limits;
    let deadline = tokio::time::Instant::now() + limits.timeout;
    let options = AttachContainerOptionsBuilder::new()
        .stream(true)
        .stdin(true)
        .stdout(true)
        .stderr(true)
        .build();
    // Attached before it starts, so no output is lost.
    let attached = match docker.attach_container(id, Some(options)).await {
        Ok(a) => a,
        Err(e) => {
            let f = StepFailure::Unavailable(format!("cannot attach to the container: {e}"));
            return (Err(f), vec![], vec![]);
        }
    };
    if let Err(e) = docker.start_container(id, None).await {
        let f = StepFailure::Unavailable(format!("cannot start the container: {e}"));
        return (Err(f), vec![], vec![]);
    }
    let mut input = attached.input;
    let mut output = attached.output;
    let stdin = req.stdin.clone();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let feed = async move {
        // A container that exits without reading its input closes the pipe: not an error.
        let _ = input.write_all(&stdin).await;
        let _ = input.shutdown().await;
        // Kept open (but shut) until the output ends.
        std::future::pending::<()>().await;
    };
    let collect = async {
        while let Some(frame) = output.next().await {
            match frame {
                Ok(bollard::container::LogOutput::StdOut { message }) => {
                    out.extend_from_slice(&message);
                    if out.len() as u64 >= limits.stdout {
                        out.truncate(limits.stdout as usize);
                        return Ended::Over(StepFailure::Stdout(human_bytes(limits.stdout)));
                    }
                }
                Ok(bollard::container::LogOutput::StdErr { message }) => {
                    err.extend_from_slice(&message);
                    if err.len() as u64 >= limits.stderr {
                        err.truncate(limits.stderr as usize);
                        return Ended::Over(StepFailure::Stderr(human_bytes(limits.stderr)));
                    }
                }
                Ok(_) => {}
                Err(e) => return Ended::Broken(e.to_string()),
            }
        }
        Ended::Exited
    };
    let ended = tokio::select! {
        e = collect => e,
        _ = feed => Ended::Exited,
        _ = tokio::time::sleep_until(deadline) => Ended::Timeout,
        _ = req.cancel.fired() => Ended::Cancelled,
    };
    let result = match ended {
        Ended::Exited => exit_status(docker, id, &limits, deadline).await,
        Ended::Timeout => {
            kill(docker, id).await;
            Err(StepFailure::Timeout(limits.timeout))
        }
        Ended::Cancelled => {
            kill(docker, id).await;
            Err(StepFailure::Cancelled)
        }
        Ended::Over(f) => {
            kill(docker, id).await;
            Err(f)
        }
        Ended::Broken(e) => {
            kill(docker, id).await;
            Err(StepFailure::Unavailable(format!(
                "the container's output stream broke: {e}"
            )))
        }
    };
    (result, out, err)
}

async fn kill(docker: &Docker, id: &str) {
    let options = KillContainerOptionsBuilder::new().signal("KILL").build();
    let _ = docker.kill_container(id, Some(options)).await;
}

/// The exit code, and whether the memory limit killed something in it.
async fn exit_status(
    docker: &Docker,
    id: &str,
    limits: &super::ResolvedLimits,
    deadline: tokio::time::Instant,
) -> Result<(), StepFailure> {
    let mut wait = docker.wait_container(id, None);
    let code = match tokio::time::timeout_at(deadline, wait.next()).await {
        Err(_) => {
            kill(docker, id).await;
            return Err(StepFailure::Timeout(limits.timeout));
        }
        Ok(Some(Ok(r))) => r.status_code,
        Ok(Some(Err(DockerError::DockerContainerWaitError { code, .. }))) => code,
        Ok(Some(Err(e))) => {
            return Err(StepFailure::Unavailable(format!(
                "cannot wait for the container: {e}"
            )))
        }
        Ok(None) => {
            return Err(StepFailure::Unavailable(
                "the engine ended the wait without an exit code".into(),
            ))
        }
    };
    let oom = match docker.inspect_container(id, None).await {
        Ok(i) => i.state.and_then(|s| s.oom_killed).unwrap_or(false),
        Err(_) => false,
    };
    if oom {
        // Something in the container was killed by the limit, even if its main process
        // then exited 0: its output cannot be trusted to be whole.
        return Err(StepFailure::Memory(human_bytes(limits.memory)));
    }
    match code {
        0 => Ok(()),
        c => Err(StepFailure::Exit(
            c.clamp(i32::MIN as i64, i32::MAX as i64) as i32
        )),
    }
}

impl StepRuntime for DockerRuntime {
    fn prepare<'a>(
        &'a self,
        tenant: &'a str,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<super::Prepared, RuntimeError>> {
        Box::pin(async move {
            match target {
                Target::Docker(t) => self
                    .check(tenant, t)
                    .await
                    .map(|_| super::Prepared::default()),
                other => Err(RuntimeError::Invalid(misrouted(other, RuntimeKind::Docker))),
            }
        })
    }

    fn run(&self, req: StepRequest) -> BoxFuture<'_, StepOutcome> {
        Box::pin(self.execute(req))
    }
}
