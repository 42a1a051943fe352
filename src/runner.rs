//! Drives a scenario: iterations x pipeline runs x strategies, writing results as each job ends.

use std::path::{Path, PathBuf};
use std::time::Instant;

use std::collections::BTreeMap;

use crate::backend::{Backend, BackendError};
use crate::cause::{self, CacheScope, Prior, StepCause};
use crate::dockerfile::Dockerfile;
use crate::inputs::StepInput;
use crate::events::{Event, EventSink};
use crate::job::{JobError, JobOutcome, JobSpec, JOB_TIMEOUT};
use crate::lanes::Lane;
use crate::results::{BackendKind, CacheRecord, JobRecord, JobStatus, ResultsError, ResultsWriter, ServiceRecord, StepRecord};
use crate::scenario::{context, PipelineRun, Scenario, ScenarioError};
use crate::strategy::{Phase, PlanInput, Strategy};
use crate::Millis;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Results(#[from] ResultsError),
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
}

/// How long a backend may take to remove a timed-out job's resources.
const CLEANUP_GRACE: std::time::Duration = std::time::Duration::from_secs(600);

/// What to run: the scenario's choices, possibly narrowed on the command line.
pub struct RunPlan<'a> {
    pub run_id: String,
    pub scenario: &'a Scenario,
    pub strategies: Vec<Strategy>,
    pub iterations: u32,
    /// The concurrency levels, in order (`crate::lanes`).
    pub concurrency: Vec<u32>,
    /// Where per-iteration copies of the context live while the run goes on.
    pub work_dir: PathBuf,
    /// The `FROM` images the builders' Dockerfile names otherwise, by canonical name: the bases the run's
    /// mirror serves by name (`crate::toolchain::bases`).
    pub base_rewrites: BTreeMap<String, String>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunSummary {
    pub jobs: u32,
    pub failed_jobs: u32,
    /// The level the host could not hold, refused before it started (it and every higher level were not
    /// run; the levels before it ran and their results stand).
    pub refused: Option<crate::lanes::LevelError>,
}

/// `20261127T190501123Z-flask`: sorts by time (to the ms, so runs started together differ), says which scenario.
pub fn new_run_id(scenario_name: &str) -> String {
    let name: String = scenario_name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c.to_ascii_lowercase() } else { '-' })
        .collect();
    format!("{}-{name}", chrono::Utc::now().format("%Y%m%dT%H%M%S%3fZ"))
}

/// The strategies in the order they run for one pipeline run: rotated each time, so that a
/// machine that drifts (warming up, throttling) does not always favour the same strategy.
pub fn rotation(strategies: &[Strategy], iteration: u32, pipeline_index: usize, pipeline_len: usize) -> Vec<Strategy> {
    if strategies.is_empty() {
        return vec![];
    }
    let turn = (iteration as usize - 1) * pipeline_len + pipeline_index;
    let mut order = strategies.to_vec();
    order.rotate_left(turn % strategies.len());
    order
}

pub async fn run<B: Backend>(
    backend: &mut B,
    plan: &RunPlan<'_>,
    writer: &mut ResultsWriter,
    events: &EventSink,
) -> Result<RunSummary, RunError> {
    let mut run = Running {
        plan,
        writer,
        events,
        summary: RunSummary::default(),
        said: Default::default(),
        priors: BTreeMap::new(),
        built: BTreeMap::new(),
        peak_alone: None,
    };
    for &level in &plan.concurrency {
        // A level the host cannot hold is refused before it starts, and so is every higher one: the levels
        // that ran keep their results, and the run ends as a finished run that says what it refused.
        if let Some(refusal) = refusal(level, run.peak_alone, crate::lanes::memory_available()) {
            let skipped: Vec<String> = plan.concurrency.iter().filter(|l| **l >= level).map(u32::to_string).collect();
            events.notice(format!("{refusal}; not run: concurrency {}", skipped.join(", ")));
            run.summary.refused = Some(refusal);
            break;
        }
        for iteration in 1..=plan.iterations {
            run.iteration(backend, level, iteration).await?;
        }
    }
    Ok(run.summary)
}

