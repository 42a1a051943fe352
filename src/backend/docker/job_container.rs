//! CI job containers on the engine: a builder's command (buildah, kaniko, docker buildx, buildctl) in a fresh
//! container on the strategy's network, its log followed and parsed as it streams.
//!
//! The container and its storage volume are fresh for every job and owned by the job, so every
//! layer a job reuses came from the strategy's registry or its daemon, as in a CI job with no
//! persistent disk.

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, LogsOptionsBuilder, UploadToContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures_util::StreamExt;

use super::engine::{create_volume, describe};
use super::owned::JobResources;
use super::DockerBackend;
use crate::builder::log::LineBuffer;
use crate::builder::{self, job_command, Endpoints, JobCommand, JobLog, CONTEXT_DIR};
use crate::job::{JobError, JobOutcome, JobSpec};
use crate::events::{Event, EventSink};
use crate::resources::run_labels;
use crate::strategy::{BuildRequest, JobBuilder, Phase};
use crate::toolchain::ResolvedImage;

/// Where a job container runs.
pub struct Placement<'a> {
    pub network: &'a str,
    /// The job's daemon (`tcp://docker:2375`, `tcp://buildkitd:1234`) for builders that drive one.
    pub daemon_host: Option<&'a str>,
    /// The job's number in the run, which its containers' names carry.
    pub number: u32,
}

/// Runs one build request in a job container and follows it to its end. Provision covers creating
/// the container and copying the context in; build and push are timed by the script's phase marks.
pub async fn run(
    backend: &DockerBackend,
    job: &JobSpec<'_>,
    request: &BuildRequest,
    place: &Placement<'_>,
    owner: &mut JobResources,
    events: &EventSink,
    outcome: &mut JobOutcome,
) -> Result<(), JobError> {
    let endpoints = Endpoints { registry: "registry:5000", hub_mirror: Some(super::MIRROR_ADDRESS), daemon_host: place.daemon_host };
    let command = job_command(request, job.dockerfile_path, &endpoints);
    let image = backend.job_image(request.builder)?.clone();
    let name = backend.container_name(&format!("{}-job{}", job.strategy.name(), place.number));
    outcome.enter(Phase::Provision);
    let volume = match command.storage {
        Some(_) => {
            let volume = format!("{name}-storage");
            owner.volume(&volume);
            create_volume(&backend.engine, &volume, &backend.run_id).await?;
            Some(volume)
        }
        None => None,
    };
    let body = container_body(backend, request.builder, &image, &command, volume.as_deref(), place.network);
    owner.container(&name);
    let options = CreateContainerOptionsBuilder::default().name(&name).build();
    backend
        .engine
        .create_container(Some(options), body)
        .await
        .map_err(|e| JobError::infrastructure(format!("create job container {name}: {}", describe(&e))))?;
    let tar = context_tar(job)?;
    let upload = UploadToContainerOptionsBuilder::default().path("/").build();
    backend
        .engine
        .upload_to_container(&name, Some(upload), bollard::body_full(tar.into()))
        .await
        .map_err(|e| JobError::infrastructure(format!("copy the build context into {name}: {}", describe(&e))))?;
    backend
        .engine
        .start_container(&name, None)
        .await
        .map_err(|e| JobError::infrastructure(format!("start job container {name}: {}", describe(&e))))?;
    events.emit(Event::PhaseStarted { phase: Phase::Build, detail: format!("{:?} in {name}", request.builder).to_lowercase() });
    follow(backend, &name, request.builder, &command, job, events, outcome).await
}

fn container_body(
    backend: &DockerBackend,
    builder: JobBuilder,
    image: &ResolvedImage,
    command: &JobCommand,
    volume: Option<&str>,
    network: &str,
) -> ContainerCreateBody {
    // What the builder's home says its job container needs; a daemon's privileges are the daemon's own.
    let privileges = (builder::home(builder).privileges)();
    let mut host = HostConfig {
        network_mode: Some(network.to_string()),
        binds: match (volume, command.storage) {
            (Some(v), Some(path)) => Some(vec![format!("{v}:{path}")]),
            _ => None,
        },
        ..Default::default()
    };
    super::engine::apply_privileges(&privileges, backend.dind_mode().unwrap_or(super::engine::DindMode::Privileged), &mut host);
    ContainerCreateBody {
        image: Some(image.name.clone()),
        entrypoint: command.entrypoint.clone(),
        cmd: Some(command.args.clone()),
        env: Some(command.env.clone()),
        working_dir: Some(CONTEXT_DIR.into()),
        labels: Some(run_labels(&backend.run_id)),
        host_config: Some(host),
        ..Default::default()
    }
}

