//! The local Docker engine backend: dind daemons, registries and builder containers on a private network.
//!
//! Layout of a run on the engine (every object labelled `layerbench.run-id=<id>`):
//! - one user-defined bridge network; nothing on it is published except the mirror, on loopback only;
//! - `mirror`: a registry seeded once with the scenario's base images (`toolchain::bases`); every daemon and
//!   builder uses it as its Docker Hub mirror, and the Dockerfile they are given names it for other registries';
//! - `registry`: the CI registry, fresh for each iteration so caches start empty;
//! - dind daemons, reached by the harness at their bridge address on port 2375, and buildkitd daemons,
//!   reached only by their jobs' `buildctl` on port 1234.

mod engine;
mod job_container;
mod meter;
mod owned;
mod services;

pub use services::push_to_mirror;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bollard::models::{NetworkConnectRequest, NetworkCreateRequest};
use bollard::Docker;

pub use engine::DindMode;
use engine::{exec_output, failed, remove_container};
use owned::JobResources;
use services::{DaemonPlace, DaemonService};

use crate::backend::{Backend, BackendError, CacheState, ServiceEnd, ServiceStart};
use crate::builder::{self, classic};
use crate::events::EventSink;
use crate::job::{JobError, JobOutcome, JobSpec, JOB_TIMEOUT};
use crate::registry::{blob_sizes_script, storage_script, LogUnreadable, Traffic};
use crate::resources::run_labels;
use crate::results::BackendKind;
use crate::strategy::{Daemon, JobBuilder, Op, Phase, Strategy};
use crate::toolchain::bases::Bases;
use crate::toolchain::{ResolvedImage, Role, Toolchain};
use crate::usage::Whose;

/// How long a daemon or registry may take to answer after its container started.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// Images the backend runs, already present in the engine (see `toolchain`).
#[derive(Debug, Clone)]
pub struct BackendImages {
    /// The toolchain images, by role; the builder and daemon homes say which role each runs.
    pub toolchain: Toolchain,
    /// Images to serve from the mirror: (local image, `PATH:TAG` in the mirror, e.g. `library/python:3.11-slim`).
    pub mirrored: Vec<(String, String)>,
}

/// The run's mirror as every daemon and builder reaches it, on every strategy's network.
pub const MIRROR_ADDRESS: &str = "mirror:5000";

impl BackendImages {
    /// The image of `role`, or why the job cannot have it.
    fn get(&self, role: Role, what: &str) -> Result<&ResolvedImage, BackendError> {
        self.toolchain.get(role).ok_or_else(|| BackendError::new(format!("find the {what} image"), format!("no {role} image was resolved for this run")))
    }
}

/// What one strategy has on the engine: a network of its own and, per iteration, its own registry
/// and shared daemon. Nothing of one strategy can reach another's.
struct StrategyPlace {
    network: String,
    registry: Option<String>,
    shared: Option<DaemonService>,
    /// Samples the shared daemon over its whole iteration.
    shared_meter: Option<meter::JobMeter>,
}

pub struct DockerBackend {
    engine: Docker,
    run_id: String,
    images: BackendImages,
    /// Decided by the first dind start: privileged when the engine allows it.
    dind_mode: Mutex<Option<DindMode>>,
    /// The read-only Docker Hub mirror and the network it was seeded on.
    mirror: Option<(String, String)>,
    places: HashMap<Strategy, StrategyPlace>,
    /// Jobs started so far, lanes run at once included: the next job's number.
    jobs_started: AtomicU32,
    /// Builder versions as the builders reported them (`buildah`, `buildctl`, …), for `run.json`.
    builder_versions: Mutex<BTreeMap<String, String>>,
    /// The engine's host name: where every job ran.
    node: Option<String>,
}

impl BackendImages {
    /// The toolchain's images, and the scenario's base images, each served from the mirror under the name its
    /// Dockerfile uses (see `toolchain::bases`), so the Dockerfile builds unchanged with a local image.
    pub fn from_toolchain(toolchain: &Toolchain, bases: &Bases) -> Self {
        BackendImages { mirrored: bases.mirrored(), toolchain: toolchain.clone() }
    }
}

