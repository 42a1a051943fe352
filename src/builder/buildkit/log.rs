//! Parser for BuildKit's `--progress=rawjson` stream: `docker buildx build` (buildx 0.13 with the
//! BuildKit in Docker 26.1) and `buildctl build` (BuildKit v0.34.2, against a standalone buildkitd),
//! as captured in tests/fixtures/builder_log/buildkit/.
//!
//! Both print one `SolveStatus` per update; a vertex comes back in later objects as it starts,
//! finishes, restarts or hits the cache, so vertexes are merged by digest. buildx pretty-prints each
//! object over several lines and ends a failed build with `ERROR: ...`:
//!
//! ```text
//! {
//!   "vertexes": [
//!     {
//!       "digest": "sha256:b1f81ac4aa94...",
//!       "inputs": ["sha256:f18d520fdd33..."],
//!       "name": "[builder 2/4] RUN mkdir -p /out \u0026\u0026 echo built \u003e /out/a",
//!       "started": "2026-12-02T10:14:22.588742737Z",
//!       "completed": "2026-12-02T10:14:25.665932373Z",    <- absent while it runs
//!       "cached": true,                                   <- only when the cache served it
//!       "error": "process \"/bin/sh -c ...\" did not complete successfully: exit code: 3"
//!     }
//!   ],
//!   "statuses": [{"id": "pushing layers", "vertex": "sha256:e8b3...", "started": "...", "completed": "..."}],
//!   "logs": [{"vertex": "sha256:...", "stream": 1, "data": "base64...", "timestamp": "..."}]
//! }
//! ERROR: failed to solve: process "/bin/sh -c echo about to fail && exit 3" did not complete successfully: exit code: 3
//! ```
//!
//! buildctl writes the same objects compact, one per line, and ends a failed build with the
//! Dockerfile excerpt and `error: failed to solve: ...` (exit code 1):
//!
//! ```text
//! {"vertexes":[{"digest":"sha256:3789...","inputs":["sha256:..."],"name":"[stage-1 5/5] RUN echo about to fail \u0026\u0026 exit 3","started":"...","completed":"...","error":"process ..."}]}
//! error: failed to solve: process "/bin/sh -c echo about to fail && exit 3" did not complete successfully: exit code: 3
//! ```
//!
//! Where they differ in what BuildKit reports: buildctl's image exporter pushes itself (statuses
//! `pushing layers` and `pushing manifest for ...` inside `exporting to image`; there is no
//! `pushing ... with docker` vertex), and BuildKit v0.34 runs that push and `exporting cache to
//! registry` at the same time (`buildctl_cold.log`), where buildx 0.13 ran them one after the other.
//!
//! A step vertex is named `[STAGE k/M] INSTRUCTION`: STAGE is the `AS` name, `stage-N` for the N-th
//! (0-based) stage without one, absent in a single-stage Dockerfile; `k/M` counts the stage's
//! instructions that run a vertex (`Instruction::runs_vertex`). Stages with the same `FROM` share one
//! vertex, named after any one of them (`registry_cold.log`: `[builder 1/4]`, `registry_warm.log`:
//! `[stage-1 1/5]`, same digest); it is reported as the first of those stages' `FROM`.
//!
//! Times are BuildKit's own: a step lasts from its vertex's first start to its last completion
//! (a cached step that runs again during the export, to pull its layer, includes that), and
//! `started_ms` counts from the earliest vertex start in the log. The times given to `push_line`
//! are not used. [`BuildkitParser::phases`] gives each kind of work its own time (kinds may
//! overlap); `LogParser::phases` gives cache import, push and cache export without overlap.

use std::collections::HashMap;

use serde::Deserialize;

use crate::builder::log::{lines, LogParser, ParsedStep};
use crate::dockerfile::{Dockerfile, StageBase};
use crate::Millis;

/// Nanoseconds since the Unix epoch, on BuildKit's clock.
type UnixNanos = i64;

const NANOS_PER_MS: i64 = 1_000_000;

/// This builder's log parser, as a job command names it.
pub fn parser(dockerfile: &Dockerfile) -> Box<dyn LogParser> {
    Box::new(BuildkitParser::new(dockerfile))
}

pub struct BuildkitParser {
    stages: Vec<StageSteps>,
    vertexes: Vec<Vertex>,
    by_digest: HashMap<String, usize>,
    /// Statuses that belong to another phase than their vertex (a push inside `exporting to image`).
    statuses: Vec<StatusSpan>,
    by_status: HashMap<(usize, String), usize>,
    /// One per started step vertex, kept current for `current()`.
    steps: Vec<ParsedStep>,
    /// Vertexes of started steps that have not completed since their last start.
    running: Vec<usize>,
    earliest_start: Option<UnixNanos>,
    error: Option<String>,
    object: ObjectScanner,
}