/// The build context as a tar rooted at `/`, under CONTEXT_DIR.
fn context_tar(job: &JobSpec<'_>) -> Result<Vec<u8>, JobError> {
    let plain = job.context_tar()?;
    let mut archive = tar::Archive::new(plain.as_slice());
    let mut out = tar::Builder::new(Vec::new());
    let prefix = CONTEXT_DIR.trim_start_matches('/');
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    let error = |e: std::io::Error| JobError::infrastructure(format!("pack the build context: {e}"));
    out.append_data(&mut dir, prefix, std::io::empty()).map_err(error)?;
    for entry in archive.entries().map_err(error)? {
        let mut entry = entry.map_err(error)?;
        let path = std::path::Path::new(prefix).join(entry.path().map_err(error)?);
        let mut header = entry.header().clone();
        out.append_data(&mut header, path, &mut entry).map_err(error)?;
    }
    out.into_inner().map_err(error)
}

/// Follows the job's log to its end through the builder's job log (crate::builder::JobLog): steps
/// from the engine's timestamps of each line, each phase the script marks entered when its mark arrives.
async fn follow(
    backend: &DockerBackend,
    name: &str,
    builder: JobBuilder,
    command: &JobCommand,
    job: &JobSpec<'_>,
    events: &EventSink,
    outcome: &mut JobOutcome,
) -> Result<(), JobError> {
    let options = LogsOptionsBuilder::default().follow(true).stdout(true).stderr(true).timestamps(true).build();
    let mut logs = backend.engine.logs(name, Some(options));
    let mut log = JobLog::start(command, job.dockerfile, outcome);
    let mut lines = LineBuffer::default();
    let read = |line: String, log: &mut JobLog, outcome: &mut JobOutcome| {
        if let Some((builder, version)) = log.push(&line, outcome) {
            backend.saw_version(builder, version);
        }
        log.announce(job.dockerfile, events);
    };
    while let Some(chunk) = logs.next().await {
        let chunk = chunk.map_err(|e| JobError::infrastructure(format!("follow the log of {name}: {}", describe(&e))))?;
        for line in lines.push(&chunk.to_string()) {
            read(line, &mut log, outcome);
        }
    }
    // The builder's last words need no newline to count.
    if let Some(line) = lines.rest() {
        read(line, &mut log, outcome);
    }
    let finished = log.finish(outcome);
    let mut wait = backend.engine.wait_container(name, Some(WaitContainerOptionsBuilder::default().condition("not-running").build()));
    match exit_code(name, wait.next().await)? {
        0 => Ok(()),
        code => Err(finished.exit_failure(builder, code, job.dockerfile.total_steps(), None)),
    }
}

/// The job container's exit code from the first answer of the engine's wait. A wait that ends
/// without a status is no verdict: the job failed, never a made-up exit 0.
fn exit_code(
    name: &str,
    answer: Option<Result<bollard::models::ContainerWaitResponse, bollard::errors::Error>>,
) -> Result<i64, JobError> {
    match answer {
        Some(Ok(response)) => Ok(response.status_code),
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
        Some(Err(e)) => Err(JobError::infrastructure(format!("wait for job container {name}: {}", describe(&e)))),
        None => Err(JobError::infrastructure(format!(
            "wait for job container {name}: the engine ended the wait without an exit status"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_without_an_exit_status_fails_the_job() {
        let error = exit_code("job", None).unwrap_err();
        assert_eq!(error.kind, crate::results::FailureKind::Infrastructure);
        assert!(error.message.contains("without an exit status"), "{}", error.message);
        let exited = bollard::models::ContainerWaitResponse { status_code: 3, error: None };
        assert_eq!(exit_code("job", Some(Ok(exited))).unwrap(), 3);
    }
}
