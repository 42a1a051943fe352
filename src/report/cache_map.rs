//! The cache map: for every Dockerfile step and job, whether the builder served it from cache, and why not.

use std::collections::BTreeMap;

use super::data::{RunData, Spread};
use crate::results::{JobRecord, StepInfo, StepRecord};
use crate::Millis;

/// Why a step missed the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The first miss of its stage: the step before it hit (or it is the stage's first cacheable
    /// step), so the builder rejected the step's own input.
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
    /// The job has no record of this step (it failed before, or its log was not parsed).
    NotRun,
}

impl StepState {
    /// CSS class and legend key.
    pub fn class(self) -> &'static str {
        match self {
            StepState::Hit => "hit",
            StepState::Miss(Cause::InputChanged) => "miss-input",
            StepState::Miss(Cause::AfterMiss) => "miss-after",
            StepState::Base => "base",
            StepState::NotRun => "not-run",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            StepState::Hit => "hit",
            StepState::Miss(Cause::InputChanged) => "miss: input changed",
            StepState::Miss(Cause::AfterMiss) => "miss: after a miss",
            StepState::Base => "base image (FROM)",
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
    pub strategy: String,
    pub pipeline_run: String,
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

/// Classifies one job's recorded steps, walking each stage in step order.
pub fn classify(steps: &[&StepRecord]) -> BTreeMap<u32, StepState> {
    let mut sorted: Vec<&StepRecord> = steps.to_vec();
    sorted.sort_by_key(|s| s.step);
    let mut previous_missed: BTreeMap<&str, bool> = BTreeMap::new();
    let mut states = BTreeMap::new();
    for s in sorted {
        let state = if is_base(&s.instruction) {
            StepState::Base
        } else if s.cached == Some(true) {
            previous_missed.insert(&s.stage, false);
            StepState::Hit
        } else {
            let after = previous_missed.insert(&s.stage, true).unwrap_or(false);
            StepState::Miss(if after {
                Cause::AfterMiss
            } else {
                Cause::InputChanged
            })
        };
        states.insert(s.step, state);
    }
    states
}

/// Majority over the iterations that ran the step; a tie counts as a miss, because a step
/// that misses half the time is not a step a pipeline can rely on.
fn majority(marks: &[Mark]) -> StepState {
    let count = |f: &dyn Fn(StepState) -> bool| marks.iter().filter(|m| f(m.state)).count();
    let hits = count(&|s| s == StepState::Hit);
    let input = count(&|s| s == StepState::Miss(Cause::InputChanged));
    let after = count(&|s| s == StepState::Miss(Cause::AfterMiss));
    let ran = hits + input + after;
    if ran == 0 {
        return if marks.iter().any(|m| m.state == StepState::Base) {
            StepState::Base
        } else {
            StepState::NotRun
        };
    }
    if hits * 2 > ran {
        StepState::Hit
    } else if after > input {
        StepState::Miss(Cause::AfterMiss)
    } else {
        StepState::Miss(Cause::InputChanged)
    }
}

fn marks_of(data: &RunData, jobs: &[&JobRecord], step: u32) -> Vec<Mark> {
    jobs.iter()
        .map(|job| {
            let records = data.steps_of(job);
            let states = classify(&records);
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
                columns.push(Column {
                    strategy: strategy.clone(),
                    pipeline_run: run,
                });
            }
        }
        let jobs: Vec<Vec<&JobRecord>> = columns
            .iter()
            .map(|c| data.jobs_of(&c.strategy, &c.pipeline_run))
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
            backend: "docker".into(),
            iteration: 1,
            pipeline_run: "no-change".into(),
            strategy: "s".into(),
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
        let states = classify(&refs);
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