impl DockerBackend {
    /// Creates the mirror's network and the mirror, seeds it and makes it read-only.
    pub async fn start(
        engine: Docker,
        run_id: &str,
        images: BackendImages,
        events: &EventSink,
    ) -> Result<Self, BackendError> {
        let mut backend = DockerBackend {
            engine,
            run_id: run_id.to_string(),
            images,
            dind_mode: Mutex::new(None),
            mirror: None,
            places: HashMap::new(),
            jobs_started: AtomicU32::new(0),
            builder_versions: Mutex::new(BTreeMap::new()),
            node: None,
        };
        backend.node = backend.engine.info().await.ok().and_then(|info| info.name);
        let network = format!("layerbench-{run_id}-mirror");
        backend.create_network(&network).await?;
        events.setup("starting the Docker Hub mirror and seeding it with the base images");
        let mirror = backend.container_name("mirror");
        services::start_registry(&backend, &mirror, &network, "mirror", true).await?;
        backend.mirror = Some((mirror.clone(), network.clone()));
        services::seed_mirror(&backend, &mirror, events).await?;
        services::make_read_only(&backend, &mirror, &network).await?;
        Ok(backend)
    }

    async fn create_network(&self, name: &str) -> Result<(), BackendError> {
        self.engine
            .create_network(NetworkCreateRequest {
                name: name.to_string(),
                driver: Some("bridge".into()),
                labels: Some(run_labels(&self.run_id)),
                ..Default::default()
            })
            .await
            .map(|_| ())
            .map_err(failed(format!("create network {name}")))
    }

    fn container_name(&self, role: &str) -> String {
        format!("lb-{}-{role}", self.run_id)
    }

    /// The strategy's network, created (with the mirror attached as `mirror`) on first use.
    async fn place(&mut self, strategy: Strategy) -> Result<&mut StrategyPlace, BackendError> {
        if !self.places.contains_key(&strategy) {
            let network = format!("layerbench-{}-{}", self.run_id, strategy.name());
            self.create_network(&network).await?;
            if let Some((mirror, _)) = &self.mirror {
                let request = NetworkConnectRequest {
                    container: mirror.clone(),
                    endpoint_config: Some(bollard::models::EndpointSettings {
                        aliases: Some(vec!["mirror".into()]),
                        ..Default::default()
                    }),
                };
                self.engine
                    .connect_network(&network, request)
                    .await
                    .map_err(failed(format!("attach the mirror to network {network}")))?;
            }
            self.places.insert(strategy, StrategyPlace { network, registry: None, shared: None, shared_meter: None });
        }
        Ok(self.places.get_mut(&strategy).expect("inserted above"))
    }

    /// The strategy's network, once its first iteration began.
    pub fn network(&self, strategy: Strategy) -> Option<&str> {
        self.places.get(&strategy).map(|p| p.network.as_str())
    }

    /// The container name of the strategy's shared daemon in the running iteration.
    pub fn shared_daemon(&self, strategy: Strategy) -> Option<&str> {
        self.places.get(&strategy).and_then(|p| p.shared.as_ref()).map(|d| d.container.as_str())
    }

    /// How dind containers run on this engine; `None` until the first one started.
    pub fn dind_mode(&self) -> Option<DindMode> {
        *self.dind_mode.lock().expect("dind mode lock")
    }

    /// The versions the builders and daemons reported, by name (`dind (classic builder)`, `buildah`,
    /// `buildx`, `buildctl`, `buildkitd`), once one of each has run.
    pub fn builder_versions(&self) -> BTreeMap<String, String> {
        self.builder_versions.lock().expect("versions lock").clone()
    }

    /// Records the version a builder or daemon reported, the first one of each name.
    fn saw_version(&self, builder: &str, version: String) {
        self.builder_versions.lock().expect("versions lock").entry(builder.to_string()).or_insert(version);
    }

    fn set_dind_mode(&self, mode: DindMode) {
        *self.dind_mode.lock().expect("dind mode lock") = Some(mode);
    }

    fn knows_version(&self, builder: &str) -> bool {
        self.builder_versions.lock().expect("versions lock").contains_key(builder)
    }

    /// The image a job container of `builder` runs.
    fn job_image(&self, builder: JobBuilder) -> Result<&ResolvedImage, BackendError> {
        let home = builder::home(builder);
        self.images.get(home.role, home.name)
    }

    /// The strategy registry's traffic since `since`, from its access log.
    async fn registry_traffic(&self, strategy: Strategy, since: chrono::DateTime<chrono::Utc>) -> Result<Traffic, LogUnreadable> {
        let registry = self.places.get(&strategy).and_then(|p| p.registry.as_ref()).ok_or_else(|| LogUnreadable::new("no registry is running"))?;
        let lines = engine::logs_since(&self.engine, registry, since).await.map_err(LogUnreadable::new)?;
        let traffic = Traffic::from_access_log(lines.iter().map(String::as_str));
        if traffic.uploaded.is_empty() {
            return Ok(traffic);
        }
        let sizes = exec_output(&self.engine, registry, &["sh", "-c", &blob_sizes_script(&traffic.uploaded)]).await;
        Ok(traffic.with_blob_sizes(sizes))
    }

