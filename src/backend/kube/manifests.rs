//! Typed Kubernetes objects for each strategy: the registry, job pods, the daemons (a job's own, a strategy's
//! shared one) as their homes in `crate::builder` describe them, and the NetworkPolicies that guard them.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Affinity, AppArmorProfile, Capabilities, ConfigMap, ConfigMapProjection, ConfigMapVolumeSource, Container, ContainerPort,
    EmptyDirVolumeSource, EnvVar, ExecAction, HTTPGetAction, KeyToPath, Namespace, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, Pod, PodAffinityTerm, PodAntiAffinity, PodSpec,
    PodTemplateSpec, Probe, ProjectedVolumeSource, SeccompProfile, SecurityContext, Service, ServicePort, ServiceSpec,
    Volume, VolumeMount, VolumeProjection, VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::ByteString;
use serde::Serialize;

use super::config::{KubeImages, KubeOptions};
use super::names;
use crate::builder::{DaemonHome, DaemonLaunch, DaemonSetup, JobCommand};
use crate::pipeline::PipelineRunName;
use crate::strategy::{BuildRequest, Op, Privileges, Strategy};

pub const REGISTRY_NAME: &str = "registry";
pub const REGISTRY_PORT: i32 = 5000;
/// The registry as every daemon and builder in the namespace addresses it.
pub const REGISTRY_HOST: &str = "registry:5000";
pub const DIND_PORT: u16 = crate::builder::dind::API_PORT;

/// Container names inside job pods; the orchestration finds containers by these. A daemon's container is
/// named as its home names the service (`dind`, `buildkitd`).
pub const DIND_CONTAINER: &str = crate::builder::dind::HOME.service_name;
pub const JOB_CONTAINER: &str = "job";
pub const CONTEXT_CONTAINER: &str = "context";
pub const BUILD_CONTAINER: &str = "build";

/// Where a daemonless job pod unpacks its build context.
pub const CONTEXT_DIR: &str = crate::builder::CONTEXT_DIR;
const CONTEXT_PARTS_DIR: &str = "/context-parts";
/// ConfigMaps hold at most 1 MiB; this leaves room for the object's own fields.
pub const CONTEXT_PART_BYTES: usize = 900 * 1024;
/// More parts than this and the context is not something to pass through the API server.
pub const MAX_CONTEXT_PARTS: usize = 16;

pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const COMPONENT: &str = "app.kubernetes.io/component";
pub const STRATEGY_LABEL: &str = "layerbench.io/strategy";
pub const ITERATION_LABEL: &str = "layerbench.io/iteration";
/// The pipeline run's place in the pipeline: the lanes of one pipeline run share it, and spread over nodes by it.
pub const PIPELINE_INDEX_LABEL: &str = "layerbench.io/pipeline-index";
/// The job a pod belongs to (its job pod's name): a job's own daemon admits only the job's pods by it.
pub const JOB_LABEL: &str = "layerbench.io/job";
/// The component of every pod that stands for a CI job (its build or its client).
pub const JOB_COMPONENT: &str = "job";
pub const PIPELINE_RUN_ANNOTATION: &str = "layerbench.io/pipeline-run";

/// What every object of one run shares: its namespace and its labels, and what its cluster reads.
#[derive(Debug, Clone)]
pub struct RunMeta {
    pub run_id: String,
    pub namespace: String,
    pub scenario: String,
    /// How pods ask for an AppArmor profile on this run's API server.
    pub apparmor: AppArmorStyle,
}

/// How a pod asks for its containers' AppArmor profile. The `securityContext.appArmorProfile` field
/// is GA in Kubernetes 1.30; older API servers drop it without a word (the container then runs
/// under the runtime's default profile), and read the beta annotation
/// `container.apparmor.security.beta.kubernetes.io/<container>` instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AppArmorStyle {
    /// The field, for API servers of 1.30 and later.
    #[default]
    Field,
    /// The annotation, for API servers before 1.30.
    Annotation,
}

impl AppArmorStyle {
    /// The style for an API server's `/version` (`major` "1", `minor` "29" or "29+" as some
    /// providers report it). A version it cannot read is taken for a current one.
    pub fn for_server(major: &str, minor: &str) -> Self {
        let number = |text: &str| text.trim_end_matches('+').parse::<u32>().ok();
        match (number(major), number(minor)) {
            (Some(1), Some(minor)) if minor < 30 => AppArmorStyle::Annotation,
            _ => AppArmorStyle::Field,
        }
    }
}

/// The annotation older API servers read for `container`'s AppArmor profile.
pub fn apparmor_annotation(container: &str) -> String {
    format!("container.apparmor.security.beta.kubernetes.io/{container}")
}

impl RunMeta {
    /// Labels of an object with role `component`: the run id label is on every object.
    pub fn labels(&self, component: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (crate::RUN_ID_LABEL.to_string(), names::label_value(&self.run_id)),
            (MANAGED_BY.to_string(), "layerbench".to_string()),
            (COMPONENT.to_string(), component.to_string()),
            ("layerbench.io/scenario".to_string(), names::label_value(&self.scenario)),
        ])
    }

    /// Just enough labels to pick a component's pods of this run.
    pub fn selector(&self, component: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (crate::RUN_ID_LABEL.to_string(), names::label_value(&self.run_id)),
            (COMPONENT.to_string(), component.to_string()),
        ])
    }

    /// Just enough labels to pick a component's pods of this run that belong to `strategy` (its own daemon).
    pub fn strategy_selector(&self, component: &str, strategy: Strategy) -> BTreeMap<String, String> {
        let mut selector = self.selector(component);
        selector.insert(STRATEGY_LABEL.into(), names::label_value(strategy.name()));
        selector
    }

    /// `key=value,...` form of [`RunMeta::selector`] for list and watch calls.
    pub fn selector_string(&self, component: &str) -> String {
        join_selector(&self.selector(component))
    }

    pub(super) fn meta(&self, name: &str, component: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels(component)),
            ..ObjectMeta::default()
        }
    }
}

pub fn join_selector(labels: &BTreeMap<String, String>) -> String {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// One job as its pods need to know it.
#[derive(Debug, Clone)]
pub struct JobMeta<'a> {
    pub name: String,
    pub iteration: u32,
    pub pipeline_index: u32,
    pub pipeline_run: &'a PipelineRunName,
    pub strategy: Strategy,
}

