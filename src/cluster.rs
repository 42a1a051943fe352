//! A local kind cluster for the kube backend, made offline: `layerbench cluster up` builds kind and its node
//! image ([`crate::toolchain::kind_node`]), creates the cluster of one control plane and `--nodes - 1` workers
//! (or reuses a running one of that size made from the same node image), checks each node and the add-ons,
//! and loads the toolchain images into it, as the README tells users to do with `kind load`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bollard::query_parameters::ListContainersOptionsBuilder;
use bollard::Docker;
use k8s_openapi::api::core::v1::Node;
use tokio::time::timeout;

use crate::backend::kube::unready;
use crate::events::EventSink;
use crate::toolchain::kind_node::{self, NodeImage};
use crate::toolchain::{self, Role, ToolchainConfig};

/// `kind create cluster` took about a minute here; it waits for the control plane itself.
const CREATE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Loading the toolchain images (about 1.5 GB) into the node.
const LOAD_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// CoreDNS, the storage provisioner and the network add-ons becoming available after creation.
const ADDONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Every node Ready: the workers join after the control plane, and each waits for its CNI agent.
const NODES_TIMEOUT: Duration = Duration::from_secs(4 * 60);
/// How often the nodes' Ready conditions are read while waiting.
const NODES_POLL: Duration = Duration::from_secs(2);
/// The label kind puts on every node container of a cluster, with the cluster's name as its value.
const KIND_CLUSTER_LABEL: &str = "io.x-k8s.kind.cluster";
/// The most nodes `--nodes` takes: each is a container running systemd, containerd and a kubelet.
pub const MAX_NODES: u32 = 8;

/// The toolchain images the kube backend's pods run: registry and mirror, dind (also its helper containers),
/// buildah, kaniko, buildkitd (and buildctl's job pods) and the job image (buildx's). The base image reaches the
/// builders through the run's Docker Hub mirror, not the nodes.
pub const KUBE_ROLES: [Role; 6] = [Role::Registry, Role::Dind, Role::Buildah, Role::Kaniko, Role::Buildkit, Role::Job];

#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// kind's cluster name; the kubeconfig context is `kind-NAME`.
    pub name: String,
    /// kind's cluster configuration; its `nodes` list is replaced by one control plane and `nodes - 1` workers.
    pub config: PathBuf,
    /// How many nodes: one control plane (which also runs jobs) and `nodes - 1` workers.
    pub nodes: u32,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions { name: "layerbench".into(), config: PathBuf::from("scenarios/kind-cluster.yaml"), nodes: 1 }
    }
}

/// A running cluster.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    /// The kubeconfig context kind wrote: `kind-NAME`.
    pub context: String,
    pub node_image: NodeImage,
    /// The node containers' names, control plane first.
    pub nodes: Vec<String>,
    /// Whether this call created it (false: a running one was reused).
    pub created: bool,
}

#[derive(Debug)]
pub struct ClusterError {
    pub message: String,
    pub hint: String,
}

impl std::fmt::Display for ClusterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.hint.is_empty() {
            true => f.write_str(&self.message),
            false => write!(f, "{}; {}", self.message, self.hint),
        }
    }
}

impl std::error::Error for ClusterError {}

/// A failure and what to do about it; an empty hint when the message already says (a toolchain error does).
fn error(message: impl Into<String>, hint: impl Into<String>) -> ClusterError {
    ClusterError { message: message.into(), hint: hint.into() }
}

