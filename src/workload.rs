//! The team's own workload: how many pipelines it runs a day, which pipeline runs they are, how often the
//! caches are lost, and what a runner minute, a CPU hour, registry storage and egress cost. It weights the
//! verdict (expected job time per pipeline instead of one of each run) and prices every strategy
//! (`crate::results::bill`). Declared in a scenario's `[workload]` table and recorded in `run.json`, so
//! that `report` and `compare` weigh a run as it was measured.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::pipeline::PipelineRunName;

/// A month, for every per-month figure: 30 days.
pub const DAYS_PER_MONTH: f64 = 30.0;

/// Decimal gigabytes, as registries and clouds bill them.
pub const BYTES_PER_GB: f64 = 1e9;

/// How a team's pipelines are spread over the scenario's pipeline runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// Pipelines a day, every kind counted.
    pub pipelines_per_day: f64,
    /// Share of the day's pipelines that are not scheduled cold starts, per pipeline run, summing to 1.
    pub mix: BTreeMap<PipelineRunName, f64>,
    /// Pipelines a day that start cold because the caches are lost on a schedule (a runner recycled, a
    /// cache pruned nightly). They run as the scenario's first pipeline run, which starts on empty caches.
    #[serde(default)]
    pub cold_per_day: f64,
    #[serde(default)]
    pub prices: Prices,
    /// Whether the mix is the replayed history's own (`mix = { from = "history" }`): one share per commit.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mix_from_history: bool,
}

/// What the team pays, in its own currency; an absent price is never taken as 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Prices {
    /// Per minute of a job's wall time on a runner.
    pub runner_minute: Option<f64>,
    /// Per hour of CPU time of everything a job ran (its builder, its own daemon, its share of a shared one).
    pub cpu_hour: Option<f64>,
    /// Per GB of registry storage held for a month.
    pub storage_gb_month: Option<f64>,
    /// Per GB the jobs pulled from the registry.
    pub egress_gb: Option<f64>,
}

impl Prices {
    pub fn any(&self) -> bool {
        self.runner_minute.is_some() || self.cpu_hour.is_some() || self.storage_gb_month.is_some() || self.egress_gb.is_some()
    }
}

/// The scenario's `[workload]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWorkload {
    pipelines_per_day: toml::Spanned<f64>,
    /// `{ code-change = 0.8, deps-change = 0.2 }`, or `{ from = "history" }` in a replayed history.
    mix: toml::Spanned<BTreeMap<String, toml::Spanned<toml::Value>>>,
    cold_per_day: Option<toml::Spanned<f64>>,
    #[serde(default)]
    prices: Option<toml::Spanned<RawPrices>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrices {
    runner_minute: Option<f64>,
    cpu_hour: Option<f64>,
    storage_gb_month: Option<f64>,
    egress_gb: Option<f64>,
}

/// A mistake in `[workload]`: what is wrong, and the span of the value at fault.
pub(crate) struct WorkloadError {
    pub span: std::ops::Range<usize>,
    pub message: String,
}