/// A stage's instructions that BuildKit runs a vertex for, as global step numbers, in order.
struct StageSteps {
    name: Option<String>,
    steps: Vec<u32>,
}

struct Vertex {
    name: String,
    kind: Kind,
    first_started: Option<UnixNanos>,
    last_started: Option<UnixNanos>,
    last_completed: Option<UnixNanos>,
    cached: bool,
    error: Option<String>,
    /// Index in `steps`, once the step has started.
    parsed: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// A `[STAGE k/M]` vertex, with its Dockerfile step number when the Dockerfile places it.
    Step(Option<u32>),
    Phase(Phase),
}

/// What a vertex was doing; `Steps` are the `[STAGE k/M]` vertexes, the others BuildKit's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Context,
    CacheImport,
    CacheExport,
    Export,
    Push,
    Steps,
    Other,
}

const PHASES: usize = Phase::Other as usize + 1;

struct StatusSpan {
    vertex: usize,
    phase: Phase,
    first_started: Option<UnixNanos>,
    last_completed: Option<UnixNanos>,
}

/// Time BuildKit spent on one kind of work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhaseTime {
    /// Length of the union of the vertexes' `[started, completed]` spans: parallel vertexes count once.
    pub duration_ms: Millis,
    /// Vertexes of this kind that started and completed.
    pub vertexes: usize,
    /// Statuses of this kind inside another kind's vertex that started and completed (buildctl's
    /// `pushing layers` inside `exporting to image`).
    pub statuses: usize,
}

/// BuildKit's own vertexes, grouped by what they did. Each rule names the capture it comes from
/// (tests/fixtures/builder_log/buildkit/).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildkitPhases {
    /// `[internal] load build definition from Dockerfile`, `[internal] load .dockerignore`,
    /// `[internal] load build context`, `[internal] load metadata for docker.io/library/python:3.11-slim`
    /// (every capture); `resolve image config for …` (BuildKit's name when it resolves a `# syntax=`
    /// frontend; not in the captures).
    pub context: PhaseTime,
    /// `importing cache manifest from registry:5000/t:buildcache` (`registry_*.log`,
    /// `inline_*.log`, with `--cache-from`; `buildctl_cold.log`, `buildctl_warm_registry.log`,
    /// with `--import-cache`, where a found one has the status `inferred cache manifest type: …`). The cached layers themselves are pulled later, under
    /// the step vertexes that need them.
    pub cache_import: PhaseTime,
    /// `exporting cache to registry` with its statuses `preparing build cache for export`,
    /// `writing layer sha256:…`, `writing config sha256:…`, `writing cache manifest sha256:…`
    /// (`registry_*.log`; BuildKit v0.34 adds `sending cache export` and writes a `cache image
    /// manifest`: `buildctl_cold.log`, `buildctl_warm_registry.log`); also the status `preparing
    /// layers for inline cache` inside `exporting to image` (`inline_*.log`).
    pub cache_export: PhaseTime,
    /// `exporting to image` with its statuses `exporting layers`, `exporting manifest …`,
    /// `exporting config …`, `naming to …`, `unpacking to …` (every capture), less the push and
    /// inline-cache statuses inside it.
    pub export: PhaseTime,
    /// `pushing registry:5000/t:latest with docker` (buildx's push through the engine), and the
    /// statuses `pushing layers` and `pushing manifest for …` inside `exporting to image`
    /// (`registry_*.log`, `inline_*.log`, `flask_cold.log`: with the containerd image store the
    /// exporter pushes itself; `buildctl_*.log`: buildctl has only these, one `pushing manifest
    /// for` per name, while `exporting cache to registry` runs).
    pub push: PhaseTime,
    /// The `[STAGE k/M]` vertexes, Dockerfile steps (placed or not).
    pub steps: PhaseTime,
    /// Every other vertex; `other_names` says which.
    pub other: PhaseTime,
    pub other_names: Vec<String>,
    /// Step vertexes the Dockerfile could not place (a different Dockerfile, `ONBUILD` triggers).
    pub unplaced_steps: Vec<String>,
    /// Errors of cache-import vertexes. BuildKit builds on without the cache: a first build gets
    /// `failed to configure registry cache importer: registry:5000/t:buildcache: not found`.
    pub cache_import_errors: Vec<String>,
    /// The first vertex start and the last vertex completion, ms since the Unix epoch on BuildKit's clock.
    pub first_started_unix_ms: Option<Millis>,
    pub last_completed_unix_ms: Option<Millis>,
}

