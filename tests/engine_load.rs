//! Pipelines at once on the real engine: two lanes of each strategy started together (scenarios/small-load.toml:
//! cold, a code change per lane, no change, and a last run that breaks lane 2's build only), and the run's
//! registry under concurrent pushes.
//!
//! One run feeds every lane test, at level 2 only. Level 1 of these strategies is one job at a time, which
//! every other engine test is: engine_strategies runs ephemeral-dind, shared-dind and registry-multistage on the
//! same Dockerfile and pipeline, engine_standalone buildkit-daemon-shared; the runner's unit tests cover a run of
//! several levels (the memory refusal between them). Adding level 1 here would add 16 jobs (four cold builds
//! among them), about as long again as the lanes themselves, to assert nothing those runs do not. The level
//! sweep on the flask scenario is the example run, not a test.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use bollard::query_parameters::EventsOptionsBuilder;
use common::strategies::*;
use common::*;
use futures_util::StreamExt;
use layerbench::backend::docker::{BackendImages, DockerBackend};
use layerbench::backend::Backend;
use layerbench::cause::Cause;
use layerbench::results::{JobRecord, JobStatus, StepRecord};

const STRATEGIES: [layerbench::strategy::Strategy; 4] = [EPHEMERAL_DIND, SHARED_DIND, BUILDKIT_DAEMON_SHARED, REGISTRY_MULTISTAGE];

/// The run's results, and the names of every container the engine created while it ran (from the engine's
/// own event stream, followed for the run's whole length).
struct LoadRun {
    dir: PathBuf,
    created: Vec<String>,
}

fn load_run() -> &'static LoadRun {
    static RUN: OnceLock<LoadRun> = OnceLock::new();
    RUN.get_or_init(|| {
        let _engine = lock_engine();
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("engine-load");
        let scenario = load("scenarios/small-load.toml");
        runtime().block_on(async {
            let docker = engine().await;
            let created = Arc::new(Mutex::new(vec![]));
            let filters = HashMap::from([("type", vec!["container"]), ("event", vec!["create"])]);
            let mut stream = docker.events(Some(EventsOptionsBuilder::default().filters(&filters).build()));
            let seen = created.clone();
            let follower = tokio::spawn(async move {
                while let Some(Ok(event)) = stream.next().await {
                    let name = event.actor.and_then(|a| a.attributes).and_then(|mut a| a.remove("name"));
                    seen.lock().unwrap().extend(name);
                }
            });
            // The Python base, not the tests' small one: its cold builds are long enough for the lanes' build
            // windows to be seen to intersect.
            let outcome = run_with(&scenario, &STRATEGIES, &root, vec![], layerbench::toolchain::ToolchainConfig::default()).await;
            follower.abort();
            assert!(matches!(outcome.ending, layerbench::session::Ending::Finished(_)), "{:?}", outcome.ending);
            assert_eq!(leftovers(&outcome.run_id).await, 0, "the run left labelled resources behind");
            let created = created.lock().unwrap().iter().filter(|n| n.contains(&outcome.run_id)).cloned().collect();
            LoadRun { dir: outcome.results_dir, created }
        })
    })
}

fn lane_jobs<'a>(jobs: &'a [JobRecord], strategy: &str, run: &str) -> Vec<&'a JobRecord> {
    let mut found: Vec<&JobRecord> = jobs.iter().filter(|j| j.strategy == strategy && j.pipeline_run == run).collect();
    found.sort_by_key(|j| j.lane);
    found
}

fn lane_steps<'a>(steps: &'a [StepRecord], strategy: &str, run: &str, lane: u32) -> Vec<&'a StepRecord> {
    steps.iter().filter(|s| s.strategy == strategy && s.pipeline_run == run && s.lane == lane).collect()
}

/// No builder reports a cache hit for `FROM`.
fn is_from(step: &StepRecord) -> bool {
    step.instruction.to_uppercase().starts_with("FROM ")
}

/// The pipeline runs every lane goes through; `lane-2-breaks` follows them.
const RUNS: [&str; 3] = ["cold", "code-change", "no-change"];

#[test]
fn every_lane_of_every_strategy_is_recorded_and_succeeds() {
    let dir = &load_run().dir;
    let (jobs, steps) = (jobs(dir), steps(dir));
    assert_eq!(jobs.len(), STRATEGIES.len() * 4 * 2);
    for strategy in STRATEGIES {
        for run in RUNS {
            let lanes = lane_jobs(&jobs, strategy.name(), run);
            assert_eq!(lanes.iter().map(|j| (j.concurrency, j.lane)).collect::<Vec<_>>(), [(2, 1), (2, 2)], "{strategy} {run}");
            for job in &lanes {
                assert_eq!(job.status, JobStatus::Ok, "{strategy} {run} lane {}: {:?}", job.lane, job.error);
                assert!(!lane_steps(&steps, strategy.name(), run, job.lane).is_empty(), "{strategy} {run} lane {}: no steps", job.lane);
                assert!(job.node.is_some(), "the engine's host is every job's node");
                assert_eq!(job.bytes_pushed, None, "a lane's traffic cannot be told from the other's, so it is left empty");
            }
        }
    }
    let info = layerbench::results::read_run_info(dir).unwrap();
    assert_eq!(info.concurrency, vec![2]);
}

