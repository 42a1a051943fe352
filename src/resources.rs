//! Ownership of labelled engine resources, and their removal on success, failure and Ctrl-C.
//!
//! Everything layerbench creates carries `layerbench.run-id=<id>`. Removal goes by that label rather
//! than by a list kept in memory, so it also works after a crash (`layerbench clean`) and when a job
//! was cancelled half-way through creating something.
//!
//! Image tags cannot carry labels. The only tags a run makes are the mirror-seeding ones,
//! `127.0.0.1:<port>/<path>:<tag>` (`library/python:3.11-slim`, `gcr.io/distroless/static:nonroot`), where
//! `<port>` is the loopback port of the run's labelled mirror: they are found through that port.

use std::collections::{BTreeSet, HashMap};

use bollard::models::ContainerSummary;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, ListNetworksOptionsBuilder,
    ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
    RemoveVolumeOptionsBuilder,
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

/// The address the mirror is published on, and the registry host of its seeding tags.
pub const MIRROR_HOST: &str = "127.0.0.1";
/// The port a registry (the mirror included) serves inside its container.
pub const REGISTRY_PORT: u16 = 5000;

/// What a sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    pub containers: usize,
    pub volumes: usize,
    pub networks: usize,
    /// Mirror-seeding image tags (the images themselves stay).
    pub tags: usize,
}

impl std::fmt::Display for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} containers, {} volumes, {} networks, {} image tags",
            self.containers, self.volumes, self.networks, self.tags
        )
    }
}

/// Displays the engine's error itself, so it has no `source()` that `{:#}` would print again.
#[derive(Debug, thiserror::Error)]
#[error("{action}: {}", engine_message(error))]
pub struct CleanupError {
    pub action: String,
    pub error: bollard::errors::Error,
}

/// Removes every container, volume and network labelled with `run_id` (or with any run id when
/// `None`), and the mirror-seeding tags of its mirrors. Containers go first (with their anonymous
/// volumes), since they hold the others.
///
/// With `None` (`layerbench clean`) it also removes seeding tags whose mirror is already gone, as
/// interrupted runs left them before this sweep removed them (see [`seeding_tags`]).
pub async fn remove_labelled(docker: &Docker, run_id: Option<&str>) -> Result<Removed, CleanupError> {
    let label = match run_id {
        Some(id) => format!("{RUN_ID_LABEL}={id}"),
        None => RUN_ID_LABEL.to_string(),
    };
    let sweep = Sweep { docker, label: &label };
    let mut removed = Removed::default();
    let containers = docker
        .list_containers(Some(ListContainersOptionsBuilder::default().all(true).filters(&sweep.filters()).build()))
        .await
        .map_err(sweep.err("list containers"))?;
    let mirror_ports = loopback_registry_ports(&containers);
    // A port some other container still publishes belongs to it, not to a mirror that is gone.
    let orphans_but = match run_id {
        Some(_) => None,
        None => Some(loopback_registry_ports(
            &docker.list_containers(Some(ListContainersOptionsBuilder::default().build())).await.map_err(sweep.err("list containers"))?,
        )),
    };
    removed.containers = sweep.containers(containers).await?;
    removed.tags = sweep.seeding_tags(&mirror_ports, orphans_but.as_ref()).await?;
    removed.volumes = sweep.volumes().await?;
    removed.networks = sweep.networks().await?;
    Ok(removed)
}

/// One sweep by label: each kind of resource removed in turn, a 404 counted as already gone.
struct Sweep<'a> {
    docker: &'a Docker,
    label: &'a str,
}

impl Sweep<'_> {
    fn filters(&self) -> HashMap<&str, Vec<&str>> {
        HashMap::from([("label", vec![self.label])])
    }

    fn err(&self, action: &str) -> impl FnOnce(bollard::errors::Error) -> CleanupError {
        let action = format!("{action} labelled {}", self.label);
        move |error| CleanupError { action, error }
    }

    async fn containers(&self, containers: Vec<ContainerSummary>) -> Result<usize, CleanupError> {
        let mut removed = 0;
        for c in containers {
            let Some(id) = c.id else { continue };
            let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
            match self.docker.remove_container(&id, Some(options)).await {
                Ok(()) => removed += 1,
                Err(e) if is_not_found(&e) => {}
                // A job's owner is removing it right now (Ctrl-C arrived mid-teardown): it is on its way
                // to the state we want. Wait for it to go, since its volumes are freed only then.
                Err(e) if removal_in_progress(&e) => wait_until_gone(self.docker, &id).await.map_err(self.err("remove container"))?,
                Err(e) => return Err(self.err("remove container")(e)),
            }
        }
        Ok(removed)
    }

    async fn seeding_tags(&self, mirror_ports: &BTreeSet<u16>, orphans_but: Option<&BTreeSet<u16>>) -> Result<usize, CleanupError> {
        let images = self
            .docker
            .list_images(Some(ListImagesOptionsBuilder::default().build()))
            .await
            .map_err(|error| CleanupError { action: "list images".into(), error })?;
        let tags: Vec<Vec<String>> = images.into_iter().map(|i| i.repo_tags).collect();
        let mut removed = 0;
        for tag in seeding_tags(&tags, mirror_ports, orphans_but) {
            // noprune: the tag goes, the image it names (the base image or its stand-in) stays.
            let options = RemoveImageOptionsBuilder::default().noprune(true).build();
            match self.docker.remove_image(&tag, Some(options), None).await {
                Ok(_) => removed += 1,
                Err(e) if is_not_found(&e) => {}
                Err(error) => return Err(CleanupError { action: format!("remove image tag {tag}"), error }),
            }
        }
        Ok(removed)
    }

    async fn volumes(&self) -> Result<usize, CleanupError> {
        let volumes = self
            .docker
            .list_volumes(Some(ListVolumesOptionsBuilder::default().filters(&self.filters()).build()))
            .await
            .map_err(self.err("list volumes"))?;
        let mut removed = 0;
        for v in volumes.volumes.unwrap_or_default() {
            let options = RemoveVolumeOptionsBuilder::default().force(true).build();
            match self.docker.remove_volume(&v.name, Some(options)).await {
                Ok(()) => removed += 1,
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(self.err("remove volume")(e)),
            }
        }
        Ok(removed)
    }

    async fn networks(&self) -> Result<usize, CleanupError> {
        let networks = self
            .docker
            .list_networks(Some(ListNetworksOptionsBuilder::default().filters(&self.filters()).build()))
            .await
            .map_err(self.err("list networks"))?;
        let mut removed = 0;
        for n in networks {
            let Some(id) = n.id else { continue };
            match self.docker.remove_network(&id).await {
                Ok(()) => removed += 1,
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(self.err("remove network")(e)),
            }
        }
        Ok(removed)
    }
}

