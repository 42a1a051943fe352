//! The cache map: for every Dockerfile step and job, whether the builder served it from cache, and why not,
//! as the run recorded it (`steps.csv`'s `cause`, computed from the steps' inputs by `crate::cause`).

use crate::cause::Cause;
use crate::results::data::{RunData, Spread};
use crate::results::{JobRecord, StepInfo, StepRecord};
use crate::Millis;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    Hit,
    /// A miss and its cause; `None` in results written before causes were recorded.
    Miss(Option<Cause>),
    /// A hit whose input changed: a contradiction the builder's report made, shown rather than hidden.
    Anomaly,
    /// `FROM`: builders never report a base image as a cache hit, so it is neither.
    Base,
    /// The builder ran nothing for it (BuildKit has no vertex for `ENV`, `CMD`, …): no layer to cache.
    Metadata,
    /// A step of a stage the target does not use, which the builder skipped (BuildKit does): not run, and
    /// neither a hit nor a miss.
    Skipped,
    /// The job has no record of this step (it failed before, or its log was not parsed).
    NotRun,
}

impl StepState {
    /// Every state, in legend order.
    pub const ALL: [StepState; 16] = [
        StepState::Hit,
        StepState::Miss(Some(Cause::NoCache)),
        StepState::Miss(Some(Cause::InputChanged)),
        StepState::Miss(Some(Cause::AfterMiss)),
        StepState::Miss(Some(Cause::StageNotPushed)),
        StepState::Miss(Some(Cause::InlineFinalStageOnly)),
        StepState::Miss(Some(Cause::CopyNotCached)),
        StepState::Miss(Some(Cause::NeverCached)),
        StepState::Miss(Some(Cause::Evicted)),
        StepState::Miss(Some(Cause::Unexplained)),
        StepState::Miss(None),
        StepState::Anomaly,
        StepState::Base,
        StepState::Metadata,
        StepState::Skipped,
        StepState::NotRun,
    ];

    /// CSS class and legend key.
    pub fn class(self) -> &'static str {
        match self {
            StepState::Hit => "hit",
            StepState::Miss(Some(Cause::NoCache)) => "miss-none",
            StepState::Miss(Some(Cause::InputChanged)) => "miss-input",
            StepState::Miss(Some(Cause::AfterMiss)) => "miss-after",
            StepState::Miss(Some(Cause::Evicted)) => "miss-evicted",
            StepState::Miss(Some(Cause::Unexplained)) => "miss-unexplained",
            StepState::Miss(Some(_)) => "miss-gap",
            StepState::Miss(None) => "miss-unknown",
            StepState::Anomaly => "anomaly",
            StepState::Base => "base",
            StepState::Metadata => "metadata",
            StepState::Skipped => "skipped",
            StepState::NotRun => "not-run",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            StepState::Hit => "hit",
            StepState::Miss(Some(Cause::NoCache)) => "miss: no cache",
            StepState::Miss(Some(Cause::InputChanged)) => "miss: input changed",
            StepState::Miss(Some(Cause::AfterMiss)) => "miss: after a miss",
            StepState::Miss(Some(Cause::StageNotPushed)) => "miss: not in the cache (only the final stage is pushed)",
            StepState::Miss(Some(Cause::InlineFinalStageOnly)) => "miss: not in the cache (inline cache, final stage only)",
            StepState::Miss(Some(Cause::CopyNotCached)) => "miss: not in the cache (kaniko caches no COPY)",
            StepState::Miss(Some(Cause::NeverCached)) => "miss: the builder never caches this instruction",
            StepState::Miss(Some(Cause::Evicted)) => "miss: not in the cache (evicted)",
            StepState::Miss(Some(Cause::Unexplained)) => "miss: not in the cache (unexplained)",
            StepState::Miss(Some(Cause::HitDespiteChange)) | StepState::Anomaly => "anomaly: a hit although its input changed",
            StepState::Miss(Some(Cause::NotRun)) | StepState::Skipped => "not run: a stage the target does not use (the builder skipped it)",
            StepState::Miss(None) => "miss (cause not recorded)",
            StepState::Base => "base image (FROM)",
            StepState::Metadata => "no layer (builder ran nothing)",
            StepState::NotRun => "no record (the job stopped before it)",
        }
    }

    /// The few words a cache-map cell has room for.
    pub fn short(self) -> &'static str {
        match self {
            StepState::Hit => "hit",
            StepState::Miss(Some(Cause::NoCache)) => "no cache",
            StepState::Miss(Some(Cause::InputChanged)) => "changed",
            StepState::Miss(Some(Cause::AfterMiss)) => "after miss",
            StepState::Miss(Some(Cause::Evicted)) => "evicted",
            StepState::Miss(Some(Cause::Unexplained)) => "unexplained",
            StepState::Miss(Some(_)) => "not cached",
            StepState::Miss(None) => "miss",
            StepState::Anomaly => "anomaly",
            StepState::Base => "FROM",
            StepState::Metadata => "no layer",
            StepState::Skipped => "not run",
            StepState::NotRun => "no record",
        }
    }

    /// The state of one recorded step.
    pub fn of(record: &StepRecord) -> StepState {
        if record.cause == Some(Cause::NotRun) {
            return StepState::Skipped;
        }
        if is_base(&record.instruction) {
            return StepState::Base;
        }
        match (record.cached, record.cause) {
            (None, _) => StepState::Metadata,
            (Some(true), Some(Cause::HitDespiteChange)) => StepState::Anomaly,
            (Some(true), _) => StepState::Hit,
            (Some(false), cause) => StepState::Miss(cause),
        }
    }
}