/// Why a level is refused: `level` times the highest peak memory of one level-1 job (`peak_alone`, once level
/// 1 ran) is more than the memory the host has `available` now; `None` when it fits or either is unknown.
fn refusal(level: u32, peak_alone: Option<crate::Bytes>, available: Option<crate::Bytes>) -> Option<crate::lanes::LevelError> {
    let (peak, available) = (peak_alone?, available?);
    let needed = crate::lanes::memory_needed(level, peak);
    (level > 1 && needed > available).then_some(crate::lanes::LevelError::TooLittleMemory { level, needed, available, peak })
}

/// A lane's last successful job: its steps' inputs, and whether the builder reported each step (by number)
/// served from cache.
type LastJob = (Vec<StepInput>, BTreeMap<u32, bool>);

/// A run under way: where its records go, and what it has said so far.
struct Running<'r, 'p> {
    plan: &'r RunPlan<'p>,
    writer: &'r mut ResultsWriter,
    events: &'r EventSink,
    summary: RunSummary,
    /// Why figures were left empty, each said once per run rather than once per job.
    said: std::collections::BTreeSet<String>,
    /// Each lane's last successful job of its strategy in the iteration, which its next job's causes are
    /// judged against: a lane is a branch, and its previous commit is its own.
    priors: BTreeMap<(Strategy, u32), LastJob>,
    /// The input keys every successful job of a strategy built in the iteration, in any lane.
    built: BTreeMap<Strategy, std::collections::BTreeSet<crate::inputs::Digest>>,
    /// The highest peak memory of one level-1 job, once level 1 ran: what a higher level is judged by.
    peak_alone: Option<crate::Bytes>,
}

/// The lanes of one level, each with its own copy of the context.
struct Lanes {
    lanes: Vec<Lane>,
    contexts: Vec<PathBuf>,
}

/// What one lane builds in a pipeline run: its context copy's Dockerfile, parsed, and its text as the
/// builders are served it when that differs.
struct LaneBuild {
    dockerfile: Dockerfile,
    served: Option<String>,
    inputs: Vec<StepInput>,
}

impl Running<'_, '_> {
    /// One iteration of one level from empty caches: its services, then every pipeline run in order, each
    /// strategy's lanes at once.
    async fn iteration<B: Backend>(&mut self, backend: &mut B, level: u32, iteration: u32) -> Result<(), RunError> {
        let scenario = self.plan.scenario;
        let base = self.plan.work_dir.join(format!("level-{level}-iteration-{iteration}"));
        let lanes: Vec<Lane> = Lane::of_level(level).collect();
        let contexts = lanes
            .iter()
            .map(|lane| context::prepare_iteration_context(scenario, &base.join(format!("lane-{}", lane.lane))))
            .collect::<Result<Vec<_>, _>>()?;
        let lanes = Lanes { lanes, contexts };
        self.priors.clear();
        self.built.clear();
        let services = backend.begin_iteration(iteration, &self.plan.strategies, self.events).await?;
        for service in &services {
            self.events.emit(Event::ServiceStarted {
                iteration,
                strategy: service.strategy,
                service: service.service.clone(),
                startup_ms: service.startup_ms,
            });
        }
        for (index, pipeline_run) in scenario.pipeline.iter().enumerate() {
            // What every lane builds in this pipeline run, the same for every strategy.
            let mut builds = vec![];
            for (lane, dir) in lanes.lanes.iter().zip(&lanes.contexts) {
                context::apply_change(dir, &crate::scenario::lane_change(&scenario.pipeline, index, *lane))?;
                builds.push(self.lane_build(dir)?);
            }
            for strategy in rotation(&self.plan.strategies, iteration, index, scenario.pipeline.len()) {
                let at = JobAt { iteration, index: index as u32, pipeline_run, strategy };
                self.round(backend, &at, &lanes, &builds).await?;
            }
        }
        let ended = backend.end_iteration(iteration).await;
        // Each service's row once its usage over the iteration is known (or, when removing failed, without it).
        let ends = ended.as_ref().map(Vec::as_slice).unwrap_or_default();
        for service in services {
            let end = ends.iter().find(|e| e.strategy == service.strategy);
            self.say_once(&end.and_then(|e| e.unmeasured.clone()).into_iter().collect::<Vec<_>>());
            let usage = end.map(|e| e.usage.clone()).unwrap_or_default();
            self.writer.append_service(&ServiceRecord {
                run_id: self.plan.run_id.clone(),
                backend: backend.kind(),
                concurrency: level,
                iteration,
                strategy: service.strategy,
                service: service.service,
                startup_ms: service.startup_ms,
                cpu_ms: usage.cpu_ms,
                peak_memory_bytes: usage.peak_memory_bytes,
            })?;
        }
        ended?;
        let _ = std::fs::remove_dir_all(&base);
        Ok(())
    }

