//! The base images a scenario's Dockerfiles start `FROM`: each resolved once per run, before the first job, to
//! a local image (mapped with `--base-image NAME=LOCAL`, present, pulled, or the Python base's stand-in), which
//! the run's mirror then serves to every builder under the name the Dockerfile uses.

use std::collections::BTreeMap;

use bollard::Docker;

use super::{pull, with_default_tag, Operation, Toolchain, ToolchainConfig, ToolchainError, STAND_IN_LABEL};
use crate::dockerfile::BaseImage;
use crate::events::EventSink;
use crate::reference::Reference;
use crate::resources::is_not_found;
use crate::results::{BaseImageInfo, BaseServing, BaseSource, DigestKind};

/// A base image that cannot be served: the run stops before its first job.
#[derive(Debug, thiserror::Error)]
pub enum BaseError {
    #[error(
        "base image {name} ({site}) cannot be had: {why}. Provide it: `docker load -i FILE` with an image named \
         {name}, or `--base-image {name}=LOCAL_IMAGE` to serve a local image under that name"
    )]
    Unavailable { name: String, site: String, why: String },
    #[error("--base-image {name}={local}: the engine has no image {local} ({site} names {name}); build it or `docker load` it first")]
    MappedMissing { name: String, local: String, site: String },
    #[error(transparent)]
    Engine(#[from] ToolchainError),
}

/// One base image, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedBase {
    /// As the Dockerfile names it, its global `ARG` defaults substituted.
    pub name: String,
    /// The `FROM`'s image as written, where it differs from `name`.
    pub written: Option<String>,
    pub reference: Reference,
    /// The local image served under `name`.
    pub local: String,
    pub source: BaseSource,
    /// The engine's image ID of `local`.
    pub image_id: Option<String>,
    /// The manifest digest of the registry `local` came from, when the engine remembers one.
    pub registry_digest: Option<String>,
}

impl ResolvedBase {
    /// Whether builders reach it through their Docker Hub mirror setting, under its Docker Hub path. A digest
    /// cannot be served that way: the mirror's copy has a manifest of its own, so its digest differs.
    pub fn via_hub_mirror(&self) -> bool {
        self.reference.is_docker_hub() && self.reference.digest.is_none()
    }

    /// Where the run's mirror keeps it, `PATH:TAG`: its Docker Hub path (`library/python:3.11-slim`), or its
    /// registry's host before its path (`gcr.io/distroless/static:nonroot`, a port's `:` made `-`). A digest
    /// becomes the tag `sha256-<hex>`.
    pub fn mirror_path(&self) -> String {
        let path = match self.reference.is_docker_hub() {
            true => self.reference.path(),
            false => format!("{}/{}", self.reference.registry().replace(':', "-"), self.reference.path()),
        };
        let tag = match &self.reference.digest {
            Some(digest) => digest.replace(':', "-"),
            None => self.reference.tag_or_latest().to_string(),
        };
        format!("{path}:{tag}")
    }

    /// This base as `run.json` records it, served as `served`.
    pub fn info(&self, served: BaseServing) -> BaseImageInfo {
        let (digest, digest_kind) = match (&self.registry_digest, &self.image_id) {
            (Some(digest), _) => (Some(digest.clone()), Some(DigestKind::RegistryManifest)),
            (None, Some(id)) => (Some(id.clone()), Some(DigestKind::ImageId)),
            (None, None) => (None, None),
        };
        BaseImageInfo {
            name: self.name.clone(),
            written: self.written.clone(),
            reference: self.reference.canonical(),
            resolved: self.local.clone(),
            digest,
            digest_kind,
            source: self.source,
            served,
        }
    }
}

/// Every base image of a run, each once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bases {
    pub bases: Vec<ResolvedBase>,
}

/// How a backend's builders reach the run's mirror, if it has one of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mirror<'a> {
    /// The run's own mirror, `host:port` as builders reach it: it serves every base.
    Own(&'a str),
    /// A Docker Hub mirror layerbench did not seed: Docker Hub images through it, the rest from their registries.
    External,
    /// No mirror: every base from its registry.
    None,
}

impl Bases {
    /// What the run's own mirror is seeded with: (local image, `PATH:TAG` in the mirror).
    pub fn mirrored(&self) -> Vec<(String, String)> {
        self.bases.iter().map(|b| (b.local.clone(), b.mirror_path())).collect()
    }

    /// How each base reaches the builders with `mirror`.
    pub fn serving(&self, base: &ResolvedBase, mirror: Mirror<'_>) -> BaseServing {
        match mirror {
            Mirror::Own(_) if base.via_hub_mirror() => BaseServing::HubMirror,
            Mirror::Own(_) => BaseServing::RunMirror,
            Mirror::External if base.reference.is_docker_hub() => BaseServing::HubMirror,
            Mirror::External | Mirror::None => BaseServing::Source,
        }
    }

