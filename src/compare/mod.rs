//! Compares two results directories: improved, regressed or within noise, per strategy and pipeline run.

mod bootstrap;
mod environment;
mod markdown;
mod openmetrics;
mod terminal;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::results::data::{RunData, Spread};
use crate::results::{FailureKind, JobStatus, PipelineRunName};
use crate::cause::Cause;
use crate::strategy::Strategy;

pub use bootstrap::{relative_change_of_median, Estimate, RESAMPLES};
pub use environment::{Difference, LOAD_PER_CPU_DIFFERENCE};

/// Successful iterations each side needs before its times are judged.
///
/// Below three the median is not yet robust: of two iterations it is their mean, so one slow
/// iteration (a neighbour's job, a cold page cache) moves it by half its excess. From three on, one
/// outlier cannot move the median past the other iterations. At three the bootstrap interval is
/// still as wide as the runs' whole spread; the README says how many iterations narrow it.
pub const MIN_ITERATIONS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("{0}")]
    Results(#[from] crate::results::ResultsError),
    #[error("{0}")]
    Data(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid threshold `{text}`: {reason}")]
    Threshold { text: String, reason: String },
}

pub struct CompareOptions {
    pub baseline: PathBuf,
    pub candidate: PathBuf,
    /// Relative change of the median below which a difference is noise (0.10 = 10%).
    pub threshold: f64,
    pub markdown: Option<PathBuf>,
    pub openmetrics: Option<PathBuf>,
}

/// What `compare` found, and the text of its terminal table.
pub struct CompareOutcome {
    pub regressed: bool,
    pub table: String,
    pub comparison: Comparison,
}

/// The three-way verdict on a median job time, as criterion.rs gives it, and why there may be none.
#[derive(Debug, Clone, PartialEq)]
pub enum TimeVerdict {
    Improved,
    Regressed,
    WithinNoise,
    /// A side has fewer than [`MIN_ITERATIONS`] successful jobs: its median says too little.
    TooFewIterations {
        baseline_ok: usize,
        candidate_ok: usize,
    },
    /// One side has no successful job (or no job at all); the reason says which.
    NotCompared(String),
}

impl TimeVerdict {
    pub fn label(&self) -> String {
        match self {
            TimeVerdict::Improved => "improved".into(),
            TimeVerdict::Regressed => "regressed".into(),
            TimeVerdict::WithinNoise => "within noise".into(),
            TimeVerdict::TooFewIterations {
                baseline_ok,
                candidate_ok,
            } => format!(
                "too few iterations to judge ({baseline_ok} → {candidate_ok} successful, {MIN_ITERATIONS} needed on each side)"
            ),
            TimeVerdict::NotCompared(reason) => format!("not compared ({reason})"),
        }
    }
}

/// Why a row is a regression whatever its times say.
#[derive(Debug, Clone, PartialEq)]
pub enum Breakage {
    /// Jobs in the baseline, none in the candidate: a gate must not pass what did not run.
    MissingFromCandidate,
    /// No candidate job succeeded, so nothing was measured; the counts say what failed.
    NoSuccessfulCandidateJob { build: usize, infrastructure: usize },
    /// Build failures in the candidate where the baseline had none.
    NewBuildFailures { candidate: usize },
}

fn failures(count: usize, kind: FailureKind) -> String {
    format!(
        "{count} {} failure{}",
        kind.name(),
        if count == 1 { "" } else { "s" }
    )
}

impl Breakage {
    pub fn text(&self) -> String {
        match *self {
            Breakage::MissingFromCandidate => {
                "missing from the candidate: it ran in the baseline and has no job in the candidate"
                    .into()
            }
            Breakage::NoSuccessfulCandidateJob {
                build,
                infrastructure: 0,
            } => format!(
                "every candidate job failed: {}",
                failures(build, FailureKind::Build)
            ),
            Breakage::NoSuccessfulCandidateJob {
                build: 0,
                infrastructure,
            } => format!(
                "every candidate job failed: {} (engine, daemon, registry or timeout; not evidence that the strategy is slow, but nothing was measured)",
                failures(infrastructure, FailureKind::Infrastructure)
            ),
            Breakage::NoSuccessfulCandidateJob {
                build,
                infrastructure,
            } => format!(
                "every candidate job failed: {}, {}",
                failures(build, FailureKind::Build),
                failures(infrastructure, FailureKind::Infrastructure)
            ),
            Breakage::NewBuildFailures { candidate } => format!(
                "{} in the candidate, none in the baseline",
                failures(candidate, FailureKind::Build)
            ),
        }
    }
}

/// One strategy in one pipeline run, on one side.
#[derive(Debug, Clone, PartialEq)]
pub struct Side {
    /// Wall time of the successful jobs across iterations.
    pub wall_ms: Option<Spread>,
    /// The successful jobs' wall times, by iteration: what the bootstrap resamples.
    pub ok_wall_ms: Vec<f64>,
    pub ok_jobs: usize,
    pub failed_jobs: usize,
    /// Failed jobs whose builder rejected the Dockerfile or failed a step. Results written before
    /// failure kinds were recorded count every failure here: the reading a gate can defend.
    pub build_failures: usize,
    /// Failed jobs whose engine, daemon, registry or clean-up failed, or that timed out.
    pub infrastructure_failures: usize,
    /// Median 1-minute load average per host CPU over the successful jobs that recorded it.
    pub load_per_cpu: Option<f64>,
    /// Steps served from cache in more than half of the successful jobs.
    pub cached: BTreeSet<StepKey>,
    /// For steps that missed, the cause most of the successful jobs recorded (none in older results).
    pub miss_causes: BTreeMap<(String, String, u32), Cause>,
    pub total_steps: usize,
}

/// A Dockerfile step identified by what it is rather than its number, so that inserting a line
/// does not make every later step look changed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StepKey {
    pub stage: String,
    pub instruction: String,
    /// 0-based count of identical (stage, instruction) steps before this one.
    pub occurrence: u32,
    /// Step number, for display only.
    pub step: u32,
    /// Why the candidate's jobs missed it, for a step that stopped hitting (display only).
    pub cause: Option<Cause>,
}

