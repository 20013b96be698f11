//! The JSON shapes of the API, for its OpenAPI document ([`super::openapi`]).
//!
//! Most replies are built with `serde_json::json!` by the handlers (or by the engine),
//! and most bodies are parsed by hand to name the field at fault, so these types are
//! never built nor parsed: they only describe that JSON. Keep a shape in step with the
//! code that builds or parses it (named in its comment); schemathesis checks the
//! document against the running binary (`scripts/schemathesis.sh`). `Serialize` is
//! derived only so that serde's attributes, which utoipa reads (renames, `flatten`,
//! internally tagged enums), are allowed.
#![allow(dead_code)]

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::openapi::schema::{
    ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToResponse, ToSchema};

/// An error reply (what `super::ApiError` sends).
#[derive(ToSchema, Serialize)]
#[schema(as = Error)]
pub struct ErrorReply {
    /// What went wrong, for people.
    error: String,
    /// A stable machine-readable code (the README lists every one).
    #[schema(example = "invalid_query")]
    code: String,
    /// The HTTP status, again.
    status: u16,
}

/// Missing or unknown key (`unauthorized`)
#[derive(ToResponse)]
pub struct Unauthorized(ErrorReply);

/// An event key on the API (`forbidden`), or only the session cookie from another origin
/// (`cross_origin`)
#[derive(ToResponse)]
pub struct Forbidden(ErrorReply);

/// Run counts by status (every status, zeros included).
#[derive(ToSchema, Serialize)]
pub struct RunCounts(BTreeMap<RunStatus, u64>);

/// A run's status.
#[derive(ToSchema, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Waiting,
    Sleeping,
    Completed,
    Failed,
    Cancelled,
}

/// A step's status.
#[derive(ToSchema, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Running,
    Sleeping,
    Waiting,
    Completed,
    Failed,
    Skipped,
    Cancelled,
}

// ---- events (`crate::event::parse_batch`, `super::events::event_json`) ----

/// One event in the wire format (compatible with Inngest's event API).
#[derive(ToSchema, Serialize)]
#[schema(as = Event)]
pub struct EventIn {
    /// The event name, e.g. `user/signed.up` (the `weir/` prefix is reserved).
    #[schema(min_length = 1, max_length = 256)]
    name: String,
    /// The payload (default `{}`).
    data: Option<Map<String, Value>>,
    /// Who the event is about; `user.id` ties it to the per-user view.
    user: Option<Map<String, Value>>,
    /// Idempotency key: a second event with the same id triggers nothing.
    #[schema(max_length = 256)]
    id: Option<String>,
    /// Milliseconds since the epoch (default now; in the future: delayed until then).
    #[schema(minimum = 0, exclusive_maximum = 1_000_000_000_000_000_f64)]
    ts: Option<f64>,
    /// Schema version to check the event against (default: the latest).
    v: Option<String>,
}

/// One event or an array of up to 5,000.
pub struct EventBatch;

impl PartialSchema for EventBatch {
    fn schema() -> RefOr<Schema> {
        let event = || Ref::from_schema_name(EventIn::name());
        OneOfBuilder::new()
            .item(event())
            .item(
                ArrayBuilder::new()
                    .items(event())
                    .min_items(Some(1))
                    .max_items(Some(crate::event::MAX_EVENTS_PER_REQUEST)),
            )
            .into()
    }
}

impl ToSchema for EventBatch {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((EventIn::name().into(), EventIn::schema()));
    }
}

/// The ids weir gave the events, in order.
#[derive(ToSchema, Serialize)]
pub struct Ids {
    ids: Vec<String>,
    /// Always 200.
    #[schema(minimum = 200, maximum = 200)]
    status: u16,
}

