//! One job as pods: a fresh dind pod driven through a port-forward, the shared daemon, or a daemonless
//! builder's pod with its context in ConfigMaps. What a job runs comes from the builder homes.

use std::time::Duration;

use bollard::{Docker, API_DEFAULT_VERSION};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::DeleteParams;
use kube::ResourceExt;

use super::backend::KubeBackend;
use super::follow;
use super::forward::LocalForward;
use super::manifests::{self, JobMeta};
use super::names;
use super::orchestrate::{self, delete, ensure_created, wait_pod, KubeError, PodStage, Whose};
use crate::builder::{self, classic, JobCommand, JobLog};
use crate::events::{Event, EventSink};
use crate::job::{JobError, JobOutcome, JobSpec};
use crate::strategy::{JobBuilder, Phase};

impl KubeBackend {
    /// Deletes a job's pod and context ConfigMaps and waits until they are gone, as the docker backend
    /// waits for its containers: the teardown phase times the same thing on both. What could not be
    /// deleted is recorded next to the job's own error (the namespace's deletion stays the backstop).
    pub(super) async fn remove_job_objects(&self, pod: &str, config_maps: &[ConfigMap], outcome: &mut JobOutcome) {
        if self.options.keep {
            return;
        }
        let ours = self.run_selector();
        let limit = Some(self.options.timeouts.delete);
        if let Err(e) = delete(&self.api::<Pod>(), pod, Whose::Labelled(&ours), &DeleteParams::default(), limit).await {
            outcome.cleanup_errors.push(e.to_string());
        }
        for cm in config_maps {
            if let Err(e) = delete(&self.api::<ConfigMap>(), &cm.name_any(), Whose::Labelled(&ours), &DeleteParams::default(), limit).await {
                outcome.cleanup_errors.push(e.to_string());
            }
        }
    }

    pub(super) fn job_meta<'a>(&self, job: &'a JobSpec<'_>) -> JobMeta<'a> {
        JobMeta {
            name: names::job_name(job.lane, job.iteration, job.pipeline_index, job.strategy.name()),
            iteration: job.iteration,
            pipeline_run: job.pipeline_run.name.as_str(),
            strategy: job.strategy.name(),
        }
    }

    pub(super) async fn run_fresh_dind(&self, job: &JobSpec<'_>, events: &EventSink, outcome: &mut JobOutcome) -> Result<(), JobError> {
        let meta = self.job_meta(job);
        let pod = manifests::dind_job_pod(&self.run, &self.options.images, &meta, self.options.timeouts.job.as_secs());
        events.emit(Event::PhaseStarted { phase: Phase::Provision, detail: format!("pod {}", meta.name) });
        outcome.enter(Phase::Provision);
        let started = self.start_job_pod(&pod, &[PodStage::Scheduled, PodStage::Running, PodStage::Ready]).await;
        let result = match started {
            Ok(()) => {
                outcome.node = self.node_of(&meta.name).await;
                self.drive_daemon(&meta.name, job, events, outcome).await
            }
            Err(e) => Err(JobError::infrastructure(e)),
        };
        outcome.enter(Phase::Teardown);
        self.remove_job_objects(&meta.name, &[], outcome).await;
        result
    }

    pub(super) async fn run_shared_dind(&self, job: &JobSpec<'_>, events: &EventSink, outcome: &mut JobOutcome) -> Result<(), JobError> {
        match &self.shared_dind {
            Some(Ok(pod)) => {
                // Reaching the shared daemon (the port-forward) is this job's provisioning.
                events.emit(Event::PhaseStarted { phase: Phase::Provision, detail: format!("pod {pod}") });
                outcome.enter(Phase::Provision);
                outcome.node = self.node_of(pod).await;
                self.drive_daemon(pod, job, events, outcome).await
            }
            Some(Err(reason)) => Err(JobError::infrastructure(format!("the shared dind service did not start: {reason}"))),
            None => Err(JobError::infrastructure(format!("no shared dind service was started for {} in this iteration", job.strategy))),
        }
    }

    /// The node a pod was scheduled on.
    pub(super) async fn node_of(&self, pod: &str) -> Option<String> {
        self.api::<Pod>().get_opt(pod).await.ok().flatten()?.spec?.node_name
    }

    pub(super) async fn start_job_pod(&self, pod: &Pod, stages: &[PodStage]) -> Result<(), KubeError> {
        let t = &self.options.timeouts;
        let pods = self.api::<Pod>();
        ensure_created(&pods, pod, t.delete).await?;
        let name = pod.name_any();
        for &stage in stages {
            let limit = match stage {
                PodStage::Scheduled => t.schedule,
                PodStage::Started | PodStage::Running => t.start,
                PodStage::Ready => t.ready,
                PodStage::Exited(_) => t.job,
            };
            wait_pod(&pods, &name, stage, limit).await?;
        }
        Ok(())
    }

