//! Backends run a strategy's job plan somewhere real: the local Docker engine or a Kubernetes cluster.

pub mod docker;
pub mod kube;

use std::collections::BTreeMap;
use std::path::Path;

use crate::events::EventSink;
use crate::results::FailureKind;
use crate::scenario::{Dockerfile, PipelineRun};
use crate::strategy::{JobPlan, Phase, StrategyKind};
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

/// One CI job to run.
pub struct JobSpec<'a> {
    pub iteration: u32,
    pub pipeline_index: u32,
    pub pipeline_run: &'a PipelineRun,
    pub strategy: StrategyKind,
    pub plan: &'a JobPlan,
    /// The per-iteration copy of the build context, with the pipeline run's change applied.
    pub context: &'a Path,
    /// Dockerfile path relative to the context.
    pub dockerfile_path: &'a Path,
    pub dockerfile: &'a Dockerfile,
}

/// A step as the job's builder reported it, mapped onto the Dockerfile.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutcome {
    pub step: u32,
    pub cached: bool,
    pub duration_ms: Option<Millis>,
}

/// Why a job failed, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    pub kind: FailureKind,
    pub message: String,
}

impl JobError {
    /// The builder rejected the Dockerfile or a step failed.
    pub fn build(message: impl Into<String>) -> Self {
        JobError { kind: FailureKind::Build, message: message.into() }
    }

    /// The engine, a daemon, the registry, a timeout or clean-up failed.
    pub fn infrastructure(message: impl Into<String>) -> Self {
        JobError { kind: FailureKind::Infrastructure, message: message.into() }
    }
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Plumbing errors (a failed API call, a lost connection) are infrastructure; a build failure is always
/// made explicitly with [`JobError::build`].
impl From<String> for JobError {
    fn from(message: String) -> Self {
        JobError::infrastructure(message)
    }
}

impl From<BackendError> for JobError {
    fn from(e: BackendError) -> Self {
        JobError::infrastructure(e.to_string())
    }
}

/// What one job measured. A failed job still reports what it measured before failing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobOutcome {
    /// Summed wall time per phase; a phase the job never entered is absent.
    pub phases: BTreeMap<Phase, Millis>,
    /// One entry per Dockerfile step the builder reported, first report wins.
    pub steps: Vec<StepOutcome>,
    /// The first error.
    pub error: Option<JobError>,
    /// Errors removing the job's resources: recorded next to the job's own error, never instead of it.
    pub cleanup_errors: Vec<String>,
    /// The phase running now and since when (see [`JobOutcome::enter`]).
    running: Option<(Phase, std::time::Instant)>,
    pub image_bytes: Option<Bytes>,
    pub bytes_pulled: Option<Bytes>,
    pub bytes_pushed: Option<Bytes>,
    /// Why a figure of this job is empty when the job itself went fine (an upload whose size the
    /// registry's log did not give). The run says each reason once.
    pub unmeasured: Vec<String>,
}

impl JobOutcome {
    /// Records `error` unless an earlier one is already there: the first error is the cause.
    pub fn fail(&mut self, error: JobError) {
        self.error.get_or_insert(error);
    }

    /// The job's failure as the CSV shows it: its kind, and its error followed by any clean-up error.
    pub fn failure(&self) -> Option<(FailureKind, String)> {
        let cleanup = (!self.cleanup_errors.is_empty())
            .then(|| format!("removing the job's resources failed: {}", self.cleanup_errors.join("; ")));
        match (&self.error, cleanup) {
            (Some(e), Some(c)) => Some((e.kind, format!("{}; also, {c}", e.message))),
            (Some(e), None) => Some((e.kind, e.message.clone())),
            (None, Some(c)) => Some((FailureKind::Infrastructure, c)),
            (None, None) => None,
        }
    }

    /// The job's traffic as the registry saw it.
    pub fn record_traffic(&mut self, traffic: crate::registry::Traffic) {
        self.bytes_pulled = traffic.pulled();
        self.bytes_pushed = traffic.pushed();
        self.unmeasured.extend(traffic.unmeasured());
    }

