//! Figures per concurrency level and strategy, from jobs.csv and services.csv: what the report's "under
//! load" section shows.
//!
//! - **p50 / p95**: of the wall times of the level's successful jobs, every pipeline run and iteration
//!   pooled, as a CI queue sees them (nearest-rank percentiles: a value some job really took).
//! - **throughput**: successful jobs per hour on this host: the level's successful jobs over the time its
//!   rounds took, a round being one pipeline run of the strategy, from its first lane's start to its last
//!   lane's end.
//! - **hit rate**: of the cacheable steps of the level's successful jobs whose cache state the builder
//!   reported, the share it served from cache; a step it reported nothing for (BuildKit, for a build merged
//!   with an identical one beside it) is counted in `unreported`, never as a hit or a miss. Lanes that
//!   overwrite each other's cache show as hits lost against level 1.
//! - **reference**: the physical limit for the host: N jobs of the level-1 p50 each, spread over
//!   `min(N, cores)` cores, so `p50(1) × N / min(N, cores)` per job.

use std::collections::BTreeMap;

use super::data::RunData;
use super::{JobRecord, JobStatus};
use crate::strategy::Strategy;
use crate::{Bytes, Millis};

/// One strategy at one level.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelFigures {
    pub strategy: Strategy,
    pub level: u32,
    pub ok: usize,
    pub failed: usize,
    pub p50_ms: Option<Millis>,
    pub p95_ms: Option<Millis>,
    pub jobs_per_hour: Option<f64>,
    pub hit_rate: Option<f64>,
    /// Cacheable steps of the level's successful jobs whose cache state the builder did not report.
    pub unreported_steps: usize,
    /// Steps of the level's successful jobs that the builder reported as hits although their input changed
    /// (`hit-despite-change`): anomalies, which the report names rather than hides behind a hit rate.
    pub anomalies: usize,
    /// The level-1 p50 spread over the host's cores; `None` without level 1 or a core count.
    pub reference_ms: Option<f64>,
    /// The highest peak memory of one job at this level (its daemon's share included).
    pub peak_memory_bytes: Option<Bytes>,
    /// The strategy's shared daemon over the level's iterations: its highest CPU time of one iteration and
    /// its highest peak working set (services.csv); `None` for a strategy without one, or unmeasured.
    pub daemon_cpu_ms: Option<Millis>,
    pub daemon_peak_memory_bytes: Option<Bytes>,
}

/// The nearest-rank percentile `p` (0–100] of `values`; `None` when empty.
pub fn percentile(values: &[Millis], p: f64) -> Option<Millis> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

/// Every strategy at every level of the run, levels rising.
pub fn figures(data: &RunData) -> Vec<LevelFigures> {
    let levels = data.levels();
    let cores = data.info.host.cpus;
    let mut out = vec![];
    for strategy in data.strategies() {
        let alone_p50 = level_jobs(data, strategy, 1).map(|jobs| p50(&jobs)).unwrap_or(None);
        for &level in &levels {
            let Some(jobs) = level_jobs(data, strategy, level) else { continue };
            let ok: Vec<&JobRecord> = jobs.iter().copied().filter(|j| j.status == JobStatus::Ok).collect();
            let walls: Vec<Millis> = ok.iter().map(|j| j.wall_ms).collect();
            let services: Vec<_> = data.services.iter().filter(|s| s.strategy == strategy && s.concurrency == level).collect();
            let StepTally { hit_rate, unreported_steps, anomalies } = tally_steps(data, &ok);
            out.push(LevelFigures {
                strategy,
                level,
                ok: ok.len(),
                failed: jobs.len() - ok.len(),
                p50_ms: percentile(&walls, 50.0),
                p95_ms: percentile(&walls, 95.0),
                jobs_per_hour: jobs_per_hour(&jobs),
                hit_rate,
                unreported_steps,
                anomalies,
                reference_ms: match (alone_p50, cores) {
                    (Some(p50), Some(cores)) if cores > 0 => Some(p50 as f64 * level as f64 / level.min(cores) as f64),
                    _ => None,
                },
                peak_memory_bytes: max_all(ok.iter().map(|j| j.peak_memory_bytes)),
                daemon_cpu_ms: max_all(services.iter().map(|s| s.cpu_ms)),
                daemon_peak_memory_bytes: max_all(services.iter().map(|s| s.peak_memory_bytes)),
            });
        }
    }
    out
}

