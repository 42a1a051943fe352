//! The results model: one results directory loaded whole, and its records aggregated into the figures
//! the report and `compare` both show.

use std::collections::BTreeMap;
use std::path::Path;

use crate::results::{
    self, CacheRecord, JobRecord, JobStatus, PipelineRunName, ResultsError, RunInfo, ServiceRecord, StepInfo,
    StepRecord,
};
use crate::strategy::{Phase, Strategy};
use crate::Millis;

/// Every record of `results/<run-id>/`.
#[derive(Debug, Clone)]
pub struct RunData {
    pub info: RunInfo,
    pub jobs: Vec<JobRecord>,
    pub steps: Vec<StepRecord>,
    pub cache: Vec<CacheRecord>,
    pub services: Vec<ServiceRecord>,
}

/// Median and range of one measure across iterations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// How many values it was computed from.
    pub n: usize,
}

impl Spread {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut values: Vec<f64> = values.into_iter().collect();
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: values[0],
            max: values[n - 1],
            n,
        })
    }
}

/// Wall time of the jobs of one strategy in one pipeline run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeCell {
    /// Over the successful jobs only; `None` when none succeeded.
    pub wall_ms: Option<Spread>,
    pub ok: usize,
    pub failed: usize,
    /// Of `failed`, the jobs that failed around the build (engine, daemon, registry, timeout, clean-up):
    /// no evidence about the strategy.
    pub infrastructure_failed: usize,
}

pub const PHASES: [Phase; 8] = Phase::ALL;

pub fn phase_name(phase: Phase) -> &'static str {
    phase.name()
}

pub fn phase_ms(job: &JobRecord, phase: Phase) -> Option<Millis> {
    job.phase_ms(phase)
}

/// Sums per-pipeline-run figures; `None` as soon as one run has no figure, because a
/// partial sum would look like a whole one.
pub fn sum_all(values: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    values
        .into_iter()
        .try_fold(0.0, |acc, v| v.map(|v| acc + v))
}

impl RunData {
    pub fn load(dir: &Path) -> Result<RunData, ResultsError> {
        Ok(RunData {
            info: results::read_run_info(dir)?,
            jobs: results::read_jobs(dir)?,
            steps: results::read_steps(dir)?,
            cache: results::read_cache(dir)?,
            services: results::read_services(dir)?,
        })
    }

    /// The concurrency levels with at least one job, rising (run.json's list where jobs.csv has none).
    pub fn levels(&self) -> Vec<u32> {
        let mut levels: Vec<u32> = self.jobs.iter().map(|j| j.concurrency).collect();
        levels.sort_unstable();
        levels.dedup();
        if levels.is_empty() {
            return self.info.concurrency.clone();
        }
        levels
    }

    /// The records of one level only: what the one-at-a-time figures (level 1) or one level's are made of.
    pub fn at_level(&self, level: u32) -> RunData {
        RunData {
            info: self.info.clone(),
            jobs: self.jobs.iter().filter(|j| j.concurrency == level).cloned().collect(),
            steps: self.steps.iter().filter(|s| s.concurrency == level).cloned().collect(),
            cache: self.cache.iter().filter(|c| c.concurrency == level).cloned().collect(),
            services: self.services.iter().filter(|s| s.concurrency == level).cloned().collect(),
        }
    }

    /// Strategies with at least one job: run.json's order, then any that only jobs.csv names.
    pub fn strategies(&self) -> Vec<Strategy> {
        let mut names: Vec<Strategy> =
            self.info.strategies.iter().filter(|s| self.jobs.iter().any(|j| j.strategy == **s)).copied().collect();
        for job in &self.jobs {
            if !names.contains(&job.strategy) {
                names.push(job.strategy);
            }
        }
        names
    }

    /// Strategies run.json lists that have no job at all (skipped, or the run stopped first).
    pub fn strategies_without_jobs(&self) -> Vec<Strategy> {
        let ran = self.strategies();
        self.info.strategies.iter().filter(|s| !ran.contains(s)).copied().collect()
    }

    /// Pipeline runs with at least one job: run.json's order, then any that only jobs.csv names
    /// (by their index). An interrupted run is reported over the runs it reached.
    pub fn pipeline(&self) -> Vec<PipelineRunName> {
        let mut names: Vec<PipelineRunName> = self
            .info
            .pipeline
            .iter()
            .filter(|r| self.jobs.iter().any(|j| &j.pipeline_run == *r))
            .cloned()
            .collect();
        let mut extra: Vec<&JobRecord> = self
            .jobs
            .iter()
            .filter(|j| !self.info.pipeline.contains(&j.pipeline_run))
            .collect();
        extra.sort_by_key(|j| j.pipeline_index);
        for job in extra {
            if !names.contains(&job.pipeline_run) {
                names.push(job.pipeline_run.clone());
            }
        }
        names
    }