impl JobMeta<'_> {
    /// The metadata of this job's pod `name` with role `component` (the job pod itself, or its own daemon's).
    fn pod_meta(&self, run: &RunMeta, name: &str, component: &str) -> ObjectMeta {
        let mut meta = run.meta(name, component);
        let labels = meta.labels.get_or_insert_with(BTreeMap::new);
        labels.extend(self.lanes_selector(run, component));
        labels.insert(JOB_LABEL.into(), names::label_value(&self.name));
        // Annotations take any text, so the user's pipeline-run name is kept verbatim there.
        meta.annotations =
            Some(BTreeMap::from([(PIPELINE_RUN_ANNOTATION.to_string(), self.pipeline_run.to_string())]));
        meta
    }

    /// The pods of `component` of this job and of the other lanes of its pipeline run (same strategy,
    /// iteration and pipeline run): what spreads over the nodes.
    fn lanes_selector(&self, run: &RunMeta, component: &str) -> BTreeMap<String, String> {
        let mut selector = run.strategy_selector(component, self.strategy);
        selector.insert(ITERATION_LABEL.into(), self.iteration.to_string());
        selector.insert(PIPELINE_INDEX_LABEL.into(), self.pipeline_index.to_string());
        selector
    }

    /// Lanes run at once spread over the nodes: the scheduler prefers a node that runs no other lane's pod
    /// of the same kind. Preferred, not required: a one-node cluster still runs them all.
    fn spread_lanes(&self, run: &RunMeta, component: &str) -> Affinity {
        let term = PodAffinityTerm {
            label_selector: Some(LabelSelector { match_labels: Some(self.lanes_selector(run, component)), ..Default::default() }),
            topology_key: HOSTNAME_TOPOLOGY.into(),
            ..Default::default()
        };
        Affinity {
            pod_anti_affinity: Some(PodAntiAffinity {
                preferred_during_scheduling_ignored_during_execution: Some(vec![WeightedPodAffinityTerm { weight: 100, pod_affinity_term: term }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// The well-known label of a node's name: one topology domain per node.
pub const HOSTNAME_TOPOLOGY: &str = "kubernetes.io/hostname";

/// Any object layerbench applies, so a list of them prints as one multi-document YAML.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
// A few of these exist at once, to be printed: boxing would only add noise at every use.
#[allow(clippy::large_enum_variant)]
pub enum Object {
    Namespace(Namespace),
    ConfigMap(ConfigMap),
    PersistentVolumeClaim(PersistentVolumeClaim),
    Deployment(Deployment),
    Service(Service),
    NetworkPolicy(NetworkPolicy),
    Pod(Pod),
}

pub fn namespace(run: &RunMeta) -> Namespace {
    let mut labels = run.labels("namespace");
    // dind needs privileged pods and buildah needs SYS_ADMIN without seccomp: Pod Security's
    // `baseline` level refuses both, so the run's namespace says plainly what it needs.
    labels.insert("pod-security.kubernetes.io/enforce".into(), "privileged".into());
    Namespace {
        metadata: ObjectMeta { name: Some(run.namespace.clone()), labels: Some(labels), ..Default::default() },
        ..Default::default()
    }
}

/// The run's registry: Distribution configured like the docker backend's (plain HTTP on 5000,
/// no auth, access log on), storage in an emptyDir so each iteration's new pod starts empty.
pub struct Registry {
    pub config: ConfigMap,
    pub deployment: Deployment,
    pub service: Service,
}

pub const REGISTRY_CONFIG: &str = "registry-config";

pub fn registry(run: &RunMeta, images: &KubeImages, iteration: u32) -> Registry {
    let config_path = Path::new(crate::registry::CONFIG_PATH);
    let config_file = config_path.file_name().unwrap_or_default().to_string_lossy().to_string();
    let config_dir = config_path.parent().unwrap_or(Path::new("/")).to_string_lossy().to_string();
    let config = ConfigMap {
        metadata: run.meta(REGISTRY_CONFIG, "registry"),
        data: Some(BTreeMap::from([(config_file, crate::registry::config_yaml())])),
        ..Default::default()
    };
    // Both registry images run `/entrypoint.sh CONFIG`; the config is always ours, so that the
    // official image and the stand-in serve the same way.
    // The access log goes to a file as well as to the kubelet's log, which rotates.
    let mut container = registry_container(
        REGISTRY_NAME,
        images,
        &[mount("registry-data", crate::registry::STORAGE_ROOT), mount("registry-config", &config_dir)],
    );
    container.command = Some(sh(&registry_command(REGISTRY_ENTRYPOINT, REGISTRY_LOG_DIR, crate::registry::CONFIG_PATH)));
    container.volume_mounts.get_or_insert_with(Vec::new).push(mount("registry-log", REGISTRY_LOG_DIR));
    let pod = PodSpec {
        containers: vec![container],
        volumes: Some(vec![
            empty_dir("registry-data"),
            empty_dir("registry-log"),
            Volume {
                name: "registry-config".into(),
                config_map: Some(ConfigMapVolumeSource { name: REGISTRY_CONFIG.into(), ..Default::default() }),
                ..Default::default()
            },
        ]),
        termination_grace_period_seconds: Some(5),
        ..Default::default()
    };
    let deployment = single_replica(run, REGISTRY_NAME, "registry", None, iteration, pod);
    let service = service(run, REGISTRY_NAME, "registry", None, REGISTRY_PORT);
    Registry { config, deployment, service }
}

/// A Distribution registry container serving plain HTTP on [`REGISTRY_PORT`], ready once `/v2/` answers,
/// with its storage and configuration mounted at `mounts` (the run's registry, and its Docker Hub mirror).
pub(super) fn registry_container(name: &str, images: &KubeImages, mounts: &[VolumeMount]) -> Container {
    Container {
        name: name.into(),
        image: Some(images.name(crate::toolchain::Role::Registry)),
        image_pull_policy: Some(PULL_POLICY.into()),
        termination_message_policy: Some(CRASH_MESSAGE_FROM_LOG.into()),
        ports: Some(vec![ContainerPort { container_port: REGISTRY_PORT, ..Default::default() }]),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/v2/".into()),
                port: IntOrString::Int(REGISTRY_PORT),
                ..Default::default()
            }),
            period_seconds: Some(1),
            ..Default::default()
        }),
        volume_mounts: Some(mounts.to_vec()),
        ..Default::default()
    }
}

/// The registry images' entry point (registry:3's and layerbench's stand-in's): `/entrypoint.sh CONFIG`
/// serves with that configuration.
pub const REGISTRY_ENTRYPOINT: &str = "/entrypoint.sh";
/// Where the registry pod keeps its own copy of its log (an emptyDir, fresh with each pod).
pub const REGISTRY_LOG_DIR: &str = "/var/log/registry";
/// The registry's log, access lines included, as a file: the kubelet rotates a container's log
/// (`containerLogMaxSize`, 10 MiB by default), so lines between two marks could vanish from it.
pub const REGISTRY_ACCESS_LOG: &str = "/var/log/registry/access.log";

/// The lines a job's build script starts with on kube: its container is read once more as the script
/// exits, however it exits (see crate::usage), and its stderr joins its stdout, so that the log is one
/// stream in the order it was written and the script's last line ([`last_log_line`]) comes after all
/// the builder printed.
pub fn script_prelude() -> String {
    format!("{}\nexec 2>&1\n", crate::usage::final_reading_trap())
}

/// The line the build container's log ends with when its script ran to its end: the kubelet may end a
/// followed log before the container runtime has written the container's last lines (the container has
/// exited, its log file not yet caught up), so the log is read again until this line is in it.
pub fn last_log_line(command: &JobCommand) -> Option<String> {
    command.runs_a_script().then(crate::usage::final_line)
}

/// The registry container's script: `entrypoint config`, its stdout and stderr through a FIFO into
/// `tee -a`, which appends them to the file in `log_dir` and passes them on to the container's
/// log. The registry stays process 1 (`exec`), so it gets the kubelet's SIGTERM itself. Needs only
/// `sh`, `mkfifo` and `tee`, which both registry images have (busybox; coreutils).
pub fn registry_command(entrypoint: &str, log_dir: &str, config: &str) -> String {
    let pipe = format!("{log_dir}/.pipe");
    format!(
        "set -e\nrm -f {pipe}\nmkfifo {pipe}\ntee -a {log_dir}/access.log < {pipe} &\nexec {entrypoint} {config} > {pipe} 2>&1\n"
    )
}

/// A script for the registry container that prints how many lines its log file has: the mark
/// where a job's traffic starts.
pub fn access_log_lines_script() -> String {
    format!("wc -l < {REGISTRY_ACCESS_LOG}")
}

/// A script for the registry container that prints its log file's lines after the first `mark`.
pub fn access_log_since_script(mark: u64) -> String {
    format!("tail -n +{} {REGISTRY_ACCESS_LOG}", mark + 1)
}

/// A CI job with a dind service: the privileged daemon, and the job container a CI script
/// would run in. layerbench itself drives the daemon through a port-forward to it.
pub fn dind_job_pod(run: &RunMeta, images: &KubeImages, job: &JobMeta, timeout_s: u64) -> Pod {
    let daemon = DaemonPlacement::new(&crate::builder::dind::HOME, images, job.strategy, LOOPBACK);
    let (dind, mut volumes) = daemon.container(run.apparmor, "dind-data");
    volumes.push(empty_dir("dind-data"));
    let job_container = Container {
        name: JOB_CONTAINER.into(),
        image: Some(images.helper.clone()),
        image_pull_policy: Some(PULL_POLICY.into()),
        // Stands where a CI script would run `docker build`; exits at once on SIGTERM.
        command: Some(sh("trap 'exit 0' TERM; while :; do sleep 1; done")),
        env: Some(vec![env("DOCKER_HOST", &daemon.home.address(LOOPBACK))]),
        ..Default::default()
    };
    Pod {
        metadata: job.pod_meta(run, &job.name, JOB_COMPONENT),
        spec: Some(PodSpec {
            containers: vec![dind, job_container],
            volumes: Some(volumes),
            affinity: Some(job.spread_lanes(run, JOB_COMPONENT)),
            ..job_pod_spec(timeout_s)
        }),
        ..Default::default()
    }
}

/// A job's own daemon in a pod of its own, as buildx's `kubernetes` driver runs buildkitd: the pod, a Service
/// the job's builder reaches it by, and a NetworkPolicy that opens its API to this job's pods alone (no other
/// job, strategy, namespace, nor a build step run in another daemon). Lanes' daemons spread over the nodes.
pub struct JobDaemonObjects {
    pub pod: Pod,
    pub service: Service,
    pub policy: NetworkPolicy,
}

pub fn job_daemon(run: &RunMeta, images: &KubeImages, job: &JobMeta, home: &DaemonHome, timeout_s: u64) -> JobDaemonObjects {
    let daemon = DaemonPlacement::new(home, images, job.strategy, EVERY_INTERFACE);
    let (container, mut volumes) = daemon.container(run.apparmor, "daemon-state");
    volumes.push(empty_dir("daemon-state"));
    let name = names::job_daemon_name(&job.name, home.service_name);
    let pod = Pod {
        metadata: job.pod_meta(run, &name, home.service_name),
        spec: Some(PodSpec {
            containers: vec![container],
            volumes: Some(volumes),
            affinity: Some(job.spread_lanes(run, home.service_name)),
            ..job_pod_spec(timeout_s)
        }),
        ..Default::default()
    };
    let mut selected = run.strategy_selector(home.service_name, job.strategy);
    selected.insert(JOB_LABEL.into(), names::label_value(&job.name));
    let mut admitted = run.strategy_selector(JOB_COMPONENT, job.strategy);
    admitted.insert(JOB_LABEL.into(), names::label_value(&job.name));
    let mut service = service(run, &name, home.service_name, Some(job.strategy), home.api_port.into());
    if let Some(spec) = service.spec.as_mut() {
        spec.selector = Some(selected.clone());
    }
    let policy = only_from(run.meta(&name, home.service_name), selected, admitted, home.api_port);
    JobDaemonObjects { pod, service, policy }
}

/// A strategy's shared daemon (shared-dind's and buildkit-shared's dind, buildkit-daemon-shared's buildkitd):
/// a Deployment of one pod whose state directory is a claim, a Service jobs address it by, and a
/// NetworkPolicy that admits only the job pods of its own strategy in this run. Every name is the
/// strategy's, so no two strategies share a daemon.
pub struct SharedDaemon {
    pub claim: PersistentVolumeClaim,
    pub deployment: Deployment,
    pub service: Service,
    pub policy: NetworkPolicy,
}

pub fn shared_daemon(run: &RunMeta, options: &KubeOptions, owner: Strategy, home: &DaemonHome, iteration: u32) -> SharedDaemon {
    let name = names::shared_daemon_name(owner);
    let claim_name = shared_claim_name(owner);
    let claim = claim(run, &claim_name, home.service_name, options.storage_class.as_deref(), &options.shared_daemon_storage);
    let daemon = DaemonPlacement::new(home, &options.images, owner, EVERY_INTERFACE);
    let (container, mut volumes) = daemon.container(run.apparmor, "daemon-state");
    volumes.push(Volume {
        name: "daemon-state".into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource { claim_name, read_only: None }),
        ..Default::default()
    });
    let pod = PodSpec {
        containers: vec![container],
        volumes: Some(volumes),
        termination_grace_period_seconds: Some(30),
        ..Default::default()
    };
    let mut deployment = single_replica(run, &name, home.service_name, Some(owner), iteration, pod);
    // One pod at a time: a ReadWriteOnce volume cannot be mounted by an old and a new pod at once, and the
    // claim binds to the node of the first, so the daemon stays on one node for the iteration.
    if let Some(spec) = deployment.spec.as_mut() {
        spec.strategy = Some(DeploymentStrategy { type_: Some("Recreate".into()), rolling_update: None });
    }
    let service = service(run, &name, home.service_name, Some(owner), home.api_port.into());
    // No namespaceSelector: only pods of this namespace; of them only this run's jobs, and of those only the
    // owner's: a buildah, kaniko or dind job of another strategy must not reach a root daemon it does not own,
    // nor a build step of another daemon (its traffic leaves with its daemon's pod's labels).
    let policy = only_from(
        run.meta(&shared_policy_name(owner), home.service_name),
        run.strategy_selector(home.service_name, owner),
        run.strategy_selector(JOB_COMPONENT, owner),
        home.api_port,
    );
    SharedDaemon { claim, deployment, service, policy }
}

/// The claim of a strategy's shared daemon's state.
pub fn shared_claim_name(owner: Strategy) -> String {
    names::dns_label(&format!("{}-state", owner.name()))
}

/// The NetworkPolicy of a strategy's shared daemon.
pub fn shared_policy_name(owner: Strategy) -> String {
    names::dns_label(&format!("{}-only-from-its-jobs", owner.name()))
}

/// A NetworkPolicy on the pods `selected`: TCP `port` only, from pods of this namespace with `admitted`.
fn only_from(metadata: ObjectMeta, selected: BTreeMap<String, String>, admitted: BTreeMap<String, String>, port: u16) -> NetworkPolicy {
    NetworkPolicy {
        metadata,
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector { match_labels: Some(selected), ..Default::default() }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![NetworkPolicyPeer {
                    pod_selector: Some(LabelSelector { match_labels: Some(admitted), ..Default::default() }),
                    ..Default::default()
                }]),
                ports: Some(vec![NetworkPolicyPort { port: Some(IntOrString::Int(port.into())), protocol: Some("TCP".into()), end_port: None }]),
            }]),
            ..Default::default()
        }),
    }
}

