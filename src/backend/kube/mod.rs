//! The Kubernetes backend: each CI job is a pod in a per-run namespace.
//!
//! Layout of a run on the cluster (every object labelled `layerbench.run-id=<id>`):
//! - one namespace per run (or the one `--namespace` names);
//! - `registry`: Deployment and Service, replaced at each iteration so caches start empty;
//! - dind strategies: one pod per job with a privileged dind container; layerbench drives its API
//!   through a port-forward with bollard, exactly as on the docker backend;
//! - `shared-dind`: a Deployment with a PVC on `/var/lib/docker`, a Service on 2375 and a
//!   NetworkPolicy admitting only the run's job pods;
//! - daemonless: one pod per job; its build context arrives in ConfigMaps (see docs/kubernetes.md).

mod follow;
pub mod forward;
pub mod manifests;
pub mod mirror;
pub mod names;
pub mod orchestrate;

#[cfg(test)]
mod mock;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use bollard::{Docker, API_DEFAULT_VERSION};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent, Namespace, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, ListParams};
use kube::config::KubeConfigOptions;
use kube::{Api, Client, Config, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use self::forward::LocalForward;
use self::manifests::{JobMeta, Object, RunMeta};
use self::orchestrate::{api_error, delete, delete_owned, ensure_created, wait_pod, wait_selected_pod, KubeError, PodStage};
use crate::backend::{Backend, BackendError, CacheState, JobError, JobOutcome, JobSpec, ServiceStart};
use crate::builder::{JobCommand, JobLog};
use crate::events::{Event, EventSink};
use crate::registry::{blob_sizes_script, storage_script, Traffic};
use crate::scenario::Scenario;
use crate::strategy::{Daemon, DaemonKind, DaemonlessBuilder, Op, Phase, PlanInput, StrategyKind};

/// Whether the kube backend runs `kind`. It has one shared daemon per iteration and drives it with the classic
/// builder only: a BuildKit job there would share shared-dind's daemon and cache, and it has no standalone
/// buildkitd yet, so the BuildKit strategies are refused (by the CLI, before a run starts).
pub fn runs_on_kube(kind: StrategyKind) -> bool {
    let strategy = kind.strategy();
    let buildkit_job = matches!(strategy.job_builder(), Some(DaemonlessBuilder::Buildx | DaemonlessBuilder::Buildctl));
    !buildkit_job && strategy.daemon().kind() != Some(DaemonKind::Buildkit)
}

/// The strategies the kube backend runs, in [`StrategyKind::ALL`]'s order.
pub fn kube_strategies() -> Vec<StrategyKind> {
    StrategyKind::ALL.into_iter().filter(|k| runs_on_kube(*k)).collect()
}

/// Why a standalone-buildkitd strategy is refused here (the CLI refuses it before a run starts).
const BUILDKITD_NOT_YET: &str = "the standalone BuildKit strategies do not run on the kube backend yet";

/// Images the cluster runs. The cluster pulls them itself: load them into it when it is offline.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeImages {
    pub dind: String,
    pub registry: String,
    pub buildah: String,
    /// `None` when there is no kaniko image: kaniko jobs then fail and say so.
    pub kaniko: Option<String>,
    /// Needs `sh` and `tar`: unpacks daemonless build contexts and stands in for a CI job container.
    pub helper: String,
    /// A plain-HTTP registry (`host:port`) that mirrors Docker Hub for the images Dockerfiles
    /// start `FROM`, for clusters that cannot reach Docker Hub. Reachable from the pods.
    pub hub_mirror: Option<String>,
}

impl Default for KubeImages {
    fn default() -> Self {
        let official = crate::toolchain::ToolchainConfig::default();
        KubeImages {
            helper: official.dind.clone(),
            dind: official.dind,
            registry: official.registry,
            buildah: official.buildah,
            kaniko: Some(official.kaniko),
            hub_mirror: None,
        }
    }
}

impl KubeImages {
    /// The images the local engine resolved: official names or layerbench's stand-ins, which is
    /// what `kind load docker-image` copies into a kind cluster.
    pub fn from_toolchain(toolchain: &crate::toolchain::Toolchain) -> Self {
        // The session always resolves dind for this backend: its helper pods run the dind image.
        let dind = toolchain.dind.as_ref().map(|i| i.name.clone()).unwrap_or_default();
        KubeImages {
            helper: dind.clone(),
            dind,
            registry: toolchain.registry.name.clone(),
            buildah: toolchain.buildah.as_ref().map(|i| i.name.clone()).unwrap_or_default(),
            kaniko: toolchain.kaniko.as_ref().map(|k| k.name.clone()),
            hub_mirror: None,
        }
    }
}

/// Bounds of every wait; each failure names the one that ran out.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeTimeouts {
    pub api: Duration,
    pub schedule: Duration,
    /// Image pulls happen here: generous for a cold node.
    pub start: Duration,
    pub ready: Duration,
    /// One job from pod creation to its end; also the pod's `activeDeadlineSeconds`.
    pub job: Duration,
    pub delete: Duration,
    /// Namespaces delete everything in them first.
    pub namespace_delete: Duration,
}