/// Builds what is missing, then creates the cluster or reuses a running one of the same size and node image.
pub async fn up(
    docker: &Docker,
    config: &ToolchainConfig,
    options: &ClusterOptions,
    events: &EventSink,
) -> Result<Cluster, ClusterError> {
    let text = std::fs::read_to_string(&options.config).map_err(|e| {
        error(format!("cannot read the kind configuration {}: {e}", options.config.display()), "Run from the repository root, or pass --config")
    })?;
    let kind_config = kind_config(&text, options.nodes)
        .map_err(|e| error(format!("{}: {e}", options.config.display()), "See scenarios/kind-cluster.yaml"))?;
    let (kind, node_image) = kind_node::ensure(docker, config, events).await.map_err(|e| error(e.to_string(), ""))?;
    let kind = Kind { binary: kind };
    let control_plane = format!("{}-control-plane", options.name);
    let mut created = match plan(&node_containers(docker, &options.name).await?, &node_image.id, options.nodes as usize) {
        Plan::Reuse => {
            events.setup(format!("reusing the running kind cluster `{}` ({})", options.name, node_image.name));
            // The kubeconfig may have lost the context since (another kubeconfig, a deleted file).
            kind.run(&["export", "kubeconfig", "--name", &options.name], CREATE_TIMEOUT).await?;
            false
        }
        Plan::Recreate(why) => {
            events.notice(format!("kind cluster `{}` {why}; deleting and recreating it", options.name));
            kind.run(&["delete", "cluster", "--name", &options.name], CREATE_TIMEOUT).await?;
            create(&kind, options, &kind_config, &node_image, events).await?;
            true
        }
        Plan::Create => {
            create(&kind, options, &kind_config, &node_image, events).await?;
            true
        }
    };
    let nodes = match wait_until_healthy(&control_plane, options, events).await {
        Ok(nodes) => nodes,
        // A node restarted with its engine may not come back whole: make a new cluster rather than fail.
        Err(e) if !created => {
            events.notice(format!("the reused kind cluster `{}` is not healthy ({e}); deleting and recreating it", options.name));
            kind.run(&["delete", "cluster", "--name", &options.name], CREATE_TIMEOUT).await?;
            create(&kind, options, &kind_config, &node_image, events).await?;
            created = true;
            wait_until_healthy(&control_plane, options, events).await?
        }
        Err(e) => return Err(e),
    };
    load_toolchain(docker, config, &kind, &options.name, events).await?;
    Ok(Cluster { name: options.name.clone(), context: format!("kind-{}", options.name), node_image, nodes, created })
}

/// Every node Ready, jobs admitted on the control plane too, then the add-ons available; the node names,
/// control plane first.
async fn wait_until_healthy(control_plane: &str, options: &ClusterOptions, events: &EventSink) -> Result<Vec<String>, ClusterError> {
    let nodes = wait_for_nodes(control_plane, options, events).await?;
    schedule_on_control_plane(control_plane).await?;
    wait_for_addons(control_plane, events).await?;
    Ok(nodes)
}

/// kind taints the control plane of a cluster with workers (`node-role.kubernetes.io/control-plane:NoSchedule`),
/// as kubeadm does, so a two-node cluster would run every job on its one worker. A test cluster's control plane
/// is a node like the others: the taint is removed (a one-node cluster has none; removing none is no error).
async fn schedule_on_control_plane(control_plane: &str) -> Result<(), ClusterError> {
    let args = [
        "exec", control_plane, "kubectl", "--kubeconfig=/etc/kubernetes/admin.conf", "taint", "nodes", control_plane,
        "node-role.kubernetes.io/control-plane:NoSchedule-",
    ];
    match run_program(Path::new("docker"), &args, NODES_POLL * 10).await {
        Ok(_) => Ok(()),
        Err(message) if message.contains("not found") => Ok(()),
        Err(message) => Err(error(format!("cannot admit jobs on the control plane {control_plane}: {message}"), "")),
    }
}

/// Deletes the cluster (nothing to do when there is none).
pub async fn down(options: &ClusterOptions, events: &EventSink) -> Result<(), ClusterError> {
    let kind = Kind { binary: kind_binary(events).await? };
    kind.run(&["delete", "cluster", "--name", &options.name], CREATE_TIMEOUT).await.map(|_| ())
}

async fn kind_binary(events: &EventSink) -> Result<PathBuf, ClusterError> {
    kind_node::kind_binary(events).await.map_err(|e| error(e.to_string(), ""))
}

