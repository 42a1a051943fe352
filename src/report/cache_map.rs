//! The cache map: for every Dockerfile step and job, whether the builder served it from cache, and why not.

use std::collections::BTreeMap;

use crate::results::data::{RunData, Spread};
use crate::results::{JobRecord, StepInfo, StepRecord};
use crate::Millis;

/// Why a step missed the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The job had nothing to reuse: its strategy keeps no cache between jobs (a fresh daemon that
    /// pulls nothing), or no earlier job of the strategy in the iteration succeeded (the first
    /// pipeline run, or every one before failed), so any cache import found nothing.
    NoCache,
    /// The first miss of its stage in a job that had a cache: the step before it hit (or it is the
    /// stage's first cacheable step), so the builder rejected the step's own input.
    InputChanged,
    /// The step before it in the same stage missed: its parent layer is new, so it could not hit.
    AfterMiss,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    Hit,
    Miss(Cause),
    /// `FROM`: builders never report a base image as a cache hit, so it is neither.
    Base,
    /// The builder ran nothing for it (BuildKit has no vertex for `ENV`, `CMD`, …): no layer to cache.
    Metadata,
    /// The job has no record of this step (it failed before, or its log was not parsed).
    NotRun,
}

impl StepState {
    /// Every state, in legend order.
    pub const ALL: [StepState; 7] = [
        StepState::Hit,
        StepState::Miss(Cause::NoCache),
        StepState::Miss(Cause::InputChanged),
        StepState::Miss(Cause::AfterMiss),
        StepState::Base,
        StepState::Metadata,
        StepState::NotRun,
    ];

    /// CSS class and legend key.
    pub fn class(self) -> &'static str {
        match self {
            StepState::Hit => "hit",
            StepState::Miss(Cause::NoCache) => "miss-none",
            StepState::Miss(Cause::InputChanged) => "miss-input",
            StepState::Miss(Cause::AfterMiss) => "miss-after",
            StepState::Base => "base",
            StepState::Metadata => "metadata",
            StepState::NotRun => "not-run",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            StepState::Hit => "hit",
            StepState::Miss(Cause::NoCache) => "miss: no cache",
            StepState::Miss(Cause::InputChanged) => "miss: input changed",
            StepState::Miss(Cause::AfterMiss) => "miss: after a miss",
            StepState::Base => "base image (FROM)",
            StepState::Metadata => "no layer (builder ran nothing)",
            StepState::NotRun => "not run",
        }
    }

    /// The few words a cache-map cell has room for.
    pub fn short(self) -> &'static str {
        match self {
            StepState::Hit => "hit",
            StepState::Miss(Cause::NoCache) => "no cache",
            StepState::Miss(Cause::InputChanged) => "changed",
            StepState::Miss(Cause::AfterMiss) => "after miss",
            StepState::Base => "FROM",
            StepState::Metadata => "no layer",
            StepState::NotRun => "not run",
        }
    }
}

/// One job's state for one step.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub iteration: u32,
    pub state: StepState,
    pub duration_ms: Option<Millis>,
}

/// One step in one (strategy, pipeline run): every iteration's mark and their majority.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub marks: Vec<Mark>,
    pub majority: StepState,
    /// Median duration over the iterations that ran the step and timed it.
    pub median_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub strategy: crate::strategy::Strategy,
    pub pipeline_run: crate::results::PipelineRunName,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CacheMap {
    pub steps: Vec<StepInfo>,
    pub columns: Vec<Column>,
    /// `cells[row][column]`, rows in `steps` order.
    pub cells: Vec<Vec<Cell>>,
}

pub fn is_base(instruction: &str) -> bool {
    instruction
        .trim_start()
        .get(..5)
        .is_some_and(|w| w.eq_ignore_ascii_case("FROM "))
}