impl Default for KubeTimeouts {
    fn default() -> Self {
        KubeTimeouts {
            api: Duration::from_secs(15),
            schedule: Duration::from_secs(60),
            start: Duration::from_secs(300),
            ready: Duration::from_secs(120),
            job: Duration::from_secs(1800),
            delete: Duration::from_secs(120),
            namespace_delete: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct KubeOptions {
    /// kubeconfig context; the current context when `None`.
    pub context: Option<String>,
    /// Namespace to run in; a new `layerbench-<run id>` when `None`.
    pub namespace: Option<String>,
    pub images: KubeImages,
    /// Keep the namespace and job pods for debugging.
    pub keep: bool,
    /// Storage class of the shared daemon's volume; the cluster default when `None`.
    pub storage_class: Option<String>,
    /// Size requested for the shared daemon's `/var/lib/docker`, as a Kubernetes quantity.
    pub shared_dind_storage: String,
    /// Where the builders' Docker Hub mirror comes from (see [`mirror`]).
    pub hub_mirror: mirror::HubMirror,
    pub timeouts: KubeTimeouts,
}

impl Default for KubeOptions {
    fn default() -> Self {
        KubeOptions {
            context: None,
            namespace: None,
            images: KubeImages::default(),
            keep: false,
            storage_class: None,
            shared_dind_storage: "20Gi".into(),
            hub_mirror: mirror::HubMirror::Deploy,
            timeouts: KubeTimeouts::default(),
        }
    }
}

/// Run id of objects printed by `layerbench manifests`; a real run labels with its own id.
pub const MANIFESTS_RUN_ID: &str = "manifests";

/// Everything the kube backend would apply for `strategy`, as multi-document YAML for
/// `kubectl apply -f`: the namespace, the registry, and the objects of the first job.
pub fn manifests_yaml(
    scenario: &Scenario,
    strategy: StrategyKind,
    options: &KubeOptions,
) -> Result<String, BackendError> {
    if let Some(ns) = options.namespace.as_deref().filter(|ns| !names::is_dns_label(ns)) {
        return Err(BackendError::new(
            format!("use namespace {ns:?}"),
            "it is not a valid Kubernetes name (lowercase letters, digits and '-', at most 63)",
        ));
    }
    let run = RunMeta {
        run_id: MANIFESTS_RUN_ID.into(),
        namespace: options
            .namespace
            .clone()
            .unwrap_or_else(|| names::run_namespace(&format!("{MANIFESTS_RUN_ID}-{}", scenario.name))),
        scenario: scenario.name.clone(),
        // What current clusters read; servers older than 1.30 need the annotation instead.
        apparmor: manifests::AppArmorStyle::Field,
    };
    let repository = format!("{}/{}/{}", manifests::REGISTRY_HOST, strategy.name(), scenario.repository);
    let first_run = scenario.pipeline.first().map(|p| p.name.as_str()).unwrap_or("first");
    // The tag the runner gives the first pipeline run's job.
    let commit_tag = format!("c1-{first_run}");
    let plan = strategy.strategy().plan(&PlanInput {
        repository: &repository,
        commit_tag: &commit_tag,
        dockerfile: &scenario.dockerfile,
    });
    let job = JobMeta { name: names::job_name(1, 0, strategy.name()), iteration: 1, pipeline_run: first_run, strategy: strategy.name() };
    let timeout_s = options.timeouts.job.as_secs();

    let mut objects = vec![];
    if options.namespace.is_none() {
        objects.push(Object::Namespace(manifests::namespace(&run)));
    }
    let registry = manifests::registry(&run, &options.images, 1);
    objects.extend([
        Object::ConfigMap(registry.config),
        Object::Deployment(registry.deployment),
        Object::Service(registry.service),
    ]);
    let mut notes = vec![
        format!("layerbench manifests: scenario {}, strategy {strategy}", scenario.name),
        format!("{}", strategy.strategy().privileges().summary()),
        format!("Objects carry {}={MANIFESTS_RUN_ID}; a run labels them with its own run id.", crate::RUN_ID_LABEL),
    ];
    match plan.daemon {
        Daemon::Fresh(DaemonKind::Buildkit) | Daemon::Shared(DaemonKind::Buildkit) => {
            return Err(BackendError::new(format!("print manifests for {strategy}"), BUILDKITD_NOT_YET));
        }
        Daemon::Fresh(DaemonKind::Docker) => {
            objects.push(Object::Pod(manifests::dind_job_pod(&run, &options.images, &job, timeout_s)));
            notes.push("Each job gets a pod like the one below; layerbench drives its daemon through a \
                        port-forward, uploading the build context with the Docker API. The job's script:"
                .into());
        }
        Daemon::Shared(DaemonKind::Docker) => {
            let shared = manifests::shared_dind(&run, options, 1);
            objects.extend([
                Object::PersistentVolumeClaim(shared.claim),
                Object::Deployment(shared.deployment),
                Object::Service(shared.service),
                Object::NetworkPolicy(shared.policy),
            ]);
            notes.push(
                "WARNING: an unauthenticated Docker daemon is root on its node for anyone who can reach \
                 port 2375; the NetworkPolicy below admits only this run's job pods, and only works \
                 where the cluster's network plugin enforces NetworkPolicies. Each job runs, with \
                 DOCKER_HOST=tcp://dind:2375:"
                    .into(),
            );
        }
        Daemon::None => {
            let Some(op) = plan.ops.first() else {
                return Err(BackendError::new(format!("plan a {strategy} job"), "the plan has no build"));
            };
            let Op::JobBuild(request) = op else {
                return Err(BackendError::new(format!("plan a {strategy} job"), "a daemonless job has one job build"));
            };
            let image_missing = request.builder == DaemonlessBuilder::Kaniko && options.images.kaniko.is_none();
            if image_missing {
                return Err(BackendError::new(
                    format!("print manifests for {strategy}"),
                    "no kaniko image is configured; name one in the toolchain configuration",
                ));
            }
            let tar = crate::scenario::context::tar_context(&scenario.context)
                .map_err(|e| BackendError::new("pack the build context", e))?;
            let parts = manifests::context_config_maps(&run, &job.name, &tar)
                .map_err(|e| BackendError::new(format!("carry the build context of {}", scenario.name), e))?;
            let pod = manifests::daemonless_job_pod(
                &run,
                &options.images,
                &job,
                request,
                &scenario.dockerfile_path,
                &parts,
                timeout_s,
            );
            objects.extend(parts.into_iter().map(Object::ConfigMap));
            objects.push(Object::Pod(pod));
            notes.push("The build context travels in the ConfigMaps below; the job pod builds and pushes:".into());
        }
    }
    notes.extend(plan.ops.iter().map(|op| format!("  {}", manifests::op_as_command(op, &scenario.dockerfile_path, &options.images))));

    // A note may be a multi-line script: every line stays a YAML comment.
    let mut yaml: String = notes.iter().flat_map(|n| n.lines()).map(|line| format!("# {line}\n")).collect();
    for object in &objects {
        let doc = serde_yaml::to_string(object)
            .map_err(|e| BackendError::new("print the manifests as YAML", e))?;
        yaml.push_str("---\n");
        yaml.push_str(&doc);
    }
    Ok(yaml)
}

/// Runs jobs as pods in one namespace of a cluster. Owns everything it creates there.
pub struct KubeBackend {
    client: Client,
    options: KubeOptions,
    run: RunMeta,
    /// The namespace was created by this run, so deleting it removes exactly what the run made.
    owns_namespace: bool,
    iteration: u32,
    registry_pod: Option<String>,
    /// The shared daemon's pod, or why it did not start (its jobs fail with that reason).
    shared_dind: Option<Result<String, String>>,
    /// Builder name to the version its job's log reported, as on the docker backend.
    builder_versions: std::collections::BTreeMap<String, String>,
    /// The local engine and the images (local name, Docker Hub name) it seeds the run's mirror with.
    mirror_source: Option<(Docker, Vec<(String, String)>)>,
    /// The run's mirror is seeded and serving read-only.
    mirror_ready: bool,
}

impl KubeBackend {
    /// Connects with the kubeconfig (`options.context`, or the current context) and creates the
    /// run's namespace.
    pub async fn connect(options: KubeOptions, run_id: &str, scenario: &str) -> Result<Self, BackendError> {
        let client = client_for(&options).await?;
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
            shared_dind: None,
            builder_versions: Default::default(),
            mirror_source: None,
            mirror_ready: false,
        })
    }

    /// The local engine that seeds the run's Docker Hub mirror with `mirrored` (local image, Docker Hub
    /// name), when the mirror is layerbench's own ([`mirror::HubMirror::Deploy`]).
    pub fn with_mirror_source(mut self, engine: Docker, mirrored: Vec<(String, String)>) -> Self {
        self.mirror_source = Some((engine, mirrored));
        self
    }

    /// Deploys the run's mirror, seeds it from the local engine through a port-forward, and restarts it
    /// read-only on the same volume.
    async fn start_mirror(&self, events: &EventSink) -> Result<(), BackendError> {
        let fail = |action: &str| {
            let action = format!("{action} (the run's Docker Hub mirror in {})", self.run.namespace);
            move |e: KubeError| BackendError::new(action, e)
        };
        let Some((engine, mirrored)) = &self.mirror_source else {
            return Err(BackendError::new(
                "seed the run's Docker Hub mirror",
                "no local engine was given to seed it from; pass --hub-mirror HOST:PORT or --hub-mirror none",
            ));
        };
        events.setup(format!("starting the Docker Hub mirror in namespace {} and seeding it with the base images", self.run.namespace));
        let limit = self.options.timeouts.delete;
        let storage_class = self.options.storage_class.as_deref();
        let seeding = mirror::objects(&self.run, &self.options.images, storage_class, false);
        ensure_created(&self.api(), &seeding.config, limit).await.map_err(fail("create its configuration"))?;
        self.check_storage_class(mirror::MIRROR_PVC).await.map_err(fail("create its volume claim"))?;
        ensure_created(&self.api(), &seeding.claim, limit).await.map_err(fail("create its volume claim"))?;
        ensure_created(&self.api(), &seeding.service, limit).await.map_err(fail("create its service"))?;
        ensure_created(&self.api(), &seeding.deployment, limit).await.map_err(fail("create its deployment"))?;
        let pod = self.wait_deployment_pod(mirror::COMPONENT, 0).await.map_err(fail("start it"))?;
        {
            let forward = LocalForward::to_pod(self.api(), pod.clone(), manifests::REGISTRY_PORT as u16)
                .await
                .map_err(|e| BackendError::new(format!("listen for a port-forward to the mirror pod {pod}"), e))?;
            // The engine pushes plain HTTP to a loopback registry.
            let address = forward.addr().to_string();
            crate::backend::docker::push_to_mirror(engine, &address, mirrored, events).await?;
        }
        // Serving: the same claim, Distribution's read-only mode.
        let ours = self.run_selector();
        delete_owned(&self.api::<Deployment>(), mirror::MIRROR_NAME, &ours, &DeleteParams::foreground(), Some(limit))
            .await
            .map_err(fail("stop the seeding registry"))?;
        let serving = mirror::objects(&self.run, &self.options.images, storage_class, true);
        ensure_created(&self.api(), &serving.deployment, limit).await.map_err(fail("create its read-only deployment"))?;
        self.wait_deployment_pod(mirror::COMPONENT, 1).await.map_err(fail("restart it read-only"))?;
        Ok(())
    }

    pub fn namespace(&self) -> &str {
        &self.run.namespace
    }

    /// Builder name to the version its jobs' logs reported (`buildah` 1.28.2), for `run.json`.
    pub fn builder_versions(&self) -> &std::collections::BTreeMap<String, String> {
        &self.builder_versions
    }

    /// Selects what this run made, and nothing of anyone else's in a shared namespace.
    fn run_selector(&self) -> String {
        format!("{}={}", crate::RUN_ID_LABEL, names::label_value(&self.run.run_id))
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.run.namespace)
    }