/// A stored event, with the runs it started.
#[derive(ToSchema, Serialize)]
pub struct StoredEvent {
    /// weir's id (a ULID).
    id: String,
    name: String,
    data: Map<String, Value>,
    /// `{}` when the event named no user.
    user: Map<String, Value>,
    /// Milliseconds since the epoch.
    ts: i64,
    /// The sender's `id`, when given.
    #[schema(nullable = false)]
    idempotency_key: Option<String>,
    #[schema(nullable = false)]
    v: Option<String>,
    /// The runs it started.
    run_ids: Vec<String>,
    /// The first event with the same idempotency key, when this one repeated it.
    #[schema(nullable = false)]
    duplicate_of: Option<String>,
    /// What its `warn`-mode schema found wrong with it.
    #[schema(nullable = false)]
    schema_errors: Option<Vec<String>>,
}

/// A page of events, newest first.
#[derive(ToSchema, Serialize)]
pub struct EventPage {
    data: Vec<StoredEvent>,
    /// Pass as `cursor` for the next page; `null` on the last.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

// ---- functions (`crate::function::FunctionDef`, `super::functions`) ----

/// A function definition (design §2); relative `file://` paths only work from the CLI,
/// over HTTP a step names an uploaded component as `sha256:<hex>`.
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionDef {
    /// Stable id, unique within a tenant.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$")]
    id: String,
    name: Option<String>,
    description: Option<String>,
    /// What starts a run.
    #[schema(min_items = 1)]
    triggers: Vec<TriggerDef>,
    retries: Option<RetriesDef>,
    limits: Option<LimitsDef>,
    /// Environment variables every step sees.
    #[schema(nullable = false)]
    env: Option<BTreeMap<String, String>>,
    /// Events that cancel a run of this function.
    #[schema(nullable = false)]
    cancel: Option<Vec<CancelDef>>,
    /// The steps, by id.
    steps: BTreeMap<String, StepDef>,
}

/// A trigger: `{event, expression?}` or `{cron}`.
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerDef {
    #[schema(nullable = false)]
    event: Option<String>,
    /// CEL over the event (`event`, and bare `name`, `data`, `user`).
    #[schema(nullable = false)]
    expression: Option<String>,
    /// Five fields, optionally prefixed `TZ=Area/City `.
    #[schema(nullable = false)]
    cron: Option<String>,
}

/// Retry policy.
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetriesDef {
    /// Retries after the first attempt.
    attempts: u32,
    /// Base delay of the exponential backoff (default `1s`).
    backoff: Option<String>,
}

/// Sandbox limits, each optional.
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsDef {
    /// e.g. `64MiB`.
    memory: Option<String>,
    /// e.g. `5s`.
    timeout: Option<String>,
    fuel: Option<u64>,
    stdout: Option<String>,
    stderr: Option<String>,
}

/// A step.
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StepDef {
    /// Must equal the key it is declared under, when given.
    id: Option<String>,
    name: Option<String>,
    /// `sha256:<hex>` of an uploaded component, or of a docker build context (or
    /// `file://…` from the CLI: a wasm file, or a folder with a Dockerfile).
    path: Option<String>,
    /// `{"type": "wasm" | "docker" | "lambda" | "http", …}` with that runtime's settings
    /// beside `type` (default wasm).
    #[schema(nullable = false)]
    runtime: Option<Map<String, Value>>,
    /// Incoming edges; none means "after the trigger".
    #[schema(nullable = false)]
    after: Option<Vec<EdgeDef>>,
    retries: Option<RetriesDef>,
    limits: Option<LimitsDef>,
    #[schema(nullable = false)]
    env: Option<BTreeMap<String, String>>,
}

/// An edge from a parent step (or `$trigger`).
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeDef {
    /// Parent step id, or `$trigger` (the default).
    #[schema(nullable = false)]
    step: Option<String>,
    /// CEL over `event`, `steps`, `response`, `async`.
    #[serde(rename = "if")]
    #[schema(nullable = false)]
    cond: Option<String>,
    /// Durable sleep before the child (`10m`, `2h`, `7d`).
    #[schema(nullable = false)]
    wait: Option<String>,
    #[serde(rename = "async")]
    #[schema(nullable = false)]
    wait_for: Option<AsyncDef>,
}

/// Waiting for another event on an edge.
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AsyncDef {
    event: String,
    /// CEL over `event` (the trigger) and `async` (the incoming event).
    #[serde(rename = "match")]
    #[schema(nullable = false)]
    matches: Option<String>,
    ttl: String,
    /// Take the edge only if no matching event came within `ttl`.
    #[serde(rename = "onTimeout")]
    #[schema(nullable = false)]
    on_timeout: Option<bool>,
}

/// A rule that cancels runs when a matching event arrives.
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CancelDef {
    event: String,
    #[serde(rename = "if")]
    #[schema(nullable = false)]
    cond: Option<String>,
    #[schema(nullable = false)]
    timeout: Option<String>,
}

/// A deployed version.
#[derive(ToSchema, Serialize)]
pub struct Deployed {
    id: String,
    /// Unchanged if the definition was the latest already.
    version: u64,
}

/// A function's latest version, with its run counts.
#[derive(ToSchema, Serialize)]
pub struct FunctionSummary {
    id: String,
    #[schema(required = true)]
    name: Option<String>,
    version: u64,
    triggers: Vec<TriggerDef>,
    /// The step ids.
    steps: Vec<String>,
    runs: RunCounts,
}

/// Every function of the tenant.
#[derive(ToSchema, Serialize)]
pub struct FunctionList {
    data: Vec<FunctionSummary>,
}

/// A version's number and time.
#[derive(ToSchema, Serialize)]
pub struct VersionRef {
    version: u64,
    created_at: i64,
}

/// A function: its latest definition, every version, run counts.
#[derive(ToSchema, Serialize)]
pub struct FunctionDetail {
    id: String,
    version: u64,
    definition: FunctionDef,
    versions: Vec<VersionRef>,
    runs: RunCounts,
}

/// One immutable version.
#[derive(ToSchema, Serialize)]
pub struct FunctionVersion {
    version: u64,
    created_at: i64,
    def: FunctionDef,
    /// Each wasm step's component, `sha256:<hex>`, by step id.
    components: BTreeMap<String, String>,
}

/// Every version, newest first.
#[derive(ToSchema, Serialize)]
pub struct VersionPage {
    data: Vec<FunctionVersion>,
    /// Always `null`: one page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// An upload's bytes: a WebAssembly component, a WASI preview1 module, or a tar
/// (a docker build context).
pub struct WasmBytes;

impl PartialSchema for WasmBytes {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl ToSchema for WasmBytes {}

/// An uploaded component.
#[derive(ToSchema, Serialize)]
pub struct Component {
    /// Its digest, lowercase.
    sha256: String,
    kind: ComponentKind,
    /// Its WIT world (`wit/step.wit`), for wasm: `step` (a WASI command) or
    /// `typed-step` (exports `weir:step/handler.run`).
    #[schema(nullable = false)]
    world: Option<World>,
}

/// weir's two worlds.
#[derive(ToSchema, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    Step,
    TypedStep,
}

/// A component, a WASI preview1 module (wrapped as a component by weir), or a tar
/// with a Dockerfile (a docker step's build context, built when a step names it).
#[derive(ToSchema, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentKind {
    Component,
    Module,
    DockerContext,
}

// ---- rollouts (`crate::engine::rollout`) ----

/// A version and its weight.
#[derive(ToSchema, Serialize)]
pub struct Weighted {
    #[schema(minimum = 1)]
    version: u64,
    /// An integer percentage; the weights of a rollout sum to 100.
    #[schema(maximum = 100)]
    weight: u32,
}

/// When weir rolls back by itself.
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Analysis {
    /// Finished runs a version needs before it is judged.
    #[schema(minimum = 1)]
    min_runs: u64,
    /// How far (0–1, absolute) its failure rate may exceed the baseline's.
    #[schema(minimum = 0, exclusive_maximum = 1)]
    max_failure_rate_increase: f64,
}

/// A rollout as sent.
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutSpec {
    /// Versions and weights; the first is the baseline.
    #[schema(min_items = 1)]
    versions: Vec<Weighted>,
    /// CEL over the trigger event giving the sticky key (default: the user id, else the
    /// event id).
    #[schema(nullable = false)]
    sticky: Option<String>,
    #[schema(nullable = false)]
    analysis: Option<Analysis>,
}

/// Where a rollout stands.
#[derive(ToSchema, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutStatus {
    Active,
    RolledBack,
    Replaced,
}

