//! The kube backend itself: a namespace of the cluster, the run's services in it, and one pod per job.

use std::time::Instant;

use bollard::Docker;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::DeleteParams;
use kube::{Api, Client, Resource};

use std::collections::BTreeMap;

use super::clean::delete_labelled;
use super::config::{client_for, KubeOptions};
use super::manifests::{self, RunMeta};
use super::meter::KubeMeter;
use super::orchestrate::{self, api_error, delete, ensure_created, KubeError, Whose};
use super::{mirror, names};
use crate::backend::{Backend, BackendError, CacheState, ServiceEnd, ServiceStart};
use crate::builder;
use crate::events::EventSink;
use crate::job::{JobOutcome, JobSpec};
use crate::registry::storage_script;
use crate::results::BackendKind;
use crate::strategy::{Daemon, DaemonKind, Phase, Strategy};
use crate::usage::Whose as UsageOf;

/// How long a shared daemon's iteration-long reading may run at the most, whatever happens to its reader: an
/// iteration is many jobs, each within the job limit.
const ITERATION_LIMIT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// A daemon that serves jobs from a pod of its own: a strategy's shared daemon, or a job's own buildkitd.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RunningDaemon {
    pub kind: DaemonKind,
    pub pod: String,
    /// The node it runs on, taken when it became ready: a shared daemon must stay there for its iteration.
    pub node: Option<String>,
    /// The name jobs reach it by (its Service).
    pub host: String,
}

/// Runs jobs as pods in one namespace of a cluster. Owns everything it creates there.
pub struct KubeBackend {
    pub(super) client: Client,
    pub(super) options: KubeOptions,
    pub(super) run: RunMeta,
    /// The namespace was created by this run, so deleting it removes exactly what the run made.
    pub(super) owns_namespace: bool,
    pub(super) iteration: u32,
    pub(super) registry_pod: Option<String>,
    /// Each strategy's shared daemon in this iteration, or why it did not start (its jobs fail with that reason).
    pub(super) shared: BTreeMap<Strategy, Result<RunningDaemon, KubeError>>,
    /// What each shared daemon uses over its iteration.
    pub(super) shared_meters: BTreeMap<Strategy, KubeMeter>,
    /// Builder name to the version its job's log reported, as on the docker backend.
    pub(super) builder_versions: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
    /// The local engine and the images (local name, Docker Hub name) it seeds the run's mirror with.
    pub(super) mirror_source: Option<(Docker, Vec<(String, String)>)>,
    /// The run's mirror is seeded and serving read-only.
    pub(super) mirror_ready: bool,
}

impl KubeBackend {
    /// Connects with the kubeconfig (`options.context`, or the current context), checks that every
    /// schedulable node is Ready, and creates the run's namespace.
    pub async fn connect(options: KubeOptions, run_id: &str, scenario: &str) -> Result<Self, BackendError> {
        let client = client_for(&options).await?;
        super::nodes::check(&client, options.timeouts.api).await?;
        Self::with_client(client, options, run_id, scenario).await
    }

    /// As [`KubeBackend::connect`], on a client made elsewhere (tests give a mock service).
    pub async fn with_client(
        client: Client,
        mut options: KubeOptions,
        run_id: &str,
        scenario: &str,
    ) -> Result<Self, BackendError> {
        let limit = options.timeouts.api;
        let version = tokio::time::timeout(limit, client.apiserver_version()).await;
        let apparmor = match version {
            Ok(Ok(info)) => manifests::AppArmorStyle::for_server(&info.major, &info.minor),
            Ok(Err(e)) => {
                return Err(BackendError::new(
                    "reach the Kubernetes API server",
                    format!("{}; is the cluster running? `kubectl cluster-info` checks the same context", api_error("get /version", e)),
                ))
            }
            Err(_) => {
                return Err(BackendError::new(
                    "reach the Kubernetes API server",
                    format!("no answer within {} s; check `kubectl cluster-info` for this context", limit.as_secs()),
                ))
            }
        };
        let namespace = match &options.namespace {
            Some(ns) if names::is_dns_label(ns) => ns.clone(),
            Some(ns) => {
                return Err(BackendError::new(
                    format!("use namespace {ns:?}"),
                    "it is not a valid Kubernetes name (lowercase letters, digits and '-', at most 63)",
                ))
            }
            None => names::run_namespace(run_id),
        };
        let run = RunMeta { run_id: run_id.into(), namespace: namespace.clone(), scenario: scenario.into(), apparmor };
        // A namespace given with --namespace is used as it is, never read: a namespace-scoped CI
        // account may not be allowed to. Whether it exists shows at the first create in it.
        let owns_namespace = options.namespace.is_none();
        if owns_namespace {
            let namespaces: Api<Namespace> = Api::all(client.clone());
            ensure_created(&namespaces, &manifests::namespace(&run), options.timeouts.namespace_delete)
                .await
                .map_err(|e| BackendError::new(format!("create namespace {namespace}"), e))?;
        }
        // Every daemon and builder gets the mirror, whichever kind it is.
        options.images.hub_mirror = options.hub_mirror.address();
        Ok(KubeBackend {
            client,
            options,
            run,
            owns_namespace,
            iteration: 0,
            registry_pod: None,
            shared: BTreeMap::new(),
            shared_meters: BTreeMap::new(),
            builder_versions: Default::default(),
            mirror_source: None,
            mirror_ready: false,
        })
    }

