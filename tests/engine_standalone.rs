//! The builders that need no Docker daemon, run for real on the local engine: kaniko (the executor built
//! from its Go module) in a job container, and a standalone buildkitd (built from BuildKit's module) driven
//! by `buildctl` from a job container, fresh per job with a registry cache or shared by an iteration's jobs.
//!
//! scenarios/small/Dockerfile: 1 FROM (builder), 2 RUN, 3 COPY deps.txt (early), 4 RUN, 5 FROM,
//! 6 ENV, 7 COPY --from=builder, 8 WORKDIR, 9 COPY app . (late), 10 RUN, 11 CMD.

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use common::strategies::*;
use common::*;
use layerbench::cause::Cause;
use layerbench::results::{FailureKind, JobStatus};
use layerbench::strategy::Strategy;

const STANDALONE: [Strategy; 3] = [DAEMONLESS_KANIKO, BUILDKIT_DAEMON, BUILDKIT_DAEMON_SHARED];

fn matrix() -> &'static PathBuf {
    static RESULTS: OnceLock<PathBuf> = OnceLock::new();
    RESULTS.get_or_init(|| run_scenario_to_the_end("engine-standalone", &small_without_deps_change(), &STANDALONE))
}

#[test]
fn every_standalone_job_succeeds() {
    let jobs = jobs(matrix());
    assert_eq!(jobs.len(), 3 * 3, "one job per strategy and pipeline run (cold, no-change, code-change)");
    for job in &jobs {
        assert_eq!(job.status, JobStatus::Ok, "{} {}: {}", job.strategy, job.pipeline_run, job.error.as_deref().unwrap_or_default());
    }
}

/// kaniko caches `RUN` layers in its cache repository, and a `COPY` only with `--cache-copy-layers`
/// (which layerbench does not pass, as GitLab's kaniko template does not): a fresh container on
/// `no-change` hits every RUN step from the registry and reports every other step as run.
#[test]
fn kaniko_hits_every_run_step_from_its_cache_repo_in_a_fresh_container() {
    let (hits, misses) = cache_pattern(&steps(matrix()), "no-change", "daemonless-kaniko");
    assert_eq!(hits, vec![2, 4, 10], "RUN steps; misses {misses:?}");
    assert!(misses.contains(&3) && misses.contains(&9), "COPY steps are never cached by kaniko here: {misses:?}");
    for (step, cause) in causes(&steps(matrix()), "no-change", "daemonless-kaniko") {
        let expected = if [3, 7, 9].contains(&step) { Cause::CopyNotCached } else { Cause::NeverCached };
        assert_eq!(cause, Some(expected), "kaniko no-change: step {step}");
    }
}

/// After the late `COPY app .` (step 9) changes, the RUN steps before it still hit and the RUN after it runs.
#[test]
fn kaniko_after_a_late_copy_change_hits_the_run_steps_before_it() {
    let (hits, misses) = cache_pattern(&steps(matrix()), "code-change", "daemonless-kaniko");
    assert_eq!(hits, vec![2, 4], "misses {misses:?}");
    assert!(misses.contains(&10), "RUN 10 follows the changed COPY and must run: {misses:?}");
    let causes: std::collections::BTreeMap<u32, Option<Cause>> = causes(&steps(matrix()), "code-change", "daemonless-kaniko").into_iter().collect();
    assert_eq!(causes[&9], Some(Cause::InputChanged), "the changed COPY says so, before kaniko's gap");
    assert_eq!(causes[&10], Some(Cause::AfterMiss));
}

#[test]
fn standalone_strategies_change_no_input_on_no_change_and_only_the_late_copy_on_code_change() {
    let steps = steps(matrix());
    common::assert_no_change_changes_nothing(&steps);
    for strategy in ["buildkit-daemon", "buildkit-daemon-shared"] {
        common::assert_input_changed_at(&steps, "code-change", strategy, 9, "app/main.py", 11);
    }
}