/// A version's figures under a rollout.
#[derive(ToSchema, Serialize)]
pub struct VersionFigures {
    version: u64,
    weight: u32,
    runs: u64,
    running: u64,
    completed: u64,
    failed: u64,
    cancelled: u64,
    /// `failed / (completed + failed)`; `null` before any ended.
    #[schema(required = true)]
    failure_rate: Option<f64>,
    #[schema(required = true)]
    p50_ms: Option<u64>,
    #[schema(required = true)]
    p95_ms: Option<u64>,
}

/// A rollout with its figures (live for the current one, as it ended for the others).
#[derive(ToSchema, Serialize)]
pub struct RolloutRecord {
    id: String,
    function_id: String,
    status: RolloutStatus,
    /// The versions with their weights and figures; the first is the baseline.
    versions: Vec<VersionFigures>,
    /// How new runs are routed now (all to the baseline once rolled back).
    routing: Vec<Weighted>,
    #[schema(required = true)]
    sticky: Option<String>,
    #[schema(nullable = false)]
    analysis: Option<Analysis>,
    /// `put`, `promote` or `rollback`.
    origin: String,
    created_at: i64,
    #[schema(required = true)]
    ended_at: Option<i64>,
    #[schema(required = true)]
    replaced_id: Option<String>,
    /// Why it was rolled back.
    #[schema(nullable = false)]
    reason: Option<String>,
    /// What an automatic rollback decided on (versions, rates, thresholds).
    #[schema(nullable = false, value_type = Option<Object>)]
    decision: Option<Value>,
}