    /// Hands the dind daemon in `pod` to the classic builder through a local port, as on the docker backend.
    pub(super) async fn drive_daemon(&self, pod: &str, job: &JobSpec<'_>, events: &EventSink, outcome: &mut JobOutcome) -> Result<(), JobError> {
        let forward = LocalForward::to_pod(self.api(), pod.to_string(), manifests::DIND_PORT)
            .await
            .map_err(|e| JobError::infrastructure(format!("listen for a port-forward to pod {pod}: {e}")))?;
        let driven = async {
            let docker = Docker::connect_with_http(&forward.url(), self.options.timeouts.job.as_secs(), API_DEFAULT_VERSION)
                .map_err(|e| JobError::infrastructure(format!("connect to the dind daemon of pod {pod} through {}: {e}", forward.url())))?;
            // dind images carry older daemons than bollard's default API version.
            let docker = docker
                .negotiate_version()
                .await
                .map_err(|e| JobError::infrastructure(format!("agree an API version with the dind daemon of pod {pod}: {e}")))?;
            classic::run_ops(&docker, job, events, outcome).await
        };
        match driven.await {
            // The builder's own failure: the connection was fine.
            Err(e) if e.kind == crate::results::FailureKind::Build => Err(e),
            // bollard only saw a connection close; the port-forward and the pod say why.
            Err(mut e) => {
                if let Some(reason) = forward.failure(Duration::from_secs(2)).await {
                    e = e.with_detail(&reason);
                }
                if let Ok(Some(now)) = self.api::<Pod>().get_opt(pod).await {
                    if let Some(crash) = orchestrate::crashed(&now) {
                        e = e.with_detail(&format!("pod {pod}: {crash}"));
                    }
                }
                Err(e)
            }
            Ok(()) => Ok(()),
        }
    }

    pub(super) async fn run_daemonless(&self, job: &JobSpec<'_>, events: &EventSink, outcome: &mut JobOutcome) -> Result<(), JobError> {
        let meta = self.job_meta(job);
        let Some(request) = job.plan.job_build() else {
            return Err(JobError::infrastructure(format!("a {} job has no daemonless build to run", job.strategy)));
        };
        let builder = request.builder;
        let home = builder::home(builder);
        if matches!(builder, JobBuilder::Buildx | JobBuilder::Buildctl) {
            return Err(JobError::infrastructure("BuildKit strategies do not run on the kube backend yet"));
        }
        if self.options.images.get(home.role).is_none() {
            return Err(JobError::infrastructure(format!("no {} image is available; name one in the toolchain configuration", home.name)));
        }
        // The same job command as on the docker backend (crate::builder), with this cluster's endpoints.
        let command = manifests::builder_command(request, job.dockerfile_path, &self.options.images);
        events.emit(Event::PhaseStarted { phase: Phase::Provision, detail: format!("pod {}", meta.name) });
        outcome.enter(Phase::Provision);
        let tar = job.context_tar()?;
        let parts = manifests::context_config_maps(&self.run, &meta.name, &tar).map_err(JobError::infrastructure)?;
        let pod = manifests::daemonless_job_pod(
            &self.run,
            &self.options.images,
            &meta,
            request,
            job.dockerfile_path,
            &parts,
            self.options.timeouts.job.as_secs(),
        );
        let mut provisioned = Ok(());
        for part in &parts {
            provisioned = ensure_created(&self.api(), part, self.options.timeouts.delete).await;
            if provisioned.is_err() {
                break;
            }
        }
        if provisioned.is_ok() {
            provisioned = self.start_job_pod(&pod, &[PodStage::Scheduled, PodStage::Started]).await;
        }
        let result = match provisioned {
            Ok(()) => {
                outcome.node = self.node_of(&meta.name).await;
                events.emit(Event::PhaseStarted { phase: Phase::Build, detail: format!("{builder:?} in pod {}", meta.name).to_lowercase() });
                self.follow_build(&meta.name, builder, &command, job, events, outcome).await
            }
            Err(e) => Err(JobError::infrastructure(e)),
        };
        outcome.enter(Phase::Teardown);
        self.remove_job_objects(&meta.name, &parts, outcome).await;
        result
    }

    /// Reads the build container's log through the builder's job log (phase marks, version, steps)
    /// until the container exits; a log known incomplete fails the job.
    pub(super) async fn follow_build(
        &self,
        pod: &str,
        builder: JobBuilder,
        command: &JobCommand,
        job: &JobSpec<'_>,
        events: &EventSink,
        outcome: &mut JobOutcome,
    ) -> Result<(), JobError> {
        let pods = self.api::<Pod>();
        let deadline = tokio::time::Instant::now() + self.options.timeouts.job;
        let mut log = JobLog::start(command, job.dockerfile, outcome);
        let mut versions = vec![];
        let followed = follow::follow_log(&pods, pod, manifests::BUILD_CONTAINER, deadline, |line| {
            versions.extend(log.push(line, outcome));
            log.announce(job.dockerfile, events);
        })
        .await;
        for (name, version) in versions {
            self.builder_versions.lock().expect("versions lock").entry(name.to_string()).or_insert(version);
        }
        let finished = log.finish(outcome);
        match followed {
            Ok(()) => {}
            Err(follow::LogBreak::Deadline) => {
                return Err(JobError::infrastructure(format!(
                    "the build in pod {pod} did not finish within {} s",
                    self.options.timeouts.job.as_secs()
                )))
            }
            Err(broken) => return Err(JobError::infrastructure(broken.to_string())),
        }
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now()).max(self.options.timeouts.api);
        let exited = wait_pod(&pods, pod, PodStage::Exited(manifests::BUILD_CONTAINER), remaining)
            .await
            .map_err(JobError::infrastructure)?;
        match orchestrate::exit_of(&exited, manifests::BUILD_CONTAINER) {
            Some((0, _)) => Ok(()),
            Some((code, message)) => Err(finished.exit_failure(builder, code.into(), job.dockerfile.total_steps(), Some(&message))),
            None => Err(JobError::infrastructure(format!("the build container of pod {pod} reported no exit status"))),
        }
    }
}
