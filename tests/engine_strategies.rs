//! Every strategy run for real on the local engine (dind daemons, the run's registry, buildah),
//! against the small scenario: each test asserts the cache behaviour that defines its strategy.
//!
//! scenarios/small/Dockerfile: 1 FROM (builder), 2 RUN, 3 COPY deps.txt (early), 4 RUN, 5 FROM,
//! 6 ENV, 7 COPY --from=builder, 8 WORKDIR, 9 COPY app . (late), 10 RUN, 11 CMD.

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use common::strategies::*;
use common::*;
use layerbench::results::JobStatus;
use layerbench::session::Ending;
use layerbench::strategy::Strategy;

const ALL_ON_ENGINE: [Strategy; 5] = [EPHEMERAL_DIND, REGISTRY_FINAL, REGISTRY_MULTISTAGE, SHARED_DIND, DAEMONLESS];

/// One run of every strategy through the whole pipeline, shared by the tests below.
fn matrix() -> &'static PathBuf {
    static RESULTS: OnceLock<PathBuf> = OnceLock::new();
    RESULTS.get_or_init(|| run_scenario_to_the_end("engine-matrix", &small_without_deps_change(), &ALL_ON_ENGINE))
}

#[test]
fn every_job_of_the_matrix_succeeds() {
    let jobs = jobs(matrix());
    assert_eq!(jobs.len(), 5 * 3, "one job per strategy and pipeline run (cold, no-change, code-change)");
    for job in &jobs {
        assert_eq!(job.status, JobStatus::Ok, "{} {}: {}", job.strategy, job.pipeline_run, job.error.as_deref().unwrap_or_default());
        assert!(job.build_ms.is_some() && job.provision_ms.is_some());
    }
}

#[test]
fn ephemeral_dind_never_hits_the_cache() {
    common::assert_never_hits(&steps(matrix()), "ephemeral-dind");
}

#[test]
fn shared_dind_hits_every_step_on_no_change() {
    common::assert_hits_every_step_on_no_change(&steps(matrix()), "shared-dind");
}

#[test]
fn a_late_copy_change_reruns_only_from_that_copy() {
    let steps = steps(matrix());
    for strategy in ["shared-dind", "registry-multistage", "daemonless"] {
        common::assert_late_copy_change_reruns_from_it(&steps, strategy);
    }
}

/// No input changes on a rerun with nothing changed: every miss there is the strategy's own gap or after one.
#[test]
fn no_change_changes_no_steps_input_in_any_strategy() {
    common::assert_no_change_changes_nothing(&steps(matrix()));
}

#[test]
fn registry_final_caches_only_the_final_stage_steps_before_copy_from() {
    common::assert_registry_final_hits_only_before_copy_from(&steps(matrix()));
}

#[test]
fn registry_multistage_hits_every_step_on_no_change() {
    let (hits, misses) = cache_pattern(&steps(matrix()), "no-change", "registry-multistage");
    assert!(misses.is_empty(), "registry-multistage missed {misses:?}");
    assert_eq!(hits.len(), 9);
}

#[test]
fn daemonless_buildah_serves_every_step_from_the_remote_cache() {
    let (hits, misses) = cache_pattern(&steps(matrix()), "no-change", "daemonless");
    assert!(misses.is_empty(), "buildah missed {misses:?} on no-change in a fresh job container");
    assert_eq!(hits.len(), 9);
}

#[test]
fn registry_strategies_push_little_when_nothing_changed() {
    let jobs = jobs(matrix());
    let pushed = |strategy: &str, run: &str| {
        jobs.iter().find(|j| j.strategy == strategy && j.pipeline_run == run).and_then(|j| j.bytes_pushed).expect("bytes_pushed measured")
    };
    for strategy in ["registry-final", "registry-multistage", "daemonless"] {
        let (cold, rerun) = (pushed(strategy, "cold"), pushed(strategy, "no-change"));
        eprintln!("{strategy}: pushed {cold} bytes cold, {rerun} bytes on no-change");
        assert!(cold > 1_000_000, "{strategy}: a cold push carries the base layers, got {cold}");
        assert!(rerun * 100 < cold, "{strategy}: no-change pushed {rerun} of cold's {cold}");
    }
}

#[test]
fn cache_sizes_are_measured_after_each_pipeline_run() {
    let cache = layerbench::results::read_cache(matrix()).unwrap();
    assert_eq!(cache.len(), 5 * 3, "a row per strategy and pipeline run");
    for row in cache.iter().filter(|r| r.strategy != "shared-dind") {
        let bytes = row.registry_bytes.expect("registry storage measured");
        assert!(bytes > 1_000_000, "{} {}: registry holds {bytes} bytes", row.strategy, row.pipeline_run);
        assert!(row.daemon_volume_bytes.is_none(), "only shared-dind has a daemon volume");
    }
    let shared: Vec<_> = cache.iter().filter(|r| r.strategy == "shared-dind").collect();
    assert!(shared.iter().all(|r| r.daemon_volume_bytes.is_some_and(|b| b > 1_000_000)));
    let services = layerbench::results::read_services(matrix()).unwrap();
    assert_eq!(services.len(), 1, "one shared dind for the one iteration");
    assert!(services[0].startup_ms > 0);
}

#[test]
fn registry_multistage_generalises_to_three_stages() {
    let _engine = lock_engine();
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("engine-3stage");
    let scenario = load("scenarios/small-3stage.toml");
    assert_eq!(scenario.dockerfile.stages.len(), 3);
    let outcome = runtime().block_on(run(&scenario, &[REGISTRY_MULTISTAGE], &root, vec![]));
    assert!(matches!(outcome.ending, Ending::Finished(_)));
    let (hits, misses) = cache_pattern(&steps(&outcome.results_dir), "no-change", "registry-multistage");
    assert!(misses.is_empty(), "missed {misses:?} with three stages");
    assert!(hits.len() >= 9);
}
