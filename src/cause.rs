//! Why a step missed, from its inputs: each miss gets exactly one cause, and a hit whose input changed is
//! recorded as an anomaly rather than hidden.
//!
//! A job's steps are compared with the same steps of the strategy's last successful job in the iteration
//! (`crate::inputs` says what went into each). In order, a miss is:
//! - `no-cache`: the job had nothing to reuse (a strategy that keeps no cache, or no earlier successful job);
//! - `input-changed`: the step's own input differs (`changed` names the files or the instruction);
//! - `after-miss`: its input is unchanged, but a step it builds on missed;
//! - its input and its parents are unchanged, yet the builder had no layer for it (not in the cache), for
//!   the first reason that holds: one of the strategy's known gaps, `copy-not-cached` (kaniko without
//!   `--cache-copy-layers`), `never-cached`, `stage-not-pushed` (only the final stage is pushed),
//!   `inline-final-stage-only` (BuildKit's inline cache, `mode=min`); `evicted`, when the strategy's last
//!   successful job hit or built that very step, so its cache held it; and otherwise `unexplained`, said as
//!   such rather than guessed.
//!
//! A step of a stage the builder skipped (BuildKit builds only what the target needs) is `not-run`: neither
//! a hit nor a miss.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::inputs::{self, StepInput};

/// Why a step missed (or, for `hit-despite-change`, why a hit is suspect).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    NoCache,
    InputChanged,
    AfterMiss,
    /// The strategy pushes only the final stage, so an earlier stage is never in its cache.
    StageNotPushed,
    /// BuildKit's inline cache describes the final stage only (`mode=min`).
    InlineFinalStageOnly,
    /// kaniko caches no `COPY` or `ADD` without `--cache-copy-layers`.
    CopyNotCached,
    /// The builder caches no such instruction at all (kaniko serves only `RUN` from its cache): it reruns it
    /// every time, which for a metadata instruction costs next to nothing.
    NeverCached,
    /// The cache held the layer last time (the strategy's last successful job hit or built the step) and
    /// no longer does.
    Evicted,
    /// Input and parents unchanged, no known gap of the strategy, and its last job did not hold the step
    /// either: layerbench cannot say why the cache lacked it.
    Unexplained,
    /// The builder reported a hit although the step's input changed: a contradiction, shown as an anomaly.
    HitDespiteChange,
    /// Not a miss: the step belongs to a stage the target does not use, and the builder skipped that stage
    /// (BuildKit does; the classic builder builds every stage).
    NotRun,
}

impl Cause {
    pub const ALL: [Cause; 11] = [
        Cause::NoCache,
        Cause::InputChanged,
        Cause::AfterMiss,
        Cause::StageNotPushed,
        Cause::InlineFinalStageOnly,
        Cause::CopyNotCached,
        Cause::NeverCached,
        Cause::Evicted,
        Cause::Unexplained,
        Cause::HitDespiteChange,
        Cause::NotRun,
    ];

