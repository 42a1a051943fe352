//! Daemonless jobs on the engine: buildah (or kaniko) in a plain job container, caching in the registry.
//!
//! The job container is fresh for every job and its storage volume goes with it, so every layer a
//! job reuses came from the registry's cache repository, as in a CI job with no persistent disk.

use std::collections::HashMap;
use std::time::Instant;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, LogsOptionsBuilder, UploadToContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures_util::StreamExt;

use super::engine::{create_volume, describe, remove_container};
use super::ops::merge_steps;
use super::DockerBackend;
use crate::backend::{JobError, JobOutcome, JobSpec};
use crate::builder_log::{split_docker_timestamp, LogFormat};
use crate::events::{Event, EventSink};
use crate::resources::run_labels;
use crate::strategy::{DaemonlessBuilder, Op, Phase};
use crate::Millis;

/// Where the build context is unpacked in the job container.
const CONTEXT_DIR: &str = "/workspace";
/// Printed by the job script between its phases; the log times of these lines split build from push.
const PHASE_MARK: &str = "::layerbench-phase ";

/// containers-image configuration: Docker Hub through the run's mirror, both registries over plain HTTP.
const REGISTRIES_CONF: &str = r#"unqualified-search-registries = ["docker.io"]
short-name-mode = "permissive"
[[registry]]
prefix = "docker.io"
location = "docker.io"
[[registry.mirror]]
location = "mirror:5000"
insecure = true
[[registry]]
prefix = "registry:5000"
location = "registry:5000"
insecure = true
"#;

/// The buildah job script: build with layers cached in `cache_repo`, then push every destination.
/// overlay on the job's volume, not vfs: vfs copies every layer and made a cold Flask build ~5x slower.
pub fn buildah_script(dockerfile: &str, destinations: &[String], cache_repo: &str) -> String {
    let first = &destinations[0];
    let mut script = format!(
        "set -e\nmkdir -p /etc/containers\ncat > /etc/containers/registries.conf <<'EOF'\n{REGISTRIES_CONF}EOF\n\
         buildah --version\n\
         echo '{PHASE_MARK}build'\n\
         buildah --storage-driver overlay bud --layers --tls-verify=false \
         --cache-from {cache_repo} --cache-to {cache_repo} -f {dockerfile} -t {first} {CONTEXT_DIR}\n\
         echo '{PHASE_MARK}push'\n"
    );
    for destination in destinations {
        if destination != first {
            script.push_str(&format!("buildah --storage-driver overlay tag {first} {destination}\n"));
        }
        script.push_str(&format!(
            "buildah --storage-driver overlay push --tls-verify=false {destination} docker://{destination}\n"
        ));
    }
    script
}

/// kaniko's flags: it builds and pushes in one go, so its whole run is the build phase.
pub fn kaniko_args(dockerfile: &str, destinations: &[String], cache_repo: &str) -> Vec<String> {
    let mut args = vec![
        format!("--context=dir://{CONTEXT_DIR}"),
        format!("--dockerfile={dockerfile}"),
        "--cache=true".into(),
        format!("--cache-repo={cache_repo}"),
        "--registry-mirror=mirror:5000".into(),
        "--insecure".into(),
        "--insecure-pull".into(),
        "--insecure-registry=mirror:5000".into(),
        "--insecure-registry=registry:5000".into(),
        "--skip-tls-verify".into(),
        "--skip-tls-verify-pull".into(),
    ];
    args.extend(destinations.iter().map(|d| format!("--destination={d}")));
    args
}