    /// The lane's Dockerfile as its context copy now has it (a commit or a change may have edited it), its
    /// text as the builders get it, and every step's input.
    fn lane_build(&self, dir: &Path) -> Result<LaneBuild, RunError> {
        let scenario = self.plan.scenario;
        let path = dir.join(&scenario.dockerfile_path);
        let text = std::fs::read_to_string(&path).map_err(crate::scenario::io_at("read the Dockerfile", &path))?;
        let dockerfile = Dockerfile::parse(&text).map_err(|e| ScenarioError::Invalid {
            path: scenario.dockerfile_path.clone(),
            line: e.line,
            column: 1,
            message: e.message,
        })?;
        let served = dockerfile.with_bases_replaced(&text, |canonical| self.plan.base_rewrites.get(canonical).cloned());
        let inputs = crate::inputs::step_inputs(&dockerfile, dir)?;
        Ok(LaneBuild { dockerfile, served, inputs })
    }

    /// One pipeline run of one strategy: its lanes started together behind a barrier, each lane's records
    /// written as soon as it ends (so an interrupted round keeps the lanes that finished), then the strategy's
    /// cache state.
    async fn round<B: Backend>(&mut self, backend: &B, at: &JobAt<'_>, lanes: &Lanes, builds: &[LaneBuild]) -> Result<(), RunError> {
        let scenario = self.plan.scenario;
        let JobAt { iteration, index, pipeline_run, strategy } = *at;
        let repository = backend.repository(strategy, &scenario.repository);
        let plans: Vec<_> = lanes
            .lanes
            .iter()
            .zip(builds)
            .map(|(lane, build)| {
                let commit_tag = commit_tag(index, pipeline_run, *lane);
                strategy.plan(&PlanInput { repository: &repository, commit_tag: &commit_tag, dockerfile: &build.dockerfile })
            })
            .collect();
        let jobs: Vec<JobSpec<'_>> = lanes
            .lanes
            .iter()
            .zip(&lanes.contexts)
            .zip(plans.iter().zip(builds))
            .map(|((lane, context), (plan, build))| JobSpec {
                lane: *lane,
                iteration,
                pipeline_index: index,
                pipeline_run,
                strategy,
                plan,
                context,
                dockerfile_path: &scenario.dockerfile_path,
                dockerfile: &build.dockerfile,
                served_dockerfile: build.served.clone(),
            })
            .collect();
        for job in &jobs {
            self.events.emit(Event::JobStarted { iteration, pipeline_run: pipeline_run.name.clone(), strategy, lane: job.lane });
        }
        let barrier = tokio::sync::Barrier::new(jobs.len());
        let (barrier, events) = (&barrier, self.events);
        let mut running: futures_util::stream::FuturesUnordered<_> = jobs
            .iter()
            .zip(builds)
            .map(|(job, build)| async move { (job, build, run_one(backend, job, barrier, events).await) })
            .collect();
        while let Some((job, build, (started_at, wall_ms, outcome))) = futures_util::StreamExt::next(&mut running).await {
            self.record(backend.kind(), job, &outcome, &build.inputs, started_at, wall_ms)?;
        }
        let cache = backend.cache_state(strategy).await;
        self.say_once(&cache.unmeasured);
        self.writer.append_cache(&CacheRecord {
            run_id: self.plan.run_id.clone(),
            backend: backend.kind(),
            concurrency: lanes.lanes.len() as u32,
            iteration,
            pipeline_run: pipeline_run.name.clone(),
            strategy,
            registry_bytes: cache.registry_bytes,
            daemon_volume_bytes: cache.daemon_volume_bytes,
        })?;
        Ok(())
    }