    /// The jobs of one strategy in one pipeline run, by iteration.
    pub fn jobs_of(&self, strategy: Strategy, run: &str) -> Vec<&JobRecord> {
        let mut jobs: Vec<&JobRecord> = self
            .jobs
            .iter()
            .filter(|j| j.strategy == strategy && j.pipeline_run == run)
            .collect();
        jobs.sort_by_key(|j| j.iteration);
        jobs
    }

    fn ok_jobs_of(&self, strategy: Strategy, run: &str) -> Vec<&JobRecord> {
        self.jobs_of(strategy, run)
            .into_iter()
            .filter(|j| j.status == JobStatus::Ok)
            .collect()
    }

    pub fn wall(&self, strategy: Strategy, run: &str) -> TimeCell {
        let jobs = self.jobs_of(strategy, run);
        let ok: Vec<&&JobRecord> = jobs.iter().filter(|j| j.status == JobStatus::Ok).collect();
        TimeCell {
            wall_ms: Spread::of(ok.iter().map(|j| j.wall_ms as f64)),
            ok: ok.len(),
            failed: jobs.len() - ok.len(),
            infrastructure_failed: jobs
                .iter()
                .filter(|j| j.failure_kind == Some(crate::results::FailureKind::Infrastructure))
                .count(),
        }
    }

    /// Median of an optional per-job figure over the successful jobs that recorded it.
    pub fn job_median(
        &self,
        strategy: Strategy,
        run: &str,
        figure: impl Fn(&JobRecord) -> Option<u64>,
    ) -> Option<f64> {
        Spread::of(
            self.ok_jobs_of(strategy, run)
                .into_iter()
                .filter_map(|j| figure(j).map(|v| v as f64)),
        )
        .map(|s| s.median)
    }

    /// Sum over the pipeline of the per-run median of a per-job figure (successful jobs).
    pub fn pipeline_total(
        &self,
        strategy: Strategy,
        figure: impl Fn(&JobRecord) -> Option<u64>,
    ) -> Option<f64> {
        sum_all(
            self.pipeline()
                .iter()
                .map(|run| self.job_median(strategy, run.as_str(), &figure)),
        )
    }

    /// Median across iterations of a cache.csv figure after the last pipeline run that has one.
    pub fn storage_after_last_run(
        &self,
        strategy: Strategy,
        figure: impl Fn(&CacheRecord) -> Option<u64>,
    ) -> Option<f64> {
        self.pipeline().iter().rev().find_map(|run| {
            Spread::of(
                self.cache
                    .iter()
                    .filter(|c| c.strategy == strategy && c.pipeline_run == *run)
                    .filter_map(|c| figure(c).map(|v| v as f64)),
            )
            .map(|s| s.median)
        })
    }

    /// The Dockerfile's steps: run.json's table, or (for results written without it) the
    /// distinct steps seen in steps.csv. A pipeline that edits its Dockerfile has a row for each instruction a
    /// step number had.
    pub fn step_table(&self) -> Vec<StepInfo> {
        if !self.info.steps.is_empty() {
            let mut steps = self.info.steps.clone();
            steps.sort_by_key(|s| s.step);
            return steps;
        }
        let mut seen: BTreeMap<(u32, &str), StepInfo> = BTreeMap::new();
        for s in &self.steps {
            seen.entry((s.step, s.instruction.as_str())).or_insert_with(|| StepInfo {
                stage: s.stage.clone(),
                step: s.step,
                instruction: s.instruction.clone(),
            });
        }
        seen.into_values().collect()
    }

    /// The step records of one job, by step number.
    pub fn steps_of(&self, job: &JobRecord) -> Vec<&StepRecord> {
        let mut steps: Vec<&StepRecord> = self
            .steps
            .iter()
            .filter(|s| {
                s.iteration == job.iteration
                    && s.strategy == job.strategy
                    && s.pipeline_run == job.pipeline_run
                    && s.concurrency == job.concurrency
                    && s.lane == job.lane
            })
            .collect();
        steps.sort_by_key(|s| s.step);
        steps
    }

    /// Median start-up time of each long-lived service, by (strategy, service).
    pub fn service_startups(&self) -> Vec<(Strategy, String, Spread)> {
        let mut by_key: BTreeMap<(Strategy, String), Vec<f64>> = BTreeMap::new();
        for s in &self.services {
            by_key
                .entry((s.strategy, s.service.clone()))
                .or_default()
                .push(s.startup_ms as f64);
        }
        by_key
            .into_iter()
            .filter_map(|((strategy, service), v)| Spread::of(v).map(|s| (strategy, service, s)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_an_even_count_is_the_mean_of_the_middle_pair() {
        let s = Spread::of([4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.5, 1.0, 4.0, 4));
        assert_eq!(Spread::of([7.0]).unwrap().median, 7.0);
        assert!(Spread::of([]).is_none());
    }

    #[test]
    fn a_sum_with_a_missing_run_is_missing() {
        assert_eq!(sum_all([Some(1.0), Some(2.0)]), Some(3.0));
        assert_eq!(sum_all([Some(1.0), None]), None);
    }
}