async fn create(
    kind: &Kind,
    options: &ClusterOptions,
    kind_config: &str,
    node: &NodeImage,
    events: &EventSink,
) -> Result<(), ClusterError> {
    let size = match options.nodes.saturating_sub(1) {
        0 => "one node".to_string(),
        1 => "a control plane and a worker".to_string(),
        workers => format!("a control plane and {workers} workers"),
    };
    events.setup(format!("creating kind cluster `{}` ({size}) from {} (Kubernetes {})", options.name, node.name, node.kubernetes));
    let started = Instant::now();
    // kind reads its configuration from a file: the rendered one, beside nothing of the user's.
    let path = std::env::temp_dir().join(format!("layerbench-kind-{}-{}.yaml", options.name, std::process::id()));
    std::fs::write(&path, kind_config)
        .map_err(|e| error(format!("cannot write {}: {e}", path.display()), "Set TMPDIR to a writable directory"))?;
    let config = path.to_string_lossy();
    let created = kind
        .run(&["create", "cluster", "--name", &options.name, "--image", &node.name, "--config", &config, "--wait", "5m"], CREATE_TIMEOUT)
        .await;
    let _ = std::fs::remove_file(&path);
    created?;
    events.setup(format!("created kind cluster `{}` in {:.1} s", options.name, started.elapsed().as_secs_f64()));
    Ok(())
}

/// kind's configuration for `nodes` nodes: the file's own, with its `nodes` list replaced by its control-plane
/// entry and `nodes - 1` copies of its first worker entry (plain `role:` entries when it has none).
pub fn kind_config(text: &str, nodes: u32) -> Result<String, String> {
    use serde_yaml::{Mapping, Value};
    if !(1..=MAX_NODES).contains(&nodes) {
        return Err(format!("{nodes} nodes asked; from 1 to {MAX_NODES}"));
    }
    let mut config: Value = serde_yaml::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    let map = config.as_mapping_mut().ok_or("not a kind configuration (a YAML mapping)")?;
    if map.get("kind").and_then(Value::as_str) != Some("Cluster") {
        return Err("not a kind cluster configuration (`kind: Cluster`)".into());
    }
    let cni_off = map.get("networking").and_then(|n| n.get("disableDefaultCNI")).and_then(Value::as_bool);
    if cni_off == Some(true) {
        return Err("`networking.disableDefaultCNI: true` would leave the nodes without the node image's network \
                    and policy add-ons, so no node would become Ready; remove it"
            .into());
    }
    let listed = map.get("nodes").and_then(Value::as_sequence).cloned().unwrap_or_default();
    let of_role = |role: &'static str| listed.iter().filter(move |n| n.get("role").and_then(Value::as_str) == Some(role));
    if of_role("control-plane").count() > 1 {
        return Err("lists more than one control-plane node; layerbench makes one control plane and --nodes - 1 workers".into());
    }
    let entry = |role: &'static str| {
        of_role(role).next().cloned().unwrap_or_else(|| Value::Mapping(Mapping::from_iter([("role".into(), role.into())])))
    };
    let mut rendered = vec![entry("control-plane")];
    rendered.extend(std::iter::repeat_n(entry("worker"), nodes as usize - 1));
    map.insert("nodes".into(), Value::Sequence(rendered));
    serde_yaml::to_string(&config).map_err(|e| format!("cannot write it back: {e}"))
}

/// One of a kind cluster's node containers.
#[derive(Debug, Clone, PartialEq)]
struct NodeContainer {
    name: String,
    /// The image ID it was created from.
    image: String,
    running: bool,
}

/// What `up` does with what exists.
#[derive(Debug, PartialEq)]
enum Plan {
    Create,
    Reuse,
    /// Why the running cluster is not the one asked for.
    Recreate(String),
}

fn plan(existing: &[NodeContainer], node_image: &str, nodes: usize) -> Plan {
    if existing.is_empty() {
        return Plan::Create;
    }
    if existing.len() != nodes {
        return Plan::Recreate(format!("has {} node{}, {nodes} asked", existing.len(), if existing.len() == 1 { "" } else { "s" }));
    }
    if let Some(other) = existing.iter().find(|n| n.image != node_image) {
        return Plan::Recreate(format!("runs another node image on {} ({})", other.name, other.image));
    }
    match existing.iter().find(|n| !n.running) {
        Some(stopped) => Plan::Recreate(format!("is not running ({})", stopped.name)),
        None => Plan::Reuse,
    }
}

