//! The local Docker engine backend: dind daemons, registries and builder containers on a private network.
//!
//! Layout of a run on the engine (every object labelled `layerbench.run-id=<id>`):
//! - one user-defined bridge network; nothing on it is published except the mirror, on loopback only;
//! - `mirror`: a registry standing in for Docker Hub, seeded once with the scenario's base images;
//!   every daemon and builder uses it as its Docker Hub mirror;
//! - `registry`: the CI registry, fresh for each iteration so caches start empty;
//! - dind daemons, reached by the harness at their bridge address on port 2375.

mod daemonless;
mod engine;
pub mod ops;
mod services;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::NetworkCreateRequest;
use bollard::Docker;

pub use engine::DindMode;
use engine::{exec_output, failed, remove_container};
use services::Dind;

use crate::backend::{Backend, BackendError, CacheState, JobError, JobOutcome, JobSpec, ServiceStart};
use crate::events::EventSink;
use crate::registry::{storage_script, Traffic};
use crate::resources::run_labels;
use crate::strategy::{Daemon, Phase, StrategyKind};
use crate::toolchain::{ResolvedImage, Toolchain};
use crate::Millis;

/// How long a daemon or registry may take to answer after its container started.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// Images the backend runs, already present in the engine (see `toolchain`).
#[derive(Debug, Clone)]
pub struct BackendImages {
    pub dind: ResolvedImage,
    pub registry: ResolvedImage,
    pub buildah: ResolvedImage,
    /// `None` when no kaniko image could be had.
    pub kaniko: Option<ResolvedImage>,
    /// Images to serve from the mirror: (local image, name the Dockerfile uses, e.g. `python:3.11-slim`).
    pub mirrored: Vec<(String, String)>,
}

pub struct DockerBackend {
    engine: Docker,
    run_id: String,
    network: String,
    images: BackendImages,
    /// Decided by the first dind start: privileged when the engine allows it.
    dind_mode: Option<DindMode>,
    mirror: Option<String>,
    registry: Option<String>,
    shared: HashMap<StrategyKind, Dind>,
    jobs_started: u32,
    /// Builder versions as the builders reported them, for `run.json`.
    dind_version: Option<String>,
    buildah_version: Option<String>,
}

impl BackendImages {
    /// The toolchain's images; the base image is served from the mirror under its official name,
    /// so the scenario's Dockerfile builds unchanged with a local stand-in.
    pub fn from_toolchain(toolchain: &Toolchain) -> Self {
        BackendImages {
            dind: toolchain.dind.clone(),
            registry: toolchain.registry.clone(),
            buildah: toolchain.buildah.clone(),
            kaniko: toolchain.kaniko.clone().ok(),
            mirrored: vec![(toolchain.base.name.clone(), toolchain.base.official.clone())],
        }
    }
}

impl DockerBackend {
    /// Creates the run's network and mirror registry, and seeds the mirror.
    pub async fn start(
        engine: Docker,
        run_id: &str,
        images: BackendImages,
        events: &EventSink,
    ) -> Result<Self, BackendError> {
        let network = format!("layerbench-{run_id}");
        engine
            .create_network(NetworkCreateRequest {
                name: network.clone(),
                driver: Some("bridge".into()),
                labels: Some(run_labels(run_id)),
                ..Default::default()
            })
            .await
            .map_err(failed(format!("create network {network}")))?;
        let mut backend = DockerBackend {
            engine,
            run_id: run_id.to_string(),
            network,
            images,
            dind_mode: None,
            mirror: None,
            registry: None,
            shared: HashMap::new(),
            jobs_started: 0,
            dind_version: None,
            buildah_version: None,
        };
        events.setup("starting the Docker Hub mirror and seeding it with the base images");
        let mirror = backend.container_name("mirror");
        services::start_registry(&backend, &mirror, "mirror", true).await?;
        backend.mirror = Some(mirror.clone());
        services::seed_mirror(&backend, &mirror, events).await?;
        Ok(backend)
    }

    fn container_name(&self, role: &str) -> String {
        format!("lb-{}-{role}", self.run_id)
    }

    /// How dind containers run on this engine; `None` until the first one started.
    pub fn dind_mode(&self) -> Option<DindMode> {
        self.dind_mode
    }

    /// The dind daemons' version, once one has started.
    pub fn dind_version(&self) -> Option<&str> {
        self.dind_version.as_deref()
    }

    /// What `buildah --version` printed in a daemonless job, once one has run.
    pub fn buildah_version(&self) -> Option<&str> {
        self.buildah_version.as_deref()
    }