impl StepKey {
    /// What makes two runs' steps the same step (the number is left out).
    fn id(&self) -> (&str, &str, u32) {
        (&self.stage, &self.instruction, self.occurrence)
    }

    pub fn label(&self) -> String {
        match self.cause {
            Some(cause) => format!("step {} `{}` ({})", self.step, self.instruction, cause.label()),
            None => format!("step {} `{}`", self.step, self.instruction),
        }
    }

    fn owned_id(&self) -> (String, String, u32) {
        (self.stage.clone(), self.instruction.clone(), self.occurrence)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub strategy: Strategy,
    pub pipeline_run: PipelineRunName,
    /// The concurrency level both sides are taken at: level N is compared with level N only.
    pub concurrency: u32,
    pub baseline: Option<Side>,
    pub candidate: Option<Side>,
    /// Relative change of the median, (candidate - baseline) / baseline.
    pub change: Option<f64>,
    /// 95% bootstrap interval of `change`; `None` when the times were not judged.
    pub interval: Option<(f64, f64)>,
    pub time: TimeVerdict,
    /// Steps that hit the cache in the baseline and no longer do.
    pub cache_lost: Vec<StepKey>,
    pub cache_gained: Vec<StepKey>,
    /// What makes this row a regression whatever its times say.
    pub breakage: Option<Breakage>,
    /// Environment differences that bear on an improved or regressed time: the whole run's
    /// (host, toolchain) and this row's own load. Empty for other verdicts.
    pub environment: Vec<Difference>,
    pub regressed: bool,
}

impl Row {
    /// The pipeline run, with its level when lanes ran at once: `cold`, `cold ×4 at once`.
    pub fn run_label(&self) -> String {
        match self.concurrency {
            1 => self.pipeline_run.to_string(),
            n => format!("{} ×{n} at once", self.pipeline_run),
        }
    }

    pub fn verdict(&self) -> &'static str {
        if self.regressed {
            "regressed"
        } else if self.time == TimeVerdict::Improved {
            "improved"
        } else if matches!(self.time, TimeVerdict::NotCompared(_)) {
            "not compared"
        } else if matches!(self.time, TimeVerdict::TooFewIterations { .. }) {
            "too few iterations"
        } else {
            "within noise"
        }
    }

