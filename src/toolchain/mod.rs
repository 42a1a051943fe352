//! Toolchain images: pulled under their official names, or built from Debian packages (and Go modules) when that fails.

pub mod bases;
mod go_build;
pub mod kind_node;
mod stand_in;

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use bollard::query_parameters::CreateImageOptionsBuilder;
use bollard::Docker;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::events::EventSink;
use crate::reference::{Reference, ReferenceError};
use crate::resources::is_not_found;
use crate::results::{ImageInfo, ImageSource};

pub use stand_in::stand_in_name;

/// Label on every stand-in image, so nobody mistakes one for the official image.
pub const STAND_IN_LABEL: &str = "layerbench.stand-in";
/// Label holding the hash of the recipe a stand-in was built from; another hash means rebuild it.
pub const RECIPE_LABEL: &str = "layerbench.recipe";
/// Label on a stand-in whose programs were built from Go modules: `MODULE@VERSION (go build, goX.Y.Z)`.
pub const BUILT_FROM_LABEL: &str = "layerbench.built-from";

/// A pull that reports nothing for this long is stuck; large layers still report progress more often.
const PULL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// What an image is for; the builder and daemon homes name the role they run in. Each role's official image and
/// its stand-in share one way of running them:
/// - `Base`: the Python base (`python:3.11-slim`): what the sample scenarios start `FROM`, and the root every
///   stand-in is built from. A scenario's bases in general are `bases`' business.
/// - `Dind`: create it with `Cmd` and environment from the dind daemon's home; both flavours then run
///   exactly that `dockerd` command line.
/// - `Registry`: keep the image's `Cmd`; it serves `:5000` with filesystem storage in `/var/lib/registry`,
///   overridable with `REGISTRY_*` variables (both are CNCF Distribution).
/// - `Buildah`: always give an explicit command (`buildah bud …`, or `sh -c …`).
/// - `Kaniko`: the entry point is `/kaniko/executor`; `Cmd` holds its flags. Its stand-in's executor is
///   built from kaniko's Go module.
/// - `Buildkit`: `moby/buildkit`, whose entry point is `buildkitd` (flags from buildkitd's home);
///   job containers run its `buildctl` with an explicit command. Its stand-in's programs are built from
///   BuildKit's Go module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Base,
    Dind,
    Registry,
    Buildah,
    Kaniko,
    /// A standalone BuildKit daemon, and the image whose `buildctl` drives it.
    Buildkit,
    /// The image a CI job's script runs in (`docker:28`): the docker CLI with buildx, no daemon.
    Job,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Base => "base",
            Role::Dind => "dind",
            Role::Registry => "registry",
            Role::Buildah => "buildah",
            Role::Kaniko => "kaniko",
            Role::Buildkit => "buildkit",
            Role::Job => "job",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The official image names layerbench asks the engine for, and where its stand-ins go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToolchainConfig {
    /// The Python base: the image a local stand-in is built for when it cannot be pulled (`--base-image NAME`),
    /// and the root every other stand-in is built from.
    pub base: String,
    pub dind: String,
    pub registry: String,
    pub buildah: String,
    pub kaniko: String,
    /// The standalone BuildKit daemon (and `buildctl`).
    pub buildkit: String,
    /// The image BuildKit jobs run `docker buildx build` in.
    pub job: String,
    /// Repository prefix of the local stand-ins, e.g. `layerbench-local` for `layerbench-local/dind:28-dind`.
    pub stand_in_prefix: String,
    /// `--base-image NAME=LOCAL_IMAGE`: local images served wherever a Dockerfile names `NAME`.
    pub base_map: Vec<BaseMapping>,
}

/// `--base-image NAME=LOCAL_IMAGE`: wherever a Dockerfile starts `FROM NAME`, every builder gets the local
/// image `LOCAL_IMAGE` (which the engine must have), served under `NAME` from the run's mirror.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseMapping {
    pub name: String,
    pub local: String,
}