    async fn registry_traffic(&self, since: chrono::DateTime<chrono::Utc>) -> Option<Traffic> {
        let registry = self.registry.as_ref()?;
        let lines = engine::logs_since(&self.engine, registry, since).await.ok()?;
        Some(Traffic::from_access_log(lines.iter().map(String::as_str)))
    }

    async fn run_dind_job(&mut self, job: &JobSpec<'_>, events: &EventSink, outcome: &mut JobOutcome) -> Result<(), JobError> {
        let provision = Instant::now();
        let fresh = match job.plan.daemon {
            Daemon::FreshDind => {
                let name = self.container_name(&format!("dind-job{}", self.jobs_started));
                Some(services::start_dind(self, &name, false).await?)
            }
            _ => None,
        };
        let dind = match (&fresh, self.shared.get(&job.strategy)) {
            (Some(d), _) | (None, Some(d)) => d,
            (None, None) => {
                return Err(JobError::infrastructure(format!("no shared daemon was started for {}", job.strategy)))
            }
        };
        let ready = engine::wait_until_ready(&dind.client, &format!("dind daemon {}", dind.container), READY_TIMEOUT).await;
        outcome.phases.insert(Phase::Provision, provision.elapsed().as_millis() as Millis);
        let result = match ready {
            Ok(()) => ops::run_ops(&dind.client, job, events, outcome).await,
            Err(e) => Err(e.into()),
        };
        if let Some(d) = fresh {
            if let Err(e) = d.remove(&self.engine).await {
                outcome.cleanup_errors.push(e.to_string());
            }
        }
        result
    }
}

impl Backend for DockerBackend {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn repository(&self, strategy: StrategyKind, repository: &str) -> String {
        format!("registry:5000/{}/{repository}", strategy.name())
    }

    async fn begin_iteration(
        &mut self,
        iteration: u32,
        strategies: &[StrategyKind],
        events: &EventSink,
    ) -> Result<Vec<ServiceStart>, BackendError> {
        let registry = self.container_name(&format!("registry-it{iteration}"));
        services::start_registry(self, &registry, "registry", false).await?;
        self.registry = Some(registry);
        let mut started = vec![];
        for &strategy in strategies {
            if strategy.strategy().daemon() != Daemon::SharedDind {
                continue;
            }
            events.setup(format!("starting the shared dind service for {strategy} (iteration {iteration})"));
            let clock = Instant::now();
            let name = self.container_name(&format!("dind-shared-{}-it{iteration}", strategy.name()));
            let dind = services::start_dind(self, &name, true).await?;
            engine::wait_until_ready(&dind.client, &format!("shared dind daemon {name}"), READY_TIMEOUT).await?;
            started.push(ServiceStart {
                strategy,
                service: "dind".into(),
                startup_ms: clock.elapsed().as_millis() as Millis,
            });
            self.shared.insert(strategy, dind);
        }
        Ok(started)
    }

    async fn run_job(&mut self, job: &JobSpec<'_>, events: &EventSink) -> JobOutcome {
        self.jobs_started += 1;
        let since = chrono::Utc::now();
        let mut outcome = JobOutcome::default();
        let result = match job.plan.daemon {
            Daemon::FreshDind | Daemon::SharedDind => self.run_dind_job(job, events, &mut outcome).await,
            Daemon::None => daemonless::run(self, job, events, &mut outcome).await,
        };
        if let Err(e) = result {
            outcome.fail(e);
        }
        if let Some(traffic) = self.registry_traffic(since).await {
            outcome.record_traffic(traffic);
        }
        outcome
    }

    async fn cache_state(&mut self, strategy: StrategyKind) -> CacheState {
        let mut state = CacheState::default();
        if let Some(registry) = &self.registry {
            let script = storage_script(strategy.name());
            if let Ok(out) = exec_output(&self.engine, registry, &["sh", "-c", &script]).await {
                state.registry_bytes = out.trim().parse().ok();
            }
        }
        if let Some(dind) = self.shared.get(&strategy) {
            if let Ok(out) = exec_output(&self.engine, &dind.container, &["du", "-sb", "/var/lib/docker"]).await {
                state.daemon_volume_bytes = out.split_whitespace().next().and_then(|n| n.parse().ok());
            }
        }
        state
    }

    async fn end_iteration(&mut self, _iteration: u32) -> Result<(), BackendError> {
        for (_, dind) in self.shared.drain() {
            dind.remove(&self.engine).await?;
        }
        if let Some(registry) = self.registry.take() {
            remove_container(&self.engine, &registry).await?;
        }
        Ok(())
    }

    async fn shutdown(&mut self) -> Result<(), BackendError> {
        crate::resources::remove_labelled(&self.engine, Some(&self.run_id))
            .await
            .map(|_| ())
            .map_err(|e| BackendError::new("remove the run's containers, volumes and network", e))
    }
}
