//! Ownership of labelled engine resources, and their removal on success, failure and Ctrl-C.
//!
//! Everything layerbench creates carries `layerbench.run-id=<id>`. Removal goes by that label rather
//! than by a list kept in memory, so it also works after a crash (`layerbench clean`) and when a job
//! was cancelled half-way through creating something.

use std::collections::HashMap;

use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
};
use bollard::Docker;

use crate::RUN_ID_LABEL;

/// Set to keep every resource of a run for debugging (same as `--keep`).
pub const KEEP_ENV: &str = "LAYERBENCH_KEEP";

pub fn keep_requested(flag: bool) -> bool {
    flag || std::env::var_os(KEEP_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// The labels every resource of a run carries.
pub fn run_labels(run_id: &str) -> HashMap<String, String> {
    HashMap::from([(RUN_ID_LABEL.to_string(), run_id.to_string())])
}

/// What a sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    pub containers: usize,
    pub volumes: usize,
    pub networks: usize,
}

impl Removed {
    pub fn total(&self) -> usize {
        self.containers + self.volumes + self.networks
    }
}

impl std::fmt::Display for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} containers, {} volumes, {} networks", self.containers, self.volumes, self.networks)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{action}: {source}")]
pub struct CleanupError {
    pub action: String,
    #[source]
    pub source: bollard::errors::Error,
}

/// Removes every container, volume and network labelled with `run_id` (or with any run id when
/// `None`). Containers go first (with their anonymous volumes), since they hold the others.
pub async fn remove_labelled(docker: &Docker, run_id: Option<&str>) -> Result<Removed, CleanupError> {
    let label = match run_id {
        Some(id) => format!("{RUN_ID_LABEL}={id}"),
        None => RUN_ID_LABEL.to_string(),
    };
    let filters: HashMap<&str, Vec<&str>> = HashMap::from([("label", vec![label.as_str()])]);
    let err = |action: &str| {
        let action = format!("{action} labelled {label}");
        move |source| CleanupError { action, source }
    };
    let mut removed = Removed::default();

    let containers = docker
        .list_containers(Some(ListContainersOptionsBuilder::default().all(true).filters(&filters).build()))
        .await
        .map_err(err("list containers"))?;
    for c in containers {
        let Some(id) = c.id else { continue };
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        match docker.remove_container(&id, Some(options)).await {
            Ok(()) => removed.containers += 1,
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(err("remove container")(e)),
        }
    }

    let volumes = docker
        .list_volumes(Some(ListVolumesOptionsBuilder::default().filters(&filters).build()))
        .await
        .map_err(err("list volumes"))?;
    for v in volumes.volumes.unwrap_or_default() {
        let options = RemoveVolumeOptionsBuilder::default().force(true).build();
        match docker.remove_volume(&v.name, Some(options)).await {
            Ok(()) => removed.volumes += 1,
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(err("remove volume")(e)),
        }
    }

    let networks = docker
        .list_networks(Some(ListNetworksOptionsBuilder::default().filters(&filters).build()))
        .await
        .map_err(err("list networks"))?;
    for n in networks {
        let Some(id) = n.id else { continue };
        match docker.remove_network(&id).await {
            Ok(()) => removed.networks += 1,
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(err("remove network")(e)),
        }
    }
    Ok(removed)
}

/// An engine error in one line of the daemon's own words; bollard's `Display` adds HTTP plumbing.
pub fn engine_message(error: &bollard::errors::Error) -> String {
    use bollard::errors::Error::*;
    let text = match error {
        DockerResponseServerError { message, .. } => message.clone(),
        DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A 404 on delete means the resource is already gone.
pub fn is_not_found(error: &bollard::errors::Error) -> bool {
    matches!(error, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}