    /// A job's records, its causes judged against its lane's last successful job, written at once.
    fn record(
        &mut self,
        backend: BackendKind,
        job: &JobSpec<'_>,
        outcome: &JobOutcome,
        inputs: &[StepInput],
        started_at: chrono::DateTime<chrono::Utc>,
        wall_ms: Millis,
    ) -> Result<(), RunError> {
        let strategy = job.strategy;
        self.say_once(&outcome.unmeasured);
        let reported: BTreeMap<u32, bool> = outcome.steps.iter().map(|s| (s.step, s.cached)).collect();
        let built = self.built.entry(strategy).or_default();
        let prior = self.priors.get(&(strategy, job.lane.lane)).map(|(inputs, cached)| Prior {
            inputs: inputs.clone(),
            cached: cached.clone(),
            built: built.clone(),
        });
        // What the strategy's cache can hold, for this job's Dockerfile.
        let scope: CacheScope = crate::builder::cache_scope(strategy, job.dockerfile);
        let causes = cause::classify(inputs, &reported, prior.as_ref(), &scope);
        let seen = Seen { inputs, causes: &causes };
        let (record, steps) = records(&self.plan.run_id, backend, job, outcome, &seen, started_at, wall_ms);
        self.writer.append_job(&record, &steps)?;
        if record.status == JobStatus::Ok {
            built.extend(inputs.iter().map(|s| s.key));
            self.priors.insert((strategy, job.lane.lane), (inputs.to_vec(), reported));
            if !job.lane.is_shared() {
                self.peak_alone = self.peak_alone.max(record.peak_memory_bytes);
            }
        }
        self.summary.jobs += 1;
        if record.status == JobStatus::Failed {
            self.summary.failed_jobs += 1;
        }
        self.events.emit(Event::JobFinished { record: Box::new(record), steps });
        Ok(())
    }

    fn say_once(&mut self, why: &[String]) {
        for reason in why {
            if self.said.insert(reason.clone()) {
                self.events.notice(reason.clone());
            }
        }
    }
}

/// The image tag a lane's job gives its commit: `c<N>-<pipeline run>`, with `-l<K>` for lane K of several.
fn commit_tag(index: u32, pipeline_run: &PipelineRun, lane: Lane) -> String {
    match lane.is_shared() {
        false => format!("c{}-{}", index + 1, pipeline_run.name),
        true => format!("c{}-{}-l{}", index + 1, pipeline_run.name, lane.lane),
    }
}

/// Runs one lane's job once every lane is ready: when it started, its wall time, and its outcome.
async fn run_one<B: Backend>(
    backend: &B,
    job: &JobSpec<'_>,
    barrier: &tokio::sync::Barrier,
    events: &EventSink,
) -> (chrono::DateTime<chrono::Utc>, Millis, JobOutcome) {
    barrier.wait().await;
    let started_at = chrono::Utc::now();
    let clock = Instant::now();
    // Backends bound a job by JOB_TIMEOUT themselves and then remove what it created; this
    // outer bound only catches a backend whose clean-up hangs too.
    let outcome = tokio::time::timeout(JOB_TIMEOUT + CLEANUP_GRACE, backend.run_job(job, events)).await.unwrap_or_else(|_| {
        let mut outcome = JobOutcome::default();
        outcome.fail(JobError::infrastructure(format!(
            "the job and its clean-up did not finish within {} min; the end of the run removes what it left",
            (JOB_TIMEOUT + CLEANUP_GRACE).as_secs() / 60
        )));
        outcome
    });
    (started_at, crate::millis(clock.elapsed()), outcome)
}

/// Where one job sits in the run.
#[derive(Clone, Copy)]
struct JobAt<'a> {
    iteration: u32,
    /// 0-based position of the pipeline run.
    index: u32,
    pipeline_run: &'a PipelineRun,
    strategy: Strategy,
}

/// What layerbench knows of a job's steps besides what the builder said: their inputs and causes.
struct Seen<'a> {
    inputs: &'a [StepInput],
    causes: &'a BTreeMap<u32, StepCause>,
}