/// The host ports of `containers` that publish a registry on the mirror's loopback address.
fn loopback_registry_ports(containers: &[ContainerSummary]) -> BTreeSet<u16> {
    containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.private_port == REGISTRY_PORT && p.ip.as_deref() == Some(MIRROR_HOST))
        .filter_map(|p| p.public_port)
        .collect()
}

/// The mirror-seeding tags among `images` (each image's tags): `127.0.0.1:<port>/<path>:<tag>`
/// where `<port>` is one of `mirrors`. With `orphans_but`, also such a tag on any port outside it
/// when it is a second name of the very image seeding gives it (the image is also tagged `<name>:<tag>`,
/// `<path>` being `library/<name>`, or `<prefix>/<name>:<tag>` as a stand-in is): a seeding tag
/// whose mirror was removed without it.
pub fn seeding_tags(
    images: &[Vec<String>],
    mirrors: &BTreeSet<u16>,
    orphans_but: Option<&BTreeSet<u16>>,
) -> Vec<String> {
    let mut found = vec![];
    for tags in images {
        for tag in tags {
            let address = tag.strip_prefix(MIRROR_HOST).and_then(|t| t.strip_prefix(':'));
            let Some((port, rest)) = address.and_then(|t| t.split_once('/')) else { continue };
            let Ok(port) = port.parse::<u16>() else { continue };
            let hub_name = rest.strip_prefix("library/").unwrap_or(rest);
            let names_the_seeded_image = |other: &String| {
                !other.starts_with(MIRROR_HOST) && (other == hub_name || other.ends_with(&format!("/{hub_name}")))
            };
            let seeded = mirrors.contains(&port)
                || orphans_but.is_some_and(|busy| !busy.contains(&port) && tags.iter().any(names_the_seeded_image));
            if seeded {
                found.push(tag.clone());
            }
        }
    }
    found
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

/// The engine's 409 for a container that another request is already removing.
fn removal_in_progress(error: &bollard::errors::Error) -> bool {
    matches!(error, bollard::errors::Error::DockerResponseServerError { status_code: 409, message }
        if message.contains("already in progress"))
}

/// Polls until the container `id` no longer exists; the engine's own error after 60 s.
async fn wait_until_gone(docker: &Docker, id: &str) -> Result<(), bollard::errors::Error> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match docker.inspect_container(id, None).await {
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(e),
            Ok(_) if tokio::time::Instant::now() >= deadline => {
                return Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 409,
                    message: format!("container {id} was still being removed after 60 s"),
                })
            }
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn seeding_tags_are_the_mirrors_and_second_names_of_seeded_images() {
        let images = vec![
            tags(&["python:3.11-slim", "127.0.0.1:40001/library/python:3.11-slim"]),
            tags(&["layerbench-local/python:3.11-slim", "127.0.0.1:40002/library/python:3.11-slim"]),
            // A user's own local registry: its only name, or another image than the one it names.
            tags(&["127.0.0.1:5000/team/app:1"]),
            tags(&["127.0.0.1:40003/library/python:3.11-slim"]),
            tags(&["127.0.0.1:40004/library/python:3.12", "python:3.11-slim"]),
        ];
        let ports = |p: &[u16]| p.iter().copied().collect::<BTreeSet<u16>>();
        // A run sweeps the tags of its own mirror only.
        assert_eq!(seeding_tags(&images, &ports(&[40001]), None), ["127.0.0.1:40001/library/python:3.11-slim"]);
        assert_eq!(seeding_tags(&images, &ports(&[40003]), None), ["127.0.0.1:40003/library/python:3.11-slim"]);
        // `clean` also finds those whose mirror is gone, unless a container still publishes the port.
        assert_eq!(
            seeding_tags(&images, &ports(&[]), Some(&ports(&[]))),
            ["127.0.0.1:40001/library/python:3.11-slim", "127.0.0.1:40002/library/python:3.11-slim"]
        );
        assert_eq!(
            seeding_tags(&images, &ports(&[]), Some(&ports(&[40001]))),
            ["127.0.0.1:40002/library/python:3.11-slim"]
        );
    }
}
