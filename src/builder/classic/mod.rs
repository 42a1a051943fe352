//! The classic builder: a job plan's `docker pull`, `docker build` and `docker push` against one dind's Engine
//! API, as a CI job's client makes them (both backends hand it the job's daemon), and its log parser.

pub mod log;

use std::time::Instant;

use bollard::query_parameters::{
    BuildImageOptionsBuilder, BuilderVersion, CreateImageOptionsBuilder, PushImageOptionsBuilder,
    TagImageOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;

use crate::events::{Event, EventSink};
use crate::job::{JobError, JobOutcome, JobSpec};
use crate::resources::engine_message as describe;
use crate::strategy::Op;

/// Runs one daemon operation of the job's plan (`docker pull`, `build`, `push`) as a CI job's client
/// would, entering its phase on the job's clock and adding the steps the builder reported.
pub async fn run_op(
    docker: &Docker,
    op: &Op,
    job: &JobSpec<'_>,
    context_tar: &mut Option<bytes::Bytes>,
    events: &EventSink,
    outcome: &mut JobOutcome,
) -> Result<(), JobError> {
    let phase = op.phase();
    outcome.enter(phase);
    match op {
        Op::Pull { image } => {
            events.emit(Event::PhaseStarted { phase, detail: format!("pull {image}") });
            pull_if_present(docker, image).await
        }
        Op::Build { target, tags, cache_from } => {
            let what = match target {
                Some(t) => format!("build --target {t}"),
                None => "build".to_string(),
            };
            events.emit(Event::PhaseStarted { phase, detail: what });
            if context_tar.is_none() {
                *context_tar = Some(bytes::Bytes::from(job.context_tar()?));
            }
            let tar = context_tar.clone().expect("set above");
            build(docker, job, target.as_deref(), tags, cache_from, tar, events, outcome).await
        }
        Op::Push { image } => {
            events.emit(Event::PhaseStarted { phase, detail: format!("push {image}") });
            push(docker, image).await
        }
        Op::JobBuild(_) => Err(JobError::infrastructure("a job container's build does not run through a daemon's API")),
    }
}

/// One daemon operation as the `docker` command a CI job's script runs for it (what [`run_op`] asks of the
/// daemon's API), for printing; each value one quoted shell word.
pub fn as_script(op: &Op, dockerfile_path: &std::path::Path) -> String {
    let words = |words: Vec<String>| crate::builder::shell_words(&words);
    match op {
        // An image the registry does not have yet is fine: the first pipeline run has none.
        Op::Pull { image } => format!("{} || true", words(vec!["docker".into(), "pull".into(), image.clone()])),
        Op::Build { target, tags, cache_from } => {
            let mut build = vec!["docker".to_string(), "build".into()];
            if let Some(t) = target {
                build.extend(["--target".into(), t.clone()]);
            }
            for c in cache_from {
                build.extend(["--cache-from".into(), c.clone()]);
            }
            for t in tags {
                build.extend(["-t".into(), t.clone()]);
            }
            build.extend(["-f".into(), dockerfile_path.display().to_string(), ".".into()]);
            words(build)
        }
        Op::Push { image } => words(vec!["docker".into(), "push".into(), image.clone()]),
        Op::JobBuild(request) => format!("# a {:?} job container builds; the classic builder has no part in it", request.builder),
    }
}

/// Runs every operation of the plan in order through the daemon's API (a dind job on either backend).
pub async fn run_ops(docker: &Docker, job: &JobSpec<'_>, events: &EventSink, outcome: &mut JobOutcome) -> Result<(), JobError> {
    let mut context_tar = None;
    for op in &job.plan.ops {
        run_op(docker, op, job, &mut context_tar, events, outcome).await?;
    }
    Ok(())
}

/// `docker pull`; an image the registry does not have yet is fine (the first pipeline run).
async fn pull_if_present(docker: &Docker, image: &str) -> Result<(), JobError> {
    let options = CreateImageOptionsBuilder::default().from_image(image).build();
    let mut stream = docker.create_image(Some(options), None, None);
    while let Some(item) = stream.next().await {
        if let Err(e) = item {
            if registry_has_no_such_image(&e) {
                return Ok(());
            }
            return Err(JobError::infrastructure(format!("pull {image}: {}", describe(&e))));
        }
    }
    Ok(())
}

/// The daemon's words when runc or containerd could not create a step's container (`OCI runtime create
/// failed`, `failed to create shim task`): seen here under load as `read init-p: connection reset by peer`.
fn runtime_failed(message: &str) -> bool {
    message.contains("OCI runtime create failed") || message.contains("failed to create shim task")
}

/// Only the registry's answer that the image does not exist means "no cache yet": the engine's 404
/// for a pull, or the registry's `MANIFEST_UNKNOWN` / `NAME_UNKNOWN` codes in the daemon's message
/// (`manifest unknown`, `name unknown`). Anything else (a registry that is down, refused, or
/// unreachable) fails the job, even when its text happens to contain "not found".
pub fn registry_has_no_such_image(error: &bollard::errors::Error) -> bool {
    match error {
        bollard::errors::Error::DockerResponseServerError { status_code: 404, message } => {
            !message.contains("no such host") && !message.contains("dial tcp")
        }
        bollard::errors::Error::DockerStreamError { error } => {
            let e = error.to_ascii_lowercase();
            e.contains("manifest unknown") || e.contains("name unknown")
        }
        _ => false,
    }
}

async fn push(docker: &Docker, image: &str) -> Result<(), JobError> {
    let (name, tag) = split_tag(image);
    let options = PushImageOptionsBuilder::default().tag(tag).build();
    let mut stream = docker.push_image(name, Some(options), None);
    while let Some(item) = stream.next().await {
        item.map_err(|e| JobError::infrastructure(format!("push {image}: {}", describe(&e))))?;
    }
    Ok(())
}

/// `repo:tag` -> (`repo`, `tag`); the registry host's port is not a tag.
pub fn split_tag(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (image, "latest"),
    }
}

