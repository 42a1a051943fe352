//! Shared set-up for tests that run against the real Docker engine (`make test` starts one).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bollard::Docker;
use layerbench::events::{EventSink, Reporter};
use layerbench::cause::Cause;
use layerbench::results::{JobRecord, StepRecord};
use layerbench::scenario::{self, Scenario};
use layerbench::session::{self, Outcome};
use layerbench::strategy::Strategy;
use layerbench::toolchain::ToolchainConfig;

/// Engine tests build for real on a 2-core machine: one at a time keeps their timings sane.
pub static ENGINE: Mutex<()> = Mutex::new(());

pub fn lock_engine() -> std::sync::MutexGuard<'static, ()> {
    ENGINE.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

pub fn load(relative: &str) -> Scenario {
    scenario::load(&repo_path(relative)).unwrap_or_else(|e| panic!("{e}"))
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

pub async fn engine() -> Docker {
    let docker = Docker::connect_with_defaults().expect("DOCKER_HOST is usable");
    docker.ping().await.unwrap_or_else(|e| {
        panic!("no Docker engine answers ({e}); run the tests with `make test`, which starts one")
    });
    docker
}

/// Reporter that prints plain lines, so a failing test shows what the run did.
pub fn events(extra: Vec<Box<dyn Reporter>>) -> EventSink {
    let mut reporters: Vec<Box<dyn Reporter>> = vec![Box::new(layerbench::progress::PlainReporter::new(std::io::stderr()))];
    reporters.extend(extra);
    EventSink::new(reporters)
}

/// The run's bases when its Dockerfile starts `FROM python:3.11-slim`, as a session resolves them: for a test
/// that starts a backend itself and builds or runs that image inside it.
pub async fn python_base(docker: &Docker, config: &ToolchainConfig, toolchain: &layerbench::toolchain::Toolchain, events: &EventSink) -> layerbench::toolchain::bases::Bases {
    let dockerfile = layerbench::dockerfile::Dockerfile::parse("FROM python:3.11-slim\n").unwrap();
    let wanted: Vec<_> = dockerfile.base_images().unwrap().into_iter().map(|b| (b, "Dockerfile:1".to_string())).collect();
    layerbench::toolchain::bases::resolve(docker, config, toolchain, &wanted, events).await.unwrap()
}

/// An image of a shell (`dash` as `/bin/sh`) and `programs`, with the libraries they link, taken from the
/// image `from` (the Python base), and `files` (path, content) of its own; built by the engine (its build
/// cache makes a rebuild quick) and tagged `name`. Returns its ID.
pub async fn tiny_image(docker: &Docker, from: &str, name: &str, programs: &[&str], files: &[(&str, &str)]) -> String {
    use futures_util::StreamExt;
    let mut script = String::from("set -e; mkdir -p /rootfs/bin; cp /bin/dash /rootfs/bin/sh; bins=/bin/dash; ");
    for program in programs {
        script.push_str(&format!("p=$(command -v {program}); cp -L \"$p\" /rootfs/bin/{program}; bins=\"$bins $p\"; "));
    }
    script.push_str("for lib in $(for b in $bins; do ldd $b; done | grep -o '/[^ ]*' | sort -u); do mkdir -p /rootfs$(dirname $lib); cp -L $lib /rootfs$lib; done");
    for (path, content) in files {
        script.push_str(&format!("; mkdir -p /rootfs$(dirname {path}); printf '%s\\n' '{content}' > /rootfs{path}"));
    }
    let dockerfile = format!("FROM {from} AS src\nRUN {script}\nFROM scratch\nCOPY --from=src /rootfs /\n");
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    tar.append_data(&mut header, "Dockerfile", dockerfile.as_bytes()).unwrap();
    let options = bollard::query_parameters::BuildImageOptionsBuilder::default().t(name).rm(true).build();
    let mut build = docker.build_image(options, None, Some(bollard::body_full(tar.into_inner().unwrap().into())));
    while let Some(item) = build.next().await {
        let info = item.unwrap_or_else(|e| panic!("build {name}: {e}"));
        assert!(info.error_detail.is_none(), "build {name}: {info:?}");
    }
    docker.inspect_image(name).await.unwrap().id.unwrap()
}

/// What the small scenarios' builds start `FROM` in the tests, for `python:3.11-slim`: a shell and the
/// programs their `RUN` steps call, a few MB where the Python base is 127 MB, which every cold job would
/// push and every registry-cache job pull through the run's registry, on both backends. Mapped with
/// `--base-image`'s own mechanism, as a team serves an image it has locally.
pub const SMALL_BASE: &str = "layerbench-test/small-base:1";
const SMALL_BASE_PROGRAMS: [&str; 6] = ["mkdir", "cp", "ls", "date", "cat", "wc"];

/// The toolchain a test runs `scenario` with: the Python base mapped to [`SMALL_BASE`] (built now if
/// need be), unless one of its `RUN` steps runs Python (the timed scenario, the fence probes).
pub async fn toolchain_for(docker: &Docker, scenario: &Scenario) -> ToolchainConfig {
    let dockerfile = std::fs::read_to_string(scenario.context.join(&scenario.dockerfile_path)).unwrap_or_default();
    let runs_python = dockerfile.lines().any(|l| l.trim_start().to_uppercase().starts_with("RUN") && l.contains("python"));
    if runs_python {
        return ToolchainConfig::default();
    }
    let config = ToolchainConfig::default();
    let toolchain = layerbench::toolchain::resolve_roles(docker, &config, &Default::default(), &events(vec![])).await.unwrap();
    tiny_image(docker, &toolchain.base().name, SMALL_BASE, &SMALL_BASE_PROGRAMS, &[]).await;
    let mapping = layerbench::toolchain::BaseMapping { name: config.base.clone(), local: SMALL_BASE.into() };
    ToolchainConfig { base_map: vec![mapping], ..config }
}

/// Runs a scenario with the given strategies (one iteration) to the end, results under `results_root`, with
/// the toolchain [`toolchain_for`] gives it.
pub async fn run(scenario: &Scenario, strategies: &[Strategy], results_root: &Path, extra: Vec<Box<dyn Reporter>>) -> Outcome {
    let toolchain = toolchain_for(&engine().await, scenario).await;
    run_with(scenario, strategies, results_root, extra, toolchain).await
}

/// As [`run`], with `toolchain`.
pub async fn run_with(scenario: &Scenario, strategies: &[Strategy], results_root: &Path, extra: Vec<Box<dyn Reporter>>, toolchain: ToolchainConfig) -> Outcome {
    let docker = engine().await;
    let request = session::Request {
        scenario,
        strategies: strategies.to_vec(),
        iterations: 1,
        concurrency: scenario.concurrency.clone(),
        results_root: results_root.to_path_buf(),
        keep: false,
        toolchain,
        backend: session::BackendChoice::Docker,
    };
    session::execute(&docker, &request, &events(extra), std::future::pending()).await.unwrap_or_else(|e| panic!("{e}"))
}

/// The shared run of a test file: `scenario` (relative to the repository) with `strategies`, one at a time on
/// the engine, under `CARGO_TARGET_TMPDIR/<dir>`; it must finish and leave no labelled resource behind.
/// Returns its results directory.
pub fn run_to_the_end(dir: &str, scenario: &str, strategies: &[Strategy]) -> PathBuf {
    run_scenario_to_the_end(dir, &load(scenario), strategies)
}

/// The small scenario without its deps-change run: what a matrix that asserts nothing about an early `COPY`
/// runs, a quarter of its jobs spared (engine_buildkit keeps deps-change, where the inline cache shows).
pub fn small_without_deps_change() -> Scenario {
    let mut scenario = load("scenarios/small.toml");
    scenario.pipeline.retain(|run| run.name != "deps-change");
    scenario
}

/// As [`run_to_the_end`], for a scenario already loaded (and perhaps narrowed).
pub fn run_scenario_to_the_end(dir: &str, scenario: &Scenario, strategies: &[Strategy]) -> PathBuf {
    let toolchain = runtime().block_on(async { toolchain_for(&engine().await, scenario).await });
    run_scenario_to_the_end_with(dir, scenario, strategies, toolchain)
}

/// As [`run_scenario_to_the_end`], with `toolchain`.
pub fn run_scenario_to_the_end_with(dir: &str, scenario: &Scenario, strategies: &[Strategy], toolchain: ToolchainConfig) -> PathBuf {
    let _engine = lock_engine();
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(dir);
    let outcome = runtime().block_on(run_with(scenario, strategies, &root, vec![], toolchain));
    assert!(matches!(outcome.ending, session::Ending::Finished(_)), "{:?}", outcome.ending);
    assert_eq!(runtime().block_on(leftovers(&outcome.run_id)), 0, "the run left labelled resources behind");
    outcome.results_dir
}

/// How long two jobs ran at the same time, from their start times and wall times.
pub fn overlap_ms(a: &JobRecord, b: &JobRecord) -> i64 {
    let start = |j: &JobRecord| chrono::DateTime::parse_from_rfc3339(&j.started_at).expect("an RFC 3339 start").timestamp_millis();
    let (a0, b0) = (start(a), start(b));
    (a0 + a.wall_ms as i64).min(b0 + b.wall_ms as i64) - a0.max(b0)
}

/// When a job was in its build phase, by layerbench's clock: after its provision, pull and cache import,
/// for its build time. Phases are summed segments, so this is the build's span when they ran in that order.
pub fn build_window(job: &JobRecord) -> (i64, i64) {
    let start = chrono::DateTime::parse_from_rfc3339(&job.started_at).expect("an RFC 3339 start").timestamp_millis();
    let before: u64 = [job.provision_ms, job.pull_ms, job.cache_import_ms].iter().flatten().sum();
    let from = start + before as i64;
    (from, from + job.build_ms.unwrap_or(0) as i64)
}

pub fn steps(dir: &Path) -> Vec<StepRecord> {
    layerbench::results::read_steps(dir).expect("steps.csv parses")
}

pub fn jobs(dir: &Path) -> Vec<JobRecord> {
    layerbench::results::read_jobs(dir).expect("jobs.csv parses")
}

/// Step numbers of one job that the builder reported as cached / not cached, `FROM` lines left out
/// (no builder reports a cache hit for `FROM`).
pub fn cache_pattern(steps: &[StepRecord], pipeline_run: &str, strategy: &str) -> (Vec<u32>, Vec<u32>) {
    let job: Vec<&StepRecord> = steps
        .iter()
        .filter(|s| s.pipeline_run == pipeline_run && s.strategy == strategy && !s.instruction.to_uppercase().starts_with("FROM "))
        .collect();
    assert!(!job.is_empty(), "no steps recorded for {strategy} on {pipeline_run}");
    let hits = job.iter().filter(|s| s.cached == Some(true)).map(|s| s.step).collect();
    let misses = job.iter().filter(|s| s.cached == Some(false)).map(|s| s.step).collect();
    (hits, misses)
}

/// Containers, volumes and networks still labelled with the run id.
pub async fn leftovers(run_id: &str) -> usize {
    let docker = engine().await;
    let label = format!("{}={run_id}", layerbench::RUN_ID_LABEL);
    let filters = std::collections::HashMap::from([("label", vec![label.as_str()])]);
    let containers = docker
        .list_containers(Some(bollard::query_parameters::ListContainersOptionsBuilder::default().all(true).filters(&filters).build()))
        .await
        .unwrap();
    let volumes = docker
        .list_volumes(Some(bollard::query_parameters::ListVolumesOptionsBuilder::default().filters(&filters).build()))
        .await
        .unwrap();
    let networks = docker
        .list_networks(Some(bollard::query_parameters::ListNetworksOptionsBuilder::default().filters(&filters).build()))
        .await
        .unwrap();
    containers.len() + volumes.volumes.unwrap_or_default().len() + networks.len()
}

// The cache patterns that define the strategies on scenarios/small.toml, whichever backend ran them:
// 1 FROM (builder), 2 RUN, 3 COPY deps.txt (early), 4 RUN, 5 FROM, 6 ENV, 7 COPY --from=builder,
// 8 WORKDIR, 9 COPY app . (late), 10 RUN, 11 CMD.

/// A strategy whose caches never survive a job reports no hit on any pipeline run, and every miss says
/// it had no cache.
pub fn assert_never_hits(steps: &[StepRecord], strategy: &str) {
    // Every pipeline run the matrix has (some matrices leave deps-change out).
    let mut runs: Vec<&str> = steps.iter().filter(|s| s.strategy == strategy).map(|s| s.pipeline_run.as_str()).collect();
    runs.dedup();
    runs.sort_unstable();
    runs.dedup();
    assert!(runs.len() >= 3 && runs.contains(&"no-change"), "{strategy}: runs {runs:?}");
    for run in runs {
        let (hits, _) = cache_pattern(steps, run, strategy);
        assert!(hits.is_empty(), "{run}: {strategy} reported cached steps {hits:?}");
        for (step, cause) in causes(steps, run, strategy) {
            assert_eq!(cause, Some(Cause::NoCache), "{run}: {strategy} step {step}");
        }
    }
}

/// The cause recorded for each step the builder reported a miss for (`FROM` left out), by step.
pub fn causes(steps: &[StepRecord], pipeline_run: &str, strategy: &str) -> Vec<(u32, Option<Cause>)> {
    steps
        .iter()
        .filter(|s| s.pipeline_run == pipeline_run && s.strategy == strategy && s.cached == Some(false))
        .filter(|s| !s.instruction.to_uppercase().starts_with("FROM "))
        .map(|s| (s.step, s.cause))
        .collect()
}

/// On a rerun with nothing changed no step of any strategy has a changed input (in the first job of an
/// iteration there is nothing to compare with), and no hit is an anomaly.
pub fn assert_no_change_changes_nothing(steps: &[StepRecord]) {
    for s in steps.iter().filter(|s| s.pipeline_run == "no-change") {
        assert_ne!(s.cause, Some(Cause::InputChanged), "{} step {} `{}`", s.strategy, s.step, s.instruction);
        assert_ne!(s.cause, Some(Cause::HitDespiteChange), "{} step {}", s.strategy, s.step);
        assert_eq!(s.changed, None, "{} step {}", s.strategy, s.step);
        assert!(s.input_key.as_ref().is_some_and(|k| k.len() == 16), "{} step {}: {:?}", s.strategy, s.step, s.input_key);
    }
}

/// After a change to `file`, copied at `step`, exactly that step's input changed, naming the file, and every
/// miss after it in its stage (up to `stage_end`) is after a miss.
pub fn assert_input_changed_at(steps: &[StepRecord], run: &str, strategy: &str, step: u32, file: &str, stage_end: u32) {
    let record = steps.iter().find(|s| s.pipeline_run == run && s.strategy == strategy && s.step == step).expect("the step's row");
    assert_eq!(record.cause, Some(Cause::InputChanged), "{strategy} {run}: step {step}");
    assert_eq!(record.changed.as_deref(), Some(file), "{strategy} {run}: step {step}");
    let changed: Vec<u32> = causes(steps, run, strategy).into_iter().filter(|(_, c)| *c == Some(Cause::InputChanged)).map(|(s, _)| s).collect();
    assert_eq!(changed, [step], "{strategy} {run}: only the changed COPY's own input changed");
    for (after, cause) in causes(steps, run, strategy).into_iter().filter(|(s, _)| *s > step && *s <= stage_end) {
        assert_eq!(cause, Some(Cause::AfterMiss), "{strategy} {run}: step {after}");
    }
}

/// Every step but the two `FROM`s hits when nothing changed.
pub fn assert_hits_every_step_on_no_change(steps: &[StepRecord], strategy: &str) {
    let (hits, misses) = cache_pattern(steps, "no-change", strategy);
    assert!(misses.is_empty(), "{strategy} missed {misses:?} on no-change");
    assert_eq!(hits.len(), 9, "{strategy}");
}

/// After the late `COPY app .` (9) changes, the steps before it hit and it and the steps after it run.
pub fn assert_late_copy_change_reruns_from_it(steps: &[StepRecord], strategy: &str) {
    let (hits, misses) = cache_pattern(steps, "code-change", strategy);
    assert_eq!(hits, vec![2, 3, 4, 6, 7, 8], "{strategy}: steps before `COPY app .` (9) must hit");
    assert_eq!(misses, vec![9, 10, 11], "{strategy}: steps from `COPY app .` on must miss");
    assert_input_changed_at(steps, "code-change", strategy, 9, "app/main.py", 11);
}

/// registry-final pushes only the final stage: the builder stage rebuilds, and its new output breaks
/// `COPY --from`, so only `ENV OUT=/out` (6) hits on no-change.
pub fn assert_registry_final_hits_only_before_copy_from(steps: &[StepRecord]) {
    let (hits, misses) = cache_pattern(steps, "no-change", "registry-final");
    assert_eq!(hits, vec![6], "only `ENV OUT=/out` sits before `COPY --from` in the final stage");
    assert_eq!(misses, vec![2, 3, 4, 7, 8, 9, 10, 11]);
    // Its cache never held the builder stage: its first step is not in the cache for that reason, and every
    // step after it (the final stage's `COPY --from` included) builds on that miss.
    for run in ["no-change", "code-change", "deps-change"] {
        for (step, cause) in causes(steps, run, "registry-final") {
            let expected = match (run, step) {
                ("deps-change", 3) | ("code-change", 9) => Cause::InputChanged,
                (_, 2) => Cause::StageNotPushed,
                _ => Cause::AfterMiss,
            };
            assert_eq!(cause, Some(expected), "registry-final {run}: step {step}");
        }
    }
}

/// The strategies by name, for the engine tests' lists.
pub mod strategies {
    use layerbench::strategy::Strategy;

    pub const EPHEMERAL_DIND: Strategy = Strategy::named("ephemeral-dind");
    pub const REGISTRY_FINAL: Strategy = Strategy::named("registry-final");
    pub const REGISTRY_MULTISTAGE: Strategy = Strategy::named("registry-multistage");
    pub const SHARED_DIND: Strategy = Strategy::named("shared-dind");
    pub const DAEMONLESS: Strategy = Strategy::named("daemonless");
    pub const DAEMONLESS_KANIKO: Strategy = Strategy::named("daemonless-kaniko");
    pub const BUILDKIT_INLINE: Strategy = Strategy::named("buildkit-inline");
    pub const BUILDKIT_REGISTRY: Strategy = Strategy::named("buildkit-registry");
    pub const BUILDKIT_SHARED: Strategy = Strategy::named("buildkit-shared");
    pub const BUILDKIT_DAEMON: Strategy = Strategy::named("buildkit-daemon");
    pub const BUILDKIT_DAEMON_SHARED: Strategy = Strategy::named("buildkit-daemon-shared");
}

/// Runs `python3 -c CODE ARGS…` in a fresh container `name` of `image` on `network`, to its end: its exit
/// code and its output (stdout and stderr). The container is removed afterwards.
pub async fn run_python(docker: &Docker, name: &str, image: &str, network: &str, code: &str, args: &[&str]) -> (i64, String) {
    use bollard::models::{ContainerCreateBody, HostConfig};
    use bollard::query_parameters::{CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder, WaitContainerOptionsBuilder};
    use futures_util::StreamExt;
    let cmd = ["python3", "-c", code].into_iter().chain(args.iter().copied()).map(String::from).collect();
    let body = ContainerCreateBody {
        image: Some(image.into()),
        cmd: Some(cmd),
        host_config: Some(HostConfig { network_mode: Some(network.into()), ..Default::default() }),
        ..Default::default()
    };
    docker.create_container(Some(CreateContainerOptionsBuilder::default().name(name).build()), body).await.unwrap();
    docker.start_container(name, None).await.unwrap();
    let exit = match docker.wait_container(name, Some(WaitContainerOptionsBuilder::default().build())).next().await {
        Some(Ok(r)) => r.status_code,
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
        other => panic!("wait for container {name}: {other:?}"),
    };
    let mut out = String::new();
    let mut logs = docker.logs(name, Some(LogsOptionsBuilder::default().stdout(true).stderr(true).build()));
    while let Some(Ok(chunk)) = logs.next().await {
        out.push_str(&chunk.to_string());
    }
    let _ = docker.remove_container(name, Some(RemoveContainerOptionsBuilder::default().force(true).build())).await;
    (exit, out)
}