pub async fn run(backend: &mut DockerBackend, job: &JobSpec<'_>, events: &EventSink, outcome: &mut JobOutcome) -> Result<(), JobError> {
    let [Op::DaemonlessBuild { builder, destinations, cache_repo }] = job.plan.ops.as_slice() else {
        return Err(JobError::infrastructure("a daemonless job has exactly one daemonless build"));
    };
    let name = backend.container_name(&format!("{}-job{}", job.strategy.name(), backend.jobs_started));
    let volume = format!("{name}-storage");
    let provision = Instant::now();
    let result = async {
        let container = job_container(backend, *builder, job, destinations, cache_repo, &volume).map_err(JobError::infrastructure)?;
        create_volume(&backend.engine, &volume, &backend.run_id).await?;
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        backend.engine.create_container(Some(options), container).await.map_err(|e| JobError::infrastructure(format!("create job container {name}: {}", describe(&e))))?;
        let tar = context_tar(job).map_err(JobError::infrastructure)?;
        let upload = UploadToContainerOptionsBuilder::default().path("/").build();
        backend
            .engine
            .upload_to_container(&name, Some(upload), bollard::body_full(tar.into()))
            .await
            .map_err(|e| JobError::infrastructure(format!("copy the build context into {name}: {}", describe(&e))))?;
        backend.engine.start_container(&name, None).await.map_err(|e| JobError::infrastructure(format!("start job container {name}: {}", describe(&e))))?;
        outcome.phases.insert(Phase::Provision, provision.elapsed().as_millis() as Millis);
        events.emit(Event::PhaseStarted { phase: Phase::Build, detail: format!("{builder:?} build").to_lowercase() });
        follow(backend, &name, *builder, job, events, outcome).await
    }
    .await;
    if let Err(e) = remove_container(&backend.engine, &name).await {
        outcome.cleanup_errors.push(e.to_string());
    }
    let _ = backend.engine.remove_volume(&volume, None::<bollard::query_parameters::RemoveVolumeOptions>).await;
    result
}