    /// The value in `steps.csv`'s `cause` column.
    pub fn name(self) -> &'static str {
        match self {
            Cause::NoCache => "no-cache",
            Cause::InputChanged => "input-changed",
            Cause::AfterMiss => "after-miss",
            Cause::StageNotPushed => "stage-not-pushed",
            Cause::InlineFinalStageOnly => "inline-final-stage-only",
            Cause::CopyNotCached => "copy-not-cached",
            Cause::NeverCached => "never-cached",
            Cause::Evicted => "evicted",
            Cause::Unexplained => "unexplained",
            Cause::HitDespiteChange => "hit-despite-change",
            Cause::NotRun => "not-run",
        }
    }

    /// A word or two, for a terminal line.
    pub fn short(self) -> &'static str {
        match self {
            Cause::NoCache => "no cache",
            Cause::InputChanged => "changed",
            Cause::AfterMiss => "after miss",
            Cause::StageNotPushed => "stage not pushed",
            Cause::InlineFinalStageOnly => "not in inline cache",
            Cause::CopyNotCached => "COPY not cached",
            Cause::NeverCached => "never cached",
            Cause::Evicted => "evicted",
            Cause::Unexplained => "not cached (unexplained)",
            Cause::HitDespiteChange => "ANOMALY: hit despite change",
            Cause::NotRun => "not run",
        }
    }

    /// In words, for the report and the terminal.
    pub fn label(self) -> &'static str {
        match self {
            Cause::NoCache => "no cache",
            Cause::InputChanged => "input changed",
            Cause::AfterMiss => "after a miss",
            Cause::StageNotPushed => "not in the cache: only the final stage is pushed",
            Cause::InlineFinalStageOnly => "not in the cache: inline cache holds the final stage only (mode=min)",
            Cause::CopyNotCached => "not in the cache: kaniko caches no COPY without --cache-copy-layers",
            Cause::NeverCached => "not in the cache: the builder never caches this instruction",
            Cause::Evicted => {
                "not in the cache: held last time, not found now (evicted; with lanes, overwritten by another lane, or below another lane's copy of a step before it)"
            }
            Cause::Unexplained => "not in the cache (unexplained): no known gap of the strategy, and its last job did not hold it either",
            Cause::HitDespiteChange => "anomaly: a hit although its input changed",
            Cause::NotRun => "not run: a stage the target does not use, which the builder skipped",
        }
    }

    /// The step was unchanged and the cache did not hold it.
    pub fn not_in_cache(self) -> bool {
        matches!(
            self,
            Cause::StageNotPushed | Cause::InlineFinalStageOnly | Cause::CopyNotCached | Cause::NeverCached | Cause::Evicted | Cause::Unexplained
        )
    }

    /// A cause of a miss: everything but a step that never ran.
    pub fn is_miss(self) -> bool {
        self != Cause::NotRun
    }

    /// What would make such a miss a hit, where the cause says so, for a strategy that keeps a cache between
    /// jobs (`keeps_cache`) or not. A strategy that keeps one misses for `no-cache` only where no earlier job of
    /// its iteration succeeded (its cold job), which no other strategy would have served: no advice then.
    pub fn advice(self, keeps_cache: bool) -> Option<&'static str> {
        match self {
            Cause::NoCache if keeps_cache => None,
            Cause::NoCache => Some("keep a cache between jobs: any strategy but a fresh daemon without a cache import"),
            Cause::StageNotPushed => Some("push the builder stage too: registry-multistage"),
            Cause::InlineFinalStageOnly => Some("export every stage: a registry cache with mode=max (buildkit-registry)"),
            Cause::CopyNotCached => Some("kaniko `--cache-copy-layers`"),
            Cause::Evicted => Some("keep the cache from being pruned between jobs (a larger or longer-lived cache)"),
            Cause::InputChanged | Cause::AfterMiss | Cause::NeverCached | Cause::Unexplained | Cause::HitDespiteChange | Cause::NotRun => None,
        }
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a strategy's cache can hold, read off its plan and its builder (see `crate::builder::cache_scope`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CacheScope {
    /// A job can reuse anything an earlier one left.
    pub keeps: bool,
    /// Stages (by label) whose layers the cache never holds, and why.
    pub stage_gaps: BTreeMap<String, Cause>,
    /// Instructions (by keyword) the builder never serves from its cache, and why.
    pub instruction_gaps: BTreeMap<&'static str, Cause>,
}

/// One step's cause, and what of its own input changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepCause {
    pub cause: Option<Cause>,
    /// The files or the instruction that changed since the last successful job; `None` where nothing did.
    pub changed: Option<String>,
}

/// What the strategy's last successful job of the iteration had: its steps' inputs and what its builder
/// reported.
#[derive(Debug, Clone)]
pub struct Prior {
    pub inputs: Vec<StepInput>,
    /// Whether its builder served each step it reported (by number) from cache; a step it hit or built is
    /// one its cache held afterwards, unless the strategy has a gap for it.
    pub cached: BTreeMap<u32, bool>,
    /// The input keys of every step the strategy's successful jobs of the iteration built, in any lane:
    /// a hit on one of them is the cache doing its work (another lane, or an earlier job, built that very
    /// input), not an anomaly.
    pub built: std::collections::BTreeSet<crate::inputs::Digest>,
}

