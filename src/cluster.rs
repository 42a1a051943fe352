//! A local kind cluster for the kube backend, made offline: `layerbench cluster up` builds kind and its node
//! image ([`crate::toolchain::kind_node`]), creates the cluster (or reuses a running one made from the same
//! node image), and loads the toolchain images into it, as the README tells users to do with `kind load`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bollard::Docker;
use tokio::time::timeout;

use crate::events::EventSink;
use crate::resources::is_not_found;
use crate::toolchain::kind_node::{self, NodeImage};
use crate::toolchain::{self, Role, ToolchainConfig};

/// `kind create cluster` took about a minute here; it waits for the control plane itself.
const CREATE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Loading the toolchain images (about 1.5 GB) into the node.
const LOAD_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// CoreDNS and the storage provisioner becoming available after creation.
const ADDONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// The toolchain images the kube backend's pods run: registry and mirror, dind (also its helper containers),
/// buildah, kaniko, buildkitd (and buildctl's job pods) and the job image (buildx's). The base image reaches the
/// builders through the run's Docker Hub mirror, not the nodes.
pub const KUBE_ROLES: [Role; 6] = [Role::Registry, Role::Dind, Role::Buildah, Role::Kaniko, Role::Buildkit, Role::Job];

#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// kind's cluster name; the kubeconfig context is `kind-NAME`.
    pub name: String,
    /// kind's cluster configuration.
    pub config: PathBuf,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions { name: "layerbench".into(), config: PathBuf::from("scenarios/kind-cluster.yaml") }
    }
}

/// A running cluster.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    /// The kubeconfig context kind wrote: `kind-NAME`.
    pub context: String,
    pub node_image: NodeImage,
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

/// Builds what is missing, then creates the cluster or reuses a running one from the same node image.
pub async fn up(
    docker: &Docker,
    config: &ToolchainConfig,
    options: &ClusterOptions,
    events: &EventSink,
) -> Result<Cluster, ClusterError> {
    if !options.config.is_file() {
        return Err(error(
            format!("the kind configuration {} does not exist", options.config.display()),
            "Run from the repository root, or pass --config",
        ));
    }
    let (kind, node_image) = kind_node::ensure(docker, config, events).await.map_err(|e| error(e.to_string(), ""))?;
    let kind = Kind { binary: kind };
    let node = format!("{}-control-plane", options.name);
    let mut created = match node_container_image(docker, &node).await? {
        Some((image, true)) if image == node_image.id => {
            events.setup(format!("reusing the running kind cluster `{}` ({})", options.name, node_image.name));
            // The kubeconfig may have lost the context since (another kubeconfig, a deleted file).
            kind.run(&["export", "kubeconfig", "--name", &options.name], CREATE_TIMEOUT).await?;
            false
        }
        Some((image, running)) => {
            let why = if running { "runs another node image" } else { "is not running" };
            events.notice(format!("kind cluster `{}` {why} ({image}); deleting and recreating it", options.name));
            kind.run(&["delete", "cluster", "--name", &options.name], CREATE_TIMEOUT).await?;
            create(&kind, options, &node_image, events).await?;
            true
        }
        None => {
            create(&kind, options, &node_image, events).await?;
            true
        }
    };
    match wait_for_addons(&node, events).await {
        Ok(()) => {}
        // A node restarted with its engine may not come back whole: make a new cluster rather than fail.
        Err(e) if !created => {
            events.notice(format!("the reused kind cluster `{}` is not healthy ({e}); deleting and recreating it", options.name));
            kind.run(&["delete", "cluster", "--name", &options.name], CREATE_TIMEOUT).await?;
            create(&kind, options, &node_image, events).await?;
            wait_for_addons(&node, events).await?;
            created = true;
        }
        Err(e) => return Err(e),
    }
    load_toolchain(docker, config, &kind, &options.name, events).await?;
    Ok(Cluster { name: options.name.clone(), context: format!("kind-{}", options.name), node_image, created })
}

/// Deletes the cluster (nothing to do when there is none).
pub async fn down(options: &ClusterOptions, events: &EventSink) -> Result<(), ClusterError> {
    let kind = Kind { binary: kind_binary(events).await? };
    kind.run(&["delete", "cluster", "--name", &options.name], CREATE_TIMEOUT).await.map(|_| ())
}

async fn kind_binary(events: &EventSink) -> Result<PathBuf, ClusterError> {
    kind_node::kind_binary(events).await.map_err(|e| error(e.to_string(), ""))
}

async fn create(kind: &Kind, options: &ClusterOptions, node: &NodeImage, events: &EventSink) -> Result<(), ClusterError> {
    events.setup(format!("creating kind cluster `{}` from {} (Kubernetes {})", options.name, node.name, node.kubernetes));
    let started = Instant::now();
    let config = options.config.to_string_lossy();
    kind.run(
        &["create", "cluster", "--name", &options.name, "--image", &node.name, "--config", &config, "--wait", "5m"],
        CREATE_TIMEOUT,
    )
    .await?;
    events.setup(format!("created kind cluster `{}` in {:.1} s", options.name, started.elapsed().as_secs_f64()));
    Ok(())
}

/// The node container's image ID and whether it runs, or None when there is no such container.
async fn node_container_image(docker: &Docker, node: &str) -> Result<Option<(String, bool)>, ClusterError> {
    match docker.inspect_container(node, None).await {
        Ok(container) => {
            let running = container.state.and_then(|s| s.running).unwrap_or(false);
            Ok(Some((container.image.unwrap_or_default(), running)))
        }
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(error(format!("cannot inspect {node}: {}", crate::resources::engine_message(&e)), "Is the Docker engine running?")),
    }
}

/// CoreDNS and the default StorageClass's provisioner available: a run needs both at once.
async fn wait_for_addons(node: &str, events: &EventSink) -> Result<(), ClusterError> {
    events.setup("waiting for CoreDNS and the storage provisioner".to_string());
    let timeout_arg = format!("--timeout={}s", ADDONS_TIMEOUT.as_secs());
    for (namespace, deployment) in [("kube-system", "coredns"), ("local-path-storage", "local-path-provisioner")] {
        let args = [
            "exec", node, "kubectl", "--kubeconfig=/etc/kubernetes/admin.conf", "-n", namespace, "wait",
            "--for=condition=Available", &format!("deployment/{deployment}"), &timeout_arg,
        ];
        run_program(Path::new("docker"), &args, ADDONS_TIMEOUT + Duration::from_secs(30)).await.map_err(|message| {
            error(
                format!("{namespace}/{deployment} did not become available: {message}"),
                format!("Look at `docker exec {node} kubectl --kubeconfig=/etc/kubernetes/admin.conf get pods -A`"),
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

    #[test]
    fn a_kind_failure_is_told_by_its_error_line_not_its_stack_trace() {
        let output = "Creating cluster \"layerbench\" ...\n \u{2713} Preparing nodes\n\
            ERROR: failed to create cluster: failed to init node with kubeadm: command \"docker exec\" failed with error: exit status 1\n\
            Command Output: I1203 kubeadm init timed out waiting for the condition\n\
            Stack Trace:\nsigs.k8s.io/kind/pkg/errors.WithStack\nruntime.goexit\n";
        let reason = super::failure_reason(output);
        assert!(reason.starts_with("ERROR: failed to create cluster"), "{reason}");
        assert!(reason.contains("timed out waiting for the condition"), "{reason}");
        assert!(!reason.contains("goexit"), "{reason}");
        assert_eq!(super::failure_reason("a\nb\nc\nd\ne\n"), "b | c | d | e");
    }
}