    /// Removes the registry and the shared daemon; with `wait`, until they are gone, so that
    /// the next iteration's objects of the same names start empty.
    async fn remove_iteration_services(&self, wait: bool) -> Result<(), KubeError> {
        let limit = wait.then_some(self.options.timeouts.delete);
        let ours = self.run_selector();
        // Foreground: the Deployment is gone only once its pods are, which frees the PVC.
        let cascade = DeleteParams::foreground();
        let plain = DeleteParams::default();
        for name in [manifests::REGISTRY_NAME, manifests::SHARED_DIND_NAME] {
            delete_owned(&self.api::<Deployment>(), name, &ours, &cascade, limit).await?;
            delete_owned(&self.api::<Service>(), name, &ours, &plain, limit).await?;
        }
        delete_owned(&self.api::<NetworkPolicy>(), manifests::SHARED_DIND_POLICY, &ours, &plain, limit).await?;
        delete_owned(&self.api::<PersistentVolumeClaim>(), manifests::SHARED_DIND_PVC, &ours, &plain, limit).await
    }

    /// Waits for this iteration's pod of a Deployment, stage by stage; returns its name.
    async fn wait_deployment_pod(&self, component: &str, iteration: u32) -> Result<String, KubeError> {
        let t = &self.options.timeouts;
        let pods = self.api::<Pod>();
        let selector = format!("{},{}={iteration}", self.run.selector_string(component), manifests::ITERATION_LABEL);
        let what = format!("a {component} pod to be scheduled");
        let pod = match wait_selected_pod(&pods, &selector, &what, PodStage::Scheduled, t.schedule).await {
            Err(KubeError::Timeout { what, seconds, state }) => {
                // No pod at all usually means admission refused it; the Deployment says why.
                let refused = self.api::<Deployment>().get_opt(component).await.ok().flatten().and_then(|d| {
                    let conditions = d.status?.conditions?;
                    let failure = conditions.into_iter().find(|c| c.type_ == "ReplicaFailure" && c.status == "True")?;
                    let message = failure.message.unwrap_or_default();
                    let hint = orchestrate::pod_security_hint(&self.run.namespace, &message).map(|h| format!("; {h}"));
                    Some(format!(" ({}: {message}{})", failure.reason.unwrap_or_default(), hint.unwrap_or_default()))
                });
                return Err(KubeError::Timeout { what, seconds, state: refused.unwrap_or(state) });
            }
            other => other?,
        };
        let name = pod.name_any();
        wait_pod(&pods, &name, PodStage::Running, t.start).await?;
        wait_pod(&pods, &name, PodStage::Ready, t.ready).await?;
        Ok(name)
    }

