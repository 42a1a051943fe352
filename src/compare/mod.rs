//! Compares two results directories: improved, regressed or within noise, per strategy and pipeline run.

mod markdown;
mod openmetrics;
mod terminal;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::report::data::{RunData, Spread};
use crate::results::JobStatus;

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

/// The three-way verdict on a median job time, as criterion.rs gives it.
#[derive(Debug, Clone, PartialEq)]
pub enum TimeVerdict {
    Improved,
    Regressed,
    WithinNoise,
    /// One side has no successful job (or no job at all); the reason says which.
    NotCompared(String),
}

impl TimeVerdict {
    pub fn label(&self) -> String {
        match self {
            TimeVerdict::Improved => "improved".into(),
            TimeVerdict::Regressed => "regressed".into(),
            TimeVerdict::WithinNoise => "within noise".into(),
            TimeVerdict::NotCompared(reason) => format!("not compared ({reason})"),
        }
    }
}

/// One strategy in one pipeline run, on one side.
#[derive(Debug, Clone, PartialEq)]
pub struct Side {
    /// Wall time of the successful jobs across iterations.
    pub wall_ms: Option<Spread>,
    pub ok_jobs: usize,
    pub failed_jobs: usize,
    /// Steps served from cache in more than half of the successful jobs.
    pub cached: BTreeSet<StepKey>,
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
}

impl StepKey {
    /// What makes two runs' steps the same step (the number is left out).
    fn id(&self) -> (&str, &str, u32) {
        (&self.stage, &self.instruction, self.occurrence)
    }

    pub fn label(&self) -> String {
        format!("step {} `{}`", self.step, self.instruction)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub strategy: String,
    pub pipeline_run: String,
    pub baseline: Option<Side>,
    pub candidate: Option<Side>,
    /// Relative change of the median, (candidate - baseline) / baseline.
    pub change: Option<f64>,
    /// The widest change the two runs' spreads allow: (min_c - max_b, max_c - min_b) / median_b.
    pub interval: Option<(f64, f64)>,
    pub time: TimeVerdict,
    /// Steps that hit the cache in the baseline and no longer do.
    pub cache_lost: Vec<StepKey>,
    pub cache_gained: Vec<StepKey>,
    /// Every successful baseline job became a failure.
    pub now_failing: bool,
    pub regressed: bool,
}

impl Row {
    pub fn verdict(&self) -> &'static str {
        if self.regressed {
            "regressed"
        } else if self.time == TimeVerdict::Improved {
            "improved"
        } else if matches!(self.time, TimeVerdict::NotCompared(_)) {
            "not compared"
        } else {
            "within noise"
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub scenario: String,
    pub baseline_run: String,
    pub candidate_run: String,
    pub threshold: f64,
    /// Things a reader must know to trust the rows (changed scenario files, another backend).
    pub notes: Vec<String>,
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

/// Which steps hit the cache in most successful jobs of a strategy in a pipeline run.
fn cached_majority(data: &RunData, strategy: &str, run: &str) -> (BTreeSet<StepKey>, usize) {
    let ok: Vec<_> = data
        .jobs_of(strategy, run)
        .into_iter()
        .filter(|j| j.status == JobStatus::Ok)
        .collect();
    let mut hits: BTreeMap<StepKey, usize> = BTreeMap::new();
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
            };
            *n += 1;
            if s.cached == Some(true) {
                *hits.entry(key).or_default() += 1;
            }
        }
    }
    let cached = hits
        .into_iter()
        .filter(|(_, n)| n * 2 > ok.len())
        .map(|(k, _)| k)
        .collect();
    (cached, data.step_table().len())
}

fn side(data: &RunData, strategy: &str, run: &str) -> Option<Side> {
    let cell = data.wall(strategy, run);
    if cell.ok + cell.failed == 0 {
        return None;
    }
    let (cached, total_steps) = cached_majority(data, strategy, run);
    Some(Side {
        wall_ms: cell.wall_ms,
        ok_jobs: cell.ok,
        failed_jobs: cell.failed,
        cached,
        total_steps,
    })
}