/// The cluster's node containers, by kind's label; none when there is no such cluster.
async fn node_containers(docker: &Docker, cluster: &str) -> Result<Vec<NodeContainer>, ClusterError> {
    let label = format!("{KIND_CLUSTER_LABEL}={cluster}");
    let filters = std::collections::HashMap::from([("label", vec![label.as_str()])]);
    let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    let containers = docker.list_containers(Some(options)).await.map_err(|e| {
        error(format!("cannot list the containers labelled {label}: {}", crate::resources::engine_message(&e)), "Is the Docker engine running?")
    })?;
    let mut nodes: Vec<NodeContainer> = containers
        .into_iter()
        .map(|c| NodeContainer {
            name: c.names.and_then(|n| n.into_iter().next()).unwrap_or_default().trim_start_matches('/').to_string(),
            image: c.image_id.unwrap_or_default(),
            running: c.state.map(|s| s.to_string() == "running").unwrap_or(false),
        })
        .collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(nodes)
}

/// Every node of the cluster registered and Ready, read from the control plane's kubectl until `NODES_TIMEOUT`.
async fn wait_for_nodes(control_plane: &str, options: &ClusterOptions, events: &EventSink) -> Result<Vec<String>, ClusterError> {
    events.setup(format!("waiting for the {} node{} to be Ready", options.nodes, if options.nodes == 1 { "" } else { "s" }));
    let args = ["exec", control_plane, "kubectl", "--kubeconfig=/etc/kubernetes/admin.conf", "get", "nodes", "-o", "json"];
    let started = Instant::now();
    loop {
        let listed = run_program(Path::new("docker"), &args, NODES_POLL * 10).await.and_then(|json| {
            serde_json::from_str::<NodeList>(&json).map_err(|e| format!("kubectl get nodes printed no node list: {e}"))
        });
        let why = match listed {
            Ok(list) => match node_health(&list.items, options.nodes as usize) {
                Ok(names) => return Ok(names),
                Err(why) => why,
            },
            Err(why) => why,
        };
        if started.elapsed() >= NODES_TIMEOUT {
            return Err(error(
                format!("kind cluster `{}`: {why} after {} s", options.name, NODES_TIMEOUT.as_secs()),
                format!("`docker exec {control_plane} kubectl --kubeconfig=/etc/kubernetes/admin.conf describe nodes` says why"),
            ));
        }
        tokio::time::sleep(NODES_POLL).await;
    }
}

#[derive(serde::Deserialize)]
struct NodeList {
    items: Vec<Node>,
}

/// The node names when `expected` nodes are registered and each is Ready; else one line saying which is not.
fn node_health(nodes: &[Node], expected: usize) -> Result<Vec<String>, String> {
    let bad = unready(nodes);
    match bad.as_slice() {
        [] if nodes.len() >= expected => Ok(nodes.iter().filter_map(|n| n.metadata.name.clone()).collect()),
        [] => Err(format!("{} of {expected} nodes registered", nodes.len())),
        [one] => Err(format!("node {one} is not Ready")),
        many => Err(format!("nodes {} are not Ready", many.join("; "))),
    }
}

/// CoreDNS, the default StorageClass's provisioner and the node image's network add-ons (CNI and policy
/// agent on every node) rolled out: a run needs all of them at once.
async fn wait_for_addons(node: &str, events: &EventSink) -> Result<(), ClusterError> {
    events.setup("waiting for CoreDNS, the storage provisioner and the network add-ons".to_string());
    let timeout_arg = format!("--timeout={}s", ADDONS_TIMEOUT.as_secs());
    let mut workloads = vec![("kube-system", "deployment/coredns"), ("local-path-storage", "deployment/local-path-provisioner")];
    workloads.extend(kind_node::NETWORK_ADDONS);
    for (namespace, workload) in workloads {
        let args = [
            "exec", node, "kubectl", "--kubeconfig=/etc/kubernetes/admin.conf", "-n", namespace, "rollout", "status",
            workload, &timeout_arg,
        ];
        run_program(Path::new("docker"), &args, ADDONS_TIMEOUT + Duration::from_secs(30)).await.map_err(|message| {
            error(
                format!("{namespace}/{workload} did not become available: {message}"),
                format!("Look at `docker exec {node} kubectl --kubeconfig=/etc/kubernetes/admin.conf get pods -A -o wide`"),
            )
        })?;
    }
    Ok(())
}

