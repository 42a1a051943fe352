//! The BuildKit strategies run for real on the local engine: a job container (the `docker:28` job
//! image) runs `docker buildx build` against its dind service, on the strategy's own network.
//!
//! scenarios/small/Dockerfile: 1 FROM (builder), 2 RUN, 3 COPY deps.txt (early), 4 RUN, 5 FROM,
//! 6 ENV, 7 COPY --from=builder, 8 WORKDIR, 9 COPY app . (late), 10 RUN, 11 CMD. BuildKit runs no
//! vertex for 6 and 11: their rows have `cached` empty.

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use common::strategies::*;
use common::*;
use layerbench::cause::Cause;
use layerbench::report::cache_map::StepState;
use layerbench::results::JobStatus;
use layerbench::strategy::Strategy;

const BUILDKIT: [Strategy; 3] = [BUILDKIT_INLINE, BUILDKIT_REGISTRY, BUILDKIT_SHARED];

fn matrix() -> &'static PathBuf {
    static RESULTS: OnceLock<PathBuf> = OnceLock::new();
    RESULTS.get_or_init(|| run_to_the_end("engine-buildkit", "scenarios/small.toml", &BUILDKIT))
}

#[test]
fn every_buildkit_job_succeeds_and_metadata_steps_have_no_cache_answer() {
    let dir = matrix();
    let jobs = jobs(dir);
    assert_eq!(jobs.len(), 3 * 4);
    for job in &jobs {
        assert_eq!(job.status, JobStatus::Ok, "{} {}: {}", job.strategy, job.pipeline_run, job.error.as_deref().unwrap_or_default());
        assert_eq!(job.total_steps, 7, "RUN/COPY/WORKDIR steps of the small Dockerfile");
    }
    for step in steps(dir).iter().filter(|s| s.step == 6 || s.step == 11) {
        assert_eq!(step.cached, None, "{} {}: BuildKit ran nothing for `{}`", step.strategy, step.pipeline_run, step.instruction);
    }
}

#[test]
fn buildkit_registry_hits_every_step_on_no_change_in_a_fresh_dind() {
    let (hits, misses) = cache_pattern(&steps(matrix()), "no-change", "buildkit-registry");
    assert!(misses.is_empty(), "buildkit-registry missed {misses:?}");
    assert_eq!(hits, vec![2, 3, 4, 7, 8, 9, 10]);
}

#[test]
fn buildkit_shared_hits_every_step_on_no_change() {
    let (hits, misses) = cache_pattern(&steps(matrix()), "no-change", "buildkit-shared");
    assert!(misses.is_empty(), "buildkit-shared missed {misses:?}");
    assert_eq!(hits, vec![2, 3, 4, 7, 8, 9, 10]);
}

#[test]
fn a_late_copy_change_reruns_only_from_that_copy_for_every_buildkit_strategy() {
    let steps = steps(matrix());
    for strategy in ["buildkit-inline", "buildkit-registry", "buildkit-shared"] {
        let (hits, misses) = cache_pattern(&steps, "code-change", strategy);
        assert_eq!(hits, vec![2, 3, 4, 7, 8], "{strategy}: steps before `COPY app .` (9) must hit");
        assert_eq!(misses, vec![9, 10], "{strategy}: `COPY app .` and what follows must miss");
        common::assert_input_changed_at(&steps, "code-change", strategy, 9, "app/main.py", 11);
    }
    common::assert_no_change_changes_nothing(&steps);
}

/// Inline cache is `mode=min`: only the final image's layers carry cache metadata. On no-change
/// BuildKit needs nothing of the builder stage once `COPY --from` hits, and reports it cached
/// (measured: every step hits). The trap shows when the builder stage must run again: after a
/// change to `deps.txt` (step 3), step 2, before the change, misses under inline cache, because
/// nothing cached it, while the `mode=max` registry cache still serves it.
#[test]
fn inline_cache_loses_the_builder_stage_once_it_must_run_again() {
    let steps = steps(matrix());
    let (inline_hits, inline_misses) = cache_pattern(&steps, "deps-change", "buildkit-inline");
    assert!(inline_misses.contains(&2), "buildkit-inline: step 2 must miss on deps-change, hits {inline_hits:?}");
    let inline: std::collections::BTreeMap<u32, Option<Cause>> = causes(&steps, "deps-change", "buildkit-inline").into_iter().collect();
    assert_eq!(inline[&2], Some(Cause::InlineFinalStageOnly), "unchanged, yet not in an inline cache");
    assert_eq!(inline[&3], Some(Cause::InputChanged));
    let (max_hits, _) = cache_pattern(&steps, "deps-change", "buildkit-registry");
    assert!(max_hits.contains(&2), "buildkit-registry: mode=max keeps step 2, hits {max_hits:?}");
    let (no_change_hits, _) = cache_pattern(&steps, "no-change", "buildkit-inline");
    assert_eq!(no_change_hits, vec![2, 3, 4, 7, 8, 9, 10], "measured on no-change: BuildKit reports the whole build cached");
}

