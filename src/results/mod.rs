//! Typed records of what a run measured (one row = one observation) and their on-disk form.

pub mod data;
pub mod bill;
pub mod load;
mod writer;

pub use writer::{
    prepare_dir, read_cache, read_jobs, read_run_info, read_services, read_steps, ResultsError, ResultsWriter,
    CACHE_CSV, JOBS_CSV, RUN_JSON, SERVICES_CSV, STEPS_CSV,
};

use serde::{Deserialize, Serialize};

pub use crate::scenario::PipelineRunName;
use crate::strategy::{Phase, Strategy};
use crate::{Bytes, Millis};

/// Where a run's jobs ran: the value of every record's `backend` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The local Docker engine.
    Docker,
    /// A Kubernetes cluster.
    Kube,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Docker => "docker",
            BackendKind::Kube => "kube",
        }
    }
}

impl AsRef<str> for BackendKind {
    fn as_ref(&self) -> &str {
        self.name()
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// The level and lane of results written before levels existed.
fn one() -> u32 {
    1
}

fn levels_one() -> Vec<u32> {
    vec![1]
}

/// One Dockerfile step of one job, as the builder reported it (`steps.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub run_id: String,
    pub backend: BackendKind,
    pub iteration: u32,
    pub pipeline_run: PipelineRunName,
    pub strategy: Strategy,
    /// Stage name, or its 0-based index when the stage is unnamed.
    pub stage: String,
    /// 1-based position of the instruction in the whole Dockerfile.
    pub step: u32,
    pub total_steps: u32,
    pub instruction: String,
    /// Whether the builder said it served this step from its cache; empty when the builder ran
    /// nothing for it (BuildKit runs no vertex for `ENV`, `EXPOSE`, `CMD`, …).
    pub cached: Option<bool>,
    /// Wall time of the step from the builder's output times; empty when not measurable.
    pub duration_ms: Option<Millis>,
    /// What went into the step, whatever the builder: its instruction, the files it copies and the steps it
    /// builds on (`crate::inputs`), as 16 hex digits; empty in results written before it was recorded.
    #[serde(default)]
    pub input_key: Option<String>,
    /// Why the step missed (or `hit-despite-change` for a suspect hit; `crate::cause`); empty for a hit and
    /// for a step the builder ran nothing for.
    #[serde(default)]
    pub cause: Option<crate::cause::Cause>,
    /// The files or the instruction whose change made the step's own input differ from the strategy's
    /// last successful job; empty where nothing changed.
    #[serde(default)]
    pub changed: Option<String>,
    /// How many pipelines of the strategy ran at once (`crate::lanes`); 1 in results written before levels.
    #[serde(default = "one")]
    pub concurrency: u32,
    /// Which of them this is, 1-based.
    #[serde(default = "one")]
    pub lane: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Ok,
    Failed,
}

/// Why a failed job failed. Only `Build` says something about the strategy: an infrastructure failure
/// (engine, daemon, registry, timeout, clean-up) is not evidence that a strategy is slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureKind {
    /// The builder rejected the Dockerfile or a step failed.
    Build,
    /// Anything around the build: engine, daemon, registry, a timeout, removing the job's resources.
    Infrastructure,
}

impl FailureKind {
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Build => "build",
            FailureKind::Infrastructure => "infrastructure",
        }
    }
}