/// One `SolveStatus` object; `logs` and `warnings` are not needed.
#[derive(Deserialize)]
struct SolveStatus {
    #[serde(default)]
    vertexes: Vec<VertexUpdate>,
    #[serde(default)]
    statuses: Vec<StatusUpdate>,
}

#[derive(Deserialize)]
struct VertexUpdate {
    digest: String,
    #[serde(default)]
    name: String,
    started: Option<String>,
    completed: Option<String>,
    #[serde(default)]
    cached: bool,
    error: Option<String>,
}

#[derive(Deserialize)]
struct StatusUpdate {
    id: String,
    vertex: String,
    started: Option<String>,
    completed: Option<String>,
}

impl BuildkitParser {
    pub fn new(dockerfile: &Dockerfile) -> Self {
        BuildkitParser {
            stages: stage_steps(dockerfile),
            vertexes: vec![],
            by_digest: HashMap::new(),
            statuses: vec![],
            by_status: HashMap::new(),
            steps: vec![],
            running: vec![],
            earliest_start: None,
            error: None,
            object: ObjectScanner::default(),
        }
    }

    fn line(&mut self, line: &str) {
        let mut rest = line;
        if self.object.is_open() && !continues_object(line) {
            // An object cut short (the stream was truncated) is dropped; this line is read afresh.
            self.object.reset();
        }
        loop {
            if !self.object.is_open() {
                let trimmed = rest.trim_start();
                if !trimmed.starts_with('{') {
                    // buildx's `ERROR: ...`, buildctl's `error: ...`.
                    if let Some(message) = rest.strip_prefix("ERROR: ").or_else(|| rest.strip_prefix("error: ")) {
                        self.set_error(message);
                    }
                    return;
                }
                rest = trimmed;
            }
            let Some(end) = self.object.feed(rest) else { return };
            // An object that does not parse (a cut-off line glued to the next) is skipped.
            let status = serde_json::from_str::<SolveStatus>(&self.object.buffer);
            self.object.reset();
            if let Ok(status) = status {
                self.apply(status);
            }
            rest = &rest[end..];
            if rest.trim().is_empty() {
                return;
            }
        }
    }

    fn apply(&mut self, status: SolveStatus) {
        for update in status.vertexes {
            self.update_vertex(update);
        }
        for update in status.statuses {
            self.update_status(update);
        }
    }

    fn update_vertex(&mut self, update: VertexUpdate) {
        let index = match self.by_digest.get(&update.digest) {
            Some(&index) => index,
            None => {
                let kind = self.classify(&update.name);
                self.vertexes.push(Vertex {
                    name: update.name,
                    kind,
                    first_started: None,
                    last_started: None,
                    last_completed: None,
                    cached: false,
                    error: None,
                    parsed: None,
                });
                self.by_digest.insert(update.digest, self.vertexes.len() - 1);
                self.vertexes.len() - 1
            }
        };
        let started = update.started.as_deref().and_then(parse_time);
        keep_min(&mut self.earliest_start, started);
        let vertex = &mut self.vertexes[index];
        keep_min(&mut vertex.first_started, started);
        keep_max(&mut vertex.last_started, started);
        keep_max(&mut vertex.last_completed, update.completed.as_deref().and_then(parse_time));
        // A cached vertex may run again later without the flag (its layer pulled for the export).
        vertex.cached |= update.cached;
        let kind = vertex.kind;
        if let (None, Some(error)) = (&vertex.error, update.error.filter(|e| !e.is_empty())) {
            vertex.error = Some(error.clone());
            // A failed cache import is not the build's error: BuildKit builds without the cache.
            if kind != Kind::Phase(Phase::CacheImport) {
                self.set_error(&error);
            }
        }
        if let Kind::Step(Some(step)) = kind {
            self.refresh_step(index, step);
        }
    }

    fn update_status(&mut self, update: StatusUpdate) {
        let Some(&vertex) = self.by_digest.get(&update.vertex) else { return };
        let Some(phase) = status_phase(&update.id) else { return };
        if self.vertexes[vertex].kind == Kind::Phase(phase) {
            return;
        }
        let key = (vertex, update.id);
        let index = match self.by_status.get(&key) {
            Some(&index) => index,
            None => {
                self.statuses.push(StatusSpan { vertex, phase, first_started: None, last_completed: None });
                self.by_status.insert(key, self.statuses.len() - 1);
                self.statuses.len() - 1
            }
        };
        let span = &mut self.statuses[index];
        keep_min(&mut span.first_started, update.started.as_deref().and_then(parse_time));
        keep_max(&mut span.last_completed, update.completed.as_deref().and_then(parse_time));
    }

