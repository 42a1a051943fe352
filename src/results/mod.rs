//! Typed records of what a run measured (one row = one observation) and their on-disk form.

mod writer;

pub use writer::{
    read_cache, read_jobs, read_run_info, read_services, read_steps, ResultsError, ResultsWriter,
    CACHE_CSV, JOBS_CSV, RUN_JSON, SERVICES_CSV, STEPS_CSV,
};

use serde::{Deserialize, Serialize};

use crate::{Bytes, Millis};

/// One Dockerfile step of one job, as the builder reported it (`steps.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub run_id: String,
    pub backend: String,
    pub iteration: u32,
    pub pipeline_run: String,
    pub strategy: String,
    /// Stage name, or its 0-based index when the stage is unnamed.
    pub stage: String,
    /// 1-based position of the instruction in the whole Dockerfile.
    pub step: u32,
    pub total_steps: u32,
    pub instruction: String,
    /// Whether the builder said it served this step from its cache.
    pub cached: bool,
    /// Wall time of the step from the builder's output times; empty when not measurable.
    pub duration_ms: Option<Millis>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Ok,
    Failed,
}

/// One CI job: one strategy running one pipeline run (`jobs.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub run_id: String,
    pub backend: String,
    pub iteration: u32,
    /// 0-based position of the pipeline run in the scenario's pipeline.
    pub pipeline_index: u32,
    pub pipeline_run: String,
    pub strategy: String,
    pub status: JobStatus,
    /// Empty when the job succeeded.
    pub error: String,
    pub started_at: String,
    pub wall_ms: Millis,
    pub provision_ms: Option<Millis>,
    pub pull_ms: Option<Millis>,
    pub build_ms: Option<Millis>,
    pub push_ms: Option<Millis>,
    pub cached_steps: u32,
    pub total_steps: u32,
    pub image_bytes: Option<Bytes>,
    /// Bytes the registry served to this job (blob and manifest GETs).
    pub bytes_pulled: Option<Bytes>,
    /// Bytes this job uploaded to the registry.
    pub bytes_pushed: Option<Bytes>,
}

/// State of a strategy's caches after a pipeline run (`cache.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheRecord {
    pub run_id: String,
    pub backend: String,
    pub iteration: u32,
    pub pipeline_run: String,
    pub strategy: String,
    /// Blob bytes stored in the registry for this strategy's repositories.
    pub registry_bytes: Option<Bytes>,
    /// Size of the shared daemon's `/var/lib/docker` volume (shared-dind only).
    pub daemon_volume_bytes: Option<Bytes>,
}

/// A long-lived service a strategy starts once per iteration (`services.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceRecord {
    pub run_id: String,
    pub backend: String,
    pub iteration: u32,
    pub strategy: String,
    pub service: String,
    pub startup_ms: Millis,
}

/// Where a toolchain image came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageSource {
    /// Pulled from its registry, or already present under its official name.
    Official,
    /// Built by layerbench from Debian packages because the official image could not be pulled.
    LocalStandIn,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// base, dind, registry, buildah or kaniko.
    pub role: String,
    pub name: String,
    pub source: ImageSource,
    pub id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    pub cpus: u32,
    pub memory_bytes: Option<Bytes>,
    pub os: String,
}

/// Everything about a run that is not a measurement (`run.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub run_id: String,
    pub backend: String,
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
    pub strategies: Vec<String>,
    pub pipeline: Vec<String>,
    pub iterations: u32,
    /// Step table of the scenario's Dockerfile: (stage, step, instruction).
    pub steps: Vec<StepInfo>,
    pub host: HostInfo,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// True when the run was stopped before it finished (Ctrl-C or a fatal error).
    pub interrupted: bool,
    /// Privileges each strategy needed, as shown in the report.
    pub privileges: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepInfo {
    pub stage: String,
    pub step: u32,
    pub instruction: String,
}