/// A lane that fails does not stop its sibling: on `lane-2-breaks` lane 2's build fails at step 11 (a build
/// failure, with the builder's exit code), while lane 1, started with it, goes through and is recorded whole.
#[test]
fn a_lane_that_fails_does_not_stop_the_other() {
    let dir = &load_run().dir;
    let (jobs, steps) = (jobs(dir), steps(dir));
    for strategy in STRATEGIES {
        let lanes = lane_jobs(&jobs, strategy.name(), "lane-2-breaks");
        assert_eq!(lanes.len(), 2, "{strategy}: both lanes recorded");
        let (ok, broken) = (lanes[0], lanes[1]);
        assert_eq!(ok.status, JobStatus::Ok, "{strategy} lane 1: {:?}", ok.error);
        assert!(ok.push_ms.is_some_and(|ms| ms > 0), "{strategy} lane 1 pushed its image");
        assert_eq!(broken.status, JobStatus::Failed, "{strategy} lane 2");
        assert_eq!(broken.failure_kind, Some(layerbench::results::FailureKind::Build), "{strategy} lane 2: {:?}", broken.error);
        let error = broken.error.as_deref().unwrap_or_default();
        assert!(error.contains("step 11/12"), "{strategy} lane 2 names the step: {error}");
        assert!(overlap_ms(ok, broken) > 0, "{strategy}: the lanes ran at once");
        let last = lane_steps(&steps, strategy.name(), "lane-2-breaks", 1).iter().map(|s| s.step).max();
        assert_eq!(last, Some(12), "{strategy} lane 1 has every step's row");
        let changed = lane_steps(&steps, strategy.name(), "lane-2-breaks", 1).into_iter().find(|s| s.step == 9).and_then(|s| s.changed.clone());
        assert_eq!(changed.as_deref(), Some("app/lane.txt (added)"), "{strategy}: lane 1's own change");
    }
}

/// Lanes start together: every pair of lanes ran at the same time, and where the build is long enough to
/// tell (a cold build), their build phases intersect.
#[test]
fn the_lanes_really_run_at_once() {
    let jobs = jobs(&load_run().dir);
    for strategy in STRATEGIES {
        for run in RUNS {
            let lanes = lane_jobs(&jobs, strategy.name(), run);
            assert!(overlap_ms(lanes[0], lanes[1]) > 0, "{strategy} {run}: the lanes did not run at once");
        }
    }
    for strategy in [EPHEMERAL_DIND, SHARED_DIND, BUILDKIT_DAEMON_SHARED] {
        let lanes = lane_jobs(&jobs, strategy.name(), "cold");
        let (a, b) = (build_window(lanes[0]), build_window(lanes[1]));
        assert!(a.0.max(b.0) < a.1.min(b.1), "{strategy}: build windows {a:?} and {b:?} do not intersect");
    }
}

/// A fresh-daemon strategy starts one daemon per lane; a shared one serves both lanes from one daemon.
#[test]
fn fresh_daemons_are_one_per_lane_and_a_shared_daemon_serves_both() {
    let run = load_run();
    let fresh_dinds: Vec<&String> = run.created.iter().filter(|n| n.contains("-dind-job")).collect();
    let ephemeral_jobs = jobs(&run.dir).iter().filter(|j| j.strategy == EPHEMERAL_DIND || j.strategy == REGISTRY_MULTISTAGE).count();
    assert_eq!(fresh_dinds.len(), ephemeral_jobs, "one fresh dind per job of a fresh-daemon strategy: {fresh_dinds:?}");
    assert!(!run.created.iter().any(|n| n.contains("-buildkitd-job")), "buildkit-daemon-shared started no daemon of a job's own");
    let services = layerbench::results::read_services(&run.dir).unwrap();
    for (strategy, service) in [(SHARED_DIND, "dind"), (BUILDKIT_DAEMON_SHARED, "buildkitd")] {
        let started: Vec<_> = services.iter().filter(|s| s.strategy == strategy).collect();
        assert_eq!(started.len(), 1, "{strategy}: one {service} for the iteration, serving both lanes");
        assert_eq!(run.created.iter().filter(|n| n.contains(&format!("-{service}-shared-{}", strategy.name()))).count(), 1);
        assert!(started[0].cpu_ms.is_some_and(|ms| ms > 0), "{strategy}: its CPU time over the iteration: {:?}", started[0]);
        assert!(started[0].peak_memory_bytes.is_some_and(|b| b > 1 << 20), "{strategy}: its peak working set: {:?}", started[0]);
    }
    // The shared daemon keeps both lanes' layers. buildkitd keys its cache by content, so each lane rebuilding
    // its own commit hits every step. The classic builder of shared-dind does not always: two lanes building the
    // same step at once each make a layer of their own, and a later lookup follows one of them, below which the
    // other lane's later layers are not found (seen: on no-change one lane hit every step, the other missed from
    // its own `COPY app .`, which it had built on code-change). So there: one lane hits every step, and the
    // other's misses are never a changed input.
    let steps = steps(&run.dir);
    let missed = |strategy: layerbench::strategy::Strategy, lane: u32| -> Vec<(u32, Option<Cause>)> {
        lane_steps(&steps, strategy.name(), "no-change", lane)
            .iter()
            .filter(|s| s.cached == Some(false) && !is_from(s))
            .map(|s| (s.step, s.cause))
            .collect()
    };
    for lane in [1, 2] {
        assert_eq!(missed(BUILDKIT_DAEMON_SHARED, lane), [], "buildkit-daemon-shared lane {lane} on no-change");
        for (step, cause) in missed(SHARED_DIND, lane) {
            assert!(matches!(cause, Some(Cause::Evicted | Cause::AfterMiss)), "shared-dind lane {lane} step {step}: {cause:?}");
        }
    }
    assert!(missed(SHARED_DIND, 1).is_empty() || missed(SHARED_DIND, 2).is_empty(), "shared-dind: one lane hits every step");
}

