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
//!
//! By job: `config` (what the backend is told), `backend` (the backend and its iterations), `services`
//! (mirror, registry, shared daemon), `jobs` (a job's pods), `print` (`layerbench manifests`), `clean`
//! (`layerbench clean --backend kube`); `manifests` renders the objects, `orchestrate` makes the API calls.

mod backend;
mod clean;
mod config;
mod follow;
pub mod forward;
mod jobs;
pub mod manifests;
pub mod mirror;
pub mod names;
mod nodes;
pub mod orchestrate;
mod print;
mod services;

#[cfg(test)]
mod mock;
#[cfg(test)]
mod tests;

pub use backend::KubeBackend;
pub use clean::{clean, clean_with};
pub use config::{HubMirrorError, KubeImages, KubeOptions, KubeTimeouts};
pub use nodes::unready;
pub use print::{manifests_yaml, MANIFESTS_RUN_ID};

use crate::strategy::{DaemonKind, JobBuilder, Strategy};

/// Whether the kube backend runs `strategy`. It has one shared daemon per iteration and drives it with the
/// classic builder only: a BuildKit job there would share shared-dind's daemon and cache, and it has no
/// standalone buildkitd yet, so the BuildKit strategies are refused (by the CLI, before a run starts).
pub fn runs_on_kube(strategy: Strategy) -> bool {
    let buildkit_job = strategy.job_builders().iter().any(|b| matches!(b, JobBuilder::Buildx | JobBuilder::Buildctl));
    !buildkit_job && strategy.daemon.kind() != Some(DaemonKind::Buildkit)
}

/// The strategies the kube backend runs, in the registry's order.
pub fn kube_strategies() -> Vec<Strategy> {
    Strategy::all().filter(|s| runs_on_kube(*s)).collect()
}

/// Why a standalone-buildkitd strategy is refused here (the CLI refuses it before a run starts).
const BUILDKITD_NOT_YET: &str = "the standalone BuildKit strategies do not run on the kube backend yet";
