//! Backends run a strategy's job plan somewhere real: the local Docker engine or a Kubernetes cluster.

pub mod docker;
pub mod kube;

use crate::events::EventSink;
use crate::job::{JobError, JobOutcome, JobSpec};
use crate::results::BackendKind;
use crate::strategy::Strategy;
use crate::{Bytes, Millis};

/// A backend could not do something outside a single job; the run cannot go on.
#[derive(Debug, thiserror::Error)]
#[error("{action}: {message}")]
pub struct BackendError {
    /// What was being done, e.g. "start the registry container".
    pub action: String,
    /// Why it failed, and what to do about it when we know.
    pub message: String,
}

impl BackendError {
    pub fn new(action: impl Into<String>, message: impl std::fmt::Display) -> Self {
        BackendError { action: action.into(), message: message.to_string() }
    }
}

/// A backend's failure inside a job is the job's infrastructure failure.
impl From<BackendError> for JobError {
    fn from(e: BackendError) -> Self {
        JobError::infrastructure(e)
    }
}

/// A long-lived service started for an iteration, with its start-up time.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceStart {
    pub strategy: Strategy,
    pub service: String,
    pub startup_ms: Millis,
}

/// What a long-lived service used over its iteration, read as it is removed.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceEnd {
    pub strategy: Strategy,
    pub usage: crate::usage::Usage,
    /// Why the usage is empty, when it is.
    pub unmeasured: Option<String>,
}

/// Cache state of one strategy after a pipeline run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CacheState {
    pub registry_bytes: Option<Bytes>,
    pub daemon_volume_bytes: Option<Bytes>,
    /// Why a figure above is empty although the strategy has that cache. The run says each reason once.
    pub unmeasured: Vec<String>,
}

impl CacheState {
    /// The size in bytes that a command printed first (`du -sb`, the registry's storage script); an
    /// error or output that is no number leaves the figure empty and says why, never 0.
    pub fn size_from(&mut self, what: &str, output: Result<String, impl std::fmt::Display>) -> Option<Bytes> {
        let why = match output {
            Ok(out) => match out.split_whitespace().next().and_then(|n| n.parse().ok()) {
                Some(bytes) => return Some(bytes),
                None => format!("the command printed `{}`", out.trim()),
            },
            Err(e) => e.to_string(),
        };
        self.unmeasured.push(format!("{what} left empty: {why}"));
        None
    }
}

impl CacheState {
    /// The registry's storage from what [`crate::registry::storage_script`] printed; empty, saying why,
    /// when the script failed or a blob could not be read.
    pub fn storage_from(&mut self, output: Result<String, impl std::fmt::Display>) -> Option<Bytes> {
        match output.map_err(|e| e.to_string()).and_then(|out| crate::registry::storage_bytes(&out).map_err(|e| e.to_string())) {
            Ok(bytes) => Some(bytes),
            Err(why) => {
                self.unmeasured.push(format!("registry storage left empty: {why}"));
                None
            }
        }
    }
}

/// Where jobs run. The runner drives it; the backend owns every resource it creates.
#[allow(async_fn_in_trait)]
pub trait Backend {
    /// Which backend this is: the value of the CSV `backend` column.
    fn kind(&self) -> BackendKind;
    /// Image repository as jobs see it, registry host included, for a strategy's own repositories.
    fn repository(&self, strategy: Strategy, repository: &str) -> String;
    /// Empty caches for a new iteration: a fresh registry, and shared services for `strategies`.
    async fn begin_iteration(
        &mut self,
        iteration: u32,
        strategies: &[Strategy],
        events: &EventSink,
    ) -> Result<Vec<ServiceStart>, BackendError>;
    /// Runs one job to completion. Never fails as a whole: failures are in the outcome. The lanes of a
    /// level call it at once, each with its own job.
    async fn run_job(&self, job: &JobSpec<'_>, events: &EventSink) -> JobOutcome;
    /// Measures what a strategy's caches hold now.
    async fn cache_state(&self, strategy: Strategy) -> CacheState;
    /// Removes the iteration's services and registry. (What is left when a run ends goes by the run's
    /// label on the engine, and with the run's namespace on a cluster: see `session`.)
    /// Returns what each service used over the iteration.
    async fn end_iteration(&mut self, iteration: u32) -> Result<Vec<ServiceEnd>, BackendError>;
}
