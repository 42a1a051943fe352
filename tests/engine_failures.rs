//! What a user sees when things go wrong, against the real engine: a failing build, a registry that
//! goes away, Ctrl-C, a malformed scenario, no engine. Results stay valid and nothing is left behind.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::strategies::*;
use common::*;
use layerbench::events::{Event, Reporter};
use layerbench::results::JobStatus;
use layerbench::session::Ending;

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn a_failing_run_step_fails_its_job_and_the_run_goes_on() {
    let _engine = lock_engine();
    let scenario = load("scenarios/small-failing.toml");
    let outcome = runtime().block_on(run(&scenario, &[SHARED_DIND, EPHEMERAL_DIND], &tmp("failing"), vec![]));
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
        if let (Event::JobFinished { record, .. }, false) = (event, self.stopped) {
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
    let outcome = runtime().block_on(run(&scenario, &[REGISTRY_FINAL], &tmp("registry-away"), vec![reporter]));
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

/// Sends `signal` (`-INT`, `-TERM`) to a running layerbench and waits for it: its exit code and stderr.
fn stop(child: std::process::Child, signal: &str) -> (Option<i32>, String) {
    let status = Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// `layerbench run scenarios/small.toml` with one strategy, results under `root`, stderr captured.
fn spawn_run(strategy: &str, root: &std::path::Path) -> std::process::Child {
    layerbench()
        .args(["run", "scenarios/small.toml", "--strategies", strategy, "--no-report", "--results"])
        .arg(root)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn ctrl_c_mid_build_leaves_valid_results_and_no_resources() {
    let _engine = lock_engine();
    let root = tmp("ctrl-c");
    let child = spawn_run("shared-dind", &root);
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
    let (code, stderr) = stop(child, "-INT");
    assert_eq!(code, Some(130), "exit code for an interrupt; stderr:\n{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let jobs = jobs(&results_dir);
    assert!(!jobs.is_empty() && jobs.len() < 4, "stopped mid-run with {} jobs", jobs.len());
    steps(&results_dir);
    let info = layerbench::results::read_run_info(&results_dir).unwrap();
    assert!(info.interrupted);
    assert_eq!(runtime().block_on(leftovers(&info.run_id)), 0, "Ctrl-C left labelled resources");
}

/// SIGTERM (a cancelled CI job) while the mirror is being seeded: exit 143 as shells report it, and
/// nothing of the run outlives it: no labelled resource, no seeding tag, no scratch directory.
#[test]
fn sigterm_while_seeding_the_mirror_exits_143_and_leaves_nothing() {
    let _engine = lock_engine();
    let rt = runtime();
    let docker = rt.block_on(engine());
    let root = tmp("sigterm");
    let child = spawn_run("ephemeral-dind", &root);
    let deadline = Instant::now() + Duration::from_secs(600);
    let wait = |what: &str| assert!(Instant::now() < deadline, "{what} within 10 minutes");
    // The run's directory is named after its id, and so is its mirror.
    let run_id = loop {
        wait("a results directory");
        let dir = std::fs::read_dir(&root).ok().and_then(|mut d| d.next()).and_then(|e| e.ok());
        if let Some(dir) = dir {
            break dir.file_name().to_string_lossy().into_owned();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mirror = format!("lb-{run_id}-mirror");
    let port = loop {
        wait("the mirror's loopback port");
        let info = rt.block_on(docker.inspect_container(&mirror, None)).ok();
        let port = info
            .and_then(|i| i.network_settings?.ports?.get("5000/tcp").cloned().flatten())
            .and_then(|bindings| bindings.into_iter().find_map(|b| b.host_port).filter(|p| !p.is_empty()));
        if let Some(port) = port {
            break port;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let seeding = format!("127.0.0.1:{port}/");
    let seeding_tags = || {
        let images = rt.block_on(docker.list_images(None::<bollard::query_parameters::ListImagesOptions>)).unwrap();
        images.into_iter().flat_map(|i| i.repo_tags).filter(|t| t.starts_with(&seeding)).collect::<Vec<_>>()
    };
    // Catch the seeding tag while it exists; should the push be over first, stop the run anyway.
    let tag_deadline = Instant::now() + Duration::from_secs(60);
    while seeding_tags().is_empty() && Instant::now() < tag_deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("stopping the run with the seeding tags {:?}", seeding_tags());
    let (code, stderr) = stop(child, "-TERM");
    assert_eq!(code, Some(143), "exit code for SIGTERM; stderr:\n{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(layerbench::results::read_run_info(&root.join(&run_id)).unwrap().interrupted);
    assert_eq!(rt.block_on(leftovers(&run_id)), 0, "SIGTERM left labelled resources");
    assert_eq!(seeding_tags(), Vec::<String>::new(), "SIGTERM left the mirror's seeding tags");
    let scratch = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("layerbench-{run_id}")))
        .count();
    assert_eq!(scratch, 0, "SIGTERM left the scratch directory");
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

/// A malformed image flag or concurrency level is refused with exit 2 and one line, before the engine is
/// reached (DOCKER_HOST points nowhere: reaching it would be exit 3).
#[test]
fn malformed_image_flags_and_levels_are_usage_errors_before_anything_starts() {
    let cases: [(&[&str], &str); 9] = [
        (&["--kaniko-image", ""], "--kaniko-image `` is not an image reference: it is empty"),
        (&["--base-image", "UPPER/Case::tag"], "--base-image `UPPER/Case::tag` is not an image reference"),
        (&["--registry-image", "registry:-3"], "tag `-3`"),
        (&["--concurrency", "0"], "--concurrency: concurrency 0 is below 1"),
        (&["--concurrency", "1,32"], "above the ceiling of 16"),
        (&["--base-image", "node:20=Local/Node"], "--base-image `node:20=Local/Node`: the local image `Local/Node` is not an image reference"),
        (&["--base-image", "=local/node:20"], "--base-image `=local/node:20`: the name `` is not an image reference: it is empty"),
        (&["--base-image", "node:20=a", "--base-image", "docker.io/library/node:20=b"], "--base-image maps docker.io/library/node:20 twice (to a and to b)"),
        (&["--base-image", "python:3.12", "--base-image", "python:3.13"], "--base-image names the Python base twice"),
    ];
    for (flags, expected) in cases {
        let output = layerbench()
            .args(["run", "scenarios/small.toml"])
            .args(flags)
            .env("DOCKER_HOST", "tcp://127.0.0.1:9")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flags:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{flags:?}: one line: {stderr}");
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
    }
    // `cluster up` checks its image flags the same way, before it reaches the engine.
    let output = layerbench()
        .args(["cluster", "up", "--name", "lb-flags", "--dind-image", ""])
        .env("DOCKER_HOST", "tcp://127.0.0.1:9")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--dind-image `` is not an image reference"), "{stderr}");
}

/// Errors print their cause once: a module error already shows it, the chain must not repeat it.
#[test]
fn a_missing_file_names_its_cause_once() {
    let commands: [&[&str]; 3] =
        [&["run", "no-such-scenario.toml"], &["report", "no-such-results"], &["compare", "no-such-a", "no-such-b"]];
    for args in commands {
        let output = layerbench().args(args).current_dir(env!("CARGO_TARGET_TMPDIR")).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: one line: {stderr}");
        assert_eq!(stderr.matches("No such file or directory").count(), 1, "{args:?}: the cause once: {stderr}");
    }
}