/// Classifies one job's recorded steps, walking each stage in step order. `had_cache` says whether
/// the job had anything to reuse (see [`had_cache`]); without one, every miss is [`Cause::NoCache`].
pub fn classify(steps: &[&StepRecord], had_cache: bool) -> BTreeMap<u32, StepState> {
    let mut sorted: Vec<&StepRecord> = steps.to_vec();
    sorted.sort_by_key(|s| s.step);
    let mut previous_missed: BTreeMap<&str, bool> = BTreeMap::new();
    let mut states = BTreeMap::new();
    for s in sorted {
        let state = if is_base(&s.instruction) {
            StepState::Base
        } else {
            match s.cached {
                // No layer: the chain of its stage goes on from the step before it.
                None => StepState::Metadata,
                Some(true) => {
                    previous_missed.insert(&s.stage, false);
                    StepState::Hit
                }
                Some(false) => {
                    let after = previous_missed.insert(&s.stage, true).unwrap_or(false);
                    StepState::Miss(if !had_cache {
                        Cause::NoCache
                    } else if after {
                        Cause::AfterMiss
                    } else {
                        Cause::InputChanged
                    })
                }
            }
        };
        states.insert(s.step, state);
    }
    states
}

/// Whether `job` had a cache to reuse: its strategy keeps one between jobs, and an earlier job of the
/// same strategy in the same iteration succeeded (each iteration starts with empty daemons and an
/// empty registry).
pub fn had_cache(data: &RunData, job: &JobRecord) -> bool {
    job.strategy.keeps_cache()
        && data.jobs.iter().any(|j| {
            j.strategy == job.strategy
                && j.iteration == job.iteration
                && j.pipeline_index < job.pipeline_index
                && j.status == crate::results::JobStatus::Ok
        })
}

/// Majority over the iterations that ran the step; a tie counts as a miss, because a step
/// that misses half the time is not a step a pipeline can rely on.
fn majority(marks: &[Mark]) -> StepState {
    let count = |f: &dyn Fn(StepState) -> bool| marks.iter().filter(|m| f(m.state)).count();
    let hits = count(&|s| s == StepState::Hit);
    let causes = [Cause::NoCache, Cause::InputChanged, Cause::AfterMiss].map(|c| (c, count(&|s| s == StepState::Miss(c))));
    let ran = hits + causes.iter().map(|(_, n)| n).sum::<usize>();
    if ran == 0 {
        return [StepState::Base, StepState::Metadata]
            .into_iter()
            .find(|state| marks.iter().any(|m| m.state == *state))
            .unwrap_or(StepState::NotRun);
    }
    if hits * 2 > ran {
        return StepState::Hit;
    }
    // The most frequent cause; on a tie the earlier one in `causes` (no cache explains the rest).
    let (cause, _) = causes.iter().fold(causes[0], |best, c| if c.1 > best.1 { *c } else { best });
    StepState::Miss(cause)
}

fn marks_of(data: &RunData, jobs: &[&JobRecord], step: u32) -> Vec<Mark> {
    jobs.iter()
        .map(|job| {
            let records = data.steps_of(job);
            let states = classify(&records, had_cache(data, job));
            let record = records.iter().find(|r| r.step == step);
            Mark {
                iteration: job.iteration,
                state: states.get(&step).copied().unwrap_or(StepState::NotRun),
                duration_ms: record.and_then(|r| r.duration_ms),
            }
        })
        .collect()
}