/// One job's state for one step.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub iteration: u32,
    pub state: StepState,
    pub duration_ms: Option<Millis>,
    /// What of the step's own input changed, as recorded.
    pub changed: Option<String>,
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
    instruction.trim_start().get(..5).is_some_and(|w| w.eq_ignore_ascii_case("FROM "))
}

/// Majority over the iterations that ran the step; a tie counts as a miss, because a step that misses half
/// the time is not a step a pipeline can rely on. An anomaly in any iteration shows.
fn majority(marks: &[Mark]) -> StepState {
    if marks.iter().any(|m| m.state == StepState::Anomaly) {
        return StepState::Anomaly;
    }
    let hits = marks.iter().filter(|m| m.state == StepState::Hit).count();
    let misses: Vec<StepState> = marks.iter().map(|m| m.state).filter(|s| matches!(s, StepState::Miss(_))).collect();
    if hits + misses.len() == 0 {
        return [StepState::Base, StepState::Metadata, StepState::Skipped]
            .into_iter()
            .find(|state| marks.iter().any(|m| m.state == *state))
            .unwrap_or(StepState::NotRun);
    }
    if hits > misses.len() {
        return StepState::Hit;
    }
    // The most frequent miss; on a tie the first in legend order (no cache explains the rest).
    let count = |state: &StepState| misses.iter().filter(|s| *s == state).count();
    StepState::ALL.into_iter().filter(|s| matches!(s, StepState::Miss(_))).max_by_key(|s| (count(s), std::cmp::Reverse(legend_index(*s)))).unwrap_or(StepState::Miss(None))
}

fn legend_index(state: StepState) -> usize {
    StepState::ALL.iter().position(|s| *s == state).unwrap_or(usize::MAX)
}