/// One CI job: one strategy running one pipeline run (`jobs.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub run_id: String,
    pub backend: BackendKind,
    pub iteration: u32,
    /// 0-based position of the pipeline run in the scenario's pipeline.
    pub pipeline_index: u32,
    pub pipeline_run: PipelineRunName,
    pub strategy: Strategy,
    pub status: JobStatus,
    /// Set exactly when the job failed.
    pub failure_kind: Option<FailureKind>,
    /// The first error in words (and, after it, any error removing the job's resources); empty when ok.
    pub error: Option<String>,
    pub started_at: String,
    /// The job on layerbench's clock, from start to end; the phases below add up to it.
    pub wall_ms: Millis,
    pub provision_ms: Option<Millis>,
    pub pull_ms: Option<Millis>,
    /// BuildKit importing a registry cache (`importing cache manifest from …`).
    pub cache_import_ms: Option<Millis>,
    pub build_ms: Option<Millis>,
    /// BuildKit exporting its cache (`exporting cache to registry`).
    pub cache_export_ms: Option<Millis>,
    pub push_ms: Option<Millis>,
    /// Removing the job's daemon, job container and volumes (a CI job's services go after it reported).
    pub teardown_ms: Option<Millis>,
    /// layerbench's own bookkeeping after the job: reading the registry's access log.
    pub measure_ms: Option<Millis>,
    /// Cacheable steps the builder reported as served from cache; empty when no builder output was seen.
    pub cached_steps: Option<u32>,
    /// Cacheable steps in the Dockerfile (`RUN`, `COPY`, `ADD`, `WORKDIR`): the ones every builder runs.
    pub total_steps: u32,
    pub image_bytes: Option<Bytes>,
    /// Bytes the registry served to this job (blob and manifest GETs).
    pub bytes_pulled: Option<Bytes>,
    /// Bytes this job uploaded to the registry.
    pub bytes_pushed: Option<Bytes>,
    /// The host's 1-minute load average when the job ended (`/proc/loadavg`), to tell a busy machine.
    pub host_load_1m: Option<f64>,
    /// Why a figure of this job is empty although the job went through, `; `-separated (a phase its
    /// builder did not time, a size the registry could not give); empty when every figure was measured.
    #[serde(default)]
    pub notes: Option<String>,
    /// CPU time, in ms, of everything the job ran: its job container, its own daemon, and its share of a
    /// shared daemon (that daemon's CPU time over the job's interval); empty when any part could not be read.
    #[serde(default)]
    pub cpu_ms: Option<Millis>,
    /// The sum of the peak working sets of the job's parts (its job container, its own daemon, and a shared
    /// daemon's highest over the job's interval), sampled every 250 ms (`crate::usage`); empty when any
    /// part could not be read.
    #[serde(default)]
    pub peak_memory_bytes: Option<Bytes>,
    /// Where the job ran: the engine's host name on docker, the pod's node on kube.
    #[serde(default)]
    pub node: Option<String>,
    /// How many pipelines of the strategy ran at once (`crate::lanes`); 1 in results written before levels.
    #[serde(default = "one")]
    pub concurrency: u32,
    /// Which of them this is, 1-based.
    #[serde(default = "one")]
    pub lane: u32,
}

impl JobRecord {
    /// The job's lane among the pipelines run at once.
    pub fn lane(&self) -> crate::lanes::Lane {
        crate::lanes::Lane { level: self.concurrency, lane: self.lane }
    }

    /// The time the job spent in `phase`; `None` when it never entered it.
    pub fn phase_ms(&self, phase: Phase) -> Option<Millis> {
        match phase {
            Phase::Provision => self.provision_ms,
            Phase::Pull => self.pull_ms,
            Phase::CacheImport => self.cache_import_ms,
            Phase::Build => self.build_ms,
            Phase::CacheExport => self.cache_export_ms,
            Phase::Push => self.push_ms,
            Phase::Teardown => self.teardown_ms,
            Phase::Measure => self.measure_ms,
        }
    }
}

/// State of a strategy's caches after a pipeline run (`cache.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheRecord {
    pub run_id: String,
    pub backend: BackendKind,
    pub iteration: u32,
    pub pipeline_run: PipelineRunName,
    pub strategy: Strategy,
    /// Blob bytes stored in the registry for this strategy's repositories.
    pub registry_bytes: Option<Bytes>,
    /// Size of the shared daemon's `/var/lib/docker` volume (shared-dind only).
    pub daemon_volume_bytes: Option<Bytes>,
    /// The level whose lanes had just run (`crate::lanes`).
    #[serde(default = "one")]
    pub concurrency: u32,
}

/// A long-lived service a strategy starts once per iteration (`services.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceRecord {
    pub run_id: String,
    pub backend: BackendKind,
    pub iteration: u32,
    pub strategy: Strategy,
    pub service: String,
    pub startup_ms: Millis,
    /// The level whose iteration it served (`crate::lanes`).
    #[serde(default = "one")]
    pub concurrency: u32,
    /// The service's CPU time over its iteration, every job it served included; empty when unmeasured.
    #[serde(default)]
    pub cpu_ms: Option<Millis>,
    /// Its highest working set over the iteration, sampled (see `crate::usage`); empty when unmeasured.
    #[serde(default)]
    pub peak_memory_bytes: Option<Bytes>,
}