    fn set_error(&mut self, message: &str) {
        if self.error.is_none() {
            self.error = Some(message.trim().to_string());
        }
    }

    /// Brings the vertex's `ParsedStep` up to date, creating it when the step first starts.
    fn refresh_step(&mut self, index: usize, step: u32) {
        let vertex = &self.vertexes[index];
        let Some(started) = vertex.first_started else { return };
        let running = vertex.is_running();
        let parsed = match vertex.parsed {
            Some(p) => &mut self.steps[p],
            None => {
                self.steps.push(ParsedStep {
                    step,
                    instruction: step_instruction(&vertex.name).to_string(),
                    cached: false,
                    started_ms: 0,
                    duration_ms: None,
                    error: None,
                });
                self.vertexes[index].parsed = Some(self.steps.len() - 1);
                self.steps.last_mut().expect("just pushed")
            }
        };
        let vertex = &self.vertexes[index];
        parsed.cached = vertex.cached;
        // `earliest_start` is the minimum of every start seen, this one included: never after it.
        parsed.started_ms = ms_between(self.earliest_start.unwrap_or(started), started).expect("earliest start comes first");
        parsed.duration_ms = vertex.duration_ms();
        if parsed.error.is_none() {
            parsed.error.clone_from(&vertex.error);
        }
        let listed = self.running.iter().position(|&i| i == index);
        match (running, listed) {
            (true, None) => self.running.push(index),
            (false, Some(at)) => {
                self.running.remove(at);
            }
            _ => {}
        }
    }

    fn classify(&self, name: &str) -> Kind {
        match parse_step_name(name) {
            Some(step) => Kind::Step(self.place(&step)),
            None => Kind::Phase(vertex_phase(name)),
        }
    }

    /// The Dockerfile step a `[STAGE k/M]` vertex is, when the stage exists and has M vertex steps.
    fn place(&self, name: &StepName) -> Option<u32> {
        if name.onbuild {
            return None;
        }
        let stage = match name.stage {
            Some(label) => self
                .stages
                .iter()
                .position(|s| s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(label)))
                .or_else(|| label.strip_prefix("stage-").and_then(|n| n.parse().ok()))?,
            None if self.stages.len() == 1 => 0,
            None => return None,
        };
        let steps = &self.stages.get(stage)?.steps;
        if steps.len() != name.total as usize {
            return None;
        }
        steps.get(name.index.checked_sub(1)? as usize).copied()
    }

    /// Time per kind of work, from the vertexes seen so far.
    pub fn phases(&self) -> BuildkitPhases {
        let mut phases = BuildkitPhases::default();
        for vertex in &self.vertexes {
            if vertex.first_started.is_some() {
                match vertex.kind {
                    Kind::Step(None) => phases.unplaced_steps.push(vertex.name.clone()),
                    Kind::Phase(Phase::Other) => phases.other_names.push(vertex.name.clone()),
                    _ => {}
                }
            }
            if vertex.phase() == Phase::CacheImport {
                phases.cache_import_errors.extend(vertex.error.clone());
            }
            keep_max(&mut phases.last_completed_unix_ms, vertex.last_completed.map(to_ms));
        }
        phases.first_started_unix_ms = self.earliest_start.map(to_ms);
        let spans = self.phase_spans();
        let time = |phase: Phase| {
            let PhaseSpans { spans, vertexes, statuses } = &spans[phase as usize];
            PhaseTime { duration_ms: to_ms(total(spans)), vertexes: *vertexes, statuses: *statuses }
        };
        BuildkitPhases {
            context: time(Phase::Context),
            cache_import: time(Phase::CacheImport),
            cache_export: time(Phase::CacheExport),
            export: time(Phase::Export),
            push: time(Phase::Push),
            steps: time(Phase::Steps),
            other: time(Phase::Other),
            ..phases
        }
    }

    /// Per phase: the spans of its vertexes and statuses less those its vertexes' statuses of
    /// another phase take out of them (merged), and how many of each completed.
    fn phase_spans(&self) -> [PhaseSpans; PHASES] {
        let mut own: [Vec<Span>; PHASES] = Default::default();
        let mut taken: [Vec<Span>; PHASES] = Default::default();
        let mut out: [PhaseSpans; PHASES] = Default::default();
        for vertex in &self.vertexes {
            if let Some(span) = vertex.span() {
                out[vertex.phase() as usize].vertexes += 1;
                own[vertex.phase() as usize].push(span);
            }
        }
        for status in &self.statuses {
            let (Some(start), Some(end)) = (status.first_started, status.last_completed) else { continue };
            if end >= start {
                out[status.phase as usize].statuses += 1;
                own[status.phase as usize].push((start, end));
                taken[self.vertexes[status.vertex].phase() as usize].push((start, end));
            }
        }
        for ((own, taken), out) in own.iter_mut().zip(taken.iter_mut()).zip(out.iter_mut()) {
            merge(own);
            merge(taken);
            out.spans = subtract(own, taken);
        }
        out
    }
}

