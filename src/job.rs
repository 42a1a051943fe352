//! One CI job: what a backend is asked to run, and what it measured. Below both builders and backends.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::dockerfile::Dockerfile;
use crate::results::FailureKind;
use crate::scenario::PipelineRun;
use crate::strategy::{JobPlan, Phase, Strategy};
use crate::{Bytes, Millis};

/// A job that takes longer is stopped and recorded as failed, on every backend, so one hung build
/// cannot stall a nightly run forever.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(3600);

/// One CI job to run.
pub struct JobSpec<'a> {
    /// Its lane among the pipelines of its strategy run at once.
    pub lane: crate::lanes::Lane,
    pub iteration: u32,
    pub pipeline_index: u32,
    pub pipeline_run: &'a PipelineRun,
    pub strategy: Strategy,
    pub plan: &'a JobPlan,
    /// The per-iteration copy of the build context, with the pipeline run's change applied.
    pub context: &'a Path,
    /// Dockerfile path relative to the context.
    pub dockerfile_path: &'a Path,
    /// The Dockerfile as the context copy has it for this job.
    pub dockerfile: &'a Dockerfile,
    /// The Dockerfile's text as its builder is given it, when that differs from the copy's: a base the run's
    /// mirror serves by name is named there (`crate::toolchain::bases`).
    pub served_dockerfile: Option<String>,
}

impl JobSpec<'_> {
    /// The build context as the job's builder gets it: the context copy as a tar, its Dockerfile as served.
    pub fn context_tar(&self) -> Result<Vec<u8>, JobError> {
        let served = self.served_dockerfile.as_ref().map(|text| (self.dockerfile_path, text.as_bytes()));
        crate::scenario::context::tar_context_with(self.context, served).map_err(|e| JobError::infrastructure(format!("pack the build context: {e}")))
    }
}

/// A step as the job's builder reported it, mapped onto the Dockerfile.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutcome {
    pub step: u32,
    pub cached: bool,
    pub duration_ms: Option<Millis>,
}

/// Why a job failed, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
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
    pub fn infrastructure(message: impl std::fmt::Display) -> Self {
        JobError { kind: FailureKind::Infrastructure, message: message.to_string() }
    }

    /// The message with `more` after it (what the connection or the pod said about a lost daemon).
    pub fn with_detail(mut self, more: &str) -> Self {
        self.message.push_str("; ");
        self.message.push_str(more);
        self
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
    running: Option<(Phase, Instant)>,
    pub image_bytes: Option<Bytes>,
    pub bytes_pulled: Option<Bytes>,
    pub bytes_pushed: Option<Bytes>,
    /// What the job's containers and daemon used (see [`crate::usage`]).
    pub usage: crate::usage::Usage,
    /// Where the job ran: the engine's host name, or the pod's node.
    pub node: Option<String>,
    /// Why a figure of this job is empty when the job itself went fine (an upload whose size the
    /// registry's log did not give, a registry log that could not be read). The run says each reason once.
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

    /// The job's traffic as the registry saw it, or why it could not be read: the same on every backend.
    /// An unreadable log leaves the figures empty with the reason; it does not fail a job whose build
    /// went through.
    pub fn record_traffic(&mut self, traffic: Result<crate::registry::Traffic, crate::registry::LogUnreadable>) {
        match traffic {
            Ok(traffic) => {
                self.bytes_pulled = traffic.pulled();
                self.bytes_pushed = traffic.pushed();
                self.unmeasured.extend(traffic.unmeasured());
            }
            Err(why) => self
                .unmeasured
                .push(format!("bytes pulled and pushed left empty: the registry's access log could not be read ({why})")),
        }
    }

    /// The job's traffic when no other lane used the registry beside it. Lanes share their strategy's
    /// registry, and its access log does not say which lane sent a request (a shared daemon sends every
    /// lane's from one address), so a lane's bytes are left empty with the reason.
    pub async fn record_own_traffic<F>(&mut self, lane: crate::lanes::Lane, traffic: F)
    where
        F: std::future::Future<Output = Result<crate::registry::Traffic, crate::registry::LogUnreadable>>,
    {
        if lane.is_shared() {
            self.unmeasured.push(format!(
                "bytes pulled and pushed left empty at concurrency {}: the lanes share the strategy's registry, whose access log cannot tell one lane's requests from another's",
                lane.level
            ));
        } else {
            self.record_traffic(traffic.await);
        }
    }

    /// The pushed image's size from the registry's manifest, or why it is left empty.
    pub fn record_image(&mut self, bytes: Result<Bytes, crate::registry::LogUnreadable>) {
        match bytes {
            Ok(bytes) => self.image_bytes = Some(bytes),
            Err(why) => self.unmeasured.push(format!("image size left empty: {why}")),
        }
    }

    /// Adds steps the job has not reported yet: when one job builds several targets, a step's row
    /// comes from the first build that ran it (later builds reuse it from the local cache).
    pub fn merge_steps(&mut self, steps: impl IntoIterator<Item = StepOutcome>) {
        for step in steps {
            if !self.steps.iter().any(|s| s.step == step.step) {
                self.steps.push(step);
            }
        }
        self.steps.sort_by_key(|s| s.step);
    }

    /// Ends the running phase now and starts `phase`: phases follow each other on one clock, so
    /// they add up to the time from the first `enter` to [`JobOutcome::end_phase`].
    pub fn enter(&mut self, phase: Phase) {
        self.end_phase();
        self.running = Some((phase, Instant::now()));
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

    fn parsed(step: u32, cached: bool) -> StepOutcome {
        StepOutcome { step, cached, duration_ms: Some(1) }
    }

    #[test]
    fn first_build_to_report_a_step_wins() {
        let mut outcome = JobOutcome::default();
        outcome.merge_steps([parsed(1, false), parsed(2, false)]);
        outcome.merge_steps([parsed(1, true), parsed(2, true), parsed(3, true)]);
        let cached: Vec<_> = outcome.steps.iter().map(|s| (s.step, s.cached)).collect();
        assert_eq!(cached, vec![(1, false), (2, false), (3, true)]);
    }

    #[test]
    fn an_unreadable_registry_log_leaves_the_figures_empty_and_fails_nothing() {
        let mut outcome = JobOutcome::default();
        outcome.record_traffic(Err(crate::registry::LogUnreadable::new("the registry is not running")));
        assert_eq!((outcome.bytes_pulled, outcome.bytes_pushed), (None, None));
        assert!(outcome.failure().is_none(), "a figure that could not be read is no failed job");
        assert!(outcome.unmeasured[0].contains("the registry is not running"), "{:?}", outcome.unmeasured);
    }
}