/// The current rollout and the ones before it.
#[derive(ToSchema, Serialize)]
pub struct RolloutShow {
    #[serde(flatten)]
    current: RolloutRecord,
    /// Earlier rollouts, newest first.
    history: Vec<RolloutRecord>,
}

/// The rollout just set, with the one it replaced.
#[derive(ToSchema, Serialize)]
pub struct RolloutChange {
    #[serde(flatten)]
    current: RolloutRecord,
    #[schema(required = true)]
    replaced: Option<RolloutRecord>,
}

// ---- runs (`crate::run::Run::to_api`) ----

/// A wait of a parked step.
#[derive(ToSchema, Serialize)]
pub struct Awaiting {
    /// The awaited event's name.
    event: String,
    /// When the wait times out (ms since epoch).
    expires_at: i64,
}

/// A step's state in a run.
#[derive(ToSchema, Serialize)]
pub struct StepState {
    status: StepStatus,
    attempts: u32,
    /// The recorded output (any JSON).
    #[schema(required, value_type = Value)]
    output: Option<Value>,
    #[schema(required = true)]
    error: Option<String>,
    /// stderr of the last attempt.
    #[schema(required = true)]
    log: Option<String>,
    #[schema(required = true)]
    started_at: Option<i64>,
    #[schema(required = true)]
    ended_at: Option<i64>,
    /// When a sleep or retry is due.
    #[schema(nullable = false)]
    wake_at: Option<i64>,
    /// What it waits for.
    #[schema(nullable = false)]
    awaiting: Option<Vec<Awaiting>>,
    /// The event that resolved its wait.
    #[serde(rename = "async")]
    #[schema(nullable = false, value_type = Option<Object>)]
    async_event: Option<Value>,
    /// When every incoming edge was resolved and it was first queued (ms since epoch).
    #[schema(nullable = false)]
    ready_at: Option<i64>,
    /// When its first attempt started.
    #[schema(nullable = false)]
    first_started_at: Option<i64>,
    /// What the sandbox measured in the last attempt.
    #[schema(nullable = false)]
    sandbox: Option<Sandbox>,
    /// The events its completed attempt sent with `host.send-event`.
    #[schema(nullable = false)]
    sent: Option<Vec<SentEvent>>,
}