/// Each job's mark for `step`: its record with that number and instruction, so that where an edit of the
/// Dockerfile moved a step, each instruction keeps its own row.
fn marks_of(data: &RunData, jobs: &[&JobRecord], step: &StepInfo) -> Vec<Mark> {
    jobs.iter()
        .map(|job| {
            let record = data.steps_of(job).into_iter().find(|r| r.step == step.step && r.instruction == step.instruction);
            Mark {
                iteration: job.iteration,
                state: record.map_or(StepState::NotRun, StepState::of),
                duration_ms: record.and_then(|r| r.duration_ms),
                changed: record.and_then(|r| r.changed.clone()),
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
        let jobs: Vec<Vec<&JobRecord>> = columns.iter().map(|c| data.jobs_of(c.strategy, c.pipeline_run.as_str())).collect();
        let cells = steps
            .iter()
            .map(|step| {
                jobs.iter()
                    .map(|jobs| {
                        let marks = marks_of(data, jobs, step);
                        let ran = marks.iter().filter(|m| m.state != StepState::NotRun);
                        Cell {
                            majority: majority(&marks),
                            median_ms: Spread::of(ran.filter_map(|m| m.duration_ms.map(|d| d as f64))).map(|s| s.median),
                            marks,
                        }
                    })
                    .collect()
            })
            .collect();
        CacheMap { steps, columns, cells }
    }

    /// How many cells of each miss cause a strategy has in each pipeline run (majority states), for the
    /// report's text and the notes.
    pub fn causes_of(&self, strategy: crate::strategy::Strategy) -> Vec<(Cause, usize)> {
        let mut counts: std::collections::BTreeMap<Cause, usize> = Default::default();
        for row in &self.cells {
            for (cell, column) in row.iter().zip(&self.columns) {
                if column.strategy != strategy {
                    continue;
                }
                match cell.majority {
                    StepState::Miss(Some(cause)) => *counts.entry(cause).or_default() += 1,
                    StepState::Anomaly => *counts.entry(Cause::HitDespiteChange).or_default() += 1,
                    _ => {}
                }
            }
        }
        counts.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(step: u32, instruction: &str, cached: Option<bool>, cause: Option<Cause>) -> StepRecord {
        StepRecord {
            run_id: "r".into(),
            backend: crate::results::BackendKind::Docker,
            concurrency: 1,
            lane: 1,
            iteration: 1,
            pipeline_run: "no-change".into(),
            strategy: crate::strategy::Strategy::named("shared-dind"),
            stage: "0".into(),
            step,
            total_steps: 6,
            instruction: instruction.into(),
            cached,
            duration_ms: Some(10),
            input_key: None,
            cause,
            changed: None,
        }
    }

    #[test]
    fn a_steps_state_is_what_the_run_recorded() {
        assert_eq!(StepState::of(&record(1, "FROM python", Some(false), None)), StepState::Base);
        assert_eq!(StepState::of(&record(2, "RUN a", Some(false), Some(Cause::StageNotPushed))), StepState::Miss(Some(Cause::StageNotPushed)));
        assert_eq!(StepState::of(&record(3, "ENV X=1", None, None)), StepState::Metadata, "a step the builder ran nothing for is not a miss");
        assert_eq!(StepState::of(&record(4, "RUN b", Some(true), Some(Cause::HitDespiteChange))), StepState::Anomaly);
        assert_eq!(StepState::of(&record(5, "RUN c", Some(false), None)), StepState::Miss(None), "older results: a miss, cause unknown");
        let skipped = StepState::of(&record(6, "RUN d", None, Some(Cause::NotRun)));
        assert_eq!(skipped, StepState::Skipped, "a skipped stage's step is not run, not a metadata step");
        assert_eq!(StepState::of(&record(3, "FROM base AS unused", None, Some(Cause::NotRun))), StepState::Skipped, "its FROM too");
        assert_eq!((skipped.short(), StepState::Metadata.short()), ("not run", "no layer"));
        assert_ne!(skipped.class(), StepState::NotRun.class());
    }

    /// The counts per cause leave a skipped stage out: it is no miss.
    #[test]
    fn a_skipped_stage_is_not_counted_as_a_miss() {
        let mark = |state| Mark { iteration: 1, state, duration_ms: None, changed: None };
        let cell = |state| Cell { marks: vec![mark(state)], majority: majority(&[mark(state)]), median_ms: None };
        let strategy = crate::strategy::Strategy::named("buildkit-shared");
        let map = CacheMap {
            steps: vec![],
            columns: vec![Column { strategy, pipeline_run: "cold".into() }],
            cells: vec![vec![cell(StepState::Skipped)], vec![cell(StepState::Miss(Some(Cause::NoCache)))]],
        };
        assert_eq!(map.cells[0][0].majority, StepState::Skipped);
        assert_eq!(map.causes_of(strategy), [(Cause::NoCache, 1)]);
    }

    #[test]
    fn majority_ties_count_as_misses_and_an_anomaly_always_shows() {
        let mark = |state| Mark { iteration: 1, state, duration_ms: None, changed: None };
        let hit = mark(StepState::Hit);
        let miss = mark(StepState::Miss(Some(Cause::InputChanged)));
        assert_eq!(majority(&[hit.clone(), miss.clone()]), miss.state);
        assert_eq!(majority(&[hit.clone(), hit.clone(), miss.clone()]), StepState::Hit);
        assert_eq!(majority(&[mark(StepState::NotRun), hit.clone()]), StepState::Hit);
        assert_eq!(majority(&[mark(StepState::NotRun)]), StepState::NotRun);
        assert_eq!(majority(&[hit.clone(), hit.clone(), mark(StepState::Anomaly)]), StepState::Anomaly);
        let evicted = mark(StepState::Miss(Some(Cause::Evicted)));
        assert_eq!(majority(&[evicted.clone(), evicted, miss]), StepState::Miss(Some(Cause::Evicted)));
    }
}