fn level_jobs(data: &RunData, strategy: Strategy, level: u32) -> Option<Vec<&JobRecord>> {
    let jobs: Vec<&JobRecord> = data.jobs.iter().filter(|j| j.strategy == strategy && j.concurrency == level).collect();
    (!jobs.is_empty()).then_some(jobs)
}

fn p50(jobs: &[&JobRecord]) -> Option<Millis> {
    let walls: Vec<Millis> = jobs.iter().filter(|j| j.status == JobStatus::Ok).map(|j| j.wall_ms).collect();
    percentile(&walls, 50.0)
}

/// The largest of figures that are all there; `None` as soon as one is missing (a partial maximum would
/// look like a whole one) or there are none.
fn max_all<T: Ord + Copy>(values: impl Iterator<Item = Option<T>>) -> Option<T> {
    let values: Option<Vec<T>> = values.collect();
    values?.into_iter().max()
}

/// Successful jobs per hour over the time the level's rounds took; `None` when a start time is unreadable.
fn jobs_per_hour(jobs: &[&JobRecord]) -> Option<f64> {
    let mut rounds: BTreeMap<(u32, &str), (i64, i64)> = BTreeMap::new();
    for job in jobs {
        let start = chrono::DateTime::parse_from_rfc3339(&job.started_at).ok()?.timestamp_millis();
        let end = start + job.wall_ms as i64;
        let span = rounds.entry((job.iteration, job.pipeline_run.as_str())).or_insert((start, end));
        span.0 = span.0.min(start);
        span.1 = span.1.max(end);
    }
    let busy_ms: i64 = rounds.values().map(|(start, end)| end - start).sum();
    let ok = jobs.iter().filter(|j| j.status == JobStatus::Ok).count();
    (busy_ms > 0).then(|| ok as f64 * 3_600_000.0 / busy_ms as f64)
}

/// What the builder reported of the steps of a level's successful jobs.
struct StepTally {
    /// Hits over the cacheable steps whose cache state the builder reported.
    hit_rate: Option<f64>,
    /// Cacheable steps whose cache state it did not report.
    unreported_steps: usize,
    /// Steps, cacheable or not, it reported as hits although their input changed.
    anomalies: usize,
}

fn tally_steps(data: &RunData, ok: &[&JobRecord]) -> StepTally {
    let (mut hits, mut reported, mut unreported, mut anomalies) = (0usize, 0usize, 0usize, 0usize);
    for job in ok {
        for step in data.steps_of(job) {
            anomalies += usize::from(step.cause == Some(crate::cause::Cause::HitDespiteChange));
            // A stage the builder skipped is neither a hit, a miss, nor unreported.
            if !crate::dockerfile::is_cacheable(&step.instruction) || step.cause == Some(crate::cause::Cause::NotRun) {
                continue;
            }
            match step.cached {
                Some(cached) => {
                    reported += 1;
                    hits += usize::from(cached);
                }
                None => unreported += 1,
            }
        }
    }
    StepTally { hit_rate: (reported > 0).then(|| hits as f64 / reported as f64), unreported_steps: unreported, anomalies }
}

/// Where the ranking by p50 at the highest level differs from level 1: (level-1 order, highest-level order).
pub fn ranking_change(figures: &[LevelFigures]) -> Option<(u32, Vec<Strategy>, Vec<Strategy>)> {
    let top = figures.iter().map(|f| f.level).max()?;
    let order = |level: u32| {
        let mut at: Vec<&LevelFigures> = figures.iter().filter(|f| f.level == level && f.p50_ms.is_some()).collect();
        at.sort_by_key(|f| f.p50_ms);
        at.into_iter().map(|f| f.strategy).collect::<Vec<_>>()
    };
    let (alone, loaded) = (order(1), order(top));
    // Only strategies measured at both levels are compared.
    let both = |list: &[Strategy], other: &[Strategy]| list.iter().copied().filter(|s| other.contains(s)).collect::<Vec<_>>();
    let (alone, loaded) = (both(&alone, &loaded), both(&loaded, &alone));
    (top > 1 && alone != loaded).then_some((top, alone, loaded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_values_a_job_took() {
        let walls = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
        assert_eq!(percentile(&walls, 50.0), Some(50));
        assert_eq!(percentile(&walls, 95.0), Some(100));
        assert_eq!(percentile(&[7], 95.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn a_maximum_with_a_gap_is_no_maximum() {
        assert_eq!(max_all([Some(3u64), Some(5)].into_iter()), Some(5));
        assert_eq!(max_all([Some(3u64), None].into_iter()), None);
        assert_eq!(max_all(std::iter::empty::<Option<u64>>()), None);
    }
}