/// Turns a job's outcome into its CSV rows.
///
/// A step the builder ran nothing for (BuildKit has no vertex for `ENV`, `CMD`, …) keeps its row with
/// `cached` empty, once the builder reported anything at all. A job whose builder reported nothing has
/// no step rows and an empty `cached_steps`: nothing was seen, so nothing is counted.
fn records(
    run_id: &str,
    backend: BackendKind,
    job: &JobSpec<'_>,
    outcome: &JobOutcome,
    seen_steps: &Seen<'_>,
    started_at: chrono::DateTime<chrono::Utc>,
    wall_ms: Millis,
) -> (JobRecord, Vec<StepRecord>) {
    let dockerfile = job.dockerfile;
    let reported: std::collections::BTreeMap<u32, &crate::job::StepOutcome> =
        outcome.steps.iter().map(|s| (s.step, s)).collect();
    let steps = step_records(run_id, backend, job, outcome, seen_steps, &reported);
    let cached_steps = (!reported.is_empty()).then(|| {
        dockerfile
            .steps()
            .filter(|(_, i)| i.is_cacheable() && reported.get(&i.step).is_some_and(|s| s.cached))
            .count() as u32
    });
    // A step of a stage the builder skipped is no step of this job: neither a hit nor a miss.
    let not_run = dockerfile
        .steps()
        .filter(|(_, i)| i.is_cacheable() && seen_steps.causes.get(&i.step).is_some_and(|c| c.cause == Some(crate::cause::Cause::NotRun)))
        .count() as u32;
    let failure = outcome.failure();
    let record = JobRecord {
        run_id: run_id.to_string(),
        backend,
        concurrency: job.lane.level,
        lane: job.lane.lane,
        iteration: job.iteration,
        pipeline_index: job.pipeline_index,
        pipeline_run: job.pipeline_run.name.clone(),
        strategy: job.strategy,
        status: if failure.is_some() { JobStatus::Failed } else { JobStatus::Ok },
        failure_kind: failure.as_ref().map(|(kind, _)| *kind),
        error: failure.map(|(_, message)| message),
        started_at: started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        wall_ms,
        provision_ms: outcome.phases.get(&Phase::Provision).copied(),
        pull_ms: outcome.phases.get(&Phase::Pull).copied(),
        cache_import_ms: outcome.phases.get(&Phase::CacheImport).copied(),
        build_ms: outcome.phases.get(&Phase::Build).copied(),
        cache_export_ms: outcome.phases.get(&Phase::CacheExport).copied(),
        push_ms: outcome.phases.get(&Phase::Push).copied(),
        teardown_ms: outcome.phases.get(&Phase::Teardown).copied(),
        measure_ms: outcome.phases.get(&Phase::Measure).copied(),
        cached_steps,
        total_steps: dockerfile.cacheable_steps() - not_run,
        image_bytes: outcome.image_bytes,
        bytes_pulled: outcome.bytes_pulled,
        bytes_pushed: outcome.bytes_pushed,
        cpu_ms: outcome.usage.cpu_ms,
        peak_memory_bytes: outcome.usage.peak_memory_bytes,
        node: outcome.node.clone(),
        host_load_1m: host_load_1m(),
        notes: (!outcome.unmeasured.is_empty()).then(|| outcome.unmeasured.join("; ")),
    };
    (record, steps)
}

