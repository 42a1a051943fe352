//! Ranks the strategies over the scenario's whole pipeline, with what each costs.

use std::collections::BTreeMap;

use crate::results::data::{RunData, Spread};
use crate::results::{JobStatus, PipelineRunName};
use crate::strategy::Strategy;
use crate::workload::Weighting;

/// One strategy's standing over the whole pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Standing {
    pub strategy: Strategy,
    /// The ranking figure: over the pipeline runs, the median wall time of the successful jobs times the
    /// run's weight (1 each, or its share of the workload's day: the expected job time per pipeline);
    /// `None` when some weighted pipeline run has no successful job.
    pub total_ms: Option<f64>,
    /// Weighted pipeline runs in which every job of this strategy failed (or none ran).
    pub runs_without_ok_job: Vec<PipelineRunName>,
    pub failed_jobs: usize,
    pub jobs: usize,
    /// Sum over the pipeline runs of the median bytes pushed per job.
    pub bytes_pushed: Option<f64>,
    pub bytes_pulled: Option<f64>,
    /// Registry storage after the last pipeline run (median over iterations).
    pub registry_bytes: Option<f64>,
    pub daemon_volume_bytes: Option<f64>,
    pub privileges: Option<String>,
}

/// Whether the fastest strategy is ahead of the others by more than noise: the spread of their
/// per-iteration pipeline totals.
#[derive(Debug, Clone, PartialEq)]
pub enum Lead {
    /// Ahead of every other ranked strategy by more than the wider of the two spreads.
    Clear,
    /// Within the spread of these strategies: no strategy can be called fastest.
    Tied(Vec<Strategy>),
    /// Too few complete iterations to know the spread (one, say): the order is shown, not judged.
    Unjudged,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Ranked strategies, fastest first.
    pub ranked: Vec<Standing>,
    /// Strategies that could not be ranked, because a pipeline run has no successful job.
    pub unranked: Vec<Standing>,
    /// Iterations in which every job of every ranked strategy succeeded.
    pub complete_iterations: Vec<u32>,
    /// Of those, how many had the overall fastest strategy also fastest on its own.
    pub fastest_wins: usize,
    /// Whether the first of `ranked` is ahead by more than noise.
    pub lead: Lead,
    /// How the pipeline runs were weighed.
    pub weighting: Weighting,
}

impl Verdict {
    pub fn fastest(&self) -> Option<&Standing> {
        self.ranked.first()
    }

    pub fn runner_up(&self) -> Option<&Standing> {
        self.ranked.get(1)
    }

    /// The verdict under the run's own workload (`run.json`), or weighting each pipeline run once without one.
    pub fn compute(data: &RunData) -> Verdict {
        Verdict::weighted(data, Weighting::of(data.info.workload.as_ref(), &data.info.pipeline))
    }

    pub fn weighted(data: &RunData, weighting: Weighting) -> Verdict {
        let counted = weighting.counted(&data.pipeline());
        let mut ranked = vec![];
        let mut unranked = vec![];
        for strategy in data.strategies() {
            let cells: Vec<_> = counted.iter().map(|(run, weight)| (run, data.wall(strategy, run.as_str()), *weight)).collect();
            // Failures are counted over every run, weighted or not: a failure is never hidden by a weight.
            let all_runs: Vec<_> = data.pipeline().iter().map(|run| data.wall(strategy, run.as_str())).collect();
            let standing = Standing {
                total_ms: crate::results::data::sum_all(
                    cells.iter().map(|(_, c, weight)| c.wall_ms.map(|s| s.median * weight)),
                ),
                runs_without_ok_job: cells
                    .iter()
                    .filter(|(_, c, _)| c.ok == 0)
                    .map(|(run, _, _)| (*run).clone())
                    .collect(),
                failed_jobs: all_runs.iter().map(|c| c.failed).sum(),
                jobs: all_runs.iter().map(|c| c.ok + c.failed).sum(),
                bytes_pushed: data.pipeline_total(strategy, |j| j.bytes_pushed),
                bytes_pulled: data.pipeline_total(strategy, |j| j.bytes_pulled),
                registry_bytes: data.storage_after_last_run(strategy, |c| c.registry_bytes),
                daemon_volume_bytes: data
                    .storage_after_last_run(strategy, |c| c.daemon_volume_bytes),
                privileges: data.info.privileges.get(&strategy).cloned(),
                strategy,
            };
            if standing.total_ms.is_some() {
                ranked.push(standing);
            } else {
                unranked.push(standing);
            }
        }
        ranked.sort_by(|a, b| {
            a.total_ms
                .unwrap_or(f64::INFINITY)
                .total_cmp(&b.total_ms.unwrap_or(f64::INFINITY))
        });
        let (complete_iterations, fastest_wins) = iteration_wins(data, &weighting, &ranked);
        let lead = lead(data, &weighting, &ranked);
        Verdict { ranked, unranked, complete_iterations, fastest_wins, lead, weighting }
    }
}