#[derive(Default)]
struct PhaseSpans {
    spans: Vec<Span>,
    vertexes: usize,
    statuses: usize,
}

impl Vertex {
    fn phase(&self) -> Phase {
        match self.kind {
            Kind::Step(_) => Phase::Steps,
            Kind::Phase(phase) => phase,
        }
    }

    /// Started and not completed since its last start, and not failed.
    fn is_running(&self) -> bool {
        self.error.is_none()
            && match (self.last_started, self.last_completed) {
                (Some(started), Some(completed)) => started > completed,
                (Some(_), None) => true,
                (None, _) => false,
            }
    }

    /// First start to last completion; `None` while it runs, or when BuildKit's times go backwards.
    fn span(&self) -> Option<Span> {
        let (started, completed) = (self.first_started?, self.last_completed?);
        (completed >= started && completed >= self.last_started?).then_some((started, completed))
    }

    fn duration_ms(&self) -> Option<Millis> {
        self.span().and_then(|(started, completed)| ms_between(started, completed))
    }
}

/// For each stage, the global numbers of the instructions BuildKit counts in `k/M`. Its `FROM`
/// counts unless it is `scratch` or an earlier stage (dockerfile2llb's `cmdTotal`). A `FROM` the
/// same as an earlier stage's is the same vertex, reported as that earlier stage's step.
fn stage_steps(dockerfile: &Dockerfile) -> Vec<StageSteps> {
    let mut out: Vec<StageSteps> = vec![];
    let mut froms: Vec<(String, u32)> = vec![];
    // BuildKit substitutes the global ARGs into a FROM before it makes the vertex: `FROM ${PY}` and
    // `FROM python:3.11-slim` are one vertex when PY's default names that image.
    let global = dockerfile.global_vars();
    for stage in &dockerfile.stages {
        let from_runs = matches!(dockerfile.stage_base(stage), StageBase::Image(_));
        let mut steps = vec![];
        for (position, instruction) in stage.instructions.iter().enumerate() {
            if position == 0 {
                if from_runs {
                    let key = from_key(&global.substitute(&instruction.text));
                    let step = match froms.iter().find(|(k, _)| *k == key) {
                        Some((_, first)) => *first,
                        None => {
                            froms.push((key, instruction.step));
                            instruction.step
                        }
                    };
                    steps.push(step);
                }
            } else if instruction.runs_vertex() {
                steps.push(instruction.step);
            }
        }
        out.push(StageSteps { name: stage.name.clone(), steps });
    }
    out
}

/// `FROM [flags] IMAGE` without its `AS name`, which does not change the vertex.
fn from_key(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().skip(1).collect();
    let end = match words.len() {
        n if n >= 2 && words[n - 2].eq_ignore_ascii_case("as") => n - 2,
        n => n,
    };
    words[..end].join(" ")
}

#[derive(Debug, PartialEq)]
struct StepName<'a> {
    stage: Option<&'a str>,
    index: u32,
    total: u32,
    onbuild: bool,
}

/// `[builder 2/4] RUN ...`, `[stage-1  3/12] COPY ...` (k padded to M's width), `[2/4] RUN ...`,
/// `[linux/amd64 builder 2/4] ...` (multi-platform). `[internal] ...` is not a step.
fn parse_step_name(name: &str) -> Option<StepName<'_>> {
    let (inside, rest) = name.strip_prefix('[')?.split_once("] ")?;
    let mut words: Vec<&str> = inside.split_whitespace().collect();
    let (index, total) = words.pop()?.split_once('/')?;
    let (index, total) = (crate::builder::log::parse_number(index)?, crate::builder::log::parse_number(total)?);
    // A platform has a `/`; a stage name cannot.
    words.retain(|w| !w.contains('/'));
    let stage = match words.as_slice() {
        [] => None,
        [stage] => Some(*stage),
        _ => return None,
    };
    Some(StepName { stage, index, total, onbuild: rest.starts_with("ONBUILD ") })
}

