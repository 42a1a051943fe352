//! The Kubernetes backend: each CI job is a pod in a per-run namespace.
//!
//! Layout of a run on the cluster (every object labelled `layerbench.run-id=<id>`):
//! - one namespace per run (or the one `--namespace` names);
//! - `registry`: Deployment and Service, replaced at each iteration so caches start empty;
//! - classic dind strategies: one pod per job with a privileged dind container; layerbench drives its API
//!   through a port-forward with bollard, exactly as on the docker backend;
//! - a strategy's shared daemon (`shared-dind`, `buildkit-shared`, `buildkit-daemon-shared`): a Deployment of
//!   its own with a PVC on the daemon's state, a Service and a NetworkPolicy admitting only its own job pods;
//! - builders in job pods (buildah, kaniko, buildx, buildctl): one pod per job, its build context in
//!   ConfigMaps; buildx's fresh dind beside it as a sidecar, buildctl's fresh buildkitd in a pod of its own
//!   (see docs/kubernetes.md).
//!
//! By job: `config` (what the backend is told), `backend` (the backend and its iterations), `services`
//! (mirror, registry, shared daemons), `jobs` (a job's pods), `meter` (what a job's containers used), `print`
//! (`layerbench manifests`), `clean` (`layerbench clean --backend kube`); `manifests` renders the objects,
//! `orchestrate` makes the API calls.

mod backend;
mod clean;
mod config;
mod follow;
pub mod forward;
mod jobs;
mod meter;
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
pub use print::{manifests_yaml, placement, MANIFESTS_RUN_ID};