    async fn start_shared_dind(&self, iteration: u32) -> Result<String, KubeError> {
        let limit = self.options.timeouts.delete;
        let shared = manifests::shared_dind(&self.run, &self.options, iteration);
        self.check_storage_class(manifests::SHARED_DIND_PVC).await?;
        ensure_created(&self.api(), &shared.claim, limit).await?;
        ensure_created(&self.api(), &shared.policy, limit).await?;
        ensure_created(&self.api(), &shared.service, limit).await?;
        ensure_created(&self.api(), &shared.deployment, limit).await?;
        match self.wait_deployment_pod("dind", iteration).await {
            // A pod waiting for its volume says only that the claim is unbound; the claim says why.
            Err(KubeError::Timeout { what, seconds, mut state }) => {
                state.push_str(&self.claim_state(manifests::SHARED_DIND_PVC).await.unwrap_or_default());
                Err(KubeError::Timeout { what, seconds, state })
            }
            other => other,
        }
    }

    /// Without `--storage-class`, a claim gets the cluster's default StorageClass, and stays Pending
    /// without a word where there is none: refuse `claim` at once then. An account that may not
    /// list StorageClasses (they are cluster-wide) skips the check; a Pending claim then shows in
    /// the wait's timeout.
    async fn check_storage_class(&self, claim: &str) -> Result<(), KubeError> {
        if self.options.storage_class.is_some() {
            return Ok(());
        }
        let classes: Api<StorageClass> = Api::all(self.client.clone());
        let Ok(classes) = classes.list(&ListParams::default()).await else { return Ok(()) };
        let is_default = |class: &StorageClass| {
            let annotations = class.annotations();
            ["storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class"]
                .iter()
                .any(|key| annotations.get(*key).map(String::as_str) == Some("true"))
        };
        if classes.items.iter().any(is_default) {
            return Ok(());
        }
        let names: Vec<String> = classes.items.iter().map(|c| c.name_any()).collect();
        let there = if names.is_empty() { "it has none".to_string() } else { format!("it has {}", names.join(", ")) };
        Err(KubeError::Api {
            action: format!("create PersistentVolumeClaim {claim}"),
            message: format!(
                "no default StorageClass; pass --storage-class NAME ({there}; `kubectl get storageclass` lists them)"
            ),
        })
    }