    /// "environment differs: host CPUs, load per CPU 0.40 → 1.60", or `None`.
    pub fn environment_text(&self) -> Option<String> {
        if self.environment.is_empty() {
            return None;
        }
        let items: Vec<String> = self
            .environment
            .iter()
            .map(|d| {
                if d.is_load() {
                    format!("{} {} → {}", d.what, d.baseline, d.candidate)
                } else {
                    d.what.clone()
                }
            })
            .collect();
        Some(format!("environment differs: {}", items.join(", ")))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub scenario: String,
    pub baseline_run: String,
    pub candidate_run: String,
    pub threshold: f64,
    /// Things a reader must know to trust the rows (changed scenario files, an interrupted run).
    pub notes: Vec<String>,
    /// How the runs' hosts, toolchains and load differ: times may move with any of them.
    pub environment: Vec<Difference>,
    pub rows: Vec<Row>,
}

impl Comparison {
    pub fn regressed(&self) -> bool {
        self.rows.iter().any(|r| r.regressed)
    }

    pub fn count(&self, verdict: &str) -> usize {
        self.rows.iter().filter(|r| r.verdict() == verdict).count()
    }
}

/// Parses `10%` or `0.1` into 0.1. A bare number of 1 or more is refused as ambiguous.
pub fn parse_threshold(text: &str) -> Result<f64, CompareError> {
    let bad = |reason: &str| CompareError::Threshold {
        text: text.into(),
        reason: reason.into(),
    };
    let trimmed = text.trim();
    let (number, percent) = match trimmed.strip_suffix('%') {
        Some(n) => (n.trim(), true),
        None => (trimmed, false),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| bad("write a percentage such as 10% or a fraction such as 0.1"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(bad("it must be a finite number of zero or more"));
    }
    if percent {
        return Ok(value / 100.0);
    }
    if value >= 1.0 {
        return Err(bad(&format!(
            "write {value}% for a percentage, or a fraction below 1 such as 0.1"
        )));
    }
    Ok(value)
}

/// The exit code CI relies on: 0 no regression, 1 regression, 2 usage or data error.
pub fn exit_code(result: &Result<CompareOutcome, CompareError>) -> i32 {
    use crate::error::exit;
    match result {
        Ok(outcome) if outcome.regressed => exit::REGRESSION_OR_FAILED_JOB,
        Ok(_) => exit::OK,
        Err(_) => exit::USAGE,
    }
}

fn load(role: &str, dir: &Path) -> Result<RunData, CompareError> {
    let data = RunData::load(dir).map_err(|e| {
        CompareError::Data(format!(
            "cannot read the {role} results {}: {e}",
            dir.display()
        ))
    })?;
    if data.jobs.is_empty() {
        return Err(CompareError::Data(format!(
            "the {role} results {} hold no finished job: nothing to compare",
            dir.display()
        )));
    }
    Ok(data)
}

/// The steps that hit the cache in most successful jobs, the cause most recorded for each step that
/// missed, and the number of steps.
type Majority = (BTreeSet<StepKey>, BTreeMap<(String, String, u32), Cause>, usize);

/// Which steps hit the cache in most successful jobs of a strategy in a pipeline run.
fn cached_majority(data: &RunData, strategy: Strategy, run: &str) -> Majority {
    let ok: Vec<_> = data
        .jobs_of(strategy, run)
        .into_iter()
        .filter(|j| j.status == JobStatus::Ok)
        .collect();
    let mut hits: BTreeMap<StepKey, usize> = BTreeMap::new();
    let mut misses: BTreeMap<(String, String, u32), BTreeMap<Cause, usize>> = BTreeMap::new();
    for job in &ok {
        let mut seen: BTreeMap<(String, String), u32> = BTreeMap::new();
        for s in data.steps_of(job) {
            let n = seen
                .entry((s.stage.clone(), s.instruction.clone()))
                .or_default();
            let key = StepKey {
                stage: s.stage.clone(),
                instruction: s.instruction.clone(),
                occurrence: *n,
                step: s.step,
                cause: None,
            };
            *n += 1;
            match (s.cached, s.cause) {
                (Some(true), _) => *hits.entry(key).or_default() += 1,
                (Some(false), Some(cause)) => *misses.entry(key.owned_id()).or_default().entry(cause).or_default() += 1,
                _ => {}
            }
        }
    }
    let cached = hits
        .into_iter()
        .filter(|(_, n)| n * 2 > ok.len())
        .map(|(k, _)| k)
        .collect();
    let miss_causes = misses
        .into_iter()
        .filter_map(|(id, counts)| counts.into_iter().max_by_key(|(cause, n)| (*n, std::cmp::Reverse(*cause))).map(|(c, _)| (id, c)))
        .collect();
    (cached, miss_causes, data.step_table().len())
}

fn side(data: &RunData, strategy: Strategy, run: &str) -> Option<Side> {
    let jobs = data.jobs_of(strategy, run);
    if jobs.is_empty() {
        return None;
    }
    let (ok, failed): (Vec<_>, Vec<_>) = jobs.into_iter().partition(|j| j.status == JobStatus::Ok);
    let infrastructure_failures = failed
        .iter()
        .filter(|j| j.failure_kind == Some(FailureKind::Infrastructure))
        .count();
    let ok_wall_ms: Vec<f64> = ok.iter().map(|j| j.wall_ms as f64).collect();
    let (cached, miss_causes, total_steps) = cached_majority(data, strategy, run);
    Some(Side {
        wall_ms: Spread::of(ok_wall_ms.iter().copied()),
        ok_wall_ms,
        ok_jobs: ok.len(),
        failed_jobs: failed.len(),
        build_failures: failed.len() - infrastructure_failures,
        infrastructure_failures,
        load_per_cpu: environment::load_per_cpu(ok.iter().copied(), data.info.host.cpus),
        cached,
        miss_causes,
        total_steps,
    })
}

/// The pipeline run name of the row that judges the expected job time per pipeline under both runs' workload;
/// a space keeps it from ever being a scenario's run name.
pub const WEIGHTED_ROW: &str = "workload mix";

/// One strategy's expected job time per pipeline, iteration by iteration, as a side: what the bootstrap
/// resamples is the weighted total of each iteration in which every weighted run had its successful job.
fn weighted_side(data: &RunData, weighting: &crate::workload::Weighting, strategy: Strategy) -> Option<Side> {
    if data.jobs.iter().all(|j| j.strategy != strategy) {
        return None;
    }
    let ok_wall_ms: Vec<f64> = crate::report::verdict::iteration_totals(data, weighting, strategy).into_values().collect();
    Some(Side {
        wall_ms: Spread::of(ok_wall_ms.iter().copied()),
        ok_jobs: ok_wall_ms.len(),
        ok_wall_ms,
        failed_jobs: 0,
        build_failures: 0,
        infrastructure_failures: 0,
        load_per_cpu: None,
        cached: BTreeSet::new(),
        miss_causes: BTreeMap::new(),
        total_steps: 0,
    })
}

/// criterion.rs's `compare_to_threshold`: a change counts only when the whole interval lies
/// beyond the threshold, so that a noisy run cannot make a change out of nothing.
pub fn compare_to_threshold(interval: (f64, f64), threshold: f64) -> TimeVerdict {
    let (lo, hi) = interval;
    if lo > threshold && hi > threshold {
        TimeVerdict::Regressed
    } else if lo < -threshold && hi < -threshold {
        TimeVerdict::Improved
    } else {
        TimeVerdict::WithinNoise
    }
}

/// The change of the median wall time, its bootstrap interval when both sides have enough
/// successful iterations, and the verdict.
pub fn time_verdict(
    baseline_ms: &[f64],
    candidate_ms: &[f64],
    threshold: f64,
) -> (f64, Option<(f64, f64)>, TimeVerdict) {
    let median = |v: &[f64]| Spread::of(v.iter().copied()).map_or(0.0, |s| s.median);
    let (base, cand) = (median(baseline_ms), median(candidate_ms));
    let change = (cand - base) / base.max(f64::MIN_POSITIVE);
    if baseline_ms.len() < MIN_ITERATIONS || candidate_ms.len() < MIN_ITERATIONS {
        let verdict = TimeVerdict::TooFewIterations {
            baseline_ok: baseline_ms.len(),
            candidate_ok: candidate_ms.len(),
        };
        return (change, None, verdict);
    }
    match relative_change_of_median(baseline_ms, candidate_ms) {
        Some(e) => (
            e.change,
            Some(e.interval),
            compare_to_threshold(e.interval, threshold),
        ),
        // Not reached (both sides hold MIN_ITERATIONS values here); total rather than a panic.
        None => (change, None, TimeVerdict::WithinNoise),
    }
}

fn row(strategy: Strategy, run: &PipelineRunName, concurrency: u32, sides: (Option<Side>, Option<Side>), threshold: f64, whole_run: &[Difference]) -> Row {
    let (baseline, candidate) = sides;
    let (change, interval, time) = judge_times(baseline.as_ref(), candidate.as_ref(), threshold);
    let (cache_lost, cache_gained) = cache_changes(baseline.as_ref(), candidate.as_ref());
    let breakage = breakage(baseline.as_ref(), candidate.as_ref());
    let environment = if matches!(time, TimeVerdict::Regressed | TimeVerdict::Improved) {
        let load = environment::load_difference(
            baseline.as_ref().and_then(|s| s.load_per_cpu),
            candidate.as_ref().and_then(|s| s.load_per_cpu),
        );
        whole_run.iter().filter(|d| !d.is_load()).cloned().chain(load).collect()
    } else {
        vec![]
    };
    let regressed = time == TimeVerdict::Regressed || !cache_lost.is_empty() || breakage.is_some();
    Row {
        strategy,
        pipeline_run: run.clone(),
        concurrency,
        baseline,
        candidate,
        change,
        interval,
        time,
        cache_lost,
        cache_gained,
        breakage,
        environment,
        regressed,
    }
}

/// The change of the median wall time, its interval and the verdict, when both sides have successful jobs.
fn judge_times(baseline: Option<&Side>, candidate: Option<&Side>, threshold: f64) -> (Option<f64>, Option<(f64, f64)>, TimeVerdict) {
    let not_compared = |why: &str| (None, None, TimeVerdict::NotCompared(why.into()));
    match (baseline, candidate) {
        (None, _) => not_compared("only in the candidate"),
        (_, None) => not_compared("missing from the candidate"),
        (Some(b), Some(c)) => match (b.ok_jobs, c.ok_jobs) {
            (0, 0) => not_compared("every job failed on both sides"),
            (_, 0) => not_compared("no successful candidate job"),
            (0, _) => not_compared("no successful baseline job"),
            _ => {
                let (change, interval, verdict) = time_verdict(&b.ok_wall_ms, &c.ok_wall_ms, threshold);
                (Some(change), interval, verdict)
            }
        },
    }
}

/// Steps that hit in the baseline and no longer do, and the reverse, by step number.
fn cache_changes(baseline: Option<&Side>, candidate: Option<&Side>) -> (Vec<StepKey>, Vec<StepKey>) {
    let (Some(b), Some(c)) = (baseline, candidate) else { return (vec![], vec![]) };
    if b.ok_jobs == 0 || c.ok_jobs == 0 {
        return (vec![], vec![]);
    }
    let only_in = |one: &Side, other: &Side| {
        let ids: BTreeSet<_> = other.cached.iter().map(StepKey::id).collect();
        let mut keys: Vec<StepKey> = one.cached.iter().filter(|k| !ids.contains(&k.id())).cloned().collect();
        keys.sort_by_key(|k| k.step);
        keys
    };
    // A step that stopped hitting says why the candidate missed it.
    let lost = only_in(b, c).into_iter().map(|k| StepKey { cause: c.miss_causes.get(&k.owned_id()).copied(), ..k }).collect();
    (lost, only_in(c, b))
}

/// What makes a row a regression whatever its times say. A candidate that measured nothing fails the
/// gate even when the baseline failed too: a gate that passes on no evidence can be fooled by breaking
/// the thing it measures.
fn breakage(baseline: Option<&Side>, candidate: Option<&Side>) -> Option<Breakage> {
    match (baseline, candidate) {
        (Some(_), None) => Some(Breakage::MissingFromCandidate),
        (Some(_), Some(c)) if c.ok_jobs == 0 => {
            Some(Breakage::NoSuccessfulCandidateJob { build: c.build_failures, infrastructure: c.infrastructure_failures })
        }
        (Some(b), Some(c)) if b.build_failures == 0 && c.build_failures > 0 => {
            Some(Breakage::NewBuildFailures { candidate: c.build_failures })
        }
        _ => None,
    }
}

/// Names on either side, baseline order first.
fn union<T: PartialEq>(a: Vec<T>, b: Vec<T>) -> Vec<T> {
    let mut out = a;
    for x in b {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

pub fn compare_data(
    baseline: &RunData,
    candidate: &RunData,
    threshold: f64,
) -> Result<Comparison, CompareError> {
    let (b, c) = (&baseline.info, &candidate.info);
    // The scenario's name decides, not its hash: a nightly exists to catch the day someone edits
    // the Dockerfile and breaks the cache, and that edit changes the hash.
    if b.scenario != c.scenario {
        return Err(CompareError::Data(format!(
            "cannot compare runs of different scenarios: the baseline ({}) ran `{}` and the candidate ({}) ran `{}`; compare two runs of the same scenario",
            b.run_id, b.scenario, c.run_id, c.scenario
        )));
    }
    let mut notes = vec![];
    if b.scenario_hash != c.scenario_hash {
        notes.push(format!(
            "The scenario's files changed between the runs (sha256 {} -> {}): a difference may come from that change rather than from the build environment.",
            short_hash(&b.scenario_hash),
            short_hash(&c.scenario_hash)
        ));
    }
    if baseline.info.interrupted || candidate.info.interrupted {
        notes.push("At least one run was interrupted: some jobs are missing.".into());
    }
    let mut environment = environment::differences(b, c);
    let ok_jobs = |data: &RunData| {
        environment::load_per_cpu(
            data.jobs.iter().filter(|j| j.status == JobStatus::Ok),
            data.info.host.cpus,
        )
    };
    environment.extend(environment::load_difference(
        ok_jobs(baseline),
        ok_jobs(candidate),
    ));
    let weighting = match (&b.workload, &c.workload) {
        (Some(bw), Some(cw)) if bw == cw => Some(crate::workload::Weighting::of(Some(bw), &b.pipeline)),
        (None, None) => None,
        _ => {
            notes.push("The runs carry different workloads: the weighted figure (expected job time under the mix) is not compared.".into());
            None
        }
    };
    let mut rows = vec![];
    // Level N against level N only; a level the candidate lacks leaves its rows without a candidate side,
    // which is a regression, as a missing strategy is.
    for level in union(baseline.levels(), candidate.levels()) {
        let (b_level, c_level) = (baseline.at_level(level), candidate.at_level(level));
        for strategy in union(baseline.strategies(), candidate.strategies()) {
            for run in union(baseline.pipeline(), candidate.pipeline()) {
                let bs = side(&b_level, strategy, run.as_str());
                let cs = side(&c_level, strategy, run.as_str());
                if bs.is_none() && cs.is_none() {
                    continue;
                }
                rows.push(row(strategy, &run, level, (bs, cs), threshold, &environment));
            }
        }
        if let Some(weighting) = &weighting {
            for strategy in union(baseline.strategies(), candidate.strategies()) {
                let sides = (weighted_side(&b_level, weighting, strategy), weighted_side(&c_level, weighting, strategy));
                if sides.0.is_some() || sides.1.is_some() {
                    rows.push(row(strategy, &PipelineRunName::new(WEIGHTED_ROW), level, sides, threshold, &environment));
                }
            }
        }
    }
    Ok(Comparison {
        scenario: b.scenario.clone(),
        baseline_run: b.run_id.clone(),
        candidate_run: c.run_id.clone(),
        threshold,
        notes,
        environment,
        rows,
    })
}

/// "12.3 s (11.9–13.0 s)", with failed jobs counted by kind; "n/a" when no job succeeded.
fn side_text(side: &Option<Side>) -> String {
    use crate::report::format::{duration, MISSING};
    let Some(side) = side else {
        return "—".into();
    };
    let mut text = match &side.wall_ms {
        Some(w) if w.n > 1 && w.max > w.min => {
            format!(
                "{} ({}–{})",
                duration(w.median),
                duration(w.min),
                duration(w.max)
            )
        }
        Some(w) => duration(w.median),
        None => MISSING.into(),
    };
    let counts: Vec<String> = [
        (side.build_failures, FailureKind::Build),
        (side.infrastructure_failures, FailureKind::Infrastructure),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, kind)| failures(n, kind))
    .collect();
    if !counts.is_empty() {
        text.push_str(&format!(" [{}]", counts.join(", ")));
    }
    text
}

/// "+31.0% (+22.4% to +40.1%)": the change of the median and its 95% interval.
fn change_text(row: &Row) -> String {
    use crate::report::format::{change, MISSING};
    match (row.change, row.interval) {
        (Some(c), Some((lo, hi))) => format!("{} ({} to {})", change(c), change(lo), change(hi)),
        (Some(c), None) => change(c),
        _ => MISSING.into(),
    }
}

/// "13/15 → 10/15": steps served from cache in most successful jobs, of all steps.
fn cached_text(row: &Row) -> String {
    let count = |s: &Option<Side>| {
        s.as_ref()
            .filter(|s| s.ok_jobs > 0 && s.total_steps > 0)
            .map_or("—".to_string(), |s| {
                format!("{}/{}", s.cached.len(), s.total_steps)
            })
    };
    format!("{} → {}", count(&row.baseline), count(&row.candidate))
}

/// What else a row's verdict rests on: failures, lost and gained cache hits. Empty when nothing.
fn details_text(row: &Row) -> Vec<String> {
    let list = |keys: &[StepKey]| {
        keys.iter()
            .map(StepKey::label)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out: Vec<String> = row.breakage.iter().map(Breakage::text).collect();
    if let Some(c) = row.candidate.as_ref().filter(|c| c.ok_jobs > 0) {
        if c.infrastructure_failures > 0 {
            out.push(format!(
                "{} in the candidate, not counted against the strategy",
                failures(c.infrastructure_failures, FailureKind::Infrastructure)
            ));
        }
    }
    if !row.cache_lost.is_empty() {
        out.push(format!(
            "stopped hitting the cache: {}",
            list(&row.cache_lost)
        ));
    }
    if !row.cache_gained.is_empty() {
        out.push(format!("now hits the cache: {}", list(&row.cache_gained)));
    }
    out
}

fn summary_text(c: &Comparison) -> String {
    format!(
        "{} regressed, {} improved, {} within noise, {} with too few iterations, {} not compared (threshold {})",
        c.count("regressed"),
        c.count("improved"),
        c.count("within noise"),
        c.count("too few iterations"),
        c.count("not compared"),
        crate::report::format::change(c.threshold).trim_start_matches('+')
    )
}

fn short_hash(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

fn write(path: &Path, text: &str) -> Result<(), CompareError> {
    std::fs::write(path, text).map_err(|source| CompareError::Write {
        path: path.to_path_buf(),
        source,
    })
}

pub fn compare(options: &CompareOptions) -> Result<CompareOutcome, CompareError> {
    if !options.threshold.is_finite() || options.threshold < 0.0 {
        return Err(CompareError::Threshold {
            text: options.threshold.to_string(),
            reason: "it must be a finite number of zero or more".into(),
        });
    }
    let baseline = load("baseline", &options.baseline)?;
    let candidate = load("candidate", &options.candidate)?;
    let comparison = compare_data(&baseline, &candidate, options.threshold)?;
    if let Some(path) = &options.markdown {
        write(path, &markdown::render(&comparison))?;
    }
    if let Some(path) = &options.openmetrics {
        write(path, &openmetrics::render(&comparison))?;
    }
    Ok(CompareOutcome {
        regressed: comparison.regressed(),
        table: terminal::render(&comparison),
        comparison,
    })
}

/// The noise rule in words, shared by the terminal and Markdown (the README says the same).
pub fn rule_text(threshold: f64) -> String {
    format!(
        "For each strategy and pipeline run, the median wall time of the successful jobs is compared. \
         Both runs' iterations are resampled {RESAMPLES} times (a seeded bootstrap) to give a 95% \
         interval of the relative change of the median. Regressed when that whole interval is above \
         +{t}, improved when it is all below -{t}, otherwise within noise. With fewer than \
         {MIN_ITERATIONS} successful iterations on a side there is too little to judge the time. \
         A strategy or pipeline run missing from the candidate, or with no successful candidate job, \
         is a regression, and so are build failures the baseline did not have and a step that hit \
         the cache in most baseline jobs and misses in most candidate jobs, whatever the time says. \
         Infrastructure failures (engine, registry, timeout) are reported apart and are not counted \
         against a strategy that still succeeded.",
        t = crate::report::format::change(threshold).trim_start_matches('+')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_read_as_percentages_or_fractions() {
        assert_eq!(parse_threshold("10%").unwrap(), 0.10);
        assert_eq!(parse_threshold(" 2.5 % ").unwrap(), 0.025);
        assert_eq!(parse_threshold("0.1").unwrap(), 0.1);
        assert_eq!(parse_threshold("0").unwrap(), 0.0);
        for bad in ["10", "-5%", "ten", "", "NaN", "inf%"] {
            let err = parse_threshold(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
        assert!(parse_threshold("10")
            .unwrap_err()
            .to_string()
            .contains("10%"));
    }

    #[test]
    fn overlapping_iterations_are_noise_even_when_medians_differ_by_more_than_the_threshold() {
        let (change, interval, v) =
            time_verdict(&[100.0, 100.0, 140.0], &[95.0, 115.0, 150.0], 0.1);
        assert!((change - 0.15).abs() < 1e-9);
        let (lo, hi) = interval.unwrap();
        assert!(lo < 0.0 && hi > 0.1, "{lo} {hi}");
        assert_eq!(v, TimeVerdict::WithinNoise);
    }

    #[test]
    fn separated_iterations_beyond_the_threshold_regress_or_improve() {
        let base = [100.0, 102.0, 104.0];
        assert_eq!(
            time_verdict(&base, &[150.0, 152.0, 155.0], 0.1).2,
            TimeVerdict::Regressed
        );
        assert_eq!(
            time_verdict(&base, &[60.0, 62.0, 65.0], 0.1).2,
            TimeVerdict::Improved
        );
        // Separated, but by less than the threshold.
        assert_eq!(
            time_verdict(&base, &[106.0, 107.0, 108.0], 0.1).2,
            TimeVerdict::WithinNoise
        );
    }

    #[test]
    fn a_slowdown_the_old_min_max_rule_missed_is_found_with_more_iterations() {
        // One slow baseline iteration (a busy neighbour) overlaps the candidate's fastest one:
        // min–max called this noise; the median of ten iterations is not fooled by one outlier.
        let base = [
            100.0, 98.0, 103.0, 101.0, 99.0, 135.0, 102.0, 97.0, 100.0, 104.0,
        ];
        let cand = [
            131.0, 127.0, 135.0, 129.0, 133.0, 126.0, 130.0, 132.0, 128.0, 134.0,
        ];
        let (_, interval, v) = time_verdict(&base, &cand, 0.1);
        assert_eq!(v, TimeVerdict::Regressed, "{interval:?}");
    }

    #[test]
    fn fewer_than_three_successful_iterations_are_too_few_to_judge() {
        let (change, interval, v) = time_verdict(&[100.0], &[200.0], 0.1);
        assert!((change - 1.0).abs() < 1e-9, "the change is still shown");
        assert_eq!(interval, None);
        assert_eq!(
            v,
            TimeVerdict::TooFewIterations {
                baseline_ok: 1,
                candidate_ok: 1
            }
        );
        assert!(matches!(
            time_verdict(&[100.0, 101.0, 99.0], &[150.0, 151.0], 0.1).2,
            TimeVerdict::TooFewIterations { .. }
        ));
        assert!(
            v.label().contains("too few iterations to judge"),
            "{}",
            v.label()
        );
    }

    #[test]
    fn failures_say_whether_they_were_build_or_infrastructure() {
        let infra = Breakage::NoSuccessfulCandidateJob {
            build: 0,
            infrastructure: 3,
        };
        assert!(
            infra.text().contains("3 infrastructure failures"),
            "{}",
            infra.text()
        );
        assert!(infra.text().contains("not evidence"), "{}", infra.text());
        let both = Breakage::NoSuccessfulCandidateJob {
            build: 1,
            infrastructure: 2,
        };
        assert_eq!(
            both.text(),
            "every candidate job failed: 1 build failure, 2 infrastructure failures"
        );
    }

    #[test]
    fn the_exit_codes_are_0_1_2() {
        let outcome = |regressed| CompareOutcome {
            regressed,
            table: String::new(),
            comparison: Comparison {
                scenario: "s".into(),
                baseline_run: "a".into(),
                candidate_run: "b".into(),
                threshold: 0.1,
                notes: vec![],
                environment: vec![],
                rows: vec![],
            },
        };
        assert_eq!(exit_code(&Ok(outcome(false))), 0);
        assert_eq!(exit_code(&Ok(outcome(true))), 1);
        assert_eq!(exit_code(&Err(CompareError::Data("x".into()))), 2);
    }
}