/// `kind load docker-image` of the toolchain images the kube backend runs (kind skips those already there).
async fn load_toolchain(
    docker: &Docker,
    config: &ToolchainConfig,
    kind: &Kind,
    name: &str,
    events: &EventSink,
) -> Result<(), ClusterError> {
    let roles = KUBE_ROLES.into_iter().collect();
    let toolchain = toolchain::resolve_roles(docker, config, &roles, events).await.map_err(|e| error(e.to_string(), ""))?;
    let wanted: Vec<&str> = KUBE_ROLES.iter().map(|r| r.as_str()).collect();
    let images: Vec<String> =
        toolchain.images().into_iter().filter(|i| wanted.contains(&i.role.as_str())).map(|i| i.name).collect();
    events.setup(format!("loading {} toolchain images into kind cluster `{name}`", images.len()));
    let started = Instant::now();
    let mut args = vec!["load", "docker-image", "--name", name];
    args.extend(images.iter().map(String::as_str));
    kind.run(&args, LOAD_TIMEOUT).await?;
    events.setup(format!("loaded the toolchain images in {:.1} s", started.elapsed().as_secs_f64()));
    Ok(())
}

struct Kind {
    binary: PathBuf,
}

impl Kind {
    async fn run(&self, args: &[&str], limit: Duration) -> Result<String, ClusterError> {
        run_program(&self.binary, args, limit).await.map_err(|message| {
            error(
                format!("kind {}: {message}", args.iter().take(2).copied().collect::<Vec<_>>().join(" ")),
                "kind needs the `docker` CLI on PATH and DOCKER_HOST pointing at the engine (scripts/with-engine.sh sets both)",
            )
        })
    }
}

