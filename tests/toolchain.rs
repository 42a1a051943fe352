//! Toolchain resolution against the real engine at DOCKER_HOST (started by `scripts/with-engine.sh`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder,
};
use bollard::{body_full, Docker};
use futures_util::StreamExt;
use layerbench::events::{Event, EventSink, Reporter};
use layerbench::results::ImageSource;
use layerbench::toolchain::{self, ResolvedImage, Role, ToolchainConfig, BUILT_FROM_LABEL, RECIPE_LABEL, STAND_IN_LABEL};

/// Keeps every event, so tests can check what the user was told.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Event>>>);

impl Reporter for Recorder {
    fn event(&mut self, event: &Event) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Recorder {
    fn sink(&self) -> EventSink {
        EventSink::new(vec![Box::new(self.clone())])
    }

    fn notices(&self) -> Vec<String> {
        let events = self.0.lock().unwrap();
        events.iter().filter_map(|e| if let Event::Notice { message } = e { Some(message.clone()) } else { None }).collect()
    }
}

async fn engine() -> Docker {
    Docker::connect_with_defaults()
        .expect("DOCKER_HOST names an engine")
        .negotiate_version()
        .await
        .expect("the engine answers; run through scripts/with-engine.sh")
}

/// Runs `cmd` in a throwaway container of `image` and returns its output and exit code.
async fn run(docker: &Docker, image: &ResolvedImage, cmd: &[&str]) -> (String, i64) {
    let name = format!("layerbench-test-toolchain-{}-{}", image.role, std::process::id());
    let body = ContainerCreateBody {
        image: Some(image.name.clone()),
        cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
        labels: Some(HashMap::from([(layerbench::RUN_ID_LABEL.to_string(), "test-toolchain".to_string())])),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::default().name(&name).build();
    docker.create_container(Some(options), body).await.expect("create container");
    docker.start_container(&name, None).await.expect("start container");
    let code = match docker.wait_container(&name, None).next().await {
        Some(Ok(exit)) => exit.status_code,
        // bollard reports a non-zero exit as an error carrying the code.
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
        other => panic!("waiting for {name}: {other:?}"),
    };
    let mut logs = docker.logs(&name, Some(LogsOptionsBuilder::default().stdout(true).stderr(true).build()));
    let mut output = String::new();
    while let Some(chunk) = logs.next().await {
        output.push_str(&chunk.expect("container logs").to_string());
    }
    let remove = RemoveContainerOptionsBuilder::default().force(true).build();
    docker.remove_container(&name, Some(remove)).await.expect("remove container");
    (output, code)
}

fn labels(image: &bollard::models::ImageInspect) -> HashMap<String, String> {
    image.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default()
}

/// What a user relies on before any job runs: every role resolves to an image that exists and starts,
/// stand-ins say so exactly once, and a stand-in whose programs were built from Go modules says which
/// module and version, and its programs report that version.
/// Builds the stand-ins when they are missing (minutes); `make test` runs `layerbench images` first.
#[tokio::test]
async fn resolved_images_exist_run_and_are_announced_once() {
    let docker = engine().await;
    let recorder = Recorder::default();
    let config = ToolchainConfig::default();
    let toolchain = toolchain::resolve(&docker, &config, &recorder.sink()).await.expect("toolchain resolves");

    let notices = recorder.notices();
    for role in toolchain::ROLES {
        let image = toolchain.get(role).unwrap_or_else(|| panic!("{role} is resolved"));
        let inspected = docker.inspect_image(&image.name).await.expect("resolved image exists");
        assert_eq!(inspected.id, image.id, "{} id", image.role);
        let announced = notices.iter().filter(|n| n.contains(&image.name)).count();
        match image.source {
            ImageSource::LocalStandIn => {
                assert_eq!(labels(&inspected).get(STAND_IN_LABEL).map(String::as_str), Some("true"));
                assert_eq!(announced, 1, "{} stand-in must be announced once: {notices:?}", image.role);
                assert!(notices.iter().any(|n| n.contains(&image.official) && n.contains("built from Debian")));
                assert_eq!(labels(&inspected).get(BUILT_FROM_LABEL), image.built_from.as_ref(), "{} built-from label", image.role);
            }
            ImageSource::Official => assert_eq!(image.name, image.official),
        }
    }

    let image = |role: toolchain::Role| toolchain.get(role).unwrap_or_else(|| panic!("{role} is resolved"));
    let (buildah, job, kaniko, buildkit) = (image(Role::Buildah), image(Role::Job), image(Role::Kaniko), image(Role::Buildkit));
    let (output, code) = run(&docker, toolchain.base(), &["python", "-c", "import venv, pip; print(1)"]).await;
    assert_eq!((output.trim(), code), ("1", 0), "base image runs python with venv and pip");
    let (output, code) = run(&docker, buildah, &["buildah", "--version"]).await;
    assert_eq!(code, 0, "buildah runs: {output}");
    assert!(output.starts_with("buildah version 1."), "{output}");

    // The BuildKit strategies' job image: the docker CLI with its buildx plugin.
    let (output, code) = run(&docker, job, &["docker", "buildx", "version"]).await;
    assert_eq!(code, 0, "docker buildx runs in the job image: {output}");
    assert_eq!(toolchain.images().len(), 7, "run.json lists every role's image");

    // kaniko's entry point is the executor; `version` is its subcommand.
    let (output, code) = run(&docker, kaniko, &["version"]).await;
    assert_eq!(code, 0, "the kaniko executor runs: {output}");
    assert!(output.contains("v1.24.0"), "{output}");
    // buildkitd is the BuildKit image's entry point; buildctl is beside it.
    let (output, code) = run(&docker, buildkit, &["--version"]).await;
    assert_eq!((code, output.trim()), (0, "buildkitd github.com/moby/buildkit v0.34.2"), "{output}");
    for image in [kaniko, buildkit] {
        if image.source == ImageSource::LocalStandIn {
            let from = image.built_from.as_deref().unwrap_or_default();
            let expected = if image.role == toolchain::Role::Kaniko {
                "github.com/GoogleContainerTools/kaniko@v1.24.0 (go build, go"
            } else {
                "github.com/moby/buildkit@v0.34.2 (go build, go"
            };
            assert!(from.starts_with(expected), "{}: built from {from:?}", image.role);
            assert!(image.info().built_from.is_some(), "run.json says what {} was built from", image.role);
        }
    }
}

/// Builds a stale image under a stand-in's name, as an older layerbench would have left it.
async fn plant_stale(docker: &Docker, name: &str, from: &str) {
    let dockerfile = format!("FROM {from}\nLABEL {RECIPE_LABEL}=stale\n");
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    archive.append_data(&mut header, "Dockerfile", dockerfile.as_bytes()).unwrap();
    let options = BuildImageOptionsBuilder::new().t(name).rm(true).build();
    let mut build = docker.build_image(options, None, Some(body_full(archive.into_inner().unwrap().into())));
    while let Some(step) = build.next().await {
        step.expect("build stale image");
    }
}

/// The fresh-machine path: nothing can be pulled and no stand-in exists yet. Builds every stand-in from
/// scratch under its own prefix, so it never touches the images other runs use, then removes them.
#[tokio::test]
#[ignore = "heavy: debootstrap and three image builds, about 4 min; run with --ignored"]
async fn stand_ins_are_built_labelled_reused_and_rebuilt_when_stale() {
    let docker = engine().await;
    let prefix = format!("layerbench-test-{}", std::process::id());
    // `.invalid` never resolves (RFC 2606), so every pull fails fast, with or without internet.
    let config = ToolchainConfig {
        base: "registry.invalid/python:3.11-slim".into(),
        dind: "registry.invalid/docker:28-dind".into(),
        registry: "registry.invalid/registry:2".into(),
        buildah: "registry.invalid/buildah:v1.28".into(),
        kaniko: "registry.invalid/kaniko:v1".into(),
        buildkit: "registry.invalid/buildkit:v0".into(),
        job: "registry.invalid/docker:28".into(),
        stand_in_prefix: prefix.clone(),
        base_map: vec![],
    };

    let recorder = Recorder::default();
    let started = Instant::now();
    let first = toolchain::resolve(&docker, &config, &recorder.sink()).await.expect("stand-ins build");
    eprintln!("first resolve (builds everything): {:.1} s", started.elapsed().as_secs_f64());
    for event in recorder.0.lock().unwrap().iter() {
        if let Event::Setup { message } = event {
            eprintln!("  setup: {message}");
        }
    }
    let images = [first.base(), first.get(Role::Dind).unwrap(), first.registry(), first.get(Role::Buildah).unwrap()];
    for image in images {
        assert_eq!(image.source, ImageSource::LocalStandIn, "{}", image.role);
        assert!(image.name.starts_with(&format!("{prefix}/")), "{}", image.name);
    }
    assert_eq!(first.base().name, format!("{prefix}/python:3.11-slim"));
    assert_eq!(recorder.notices().len(), 7, "one notice per stand-in: {:?}", recorder.notices());
    for image in [first.get(Role::Kaniko).unwrap(), first.get(Role::Buildkit).unwrap()] {
        assert!(image.built_from.as_deref().is_some_and(|f| f.contains("(go build, go")), "{}: {:?}", image.role, image.built_from);
    }

    let (output, code) = run(&docker, first.base(), &["pip", "install", "--dry-run", "--no-index", "pip"]).await;
    assert_eq!(code, 0, "pip may install system-wide, as in the official image: {output}");
    let (output, code) = run(&docker, first.get(Role::Dind).unwrap(), &["dockerd", "--version"]).await;
    assert_eq!(code, 0, "dind entry point runs commands: {output}");
    let (output, code) = run(&docker, first.registry(), &["registry", "--version"]).await;
    assert_eq!(code, 0, "registry entry point runs subcommands: {output}");

    // A second resolve finds everything current and builds nothing.
    let started = Instant::now();
    let again = toolchain::resolve(&docker, &config, &EventSink::default()).await.expect("second resolve");
    let second_ms = started.elapsed().as_millis();
    eprintln!("second resolve (reuses everything): {second_ms} ms");
    assert_eq!(again, first);
    assert!(second_ms < 10_000, "reusing stand-ins took {second_ms} ms");

    // An image from another recipe under a stand-in's name gets rebuilt, not trusted.
    plant_stale(&docker, &first.registry().name, &first.base().name).await;
    let stale_id = docker.inspect_image(&first.registry().name).await.unwrap().id;
    let rebuilt = toolchain::resolve(&docker, &config, &EventSink::default()).await.expect("stale registry rebuilt");
    assert_ne!(rebuilt.registry().id, stale_id);
    let inspected = docker.inspect_image(&rebuilt.registry().name).await.unwrap();
    assert_ne!(labels(&inspected).get(RECIPE_LABEL).map(String::as_str), Some("stale"));
    assert_eq!((rebuilt.base().id.clone(), rebuilt.get(Role::Dind).unwrap().id.clone()), (first.base().id.clone(), first.get(Role::Dind).unwrap().id.clone()));

    let go_built = [rebuilt.get(Role::Kaniko).unwrap(), rebuilt.get(Role::Buildkit).unwrap(), rebuilt.get(Role::Job).unwrap()];
    for image in go_built.into_iter().chain([rebuilt.get(Role::Buildah).unwrap(), rebuilt.registry(), rebuilt.get(Role::Dind).unwrap(), rebuilt.base()]) {
        let options = RemoveImageOptionsBuilder::new().force(true).build();
        docker.remove_image(&image.name, Some(options), None).await.expect("remove test image");
    }
    if let Some(stale_id) = stale_id {
        let _ = docker.remove_image(&stale_id, None::<bollard::query_parameters::RemoveImageOptions>, None).await;
    }
}