    /// Ends the running phase now and starts `phase`: phases follow each other on one clock, so
    /// they add up to the time from the first `enter` to [`JobOutcome::end_phase`].
    pub fn enter(&mut self, phase: Phase) {
        self.end_phase();
        self.running = Some((phase, std::time::Instant::now()));
    }

    /// Ends the running phase, adding its time to the phase's total.
    pub fn end_phase(&mut self) {
        if let Some((phase, since)) = self.running.take() {
            *self.phases.entry(phase).or_default() += crate::millis(since.elapsed());
        }
    }

    /// The phase running now.
    pub fn phase(&self) -> Option<Phase> {
        self.running.map(|(p, _)| p)
    }

    /// Moves `ms` of `from`'s time to `to`: a builder that reports its own sub-phases (BuildKit's
    /// cache import and export inside one `buildx build`) splits the time layerbench's clock gave
    /// the whole command. When the builder reports more than the clock measured, the two clocks
    /// disagree and nothing is moved: `to` stays unmeasured.
    pub fn split_phase(&mut self, from: Phase, to: Phase, ms: Millis) -> bool {
        // The builder's command may still be the running phase: count its time so far first.
        if self.phase() == Some(from) {
            self.enter(from);
        }
        let Some(total) = self.phases.get_mut(&from) else { return false };
        if ms > *total {
            return false;
        }
        *total -= ms;
        *self.phases.entry(to).or_default() += ms;
        true
    }
}

/// A long-lived service started for an iteration, with its start-up time.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceStart {
    pub strategy: StrategyKind,
    pub service: String,
    pub startup_ms: Millis,
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

/// Where jobs run. The runner drives it; the backend owns every resource it creates.
#[allow(async_fn_in_trait)]
pub trait Backend {
    /// `docker` or `kube`: the value of the CSV `backend` column.
    fn name(&self) -> &'static str;
    /// Image repository as jobs see it, registry host included, for a strategy's own repositories.
    fn repository(&self, strategy: StrategyKind, repository: &str) -> String;
    /// Empty caches for a new iteration: a fresh registry, and shared services for `strategies`.
    async fn begin_iteration(
        &mut self,
        iteration: u32,
        strategies: &[StrategyKind],
        events: &EventSink,
    ) -> Result<Vec<ServiceStart>, BackendError>;
    /// Runs one job to completion. Never fails as a whole: failures are in the outcome.
    async fn run_job(&mut self, job: &JobSpec<'_>, events: &EventSink) -> JobOutcome;
    /// Measures what a strategy's caches hold now.
    async fn cache_state(&mut self, strategy: StrategyKind) -> CacheState;
    /// Removes the iteration's services and registry.
    async fn end_iteration(&mut self, iteration: u32) -> Result<(), BackendError>;
    /// Removes everything the backend created.
    async fn shutdown(&mut self) -> Result<(), BackendError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BuildKit's cache export and push happen inside the one build command, whose phase is still
    /// running when the log ends: its whole time so far must be there to split, not only the part
    /// before the script's last mark.
    #[test]
    fn a_running_phase_is_split_with_all_its_time_so_far() {
        let mut outcome = JobOutcome::default();
        outcome.enter(Phase::Build);
        std::thread::sleep(std::time::Duration::from_millis(5));
        outcome.enter(Phase::Build); // the script's build mark: a second segment starts
        std::thread::sleep(std::time::Duration::from_millis(60));
        assert!(outcome.split_phase(Phase::Build, Phase::Push, 40), "the running segment's 60 ms hold 40");
        assert_eq!(outcome.phase(), Some(Phase::Build), "the build goes on running");
        assert_eq!(outcome.phases[&Phase::Push], 40);
        assert!(!outcome.split_phase(Phase::Build, Phase::CacheExport, 10_000), "more than the clock measured moves nothing");
        assert_eq!(outcome.phases.get(&Phase::CacheExport), None, "and leaves the phase unmeasured");
    }
}
