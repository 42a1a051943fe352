//! kaniko: the executor builds, caches `RUN` layers in a registry repository and pushes in one go.

pub mod log;

use crate::builder::command::{BuilderHome, Endpoints, JobCommand, CONTEXT_DIR};
use crate::cause::Cause;
use crate::strategy::{BuildRequest, CacheExport, CacheImport, Privileges};
use crate::toolchain::Role;

/// kaniko needs nothing beyond a plain container: it runs as root inside it and rewrites its own filesystem.
/// Without `--cache-copy-layers` it neither looks up nor pushes a cached layer for `COPY` or `ADD`
/// (pkg/executor/build.go); of the rest it caches `RUN` only, and reruns every other instruction.
pub const HOME: BuilderHome = BuilderHome { name: "kaniko", role: Role::Kaniko, privileges: Privileges::default, command, uncached: UNCACHED, image_entrypoint: &["/kaniko/executor"] };

const UNCACHED: &[(&str, Cause)] = &[
    ("COPY", Cause::CopyNotCached),
    ("ADD", Cause::CopyNotCached),
    ("ENV", Cause::NeverCached),
    ("ARG", Cause::NeverCached),
    ("WORKDIR", Cause::NeverCached),
    ("CMD", Cause::NeverCached),
    ("ENTRYPOINT", Cause::NeverCached),
    ("EXPOSE", Cause::NeverCached),
    ("LABEL", Cause::NeverCached),
    ("USER", Cause::NeverCached),
    ("VOLUME", Cause::NeverCached),
    ("STOPSIGNAL", Cause::NeverCached),
    ("HEALTHCHECK", Cause::NeverCached),
    ("SHELL", Cause::NeverCached),
    ("ONBUILD", Cause::NeverCached),
    ("MAINTAINER", Cause::NeverCached),
];

/// kaniko's flags. Its image's entry point is the executor, so these are its arguments. kaniko
/// has one cache repository for import and export; it builds and pushes in one go, so its whole
/// run is the build phase.
pub fn command(request: &BuildRequest, dockerfile: &str, endpoints: &Endpoints) -> JobCommand {
    let mut args = vec![
        format!("--context=dir://{CONTEXT_DIR}"),
        format!("--dockerfile={dockerfile}"),
        // Between stages kaniko deletes every file of the container that is neither a mount nor on
        // its ignore list, the context included: the next stage's `COPY` then fails with `lstat
        // /workspace/app: no such file or directory`. CI runners keep the context on a mount (a
        // volume, an emptyDir), which kaniko skips; the docker backend copies it into the
        // container's own filesystem, so it is ignored by name (a no-op where it is a mount).
        format!("--ignore-path={CONTEXT_DIR}"),
    ];
    let repo = request
        .cache_from
        .iter()
        .map(|CacheImport::Registry { reference }| reference)
        .chain(request.cache_to.iter().filter_map(|c| match c {
            CacheExport::Registry { reference, .. } => Some(reference),
            CacheExport::Inline => None,
        }))
        .next();
    if let Some(repo) = repo {
        args.extend(["--cache=true".to_string(), format!("--cache-repo={repo}")]);
    }
    // The run's registries speak plain HTTP: `--insecure-registry` is what lets kaniko use them
    // (without it, pulls through the mirror fall back to Docker Hub and pushes fail with `server
    // gave HTTP response to HTTPS client`). `--skip-tls-verify-registry` changes nothing over plain
    // HTTP; it is there for registries that serve TLS with a certificate of their own.
    args.extend([
        format!("--insecure-registry={}", endpoints.registry),
        format!("--skip-tls-verify-registry={}", endpoints.registry),
    ]);
    if let Some(mirror) = endpoints.hub_mirror {
        args.extend([
            format!("--registry-mirror={mirror}"),
            format!("--insecure-registry={mirror}"),
            format!("--skip-tls-verify-registry={mirror}"),
        ]);
    }
    args.extend(request.destinations.iter().map(|d| format!("--destination={d}")));
    // kaniko pushes inside its one run and says nothing a phase could be split by: all of it is the build.
    JobCommand { entrypoint: None, args, env: vec![], parser: log::parser, storage: None, version: None, inner_phases: vec![] }
}