/// The ConfigMap holding the configuration file of `strategy`'s daemons, if their home writes one: the same
/// for its fresh and its shared daemons, whatever the address they listen on.
pub fn daemon_config(run: &RunMeta, images: &KubeImages, strategy: Strategy) -> Option<ConfigMap> {
    let home = crate::builder::daemon(strategy.daemon.kind()?);
    let config = DaemonPlacement::new(home, images, strategy, EVERY_INTERFACE).launch.config?;
    Some(ConfigMap {
        metadata: run.meta(&names::daemon_config_name(strategy), home.service_name),
        data: Some(BTreeMap::from([(config_key(config.path), config.content)])),
        ..Default::default()
    })
}

/// The key of a configuration file in its ConfigMap: its file name.
fn config_key(path: &str) -> String {
    Path::new(path).file_name().unwrap_or_default().to_string_lossy().into_owned()
}

/// A daemon's API on the pod's loopback: reachable from the pod's own containers and a port-forward only.
pub const LOOPBACK: &str = "127.0.0.1";
/// A daemon's API on every interface of its pod, behind a NetworkPolicy.
pub const EVERY_INTERFACE: &str = "0.0.0.0";

/// A daemon as its home launches it in a pod of `strategy`, its API bound to `bind`.
pub struct DaemonPlacement<'a> {
    pub home: &'a DaemonHome,
    pub launch: DaemonLaunch,
    strategy: Strategy,
    image: String,
}

impl<'a> DaemonPlacement<'a> {
    pub fn new(home: &'a DaemonHome, images: &KubeImages, strategy: Strategy, bind: &str) -> Self {
        let setup = DaemonSetup {
            bind,
            registry: REGISTRY_HOST,
            hub_mirror: images.hub_mirror.as_deref(),
            // A pod's resolver is the cluster's DNS Service, no loopback: BuildKit keeps it for its steps.
            nameserver: None,
            image_store: strategy.image_store,
        };
        DaemonPlacement { home, launch: (home.launch)(&setup), strategy, image: images.name(home.role) }
    }