    /// The `FROM` images the builders' Dockerfile names differently, by canonical name: those the run's own
    /// mirror serves by name (`mirror:5000/gcr.io/distroless/static:nonroot`).
    pub fn rewrites(&self, mirror: Mirror<'_>) -> BTreeMap<String, String> {
        let Mirror::Own(host) = mirror else { return BTreeMap::new() };
        self.bases
            .iter()
            .filter(|b| self.serving(b, mirror) == BaseServing::RunMirror)
            .map(|b| (b.reference.canonical(), format!("{host}/{}", b.mirror_path())))
            .collect()
    }

    /// Every base as `run.json` records it.
    pub fn infos(&self, mirror: Mirror<'_>) -> Vec<BaseImageInfo> {
        self.bases.iter().map(|b| b.info(self.serving(b, mirror))).collect()
    }
}

/// Resolves each distinct base of `wanted` (a base and where a Dockerfile names it, e.g.
/// `Dockerfile:3`) once, in order: a `--base-image NAME=LOCAL` mapping; the Python base the toolchain already
/// resolved (official or its stand-in); the image the engine has under that name; a pull. A base none of
/// these gives is an error naming it and how to provide it.
pub async fn resolve(
    docker: &Docker,
    config: &ToolchainConfig,
    toolchain: &Toolchain,
    wanted: &[(BaseImage, String)],
    events: &EventSink,
) -> Result<Bases, BaseError> {
    let python = Reference::parse(&config.base).ok().map(|r| r.canonical());
    let mut bases: Vec<ResolvedBase> = vec![];
    for (base, site) in wanted {
        let canonical = base.reference.canonical();
        if bases.iter().any(|b| b.reference.canonical() == canonical) {
            continue;
        }
        let mapped = config.base_map.iter().find(|m| Reference::parse(&m.name).is_ok_and(|r| r.canonical() == canonical));
        let (local, source, image) = if let Some(mapping) = mapped {
            let Some(image) = inspect(docker, &mapping.local).await? else {
                return Err(BaseError::MappedMissing { name: base.name.clone(), local: mapping.local.clone(), site: site.clone() });
            };
            events.setup(format!("base image {}: serving the local image {}", base.name, mapping.local));
            (mapping.local.clone(), local_source(&image), image)
        } else if python.as_deref() == Some(canonical.as_str()) {
            let resolved = toolchain.base();
            let image = inspect(docker, &resolved.name).await?.unwrap_or_default();
            let source = match (resolved.source, resolved.pulled) {
                (crate::results::ImageSource::LocalStandIn, _) => BaseSource::LocalStandIn,
                (_, true) => BaseSource::Pulled,
                (_, false) => local_source(&image),
            };
            (resolved.name.clone(), source, image)
        } else {
            own_image(docker, base, site, events).await?
        };
        let registry_digest = registry_digest(&image, &local);
        let written = (base.written != base.name).then(|| base.written.clone());
        bases.push(ResolvedBase {
            name: base.name.clone(),
            written,
            reference: base.reference.clone(),
            local,
            source,
            image_id: image.id,
            registry_digest,
        });
    }
    for mapping in &config.base_map {
        let used = Reference::parse(&mapping.name).is_ok_and(|r| bases.iter().any(|b| b.reference.canonical() == r.canonical()));
        if !used {
            events.notice(format!("--base-image {}={}: no Dockerfile of the scenario starts FROM {}", mapping.name, mapping.local, mapping.name));
        }
    }
    Ok(Bases { bases })
}

/// The image under the Dockerfile's own name: present, or pulled now.
async fn own_image(
    docker: &Docker,
    base: &BaseImage,
    site: &str,
    events: &EventSink,
) -> Result<(String, BaseSource, bollard::models::ImageInspect), BaseError> {
    let name = with_default_tag(&base.name);
    if let Some(image) = inspect(docker, &name).await? {
        return Ok((name, local_source(&image), image));
    }
    events.setup(format!("pulling base image {name}"));
    let unavailable = |why: String| BaseError::Unavailable { name: base.name.clone(), site: site.to_string(), why };
    pull(docker, &name).await.map_err(|why| unavailable(format!("the pull failed: {why}")))?;
    let image = inspect(docker, &name).await?.ok_or_else(|| unavailable("the engine reported a pull but has no such image".into()))?;
    Ok((name, BaseSource::Pulled, image))
}

/// A local image is a stand-in when it carries layerbench's stand-in label, whatever its name.
fn local_source(image: &bollard::models::ImageInspect) -> BaseSource {
    let labels = image.config.as_ref().and_then(|c| c.labels.as_ref());
    match labels.and_then(|l| l.get(STAND_IN_LABEL)).is_some_and(|v| v == "true") {
        true => BaseSource::LocalStandIn,
        false => BaseSource::LocalImage,
    }
}

