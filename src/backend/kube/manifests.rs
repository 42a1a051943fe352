//! Typed Kubernetes objects for each strategy: the registry, job pods, the shared dind daemon.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    AppArmorProfile, Capabilities, ConfigMap, ConfigMapProjection, Container, ContainerPort,
    EmptyDirVolumeSource, EnvVar, ExecAction, HTTPGetAction, KeyToPath, Namespace,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, Pod,
    PodSpec, PodTemplateSpec, Probe, ProjectedVolumeSource, SeccompProfile, SecurityContext,
    Service, ServicePort, ServiceSpec, Volume, VolumeMount, VolumeProjection,
    VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::ByteString;
use serde::Serialize;

use super::names;
use super::{KubeImages, KubeOptions};
use crate::strategy::{DaemonlessBuilder, Op};

pub const REGISTRY_NAME: &str = "registry";
pub const REGISTRY_PORT: i32 = 5000;
/// The registry as every daemon and builder in the namespace addresses it.
pub const REGISTRY_HOST: &str = "registry:5000";
pub const SHARED_DIND_NAME: &str = "dind";
pub const DIND_PORT: u16 = 2375;
pub const DIND_DATA_PATH: &str = "/var/lib/docker";
pub const SHARED_DIND_PVC: &str = "dind-docker";
pub const SHARED_DIND_POLICY: &str = "dind-only-from-jobs";

/// Container names inside job pods; the orchestration finds containers by these.
pub const DIND_CONTAINER: &str = "dind";
pub const JOB_CONTAINER: &str = "job";
pub const CONTEXT_CONTAINER: &str = "context";
pub const BUILD_CONTAINER: &str = "build";

/// Where a daemonless job pod unpacks its build context.
pub const CONTEXT_DIR: &str = "/workspace/context";
const CONTEXT_PARTS_DIR: &str = "/context-parts";
/// ConfigMaps hold at most 1 MiB; this leaves room for the object's own fields.
pub const CONTEXT_PART_BYTES: usize = 900 * 1024;
/// More parts than this and the context is not something to pass through the API server.
pub const MAX_CONTEXT_PARTS: usize = 16;

pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const COMPONENT: &str = "app.kubernetes.io/component";
pub const STRATEGY_LABEL: &str = "layerbench.io/strategy";
pub const ITERATION_LABEL: &str = "layerbench.io/iteration";
pub const PIPELINE_RUN_ANNOTATION: &str = "layerbench.io/pipeline-run";

/// What every object of one run shares: its namespace and its labels.
#[derive(Debug, Clone)]
pub struct RunMeta {
    pub run_id: String,
    pub namespace: String,
    pub scenario: String,
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

    /// `key=value,...` form of [`RunMeta::selector`] for list and watch calls.
    pub fn selector_string(&self, component: &str) -> String {
        join_selector(&self.selector(component))
    }

    fn meta(&self, name: &str, component: &str) -> ObjectMeta {
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

/// One job as its pod needs to know it.
#[derive(Debug, Clone)]
pub struct JobMeta<'a> {
    pub name: String,
    pub iteration: u32,
    pub pipeline_run: &'a str,
    pub strategy: &'a str,
}

impl JobMeta<'_> {
    fn pod_meta(&self, run: &RunMeta) -> ObjectMeta {
        let mut meta = run.meta(&self.name, "job");
        let labels = meta.labels.get_or_insert_with(BTreeMap::new);
        labels.insert(STRATEGY_LABEL.into(), names::label_value(self.strategy));
        labels.insert(ITERATION_LABEL.into(), self.iteration.to_string());
        // Annotations take any text, so the user's pipeline-run name is kept verbatim there.
        meta.annotations =
            Some(BTreeMap::from([(PIPELINE_RUN_ANNOTATION.to_string(), self.pipeline_run.to_string())]));
        meta
    }
}

/// Any object layerbench applies, so a list of them prints as one multi-document YAML.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
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

/// The run's registry: Distribution on plain HTTP, storage in an emptyDir so each iteration's
/// new pod starts empty.
pub fn registry(run: &RunMeta, images: &KubeImages, iteration: u32) -> (Deployment, Service) {
    let env = crate::registry::container_env()
        .into_iter()
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| env(k, v)))
        .collect();
    let container = Container {
        name: REGISTRY_NAME.into(),
        image: Some(images.registry.clone()),
        image_pull_policy: Some(PULL_POLICY.into()),
        env: Some(env),
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
        volume_mounts: Some(vec![mount("registry-data", crate::registry::STORAGE_ROOT)]),
        ..Default::default()
    };
    let pod = PodSpec {
        containers: vec![container],
        volumes: Some(vec![empty_dir("registry-data")]),
        termination_grace_period_seconds: Some(5),
        ..Default::default()
    };
    let deployment = single_replica(run, REGISTRY_NAME, "registry", iteration, pod);
    let service = service(run, REGISTRY_NAME, "registry", REGISTRY_PORT);
    (deployment, service)
}