impl RawWorkload {
    /// Checks the table against the scenario's pipeline runs and normalises the mix. `folded` is `None` without
    /// a replayed history (`[history]`), else how many of its commits `--skip-untouched` folded.
    pub(crate) fn check(self, pipeline: &[PipelineRunName], folded: Option<usize>) -> Result<Workload, WorkloadError> {
        let err = |span: std::ops::Range<usize>, message: String| WorkloadError { span, message };
        let per_day = *self.pipelines_per_day.get_ref();
        if !(per_day.is_finite() && per_day > 0.0) {
            return Err(err(self.pipelines_per_day.span(), format!("pipelines_per_day must be a number above 0, not {per_day}")));
        }
        let cold_per_day = match &self.cold_per_day {
            None => 0.0,
            Some(cold) => {
                let value = *cold.get_ref();
                if !(value.is_finite() && (0.0..=per_day).contains(&value)) {
                    return Err(err(cold.span(), format!("cold_per_day must be between 0 and pipelines_per_day ({per_day}), not {value}")));
                }
                value
            }
        };
        let raw_mix = self.mix.get_ref();
        let mix_from_history = raw_mix.len() == 1 && raw_mix.get("from").is_some_and(|v| v.get_ref().is_str());
        let mut mix = match raw_mix.get("from").map(|v| v.get_ref()) {
            Some(toml::Value::String(from)) if raw_mix.len() == 1 => match from.as_str() {
                "history" => shares_from_history(folded, pipeline).map_err(|message| err(self.mix.span(), message))?,
                other => return Err(err(self.mix.span(), format!("mix from `{other}` is not known: the one source is `history`"))),
            },
            _ => shares_as_written(raw_mix, pipeline)?,
        };
        let total: f64 = mix.values().sum();
        if total <= 0.0 && cold_per_day < per_day {
            let hint = "give each pipeline run its share of the day, e.g. mix = { code-change = 0.8, deps-change = 0.2 }";
            return Err(err(self.mix.span(), format!("the mix has no share above 0: {hint}")));
        }
        if total > 0.0 {
            mix.values_mut().for_each(|share| *share /= total);
        }
        let prices = match self.prices {
            None => Prices::default(),
            Some(prices) => {
                let span = prices.span();
                let RawPrices { runner_minute, cpu_hour, storage_gb_month, egress_gb } = prices.into_inner();
                for (name, price) in [("runner_minute", runner_minute), ("cpu_hour", cpu_hour), ("storage_gb_month", storage_gb_month), ("egress_gb", egress_gb)] {
                    if let Some(price) = price.filter(|p| !(p.is_finite() && *p >= 0.0)) {
                        return Err(err(span, format!("price {name} must be a number of 0 or more, not {price}")));
                    }
                }
                Prices { runner_minute, cpu_hour, storage_gb_month, egress_gb }
            }
        };
        Ok(Workload { pipelines_per_day: per_day, mix, cold_per_day, prices, mix_from_history })
    }
}

/// The shares a mix names, each checked against the pipeline.
fn shares_as_written(
    shares: &BTreeMap<String, toml::Spanned<toml::Value>>,
    pipeline: &[PipelineRunName],
) -> Result<BTreeMap<PipelineRunName, f64>, WorkloadError> {
    let names: Vec<&str> = pipeline.iter().map(PipelineRunName::as_str).collect();
    let mut mix = BTreeMap::new();
    for (name, share) in shares {
        if !names.contains(&name.as_str()) {
            return Err(WorkloadError {
                span: share.span(),
                message: format!("mix names `{name}`, which is not a pipeline run of this scenario: use one of {}", names.join(", ")),
            });
        }
        let value = match share.get_ref() {
            toml::Value::Float(f) => *f,
            toml::Value::Integer(i) => *i as f64,
            _ => f64::NAN,
        };
        if !(value.is_finite() && value >= 0.0) {
            return Err(WorkloadError { span: share.span(), message: format!("the share of `{name}` must be a number of 0 or more, not {}", share.get_ref()) });
        }
        mix.insert(PipelineRunName::new(name.clone()), value);
    }
    Ok(mix)
}

/// The history's own mix: in a replayed history every pipeline run after the first is one commit (or, when
/// sampled, stands for as many of the range's commits as every other), so each gets an equal share and the
/// day's pipelines fall as the commits did. The first run is the history's cold start: its commit counts
/// through `cold_per_day`, not the mix. Commits folded by `--skip-untouched` were not run, so nothing could
/// stand for them: such a history cannot give its mix.
fn shares_from_history(folded: Option<usize>, pipeline: &[PipelineRunName]) -> Result<BTreeMap<PipelineRunName, f64>, String> {
    let folded = folded.ok_or("mix from `history` needs a replayed history: write the scenario with `layerbench scenario from-git`, or give each pipeline run its share")?;
    if folded > 0 {
        return Err(format!(
            "mix from `history`: {} commits touching nothing in the context were folded (--skip-untouched) and no pipeline run \
             stands for them; write the scenario without --skip-untouched, or give each pipeline run its share",
            folded
        ));
    }
    if pipeline.len() < 2 {
        return Err("mix from `history` needs more than the cold run: replay two commits or more".into());
    }
    Ok(pipeline.iter().skip(1).map(|run| (run.clone(), 1.0)).collect())
}

