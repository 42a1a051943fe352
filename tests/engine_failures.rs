//! What a user sees when things go wrong, against the real engine: a failing build, a registry that
//! goes away, Ctrl-C, a malformed scenario, no engine. Results stay valid and nothing is left behind.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use layerbench::events::{Event, Reporter};
use layerbench::results::JobStatus;
use layerbench::session::Ending;
use layerbench::strategy::StrategyKind::*;

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn a_failing_run_step_fails_its_job_and_the_run_goes_on() {
    let _engine = lock_engine();
    let scenario = load("scenarios/small-failing.toml");
    let outcome = runtime().block_on(run(&scenario, &[SharedDind, EphemeralDind], &tmp("failing"), vec![]));
    let Ending::Finished(summary) = outcome.ending else { panic!("the run must finish: {:?}", outcome.ending) };
    let jobs = jobs(&outcome.results_dir);
    assert_eq!(jobs.len(), 2 * scenario.pipeline.len(), "every job ran although each one failed");
    assert_eq!(summary.failed_jobs as usize, jobs.len());
    for job in &jobs {
        assert_eq!(job.status, JobStatus::Failed);
        let error = job.error.as_deref().unwrap_or_default();
        assert_eq!(job.failure_kind, Some(layerbench::results::FailureKind::Build), "{error}");
        assert!(error.contains("step 8/9"), "the error names the step: {error}");
        assert!(error.contains("returned a non-zero code: 3"), "the error keeps the builder's reason: {error}");
    }
    assert_eq!(runtime().block_on(leftovers(&outcome.run_id)), 0);
}

/// Stops the run's registry as soon as the first job has finished.
struct StopRegistryAfterFirstJob {
    stopped: bool,
}

impl Reporter for StopRegistryAfterFirstJob {
    fn event(&mut self, event: &Event) {
        if let (Event::JobFinished { record }, false) = (event, self.stopped) {
            self.stopped = true;
            // Each strategy has a registry of its own per iteration.
            let name = format!("lb-{}-registry-{}-it{}", record.run_id, record.strategy, record.iteration);
            // Reporters are synchronous: stop it from a thread with its own runtime.
            let stopped = std::thread::spawn(move || {
                runtime().block_on(async { engine().await.stop_container(&name, None).await })
            })
            .join()
            .unwrap();
            assert!(stopped.is_ok(), "stop the registry: {stopped:?}");
        }
    }
}

#[test]
fn a_registry_that_goes_away_fails_the_jobs_that_need_it() {
    let _engine = lock_engine();
    let scenario = load("scenarios/small.toml");
    let reporter: Box<dyn Reporter> = Box::new(StopRegistryAfterFirstJob { stopped: false });
    let outcome = runtime().block_on(run(&scenario, &[RegistryFinal], &tmp("registry-away"), vec![reporter]));
    assert!(matches!(outcome.ending, Ending::Finished(_)), "the run ends cleanly: {:?}", outcome.ending);
    let jobs = jobs(&outcome.results_dir);
    assert_eq!(jobs.len(), 4);
    assert_eq!(jobs[0].status, JobStatus::Ok);
    for job in &jobs[1..] {
        assert_eq!(job.status, JobStatus::Failed, "{}", job.pipeline_run);
        let error = job.error.as_deref().unwrap_or_default();
        assert_eq!(job.failure_kind, Some(layerbench::results::FailureKind::Infrastructure), "{error}");
        assert!(error.contains("registry:5000"), "the error names the registry: {error}");
    }
    assert_eq!(runtime().block_on(leftovers(&outcome.run_id)), 0);
}

fn layerbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_layerbench"))
}

#[test]
fn ctrl_c_mid_build_leaves_valid_results_and_no_resources() {
    let _engine = lock_engine();
    let root = tmp("ctrl-c");
    let child = layerbench()
        .args(["run", "scenarios/small.toml", "--strategies", "shared-dind", "--no-report", "--results"])
        .arg(&root)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first job to be written, then give the second one time to start building.
    let deadline = Instant::now() + Duration::from_secs(600);
    let results_dir = loop {
        assert!(Instant::now() < deadline, "no job finished within 10 minutes");
        let dir = std::fs::read_dir(&root).ok().and_then(|mut d| d.next()).and_then(|e| e.ok()).map(|e| e.path());
        if let Some(dir) = dir.filter(|d| jobs_in(d) >= 1) {
            break dir;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    std::thread::sleep(Duration::from_millis(1500));
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "exit code for an interrupt; stderr:\n{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let jobs = jobs(&results_dir);
    assert!(!jobs.is_empty() && jobs.len() < 4, "stopped mid-run with {} jobs", jobs.len());
    steps(&results_dir);
    let info = layerbench::results::read_run_info(&results_dir).unwrap();
    assert!(info.interrupted);
    assert_eq!(runtime().block_on(leftovers(&info.run_id)), 0, "Ctrl-C left labelled resources");
}

fn jobs_in(dir: &std::path::Path) -> usize {
    layerbench::results::read_jobs(dir).map(|j| j.len()).unwrap_or(0)
}

#[test]
fn a_malformed_scenario_gets_one_line_with_its_place_and_exit_2() {
    let output = layerbench()
        .args(["run", "tests/fixtures/scenarios/unknown-strategy.toml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line, no backtrace: {stderr}");
    assert!(stderr.contains("unknown-strategy.toml:"), "{stderr}");
    assert!(stderr.contains("shared-dind"), "lists the valid strategies: {stderr}");
}

#[test]
fn an_unreachable_engine_is_an_environment_error() {
    let output = layerbench()
        .args(["run", "scenarios/small.toml"])
        .env("DOCKER_HOST", "tcp://127.0.0.1:9")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("127.0.0.1:9") && stderr.contains("DOCKER_HOST"), "{stderr}");
}
