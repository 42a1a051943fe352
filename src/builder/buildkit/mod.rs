//! BuildKit's clients, `docker buildx build` against a dind and `buildctl build` against a standalone buildkitd:
//! what they share (the cache attributes, the shape of the job, the `rawjson` log and its parser).

pub mod buildctl;
pub mod buildx;
pub mod log;

use crate::builder::command::{mark, script, shell, shell_words, Endpoints, JobCommand, VersionLine};
use crate::strategy::{BuildRequest, CacheExport, CacheImport, Phase};

/// BuildKit's attributes for a cache import (`--cache-from` of buildx, `--import-cache` of buildctl).
fn cache_import(import: &CacheImport) -> String {
    let CacheImport::Registry { reference } = import;
    format!("type=registry,ref={reference}")
}

/// BuildKit's attributes for a cache export (`--cache-to` of buildx, `--export-cache` of buildctl).
///
/// A registry cache goes as an OCI image manifest (`image-manifest=true`, which needs `oci-mediatypes=true`),
/// not as BuildKit's older default, an index whose entries are the cache's blobs: registries that check an
/// index's entries are manifests refuse that with `400 Bad Request` (ECR, Quay; and Distribution v3, the run's
/// registry). Both BuildKits here (dind's 0.13 and buildkitd 0.34) take the attribute, so the two clients'
/// caches have one format.
fn cache_export(export: &CacheExport) -> String {
    match export {
        CacheExport::Inline => "type=inline".into(),
        CacheExport::Registry { reference, every_stage } => {
            let mode = if *every_stage { "max" } else { "min" };
            format!("type=registry,ref={reference},mode={mode},oci-mediatypes=true,image-manifest=true")
        }
    }
}

/// A BuildKit client's job (buildx or buildctl): print its version, mark the build, run the one build
/// command that also imports and exports the cache and pushes, with the daemon's address in `host_variable`.
/// BuildKit reports the cache import, cache export and push inside that command itself, and its parser
/// splits them off the build by BuildKit's own vertex times.
fn client_job(request: &BuildRequest, build: &[String], client: Client, endpoints: &Endpoints) -> JobCommand {
    let lines = vec![client.version_command.to_string(), mark(Phase::Build), shell_words(build)];
    let env = endpoints.daemon_host.map(|h| vec![format!("{}={h}", client.host_variable)]).unwrap_or_default();
    let mut inner_phases = vec![];
    if !request.cache_from.is_empty() {
        inner_phases.push(Phase::CacheImport);
    }
    inner_phases.push(Phase::Push);
    if request.cache_to.is_some() {
        inner_phases.push(Phase::CacheExport);
    }
    JobCommand { entrypoint: shell(), args: script(lines), env, parser: log::parser, storage: None, version: Some(client.version), inner_phases }
}

/// How a BuildKit client is told apart: how it prints its version, where it finds its daemon.
struct Client {
    version_command: &'static str,
    /// The variable its daemon's address goes in.
    host_variable: &'static str,
    version: VersionLine,
}