/// An event a step sent.
#[derive(ToSchema, Serialize)]
pub struct SentEvent {
    /// The stored event's id (`null` when a dry run captured it instead of sending it).
    #[schema(required = true)]
    id: Option<String>,
    /// Its name.
    name: String,
}

/// What one attempt cost inside the sandbox.
#[derive(ToSchema, Serialize)]
pub struct Sandbox {
    /// Time to instantiate the component (µs).
    instantiate_us: u64,
    /// Time spent running it (µs).
    run_us: u64,
    /// CPU fuel consumed.
    fuel: u64,
    /// The most linear memory it had at once (bytes).
    memory_peak: u64,
}

/// A run with each step's state.
#[derive(ToSchema, Serialize)]
pub struct Run {
    id: String,
    function_id: String,
    function_version: u64,
    status: RunStatus,
    /// The event that started it.
    event_id: String,
    /// That event's `ts`.
    #[schema(required = true)]
    event_ts: Option<i64>,
    #[schema(required = true)]
    user_id: Option<String>,
    /// The rollout that chose its version.
    #[schema(required = true)]
    rollout_id: Option<String>,
    /// The replay that started it.
    #[schema(required = true)]
    replay_id: Option<String>,
    created_at: i64,
    #[schema(required = true)]
    ended_at: Option<i64>,
    /// By step id.
    steps: BTreeMap<String, StepState>,
}

/// A page of runs, newest first.
#[derive(ToSchema, Serialize)]
pub struct RunPage {
    data: Vec<Run>,
    #[schema(required = true)]
    next_cursor: Option<String>,
}

// ---- schemas (`crate::schema`, `crate::engine::schemas`) ----

/// What ingest does with an event the schema refuses: `reject` (400, nothing stored) or
/// `warn` (stored with `schema_errors`).
#[derive(ToSchema, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaMode {
    Reject,
    Warn,
}

/// A schema version to register.
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PutSchema {
    /// The version, e.g. `2024-01-01.1`; immutable once registered.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    v: String,
    mode: SchemaMode,
    /// JSON Schema draft 2020-12 for the event's `data` (an object or a boolean); no
    /// remote `$ref`.
    #[schema(schema_with = object_or_boolean)]
    schema: Value,
    /// Only report; store nothing.
    dry_run: Option<bool>,
}

fn object_or_boolean() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Boolean]))
        .into()
}

/// One registered version.
#[derive(ToSchema, Serialize)]
pub struct SchemaVersion {
    v: String,
    mode: SchemaMode,
    #[schema(schema_with = object_or_boolean)]
    schema: Value,
    /// ms since epoch.
    created_at: i64,
}

/// An event name's schema in a listing.
#[derive(ToSchema, Serialize)]
pub struct SchemaSummary {
    name: String,
    /// What an event without `v` is checked against.
    latest: String,
    /// The latest version's mode.
    mode: SchemaMode,
    /// How many versions there are.
    versions: u64,
}