/// A CI job with a dind service: the privileged daemon, and the job container a CI script
/// would run in. layerbench itself drives the daemon through a port-forward to it.
pub fn dind_job_pod(run: &RunMeta, images: &KubeImages, job: &JobMeta, timeout_s: u64) -> Pod {
    let dind = dind_container(images, "127.0.0.1", "dind-data");
    let job_container = Container {
        name: JOB_CONTAINER.into(),
        image: Some(images.helper.clone()),
        image_pull_policy: Some(PULL_POLICY.into()),
        // Stands where a CI script would run `docker build`; exits at once on SIGTERM.
        command: Some(sh("trap 'exit 0' TERM; while :; do sleep 1; done")),
        env: Some(vec![env("DOCKER_HOST", &format!("tcp://localhost:{DIND_PORT}"))]),
        ..Default::default()
    };
    Pod {
        metadata: job.pod_meta(run),
        spec: Some(PodSpec {
            containers: vec![dind, job_container],
            volumes: Some(vec![empty_dir("dind-data")]),
            ..job_pod_spec(timeout_s)
        }),
        ..Default::default()
    }
}

/// The shared daemon of `shared-dind`: a Deployment whose `/var/lib/docker` is a PVC, a
/// Service on 2375, and a NetworkPolicy that lets only the run's job pods reach it.
pub struct SharedDind {
    pub claim: PersistentVolumeClaim,
    pub deployment: Deployment,
    pub service: Service,
    pub policy: NetworkPolicy,
}

pub fn shared_dind(run: &RunMeta, options: &KubeOptions, iteration: u32) -> SharedDind {
    let claim = PersistentVolumeClaim {
        metadata: run.meta(SHARED_DIND_PVC, "dind"),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: options.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(options.shared_dind_storage.clone()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod = PodSpec {
        containers: vec![dind_container(&options.images, "0.0.0.0", "docker-data")],
        volumes: Some(vec![Volume {
            name: "docker-data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: SHARED_DIND_PVC.into(),
                read_only: None,
            }),
            ..Default::default()
        }]),
        termination_grace_period_seconds: Some(30),
        ..Default::default()
    };
    let mut deployment = single_replica(run, SHARED_DIND_NAME, "dind", iteration, pod);
    // A ReadWriteOnce volume cannot be mounted by an old and a new pod at once.
    if let Some(spec) = deployment.spec.as_mut() {
        spec.strategy = Some(DeploymentStrategy { type_: Some("Recreate".into()), rolling_update: None });
    }
    let service = service(run, SHARED_DIND_NAME, "dind", DIND_PORT.into());
    let policy = NetworkPolicy {
        metadata: run.meta(SHARED_DIND_POLICY, "dind"),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector { match_labels: Some(run.selector("dind")), ..Default::default() }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![NetworkPolicyPeer {
                    // No namespaceSelector: only pods of this namespace, and of them only this run's jobs.
                    pod_selector: Some(LabelSelector {
                        match_labels: Some(run.selector("job")),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::Int(DIND_PORT.into())),
                    protocol: Some("TCP".into()),
                    end_port: None,
                }]),
            }]),
            ..Default::default()
        }),
    };
    SharedDind { claim, deployment, service, policy }
}