    /// The size of `image` as the strategy's registry stores it.
    async fn image_bytes(&self, strategy: Strategy, image: &str) -> Result<crate::Bytes, LogUnreadable> {
        let registry = self.places.get(&strategy).and_then(|p| p.registry.as_ref()).ok_or_else(|| LogUnreadable::new("no registry is running"))?;
        crate::registry::pushed_image_bytes(image, |script| async move { exec_output(&self.engine, registry, &["sh", "-c", &script]).await }).await
    }

    /// Provision (a fresh daemon on a network of the job's own, or the shared one), then the plan's
    /// operations in order.
    async fn job_body(&self, job: &JobSpec<'_>, number: u32, owner: &mut JobResources, events: &EventSink, outcome: &mut JobOutcome) -> Result<(), JobError> {
        outcome.enter(Phase::Provision);
        let strategy = job.strategy;
        let place = self.places.get(&strategy).ok_or_else(|| JobError::infrastructure(format!("no iteration was begun for {strategy}")))?;
        let mut network = place.network.clone();
        let daemon = match job.plan.daemon {
            Daemon::Fresh(kind) => {
                network = self.job_network(strategy, number, owner).await?;
                let name = self.container_name(&format!("{}-job{number}", builder::daemon(kind).service_name));
                let home = builder::daemon(kind);
                let place = DaemonPlace { name: &name, network: &network, alias: home.job_alias, kind, image_store: strategy.image_store };
                let service = services::start_daemon(self, &place, owner).await?;
                Some((service.client, home.address(home.job_alias)))
            }
            Daemon::Shared(kind) => {
                let shared = place.shared.as_ref().ok_or_else(|| {
                    JobError::infrastructure(format!("no shared daemon was started for {strategy}"))
                })?;
                shared.wait_until_ready(&self.engine).await?;
                let home = builder::daemon(kind);
                Some((shared.client.clone(), home.address(home.shared_alias)))
            }
            Daemon::None => None,
        };
        let mut context_tar = None;
        for op in &job.plan.ops {
            match (op, &daemon) {
                (Op::JobBuild(request), _) => {
                    let daemon_host = daemon.as_ref().map(|d| d.1.as_str());
                    let place = job_container::Placement { network: &network, daemon_host, number };
                    job_container::run(self, job, request, &place, owner, events, outcome).await?;
                }
                (op, Some((Some(client), _))) => classic::run_op(client, op, job, &mut context_tar, events, outcome).await?,
                (_, _) => return Err(JobError::infrastructure(format!("{strategy} has no Docker daemon to run `{op:?}` on"))),
            }
        }
        Ok(())
    }

    /// A network of the job's own, with the strategy's registry and the mirror on it: a job's fresh daemon
    /// answers there as `docker` (or `buildkitd`) and nowhere else, so lanes run at once never reach each
    /// other's daemons, as CI runners give each job its own network.
    async fn job_network(&self, strategy: Strategy, number: u32, owner: &mut JobResources) -> Result<String, BackendError> {
        let network = format!("layerbench-{}-{}-job{number}", self.run_id, strategy.name());
        owner.network(&network);
        self.create_network(&network).await?;
        let registry = self.places.get(&strategy).and_then(|p| p.registry.clone());
        let mirror = self.mirror.as_ref().map(|(m, _)| m.clone());
        for (container, alias) in [(registry, "registry"), (mirror, "mirror")] {
            let Some(container) = container else { continue };
            let request = NetworkConnectRequest {
                container: container.clone(),
                endpoint_config: Some(bollard::models::EndpointSettings { aliases: Some(vec![alias.into()]), ..Default::default() }),
            };
            self.engine
                .connect_network(&network, request)
                .await
                .map_err(failed(format!("attach {container} to network {network}")))?;
        }
        Ok(network)
    }
}