/// The cause of each step of a job: `inputs` its steps' inputs, `reported` whether its builder served each
/// step it reported from cache (a step it ran nothing for is absent), `prior` the strategy's last successful
/// job in the iteration.
pub fn classify(inputs: &[StepInput], reported: &BTreeMap<u32, bool>, prior: Option<&Prior>, scope: &CacheScope) -> BTreeMap<u32, StepCause> {
    let before = prior.map(|p| by_identity(&p.inputs));
    let skipped = skipped_stages(inputs, reported);
    let mut missed: BTreeMap<u32, bool> = BTreeMap::new();
    let mut out = BTreeMap::new();
    let mut seen: BTreeMap<(&str, &str), u32> = BTreeMap::new();
    for step in inputs {
        let n = seen.entry((&step.stage, &step.instruction)).or_default();
        let earlier = before.as_ref().and_then(|b| b.get(&(step.stage.as_str(), step.instruction.as_str(), *n)).copied());
        *n += 1;
        if skipped.contains(step.stage.as_str()) {
            missed.insert(step.step, false);
            out.insert(step.step, StepCause { cause: Some(Cause::NotRun), changed: None });
            continue;
        }
        let changed = match (&before, earlier) {
            (None, _) => None,
            (Some(_), None) => Some("the instruction".to_string()),
            (Some(_), Some(e)) => inputs::changed(e, step),
        };
        let judged = Judged {
            step,
            earlier,
            own_changed: changed.is_some(),
            parent_missed: step.parents.iter().any(|p| missed.get(p).copied().unwrap_or(false)),
            structural: step.is_from() || step.stage == crate::dockerfile::GLOBAL_STAGE,
        };
        let cause = judged.cause(reported.get(&step.step).copied(), prior, scope);
        // A step the builder never caches gives the next one no new parent when its input is unchanged
        // (kaniko keys a RUN by the commands and files before it, not by their layers).
        let builder_gap = matches!(cause, Some(Cause::CopyNotCached | Cause::NeverCached));
        missed.insert(
            step.step,
            match reported.get(&step.step) {
                Some(cached) if !judged.structural => !cached && !builder_gap,
                _ => judged.own_changed || judged.parent_missed,
            },
        );
        out.insert(step.step, StepCause { cause, changed });
    }
    out
}

/// One step, as compared with the strategy's last successful job.
struct Judged<'a> {
    step: &'a StepInput,
    /// The same step in the last successful job, if it had one.
    earlier: Option<&'a StepInput>,
    own_changed: bool,
    parent_missed: bool,
    /// A `FROM` or a global `ARG`: no builder reports a cache state for it.
    structural: bool,
}

impl Judged<'_> {
    /// Its cause, given what the builder reported for it (`Some(true)` a hit).
    fn cause(&self, reported: Option<bool>, prior: Option<&Prior>, scope: &CacheScope) -> Option<Cause> {
        match reported {
            _ if self.structural => self.own_changed.then_some(Cause::InputChanged),
            Some(false) => Some(match prior {
                _ if !scope.keeps => Cause::NoCache,
                None => Cause::NoCache,
                Some(_) if self.own_changed => Cause::InputChanged,
                Some(_) if self.parent_missed => Cause::AfterMiss,
                Some(prior) => gap(self.step, scope).unwrap_or_else(|| {
                    // Evicted only where the cache is known to have held it: the last job hit or built it.
                    let held = self.earlier.is_some_and(|e| prior.cached.contains_key(&e.step));
                    if held { Cause::Evicted } else { Cause::Unexplained }
                }),
            }),
            Some(true) => {
                let key_changed = match (prior, self.earlier) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(_), Some(e)) => e.key != self.step.key,
                };
                let built_before = prior.is_some_and(|p| p.built.contains(&self.step.key));
                (key_changed && !built_before).then_some(Cause::HitDespiteChange)
            }
            None => None,
        }
    }
}