    /// The local engine that seeds the run's mirror with `mirrored` (local image, `PATH:TAG` in the mirror, see
    /// `toolchain::bases`), when the mirror is layerbench's own ([`mirror::HubMirror::Deploy`]).
    pub fn with_mirror_source(mut self, engine: Docker, mirrored: Vec<(String, String)>) -> Self {
        self.mirror_source = Some((engine, mirrored));
        self
    }

    pub fn namespace(&self) -> &str {
        &self.run.namespace
    }

    /// Builder name to the version its jobs' logs reported (`buildah` 1.28.2), for `run.json`.
    pub fn builder_versions(&self) -> std::collections::BTreeMap<String, String> {
        self.builder_versions.lock().expect("versions lock").clone()
    }

    /// Selects what this run made, and nothing of anyone else's in a shared namespace.
    pub(super) fn run_selector(&self) -> String {
        format!("{}={}", crate::RUN_ID_LABEL, names::label_value(&self.run.run_id))
    }

    pub(super) fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.run.namespace)
    }

    /// Removes everything the run made in the cluster: its namespace (waited for), or in a namespace
    /// `--namespace` named, every object carrying the run's label.
    pub async fn shutdown(&mut self) -> Result<(), BackendError> {
        if self.options.keep {
            return Ok(());
        }
        let ns = &self.run.namespace;
        if self.owns_namespace {
            let namespaces: Api<Namespace> = Api::all(self.client.clone());
            return delete(&namespaces, ns, Whose::Any, &DeleteParams::background(), Some(self.options.timeouts.namespace_delete))
                .await
                .map_err(|e| {
                    BackendError::new(
                        format!("delete namespace {ns}"),
                        format!("{e}; `kubectl get namespace {ns} -o yaml` shows what holds it, `layerbench clean --backend kube` retries"),
                    )
                });
        }
        delete_labelled(&self.client, ns, &self.run_selector(), Some(self.options.timeouts.delete))
            .await
            .map(|_| ())
            .map_err(|e| BackendError::new(format!("delete the run's objects in namespace {ns}"), e))
    }

    /// What `script` printed in `container` of `pod`; an error, with the end of its stderr, when it
    /// failed or its exit status could not be seen.
    pub(super) async fn exec_output(&self, pod: &str, container: &str, script: &str) -> Result<String, KubeError> {
        orchestrate::exec_output(&self.api(), pod, container, script, self.options.timeouts.api).await
    }
}