/// The parts of a tarred build context, one ConfigMap each, in order.
pub fn context_config_maps(run: &RunMeta, job: &str, tar: &[u8]) -> Result<Vec<ConfigMap>, String> {
    let parts = tar.len().div_ceil(CONTEXT_PART_BYTES).max(1);
    if parts > MAX_CONTEXT_PARTS {
        return Err(format!(
            "the build context is {} bytes as a tar; daemonless jobs on Kubernetes carry it in at most \
             {MAX_CONTEXT_PARTS} ConfigMaps of {CONTEXT_PART_BYTES} bytes. Add a .dockerignore-style \
             trim of the context, or use a dind strategy, which uploads the context through the Docker API",
            tar.len()
        ));
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

/// A daemonless job: an init container unpacks the context from its ConfigMaps, then buildah
/// or kaniko builds and pushes.
pub fn daemonless_job_pod(
    run: &RunMeta,
    images: &KubeImages,
    job: &JobMeta,
    op: &Op,
    dockerfile_path: &Path,
    context_parts: &[ConfigMap],
    timeout_s: u64,
) -> Pod {
    let unpack = Container {
        name: CONTEXT_CONTAINER.into(),
        image: Some(images.helper.clone()),
        image_pull_policy: Some(PULL_POLICY.into()),
        // The glob sorts part-000, part-001, ... in order.
        command: Some(sh(&format!(
            "mkdir -p {CONTEXT_DIR} && cat {CONTEXT_PARTS_DIR}/part-* | tar -x -C {CONTEXT_DIR}"
        ))),
        volume_mounts: Some(vec![mount("context-parts", CONTEXT_PARTS_DIR), mount("workspace", "/workspace")]),
        ..Default::default()
    };
    let parts_volume = Volume {
        name: "context-parts".into(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(
                context_parts
                    .iter()
                    .enumerate()
                    .map(|(i, cm)| VolumeProjection {
                        config_map: Some(ConfigMapProjection {
                            name: cm.metadata.name.clone().unwrap_or_default(),
                            items: Some(vec![KeyToPath {
                                key: "part".into(),
                                path: format!("part-{i:03}"),
                                mode: None,
                            }]),
                            optional: Some(false),
                        }),
                        ..Default::default()
                    })
                    .collect(),
            ),
            default_mode: None,
        }),
        ..Default::default()
    };
    let mut volumes = vec![parts_volume, empty_dir("workspace")];
    let builder = match op {
        Op::DaemonlessBuild { builder: DaemonlessBuilder::Buildah, .. } => {
            volumes.push(empty_dir("containers-storage"));
            Container {
                name: BUILD_CONTAINER.into(),
                image: Some(images.buildah.clone()),
                image_pull_policy: Some(PULL_POLICY.into()),
                command: Some(sh(&daemonless_script(op, dockerfile_path))),
                env: Some(vec![env("BUILDAH_ISOLATION", "chroot")]),
                security_context: Some(SecurityContext {
                    capabilities: Some(Capabilities { add: Some(vec!["SYS_ADMIN".into()]), drop: None }),
                    seccomp_profile: Some(SeccompProfile { type_: "Unconfined".into(), localhost_profile: None }),
                    app_armor_profile: Some(AppArmorProfile { type_: "Unconfined".into(), localhost_profile: None }),
                    ..Default::default()
                }),
                // overlay on an emptyDir (a real filesystem on the node) is ~5x faster than vfs.
                volume_mounts: Some(vec![
                    mount("workspace", "/workspace"),
                    mount("containers-storage", "/var/lib/containers"),
                ]),
                ..Default::default()
            }
        }
        _ => Container {
            name: BUILD_CONTAINER.into(),
            // Callers refuse kaniko jobs without an image; an empty name would fail validation anyway.
            image: Some(images.kaniko.clone().unwrap_or_default()),
            image_pull_policy: Some(PULL_POLICY.into()),
            // The kaniko image has no shell: its entrypoint is the executor, given arguments only.
            args: Some(daemonless_args(op, dockerfile_path)),
            volume_mounts: Some(vec![mount("workspace", "/workspace")]),
            ..Default::default()
        },
    };
    Pod {
        metadata: job.pod_meta(run),
        spec: Some(PodSpec {
            init_containers: Some(vec![unpack]),
            containers: vec![builder],
            volumes: Some(volumes),
            ..job_pod_spec(timeout_s)
        }),
        ..Default::default()
    }
}

/// The shell script of a buildah job: build with layers cached in the registry, then push.
pub fn daemonless_script(op: &Op, dockerfile_path: &Path) -> String {
    let Op::DaemonlessBuild { destinations, cache_repo, .. } = op else {
        return "echo 'not a daemonless build' >&2; exit 2".into();
    };
    let dockerfile = format!("{CONTEXT_DIR}/{}", dockerfile_path.display());
    let mut build = vec![
        "buildah", "--storage-driver=overlay", "bud", "--layers", "--tls-verify=false",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    build.extend([format!("--cache-from={cache_repo}"), format!("--cache-to={cache_repo}")]);
    build.extend(["-f".into(), dockerfile]);
    for d in destinations {
        build.extend(["-t".into(), d.clone()]);
    }
    build.push(CONTEXT_DIR.into());
    let mut script = vec![shell_words(&build)];
    for d in destinations {
        script.push(shell_words(&[
            "buildah".into(),
            "--storage-driver=overlay".into(),
            "push".into(),
            "--tls-verify=false".into(),
            d.clone(),
        ]));
    }
    format!("set -e\n{}\n", script.join("\n"))
}

/// The kaniko executor's arguments for a daemonless build.
pub fn daemonless_args(op: &Op, dockerfile_path: &Path) -> Vec<String> {
    let Op::DaemonlessBuild { destinations, cache_repo, .. } = op else { return vec![] };
    let mut args = vec![
        format!("--context=dir://{CONTEXT_DIR}"),
        format!("--dockerfile={CONTEXT_DIR}/{}", dockerfile_path.display()),
    ];
    args.extend(destinations.iter().map(|d| format!("--destination={d}")));
    args.extend([
        "--cache=true".to_string(),
        format!("--cache-repo={cache_repo}"),
        // The run's registry speaks plain HTTP.
        format!("--insecure-registry={REGISTRY_HOST}"),
        format!("--skip-tls-verify-registry={REGISTRY_HOST}"),
    ]);
    args
}

/// How a job's plan reads as a CI script, for the comments of `layerbench manifests`.
pub fn op_as_command(op: &Op, dockerfile_path: &Path) -> String {
    match op {
        Op::Pull { image } => format!("docker pull {image} || true"),
        Op::Build { target, tags, cache_from } => {
            let mut words = vec!["docker".to_string(), "build".into()];
            if let Some(t) = target {
                words.extend(["--target".into(), t.clone()]);
            }
            for c in cache_from {
                words.extend(["--cache-from".into(), c.clone()]);
            }
            for t in tags {
                words.extend(["-t".into(), t.clone()]);
            }
            words.extend(["-f".into(), dockerfile_path.display().to_string(), ".".into()]);
            words.join(" ")
        }
        Op::Push { image } => format!("docker push {image}"),
        Op::DaemonlessBuild { builder: DaemonlessBuilder::Buildah, .. } => {
            daemonless_script(op, dockerfile_path).replace("set -e\n", "").trim_end().replace('\n', " && ")
        }
        Op::DaemonlessBuild { builder: DaemonlessBuilder::Kaniko, .. } => {
            format!("/kaniko/executor {}", daemonless_args(op, dockerfile_path).join(" "))
        }
    }
}

/// Toolchain images are often loaded into the cluster by hand (`kind load docker-image`);
/// `Always`, the default for `:latest`, would then fail on a cluster without registry access.
const PULL_POLICY: &str = "IfNotPresent";

/// A dind daemon. `bind` is where its API listens: the loopback of a job pod (reachable through
/// port-forward and from the pod's own containers only) or every interface behind a Service.
fn dind_container(images: &KubeImages, bind: &str, data_volume: &str) -> Container {
    Container {
        name: DIND_CONTAINER.into(),
        image: Some(images.dind.clone()),
        image_pull_policy: Some(PULL_POLICY.into()),
        // The first word `dockerd` makes both docker:dind's entrypoint and layerbench's own
        // dind image run exactly these flags, without adding their default listeners.
        args: Some(vec![
            "dockerd".into(),
            format!("--host=tcp://{bind}:{DIND_PORT}"),
            "--host=unix:///var/run/docker.sock".into(),
            "--tls=false".into(),
            format!("--insecure-registry={REGISTRY_HOST}"),
        ]),
        env: Some(vec![env("DOCKER_TLS_CERTDIR", "")]),
        ports: Some(vec![ContainerPort { container_port: DIND_PORT.into(), ..Default::default() }]),
        // A daemon runs containers with their own cgroups, mounts and iptables: privileged.
        security_context: Some(SecurityContext { privileged: Some(true), ..Default::default() }),
        readiness_probe: Some(Probe {
            exec: Some(ExecAction { command: Some(vec!["docker".into(), "version".into()]) }),
            period_seconds: Some(1),
            failure_threshold: Some(3),
            ..Default::default()
        }),
        // overlay2 cannot sit on the container's own overlay root filesystem.
        volume_mounts: Some(vec![mount(data_volume, DIND_DATA_PATH)]),
        ..Default::default()
    }
}

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

fn single_replica(run: &RunMeta, name: &str, component: &str, iteration: u32, spec: PodSpec) -> Deployment {
    let mut pod_labels = run.labels(component);
    // Tells this iteration's pod from a previous iteration's pod that is still terminating.
    pod_labels.insert(ITERATION_LABEL.into(), iteration.to_string());
    Deployment {
        metadata: run.meta(name, component),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector { match_labels: Some(run.selector(component)), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(pod_labels), ..Default::default() }),
                spec: Some(spec),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn service(run: &RunMeta, name: &str, component: &str, port: i32) -> Service {
    Service {
        metadata: run.meta(name, component),
        spec: Some(ServiceSpec {
            selector: Some(run.selector(component)),
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

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), value_from: None }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount { name: name.into(), mount_path: path.into(), ..Default::default() }
}

fn empty_dir(name: &str) -> Volume {
    Volume { name: name.into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() }
}

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

/// Quotes words for a POSIX shell, leaving plain ones readable.
fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            let plain = !w.is_empty()
                && w.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
            if plain {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