/// The instruction after `[STAGE k/M] `.
fn step_instruction(name: &str) -> &str {
    name.split_once("] ").map_or(name, |(_, rest)| rest)
}

fn vertex_phase(name: &str) -> Phase {
    let internal = name.strip_prefix('[').and_then(|n| n.split_once("] ")).and_then(|(inside, rest)| {
        (inside.split_whitespace().last() == Some("internal")).then_some(rest)
    });
    if let Some(rest) = internal {
        let context = ["load build definition from ", "load .dockerignore", "load build context", "load metadata for "];
        return if context.iter().any(|p| rest.starts_with(p)) { Phase::Context } else { Phase::Other };
    }
    let rules: [(&[&str], Phase); 5] = [
        (&["resolve image config for "], Phase::Context),
        (&["importing cache manifest from "], Phase::CacheImport),
        (&["exporting cache to ", "preparing build cache for export"], Phase::CacheExport),
        (&["exporting to ", "exporting layers", "writing image", "naming to "], Phase::Export),
        (&["pushing "], Phase::Push),
    ];
    rules
        .iter()
        .find(|(prefixes, _)| prefixes.iter().any(|p| name.starts_with(p)))
        .map_or(Phase::Other, |(_, phase)| *phase)
}

/// The phase of a status that is not its vertex's (`None`: it stays in its vertex's phase).
fn status_phase(id: &str) -> Option<Phase> {
    if id == "pushing layers" || id.starts_with("pushing manifest for ") || id.starts_with("pushing layer ") {
        Some(Phase::Push)
    } else if id == "preparing layers for inline cache" {
        Some(Phase::CacheExport)
    } else {
        None
    }
}

/// A pretty-printed line goes on with the open object when it is indented or closes it; anything
/// at column 0 (a new `{`, buildx's `ERROR: ...`, buildctl's `error: ...`) means the object was cut short.
fn continues_object(line: &str) -> bool {
    line.is_empty() || line.starts_with([' ', '\t', '}', ']', '\r'])
}

/// Collects the lines of one JSON object until its braces balance.
#[derive(Default)]
struct ObjectScanner {
    buffer: String,
    depth: u32,
    in_string: bool,
    escaped: bool,
}

impl ObjectScanner {
    fn is_open(&self) -> bool {
        self.depth > 0
    }

    fn reset(&mut self) {
        self.buffer.clear();
        self.depth = 0;
        self.in_string = false;
        self.escaped = false;
    }

    /// Adds `text` to `buffer`; when that closes the object, returns where in `text` it closed.
    fn feed(&mut self, text: &str) -> Option<usize> {
        for (at, byte) in text.bytes().enumerate() {
            if self.in_string {
                match byte {
                    _ if self.escaped => self.escaped = false,
                    b'\\' => self.escaped = true,
                    b'"' => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match byte {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        self.buffer.push_str(&text[..=at]);
                        return Some(at + 1);
                    }
                }
                _ => {}
            }
        }
        self.buffer.push_str(text);
        self.buffer.push('\n');
        None
    }
}

type Span = (UnixNanos, UnixNanos);

fn keep_min<T: Ord + Copy>(slot: &mut Option<T>, value: Option<T>) {
    if let Some(value) = value {
        *slot = Some(slot.map_or(value, |old| old.min(value)));
    }
}

fn keep_max<T: Ord + Copy>(slot: &mut Option<T>, value: Option<T>) {
    if let Some(value) = value {
        *slot = Some(slot.map_or(value, |old| old.max(value)));
    }
}

fn parse_time(stamp: &str) -> Option<UnixNanos> {
    chrono::DateTime::parse_from_rfc3339(stamp).ok()?.timestamp_nanos_opt()
}

/// Whole ms of a length that cannot be negative (a difference checked by the caller, or a union
/// of spans); a negative one would be a bug, never a measured 0.
fn to_ms(nanos: i64) -> Millis {
    debug_assert!(nanos >= 0, "negative length {nanos} ns");
    u64::try_from(nanos / NANOS_PER_MS).expect("lengths are never negative")
}

fn ms_between(from: UnixNanos, to: UnixNanos) -> Option<Millis> {
    (to >= from).then(|| to_ms(to - from))
}