/// The fastest's lead: a strategy whose total is within the wider of the two strategies' per-iteration spreads
/// (slowest minus fastest complete iteration) of the fastest's ties with it.
fn lead(data: &RunData, weighting: &Weighting, ranked: &[Standing]) -> Lead {
    let (Some(best), Some(_)) = (ranked.first(), ranked.get(1)) else { return Lead::Clear };
    let width = |s: &Standing| total_spread(data, weighting, s.strategy).filter(|sp| sp.n >= 2).map(|sp| sp.max - sp.min);
    let Some(best_width) = width(best) else { return Lead::Unjudged };
    let best_total = best.total_ms.unwrap_or_default();
    let mut tied = vec![];
    for other in &ranked[1..] {
        let Some(other_width) = width(other) else { return Lead::Unjudged };
        if other.total_ms.unwrap_or(f64::INFINITY) - best_total <= best_width.max(other_width) {
            tied.push(other.strategy);
        }
    }
    if tied.is_empty() {
        Lead::Clear
    } else {
        Lead::Tied(tied)
    }
}

/// Checks the ranking against each iteration on its own: the ranking uses medians, so it
/// is worth saying whether the winner also won iteration by iteration.
fn iteration_wins(data: &RunData, weighting: &Weighting, ranked: &[Standing]) -> (Vec<u32>, usize) {
    let Some(fastest) = ranked.first() else {
        return (vec![], 0);
    };
    let totals: Vec<(Strategy, BTreeMap<u32, f64>)> =
        ranked.iter().map(|s| (s.strategy, iteration_totals(data, weighting, s.strategy))).collect();
    let mut complete = vec![];
    let mut wins = 0;
    for &iteration in totals[0].1.keys() {
        let Some(per_strategy) = totals.iter().map(|(s, t)| t.get(&iteration).map(|t| (*s, *t))).collect::<Option<Vec<_>>>() else {
            continue;
        };
        complete.push(iteration);
        let winner = per_strategy.iter().min_by(|a, b| a.1.total_cmp(&b.1)).map(|(s, _)| *s);
        if winner == Some(fastest.strategy) {
            wins += 1;
        }
    }
    (complete, wins)
}

/// A strategy's weighted total in each iteration in which every weighted pipeline run has its successful job.
pub fn iteration_totals(data: &RunData, weighting: &Weighting, strategy: Strategy) -> BTreeMap<u32, f64> {
    let weighted = weighting.counted(&data.pipeline());
    // iteration -> (weighted wall total, ok jobs)
    let mut per_iteration: BTreeMap<u32, (f64, usize)> = BTreeMap::new();
    for job in data.jobs.iter().filter(|j| j.strategy == strategy && j.status == JobStatus::Ok) {
        let weight = weighting.weight(job.pipeline_run.as_str());
        if weight > 0.0 {
            let e = per_iteration.entry(job.iteration).or_default();
            e.0 += job.wall_ms as f64 * weight;
            e.1 += 1;
        }
    }
    per_iteration.into_iter().filter(|(_, (_, n))| *n == weighted.len()).map(|(i, (t, _))| (i, t)).collect()
}

/// The spread of a strategy's per-iteration (weighted) totals, for the verdict's wording.
pub fn total_spread(data: &RunData, weighting: &Weighting, strategy: Strategy) -> Option<Spread> {
    Spread::of(iteration_totals(data, weighting, strategy).into_values())
}