/// The noise rule, after criterion.rs's `compare_to_threshold`: a change counts only when even
/// the most favourable pairing of the two runs' iterations moves beyond the threshold.
pub fn time_verdict(
    baseline: &Spread,
    candidate: &Spread,
    threshold: f64,
) -> (f64, (f64, f64), TimeVerdict) {
    let base = baseline.median.max(f64::MIN_POSITIVE);
    let change = (candidate.median - baseline.median) / base;
    let lo = (candidate.min - baseline.max) / base;
    let hi = (candidate.max - baseline.min) / base;
    let verdict = if lo > threshold && hi > threshold {
        TimeVerdict::Regressed
    } else if lo < -threshold && hi < -threshold {
        TimeVerdict::Improved
    } else {
        TimeVerdict::WithinNoise
    };
    (change, (lo, hi), verdict)
}

fn row(
    strategy: &str,
    run: &str,
    baseline: Option<Side>,
    candidate: Option<Side>,
    threshold: f64,
) -> Row {
    let mut change = None;
    let mut interval = None;
    let time = match (&baseline, &candidate) {
        (None, _) => TimeVerdict::NotCompared("only in the candidate".into()),
        (_, None) => TimeVerdict::NotCompared("only in the baseline".into()),
        (Some(b), Some(c)) => match (&b.wall_ms, &c.wall_ms) {
            (Some(bw), Some(cw)) => {
                let (ch, iv, v) = time_verdict(bw, cw, threshold);
                change = Some(ch);
                interval = Some(iv);
                v
            }
            (Some(_), None) => TimeVerdict::NotCompared("every candidate job failed".into()),
            (None, Some(_)) => TimeVerdict::NotCompared("every baseline job failed".into()),
            (None, None) => TimeVerdict::NotCompared("every job failed on both sides".into()),
        },
    };
    let (cache_lost, cache_gained) = match (&baseline, &candidate) {
        (Some(b), Some(c)) if b.ok_jobs > 0 && c.ok_jobs > 0 => {
            let base_ids: BTreeSet<_> = b.cached.iter().map(StepKey::id).collect();
            let cand_ids: BTreeSet<_> = c.cached.iter().map(StepKey::id).collect();
            let mut lost: Vec<StepKey> = b
                .cached
                .iter()
                .filter(|k| !cand_ids.contains(&k.id()))
                .cloned()
                .collect();
            let mut gained: Vec<StepKey> = c
                .cached
                .iter()
                .filter(|k| !base_ids.contains(&k.id()))
                .cloned()
                .collect();
            lost.sort_by_key(|k| k.step);
            gained.sort_by_key(|k| k.step);
            (lost, gained)
        }
        _ => (vec![], vec![]),
    };
    let now_failing =
        matches!((&baseline, &candidate), (Some(b), Some(c)) if b.ok_jobs > 0 && c.ok_jobs == 0);
    let regressed = time == TimeVerdict::Regressed || !cache_lost.is_empty() || now_failing;
    Row {
        strategy: strategy.into(),
        pipeline_run: run.into(),
        baseline,
        candidate,
        change,
        interval,
        time,
        cache_lost,
        cache_gained,
        now_failing,
        regressed,
    }
}

/// Names on either side, baseline order first.
fn union(a: Vec<String>, b: Vec<String>) -> Vec<String> {
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
    if b.backend != c.backend {
        notes.push(format!(
            "The runs used different backends ({} -> {}).",
            b.backend, c.backend
        ));
    }
    if baseline.info.interrupted || candidate.info.interrupted {
        notes.push("At least one run was interrupted: some jobs are missing.".into());
    }
    let mut rows = vec![];
    for strategy in union(baseline.strategies(), candidate.strategies()) {
        for run in union(baseline.pipeline(), candidate.pipeline()) {
            let bs = side(baseline, &strategy, &run);
            let cs = side(candidate, &strategy, &run);
            if bs.is_none() && cs.is_none() {
                continue;
            }
            rows.push(row(&strategy, &run, bs, cs, threshold));
        }
    }
    Ok(Comparison {
        scenario: b.scenario.clone(),
        baseline_run: b.run_id.clone(),
        candidate_run: c.run_id.clone(),
        threshold,
        notes,
        rows,
    })
}

/// "12.3 s (11.9–13.0 s)", with failed jobs counted; "n/a" when no job succeeded.
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
    if side.failed_jobs > 0 {
        text.push_str(&format!(" [{} failed]", side.failed_jobs));
    }
    text
}