/// The stages the builder skipped: those the target does not use (see [`inputs::unused_stages`]) and of
/// which it reported no step, in a job whose builder reported anything at all.
fn skipped_stages<'a>(inputs: &'a [StepInput], reported: &BTreeMap<u32, bool>) -> std::collections::BTreeSet<&'a str> {
    if reported.is_empty() {
        return Default::default();
    }
    inputs::unused_stages(inputs)
        .into_iter()
        .filter(|stage| inputs.iter().filter(|s| s.stage == *stage).all(|s| !reported.contains_key(&s.step)))
        .collect()
}

/// The strategy's own reason a step it had before is not in its cache, if it has one for this step.
fn gap(step: &StepInput, scope: &CacheScope) -> Option<Cause> {
    let keyword = step.instruction.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
    scope.instruction_gaps.get(keyword.as_str()).or_else(|| scope.stage_gaps.get(&step.stage)).copied()
}

/// Steps by what they are rather than their number (stage, instruction, occurrence), so that an inserted
/// line does not make every later step a different step.
fn by_identity(inputs: &[StepInput]) -> BTreeMap<(&str, &str, u32), &StepInput> {
    let mut seen: BTreeMap<(&str, &str), u32> = BTreeMap::new();
    inputs
        .iter()
        .map(|s| {
            let n = seen.entry((&s.stage, &s.instruction)).or_default();
            let key = (s.stage.as_str(), s.instruction.as_str(), *n);
            *n += 1;
            (key, s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::Dockerfile;

    /// The small scenario's Dockerfile shape: 1 FROM builder, 2 RUN, 3 COPY deps.txt, 4 RUN, 5 FROM, 6 ENV,
    /// 7 COPY --from=builder, 8 WORKDIR, 9 COPY app ., 10 RUN, 11 CMD.
    const DOCKERFILE: &str = "FROM base AS builder\nRUN mkdir /out\nCOPY deps.txt /out/\nRUN cat /out/deps.txt\n\
                              FROM base\nENV OUT=/out\nCOPY --from=builder /out /out\nWORKDIR /app\nCOPY app .\nRUN ls\nCMD [\"x\"]\n";

    fn inputs(main: &str, deps: &str) -> (tempfile::TempDir, Vec<StepInput>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("app")).unwrap();
        std::fs::write(dir.path().join("app/main.py"), main).unwrap();
        std::fs::write(dir.path().join("deps.txt"), deps).unwrap();
        let inputs = crate::inputs::step_inputs(&Dockerfile::parse(DOCKERFILE).unwrap(), dir.path()).unwrap();
        (dir, inputs)
    }

    fn cached(hits: &[u32], misses: &[u32]) -> BTreeMap<u32, bool> {
        hits.iter().map(|s| (*s, true)).chain(misses.iter().map(|s| (*s, false))).collect()
    }

    fn causes(result: &BTreeMap<u32, StepCause>) -> Vec<(u32, Cause)> {
        result.iter().filter_map(|(s, c)| c.cause.map(|c| (*s, c))).collect()
    }

    fn prior(inputs: Vec<StepInput>, cached: BTreeMap<u32, bool>) -> Prior {
        Prior { inputs, cached, built: Default::default() }
    }

    fn keeps() -> CacheScope {
        CacheScope { keeps: true, ..CacheScope::default() }
    }

    #[test]
    fn a_first_job_and_a_strategy_without_cache_have_no_cache() {
        let (_d, now) = inputs("1", "a");
        let all = cached(&[], &[2, 3, 4, 6, 7, 8, 9, 10, 11]);
        assert!(causes(&classify(&now, &all, None, &keeps())).iter().all(|(_, c)| *c == Cause::NoCache));
        let prior = prior(now.clone(), all.clone());
        let cold = CacheScope::default();
        assert!(causes(&classify(&now, &all, Some(&prior), &cold)).iter().all(|(_, c)| *c == Cause::NoCache));
    }

    #[test]
    fn a_code_change_is_the_late_copy_then_after_a_miss() {
        let (_a, before) = inputs("1", "a");
        let (_b, now) = inputs("2", "a");
        let prior = prior(before, cached(&[2, 3, 4, 6, 7, 8, 9, 10, 11], &[]));
        let result = classify(&now, &cached(&[2, 3, 4, 6, 7, 8], &[9, 10, 11]), Some(&prior), &keeps());
        assert_eq!(causes(&result), [(9, Cause::InputChanged), (10, Cause::AfterMiss), (11, Cause::AfterMiss)]);
        assert_eq!(result[&9].changed.as_deref(), Some("app/main.py"));
        assert_eq!(result[&10].changed, None);
    }

    fn registry_final() -> CacheScope {
        CacheScope { keeps: true, stage_gaps: [("builder".to_string(), Cause::StageNotPushed)].into(), ..Default::default() }
    }

    /// The first step of the builder stage is not in the cache for the strategy's own reason; every step
    /// after it builds on that miss, which is the first reason they missed.
    #[test]
    fn registry_final_misses_its_builder_stage_as_not_pushed_and_the_steps_after_it_after_a_miss() {
        let (_a, before) = inputs("1", "a");
        let (_b, now) = inputs("1", "a");
        let prior = prior(before, cached(&[6], &[2, 3, 4, 7, 8, 9, 10, 11]));
        let result = classify(&now, &cached(&[6], &[2, 3, 4, 7, 8, 9, 10, 11]), Some(&prior), &registry_final());
        let c = causes(&result);
        assert_eq!(&c[..3], [(2, Cause::StageNotPushed), (3, Cause::AfterMiss), (4, Cause::AfterMiss)]);
        assert_eq!(c[3], (7, Cause::AfterMiss), "COPY --from takes the rebuilt builder stage");
        assert!(result.values().all(|s| s.changed.is_none()), "nothing changed on a no-change run");
    }

    /// "After a miss" comes before the strategy's gap: a step whose parent missed reads after-miss even in a
    /// stage the strategy never pushes.
    #[test]
    fn a_step_after_a_changed_one_is_after_a_miss_whatever_the_strategys_gap() {
        let (_a, before) = inputs("1", "a");
        let (_b, now) = inputs("1", "b");
        let prior = prior(before, cached(&[6], &[2, 3, 4, 7, 8, 9, 10, 11]));
        let result = classify(&now, &cached(&[6], &[2, 3, 4, 7, 8, 9, 10, 11]), Some(&prior), &registry_final());
        assert_eq!(result[&2].cause, Some(Cause::StageNotPushed));
        assert_eq!(result[&3].cause, Some(Cause::InputChanged));
        assert_eq!(result[&4].cause, Some(Cause::AfterMiss), "deps.txt changed before it");
    }

    #[test]
    fn kaniko_copies_are_not_in_the_cache_and_a_hit_with_a_changed_input_is_an_anomaly() {
        let (_a, before) = inputs("1", "a");
        let (_b, now) = inputs("1", "a");
        let scope = CacheScope {
            keeps: true,
            instruction_gaps: [("COPY", Cause::CopyNotCached), ("ADD", Cause::CopyNotCached)].into(),
            ..Default::default()
        };
        let prior = prior(before.clone(), cached(&[2, 4, 10], &[3, 7, 9]));
        let result = classify(&now, &cached(&[2, 4, 10], &[3, 7, 9]), Some(&prior), &scope);
        assert_eq!(causes(&result), [(3, Cause::CopyNotCached), (7, Cause::CopyNotCached), (9, Cause::CopyNotCached)]);
        let (_c, changed) = inputs("2", "a");
        let result = classify(&changed, &cached(&[2, 4, 10], &[3, 7, 9]), Some(&prior), &scope);
        assert_eq!(result[&9].cause, Some(Cause::InputChanged));
        assert_eq!(result[&10].cause, Some(Cause::HitDespiteChange), "RUN after a changed COPY cannot rightly hit");
    }

    /// Lanes are branches sharing a cache: a hit on an input another lane (or an earlier job) built is the
    /// cache at work, not a contradiction.
    #[test]
    fn a_hit_on_an_input_another_lane_built_is_no_anomaly() {
        let (_a, before) = inputs("1", "a");
        let (_b, now) = inputs("2", "a");
        let all = cached(&[2, 3, 4, 6, 7, 8, 9, 10, 11], &[]);
        let mut lane_prior = prior(before, all.clone());
        assert_eq!(classify(&now, &all, Some(&lane_prior), &keeps())[&9].cause, Some(Cause::HitDespiteChange));
        lane_prior.built = now.iter().map(|s| s.key).collect();
        assert!(causes(&classify(&now, &all, Some(&lane_prior), &keeps())).is_empty(), "every step hit, none suspect");
    }

    #[test]
    fn an_unchanged_step_the_cache_should_hold_was_evicted() {
        let (_a, before) = inputs("1", "a");
        let (_b, now) = inputs("1", "a");
        let prior = prior(before, cached(&[2, 3, 4], &[]));
        let result = classify(&now, &cached(&[2], &[3, 4]), Some(&prior), &keeps());
        assert_eq!(causes(&result), [(3, Cause::Evicted), (4, Cause::AfterMiss)]);
    }

    /// Evicted needs evidence that the cache held the step: the strategy's last job hit or built it. Without
    /// it the miss is unexplained, said as such.
    #[test]
    fn a_miss_the_last_job_did_not_hold_is_unexplained_not_evicted() {
        let (_a, before) = inputs("1", "a");
        let (_b, now) = inputs("1", "a");
        let prior = prior(before, cached(&[2], &[]));
        let result = classify(&now, &cached(&[2], &[3, 4]), Some(&prior), &keeps());
        assert_eq!(causes(&result), [(3, Cause::Unexplained), (4, Cause::AfterMiss)]);
        assert!(Cause::Unexplained.not_in_cache() && Cause::Unexplained.advice(true).is_none());
    }

    /// BuildKit builds only what the target needs: a stage nothing uses, of which the builder reported no
    /// step, is not run (its FROM too), neither a hit nor a miss; the classic builder, which builds it,
    /// gets the usual causes.
    #[test]
    fn a_skipped_unused_stage_is_not_run() {
        const STAGES: &str = "FROM base AS base\nRUN a\nFROM base AS unused\nRUN b\nFROM base AS final\nCOPY app /app\nRUN c\nCMD x\n";
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app"), "1").unwrap();
        let now = crate::inputs::step_inputs(&Dockerfile::parse(STAGES).unwrap(), dir.path()).unwrap();
        let buildkit = classify(&now, &cached(&[], &[1, 2, 5, 6, 7]), None, &keeps());
        assert_eq!(buildkit[&3].cause, Some(Cause::NotRun), "the unused stage's FROM");
        assert_eq!(buildkit[&4].cause, Some(Cause::NotRun));
        assert_eq!(buildkit[&6].cause, Some(Cause::NoCache));
        assert!(!Cause::NotRun.is_miss());
        let classic = classify(&now, &cached(&[], &[1, 2, 3, 4, 5, 6, 7, 8]), None, &keeps());
        assert_eq!(classic[&4].cause, Some(Cause::NoCache), "the classic builder built it");
        assert!(classify(&now, &BTreeMap::new(), None, &keeps()).values().all(|c| c.cause.is_none()), "nothing reported, nothing said");
    }

    #[test]
    fn every_cause_has_a_distinct_name_that_round_trips() {
        for cause in Cause::ALL {
            let json = serde_json::to_string(&cause).unwrap();
            assert_eq!(json, format!("\"{}\"", cause.name()));
            assert_eq!(serde_json::from_str::<Cause>(&json).unwrap(), cause);
        }
    }
}