/// The tenant's schemas, by name.
#[derive(ToSchema, Serialize)]
pub struct SchemaList {
    data: Vec<SchemaSummary>,
    /// Always `null`: one page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// Every version of an event name's schema, in registration order.
#[derive(ToSchema, Serialize)]
pub struct SchemaVersions {
    name: String,
    #[schema(required = true)]
    latest: Option<String>,
    versions: Vec<SchemaVersion>,
}

/// A stored event the new version refuses.
#[derive(ToSchema, Serialize)]
pub struct FailingEvent {
    event_id: String,
    /// `data.path: rule`, joined with `; `.
    error: String,
}

/// What registering a version found and did.
#[derive(ToSchema, Serialize)]
pub struct SchemaReport {
    name: String,
    v: String,
    mode: SchemaMode,
    dry_run: bool,
    /// Whether the version is registered now.
    registered: bool,
    /// Whether this request added it (false when it was there already, identical).
    created: bool,
    /// Recent stored events of the name checked (up to 1,000).
    checked: u64,
    would_fail: u64,
    /// Some of those (up to 10).
    examples: Vec<FailingEvent>,
}

/// A draft schema inferred from stored events.
#[derive(ToSchema, Serialize)]
pub struct InferredSchema {
    name: String,
    /// Events sampled (the most recent, up to 1,000).
    sampled: u64,
    /// A draft 2020-12 JSON Schema for `data`.
    #[schema(value_type = Object)]
    schema: Value,
}

// ---- replays (`crate::engine::replay::spec`) ----

/// `run`: new runs marked with the replay; `dry_run`: run in the sandbox, compare with
/// the original runs, record nothing.
#[derive(ToSchema, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayMode {
    Run,
    DryRun,
}

/// An outcome a replay may select by: a run status, or `skipped`.
#[derive(ToSchema, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayOutcome {
    Running,
    Waiting,
    Sleeping,
    Completed,
    Failed,
    Cancelled,
    Skipped,
}

/// A replay to start: stored events of a range, or events given inline.
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaySpec {
    /// The function to replay.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$")]
    function: String,
    /// Received at or after (RFC 3339); the beginning if absent.
    #[schema(format = DateTime)]
    from: Option<String>,
    /// Received before (RFC 3339); now if absent.
    #[schema(format = DateTime)]
    to: Option<String>,
    /// The original runs' outcomes taken; `skipped`: events of a trigger's name that
    /// started no run.
    status: Option<Vec<ReplayOutcome>>,
    /// The version to run; as the current rollout decides if absent.
    #[schema(minimum = 1)]
    version: Option<u64>,
    /// `run` (the default) or `dry_run`.
    #[schema(nullable = false)]
    mode: Option<ReplayMode>,
    /// Events per second (default 100).
    #[schema(minimum = 1, maximum = 10000)]
    rate: Option<u32>,
    /// Events given inline instead of a range (stored, not matched to triggers).
    events: Option<Vec<EventIn>>,
}

/// A replay just started.
#[derive(ToSchema, Serialize)]
pub struct ReplayCreated {
    id: String,
    /// Events selected.
    total: u64,
    status: ReplayStatus,
}

/// Where a replay stands.
#[derive(ToSchema, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayStatus {
    Running,
    Completed,
    Cancelled,
}

/// What a replay selected.
#[derive(ToSchema, Serialize)]
pub struct Selection {
    /// Range start (ms since epoch), inclusive.
    from: i64,
    /// Range end (ms since epoch), exclusive.
    to: i64,
    /// Original run statuses taken (empty: every run).
    statuses: Vec<RunStatus>,
    /// Whether events that started no run are taken.
    skipped: bool,
}

/// How a dry run's runs compare with the originals.
#[derive(ToSchema, Serialize)]
pub struct DryCounts {
    identical: u64,
    changed: u64,
    new_failures: u64,
    fixed: u64,
    without_original: u64,
    unfinished: u64,
}

/// A step whose output differs between the original run and the dry run.
#[derive(ToSchema, Serialize)]
pub struct Difference {
    event_id: String,
    run_id: String,
    step: String,
    /// `{"status", "output"}` of the original step (`null` if none).
    before: Value,
    /// `{"status", "output", "error"}` of the dry run's step (`null` if none).
    after: Value,
}

/// A replay and how far it has got.
#[derive(ToSchema, Serialize)]
pub struct Replay {
    id: String,
    function_id: String,
    /// `null`: as the rollout decides at each event.
    #[schema(required = true)]
    version: Option<u64>,
    mode: ReplayMode,
    /// Events per second.
    rate: u32,
    /// Absent for inline events.
    #[schema(nullable = false)]
    selection: Option<Selection>,
    /// `range` or `inline`.
    source: String,
    status: ReplayStatus,
    total: u64,
    done: u64,
    runs_started: u64,
    /// Dry runs only.
    #[schema(nullable = false)]
    result: Option<DryCounts>,
    /// Dry runs only: the first 100 differences.
    #[schema(nullable = false)]
    differences: Option<Vec<Difference>>,
    created_at: i64,
    #[schema(required = true)]
    ended_at: Option<i64>,
}