fn change_text(row: &Row) -> String {
    row.change.map_or_else(
        || crate::report::format::MISSING.into(),
        crate::report::format::change,
    )
}

/// "13/15 → 10/15": steps served from cache in most successful jobs, of all steps.
fn cached_text(row: &Row) -> String {
    let count = |s: &Option<Side>| {
        s.as_ref()
            .filter(|s| s.ok_jobs > 0)
            .map_or("—".to_string(), |s| {
                format!("{}/{}", s.cached.len(), s.total_steps)
            })
    };
    format!("{} → {}", count(&row.baseline), count(&row.candidate))
}

/// "stopped hitting: step 13 `EXPOSE 5000`, ..." or empty.
fn cache_change_text(row: &Row) -> Vec<String> {
    let list = |keys: &[StepKey]| {
        keys.iter()
            .map(StepKey::label)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = vec![];
    if !row.cache_lost.is_empty() {
        out.push(format!(
            "stopped hitting the cache: {}",
            list(&row.cache_lost)
        ));
    }
    if !row.cache_gained.is_empty() {
        out.push(format!("now hits the cache: {}", list(&row.cache_gained)));
    }
    if row.now_failing {
        out.push("every candidate job failed".into());
    }
    out
}

fn summary_text(c: &Comparison) -> String {
    format!(
        "{} regressed, {} improved, {} within noise, {} not compared (threshold {})",
        c.count("regressed"),
        c.count("improved"),
        c.count("within noise"),
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

/// The noise rule in words, shared by the terminal, Markdown and README.
pub fn rule_text(threshold: f64) -> String {
    format!(
        "For each strategy and pipeline run, the median wall time of the successful jobs is compared. \
         The change is bounded by the two runs' spreads across iterations: from (fastest candidate - \
         slowest baseline) to (slowest candidate - fastest baseline), relative to the baseline median. \
         Regressed when that whole interval is above +{t}, improved when it is all below -{t}, \
         otherwise within noise. A step that hit the cache in most baseline jobs and misses in most \
         candidate jobs is a regression whatever the time says, and so is a strategy whose every \
         candidate job failed.",
        t = crate::report::format::change(threshold).trim_start_matches('+')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(v: &[f64]) -> Spread {
        Spread::of(v.iter().copied()).unwrap()
    }

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
    fn overlapping_spreads_are_noise_even_when_medians_differ_by_more_than_the_threshold() {
        let (change, _, v) = time_verdict(
            &spread(&[100.0, 100.0, 140.0]),
            &spread(&[95.0, 115.0, 150.0]),
            0.1,
        );
        assert!((change - 0.15).abs() < 1e-9);
        assert_eq!(v, TimeVerdict::WithinNoise);
    }

    #[test]
    fn separated_spreads_beyond_the_threshold_regress_or_improve() {
        let base = spread(&[100.0, 102.0, 104.0]);
        assert_eq!(
            time_verdict(&base, &spread(&[150.0, 152.0, 155.0]), 0.1).2,
            TimeVerdict::Regressed
        );
        assert_eq!(
            time_verdict(&base, &spread(&[60.0, 62.0, 65.0]), 0.1).2,
            TimeVerdict::Improved
        );
        // Separated, but by less than the threshold.
        assert_eq!(
            time_verdict(&base, &spread(&[106.0, 107.0, 108.0]), 0.1).2,
            TimeVerdict::WithinNoise
        );
    }

    #[test]
    fn a_single_iteration_is_judged_on_the_threshold_alone() {
        let (_, interval, v) = time_verdict(&spread(&[100.0]), &spread(&[111.0]), 0.1);
        assert_eq!(interval, (0.11, 0.11));
        assert_eq!(v, TimeVerdict::Regressed);
        assert_eq!(
            time_verdict(&spread(&[100.0]), &spread(&[109.0]), 0.1).2,
            TimeVerdict::WithinNoise
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
                rows: vec![],
            },
        };
        assert_eq!(exit_code(&Ok(outcome(false))), 0);
        assert_eq!(exit_code(&Ok(outcome(true))), 1);
        assert_eq!(exit_code(&Err(CompareError::Data("x".into()))), 2);
    }
}