#[allow(clippy::too_many_arguments)]
async fn build(
    docker: &Docker,
    job: &JobSpec<'_>,
    target: Option<&str>,
    tags: &[String],
    cache_from: &[String],
    context_tar: bytes::Bytes,
    events: &EventSink,
    outcome: &mut JobOutcome,
) -> Result<(), JobError> {
    let dockerfile = job.dockerfile_path.to_string_lossy();
    let mut options = BuildImageOptionsBuilder::default()
        .dockerfile(&dockerfile)
        .rm(true)
        .forcerm(true)
        .version(BuilderVersion::BuilderV1)
        .cachefrom(&cache_from.to_vec());
    if let Some(first) = tags.first() {
        options = options.t(first);
    }
    if let Some(target) = target {
        options = options.target(target);
    }
    let mut parser = log::parser(job.dockerfile);
    let started = Instant::now();
    let mut stream = docker.build_image(options.build(), None, Some(bollard::body_full(context_tar)));
    let mut pending = String::new();
    let mut error: Option<(String, bool)> = None;
    let mut current_step = 0;
    while let Some(item) = stream.next().await {
        let at_ms = crate::millis(started.elapsed());
        match item {
            Ok(info) => {
                let Some(text) = info.stream else { continue };
                pending.push_str(&text);
                while let Some(newline) = pending.find('\n') {
                    let line: String = pending.drain(..=newline).collect();
                    parser.push_line(at_ms, line.trim_end_matches(['\n', '\r']));
                }
                super::log::announce_step(parser.as_ref(), job.dockerfile, &mut current_step, events);
            }
            Err(e) => {
                let message = describe(&e);
                // The builder's own error comes as a stream error; anything else is the connection.
                let from_builder = matches!(e, bollard::errors::Error::DockerStreamError { .. });
                if from_builder {
                    parser.push_error(at_ms, &message);
                }
                error = Some((message, from_builder));
                break;
            }
        }
    }
    if !pending.is_empty() {
        parser.push_line(crate::millis(started.elapsed()), &pending);
    }
    let steps = parser.finish(crate::millis(started.elapsed()));
    let failed_step = steps.iter().find(|s| s.error.is_some()).map(|s| (s.step, s.instruction.clone()));
    outcome.merge_steps(steps.iter().map(|s| s.outcome()));
    if let Some((message, from_builder)) = error {
        let at = failed_step.map(|(step, instruction)| format!(" at step {step}/{} `{instruction}`", job.dockerfile.total_steps()));
        let at = at.unwrap_or_default();
        return Err(match from_builder {
            // The container runtime could not start the step's container: the daemon's host failed, not the step.
            true if runtime_failed(&message) => JobError::infrastructure(format!("build{at}: the container runtime failed: {message}")),
            true => JobError::build(format!("build failed{at}: {message}")),
            false => JobError::infrastructure(format!("build: lost the daemon: {message}")),
        });
    }
    for extra in tags.iter().skip(1) {
        tag(docker, &tags[0], extra).await?;
    }
    Ok(())
}

async fn tag(docker: &Docker, source: &str, target: &str) -> Result<(), JobError> {
    let (repo, tag) = split_tag(target);
    let options = TagImageOptionsBuilder::default().repo(repo).tag(tag).build();
    docker
        .tag_image(source, Some(options))
        .await
        .map_err(|e| JobError::infrastructure(format!("tag {source} as {target}: {}", describe(&e))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the registry's "no such image" is "no cache yet"; a registry that cannot be reached fails
    /// the job even though its message says "not found" somewhere.
    #[test]
    fn only_a_missing_image_is_no_cache_yet() {
        let server = |status_code: u16, message: &str| bollard::errors::Error::DockerResponseServerError {
            status_code,
            message: message.into(),
        };
        let stream = |error: &str| bollard::errors::Error::DockerStreamError { error: error.into() };
        assert!(registry_has_no_such_image(&server(404, "manifest for registry:5000/s/app:latest not found: manifest unknown: manifest unknown")));
        assert!(registry_has_no_such_image(&stream("manifest unknown: manifest unknown")));
        assert!(registry_has_no_such_image(&stream("name unknown: repository name not known to registry")));
        assert!(!registry_has_no_such_image(&server(
            404,
            "Get \"http://registry:5000/v2/\": dial tcp: lookup registry on 127.0.0.11:53: no such host (not found)"
        )));
        assert!(!registry_has_no_such_image(&stream("Get \"http://registry:5000/v2/\": connection refused")));
        assert!(!registry_has_no_such_image(&server(500, "not found")));
    }

    #[test]
    fn a_runtime_that_cannot_start_a_step_is_no_build_failure() {
        let seen = "failed to create task for container: failed to create shim task: OCI runtime create failed: runc create \
                    failed: unable to start container process: waiting for init preliminary setup: read init-p: connection reset by peer: unknown";
        assert!(runtime_failed(seen));
        assert!(!runtime_failed("The command '/bin/sh -c exit 3' returned a non-zero code: 3"));
    }

    #[test]
    fn split_tag_keeps_registry_ports() {
        assert_eq!(split_tag("registry:5000/a/b:latest"), ("registry:5000/a/b", "latest"));
        assert_eq!(split_tag("registry:5000/a/b"), ("registry:5000/a/b", "latest"));
        assert_eq!(split_tag("b:c1"), ("b", "c1"));
    }
}