/// registry-multistage's lanes share one `:latest`. On code-change both pull the cold image and push their
/// own; the last push wins. On no-change both pull that one: its lane hits every step, the other finds the
/// winner's code at `COPY app .` (9) and misses it although its own input did not change: the overwrite.
#[test]
fn lanes_that_share_latest_overwrite_each_others_cache() {
    let steps = steps(&load_run().dir);
    let state = |lane: u32| {
        let step = lane_steps(&steps, "registry-multistage", "no-change", lane).into_iter().find(|s| s.step == 9).cloned().expect("step 9");
        (step.cached, step.cause)
    };
    let mut states = [state(1), state(2)];
    states.sort();
    assert_eq!(states, [(Some(false), Some(Cause::Evicted)), (Some(true), None)], "one lane keeps its layers, the other lost them");
    for lane in [1, 2] {
        let early: Vec<u32> = lane_steps(&steps, "registry-multistage", "no-change", lane)
            .iter()
            .filter(|s| s.step < 9 && s.cached == Some(false) && !is_from(s))
            .map(|s| s.step)
            .collect();
        assert!(early.is_empty(), "lane {lane}: the steps before the app's COPY are the same in both lanes' images: {early:?}");
    }
}

/// CPU time comes from the kernel's counters: a job's figure is there and within its wall time × the
/// host's cores, and a shared daemon's share is counted for its jobs.
#[test]
fn every_job_has_its_cpu_time_and_peak_memory() {
    let jobs = jobs(&load_run().dir);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    for job in &jobs {
        let cpu = job.cpu_ms.unwrap_or_else(|| panic!("{} {} lane {}: no CPU time ({:?})", job.strategy, job.pipeline_run, job.lane, job.notes));
        assert!(cpu <= job.wall_ms * cores, "{} {}: {cpu} ms of CPU in {} ms", job.strategy, job.pipeline_run, job.wall_ms);
        assert!(job.peak_memory_bytes.is_some_and(|b| b > 1 << 20), "{} {}: {:?}", job.strategy, job.pipeline_run, job.peak_memory_bytes);
    }
}

/// The run's registry holds N clients pushing the same blobs, tags and manifests into one repository at
/// once: 4 clients, 20 rounds of every pattern that made Distribution 2.8 fail (tests/fixtures/registry/race.py).
#[test]
fn the_runs_registry_holds_four_clients_pushing_the_same_blobs_at_once() {
    let _engine = lock_engine();
    runtime().block_on(async {
        let docker = engine().await;
        let events = events(vec![]);
        let toolchain = layerbench::toolchain::resolve(&docker, &layerbench::toolchain::ToolchainConfig::default(), &events).await.unwrap();
        let run_id = format!("registry-race-{}", std::process::id());
        let mut backend = DockerBackend::start(docker.clone(), &run_id, BackendImages::from_toolchain(&toolchain, &Default::default()), &events).await.unwrap();
        backend.begin_iteration(1, &[DAEMONLESS], &events).await.unwrap();
        let network = backend.network(DAEMONLESS).unwrap().to_string();
        let script = std::fs::read_to_string(repo_path("tests/fixtures/registry/race.py")).unwrap();
        let name = format!("lb-{run_id}-race");
        let (code, out) =
            run_python(&docker, &name, &toolchain.base().name, &network, &script, &["registry:5000", "4", "20", "1048576"]).await;
        backend.end_iteration(1).await.unwrap();
        layerbench::resources::remove_labelled(&docker, Some(&run_id)).await.unwrap();
        eprintln!("{out}");
        assert_eq!(code, 0, "a concurrent push failed:\n{out}");
        assert!(out.contains("mono_same_repo") && out.contains("manifest_vs_layer_reupload"), "every pattern ran:\n{out}");
        assert!(out.lines().filter(|l| l.contains(" failed / ")).all(|l| l.contains("   0 failed")), "{out}");
    });
}