impl Workload {
    /// Pipelines a day of each pipeline run of `pipeline` (whose first run is the cold one). Runs the mix
    /// leaves out get 0.
    pub fn per_day(&self, pipeline: &[PipelineRunName]) -> Vec<(PipelineRunName, f64)> {
        let mixed = self.pipelines_per_day - self.cold_per_day;
        pipeline
            .iter()
            .enumerate()
            .map(|(i, run)| {
                let cold = if i == 0 { self.cold_per_day } else { 0.0 };
                (run.clone(), cold + mixed * self.mix.get(run).copied().unwrap_or(0.0))
            })
            .collect()
    }

    /// The same workload with one more cold start a day (caches lost every night), for "what if".
    pub fn with_daily_cold_start(&self) -> Workload {
        Workload { cold_per_day: (self.cold_per_day + 1.0).min(self.pipelines_per_day), ..self.clone() }
    }

    /// "120 pipelines a day: 84 code-change, 24 no-change, 12 deps-change": the mix in words; a replayed
    /// history's mix as "60 pipelines a day: 1 cold, 59 over the 29 replayed commits (2.03 each)".
    pub fn describe(&self, pipeline: &[PipelineRunName]) -> String {
        if self.mix_from_history {
            let commits = pipeline.len().saturating_sub(1);
            let mixed = self.pipelines_per_day - self.cold_per_day;
            return format!(
                "{} pipelines a day: {} cold, {} over the {commits} replayed commits ({} each, as the history's commits fell)",
                number(self.pipelines_per_day),
                number(self.cold_per_day),
                number(mixed),
                number(mixed / commits.max(1) as f64)
            );
        }
        let parts: Vec<String> = self
            .per_day(pipeline)
            .into_iter()
            .filter(|(_, n)| *n > 0.0)
            .map(|(run, n)| format!("{} {run}", number(n)))
            .collect();
        format!("{} pipelines a day: {}", number(self.pipelines_per_day), parts.join(", "))
    }
}

/// How the verdict weighs the pipeline runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Weighting {
    /// One job of each pipeline run: the pipeline's total, as when there is no workload.
    EachRunOnce,
    /// Each run's share of the day's pipelines: the expected job time per pipeline.
    Mix(Vec<(PipelineRunName, f64)>),
}

impl Weighting {
    /// The workload's weights over `pipeline`, or one of each without a workload.
    pub fn of(workload: Option<&Workload>, pipeline: &[PipelineRunName]) -> Weighting {
        match workload {
            None => Weighting::EachRunOnce,
            Some(w) => Weighting::Mix(w.per_day(pipeline).into_iter().map(|(run, n)| (run, n / w.pipelines_per_day)).collect()),
        }
    }

    /// The pipeline runs that count and their weights: every run with a job (`reached`, the results' pipeline)
    /// once each, or, under a mix, every run of the scenario the day includes, whether or not it was reached,
    /// so that an interrupted run is never taken for a whole day.
    pub fn counted(&self, reached: &[PipelineRunName]) -> Vec<(PipelineRunName, f64)> {
        match self {
            Weighting::EachRunOnce => reached.iter().map(|run| (run.clone(), 1.0)).collect(),
            Weighting::Mix(weights) => weights.iter().filter(|(_, w)| *w > 0.0).cloned().collect(),
        }
    }

    /// The weight of one pipeline run: 1 each, or its share of the day.
    pub fn weight(&self, run: &str) -> f64 {
        match self {
            Weighting::EachRunOnce => 1.0,
            Weighting::Mix(weights) => weights.iter().find(|(r, _)| r == run).map_or(0.0, |(_, w)| *w),
        }
    }

    /// What the ranking figure is, for headings: "pipeline total" or "expected job time".
    pub fn figure_name(&self) -> &'static str {
        match self {
            Weighting::EachRunOnce => "pipeline total",
            Weighting::Mix(_) => "expected job time",
        }
    }
}

