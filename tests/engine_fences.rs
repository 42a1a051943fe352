//! The fences between a run's daemons and builds, proven on the real engine: each probe tries to
//! open a TCP connection to a daemon it must not reach, and must fail to connect.

mod common;

use common::strategies::*;
use common::*;
use futures_util::StreamExt;
use layerbench::backend::docker::{BackendImages, DockerBackend};
use layerbench::backend::Backend;

/// Python that exits 0 when it can connect to HOST:PORT, 1 when it cannot.
fn connect(host: &str, port: u16) -> String {
    format!(
        "import socket,sys\ntry:\n    socket.create_connection(('{host}', {port}), 5); print('connected')\nexcept OSError as e:\n    print('refused', e); sys.exit(1)"
    )
}

/// Runs `python3 -c CODE` in a fresh container of `image` on `network`; its exit code.
async fn probe(docker: &bollard::Docker, image: &str, network: &str, code: &str) -> i64 {
    let name = format!("lb-fence-probe-{}", std::process::id());
    run_python(docker, &name, image, network, code, &[]).await.0
}

async fn exec(docker: &bollard::Docker, container: &str, script: &str) -> (i64, String) {
    use bollard::exec::{CreateExecOptions, StartExecResults};
    let exec = docker
        .create_exec(container, CreateExecOptions { cmd: Some(vec!["sh", "-c", script]), attach_stdout: Some(true), attach_stderr: Some(true), ..Default::default() })
        .await
        .unwrap();
    let mut text = String::new();
    if let StartExecResults::Attached { mut output, .. } = docker.start_exec(&exec.id, None).await.unwrap() {
        while let Some(Ok(chunk)) = output.next().await {
            text.push_str(&chunk.to_string());
        }
    }
    (docker.inspect_exec(&exec.id).await.unwrap().exit_code.unwrap_or(-1), text)
}

async fn ip_on(docker: &bollard::Docker, container: &str, network: &str) -> String {
    let info = docker.inspect_container(container, None).await.unwrap();
    info.network_settings.unwrap().networks.unwrap().remove(network).unwrap().ip_address.unwrap()
}

#[test]
fn no_build_reaches_a_daemon_it_does_not_own_and_the_mirror_is_read_only() {
    let _engine = lock_engine();
    runtime().block_on(async {
        let docker = engine().await;
        let events = events(vec![]);
        let config = layerbench::toolchain::ToolchainConfig::default();
        let toolchain = layerbench::toolchain::resolve(&docker, &config, &events).await.unwrap();
        let run_id = format!("fence-{}", std::process::id());
        let bases = python_base(&docker, &config, &toolchain, &events).await;
        let mut backend = DockerBackend::start(docker.clone(), &run_id, BackendImages::from_toolchain(&toolchain, &bases), &events).await.unwrap();
        backend.begin_iteration(1, &[SHARED_DIND, DAEMONLESS], &events).await.unwrap();
        let shared_net = backend.network(SHARED_DIND).unwrap().to_string();
        let other_net = backend.network(DAEMONLESS).unwrap().to_string();
        assert_ne!(shared_net, other_net, "each strategy has a network of its own");
        let dind = backend.shared_daemon(SHARED_DIND).unwrap().to_string();
        let dind_ip = ip_on(&docker, &dind, &shared_net).await;
        let base = &toolchain.base().name;

        // Positive control: the daemon's own network reaches it (as its jobs do).
        assert_eq!(probe(&docker, base, &shared_net, &connect(&dind_ip, 2375)).await, 0, "the owner's network reaches its daemon");
        // Another strategy's job container (and so its build steps) cannot.
        assert_eq!(probe(&docker, base, &other_net, &connect(&dind_ip, 2375)).await, 1, "daemonless reached shared-dind's API");

        // A build step inside the daemon cannot reach the daemon that runs it.
        let step = format!("docker run --rm python:3.11-slim python3 -c \"{}\"", connect(&dind_ip, 2375).replace('"', "\\\""));
        let (code, out) = exec(&docker, &dind, &step).await;
        assert_eq!(code, 1, "a container inside the dind reached its API: {out}");
        assert!(out.contains("refused") || out.contains("timed out"), "{out}");

        // The mirror refuses pushes once seeded.
        let (code, out) = exec(&docker, &dind, "docker tag python:3.11-slim mirror:5000/library/tampered:1 && docker push mirror:5000/library/tampered:1").await;
        assert_ne!(code, 0, "the mirror accepted a push: {out}");
        eprintln!("mirror push: {out}");

        backend.end_iteration(1).await.unwrap();
        layerbench::resources::remove_labelled(&docker, Some(&run_id)).await.unwrap();
    });
}

/// Scenario values reach builders as data: a Dockerfile path with spaces, quotes, `$(…)` and backticks,
/// change lines and a file name that would run `touch pwned` if a shell read them. Built for real by every
/// job-container builder (buildah, buildx and buildctl run a script; kaniko takes flags): had any of them
/// word-split or expanded the path, it would not find the Dockerfile and the job would fail.
#[test]
fn hostile_paths_and_changes_build_as_data_in_every_scripted_builder() {
    let _engine = lock_engine();
    let scenario = load("tests/fixtures/scenarios/hostile.toml");
    let results = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let strategies = [DAEMONLESS, BUILDKIT_INLINE, BUILDKIT_DAEMON, DAEMONLESS_KANIKO];
        let outcome = run(&scenario, &strategies, results.path(), vec![]).await;
        let jobs = jobs(&outcome.results_dir);
        assert_eq!(jobs.len(), 4 * 3, "four strategies, three pipeline runs");
        for job in &jobs {
            assert_eq!(job.error, None, "{} on {}", job.strategy, job.pipeline_run);
        }
        let steps = steps(&outcome.results_dir);
        // kaniko does not cache COPY steps at all (see engine_standalone.rs), so it proves nothing here.
        for strategy in ["daemonless", "buildkit-inline", "buildkit-daemon"] {
            let (_, misses) = cache_pattern(&steps, "new-file", strategy);
            assert!(misses.contains(&2), "{strategy}: the new file changed `COPY app /app` (step 2): {misses:?}");
        }
        assert_eq!(leftovers(&outcome.run_id).await, 0);
    });
}