    /// ` (PersistentVolumeClaim NAME is Pending: its latest events)` while `name` is not bound.
    async fn claim_state(&self, name: &str) -> Option<String> {
        let claim = self.api::<PersistentVolumeClaim>().get_opt(name).await.ok()??;
        let phase = match claim.status.and_then(|s| s.phase) {
            Some(phase) if phase == "Bound" => return None,
            Some(phase) => phase,
            // Not guessed: a claim the API server gave no phase yet is said to have none.
            None => "without a phase yet".into(),
        };
        let selector = format!("involvedObject.kind=PersistentVolumeClaim,involvedObject.name={name}");
        let events = self.api::<CoreEvent>().list(&ListParams::default().fields(&selector)).await.ok();
        let said: Vec<String> = events
            .map(|list| list.items)
            .unwrap_or_default()
            .iter()
            .rev()
            .take(3)
            .map(|e| format!("{}: {}", e.reason.as_deref().unwrap_or("event"), e.message.as_deref().unwrap_or("").trim()))
            .collect();
        let said = if said.is_empty() { String::new() } else { format!(": {}", said.join("; ")) };
        Some(format!(" (PersistentVolumeClaim {name} is {phase}{said})"))
    }

    /// How many lines the registry's log file has: the mark where a job's traffic starts.
    async fn registry_mark(&self) -> Result<u64, String> {
        let pod = self.registry_pod.as_ref().ok_or("the registry is not running")?;
        let out = self.exec_output(pod, manifests::REGISTRY_NAME, &manifests::access_log_lines_script()).await.map_err(|e| e.to_string())?;
        out.trim().parse().map_err(|_| format!("counting its lines printed `{}`", out.trim()))
    }

    /// The registry's traffic since `mark`, from the lines its log file gained; the sizes of the
    /// blobs uploaded from its blob store.
    async fn registry_traffic(&self, mark: Result<u64, String>) -> Result<Traffic, String> {
        let pod = self.registry_pod.as_ref().ok_or("the registry is not running")?;
        let lines = self
            .exec_output(pod, manifests::REGISTRY_NAME, &manifests::access_log_since_script(mark?))
            .await
            .map_err(|e| e.to_string())?;
        // Jobs run one at a time, so the lines this job added are its traffic.
        let traffic = Traffic::from_access_log(lines.lines());
        if traffic.uploaded.is_empty() {
            return Ok(traffic);
        }
        let sizes = self.exec_output(pod, manifests::REGISTRY_NAME, &blob_sizes_script(&traffic.uploaded)).await;
        Ok(traffic.with_blob_sizes(sizes))
    }

    /// What `script` printed in `container` of `pod`; an error, with the end of its stderr, when it
    /// failed or its exit status could not be seen.
    async fn exec_output(&self, pod: &str, container: &str, script: &str) -> Result<String, KubeError> {
        orchestrate::exec_output(&self.api(), pod, container, script, self.options.timeouts.api).await
    }

    /// Deletes a job's pod and context ConfigMaps without waiting: the namespace's deletion is
    /// the backstop, and nothing reuses their names.
    async fn remove_job_objects(&self, pod: &str, config_maps: &[ConfigMap]) {
        if self.options.keep {
            return;
        }
        let ours = self.run_selector();
        let _ = delete_owned(&self.api::<Pod>(), pod, &ours, &DeleteParams::default(), None).await;
        for cm in config_maps {
            let _ = delete_owned(&self.api::<ConfigMap>(), &cm.name_any(), &ours, &DeleteParams::default(), None).await;
        }
    }

    fn job_meta<'a>(&self, job: &'a JobSpec<'_>) -> JobMeta<'a> {
        JobMeta {
            name: names::job_name(job.iteration, job.pipeline_index, job.strategy.name()),
            iteration: job.iteration,
            pipeline_run: &job.pipeline_run.name,
            strategy: job.strategy.name(),
        }
    }