/// An image flag that names no image, refused before anything starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageFlagError {
    #[error("{flag} `{image}` is not an image reference: {why}")]
    NotAReference { flag: &'static str, image: String, why: ReferenceError },
    #[error("--base-image `{value}`: {side} `{image}` is not an image reference: {why}")]
    Mapping { value: String, side: &'static str, image: String, why: ReferenceError },
    #[error("--base-image maps {name} twice (to {first} and to {second}); give each name one local image")]
    MappedTwice { name: String, first: String, second: String },
    #[error("--base-image names the Python base twice (`{first}` and `{second}`); give other images as NAME=LOCAL_IMAGE")]
    TwoShorthands { first: String, second: String },
}

impl ToolchainConfig {
    /// Every image name checked as an image reference, with the flag that set it: `--kaniko-image: tag ...`;
    /// a `--base-image NAME=LOCAL` on both sides, each name mapped once.
    pub fn check(&self) -> Result<(), ImageFlagError> {
        let named = [
            ("--base-image", &self.base),
            ("--dind-image", &self.dind),
            ("--registry-image", &self.registry),
            ("--buildah-image", &self.buildah),
            ("--kaniko-image", &self.kaniko),
            ("--buildkit-image", &self.buildkit),
            ("--job-image", &self.job),
        ];
        for (flag, image) in named {
            crate::reference::check_reference(image).map_err(|why| ImageFlagError::NotAReference { flag, image: image.clone(), why })?;
        }
        let mut seen: Vec<(String, &BaseMapping)> = vec![];
        for mapping in &self.base_map {
            let value = format!("{}={}", mapping.name, mapping.local);
            let checked = |side, image: &str| {
                Reference::parse(image).map_err(|why| ImageFlagError::Mapping { value: value.clone(), side, image: image.to_string(), why })
            };
            let name = checked("the name", &mapping.name)?.canonical();
            checked("the local image", &mapping.local)?;
            if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
                return Err(ImageFlagError::MappedTwice { name: mapping.name.clone(), first: first.local.clone(), second: mapping.local.clone() });
            }
            seen.push((name, mapping));
        }
        Ok(())
    }

    /// This configuration with `--base-image` values applied: `NAME=LOCAL_IMAGE` maps a name to a local image,
    /// a bare `NAME` (at most one) names the Python base, as the flag did before it took mappings.
    pub fn with_base_flags(mut self, values: &[String]) -> Result<Self, ImageFlagError> {
        let mut shorthand: Option<&String> = None;
        for value in values {
            match value.split_once('=') {
                Some((name, local)) => self.base_map.push(BaseMapping { name: name.to_string(), local: local.to_string() }),
                None => {
                    if let Some(first) = shorthand {
                        return Err(ImageFlagError::TwoShorthands { first: first.clone(), second: value.clone() });
                    }
                    shorthand = Some(value);
                    self.base = value.clone();
                }
            }
        }
        Ok(self)
    }
}

impl Default for ToolchainConfig {
    fn default() -> Self {
        ToolchainConfig {
            base: "python:3.11-slim".into(),
            // Docker 29 refuses clients older than API 1.44, which includes Debian's docker CLI 20.10 (API 1.41)
            // that BuildKit jobs use; 28 still accepts API 1.24 and up. A pinned major keeps results comparable.
            dind: "docker:28-dind".into(),
            // Distribution 3.1: 2.8 (registry:2) fails reads that race concurrent pushes of the same blob or tag,
            // which N pipelines at once on one strategy do all the time (toolchain/registry/Dockerfile).
            registry: "registry:3".into(),
            // The same minor version as Debian bookworm's buildah, so both worlds build alike.
            buildah: "quay.io/buildah/stable:v1.28".into(),
            // The last release of GoogleContainerTools/kaniko (archived in June 2025), which is also what the
            // stand-in is built from: the maintained forks' modules cannot be had here (see toolchain/README.md).
            // The -debug flavour has the busybox shell CI jobs (GitLab's kaniko template) run their script in.
            kaniko: "gcr.io/kaniko-project/executor:v1.24.0-debug".into(),
            buildkit: "moby/buildkit:v0.34.2".into(),
            // The CLI image GitLab's and GitHub's docker jobs use, of the same major as the dind service.
            job: "docker:28".into(),
            stand_in_prefix: "layerbench-local".into(),
            base_map: vec![],
        }
    }
}

impl ToolchainConfig {
    pub fn official(&self, role: Role) -> &str {
        match role {
            Role::Base => &self.base,
            Role::Dind => &self.dind,
            Role::Registry => &self.registry,
            Role::Buildah => &self.buildah,
            Role::Kaniko => &self.kaniko,
            Role::Buildkit => &self.buildkit,
            Role::Job => &self.job,
        }
    }
}

/// An image ready to run, and how to run it (see [`Role`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    pub role: Role,
    /// The configured official name; when `source` is a stand-in, the image it stands in for.
    pub official: String,
    /// The name to create containers (or write `FROM`) with.
    pub name: String,
    pub source: ImageSource,
    /// The engine's image ID (`sha256:…`).
    pub id: Option<String>,
    /// For a stand-in whose programs were built from Go modules: `MODULE@VERSION (go build, goX.Y.Z)`.
    pub built_from: Option<String>,
    /// This run pulled it (else the engine had it, or layerbench built it).
    pub pulled: bool,
}

