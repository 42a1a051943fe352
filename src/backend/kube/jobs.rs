//! One job as pods: a fresh dind pod driven through a port-forward, a shared daemon, or a builder's pod
//! (with its context in ConfigMaps, and its daemon beside it, in a pod of its own, or shared). What a job runs
//! comes from the builder and daemon homes; every job is bounded by the one job limit from its start.

use std::time::Duration;

use bollard::{Docker, API_DEFAULT_VERSION};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::DeleteParams;
use kube::ResourceExt;

use super::backend::{KubeBackend, RunningDaemon};
use super::follow;
use super::forward::LocalForward;
use super::manifests::{self, JobDaemon, JobMeta};
use super::meter::KubeMeter;
use super::names;
use super::orchestrate::{self, delete, ensure_created, wait_pod, KubeError, PodStage, Whose};
use crate::builder::{self, classic, JobCommand, JobLog};
use crate::events::{Event, EventSink};
use crate::job::{JobError, JobOutcome, JobSpec};
use crate::strategy::{BuildRequest, Daemon, DaemonKind, JobBuilder, Phase};
use crate::usage::{Readings, Whose as UsageOf, USAGE_MARK};

/// What a job created in the namespace, by name, recorded before each is created: all of it is deleted
/// when the job ends, however it ends.
#[derive(Debug, Default)]
pub(super) struct JobObjects {
    pods: Vec<String>,
    services: Vec<String>,
    policies: Vec<String>,
    config_maps: Vec<String>,
}

/// One job as the backend runs it: its names, what it created, and the meter of what its containers use.
struct JobScope<'a> {
    meta: JobMeta<'a>,
    objects: JobObjects,
    meter: KubeMeter,
}

impl KubeBackend {
    pub(super) fn job_meta<'a>(&self, job: &'a JobSpec<'_>) -> JobMeta<'a> {
        JobMeta {
            name: names::job_name(job.lane, job.iteration, job.pipeline_index, job.strategy.name()),
            iteration: job.iteration,
            pipeline_index: job.pipeline_index,
            pipeline_run: &job.pipeline_run.name,
            strategy: job.strategy,
        }
    }

    /// Runs one job's pods to its end within the job limit, counted from the job's start as on the docker
    /// backend; then reads what it used and deletes what it created, also after a failure or the limit.
    pub(super) async fn run_job_pods(&self, job: &JobSpec<'_>, events: &EventSink, outcome: &mut JobOutcome) {
        let limit = self.options.timeouts.job;
        let mut scope = JobScope { meta: self.job_meta(job), objects: JobObjects::default(), meter: KubeMeter::new(self.api(), limit) };
        let body = tokio::time::timeout(limit, self.job_body(job, &mut scope, events, outcome)).await;
        match body {
            Ok(Ok(())) => {}
            Ok(Err(e)) => outcome.fail(e),
            Err(_) => outcome.fail(JobError::infrastructure(format!(
                "the job did not finish within the job limit of {}; what it created was deleted",
                in_words(limit)
            ))),
        }
        // The last readings of the job's own daemon are taken before it goes.
        outcome.enter(Phase::Measure);
        let (usage, why) = scope.meter.finish().await;
        outcome.usage = usage;
        outcome.unmeasured.extend(why);
        outcome.enter(Phase::Teardown);
        self.remove_job_objects(&scope.objects, outcome).await;
    }