fn job_container(
    backend: &DockerBackend,
    builder: DaemonlessBuilder,
    job: &JobSpec<'_>,
    destinations: &[String],
    cache_repo: &str,
    volume: &str,
) -> Result<ContainerCreateBody, String> {
    let dockerfile = job.dockerfile_path.to_string_lossy();
    let (image, entrypoint, cmd, storage) = match builder {
        DaemonlessBuilder::Buildah => {
            let script = buildah_script(&dockerfile, destinations, cache_repo);
            (&backend.images.buildah, Some(vec!["sh".to_string(), "-c".to_string()]), vec![script], "/var/lib/containers")
        }
        DaemonlessBuilder::Kaniko => {
            let image = backend.images.kaniko.as_ref().ok_or("no kaniko image is available")?;
            (image, None, kaniko_args(&dockerfile, destinations, cache_repo), "/kaniko/cache")
        }
    };
    let privileges = job.strategy.strategy().privileges();
    Ok(ContainerCreateBody {
        image: Some(image.name.clone()),
        entrypoint,
        cmd: Some(image.args.iter().cloned().chain(cmd).collect()),
        env: Some(image.env.clone()),
        working_dir: Some(CONTEXT_DIR.into()),
        labels: Some(run_labels(&backend.run_id)),
        host_config: Some(HostConfig {
            network_mode: Some(backend.network.clone()),
            binds: Some(vec![format!("{volume}:{storage}")]),
            cap_add: Some(privileges.extra_capabilities.iter().map(|c| c.to_string()).collect()),
            security_opt: Some(privileges.unconfined.iter().map(|p| format!("{p}=unconfined")).collect()),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The build context as a tar rooted at `/`, under CONTEXT_DIR.
fn context_tar(job: &JobSpec<'_>) -> Result<Vec<u8>, String> {
    let plain = crate::scenario::context::tar_context(job.context).map_err(|e| format!("pack the build context: {e}"))?;
    let mut archive = tar::Archive::new(plain.as_slice());
    let mut out = tar::Builder::new(Vec::new());
    let prefix = CONTEXT_DIR.trim_start_matches('/');
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    let error = |e: std::io::Error| format!("pack the build context: {e}");
    out.append_data(&mut dir, prefix, std::io::empty()).map_err(error)?;
    for entry in archive.entries().map_err(error)? {
        let mut entry = entry.map_err(error)?;
        let path = std::path::Path::new(prefix).join(entry.path().map_err(error)?);
        let mut header = entry.header().clone();
        out.append_data(&mut header, path, &mut entry).map_err(error)?;
    }
    out.into_inner().map_err(error)
}

/// Follows the job's log to its end, parsing steps from the builder's own timestamps.
async fn follow(
    backend: &mut DockerBackend,
    name: &str,
    builder: DaemonlessBuilder,
    job: &JobSpec<'_>,
    events: &EventSink,
    outcome: &mut JobOutcome,
) -> Result<(), JobError> {
    let format = match builder {
        DaemonlessBuilder::Buildah => LogFormat::Buildah,
        DaemonlessBuilder::Kaniko => LogFormat::Kaniko,
    };
    let mut parser = format.parser(job.dockerfile);
    let options = LogsOptionsBuilder::default().follow(true).stdout(true).stderr(true).timestamps(true).build();
    let mut logs = backend.engine.logs(name, Some(options));
    let mut first_ms = None;
    let mut marks: HashMap<String, Millis> = HashMap::new();
    let mut last_ms = 0;
    let mut tail: Vec<String> = vec![];
    let mut current = 0;
    let mut pending = String::new();
    while let Some(chunk) = logs.next().await {
        let chunk = chunk.map_err(|e| JobError::infrastructure(format!("follow the log of {name}: {}", describe(&e))))?;
        pending.push_str(&chunk.to_string());
        while let Some(newline) = pending.find('\n') {
            let line: String = pending.drain(..=newline).collect();
            let Some((time_ms, text)) = split_docker_timestamp(line.trim_end()) else { continue };
            let at_ms = time_ms - *first_ms.get_or_insert(time_ms);
            last_ms = at_ms;
            if text.starts_with("buildah version ") {
                backend.buildah_version = text.split_whitespace().nth(2).map(str::to_string);
            }
            if let Some(phase) = text.strip_prefix(PHASE_MARK) {
                marks.insert(phase.to_string(), at_ms);
                continue;
            }
            parser.push_line(at_ms, text);
            tail.push(text.to_string());
            if tail.len() > 20 {
                tail.remove(0);
            }
            if let Some(step) = parser.current() {
                if step.step != current {
                    current = step.step;
                    events.emit(Event::StepStarted { step: step.step, total_steps: job.dockerfile.total_steps(), instruction: step.instruction.clone() });
                }
            }
        }
    }
    let steps = parser.finish(last_ms);
    merge_steps(outcome, &steps);
    // Without marks (kaniko) the whole log is the build phase.
    let build_start = marks.get("build").copied().unwrap_or(0);
    let push_start = marks.get("push").copied();
    outcome.phases.insert(Phase::Build, push_start.unwrap_or(last_ms).saturating_sub(build_start));
    if let Some(push_start) = push_start {
        outcome.phases.insert(Phase::Push, last_ms.saturating_sub(push_start));
    }
    let mut wait = backend.engine.wait_container(name, Some(WaitContainerOptionsBuilder::default().condition("not-running").build()));
    let code = match wait.next().await {
        Some(Ok(response)) => response.status_code,
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
        Some(Err(e)) => return Err(JobError::infrastructure(format!("wait for job container {name}: {}", describe(&e)))),
        None => {
            return Err(JobError::infrastructure(format!(
                "wait for job container {name}: the engine ended the wait without an exit status"
            )))
        }
    };
    if code == 0 {
        return Ok(());
    }
    let reason = parser
        .error()
        .map(str::to_string)
        .or_else(|| tail.iter().rev().find(|l| !l.trim().is_empty()).cloned())
        .unwrap_or_default();
    match steps.iter().find(|s| s.error.is_some()) {
        Some(step) => Err(JobError::build(format!(
            "{builder:?} failed at step {}/{} `{}` (exit code {code}): {reason}",
            step.step,
            job.dockerfile.total_steps(),
            step.instruction
        ))),
        None => Err(JobError::infrastructure(format!("{builder:?} exited with code {code}: {reason}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildah_pushes_every_destination_after_one_build() {
        let script = buildah_script("Dockerfile", &["r/a:c1".into(), "r/a:latest".into()], "r/a-cache");
        assert_eq!(script.matches(" bud ").count(), 1);
        assert!(script.contains("--cache-from r/a-cache --cache-to r/a-cache"));
        assert!(script.contains("tag r/a:c1 r/a:latest"));
        assert!(script.contains("push --tls-verify=false r/a:latest docker://r/a:latest"));
        assert!(script.find(&format!("{PHASE_MARK}build")) < script.find(&format!("{PHASE_MARK}push")));
    }
}