impl ResolvedImage {
    /// What a container of the image runs with (command, environment) is its builder's or daemon's home's
    /// (`crate::builder`), the same whichever flavour of the image resolved: nothing of it is kept here.
    fn new(role: Role, official: &str, name: String, source: ImageSource, id: Option<String>) -> Self {
        ResolvedImage {
            role,
            official: official.to_string(),
            name,
            source,
            id,
            built_from: None,
            pulled: false,
        }
    }

    /// This image as `run.json` records it.
    pub fn info(&self) -> ImageInfo {
        ImageInfo {
            role: self.role.as_str().to_string(),
            name: self.name.clone(),
            source: self.source,
            id: self.id.clone(),
            built_from: self.built_from.clone(),
        }
    }
}

/// The images a run needs, by role. A role no chosen strategy uses is absent: it was not looked for, so a
/// run of one strategy never waits for (or fails on) another strategy's image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolchain {
    images: std::collections::BTreeMap<Role, ResolvedImage>,
}

impl Toolchain {
    /// The image of `role`, when the run resolved it.
    pub fn get(&self, role: Role) -> Option<&ResolvedImage> {
        self.images.get(&role)
    }

    /// The Python base (see [`Role`]): always resolved.
    pub fn base(&self) -> &ResolvedImage {
        &self.images[&Role::Base]
    }

    /// The registry image (the run's registry and its Docker Hub mirror): always resolved.
    pub fn registry(&self) -> &ResolvedImage {
        &self.images[&Role::Registry]
    }

    /// The available images, for `run.json`.
    pub fn images(&self) -> Vec<ImageInfo> {
        self.images.values().map(ResolvedImage::info).collect()
    }
}

/// What layerbench was doing to a toolchain image when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Inspect,
    Debootstrap,
    Import,
    Build,
    GoBuild,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Inspect => "inspect image",
            Operation::Debootstrap => "debootstrap the root filesystem of",
            Operation::Import => "import image",
            Operation::Build => "build image",
            Operation::GoBuild => "build the Go programs of image",
        })
    }
}

/// A toolchain image could not be found or made; the run cannot start.
#[derive(Debug, thiserror::Error)]
#[error("{operation} {image}: {message}. {hint}")]
pub struct ToolchainError {
    pub operation: Operation,
    pub image: String,
    /// Why it failed, in the engine's or the tool's words.
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

impl ToolchainError {
    fn new(operation: Operation, image: &str, message: impl Into<String>, hint: impl Into<String>) -> Self {
        ToolchainError { operation, image: image.to_string(), message: message.into(), hint: hint.into() }
    }