impl CacheMap {
    pub fn build(data: &RunData) -> CacheMap {
        let steps = data.step_table();
        let mut columns = vec![];
        for strategy in data.strategies() {
            for run in data.pipeline() {
                columns.push(Column { strategy, pipeline_run: run });
            }
        }
        let jobs: Vec<Vec<&JobRecord>> = columns
            .iter()
            .map(|c| data.jobs_of(c.strategy, c.pipeline_run.as_str()))
            .collect();
        let cells = steps
            .iter()
            .map(|step| {
                jobs.iter()
                    .map(|jobs| {
                        let marks = marks_of(data, jobs, step.step);
                        let ran = marks.iter().filter(|m| m.state != StepState::NotRun);
                        Cell {
                            majority: majority(&marks),
                            median_ms: Spread::of(
                                ran.filter_map(|m| m.duration_ms.map(|d| d as f64)),
                            )
                            .map(|s| s.median),
                            marks,
                        }
                    })
                    .collect()
            })
            .collect();
        CacheMap {
            steps,
            columns,
            cells,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(stage: &str, step: u32, instruction: &str, cached: bool) -> StepRecord {
        StepRecord {
            run_id: "r".into(),
            backend: crate::results::BackendKind::Docker,
            iteration: 1,
            pipeline_run: "no-change".into(),
            strategy: crate::strategy::Strategy::named("shared-dind"),
            stage: stage.into(),
            step,
            total_steps: 6,
            instruction: instruction.into(),
            cached: Some(cached),
            duration_ms: Some(10),
        }
    }

    #[test]
    fn the_first_miss_of_a_stage_is_its_own_input_and_the_rest_follow_it() {
        let steps = [
            record("builder", 1, "FROM python AS builder", false),
            record("builder", 2, "RUN a", false),
            record("builder", 3, "RUN b", false),
            record("0", 4, "FROM python", false),
            record("0", 5, "ENV X=1", true),
            record("0", 6, "COPY --from=builder /a /a", false),
            record("0", 7, "RUN c", false),
        ];
        let refs: Vec<&StepRecord> = steps.iter().collect();
        let states = classify(&refs, true);
        assert_eq!(states[&1], StepState::Base);
        assert_eq!(
            states[&2],
            StepState::Miss(Cause::InputChanged),
            "first step after FROM"
        );
        assert_eq!(states[&3], StepState::Miss(Cause::AfterMiss));
        assert_eq!(
            states[&4],
            StepState::Base,
            "a new stage starts a new chain"
        );
        assert_eq!(states[&5], StepState::Hit);
        assert_eq!(
            states[&6],
            StepState::Miss(Cause::InputChanged),
            "previous step hit"
        );
        assert_eq!(states[&7], StepState::Miss(Cause::AfterMiss));
    }

    #[test]
    fn without_a_cache_every_miss_says_so_and_metadata_rows_are_no_miss() {
        let mut env = record("0", 3, "ENV X=1", false);
        env.cached = None;
        let steps = [
            record("0", 1, "FROM python", false),
            record("0", 2, "RUN a", false),
            env,
            record("0", 4, "RUN b", false),
        ];
        let refs: Vec<&StepRecord> = steps.iter().collect();
        let cold = classify(&refs, false);
        assert_eq!(cold[&2], StepState::Miss(Cause::NoCache), "nothing to reuse is not a changed input");
        assert_eq!(cold[&3], StepState::Metadata, "a step the builder ran nothing for is not a miss");
        assert_eq!(cold[&4], StepState::Miss(Cause::NoCache));
        let warm = classify(&refs, true);
        assert_eq!(warm[&2], StepState::Miss(Cause::InputChanged));
        assert_eq!(warm[&4], StepState::Miss(Cause::AfterMiss), "the metadata row does not break the chain");
    }

    #[test]
    fn majority_ties_count_as_misses() {
        let mark = |state| Mark {
            iteration: 1,
            state,
            duration_ms: None,
        };
        let hit = mark(StepState::Hit);
        let miss = mark(StepState::Miss(Cause::InputChanged));
        assert_eq!(majority(&[hit.clone(), miss.clone()]), miss.state);
        assert_eq!(
            majority(&[hit.clone(), hit.clone(), miss.clone()]),
            StepState::Hit
        );
        assert_eq!(
            majority(&[mark(StepState::NotRun), hit.clone()]),
            StepState::Hit
        );
        assert_eq!(majority(&[mark(StepState::NotRun)]), StepState::NotRun);
    }
}