    /// Provisions the job's daemon and runs its plan: the classic builder's operations through a daemon's
    /// API, or a builder's job command in a pod.
    async fn job_body(&self, job: &JobSpec<'_>, scope: &mut JobScope<'_>, events: &EventSink, outcome: &mut JobOutcome) -> Result<(), JobError> {
        outcome.enter(Phase::Provision);
        match (job.plan.daemon, job.plan.job_build()) {
            (Daemon::Fresh(DaemonKind::Docker), None) => self.run_fresh_dind(job, scope, events, outcome).await,
            (Daemon::Shared(_), None) => {
                let daemon = self.shared_daemon(job)?;
                // Reaching the shared daemon (the port-forward) is this job's provisioning.
                events.emit(Event::PhaseStarted { phase: Phase::Provision, detail: format!("pod {}", daemon.pod) });
                self.check_in_place(&daemon).await?;
                outcome.node = daemon.node.clone();
                scope.meter.watch(&daemon.pod, builder::daemon(daemon.kind).service_name, UsageOf::Shared);
                self.drive_daemon(&daemon.pod, job, events, outcome).await
            }
            (daemon, Some(request)) => self.run_builder(job, request, daemon, scope, events, outcome).await,
            (daemon, None) => Err(JobError::infrastructure(format!("a {} job has no build to run on {daemon:?}", job.strategy))),
        }
    }

    /// Deletes what the job created and waits until it is gone, as the docker backend waits for its
    /// containers: the teardown phase times the same thing on both. What could not be deleted is recorded
    /// next to the job's own error (the namespace's deletion stays the backstop).
    async fn remove_job_objects(&self, objects: &JobObjects, outcome: &mut JobOutcome) {
        if self.options.keep {
            return;
        }
        let ours = self.run_selector();
        let limit = Some(self.options.timeouts.delete);
        let params = DeleteParams::default();
        let mut errors = vec![];
        for name in &objects.pods {
            errors.push(delete(&self.api::<Pod>(), name, Whose::Labelled(&ours), &params, limit).await);
        }
        for name in &objects.services {
            errors.push(delete(&self.api::<Service>(), name, Whose::Labelled(&ours), &params, limit).await);
        }
        for name in &objects.policies {
            errors.push(delete(&self.api::<NetworkPolicy>(), name, Whose::Labelled(&ours), &params, limit).await);
        }
        for name in &objects.config_maps {
            errors.push(delete(&self.api::<ConfigMap>(), name, Whose::Labelled(&ours), &params, limit).await);
        }
        outcome.cleanup_errors.extend(errors.into_iter().filter_map(Result::err).map(|e| e.to_string()));
    }

    /// A classic job with a fresh dind: a pod with the daemon, driven through a port-forward.
    async fn run_fresh_dind(&self, job: &JobSpec<'_>, scope: &mut JobScope<'_>, events: &EventSink, outcome: &mut JobOutcome) -> Result<(), JobError> {
        let meta = &scope.meta;
        let pod = manifests::dind_job_pod(&self.run, &self.options.images, meta, self.options.timeouts.job.as_secs());
        events.emit(Event::PhaseStarted { phase: Phase::Provision, detail: format!("pod {}", meta.name) });
        scope.objects.pods.push(meta.name.clone());
        let started = self.start_job_pod(&pod, &[PodStage::Scheduled, PodStage::Running, PodStage::Ready]).await;
        // A pod that did not start was placed all the same: where is part of why.
        outcome.node = self.node_of(&meta.name).await;
        started.map_err(JobError::infrastructure)?;
        let home = builder::daemon(DaemonKind::Docker);
        self.note_version(&meta.name, home).await;
        scope.meter.watch(&meta.name, home.service_name, UsageOf::Own);
        self.drive_daemon(&meta.name, job, events, outcome).await
    }

    /// The strategy's shared daemon in this iteration, or why its job cannot have it.
    fn shared_daemon(&self, job: &JobSpec<'_>) -> Result<RunningDaemon, JobError> {
        match self.shared.get(&job.strategy) {
            Some(Ok(daemon)) => Ok(daemon.clone()),
            Some(Err(reason)) => Err(JobError::infrastructure(format!("the shared daemon of {} did not start: {reason}", job.strategy))),
            None => Err(JobError::infrastructure(format!("no shared daemon was started for {} in this iteration", job.strategy))),
        }
    }