    /// Wraps an engine error with what was being done to which image.
    fn engine(operation: Operation, image: &str, error: &bollard::errors::Error) -> Self {
        let hint = if is_connection_error(error) {
            "Is the Docker engine running? `scripts/with-engine.sh` starts a private one and sets DOCKER_HOST"
        } else {
            "See the engine's message above"
        };
        Self::new(operation, image, crate::resources::engine_message(error), hint)
    }
}

/// Every role there is.
pub const ROLES: [Role; 7] = [Role::Base, Role::Dind, Role::Registry, Role::Buildah, Role::Kaniko, Role::Buildkit, Role::Job];

/// Finds every toolchain image (see [`resolve_roles`]).
pub async fn resolve(docker: &Docker, config: &ToolchainConfig, events: &EventSink) -> Result<Toolchain, ToolchainError> {
    resolve_roles(docker, config, &BTreeSet::from(ROLES), events).await
}

/// Finds the images of `roles` (base and registry always): the official one when present or
/// pullable, else a local stand-in built from Debian packages and Go modules (and said so once, as a notice).
pub async fn resolve_roles(
    docker: &Docker,
    config: &ToolchainConfig,
    roles: &BTreeSet<Role>,
    events: &EventSink,
) -> Result<Toolchain, ToolchainError> {
    let mut stand_ins = stand_in::Builder::new(docker, config, events);
    let mut images = std::collections::BTreeMap::new();
    for role in ROLES {
        if matches!(role, Role::Base | Role::Registry) || roles.contains(&role) {
            images.insert(role, resolve_role(docker, config, role, &mut stand_ins, events).await?);
        }
    }
    Ok(Toolchain { images })
}

async fn resolve_role(
    docker: &Docker,
    config: &ToolchainConfig,
    role: Role,
    stand_ins: &mut stand_in::Builder<'_>,
    events: &EventSink,
) -> Result<ResolvedImage, ToolchainError> {
    let official = config.official(role);
    match official_image(docker, role, official, events).await? {
        Ok(image) => Ok(image),
        Err(reason) => {
            let image = stand_ins.ensure(role).await?;
            let from = match &image.built_from {
                Some(go) => format!("Debian packages and {go}"),
                None => "Debian packages".into(),
            };
            events.notice(format!("could not pull {official} ({reason}); using local stand-in {} built from {from}", image.name));
            Ok(image)
        }
    }
}

/// The official image, present or freshly pulled; `Ok(Err(reason))` when it cannot be had.
/// Engine failures other than a failed pull are errors: a stand-in would fail the same way.
async fn official_image(
    docker: &Docker,
    role: Role,
    official: &str,
    events: &EventSink,
) -> Result<Result<ResolvedImage, String>, ToolchainError> {
    let name = with_default_tag(official);
    if let Some(image) = inspect(docker, role, official, &name).await? {
        if image.source == ImageSource::LocalStandIn {
            events.notice(format!(
                "{name} in this engine is a local stand-in built from Debian packages (labelled {STAND_IN_LABEL}), not the official image"
            ));
        }
        return Ok(Ok(image));
    }
    events.setup(format!("pulling {name}"));
    if let Err(reason) = pull(docker, &name).await {
        return Ok(Err(reason));
    }
    match inspect(docker, role, official, &name).await? {
        Some(image) => Ok(Ok(ResolvedImage { pulled: true, ..image })),
        None => Ok(Err("the engine reported a pull but has no such image".into())),
    }
}

/// The image under `name`, or None when the engine has none.
async fn inspect(
    docker: &Docker,
    role: Role,
    official: &str,
    name: &str,
) -> Result<Option<ResolvedImage>, ToolchainError> {
    match docker.inspect_image(name).await {
        Ok(image) => {
            // A stand-in re-tagged under the official name is still a stand-in, and run.json must say so.
            let labels = image.config.as_ref().and_then(|c| c.labels.as_ref());
            let stand_in = labels.and_then(|l| l.get(STAND_IN_LABEL)).is_some_and(|v| v == "true");
            let source = if stand_in { ImageSource::LocalStandIn } else { ImageSource::Official };
            let built_from = labels.and_then(|l| l.get(BUILT_FROM_LABEL)).filter(|_| stand_in).cloned();
            let mut resolved = ResolvedImage::new(role, official, name.to_string(), source, image.id);
            resolved.built_from = built_from;
            Ok(Some(resolved))
        }
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(ToolchainError::engine(Operation::Inspect, name, &e)),
    }
}

/// Pulls `name`; the error is a one-line reason.
async fn pull(docker: &Docker, name: &str) -> Result<(), String> {
    let options = CreateImageOptionsBuilder::new().from_image(name).build();
    let mut progress = docker.create_image(Some(options), None, None);
    loop {
        match tokio::time::timeout(PULL_IDLE_TIMEOUT, progress.next()).await {
            Err(_) => return Err(format!("no progress for {} s", PULL_IDLE_TIMEOUT.as_secs())),
            Ok(None) => return Ok(()),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(crate::resources::engine_message(&e)),
        }
    }
}

/// `name` with `:latest` when it has neither tag nor digest: a bare name would pull every tag.
fn with_default_tag(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || last.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

fn is_connection_error(error: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as E;
    matches!(
        error,
        E::HyperResponseError { .. } | E::IOError { .. } | E::RequestTimeoutError | E::SocketNotFoundError(_)
    )
}

/// The engine's own words, without bollard's "Docker responded with status code" framing; one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn recipe_hash(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    format!("{:x}", hasher.finalize())
}

/// The last `n` non-empty lines across `texts`, on one line.
fn last_lines(texts: &[&str], n: usize) -> String {
    let lines: Vec<&str> = texts.iter().flat_map(|t| t.lines()).map(str::trim).filter(|l| !l.is_empty()).collect();
    one_line(&lines[lines.len().saturating_sub(n)..].join(" | "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_get_latest_so_a_pull_never_fetches_every_tag() {
        assert_eq!(with_default_tag("registry"), "registry:latest");
        assert_eq!(with_default_tag("localhost:5000/registry"), "localhost:5000/registry:latest");
        assert_eq!(with_default_tag("registry:2"), "registry:2");
        assert_eq!(with_default_tag("quay.io/buildah/stable:v1.28"), "quay.io/buildah/stable:v1.28");
        assert_eq!(with_default_tag("busybox@sha256:abc"), "busybox@sha256:abc");
    }
}
