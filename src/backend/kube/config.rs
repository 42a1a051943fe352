//! What the kube backend is told: the images the cluster runs, the bounds of its waits, and its options.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::config::KubeConfigOptions;
use kube::{Client, Config};

use crate::backend::BackendError;
use crate::toolchain::{Role, Toolchain, ToolchainConfig, ROLES};

/// Images the cluster runs, by role, under the names the cluster pulls them by. The cluster pulls them
/// itself: load them into it when it is offline.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeImages {
    /// The toolchain images; the builder and daemon homes (`crate::builder`) say which role each runs.
    /// A role without an image makes the jobs that need it fail and say so.
    pub by_role: BTreeMap<Role, String>,
    /// Needs `sh` and `tar`: unpacks daemonless build contexts and stands in for a CI job container.
    pub helper: String,
    /// A plain-HTTP registry (`host:port`) that mirrors Docker Hub for the images Dockerfiles
    /// start `FROM`, for clusters that cannot reach Docker Hub. Reachable from the pods.
    pub hub_mirror: Option<String>,
}

impl Default for KubeImages {
    /// The official images.
    fn default() -> Self {
        let official = ToolchainConfig::default();
        KubeImages {
            by_role: ROLES.into_iter().map(|role| (role, official.official(role).to_string())).collect(),
            helper: official.dind.clone(),
            hub_mirror: None,
        }
    }
}

impl KubeImages {
    /// The images the local engine resolved: official names or layerbench's stand-ins, which is
    /// what `kind load docker-image` copies into a kind cluster.
    pub fn from_toolchain(toolchain: &Toolchain) -> Self {
        let by_role: BTreeMap<Role, String> = ROLES.into_iter().filter_map(|r| Some((r, toolchain.get(r)?.name.clone()))).collect();
        // The session always resolves dind for this backend: its helper pods run the dind image.
        let helper = by_role.get(&Role::Dind).cloned().unwrap_or_default();
        KubeImages { by_role, helper, hub_mirror: None }
    }

    /// The image of `role`, if there is one.
    pub fn get(&self, role: Role) -> Option<&str> {
        self.by_role.get(&role).map(String::as_str)
    }

    /// The image of `role`; an empty name (which the API server refuses) when there is none: callers
    /// that run jobs check [`KubeImages::get`] first and fail the job with its reason.
    pub fn name(&self, role: Role) -> String {
        self.get(role).unwrap_or_default().to_string()
    }
}

/// The run's own mirror as pods see it (its Service, in the run's namespace).
pub const MIRROR_HOST: &str = "mirror:5000";

/// Where the builders' Docker Hub mirror comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum HubMirror {
    /// layerbench deploys one per run, seeded from the local engine (the default).
    #[default]
    Deploy,
    /// An existing mirror, `host:port`, reachable from the pods over plain HTTP.
    External(String),
    /// No mirror: builders pull from Docker Hub.
    Off,
}

impl HubMirror {
    /// `--hub-mirror`: `HOST:PORT` (a DNS name or an IPv4 address, and a port), or `none`. The address goes
    /// into every daemon's and builder's configuration (dockerd flags, buildah's registries.conf, kaniko's
    /// flags), so anything else is refused here rather than quoted there.
    pub fn parse(value: &str) -> Result<HubMirror, HubMirrorError> {
        let value = value.trim();
        if value == "none" {
            return Ok(HubMirror::Off);
        }
        // Shown escaped: a value with a line break still makes one line.
        let refuse = |why: &str| HubMirrorError { value: value.escape_debug().to_string(), why: why.to_string() };
        let (host, port) = value.rsplit_once(':').ok_or_else(|| refuse("it has no `:PORT`"))?;
        let label_ok = |l: &str| {
            !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-') && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
            return Err(refuse("the host is not a DNS name or an IPv4 address (letters, digits, `-` and `.`)"));
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => Ok(HubMirror::External(value.to_string())),
            _ => Err(refuse("the port is not a number from 1 to 65535")),
        }
    }

    /// The mirror's address as the pods' builders are given it.
    pub fn address(&self) -> Option<String> {
        match self {
            HubMirror::Deploy => Some(MIRROR_HOST.into()),
            HubMirror::External(address) => Some(address.clone()),
            HubMirror::Off => None,
        }
    }
}

/// A `--hub-mirror` value that is neither `HOST:PORT` nor `none`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--hub-mirror `{value}` is not HOST:PORT or `none`: {why} (no scheme or path; the mirror is plain HTTP)")]
pub struct HubMirrorError {
    pub value: String,
    pub why: String,
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
            // The same limit as on every backend.
            job: crate::job::JOB_TIMEOUT,
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
    /// Size requested for each shared daemon's state (`/var/lib/docker`, `/var/lib/buildkit`), as a Kubernetes quantity.
    pub shared_daemon_storage: String,
    /// Where the builders' Docker Hub mirror comes from (see [`mirror`]).
    pub hub_mirror: HubMirror,
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
            shared_daemon_storage: "20Gi".into(),
            hub_mirror: HubMirror::Deploy,
            timeouts: KubeTimeouts::default(),
        }
    }
}

/// A client for the kubeconfig context `options` names (or the current one).
pub(super) async fn client_for(options: &KubeOptions) -> Result<Client, BackendError> {
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