impl Backend for KubeBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Kube
    }

    fn repository(&self, strategy: Strategy, repository: &str) -> String {
        format!("{}/{}/{repository}", manifests::REGISTRY_HOST, strategy.name())
    }

    async fn begin_iteration(
        &mut self,
        iteration: u32,
        strategies: &[Strategy],
        events: &EventSink,
    ) -> Result<Vec<ServiceStart>, BackendError> {
        self.iteration = iteration;
        self.registry_pod = None;
        self.shared.clear();
        self.shared_meters.clear();
        if self.options.hub_mirror == mirror::HubMirror::Deploy && !self.mirror_ready {
            self.start_mirror(events).await?;
            self.mirror_ready = true;
        }
        self.remove_iteration_services(strategies, true)
            .await
            .map_err(|e| BackendError::new(format!("remove the services of the previous iteration in {}", self.run.namespace), e))?;
        self.create_daemon_configs(strategies)
            .await
            .map_err(|e| BackendError::new(format!("create the daemons' configuration in {}", self.run.namespace), e))?;

        events.setup(format!("starting the registry in namespace {} (iteration {iteration})", self.run.namespace));
        let limit = self.options.timeouts.delete;
        let registry = manifests::registry(&self.run, &self.options.images, iteration);
        let registry_started = async {
            ensure_created(&self.api(), &registry.config, limit).await?;
            ensure_created(&self.api(), &registry.deployment, limit).await?;
            ensure_created(&self.api(), &registry.service, limit).await?;
            self.wait_deployment_pod(manifests::REGISTRY_NAME, &self.run.selector_string(manifests::REGISTRY_NAME), iteration).await
        };
        let pod = registry_started
            .await
            .map_err(|e| BackendError::new(format!("start the registry in namespace {}", self.run.namespace), e))?;
        self.registry_pod = Some(pod);

        let mut started = vec![];
        for &strategy in strategies {
            let Daemon::Shared(kind) = strategy.daemon else { continue };
            let service = builder::daemon(kind).service_name;
            events.setup(format!("starting the shared {service} service for {strategy} (iteration {iteration})"));
            let clock = Instant::now();
            let daemon = self.start_shared_daemon(strategy, kind, iteration).await;
            match &daemon {
                Ok(running) => {
                    started.push(ServiceStart { strategy, service: service.into(), startup_ms: crate::millis(clock.elapsed()) });
                    let mut meter = KubeMeter::new(self.api(), ITERATION_LIMIT);
                    meter.watch(&running.pod, service, UsageOf::Own);
                    self.shared_meters.insert(strategy, meter);
                }
                Err(e) => events.notice(format!("the shared {service} service did not start, so {strategy} jobs fail: {e}")),
            }
            self.shared.insert(strategy, daemon);
        }
        Ok(started)
    }

    async fn run_job(&self, job: &JobSpec<'_>, events: &EventSink) -> JobOutcome {
        let mut outcome = JobOutcome::default();
        // The registry's start mark is bookkeeping too: its exec is no part of the CI job.
        outcome.enter(Phase::Measure);
        let mark = self.registry_mark().await;
        self.run_job_pods(job, events, &mut outcome).await;
        // layerbench's own bookkeeping, as on the docker backend: no CI job has it.
        outcome.enter(Phase::Measure);
        outcome.record_own_traffic(job.lane, self.registry_traffic(mark)).await;
        if let (None, Some(image)) = (&outcome.error, job.plan.image()) {
            outcome.record_image(self.image_bytes(image).await);
        }
        outcome.end_phase();
        outcome
    }

    async fn cache_state(&self, strategy: Strategy) -> CacheState {
        let mut state = CacheState::default();
        if let Some(pod) = &self.registry_pod {
            let out = self.exec_output(pod, manifests::REGISTRY_NAME, &storage_script(strategy.name())).await;
            state.registry_bytes = state.storage_from(out);
        }
        if let Some(Ok(daemon)) = self.shared.get(&strategy) {
            let home = builder::daemon(daemon.kind);
            let out = self.exec_output(&daemon.pod, home.service_name, &format!("du -sb {}", home.state_dir)).await;
            state.daemon_volume_bytes = state.size_from("the shared daemon's volume size", out);
        }
        state
    }

    async fn end_iteration(&mut self, iteration: u32) -> Result<Vec<ServiceEnd>, BackendError> {
        self.registry_pod = None;
        let mut ends = vec![];
        for (strategy, meter) in std::mem::take(&mut self.shared_meters) {
            let (usage, unmeasured) = meter.finish().await;
            ends.push(ServiceEnd { strategy, usage, unmeasured });
        }
        let owners: Vec<Strategy> = std::mem::take(&mut self.shared).into_keys().collect();
        if self.options.keep {
            return Ok(ends);
        }
        // Not waited for: the next iteration waits for the names to be free, the last one's
        // namespace deletion takes them along.
        self.remove_iteration_services(&owners, false)
            .await
            .map_err(|e| BackendError::new(format!("remove the services of iteration {iteration}"), e))?;
        Ok(ends)
    }
}