#[test]
fn buildkit_daemon_hits_every_step_on_no_change_with_a_fresh_buildkitd() {
    let (hits, misses) = cache_pattern(&steps(matrix()), "no-change", "buildkit-daemon");
    assert!(misses.is_empty(), "buildkit-daemon missed {misses:?}");
    assert_eq!(hits, vec![2, 3, 4, 7, 8, 9, 10]);
}

#[test]
fn buildkit_daemon_shared_hits_every_step_on_no_change() {
    let (hits, misses) = cache_pattern(&steps(matrix()), "no-change", "buildkit-daemon-shared");
    assert!(misses.is_empty(), "buildkit-daemon-shared missed {misses:?}");
    assert_eq!(hits, vec![2, 3, 4, 7, 8, 9, 10]);
}

/// Only the fresh daemon imports and exports a registry cache; BuildKit's own vertex times give those
/// phases (even a cold import, which finds nothing, takes a moment), and the shared daemon has neither.
#[test]
fn only_the_fresh_buildkitd_imports_and_exports_its_cache() {
    for job in jobs(matrix()) {
        let (import, export) = (job.cache_import_ms, job.cache_export_ms);
        match job.strategy.name() {
            "buildkit-daemon" => {
                assert!(import.is_some_and(|ms| ms > 0), "{}: no cache import timed: {import:?}", job.pipeline_run);
                // The export overlaps the push; only the time it runs alone is its own, which may round to 0.
                assert!(export.is_some(), "{}: no cache export timed", job.pipeline_run);
            }
            "buildkit-daemon-shared" => {
                assert_eq!((import, export), (None, None), "{}: the shared daemon moves no cache", job.pipeline_run);
            }
            _ => {}
        }
        if job.strategy.name().starts_with("buildkit-daemon") {
            assert!(job.push_ms.is_some_and(|ms| ms > 0), "{} {}: no push timed", job.strategy, job.pipeline_run);
        }
    }
}

/// A failing RUN fails the job as a build failure naming the step and the builder's reason, for each builder.
#[test]
fn a_failing_run_fails_the_job_with_the_step_and_the_reason_in_each() {
    let _engine = lock_engine();
    let scenario = load("scenarios/small-failing.toml");
    let results = tempfile::tempdir().unwrap();
    let outcome = runtime().block_on(run(&scenario, &STANDALONE, results.path(), vec![]));
    let jobs = jobs(&outcome.results_dir);
    for strategy in ["daemonless-kaniko", "buildkit-daemon", "buildkit-daemon-shared"] {
        let failed: Vec<_> = jobs.iter().filter(|j| j.strategy == strategy).collect();
        assert!(!failed.is_empty(), "{strategy} ran no job");
        for job in failed {
            assert_eq!(job.status, JobStatus::Failed, "{strategy} {}", job.pipeline_run);
            assert_eq!(job.failure_kind, Some(FailureKind::Build), "{strategy}: {:?}", job.error);
            let error = job.error.as_deref().unwrap_or_default();
            assert!(error.contains("failed at step 8/"), "{strategy}: the failing RUN (step 8) is not named: {error}");
            assert!(error.contains("exit code: 3") || error.contains("exit code 3") || error.contains("code: 3"), "{strategy}: not the builder's reason: {error}");
        }
    }
    assert_eq!(runtime().block_on(leftovers(&outcome.run_id)), 0);
}

/// A build step on a buildkitd shares the daemon's network namespace: the fence must still keep it off
/// the daemon's API, by every name and address it could try (see the probe in the scenario).
#[test]
fn no_build_step_reaches_the_buildkitd_that_runs_it() {
    let _engine = lock_engine();
    let scenario = load("tests/fixtures/scenarios/fence-probe.toml");
    let results = tempfile::tempdir().unwrap();
    let outcome = runtime().block_on(run(&scenario, &[BUILDKIT_DAEMON, BUILDKIT_DAEMON_SHARED], results.path(), vec![]));
    let jobs = jobs(&outcome.results_dir);
    assert_eq!(jobs.len(), 2);
    for job in &jobs {
        assert_eq!(job.status, JobStatus::Ok, "{}: a build step reached a daemon: {:?}", job.strategy, job.error);
    }
    assert_eq!(runtime().block_on(leftovers(&outcome.run_id)), 0);
}