/// A page of replays, newest first.
#[derive(ToSchema, Serialize)]
pub struct ReplayPage {
    data: Vec<Replay>,
    #[schema(required = true)]
    next_cursor: Option<String>,
}

// ---- users (`super::users`) ----

/// A user (`event.user.id`) by activity.
#[derive(ToSchema, Serialize)]
pub struct User {
    id: String,
    /// When weir last stored an event of the user (ms since epoch).
    last_seen: i64,
    events: u64,
    runs: RunCounts,
}

/// A page of users, most recently active first.
#[derive(ToSchema, Serialize)]
pub struct UserPage {
    data: Vec<User>,
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// A parked step of a waiting run.
#[derive(ToSchema, Serialize)]
pub struct ParkedStep {
    status: StepStatus,
    #[schema(nullable = false)]
    wake_at: Option<i64>,
    #[schema(nullable = false)]
    awaiting: Option<Vec<Awaiting>>,
}

/// A run sleeping or waiting now.
#[derive(ToSchema, Serialize)]
pub struct WaitingRun {
    id: String,
    function_id: String,
    status: RunStatus,
    /// Each parked step.
    steps: BTreeMap<String, ParkedStep>,
}

/// A failed run.
#[derive(ToSchema, Serialize)]
pub struct FailedRun {
    id: String,
    function_id: String,
    #[schema(required = true)]
    ended_at: Option<i64>,
    /// The step that failed.
    #[schema(required = true)]
    step: Option<String>,
    #[schema(required = true)]
    error: Option<String>,
}

/// One user: counts, the latest `user` object, what they wait on, what failed.
#[derive(ToSchema, Serialize)]
pub struct UserDetail {
    #[serde(flatten)]
    summary: User,
    /// The latest `user` object seen (`null` once erased, until the next event).
    #[schema(required = true)]
    user: Option<Map<String, Value>>,
    #[schema(required = true)]
    erased_at: Option<i64>,
    waiting: Vec<WaitingRun>,
    failed: Vec<FailedRun>,
}

/// A run in a user's timeline.
#[derive(ToSchema, Serialize)]
pub struct TimelineRun {
    id: String,
    function_id: String,
    function_version: u64,
    status: RunStatus,
    event_id: String,
    created_at: i64,
    #[schema(required = true)]
    ended_at: Option<i64>,
}

/// An entry of a user's timeline: an event (as `GET /v1/events/{id}`) or a run.
#[derive(ToSchema, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TimelineItem {
    Event(StoredEvent),
    Run(TimelineRun),
}

/// A page of a user's timeline, newest first.
#[derive(ToSchema, Serialize)]
pub struct TimelinePage {
    data: Vec<TimelineItem>,
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// What an erasure removed.
#[derive(ToSchema, Serialize)]
pub struct UserErasure {
    id: String,
    /// Events whose payloads were removed.
    events: u64,
    /// Runs whose payloads were removed.
    runs: u64,
    /// Unfinished runs cancelled first.
    cancelled: u64,
    erased_at: i64,
}

// ---- the rest ----

/// A browser session was opened.
#[derive(ToSchema, Serialize)]
pub struct Session {
    /// The tenant of the key.
    tenant: String,
    /// How long the cookie lasts.
    expires_in_s: u64,
}

/// The session was ended.
#[derive(ToSchema, Serialize)]
pub struct LoggedOut {
    logged_out: bool,
}

/// Liveness.
#[derive(ToSchema, Serialize)]
pub struct Health {
    /// Always `ok`.
    status: String,
    /// weir's version.
    version: String,
}