/// Sorts and joins overlapping or touching spans.
fn merge(spans: &mut Vec<Span>) {
    spans.sort_unstable();
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for &(start, end) in spans.iter() {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    *spans = merged;
}

/// `a` without `b`; both merged.
fn subtract(a: &[Span], b: &[Span]) -> Vec<Span> {
    let mut out = vec![];
    for &(mut start, end) in a {
        for &(cut_start, cut_end) in b {
            if cut_end <= start || cut_start >= end {
                continue;
            }
            if cut_start > start {
                out.push((start, cut_start));
            }
            start = start.max(cut_end);
        }
        if start < end {
            out.push((start, end));
        }
    }
    out
}

fn total(spans: &[Span]) -> i64 {
    spans.iter().map(|(start, end)| end - start).sum()
}

impl LogParser for BuildkitParser {
    fn push_line(&mut self, _at_ms: Millis, chunk: &str) {
        for line in lines(chunk) {
            self.line(line);
        }
    }
    fn current(&self) -> Option<&ParsedStep> {
        let latest = self.running.iter().max_by_key(|&&i| self.vertexes[i].last_started)?;
        self.steps.get(self.vertexes[*latest].parsed?)
    }
    fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
    /// Steps in Dockerfile order. A step still running has no duration; a cut-off last object is dropped.
    /// Cache import, push and cache export as BuildKit timed them (only phases it reported a vertex
    /// or a status for), without overlap: the harness takes them out of the build command's time, so
    /// a moment two of them share counts once, for the first of them in that order. BuildKit v0.34
    /// pushes the image while it exports the cache; the push happens in every strategy, so the
    /// cache export is charged only the time it runs alone.
    fn phases(&self) -> Vec<(crate::strategy::Phase, Millis)> {
        use crate::strategy::Phase as P;
        let spans = self.phase_spans();
        let mut claimed: Vec<Span> = vec![];
        let mut alone = [None; PHASES];
        for phase in [Phase::CacheImport, Phase::Push, Phase::CacheExport] {
            let PhaseSpans { spans, vertexes, statuses } = &spans[phase as usize];
            if vertexes + statuses == 0 {
                continue;
            }
            let left = subtract(spans, &claimed);
            alone[phase as usize] = Some(to_ms(total(&left)));
            claimed.extend(left);
            merge(&mut claimed);
        }
        [(P::CacheImport, Phase::CacheImport), (P::CacheExport, Phase::CacheExport), (P::Push, Phase::Push)]
            .into_iter()
            .filter_map(|(reported, phase)| Some((reported, alone[phase as usize]?)))
            .collect()
    }

    fn finish(&mut self, _end_ms: Millis) -> Vec<ParsedStep> {
        self.object.reset();
        for index in 0..self.vertexes.len() {
            if let Kind::Step(Some(step)) = self.vertexes[index].kind {
                self.refresh_step(index, step);
            }
        }
        self.running.clear();
        let mut steps = self.steps.clone();
        steps.sort_by_key(|s| s.step);
        steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_names_with_and_without_stage_or_padding() {
        let name = |stage, index, total| Some(StepName { stage, index, total, onbuild: false });
        assert_eq!(parse_step_name("[builder 2/4] RUN x"), name(Some("builder"), 2, 4));
        assert_eq!(parse_step_name("[stage-1  3/12] COPY a b"), name(Some("stage-1"), 3, 12));
        assert_eq!(parse_step_name("[2/4] RUN x"), name(None, 2, 4));
        assert_eq!(parse_step_name("[linux/amd64 builder 2/4] RUN x"), name(Some("builder"), 2, 4));
        assert_eq!(parse_step_name("[internal] load build context"), None);
        assert_eq!(parse_step_name("[a b 1/2] RUN x"), None);
        assert_eq!(parse_step_name("exporting to image"), None);
        assert!(parse_step_name("[b 1/1] ONBUILD RUN x").unwrap().onbuild);
    }

    #[test]
    fn every_vertex_name_of_the_captures_has_a_phase() {
        let cases = [
            ("[internal] load build definition from Dockerfile", Phase::Context),
            ("[internal] load .dockerignore", Phase::Context),
            ("[internal] load build context", Phase::Context),
            ("[internal] load metadata for docker.io/library/python:3.11-slim", Phase::Context),
            ("[linux/arm64 internal] load metadata for docker.io/library/python:3.11-slim", Phase::Context),
            ("importing cache manifest from registry:5000/t:buildcache", Phase::CacheImport),
            ("exporting cache to registry", Phase::CacheExport),
            ("exporting to image", Phase::Export),
            ("pushing registry:5000/t:latest with docker", Phase::Push),
            ("[internal] helper image for file operations", Phase::Other),
            ("something new", Phase::Other),
            // buildctl (BuildKit v0.34.2)
            ("[internal] load build definition from Dockerfile.failing", Phase::Context),
            ("importing cache manifest from registry:5000/s/app:buildcache", Phase::CacheImport),
        ];
        for (name, phase) in cases {
            assert_eq!(vertex_phase(name), phase, "{name}");
        }
    }

    #[test]
    fn statuses_of_another_phase_than_their_vertex() {
        let moved = [
            ("pushing layers", Some(Phase::Push)),
            ("pushing manifest for registry:5000/s/app:c1@sha256:a40024c8", Some(Phase::Push)),
            ("preparing layers for inline cache", Some(Phase::CacheExport)),
        ];
        // buildctl's statuses that stay in their vertex's phase: the FROM's, the cache import's and
        // the cache export's.
        let kept = [
            "resolve docker.io/library/python:3.11-slim@sha256:d14e1291",
            "extracting sha256:e4e6959caaf2",
            "inferred cache manifest type: application/vnd.oci.image.manifest.v1+json",
            "preparing build cache for export",
            "sending cache export",
            "writing layer sha256:14f817f12612",
            "writing config sha256:2cb8986f4896",
            "writing cache image manifest sha256:aac8aaab0f1e",
            "exporting layers",
        ];
        for (id, phase) in moved.into_iter().chain(kept.map(|id| (id, None))) {
            assert_eq!(status_phase(id), phase, "{id}");
        }
    }

    #[test]
    fn error_lines_of_buildx_and_buildctl_but_not_the_dockerfile_excerpt() {
        let dockerfile = Dockerfile::parse("FROM a\nRUN x\n").unwrap();
        for (text, error) in [
            ("ERROR: failed to solve: x", Some("failed to solve: x")),
            ("error: failed to solve: y", Some("failed to solve: y")),
            ("  10 | >>> RUN echo error: no", None),
            ("Dockerfile.failing:10", None),
        ] {
            let mut parser = BuildkitParser::new(&dockerfile);
            parser.push_line(0, text);
            assert_eq!(parser.error(), error, "{text}");
        }
    }

    #[test]
    fn stages_count_only_vertex_instructions_and_share_identical_froms() {
        let text = "FROM python:3.11-slim AS builder\nRUN a\nENV X=1\nCOPY b .\n\
                    FROM python:3.11-slim\nENV Y=2\nCOPY --from=builder /out /out\nWORKDIR /app\nCMD c\n\
                    FROM builder AS again\nRUN d\nFROM scratch\nCOPY e /\nFROM debian AS other\nADD f /\n";
        let stages = stage_steps(&Dockerfile::parse(text).unwrap());
        let steps: Vec<&[u32]> = stages.iter().map(|s| s.steps.as_slice()).collect();
        assert_eq!(steps, [&[1, 2, 4][..], &[1, 7, 8], &[11], &[13], &[14, 15]]);
        // An ARG-named FROM is the vertex of the image its default names.
        let named = stage_steps(&Dockerfile::parse("ARG PY=python:3.11-slim\nFROM ${PY} AS b\nRUN a\nFROM python:3.11-slim\nRUN c\n").unwrap());
        assert_eq!(named.iter().map(|s| s.steps.clone()).collect::<Vec<_>>(), [vec![2, 3], vec![2, 5]]);
    }

    #[test]
    fn span_arithmetic() {
        let mut spans = vec![(5, 8), (0, 2), (1, 3), (8, 9)];
        merge(&mut spans);
        assert_eq!(spans, [(0, 3), (5, 9)]);
        assert_eq!(subtract(&spans, &[(1, 2), (6, 7), (8, 20)]), [(0, 1), (2, 3), (5, 6), (7, 8)]);
        assert_eq!(total(&spans), 7);
    }

    #[test]
    fn scanner_ignores_braces_inside_strings() {
        let mut scanner = ObjectScanner::default();
        assert!(scanner.feed(r#"{"name": "RUN echo \"}\" {","#).is_none());
        let line = r#"}  {"x": 1}"#;
        let end = scanner.feed(line).unwrap();
        assert_eq!(scanner.buffer, "{\"name\": \"RUN echo \\\"}\\\" {\",\n}");
        assert_eq!(&line[end..], r#"  {"x": 1}"#);
    }
}