    async fn run_fresh_dind(&self, job: &JobSpec<'_>, events: &EventSink, outcome: &mut JobOutcome) -> Result<(), JobError> {
        let meta = self.job_meta(job);
        let pod = manifests::dind_job_pod(&self.run, &self.options.images, &meta, self.options.timeouts.job.as_secs());
        events.emit(Event::PhaseStarted { phase: Phase::Provision, detail: format!("pod {}", meta.name) });
        outcome.enter(Phase::Provision);
        let started = self.start_job_pod(&pod, &[PodStage::Scheduled, PodStage::Running, PodStage::Ready]).await;
        let result = match started {
            Ok(()) => self.drive_daemon(&meta.name, job, events, outcome).await,
            Err(e) => Err(e.to_string().into()),
        };
        outcome.enter(Phase::Teardown);
        self.remove_job_objects(&meta.name, &[]).await;
        result
    }

    async fn run_shared_dind(&self, job: &JobSpec<'_>, events: &EventSink, outcome: &mut JobOutcome) -> Result<(), JobError> {
        match &self.shared_dind {
            Some(Ok(pod)) => {
                // Reaching the shared daemon (the port-forward) is this job's provisioning.
                events.emit(Event::PhaseStarted { phase: Phase::Provision, detail: format!("pod {pod}") });
                outcome.enter(Phase::Provision);
                self.drive_daemon(pod, job, events, outcome).await
            }
            Some(Err(reason)) => Err(format!("the shared dind service did not start: {reason}").into()),
            None => Err(format!("no shared dind service was started for {} in this iteration", job.strategy).into()),
        }
    }

    async fn start_job_pod(&self, pod: &Pod, stages: &[PodStage]) -> Result<(), KubeError> {
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

    /// Hands the dind daemon in `pod` to the docker backend's op executor through a local port.
    async fn drive_daemon(&self, pod: &str, job: &JobSpec<'_>, events: &EventSink, outcome: &mut JobOutcome) -> Result<(), JobError> {
        let forward = LocalForward::to_pod(self.api(), pod.to_string(), manifests::DIND_PORT)
            .await
            .map_err(|e| format!("listen for a port-forward to pod {pod}: {e}"))?;
        let driven = async {
            let docker = Docker::connect_with_http(&forward.url(), self.options.timeouts.job.as_secs(), API_DEFAULT_VERSION)
                .map_err(|e| format!("connect to the dind daemon of pod {pod} through {}: {e}", forward.url()))?;
            // dind images carry older daemons than bollard's default API version.
            let docker = docker
                .negotiate_version()
                .await
                .map_err(|e| format!("agree an API version with the dind daemon of pod {pod}: {e}"))?;
            run_docker_ops(&docker, job, events, outcome).await
        };
        match driven.await {
            // The builder's own failure: the connection was fine.
            Err(e) if e.kind == crate::results::FailureKind::Build => Err(e),
            // bollard only saw a connection close; the port-forward and the pod say why.
            Err(mut e) => {
                if let Some(reason) = forward.failure(Duration::from_secs(2)).await {
                    e.message.push_str(&format!("; {reason}"));
                }
                if let Ok(Some(now)) = self.api::<Pod>().get_opt(pod).await {
                    if let Some(crash) = orchestrate::crashed(&now) {
                        e.message.push_str(&format!("; pod {pod}: {crash}"));
                    }
                }
                Err(e)
            }
            Ok(()) => Ok(()),
        }
    }

    async fn run_daemonless(&mut self, job: &JobSpec<'_>, events: &EventSink, outcome: &mut JobOutcome) -> Result<(), JobError> {
        let meta = self.job_meta(job);
        let Some(Op::JobBuild(request)) = job.plan.ops.first() else {
            return Err(format!("a {} job has no daemonless build to run", job.strategy).into());
        };
        let builder = request.builder;
        match builder {
            DaemonlessBuilder::Kaniko if self.options.images.kaniko.is_none() => {
                return Err(JobError::infrastructure("no kaniko image is available; name one in the toolchain configuration"))
            }
            DaemonlessBuilder::Buildx | DaemonlessBuilder::Buildctl => {
                return Err(JobError::infrastructure("BuildKit strategies do not run on the kube backend yet"))
            }
            _ => {}
        }
        // The same job command as on the docker backend (crate::builder), with this cluster's endpoints.
        let command = manifests::builder_command(request, job.dockerfile_path, &self.options.images);
        events.emit(Event::PhaseStarted { phase: Phase::Provision, detail: format!("pod {}", meta.name) });
        outcome.enter(Phase::Provision);
        let tar = crate::scenario::context::tar_context(job.context).map_err(|e| format!("pack the build context: {e}"))?;
        let parts = manifests::context_config_maps(&self.run, &meta.name, &tar)?;
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
                events.emit(Event::PhaseStarted { phase: Phase::Build, detail: format!("{builder:?} in pod {}", meta.name).to_lowercase() });
                self.follow_build(&meta.name, builder, &command, job, events, outcome).await
            }
            Err(e) => Err(e.to_string().into()),
        };
        outcome.enter(Phase::Teardown);
        self.remove_job_objects(&meta.name, &parts).await;
        result
    }

    /// Reads the build container's log through the builder's job log (phase marks, version, steps)
    /// until the container exits; a log known incomplete fails the job.
    async fn follow_build(
        &mut self,
        pod: &str,
        builder: DaemonlessBuilder,
        command: &JobCommand,
        job: &JobSpec<'_>,
        events: &EventSink,
        outcome: &mut JobOutcome,
    ) -> Result<(), JobError> {
        let pods = self.api::<Pod>();
        let deadline = tokio::time::Instant::now() + self.options.timeouts.job;
        let mut log = JobLog::start(command, job.dockerfile, outcome);
        let mut current_step = 0;
        let mut versions = vec![];
        let followed = follow::follow_log(&pods, pod, manifests::BUILD_CONTAINER, deadline, |line| {
            versions.extend(log.push(line, outcome));
            crate::backend::docker::ops::announce_step(log.parser(), job, &mut current_step, events);
        })
        .await;
        for (name, version) in versions {
            self.builder_versions.entry(name.to_string()).or_insert(version);
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
            .map_err(|e| e.to_string())?;
        match orchestrate::exit_of(&exited, manifests::BUILD_CONTAINER) {
            Some((0, _)) => Ok(()),
            Some((code, message)) => Err(finished.exit_failure(builder, code.into(), job.dockerfile.total_steps(), Some(&message))),
            None => Err(format!("the build container of pod {pod} reported no exit status").into()),
        }
    }
}