/// A count or share in words: whole numbers plain, others to two significant decimals.
fn number(n: f64) -> String {
    if (n - n.round()).abs() < 1e-9 {
        format!("{}", n.round() as i64)
    } else {
        format!("{n:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawWorkload {
        #[derive(Deserialize)]
        struct File {
            workload: RawWorkload,
        }
        toml::from_str::<File>(text).unwrap().workload
    }

    fn pipeline() -> Vec<PipelineRunName> {
        ["cold", "no-change", "code-change", "deps-change"].into_iter().map(PipelineRunName::from).collect()
    }

    #[test]
    fn the_mix_is_normalised_and_cold_starts_go_to_the_first_run() {
        let w = raw("[workload]\npipelines_per_day = 102\ncold_per_day = 2\nmix = { no-change = 2, code-change = 7, deps-change = 1 }")
            .check(&pipeline(), None)
            .ok()
            .unwrap();
        assert!((w.mix.values().sum::<f64>() - 1.0).abs() < 1e-12);
        let per_day: Vec<f64> = w.per_day(&pipeline()).into_iter().map(|(_, n)| n).collect();
        for (got, want) in per_day.iter().zip([2.0, 20.0, 70.0, 10.0]) {
            assert!((got - want).abs() < 1e-9, "{per_day:?}");
        }
        let weights = Weighting::of(Some(&w), &pipeline());
        assert!((weights.weight("code-change") - 70.0 / 102.0).abs() < 1e-12);
        assert_eq!(weights.weight("cold"), 2.0 / 102.0);
        assert_eq!(w.with_daily_cold_start().per_day(&pipeline())[0].1, 3.0);
        assert_eq!(w.describe(&pipeline()), "102 pipelines a day: 2 cold, 20 no-change, 70 code-change, 10 deps-change");
        assert_eq!(Weighting::EachRunOnce.weight("anything"), 1.0);
    }

    #[test]
    fn a_replayed_history_gives_every_commit_after_the_cold_one_an_equal_share() {
        let runs: Vec<PipelineRunName> = ["cold", "c002-aaaaaaa", "c003-bbbbbbb", "c004-ccccccc"].into_iter().map(PipelineRunName::from).collect();
        let text = "[workload]\npipelines_per_day = 31\ncold_per_day = 1\nmix = { from = \"history\" }";
        let w = raw(text).check(&runs, Some(0)).ok().unwrap();
        let per_day: Vec<f64> = w.per_day(&runs).into_iter().map(|(_, n)| n).collect();
        assert_eq!(per_day, [1.0, 10.0, 10.0, 10.0]);
        assert_eq!(w.describe(&runs), "31 pipelines a day: 1 cold, 30 over the 3 replayed commits (10 each, as the history's commits fell)");

        let message = |text: &str, folded: Option<usize>| raw(text).check(&runs, folded).err().map(|e| e.message).unwrap();
        assert!(message(text, None).contains("needs a replayed history"));
        assert!(message(text, Some(2)).contains("2 commits touching nothing in the context were folded"));
        assert!(message(&text.replace("history\"", "somewhere\""), Some(0)).contains("mix from `somewhere` is not known"));
    }

    #[test]
    fn mistakes_in_the_table_are_named() {
        let message = |text: &str| raw(text).check(&pipeline(), None).err().map(|e| e.message).unwrap();
        assert!(message("[workload]\npipelines_per_day = 0\nmix = { cold = 1 }").contains("pipelines_per_day must be a number above 0"));
        assert!(message("[workload]\npipelines_per_day = 10\nmix = { hotfix = 1 }").contains("`hotfix`, which is not a pipeline run"));
        assert!(message("[workload]\npipelines_per_day = 10\nmix = { cold = -1 }").contains("0 or more"));
        assert!(message("[workload]\npipelines_per_day = 10\ncold_per_day = 11\nmix = { cold = 1 }").contains("between 0 and pipelines_per_day"));
        assert!(message("[workload]\npipelines_per_day = 10\nmix = { cold = 0 }").contains("no share above 0"));
        assert!(message("[workload]\npipelines_per_day = 10\nmix = { cold = 1 }\n[workload.prices]\negress_gb = -0.1").contains("egress_gb"));
    }
}