impl Backend for DockerBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Docker
    }

    fn repository(&self, strategy: Strategy, repository: &str) -> String {
        format!("registry:5000/{}/{repository}", strategy.name())
    }

    async fn begin_iteration(
        &mut self,
        iteration: u32,
        strategies: &[Strategy],
        events: &EventSink,
    ) -> Result<Vec<ServiceStart>, BackendError> {
        let mut started = vec![];
        for &strategy in strategies {
            let network = self.place(strategy).await?.network.clone();
            let registry = self.container_name(&format!("registry-{}-it{iteration}", strategy.name()));
            services::start_registry(self, &registry, &network, "registry", false).await?;
            self.place(strategy).await?.registry = Some(registry);
            let Daemon::Shared(kind) = strategy.daemon else { continue };
            let service = builder::daemon(kind).service_name;
            events.setup(format!("starting the shared {service} service for {strategy} (iteration {iteration})"));
            let clock = Instant::now();
            let name = self.container_name(&format!("{service}-shared-{}-it{iteration}", strategy.name()));
            let place = DaemonPlace { name: &name, network: &network, alias: builder::daemon(kind).shared_alias, kind, image_store: strategy.image_store };
            // A shared daemon outlives its jobs: the iteration owns it, not a job.
            let mut owner = JobResources::new(&self.engine);
            let daemon = match services::start_daemon(self, &place, &mut owner).await {
                Ok(daemon) => {
                    owner.release();
                    daemon
                }
                Err(e) => {
                    owner.remove().await;
                    return Err(e);
                }
            };
            started.push(ServiceStart {
                strategy,
                service: service.into(),
                startup_ms: crate::millis(clock.elapsed()),
            });
            let meter = meter::JobMeter::start(&self.engine, Some((daemon.container.clone(), Whose::Own)));
            let place = self.place(strategy).await?;
            place.shared_meter = Some(meter);
            place.shared = Some(daemon);
        }
        Ok(started)
    }

    async fn run_job(&self, job: &JobSpec<'_>, events: &EventSink) -> JobOutcome {
        let number = self.jobs_started.fetch_add(1, Ordering::SeqCst) + 1;
        let since = chrono::Utc::now();
        let mut outcome = JobOutcome::default();
        outcome.node = self.node.clone();
        let shared = self.shared_daemon(job.strategy).filter(|_| matches!(job.plan.daemon, Daemon::Shared(_)));
        let meter = meter::JobMeter::start(&self.engine, shared.map(|d| (d.to_string(), Whose::Shared)));
        let mut owner = JobResources::new(&self.engine).metered(meter.watch());
        let limit = JOB_TIMEOUT;
        let body = tokio::time::timeout(limit, self.job_body(job, number, &mut owner, events, &mut outcome)).await;
        match body {
            Ok(Ok(())) => {}
            Ok(Err(e)) => outcome.fail(e),
            Err(_) => outcome.fail(JobError::infrastructure(format!(
                "the job did not finish within {} min; its resources were removed",
                limit.as_secs() / 60
            ))),
        }
        // The last reading of the job's own daemon is taken before it goes.
        outcome.enter(Phase::Measure);
        let (usage, why) = meter.finish().await;
        outcome.usage = usage;
        outcome.unmeasured.extend(why);
        outcome.enter(Phase::Teardown);
        outcome.cleanup_errors.extend(owner.remove().await);
        outcome.enter(Phase::Measure);
        outcome.record_own_traffic(job.lane, self.registry_traffic(job.strategy, since)).await;
        if let (None, Some(image)) = (&outcome.error, job.plan.image()) {
            outcome.record_image(self.image_bytes(job.strategy, image).await);
        }
        outcome.end_phase();
        outcome
    }

    async fn cache_state(&self, strategy: Strategy) -> CacheState {
        let mut state = CacheState::default();
        let Some(place) = self.places.get(&strategy) else { return state };
        if let Some(registry) = &place.registry {
            let script = storage_script(strategy.name());
            let out = exec_output(&self.engine, registry, &["sh", "-c", &script]).await;
            state.registry_bytes = state.storage_from(out);
        }
        if let Some(daemon) = &place.shared {
            let out = exec_output(&self.engine, &daemon.container, &["du", "-sb", builder::daemon(daemon.kind).state_dir]).await;
            state.daemon_volume_bytes = state.size_from("the shared daemon's volume size", out);
        }
        state
    }

    async fn end_iteration(&mut self, _iteration: u32) -> Result<Vec<ServiceEnd>, BackendError> {
        let mut ends = vec![];
        for (strategy, place) in self.places.iter_mut() {
            if let Some(meter) = place.shared_meter.take() {
                let (usage, unmeasured) = meter.finish().await;
                ends.push(ServiceEnd { strategy: *strategy, usage, unmeasured });
            }
            if let Some(daemon) = place.shared.take() {
                daemon.remove(&self.engine).await?;
            }
            if let Some(registry) = place.registry.take() {
                remove_container(&self.engine, &registry).await?;
            }
        }
        Ok(ends)
    }
}