#[test]
fn buildkit_registry_pushes_little_on_no_change_and_its_cache_is_measured() {
    let dir = matrix();
    let jobs = jobs(dir);
    let job = |run: &str| jobs.iter().find(|j| j.strategy == "buildkit-registry" && j.pipeline_run == run).unwrap();
    let (cold, rerun) = (job("cold").bytes_pushed.unwrap(), job("no-change").bytes_pushed.unwrap());
    eprintln!("buildkit-registry: pushed {cold} bytes cold, {rerun} on no-change");
    assert!(cold > 1_000_000, "cold pushes the base layers, got {cold}");
    assert!(rerun * 100 < cold, "no-change pushed {rerun} of cold's {cold}");
    for run in ["cold", "no-change"] {
        let j = job(run);
        assert!(j.cache_import_ms.is_some(), "{run}: cache import timed");
        assert!(j.cache_export_ms.is_some_and(|ms| ms > 0), "{run}: cache export timed: {:?}", j.cache_export_ms);
    }
    let cache = layerbench::results::read_cache(dir).unwrap();
    let stored = cache.iter().find(|c| c.strategy == "buildkit-registry" && c.pipeline_run == "cold").unwrap();
    assert!(stored.registry_bytes.is_some_and(|b| b > 1_000_000), "{stored:?}");
}

/// A stage built `FROM` another stage, and a stage nothing uses (scenarios/small-stages.toml: 1 FROM base,
/// 2 RUN, 3 FROM base AS unused, 4 RUN, 5 FROM base AS final, 6 COPY app, 7 RUN, 8 CMD). The classic
/// builder builds every stage; BuildKit skips the unused one, which is "not run", never a miss.
#[test]
fn a_stage_from_a_stage_and_an_unused_stage_have_the_right_causes_for_both_builders() {
    let dir = run_to_the_end("engine-stages", "scenarios/small-stages.toml", &[SHARED_DIND, BUILDKIT_SHARED]);
    let steps = steps(&dir);
    for job in jobs(&dir) {
        assert_eq!(job.status, JobStatus::Ok, "{} {}: {:?}", job.strategy, job.pipeline_run, job.error);
    }
    for strategy in ["shared-dind", "buildkit-shared"] {
        assert!(causes(&steps, "cold", strategy).iter().all(|(_, c)| *c == Some(Cause::NoCache)), "{strategy} cold");
        assert!(causes(&steps, "no-change", strategy).is_empty(), "{strategy}: every step hits on no-change");
        common::assert_input_changed_at(&steps, "code-change", strategy, 6, "app/main.py", 8);
    }
    let row = |strategy: &str, run: &str, step: u32| {
        steps.iter().find(|s| s.strategy == strategy && s.pipeline_run == run && s.step == step).cloned().expect("a row for every step")
    };
    assert_eq!(row("shared-dind", "cold", 4).cached, Some(false), "the classic builder builds the unused stage");
    assert_eq!(row("shared-dind", "code-change", 4).cached, Some(true), "and serves it from cache after");
    assert_eq!(row("shared-dind", "cold", 4).cause, Some(Cause::NoCache));
    for run in ["cold", "no-change", "code-change"] {
        for step in [3, 4] {
            let skipped = row("buildkit-shared", run, step);
            assert_eq!((skipped.cached, skipped.cause), (None, Some(Cause::NotRun)), "{run}: BuildKit skipped the unused stage: {skipped:?}");
        }
        let cmd = row("buildkit-shared", run, 8);
        assert_eq!((cmd.cached, cmd.cause), (None, None), "{run}: CMD is a metadata step, not a skipped one");
    }
    // The counts: the skipped stage's RUN is no step of BuildKit's jobs, and no miss of the cache map.
    for job in jobs(&dir) {
        let expected = if job.strategy == "buildkit-shared" { 3 } else { 4 };
        assert_eq!(job.total_steps, expected, "{} {}: RUN/COPY steps the builder had to build", job.strategy, job.pipeline_run);
    }
    let data = layerbench::results::data::RunData::load(&dir).unwrap();
    let map = layerbench::report::cache_map::CacheMap::build(&data);
    let row_of = |step: u32| map.steps.iter().position(|s| s.step == step).unwrap();
    for (column, cell) in map.columns.iter().zip(&map.cells[row_of(4)]) {
        let expected = match (column.strategy.name(), column.pipeline_run.as_str()) {
            ("buildkit-shared", _) => StepState::Skipped,
            (_, "cold") => StepState::Miss(Some(Cause::NoCache)),
            _ => StepState::Hit,
        };
        assert_eq!(cell.majority, expected, "{} {}", column.strategy, column.pipeline_run);
    }
    let counted: usize = map.causes_of(BUILDKIT_SHARED).iter().map(|(_, n)| n).sum();
    assert_eq!(counted, 3 + 2, "cold's three steps without cache and code-change's two: the skipped stage counts nowhere");
}