/// Where a toolchain image came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageSource {
    /// Pulled from its registry, or already present under its official name.
    Official,
    /// Built by layerbench from Debian packages (and Go modules, see `built_from`) because the official
    /// image could not be pulled.
    LocalStandIn,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// base, dind, registry, buildah, kaniko, buildkit or job.
    pub role: String,
    pub name: String,
    pub source: ImageSource,
    pub id: Option<String>,
    /// A stand-in's programs built from Go modules: `MODULE@VERSION (go build, goX.Y.Z)`. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_from: Option<String>,
}

/// Where a base image the run served came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaseSource {
    /// Pulled from its registry by this run.
    Pulled,
    /// An image the engine already had: under the Dockerfile's name, or mapped with `--base-image NAME=LOCAL`.
    LocalImage,
    /// Layerbench's stand-in for the Python base (`--base-image`'s shorthand), built from Debian packages
    /// because the official image could not be pulled; or a mapped image that carries the stand-in label.
    LocalStandIn,
}

/// What a base image's `digest` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DigestKind {
    /// The manifest digest of the registry the image came from (the engine's `RepoDigests`).
    RegistryManifest,
    /// The local engine's image ID: the image came from no registry the engine remembers.
    ImageId,
}

/// How every builder of the run got a base image; the same path for all of them, so strategies stay comparable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaseServing {
    /// From the run's read-only mirror, which each builder is configured to use as its Docker Hub mirror.
    HubMirror,
    /// From the run's read-only mirror by name: the Dockerfile the builders get names the mirror in that
    /// `FROM` (images of other registries, and any image pinned by digest).
    RunMirror,
    /// From its own registry (kube with `--hub-mirror none`, or another registry's image with
    /// `--hub-mirror HOST:PORT`).
    Source,
}

/// A base image of the scenario's Dockerfiles, as the run resolved and served it (`run.json` `bases`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaseImageInfo {
    /// As the Dockerfile names it, its global `ARG` defaults substituted (`python:3.11-slim`).
    pub name: String,
    /// The `FROM`'s image as written, where that differs from `name` (`${PY}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written: Option<String>,
    /// `name` fully qualified (`docker.io/library/python:3.11-slim`).
    pub reference: String,
    /// The local image the run served under `name`.
    pub resolved: String,
    /// See `digest_kind`; empty when the engine reported neither.
    pub digest: Option<String>,
    pub digest_kind: Option<DigestKind>,
    pub source: BaseSource,
    pub served: BaseServing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    /// Logical CPUs layerbench may use; `None` (`null`) when they could not be counted.
    pub cpus: Option<u32>,
    pub memory_bytes: Option<Bytes>,
    pub os: String,
}

/// Everything about a run that is not a measurement (`run.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub run_id: String,
    pub backend: BackendKind,
    pub scenario: String,
    pub scenario_path: String,
    /// sha256 over the scenario file, its Dockerfile and its context.
    pub scenario_hash: String,
    pub layerbench_version: String,
    pub git_commit: Option<String>,
    pub engine_version: Option<String>,
    /// Builder name -> version, e.g. "dind" -> "20.10.24", "buildah" -> "1.28.2".
    pub builder_versions: std::collections::BTreeMap<String, String>,
    pub images: Vec<ImageInfo>,
    /// Every base image the scenario's Dockerfiles start `FROM`, as the run served it (empty in results
    /// written before bases were recorded).
    #[serde(default)]
    pub bases: Vec<BaseImageInfo>,
    pub strategies: Vec<Strategy>,
    pub pipeline: Vec<PipelineRunName>,
    pub iterations: u32,
    /// The concurrency levels run, in order (`[1]` in results written before levels).
    #[serde(default = "levels_one")]
    pub concurrency: Vec<u32>,
    /// Step table of the scenario's Dockerfile: (stage, step, instruction).
    pub steps: Vec<StepInfo>,
    pub host: HostInfo,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// True when the run was stopped before it finished (Ctrl-C or a fatal error).
    pub interrupted: bool,
    /// Privileges each strategy needed, as shown in the report.
    pub privileges: std::collections::BTreeMap<Strategy, String>,
    /// The scenario's `[workload]`: how the verdict weighs the pipeline runs and what the bill prices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<crate::workload::Workload>,
    /// Where a replayed history's pipeline came from, with the repository's change profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<crate::scenario::history::HistoryInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepInfo {
    pub stage: String,
    pub step: u32,
    pub instruction: String,
}