    /// Its container, with its state on the volume `state` (the caller's: an emptyDir or a claim), and the
    /// volumes it brings: its configuration file from the strategy's ConfigMap, its scratch directories.
    pub fn container(&self, apparmor: AppArmorStyle, state: &str) -> (Container, Vec<Volume>) {
        let home = self.home;
        let mut mounts = vec![mount(state, home.state_dir)];
        let mut volumes = vec![];
        if let Some(config) = &self.launch.config {
            volumes.push(Volume {
                name: "daemon-config".into(),
                config_map: Some(ConfigMapVolumeSource { name: names::daemon_config_name(self.strategy), ..Default::default() }),
                ..Default::default()
            });
            mounts.push(VolumeMount { sub_path: Some(config_key(config.path)), read_only: Some(true), ..mount("daemon-config", config.path) });
        }
        for (i, dir) in self.launch.scratch_dirs.iter().enumerate() {
            let name = format!("daemon-scratch-{i}");
            mounts.push(mount(&name, dir));
            volumes.push(empty_dir(&name));
        }
        let container = Container {
            name: home.service_name.into(),
            image: Some(self.image.clone()),
            image_pull_policy: Some(PULL_POLICY.into()),
            args: Some(self.launch.args.clone()),
            env: Some(self.launch.env.iter().map(|(k, v)| env(k, v)).collect()),
            ports: Some(vec![ContainerPort { container_port: home.api_port.into(), ..Default::default() }]),
            // A daemon runs containers with their own cgroups, mounts and iptables: what its home says it needs.
            security_context: security_context(&(home.privileges)(), apparmor),
            termination_message_policy: Some(CRASH_MESSAGE_FROM_LOG.into()),
            readiness_probe: Some(Probe {
                exec: Some(ExecAction { command: Some(home.ready_check.iter().map(|w| w.to_string()).collect()) }),
                period_seconds: Some(1),
                failure_threshold: Some(3),
                ..Default::default()
            }),
            // A daemon's storage cannot sit on the container's own overlay root filesystem.
            volume_mounts: Some(mounts),
            ..Default::default()
        };
        (container, volumes)
    }

    /// Its container as a native sidecar of a job pod (an init container that keeps running, Kubernetes 1.29
    /// and later): the kubelet starts the job's build only once the daemon passes its readiness check, as a
    /// CI job starts once its service answers, and stops it when the build ends.
    pub fn sidecar(&self, apparmor: AppArmorStyle, state: &str) -> (Container, Vec<Volume>) {
        let (mut container, volumes) = self.container(apparmor, state);
        let ready = container.readiness_probe.take().map(|probe| Probe { failure_threshold: Some(SIDECAR_START_CHECKS), ..probe });
        container.startup_probe = ready;
        container.restart_policy = Some("Always".into());
        (container, volumes)
    }
}

/// How many readiness checks, a second apart, a sidecar daemon gets to answer before the kubelet restarts
/// it; layerbench's own bound on the pod's start ends the wait before that matters.
const SIDECAR_START_CHECKS: i32 = 600;

/// A build context too large to pass through the API server in ConfigMaps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the build context is {bytes} bytes as a tar; daemonless jobs on Kubernetes carry it in at most \
     {MAX_CONTEXT_PARTS} ConfigMaps of {CONTEXT_PART_BYTES} bytes. Add a .dockerignore-style trim of the context, \
     or use a dind strategy, which uploads the context through the Docker API"
)]
pub struct ContextTooLarge {
    pub bytes: usize,
}

/// The parts of a tarred build context, one ConfigMap each, in order.
pub fn context_config_maps(run: &RunMeta, job: &str, tar: &[u8]) -> Result<Vec<ConfigMap>, ContextTooLarge> {
    let parts = tar.len().div_ceil(CONTEXT_PART_BYTES).max(1);
    if parts > MAX_CONTEXT_PARTS {
        return Err(ContextTooLarge { bytes: tar.len() });
    }
    Ok((0..parts)
        .map(|i| {
            let chunk = tar.chunks(CONTEXT_PART_BYTES).nth(i).unwrap_or_default();
            ConfigMap {
                metadata: run.meta(&names::context_part_name(job, i), "build-context"),
                binary_data: Some(BTreeMap::from([("part".to_string(), ByteString(chunk.to_vec()))])),
                immutable: Some(true),
                ..Default::default()
            }
        })
        .collect())
}

/// Where a builder job's daemon is, as its pod needs to know it.
pub enum JobDaemon<'a> {
    /// None: a daemonless builder (buildah, kaniko).
    None,
    /// A fresh daemon beside the build in the job pod, a native sidecar on the pod's loopback (buildx's dind).
    Sidecar(&'a DaemonHome),
    /// A daemon in another pod, at this address (`tcp://buildkit-shared:2375`, a job's own buildkitd).
    At(String),
}

impl JobDaemon<'_> {
    /// How the job's builder addresses its daemon (its DOCKER_HOST or BUILDKIT_HOST), if it has one.
    pub fn host(&self) -> Option<String> {
        match self {
            JobDaemon::None => None,
            JobDaemon::Sidecar(home) => Some(home.address(LOOPBACK)),
            JobDaemon::At(address) => Some(address.clone()),
        }
    }
}

/// What a builder's job pod builds, and with which daemon.
pub struct PodBuild<'a> {
    pub request: &'a BuildRequest,
    /// The Dockerfile, relative to the context.
    pub dockerfile_path: &'a Path,
    /// The build context's ConfigMaps (see [`context_config_maps`]).
    pub context_parts: &'a [ConfigMap],
    pub daemon: &'a JobDaemon<'a>,
}