/// Runs a program to the end; its stdout, or its last lines of output as the error.
async fn run_program(program: &Path, args: &[&str], limit: Duration) -> Result<String, String> {
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let output = match timeout(limit, child.wait_with_output()).await {
        Err(_) => return Err(format!("not finished after {} s", limit.as_secs())),
        Ok(Err(e)) => return Err(format!("waiting for {}: {e}", program.display())),
        Ok(Ok(output)) => output,
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(format!("{} ({})", output.status, failure_reason(&format!("{stderr}\n{stdout}"))))
}

/// What a failed command printed that says why, on one line: kind ends a failure with a Go stack trace,
/// so its `ERROR:` line and what follows up to the trace; otherwise the last lines.
fn failure_reason(output: &str) -> String {
    let lines: Vec<&str> = output.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let reason: Vec<&str> = match lines.iter().position(|l| l.starts_with("ERROR:")) {
        Some(at) => lines[at..].iter().take_while(|l| !l.starts_with("Stack Trace:")).take(6).copied().collect(),
        None => lines[lines.len().saturating_sub(4)..].to_vec(),
    };
    reason.join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every image a strategy's pods run is loaded: all of them but the base image, which reaches the builders
    /// through the run's mirror.
    #[test]
    fn the_cluster_gets_every_image_the_strategies_pods_run() {
        let strategies: Vec<crate::strategy::Strategy> = crate::strategy::Strategy::all().collect();
        let needed = crate::builder::image_roles(&strategies);
        let loaded: std::collections::BTreeSet<super::Role> = super::KUBE_ROLES.into_iter().collect();
        let missing: Vec<&super::Role> = needed.iter().filter(|r| **r != super::Role::Base && !loaded.contains(r)).collect();
        assert!(missing.is_empty(), "not loaded into the cluster: {missing:?}");
    }

    const SCENARIO_CONFIG: &str = include_str!("../scenarios/kind-cluster.yaml");

    fn roles(rendered: &str) -> Vec<String> {
        let config: serde_yaml::Value = serde_yaml::from_str(rendered).unwrap();
        let nodes = config["nodes"].as_sequence().unwrap();
        nodes.iter().map(|n| n["role"].as_str().unwrap().to_string()).collect()
    }

    #[test]
    fn the_configuration_gets_one_control_plane_and_nodes_minus_one_workers() {
        assert_eq!(roles(&kind_config(SCENARIO_CONFIG, 1).unwrap()), ["control-plane"]);
        assert_eq!(roles(&kind_config(SCENARIO_CONFIG, 3).unwrap()), ["control-plane", "worker", "worker"]);
        // A worker entry of the file's is the model for every worker; the rest of the file is kept.
        let own = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n  podSubnet: 10.96.0.0/12\nnodes:\n\
                   - role: control-plane\n- role: worker\n  labels: {tier: build}\n";
        let rendered = kind_config(own, 3).unwrap();
        let config: serde_yaml::Value = serde_yaml::from_str(&rendered).unwrap();
        assert_eq!(config["nodes"][2]["labels"]["tier"].as_str(), Some("build"), "{rendered}");
        assert_eq!(config["networking"]["podSubnet"].as_str(), Some("10.96.0.0/12"), "{rendered}");
    }

    #[test]
    fn a_configuration_layerbench_cannot_size_is_refused_with_the_reason() {
        let two_planes = "kind: Cluster\nnodes:\n- role: control-plane\n- role: control-plane\n";
        assert!(kind_config(two_planes, 2).unwrap_err().contains("more than one control-plane"));
        let no_cni = "kind: Cluster\nnetworking:\n  disableDefaultCNI: true\n";
        assert!(kind_config(no_cni, 1).unwrap_err().contains("disableDefaultCNI"));
        assert!(kind_config("kind: Pod\n", 1).unwrap_err().contains("kind: Cluster"));
        assert!(kind_config(SCENARIO_CONFIG, 0).unwrap_err().contains("from 1 to"));
        assert!(kind_config(SCENARIO_CONFIG, MAX_NODES + 1).is_err());
    }

    fn container(name: &str, image: &str, running: bool) -> NodeContainer {
        NodeContainer { name: name.into(), image: image.into(), running }
    }

    #[test]
    fn a_running_cluster_of_another_size_or_image_is_recreated() {
        let two = [container("lb-control-plane", "sha256:a", true), container("lb-worker", "sha256:a", true)];
        assert_eq!(plan(&[], "sha256:a", 2), Plan::Create);
        assert_eq!(plan(&two, "sha256:a", 2), Plan::Reuse);
        assert_eq!(plan(&two[..1], "sha256:a", 2), Plan::Recreate("has 1 node, 2 asked".into()));
        assert_eq!(plan(&two, "sha256:a", 1), Plan::Recreate("has 2 nodes, 1 asked".into()));
        assert_eq!(plan(&two, "sha256:b", 2), Plan::Recreate("runs another node image on lb-control-plane (sha256:a)".into()));
        let stopped = [two[0].clone(), container("lb-worker", "sha256:a", false)];
        assert_eq!(plan(&stopped, "sha256:a", 2), Plan::Recreate("is not running (lb-worker)".into()));
    }

    fn node(name: &str, ready: &str) -> Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "status": {"conditions": [{"type": "Ready", "status": ready, "reason": "KubeletNotReady",
                "message": "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady"}]},
        }))
        .unwrap()
    }

    #[test]
    fn a_node_that_is_not_ready_is_named_on_one_line() {
        let nodes = [node("lb-control-plane", "True"), node("lb-worker", "False")];
        assert_eq!(
            node_health(&nodes, 2).unwrap_err(),
            "node lb-worker (KubeletNotReady: container runtime network not ready: NetworkReady=false \
             reason:NetworkPluginNotReady) is not Ready"
        );
        assert_eq!(node_health(&nodes[..1], 2).unwrap_err(), "1 of 2 nodes registered");
        assert_eq!(node_health(&nodes[..1], 1).unwrap(), ["lb-control-plane"]);
        let both = [node("lb-control-plane", "Unknown"), node("lb-worker", "False")];
        assert!(node_health(&both, 2).unwrap_err().starts_with("nodes lb-control-plane (KubeletNotReady"));
    }

    #[test]
    fn a_kind_failure_is_told_by_its_error_line_not_its_stack_trace() {
        let output = "Creating cluster \"layerbench\" ...\n \u{2713} Preparing nodes\n\
            ERROR: failed to create cluster: failed to init node with kubeadm: command \"docker exec\" failed with error: exit status 1\n\
            Command Output: I1203 kubeadm init timed out waiting for the condition\n\
            Stack Trace:\nsigs.k8s.io/kind/pkg/errors.WithStack\nruntime.goexit\n";
        let reason = failure_reason(output);
        assert!(reason.starts_with("ERROR: failed to create cluster"), "{reason}");
        assert!(reason.contains("timed out waiting for the condition"), "{reason}");
        assert!(!reason.contains("goexit"), "{reason}");
        assert_eq!(failure_reason("a\nb\nc\nd\ne\n"), "b | c | d | e");
    }
}