/// The one place a dind daemon is handed to the docker backend's op executor.
async fn run_docker_ops(docker: &Docker, job: &JobSpec<'_>, events: &EventSink, outcome: &mut JobOutcome) -> Result<(), JobError> {
    crate::backend::docker::ops::run_ops(docker, job, events, outcome).await
}

impl Backend for KubeBackend {
    fn name(&self) -> &'static str {
        "kube"
    }

    fn repository(&self, strategy: StrategyKind, repository: &str) -> String {
        format!("{}/{}/{repository}", manifests::REGISTRY_HOST, strategy.name())
    }

    async fn begin_iteration(
        &mut self,
        iteration: u32,
        strategies: &[StrategyKind],
        events: &EventSink,
    ) -> Result<Vec<ServiceStart>, BackendError> {
        self.iteration = iteration;
        self.registry_pod = None;
        self.shared_dind = None;
        if self.options.hub_mirror == mirror::HubMirror::Deploy && !self.mirror_ready {
            self.start_mirror(events).await?;
            self.mirror_ready = true;
        }
        self.remove_iteration_services(true)
            .await
            .map_err(|e| BackendError::new(format!("remove the services of the previous iteration in {}", self.run.namespace), e))?;

        events.setup(format!("starting the registry in namespace {} (iteration {iteration})", self.run.namespace));
        let limit = self.options.timeouts.delete;
        let registry = manifests::registry(&self.run, &self.options.images, iteration);
        let registry_started = async {
            ensure_created(&self.api(), &registry.config, limit).await?;
            ensure_created(&self.api(), &registry.deployment, limit).await?;
            ensure_created(&self.api(), &registry.service, limit).await?;
            self.wait_deployment_pod("registry", iteration).await
        };
        let pod = registry_started
            .await
            .map_err(|e| BackendError::new(format!("start the registry in namespace {}", self.run.namespace), e))?;
        self.registry_pod = Some(pod);

        let mut started = vec![];
        for &strategy in strategies {
            if strategy.strategy().daemon() != Daemon::Shared(DaemonKind::Docker) {
                continue;
            }
            events.setup(format!("starting the shared dind service for {strategy} (iteration {iteration})"));
            let clock = Instant::now();
            match self.start_shared_dind(iteration).await {
                Ok(pod) => {
                    started.push(ServiceStart {
                        strategy,
                        service: manifests::SHARED_DIND_NAME.into(),
                        startup_ms: crate::millis(clock.elapsed()),
                    });
                    self.shared_dind = Some(Ok(pod));
                }
                Err(e) => {
                    events.notice(format!("the shared dind service did not start, so {strategy} jobs fail: {e}"));
                    self.shared_dind = Some(Err(e.to_string()));
                }
            }
        }
        Ok(started)
    }

    async fn run_job(&mut self, job: &JobSpec<'_>, events: &EventSink) -> JobOutcome {
        let mut outcome = JobOutcome::default();
        // The registry's start mark is bookkeeping too: its exec is no part of the CI job.
        outcome.enter(Phase::Measure);
        let mark = self.registry_mark().await;
        let result = match job.plan.daemon {
            Daemon::Fresh(DaemonKind::Docker) => self.run_fresh_dind(job, events, &mut outcome).await,
            Daemon::Shared(DaemonKind::Docker) => self.run_shared_dind(job, events, &mut outcome).await,
            Daemon::Fresh(DaemonKind::Buildkit) | Daemon::Shared(DaemonKind::Buildkit) => {
                Err(JobError::infrastructure(BUILDKITD_NOT_YET))
            }
            Daemon::None => self.run_daemonless(job, events, &mut outcome).await,
        };
        if let Err(e) = result {
            outcome.fail(e);
        }
        // layerbench's own bookkeeping, as on the docker backend: no CI job has it.
        outcome.enter(Phase::Measure);
        match self.registry_traffic(mark).await {
            Ok(traffic) => outcome.record_traffic(traffic),
            Err(why) => outcome
                .unmeasured
                .push(format!("bytes pulled and pushed left empty: the registry's access log could not be read ({why})")),
        }
        outcome.end_phase();
        outcome
    }

    async fn cache_state(&mut self, strategy: StrategyKind) -> CacheState {
        let mut state = CacheState::default();
        if let Some(pod) = &self.registry_pod {
            let out = self.exec_output(pod, manifests::REGISTRY_NAME, &storage_script(strategy.name())).await;
            state.registry_bytes = state.size_from("registry storage", out);
        }
        if strategy.strategy().daemon() == Daemon::Shared(DaemonKind::Docker) {
            if let Some(Ok(pod)) = &self.shared_dind {
                let script = format!("du -sb {}", manifests::DIND_DATA_PATH);
                let out = self.exec_output(pod, manifests::DIND_CONTAINER, &script).await;
                state.daemon_volume_bytes = state.size_from("the shared daemon's volume size", out);
            }
        }
        state
    }

    async fn end_iteration(&mut self, iteration: u32) -> Result<(), BackendError> {
        self.registry_pod = None;
        self.shared_dind = None;
        if self.options.keep {
            return Ok(());
        }
        // Not waited for: the next iteration waits for the names to be free, the last one's
        // namespace deletion takes them along.
        self.remove_iteration_services(false)
            .await
            .map_err(|e| BackendError::new(format!("remove the services of iteration {iteration}"), e))
    }

    async fn shutdown(&mut self) -> Result<(), BackendError> {
        if self.options.keep {
            return Ok(());
        }
        let ns = &self.run.namespace;
        if self.owns_namespace {
            let namespaces: Api<Namespace> = Api::all(self.client.clone());
            return delete(&namespaces, ns, &DeleteParams::background(), Some(self.options.timeouts.namespace_delete))
                .await
                .map_err(|e| {
                    BackendError::new(
                        format!("delete namespace {ns}"),
                        format!("{e}; `kubectl get namespace {ns} -o yaml` shows what holds it, `layerbench clean --backend kube` retries"),
                    )
                });
        }
        delete_labelled(&self.client, ns, &self.run_selector())
            .await
            .map(|_| ())
            .map_err(|e| BackendError::new(format!("delete the run's objects in namespace {ns}"), e))
    }
}