/// A builder's job: an init container unpacks the context from its ConfigMaps, a fresh daemon starts
/// beside it if the job has one, then the builder's job command builds and pushes.
pub fn builder_job_pod(run: &RunMeta, images: &KubeImages, job: &JobMeta, build: &PodBuild, timeout_s: u64) -> Pod {
    let PodBuild { request, dockerfile_path, context_parts, daemon } = *build;
    let (unpack, parts_volume) = context_unpacking(images, context_parts);
    let mut volumes = vec![parts_volume, empty_dir("workspace")];
    let mut init = vec![unpack];
    if let JobDaemon::Sidecar(home) = daemon {
        let placement = DaemonPlacement::new(home, images, job.strategy, LOOPBACK);
        let (sidecar, sidecar_volumes) = placement.sidecar(run.apparmor, "daemon-state");
        init.push(sidecar);
        volumes.extend(sidecar_volumes);
        volumes.push(empty_dir("daemon-state"));
    }
    let command = builder_command(request, dockerfile_path, images, daemon.host().as_deref());
    let mut mounts = vec![mount("workspace", CONTEXT_DIR)];
    if let Some(storage) = command.storage {
        // overlay on an emptyDir (a real filesystem on the node) is ~5x faster than vfs.
        volumes.push(empty_dir("builder-storage"));
        mounts.push(mount("builder-storage", storage));
    }
    let home = crate::builder::home(request.builder);
    let privileges = (home.privileges)();
    let mut metadata = job.pod_meta(run, &job.name, JOB_COMPONENT);
    let apparmor_unconfined = privileges.unconfined.contains(&"apparmor");
    if apparmor_unconfined && run.apparmor == AppArmorStyle::Annotation {
        metadata.annotations.get_or_insert_with(BTreeMap::new).insert(apparmor_annotation(BUILD_CONTAINER), "unconfined".into());
    }
    let mut args = command.args.clone();
    if command.runs_a_script() {
        args[0] = format!("{}{}", script_prelude(), args[0]);
    }
    let builder = Container {
        name: BUILD_CONTAINER.into(),
        // Callers refuse a job whose builder has no image; an empty name would fail validation anyway.
        image: Some(images.name(home.role)),
        image_pull_policy: Some(PULL_POLICY.into()),
        // kaniko's image has no shell: its entry point is the executor, given arguments only.
        command: command.entrypoint.clone(),
        args: Some(args),
        env: Some(command.env.iter().filter_map(|kv| kv.split_once('=')).map(|(k, v)| env(k, v)).collect()),
        security_context: security_context(&privileges, run.apparmor),
        working_dir: Some(CONTEXT_DIR.into()),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    Pod {
        metadata,
        spec: Some(PodSpec {
            init_containers: Some(init),
            containers: vec![builder],
            volumes: Some(volumes),
            affinity: Some(job.spread_lanes(run, JOB_COMPONENT)),
            ..job_pod_spec(timeout_s)
        }),
        ..Default::default()
    }
}

/// The init container that unpacks a job's context from its ConfigMaps into the workspace, and the
/// projected volume that brings the parts, in order.
fn context_unpacking(images: &KubeImages, context_parts: &[ConfigMap]) -> (Container, Volume) {
    let unpack = Container {
        name: CONTEXT_CONTAINER.into(),
        image: Some(images.helper.clone()),
        image_pull_policy: Some(PULL_POLICY.into()),
        // The glob sorts part-000, part-001, ... in order.
        command: Some(sh(&format!("mkdir -p {CONTEXT_DIR} && cat {CONTEXT_PARTS_DIR}/part-* | tar -x -C {CONTEXT_DIR}"))),
        volume_mounts: Some(vec![mount("context-parts", CONTEXT_PARTS_DIR), mount("workspace", "/workspace")]),
        ..Default::default()
    };
    let sources = context_parts
        .iter()
        .enumerate()
        .map(|(i, cm)| VolumeProjection {
            config_map: Some(ConfigMapProjection {
                name: cm.metadata.name.clone().unwrap_or_default(),
                items: Some(vec![KeyToPath { key: "part".into(), path: format!("part-{i:03}"), mode: None }]),
                optional: Some(false),
            }),
            ..Default::default()
        })
        .collect();
    let volume = Volume {
        name: "context-parts".into(),
        projected: Some(ProjectedVolumeSource { sources: Some(sources), default_mode: None }),
        ..Default::default()
    };
    (unpack, volume)
}

/// The security context of a container with `privileges` (a builder home's), or none for a plain one.
fn security_context(privileges: &Privileges, apparmor: AppArmorStyle) -> Option<SecurityContext> {
    if *privileges == Privileges::default() {
        return None;
    }
    let unconfined = |profile: &str| privileges.unconfined.contains(&profile);
    let capabilities = (!privileges.extra_capabilities.is_empty())
        .then(|| Capabilities { add: Some(privileges.extra_capabilities.iter().map(|c| c.to_string()).collect()), drop: None });
    Some(SecurityContext {
        privileged: privileges.privileged.then_some(true),
        capabilities,
        seccomp_profile: unconfined("seccomp").then(|| SeccompProfile { type_: "Unconfined".into(), localhost_profile: None }),
        app_armor_profile: (unconfined("apparmor") && apparmor == AppArmorStyle::Field)
            .then(|| AppArmorProfile { type_: "Unconfined".into(), localhost_profile: None }),
        ..Default::default()
    })
}

/// The builder's job command, the same as on the docker backend, with this cluster's endpoints.
pub fn builder_command(request: &BuildRequest, dockerfile_path: &Path, images: &KubeImages, daemon_host: Option<&str>) -> JobCommand {
    let endpoints = crate::builder::Endpoints { registry: REGISTRY_HOST, hub_mirror: images.hub_mirror.as_deref(), daemon_host };
    crate::builder::job_command(request, dockerfile_path, &endpoints)
}

/// How a job's plan reads as a CI script, for the comments of `layerbench manifests`: the classic builder's
/// operations as its home writes them, a job-container builder's command as its home gives it.
pub fn op_as_command(op: &Op, dockerfile_path: &Path, images: &KubeImages, daemon_host: Option<&str>) -> String {
    match op {
        Op::JobBuild(request) => builder_command(request, dockerfile_path, images, daemon_host).as_script(crate::builder::home(request.builder)),
        op => crate::builder::classic::as_script(op, dockerfile_path),
    }
}

/// A daemon that crashes writes no termination message of its own: the kubelet then gives the end
/// of its log (at most 80 lines, 2 KiB) as the message, which is what a crash report needs.
pub(super) const CRASH_MESSAGE_FROM_LOG: &str = "FallbackToLogsOnError";

/// Toolchain images are often loaded into the cluster by hand (`kind load docker-image`);
/// `Always`, the default for `:latest`, would then fail on a cluster without registry access.
pub(super) const PULL_POLICY: &str = "IfNotPresent";

fn job_pod_spec(timeout_s: u64) -> PodSpec {
    PodSpec {
        restart_policy: Some("Never".into()),
        termination_grace_period_seconds: Some(5),
        // The cluster ends a job that outlives layerbench's own limit, even if layerbench died.
        active_deadline_seconds: Some(i64::try_from(timeout_s).unwrap_or(i64::MAX)),
        automount_service_account_token: Some(false),
        ..Default::default()
    }
}

/// A ReadWriteOnce volume claim of `size` (a Kubernetes quantity), of the cluster's default class unless named.
pub(super) fn claim(run: &RunMeta, name: &str, component: &str, storage_class: Option<&str>, size: &str) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: run.meta(name, component),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: storage_class.map(String::from),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), Quantity(size.into()))])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A Deployment of one pod of `component` (of `strategy`, for a strategy's own daemon).
pub(super) fn single_replica(run: &RunMeta, name: &str, component: &str, strategy: Option<Strategy>, iteration: u32, spec: PodSpec) -> Deployment {
    let selector = selector_of(run, component, strategy);
    let mut pod_labels = run.labels(component);
    pod_labels.extend(selector.clone());
    // Tells this iteration's pod from a previous iteration's pod that is still terminating.
    pod_labels.insert(ITERATION_LABEL.into(), iteration.to_string());
    let mut metadata = run.meta(name, component);
    metadata.labels.get_or_insert_with(BTreeMap::new).extend(selector.clone());
    Deployment {
        metadata,
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector { match_labels: Some(selector), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(pod_labels), ..Default::default() }),
                spec: Some(spec),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A Service on `port` for the pods of `component` (of `strategy`, for a strategy's own daemon).
pub(super) fn service(run: &RunMeta, name: &str, component: &str, strategy: Option<Strategy>, port: i32) -> Service {
    Service {
        metadata: run.meta(name, component),
        spec: Some(ServiceSpec {
            selector: Some(selector_of(run, component, strategy)),
            ports: Some(vec![ServicePort {
                name: Some(name.into()),
                port,
                target_port: Some(IntOrString::Int(port)),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The pods of `component` of this run, and of `strategy` when one owns them.
pub fn selector_of(run: &RunMeta, component: &str, strategy: Option<Strategy>) -> BTreeMap<String, String> {
    match strategy {
        Some(strategy) => run.strategy_selector(component, strategy),
        None => run.selector(component),
    }
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), value_from: None }
}

pub(super) fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount { name: name.into(), mount_path: path.into(), ..Default::default() }
}

fn empty_dir(name: &str) -> Volume {
    Volume { name: name.into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() }
}

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::kube::names::{is_dns_label, is_label_value};
    use crate::strategy::{JobBuilder, Strategy};

    fn run() -> RunMeta {
        RunMeta {
            run_id: "20261127T190501Z-flask".into(),
            namespace: "layerbench-x".into(),
            scenario: "flask".into(),
            apparmor: AppArmorStyle::Field,
        }
    }

    fn job() -> JobMeta<'static> {
        job_for(Strategy::named("ephemeral-dind"))
    }

    fn job_for(strategy: Strategy) -> JobMeta<'static> {
        static RUN: std::sync::OnceLock<PipelineRunName> = std::sync::OnceLock::new();
        let pipeline_run = RUN.get_or_init(|| PipelineRunName::new("edit app.py"));
        JobMeta { name: format!("job-n1l1-i1-p0-{strategy}"), iteration: 1, pipeline_index: 0, pipeline_run, strategy }
    }

    fn daemonless_op(builder: JobBuilder) -> BuildRequest {
        let cache = "registry:5000/daemonless/app-cache".to_string();
        BuildRequest {
            builder,
            destinations: vec!["registry:5000/daemonless/app:c1".into(), "registry:5000/daemonless/app:latest".into()],
            cache_from: vec![crate::strategy::CacheImport::Registry { reference: cache.clone() }],
            cache_to: Some(crate::strategy::CacheExport::Registry { reference: cache, every_stage: true }),
        }
    }

    /// Whether a Service or NetworkPolicy selector picks an object with `labels`.
    fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
        selector.iter().all(|(k, v)| labels.get(k) == Some(v))
    }

    fn container<'a>(pod: &'a PodSpec, name: &str) -> &'a Container {
        pod.containers.iter().chain(pod.init_containers.iter().flatten()).find(|c| c.name == name).unwrap()
    }

    fn mount_path<'a>(c: &'a Container, volume: &str) -> &'a str {
        &c.volume_mounts.as_ref().unwrap().iter().find(|m| m.name == volume).unwrap().mount_path
    }

    #[test]
    fn dind_job_pod_runs_a_privileged_daemon_reachable_only_from_inside_the_pod() {
        let pod = dind_job_pod(&run(), &KubeImages::default(), &job(), 1800);
        let spec = pod.spec.as_ref().unwrap();
        let dind = container(spec, DIND_CONTAINER);
        assert_eq!(dind.security_context.as_ref().unwrap().privileged, Some(true));
        let args = dind.args.as_ref().unwrap();
        assert_eq!(args[0], "dockerd", "both dind images need `dockerd` first to take these flags verbatim");
        assert!(args.contains(&"--host=tcp://127.0.0.1:2375".to_string()), "{args:?}");
        assert!(args.contains(&"--insecure-registry=registry:5000".to_string()));
        assert_eq!(dind.termination_message_policy.as_deref(), Some("FallbackToLogsOnError"), "a crash says why");
        assert_eq!(mount_path(dind, "dind-data"), crate::builder::dind::HOME.state_dir);
        let data = spec.volumes.as_ref().unwrap().iter().find(|v| v.name == "dind-data").unwrap();
        assert!(data.empty_dir.is_some(), "a fresh daemon per job starts from an empty /var/lib/docker");
        let job_container = container(spec, JOB_CONTAINER);
        assert!(job_container.security_context.is_none(), "only the daemon is privileged");
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.active_deadline_seconds, Some(1800));
        assert_eq!(pod.metadata.labels.as_ref().unwrap()[crate::RUN_ID_LABEL], "20261127T190501Z-flask");
        assert_eq!(pod.metadata.annotations.as_ref().unwrap()[PIPELINE_RUN_ANNOTATION], "edit app.py");
    }

    /// Every shared strategy's daemon: its own claim, Deployment, Service and NetworkPolicy, named after the
    /// strategy, and a policy that admits only its own strategy's job pods of this run, on its API port only.
    #[test]
    fn each_shared_daemon_keeps_its_state_on_a_claim_behind_a_policy_only_its_own_job_pods_pass() {
        let options = KubeOptions::default();
        let shared_strategies: Vec<Strategy> = Strategy::all().filter(|s| s.daemon.is_shared()).collect();
        assert_eq!(shared_strategies.len(), 3, "shared-dind, buildkit-shared, buildkit-daemon-shared");
        let mut names = std::collections::BTreeSet::new();
        for owner in shared_strategies {
            let home = crate::builder::daemon(owner.daemon.kind().unwrap());
            let shared = shared_daemon(&run(), &options, owner, home, 2);
            for name in [&shared.claim.metadata.name, &shared.deployment.metadata.name, &shared.policy.metadata.name] {
                assert!(names.insert(name.clone().unwrap()), "{owner}: {name:?} is another strategy's too");
            }
            let claim_spec = shared.claim.spec.as_ref().unwrap();
            assert_eq!(claim_spec.access_modes.as_deref(), Some(&["ReadWriteOnce".to_string()][..]));
            assert_eq!(claim_spec.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0, "20Gi");

            let deployment = shared.deployment.spec.as_ref().unwrap();
            assert_eq!(deployment.replicas, Some(1), "{owner}: one pod, on one node");
            assert_eq!(deployment.strategy.as_ref().unwrap().type_.as_deref(), Some("Recreate"));
            let template = &deployment.template;
            let pod_labels = template.metadata.as_ref().unwrap().labels.as_ref().unwrap();
            assert!(selects(deployment.selector.match_labels.as_ref().unwrap(), pod_labels));
            let pod = template.spec.as_ref().unwrap();
            let daemon = container(pod, home.service_name);
            assert_eq!(daemon.security_context.as_ref().unwrap().privileged, Some(true));
            assert!(daemon.args.as_ref().unwrap().iter().any(|a| a.contains(&format!("tcp://0.0.0.0:{}", home.api_port))), "{owner}");
            assert_eq!(mount_path(daemon, "daemon-state"), home.state_dir);
            let volume = pod.volumes.as_ref().unwrap().iter().find(|v| v.name == "daemon-state").unwrap();
            assert_eq!(volume.persistent_volume_claim.as_ref().unwrap().claim_name, shared.claim.metadata.name.clone().unwrap());

            let service = shared.service.spec.as_ref().unwrap();
            assert_eq!(shared.service.metadata.name.as_deref(), Some(owner.name()), "jobs use tcp://{owner}:{}", home.api_port);
            let port = &service.ports.as_ref().unwrap()[0];
            assert_eq!((port.port, port.target_port.clone()), (home.api_port.into(), Some(IntOrString::Int(home.api_port.into()))));
            assert!(selects(service.selector.as_ref().unwrap(), pod_labels));

            let policy = shared.policy.spec.as_ref().unwrap();
            assert!(selects(policy.pod_selector.as_ref().unwrap().match_labels.as_ref().unwrap(), pod_labels));
            assert_eq!(policy.policy_types.as_deref(), Some(&["Ingress".to_string()][..]));
            let rules = policy.ingress.as_ref().unwrap();
            assert_eq!(rules.len(), 1);
            let peers = rules[0].from.as_ref().unwrap();
            assert_eq!(peers.len(), 1);
            assert!(peers[0].namespace_selector.is_none(), "no other namespace may reach the daemon");
            let allowed = peers[0].pod_selector.as_ref().unwrap().match_labels.as_ref().unwrap();
            assert_policy_admits_only(allowed, owner, &options.images);
            assert!(!selects(allowed, pod_labels), "the daemon itself is no job");
            let ports = rules[0].ports.as_ref().unwrap();
            assert_eq!(ports[0].port, Some(IntOrString::Int(home.api_port.into())));
            assert_eq!(ports[0].protocol.as_deref(), Some("TCP"));
        }
    }

    /// `allowed` admits `owner`'s job pods of this run and no other pod the run makes: no other strategy's
    /// job pod, no daemon pod of any strategy (a build step of another daemon leaves with its labels), no
    /// job pod of another run.
    fn assert_policy_admits_only(allowed: &BTreeMap<String, String>, owner: Strategy, images: &KubeImages) {
        let labels_of = |pod: &Pod| pod.metadata.labels.clone().unwrap();
        let owners = job_for(owner);
        assert!(selects(allowed, &labels_of(&dind_job_pod(&run(), images, &owners, 60))), "{owner}'s job pods are admitted");
        for other in Strategy::all().filter(|s| *s != owner) {
            let other_job = job_for(other);
            let pod = dind_job_pod(&run(), images, &other_job, 60);
            assert!(!selects(allowed, &labels_of(&pod)), "{other}'s job pods are not admitted by {owner}'s daemon");
            if let Some(kind) = other.daemon.kind() {
                let daemon = job_daemon(&run(), images, &other_job, crate::builder::daemon(kind), 60).pod;
                assert!(!selects(allowed, &labels_of(&daemon)), "{other}'s daemon pods are not admitted by {owner}'s");
            }
        }
        let mut other_run = run();
        other_run.run_id = "another-run".into();
        let stranger = dind_job_pod(&other_run, images, &owners, 60);
        assert!(!selects(allowed, &labels_of(&stranger)), "another run's jobs are not");
    }

    /// A job's own buildkitd: a pod of its own that a policy opens to that job's pods alone, reached through a
    /// Service of its own; the job pod's builder is told that address.
    #[test]
    fn a_jobs_own_buildkitd_admits_that_jobs_pods_alone() {
        let home = &crate::builder::buildkitd::HOME;
        let images = KubeImages::default();
        let owner = job_for(Strategy::named("buildkit-daemon"));
        let own = job_daemon(&run(), &images, &owner, home, 60);
        let daemon_labels = own.pod.metadata.labels.clone().unwrap();
        let service = own.service.spec.as_ref().unwrap();
        assert!(selects(service.selector.as_ref().unwrap(), &daemon_labels));
        assert_eq!(service.ports.as_ref().unwrap()[0].port, 1234);
        let policy = own.policy.spec.as_ref().unwrap();
        assert!(selects(policy.pod_selector.as_ref().unwrap().match_labels.as_ref().unwrap(), &daemon_labels));
        let allowed = policy.ingress.as_ref().unwrap()[0].from.as_ref().unwrap()[0].pod_selector.clone().unwrap().match_labels.unwrap();
        let parts = context_config_maps(&run(), &owner.name, b"x").unwrap();
        let address = home.address(own.pod.metadata.name.as_deref().unwrap());
        let request = daemonless_op(JobBuilder::Buildctl);
        let at = JobDaemon::At(address.clone());
        let build = PodBuild { request: &request, dockerfile_path: Path::new("Dockerfile"), context_parts: &parts, daemon: &at };
        let job_pod = builder_job_pod(&run(), &images, &owner, &build, 60);
        assert!(selects(&allowed, job_pod.metadata.labels.as_ref().unwrap()), "the job's own pod is admitted");
        let build = container(job_pod.spec.as_ref().unwrap(), BUILD_CONTAINER);
        assert_eq!(build.env.as_ref().unwrap()[0].value.as_deref(), Some(address.as_str()), "BUILDKIT_HOST");
        let lane = JobMeta { name: "job-n2l2-i1-p0-buildkit-daemon".into(), ..owner.clone() };
        let other_lane = builder_job_pod(&run(), &images, &lane, &PodBuild { request: &request, dockerfile_path: Path::new("Dockerfile"), context_parts: &parts, daemon: &JobDaemon::None }, 60);
        assert!(!selects(&allowed, other_lane.metadata.labels.as_ref().unwrap()), "another lane's job is not");
        assert!(!selects(&allowed, &daemon_labels));
    }

    /// buildx's dind is a native sidecar of its job pod: it starts before the build and the build is told to
    /// use it on the pod's loopback; the containerd image store's daemon.json comes from the strategy's ConfigMap.
    #[test]
    fn buildx_jobs_get_their_dind_as_a_sidecar_with_its_configuration() {
        let images = KubeImages::default();
        let owner = job_for(Strategy::named("buildkit-registry"));
        let request = BuildRequest { builder: JobBuilder::Buildx, ..daemonless_op(JobBuilder::Buildx) };
        let home = &crate::builder::dind::HOME;
        let pod = builder_job_pod(&run(), &images, &owner, &PodBuild { request: &request, dockerfile_path: Path::new("Dockerfile"), context_parts: &[], daemon: &JobDaemon::Sidecar(home) }, 60);
        let spec = pod.spec.as_ref().unwrap();
        let init: Vec<&str> = spec.init_containers.as_ref().unwrap().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(init, [CONTEXT_CONTAINER, DIND_CONTAINER], "the context is unpacked, then the daemon starts");
        let dind = container(spec, DIND_CONTAINER);
        assert_eq!(dind.restart_policy.as_deref(), Some("Always"), "a native sidecar");
        assert!(dind.startup_probe.is_some() && dind.readiness_probe.is_none());
        assert!(dind.args.as_ref().unwrap().contains(&"--host=tcp://127.0.0.1:2375".to_string()));
        let config = dind.volume_mounts.as_ref().unwrap().iter().find(|m| m.name == "daemon-config").unwrap();
        assert_eq!((config.mount_path.as_str(), config.sub_path.as_deref()), (crate::builder::dind::DAEMON_JSON_PATH, Some("daemon.json")));
        assert_eq!(mount_path(dind, "daemon-scratch-0"), crate::builder::dind::CONTAINERD_DIR);
        let config_map = daemon_config(&run(), &images, owner.strategy).unwrap();
        let volume = spec.volumes.as_ref().unwrap().iter().find(|v| v.name == "daemon-config").unwrap();
        assert_eq!(volume.config_map.as_ref().unwrap().name, config_map.metadata.name.unwrap());
        assert!(config_map.data.unwrap()["daemon.json"].contains("containerd-snapshotter"));
        let build = container(spec, BUILD_CONTAINER);
        assert_eq!(build.env.as_ref().unwrap()[0].value.as_deref(), Some("tcp://127.0.0.1:2375"));
        assert!(build.args.as_ref().unwrap()[0].starts_with("trap "), "its container is read as its script exits");
        let anti = spec.affinity.as_ref().unwrap().pod_anti_affinity.as_ref().unwrap();
        let term = &anti.preferred_during_scheduling_ignored_during_execution.as_ref().unwrap()[0].pod_affinity_term;
        assert_eq!(term.topology_key, HOSTNAME_TOPOLOGY);
        assert!(selects(term.label_selector.as_ref().unwrap().match_labels.as_ref().unwrap(), pod.metadata.labels.as_ref().unwrap()), "lanes avoid each other's nodes");
        assert!(daemon_config(&run(), &images, Strategy::named("ephemeral-dind")).is_none(), "the graph driver needs no daemon.json");
    }

    #[test]
    fn registry_serves_5000_without_auth_from_an_empty_dir_configured_like_the_docker_backend() {
        let Registry { config, deployment, service } = registry(&run(), &KubeImages::default(), 1);
        let pod = deployment.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        let c = container(pod, REGISTRY_NAME);
        let script = &c.command.as_ref().unwrap()[2];
        assert!(script.contains(&format!("exec /entrypoint.sh {}", crate::registry::CONFIG_PATH)), "{script}");
        assert!(c.args.is_none(), "the image's CMD would follow the script as $0");
        let file = Path::new(crate::registry::CONFIG_PATH);
        assert_eq!(Path::new(mount_path(c, "registry-config")), file.parent().unwrap());
        let key = file.file_name().unwrap().to_str().unwrap();
        assert_eq!(config.data.as_ref().unwrap()[key], crate::registry::config_yaml());
        let volume = pod.volumes.as_ref().unwrap().iter().find(|v| v.name == "registry-config").unwrap();
        assert_eq!(volume.config_map.as_ref().unwrap().name, config.metadata.name.unwrap());
        assert_eq!(mount_path(c, "registry-data"), crate::registry::STORAGE_ROOT);
        assert_eq!(mount_path(c, "registry-log"), REGISTRY_LOG_DIR);
        let log = pod.volumes.as_ref().unwrap().iter().find(|v| v.name == "registry-log").unwrap();
        assert!(log.empty_dir.is_some(), "a fresh log with each iteration's registry");
        let port = &service.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
        assert_eq!(port.port, 5000);
        assert_eq!(format!("{}:{}", service.metadata.name.unwrap(), port.port), REGISTRY_HOST);
    }

    /// The registry's script in a real shell, with a stand-in entry point: what the registry prints
    /// reaches both the file and the container's log, and the line marks count it.
    #[test]
    fn the_registry_logs_to_its_file_and_to_the_container_log_alike() {
        let dir = tempfile::tempdir().unwrap();
        let log_dir = dir.path().join("log");
        std::fs::create_dir(&log_dir).unwrap();
        let entrypoint = dir.path().join("entrypoint.sh");
        std::fs::write(&entrypoint, "#!/bin/sh\necho \"config $1\"\necho 'GET /v2/ 200' >&2\n").unwrap();
        std::fs::set_permissions(&entrypoint, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let script = registry_command(entrypoint.to_str().unwrap(), log_dir.to_str().unwrap(), "/etc/r.yml");
        let out = std::process::Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // `output` reads until tee, which holds the container's stdout, has exited.
        let file = log_dir.join("access.log");
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text, "config /etc/r.yml\nGET /v2/ 200\n");
        assert_eq!(String::from_utf8_lossy(&out.stdout), text, "the container's log gets the same lines");
        let count = std::process::Command::new("sh")
            .arg("-c")
            .arg(access_log_lines_script().replace(REGISTRY_ACCESS_LOG, file.to_str().unwrap()))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&count.stdout).trim(), "2");
        let since = std::process::Command::new("sh")
            .arg("-c")
            .arg(access_log_since_script(1).replace(REGISTRY_ACCESS_LOG, file.to_str().unwrap()))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&since.stdout), "GET /v2/ 200\n");
    }

    #[test]
    fn buildah_pod_gets_sys_admin_and_unconfined_profiles_but_no_privileged_mode() {
        let op = daemonless_op(JobBuilder::Buildah);
        let parts = context_config_maps(&run(), "job-i1-p0-daemonless", &[7u8; 10]).unwrap();
        let pod = builder_job_pod(&run(), &KubeImages::default(), &job(), &PodBuild { request: &op, dockerfile_path: Path::new("docker/Dockerfile"), context_parts: &parts, daemon: &JobDaemon::None }, 60);
        let spec = pod.spec.as_ref().unwrap();
        let build = container(spec, BUILD_CONTAINER);
        let security = build.security_context.as_ref().unwrap();
        assert_eq!(security.privileged, None);
        assert_eq!(security.capabilities.as_ref().unwrap().add.as_deref(), Some(&["SYS_ADMIN".to_string()][..]));
        assert_eq!(security.seccomp_profile.as_ref().unwrap().type_, "Unconfined");
        assert_eq!(security.app_armor_profile.as_ref().unwrap().type_, "Unconfined");
        assert_eq!(mount_path(build, "builder-storage"), "/var/lib/containers");
        let script = &build.args.as_ref().unwrap()[0];
        assert!(script.contains(r#"-f '"/workspace/docker/Dockerfile"'"#), "{script}");
        assert!(script.contains("--cache-to=registry:5000/daemonless/app-cache"), "{script}");
        assert_eq!(script.matches("buildah --storage-driver=overlay push").count(), 2, "{script}");
        let unpack = container(spec, CONTEXT_CONTAINER);
        assert_eq!(mount_path(unpack, "context-parts"), CONTEXT_PARTS_DIR);
        assert_eq!(mount_path(unpack, "workspace"), mount_path(build, "workspace"));
    }

    #[test]
    fn apparmor_style_follows_the_api_servers_version() {
        assert_eq!(AppArmorStyle::for_server("1", "29"), AppArmorStyle::Annotation);
        assert_eq!(AppArmorStyle::for_server("1", "27+"), AppArmorStyle::Annotation, "as EKS and GKE report it");
        assert_eq!(AppArmorStyle::for_server("1", "30"), AppArmorStyle::Field);
        assert_eq!(AppArmorStyle::for_server("1", "33"), AppArmorStyle::Field);
        assert_eq!(AppArmorStyle::for_server("", ""), AppArmorStyle::Field, "unreadable: a current server");
        let mut old = run();
        old.apparmor = AppArmorStyle::Annotation;
        let op = daemonless_op(JobBuilder::Kaniko);
        let kaniko = builder_job_pod(&old, &KubeImages::default(), &job(), &PodBuild { request: &op, dockerfile_path: Path::new("Dockerfile"), context_parts: &[], daemon: &JobDaemon::None }, 60);
        let annotations = kaniko.metadata.annotations.unwrap();
        assert!(!annotations.contains_key(&apparmor_annotation(BUILD_CONTAINER)), "kaniko runs under the default profile");
    }

    #[test]
    fn kaniko_pod_passes_flags_only_and_trusts_the_plain_http_registry() {
        let op = daemonless_op(JobBuilder::Kaniko);
        let parts = context_config_maps(&run(), "job", &[1u8; 3]).unwrap();
        let pod = builder_job_pod(&run(), &KubeImages::default(), &job(), &PodBuild { request: &op, dockerfile_path: Path::new("Dockerfile"), context_parts: &parts, daemon: &JobDaemon::None }, 60);
        let build = container(pod.spec.as_ref().unwrap(), BUILD_CONTAINER);
        assert!(build.command.is_none(), "the executor is the image's entry point");
        let args = build.args.as_ref().unwrap();
        for expected in [
            "--context=dir:///workspace",
            "--dockerfile=/workspace/Dockerfile",
            "--destination=registry:5000/daemonless/app:latest",
            "--cache-repo=registry:5000/daemonless/app-cache",
            "--insecure-registry=registry:5000",
        ] {
            assert!(args.contains(&expected.to_string()), "{expected} missing from {args:?}");
        }
        assert!(build.security_context.is_none());
    }

    #[test]
    fn context_parts_reassemble_in_order_and_too_large_contexts_are_refused_with_a_way_out() {
        let tar: Vec<u8> = (0..(CONTEXT_PART_BYTES * 2 + 10)).map(|i| (i % 251) as u8).collect();
        let parts = context_config_maps(&run(), "job-i1-p0-daemonless", &tar).unwrap();
        assert_eq!(parts.len(), 3);
        let joined: Vec<u8> = parts.iter().flat_map(|cm| cm.binary_data.as_ref().unwrap()["part"].0.clone()).collect();
        assert_eq!(joined, tar);
        let buildah = daemonless_op(JobBuilder::Buildah);
        let pod = builder_job_pod(&run(), &KubeImages::default(), &job(), &PodBuild { request: &buildah, dockerfile_path: Path::new("Dockerfile"), context_parts: &parts, daemon: &JobDaemon::None }, 60);
        let volume = &pod.spec.as_ref().unwrap().volumes.as_ref().unwrap()[0];
        let sources = volume.projected.as_ref().unwrap().sources.as_ref().unwrap();
        let projected: Vec<(String, String)> = sources
            .iter()
            .map(|s| {
                let cm = s.config_map.as_ref().unwrap();
                (cm.name.clone(), cm.items.as_ref().unwrap()[0].path.clone())
            })
            .collect();
        assert_eq!(
            projected,
            vec![
                ("job-i1-p0-daemonless-ctx-0".to_string(), "part-000".to_string()),
                ("job-i1-p0-daemonless-ctx-1".to_string(), "part-001".to_string()),
                ("job-i1-p0-daemonless-ctx-2".to_string(), "part-002".to_string()),
            ]
        );
        let too_big = vec![0u8; CONTEXT_PART_BYTES * MAX_CONTEXT_PARTS + 1];
        let error = context_config_maps(&run(), "job", &too_big).unwrap_err().to_string();
        assert!(error.contains("dind strategy"), "{error}");
    }

    #[test]
    fn every_object_is_labelled_with_the_run_and_named_validly() {
        let options = KubeOptions::default();
        let mut long = run();
        long.run_id = format!("20261127T190501Z-{}", "very-long-scenario-name-".repeat(5));
        long.scenario = "Very Long Scenario Name ".repeat(5);
        let reg = registry(&long, &options.images, 1);
        let shared = shared_daemon(&long, &options, Strategy::named("shared-dind"), &crate::builder::dind::HOME, 1);
        let parts = context_config_maps(&long, "job-i1-p0-daemonless", b"x").unwrap();
        let op = daemonless_op(JobBuilder::Buildah);
        let objects: Vec<ObjectMeta> = vec![
            namespace(&long).metadata,
            reg.config.metadata,
            reg.deployment.metadata,
            reg.service.metadata,
            shared.claim.metadata,
            shared.deployment.metadata,
            shared.service.metadata,
            shared.policy.metadata,
            parts[0].metadata.clone(),
            dind_job_pod(&long, &options.images, &job(), 60).metadata,
            builder_job_pod(&long, &options.images, &job(), &PodBuild { request: &op, dockerfile_path: Path::new("Dockerfile"), context_parts: &parts, daemon: &JobDaemon::None }, 60).metadata,
        ];
        for meta in objects {
            let name = meta.name.unwrap();
            assert!(is_dns_label(&name), "{name}");
            let labels = meta.labels.unwrap();
            assert!(labels.contains_key(crate::RUN_ID_LABEL), "{name} lacks the run id label");
            for (key, value) in labels {
                assert!(is_label_value(&value), "{name}: {key}={value}");
            }
        }
    }

    #[test]
    fn a_hub_mirror_reaches_every_builder() {
        let images = KubeImages { hub_mirror: Some("10.0.0.5:5000".into()), ..KubeImages::default() };
        let dind = dind_job_pod(&run(), &images, &job(), 60);
        let args = container(dind.spec.as_ref().unwrap(), DIND_CONTAINER).args.clone().unwrap();
        assert!(args.contains(&"--registry-mirror=http://10.0.0.5:5000".to_string()), "{args:?}");
        assert!(args.contains(&"--insecure-registry=10.0.0.5:5000".to_string()), "{args:?}");
        let kaniko = builder_command(&daemonless_op(JobBuilder::Kaniko), Path::new("Dockerfile"), &images, None).args;
        assert!(kaniko.contains(&"--registry-mirror=10.0.0.5:5000".to_string()), "{kaniko:?}");
        let script = builder_command(&daemonless_op(JobBuilder::Buildah), Path::new("Dockerfile"), &images, None).args.remove(0);
        assert!(script.contains("location = \"10.0.0.5:5000\""), "{script}");
        let without = builder_command(&daemonless_op(JobBuilder::Buildah), Path::new("Dockerfile"), &KubeImages::default(), None).args.remove(0);
        assert!(!without.contains("[[registry.mirror]]"), "{without}");
    }

}