/// The step rows of a job: every step of the Dockerfile once the builder reported anything, none otherwise.
fn step_records(
    run_id: &str,
    backend: BackendKind,
    job: &JobSpec<'_>,
    outcome: &JobOutcome,
    seen_steps: &Seen<'_>,
    reported: &BTreeMap<u32, &crate::job::StepOutcome>,
) -> Vec<StepRecord> {
    if reported.is_empty() {
        return vec![];
    }
    let dockerfile = job.dockerfile;
    dockerfile
        .recorded_steps()
        .filter_map(|(stage, instruction)| {
            let seen = reported.get(&instruction.step);
            // In a failed job, steps after the last one reported never ran: no row. In a job that
            // went through, they did (BuildKit reports nothing for a trailing `EXPOSE` or `CMD`).
            if outcome.error.is_some() && seen.is_none() && instruction.step > *reported.keys().next_back()? {
                return None;
            }
            Some(StepRecord {
                run_id: run_id.to_string(),
                backend,
                concurrency: job.lane.level,
                lane: job.lane.lane,
                iteration: job.iteration,
                pipeline_run: job.pipeline_run.name.clone(),
                strategy: job.strategy,
                stage,
                step: instruction.step,
                total_steps: dockerfile.total_steps(),
                instruction: instruction.text.clone(),
                cached: seen.map(|s| s.cached),
                duration_ms: seen.and_then(|s| s.duration_ms),
                input_key: seen_steps.inputs.iter().find(|s| s.step == instruction.step).map(|s| s.key.short()),
                cause: seen_steps.causes.get(&instruction.step).and_then(|c| c.cause),
                changed: seen_steps.causes.get(&instruction.step).and_then(|c| c.changed.clone()),
            })
        })
        .collect()
}