async fn client_for(options: &KubeOptions) -> Result<Client, BackendError> {
    let action = "load the Kubernetes client configuration";
    let config = match &options.context {
        Some(context) => Config::from_kubeconfig(&KubeConfigOptions { context: Some(context.clone()), ..Default::default() })
            .await
            .map_err(|e| BackendError::new(action, format!("{e}; check that context {context:?} is in your kubeconfig (`kubectl config get-contexts`)")))?,
        None => Config::infer()
            .await
            .map_err(|e| BackendError::new(action, format!("{e}; point KUBECONFIG at a cluster or pass --context")))?,
    };
    Client::try_from(config).map_err(|e| BackendError::new("create the Kubernetes client", e))
}

/// Removes what earlier runs left: namespaces labelled with any run id, and in
/// `options.namespace`, every object labelled so. Returns how many deletions it started.
pub async fn clean(options: &KubeOptions) -> Result<usize, BackendError> {
    let client = client_for(options).await?;
    clean_with(client, options).await
}

/// As [`clean`], on a client made elsewhere.
pub async fn clean_with(client: Client, options: &KubeOptions) -> Result<usize, BackendError> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let labelled = match namespaces.list(&ListParams::default().labels(crate::RUN_ID_LABEL)).await {
        Ok(list) => list.items,
        // An account scoped to the namespace it names may not list namespaces: that one is cleaned.
        Err(kube::Error::Api(status)) if status.code == 403 && options.namespace.is_some() => vec![],
        Err(e) => return Err(BackendError::new("list layerbench namespaces", api_error("list namespaces", e))),
    };
    let mut removed = 0;
    for ns in &labelled {
        let terminating = ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
        if terminating {
            continue;
        }
        delete(&namespaces, &ns.name_any(), &DeleteParams::background(), None)
            .await
            .map_err(|e| BackendError::new(format!("delete namespace {}", ns.name_any()), e))?;
        removed += 1;
    }
    if let Some(ns) = &options.namespace {
        if !labelled.iter().any(|n| n.name_any() == *ns) {
            removed += delete_labelled(&client, ns, crate::RUN_ID_LABEL)
                .await
                .map_err(|e| BackendError::new(format!("delete layerbench objects in namespace {ns}"), e))?;
        }
    }
    Ok(removed)
}

/// Deletes every kind of object the backend creates that matches `selector` in `namespace`.
async fn delete_labelled(client: &Client, namespace: &str, selector: &str) -> Result<usize, KubeError> {
    async fn kind<K>(client: &Client, namespace: &str, selector: &str) -> Result<usize, KubeError>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope> + Clone + std::fmt::Debug + DeserializeOwned,
        <K as Resource>::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(client.clone(), namespace);
        let kind = K::kind(&Default::default()).to_string();
        let deleted = api
            .delete_collection(&DeleteParams::background(), &ListParams::default().labels(selector))
            .await
            .map_err(|e| api_error(format!("delete {kind}s labelled {selector} in {namespace}"), e))?;
        Ok(deleted.left().map(|list| list.items.len()).unwrap_or(0))
    }
    // Deployments first: a pod deleted while its Deployment stands is replaced at once.
    Ok(kind::<Deployment>(client, namespace, selector).await?
        + kind::<Pod>(client, namespace, selector).await?
        + kind::<Service>(client, namespace, selector).await?
        + kind::<ConfigMap>(client, namespace, selector).await?
        + kind::<NetworkPolicy>(client, namespace, selector).await?
        + kind::<PersistentVolumeClaim>(client, namespace, selector).await?)
}
