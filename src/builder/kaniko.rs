//! kaniko: the executor builds, caches `RUN` layers in a registry repository and pushes in one go.

use super::{Endpoints, JobCommand, CONTEXT_DIR};
use crate::builder_log::LogFormat;
use crate::strategy::{BuildRequest, CacheExport, CacheImport};

/// kaniko's flags. Its image's entry point is the executor, so these are its arguments. kaniko
/// has one cache repository for import and export; it builds and pushes in one go, so its whole
/// run is the build phase.
pub fn command(request: &BuildRequest, dockerfile: &str, endpoints: &Endpoints) -> JobCommand {
    let mut args = vec![format!("--context=dir://{CONTEXT_DIR}"), format!("--dockerfile={dockerfile}")];
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
    // The run's registries speak plain HTTP.
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
    JobCommand { entrypoint: None, args, env: vec![], log: LogFormat::Kaniko, storage: None }
}