/// The host's 1-minute load average, from `/proc/loadavg`; `None` where there is none.
fn host_load_1m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// Where a run's results go: `<root>/<run-id>/`.
pub fn results_dir(root: &Path, run_id: &str) -> PathBuf {
    root.join(run_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_strategy_leads_once_per_rotation() {
        let [ephemeral, shared, last] = ["ephemeral-dind", "shared-dind", "registry-final"].map(Strategy::named);
        let all = [ephemeral, shared, last];
        let firsts: Vec<_> = (0..3).map(|p| rotation(&all, 1, p, 4)[0]).collect();
        assert_eq!(firsts, vec![ephemeral, shared, last]);
        // The next iteration carries on where the previous one stopped.
        assert_eq!(rotation(&all, 2, 0, 4)[0], shared);
        assert_eq!(rotation(&all, 1, 0, 4).len(), 3);
    }

    /// A successful BuildKit job reports no step for the trailing metadata instructions: their rows are
    /// still there, `cached` empty. A failed job keeps no rows after the last step its builder reached.
    #[test]
    fn trailing_steps_have_rows_unless_the_build_failed_before_them() {
        let scenario = crate::scenario::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/small.toml")).unwrap();
        let plan = RunPlan {
            run_id: "r".into(),
            scenario: &scenario,
            strategies: vec![Strategy::named("buildkit-shared")],
            iterations: 1,
            concurrency: vec![1],
            work_dir: PathBuf::from("/nonexistent"),
            base_rewrites: BTreeMap::new(),
        };
        let job_plan = crate::strategy::JobPlan { daemon: crate::strategy::Daemon::Shared(crate::strategy::DaemonKind::Docker), ops: vec![] };
        let job = JobSpec {
            lane: Lane::ALONE,
            iteration: 1,
            pipeline_index: 0,
            pipeline_run: &scenario.pipeline[0],
            strategy: Strategy::named("buildkit-shared"),
            plan: &job_plan,
            context: std::path::Path::new("/nonexistent"),
            dockerfile_path: &scenario.dockerfile_path,
            dockerfile: &scenario.dockerfile,
            served_dockerfile: None,
        };
        let total = scenario.dockerfile.steps().count();
        let last = scenario.dockerfile.steps().last().unwrap().1.step;
        // Every step but the last (`CMD`), as BuildKit reports them.
        let mut outcome = JobOutcome::default();
        outcome.steps = scenario
            .dockerfile
            .steps()
            .filter(|(_, i)| i.step != last)
            .map(|(_, i)| crate::job::StepOutcome { step: i.step, cached: false, duration_ms: Some(1) })
            .collect();
        let seen = Seen { inputs: &[], causes: &BTreeMap::new() };
        let (_, rows) = records(&plan.run_id, BackendKind::Docker, &job, &outcome, &seen, chrono::Utc::now(), 10);
        assert_eq!(rows.len(), total, "every step has its row");
        assert_eq!(rows.last().map(|r| (r.step, r.cached)), Some((last, None)), "the builder ran nothing for it");
        outcome.fail(JobError::build("step failed"));
        let seen = Seen { inputs: &[], causes: &BTreeMap::new() };
        let (_, rows) = records(&plan.run_id, BackendKind::Docker, &job, &outcome, &seen, chrono::Utc::now(), 10);
        assert_eq!(rows.len(), total - 1, "a failed build has no rows after the last step it reached");
    }

    /// run.json's step table and steps.csv's rows list the same steps, a global ARG among them.
    #[test]
    fn run_json_lists_the_global_arg_steps_that_steps_csv_has() {
        let dockerfile = crate::dockerfile::Dockerfile::parse("ARG BASE=python:3.11-slim\nARG TOOL\nFROM $BASE\nRUN pip install x\nCMD x\n").unwrap();
        let (plan, pipeline_run) = (crate::strategy::JobPlan { daemon: crate::strategy::Daemon::Fresh(crate::strategy::DaemonKind::Docker), ops: vec![] }, PipelineRun { name: "cold".into(), change: crate::scenario::Change::None });
        let job = JobSpec {
            lane: Lane::ALONE,
            iteration: 1,
            pipeline_index: 0,
            pipeline_run: &pipeline_run,
            strategy: Strategy::named("shared-dind"),
            plan: &plan,
            context: std::path::Path::new("/nonexistent"),
            dockerfile_path: std::path::Path::new("Dockerfile"),
            dockerfile: &dockerfile,
            served_dockerfile: None,
        };
        let mut outcome = JobOutcome::default();
        outcome.steps = (1..=5).map(|step| crate::job::StepOutcome { step, cached: false, duration_ms: Some(1) }).collect();
        let seen = Seen { inputs: &[], causes: &BTreeMap::new() };
        let (_, rows) = records("r", BackendKind::Docker, &job, &outcome, &seen, chrono::Utc::now(), 10);
        let table = crate::session::dockerfile_steps(&dockerfile);
        let rows: Vec<(String, u32, String)> = rows.into_iter().map(|r| (r.stage, r.step, r.instruction)).collect();
        let table: Vec<(String, u32, String)> = table.into_iter().map(|s| (s.stage, s.step, s.instruction)).collect();
        assert_eq!(table, rows);
        assert_eq!(&table[..2], [("global".into(), 1, "ARG BASE=python:3.11-slim".into()), ("global".into(), 2, "ARG TOOL".into())]);
    }

    /// A backend that runs nothing: each job's outcome is made up, to produce what no real part produces on
    /// demand (a host short of memory for the next level, a Ctrl-C while one lane is still running).
    struct Scripted {
        /// The peak memory every job reports.
        peak: Option<crate::Bytes>,
        /// The lane (of a level above 1) whose job never ends.
        hangs: Option<u32>,
    }

    impl Backend for Scripted {
        fn kind(&self) -> BackendKind {
            BackendKind::Docker
        }
        fn repository(&self, strategy: Strategy, repository: &str) -> String {
            format!("registry:5000/{strategy}/{repository}")
        }
        async fn begin_iteration(&mut self, _: u32, _: &[Strategy], _: &EventSink) -> Result<Vec<crate::backend::ServiceStart>, BackendError> {
            Ok(vec![])
        }
        async fn run_job(&self, job: &JobSpec<'_>, _: &EventSink) -> JobOutcome {
            if job.lane.is_shared() && self.hangs == Some(job.lane.lane) {
                std::future::pending::<()>().await;
            }
            let mut outcome = JobOutcome::default();
            outcome.steps = job.dockerfile.steps().map(|(_, i)| crate::job::StepOutcome { step: i.step, cached: false, duration_ms: Some(1) }).collect();
            outcome.usage.peak_memory_bytes = self.peak;
            outcome
        }
        async fn cache_state(&self, _: Strategy) -> crate::backend::CacheState {
            crate::backend::CacheState::default()
        }
        async fn end_iteration(&mut self, _: u32) -> Result<Vec<crate::backend::ServiceEnd>, BackendError> {
            Ok(vec![])
        }
    }

    /// Keeps the notices a run says.
    struct Notices(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl crate::events::Reporter for Notices {
        fn event(&mut self, event: &Event) {
            if let Event::Notice { message } = event {
                self.0.lock().unwrap().push(message.clone());
            }
        }
    }

    fn small_plan<'a>(scenario: &'a Scenario, concurrency: Vec<u32>, work_dir: &Path) -> RunPlan<'a> {
        RunPlan { run_id: "r".into(), scenario, strategies: vec![Strategy::named("shared-dind")], iterations: 1, concurrency, work_dir: work_dir.to_path_buf(), base_rewrites: BTreeMap::new() }
    }

    fn small() -> Scenario {
        crate::scenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/small.toml")).unwrap()
    }

    #[test]
    fn a_level_is_refused_from_the_memory_level_one_measured() {
        let gib = 1u64 << 30;
        let refused = refusal(4, Some(3 * gib), Some(10 * gib)).expect("12 GiB > 10 GiB");
        assert_eq!(refused, crate::lanes::LevelError::TooLittleMemory { level: 4, needed: 12 * gib, available: 10 * gib, peak: 3 * gib });
        assert_eq!(refusal(3, Some(3 * gib), Some(10 * gib)), None, "9 GiB fits");
        assert_eq!(refusal(2, None, Some(gib)), None, "no level-1 figure, no estimate");
        assert_eq!(refusal(2, Some(gib), None), None, "the host's memory unknown");
    }

    /// Level 1's jobs say each needs 1 TiB: level 2 is refused before it starts, with one line, and so is
    /// level 4; level 1's results stand and the run ends as a finished run that says what it refused.
    #[test]
    fn a_level_the_host_cannot_hold_is_refused_and_the_levels_before_it_stand() {
        let (work, results) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let scenario = small();
        let plan = small_plan(&scenario, vec![1, 2, 4], work.path());
        let mut writer = ResultsWriter::create(results.path()).unwrap();
        let said = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
        let events = EventSink::new(vec![Box::new(Notices(said.clone()))]);
        let mut backend = Scripted { peak: Some(1 << 40), hangs: None };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let summary = rt.block_on(run(&mut backend, &plan, &mut writer, &events)).unwrap();
        assert_eq!(summary.jobs, scenario.pipeline.len() as u32, "level 1 ran whole");
        assert!(matches!(summary.refused, Some(crate::lanes::LevelError::TooLittleMemory { level: 2, peak, .. }) if peak == 1 << 40), "{summary:?}");
        let said = said.lock().unwrap();
        let line = said.iter().find(|n| n.starts_with("concurrency 2 needs about 2048.00 GiB")).unwrap_or_else(|| panic!("{said:?}"));
        assert!(line.ends_with("run a lower level, or on a larger machine; not run: concurrency 2, 4") && !line.contains('\n'), "{line}");
        let jobs = crate::results::read_jobs(results.path()).unwrap();
        assert!(jobs.len() == 4 && jobs.iter().all(|j| j.concurrency == 1), "{jobs:?}");
    }

    /// A round stopped while one lane still runs (Ctrl-C drops the run) keeps the row of the lane that
    /// finished, its steps with it, and leaves CSVs that read.
    #[test]
    fn an_interrupted_round_keeps_the_lanes_that_finished() {
        let (work, results) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let scenario = small();
        let plan = small_plan(&scenario, vec![2], work.path());
        let mut writer = ResultsWriter::create(results.path()).unwrap();
        let events = EventSink::new(vec![]);
        let mut backend = Scripted { peak: None, hangs: Some(2) };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            tokio::select! {
                _ = run(&mut backend, &plan, &mut writer, &events) => panic!("lane 2 never ends, so neither does the run"),
                () = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
            }
        });
        drop(writer);
        let jobs = crate::results::read_jobs(results.path()).unwrap();
        let lanes: Vec<(u32, u32, &str)> = jobs.iter().map(|j| (j.concurrency, j.lane, j.pipeline_run.as_str())).collect();
        assert_eq!(lanes, [(2, 1, "cold")], "lane 1 of the first round, written when it ended");
        let steps = crate::results::read_steps(results.path()).unwrap();
        assert!(!steps.is_empty() && steps.iter().all(|s| s.lane == 1), "{steps:?}");
    }

    #[test]
    fn run_ids_are_safe_names() {
        let id = new_run_id("My Flask_app");
        assert!(id.ends_with("-my-flask-app"), "{id}");
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }
}