    /// A shared daemon stays where it started for its iteration: its pod is still the one that started, on
    /// the same node, and not being deleted. A daemon that moved lost its state with its node's volume, so
    /// its job would measure another daemon: it fails instead, saying so.
    async fn check_in_place(&self, daemon: &RunningDaemon) -> Result<(), JobError> {
        let now = self.api::<Pod>().get_opt(&daemon.pod).await;
        let moved = match now {
            Ok(Some(pod)) if pod.metadata.deletion_timestamp.is_some() => Some("it is being deleted".to_string()),
            Ok(Some(pod)) => {
                let node = pod.spec.and_then(|s| s.node_name);
                (node != daemon.node).then(|| format!("it runs on node {} now", node.as_deref().unwrap_or("none")))
            }
            Ok(None) => Some("its pod is gone".to_string()),
            // The API server did not answer: the port-forward that follows says what is wrong, if anything.
            Err(_) => None,
        };
        match moved {
            None => Ok(()),
            Some(why) => Err(JobError::infrastructure(format!(
                "the shared {} daemon (pod {}) left node {}, where it started this iteration: {why}",
                builder::daemon(daemon.kind).service_name,
                daemon.pod,
                daemon.node.as_deref().unwrap_or("unknown")
            ))),
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

    /// A builder's job: its daemon placed first where it has one (a dind beside it in its pod, a buildkitd in a
    /// pod of its own as buildx's `kubernetes` driver runs it, or the strategy's shared one), then its pod with
    /// the context in ConfigMaps, followed to its end. The job's node is where its build runs: its daemon's.
    async fn run_builder(
        &self,
        job: &JobSpec<'_>,
        request: &BuildRequest,
        daemon: Daemon,
        scope: &mut JobScope<'_>,
        events: &EventSink,
        outcome: &mut JobOutcome,
    ) -> Result<(), JobError> {
        let home = builder::home(request.builder);
        if self.options.images.get(home.role).is_none() {
            return Err(JobError::infrastructure(format!("no {} image is available; name one in the toolchain configuration", home.name)));
        }
        let job_daemon = match daemon {
            Daemon::None => JobDaemon::None,
            // A CI job's dind service: beside the job, on its loopback.
            Daemon::Fresh(DaemonKind::Docker) => JobDaemon::Sidecar(builder::daemon(DaemonKind::Docker)),
            Daemon::Fresh(kind) => {
                let daemon = self.start_job_daemon(kind, scope, events).await?;
                outcome.node = daemon.node.clone();
                JobDaemon::At(builder::daemon(kind).address(&daemon.host))
            }
            Daemon::Shared(kind) => {
                let daemon = self.shared_daemon(job)?;
                self.check_in_place(&daemon).await?;
                outcome.node = daemon.node.clone();
                scope.meter.watch(&daemon.pod, builder::daemon(kind).service_name, UsageOf::Shared);
                JobDaemon::At(builder::daemon(kind).address(&daemon.host))
            }
        };
        // The same job command as on the docker backend (crate::builder), with this cluster's endpoints.
        let command = manifests::builder_command(request, job.dockerfile_path, &self.options.images, job_daemon.host().as_deref());
        let meta = &scope.meta;
        events.emit(Event::PhaseStarted { phase: Phase::Provision, detail: format!("pod {}", meta.name) });
        let tar = job.context_tar()?;
        let parts = manifests::context_config_maps(&self.run, &meta.name, &tar).map_err(JobError::infrastructure)?;
        let timeout_s = self.options.timeouts.job.as_secs();
        let build = manifests::PodBuild { request, dockerfile_path: job.dockerfile_path, context_parts: &parts, daemon: &job_daemon };
        let pod = manifests::builder_job_pod(&self.run, &self.options.images, meta, &build, timeout_s);
        for part in &parts {
            scope.objects.config_maps.push(part.name_any());
            ensure_created(&self.api(), part, self.options.timeouts.delete).await.map_err(JobError::infrastructure)?;
        }
        scope.objects.pods.push(meta.name.clone());
        let started = self.start_job_pod(&pod, &[PodStage::Scheduled, PodStage::Started]).await;
        if outcome.node.is_none() {
            // A pod that did not start was placed all the same: where is part of why.
            outcome.node = self.node_of(&meta.name).await;
        }
        started.map_err(JobError::infrastructure)?;
        if let JobDaemon::Sidecar(daemon) = job_daemon {
            self.note_version(&meta.name, daemon).await;
            scope.meter.watch(&meta.name, daemon.service_name, UsageOf::Own);
        }
        scope.meter.watch(&meta.name, manifests::BUILD_CONTAINER, UsageOf::Own);
        let builder = request.builder;
        events.emit(Event::PhaseStarted { phase: Phase::Build, detail: format!("{builder:?} in pod {}", meta.name).to_lowercase() });
        self.follow_build(scope, builder, &command, job, events, outcome).await
    }

    /// A job's own daemon in a pod of its own, reachable by a Service of its own that a NetworkPolicy opens
    /// to the job's pods alone, ready and fenced from its own build steps.
    async fn start_job_daemon(&self, kind: DaemonKind, scope: &mut JobScope<'_>, events: &EventSink) -> Result<RunningDaemon, JobError> {
        let home = builder::daemon(kind);
        let objects_of = manifests::job_daemon(&self.run, &self.options.images, &scope.meta, home, self.options.timeouts.job.as_secs());
        let objects = &mut scope.objects;
        let name = objects_of.pod.name_any();
        events.emit(Event::PhaseStarted { phase: Phase::Provision, detail: format!("pod {name}") });
        let limit = self.options.timeouts.delete;
        objects.policies.push(name.clone());
        ensure_created(&self.api(), &objects_of.policy, limit).await.map_err(JobError::infrastructure)?;
        objects.services.push(name.clone());
        ensure_created(&self.api(), &objects_of.service, limit).await.map_err(JobError::infrastructure)?;
        objects.pods.push(name.clone());
        let stages = [PodStage::Scheduled, PodStage::Running, PodStage::Ready];
        self.start_job_pod(&objects_of.pod, &stages).await.map_err(JobError::infrastructure)?;
        self.daemon_up(&name, home, false).await.map_err(JobError::infrastructure)?;
        scope.meter.watch(&name, home.service_name, UsageOf::Own);
        Ok(RunningDaemon { kind, node: self.node_of(&name).await, pod: name.clone(), host: name })
    }

    /// Reads the build container's log through the builder's job log (phase marks, version, steps)
    /// until the container exits; a log known incomplete fails the job. The script's last reading of its
    /// container's counters goes to the meter, not to the builder's parser.
    async fn follow_build(
        &self,
        scope: &JobScope<'_>,
        builder: JobBuilder,
        command: &JobCommand,
        job: &JobSpec<'_>,
        events: &EventSink,
        outcome: &mut JobOutcome,
    ) -> Result<(), JobError> {
        let (pod, meter) = (scope.meta.name.as_str(), &scope.meter);
        let pods = self.api::<Pod>();
        let deadline = tokio::time::Instant::now() + self.options.timeouts.job;
        let mut log = JobLog::start(command, job.dockerfile, outcome);
        let mut versions = vec![];
        let mut readings = Readings::default();
        let last_line = manifests::last_log_line(command);
        let followed = follow::follow_log(&pods, pod, manifests::BUILD_CONTAINER, deadline, last_line.as_deref(), |line| {
            match usage_reading(line) {
                Some(reading) => {
                    if let Some(sample) = readings.push(reading) {
                        meter.add(pod, manifests::BUILD_CONTAINER, sample);
                    }
                }
                None => {
                    versions.extend(log.push(line, outcome));
                    log.announce(job.dockerfile, events);
                }
            }
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

/// A limit as a reader says it: whole minutes in minutes, anything else in seconds.
fn in_words(limit: Duration) -> String {
    match limit.as_secs() {
        s if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// The reading in a line of the build's log (the kubelet's timestamp, then the usage mark), if it is one.
fn usage_reading(stamped: &str) -> Option<&str> {
    let (_, text) = stamped.trim_end().split_once(' ')?;
    text.strip_prefix(USAGE_MARK)
}