/// The engine's manifest digest for `local` from its own repository (`RepoDigests`), if it pulled it.
fn registry_digest(image: &bollard::models::ImageInspect, local: &str) -> Option<String> {
    let ours = Reference::parse(local).ok()?;
    image.repo_digests.iter().flatten().find_map(|entry| {
        let (repository, digest) = entry.split_once('@')?;
        let theirs = Reference::parse(repository).ok()?;
        (theirs.registry() == ours.registry() && theirs.path() == ours.path()).then(|| digest.to_string())
    })
}

async fn inspect(docker: &Docker, name: &str) -> Result<Option<bollard::models::ImageInspect>, ToolchainError> {
    match docker.inspect_image(name).await {
        Ok(image) => Ok(Some(image)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(ToolchainError::engine(Operation::Inspect, name, &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(name: &str, digest: Option<&str>) -> ResolvedBase {
        ResolvedBase {
            name: name.into(),
            written: None,
            reference: Reference::parse(name).unwrap(),
            local: "local/x:1".into(),
            source: BaseSource::LocalImage,
            image_id: Some("sha256:id".into()),
            registry_digest: digest.map(str::to_string),
        }
    }

    #[test]
    fn docker_hub_bases_go_through_the_hub_mirror_and_the_rest_are_named_in_the_mirror() {
        let digest = format!("sha256:{}", "b".repeat(64));
        let bases = Bases {
            bases: vec![
                base("python:3.11-slim", None),
                base("gcr.io/distroless/static:nonroot", None),
                base("localhost:5000/team/app", None),
                base(&format!("node@{digest}"), None),
            ],
        };
        let paths: Vec<String> = bases.mirrored().into_iter().map(|(_, path)| path).collect();
        assert_eq!(
            paths,
            [
                "library/python:3.11-slim".to_string(),
                "gcr.io/distroless/static:nonroot".into(),
                "localhost-5000/team/app:latest".into(),
                format!("library/node:sha256-{}", "b".repeat(64)),
            ]
        );
        let own = Mirror::Own("mirror:5000");
        let servings: Vec<BaseServing> = bases.bases.iter().map(|b| bases.serving(b, own)).collect();
        assert_eq!(servings, [BaseServing::HubMirror, BaseServing::RunMirror, BaseServing::RunMirror, BaseServing::RunMirror]);
        let rewrites = bases.rewrites(own);
        assert_eq!(rewrites.get("gcr.io/distroless/static:nonroot").map(String::as_str), Some("mirror:5000/gcr.io/distroless/static:nonroot"));
        assert!(!rewrites.contains_key("docker.io/library/python:3.11-slim"), "a Docker Hub tag comes through the Hub mirror");
        assert_eq!(rewrites.len(), 3);
        assert!(bases.rewrites(Mirror::External).is_empty() && bases.rewrites(Mirror::None).is_empty(), "no mirror of ours, nothing renamed");
        assert_eq!(bases.serving(&bases.bases[1], Mirror::External), BaseServing::Source);
        assert_eq!(bases.serving(&bases.bases[0], Mirror::None), BaseServing::Source);
    }

    #[test]
    fn the_digest_is_the_registrys_where_there_is_one_and_else_the_image_id_said_as_such() {
        let pulled = base("python:3.11-slim", Some("sha256:reg")).info(BaseServing::HubMirror);
        assert_eq!((pulled.digest.as_deref(), pulled.digest_kind), (Some("sha256:reg"), Some(DigestKind::RegistryManifest)));
        assert_eq!(pulled.reference, "docker.io/library/python:3.11-slim");
        let local = base("python:3.11-slim", None).info(BaseServing::HubMirror);
        assert_eq!((local.digest.as_deref(), local.digest_kind), (Some("sha256:id"), Some(DigestKind::ImageId)));
        let json = serde_json::to_string(&local).unwrap();
        assert!(json.contains("\"digest_kind\":\"image-id\"") && json.contains("\"source\":\"local-image\"") && json.contains("\"served\":\"hub-mirror\""), "{json}");
        assert!(!json.contains("written"), "absent when the FROM names the image as it is: {json}");
    }

    #[test]
    fn a_registry_digest_is_only_taken_from_the_images_own_repository() {
        let image = bollard::models::ImageInspect {
            repo_digests: Some(vec!["other/img@sha256:no".into(), "python@sha256:yes".into()]),
            ..Default::default()
        };
        assert_eq!(registry_digest(&image, "python:3.11-slim").as_deref(), Some("sha256:yes"));
        assert_eq!(registry_digest(&image, "docker.io/library/python:3.11-slim").as_deref(), Some("sha256:yes"));
        assert_eq!(registry_digest(&image, "layerbench-local/python:3.11-slim"), None);
    }
}
